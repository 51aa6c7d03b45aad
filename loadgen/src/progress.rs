//! Progress on stderr: indicatif bars on a terminal, otherwise one plain line
//! per second so logs and CI output stay readable. Every position is shown
//! with its unit (`traffic 801/10000 messages sent`).
//!
//! A bar fits the terminal, 80 columns included: the bar itself takes what
//! the words leave (`{wide_bar}`), and the words of the longest phase with
//! the largest counts the options allow leave it room (a unit test draws
//! them on an 80-column terminal).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The bar's layout: phase, seconds so far, the bar in what is left,
/// position, unit, status.
const BAR_TEMPLATE: &str =
    "{prefix:>12} {elapsed:>3} {wide_bar:.cyan/blue} {pos}/{len} {unit} {msg}";

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
        let bar = std::io::stderr()
            .is_terminal()
            .then(|| bar(ProgressDrawTarget::stderr(), name, total, unit));
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

/// A bar drawn to `target` for a phase of `total` `unit`.
fn bar(target: ProgressDrawTarget, name: &'static str, total: u64, unit: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), target);
    // The unit is fixed per phase; `{` in it would be read as a key.
    let template = BAR_TEMPLATE.replace("{unit}", &unit.replace(['{', '}'], ""));
    let style =
        ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(name);
    bar
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use indicatif::TermLike;

    use super::*;
    use crate::config::MAX_MESSAGES;

    /// An 80-column terminal that keeps every line drawn on it.
    #[derive(Debug, Default, Clone)]
    struct Screen(Arc<Mutex<Vec<String>>>);

    impl TermLike for Screen {
        fn width(&self) -> u16 {
            80
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.write_str(s)
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.0.lock().unwrap().push(s.to_owned());
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Columns of `text` once colour escapes are left out.
    fn columns(text: &str) -> usize {
        let mut n = 0;
        let mut escape = false;
        for c in text.chars() {
            match (escape, c) {
                (false, '\x1b') => escape = true,
                (true, 'm') => escape = false,
                (true, _) => {}
                (false, _) => n += 1,
            }
        }
        n
    }

    #[test]
    fn bars_fit_80_columns_at_the_largest_counts() {
        // The widest phase name and unit, with counts at the options' bounds:
        // every message of the largest run, and its deliveries to a full room.
        let deliveries = MAX_MESSAGES * 509;
        for (name, total, unit, status) in [
            (
                "traffic",
                MAX_MESSAGES,
                "messages sent",
                format!("{deliveries} deliveries"),
            ),
            ("drain", deliveries, "deliveries", String::new()),
            ("participants", 255, "joined", String::new()),
            (
                "leave",
                255,
                "participants left",
                "255/255 observers saw them go".to_owned(),
            ),
        ] {
            let screen = Screen::default();
            let bar = bar(
                ProgressDrawTarget::term_like(Box::new(screen.clone())),
                name,
                total,
                unit,
            );
            bar.set_position(total - 1);
            bar.finish_with_message(status);
            let lines = screen.0.lock().unwrap().clone();
            assert!(!lines.is_empty(), "{name}: nothing drawn");
            for line in lines {
                assert!(columns(&line) <= 80, "{} columns: {line:?}", columns(&line));
            }
        }
    }

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
