//! The accept loop: admits sockets up to [`MAX_CONNECTIONS`](super::MAX_CONNECTIONS)
//! and up to the per-address limit ([`super::per_address`]), gives each an
//! id, its two queues and its task, and tells the room.
//!
//! A socket past either limit is told why — `ProtocolError("too many
//! connections from <source>")` or `ProtocolError("server busy")` — and
//! closed by a short-lived task of its own (at most
//! [`MAX_REFUSING`](super::MAX_REFUSING) at once, so refusing cannot itself
//! exhaust descriptors); it never reaches the room. A source's count is
//! released when its connection's task ends.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::task::TaskTracker;

use super::connection::{self, Link, Policy, Signals};
use super::driver::Handles;
use super::inbox::Inbox;
use super::outbox::{Outbox, Totals};
use super::per_address::{AddressCounts, AddressGroup, AddressLimit};
use super::{Event, Listener, MAX_REFUSING, ServerConfig};
use crate::codec;
use crate::protocol::{self, ServerFrame};
use crate::room::ConnId;

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
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let limit = AddressLimit {
        max_per_address: config.max_per_address,
        limit_loopback: config.limit_loopback,
    };
    let counts = Arc::new(Mutex::new(AddressCounts::default()));
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
        let admitted = lock(&counts).admit(&limit, peer.ip());
        let source = match admitted {
            Ok(group) => AddressSlot {
                counts: counts.clone(),
                group,
            },
            Err(group) => {
                // Info, not warn: one host reconnecting in a loop would
                // otherwise fill the log.
                tracing::info!(%peer, %group, max = limit.max_per_address, "too many connections from one source; refusing");
                if let Ok(refusal) = refusing.clone().try_acquire_owned() {
                    tracker.spawn(async move {
                        refuse(stream, protocol::too_many_connections_from(group)).await;
                        drop(refusal);
                    });
                }
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max = config.max_connections, "too many connections; refusing");
            drop(source);
            if let Ok(refusal) = refusing.clone().try_acquire_owned() {
                tracker.spawn(async move {
                    refuse(stream, protocol::server_busy()).await;
                    drop(refusal);
                });
            }
            continue;
        };
        let conn = next_id;
        next_id += 1;
        tracing::debug!(conn, %peer, "accepted");
        let inbox = Arc::new(Inbox::default());
        let outbox = Arc::new(Outbox::new(config.queue_marks(), totals.clone()));
        let handles = Handles {
            inbox: inbox.clone(),
            outbox: outbox.clone(),
        };
        if events.send(Event::Opened(conn, handles)).is_err() {
            return;
        }
        let link = Link {
            conn,
            inbox,
            outbox,
            events: events.clone(),
            signals: signals.clone(),
        };
        tracker.spawn(async move {
            connection::run(stream, link, policy).await;
            drop(permit);
            drop(source);
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
