//! One participant's or observer's connection, through every phase.
//!
//! A client joins here (connect through the [`Transport`], plain or TLS,
//! then `Hello`, and for a participant its name); then [`receive`], the
//! reader both roles share, owns the stream for reading. It does one pass
//! over each read, checking every frame in place; it is the hot path and
//! takes no lock. A participant's lines are written by the send clock
//! ([`crate::pacer`]) through its [`Outlet`] — over plain TCP a duplicate of
//! the socket's descriptor, over TLS the connection's writer task holding
//! the write half — kept in [`Shared`] until traffic starts, so the
//! reader's wake-ups never involve sending. What the reader sees goes into
//! its own [`ReceiverLog`]; only counters, batched latencies and problems
//! are shared.
//!
//! Everything here is generic over the stream; the choice between plain TCP
//! and TLS is made once per connection, so the plaintext reader is compiled
//! for tokio's `TcpStream` itself.

mod receive;

use std::net::SocketAddr;
use std::os::fd::AsFd as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use logosnet::connection::{Connection, ReadError};
use logosnet::protocol::{ClientFrame, FrameError, Role, ServerFrame, is_name_refusal};
use logosnet::tls;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadHalf};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::check::{Receiver, ReceiverLog};
use crate::outlet::Outlet;
use crate::shared::{ProblemKind, Shared};
use crate::transport::{ConnectError, Connected, TlsStream, Transport};
use crate::wire::FrameBuffer;

pub use receive::NoticeCounts;

/// What one client leaves behind for the checker.
#[derive(Debug)]
pub struct Outcome {
    /// What it received.
    pub received: ReceiverLog,
    /// Observers: how many times each participant's "has joined" and "has
    /// left" arrived.
    pub notices: Option<NoticeCounts>,
}

/// Runs participant `index` to the end of the run; `stop` ends its reader.
pub async fn participant(
    shared: Arc<Shared>,
    index: u16,
    stop: oneshot::Receiver<()>,
) -> Option<Outcome> {
    let name = shared.names.get(usize::from(index))?.clone();
    let label = format!("participant {name}");
    let joined = join(&shared, Role::Participant, Some((index, &name)), &label).await?;
    let (received, _) = joined
        .read(
            &shared,
            &label,
            Receiver::Participant(index),
            Some(&name),
            stop,
        )
        .await;
    Some(Outcome {
        received,
        notices: None,
    })
}

/// Runs observer `index` (for naming in reports only) to the end of the run;
/// `stop` ends its reader.
pub async fn observer(
    shared: Arc<Shared>,
    index: usize,
    stop: oneshot::Receiver<()>,
) -> Option<Outcome> {
    let label = format!("observer {index}");
    let joined = join(&shared, Role::Observer, None, &label).await?;
    let (received, notices) = joined
        .read(&shared, &label, Receiver::Observer, None, stop)
        .await;
    Some(Outcome { received, notices })
}

/// Who was in the room before loadgen put anyone there, as one observer
/// asked (`Who`) before anything joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preflight {
    /// Nobody but the asking observer.
    Empty,
    /// Someone is there: the participants' names (as the server shows them)
    /// and the observers besides the one that asked.
    Occupied {
        /// The participants, in the order they joined.
        participants: Vec<String>,
        /// Observers other than the asker.
        observers: u32,
    },
    /// The observer role is full: 255 observers are there already.
    ObserversFull,
    /// No answer that says (the server cannot be reached, speaks TLS, or
    /// predates `Who`): the join's own checks decide, as before.
    Unknown(String),
}

/// Asks who is in the room with one observer, which arrives and leaves
/// without a word to anyone (observers are never announced), and closes.
/// Connecting and the answer take at most `timeout`; closing, at most
/// [`logosnet::client::CLOSE_DRAIN`] more.
pub async fn preflight(transport: &Transport, addr: SocketAddr, timeout: Duration) -> Preflight {
    let connected = match tokio::time::timeout(timeout, transport.connect(addr)).await {
        Ok(Ok(connected)) => connected,
        Ok(Err(ConnectError::Tcp(e))) => {
            return Preflight::Unknown(format!("could not connect ({})", e.kind()));
        }
        Ok(Err(ConnectError::Handshake(why))) => return Preflight::Unknown(why),
        Err(_) => return no_answer(timeout),
    };
    match connected {
        Connected::Plain(mut stream) => ask_who(&mut stream, timeout).await,
        Connected::Tls(mut stream) => ask_who(&mut *stream, timeout).await,
    }
}

fn no_answer(timeout: Duration) -> Preflight {
    Preflight::Unknown(format!("no answer within {} s", timeout.as_secs_f64()))
}

/// Says `Hello` as an observer and `Who`, reads until the roster (a join
/// or a line may come first), then half-closes and reads to the end, so
/// the server closes without a reset.
async fn ask_who<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    timeout: Duration,
) -> Preflight {
    let mut buffer = FrameBuffer::new();
    let answer = tokio::time::timeout(timeout, roster(stream, &mut buffer))
        .await
        .unwrap_or_else(|_| no_answer(timeout));
    let _ = stream.shutdown().await;
    let drain = async { while let Ok(Some(_)) = buffer.read_frame(stream).await {} };
    let _ = tokio::time::timeout(logosnet::client::CLOSE_DRAIN, drain).await;
    answer
}

/// The handshake and the question, up to the answer.
async fn roster<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    buffer: &mut FrameBuffer,
) -> Preflight {
    if let Err(e) = write_frame(stream, &ClientFrame::Hello(Role::Observer)).await {
        return Preflight::Unknown(format!("could not send Hello ({})", e.kind()));
    }
    match buffer.read_frame(stream).await {
        Ok(Some(ServerFrame::Accepted)) => {}
        Ok(Some(ServerFrame::Full)) => return Preflight::ObserversFull,
        Ok(Some(other)) => return Preflight::Unknown(format!("answered {}", frame_name(&other))),
        Ok(None) => return Preflight::Unknown("the server closed the connection".into()),
        Err(e) => return Preflight::Unknown(e.to_string()),
    }
    if let Err(e) = write_frame(stream, &ClientFrame::Who).await {
        return Preflight::Unknown(format!("could not ask who is here ({})", e.kind()));
    }
    loop {
        match buffer.read_frame(stream).await {
            Ok(Some(ServerFrame::Roster {
                participants,
                observers,
            })) => {
                let observers = observers.saturating_sub(1);
                break if participants.is_empty() && observers == 0 {
                    Preflight::Empty
                } else {
                    Preflight::Occupied {
                        participants,
                        observers,
                    }
                };
            }
            Ok(Some(ServerFrame::Notice(_) | ServerFrame::Message(_))) => {}
            Ok(Some(other)) => {
                break Preflight::Unknown(format!("answered {}", frame_name(&other)));
            }
            Ok(None) => break Preflight::Unknown("the server closed the connection".into()),
            Err(e) => break Preflight::Unknown(e.to_string()),
        }
    }
}

/// Result of asking for one slot beyond capacity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeAnswer {
    /// The server said `Full`.
    Full,
    /// Anything else (the frame, a close, an error), described.
    Other(String),
}

/// Asks for one more slot of `role` over `transport` and reports the
/// answer; the connection is closed either way.
pub async fn probe(
    transport: &Transport,
    addr: SocketAddr,
    role: Role,
    timeout: Duration,
) -> ProbeAnswer {
    let attempt = async {
        match transport.connect(addr).await {
            Ok(Connected::Plain(mut stream)) => ask_for_a_slot(&mut stream, role).await,
            Ok(Connected::Tls(mut stream)) => ask_for_a_slot(&mut *stream, role).await,
            Err(ConnectError::Tcp(e)) => Err(format!("could not connect ({})", e.kind())),
            Err(ConnectError::Handshake(why)) => Err(why),
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(())) => ProbeAnswer::Full,
        Ok(Err(e)) => ProbeAnswer::Other(e),
        Err(_) => ProbeAnswer::Other(format!("no answer within {} s", timeout.as_secs_f64())),
    }
}

/// Says `Hello(role)` and expects `Full`.
async fn ask_for_a_slot<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    role: Role,
) -> Result<(), String> {
    write_frame(stream, &ClientFrame::Hello(role))
        .await
        .map_err(|e| format!("could not send Hello ({})", e.kind()))?;
    match FrameBuffer::new().read_frame(stream).await {
        Ok(Some(ServerFrame::Full)) => Ok(()),
        Ok(Some(other)) => Err(format!("answered {}", frame_name(&other))),
        Ok(None) => Err("the server closed the connection without an answer".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

/// A frame's name for problem lines: the protocol's name, or in words for
/// the two that carry text.
pub(crate) fn frame_name(frame: &ServerFrame) -> &'static str {
    match frame {
        ServerFrame::Notice(_) => "a notice",
        ServerFrame::Message(_) => "a chat message",
        other => other.name(),
    }
}

/// What a client in the room reads from.
enum ReadSide {
    /// Plain TCP: the socket itself (a participant's lines go out on a
    /// duplicate of it).
    Plain(TcpStream),
    /// TLS with nothing else writing: an observer's whole stream.
    Tls(Box<TlsStream>),
    /// TLS, the read half: a participant's writer task holds the other.
    TlsHalf(ReadHalf<TlsStream>),
}

/// A client in the room.
struct Joined {
    /// Where its reader reads.
    reader: ReadSide,
    /// Holds whatever the server sent right after the handshake.
    buffer: FrameBuffer,
}

impl Joined {
    /// Runs the reader until the connection ends or `stop` fires, on the
    /// stream's own type.
    async fn read(
        self,
        shared: &Shared,
        label: &str,
        who: Receiver,
        me: Option<&str>,
        stop: oneshot::Receiver<()>,
    ) -> (ReceiverLog, Option<NoticeCounts>) {
        let Joined { reader, buffer } = self;
        match reader {
            ReadSide::Plain(stream) => {
                receive::run(shared, label, who, me, stream, buffer, stop).await
            }
            ReadSide::Tls(stream) => {
                receive::run(shared, label, who, me, stream, buffer, stop).await
            }
            ReadSide::TlsHalf(half) => {
                receive::run(shared, label, who, me, half, buffer, stop).await
            }
        }
    }
}

/// Why a client did not get into the room.
enum JoinError {
    /// No TCP connection.
    Connect(std::io::Error),
    /// The role was full.
    Full,
    /// The participant's name was taken.
    NameTaken,
    /// Anything else, described.
    Other(String),
}

/// Joins with the concurrency limit and the phase timeout; on failure counts
/// and describes why, and returns `None`.
async fn join(
    shared: &Arc<Shared>,
    role: Role,
    participant: Option<(u16, &str)>,
    label: &str,
) -> Option<Joined> {
    let timeout = Duration::from_secs_f64(shared.config.phase_timeout);
    let permit = shared.connecting.acquire().await.ok()?;
    let result = tokio::time::timeout(timeout, handshake(shared, role, participant)).await;
    drop(permit);
    let counters = &shared.counters;
    let problems = &shared.problems;
    let error = match result {
        Ok(Ok(joined)) => {
            counters.ready.fetch_add(1, Ordering::Relaxed);
            return Some(joined);
        }
        Ok(Err(e)) => e,
        Err(_) => JoinError::Other(format!("no answer within {} s", timeout.as_secs_f64())),
    };
    counters.failed.fetch_add(1, Ordering::Relaxed);
    match error {
        JoinError::Connect(e) => {
            counters.connect_failed.fetch_add(1, Ordering::Relaxed);
            let _ = shared.connect_error.set(e.kind());
            problems.report(ProblemKind::JoinFailure, || {
                format!("{label}: cannot connect to {}: {}", shared.addr, e.kind())
            });
        }
        JoinError::Full => {
            let refused = match role {
                Role::Participant => &counters.participants_refused,
                Role::Observer => &counters.observers_refused,
            };
            refused.fetch_add(1, Ordering::Relaxed);
            problems.report(ProblemKind::Foreign, || {
                format!("{label}: the server said the room is full")
            });
        }
        JoinError::NameTaken => {
            counters.names_taken.fetch_add(1, Ordering::Relaxed);
            problems.report(ProblemKind::Foreign, || {
                format!("{label}: the name is already taken by someone in the room")
            });
        }
        JoinError::Other(why) => {
            problems.report(ProblemKind::JoinFailure, || format!("{label}: {why}"));
        }
    }
    None
}

/// Connects, says `Hello` (and the participant's name) and, for a
/// participant, keeps its outlet for the send clock.
async fn handshake(
    shared: &Arc<Shared>,
    role: Role,
    participant: Option<(u16, &str)>,
) -> Result<Joined, JoinError> {
    let started = Instant::now();
    let connected = match shared.transport.connect(shared.addr).await {
        Ok(connected) => connected,
        Err(ConnectError::Tcp(e)) => return Err(JoinError::Connect(e)),
        Err(ConnectError::Handshake(why)) => return Err(JoinError::Other(why)),
    };
    let mut buffer = FrameBuffer::new();
    let reader = match connected {
        Connected::Plain(mut stream) => {
            greet(shared, role, participant, started, &mut stream, &mut buffer).await?;
            if let Some((index, _)) = participant {
                // The send clock writes on a duplicate descriptor of the
                // same (non-blocking) socket; the reader keeps this one.
                let sending = stream.as_fd().try_clone_to_owned().map_err(|e| {
                    JoinError::Other(format!("cannot duplicate the socket ({})", e.kind()))
                })?;
                let outlet = Outlet::socket(std::net::TcpStream::from(sending));
                shared.keep_outlet(index, outlet);
            }
            ReadSide::Plain(stream)
        }
        Connected::Tls(mut stream) => {
            greet(
                shared,
                role,
                participant,
                started,
                &mut *stream,
                &mut buffer,
            )
            .await?;
            match participant {
                Some((index, _)) => {
                    let (read, write) = tokio::io::split(*stream);
                    shared.keep_outlet(index, Outlet::writer(shared.clone(), write));
                    ReadSide::TlsHalf(read)
                }
                None => ReadSide::Tls(stream),
            }
        }
    };
    Ok(Joined { reader, buffer })
}

/// Says `Hello`, and for a participant its name, on a connected `stream`
/// and waits for each answer; records the connect time (from `started`)
/// and the join time.
async fn greet<S: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared,
    role: Role,
    participant: Option<(u16, &str)>,
    started: Instant,
    stream: &mut S,
    buffer: &mut FrameBuffer,
) -> Result<(), JoinError> {
    let hello_at = Instant::now();
    send(stream, &ClientFrame::Hello(role)).await?;
    expect(buffer, stream, ServerFrame::Accepted).await?;
    shared.connect.record(started.elapsed().as_micros() as u64);
    let accepted = match role {
        Role::Participant => &shared.counters.participants_accepted,
        Role::Observer => &shared.counters.observers_accepted,
    };
    accepted.fetch_add(1, Ordering::Relaxed);
    if let Some((_, name)) = participant {
        send(stream, &ClientFrame::Username(name.to_owned())).await?;
        expect(buffer, stream, ServerFrame::UsernameAccepted).await?;
        shared.join.record(hello_at.elapsed().as_micros() as u64);
    }
    Ok(())
}

async fn send<S: AsyncWrite + Unpin>(stream: &mut S, frame: &ClientFrame) -> Result<(), JoinError> {
    write_frame(stream, frame).await.map_err(|e| {
        JoinError::Other(format!(
            "the connection failed while joining ({})",
            e.kind()
        ))
    })
}

/// Writes one frame and flushes it, with the library's writer
/// ([`Connection::write_frame`]): the handshake's few frames, off the hot
/// path.
async fn write_frame<S: AsyncWrite + Unpin>(
    stream: &mut S,
    frame: &ClientFrame,
) -> std::io::Result<()> {
    Connection::new(stream).write_frame(frame).await
}

/// Reads the next frame and fails unless it is `want`.
async fn expect<S: AsyncRead + Unpin>(
    buffer: &mut FrameBuffer,
    stream: &mut S,
    want: ServerFrame,
) -> Result<(), JoinError> {
    let wanted = frame_name(&want);
    match buffer.read_frame(stream).await {
        Ok(Some(frame)) if frame == want => Ok(()),
        Ok(Some(ServerFrame::Full)) => Err(JoinError::Full),
        Ok(Some(ServerFrame::UsernameTaken)) => Err(JoinError::NameTaken),
        // Why the name is refused, then the verdict: a look-alike of it in
        // the room is someone else's; anything else is loadgen's own name.
        Ok(Some(ServerFrame::Notice(reason))) if is_name_refusal(&reason) => {
            match buffer.read_frame(stream).await {
                Ok(Some(ServerFrame::UsernameTaken)) => Err(JoinError::NameTaken),
                _ => Err(JoinError::Other(format!(
                    "the server refused the name: {reason}"
                ))),
            }
        }
        Ok(Some(ServerFrame::ProtocolError(reason))) => Err(JoinError::Other(format!(
            "the server refused the handshake: {reason}"
        ))),
        Ok(Some(frame)) => Err(JoinError::Other(format!(
            "expected {wanted}, got {}",
            frame_name(&frame)
        ))),
        Ok(None) => Err(JoinError::Other(format!(
            "the server closed the connection while loadgen waited for {wanted}"
        ))),
        // A TLS server's alert read as a frame header: say what it means.
        Err(ReadError::Frame(FrameError::TooLong(header)))
            if tls::is_tls_record_header(header.to_be_bytes()) =>
        {
            Err(JoinError::Other(format!(
                "the server speaks TLS: {}",
                logosnet::tls::ADD_TLS_HINT
            )))
        }
        Err(e) => Err(JoinError::Other(format!("while waiting for {wanted}: {e}"))),
    }
}
