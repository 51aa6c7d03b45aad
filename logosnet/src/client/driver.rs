//! The client's event loop: one socket, one front end, one [`Session`].
//!
//! It connects, then waits on several things at once — a signal to leave
//! (SIGINT, SIGTERM, SIGHUP), the front end's input, the server's next
//! frame and, until the server has answered, the connect timeout — feeds
//! whichever comes first to the session, and carries out the actions the
//! session answers with. Frames are read and written through two
//! [`Connection`]s, one per half of the stream: the library's codec, not a
//! copy of it.
//!
//! Connecting is one phase with one deadline (`--connect-timeout`):
//! resolving, the TCP connection and the wait for the server's answer to
//! `Hello` together. If no answer has come after [`CONNECTING_NOTICE_DELAY`]
//! and someone is watching, the client says `Connecting to ADDR…`.
//!
//! Leaving is graceful once the server has answered: the socket is
//! half-closed (so everything written is delivered before the server sees
//! the end), then the server's last lines are read and shown until it
//! closes too, for at most [`CLOSE_DRAIN`] (a second signal cuts that
//! short). Closing at once instead could turn into a reset that destroys
//! the last chat line in the server's receive buffer. Before the server
//! has answered nothing can be lost, so the client leaves at once.

use std::io;
use std::pin::pin;
use std::time::Duration;

use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};

use crate::connection::{Connection, ReadError};
use crate::protocol::{FrameError, ServerFrame};
use crate::tls::is_tls_record_header;

use super::Config;
use super::connect::{ServerStream, TlsTarget, connect, target_name};
use super::ending::{Ending, describe_io};
use super::session::{Action, Input, InputMode, Prompt, Session};
use super::signals::LeaveSignals;
use super::timestamp::stamped;

/// After leaving, how long the client waits for the server to finish and
/// close (the server answers within milliseconds; this only bounds a
/// server that does not).
pub const CLOSE_DRAIN: Duration = Duration::from_secs(2);

/// How long writing one frame may take. A server that stops reading for
/// this long is treated as lost rather than hanging the client.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the client waits for the server's answer before it says
/// `Connecting to ADDR…`: a local server answers in a millisecond, so the
/// notice appears only when something is slow, and soon enough that a
/// blank screen is never mistaken for a hang.
pub const CONNECTING_NOTICE_DELAY: Duration = Duration::from_millis(500);

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

/// How one run behaves, beyond what to connect to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Behaviour {
    /// Who is typing.
    pub(crate) mode: InputMode,
    /// Whether someone may be watching (a terminal), so that a slow
    /// connection is announced.
    pub(crate) announce_connecting: bool,
}

/// Runs one client from connecting to the end.
pub(crate) async fn run<F: FrontEnd>(
    front: &mut F,
    config: &Config,
    behaviour: Behaviour,
) -> Ending {
    let target = target_name(&config.host, config.port);
    let timed_out = || Ending::ConnectTimeout {
        target: target.clone(),
        timeout: config.connect_timeout,
    };
    let mut signals = LeaveSignals::new();
    let mut give_up = pin!(tokio::time::sleep(config.connect_timeout));
    let mut notice = pin!(tokio::time::sleep(CONNECTING_NOTICE_DELAY));
    let mut noticed = !behaviour.announce_connecting;
    let tls = match config
        .tls
        .as_ref()
        .map(|trust| TlsTarget::prepare(&config.host, trust))
    {
        Some(Ok(target)) => Some(target),
        Some(Err(ending)) => return ending,
        None => None,
    };
    let mut connecting = pin!(connect(&config.host, config.port, tls.as_ref()));
    let (stream, addr) = loop {
        tokio::select! {
            biased;
            () = signals.recv() => return Ending::Left,
            input = front.next_input(false) => match input {
                Ok(Input::End | Input::Interrupt) => return Ending::Left,
                Ok(_) => {}
                Err(e) => return Ending::Terminal(e.to_string()),
            },
            connected = &mut connecting => match connected {
                Ok(connected) => break connected,
                Err(ending) => return ending,
            },
            () = &mut give_up => return timed_out(),
            () = &mut notice, if !noticed => {
                noticed = true;
                if let Err(e) = front.status(&connecting_notice(&target)) {
                    return Ending::Terminal(e.to_string());
                }
            }
        }
    };
    let server = addr.to_string();
    let (reader, writer) = Connection::new(stream).split();
    let mut run = Running {
        front,
        session: Session::with_input(config.role, server, behaviour.mode),
        reader,
        signals,
        timestamps: config.timestamps,
    };
    let mut writer = Some(writer);
    loop {
        while let Some(action) = run.session.poll_action() {
            let done = match action {
                Action::Send(frame) => {
                    let Some(writer) = writer.as_mut() else {
                        continue;
                    };
                    match tokio::time::timeout(WRITE_TIMEOUT, writer.write_frame(&frame)).await {
                        Ok(Ok(())) => Ok(()),
                        // The server may have closed with a last word (a
                        // shutdown notice, a protocol error) still unread:
                        // show it and end with its reason if there is one.
                        Ok(Err(e)) => {
                            let ending = run.drain().await;
                            return ending.unwrap_or_else(|| lost(&run.session, &e));
                        }
                        Err(_) => {
                            return Ending::ConnectionLost {
                                addr: run.server(),
                                reason: "the server stopped reading".into(),
                            };
                        }
                    }
                }
                Action::Show(line) => run.show(&line),
                Action::Status(line) => run.front.status(&line),
                Action::Prompt(prompt) => run.front.set_prompt(&prompt),
                Action::End(Ending::Left) => {
                    if let Some(writer) = writer.take() {
                        run.leave(writer.into_inner()).await;
                    }
                    return Ending::Left;
                }
                Action::End(ending) => return ending,
            };
            if let Err(e) = done {
                return Ending::Terminal(e.to_string());
            }
        }
        let connecting = !run.session.has_answer();
        // Input first: in a terminal, polling it is also what prints.
        tokio::select! {
            biased;
            () = run.signals.recv() => run.session.handle_input(Input::Interrupt),
            input = run.front.next_input(run.session.wants_input()) => match input {
                Ok(input) => run.session.handle_input(input),
                Err(e) => return Ending::Terminal(e.to_string()),
            },
            frame = run.reader.read_frame::<ServerFrame>() => match frame {
                Ok(Some(frame)) => run.session.handle_frame(frame),
                Ok(None) => run.session.handle_server_closed(),
                Err(ReadError::Io(e)) => return lost(&run.session, &e),
                // A TLS record where a frame's length should be: a TLS port
                // reached without --tls (its alert for our plaintext Hello).
                Err(ReadError::Frame(FrameError::TooLong(header)))
                    if config.tls.is_none() && is_tls_record_header(header.to_be_bytes()) =>
                {
                    run.session.handle_tls_record();
                }
                Err(e @ (ReadError::Frame(_) | ReadError::ClosedMidFrame)) => {
                    run.session.handle_unreadable(&e.to_string());
                }
            },
            () = &mut give_up, if connecting => return timed_out(),
            () = &mut notice, if connecting && !noticed => {
                noticed = true;
                if let Err(e) = run.front.status(&connecting_notice(&target)) {
                    return Ending::Terminal(e.to_string());
                }
            }
        }
    }
}

/// What the client says while the server has not answered yet.
fn connecting_notice(target: &str) -> String {
    format!("Connecting to {target}…")
}

/// The connected part of a run.
struct Running<'f, F> {
    /// The terminal or pipe front end.
    front: &'f mut F,
    /// The client's rules.
    session: Session,
    /// Frames from the server.
    reader: Connection<ReadHalf<ServerStream>>,
    /// SIGINT, SIGTERM and SIGHUP.
    signals: LeaveSignals,
    /// Whether room lines are shown with the time first.
    timestamps: bool,
}

impl<F: FrontEnd> Running<'_, F> {
    /// Shows a room line, with the time first if asked for.
    fn show(&mut self, line: &str) -> io::Result<()> {
        if self.timestamps {
            self.front.show(&stamped(line))
        } else {
            self.front.show(line)
        }
    }

    fn server(&self) -> String {
        self.session.server().to_owned()
    }

    /// Half-closes, then shows the room's last lines until the server
    /// closes; at once if the server never answered.
    async fn leave(&mut self, mut write_half: WriteHalf<ServerStream>) {
        if !self.session.has_answer() {
            return;
        }
        let _ = write_half.shutdown().await;
        self.drain().await;
    }

    /// Reads what the server still sends until it closes, for at most
    /// [`CLOSE_DRAIN`] or until a leave signal, showing room lines; the
    /// ending the session reaches on the way, if any.
    async fn drain(&mut self) -> Option<Ending> {
        let deadline = tokio::time::sleep(CLOSE_DRAIN);
        let mut deadline = pin!(deadline);
        loop {
            let closed = tokio::select! {
                biased;
                () = self.signals.recv() => return None,
                () = &mut deadline => return None,
                frame = self.reader.read_frame::<ServerFrame>() => match frame {
                    Ok(Some(frame)) => {
                        self.session.handle_frame(frame);
                        false
                    }
                    Ok(None) => {
                        self.session.handle_server_closed();
                        true
                    }
                    Err(_) => true,
                },
            };
            while let Some(action) = self.session.poll_action() {
                match action {
                    Action::Show(line) => drop(self.show(&line)),
                    Action::Status(line) => drop(self.front.status(&line)),
                    Action::End(ending) => return Some(ending),
                    Action::Send(_) | Action::Prompt(_) => {}
                }
            }
            if closed {
                return None;
            }
        }
    }
}

fn lost(session: &Session, error: &io::Error) -> Ending {
    let addr = session.server().to_owned();
    if error.kind() == io::ErrorKind::ConnectionReset {
        return Ending::ServerClosed { addr };
    }
    Ending::ConnectionLost {
        addr,
        reason: describe_io(error),
    }
}
