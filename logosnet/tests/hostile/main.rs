//! End-to-end hostile-client tests against the real `logosnet_server`
//! binary on loopback: connection storms, idle sockets past the room's
//! capacity, the per-address limit and frames announced too big before
//! Hello, slow and non-reading clients beside a flood, and malformed or
//! deceptive Unicode. Every scenario is bounded in count and time and
//! asserts behaviour, never speed. See SECURITY.md for the threats each one
//! answers.

mod admission;
mod floods;
mod server_process;
mod slow_readers;
mod storms;
#[path = "../support/mod.rs"]
mod support;
mod unicode;
