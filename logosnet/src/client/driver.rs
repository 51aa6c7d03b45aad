//! The client's event loop: one socket, one front end, one [`Session`].
//!
//! It connects, then waits on three things at once — a signal to leave
//! (Ctrl-C in pipe mode, SIGTERM, SIGHUP), the front end's input, the
//! server's next frame — feeds whichever comes first to the session, and
//! carries out the actions the session answers with. Frames are read with [`FrameReader`] and written
//! with [`write_frame`]: the library's codec, not a copy of it.
//!
//! Leaving is graceful: the socket is half-closed (so everything written is
//! delivered before the server sees the end), then the server's last lines
//! are read and shown until it closes too, for at most [`CLOSE_DRAIN`].
//! Closing at once instead could turn into a reset that destroys the last
//! chat line in the server's receive buffer.

use std::io;
use std::pin::pin;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::framed::{FrameReader, ReadError, write_frame};
use crate::protocol::{Role, ServerFrame};

use super::connect::connect;
use super::ending::{Ending, describe_io};
use super::session::{Action, Input, Prompt, Session};

/// After leaving, how long the client waits for the server to finish and
/// close (the server answers within milliseconds; this only bounds a
/// server that does not).
pub const CLOSE_DRAIN: Duration = Duration::from_secs(2);

/// How long writing one frame may take. A server that stops reading for
/// this long is treated as lost rather than hanging the client.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where input comes from and where the room is shown: a terminal with line
/// editing, or plain pipes.
pub(crate) trait FrontEnd {
    /// The next input. With `wanted` false the session cannot use a line
    /// yet: the front end must not hand one over (it may keep it for
    /// later), but may still report end of input or an interrupt. Must be
    /// cancel-safe: the driver drops it when a frame comes first.
    async fn next_input(&mut self, wanted: bool) -> io::Result<Input>;
    /// Shows a line of the room.
    fn show(&mut self, line: &str) -> io::Result<()>;
    /// Shows the client's own remark.
    fn status(&mut self, line: &str) -> io::Result<()>;
    /// Changes the prompt.
    fn set_prompt(&mut self, prompt: &Prompt) -> io::Result<()>;
    /// Shows whatever is pending and gets the output ready for the final
    /// message.
    fn finish(&mut self);
}

/// Runs one client from connecting to the end.
pub(crate) async fn run<F: FrontEnd>(front: &mut F, host: &str, port: u16, role: Role) -> Ending {
    let mut interrupt = pin!(interrupted());
    let mut connecting = pin!(connect(host, port));
    let (stream, addr) = loop {
        tokio::select! {
            biased;
            () = &mut interrupt => return Ending::Left,
            input = front.next_input(false) => match input {
                Ok(Input::End | Input::Interrupt) => return Ending::Left,
                Ok(_) => {}
                Err(e) => return Ending::Terminal(e.to_string()),
            },
            connected = &mut connecting => match connected {
                Ok(connected) => break connected,
                Err(ending) => return ending,
            },
        }
    };
    let server = addr.to_string();
    let (read_half, mut write_half) = stream.into_split();
    let mut reader = FrameReader::new(read_half);
    let mut session = Session::new(role, server.clone());
    loop {
        while let Some(action) = session.poll_action() {
            let done = match action {
                Action::Send(frame) => {
                    match tokio::time::timeout(WRITE_TIMEOUT, write_frame(&mut write_half, &frame))
                        .await
                    {
                        Ok(Ok(())) => Ok(()),
                        // The server may have closed with a last word (a
                        // shutdown notice, a protocol error) still unread:
                        // show it and end with its reason if there is one.
                        Ok(Err(e)) => {
                            let ending = drain(&mut reader, &mut session, front).await;
                            return ending.unwrap_or_else(|| lost(&server, &e));
                        }
                        Err(_) => {
                            return Ending::ConnectionLost {
                                addr: server,
                                reason: "the server stopped reading".into(),
                            };
                        }
                    }
                }
                Action::Show(line) => front.show(&line),
                Action::Status(line) => front.status(&line),
                Action::Prompt(prompt) => front.set_prompt(&prompt),
                Action::End(Ending::Left) => {
                    leave(write_half, &mut reader, &mut session, front).await;
                    return Ending::Left;
                }
                Action::End(ending) => return ending,
            };
            if let Err(e) = done {
                return Ending::Terminal(e.to_string());
            }
        }
        // Input first: in a terminal, polling it is also what prints.
        tokio::select! {
            biased;
            () = &mut interrupt => session.handle_input(Input::Interrupt),
            input = front.next_input(session.wants_input()) => match input {
                Ok(input) => session.handle_input(input),
                Err(e) => return Ending::Terminal(e.to_string()),
            },
            frame = reader.next::<ServerFrame>() => match frame {
                Ok(Some(frame)) => session.handle_frame(frame),
                Ok(None) => session.handle_server_closed(),
                Err(ReadError::Io(e)) => return lost(&server, &e),
                Err(e @ (ReadError::Frame(_) | ReadError::ClosedMidFrame)) => {
                    return Ending::Protocol { addr: server, reason: e.to_string() };
                }
            },
        }
    }
}

/// Half-closes, then shows the room's last lines until the server closes.
async fn leave<F: FrontEnd>(
    mut write_half: OwnedWriteHalf,
    reader: &mut FrameReader<OwnedReadHalf>,
    session: &mut Session,
    front: &mut F,
) {
    let _ = write_half.shutdown().await;
    drain(reader, session, front).await;
}

/// Reads what the server still sends until it closes, for at most
/// [`CLOSE_DRAIN`], showing room lines; the ending the session reaches on
/// the way, if any.
async fn drain<F: FrontEnd>(
    reader: &mut FrameReader<OwnedReadHalf>,
    session: &mut Session,
    front: &mut F,
) -> Option<Ending> {
    let reading = async {
        loop {
            let closed = match reader.next::<ServerFrame>().await {
                Ok(Some(frame)) => {
                    session.handle_frame(frame);
                    false
                }
                Ok(None) => {
                    session.handle_server_closed();
                    true
                }
                Err(_) => true,
            };
            while let Some(action) = session.poll_action() {
                match action {
                    Action::Show(line) => drop(front.show(&line)),
                    Action::Status(line) => drop(front.status(&line)),
                    Action::End(ending) => return Some(ending),
                    Action::Send(_) | Action::Prompt(_) => {}
                }
            }
            if closed {
                return None;
            }
        }
    };
    tokio::time::timeout(CLOSE_DRAIN, reading)
        .await
        .ok()
        .flatten()
}

fn lost(server: &str, error: &io::Error) -> Ending {
    if error.kind() == io::ErrorKind::ConnectionReset {
        return Ending::ServerClosed {
            addr: server.to_owned(),
        };
    }
    Ending::ConnectionLost {
        addr: server.to_owned(),
        reason: describe_io(error),
    }
}

/// Resolves on SIGINT, SIGTERM or SIGHUP: each is a request to leave, and
/// leaving through the driver (not by the default action) restores the
/// terminal. Never resolves if the handlers cannot be installed.
async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate), Ok(mut hangup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
        _ = hangup.recv() => {}
    }
}
