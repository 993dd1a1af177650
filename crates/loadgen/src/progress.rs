//! Showing a run's progress: an indicatif bar on a terminal, a plain line
//! every few seconds otherwise (logs, CI), or nothing.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::producer::Deliveries;

/// Interval of the plain progress lines.
const LINE_EVERY: Duration = Duration::from_secs(2);

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// A bar when stderr is a terminal, else plain lines.
    Auto,
    /// Always the bar.
    Bar,
    /// Plain lines on stderr every 2 seconds.
    Lines,
    /// Nothing but the summary.
    Off,
}

enum Display {
    Bar(ProgressBar),
    Lines { last: Instant },
    Off,
}

/// The progress display of one run.
pub struct Progress {
    display: Display,
    total: Option<u64>,
    start: Instant,
}

impl Progress {
    /// A display for a run of `total` messages (`None`: unknown).
    pub fn new(mode: ProgressMode, total: Option<u64>) -> Progress {
        use std::io::IsTerminal;
        let mode = match mode {
            ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Bar,
            ProgressMode::Auto => ProgressMode::Lines,
            m => m,
        };
        let display = match mode {
            ProgressMode::Bar => {
                let bar = match total {
                    Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()),
                    None => ProgressBar::new_spinner(),
                };
                let template = if total.is_some() {
                    "{elapsed_precise} [{wide_bar}] {human_pos}/{human_len} sent, {per_sec} {msg}"
                } else {
                    "{spinner} {elapsed_precise} {human_pos} sent, {per_sec} {msg}"
                };
                if let Ok(style) = ProgressStyle::with_template(template) {
                    bar.set_style(style.progress_chars("=> "));
                }
                Display::Bar(bar)
            }
            ProgressMode::Lines => Display::Lines {
                last: Instant::now(),
            },
            ProgressMode::Auto | ProgressMode::Off => Display::Off,
        };
        Progress {
            display,
            total,
            start: Instant::now(),
        }
    }

    /// Shows `sent` messages queued and the deliveries so far. Cheap enough
    /// to call every few hundred messages.
    pub fn update(&mut self, sent: u64, deliveries: &Deliveries) {
        match &mut self.display {
            Display::Bar(bar) => {
                bar.set_position(sent);
                bar.set_message(status(deliveries));
            }
            Display::Lines { last } => {
                if last.elapsed() >= LINE_EVERY {
                    *last = Instant::now();
                    let elapsed = self.start.elapsed().as_secs_f64();
                    let of = self.total.map(|t| format!("/{t}")).unwrap_or_default();
                    eprintln!(
                        "load: {:.1}s sent {sent}{of} ({:.0}/s) {}",
                        elapsed,
                        sent as f64 / elapsed.max(1e-9),
                        status(deliveries)
                    );
                }
            }
            Display::Off => {}
        }
    }

    /// Ends the display (the bar stays on screen).
    pub fn finish(&mut self) {
        if let Display::Bar(bar) = &self.display {
            bar.abandon();
        }
    }
}

fn status(d: &Deliveries) -> String {
    let mut s = format!("acked {} failed {}", d.acked, d.failed);
    if d.acked == 0 {
        if let Some(e) = &d.client_error {
            s.push_str(&format!(" (Kafka: {e})"));
        }
    }
    s
}
