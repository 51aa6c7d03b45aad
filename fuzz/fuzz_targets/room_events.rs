//! Fuzzes the room core: the input is decoded (with `arbitrary`) into a
//! scenario — the room's limits and a sequence of opens, frames valid and
//! not (`Who` and padded varints among them), newcomers at a full socket
//! table, violations, closes, clock jumps and shutdowns — which the auditor
//! runs against its shadow model, panicking on any difference or broken
//! invariant (see `testkit::audit::room`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use testkit::audit::room::{Auditor, Scenario};

fuzz_target!(|scenario: Scenario| {
    Auditor::run(&scenario);
});
