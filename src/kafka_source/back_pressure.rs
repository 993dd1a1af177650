//! A consumer's back-pressure: its assignment paused while the WAL is over
//! `[wal] max_size_mb` (until it is back below 80 % of it) or the disk of
//! the WAL or the dead letters has no room, resumed when neither holds. The
//! consumer keeps polling while paused, so it keeps its group membership.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};

use crate::pipeline::disk_space::DiskSpace;
use crate::stats::Stats;

/// What back-pressure looks at: the WAL's size and the disks' room.
#[derive(Clone, Copy)]
pub struct WalRoom<'a> {
    /// The durable log.
    pub wal: &'a wal::Wal,
    /// Back-pressure ends when the WAL is down to this many bytes.
    pub low_water_bytes: u64,
    /// Room on the disks of the WAL and the dead letters.
    pub disk_space: &'a DiskSpace,
}

/// Whether a consumer's assignment is paused, and why.
#[derive(Default)]
pub struct BackPressure {
    /// Partitions paused (WAL back-pressure or a full disk).
    paused: Mutex<bool>,
    /// The WAL went over its limit and is not yet back below its low-water mark.
    wal_over_limit: AtomicBool,
}

impl BackPressure {
    /// Whether the assignment is paused now: partitions assigned meanwhile
    /// are paused too.
    pub fn is_paused(&self) -> bool {
        self.paused.lock().is_ok_and(|p| *p)
    }

    /// Pauses the assignment while the WAL is over its limit (until it is
    /// below 80 % of it) or its disk has no room; resumes when neither holds.
    pub fn apply<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        topic: &str,
        wal: &WalRoom<'_>,
        stats: &Stats,
    ) {
        let Ok(mut paused) = self.paused.lock() else {
            return;
        };
        let WalRoom {
            wal,
            low_water_bytes,
            disk_space,
        } = *wal;
        let over_limit = if self.wal_over_limit.load(Ordering::Relaxed) {
            wal.pending_bytes() > low_water_bytes
        } else {
            wal.over_limit()
        };
        self.wal_over_limit.store(over_limit, Ordering::Relaxed);
        let disk_full = disk_space.is_full();
        let pause = over_limit || disk_full;
        if pause == *paused {
            return;
        }
        let Ok(a) = consumer.assignment() else { return };
        let done = if pause {
            consumer.pause(&a)
        } else {
            consumer.resume(&a)
        };
        if done.is_err() {
            return;
        }
        *paused = pause;
        let gauge = &stats.paused_consumers;
        if !pause {
            gauge.fetch_sub(1, Ordering::Relaxed);
            log::info!(
                "WAL at {} bytes with room on its disk: resuming {} partition(s) of {}",
                wal.pending_bytes(),
                a.count(),
                topic
            );
            return;
        }
        gauge.fetch_add(1, Ordering::Relaxed);
        if disk_full {
            log::warn!("no room on the WAL's disk: pausing {} partition(s) of {} (the group membership is kept) until space is freed", a.count(), topic);
        } else {
            log::warn!("WAL holds {} bytes, over its limit: pausing {} partition(s) of {} until InfluxDB catches up", wal.pending_bytes(), a.count(), topic);
        }
    }
}
