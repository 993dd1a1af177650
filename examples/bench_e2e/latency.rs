//! `latency`: produce-to-queryable latency at a low, steady rate.
//!
//! Metrics are produced at `--rate` with wall-clock timestamps (unique per
//! message). For each one the send instant — the moment it was handed to
//! the Kafka producer, so the producer's linger and the broker count too —
//! is kept by timestamp. A sampler queries InfluxDB every `--poll-ms` for
//! the points since the oldest one not yet seen; a point's latency is the
//! time from its send to the end of the first query that returned it. That
//! is an upper bound: it includes up to one polling interval and the query's
//! own time. Messages never seen within `--give-up-seconds` count as lost
//! and rank above every latency in the percentiles.
//!
//! Before measuring, messages are produced (not measured) until a first
//! point is queryable, then for `--settle-seconds` more, so consumer-group
//! joining and start-up are not counted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use monasca_loadgen::cli::{parse_rate, WorkloadArgs};
use monasca_loadgen::pace::Pacer;
use monasca_loadgen::producer::LoadProducer;
use monasca_loadgen::progress::{Progress, ProgressMode};
use monasca_loadgen::run::{Destination, LoadRun};
use monasca_loadgen::{Generator, Limits, Mix, Timestamps};

use super::influx::Influx;

/// Options of `latency`.
#[derive(Debug, clap::Args)]
pub struct LatencyArgs {
    /// Kafka bootstrap brokers.
    #[arg(long)]
    brokers: String,
    /// Metrics topic.
    #[arg(long, default_value = "metrics")]
    metrics_topic: String,
    /// Spread over partitions 0..N.
    #[arg(long)]
    partitions: Option<u32>,
    /// InfluxDB HTTP port on 127.0.0.1.
    #[arg(long)]
    influx_port: u16,
    /// Database the persister writes to.
    #[arg(long, default_value = "mon")]
    database: String,
    /// Messages per second.
    #[arg(long, default_value = "1000", value_parser = parse_rate)]
    rate: f64,
    /// Measured seconds.
    #[arg(long, default_value_t = 30.0)]
    seconds: f64,
    /// Unmeasured seconds after the first point is queryable.
    #[arg(long, default_value_t = 3.0)]
    settle_seconds: f64,
    /// Longest wait for the first point.
    #[arg(long, default_value_t = 120)]
    start_timeout_seconds: u64,
    /// Sampler interval.
    #[arg(long, default_value_t = 20)]
    poll_ms: u64,
    /// A message not queryable after this long is lost.
    #[arg(long, default_value_t = 30)]
    give_up_seconds: u64,
    /// The workload.
    #[command(flatten)]
    workload: WorkloadArgs,
}

/// A message sent and not yet seen: when it was sent, and whether it counts.
#[derive(Clone, Copy)]
struct Pending {
    sent: Instant,
    measured: bool,
}

/// What the sampler found.
#[derive(Default)]
struct Samples {
    pending: HashMap<i64, Pending>,
    /// Send → end of the first query that returned the point (upper bounds).
    latencies: Vec<Duration>,
    /// Send → start of the query before it, which did not return the point
    /// yet (lower bounds; zero when it was sent after that query started).
    lower: Vec<Duration>,
    /// Start of the previous query.
    previous_start: Option<Instant>,
    /// How long the queries took.
    query_times: Vec<Duration>,
    lost: u64,
    seen_any: bool,
}

fn sample_once(
    influx: &Influx,
    db: &str,
    samples: &Mutex<Samples>,
    give_up: Duration,
) -> anyhow::Result<()> {
    let oldest = {
        let Ok(s) = samples.lock() else {
            bail!("sampler state poisoned");
        };
        s.pending.keys().min().copied()
    };
    let Some(oldest) = oldest else {
        return Ok(());
    };
    let started = Instant::now();
    let rows = match influx.rows(
        db,
        &format!("SELECT \"value\" FROM /.*/ WHERE time >= {oldest}ms"),
    ) {
        Ok(rows) => rows,
        Err(e) if super::influx::is_missing_database(&e) => Vec::new(),
        Err(e) => return Err(e),
    };
    let answered = Instant::now();
    let Ok(mut s) = samples.lock() else {
        bail!("sampler state poisoned");
    };
    let previous_start = s.previous_start.replace(started).unwrap_or(started);
    s.query_times.push(answered - started);
    for row in rows {
        let Some(ts) = row.first().and_then(|t| t.as_i64()) else {
            continue;
        };
        if let Some(p) = s.pending.remove(&ts) {
            s.seen_any = true;
            if p.measured {
                s.latencies.push(answered.duration_since(p.sent));
                s.lower
                    .push(previous_start.saturating_duration_since(p.sent));
            }
        }
    }
    let mut lost_measured = 0;
    s.pending.retain(|_, p| {
        let keep = answered.duration_since(p.sent) < give_up;
        if !keep && p.measured {
            lost_measured += 1;
        }
        keep
    });
    s.lost += lost_measured;
    Ok(())
}

fn percentile(sorted: &[Duration], lost: u64, q: f64) -> String {
    let n = sorted.len() as u64 + lost;
    if n == 0 {
        return String::new();
    }
    let rank = ((q * n as f64).ceil() as u64).clamp(1, n) - 1;
    match sorted.get(rank as usize) {
        Some(d) => format!("{:.1}", d.as_secs_f64() * 1000.0),
        None => "inf".to_string(),
    }
}

/// Runs `latency`.
pub fn run(args: LatencyArgs) -> anyhow::Result<()> {
    let influx = Arc::new(Influx::new(args.influx_port));
    let samples = Arc::new(Mutex::new(Samples::default()));
    let sampling_done = Arc::new(AtomicBool::new(false));
    let give_up = Duration::from_secs(args.give_up_seconds);
    let sampler = {
        let (influx, samples, done, db) = (
            Arc::clone(&influx),
            Arc::clone(&samples),
            Arc::clone(&sampling_done),
            args.database.clone(),
        );
        let poll = Duration::from_millis(args.poll_ms);
        std::thread::spawn(move || -> anyhow::Result<()> {
            while !done.load(Ordering::Relaxed) {
                sample_once(&influx, &db, &samples, give_up)?;
                std::thread::sleep(poll);
            }
            Ok(())
        })
    };

    let workload = args.workload.workload(Mix::MetricsOnly);
    let generator = Generator::new(workload, Limits::default(), Timestamps::clock())?;
    let mut producer = LoadProducer::new(&args.brokers, &[])?;
    let destination = Destination {
        metrics_topic: args.metrics_topic.clone(),
        alarms_topic: "alarm-state-transitions".into(),
        partitions: args.partitions,
        guard_capacity: false,
    };
    let mut progress = Progress::new(ProgressMode::Off, None);
    let record = |measured: bool| {
        let samples = Arc::clone(&samples);
        move |m: &monasca_loadgen::Message| {
            if let Ok(mut s) = samples.lock() {
                s.pending.insert(
                    m.timestamp_ms,
                    Pending {
                        sent: Instant::now(),
                        measured,
                    },
                );
            }
        }
    };

    // Warm-up: until the pipeline delivers a first point.
    let first_seen = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (samples, flag) = (Arc::clone(&samples), Arc::clone(&first_seen));
        let deadline = Instant::now() + Duration::from_secs(args.start_timeout_seconds);
        std::thread::spawn(move || {
            while Instant::now() < deadline {
                if samples.lock().map(|s| s.seen_any).unwrap_or(true) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            flag.store(true, Ordering::Relaxed);
        })
    };
    let mut warm_up = LoadRun {
        generator,
        destination: destination.clone(),
        pacer: Pacer::new(Some(args.rate)),
        deadline: None,
    };
    warm_up.produce(&mut producer, &first_seen, &mut progress, record(false))?;
    let _ = watcher.join();
    if !samples.lock().map(|s| s.seen_any).unwrap_or(false) {
        sampling_done.store(true, Ordering::Relaxed);
        bail!(
            "no point became queryable within {}s: is the persister consuming from {}?",
            args.start_timeout_seconds,
            args.brokers
        );
    }
    let never = AtomicBool::new(false);
    let mut settle = LoadRun {
        generator: warm_up.generator,
        destination: destination.clone(),
        pacer: Pacer::new(Some(args.rate)),
        deadline: Some(Instant::now() + Duration::from_secs_f64(args.settle_seconds)),
    };
    settle.produce(&mut producer, &never, &mut progress, record(false))?;

    eprintln!(
        "bench: measuring latency at {}/s for {}s",
        args.rate, args.seconds
    );
    let before = settle.generator.metrics();
    let mut measured = LoadRun {
        generator: settle.generator,
        destination,
        pacer: Pacer::new(Some(args.rate)),
        deadline: Some(Instant::now() + Duration::from_secs_f64(args.seconds)),
    };
    let outcome = measured.produce(&mut producer, &never, &mut progress, record(true))?;
    if !outcome.complete() {
        bail!(
            "the producer lost messages: {} failed, {} undelivered",
            outcome.deliveries.failed,
            outcome.undelivered
        );
    }
    // Wait for the sampler to see or give up on every measured message.
    let deadline = Instant::now() + give_up + Duration::from_secs(5);
    loop {
        let open = samples
            .lock()
            .map(|s| s.pending.values().filter(|p| p.measured).count())
            .unwrap_or(0);
        if open == 0 || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    sampling_done.store(true, Ordering::Relaxed);
    match sampler.join() {
        Ok(result) => result.context("sampler")?,
        Err(_) => bail!("the sampler panicked"),
    }
    let Ok(s) = samples.lock() else {
        bail!("sampler state poisoned");
    };
    let mut sorted = s.latencies.clone();
    sorted.sort();
    let mut lower = s.lower.clone();
    lower.sort();
    let lost = s.lost + s.pending.values().filter(|p| p.measured).count() as u64;
    let sent = outcome.metrics - before;
    println!("latency_sent={sent}");
    println!("latency_seen={}", sorted.len());
    println!("latency_lost={lost}");
    println!(
        "latency_rate={:.0}",
        sent as f64 / outcome.elapsed.as_secs_f64().max(1e-9)
    );
    println!("latency_poll_ms={}", args.poll_ms);
    let mut queries = s.query_times.clone();
    queries.sort();
    println!("latency_query_p50_ms={}", percentile(&queries, 0, 0.5));
    println!("latency_query_p99_ms={}", percentile(&queries, 0, 0.99));
    for (name, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)] {
        println!("latency_{name}_ms={}", percentile(&sorted, lost, q));
        println!("latency_{name}_lower_ms={}", percentile(&lower, lost, q));
    }
    println!(
        "latency_max_ms={}",
        if lost > 0 {
            "inf".to_string()
        } else {
            sorted
                .last()
                .map(|d| format!("{:.1}", d.as_secs_f64() * 1000.0))
                .unwrap_or_default()
        }
    );
    Ok(())
}
