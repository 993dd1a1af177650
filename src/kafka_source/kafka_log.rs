//! What a consumer logs about reaching Kafka. librdkafka reports every
//! failed connection attempt, so with the brokers unreachable it would
//! write an ERROR line about every 100 ms; this logs the first failure,
//! then a summary at most every 30 s, then one line when every broker is
//! connected again (the log policy of `retry`, as for InfluxDB writes).

use std::sync::Mutex;
use std::time::Instant;

use rdkafka::config::RDKafkaLogLevel;

use crate::retry::{FailureLog, LogLine, DEFAULT_SUMMARY_EVERY};

/// The Kafka log of one consumer.
pub struct KafkaLog {
    log: Mutex<FailureLog>,
}

impl KafkaLog {
    /// The log of the consumer of `topic`.
    pub fn new(topic: &str) -> KafkaLog {
        KafkaLog {
            log: Mutex::new(
                FailureLog::new(
                    format!("reaching Kafka for topic {topic}"),
                    DEFAULT_SUMMARY_EVERY,
                )
                .with_note("librdkafka keeps reconnecting; nothing read is lost"),
            ),
        }
    }

    /// A connection-level error from librdkafka (its error callback, or a
    /// log line about a failed connection).
    pub fn failed(&self, error: &str) {
        let line = self.lock().failed(Instant::now(), &error);
        emit(line);
    }

    /// Every broker the client knows is connected (from its statistics).
    pub fn connected(&self) {
        let line = self.lock().succeeded(Instant::now());
        emit(line);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FailureLog> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn emit(line: Option<LogLine>) {
    if let Some(line) = line {
        log::log!(line.level, "{}", line.text);
    }
}

/// True for librdkafka log lines that report a failed connection (facility
/// `FAIL`), which the error callback reports as well.
pub fn is_connection_failure(facility: &str) -> bool {
    facility == "FAIL"
}

/// Any other librdkafka log line, at the level it has (what rdkafka's
/// default log callback does).
pub fn forward(level: RDKafkaLogLevel, facility: &str, message: &str) {
    let level = match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => log::Level::Error,
        RDKafkaLogLevel::Warning => log::Level::Warn,
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => log::Level::Info,
        RDKafkaLogLevel::Debug => log::Level::Debug,
    };
    log::log!(target: "librdkafka", level, "librdkafka: {facility} {message}");
}
