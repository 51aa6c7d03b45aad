//! LogosNet: a real-time TCP chat room — wire protocol v1, the sans-IO
//! protocol core, the tokio server driver and the terminal client.
//!
//! Layout, one concern per module:
//! - [`protocol`]: the frame types, the limits and every text the server
//!   sends (the rules as words and numbers; no bytes, no I/O);
//! - [`codec`]: frames to bytes and back — [`codec::encode`], and
//!   reassembly from bytes in pieces of any size;
//! - [`connection`]: the same over an async stream, the one reader and
//!   writer every peer but the server shares;
//! - [`username`]: the username rule;
//! - [`room`]: every rule of the chat room, events in and actions out;
//! - [`server`]: the tokio driver that runs the room over any listener;
//! - [`client`]: the terminal client, a participant or an observer;
//! - [`tls`]: certificates, keys and rustls set-up for both sides;
//! - [`cli`]: both binaries' command lines.

#![warn(missing_docs, unreachable_pub)]

pub mod cli;
pub mod client;
pub mod codec;
pub mod connection;
pub mod protocol;
pub mod room;
pub mod server;
pub mod tls;
pub mod username;
