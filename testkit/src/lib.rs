//! Test support for the LogosNet workspace, shared by every suite: the
//! library's tests, the end-to-end tests, the simulations and the fuzz
//! targets. Test code only — every crate takes it as a dev-dependency.
//!
//! - [`peer`]: one peer that speaks frames over any byte stream (real TCP,
//!   TLS, turmoil's TCP), every wait bounded;
//! - [`server`]: the real server, in process, on `127.0.0.1:0`, plain or
//!   TLS;
//! - [`metrics`]: the metrics endpoint, served and scraped as Prometheus
//!   would;
//! - [`audit`]: the oracles the property tests and the fuzz targets share.

pub mod audit;
pub mod metrics;
pub mod peer;
pub mod server;

pub use peer::{Got, PATIENCE, Peer, Trace};
pub use server::{
    ServerHandle, spawn_server, spawn_server_at, spawn_tls_server, spawn_tls_server_reloadable,
    unthrottled,
};
