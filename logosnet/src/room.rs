//! The protocol core: every rule of the chat room, and nothing else.
//!
//! [`Room`] is a sans-IO state machine in the manner of quinn-proto. Its
//! driver tells it what happened — a connection opened, a frame arrived, a
//! framing violation, a connection ended, the time is now `now` — and then
//! drains [`Room::poll_output`] for what to do: send these frame bytes to
//! that connection, close that one after flushing. [`Room::poll_timeout`]
//! says when it next needs [`Room::handle_timeout`]. It never touches a
//! socket, never reads a clock and never spawns: the tokio server and the
//! turmoil simulations run this same code, and tests drive it directly.
//!
//! Every broadcast frame is encoded once and its bytes shared (`Bytes`) by
//! all recipients. Iteration is in connection-id order (`BTreeMap`), so
//! output is deterministic for a given input sequence.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::protocol::{self, ClientFrame, FrameError, Role, ServerFrame};
use crate::username::{self, MAX_USERNAME_CHARS};

/// Identifies one connection for the life of a server; assigned by the driver,
/// never reused.
pub type ConnId = u64;

/// Most participants at once, from the spec.
pub const MAX_PARTICIPANTS: usize = 255;
/// Most observers at once, from the spec.
pub const MAX_OBSERVERS: usize = 255;
/// Time a participant has, from `Accepted` or its last refused attempt, to
/// get a name accepted: the spec's 60 s.
pub const USERNAME_TIMEOUT: Duration = Duration::from_secs(60);
/// Time a new connection has to send `Hello`, so idle sockets cannot pile up;
/// the spec's 60 s.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest chat line delivered, in characters (Unicode scalar values), from
/// the spec.
pub const MAX_MESSAGE_CHARS: usize = 1000;
/// What a timeout too long for the clock to represent is cut to: about 30
/// years, "never" in practice. The same stand-in tokio's `sleep` uses for
/// `Duration::MAX`, so the driver's timer accepts it too.
pub const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);

/// The numbers the rules are parameterised by. Tests and the storm tests
/// shorten the timeouts; everything else uses [`RoomConfig::default`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomConfig {
    /// See [`MAX_PARTICIPANTS`].
    pub max_participants: usize,
    /// See [`MAX_OBSERVERS`].
    pub max_observers: usize,
    /// See [`USERNAME_TIMEOUT`].
    pub username_timeout: Duration,
    /// See [`HELLO_TIMEOUT`].
    pub hello_timeout: Duration,
}

impl Default for RoomConfig {
    fn default() -> Self {
        Self {
            max_participants: MAX_PARTICIPANTS,
            max_observers: MAX_OBSERVERS,
            username_timeout: USERNAME_TIMEOUT,
            hello_timeout: HELLO_TIMEOUT,
        }
    }
}

/// Why the room asks for a connection to be closed (for logs and drivers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Its role was full.
    Full,
    /// No `Hello` within the Hello timeout.
    HelloTimeout,
    /// No accepted username within the username timeout.
    UsernameTimeout,
    /// It broke the protocol.
    Violation,
    /// The server is shutting down.
    Shutdown,
}

/// Why a connection ended from the driver's side (for logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The peer closed or the socket failed.
    Disconnected,
    /// It did not read fast enough and its outgoing queue overflowed.
    SlowConsumer,
}

/// What the driver must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Queue these complete frame bytes for the connection.
    Send {
        /// The recipient.
        to: ConnId,
        /// One whole encoded frame, shared among recipients.
        frame: Bytes,
    },
    /// Flush what was queued for the connection, then close it. The room has
    /// already forgotten it; later events for it are ignored.
    Close {
        /// The connection.
        conn: ConnId,
        /// Why.
        reason: CloseReason,
    },
}

#[derive(Debug)]
enum State {
    /// Connected, no `Hello` yet.
    AwaitingHello { deadline: Instant },
    /// A participant slot is held; no name yet.
    Naming { deadline: Instant },
    /// A named participant, in the room.
    Active { name: String },
    /// An observer, in the room.
    Observer,
}

/// The chat room's state and rules. See the module docs.
#[derive(Debug)]
pub struct Room {
    config: RoomConfig,
    conns: BTreeMap<ConnId, State>,
    /// Active participants by canonical name.
    names: BTreeMap<String, ConnId>,
    /// Everyone who receives the room's traffic: active participants and
    /// observers.
    members: BTreeSet<ConnId>,
    /// Pending deadlines, earliest first.
    deadlines: BTreeSet<(Instant, ConnId)>,
    participants: usize,
    observers: usize,
    output: VecDeque<Output>,
}

impl Room {
    /// An empty room.
    pub fn new(config: RoomConfig) -> Self {
        Self {
            config,
            conns: BTreeMap::new(),
            names: BTreeMap::new(),
            members: BTreeSet::new(),
            deadlines: BTreeSet::new(),
            participants: 0,
            observers: 0,
            output: VecDeque::new(),
        }
    }

    /// A connection was accepted. Ids must be new.
    pub fn handle_open(&mut self, now: Instant, conn: ConnId) {
        let deadline = deadline_after(now, self.config.hello_timeout);
        if self
            .conns
            .insert(conn, State::AwaitingHello { deadline })
            .is_none()
        {
            self.deadlines.insert((deadline, conn));
        }
    }

    /// A whole frame arrived from a connection.
    pub fn handle_frame(&mut self, now: Instant, conn: ConnId, frame: ClientFrame) {
        let Some(state) = self.conns.get(&conn) else {
            return;
        };
        match (state, frame) {
            (State::AwaitingHello { .. }, ClientFrame::Hello(role)) => self.hello(now, conn, role),
            (State::AwaitingHello { .. }, _) => {
                self.violation(conn, "the first frame must be Hello".to_owned());
            }
            (State::Naming { .. }, ClientFrame::Username(requested)) => {
                self.username(now, conn, &requested);
            }
            (State::Naming { .. }, ClientFrame::Chat(_)) => {
                self.notice(conn, "Warning: choose a username before chatting");
            }
            (State::Active { name }, ClientFrame::Chat(line)) => {
                let name = name.clone();
                self.chat(conn, &name, &line);
            }
            (State::Active { .. }, ClientFrame::Username(_)) => {
                self.notice(conn, "Warning: you already have a username");
            }
            (State::Observer, _) => {
                self.notice(conn, "Warning: observers can only read");
            }
            (_, ClientFrame::Hello(_)) => {
                self.notice(conn, "Warning: Hello was already received");
            }
        }
    }

    /// The connection's byte stream broke the protocol: it is told why and
    /// closed.
    pub fn handle_violation(&mut self, _now: Instant, conn: ConnId, error: &FrameError) {
        if self.conns.contains_key(&conn) {
            self.violation(conn, error.reason());
        }
    }

    /// The connection is gone (peer closed, socket error, or the driver
    /// dropped it). Unknown or already-closed ids are ignored.
    pub fn handle_closed(&mut self, _now: Instant, conn: ConnId, reason: EndReason) {
        if let Some(state) = self.forget(conn) {
            tracing::debug!(conn, ?reason, "connection ended");
            self.announce_left(conn, &state, reason);
        }
    }

    /// Expires every deadline at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(deadline, conn)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            match self.conns.get(&conn) {
                Some(State::AwaitingHello { .. }) => {
                    tracing::info!(conn, "no Hello in time");
                    self.send_frame(
                        conn,
                        &ServerFrame::ProtocolError(format!(
                            "no Hello within {} s",
                            self.config.hello_timeout.as_secs_f64()
                        )),
                    );
                    self.close(conn, CloseReason::HelloTimeout);
                }
                Some(State::Naming { .. }) => {
                    tracing::info!(conn, "no username in time");
                    self.send_frame(conn, &ServerFrame::UsernameTimeout);
                    self.close(conn, CloseReason::UsernameTimeout);
                }
                _ => {}
            }
        }
    }

    /// When [`Room::handle_timeout`] must next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.first().map(|&(deadline, _)| deadline)
    }

    /// The next thing for the driver to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.output.pop_front()
    }

    /// Tells everyone the server is going away and closes every connection.
    pub fn shutdown(&mut self, _now: Instant) {
        let frame = protocol::encode(&ServerFrame::Notice("Server is shutting down".into()));
        let all: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in all {
            self.output.push_back(Output::Send {
                to: conn,
                frame: frame.clone(),
            });
            self.close(conn, CloseReason::Shutdown);
        }
    }

    /// Participants holding a slot (named or not).
    pub fn participants(&self) -> usize {
        self.participants
    }

    /// Observers holding a slot.
    pub fn observers(&self) -> usize {
        self.observers
    }

    /// Connections the room knows, in any state.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// The canonical names of active participants, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.keys().map(String::as_str)
    }

    fn hello(&mut self, now: Instant, conn: ConnId, role: Role) {
        let (count, max) = match role {
            Role::Participant => (self.participants, self.config.max_participants),
            Role::Observer => (self.observers, self.config.max_observers),
        };
        if count >= max {
            tracing::info!(conn, ?role, "refused: role full");
            self.send_frame(conn, &ServerFrame::Full);
            self.close(conn, CloseReason::Full);
            return;
        }
        self.clear_deadline(conn);
        self.send_frame(conn, &ServerFrame::Accepted);
        match role {
            Role::Participant => {
                self.participants += 1;
                self.set_state(conn, self.naming(now));
            }
            Role::Observer => {
                self.observers += 1;
                self.members.insert(conn);
                self.set_state(conn, State::Observer);
            }
        }
        tracing::info!(conn, ?role, "admitted");
    }

    fn naming(&self, now: Instant) -> State {
        State::Naming {
            deadline: deadline_after(now, self.config.username_timeout),
        }
    }

    fn username(&mut self, now: Instant, conn: ConnId, requested: &str) {
        let reply = match username::canonical_username(requested) {
            Err(_) => ServerFrame::UsernameInvalid,
            Ok(name) if self.names.contains_key(&name) => ServerFrame::UsernameTaken,
            Ok(name) => {
                self.clear_deadline(conn);
                self.names.insert(name.clone(), conn);
                self.members.insert(conn);
                self.send_frame(conn, &ServerFrame::UsernameAccepted);
                tracing::info!(conn, user = %name, "joined");
                self.broadcast(
                    None,
                    &ServerFrame::Notice(format!("User {name} has joined")),
                );
                self.set_state(conn, State::Active { name });
                return;
            }
        };
        // A refused attempt restarts the clock.
        self.clear_deadline(conn);
        self.set_state(conn, self.naming(now));
        self.send_frame(conn, &reply);
    }

    fn chat(&mut self, conn: ConnId, sender: &str, line: &str) {
        if line.is_empty() {
            return;
        }
        if line.chars().count() > MAX_MESSAGE_CHARS {
            self.notice(
                conn,
                &format!(
                    "Warning: message not sent, it is longer than {MAX_MESSAGE_CHARS} characters"
                ),
            );
            return;
        }
        let Some(rest) = line.strip_prefix('@') else {
            let frame = ServerFrame::Message(format!("> {sender:>MAX_USERNAME_CHARS$}: {line}"));
            self.broadcast(Some(conn), &frame);
            return;
        };
        let Some((typed, _text)) = rest.split_once(' ') else {
            self.notice(
                conn,
                "Warning: a private message needs a space after the name: @name text",
            );
            return;
        };
        let target = username::lookup_form(typed).and_then(|name| self.names.get(&name).copied());
        match target {
            Some(target) => {
                let frame =
                    ServerFrame::Message(format!("% {sender:>MAX_USERNAME_CHARS$}: {line}"));
                self.send_frame(target, &frame);
            }
            None => {
                self.notice(conn, &format!("Warning: user {typed} doesn't exist"));
            }
        }
    }

    fn violation(&mut self, conn: ConnId, reason: String) {
        tracing::info!(conn, %reason, "protocol violation");
        self.send_frame(conn, &ServerFrame::ProtocolError(reason));
        self.close(conn, CloseReason::Violation);
    }

    /// Forgets the connection, asks the driver to close it, and tells the
    /// room if a participant left.
    fn close(&mut self, conn: ConnId, reason: CloseReason) {
        if let Some(state) = self.forget(conn) {
            self.output.push_back(Output::Close { conn, reason });
            if reason != CloseReason::Shutdown {
                self.announce_left(conn, &state, EndReason::Disconnected);
            }
        }
    }

    /// Removes every trace of the connection and frees its slot.
    fn forget(&mut self, conn: ConnId) -> Option<State> {
        self.clear_deadline(conn);
        let state = self.conns.remove(&conn)?;
        self.members.remove(&conn);
        match &state {
            State::Naming { .. } => self.participants -= 1,
            State::Active { name } => {
                self.participants -= 1;
                self.names.remove(name);
            }
            State::Observer => self.observers -= 1,
            State::AwaitingHello { .. } => {}
        }
        Some(state)
    }

    fn announce_left(&mut self, conn: ConnId, state: &State, reason: EndReason) {
        let name = match state {
            State::Naming { .. } => "Anonymous",
            State::Active { name } => name.as_str(),
            State::AwaitingHello { .. } | State::Observer => return,
        };
        tracing::info!(conn, user = %name, ?reason, "left");
        let frame = ServerFrame::Notice(format!("User {name} has left"));
        self.broadcast(None, &frame);
    }

    fn set_state(&mut self, conn: ConnId, state: State) {
        if let State::AwaitingHello { deadline } | State::Naming { deadline } = state {
            self.deadlines.insert((deadline, conn));
        }
        self.conns.insert(conn, state);
    }

    fn clear_deadline(&mut self, conn: ConnId) {
        if let Some(State::AwaitingHello { deadline } | State::Naming { deadline }) =
            self.conns.get(&conn)
        {
            self.deadlines.remove(&(*deadline, conn));
        }
    }

    fn notice(&mut self, conn: ConnId, text: &str) {
        self.send_frame(conn, &ServerFrame::Notice(text.to_owned()));
    }

    fn send_frame(&mut self, to: ConnId, frame: &ServerFrame) {
        self.output.push_back(Output::Send {
            to,
            frame: protocol::encode(frame),
        });
    }

    /// Encodes once; every member but `except` gets the same bytes.
    fn broadcast(&mut self, except: Option<ConnId>, frame: &ServerFrame) {
        let bytes = protocol::encode(frame);
        for &to in &self.members {
            if Some(to) != except {
                self.output.push_back(Output::Send {
                    to,
                    frame: bytes.clone(),
                });
            }
        }
    }
}

/// `now + timeout`, never panicking: a timeout past what `Instant` can
/// hold becomes [`FAR_FUTURE`] (and, should even that overflow, `now`
/// itself, which only makes the deadline fire at once).
fn deadline_after(now: Instant, timeout: Duration) -> Instant {
    now.checked_add(timeout)
        .or_else(|| now.checked_add(FAR_FUTURE))
        .unwrap_or(now)
}

#[cfg(any(test, feature = "fuzzing"))]
pub mod audit;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
