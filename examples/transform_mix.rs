//! The metric transform alone on the end-to-end benchmark's message mix, for
//! counting its instructions with callgrind (no hardware counters on the
//! benchmark VMs, and wall-clock time there is too noisy to compare small
//! changes).
//!
//! The messages are the loadgen's `--hosts 100 --tenants 4
//! --metrics-per-host 20 --value-meta-share 0.1` (the `Workload` defaults,
//! metrics only), made up front; then each goes through
//! `Transformer::metric` into one reused buffer, cleared every megabyte as
//! a batch would be. `--generate-only` makes the same messages and stops
//! there, so that the difference of two runs is the transform's cost:
//!
//! ```text
//! cargo build --release --example transform_mix
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/t.%p \
//!     target/release/examples/transform_mix 100000
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/g.%p \
//!     target/release/examples/transform_mix 100000 --generate-only
//! ```
//!
//! (`Ir` of the first minus `Ir` of the second, over 100 000.) `--criterion`
//! takes the mix of `benches/transform.rs` instead (1 000 messages, cycled).
//! `--db-per-tenant` writes as `[influxdb] db_per_tenant` does. `--dump`
//! writes the lines to stdout, to compare two builds' output byte for byte.

#[path = "../benches/support/loadgen_mix.rs"]
mod loadgen_mix;
#[path = "../benches/support/metric_mix.rs"]
mod metric_mix;

use std::hint::black_box;
use std::io::Write as _;

use monasca_persister::transform::Transformer;

fn main() {
    let mut count: u64 = 100_000;
    let mut generate_only = false;
    let mut criterion = false;
    let mut db_per_tenant = false;
    let mut dump = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--generate-only" => generate_only = true,
            "--criterion" => criterion = true,
            "--db-per-tenant" => db_per_tenant = true,
            "--dump" => dump = true,
            n => count = n.parse().expect("a message count"),
        }
    }
    let messages = if criterion {
        criterion_mix(count)
    } else {
        loadgen_metrics(count)
    };
    if generate_only {
        black_box(&messages);
        return;
    }
    let transformer = Transformer::new("mon", db_per_tenant);
    let mut out = Vec::with_capacity(1 << 21);
    let mut bytes = 0;
    let mut rejected = 0;
    for message in &messages {
        if out.len() > 1 << 20 {
            bytes += out.len();
            if dump {
                std::io::stdout().write_all(&out).expect("stdout");
            }
            out.clear();
        }
        match transformer.metric(black_box(message), &mut out) {
            Ok(target) => {
                black_box(&target);
            }
            Err(_) => rejected += 1,
        }
    }
    bytes += out.len();
    if dump {
        std::io::stdout().write_all(&out).expect("stdout");
    }
    black_box(&out);
    eprintln!(
        "{} messages, {} bytes of lines, {rejected} rejected",
        messages.len(),
        bytes
    );
}

/// The end-to-end benchmark's metrics.
fn loadgen_metrics(count: u64) -> Vec<Vec<u8>> {
    loadgen_mix::messages(count, None)
        .into_iter()
        .map(|message| message.payload)
        .collect()
}

/// `benches/transform.rs`'s metric mix, cycled to `count` messages.
fn criterion_mix(count: u64) -> Vec<Vec<u8>> {
    (0..count as usize)
        .map(|i| metric_mix::metric(i).into_bytes())
        .collect()
}
