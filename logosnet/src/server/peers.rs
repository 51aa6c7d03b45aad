//! Which address each open connection came from, for the log alone: with
//! `--log-format json` every event that names a connection (`conn = id`)
//! also carries its `peer`, although the room, which logs most of them,
//! never learns addresses (see [`crate::server::json_log`]).
//!
//! Kept only when the binary asks for it ([`ServerConfig::peers`]): the
//! accept loop adds a connection, its task removes it when it ends. The
//! one lock here is taken by those two and by the log formatter, never by
//! the room's fan-out or a scrape. Bounded by the open sockets
//! (`--max-connections` plus the ones being made room for).
//!
//! [`ServerConfig::peers`]: super::ServerConfig::peers

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use crate::room::ConnId;

/// See the module docs.
#[derive(Debug, Default)]
pub struct Peers {
    open: Mutex<HashMap<ConnId, SocketAddr>>,
}

impl Peers {
    /// `conn` came from `peer`.
    pub fn opened(&self, conn: ConnId, peer: SocketAddr) {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(conn, peer);
    }

    /// `conn`'s socket is closed.
    pub fn closed(&self, conn: ConnId) {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&conn);
    }

    /// Where `conn` came from, while it is open.
    pub fn peer(&self, conn: ConnId) -> Option<SocketAddr> {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&conn)
            .copied()
    }
}
