//! The `monasca-persister-load` command line: options, how they become a
//! load run, and the run's lifecycle (embedded broker, summary, serving
//! until told to stop).

use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::{Args, Parser, ValueEnum};

use super::broker::{EmbeddedBroker, PartitionLoad};
use super::generate::{Generator, Limits, MessageKind, Mix, Timestamps, Workload};
use super::pace::Pacer;
use super::producer::LoadProducer;
use super::progress::{Progress, ProgressMode};
use super::run::{Destination, LoadRun, Outcome};
use super::stop::{StopFlags, StopReason};

/// Partitions of the embedded broker's topics unless --partitions says otherwise.
const EMBEDDED_PARTITIONS: u32 = 16;

const AFTER_HELP: &str = "\
Every message gets its own timestamp (one counter for metrics and alarm transitions, strictly \
increasing), so each message becomes exactly one InfluxDB point: N metrics and M alarm \
transitions leave N points with a `value` field and M points in alarm_state_history.

With --embedded-broker a Kafka-protocol broker (librdkafka's mock cluster) is started on \
127.0.0.1 and its address printed on stdout as `BROKER 127.0.0.1:PORT`. After producing, the \
program prints `DONE sent=.. acked=.. failed=..` on stdout and keeps serving the broker until it \
gets SIGINT or SIGTERM, or until its standard input reaches end-of-file when stdin is a pipe or \
a terminal (stdin from /dev/null, as for a background job in a script, is not watched). The \
mock keeps at most 5 MiB per partition: larger loads are refused, use more --partitions.

Exit status: 0 when every message was acknowledged by the broker, 1 otherwise.";

/// Produces realistic Monasca metrics and alarm state transitions to Kafka,
/// at a given rate or as fast as possible.
#[derive(Debug, Parser)]
#[command(name = "monasca-persister-load", version, after_help = AFTER_HELP)]
pub struct LoadArgs {
    /// Where to produce.
    #[command(flatten)]
    pub kafka: KafkaArgs,

    /// How much and how fast.
    #[command(flatten)]
    pub amount: AmountArgs,

    /// What the messages look like.
    #[command(flatten)]
    pub workload: WorkloadArgs,

    /// Progress display on stderr: a bar on a terminal, else a line every 2 s.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
}

/// Kafka options.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Kafka")]
pub struct KafkaArgs {
    /// Kafka bootstrap brokers, host:port[,host:port...].
    #[arg(
        long,
        value_name = "HOST:PORT,...",
        required_unless_present = "embedded_broker"
    )]
    pub brokers: Option<String>,

    /// Start a local Kafka-protocol broker (librdkafka mock cluster) with both
    /// topics and produce to it; see below for how long it keeps serving.
    #[arg(long, conflicts_with = "brokers")]
    pub embedded_broker: bool,

    /// Topic of the metrics.
    #[arg(long, default_value = "metrics")]
    pub metrics_topic: String,

    /// Topic of the alarm state transitions.
    #[arg(long, default_value = "alarm-state-transitions")]
    pub alarms_topic: String,

    /// Spread each topic's messages round robin over partitions 0..N (the
    /// topics must have that many); without it librdkafka's partitioner
    /// picks. With --embedded-broker or --create-topics: the topics' partition
    /// count [default: 16].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub partitions: Option<u32>,

    /// Create the topics first (with --partitions partitions, default 16)
    /// unless they exist: a real broker normally refuses to create them on
    /// first use.
    #[arg(long, conflicts_with = "embedded_broker")]
    pub create_topics: bool,

    /// Replication factor of the topics --create-topics creates.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..))]
    pub replication_factor: i32,

    /// A librdkafka producer property (TLS, SASL, tuning), e.g.
    /// security.protocol=SASL_SSL. Repeatable; overrides the defaults.
    #[arg(long = "kafka-property", value_name = "KEY=VALUE", value_parser = parse_property)]
    pub kafka_properties: Vec<(String, String)>,
}

/// Amount and pace.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Amount")]
pub struct AmountArgs {
    /// Metrics to produce (1000000, 1_000_000, 1M, 50k). Without --count or
    /// --duration: until SIGINT/SIGTERM.
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub count: Option<u64>,

    /// Stop producing after this long (500ms, 30s, 5m, 1h).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Messages per second, metrics and alarm transitions together (1000 or
    /// 1000/s). Default: as fast as the broker takes them.
    #[arg(long, value_name = "N/s", value_parser = parse_rate)]
    pub rate: Option<f64>,

    /// Exactly N alarm transitions, spread evenly over the --count metrics.
    #[arg(long, value_name = "N", value_parser = parse_count, requires = "count", conflicts_with = "alarm_share")]
    pub alarms: Option<u64>,

    /// Alarm transitions per metric (0.01: one per hundred metrics).
    #[arg(long, value_name = "SHARE")]
    pub alarm_share: Option<f64>,

    /// Message timestamps: `past` = consecutive milliseconds ending just
    /// before the start (needs a known total: --count, or --rate with
    /// --duration); `now` = the wall clock, moved on by 1 ms when two
    /// messages share a millisecond. Default: past when the total is known.
    #[arg(long, value_enum)]
    pub timestamps: Option<TimestampMode>,
}

/// The timestamp rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TimestampMode {
    /// Consecutive milliseconds ending just before the start.
    Past,
    /// The wall clock, unique by moving on 1 ms on collision.
    Now,
}

/// Cardinality knobs.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Workload")]
pub struct WorkloadArgs {
    /// Monitored hosts (hostname dimension).
    #[arg(long, default_value_t = 100)]
    pub hosts: u32,

    /// Tenants; host h belongs to tenant h mod N (at most --hosts).
    #[arg(long, default_value_t = 4)]
    pub tenants: u32,

    /// Metrics per host (cpu.idle_perc, mem.free_mb, ...; beyond the 22 known
    /// names they repeat with an `instance` dimension). Series = hosts × this.
    #[arg(long, default_value_t = 20)]
    pub metrics_per_host: u32,

    /// Share of metrics (0-1) that carry a value_meta object.
    #[arg(long, default_value_t = 0.1)]
    pub value_meta_share: f64,

    /// meta.region of the metrics.
    #[arg(long, default_value = "RegionOne")]
    pub region: String,

    /// Seed of values and ids: the same seed gives the same messages.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

impl WorkloadArgs {
    /// The workload these knobs describe, with alarm transitions mixed in by `mix`.
    pub fn workload(&self, mix: Mix) -> Workload {
        Workload {
            hosts: self.hosts,
            tenants: self.tenants,
            metrics_per_host: self.metrics_per_host,
            value_meta_share: self.value_meta_share,
            mix,
            region: self.region.clone(),
            seed: self.seed,
        }
    }
}

impl AmountArgs {
    /// The alarm mix and the limits of the run.
    pub fn mix_and_limits(&self) -> anyhow::Result<(Mix, Limits)> {
        let mix = match (self.alarms, self.alarm_share) {
            (Some(alarms), _) => Mix::exact(alarms, self.count.unwrap_or(0)),
            (None, Some(share)) => Mix::share(share)?,
            (None, None) => Mix::MetricsOnly,
        };
        let limits = Limits {
            metrics: self.count,
            alarms: self.alarms,
        };
        Ok((mix, limits))
    }

    /// Messages the run will make, when that is known.
    pub fn planned_total(&self, mix: &Mix, limits: &Limits) -> Option<u64> {
        limits
            .total(mix)
            .or_else(|| match (self.rate, self.duration) {
                (Some(rate), Some(d)) => Some((rate * d.as_secs_f64()).ceil() as u64),
                _ => None,
            })
    }

    /// The timestamp rule for a run of `total` messages.
    pub fn timestamps(&self, total: Option<u64>) -> anyhow::Result<Timestamps> {
        match (self.timestamps, total) {
            (Some(TimestampMode::Now), _) | (None, None) => Ok(Timestamps::clock()),
            (Some(TimestampMode::Past) | None, Some(total)) => Ok(Timestamps::before_now(total)),
            (Some(TimestampMode::Past), None) => bail!(
                "--timestamps past needs a known number of messages: --count, or --rate with --duration"
            ),
        }
    }
}

/// Runs the load generator; the exit code says whether every message was acknowledged.
pub fn run(args: LoadArgs) -> anyhow::Result<ExitCode> {
    let stop = StopFlags::install().context("install signal handlers")?;
    let (mix, limits) = args.amount.mix_and_limits()?;
    let workload = args.workload.workload(mix);
    workload.validate().context("workload")?;
    let total = args.amount.planned_total(&mix, &limits);
    let timestamps = args.amount.timestamps(total)?;
    let generator = Generator::new(workload.clone(), limits, timestamps)?;

    let compressed = args
        .kafka
        .kafka_properties
        .iter()
        .any(|(k, v)| (k == "compression.type" || k == "compression.codec") && v != "none");
    let embedded = args.kafka.embedded_broker;
    let partitions = match (embedded, args.kafka.partitions) {
        (true, p) => Some(p.unwrap_or(EMBEDDED_PARTITIONS)),
        (false, p) => p,
    };

    let broker = if embedded {
        let p = partitions.unwrap_or(EMBEDDED_PARTITIONS);
        if !compressed {
            check_capacity(&args, &workload, &mix, &limits, p)?;
        }
        let topics = [
            args.kafka.metrics_topic.as_str(),
            args.kafka.alarms_topic.as_str(),
        ];
        let broker = EmbeddedBroker::start(&topics, p as i32)?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "BROKER {}", broker.bootstrap_servers())
            .and_then(|()| out.flush())
            .context("write the BROKER line to stdout")?;
        Some(broker)
    } else {
        None
    };
    let brokers = match (&broker, &args.kafka.brokers) {
        (Some(b), _) => b.bootstrap_servers(),
        (None, Some(b)) => b.clone(),
        (None, None) => bail!("--brokers or --embedded-broker is required"),
    };

    if args.kafka.create_topics {
        let p = partitions.unwrap_or(EMBEDDED_PARTITIONS);
        let created = super::topics::create_topics(
            &brokers,
            &args.kafka.kafka_properties,
            &[&args.kafka.metrics_topic, &args.kafka.alarms_topic],
            p as i32,
            args.kafka.replication_factor,
        )?;
        if !created.is_empty() {
            eprintln!(
                "load: created topic(s) {} with {p} partitions",
                created.join(", ")
            );
        }
    }
    let partitions = match (args.kafka.create_topics, partitions) {
        (true, None) => Some(EMBEDDED_PARTITIONS),
        (_, p) => p,
    };
    let mut producer = LoadProducer::new(&brokers, &args.kafka.kafka_properties)
        .with_context(|| format!("Kafka producer for {brokers}"))?;
    let mut run = LoadRun {
        generator,
        destination: Destination {
            metrics_topic: args.kafka.metrics_topic.clone(),
            alarms_topic: args.kafka.alarms_topic.clone(),
            partitions,
            guard_capacity: embedded && !compressed,
        },
        pacer: Pacer::new(args.amount.rate),
        deadline: args.amount.duration.map(|d| Instant::now() + d),
    };
    eprintln!(
        "load: producing to {brokers}: {} ({} series over {} tenants{})",
        describe_amount(&args.amount, total),
        workload.series(),
        workload.tenants,
        partitions
            .map(|p| format!(", {p} partitions per topic"))
            .unwrap_or_default()
    );
    let mut progress = Progress::new(args.progress, total);
    let outcome = run.produce(&mut producer, stop.signal(), &mut progress, |_| {})?;
    report(&outcome)?;
    if !outcome.complete() {
        return Ok(ExitCode::FAILURE);
    }
    if let Some(broker) = broker {
        if outcome.stopped {
            return Ok(ExitCode::SUCCESS);
        }
        let stdin = stop.watch_stdin();
        eprintln!(
            "load: serving the embedded broker at {} until SIGINT/SIGTERM{}",
            broker.bootstrap_servers(),
            if stdin { " or end of stdin" } else { "" }
        );
        let reason = stop.wait();
        eprintln!(
            "load: stopping the embedded broker ({})",
            match reason {
                StopReason::Signal => "signal",
                StopReason::StdinClosed => "stdin closed",
            }
        );
        drop(broker);
    }
    Ok(ExitCode::SUCCESS)
}

fn describe_amount(amount: &AmountArgs, total: Option<u64>) -> String {
    let mut parts = Vec::new();
    match total {
        Some(t) => parts.push(format!("{t} messages")),
        None => parts.push("messages".to_string()),
    }
    if let Some(d) = amount.duration {
        parts.push(format!("for {:.1}s", d.as_secs_f64()));
    }
    match amount.rate {
        Some(r) => parts.push(format!("at {r}/s")),
        None => parts.push("as fast as possible".to_string()),
    }
    parts.join(" ")
}

/// Refuses, before producing, a load the embedded broker would truncate;
/// the sizes come from generating a sample of each kind of message.
fn check_capacity(
    args: &LoadArgs,
    workload: &Workload,
    mix: &Mix,
    limits: &Limits,
    partitions: u32,
) -> anyhow::Result<()> {
    let metrics = limits.metrics.or_else(|| {
        args.amount
            .planned_total(mix, limits)
            .map(|t| t.saturating_sub(mix.alarms_with(t)))
    });
    let Some(metrics) = metrics else {
        // Unknown size: the run itself stops before a partition overflows.
        return Ok(());
    };
    let alarms = limits.alarms.unwrap_or_else(|| mix.alarms_with(metrics));
    let checks = [
        (MessageKind::Metric, &args.kafka.metrics_topic, metrics),
        (
            MessageKind::AlarmTransition,
            &args.kafka.alarms_topic,
            alarms,
        ),
    ];
    for (kind, topic, count) in checks {
        if count == 0 {
            continue;
        }
        let average = average_size(workload, kind)?;
        let load = PartitionLoad::spread(count, average, partitions);
        load.check(topic, partitions)?;
        if load.may_exceed_batches() {
            eprintln!(
                "load: warning: {} messages per partition of {topic}; the embedded broker keeps \
                 100000 batches per partition, so a slow run (one message per batch) would lose \
                 the oldest",
                load.messages
            );
        }
    }
    Ok(())
}

/// Average payload bytes of the first messages of `kind`.
fn average_size(workload: &Workload, kind: MessageKind) -> anyhow::Result<f64> {
    const SAMPLE: u64 = 2000;
    let (mix, limits) = match kind {
        MessageKind::Metric => (
            Mix::MetricsOnly,
            Limits {
                metrics: Some(SAMPLE),
                alarms: None,
            },
        ),
        MessageKind::AlarmTransition => (
            Mix::exact(SAMPLE, 0),
            Limits {
                metrics: Some(0),
                alarms: Some(SAMPLE),
            },
        ),
    };
    let sample = Workload {
        mix,
        ..workload.clone()
    };
    let mut generator = Generator::new(sample, limits, Timestamps::clock())?;
    let (mut n, mut bytes) = (0u64, 0u64);
    while let Some(m) = generator.next_message() {
        n += 1;
        bytes += m.payload.len() as u64;
    }
    Ok(bytes as f64 / n.max(1) as f64)
}

/// The human summary on stderr and the `DONE` line on stdout.
fn report(outcome: &Outcome) -> anyhow::Result<()> {
    let d = &outcome.deliveries;
    let seconds = outcome.elapsed.as_secs_f64();
    let rate = outcome.sent() as f64 / seconds.max(1e-9);
    eprintln!(
        "load: sent {} messages ({} metrics, {} alarm transitions) in {seconds:.2} s, {rate:.0} msg/s; \
         acked {}, failed {}{}{}",
        outcome.sent(),
        outcome.metrics,
        outcome.alarms,
        d.acked,
        d.failed,
        if outcome.undelivered > 0 {
            format!(", no delivery report for {}", outcome.undelivered)
        } else {
            String::new()
        },
        if outcome.stopped {
            " (stopped early)"
        } else {
            ""
        }
    );
    if let Some(e) = d.first_error.as_ref().filter(|_| d.failed > 0) {
        eprintln!("load: first delivery error: {e}");
    }
    if let Some(e) = d.client_error.as_ref().filter(|_| !outcome.complete()) {
        eprintln!("load: last Kafka client error: {e}");
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "DONE sent={} acked={} failed={} undelivered={} metrics={} alarms={} seconds={seconds:.3}",
        outcome.sent(),
        d.acked,
        d.failed,
        outcome.undelivered,
        outcome.metrics,
        outcome.alarms
    )
    .and_then(|()| out.flush())
    .context("write the DONE line to stdout")
}

/// `1000000`, `1_000_000`, `50k`, `1M`.
pub fn parse_count(text: &str) -> Result<u64, String> {
    let clean: String = text.trim().chars().filter(|c| *c != '_').collect();
    let (digits, factor) = match clean.chars().last() {
        Some('k' | 'K') => (&clean[..clean.len() - 1], 1_000),
        Some('m' | 'M') => (&clean[..clean.len() - 1], 1_000_000),
        _ => (clean.as_str(), 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .ok_or_else(|| format!("{text:?} is not a count (examples: 5000, 1_000_000, 50k, 1M)"))
}

/// `500ms`, `30s`, `5m`, `1h`, or plain seconds (`2.5`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (number, unit) = match t.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let factor = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("{text:?}: unknown unit (use ms, s, m or h)")),
    };
    number
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n >= 0.0)
        .map(|n| Duration::from_secs_f64(n * factor))
        .ok_or_else(|| format!("{text:?} is not a duration (examples: 500ms, 30s, 5m)"))
}

/// `1000` or `1000/s`.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let t = t.strip_suffix("/s").unwrap_or(t);
    t.parse::<f64>()
        .ok()
        .filter(|r| r.is_finite() && *r > 0.0)
        .ok_or_else(|| format!("{text:?} is not a rate (examples: 1000, 1000/s)"))
}

/// `key=value`.
pub fn parse_property(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_durations_rates_and_properties_parse() {
        assert_eq!(parse_count("1_000_000"), Ok(1_000_000));
        assert_eq!(parse_count("1M"), Ok(1_000_000));
        assert_eq!(parse_count("50k"), Ok(50_000));
        assert!(parse_count("lots").is_err());
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("3 weeks").is_err());
        assert_eq!(parse_rate("1000/s"), Ok(1000.0));
        assert!(parse_rate("0").is_err());
        assert_eq!(
            parse_property("security.protocol=SASL_SSL"),
            Ok(("security.protocol".into(), "SASL_SSL".into()))
        );
        assert!(parse_property("=x").is_err());
    }

    #[test]
    fn the_command_line_is_consistent() {
        LoadArgs::command_for_tests().debug_assert();
    }

    impl LoadArgs {
        fn command_for_tests() -> clap::Command {
            <LoadArgs as clap::CommandFactory>::command()
        }
    }
}
