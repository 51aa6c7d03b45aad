//! End-to-end hostile-client tests on loopback: connection storms, idle
//! sockets past the room's capacity, the per-address limit and frames
//! announced too big before Hello, many addresses holding every socket and
//! a TLS handshake churn (`doors`), slow and non-reading clients beside a
//! flood, and malformed or deceptive Unicode. The tests that read the
//! server's descriptors or memory from `/proc` run the real
//! `logosnet_server` binary; the rest run the server in process
//! (`testkit::spawn_server`). Every peer is `testkit::Peer`. Every scenario
//! is bounded in count and time. See SECURITY.md for the threats each one
//! answers.

mod admission;
mod doors;
mod floods;
mod pace;
mod server_process;
mod slow_readers;
mod storms;
#[path = "../support/mod.rs"]
mod support;
mod unicode;
