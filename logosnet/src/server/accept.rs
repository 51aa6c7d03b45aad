//! The accept loop: judges each socket as it is accepted, gives the ones
//! it admits an id, their two queues and their task, and tells the room.
//!
//! In order, each cheaper than the next and all before any TLS work:
//! 1. the source's connection rate ([`super::connect_rate`]): past it, the
//!    socket is told `too many new connections from <source>; try again in
//!    N s` — or, on a TLS port, where saying anything takes a handshake,
//!    simply closed;
//! 2. the source's open connections ([`super::per_address`]): past them,
//!    `too many connections from <source>`;
//! 3. the socket table ([`MAX_CONNECTIONS`](super::MAX_CONNECTIONS)): a
//!    socket that finds it full is still admitted, flagged
//!    [`Table::Full`], and the room makes room for it by closing an older
//!    connection that has not got far (or refuses it, `server busy`, when
//!    every older one is a member); up to
//!    [`MAX_MAKING_ROOM`](super::MAX_MAKING_ROOM) sockets past the table
//!    at once, and past that `server busy` at once, so a storm cannot
//!    exhaust descriptors.
//!
//! A refused socket never reaches the room; it is told why and closed by a
//! short-lived task of its own (at most [`MAX_REFUSING`](super::MAX_REFUSING)
//! at once, so refusing cannot itself exhaust descriptors; past that it is
//! just closed). A source's count is released when its connection's task
//! ends. Refusals are logged at debug one by one and counted in an info
//! line every [`REFUSAL_SUMMARY_EVERY`], so that a storm does not turn
//! into a storm of log lines on the room's thread.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use super::connect_rate::ConnectRates;
use super::connection::{self, Link, Policy, Signals};
use super::driver::Handles;
use super::inbox::Inbox;
use super::metrics::Refusal;
use super::outbox::{Outbox, Totals};
use super::per_address::{self, AddressCounts, AddressGroup, AddressLimit};
use super::{Event, Listener, MAX_MAKING_ROOM, MAX_REFUSING, ServerConfig, Table};
use crate::codec;
use crate::protocol::{self, ServerFrame};
use crate::room::ConnId;

/// How often the count of refused sockets is logged (with the next accept
/// after it), rather than a line for each.
pub(super) const REFUSAL_SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// How long a refused socket may take to receive its `ProtocolError`.
const REFUSE_LINGER: Duration = Duration::from_secs(1);

/// One counted connection of a source; released when dropped (when the
/// connection's task ends, however it ends).
struct AddressSlot {
    /// The counts it was taken from and goes back to.
    counts: Arc<Mutex<AddressCounts>>,
    /// The source it counts against; `None` for one not counted (loopback, or the limit off).
    group: Option<AddressGroup>,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        if let Some(group) = self.group {
            lock(&self.counts).release(group);
        }
    }
}

fn lock(counts: &Mutex<AddressCounts>) -> std::sync::MutexGuard<'_, AddressCounts> {
    counts.lock().unwrap_or_else(|e| e.into_inner())
}

pub(super) async fn accept_loop<L: Listener>(
    mut listener: L,
    config: ServerConfig,
    events: mpsc::UnboundedSender<Event>,
    totals: Arc<Totals>,
    tracker: TaskTracker,
    signals: Signals,
) {
    let table = config.max_connections.max(1);
    let sockets = Arc::new(Semaphore::new(table + MAX_MAKING_ROOM));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let limit = AddressLimit {
        max_per_address: config.max_per_address,
        limit_loopback: config.limit_loopback,
    };
    let counts = Arc::new(Mutex::new(AddressCounts::default()));
    let mut rates = ConnectRates::default();
    let mut refusals = Refusals::new(Instant::now());
    let policy = Policy {
        busy_frames: config.busy_write_frames.max(1),
        gap: config.write_gap,
        linger: config.close_linger,
        close_deadline: config.max_lag,
        frame_deadline: config.frame_deadline,
    };
    let mut next_id: ConnId = 1;
    let mut backoff = Duration::from_millis(10);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => {
                backoff = Duration::from_millis(10);
                accepted
            }
            Err(e) => {
                // EMFILE and friends: pause rather than spin.
                tracing::warn!(error = %e, pause_ms = backoff.as_millis() as u64, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let now = Instant::now();
        refusals.maybe_log(now);
        if !per_address::is_exempt(peer.ip(), config.limit_loopback) {
            let group = AddressGroup::of(peer.ip());
            if let Err(wait) = rates.admit(&config.connect_rate, now.into_std(), group) {
                tracing::debug!(%peer, %group, wait_ms = wait.as_millis() as u64, "too many new connections from one source; refusing");
                refusals.rate += 1;
                if let Some(metrics) = &config.metrics {
                    metrics.refused_at_accept(Refusal::Rate);
                }
                let reason = protocol::too_many_new_connections_from(group, wait);
                refuse_soon::<L>(stream, reason, &refusing, &tracker);
                continue;
            }
        }
        let admitted = lock(&counts).admit(&limit, peer.ip());
        let source = match admitted {
            Ok(group) => AddressSlot {
                counts: counts.clone(),
                group,
            },
            Err(group) => {
                tracing::debug!(%peer, %group, max = limit.max_per_address, "too many connections from one source; refusing");
                refusals.per_address += 1;
                if let Some(metrics) = &config.metrics {
                    metrics.refused_at_accept(Refusal::PerAddress);
                }
                let reason = protocol::too_many_connections_from(group);
                refuse_soon::<L>(stream, reason, &refusing, &tracker);
                continue;
            }
        };
        // Sockets open now, lingering ones included: the table is full
        // when they fill it, whoever holds them.
        let open = table + MAX_MAKING_ROOM - sockets.available_permits();
        let Ok(permit) = sockets.clone().try_acquire_owned() else {
            tracing::debug!(%peer, max = table + MAX_MAKING_ROOM, "no room can be made for more sockets; refusing");
            refusals.busy += 1;
            if let Some(metrics) = &config.metrics {
                metrics.refused_at_accept(Refusal::Busy);
            }
            drop(source);
            refuse_soon::<L>(stream, protocol::server_busy(), &refusing, &tracker);
            continue;
        };
        let place = if open >= table {
            Table::Full
        } else {
            Table::HadRoom
        };
        let conn = next_id;
        next_id += 1;
        if let Some(metrics) = &config.metrics {
            metrics.accepted();
        }
        if let Some(peers) = &config.peers {
            peers.opened(conn, peer);
        }
        tracing::debug!(conn, %peer, ?place, "accepted");
        let inbox = Arc::new(Inbox::default());
        let outbox = Arc::new(Outbox::new(config.queue_marks(), totals.clone()));
        let handles = Handles {
            inbox: inbox.clone(),
            outbox: outbox.clone(),
        };
        if events.send(Event::Opened(conn, handles, place)).is_err() {
            return;
        }
        let link = Link {
            conn,
            inbox,
            outbox,
            events: events.clone(),
            signals: signals.clone(),
        };
        let peers = config.peers.clone();
        tracker.spawn(async move {
            connection::run(stream, link, policy).await;
            if let Some(peers) = peers {
                peers.closed(conn);
            }
            drop(permit);
            drop(source);
        });
    }
}

/// Sockets refused since the last summary, by why.
struct Refusals {
    /// When the last summary was logged.
    since: Instant,
    /// Past their source's connection rate.
    rate: u64,
    /// Past their source's open connections.
    per_address: u64,
    /// Past the table and the room being made.
    busy: u64,
}

impl Refusals {
    fn new(now: Instant) -> Self {
        Self {
            since: now,
            rate: 0,
            per_address: 0,
            busy: 0,
        }
    }

    /// Logs the counts if [`REFUSAL_SUMMARY_EVERY`] has passed and any
    /// socket was refused, and starts counting again.
    fn maybe_log(&mut self, now: Instant) {
        if now.duration_since(self.since) < REFUSAL_SUMMARY_EVERY {
            return;
        }
        let (rate, per_address, busy) = (self.rate, self.per_address, self.busy);
        if rate + per_address + busy > 0 {
            let secs = now.duration_since(self.since).as_secs();
            if busy > 0 {
                tracing::warn!(rate, per_address, busy, secs, "sockets refused at accept");
            } else {
                tracing::info!(rate, per_address, secs, "sockets refused at accept");
            }
        }
        *self = Self::new(now);
    }
}

/// Refuses `stream` without holding up the accept loop: a plaintext one
/// is told `reason` by a task of its own (if fewer than
/// [`MAX_REFUSING`] are lingering, else it is just closed); one that
/// cannot be told anything without a TLS handshake is closed at once.
fn refuse_soon<L: Listener>(
    stream: L::Stream,
    reason: ServerFrame,
    refusing: &Arc<Semaphore>,
    tracker: &TaskTracker,
) {
    if !L::is_plaintext(&stream) {
        return;
    }
    if let Ok(refusal) = refusing.clone().try_acquire_owned() {
        tracker.spawn(async move {
            refuse(stream, reason).await;
            drop(refusal);
        });
    }
}

/// Tells a socket why it is not served, and closes it without letting a
/// reset overtake the reason.
pub(super) async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, reason: ServerFrame) {
    let Ok(frame) = codec::encode(&reason) else {
        return;
    };
    let _ = tokio::time::timeout(REFUSE_LINGER, async {
        if stream.write_all(&frame).await.is_err() {
            return;
        }
        let _ = stream.shutdown().await;
        let mut sink = [0u8; 1024];
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}
