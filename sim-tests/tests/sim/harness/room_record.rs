//! What the server's room says it did, read from the server's own
//! `tracing` events: which connection id the accept loop gave each peer
//! address (its `accepted` event, with `conn` and `peer`), and the instant
//! the room let each connection go (the room's `let go` event, with
//! `conn`: from then on its slot and name are free, whatever its socket
//! still does).
//!
//! A client cannot always see that instant itself: when the server drops a
//! member whose link is held, its farewell and the close wait in the link
//! (or are not even written, the window being full), and the server's
//! socket lingers up to the close linger, while the room has already
//! given its slot or name to someone else. Checks that ask who is in the
//! room ask this record; the sweep also checks the record against what
//! the clients saw (nothing arrives that was sent after the let-go, every
//! connection let go ends, every admitted connection that ended was let
//! go), so a record that is wrong or missing fails the run instead of
//! weakening it.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use logosnet::room::ConnId;
use tracing::field::{Field, Visit};
use tracing::subscriber::DefaultGuard;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

use super::lock;
use super::log::EventLog;

/// The accept loop's event naming a new connection's id and peer.
const ACCEPTED: &str = "accepted";
/// The room's event for a connection it no longer counts.
const LET_GO: &str = "let go";

/// What the room said it did, by connection.
#[derive(Debug, Default)]
pub struct RoomRecord {
    /// The id each accepted peer address got.
    conns: BTreeMap<SocketAddr, ConnId>,
    /// When the room let each connection go.
    let_go: BTreeMap<ConnId, Duration>,
    /// What could not be recorded (an address accepted twice, a
    /// connection let go twice): a broken record fails the run.
    pub faults: Vec<String>,
}

impl RoomRecord {
    /// The connection id the server gave the client at `peer`, if it
    /// accepted it.
    pub fn conn(&self, peer: SocketAddr) -> Option<ConnId> {
        self.conns.get(&peer).copied()
    }

    /// When the room let the client at `peer` go, if it has.
    pub fn let_go(&self, peer: SocketAddr) -> Option<Duration> {
        self.let_go.get(&self.conn(peer)?).copied()
    }
}

/// A record shared between the tap and the checks.
pub type SharedRecord = Arc<Mutex<RoomRecord>>;

/// Records the server's `accepted` and `let go` events into `record` (and
/// each let-go into `log`) for everything run on this thread — the whole
/// simulation — until the guard is dropped.
pub fn tap_room(record: SharedRecord, log: EventLog) -> DefaultGuard {
    let targets = Targets::new()
        .with_target("logosnet::server::accept", Level::DEBUG)
        .with_target("logosnet::room", Level::DEBUG);
    tracing_subscriber::registry()
        .with(Tap { record, log }.with_filter(targets))
        .set_default()
}

struct Tap {
    record: SharedRecord,
    log: EventLog,
}

impl<S: Subscriber> Layer<S> for Tap {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let (Some(message), Some(conn)) = (fields.message.as_deref(), fields.conn) else {
            return;
        };
        let mut record = lock(&self.record);
        match message {
            ACCEPTED => {
                let Some(peer) = fields.peer.and_then(|p| p.parse::<SocketAddr>().ok()) else {
                    record
                        .faults
                        .push(format!("conn {conn} accepted without a readable peer"));
                    return;
                };
                if let Some(earlier) = record.conns.insert(peer, conn) {
                    record
                        .faults
                        .push(format!("{peer} accepted as conn {earlier} and {conn}"));
                }
            }
            LET_GO => {
                let at = turmoil::sim_elapsed().unwrap_or_default();
                if record.let_go.insert(conn, at).is_some() {
                    record.faults.push(format!("conn {conn} let go twice"));
                }
                let peer = record
                    .conns
                    .iter()
                    .find_map(|(peer, &c)| (c == conn).then_some(*peer));
                drop(record);
                match peer {
                    Some(peer) => self
                        .log
                        .record("server", format_args!("let conn {conn} ({peer}) go")),
                    None => self
                        .log
                        .record("server", format_args!("let conn {conn} go")),
                }
            }
            _ => {}
        }
    }
}

/// The fields of one event the tap reads.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    conn: Option<ConnId>,
    peer: Option<String>,
}

impl Visit for Fields {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "conn" {
            self.conn = Some(value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "message" => self.message = Some(format!("{value:?}")),
            "peer" => self.peer = Some(format!("{value:?}")),
            _ => {}
        }
    }
}
