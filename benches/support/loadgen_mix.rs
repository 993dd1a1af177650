//! The load generator's traffic for the transform's measuring examples
//! (`examples/transform_mix.rs`, `examples/transform_tiers.rs`): the
//! `Workload` defaults, with fixed timestamps (13 digits, as now) so that
//! every run sees the same bytes.

use monasca_loadgen::{Generator, Limits, Message, Timestamps, Workload};

/// `metrics` metric messages and then `alarms` alarm transitions.
pub fn messages(metrics: u64, alarms: Option<u64>) -> Vec<Message> {
    let limits = Limits {
        metrics: Some(metrics),
        alarms,
    };
    let mut generator = Generator::new(
        Workload::default(),
        limits,
        Timestamps::sequence(1_700_000_000_000),
    )
    .expect("the default workload is valid");
    std::iter::from_fn(|| generator.next_message()).collect()
}
