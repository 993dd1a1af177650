//! Power loss, not only SIGKILL: the WAL lives on `faultfs`, a FUSE mount
//! that drops every write, creation, rename and unlink that was not made
//! durable (fsync of the file, or of its directory for names) when the test
//! cuts the power. The helper appends numbered batches with fsync from
//! several threads and reports each durable one; we SIGKILL it at a random
//! moment, cut the power (half the cuts drop everything unsynced, half keep
//! a random, reordered and torn part of it, as a disk that wrote some of
//! its cache), remount, reopen, and check that every reported append is
//! there, intact, never partial, and that the WAL reported no damage (a
//! power cut is not damage).

use faultfs::{Cut, FaultFs};
use wal::{Wal, WalOptions};

mod common {
    #[path = "survivors.rs"]
    pub mod survivors;
    #[path = "workload.rs"]
    pub mod workload;
}
use common::survivors::{append_then_kill, check, Reported};

/// Power cuts per run.
const ROUNDS: u32 = 25;

/// Appending threads of the helper.
const THREADS: u64 = 3;

/// Segments this small make the WAL start and delete segment files (and
/// move pending records forward) many times per round.
const SEGMENT_BYTES: u64 = 256 << 10;

#[test]
fn power_loss_at_random_moments_never_loses_a_reported_append() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut fs = FaultFs::mount(tmp.path().join("backing"), tmp.path().join("mnt"))
        .expect("mount faultfs (needs /dev/fuse; scripts/test installs Debian's fuse3)");
    let dir = fs.path().join("wal");
    let seed = fastrand::u64(..);
    eprintln!("seed {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut reported = Reported::new();
    let mut rounds = 0;
    let (mut pages_lost, mut pages_kept, mut entries_reverted) = (0, 0, 0);
    let (mut file_syncs, mut dir_syncs) = (0, 0);
    // A fixed number of rounds, not a time budget: a loaded machine runs
    // them more slowly, never fewer of them.
    while rounds < ROUNDS {
        rounds += 1;
        let cut = if rounds % 2 == 0 {
            Cut::DropUnsynced
        } else {
            Cut::Reorder { seed: rng.u64(..) }
        };
        let ctx = format!("round {rounds} ({cut:?}), seed {seed}");
        append_then_kill(
            &dir,
            THREADS,
            SEGMENT_BYTES,
            rng.u32(1..40),
            &mut reported,
            &ctx,
        );
        let stats = fs.stats();
        file_syncs += stats.file_syncs;
        dir_syncs += stats.dir_syncs;
        let report = fs.power_cut(cut).expect("power cut");
        pages_lost += report.pages_lost;
        pages_kept += report.pages_kept;
        entries_reverted += report.entries_reverted;
        let opts = WalOptions {
            segment_bytes: SEGMENT_BYTES,
            reclaim_threshold_bytes: 4 * SEGMENT_BYTES,
            ..WalOptions::default()
        };
        let wal = Wal::open(&dir, opts)
            .unwrap_or_else(|e| panic!("{ctx}: reopen after the power cut: {e}"));
        assert_eq!(wal.quarantined(), 0, "{ctx}: a power cut is not damage");
        check(&wal, &reported, THREADS, &ctx);
    }
    eprintln!(
        "{rounds} power cuts, {} batches reported, {file_syncs} file and {dir_syncs} directory syncs; the cuts dropped {pages_lost} unsynced pages (kept {pages_kept}) and reverted {entries_reverted} directory changes",
        reported.len()
    );
    assert!(pages_lost > 0, "the cuts never hit unsynced data");
    assert!(
        dir_syncs > 4 * rounds as u64,
        "segments were rarely started or deleted ({dir_syncs} directory syncs)"
    );
}
