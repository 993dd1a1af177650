//! Retrying an operation that fails for reasons outside the data (InfluxDB
//! down, timing out, refusing credentials): capped exponential backoff with
//! full jitter, a sleep that shutdown can cut short, and a log
//! policy that says what is going on without a line per attempt — the first
//! failure at WARN, then a summary at most every `summary_every`, then one
//! INFO line on recovery.

use std::fmt::Display;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::config::InfluxSection;

/// How often a persisting failure is summarised in the log.
pub const DEFAULT_SUMMARY_EVERY: Duration = Duration::from_secs(30);

/// Capped exponential backoff with full jitter: the n-th delay in a row is
/// drawn uniformly from `[initial, min(max, initial × 2ⁿ)]`. The ceiling
/// doubles per failure, so an outage is soon probed only every `max` or so,
/// and writers that failed together do not retry together. (Decorrelated
/// jitter was tried and rejected: its delays drift up so slowly — about
/// ×1.1 per step in the median — that it seldom reaches the cap.)
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
    rng: fastrand::Rng,
}

impl Backoff {
    /// A backoff starting at `initial` and never above `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self::with_rng(initial, max, fastrand::Rng::new())
    }

    /// The same with a given random source (for reproducible tests).
    pub fn with_rng(initial: Duration, max: Duration, rng: fastrand::Rng) -> Self {
        let initial = initial.max(Duration::from_millis(1));
        let max = max.max(initial);
        Backoff {
            initial,
            max,
            attempt: 0,
            rng,
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let low = self.initial.as_millis() as u64;
        let ceiling = low
            .saturating_mul(1u64 << self.attempt.min(32))
            .min(self.max.as_millis() as u64);
        self.attempt = self.attempt.saturating_add(1);
        Duration::from_millis(self.rng.u64(low..=ceiling.max(low)))
    }

    /// Starts again from `initial` (after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// Sleeps for `delay` unless `stop` receives a message or is disconnected
/// first. Returns false when stopped. Dropping the sender side wakes every
/// sleeper at once, which is how shutdown should use it.
pub fn sleep_unless_stopped(delay: Duration, stop: &Receiver<()>) -> bool {
    match stop.recv_timeout(delay) {
        Err(RecvTimeoutError::Timeout) => true,
        Ok(()) | Err(RecvTimeoutError::Disconnected) => false,
    }
}

/// A log line the failure log wants written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Its level.
    pub level: log::Level,
    /// Its text.
    pub text: String,
}

/// The log policy on its own, with the clock passed in so it can be tested.
#[derive(Debug, Clone)]
pub struct FailureLog {
    what: String,
    /// What happens meanwhile, said in the first line.
    note: String,
    summary_every: Duration,
    failing_since: Option<Instant>,
    failures: u64,
    last_logged: Option<Instant>,
}

impl FailureLog {
    /// A log for the operation described by `what` (e.g. `writing to InfluxDB`).
    pub fn new(what: impl Into<String>, summary_every: Duration) -> Self {
        FailureLog {
            what: what.into(),
            note: "keeping the data and retrying with backoff".to_string(),
            summary_every,
            failing_since: None,
            failures: 0,
            last_logged: None,
        }
    }

    /// Replaces what the first line says happens meanwhile ("keeping the
    /// data and retrying with backoff").
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = note.into();
        self
    }

    /// Records a failure at `now`; returns the line to log, if any.
    pub fn failed(&mut self, now: Instant, error: &dyn Display) -> Option<LogLine> {
        self.failures += 1;
        let since = *self.failing_since.get_or_insert(now);
        if self.failures == 1 {
            self.last_logged = Some(now);
            return Some(LogLine {
                level: log::Level::Warn,
                text: format!("{} failed, {}: {error}", self.what, self.note),
            });
        }
        if self
            .last_logged
            .is_some_and(|t| now.duration_since(t) < self.summary_every)
        {
            return None;
        }
        self.last_logged = Some(now);
        Some(LogLine {
            level: log::Level::Warn,
            text: format!(
                "{} still failing after {} retries over {:.0} s: {error}",
                self.what,
                self.failures - 1,
                now.duration_since(since).as_secs_f64()
            ),
        })
    }

    /// Records a success at `now`; returns the recovery line after failures.
    pub fn succeeded(&mut self, now: Instant) -> Option<LogLine> {
        let since = self.failing_since.take()?;
        let retries = std::mem::take(&mut self.failures).saturating_sub(1);
        self.last_logged = None;
        Some(LogLine {
            level: log::Level::Info,
            text: format!(
                "{} recovered after {retries} retries ({:.1} s of failures)",
                self.what,
                now.duration_since(since).as_secs_f64()
            ),
        })
    }

    /// Consecutive failures so far (0 when the last attempt succeeded).
    pub fn failures(&self) -> u64 {
        self.failures
    }

    /// When the current run of failures began.
    pub fn failing_since(&self) -> Option<Instant> {
        self.failing_since
    }
}

/// Backoff, interruptible sleep and the log policy together: what a writer
/// thread keeps per target between attempts.
#[derive(Debug, Clone)]
pub struct Retry {
    backoff: Backoff,
    log: FailureLog,
}

impl Retry {
    /// A retry policy for `what`, from `initial` to `max` between attempts.
    pub fn new(what: impl Into<String>, initial: Duration, max: Duration) -> Self {
        Retry {
            backoff: Backoff::new(initial, max),
            log: FailureLog::new(what, DEFAULT_SUMMARY_EVERY),
        }
    }

    /// The policy from `[influxdb] retry_initial_ms` and `retry_max_ms`.
    pub fn from_config(what: impl Into<String>, config: &InfluxSection) -> Self {
        Self::new(
            what,
            Duration::from_millis(config.retry_initial_ms),
            Duration::from_millis(config.retry_max_ms),
        )
    }

    /// Replaces how often a persisting failure is summarised.
    pub fn with_summary_every(mut self, every: Duration) -> Self {
        self.log.summary_every = every;
        self
    }

    /// Records a failure (logging per the policy) and returns the delay
    /// before the next attempt.
    pub fn failed(&mut self, error: &dyn Display) -> Duration {
        if let Some(line) = self.log.failed(Instant::now(), error) {
            log::log!(line.level, "{}", line.text);
        }
        self.backoff.next_delay()
    }

    /// Records a failure and sleeps the backoff delay; false when `stop`
    /// fired during the sleep (give up and keep the data).
    pub fn wait(&mut self, error: &dyn Display, stop: &Receiver<()>) -> bool {
        let delay = self.failed(error);
        sleep_unless_stopped(delay, stop)
    }

    /// Records a success: logs the recovery after failures, resets the backoff.
    pub fn succeeded(&mut self) {
        if let Some(line) = self.log.succeeded(Instant::now()) {
            log::log!(line.level, "{}", line.text);
        }
        self.backoff.reset();
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u64 {
        self.log.failures()
    }

    /// When the current run of failures began (for health reporting).
    pub fn failing_since(&self) -> Option<Instant> {
        self.log.failing_since()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff(seed: u64) -> Backoff {
        Backoff::with_rng(
            Duration::from_millis(100),
            Duration::from_secs(30),
            fastrand::Rng::with_seed(seed),
        )
    }

    #[test]
    fn delays_stay_between_initial_and_cap_and_reach_the_cap() {
        for seed in 0..50 {
            let mut b = backoff(seed);
            let delays: Vec<Duration> = (0..40).map(|_| b.next_delay()).collect();
            assert!(
                delays
                    .iter()
                    .all(|d| *d >= Duration::from_millis(100) && *d <= Duration::from_secs(30)),
                "{delays:?}"
            );
            assert_eq!(delays[0], Duration::from_millis(100), "first delay");
            assert!(
                delays[1] <= Duration::from_millis(200),
                "second delay {:?}",
                delays[1]
            );
            assert!(
                delays.iter().any(|d| *d >= Duration::from_secs(10)),
                "never grew: {delays:?}"
            );
        }
    }

    #[test]
    fn delays_grow_on_average() {
        let mut total_early = Duration::ZERO;
        let mut total_late = Duration::ZERO;
        for seed in 0..200 {
            let mut b = backoff(seed);
            let d: Vec<Duration> = (0..6).map(|_| b.next_delay()).collect();
            total_early += d[0];
            total_late += d[5];
        }
        assert!(
            total_late > total_early * 5,
            "early {total_early:?} late {total_late:?}"
        );
    }

    #[test]
    fn jitter_spreads_writers_that_failed_together() {
        let third: Vec<Duration> = (0..20)
            .map(|seed| {
                let mut b = backoff(seed);
                b.next_delay();
                b.next_delay();
                b.next_delay()
            })
            .collect();
        let mut distinct = third.clone();
        distinct.sort();
        distinct.dedup();
        assert!(distinct.len() > 15, "{third:?}");
    }

    #[test]
    fn reset_starts_again_from_initial() {
        let mut b = backoff(7);
        for _ in 0..30 {
            b.next_delay();
        }
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }

    #[test]
    fn a_cap_below_initial_is_raised_to_it() {
        let mut b = Backoff::with_rng(
            Duration::from_millis(500),
            Duration::from_millis(10),
            fastrand::Rng::with_seed(1),
        );
        assert_eq!(b.next_delay(), Duration::from_millis(500));
    }

    #[test]
    fn logs_first_failure_then_summaries_then_recovery() {
        let t0 = Instant::now();
        let mut log = FailureLog::new("writing to InfluxDB", Duration::from_secs(30));
        let first = log
            .failed(t0, &"connection refused")
            .expect("first failure is logged");
        assert_eq!(first.level, log::Level::Warn);
        assert!(
            first.text.contains("writing to InfluxDB failed")
                && first.text.contains("connection refused"),
            "{}",
            first.text
        );
        for i in 1..100 {
            assert_eq!(
                log.failed(t0 + Duration::from_millis(250 * i), &"connection refused"),
                None,
                "retry {i} logged"
            );
        }
        let summary = log
            .failed(t0 + Duration::from_secs(31), &"timed out")
            .expect("summary after 30 s");
        assert!(
            summary
                .text
                .contains("still failing after 100 retries over 31 s: timed out"),
            "{}",
            summary.text
        );
        assert_eq!(log.failed(t0 + Duration::from_secs(40), &"x"), None);
        assert!(log.failed(t0 + Duration::from_secs(62), &"x").is_some());
        assert_eq!(log.failures(), 103);
        let recovered = log
            .succeeded(t0 + Duration::from_secs(65))
            .expect("recovery is logged");
        assert_eq!(recovered.level, log::Level::Info);
        assert!(
            recovered
                .text
                .contains("recovered after 102 retries (65.0 s of failures)"),
            "{}",
            recovered.text
        );
        assert_eq!(log.failures(), 0);
        assert_eq!(
            log.succeeded(t0 + Duration::from_secs(66)),
            None,
            "no recovery line without failures"
        );
        assert!(log
            .failed(t0 + Duration::from_secs(67), &"again")
            .expect("new run")
            .text
            .contains("failed, keeping"));
    }

    #[test]
    fn sleep_is_cut_short_by_a_message_or_a_dropped_sender() {
        let (tx, rx) = crossbeam_channel::bounded::<()>(1);
        tx.send(()).expect("send");
        let start = Instant::now();
        assert!(!sleep_unless_stopped(Duration::from_secs(30), &rx));
        drop(tx);
        assert!(!sleep_unless_stopped(Duration::from_secs(30), &rx));
        assert!(start.elapsed() < Duration::from_secs(5));
        let (_tx, rx) = crossbeam_channel::bounded::<()>(1);
        assert!(sleep_unless_stopped(Duration::from_millis(10), &rx));
    }

    #[test]
    fn a_stopped_wait_returns_false_at_once_and_counts_the_failure() {
        let mut retry = Retry::new("writing", Duration::from_secs(20), Duration::from_secs(30));
        let (tx, rx) = crossbeam_channel::unbounded::<()>();
        drop(tx);
        let start = Instant::now();
        assert!(!retry.wait(&"down", &rx));
        assert!(start.elapsed() < Duration::from_secs(5));
        assert_eq!(retry.failures(), 1);
        assert!(retry.failing_since().is_some());
        retry.succeeded();
        assert_eq!(retry.failures(), 0);
    }
}
