//! The accept loop: admits sockets up to [`MAX_CONNECTIONS`](super::MAX_CONNECTIONS),
//! gives each an id, its two queues and its task, and tells the room.
//!
//! A socket past the limit is told `ProtocolError("server busy")` and closed
//! by a short-lived task of its own (at most [`MAX_REFUSING`](super::MAX_REFUSING)
//! at once, so refusing cannot itself exhaust descriptors); it never reaches
//! the room.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::task::TaskTracker;

use super::connection::{self, Link, Policy};
use super::driver::Handles;
use super::inbox::Inbox;
use super::outbox::{Outbox, Totals};
use super::{Event, Listener, MAX_REFUSING, ServerConfig};
use crate::protocol::{self, ServerFrame};
use crate::room::ConnId;

/// The reason a socket past the connection limit is given.
pub(super) const SERVER_BUSY: &str = "server busy";

/// How long a refused socket may take to receive its `ProtocolError`.
const REFUSE_LINGER: Duration = Duration::from_secs(1);

pub(super) async fn accept_loop<L: Listener>(
    mut listener: L,
    config: ServerConfig,
    events: mpsc::UnboundedSender<Event>,
    totals: Arc<Totals>,
    tracker: TaskTracker,
) {
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let policy = Policy {
        busy_frames: config.busy_write_frames.max(1),
        gap: config.write_gap,
        linger: config.close_linger,
        stall_grace: config.stall_grace,
        write_deadline: config.write_deadline,
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
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max = config.max_connections, "too many connections; refusing");
            if let Ok(refusal) = refusing.clone().try_acquire_owned() {
                tracker.spawn(async move {
                    refuse(stream, SERVER_BUSY).await;
                    drop(refusal);
                });
            }
            continue;
        };
        let conn = next_id;
        next_id += 1;
        tracing::debug!(conn, %peer, "accepted");
        let inbox = Arc::new(Inbox::default());
        let outbox = Arc::new(Outbox::new(config.max_queued_bytes, totals.clone()));
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
        };
        tracker.spawn(async move {
            connection::run(stream, link, policy).await;
            drop(permit);
        });
    }
}

/// Tells a socket why it is not served, and closes it without letting a
/// reset overtake the reason.
pub(super) async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, reason: &str) {
    let frame = protocol::encode(&ServerFrame::ProtocolError(reason.into()));
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
