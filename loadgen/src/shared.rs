//! What the client tasks, the send clock and the orchestrator share: the
//! run's phase, the counters the orchestrator waits on, the problems found,
//! the latency histograms, the participants' outlets, the transport and the
//! settings. Everything here is updated with atomics or a
//! short lock taken on a rare path (a problem, a full latency batch, a phase
//! change); nothing a delivery does takes a lock.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use tokio::sync::Semaphore;

use crate::config::Config;
use crate::outlet::Outlet;
use crate::stats::Latencies;
use crate::transport::Transport;

/// Where the run is; clients follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Phase {
    /// Connecting and joining.
    Joining = 0,
    /// The send clock writes the schedule.
    Traffic = 1,
    /// No more sends, even if a participant is behind its schedule; wait for
    /// outstanding deliveries.
    Drain = 2,
    /// Participants leave; observers count the "has left" notices.
    Leave = 3,
    /// Everyone closes.
    Close = 4,
}

impl Phase {
    fn from_u8(value: u8) -> Self {
        match value {
            0 => Phase::Joining,
            1 => Phase::Traffic,
            2 => Phase::Drain,
            3 => Phase::Leave,
            _ => Phase::Close,
        }
    }

    /// True once participants have been told to leave.
    pub fn leaving(self) -> bool {
        self >= Phase::Leave
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Joining => "joining",
            Phase::Traffic => "traffic",
            Phase::Drain => "drain",
            Phase::Leave => "leave",
            Phase::Close => "close",
        })
    }
}

/// The current phase: an atomic, so the receive path reads it on every read
/// without a lock. Clients never wait for a change: the reader is stopped by
/// its own signal, and the send clock is told directly.
#[derive(Debug)]
pub struct PhaseBoard {
    /// The [`Phase`] now, as its `u8`.
    now: AtomicU8,
    /// Set when participants were told to leave (the `Close` that follows
    /// stays distinguishable from a run stopped while joining).
    leave_ran: AtomicBool,
}

impl Default for PhaseBoard {
    fn default() -> Self {
        Self {
            now: AtomicU8::new(Phase::Joining as u8),
            leave_ran: AtomicBool::new(false),
        }
    }
}

impl PhaseBoard {
    /// Moves the run to `phase`.
    pub fn set(&self, phase: Phase) {
        if phase == Phase::Leave {
            self.leave_ran.store(true, Ordering::Release);
        }
        self.now.store(phase as u8, Ordering::Release);
    }

    /// The phase now.
    pub fn now(&self) -> Phase {
        Phase::from_u8(self.now.load(Ordering::Acquire))
    }

    /// Whether the leave phase has begun (participants were told to leave).
    pub fn leave_ran(&self) -> bool {
        self.leave_ran.load(Ordering::Acquire)
    }
}

/// Counters the orchestrator and the progress display read.
#[derive(Debug, Default)]
pub struct Counters {
    /// Participants that got `Accepted` (a participant slot).
    pub participants_accepted: AtomicU64,
    /// Observers that got `Accepted`.
    pub observers_accepted: AtomicU64,
    /// Participants refused with `Full` while joining.
    pub participants_refused: AtomicU64,
    /// Observers refused with `Full` while joining.
    pub observers_refused: AtomicU64,
    /// Participants whose name was taken (by someone not in this run).
    pub names_taken: AtomicU64,
    /// Clients fully in the room (observers: accepted; participants: named).
    pub ready: AtomicU64,
    /// Clients that failed before they were ready.
    pub failed: AtomicU64,
    /// Clients that could not even open a connection.
    pub connect_failed: AtomicU64,
    /// Chat lines written.
    pub sent: AtomicU64,
    /// Of which private.
    pub sent_private: AtomicU64,
    /// First, intact receipts of messages (expected or not), added once per
    /// read.
    pub delivered: AtomicU64,
    /// Observers that have seen every participant's "has left".
    pub observers_done: AtomicU64,
    /// Participants whose connection the server closed after they left.
    pub participants_closed: AtomicU64,
}

/// The kinds of problem a run can meet, in the order a report explains them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// Someone not in this run is in the room: a `Full` or a taken name
    /// while joining, a notice or a message naming someone else.
    Foreign,
    /// A client could not connect or join for another reason.
    JoinFailure,
    /// `Full` outside the capacity probe and the join.
    UnexpectedFull,
    /// The server closed a connection (or it failed) before the client left.
    UnexpectedClose,
    /// A participant left and the server did not close its connection.
    NotClosedAfterLeave,
    /// `ProtocolError` received, or frames that do not decode.
    ProtocolError,
    /// A message that is not byte for byte what was sent.
    Garbled,
    /// Any other frame out of place (a "has left" during traffic, a warning).
    UnexpectedFrame,
}

impl ProblemKind {
    /// Every kind, in report order.
    pub const ALL: [ProblemKind; 8] = [
        ProblemKind::Foreign,
        ProblemKind::JoinFailure,
        ProblemKind::UnexpectedFull,
        ProblemKind::UnexpectedClose,
        ProblemKind::NotClosedAfterLeave,
        ProblemKind::ProtocolError,
        ProblemKind::Garbled,
        ProblemKind::UnexpectedFrame,
    ];
}

/// Descriptions kept per kind of problem, so one flood does not hide others.
const EXAMPLES_PER_KIND: u64 = 4;

/// What went wrong, by kind, with a few examples of each.
#[derive(Debug, Default)]
pub struct Problems {
    /// Problems seen, by kind (indexed by the kind's discriminant).
    counts: [AtomicU64; ProblemKind::ALL.len()],
    /// The first [`EXAMPLES_PER_KIND`] descriptions of each kind, in order.
    examples: Mutex<Vec<(ProblemKind, String)>>,
}

impl Problems {
    /// Counts one problem and keeps its description if it is among the
    /// first few of its kind.
    pub fn report(&self, kind: ProblemKind, what: impl FnOnce() -> String) {
        let seen = self.counts[kind as usize].fetch_add(1, Ordering::Relaxed);
        if seen < EXAMPLES_PER_KIND {
            self.lock().push((kind, what()));
        }
    }

    /// Problems of `kind` so far.
    pub fn count(&self, kind: ProblemKind) -> u64 {
        self.counts[kind as usize].load(Ordering::Relaxed)
    }

    /// The descriptions kept, in the order they happened.
    pub fn examples(&self) -> Vec<(ProblemKind, String)> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(ProblemKind, String)>> {
        self.examples.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The most foreign names remembered (enough to name them in a report).
const FOREIGN_NAMES_KEPT: usize = 32;

/// Everything the client tasks share.
#[derive(Debug)]
pub struct Shared {
    /// The run's settings.
    pub config: Config,
    /// The server.
    pub addr: SocketAddr,
    /// Plain TCP or TLS: how every connection is opened.
    pub transport: Transport,
    /// Every participant's name, by index (built once, so addressing a
    /// private message allocates nothing).
    pub names: Vec<String>,
    /// Time zero of the run: scheduled times in messages count from here.
    pub epoch: Instant,
    /// The phase.
    pub phase: PhaseBoard,
    /// Bounds concurrent connects and handshakes.
    pub connecting: Semaphore,
    /// Counters.
    pub counters: Counters,
    /// Problems.
    pub problems: Problems,
    /// Names seen in notices or messages that are not this run's (distinct,
    /// at most [`FOREIGN_NAMES_KEPT`]).
    foreign_names: Mutex<Vec<String>>,
    /// Why the first connection attempt that failed to connect failed.
    pub connect_error: OnceLock<std::io::ErrorKind>,
    /// Scheduled send → receipt, every delivery.
    pub delivery: Latencies,
    /// Scheduled send → line handed to the socket (loadgen's own lag).
    pub send_lag: Latencies,
    /// How long a task made ready waits for the runtime to run it, sampled
    /// during traffic and drain: the wait a reader meets when loadgen's
    /// receive side is busy or starved of CPU.
    pub runtime_delay: Latencies,
    /// Connect started → `Accepted`.
    pub connect: Latencies,
    /// `Hello` written → `UsernameAccepted`.
    pub join: Latencies,
    /// Each joined participant's outlet (a duplicate of the socket its
    /// reader holds, or its TLS writer), by index, until the send clock
    /// takes them.
    outlets: Mutex<Vec<Option<Outlet>>>,
}

impl Shared {
    /// State for a run of `config` against `addr` over `transport`.
    pub fn new(config: Config, addr: SocketAddr, transport: Transport) -> Self {
        Self {
            connecting: Semaphore::new(config.connect_concurrency),
            names: (0..config.participants)
                .map(|i| crate::message::participant_name(&config.name_prefix, i as u16))
                .collect(),
            outlets: Mutex::new((0..config.participants).map(|_| None).collect()),
            config,
            addr,
            transport,
            epoch: Instant::now(),
            phase: PhaseBoard::default(),
            counters: Counters::default(),
            problems: Problems::default(),
            foreign_names: Mutex::new(Vec::new()),
            connect_error: OnceLock::new(),
            delivery: Latencies::default(),
            send_lag: Latencies::default(),
            runtime_delay: Latencies::default(),
            connect: Latencies::default(),
            join: Latencies::default(),
        }
    }

    pub(crate) fn micros_since_epoch(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_micros() as u64
    }

    /// Notes a participant name that is not this run's; true the first time
    /// it is seen.
    pub fn note_foreign_name(&self, name: &str) -> bool {
        let mut names = self.foreign_names.lock().unwrap_or_else(|e| e.into_inner());
        if names.iter().any(|n| n == name) || names.len() >= FOREIGN_NAMES_KEPT {
            return false;
        }
        names.push(name.to_owned());
        true
    }

    /// Keeps participant `index`'s outlet for the send clock.
    pub fn keep_outlet(&self, index: u16, outlet: Outlet) {
        let mut outlets = self.outlets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = outlets.get_mut(usize::from(index)) {
            *slot = Some(outlet);
        }
    }

    /// Takes every participant's outlet (`None` where one did not join).
    pub fn take_outlets(&self) -> Vec<Option<Outlet>> {
        std::mem::take(&mut *self.outlets.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The foreign names seen, in order.
    pub fn foreign_names(&self) -> Vec<String> {
        self.foreign_names
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
