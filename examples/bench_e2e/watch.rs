//! `watch`: a persister is running (started by the script just before);
//! wait until N points are queryable and report the timeline, CPU time and
//! peak memory of its process tree.
//!
//! With `--metrics-url` (our persister's /metrics), the start is the first
//! consumed message and the end the persister's own
//! `last_write_success_timestamp_seconds` once `points_written_total`
//! reached N, confirmed by a count query (InfluxDB answered 204 for those
//! points, so they were queryable then). Without it (another implementation), start and
//! end come from polling `SELECT count(...)` every `--count-interval-ms`:
//! the start is the first poll that sees a point, the end the first that
//! sees all N, so both are late by up to one interval.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};

use super::influx::Influx;

/// Options of `watch`.
#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// InfluxDB HTTP port on 127.0.0.1.
    #[arg(long)]
    influx_port: u16,
    /// Database the points go to.
    #[arg(long, default_value = "mon")]
    database: String,
    /// Points to wait for.
    #[arg(long)]
    expect: u64,
    /// The persister's process id (its descendants count too).
    #[arg(long)]
    pid: i32,
    /// Prometheus endpoint of the persister, if it has one.
    #[arg(long)]
    metrics_url: Option<String>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout_seconds: u64,
    /// Interval of count queries when there is no /metrics.
    #[arg(long, default_value_t = 250)]
    count_interval_ms: u64,
}

/// Sums of the `monasca_persister_*` counters that tell progress.
#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    consumed: u64,
    written: u64,
    /// Unix time of the last accepted write (0: none, or no such gauge).
    last_write_s: f64,
}

fn scrape(agent: &ureq::Agent, url: &str) -> Option<Counters> {
    let mut response = agent
        .get(url)
        .config()
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .call()
        .ok()?;
    if response.status().as_u16() != 200 {
        return None;
    }
    let text = response.body_mut().read_to_string().ok()?;
    let mut c = Counters::default();
    let mut seen = false;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let name = line.split(['{', ' ']).next().unwrap_or_default();
        let exact = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        let value = exact as u64;
        match name {
            "monasca_persister_last_write_success_timestamp_seconds" => c.last_write_s = exact,
            "monasca_persister_messages_consumed_total" => {
                c.consumed += value;
                seen = true;
            }
            "monasca_persister_points_written_total" => {
                c.written += value;
                seen = true;
            }
            _ => {}
        }
    }
    seen.then_some(c)
}

/// One process's line of /proc/<pid>/stat, split after the command name.
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &text[text.rfind(')')? + 1..];
    Some(after.split_whitespace().map(str::to_string).collect())
}

fn alive(pid: i32) -> bool {
    stat_fields(pid).is_some_and(|f| f.first().is_some_and(|state| state != "Z" && state != "X"))
}

/// `pid` and all its live descendants.
fn process_tree(pid: i32) -> Vec<i32> {
    let mut parents: Vec<(i32, i32)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(p) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            if let Some(ppid) = stat_fields(p).and_then(|f| f.get(1)?.parse::<i32>().ok()) {
                parents.push((p, ppid));
            }
        }
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    tree
}

/// User + system CPU seconds of one process.
pub fn cpu_seconds(pid: i32) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    stat_fields(pid)
        .map(|f| {
            let field = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            // utime and stime are fields 14 and 15; the slice starts at field 3.
            (field(11) + field(12)) / ticks
        })
        .unwrap_or(0.0)
}

/// Peak resident set (VmHWM) of one process, in KiB.
fn peak_rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Runs `watch`.
pub fn run(args: WatchArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    let start_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_secs_f64();
    let deadline = start + Duration::from_secs(args.timeout_seconds);
    let influx = Influx::new(args.influx_port);
    let agent = Influx::new_agent();
    let count_every = Duration::from_millis(args.count_interval_ms);
    let mut first_consumed: Option<Duration> = None;
    let mut first_queryable: Option<Duration> = None;
    let mut all_written: Option<Duration> = None;
    let mut last_count: Option<Instant> = None;
    let mut last_shown = Instant::now();
    let mut counters = Counters::default();
    let mut metrics_seen = false;
    let mut queryable = 0;
    let (end, points) = loop {
        if Instant::now() > deadline {
            bail!(
                "timed out after {}s: {} of {} points queryable",
                args.timeout_seconds,
                influx.count_points(&args.database).unwrap_or(0),
                args.expect
            );
        }
        if !alive(args.pid) {
            bail!(
                "the persister (pid {}) exited before all points were queryable",
                args.pid
            );
        }
        if let Some(url) = &args.metrics_url {
            if let Some(c) = scrape(&agent, url) {
                metrics_seen = true;
                counters = c;
                if c.consumed > 0 && first_consumed.is_none() {
                    first_consumed = Some(start.elapsed());
                }
                if c.written > 0 && first_queryable.is_none() {
                    first_queryable = Some(start.elapsed());
                }
                if c.written >= args.expect && all_written.is_none() {
                    all_written = Some(start.elapsed());
                }
            }
        }
        // With /metrics, count only once the persister says it wrote all.
        let want_count = !metrics_seen || all_written.is_some();
        if want_count && last_count.is_none_or(|t| t.elapsed() >= count_every) {
            last_count = Some(Instant::now());
            let n = influx
                .count_points(&args.database)
                .context("count the points in InfluxDB")?;
            queryable = n;
            if n > 0 && first_queryable.is_none() {
                first_queryable = Some(start.elapsed());
            }
            if n >= args.expect {
                // The counter is raised just before the timestamp is set, so
                // this scrape (after the count) sees the last write's time.
                let written_at = args
                    .metrics_url
                    .as_ref()
                    .and_then(|url| scrape(&agent, url))
                    .map(|c| c.last_write_s - start_unix)
                    .filter(|s| *s > 0.0)
                    .map(Duration::from_secs_f64);
                break (
                    written_at
                        .or(all_written)
                        .unwrap_or_else(|| start.elapsed()),
                    n,
                );
            }
        }
        if last_shown.elapsed() >= Duration::from_secs(2) {
            last_shown = Instant::now();
            if metrics_seen {
                eprintln!(
                    "bench: {:.0}s consumed {} written {} of {}",
                    start.elapsed().as_secs_f64(),
                    counters.consumed,
                    counters.written,
                    args.expect
                );
            } else {
                eprintln!(
                    "bench: {:.0}s queryable {queryable} of {}",
                    start.elapsed().as_secs_f64(),
                    args.expect
                );
            }
        }
        // Each scrape costs the persister 0.15-0.3 ms of CPU (its HTTP
        // threads, the kernel): every 50 ms throughout, that was 2-3 % of the
        // CPU it is judged on. The start needs the fine interval; the end
        // comes from the persister's timestamp of its last write, so once
        // it consumes, a coarse one does.
        let pause = match (metrics_seen, first_consumed) {
            (false, _) => 25,
            (true, None) => 50,
            (true, Some(_)) => 200,
        };
        std::thread::sleep(Duration::from_millis(pause));
    };
    let tree = process_tree(args.pid);
    let cpu: f64 = tree.iter().map(|p| cpu_seconds(*p)).sum();
    let rss: u64 = tree.iter().map(|p| peak_rss_kib(*p)).sum();
    let secs = |d: Option<Duration>| {
        d.map(|d| format!("{:.3}", d.as_secs_f64()))
            .unwrap_or_default()
    };
    println!("source={}", if metrics_seen { "metrics" } else { "count" });
    println!("first_consumed_s={}", secs(first_consumed));
    println!("first_queryable_s={}", secs(first_queryable));
    println!("all_queryable_s={:.3}", end.as_secs_f64());
    println!("points={points}");
    println!("consumed={}", counters.consumed);
    println!("cpu_seconds={cpu:.3}");
    println!("peak_rss_kib={rss}");
    println!("processes={}", tree.len());
    Ok(())
}
