//! Log set-up: lines in the oslo.log layout, through fern, to stderr or to
//! `log_dir/log_file` (append), with a handle that reopens the file so that
//! logrotate can move it away, and a SIGHUP watcher that calls it.
//!
//! `2026-11-21 21:16:25.058 29287 INFO monasca_persister.consumer [-] text`:
//! local time to the millisecond, pid, level, module path with `.` for `::`,
//! and oslo's empty request context `[-]`.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{Level, LevelFilter};

use crate::config::DefaultSection;

/// Dependencies whose DEBUG/INFO output drowns ours: only their warnings
/// and errors are kept, whatever `debug` says.
const QUIET_TARGETS: [&str; 5] = ["ureq", "ureq_proto", "rustls", "mio", "polling"];

/// Logging could not be set up.
///
/// An underlying error is part of the message (a `cause` field, not
/// `source()`), so an `anyhow` chain printed with `{:#}` shows it once.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The log file cannot be opened for appending.
    #[error("cannot open log file {} for appending: {cause}", .path.display())]
    Open {
        /// The file (`log_dir/log_file`).
        path: PathBuf,
        /// Why.
        cause: io::Error,
    },
    /// Another logger was installed first.
    #[error("cannot install the logger: {cause}")]
    Install {
        /// Why.
        cause: log::SetLoggerError,
    },
}

/// The log file, shared by the fern output and every [`LogHandle`].
struct LogFile {
    path: PathBuf,
    state: Mutex<FileState>,
    reopened: Condvar,
}

struct FileState {
    file: File,
    /// Bytes of the record being written: a record reaches the file in one
    /// write at flush, so a reopen never splits it across two files.
    pending: Vec<u8>,
    /// Number of successful reopens.
    generation: u64,
}

impl LogFile {
    fn open(path: &Path) -> io::Result<File> {
        OpenOptions::new().create(true).append(true).open(path)
    }

    fn lock(&self) -> MutexGuard<'_, FileState> {
        // A panic while holding the lock leaves at worst a partial record.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// fern's output: buffers a record, writes it on flush (fern flushes after
/// every record).
struct FileWriter(Arc<LogFile>);

impl Write for FileWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().pending.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut state = self.0.lock();
        let FileState { file, pending, .. } = &mut *state;
        let result = file.write_all(pending);
        pending.clear();
        result
    }
}

/// Handle on the log output, for reopening the log file.
#[derive(Clone)]
pub struct LogHandle {
    file: Option<Arc<LogFile>>,
}

impl fmt::Debug for LogHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogHandle")
            .field("path", &self.path())
            .finish()
    }
}

impl LogHandle {
    /// The log file, when logging to one.
    pub fn path(&self) -> Option<&Path> {
        self.file.as_ref().map(|f| f.path.as_path())
    }

    /// Opens the log file path again (creating it) and sends further lines
    /// there: after logrotate renamed the old file. On failure the old file
    /// stays in use. Nothing to do when logging only to stderr.
    pub fn reopen(&self) -> io::Result<()> {
        let Some(log) = &self.file else {
            return Ok(());
        };
        let file = LogFile::open(&log.path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot reopen log file {}: {e}", log.path.display()),
            )
        })?;
        let mut state = log.lock();
        state.file = file;
        state.generation += 1;
        log.reopened.notify_all();
        Ok(())
    }

    /// How many times the file was reopened.
    pub fn reopen_count(&self) -> u64 {
        self.file.as_ref().map_or(0, |f| f.lock().generation)
    }

    /// Waits until the reopen count exceeds `seen`, at most `timeout`;
    /// true when it did. For tests and the shutdown path.
    pub fn wait_for_reopen(&self, seen: u64, timeout: Duration) -> bool {
        let Some(log) = &self.file else {
            return false;
        };
        let deadline = Instant::now() + timeout;
        let mut state = log.lock();
        while state.generation <= seen {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = match log.reopened.wait_timeout(state, left) {
                Ok((s, _)) => s,
                Err(e) => e.into_inner().0,
            };
        }
        true
    }
}

/// oslo.log's level names (`WARNING`, not `WARN`), which log scrapers match.
fn level_name(level: Level) -> &'static str {
    match level {
        Level::Error => "ERROR",
        Level::Warn => "WARNING",
        Level::Info => "INFO",
        Level::Debug => "DEBUG",
        Level::Trace => "TRACE",
    }
}

/// One record in the oslo layout. Every line of a multi-line message gets
/// the prefix, as oslo.log does, so no line of a message can pass for
/// another record.
fn oslo_line(pid: u32, record: &log::Record, message: &fmt::Arguments) -> String {
    let prefix = format!(
        "{} {pid} {} {} [-] ",
        chrono::Local::now().format("%Y-%m-%d %H:%M:%S%.3f"),
        level_name(record.level()),
        record.target().replace("::", "."),
    );
    let text = message.to_string();
    let text = crate::secrets::mask(&text);
    let mut out = String::with_capacity(prefix.len() + text.len());
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&prefix);
        out.push_str(line.strip_suffix('\r').unwrap_or(line));
    }
    out
}

/// Builds the logger for the `[DEFAULT]` settings without installing it:
/// `dispatch.apply()` installs it; tests use `into_log()`.
pub fn dispatch(settings: &DefaultSection) -> Result<(fern::Dispatch, LogHandle), LoggingError> {
    dispatch_to(settings, Box::new(io::stderr()))
}

/// [`dispatch`] with `console` in place of stderr (where stderr output
/// must share the terminal with a progress bar).
pub fn dispatch_to(
    settings: &DefaultSection,
    console: Box<dyn Write + Send>,
) -> Result<(fern::Dispatch, LogHandle), LoggingError> {
    let level = if settings.debug {
        LevelFilter::Debug
    } else {
        LevelFilter::Info
    };
    let pid = std::process::id();
    let mut dispatch = fern::Dispatch::new()
        .format(move |out, message, record| {
            out.finish(format_args!("{}", oslo_line(pid, record, message)))
        })
        .level(level);
    for target in QUIET_TARGETS {
        dispatch = dispatch.level_for(target, LevelFilter::Warn);
    }
    let mut handle = LogHandle { file: None };
    match settings.log_path() {
        Some(path) => {
            let file = LogFile::open(&path).map_err(|cause| LoggingError::Open {
                path: path.clone(),
                cause,
            })?;
            let log = Arc::new(LogFile {
                path,
                state: Mutex::new(FileState {
                    file,
                    pending: Vec::new(),
                    generation: 0,
                }),
                reopened: Condvar::new(),
            });
            let writer: Box<dyn Write + Send> = Box::new(FileWriter(Arc::clone(&log)));
            dispatch = dispatch.chain(writer);
            if settings.use_stderr {
                dispatch = dispatch.chain(console);
            }
            handle.file = Some(log);
        }
        None => dispatch = dispatch.chain(console),
    }
    Ok((dispatch, handle))
}

/// Installs the logger for the process (once).
pub fn init(settings: &DefaultSection) -> Result<LogHandle, LoggingError> {
    let (dispatch, handle) = dispatch(settings)?;
    dispatch
        .apply()
        .map_err(|cause| LoggingError::Install { cause })?;
    Ok(handle)
}

/// Installs the logger for the process (once), its stderr output going to
/// `console` instead.
pub fn init_with_console(
    settings: &DefaultSection,
    console: Box<dyn Write + Send>,
) -> Result<LogHandle, LoggingError> {
    let (dispatch, handle) = dispatch_to(settings, console)?;
    dispatch
        .apply()
        .map_err(|cause| LoggingError::Install { cause })?;
    Ok(handle)
}

/// The thread that reopens the log file on SIGHUP. Dropping it stops the
/// thread.
pub struct SighupWatcher {
    control: signal_hook::iterator::Handle,
    thread: Option<JoinHandle<()>>,
}

impl SighupWatcher {
    /// Stops watching and waits for the thread to end.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.control.close();
        if let Some(thread) = self.thread.take() {
            // The thread only logs; a panic in it has nothing to propagate.
            let _ = thread.join();
        }
    }
}

impl Drop for SighupWatcher {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Starts a thread that calls [`LogHandle::reopen`] on every SIGHUP and logs
/// the outcome (into the new file, or an error into the old one).
pub fn watch_sighup(handle: LogHandle) -> io::Result<SighupWatcher> {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])?;
    let control = signals.handle();
    let thread = std::thread::Builder::new()
        .name("log-reopen".to_string())
        .spawn(move || {
            for _ in signals.forever() {
                match handle.reopen() {
                    Ok(()) => log::info!("SIGHUP: log file reopened"),
                    Err(e) => log::error!("SIGHUP: {e}; still writing to the old file"),
                }
            }
        })?;
    Ok(SighupWatcher {
        control,
        thread: Some(thread),
    })
}
