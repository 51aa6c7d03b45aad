//! Progress on stderr: indicatif bars on a terminal, otherwise one plain line
//! per second so logs and CI output stay readable.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Seconds between plain progress lines.
const PLAIN_INTERVAL: Duration = Duration::from_secs(1);

/// One phase's progress display.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    name: &'static str,
    total: u64,
    last_line: Instant,
}

impl Progress {
    /// Starts showing a phase of `total` steps.
    pub fn start(name: &'static str, total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            let style = ProgressStyle::with_template(
                "{prefix:>9} [{elapsed_precise}] {bar:40.cyan/blue} {pos:>7}/{len:7} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_prefix(name);
            bar
        });
        Self {
            bar,
            name,
            total,
            last_line: Instant::now(),
        }
    }

    /// Shows the current position and a short status.
    pub fn update(&mut self, position: u64, status: impl FnOnce() -> String) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(position);
                bar.set_message(status());
            }
            None if self.last_line.elapsed() >= PLAIN_INTERVAL => {
                self.last_line = Instant::now();
                eprintln!(
                    "loadgen: {} {position}/{} {}",
                    self.name,
                    self.total,
                    status()
                );
            }
            None => {}
        }
    }

    /// Ends the phase with a closing status.
    pub fn finish(self, status: &str) {
        match self.bar {
            Some(bar) => bar.finish_with_message(status.to_owned()),
            None => eprintln!("loadgen: {} done: {status}", self.name),
        }
    }
}
