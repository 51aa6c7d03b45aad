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
//! `Hello` together. Over TLS the client says once, when the handshake is
//! done, `Connected to HOST:PORT over TLS`. If no answer has come after [`CONNECTING_NOTICE_DELAY`]
//! and someone is watching, the client says `Connecting to ADDR…`. Once
//! connected, a server that has not answered within the answer timeout
//! (`--answer-timeout`, shorter) is called not a LogosNet server: it took
//! the connection and said nothing, as a web server does.
//!
//! Leaving is graceful once the server has answered: the socket is
//! half-closed (so everything written is delivered before the server sees
//! the end), then the server's last lines are read and shown until it
//! closes too, for at most [`CLOSE_DRAIN`] (a second signal cuts that
//! short). Closing at once instead could turn into a reset that destroys
//! the last chat line in the server's receive buffer. Before the server
//! has answered nothing can be lost, so the client leaves at once.
//!
//! How the socket is reached is a [`Dialer`] and what asks the client to
//! leave is a [`Stop`]: the binary dials TCP (and TLS) and listens for
//! signals; the simulations dial turmoil's network and stop on a simulated
//! timer, and run this same loop. One run is one connection;
//! [`super::reconnect`] runs it again for a logger that comes back.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};

use crate::connection::{Connection, ReadError};
use crate::protocol::{FrameError, ServerFrame};
use crate::tls::is_tls_record_header;

use super::Config;
use super::connect::{ServerStream, TlsTarget, connect, target_name};
use super::ending::{Ending, describe_io};
use super::session::{Action, Input, InputMode, Prompt, Session};
use super::signals::LeaveSignals;
use super::timestamp::stamped;

/// How the client reaches the server: one call, one connection (with TLS
/// already spoken if it is used), or the [`Ending`] that says why not.
pub trait Dialer {
    /// The connection.
    type Stream: AsyncRead + AsyncWrite + Unpin;
    /// Connects once.
    fn dial(&mut self) -> impl Future<Output = Result<(Self::Stream, SocketAddr), Ending>>;
}

/// What asks the client to leave: SIGINT, SIGTERM or SIGHUP for the
/// binary, anything else for a program that runs the client itself.
pub trait Stop {
    /// Resolves when the client should leave; may be awaited again, for a
    /// second request that cuts the leaving short. Must be cancel-safe.
    fn requested(&mut self) -> impl Future<Output = ()>;
}

impl Stop for LeaveSignals {
    fn requested(&mut self) -> impl Future<Output = ()> {
        self.recv()
    }
}

/// The binary's [`Dialer`]: resolves `--ip`, connects over TCP and, with
/// `--tls`, shakes hands.
pub(crate) struct TcpDialer {
    /// `--ip`.
    host: String,
    /// `--port`.
    port: u16,
    /// Whom to trust and what name to check, with `--tls`.
    tls: Option<TlsTarget>,
}

impl TcpDialer {
    /// The dialer `config` asks for; reading the trusted certificates can
    /// fail, which ends the run before anything is sent.
    pub(crate) fn new(config: &Config) -> Result<Self, Ending> {
        let tls = match &config.tls {
            Some(trust) => Some(TlsTarget::prepare(&config.host, trust)?),
            None => None,
        };
        Ok(Self {
            host: config.host.clone(),
            port: config.port,
            tls,
        })
    }
}

impl Dialer for TcpDialer {
    type Stream = ServerStream;

    fn dial(&mut self) -> impl Future<Output = Result<(ServerStream, SocketAddr), Ending>> {
        connect(&self.host, self.port, self.tls.as_ref())
    }
}

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
#[derive(Debug, Clone)]
pub(crate) struct Behaviour {
    /// Who is typing.
    pub(crate) mode: InputMode,
    /// Whether someone may be watching (a terminal), so that a slow
    /// connection is announced.
    pub(crate) announce_connecting: bool,
    /// A logger's return after a loss: once in the room it says so, in
    /// place of the observer's banner ([`super::reconnect::back_line`]).
    pub(crate) returning: bool,
}

/// How one run ended, and whether it got into the room on the way.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// Why it stopped.
    pub(crate) ending: Ending,
    /// Whether it was in the room (a name accepted, an observer admitted)
    /// before it stopped.
    pub(crate) admitted: bool,
}

impl Outcome {
    /// A run that never got into the room.
    fn outside(ending: Ending) -> Self {
        Self {
            ending,
            admitted: false,
        }
    }
}

/// Runs the binary's client from connecting to the end: TCP (and TLS) as
/// `config` says, leaving on SIGINT, SIGTERM or SIGHUP.
pub(crate) async fn run_once<F: FrontEnd>(
    front: &mut F,
    config: &Config,
    behaviour: Behaviour,
) -> Ending {
    let mut signals = LeaveSignals::new();
    let mut dialer = match TcpDialer::new(config) {
        Ok(dialer) => dialer,
        Err(ending) => return ending,
    };
    run(front, config, behaviour, &mut dialer, &mut signals)
        .await
        .ending
}

/// Runs one connection from dialing to the end.
pub(crate) async fn run<F: FrontEnd, D: Dialer, S: Stop>(
    front: &mut F,
    config: &Config,
    behaviour: Behaviour,
    dialer: &mut D,
    stop: &mut S,
) -> Outcome {
    let target = target_name(&config.host, config.port);
    let timed_out = || {
        Outcome::outside(Ending::ConnectTimeout {
            target: target.clone(),
            timeout: config.connect_timeout,
        })
    };
    let mut give_up = pin!(tokio::time::sleep(config.connect_timeout));
    let mut notice = pin!(tokio::time::sleep(CONNECTING_NOTICE_DELAY));
    let mut noticed = !behaviour.announce_connecting;
    let mut connecting = pin!(dialer.dial());
    let (stream, addr) = loop {
        tokio::select! {
            biased;
            () = stop.requested() => return Outcome::outside(Ending::Left),
            input = front.next_input(false) => match input {
                Ok(Input::End | Input::Interrupt) => return Outcome::outside(Ending::Left),
                Ok(_) => {}
                Err(e) => return Outcome::outside(Ending::Terminal(e.to_string())),
            },
            connected = &mut connecting => match connected {
                Ok(connected) => break connected,
                Err(ending) => return Outcome::outside(ending),
            },
            () = &mut give_up => return timed_out(),
            () = &mut notice, if !noticed => {
                noticed = true;
                if let Err(e) = front.status(&connecting_notice(&target)) {
                    return Outcome::outside(Ending::Terminal(e.to_string()));
                }
            }
        }
    };
    // Said once per run, before anything from the room; a logger coming
    // back says it is back instead.
    if config.tls.is_some()
        && !behaviour.returning
        && let Err(e) = front.status(&tls_line(&target))
    {
        return Outcome::outside(Ending::Terminal(e.to_string()));
    }
    let server = addr.to_string();
    let (reader, writer) = Connection::new(stream).split();
    let mut session = Session::with_input(config.role, server, behaviour.mode);
    if behaviour.returning {
        session = session.arriving_with(super::reconnect::back_line(&addr.to_string()));
    }
    let mut run = Running {
        front,
        session,
        reader,
        stop,
        timestamps: config.timestamps,
    };
    let ending = run
        .connected(config, writer, &mut give_up, &mut notice, &target, noticed)
        .await;
    Outcome {
        ending,
        admitted: run.session.was_admitted(),
    }
}

impl<F: FrontEnd, T: AsyncRead + AsyncWrite + Unpin, S: Stop> Running<'_, F, T, S> {
    /// The connected part of a run: the session's actions carried out, and
    /// whatever comes first fed to it, until it ends.
    async fn connected(
        &mut self,
        config: &Config,
        writer: Connection<WriteHalf<T>>,
        give_up: &mut std::pin::Pin<&mut tokio::time::Sleep>,
        notice: &mut std::pin::Pin<&mut tokio::time::Sleep>,
        target: &str,
        mut noticed: bool,
    ) -> Ending {
        let run = self;
        let timed_out = || Ending::ConnectTimeout {
            target: target.to_owned(),
            timeout: config.connect_timeout,
        };
        let mut writer = Some(writer);
        let mut answer_wait = pin!(tokio::time::sleep(config.answer_timeout));
        loop {
            while let Some(action) = run.session.poll_action() {
                let done = match action {
                    Action::Send(frame) => {
                        let Some(writer) = writer.as_mut() else {
                            continue;
                        };
                        match tokio::time::timeout(WRITE_TIMEOUT, writer.write_frame(&frame)).await
                        {
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
                () = run.stop.requested() => run.session.handle_input(Input::Interrupt),
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
                () = give_up.as_mut(), if connecting => return timed_out(),
                () = answer_wait.as_mut(), if connecting => {
                    return Ending::NotAnswering {
                        addr: run.server(),
                        waited: config.answer_timeout,
                    };
                }
                () = notice.as_mut(), if connecting && !noticed => {
                    noticed = true;
                    if let Err(e) = run.front.status(&connecting_notice(target)) {
                        return Ending::Terminal(e.to_string());
                    }
                }
            }
        }
    }
}

/// What the client says once the TLS handshake is done: that the session
/// is encrypted, and with whom (the name the certificate was checked
/// against, as given to `--ip`).
pub fn tls_line(target: &str) -> String {
    format!("Connected to {target} over TLS")
}

/// What the client says while the server has not answered yet.
fn connecting_notice(target: &str) -> String {
    format!("Connecting to {target}…")
}

/// The connected part of a run.
struct Running<'f, F, T, S> {
    /// The terminal or pipe front end.
    front: &'f mut F,
    /// The client's rules.
    session: Session,
    /// Frames from the server.
    reader: Connection<ReadHalf<T>>,
    /// What asks the client to leave.
    stop: &'f mut S,
    /// Whether room lines are shown with the time first.
    timestamps: bool,
}

impl<F: FrontEnd, T: AsyncRead + AsyncWrite + Unpin, S: Stop> Running<'_, F, T, S> {
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
    async fn leave(&mut self, mut write_half: WriteHalf<T>) {
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
                () = self.stop.requested() => return None,
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{DuplexStream, duplex};
    use tokio::time::Instant;

    use super::*;
    use crate::client::ANSWER_TIMEOUT;
    use crate::client::pipe::PipeFrontEnd;
    use crate::protocol::Role;

    /// Hands out one end of an in-memory pipe whose other end, held by the
    /// test, never says a word: a listener that accepts and stays silent.
    struct Silent(Option<DuplexStream>);

    impl Dialer for Silent {
        type Stream = DuplexStream;

        async fn dial(&mut self) -> Result<(DuplexStream, SocketAddr), Ending> {
            let stream = self.0.take().expect("dialed once");
            Ok((stream, "127.0.0.1:8021".parse().unwrap()))
        }
    }

    /// Nobody asks to leave.
    struct Never;

    impl Stop for Never {
        fn requested(&mut self) -> impl Future<Output = ()> {
            std::future::pending()
        }
    }

    fn config(answer_timeout: Duration) -> Config {
        Config {
            host: "127.0.0.1".into(),
            port: 8021,
            role: Role::Participant,
            timestamps: false,
            connect_timeout: Duration::from_secs(10),
            answer_timeout,
            tls: None,
            reconnect: false,
        }
    }

    async fn run_silent(config: &Config) -> (Ending, Duration) {
        let (ours, _theirs) = duplex(1024);
        let mut front = PipeFrontEnd::writing_to(Vec::new(), Vec::new());
        let behaviour = Behaviour {
            mode: super::super::session::InputMode::Script,
            announce_connecting: false,
            returning: false,
        };
        let start = Instant::now();
        let outcome = run(
            &mut front,
            config,
            behaviour,
            &mut Silent(Some(ours)),
            &mut Never,
        )
        .await;
        (outcome.ending, start.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn a_listener_that_never_answers_hello_is_not_answering_after_the_answer_timeout() {
        let (ending, waited) = run_silent(&config(ANSWER_TIMEOUT)).await;
        assert_eq!(
            ending.message().as_deref(),
            Some(
                "127.0.0.1:8021 is not answering as a LogosNet server (no reply to Hello within 5 s)"
            )
        );
        assert_eq!(ending.exit_code(), 1);
        assert_eq!(waited, ANSWER_TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn the_connect_timeout_still_bounds_the_whole_wait() {
        let mut config = config(Duration::from_secs(60));
        config.connect_timeout = Duration::from_secs(3);
        let (ending, waited) = run_silent(&config).await;
        assert_eq!(
            ending.message().as_deref(),
            Some("Timed out connecting to 127.0.0.1:8021: no answer within 3 s")
        );
        assert_eq!(waited, Duration::from_secs(3));
    }
}
