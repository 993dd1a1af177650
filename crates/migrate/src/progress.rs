//! Showing how far the migration is: on a terminal a progress bar (chunks
//! done of all, the measurement `i/n` being copied, points copied so far);
//! elsewhere nothing here, the log lines say it. Log lines meant for the
//! terminal go through [`Progress::console`] so they print above the bar
//! instead of through it.

use std::io::{self, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The progress display; inert when not on a terminal.
#[derive(Debug, Clone)]
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar on stderr when `show` (stderr is a terminal), else nothing.
    pub fn new(show: bool) -> Progress {
        if !show {
            return Progress { bar: None };
        }
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{elapsed_precise} [{bar:25}] {pos}/{len} chunks, {eta} left, {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(500));
        Progress { bar: Some(bar) }
    }

    /// No display (tests, library callers).
    pub fn hidden() -> Progress {
        Progress { bar: None }
    }

    /// Sets the number of chunks to copy in all.
    pub fn begin(&self, chunks: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(chunks);
        }
    }

    /// The measurement being copied: `index` of `count` (from 1).
    pub fn measurement(&self, index: usize, count: usize, name: &str, points: u64) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!(
                "{points} points copied, measurement {index}/{count} {}",
                shortened(name)
            ));
        }
    }

    /// `chunks` more chunks are done (copied, or given up with their tenant).
    pub fn advance(&self, chunks: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(chunks);
        }
    }

    /// Removes the bar: the summary follows.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    /// A writer to stderr that suspends the bar while a line is printed:
    /// the log's console output.
    pub fn console(&self) -> Box<dyn Write + Send> {
        Box::new(Console {
            bar: self.bar.clone(),
            pending: Vec::new(),
        })
    }
}

/// A measurement name short enough for the bar's line.
fn shortened(name: &str) -> String {
    const SHOWN: usize = 40;
    if name.chars().count() <= SHOWN {
        return format!("{name:?}");
    }
    let head: String = name.chars().take(SHOWN - 1).collect();
    format!("{head:?}…")
}

/// Collects one log record and prints it on flush (the logger flushes after
/// every record) with the bar out of the way.
struct Console {
    bar: Option<ProgressBar>,
    pending: Vec<u8>,
}

impl Write for Console {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let text = std::mem::take(&mut self.pending);
        let print = || {
            let mut stderr = io::stderr().lock();
            stderr.write_all(&text).and_then(|()| stderr.flush())
        };
        match &self.bar {
            Some(bar) => bar.suspend(print),
            None => print(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_are_shortened_for_the_bar() {
        assert_eq!(shortened("cpu.idle"), "\"cpu.idle\"");
        let long = "x".repeat(100);
        let shown = shortened(&long);
        assert!(
            shown.ends_with('…') && shown.chars().count() < 45,
            "{shown}"
        );
    }
}
