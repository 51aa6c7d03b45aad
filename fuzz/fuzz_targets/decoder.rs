//! Fuzzes frame reassembly: the input is split into a piece-size schedule
//! and a byte stream; decoding the stream in those pieces must never panic,
//! never hold more than one maximum frame plus a piece, and give exactly
//! what the reference framer says the whole stream decodes to (see
//! `testkit::audit::codec`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use testkit::audit::codec::{decode_in_pieces, reference_decode};

fuzz_target!(|data: &[u8]| {
    // First byte: how many schedule entries follow (0..=7), each two bytes.
    let Some((&count, rest)) = data.split_first() else {
        return;
    };
    let count = (count % 8) as usize;
    let (schedule, stream) = rest.split_at((count * 2).min(rest.len()));
    let pieces: Vec<usize> = schedule
        .chunks(2)
        .map(|pair| pair.iter().fold(0usize, |n, &b| n << 8 | b as usize))
        .collect();
    let pieces = if pieces.is_empty() { vec![1] } else { pieces };
    assert_eq!(decode_in_pieces(stream, &pieces), reference_decode(stream));
});
