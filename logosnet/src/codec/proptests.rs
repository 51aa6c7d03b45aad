//! Property tests of frame reassembly: arbitrary byte streams (valid frames,
//! hostile headers, junk) cut into arbitrary pieces never panic, never make
//! the decoder hold more than one maximum frame plus one read, and decode
//! exactly as the same stream delivered in one piece. The same holds through
//! [`FrameReader`](crate::framed::FrameReader) over a socket that returns
//! reads of arbitrary sizes. Under a per-state [`FrameLimit`] the same
//! holds with the limit's frame in place of the maximum, and skipping an
//! oversized frame changes nothing but that frame.

use std::pin::Pin;
use std::task::{Context, Poll};

use proptest::collection::vec;
use proptest::prelude::*;
use tokio::io::{AsyncRead, ReadBuf};

use super::audit::{decode_in_pieces, decode_in_pieces_within, decode_whole, decode_whole_within};
use super::{FrameLimit, MAX_BUFFERED_FRAME, Oversize};
use crate::framed::{FrameReader, READ_CHUNK_BYTES};
use crate::protocol::{
    ClientFrame, HEADER_BYTES, MAX_CHAT_PAYLOAD, MAX_FRAME_BYTES, MAX_HELLO_PAYLOAD, Role, encode,
};

/// Longest chat line whose frame still fits: 1 tag byte and a 3-byte varint.
const MAX_CHAT_BYTES: usize = MAX_FRAME_BYTES - 4;

fn client_frame() -> impl Strategy<Value = ClientFrame> {
    prop_oneof![
        2 => any::<bool>().prop_map(|o| ClientFrame::Hello(if o { Role::Observer } else { Role::Participant })),
        3 => any::<String>().prop_map(ClientFrame::Username),
        4 => any::<String>().prop_map(ClientFrame::Chat),
        1 => (0..=MAX_CHAT_BYTES).prop_map(|n| ClientFrame::Chat("y".repeat(n))),
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
        8 => client_frame().prop_map(|f| encode(&f).to_vec()),
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

/// A socket that returns the stream in reads of the given sizes (cycled),
/// each also limited by the space the reader offers.
struct PiecewiseStream {
    data: Vec<u8>,
    at: usize,
    pieces: Vec<usize>,
    next: usize,
}

impl AsyncRead for PiecewiseStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let piece = this.pieces[this.next % this.pieces.len()].max(1);
        this.next += 1;
        let n = piece.min(buf.remaining()).min(this.data.len() - this.at);
        buf.put_slice(&this.data[this.at..this.at + n]);
        this.at += n;
        Poll::Ready(Ok(()))
    }
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

    #[test]
    fn limited_stream_decodes_the_same_however_it_is_split(
        stream in hostile_stream(),
        pieces in pieces(),
        limit in limit(),
    ) {
        let whole = decode_whole_within(&stream, limit);
        let split = decode_in_pieces_within(&stream, &pieces, limit);
        prop_assert_eq!(split, whole);
    }

    #[test]
    fn skipping_drops_exactly_the_frames_over_the_limit(
        frames in vec(client_frame(), 0..10),
        pieces in pieces(),
        max_payload in 0..64usize,
    ) {
        let limit = FrameLimit { max_payload, oversize: Oversize::Skip, when: "" };
        let encoded: Vec<_> = frames.iter().map(encode).collect();
        let stream: Vec<u8> = encoded.iter().flat_map(|f| f.to_vec()).collect();
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
    fn hostile_stream_decodes_the_same_however_it_is_split(
        stream in hostile_stream(),
        pieces in pieces(),
    ) {
        let whole = decode_whole(&stream);
        let split = decode_in_pieces(&stream, &pieces);
        prop_assert_eq!(split, whole);
    }

    #[test]
    fn valid_stream_gives_back_its_frames_however_it_is_split(
        frames in vec(client_frame(), 0..10),
        pieces in pieces(),
    ) {
        let stream: Vec<u8> = frames.iter().flat_map(|f| encode(f).to_vec()).collect();
        let decoded = decode_in_pieces(&stream, &pieces);
        prop_assert_eq!(decoded.error, None);
        prop_assert!(!decoded.mid_frame);
        prop_assert_eq!(decoded.frames, frames);
    }

    #[test]
    fn arbitrary_bytes_never_panic_or_overfill(
        stream in vec(any::<u8>(), 0..2048),
        pieces in pieces(),
    ) {
        let whole = decode_whole(&stream);
        prop_assert_eq!(decode_in_pieces(&stream, &pieces), whole);
    }
}

/// Reads `stream` through a [`FrameReader`] in the given read sizes,
/// asserting after every read that the buffer holds at most one maximum
/// frame plus one read and is allocated within twice that; returns the
/// frames and the violation, if any.
fn read_through_frame_reader(
    stream: Vec<u8>,
    pieces: Vec<usize>,
) -> (Vec<ClientFrame>, Option<crate::protocol::FrameError>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let source = PiecewiseStream {
        data: stream,
        at: 0,
        pieces,
        next: 0,
    };
    let mut reader = FrameReader::new(source);
    let bound = MAX_BUFFERED_FRAME + READ_CHUNK_BYTES;
    let mut frames = Vec::new();
    let mut error = None;
    runtime.block_on(async {
        'read: loop {
            let n = reader.fill().await.unwrap();
            let held = reader.decoder().buffered();
            let capacity = reader.decoder().buffer_mut().capacity();
            assert!(held <= bound, "holds {held} > {bound}");
            assert!(
                capacity <= 2 * bound,
                "allocated {capacity} > {}",
                2 * bound
            );
            loop {
                match reader.decoder().next_frame::<ClientFrame>() {
                    Ok(Some(frame)) => frames.push(frame),
                    Ok(None) => break,
                    Err(e) => {
                        error = Some(e);
                        break 'read;
                    }
                }
            }
            if n == 0 {
                break;
            }
        }
    });
    (frames, error)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    /// Through the async reader, whatever sizes the socket's reads come in,
    /// the buffer never holds more than one maximum frame plus one read, and
    /// its allocation stays within twice that.
    #[test]
    fn frame_reader_buffer_stays_within_one_frame_plus_a_read(
        stream in hostile_stream(),
        pieces in pieces(),
    ) {
        let expected = decode_whole(&stream);
        let (frames, error) = read_through_frame_reader(stream, pieces);
        prop_assert_eq!(frames, expected.frames);
        prop_assert_eq!(error, expected.error);
    }
}

/// Regression (found by the property test above): after a maximum-size
/// frame had made the decoder reserve room for itself, a socket offering
/// more than [`READ_CHUNK_BYTES`] could fill all that spare room in one
/// read, so the buffer held more than one frame plus one read.
#[test]
fn large_reads_after_a_maximum_frame_stay_within_the_bound() {
    let frames: Vec<ClientFrame> = [MAX_CHAT_BYTES - 1, MAX_CHAT_BYTES, 16_378]
        .into_iter()
        .map(|n| ClientFrame::Chat("y".repeat(n)))
        .collect();
    let stream: Vec<u8> = frames.iter().flat_map(|f| encode(f).to_vec()).collect();
    let (got, error) = read_through_frame_reader(stream, vec![29_958, 1]);
    assert_eq!(error, None);
    assert_eq!(got, frames);
}
