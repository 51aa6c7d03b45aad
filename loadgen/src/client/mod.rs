//! One participant's or observer's connection, through every phase.
//!
//! A client joins here (connect, `Hello`, and for a participant its name),
//! then its socket is split between two tasks that never wait on each other:
//! - [`receive`]: the shared reader of both roles. It owns the read half and
//!   does one pass over each read, checking every frame in place; it is the
//!   hot path and takes no lock.
//! - [`send`]: a participant's sender. It owns the write half and writes its
//!   share of the open-loop schedule when the send clock releases a slot.
//!
//! Splitting them keeps the reader's wake-ups free of the sender's slot
//! semaphore and phase channel, which would otherwise be polled (and lock)
//! on every read. What each side sees goes into its own [`ReceiverLog`] /
//! [`SenderLog`]; only counters, batched latencies and problems are shared.

mod receive;
mod send;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use logosnet::protocol::{self, ClientFrame, Role, ServerFrame};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::oneshot;

use crate::check::{Receiver, ReceiverLog, SenderLog};
use crate::shared::{ProblemKind, Shared};
use crate::wire::FrameBuffer;

pub use receive::NoticeCounts;

/// What one client leaves behind for the checker.
#[derive(Debug)]
pub struct Outcome {
    /// What it received.
    pub received: ReceiverLog,
    /// What it sent (participants).
    pub sent: Option<SenderLog>,
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
    let joined = join(&shared, Role::Participant, Some(&name), &label).await?;
    let sender = tokio::spawn(send::run(shared.clone(), index, joined.write));
    let (received, _) = receive::run(
        &shared,
        &label,
        Receiver::Participant(index),
        Some(&name),
        joined.read,
        joined.buffer,
        stop,
    )
    .await;
    let sent = sender.await.ok();
    Some(Outcome {
        received,
        sent,
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
    // An observer never writes after its Hello; the write half stays open
    // until it is done so that the server does not see it leave early.
    let _write = joined.write;
    let (received, notices) = receive::run(
        &shared,
        &label,
        Receiver::Observer,
        None,
        joined.read,
        joined.buffer,
        stop,
    )
    .await;
    Some(Outcome {
        received,
        sent: None,
        notices,
    })
}

/// Result of asking for one slot beyond capacity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeAnswer {
    /// The server said `Full`.
    Full,
    /// Anything else (the frame, a close, an error), described.
    Other(String),
}

/// Asks for one more slot of `role` and reports the answer; the connection is
/// closed either way.
pub async fn probe(addr: SocketAddr, role: Role, timeout: Duration) -> ProbeAnswer {
    let attempt = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("could not connect ({})", e.kind()))?;
        let _ = stream.set_nodelay(true);
        stream
            .write_all(&protocol::encode(&ClientFrame::Hello(role)))
            .await
            .map_err(|e| format!("could not send Hello ({})", e.kind()))?;
        match FrameBuffer::new().read_frame(&mut stream).await {
            Ok(Some(ServerFrame::Full)) => Ok(()),
            Ok(Some(other)) => Err(format!("answered {}", frame_name(&other))),
            Ok(None) => Err("the server closed the connection without an answer".to_owned()),
            Err(e) => Err(e.to_string()),
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(())) => ProbeAnswer::Full,
        Ok(Err(e)) => ProbeAnswer::Other(e),
        Err(_) => ProbeAnswer::Other(format!("no answer within {} s", timeout.as_secs_f64())),
    }
}

/// A frame's name as the protocol documents it, for problem lines.
pub(crate) fn frame_name(frame: &ServerFrame) -> &'static str {
    match frame {
        ServerFrame::Accepted => "Accepted",
        ServerFrame::Full => "Full",
        ServerFrame::UsernameAccepted => "UsernameAccepted",
        ServerFrame::UsernameTaken => "UsernameTaken",
        ServerFrame::UsernameInvalid => "UsernameInvalid",
        ServerFrame::UsernameTimeout => "UsernameTimeout",
        ServerFrame::Notice(_) => "a notice",
        ServerFrame::Message(_) => "a chat message",
        ServerFrame::ProtocolError(_) => "ProtocolError",
    }
}

/// A client in the room, its socket split for the reader and the sender.
struct Joined {
    read: OwnedReadHalf,
    write: OwnedWriteHalf,
    /// Holds whatever the server sent right after the handshake.
    buffer: FrameBuffer,
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
async fn join(shared: &Shared, role: Role, name: Option<&str>, label: &str) -> Option<Joined> {
    let timeout = Duration::from_secs_f64(shared.config.phase_timeout);
    let permit = shared.connecting.acquire().await.ok()?;
    let result = tokio::time::timeout(timeout, handshake(shared, role, name)).await;
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

async fn handshake(shared: &Shared, role: Role, name: Option<&str>) -> Result<Joined, JoinError> {
    let started = Instant::now();
    let stream = TcpStream::connect(shared.addr)
        .await
        .map_err(JoinError::Connect)?;
    let _ = stream.set_nodelay(true);
    let (mut read, mut write) = stream.into_split();
    let mut buffer = FrameBuffer::new();
    let hello_at = Instant::now();
    send(&mut write, &ClientFrame::Hello(role)).await?;
    expect(&mut buffer, &mut read, ServerFrame::Accepted).await?;
    shared.connect.record(started.elapsed().as_micros() as u64);
    let accepted = match role {
        Role::Participant => &shared.counters.participants_accepted,
        Role::Observer => &shared.counters.observers_accepted,
    };
    accepted.fetch_add(1, Ordering::Relaxed);
    if let Some(name) = name {
        send(&mut write, &ClientFrame::Username(name.to_owned())).await?;
        expect(&mut buffer, &mut read, ServerFrame::UsernameAccepted).await?;
        shared.join.record(hello_at.elapsed().as_micros() as u64);
    }
    Ok(Joined {
        read,
        write,
        buffer,
    })
}

async fn send(write: &mut OwnedWriteHalf, frame: &ClientFrame) -> Result<(), JoinError> {
    write
        .write_all(&protocol::encode(frame))
        .await
        .map_err(|e| {
            JoinError::Other(format!(
                "the connection failed while joining ({})",
                e.kind()
            ))
        })
}

/// Reads the next frame and fails unless it is `want`.
async fn expect(
    buffer: &mut FrameBuffer,
    read: &mut OwnedReadHalf,
    want: ServerFrame,
) -> Result<(), JoinError> {
    let wanted = frame_name(&want);
    match buffer.read_frame(read).await {
        Ok(Some(frame)) if frame == want => Ok(()),
        Ok(Some(ServerFrame::Full)) => Err(JoinError::Full),
        Ok(Some(ServerFrame::UsernameTaken)) => Err(JoinError::NameTaken),
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
        Err(e) => Err(JoinError::Other(format!("while waiting for {wanted}: {e}"))),
    }
}
