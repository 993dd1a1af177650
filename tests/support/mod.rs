//! Test infrastructure shared by the integration tests: a private `influxd`
//! on a free port, a real Apache Kafka (`scripts/kafka`), librdkafka's mock
//! Kafka cluster, a real OpenSearch (`scripts/opensearch`) and a TCP proxy
//! for network faults. Each test binary uses only part of it, hence the
//! dead-code allowance.
#![allow(dead_code)]

pub mod binary;
pub mod influxd;
pub mod kafka;
pub mod load;
pub mod opensearch;
pub mod persister;
pub mod points;
pub mod real_kafka;
pub mod reference;
pub mod tcp_proxy;

use std::time::{Duration, Instant};

/// Polls `cond` every 20 ms until it returns `Some`, or panics with `what`
/// after `timeout`. Tests synchronise with this, never with bare sleeps.
pub fn wait_for<T>(what: &str, timeout: Duration, mut cond: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = cond() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A TCP port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    let l =
        std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port on 127.0.0.1");
    l.local_addr()
        .expect("local address of ephemeral listener")
        .port()
}

/// The compatibility corpus in the repository (`tests/data/compat/`): messages
/// and what the reference persister stores for them (see its README.md).
pub fn compat_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/compat")
}

/// Routes the library's log lines to the test's captured output (shown on failure).
pub fn init_test_logging() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = fern::Dispatch::new()
            .level(log::LevelFilter::Info)
            .level_for("librdkafka", log::LevelFilter::Warn)
            .format(|out, msg, record| {
                out.finish(format_args!(
                    "{} {} {}",
                    record.level(),
                    record.target(),
                    msg
                ))
            })
            .chain(fern::Output::call(|record| eprintln!("{}", record.args())))
            .apply();
    });
}
