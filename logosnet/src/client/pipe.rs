//! The pipe front end: used when standard input or output is not a
//! terminal, so the client can be scripted
//! (`printf 'alice\nhello\nexit()\n' | logosnet_client --ip … --port …`).
//!
//! Standard output carries only the room: one line per `Notice` or
//! `Message`, flushed as it arrives. Nothing is prompted. The client's own
//! remarks ("Username already in use", a refused line, the observer banner)
//! and the final error go to standard error, so `> transcript.txt` captures
//! exactly what the room said. When standard output is a terminal after all
//! (only the input is piped), long lines are cut into rows as the terminal
//! front end cuts them ([`crate::client::display::wrap`]), so that no row
//! passes for a line of its own; a file or a pipe gets whole lines.
//!
//! An observer has nothing to type, so in pipe mode it never reads
//! standard input at all: reading a terminal from a background job would
//! stop it (SIGTTIN), and an input that is already at its end (`<
//! /dev/null`, a service) would end it. It logs the room until the server
//! closes or a signal stops it.
//!
//! Standard input is read on a thread of its own, line by line, with a bound
//! on how much of one line is held (a line too long to be sent is discarded
//! as it is read, so a newline-free input cannot grow memory). Lines are
//! handed over in order and the last item is always end-of-input, which the
//! session sees only after every earlier line: a script never loses its
//! last line. A plain thread, not tokio's stdin, because a blocking read
//! there would hold up the runtime's shutdown.

use std::io::{self, BufRead, Stderr, Stdout, Write};

use tokio::sync::mpsc;

use super::display::wrap;
use super::driver::FrontEnd;
use super::session::{Input, Prompt};
use crate::protocol::MAX_MESSAGE_CHARS;

/// Bytes of one input line the reader holds: the longest chat line (every
/// character four bytes of UTF-8) plus a CR. Anything longer cannot be sent
/// and is dropped while it is read.
pub const MAX_LINE_BYTES: usize = MAX_MESSAGE_CHARS * 4 + 1;

/// Lines read ahead of the session. Small: the session takes lines only when
/// it can use them, and the pipe itself is the back-pressure.
const READ_AHEAD_LINES: usize = 16;

/// Standard input and output as plain lines (or any two writers, for a
/// logger run inside another program).
#[derive(Debug)]
pub(crate) struct PipeFrontEnd<O = Stdout, E = Stderr> {
    /// Lines from standard input; `None` when it is not read at all.
    lines: Option<mpsc::Receiver<Input>>,
    /// Where the room goes.
    out: O,
    /// Where the client's remarks go.
    remarks: E,
    /// With the output on a terminal: the indent of a long line's rows
    /// after the first; `None` writes whole lines.
    wrap: Option<usize>,
}

impl<O: Write, E: Write> PipeFrontEnd<O, E> {
    /// A front end that reads nothing and writes the room to `out` and its
    /// remarks to `remarks`, whole lines.
    pub(crate) fn writing_to(out: O, remarks: E) -> Self {
        Self {
            lines: None,
            out,
            remarks,
            wrap: None,
        }
    }
}

impl PipeFrontEnd {
    /// Starts the thread that reads standard input if `read_input`;
    /// otherwise standard input is left alone and no input ever comes.
    /// `wrap` is the indent of continuation rows when standard output is a
    /// terminal (`None` if it is not).
    pub(crate) fn new(read_input: bool, wrap: Option<usize>) -> Self {
        let mut front = Self::writing_to(io::stdout(), io::stderr());
        front.wrap = wrap;
        if !read_input {
            return front;
        }
        let (sender, lines) = mpsc::channel(READ_AHEAD_LINES);
        let reading = std::thread::Builder::new()
            .name("stdin".into())
            .spawn(move || {
                let mut stdin = io::stdin().lock();
                loop {
                    let input = match read_bounded_line(&mut stdin, MAX_LINE_BYTES) {
                        Ok(Some(input)) => input,
                        // A read error is treated like the end of input.
                        Ok(None) | Err(_) => Input::End,
                    };
                    let last = input == Input::End;
                    if sender.blocking_send(input).is_err() || last {
                        return;
                    }
                }
            });
        // Without the thread the sender is gone and input reads as ended.
        if let Err(e) = reading {
            tracing::warn!(error = %e, "cannot start the stdin thread");
        }
        front.lines = Some(lines);
        front
    }
}

impl<O: Write, E: Write> FrontEnd for PipeFrontEnd<O, E> {
    async fn next_input(&mut self, wanted: bool) -> io::Result<Input> {
        match &mut self.lines {
            Some(lines) if wanted => Ok(lines.recv().await.unwrap_or(Input::End)),
            _ => std::future::pending().await,
        }
    }

    fn show(&mut self, line: &str) -> io::Result<()> {
        match self.wrap {
            Some(indent) => {
                let columns = crossterm::terminal::size().map_or(80, |(c, _)| usize::from(c));
                for row in wrap(line, columns, indent) {
                    writeln!(self.out, "{row}")?;
                }
            }
            None => writeln!(self.out, "{line}")?,
        }
        self.out.flush()
    }

    fn status(&mut self, line: &str) -> io::Result<()> {
        writeln!(self.remarks, "{line}")?;
        self.remarks.flush()
    }

    fn set_prompt(&mut self, _prompt: &Prompt) -> io::Result<()> {
        Ok(())
    }

    fn finish(&mut self) {
        let _ = self.out.flush();
    }
}

/// Reads one line of at most `max_bytes` (without its `\n`, and without a
/// `\r` before it). `Ok(None)` at the end of input; a last line without a
/// newline still counts. A longer line is consumed and reported as
/// [`Input::Oversized`]; invalid UTF-8 as [`Input::NotUtf8`].
pub(crate) fn read_bounded_line(
    reader: &mut impl BufRead,
    max_bytes: usize,
) -> io::Result<Option<Input>> {
    let mut line = Vec::new();
    let mut oversized = false;
    let mut read_any = false;
    loop {
        let buf = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            if !read_any {
                return Ok(None);
            }
            break;
        }
        read_any = true;
        let newline = buf.iter().position(|&b| b == b'\n');
        let chunk = &buf[..newline.unwrap_or(buf.len())];
        if !oversized {
            if line.len() + chunk.len() > max_bytes {
                oversized = true;
                line = Vec::new();
            } else {
                line.extend_from_slice(chunk);
            }
        }
        let consumed = chunk.len() + usize::from(newline.is_some());
        reader.consume(consumed);
        if newline.is_some() {
            break;
        }
    }
    if oversized {
        return Ok(Some(Input::Oversized));
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(Some(match String::from_utf8(line) {
        Ok(text) => Input::Line(text),
        Err(_) => Input::NotUtf8,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(bytes: &[u8], max: usize) -> Vec<Input> {
        // A tiny buffer so lines span many fills.
        let mut reader = io::BufReader::with_capacity(3, bytes);
        std::iter::from_fn(|| read_bounded_line(&mut reader, max).unwrap()).collect()
    }

    fn line(text: &str) -> Input {
        Input::Line(text.into())
    }

    #[test]
    fn splits_lines_and_strips_endings() {
        assert_eq!(
            read_all(b"alice\r\nhello world\n\nexit()\n", 100),
            [line("alice"), line("hello world"), line(""), line("exit()")]
        );
    }

    #[test]
    fn last_line_without_newline_is_kept() {
        assert_eq!(read_all(b"one\ntwo", 100), [line("one"), line("two")]);
        assert_eq!(read_all(b"", 100), []);
    }

    #[test]
    fn overlong_line_is_dropped_and_reading_goes_on() {
        assert_eq!(
            read_all(b"short\n0123456789ab\nnext\n", 10),
            [line("short"), Input::Oversized, line("next")]
        );
        // Exactly at the bound is fine.
        assert_eq!(read_all(b"0123456789\n", 10), [line("0123456789")]);
    }

    #[test]
    fn invalid_utf8_is_reported_not_mangled() {
        assert_eq!(
            read_all(b"ok\n\xff\xfe\nok2\n", 100),
            [line("ok"), Input::NotUtf8, line("ok2")]
        );
    }

    #[test]
    fn bound_fits_the_longest_sendable_line() {
        let longest = "😀".repeat(MAX_MESSAGE_CHARS) + "\r\n";
        assert_eq!(
            read_all(longest.as_bytes(), MAX_LINE_BYTES),
            [line(&"😀".repeat(MAX_MESSAGE_CHARS))]
        );
    }
}
