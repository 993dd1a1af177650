//! When a load run ends early, and when the embedded broker stops serving:
//! SIGINT or SIGTERM (a second one exits at once), or the end of standard
//! input when that is a pipe or a terminal — so a parent that dies or closes
//! the pipe never leaves a broker behind, while `</dev/null` (a background
//! job in a script) does not stop it.

use std::io::{IsTerminal, Read};
use std::os::unix::fs::FileTypeExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use signal_hook::consts::{SIGINT, SIGTERM};

/// Why serving ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// SIGINT or SIGTERM.
    Signal,
    /// Standard input reached end-of-file.
    StdinClosed,
}

/// Set once a stop was requested.
#[derive(Clone)]
pub struct StopFlags {
    signal: Arc<AtomicBool>,
    stdin_closed: Arc<AtomicBool>,
}

impl StopFlags {
    /// Installs the SIGINT/SIGTERM handlers: the first signal sets the flag,
    /// a second one exits with status 130 at once.
    pub fn install() -> std::io::Result<StopFlags> {
        let signal = Arc::new(AtomicBool::new(false));
        for sig in [SIGINT, SIGTERM] {
            // Registered first, so it sees the flag as it was before this signal.
            signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&signal))?;
            signal_hook::flag::register(sig, Arc::clone(&signal))?;
        }
        Ok(StopFlags {
            signal,
            stdin_closed: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The flag a signal sets (for loops that only stop on signals).
    pub fn signal(&self) -> &AtomicBool {
        &self.signal
    }

    /// Watches standard input for end-of-file, when it is a pipe or a
    /// terminal; returns whether it does.
    pub fn watch_stdin(&self) -> bool {
        let stdin = std::io::stdin();
        let watchable = stdin.is_terminal()
            || std::fs::metadata("/dev/stdin")
                .map(|m| m.file_type().is_fifo() || m.file_type().is_socket())
                .unwrap_or(false);
        if !watchable {
            return false;
        }
        let closed = Arc::clone(&self.stdin_closed);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut input = std::io::stdin().lock();
            loop {
                match input.read(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
            closed.store(true, Ordering::Relaxed);
        });
        true
    }

    /// The reason to stop, if any yet.
    pub fn reason(&self) -> Option<StopReason> {
        if self.signal.load(Ordering::Relaxed) {
            Some(StopReason::Signal)
        } else if self.stdin_closed.load(Ordering::Relaxed) {
            Some(StopReason::StdinClosed)
        } else {
            None
        }
    }

    /// Blocks until a signal arrives or the watched stdin closes.
    pub fn wait(&self) -> StopReason {
        loop {
            if let Some(reason) = self.reason() {
                return reason;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
