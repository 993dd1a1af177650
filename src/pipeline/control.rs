//! Run state shared by every pipeline thread: running, stopping (consumers
//! flush and leave), draining (writers empty the WAL until a deadline), and
//! the first fatal error, if any.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const RUNNING: u8 = 0;
const STOPPING: u8 = 1;
const ABORTING: u8 = 2;

/// The pipeline's run state.
pub struct Control {
    phase: AtomicU8,
    drain_deadline: Mutex<Option<Instant>>,
    fatal: Mutex<Option<String>>,
    wake_tx: crossbeam_channel::Sender<()>,
    wake_rx: crossbeam_channel::Receiver<()>,
}

impl Default for Control {
    fn default() -> Self {
        Self::new()
    }
}

impl Control {
    /// A running pipeline.
    pub fn new() -> Self {
        let (wake_tx, wake_rx) = crossbeam_channel::bounded(1);
        Control { phase: AtomicU8::new(RUNNING), drain_deadline: Mutex::new(None), fatal: Mutex::new(None), wake_tx, wake_rx }
    }

    /// Asks consumers to stop fetching, flush and leave their groups.
    pub fn stop(&self) {
        let _ = self.phase.compare_exchange(RUNNING, STOPPING, Ordering::AcqRel, Ordering::Acquire);
        let _ = self.wake_tx.try_send(());
    }

    /// True once `stop` (or a fatal error) was requested.
    pub fn stopping(&self) -> bool {
        self.phase.load(Ordering::Acquire) != RUNNING
    }

    /// Gives writers until `timeout` from now to empty the WAL.
    pub fn start_drain(&self, timeout: Duration) {
        if let Ok(mut d) = self.drain_deadline.lock() {
            *d = Some(Instant::now() + timeout);
        }
        let _ = self.wake_tx.try_send(());
    }

    /// The drain deadline once draining began.
    pub fn drain_deadline(&self) -> Option<Instant> {
        self.drain_deadline.lock().ok().and_then(|d| *d)
    }

    /// True when writers should give up now: the drain deadline passed or a fatal error occurred.
    pub fn give_up(&self) -> bool {
        self.phase.load(Ordering::Acquire) == ABORTING || self.drain_deadline().is_some_and(|d| Instant::now() >= d)
    }

    /// Records a fatal error (the first one wins) and stops everything.
    pub fn fatal(&self, message: String) {
        if let Ok(mut f) = self.fatal.lock() {
            if f.is_none() {
                log::error!("{message}");
                *f = Some(message);
            }
        }
        self.phase.store(ABORTING, Ordering::Release);
        let _ = self.wake_tx.try_send(());
    }

    /// The fatal error, if one occurred.
    pub fn fatal_error(&self) -> Option<String> {
        self.fatal.lock().ok().and_then(|f| f.clone())
    }

    /// Waits until `stop`/`fatal`/`start_drain` is called or `timeout` passes.
    pub fn wait(&self, timeout: Duration) {
        let _ = self.wake_rx.recv_timeout(timeout);
    }

    /// Sleeps up to `d`, returning early (false) when the writers must give up.
    pub fn sleep_unless_give_up(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        while Instant::now() < end {
            if self.give_up() {
                return false;
            }
            std::thread::sleep((end - Instant::now()).min(Duration::from_millis(50)));
        }
        !self.give_up()
    }
}
