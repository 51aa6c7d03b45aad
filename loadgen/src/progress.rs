//! Progress on stderr: indicatif bars on a terminal, otherwise one plain line
//! per second so logs and CI output stay readable. Every position is shown
//! with its unit (`traffic 801/10000 messages sent`).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Seconds between plain progress lines.
const PLAIN_INTERVAL: Duration = Duration::from_secs(1);

/// One phase's progress display.
#[derive(Debug)]
pub struct Progress {
    /// The bar on a terminal; `None` for plain lines.
    bar: Option<ProgressBar>,
    /// The phase, as lines name it (`traffic`).
    name: &'static str,
    /// The count the phase works towards.
    total: u64,
    /// What is counted (`messages sent`).
    unit: &'static str,
    /// When the last plain line was written.
    last_line: Instant,
}

impl Progress {
    /// Starts showing a phase of `total` steps, each one `unit` (plural, as
    /// in "messages sent").
    pub fn start(name: &'static str, total: u64, unit: &'static str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            let template = format!(
                "{{prefix:>9}} [{{elapsed_precise}}] {{bar:40.cyan/blue}} {{pos:>7}}/{{len:7}} {unit} {{msg}}"
            );
            let style = ProgressStyle::with_template(&template)
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_prefix(name);
            bar
        });
        Self {
            bar,
            name,
            total,
            unit,
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
                eprintln!("{}", self.line(position, &status()));
            }
            None => {}
        }
    }

    /// Ends the phase at `position`, with a closing status (empty if none).
    pub fn finish(self, position: u64, status: &str) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(position);
                bar.finish_with_message(status.to_owned());
            }
            None => {
                let outcome = if status.is_empty() { "done" } else { status };
                eprintln!("{} ({outcome})", self.line(position, ""));
            }
        }
    }

    /// The plain line: `loadgen: traffic 801/10000 messages sent, 4000 deliveries`.
    fn line(&self, position: u64, status: &str) -> String {
        let mut line = format!(
            "loadgen: {} {position}/{} {}",
            self.name, self.total, self.unit
        );
        if !status.is_empty() {
            line.push_str(", ");
            line.push_str(status);
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_carry_their_unit() {
        let progress = Progress {
            bar: None,
            name: "traffic",
            total: 10_000,
            unit: "messages sent",
            last_line: Instant::now(),
        };
        assert_eq!(
            progress.line(801, "400 deliveries"),
            "loadgen: traffic 801/10000 messages sent, 400 deliveries"
        );
        assert_eq!(
            progress.line(5, ""),
            "loadgen: traffic 5/10000 messages sent"
        );
    }
}
