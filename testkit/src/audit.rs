//! The test oracles: harnesses that drive a part of the library with
//! arbitrary input and panic on the first output that breaks its contract.
//! The property tests (`logosnet/tests/properties/`) and the fuzz targets
//! (`fuzz/`) call the same ones, so a crash found by either is a case for
//! the other.

pub mod codec;
pub mod room;
