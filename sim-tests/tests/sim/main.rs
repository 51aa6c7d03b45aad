//! Deterministic simulations of the LogosNet server under turmoil: the real
//! `logosnet::server::serve` runs on a simulated host, simulated clients
//! (`testkit`'s peer on turmoil's TCP) speak wire protocol v1 to it, and
//! simulated time makes 60 s timers take
//! milliseconds. See `sim-tests/README.md` for how to run, replay and extend.

mod admission;
mod flood;
mod harness;
mod logger;
mod metrics;
mod pace;
mod scenarios;
mod shutdown;
mod sweep;
mod tls;
