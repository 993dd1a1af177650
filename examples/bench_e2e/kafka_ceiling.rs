//! `kafka-ceiling`: a bare consumer with the persister's librdkafka settings
//! and its way of draining them (batches from one queue all partitions
//! forward to) reads N preloaded messages and does nothing with them — what the broker
//! and librdkafka alone deliver on this machine, the other bound (besides
//! InfluxDB's) a persister's throughput is compared with. The time runs from
//! the first message to the N-th; the CPU time is the whole process's, as
//! for the persister, so it shows what librdkafka alone costs per message.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use monasca_loadgen::cli::parse_count;
use monasca_persister::config::Config;
use monasca_persister::kafka_source::client_config;
use monasca_persister::kafka_source::fetch_queue::{Fetched, QueuedConsumer};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

/// Options of `kafka-ceiling`.
#[derive(Debug, clap::Args)]
pub struct KafkaCeilingArgs {
    /// Bootstrap brokers, `host:port`.
    #[arg(long)]
    brokers: String,
    /// Topic the messages are in.
    #[arg(long, default_value = "metrics")]
    topic: String,
    /// Messages to read.
    #[arg(long, value_parser = parse_count)]
    count: u64,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout_seconds: u64,
}

/// Runs `kafka-ceiling`.
pub fn run(args: KafkaCeilingArgs) -> anyhow::Result<()> {
    let mut config = Config::default();
    config.kafka_metrics.uri = vec![args.brokers.clone()];
    config.kafka_metrics.group_id = format!("bench-kafka-ceiling-{}", std::process::id());
    config.kafka_metrics.topic = args.topic.clone();
    let consumer: BaseConsumer = client_config(&config, &config.kafka_metrics, 0)
        .create()
        .with_context(|| format!("creating a consumer for {}", args.brokers))?;
    let owned = QueuedConsumer::new(consumer).context("creating a librdkafka queue")?;
    let (consumer, queue) = (owned.consumer(), owned.queue());
    // Every partition from the start, assigned directly (no group to join):
    // routed to the queue first, as the persister does on assignment.
    let metadata = consumer
        .fetch_metadata(Some(&args.topic), Duration::from_secs(30))
        .with_context(|| format!("reading the metadata of {}", args.topic))?;
    let mut assignment = TopicPartitionList::new();
    for topic in metadata.topics() {
        for partition in topic.partitions() {
            if !queue.route(&args.topic, partition.id()) {
                bail!("routing {}/{} to the queue", args.topic, partition.id());
            }
            assignment
                .add_partition_offset(&args.topic, partition.id(), Offset::Beginning)
                .with_context(|| format!("assigning {}/{}", args.topic, partition.id()))?;
        }
    }
    if assignment.count() == 0 {
        bail!("topic {} has no partitions", args.topic);
    }
    consumer
        .assign(&assignment)
        .with_context(|| format!("assigning the partitions of {}", args.topic))?;
    let deadline = Instant::now() + Duration::from_secs(args.timeout_seconds);
    let mut first: Option<Instant> = None;
    let mut read = 0u64;
    let mut bytes = 0u64;
    let mut buf = Vec::new();
    while read < args.count {
        if Instant::now() > deadline {
            bail!(
                "read {read} of {} messages in {} s",
                args.count,
                args.timeout_seconds
            );
        }
        // Errors and other events come through the consumer queue.
        if let Some(Err(e)) = consumer.poll(Duration::ZERO) {
            eprintln!("bench_e2e kafka-ceiling: {e}");
        }
        queue.drain(
            Duration::from_millis(100),
            1024,
            &mut buf,
            |fetched| match fetched {
                Fetched::Message { payload, .. } => {
                    first.get_or_insert_with(Instant::now);
                    bytes += payload.map_or(0, |p| p.len() as u64);
                    read += 1;
                }
                Fetched::Error { error, .. } => eprintln!("bench_e2e kafka-ceiling: {error}"),
            },
        );
    }
    let seconds = first.map_or(0.0, |t| t.elapsed().as_secs_f64());
    println!("kafka_ceiling_messages={read}");
    println!("kafka_ceiling_bytes={bytes}");
    println!("kafka_ceiling_seconds={seconds:.3}");
    println!(
        "kafka_ceiling_cpu_seconds={:.3}",
        super::watch::cpu_seconds(std::process::id() as i32)
    );
    println!(
        "kafka_ceiling_msgs_per_s={:.0}",
        read as f64 / seconds.max(1e-9)
    );
    Ok(())
}
