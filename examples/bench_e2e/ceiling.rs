//! `ceiling`: the same metric lines the persister would write, posted
//! straight to a fresh InfluxDB database in 10 000-point requests from 2
//! threads — what InfluxDB alone ingests on this machine, the bound any
//! persister's throughput is compared with. The lines are built before the
//! clock starts; the time runs from the first request to the last answer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{bail, Context as _};
use monasca_loadgen::cli::{parse_count, WorkloadArgs};
use monasca_loadgen::{Generator, Limits, Mix, Timestamps};
use monasca_persister::transform::Transformer;

use super::influx::Influx;

/// Options of `ceiling`.
#[derive(Debug, clap::Args)]
pub struct CeilingArgs {
    /// InfluxDB HTTP port on 127.0.0.1.
    #[arg(long)]
    influx_port: u16,
    /// A database that does not exist yet.
    #[arg(long, default_value = "ceiling")]
    database: String,
    /// Metric lines to post.
    #[arg(long, value_parser = parse_count)]
    count: u64,
    /// Writing threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Points per request.
    #[arg(long, default_value_t = 10_000)]
    batch: usize,
    /// The same workload as the load generator's.
    #[command(flatten)]
    workload: WorkloadArgs,
}

/// Runs `ceiling`.
pub fn run(args: CeilingArgs) -> anyhow::Result<()> {
    let workload = args.workload.workload(Mix::MetricsOnly);
    let limits = Limits {
        metrics: Some(args.count),
        alarms: None,
    };
    let mut generator = Generator::new(workload, limits, Timestamps::before_now(args.count))?;
    let transformer = Transformer::new("mon", false);
    let mut bodies = Vec::new();
    let mut body = Vec::with_capacity(args.batch * 256);
    let mut in_body = 0;
    while let Some(message) = generator.next_message() {
        transformer
            .metric(&message.payload, &mut body)
            .context("transform a generated metric")?;
        in_body += 1;
        if in_body == args.batch {
            bodies.push(std::mem::replace(
                &mut body,
                Vec::with_capacity(args.batch * 256),
            ));
            in_body = 0;
        }
    }
    if in_body > 0 {
        bodies.push(body);
    }

    let influx = Influx::new(args.influx_port);
    influx.create_database(&args.database)?;
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let workers: Vec<_> = (0..args.threads.max(1))
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<()> {
                    let agent = Influx::new_agent();
                    while let Some(body) = bodies.get(next.fetch_add(1, Ordering::Relaxed)) {
                        influx.write(&agent, &args.database, body)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for w in workers {
            match w.join() {
                Ok(result) => result?,
                Err(_) => bail!("a writing thread panicked"),
            }
        }
        Ok(())
    })?;
    let seconds = start.elapsed().as_secs_f64();
    let stored = influx.count_points(&args.database)?;
    if stored != args.count {
        bail!(
            "InfluxDB holds {stored} of the {} points posted",
            args.count
        );
    }
    println!("ceiling_points={stored}");
    println!("ceiling_seconds={seconds:.3}");
    println!("ceiling_points_per_s={:.0}", stored as f64 / seconds);
    Ok(())
}
