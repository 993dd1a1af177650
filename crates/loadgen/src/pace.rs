//! Holding a run to a message rate: message `k` is not sent before
//! `start + k / rate`, so a late start or a stall is caught up at full speed
//! rather than lost, and the average rate stays exact.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Longest single sleep, so that a stop request is noticed promptly.
const MAX_NAP: Duration = Duration::from_millis(50);

/// The schedule of a run.
#[derive(Debug, Clone)]
pub struct Pacer {
    start: Instant,
    per_message: Option<f64>,
}

impl Pacer {
    /// A schedule of `rate` messages per second from now; `None` for as
    /// fast as possible.
    pub fn new(rate: Option<f64>) -> Pacer {
        Pacer {
            start: Instant::now(),
            per_message: rate.filter(|r| *r > 0.0).map(|r| 1.0 / r),
        }
    }

    /// When message `k` (from 0) is due.
    pub fn due(&self, k: u64) -> Option<Instant> {
        self.per_message
            .map(|p| self.start + Duration::from_secs_f64(p * k as f64))
    }

    /// Waits until message `k` is due, or `stop` is set (then false).
    pub fn wait_for(&self, k: u64, stop: &AtomicBool) -> bool {
        let Some(due) = self.due(k) else {
            return !stop.load(Ordering::Relaxed);
        };
        loop {
            if stop.load(Ordering::Relaxed) {
                return false;
            }
            let now = Instant::now();
            if now >= due {
                return true;
            }
            std::thread::sleep((due - now).min(MAX_NAP));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_spaces_messages_and_stop_ends_the_wait() {
        let pacer = Pacer::new(Some(100.0));
        let stop = AtomicBool::new(false);
        let start = Instant::now();
        assert!(pacer.wait_for(5, &stop));
        assert!(start.elapsed() >= Duration::from_millis(45));
        stop.store(true, Ordering::Relaxed);
        assert!(!pacer.wait_for(1_000_000, &stop));
        assert!(Pacer::new(None).due(10).is_none());
    }
}
