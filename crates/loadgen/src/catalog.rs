//! What a Monasca deployment reports: the metric definitions a monasca-agent
//! sends for a host, the value ranges they move in, and the texts of alarm
//! state transitions. The generator draws every message from here so that
//! load-test traffic looks like production traffic (names, dimensions,
//! message sizes), not like `m0 v=1`.

/// How a metric's value moves, which decides its range and precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// A percentage, 0–100 with two decimals.
    Percent,
    /// An amount in megabytes, 0–65 536 with one decimal.
    Megabytes,
    /// A per-second rate, 0–100 000 with two decimals.
    Rate,
    /// A load average, 0–32 with two decimals.
    Load,
    /// A whole count, 0–2 000.
    Count,
    /// A check result: 0 (up) or 1 (down), mostly 0.
    Status,
}

/// One metric a host reports: its name and the dimensions it carries
/// besides `hostname`.
#[derive(Debug, Clone, Copy)]
pub struct MetricDefinition {
    /// The metric name (the InfluxDB measurement).
    pub name: &'static str,
    /// Dimensions other than `hostname`, in the order the agent sends them.
    pub dimensions: &'static [(&'static str, &'static str)],
    /// Range and precision of the value.
    pub kind: ValueKind,
}

const fn metric(
    name: &'static str,
    dimensions: &'static [(&'static str, &'static str)],
    kind: ValueKind,
) -> MetricDefinition {
    MetricDefinition {
        name,
        dimensions,
        kind,
    }
}

const SYSTEM: &[(&str, &str)] = &[("service", "system")];
const ROOT_DISK: &[(&str, &str)] = &[("service", "system"), ("mount_point", "/")];
const SDA: &[(&str, &str)] = &[("service", "system"), ("device", "sda")];
const ETH0: &[(&str, &str)] = &[("service", "system"), ("device", "eth0")];
const API_CHECK: &[(&str, &str)] = &[
    ("service", "monitoring"),
    ("component", "monasca-api"),
    ("url", "http://127.0.0.1:8070/healthcheck"),
];
const PERSISTER: &[(&str, &str)] = &[
    ("service", "monitoring"),
    ("component", "monasca-persister"),
];

/// The metrics of one host, in the order `--metrics-per-host` takes them.
/// A host reporting more metrics than listed repeats the list with an
/// `instance` dimension, so every (host, position) is its own series.
pub const METRICS: &[MetricDefinition] = &[
    metric("cpu.idle_perc", SYSTEM, ValueKind::Percent),
    metric("cpu.user_perc", SYSTEM, ValueKind::Percent),
    metric("cpu.system_perc", SYSTEM, ValueKind::Percent),
    metric("cpu.wait_perc", SYSTEM, ValueKind::Percent),
    metric("mem.free_mb", SYSTEM, ValueKind::Megabytes),
    metric("mem.usable_perc", SYSTEM, ValueKind::Percent),
    metric("mem.swap_used_mb", SYSTEM, ValueKind::Megabytes),
    metric("disk.space_used_perc", ROOT_DISK, ValueKind::Percent),
    metric("disk.inode_used_perc", ROOT_DISK, ValueKind::Percent),
    metric("io.read_kbytes_sec", SDA, ValueKind::Rate),
    metric("io.write_kbytes_sec", SDA, ValueKind::Rate),
    metric("io.read_req_sec", SDA, ValueKind::Rate),
    metric("io.write_req_sec", SDA, ValueKind::Rate),
    metric("net.in_bytes_sec", ETH0, ValueKind::Rate),
    metric("net.out_bytes_sec", ETH0, ValueKind::Rate),
    metric("net.in_packets_sec", ETH0, ValueKind::Rate),
    metric("net.out_packets_sec", ETH0, ValueKind::Rate),
    metric("load.avg_1_min", SYSTEM, ValueKind::Load),
    metric("load.avg_5_min", SYSTEM, ValueKind::Load),
    metric("load.avg_15_min", SYSTEM, ValueKind::Load),
    metric("process.pid_count", PERSISTER, ValueKind::Count),
    metric("http_status", API_CHECK, ValueKind::Status),
];

/// `value_meta` objects as monasca-agent checks attach them (JSON text).
pub const VALUE_META: &[&str] = &[
    r#"{"msg": "HTTP Error 503: Service Unavailable", "url": "http://127.0.0.1:8070/healthcheck"}"#,
    r#"{"status": "ok"}"#,
    r#"{"detail": "check took 1.2s", "attempts": 2}"#,
];

/// One step of an alarm's life: the state it leaves, the one it enters, and
/// whether its thresholds were exceeded.
#[derive(Debug, Clone, Copy)]
pub struct Transition {
    /// `oldState`.
    pub old_state: &'static str,
    /// `newState`.
    pub new_state: &'static str,
    /// True when the sub-alarm fired (its values crossed the threshold).
    pub exceeded: bool,
}

/// The cycle an alarm goes round, one transition per message.
pub const TRANSITIONS: &[Transition] = &[
    Transition {
        old_state: "UNDETERMINED",
        new_state: "OK",
        exceeded: false,
    },
    Transition {
        old_state: "OK",
        new_state: "ALARM",
        exceeded: true,
    },
    Transition {
        old_state: "ALARM",
        new_state: "OK",
        exceeded: false,
    },
    Transition {
        old_state: "OK",
        new_state: "UNDETERMINED",
        exceeded: false,
    },
];

/// The region every message reports unless told otherwise.
pub const DEFAULT_REGION: &str = "RegionOne";
