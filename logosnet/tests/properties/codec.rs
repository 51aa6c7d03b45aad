//! Property tests of frame reassembly: arbitrary byte streams (valid frames,
//! hostile headers, junk) cut into arbitrary pieces never panic, never make
//! the decoder hold more than one maximum frame plus one read, and decode
//! exactly as the protocol says the whole stream decodes — the reference
//! framer in `testkit::audit::codec`, which shares no code with the
//! decoder's reassembly. Under a per-state [`FrameLimit`] the same holds
//! with the limit's frame in place of the maximum, and skipping an
//! oversized frame changes nothing but that frame. (The same bound through
//! an async stream is `connection`'s own test.)

use logosnet::codec::{FrameLimit, MAX_BUFFERED_FRAME, Oversize};
use logosnet::connection::READ_CHUNK_BYTES;
use logosnet::protocol::{
    ClientFrame, HEADER_BYTES, MAX_CHAT_PAYLOAD, MAX_FRAME_BYTES, MAX_HELLO_PAYLOAD, Role,
};
use proptest::collection::vec;
use proptest::prelude::*;
use testkit::audit::codec::{
    decode_in_pieces, decode_in_pieces_within, reference_decode, reference_decode_within,
};
use testkit::peer::frame_bytes;

/// Longest chat line whose frame still fits: 1 tag byte and a 3-byte varint.
const MAX_CHAT_BYTES: usize = MAX_FRAME_BYTES - 4;

fn client_frame() -> impl Strategy<Value = ClientFrame> {
    prop_oneof![
        2 => any::<bool>().prop_map(|o| ClientFrame::Hello(if o { Role::Observer } else { Role::Participant })),
        3 => any::<String>().prop_map(ClientFrame::Username),
        4 => any::<String>().prop_map(ClientFrame::Chat),
        1 => (0..=MAX_CHAT_BYTES).prop_map(|n| ClientFrame::Chat("y".repeat(n))),
        1 => Just(ClientFrame::Who),
    ]
}

/// One stretch of a hostile stream.
fn segment() -> impl Strategy<Value = Vec<u8>> {
    let length = prop_oneof![
        Just(0u32),
        1..=16u32,
        Just(MAX_FRAME_BYTES as u32),
        Just(MAX_FRAME_BYTES as u32 + 1),
        Just(u32::MAX),
        any::<u32>(),
    ];
    prop_oneof![
        8 => client_frame().prop_map(|f| frame_bytes(&f)),
        2 => (length, vec(any::<u8>(), 0..32)).prop_map(|(len, payload)| {
            let mut bytes = len.to_be_bytes().to_vec();
            bytes.extend(payload);
            bytes
        }),
        1 => vec(any::<u8>(), 0..16),
        // A decodable chat frame at the length limit or just past it.
        1 => (MAX_CHAT_BYTES - 1..=MAX_CHAT_BYTES + 1).prop_map(|n| {
            // Tag 2 (Chat), the length as a 3-byte varint, the text.
            let mut payload = vec![2, (n as u8) | 0x80, ((n >> 7) as u8) | 0x80, (n >> 14) as u8];
            payload.resize(payload.len() + n, b'y');
            let mut bytes = (payload.len() as u32).to_be_bytes().to_vec();
            bytes.extend(payload);
            bytes
        }),
    ]
}

fn hostile_stream() -> impl Strategy<Value = Vec<u8>> {
    vec(segment(), 0..12).prop_map(|segments| segments.concat())
}

fn pieces() -> impl Strategy<Value = Vec<usize>> {
    vec(
        prop_oneof![
            4 => 1..=3usize,
            4 => 1..=64usize,
            2 => 1..=READ_CHUNK_BYTES,
            1 => 1..=2 * MAX_BUFFERED_FRAME,
        ],
        1..16,
    )
}

/// The limits the server uses, and small ones of either kind.
fn limit() -> impl Strategy<Value = FrameLimit> {
    let oversize = prop_oneof![Just(Oversize::Refuse), Just(Oversize::Skip)];
    prop_oneof![
        Just(FrameLimit::ANY),
        Just(FrameLimit {
            max_payload: MAX_HELLO_PAYLOAD,
            oversize: Oversize::Refuse,
            when: "before Hello",
        }),
        Just(FrameLimit {
            max_payload: MAX_CHAT_PAYLOAD,
            oversize: Oversize::Skip,
            when: "",
        }),
        (0..64usize, oversize).prop_map(|(max_payload, oversize)| FrameLimit {
            max_payload,
            oversize,
            when: "now",
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Under every limit, `FrameLimit::ANY` included.
    #[test]
    fn hostile_stream_decodes_as_the_protocol_says_however_it_is_split(
        stream in hostile_stream(),
        pieces in pieces(),
        limit in limit(),
    ) {
        let split = decode_in_pieces_within(&stream, &pieces, limit);
        prop_assert_eq!(split, reference_decode_within(&stream, limit));
    }

    #[test]
    fn skipping_drops_exactly_the_frames_over_the_limit(
        frames in vec(client_frame(), 0..10),
        pieces in pieces(),
        max_payload in 0..64usize,
    ) {
        let limit = FrameLimit { max_payload, oversize: Oversize::Skip, when: "" };
        let encoded: Vec<_> = frames.iter().map(frame_bytes).collect();
        let stream: Vec<u8> = encoded.iter().flatten().copied().collect();
        let decoded = decode_in_pieces_within(&stream, &pieces, limit);
        let (kept, over): (Vec<_>, Vec<_>) = frames
            .iter()
            .zip(&encoded)
            .partition(|(_, bytes)| bytes.len() - HEADER_BYTES <= max_payload);
        prop_assert_eq!(decoded.error, None);
        prop_assert!(!decoded.mid_frame);
        prop_assert_eq!(decoded.frames, kept.into_iter().map(|(f, _)| f.clone()).collect::<Vec<_>>());
        prop_assert_eq!(
            decoded.skipped,
            over.into_iter().map(|(_, bytes)| bytes.len() - HEADER_BYTES).collect::<Vec<_>>()
        );
    }

    #[test]
    fn valid_stream_gives_back_its_frames_however_it_is_split(
        frames in vec(client_frame(), 0..10),
        pieces in pieces(),
    ) {
        let stream: Vec<u8> = frames.iter().flat_map(frame_bytes).collect();
        let decoded = decode_in_pieces(&stream, &pieces);
        prop_assert_eq!(decoded.error, None);
        prop_assert!(!decoded.mid_frame);
        prop_assert_eq!(decoded.frames, frames);
    }

    #[test]
    fn arbitrary_bytes_decode_as_the_protocol_says_without_overfilling(
        stream in vec(any::<u8>(), 0..2048),
        pieces in pieces(),
    ) {
        prop_assert_eq!(decode_in_pieces(&stream, &pieces), reference_decode(&stream));
    }
}
