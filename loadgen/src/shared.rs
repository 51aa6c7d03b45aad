//! What the client tasks and the orchestrator share: the run's phase, the
//! counters the orchestrator waits on, the problems found, the latency
//! histograms and the settings. Everything here is updated with atomics or a
//! short lock; nothing on it blocks.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::sync::Semaphore;

use crate::config::Config;
use crate::stats::Latencies;

/// Where the run is; clients follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Connecting and joining.
    Joining,
    /// Traffic started at this instant (participants send on schedule).
    Traffic(Instant),
    /// No more sends, even if a participant is behind its schedule; wait for
    /// outstanding deliveries.
    Drain,
    /// Participants leave; observers count the "has left" notices.
    Leave,
    /// Everyone closes.
    Close,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Joining => "joining",
            Phase::Traffic(_) => "traffic",
            Phase::Drain => "drain",
            Phase::Leave => "leave",
            Phase::Close => "close",
        })
    }
}

/// Counters the orchestrator and the progress display read.
#[derive(Debug, Default)]
pub struct Counters {
    /// Clients that got `Accepted`.
    pub accepted: AtomicU64,
    /// Clients fully in the room (observers: accepted; participants: named).
    pub ready: AtomicU64,
    /// Clients that failed before they were ready.
    pub failed: AtomicU64,
    /// Chat lines written.
    pub sent: AtomicU64,
    /// Of which private.
    pub sent_private: AtomicU64,
    /// First, intact receipts of messages (expected or not).
    pub delivered: AtomicU64,
    /// Participants that finished their schedule.
    pub senders_done: AtomicU64,
    /// Observers that have seen every participant's "has left".
    pub observers_done: AtomicU64,
    /// Participants whose connection the server closed after they left.
    pub participants_closed: AtomicU64,
}

/// What went wrong, by kind, with a few examples.
#[derive(Debug, Default)]
pub struct Problems {
    /// `Full` outside the capacity probe.
    pub unexpected_full: AtomicU64,
    /// The server closed a connection (or it failed) before the client left.
    pub unexpected_close: AtomicU64,
    /// `ProtocolError` received.
    pub protocol_errors: AtomicU64,
    /// Messages that are not byte for byte what was sent.
    pub garbled: AtomicU64,
    /// Any other frame out of place (a "has left" during traffic, a warning).
    pub unexpected_frames: AtomicU64,
    /// Clients that could not connect or join.
    pub join_failures: AtomicU64,
    /// The first few descriptions.
    examples: Mutex<Vec<String>>,
}

/// Descriptions kept in [`Problems`].
const PROBLEM_EXAMPLES: usize = 20;

/// Descriptions kept per kind of problem, so one flood does not hide others.
const EXAMPLES_PER_KIND: u64 = 4;

impl Problems {
    /// Counts one problem and keeps its description if there is room.
    pub fn report(&self, counter: &AtomicU64, what: impl FnOnce() -> String) {
        let seen = counter.fetch_add(1, Ordering::Relaxed);
        if seen >= EXAMPLES_PER_KIND {
            return;
        }
        let mut examples = self.examples.lock().unwrap_or_else(|e| e.into_inner());
        if examples.len() < PROBLEM_EXAMPLES {
            examples.push(what());
        }
    }

    /// The descriptions kept.
    pub fn examples(&self) -> Vec<String> {
        self.examples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Everything the client tasks share.
#[derive(Debug)]
pub struct Shared {
    /// The run's settings.
    pub config: Config,
    /// The server.
    pub addr: SocketAddr,
    /// Plain TCP or TLS.
    pub transport: crate::transport::Transport,
    /// Every participant's name, by index (built once, so addressing a
    /// private message allocates nothing).
    pub names: Vec<String>,
    /// Time zero of the run: scheduled times in messages count from here.
    pub epoch: Instant,
    /// Bounds concurrent connects and handshakes.
    pub connecting: Semaphore,
    /// Counters.
    pub counters: Counters,
    /// Problems.
    pub problems: Problems,
    /// Scheduled send → receipt, every delivery.
    pub delivery: Latencies,
    /// Scheduled send → write started (loadgen's own lag).
    pub send_lag: Latencies,
    /// Connect started → `Accepted`.
    pub connect: Latencies,
    /// `Hello` written → `UsernameAccepted`.
    pub join: Latencies,
    /// The send clock's due slots, one queue per participant.
    pub slots: std::sync::Arc<crate::pacer::Slots>,
}

impl Shared {
    pub(crate) fn micros_since_epoch(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_micros() as u64
    }
}
