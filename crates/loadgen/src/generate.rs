//! The stream of Monasca messages a load run sends: metric envelopes and
//! `alarm-transitioned` messages in exactly the shape the Monasca API and
//! thresholding engine put on Kafka (see `tests/data/compat/*.jsonl`),
//! deterministic for a given [`Workload`] and seed.
//!
//! **Every message is its own InfluxDB point.** Timestamps come from one
//! counter shared by metrics and alarm transitions and are strictly
//! increasing, so no two messages of a run share a timestamp, and a point
//! (measurement, tag set, timestamp) can never overwrite another. A run of
//! `N` metrics and `M` alarm transitions therefore leaves exactly `N` points
//! with a `value` field in the metric measurements and `M` points in
//! `alarm_state_history` — provided no other run wrote the same
//! milliseconds into the same database (see [`Timestamps`]).

use std::io::Write as _;

use thiserror::Error;

use super::catalog::{self, MetricDefinition, ValueKind};

/// Which topic a message belongs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// A metric envelope (the `metrics` topic).
    Metric,
    /// An alarm state transition (the `alarm-state-transitions` topic).
    AlarmTransition,
}

/// One generated Kafka message value.
#[derive(Debug, Clone)]
pub struct Message {
    /// Metric or alarm transition.
    pub kind: MessageKind,
    /// The message's timestamp (ms since the epoch), unique within the run.
    pub timestamp_ms: i64,
    /// The JSON text, as a Monasca producer sends it.
    pub payload: Vec<u8>,
}

/// The cardinality of the simulated deployment.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Monitored hosts (the `hostname` dimension).
    pub hosts: u32,
    /// Tenants (projects); host `h` belongs to tenant `h mod tenants`.
    pub tenants: u32,
    /// Metrics each host reports; the series count is `hosts × metrics_per_host`.
    pub metrics_per_host: u32,
    /// Fraction of metrics (0–1) that carry a `value_meta` object.
    pub value_meta_share: f64,
    /// How alarm transitions are interleaved with the metrics.
    pub mix: Mix,
    /// `meta.region` of every metric.
    pub region: String,
    /// Seed of the values and ids: the same seed gives the same messages.
    pub seed: u64,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            hosts: 100,
            tenants: 4,
            metrics_per_host: 20,
            value_meta_share: 0.1,
            mix: Mix::MetricsOnly,
            region: catalog::DEFAULT_REGION.to_string(),
            seed: 1,
        }
    }
}

/// How many alarm transitions come with the metrics. They are spread evenly:
/// after metric `i` come `⌊(i+1)·a/m⌋ − ⌊i·a/m⌋` alarm transitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    /// No alarm transitions.
    MetricsOnly,
    /// `alarms` alarm transitions per `metrics` metrics.
    Ratio {
        /// Alarm transitions…
        alarms: u64,
        /// …per this many metrics (not 0).
        metrics: u64,
    },
}

/// Resolution of [`Mix::share`] and of the value_meta share.
const SHARE_SCALE: u64 = 1_000_000;

impl Mix {
    /// `share` alarm transitions per metric (0.01: one per hundred metrics).
    pub fn share(share: f64) -> Result<Mix, WorkloadError> {
        if !(0.0..=1.0).contains(&share) {
            return Err(WorkloadError::Share("alarm share", share));
        }
        let alarms = (share * SHARE_SCALE as f64).round() as u64;
        Ok(if alarms == 0 {
            Mix::MetricsOnly
        } else {
            Mix::Ratio {
                alarms,
                metrics: SHARE_SCALE,
            }
        })
    }

    /// Exactly `alarms` alarm transitions spread over `metrics` metrics (all
    /// of them first when `metrics` is 0).
    pub fn exact(alarms: u64, metrics: u64) -> Mix {
        if alarms == 0 {
            Mix::MetricsOnly
        } else {
            Mix::Ratio {
                alarms,
                metrics: metrics.max(1),
            }
        }
    }

    /// Alarm transitions that accompany the first `metrics` metrics.
    pub fn alarms_with(&self, metrics: u64) -> u64 {
        match *self {
            Mix::MetricsOnly => 0,
            Mix::Ratio {
                alarms,
                metrics: per,
            } => ((metrics as u128 * alarms as u128) / per as u128) as u64,
        }
    }
}

/// A workload that cannot be generated.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum WorkloadError {
    /// A count that must be at least one is zero.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    /// More tenants than hosts would leave some tenants without messages.
    #[error("{tenants} tenants need at least as many hosts (got {hosts})")]
    TenantsWithoutHosts {
        /// Tenants asked for.
        tenants: u32,
        /// Hosts asked for.
        hosts: u32,
    },
    /// A share outside 0–1 (or not a number).
    #[error("{0} must be between 0 and 1, got {1}")]
    Share(&'static str, f64),
}

impl Workload {
    /// Checks the knobs.
    pub fn validate(&self) -> Result<(), WorkloadError> {
        if self.hosts == 0 {
            return Err(WorkloadError::Zero("hosts"));
        }
        if self.tenants == 0 {
            return Err(WorkloadError::Zero("tenants"));
        }
        if self.metrics_per_host == 0 {
            return Err(WorkloadError::Zero("metrics per host"));
        }
        if self.tenants > self.hosts {
            return Err(WorkloadError::TenantsWithoutHosts {
                tenants: self.tenants,
                hosts: self.hosts,
            });
        }
        if !(0.0..=1.0).contains(&self.value_meta_share) {
            return Err(WorkloadError::Share(
                "value_meta share",
                self.value_meta_share,
            ));
        }
        Ok(())
    }

    /// Distinct metric series (measurement + tag set).
    pub fn series(&self) -> u64 {
        u64::from(self.hosts) * u64::from(self.metrics_per_host)
    }

    /// Distinct metric names (InfluxDB measurements, besides `alarm_state_history`).
    pub fn measurements(&self) -> usize {
        (self.metrics_per_host as usize).min(catalog::METRICS.len())
    }

    /// The metric names in use, in catalog order.
    pub fn measurement_names(&self) -> Vec<&'static str> {
        catalog::METRICS[..self.measurements()]
            .iter()
            .map(|m| m.name)
            .collect()
    }

    /// The tenant ids (32 hex digits, like Keystone project ids).
    pub fn tenant_ids(&self) -> Vec<String> {
        (0..u64::from(self.tenants))
            .map(|t| {
                let a = mix64(self.seed ^ mix64(t + 1));
                format!("{a:016x}{:016x}", mix64(a))
            })
            .collect()
    }
}

/// Where message timestamps come from. Both rules give strictly increasing
/// milliseconds, one per message.
#[derive(Debug, Clone)]
pub enum Timestamps {
    /// `first`, `first + 1`, … : a run of known size placed just before its
    /// start time (the default), so that points are recent but never in the
    /// future, and a rerun writes new milliseconds.
    Sequence {
        /// The next timestamp to hand out.
        next: i64,
    },
    /// The wall clock at generation, moved on to the previous timestamp + 1
    /// when two messages fall in the same millisecond: at more than 1 000
    /// messages a second the timestamps run ahead of the clock.
    Clock {
        /// The last timestamp handed out.
        last: i64,
    },
}

impl Timestamps {
    /// A sequence starting at `first_ms`.
    pub fn sequence(first_ms: i64) -> Timestamps {
        Timestamps::Sequence { next: first_ms }
    }

    /// A sequence of `total` timestamps ending one millisecond before now.
    pub fn before_now(total: u64) -> Timestamps {
        Timestamps::sequence(now_ms() - i64::try_from(total).unwrap_or(i64::MAX / 2))
    }

    /// Wall-clock timestamps.
    pub fn clock() -> Timestamps {
        Timestamps::Clock { last: i64::MIN }
    }

    fn next(&mut self) -> i64 {
        match self {
            Timestamps::Sequence { next } => {
                let t = *next;
                *next += 1;
                t
            }
            Timestamps::Clock { last } => {
                *last = now_ms().max(last.saturating_add(1));
                *last
            }
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// How many messages a run makes: limits on metrics and on alarm
/// transitions, `None` for no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Metrics to generate.
    pub metrics: Option<u64>,
    /// Alarm transitions to generate (after the metrics, whatever the mix
    /// has not yet produced).
    pub alarms: Option<u64>,
}

impl Limits {
    /// Messages the run makes in all, when both limits are known.
    pub fn total(&self, mix: &Mix) -> Option<u64> {
        let metrics = self.metrics?;
        let alarms = match self.alarms {
            Some(a) => a,
            None => mix.alarms_with(metrics),
        };
        Some(metrics + alarms)
    }
}

/// Generates the messages of a [`Workload`], in order.
#[derive(Debug, Clone)]
pub struct Generator {
    workload: Workload,
    limits: Limits,
    timestamps: Timestamps,
    rng: fastrand::Rng,
    tenant_ids: Vec<String>,
    value_meta_per_million: u64,
    metrics: u64,
    alarms: u64,
    alarms_due: u64,
}

impl Generator {
    /// A generator for `workload` within `limits`, stamping with `timestamps`.
    pub fn new(
        workload: Workload,
        limits: Limits,
        timestamps: Timestamps,
    ) -> Result<Generator, WorkloadError> {
        workload.validate()?;
        let value_meta_per_million =
            (workload.value_meta_share * SHARE_SCALE as f64).round() as u64;
        Ok(Generator {
            rng: fastrand::Rng::with_seed(workload.seed),
            tenant_ids: workload.tenant_ids(),
            workload,
            limits,
            timestamps,
            value_meta_per_million,
            metrics: 0,
            alarms: 0,
            alarms_due: 0,
        })
    }

    /// The workload.
    pub fn workload(&self) -> &Workload {
        &self.workload
    }

    /// Metrics generated so far.
    pub fn metrics(&self) -> u64 {
        self.metrics
    }

    /// Alarm transitions generated so far.
    pub fn alarms(&self) -> u64 {
        self.alarms
    }

    /// What the next message will be, `None` when the limits are reached.
    pub fn peek_kind(&self) -> Option<MessageKind> {
        let alarms_left = self.limits.alarms.is_none_or(|limit| self.alarms < limit);
        let metrics_left = self.limits.metrics.is_none_or(|limit| self.metrics < limit);
        if self.alarms_due > 0 && alarms_left {
            Some(MessageKind::AlarmTransition)
        } else if metrics_left {
            Some(MessageKind::Metric)
        } else if self.limits.alarms.is_some() && alarms_left {
            Some(MessageKind::AlarmTransition)
        } else {
            None
        }
    }

    /// The next message, `None` when the limits are reached.
    pub fn next_message(&mut self) -> Option<Message> {
        let kind = self.peek_kind()?;
        let timestamp_ms = self.timestamps.next();
        let mut payload = Vec::with_capacity(512);
        match kind {
            MessageKind::Metric => {
                self.write_metric(timestamp_ms, &mut payload);
                self.alarms_due += self.workload.mix.alarms_with(self.metrics + 1)
                    - self.workload.mix.alarms_with(self.metrics);
                self.metrics += 1;
            }
            MessageKind::AlarmTransition => {
                self.write_alarm(timestamp_ms, &mut payload);
                self.alarms_due = self.alarms_due.saturating_sub(1);
                self.alarms += 1;
            }
        }
        Some(Message {
            kind,
            timestamp_ms,
            payload,
        })
    }

    /// The tenant of host `host`.
    fn tenant(&self, host: u64) -> &str {
        &self.tenant_ids[(host % u64::from(self.workload.tenants)) as usize]
    }

    fn write_metric(&mut self, timestamp_ms: i64, out: &mut Vec<u8>) {
        let w = &self.workload;
        let series = self.metrics % w.series();
        let (host, position) = (
            series / u64::from(w.metrics_per_host),
            series % u64::from(w.metrics_per_host),
        );
        let definition = &catalog::METRICS[position as usize % catalog::METRICS.len()];
        let instance = position as usize / catalog::METRICS.len();
        let value = self.value(definition.kind);
        let i = self.metrics;
        let with_meta = share_step(i, self.value_meta_per_million);
        let value_meta = with_meta
            .then(|| catalog::VALUE_META[(i / 7) as usize % catalog::VALUE_META.len()].to_string());

        out.extend_from_slice(b"{\"metric\": {\"name\": ");
        push_json_str(out, definition.name);
        out.extend_from_slice(b", \"dimensions\": ");
        self.push_dimensions(out, host, definition, instance);
        let _ = write!(out, ", \"timestamp\": {timestamp_ms}, \"value\": ");
        push_value(out, value);
        out.extend_from_slice(b", \"value_meta\": ");
        match value_meta {
            Some(meta) => out.extend_from_slice(meta.as_bytes()),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b"}, \"meta\": {\"region\": ");
        push_json_str(out, &self.workload.region);
        out.extend_from_slice(b", \"tenantId\": ");
        push_json_str(out, self.tenant(host));
        let _ = write!(
            out,
            "}}, \"creation_time\": {}}}",
            timestamp_ms.div_euclid(1000)
        );
    }

    fn push_dimensions(
        &self,
        out: &mut Vec<u8>,
        host: u64,
        definition: &MetricDefinition,
        instance: usize,
    ) {
        let _ = write!(out, "{{\"hostname\": \"{}\"", hostname(host));
        for (key, value) in definition.dimensions {
            out.extend_from_slice(b", ");
            push_json_str(out, key);
            out.extend_from_slice(b": ");
            push_json_str(out, value);
        }
        if instance > 0 {
            let _ = write!(out, ", \"instance\": \"{instance}\"");
        }
        out.push(b'}');
    }

    fn value(&mut self, kind: ValueKind) -> f64 {
        let r = &mut self.rng;
        match kind {
            ValueKind::Percent => f64::from(r.u32(0..=10_000)) / 100.0,
            ValueKind::Megabytes => f64::from(r.u32(0..=655_360)) / 10.0,
            ValueKind::Rate => f64::from(r.u32(0..=10_000_000)) / 100.0,
            ValueKind::Load => f64::from(r.u32(0..=3_200)) / 100.0,
            ValueKind::Count => f64::from(r.u32(0..=2_000)),
            ValueKind::Status => f64::from(u8::from(r.u8(0..20) == 0)),
        }
    }

    fn write_alarm(&mut self, timestamp_ms: i64, out: &mut Vec<u8>) {
        let w = &self.workload;
        let a = self.alarms;
        let hosts = u64::from(w.hosts);
        let definitions = w.measurements() as u64;
        let host = a % hosts;
        let definition = &catalog::METRICS[((a / hosts) % definitions) as usize];
        let round = a / (hosts * definitions);
        let transition =
            &catalog::TRANSITIONS[(round % catalog::TRANSITIONS.len() as u64) as usize];
        let alarm_id = uuid(mix64(
            w.seed ^ mix64((host << 8) | ((a / hosts) % definitions)),
        ));
        let (threshold, operator, symbol) = match definition.kind {
            ValueKind::Percent => (90.0, "GT", ">"),
            ValueKind::Status => (0.0, "GT", ">"),
            _ => (1000.0, "GT", ">"),
        };
        let currents: Vec<f64> = (0..3)
            .map(|_| {
                let v = f64::from(self.rng.u32(0..=1000)) / 100.0;
                if transition.exceeded {
                    threshold + 1.0 + v
                } else {
                    (threshold - 1.0 - v).max(0.0)
                }
            })
            .collect();
        let host_name = hostname(host);
        let expression = format!(
            "avg({}{{hostname={host_name}}}) {symbol} {threshold:.1} times 3",
            definition.name
        );
        let mut values = Vec::new();
        push_values(&mut values, &currents);
        let values = String::from_utf8_lossy(&values).into_owned();
        let reason = match transition.new_state {
            "ALARM" => format!(
                "Thresholds were exceeded for the sub-alarms: {expression} with the values: {values}"
            ),
            "UNDETERMINED" => format!("No data was present for the sub-alarms: {expression}"),
            _ => format!(
                "The alarm threshold(s) have not been exceeded for the sub-alarms: {expression} with the values: {values}"
            ),
        };

        out.extend_from_slice(b"{\"alarm-transitioned\": {\"alarmId\": ");
        push_json_str(out, &alarm_id);
        out.extend_from_slice(b", \"metrics\": [{\"id\": null, \"name\": ");
        push_json_str(out, definition.name);
        out.extend_from_slice(b", \"dimensions\": ");
        self.push_dimensions(out, host, definition, 0);
        out.extend_from_slice(b"}], \"newState\": ");
        push_json_str(out, transition.new_state);
        out.extend_from_slice(b", \"oldState\": ");
        push_json_str(out, transition.old_state);
        if a % 2 == 0 {
            let _ = write!(
                out,
                ", \"link\": \"http://monasca.example.net/alarms/{alarm_id}\", \"lifecycleState\": \"OPEN\""
            );
        } else {
            out.extend_from_slice(b", \"link\": null, \"lifecycleState\": null");
        }
        out.extend_from_slice(b", \"stateChangeReason\": ");
        push_json_str(out, &reason);
        out.extend_from_slice(b", \"tenantId\": ");
        push_json_str(out, self.tenant(host));
        let _ = write!(out, ", \"timestamp\": {timestamp_ms}, \"subAlarms\": [{{\"subAlarmExpression\": {{\"function\": \"AVG\", \"metricName\": ");
        push_json_str(out, definition.name);
        let _ = write!(
            out,
            ", \"dimensions\": {{\"hostname\": \"{host_name}\"}}, \"operator\": \"{operator}\", \"threshold\": "
        );
        push_value(out, threshold);
        out.extend_from_slice(b", \"period\": 60, \"periods\": 3}, \"subAlarmState\": ");
        push_json_str(out, transition.new_state);
        out.extend_from_slice(b", \"currentValues\": ");
        if transition.new_state == "UNDETERMINED" {
            out.extend_from_slice(b"[]");
        } else {
            out.extend_from_slice(values.as_bytes());
        }
        out.extend_from_slice(b"}]}}");
    }
}

/// True for the metrics that carry the share: spread evenly, `i` is one when
/// `⌊(i+1)·s⌋ > ⌊i·s⌋` with `s` in millionths.
fn share_step(i: u64, per_million: u64) -> bool {
    let at = |n: u64| (u128::from(n) * u128::from(per_million)) / u128::from(SHARE_SCALE);
    at(i + 1) > at(i)
}

/// Host `h`'s name.
pub fn hostname(host: u64) -> String {
    format!("compute-{host:04}")
}

/// A JSON number as Python's json module writes a float (`57.3`, `0.0`).
fn push_value(out: &mut Vec<u8>, value: f64) {
    let mut buffer = ryu::Buffer::new();
    out.extend_from_slice(buffer.format_finite(value).as_bytes());
}

fn push_values(out: &mut Vec<u8>, values: &[f64]) {
    out.push(b'[');
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        push_value(out, *v);
    }
    out.push(b']');
}

fn push_json_str(out: &mut Vec<u8>, text: &str) {
    // Serialising a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

/// A UUID-shaped id from 64 random bits.
fn uuid(bits: u64) -> String {
    let more = mix64(bits);
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        bits >> 32,
        (bits >> 16) & 0xffff,
        bits & 0xfff,
        more >> 52,
        more & 0xffff_ffff_ffff
    )
}

/// splitmix64's finaliser: spreads the bits of small inputs over 64.
fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generator(limits: Limits, mix: Mix) -> Generator {
        let workload = Workload {
            mix,
            ..Workload::default()
        };
        Generator::new(workload, limits, Timestamps::sequence(1_000)).unwrap()
    }

    #[test]
    fn exact_alarm_count_is_spread_over_the_metrics() {
        let limits = Limits {
            metrics: Some(1000),
            alarms: Some(30),
        };
        let mut g = generator(limits, Mix::exact(30, 1000));
        let kinds: Vec<MessageKind> = std::iter::from_fn(|| g.next_message())
            .map(|m| m.kind)
            .collect();
        assert_eq!(kinds.len(), 1030);
        let alarms: Vec<usize> = kinds
            .iter()
            .enumerate()
            .filter(|(_, k)| **k == MessageKind::AlarmTransition)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(alarms.len(), 30);
        // Spread, not bunched at the end.
        assert!(alarms[0] < 100 && alarms[15] > 400 && alarms[15] < 600);
    }

    #[test]
    fn alarms_only() {
        let limits = Limits {
            metrics: Some(0),
            alarms: Some(5),
        };
        let mut g = generator(limits, Mix::exact(5, 0));
        let n = std::iter::from_fn(|| g.next_message())
            .inspect(|m| assert_eq!(m.kind, MessageKind::AlarmTransition))
            .count();
        assert_eq!(n, 5);
    }

    #[test]
    fn timestamps_are_unique_and_increasing() {
        let limits = Limits {
            metrics: Some(500),
            alarms: None,
        };
        let mut g = generator(limits, Mix::share(0.1).unwrap());
        let ts: Vec<i64> = std::iter::from_fn(|| g.next_message())
            .map(|m| m.timestamp_ms)
            .collect();
        assert_eq!(ts.len(), 550);
        assert!(ts.windows(2).all(|w| w[1] == w[0] + 1));
        let mut clock = Timestamps::clock();
        let a = clock.next();
        let b = clock.next();
        assert!(b > a);
    }

    #[test]
    fn value_meta_share_is_met() {
        let limits = Limits {
            metrics: Some(10_000),
            alarms: None,
        };
        let mut g = generator(limits, Mix::MetricsOnly);
        let with_meta = std::iter::from_fn(|| g.next_message())
            .filter(|m| !m.payload.windows(18).any(|w| w == b"\"value_meta\": null"))
            .count();
        assert_eq!(with_meta, 1000);
    }

    #[test]
    fn bad_workloads_are_refused() {
        let bad = [
            Workload {
                hosts: 0,
                ..Workload::default()
            },
            Workload {
                tenants: 200,
                ..Workload::default()
            },
            Workload {
                value_meta_share: 1.5,
                ..Workload::default()
            },
        ];
        for w in bad {
            assert!(Generator::new(w, Limits::default(), Timestamps::clock()).is_err());
        }
        assert!(Mix::share(f64::NAN).is_err());
    }
}
