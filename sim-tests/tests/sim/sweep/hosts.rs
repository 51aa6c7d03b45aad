//! The sweep's client hosts: each runs the driver's [`Command`]s for its
//! connections, writing frames back to back as one write where told to,
//! and one reader task per connection (a `testkit` peer on the read half)
//! records everything that arrives in the shared [`Observed`].

use std::collections::BTreeMap;

use logosnet::connection::ReadError;
use logosnet::protocol::{ClientFrame, Role, ServerFrame};
use testkit::Peer;
use testkit::peer::frame_bytes;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use turmoil::net::TcpStream;
use turmoil::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::invariants::{Shared, lock, now};
use super::steps::Command;
use crate::harness::{EventLog, PORT, SERVER};

/// A client host: runs the driver's commands for its connections; one
/// reader task per connection records what arrives.
pub async fn client_host(
    mut inbox: mpsc::UnboundedReceiver<Command>,
    shared: Shared,
    log: EventLog,
) -> turmoil::Result {
    let mut writers: BTreeMap<usize, OwnedWriteHalf> = BTreeMap::new();
    while let Some(command) = inbox.recv().await {
        match command {
            Command::Connect { id, role, name } => {
                let Ok(stream) = TcpStream::connect((SERVER, PORT)).await else {
                    close(&shared, id, &log, "connect failed");
                    continue;
                };
                // The address the server sees it from: how the room's record
                // of who it let go is matched to this client.
                if let Ok(addr) = stream.local_addr() {
                    log.record(&format!("#{id}"), format_args!("connected from {addr}"));
                    if let Some(c) = lock(&shared).clients.get_mut(&id) {
                        c.addr = Some(addr);
                    }
                }
                let (read, mut write) = stream.into_split();
                let mut hello = frame_bytes(&ClientFrame::Hello(role));
                if let Some(name) = name {
                    let frame = ClientFrame::Username(name);
                    stamp_sent(&shared, id, &frame);
                    hello.extend_from_slice(&frame_bytes(&frame));
                }
                let _ = write.write_all(&hello).await;
                writers.insert(id, write);
                let reader = Peer::new(&format!("#{id}"), read);
                tokio::spawn(read_frames(id, reader, shared.clone(), log.clone()));
            }
            Command::Send { id, frames } => {
                if let Some(write) = writers.get_mut(&id) {
                    let mut bytes = Vec::new();
                    for frame in &frames {
                        stamp_sent(&shared, id, frame);
                        bytes.extend_from_slice(&frame_bytes(frame));
                    }
                    let _ = write.write_all(&bytes).await;
                }
            }
            Command::CutAndDrop { id, frame, cut } => {
                if let Some(mut write) = writers.remove(&id) {
                    let _ = write.write_all(&frame_bytes(&frame)[..cut]).await;
                    hang_up(&shared, id);
                    close(&shared, id, &log, "dropped mid-frame");
                }
            }
            Command::Drop { id } => {
                if writers.remove(&id).is_some() {
                    hang_up(&shared, id);
                    close(&shared, id, &log, "left");
                }
            }
        }
    }
    Ok(())
}

/// Records when a frame was really written, and for a chat line when the
/// flood rule will have let it go at the latest.
pub fn stamp_sent(shared: &Shared, conn: usize, frame: &ClientFrame) {
    let mut observed = lock(shared);
    let at = now();
    let limit = observed.flood;
    let Some(due) = observed
        .clients
        .get_mut(&conn)
        .map(|c| c.flood.charge(at, frame, limit))
    else {
        return;
    };
    let ClientFrame::Chat(line) = frame else {
        return;
    };
    let id = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix('m').and_then(|n| n.parse::<usize>().ok()));
    if let Some(sent) = id.and_then(|id| observed.sent.get_mut(id)) {
        sent.at = at;
        sent.due = due;
    }
}

/// The client's own side hung up.
pub fn hang_up(shared: &Shared, id: usize) {
    if let Some(c) = lock(shared).clients.get_mut(&id) {
        c.left = true;
    }
}

pub fn close(shared: &Shared, id: usize, log: &EventLog, why: &str) {
    log.record(&format!("#{id}"), format_args!("{why}"));
    if let Some(c) = lock(shared).clients.get_mut(&id) {
        c.closed_at.get_or_insert_with(now);
    }
}

pub async fn read_frames(
    id: usize,
    mut reader: Peer<OwnedReadHalf>,
    shared: Shared,
    log: EventLog,
) {
    let who = format!("#{id}");
    loop {
        let frame = match reader.read().await {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                if let Some(c) = lock(&shared).clients.get_mut(&id) {
                    c.closed_by_server = true;
                }
                return close(&shared, id, &log, "closed by server");
            }
            Err(ReadError::Frame(e)) => {
                lock(&shared)
                    .violations
                    .push(format!("#{id} got a broken frame: {e}"));
                return close(&shared, id, &log, "broken frame");
            }
            Err(e) => return close(&shared, id, &log, &format!("ended: {e}")),
        };
        log.record(&who, format_args!("got {frame:?}"));
        let mut observed = lock(&shared);
        let observed = &mut *observed;
        let Some(client) = observed.clients.get_mut(&id) else {
            return;
        };
        match frame {
            ServerFrame::Accepted => {
                client.admitted = true;
                if client.role == Some(Role::Observer) {
                    client.member_since = Some(now());
                }
            }
            ServerFrame::UsernameAccepted => {
                client.name = client.asked.pop_front();
                client.member_since = Some(now());
            }
            ServerFrame::UsernameTaken | ServerFrame::UsernameInvalid => {
                client.asked.pop_front();
            }
            ServerFrame::Message(text) => match observed.frame_text.get(&text) {
                Some(&line) => client.messages.push(line),
                None => observed.violations.push(format!(
                    "#{id} got a Message nobody sent (split, merged or forged): {text:?}"
                )),
            },
            ServerFrame::Full | ServerFrame::UsernameTimeout => client.refused = true,
            ServerFrame::ProtocolError(why) => client.error = Some(why),
            ServerFrame::Notice(_) => {}
            // The sweep never asks who is here.
            ServerFrame::Roster { .. } => observed
                .violations
                .push(format!("#{id} got a Roster it never asked for")),
        }
    }
}
