//! Run state shared by every pipeline thread: running or stopping (consumers
//! flush and leave), draining (writers empty the WAL), writers told to give
//! up (drain deadline passed or a fatal error), and the first fatal error.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

/// How long the orderly stop after a fatal error may take before the
/// process exits anyway.
pub const FATAL_EXIT_DEADLINE: Duration = Duration::from_secs(10);

/// The pipeline's run state.
pub struct Control {
    stopping: AtomicBool,
    draining: AtomicBool,
    fatal: Mutex<Option<String>>,
    wake_tx: Sender<()>,
    wake_rx: Receiver<()>,
    // Dropping the sender wakes every writer sleeping in a backoff at once.
    writers_stop_tx: Mutex<Option<Sender<()>>>,
    writers_stop_rx: Receiver<()>,
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
        let (stop_tx, writers_stop_rx) = crossbeam_channel::bounded(0);
        Control {
            stopping: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            fatal: Mutex::new(None),
            wake_tx,
            wake_rx,
            writers_stop_tx: Mutex::new(Some(stop_tx)),
            writers_stop_rx,
        }
    }

    /// Asks consumers to stop fetching, flush and leave their groups.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        let _ = self.wake_tx.try_send(());
    }

    /// True once `stop` (or a fatal error) was requested.
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Consumers are gone: writers finish when the queue is empty.
    pub fn start_drain(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// True once draining began.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Tells writers to give up now; unwritten records stay in the WAL.
    pub fn stop_writers(&self) {
        if let Ok(mut tx) = self.writers_stop_tx.lock() {
            tx.take();
        }
    }

    /// True once writers were told to give up.
    pub fn writers_stopped(&self) -> bool {
        self.writers_stop_tx
            .lock()
            .map(|tx| tx.is_none())
            .unwrap_or(true)
    }

    /// Disconnected once writers must give up: backoff sleeps wait on it.
    pub fn writers_stop_signal(&self) -> &Receiver<()> {
        &self.writers_stop_rx
    }

    /// Records a fatal error (the first one wins) and stops everything.
    /// The orderly stop that follows may take [`FATAL_EXIT_DEADLINE`]; a
    /// watchdog then exits the process with status 1 whatever still runs
    /// (a thread stuck in the disk or in librdkafka).
    pub fn fatal(&self, message: String) {
        if let Ok(mut f) = self.fatal.lock() {
            if f.is_none() {
                log::error!("{message}");
                *f = Some(message);
                let watchdog = std::thread::Builder::new()
                    .name("fatal-exit".into())
                    .spawn(|| {
                        std::thread::sleep(FATAL_EXIT_DEADLINE);
                        log::error!("exiting after a fatal error: the orderly stop did not finish within {FATAL_EXIT_DEADLINE:?}");
                        log::logger().flush();
                        std::process::exit(1);
                    });
                if watchdog.is_err() {
                    log::error!("exiting after a fatal error: cannot start the thread that bounds the orderly stop");
                    log::logger().flush();
                    std::process::exit(1);
                }
            }
        }
        self.stop();
        self.stop_writers();
    }

    /// The fatal error, if one occurred.
    pub fn fatal_error(&self) -> Option<String> {
        self.fatal.lock().ok().and_then(|f| f.clone())
    }

    /// Waits until `stop` or `fatal` is called or `timeout` passes.
    pub fn wait(&self, timeout: Duration) {
        let _ = self.wake_rx.recv_timeout(timeout);
    }
}
