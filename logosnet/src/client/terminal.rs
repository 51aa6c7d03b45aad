//! The terminal front end: line editing that survives incoming messages.
//!
//! Built on `rustyline-async`, which keeps the prompt and the half-typed
//! line as its own state: a line written through its `SharedWriter` is
//! printed above the input line, and the prompt and whatever the user had
//! typed are redrawn below it, cursor where it was. That is the job this
//! module hands to the crate instead of writing cursor escape codes by hand.
//! The terminal is in raw mode while this front end lives (so Ctrl-C and
//! Ctrl-D arrive as keys) and is restored when it is dropped.
//!
//! Printing happens only while `Readline::readline` is being polled, so the
//! driver polls [`FrontEnd::next_input`] even when the session wants no
//! input; a line the user enters then is parked here and handed over once
//! the session asks for one.

use std::collections::VecDeque;
use std::io::{self, Write};

use rustyline_async::{Readline, ReadlineError, ReadlineEvent, SharedWriter};

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
    readline: Readline,
    writer: SharedWriter,
    parked: VecDeque<String>,
}

impl TerminalFrontEnd {
    /// Puts the terminal in raw mode and shows an empty prompt.
    pub(crate) fn new() -> io::Result<Self> {
        let (mut readline, writer) = Readline::new(String::new()).map_err(into_io)?;
        // Keep an entered line on screen (it reads "> name: text", as in the
        // spec's example); a line abandoned with Ctrl-C is not worth keeping.
        readline.should_print_line_on(true, false);
        readline.set_max_history(HISTORY_LINES);
        Ok(Self {
            readline,
            writer,
            parked: VecDeque::new(),
        })
    }

    fn print(&mut self, line: &str) -> io::Result<()> {
        let text = format!("{line}\n");
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
        self.readline.update_prompt(&prompt.text()).map_err(into_io)
    }

    fn finish(&mut self) {
        // Prints what is still queued and erases the prompt line; dropping
        // the `Readline` then leaves raw mode.
        let _ = self.readline.flush();
    }
}

fn into_io(error: ReadlineError) -> io::Error {
    match error {
        ReadlineError::IO(e) => e,
        ReadlineError::Closed => io::Error::other("the terminal writer closed"),
    }
}
