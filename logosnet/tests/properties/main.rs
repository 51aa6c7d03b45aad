//! Property tests of the codec and the room core against the oracles in
//! `testkit::audit`, which the fuzz targets in `fuzz/` run too: arbitrary
//! byte streams cut into arbitrary pieces, and arbitrary event sequences.

mod codec;
mod room;
