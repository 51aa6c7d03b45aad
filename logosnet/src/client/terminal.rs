//! The terminal front end: line editing that survives incoming messages.
//!
//! Built on `rustyline-async`, which keeps the prompt and the half-typed
//! line as its own state: a line written through its `SharedWriter` is
//! printed above the input line, and the prompt and whatever the user had
//! typed are redrawn below it, cursor where it was. That is the job this
//! module hands to the crate instead of writing cursor escape codes by hand.
//! The terminal is in raw mode while this front end lives (so Ctrl-C and
//! Ctrl-D arrive as keys) and is restored when it is dropped, or, should
//! the client panic, by [`restore_terminal_on_panic`]'s hook before the
//! panic message is printed (a message printed in raw mode staircases
//! across the screen, and the shell after it would echo nothing).
//!
//! The crate is used from a copy in `vendor/rustyline-async` that fixes
//! its redraw of an input line wider than the terminal (see the
//! `PATCHES.md` there).
//!
//! Printing happens only while `Readline::readline` is being polled, so the
//! driver polls [`FrontEnd::next_input`] even when the session wants no
//! input; a line the user enters then is parked here and handed over once
//! the session asks for one.
//!
//! Every line is cut into rows here ([`wrap`]) rather than left to the
//! terminal's own wrapping, which goes on at column 0: rows after the first
//! are indented, so no row of a long line can pass for a line of the room.
//! The line the user entered is printed back the same way (with its
//! prompt) instead of being left on screen by the line editor.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::Once;

use rustyline_async::{Readline, ReadlineError, ReadlineEvent, SharedWriter};

use super::display::{sanitize, wrap};
use super::driver::FrontEnd;
use super::session::{Input, Prompt};

/// Lines a user can type ahead while the session waits on the server (a
/// fraction of a second, normally). More are dropped: no human types that
/// fast, and the bound keeps a runaway paste from growing memory.
const MAX_PARKED_LINES: usize = 64;

/// Entries kept for the Up/Down history.
const HISTORY_LINES: usize = 200;

/// The terminal, in raw mode, with an editable input line at the bottom.
pub(crate) struct TerminalFrontEnd {
    /// The line editor that owns the input line.
    readline: Readline,
    /// Prints above the input line without garbling it.
    writer: SharedWriter,
    /// Lines entered while input was not wanted, handed over in order.
    parked: VecDeque<String>,
    /// The prompt shown now, for printing an entered line back.
    prompt: String,
    /// Spaces before every row of a long line after the first.
    indent: usize,
}

impl TerminalFrontEnd {
    /// Puts the terminal in raw mode and shows an empty prompt; rows of a
    /// long line after the first are indented by `indent` columns.
    pub(crate) fn new(indent: usize) -> io::Result<Self> {
        let (mut readline, writer) = Readline::new(String::new()).map_err(into_io)?;
        // An entered line is printed back by `next_input` (it reads "> name:
        // text", as in the spec's example), cut into rows like every other;
        // a line abandoned with Ctrl-C is not worth keeping.
        readline.should_print_line_on(false, false);
        readline.set_max_history(HISTORY_LINES);
        Ok(Self {
            readline,
            writer,
            parked: VecDeque::new(),
            prompt: String::new(),
            indent,
        })
    }

    fn print(&mut self, line: &str) -> io::Result<()> {
        let columns = crossterm::terminal::size().map_or(80, |(c, _)| usize::from(c));
        let mut text = wrap(line, columns, self.indent).join("\n");
        text.push('\n');
        match self.writer.write_all(text.as_bytes()) {
            // The writer's queue is full (only if the driver printed many
            // lines without polling input). The writer keeps the bytes it
            // could not queue: print what is queued, then an empty write
            // queues ours.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.readline.flush().map_err(into_io)?;
                self.writer.write(&[]).map(drop)
            }
            other => other,
        }
    }
}

impl FrontEnd for TerminalFrontEnd {
    async fn next_input(&mut self, wanted: bool) -> io::Result<Input> {
        loop {
            if wanted && let Some(line) = self.parked.pop_front() {
                return Ok(Input::Line(line));
            }
            match self.readline.readline().await {
                Ok(ReadlineEvent::Line(line)) => {
                    if !line.trim().is_empty() {
                        self.readline.add_history_entry(line.clone());
                    }
                    let entered = format!("{}{}", self.prompt, sanitize(&line));
                    self.print(&entered)?;
                    if wanted {
                        return Ok(Input::Line(line));
                    }
                    if self.parked.len() < MAX_PARKED_LINES {
                        self.parked.push_back(line);
                    }
                }
                Ok(ReadlineEvent::Eof) => return Ok(Input::End),
                Ok(ReadlineEvent::Interrupted) => return Ok(Input::Interrupt),
                Err(e) => return Err(into_io(e)),
            }
        }
    }

    fn show(&mut self, line: &str) -> io::Result<()> {
        self.print(line)
    }

    fn status(&mut self, line: &str) -> io::Result<()> {
        self.print(line)
    }

    fn set_prompt(&mut self, prompt: &Prompt) -> io::Result<()> {
        self.prompt = prompt.text();
        self.readline.update_prompt(&self.prompt).map_err(into_io)
    }

    fn finish(&mut self) {
        // Prints what is still queued and erases the prompt line; dropping
        // the `Readline` then leaves raw mode.
        let _ = self.readline.flush();
    }
}

/// Makes a panic leave raw mode before its message is printed. Installed
/// once per process, before raw mode is entered; the hook that was there
/// before (normally the default one, which prints the message) still runs.
pub(crate) fn restore_terminal_on_panic() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| run_before_panic_hook(leave_raw_mode));
}

/// Chains `first` in front of the current panic hook.
fn run_before_panic_hook(first: impl Fn() + Send + Sync + 'static) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        first();
        previous(info);
    }));
}

/// Puts the terminal back in the mode it was in before raw mode, and moves
/// below the input line so the message starts on a line of its own.
fn leave_raw_mode() {
    if crossterm::terminal::disable_raw_mode().is_ok() {
        let _ = io::stderr().write_all(b"\n");
    }
}

fn into_io(error: ReadlineError) -> io::Error {
    match error {
        ReadlineError::IO(e) => e,
        ReadlineError::Closed => io::Error::other("the terminal writer closed"),
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    thread_local! {
        /// What the hooks did on this thread, in order.
        static EVENTS: RefCell<Vec<&'static str>> = const { RefCell::new(Vec::new()) };
    }

    fn record(event: &'static str) {
        EVENTS.with(|events| events.borrow_mut().push(event));
    }

    #[test]
    fn the_terminal_is_restored_before_the_panic_message() {
        let original = std::panic::take_hook();
        // Stands for the default hook, which prints the message.
        std::panic::set_hook(Box::new(|_| record("message")));
        run_before_panic_hook(|| record("restore"));
        let outcome = std::panic::catch_unwind(|| panic!("on purpose"));
        drop(std::panic::take_hook());
        std::panic::set_hook(original);
        assert!(outcome.is_err());
        assert_eq!(
            EVENTS.with(|events| events.borrow().clone()),
            ["restore", "message"]
        );
    }
}
