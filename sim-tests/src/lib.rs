//! Deterministic turmoil simulations of the LogosNet server.
//!
//! The library is empty on purpose: the harness and the scenarios live in
//! `tests/sim/` so that turmoil, and the tokio `test-util` feature it turns
//! on, stay dev-dependencies that can never reach a release binary. The
//! simulated clients are `testkit`'s peer over turmoil's TCP. See
//! `README.md` for how to run, replay a seed and add a scenario.
