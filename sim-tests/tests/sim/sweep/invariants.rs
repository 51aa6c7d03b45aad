//! What the sweep's clients saw, and the invariants of issue 4 checked on
//! it after every step: unique names, no role past its limit, every line
//! at most once and in per-sender order, private lines only to their
//! target, over-long lines never, nobody that kept pace dropped, and —
//! where no held link can still delay it — every line owed delivered.
//! Nothing here predicts the server's output beyond those invariants.
//!
//! Who is in the room is judged as the protocol defines it: a member is
//! gone once the server has let it go — freed its slot and name, sent its
//! `left` and queued its close — even if the client has not seen the close
//! yet (a held link delays the close; a full window keeps the farewell
//! from even being written). The clients cannot see that instant, so the
//! checks take it from the room's own record (`harness::room_record`),
//! and check that record against what the clients saw.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use logosnet::protocol::{ClientFrame, Role};
use logosnet::room::flood;

use super::{HOSTS, SWEEP_MAX_OBSERVERS, SWEEP_MAX_PARTICIPANTS};
use crate::harness::EventLog;
use crate::harness::room_record::SharedRecord;

/// Before the final check, a line is owed to a member only this long after
/// it was sent and after any held link on its way was released: under
/// 1-byte pieces and 25 ms latency a backlog drains at a few KiB/s.
const DELIVERY_BOUND: Duration = Duration::from_secs(2);

/// One sent chat line the checks know about.
#[derive(Debug, Clone)]
pub struct Sent {
    pub sender: usize,
    /// For private lines, the typed target name.
    pub target: Option<String>,
    pub at: Duration,
    /// The latest the flood rule can hold it until (see [`FloodClock`]).
    pub due: Duration,
    pub deliverable: bool,
}

/// A late bound on when the flood rule lets a connection's frames go: each
/// frame costs its tokens' worth of time after the later of its own sending
/// and the previous frame's bound. The real bucket also allows a burst, so
/// it is never later than this; the checks use it only to know when a line
/// is owed, never to say when it must not arrive.
#[derive(Debug, Clone, Copy, Default)]
pub struct FloodClock {
    pub free_at: Duration,
}

impl FloodClock {
    pub fn charge(
        &mut self,
        now: Duration,
        frame: &ClientFrame,
        limit: Option<flood::FloodLimit>,
    ) -> Duration {
        let Some(limit) = limit else {
            return now;
        };
        let text = match frame {
            ClientFrame::Hello(_) => return now.max(self.free_at),
            ClientFrame::Username(t) | ClientFrame::Chat(t) => t.len(),
            ClientFrame::Who => 0,
        };
        let tokens = flood::line_cost(text, &limit);
        let interval = Duration::from_secs(1) / limit.per_second();
        self.free_at = now.max(self.free_at) + interval * tokens;
        self.free_at
    }
}

/// Everything one simulated client saw.
#[derive(Debug, Default)]
pub struct Client {
    pub host: usize,
    /// The address the server sees it from, once connected: the key to
    /// the room's record of it.
    pub addr: Option<SocketAddr>,
    pub role: Option<Role>,
    pub admitted: bool,
    /// When it became part of the room (observer `Accepted`, participant
    /// `UsernameAccepted`).
    pub member_since: Option<Duration>,
    /// Names asked for and not yet answered, oldest first (a held link
    /// can leave several in flight).
    pub asked: VecDeque<String>,
    pub name: Option<String>,
    /// Its host was partitioned from the server: segments were lost, so
    /// the stream hangs and nothing more is owed to or from it.
    pub cut: bool,
    /// Its host's link was held at some point: it stopped reading for a
    /// while, so the server may rightly have dropped it.
    pub held: bool,
    /// When its connection ended (either side).
    pub closed_at: Option<Duration>,
    /// Message ids received, in order.
    pub messages: Vec<usize>,
    /// Its own side hung up (a leave or a drop mid-frame).
    pub left: bool,
    /// The server said `Full` or `UsernameTimeout`: a close it explained.
    pub refused: bool,
    /// The `ProtocolError` reason the server gave, if any.
    pub error: Option<String>,
    /// The server ended the connection.
    pub closed_by_server: bool,
    /// When the flood rule lets its frames go, at the latest.
    pub flood: FloodClock,
}

/// The shared record of a session.
#[derive(Debug, Default)]
pub struct Observed {
    pub clients: BTreeMap<usize, Client>,
    pub sent: Vec<Sent>,
    /// The exact text of each `Message` frame → the id of its line.
    pub frame_text: BTreeMap<String, usize>,
    /// The session's flood rule, if it has one.
    pub flood: Option<flood::FloodLimit>,
    pub violations: Vec<String>,
}

pub type Shared = Arc<Mutex<Observed>>;

pub use crate::harness::lock;

pub fn now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}

/// The state of the client hosts' links, for [`check`].
pub struct Links {
    pub held: [bool; HOSTS],
    pub released_at: [Duration; HOSTS],
    /// The simulated time of an intermediate check; `None` for the final one
    /// (everything settled: every line owed must have arrived).
    pub now: Option<Duration>,
}

/// The invariants of issue 4, checked on what the clients saw and on the
/// room's record of whom it let go (see the module docs). Delivery is
/// required only where no held link can still be delaying it, and before
/// the final check only [`DELIVERY_BOUND`] after the line could move.
pub fn check(shared: &Shared, record: &SharedRecord, links: &Links, when: &str, log: &EventLog) {
    let held = &links.held;
    let observed = lock(shared);
    let room = lock(record);
    let fail = |why: String| -> ! {
        panic!(
            "{when}: {why}\ntrace hash so far {:016x} ({} events)\n--- last events ---\n{}",
            log.hash(),
            log.len(),
            log.tail(60)
        );
    };
    if let Some(v) = observed.violations.first() {
        fail(v.clone());
    }
    if let Some(fault) = room.faults.first() {
        fail(format!("the room's record is broken: {fault}"));
    }
    // When the room let the client go, by its own record.
    let let_go = |c: &Client| c.addr.and_then(|addr| room.let_go(addr));
    // Live: admitted (as the client saw it) and still in the room — its
    // connection has not ended as far as it has seen, and the room has
    // not let it go (it may not have seen that yet: the close waits behind
    // a held link).
    let live = |c: &&Client| c.closed_at.is_none() && let_go(c).is_none();
    // Names unique among live named participants.
    let mut names = BTreeSet::new();
    for c in observed.clients.values().filter(live) {
        if let Some(name) = &c.name
            && !names.insert(name.clone())
        {
            fail(format!("two live participants are both named {name}"));
        }
    }
    // At most the maximum of each role holds a slot.
    for (role, max) in [
        (Role::Participant, SWEEP_MAX_PARTICIPANTS),
        (Role::Observer, SWEEP_MAX_OBSERVERS),
    ] {
        let n = observed
            .clients
            .values()
            .filter(live)
            .filter(|c| c.admitted && c.role == Some(role))
            .count();
        if n > max {
            fail(format!("{n} {role:?}s admitted at once (max {max})"));
        }
    }
    for (&id, client) in &observed.clients {
        // No member that kept pace was ever dropped: the sweep's clients
        // all read everything as it comes, so their oldest unsent line is
        // never old and they never drain least while the budget is short;
        // only one whose link was cut or held may fall behind and go.
        if !client.cut && !client.held && client.admitted && !client.left && !client.refused {
            if let Some(why) = &client.error {
                fail(format!("#{id}, which kept pace, was dropped: {why}"));
            }
            if client.closed_by_server {
                fail(format!("#{id}, which kept pace, was closed by the server"));
            }
        }
        // The room's record against what the client saw: after the room let
        // a connection go, nothing sent later reaches it (its queue holds
        // only what was broadcast before).
        if let Some(gone) = let_go(client)
            && let Some(&line) = client
                .messages
                .iter()
                .find(|&&m| observed.sent[m].at > gone)
        {
            fail(format!(
                "#{id} got m{line}, sent at {:?}, after the room let it go at {gone:?}",
                observed.sent[line].at
            ));
        }
        // And once everything has settled: every client the server
        // answered is in the record; every connection the room let go has
        // ended; and every admitted connection that ended was let go (no
        // slot outlives its connection) — but for one cut off by a
        // partition, whose end the server may never see (keepalive is not
        // simulated).
        if links.now.is_none() {
            let known = client.addr.and_then(|addr| room.conn(addr)).is_some();
            if (client.admitted || client.refused) && !known {
                fail(format!(
                    "the room's record has no connection for #{id} (from {:?})",
                    client.addr
                ));
            }
            if let (Some(gone), None) = (let_go(client), client.closed_at) {
                fail(format!(
                    "the room let #{id} go at {gone:?}, but its connection never ended"
                ));
            }
            if client.admitted
                && !client.cut
                && client.closed_at.is_some()
                && let_go(client).is_none()
            {
                fail(format!(
                    "#{id}'s connection ended, but the room never let it go"
                ));
            }
        }
        // Exactly once at most, in per-sender order; private only to the
        // target; over-long lines never; never one's own public line.
        let mut seen = BTreeSet::new();
        let mut last_from: BTreeMap<usize, usize> = BTreeMap::new();
        for &line in &client.messages {
            let sent = &observed.sent[line];
            if !seen.insert(line) {
                fail(format!("#{id} got line m{line} twice"));
            }
            if !sent.deliverable {
                fail(format!("#{id} got over-long line m{line}"));
            }
            match &sent.target {
                None if sent.sender == id => fail(format!("#{id} got its own line m{line}")),
                Some(target) if client.name.as_deref() != Some(target.as_str()) => {
                    fail(format!(
                        "#{id} ({:?}) got m{line}, private to {target}",
                        client.name
                    ));
                }
                _ => {}
            }
            if let Some(prev) = last_from.insert(sent.sender, line)
                && prev > line
            {
                fail(format!(
                    "#{id} got m{line} after m{prev} from the same sender"
                ));
            }
        }
        // Every deliverable public line reaches every member present from
        // its sending until now, unless a held link may still delay it.
        if client.closed_at.is_some() || let_go(client).is_some() || client.cut || held[client.host]
        {
            continue;
        }
        let Some(since) = client.member_since else {
            continue;
        };
        for (line, sent) in observed.sent.iter().enumerate() {
            let sender = &observed.clients[&sent.sender];
            let owed = sent.deliverable
                && sent.at != Duration::MAX
                && sent.at >= since
                && sent.sender != id
                && !held[sender.host]
                && links.now.is_none_or(|now| {
                    let moving = sent
                        .due
                        .max(links.released_at[sender.host])
                        .max(links.released_at[client.host]);
                    now >= moving + DELIVERY_BOUND
                })
                && sender.member_since.is_some_and(|s| s <= sent.at)
                // A sender the server dropped (its link was held or cut, so
                // it stopped reading) may lose the lines it had in flight,
                // and nothing it sends after the room let it go is taken.
                && sender.error.is_none()
                && let_go(sender).is_none_or(|gone| sent.at < gone)
                && match &sent.target {
                    None => true,
                    Some(target) => client.name.as_deref() == Some(target.as_str()),
                };
            if owed && !seen.contains(&line) {
                fail(format!(
                    "#{id} (a member since {since:?}) never got m{line} from #{} \
                     (sent at {:?}, due by {:?})",
                    sent.sender, sent.at, sent.due
                ));
            }
        }
    }
}
