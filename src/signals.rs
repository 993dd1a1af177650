//! Stop signals: the first SIGTERM/SIGINT starts a graceful shutdown, a
//! second one exits at once (the WAL is durable, nothing is lost). SIGHUP
//! (log reopening) is handled in `logging`.

use std::sync::Arc;

use anyhow::Context as _;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::pipeline::Control;

/// Exit code of the immediate exit on a second SIGTERM/SIGINT.
pub const SECOND_SIGNAL_EXIT_CODE: i32 = 130;

/// Starts the signal thread.
pub fn install(control: Arc<Control>) -> anyhow::Result<()> {
    let mut signals =
        Signals::new([SIGTERM, SIGINT]).context("installing handlers for SIGTERM and SIGINT")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut stopping = false;
            for sig in signals.forever() {
                match sig {
                    _ if stopping => {
                        log::warn!("second stop signal: exiting now; unwritten records stay in the WAL for the next start");
                        log::logger().flush();
                        std::process::exit(SECOND_SIGNAL_EXIT_CODE);
                    }
                    _ => {
                        stopping = true;
                        log::info!("received {}: stopping consumers, then draining the WAL (send it again to exit at once)", if sig == SIGTERM { "SIGTERM" } else { "SIGINT" });
                        control.stop();
                    }
                }
            }
        })
        .context("spawning the signal thread")?;
    Ok(())
}
