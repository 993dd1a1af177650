//! Writer throughput against a running InfluxDB versus the raw ceiling: a
//! plain loop posting the same kind of pre-built bodies with ureq. Both get
//! bodies built the same way (fresh timestamps per run, so every run writes
//! new points into existing series) and rounds alternate which goes first,
//! so drift in influxd (compactions, cache snapshots) hits both alike. Each
//! round gives a ratio (raw time / writer time); the median is the figure to
//! quote on a shared machine, where single runs are noisy. The client CPU
//! time per 10 000 points (this process's user + system time, influxd
//! excluded) shows the writer's own cost, which contention barely blurs.
//!
//! `scripts/bench-influx` starts a private influxd and runs this; by hand:
//! `cargo run --release --example bench_influx -- --port 8086 [--points 10000]
//! [--batches 30] [--rounds 5] [--threads 1,2] [--batch-size N]`.
//! `--batch-size` below `--points` makes the writer scan and chunk each
//! batch (the raw loop still posts it whole).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use monasca_persister::config::InfluxSection;
use monasca_persister::influx::{InfluxClient, InfluxWriter};

const DATABASE: &str = "bench";
const SERIES: usize = 2000;

struct Args {
    host: String,
    port: u16,
    points: usize,
    batch_size: Option<usize>,
    batches: usize,
    rounds: usize,
    threads: Vec<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        host: "127.0.0.1".into(),
        port: 8086,
        points: 10_000,
        batch_size: None,
        batches: 30,
        rounds: 5,
        threads: vec![1, 2],
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |v: &str| v.parse::<usize>().map_err(|e| format!("{flag} {v}: {e}"));
        match flag.as_str() {
            "--host" => args.host = value,
            "--port" => args.port = value.parse().map_err(|e| format!("--port {value}: {e}"))?,
            "--points" => args.points = number(&value)?,
            "--batch-size" => args.batch_size = Some(number(&value)?),
            "--batches" => args.batches = number(&value)?,
            "--rounds" => args.rounds = number(&value)?,
            "--threads" => args.threads = value.split(',').map(number).collect::<Result<_, _>>()?,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(args)
}

/// A batch of Monasca-shaped metric lines; `run` makes the timestamps unique.
fn body(points: usize, run: usize, batch: usize) -> Vec<u8> {
    let base_ms = 1_700_000_000_000i64 + ((run * 1000 + batch) * points) as i64;
    let mut out = String::with_capacity(points * 190);
    for i in 0..points {
        let s = i % SERIES;
        out.push_str(&format!(
            "cpu.idle_perc,_region=RegionOne,_tenant_id=4f5a7c1e9b2d4c3a8e6f0a1b2c3d4e5f,component=vm,hostname=compute-{},service=compute,resource_id=vm-{} value={}.25,value_meta=\"{{}}\" {}\n",
            s % 100,
            s,
            i % 997,
            base_ms + i as i64
        ));
    }
    out.into_bytes()
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Raw,
    Writer,
}

/// User + system CPU time of this process so far.
fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes into the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Wall-clock and client CPU time of one run.
struct Took {
    wall: Duration,
    cpu: Duration,
}

fn run_once(
    mode: Mode,
    threads: usize,
    bodies: &[Vec<u8>],
    points: usize,
    agent: &ureq::Agent,
    url: &str,
    writer: &InfluxWriter,
) -> Result<Took, String> {
    let next = AtomicUsize::new(0);
    let (start, cpu_start) = (Instant::now(), cpu_time());
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> Result<(), String> {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(body) = bodies.get(i) else {
                            return Ok(());
                        };
                        match mode {
                            Mode::Raw => {
                                let response = agent
                                    .post(url)
                                    .send(&body[..])
                                    .map_err(|e| format!("raw post: {e}"))?;
                                if response.status().as_u16() != 204 {
                                    return Err(format!("raw post: HTTP {}", response.status()));
                                }
                            }
                            Mode::Writer => {
                                let report = writer.write_batch(DATABASE, body, points);
                                if let Some(retry) = report.retry {
                                    return Err(format!("writer: {}", retry.error));
                                }
                                if report.points_stored != points {
                                    return Err(format!(
                                        "writer stored {} of {points}",
                                        report.points_stored
                                    ));
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().map_err(|_| "worker panicked".to_string())?)
    })?;
    Ok(Took {
        wall: start.elapsed(),
        cpu: cpu_time().saturating_sub(cpu_start),
    })
}

fn main() -> Result<(), String> {
    let args = parse_args()?;
    let config = InfluxSection {
        ip_address: args.host.clone(),
        port: args.port,
        batch_size: args.batch_size.unwrap_or(args.points),
        user: String::new(),
        ..InfluxSection::default()
    };
    let client = InfluxClient::new(&config).map_err(|e| e.to_string())?;
    let version = client.ping().map_err(|e| e.to_string())?;
    client
        .create_database(DATABASE, 0)
        .map_err(|e| e.to_string())?;
    let writer = InfluxWriter::from_config(&config).map_err(|e| e.to_string())?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!(
        "http://{}:{}/write?db={DATABASE}&precision=ms",
        args.host, args.port
    );

    // Create every series first, so no run pays for it.
    let warmup = body(args.points, 0, 0);
    run_once(
        Mode::Raw,
        1,
        std::slice::from_ref(&warmup),
        args.points,
        &agent,
        &url,
        &writer,
    )?;

    println!(
        "InfluxDB {version} at {}:{}; {} batches of {} points per run, writer batch_size {}, {} rounds",
        args.host,
        args.port,
        args.batches,
        args.points,
        config.batch_size,
        args.rounds
    );
    println!(
        "{:>7}  {:>12}  {:>12}  {:>7}  {:>23}  per-round ratios",
        "threads", "raw pts/s", "writer pts/s", "median", "CPU ms/10k raw / writer"
    );
    let mut run = 1;
    let per_run = (args.points * args.batches) as f64;
    for &threads in &args.threads {
        let (mut raw_time, mut writer_time) = (Duration::ZERO, Duration::ZERO);
        let (mut raw_cpu, mut writer_cpu) = (Duration::ZERO, Duration::ZERO);
        let mut ratios = Vec::new();
        for round in 0..args.rounds {
            let order = if round % 2 == 0 {
                [Mode::Raw, Mode::Writer]
            } else {
                [Mode::Writer, Mode::Raw]
            };
            let (mut raw, mut written) = (Duration::ZERO, Duration::ZERO);
            for mode in order {
                let bodies: Vec<Vec<u8>> = (0..args.batches)
                    .map(|b| body(args.points, run, b))
                    .collect();
                run += 1;
                let took = run_once(mode, threads, &bodies, args.points, &agent, &url, &writer)?;
                match mode {
                    Mode::Raw => (raw, raw_cpu) = (took.wall, raw_cpu + took.cpu),
                    Mode::Writer => (written, writer_cpu) = (took.wall, writer_cpu + took.cpu),
                }
            }
            raw_time += raw;
            writer_time += written;
            ratios.push(raw.as_secs_f64() / written.as_secs_f64());
        }
        let total = per_run * args.rounds as f64;
        let (raw, written) = (
            total / raw_time.as_secs_f64(),
            total / writer_time.as_secs_f64(),
        );
        let per_10k = |cpu: Duration| cpu.as_secs_f64() * 1000.0 * 10_000.0 / total;
        let mut sorted = ratios.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        let each: Vec<String> = ratios
            .iter()
            .map(|r| format!("{:.0}%", 100.0 * r))
            .collect();
        println!(
            "{threads:>7}  {raw:>12.0}  {written:>12.0}  {:>6.1}%  {:>11.2} / {:<9.2}  {}",
            100.0 * median,
            per_10k(raw_cpu),
            per_10k(writer_cpu),
            each.join(" ")
        );
    }
    Ok(())
}
