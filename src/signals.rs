//! Stop signals (SIGTERM, SIGINT), handled from the first instant of
//! `main`: [`install`] runs before the command line is parsed, so a signal
//! at any later moment ends the process in order, never by the signal.
//!
//! What a signal does depends on how far the process got ([`Mode`]):
//! - before the command line is parsed, it is held until it is ([`exit_before_start`]);
//! - while nothing that needs an orderly stop has started (configuration,
//!   logging), the process exits at once with the status the command gives
//!   to that case (the persister: 0; `check-config` and
//!   `migrate-db-per-tenant`: [`INTERRUPTED_EXIT_CODE`]);
//! - once something runs that stops in order (the pipeline, a migration),
//!   the first signal asks it to ([`stop_with`]) and a second one exits at
//!   once with [`SECOND_SIGNAL_EXIT_CODE`] (the WAL and the migration's
//!   state files are consistent at every moment, so nothing is lost).
//!
//! SIGHUP (log reopening) is handled in `logging`.

use std::sync::{Arc, Mutex, MutexGuard};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Exit code of the immediate exit on a second SIGTERM/SIGINT.
pub const SECOND_SIGNAL_EXIT_CODE: i32 = 130;

/// Exit code of `check-config` and `migrate-db-per-tenant` stopped by a
/// signal before they finished.
pub const INTERRUPTED_EXIT_CODE: i32 = 130;

/// What the next stop signal does.
enum Mode {
    /// The command is not known yet: the signal waits for it.
    Unparsed {
        /// The signal that came, if one did.
        pending: Option<i32>,
    },
    /// Nothing to stop in order: exit at once.
    Exit {
        /// The exit status.
        status: i32,
        /// Who is exiting, for the message (`monasca-persister check-config`).
        who: &'static str,
        /// What the exit means, for the message.
        meaning: &'static str,
    },
    /// Something runs that stops in order.
    Stop {
        /// Asks it to stop; called with the signal's name.
        stop: Arc<dyn Fn(&'static str) + Send + Sync>,
        /// A first signal was received.
        stopping: bool,
    },
}

static MODE: Mutex<Mode> = Mutex::new(Mode::Unparsed { pending: None });

fn mode() -> MutexGuard<'static, Mode> {
    MODE.lock().unwrap_or_else(|e| e.into_inner())
}

fn name(signal: i32) -> &'static str {
    if signal == SIGTERM {
        "SIGTERM"
    } else {
        "SIGINT"
    }
}

/// Installs the handlers and the thread that serves them. Call it first
/// thing in `main`; signals arriving before the command is known are held
/// until [`exit_before_start`] says what they mean. Failing to install is
/// fatal for the caller: without it a stop would kill the process.
pub fn install() -> std::io::Result<()> {
    let mut signals = Signals::new([SIGTERM, SIGINT])?;
    unblock()?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                received(signal);
            }
        })?;
    Ok(())
}

/// Unblocks SIGTERM and SIGINT in this thread (and the threads it starts).
///
/// No process can handle a signal that arrives before its first
/// instruction (while the kernel and the dynamic loader set it up, a few
/// milliseconds): it dies by it. A parent that wants an orderly stop at any
/// moment blocks the signals across `exec`; the kernel then holds one that
/// arrives early, and it is delivered here, to the handlers just installed.
/// (systemd does not block them, but counts a death by SIGTERM as a clean
/// stop.)
fn unblock() -> std::io::Result<()> {
    // SAFETY: plain libc calls on a local, initialised signal set; changing
    // the calling thread's mask has no memory-safety effect.
    let result = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, SIGTERM);
        libc::sigaddset(&mut set, SIGINT);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut())
    };
    match result {
        0 => Ok(()),
        errno => Err(std::io::Error::from_raw_os_error(errno)),
    }
}

fn received(signal: i32) {
    let mut mode = mode();
    match &mut *mode {
        Mode::Unparsed { pending } => {
            pending.get_or_insert(signal);
        }
        Mode::Exit {
            status,
            who,
            meaning,
        } => exit_now(*status, &format!("{who}: received {}: {meaning}", name(signal))),
        Mode::Stop { stopping: true, .. } => exit_now(
            SECOND_SIGNAL_EXIT_CODE,
            &format!(
                "second stop signal ({}): exiting now; what is unfinished is resumed at the next start",
                name(signal)
            ),
        ),
        Mode::Stop { stop, stopping } => {
            *stopping = true;
            let stop = stop.clone();
            // The mode lock is released first: `stop` may log and take time.
            drop(mode);
            stop(name(signal));
        }
    }
}

/// Logs `message` (or prints it, before logging is set up) and exits.
fn exit_now(status: i32, message: &str) -> ! {
    if log::max_level() == log::LevelFilter::Off {
        eprintln!("{message}");
    } else {
        if status == 0 {
            log::info!("{message}");
        } else {
            log::warn!("{message}");
        }
        log::logger().flush();
    }
    std::process::exit(status)
}

/// The command is known and nothing that needs an orderly stop runs yet: a
/// stop signal (one already received included) exits at once with `status`,
/// saying `who: received SIGTERM: meaning`.
pub fn exit_before_start(status: i32, who: &'static str, meaning: &'static str) {
    let mut mode = mode();
    let pending = match &*mode {
        Mode::Unparsed { pending } => *pending,
        _ => None,
    };
    *mode = Mode::Exit {
        status,
        who,
        meaning,
    };
    if let Some(signal) = pending {
        exit_now(
            status,
            &format!("{who}: received {}: {meaning}", name(signal)),
        );
    }
}

/// Something that stops in order is starting: from now on the first stop
/// signal calls `stop` with the signal's name and a second one exits at
/// once. A signal received earlier has already ended the process.
pub fn stop_with(stop: impl Fn(&'static str) + Send + Sync + 'static) {
    *mode() = Mode::Stop {
        stop: Arc::new(stop),
        stopping: false,
    };
}

/// Back to exiting at once on a stop signal (the orderly part is over, or
/// never started): see [`exit_before_start`].
pub fn exit_after_stop(status: i32, who: &'static str, meaning: &'static str) {
    exit_before_start(status, who, meaning);
}
