//! A checking harness for [`FrameDecoder`]: feeds it a byte stream in given
//! pieces under a [`FrameLimit`], asserts the buffering bound after every
//! piece, and returns what came out; and a reference framer, written from
//! docs/PROTOCOL.md §1 without the decoder's code, that says what must come
//! out. The property tests (`logosnet/tests/properties/codec.rs`) and the
//! fuzz target (`fuzz/fuzz_targets/decoder.rs`) share both.
//!
//! The reference reads the whole stream at once, frame by frame, as the
//! protocol describes it: a 4-byte big-endian length of 1 to 65,536, judged
//! against the limit before anything of its payload, then the payload. It
//! shares no code with [`FrameDecoder`]'s reassembly (no buffer, no state
//! between pieces, no skipping counter), so a split that loses, repeats or
//! misjudges a byte shows as a difference. Each whole payload is read by
//! [`decode_payload`], the codec's other half: what a payload means is
//! that function's unit tests' subject, not reassembly's.

use logosnet::codec::{Decoded as Item, FrameDecoder, FrameLimit, Oversize, decode_payload};
use logosnet::protocol::{ClientFrame, FrameError, HEADER_BYTES, MAX_FRAME_BYTES};

/// Everything a decoder produced from one stream: the frames in order, then
/// the violation that stopped it (if any), and whether it ended mid-frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The frames, in order.
    pub frames: Vec<ClientFrame>,
    /// The announced lengths of the frames skipped as over the limit.
    pub skipped: Vec<usize>,
    /// The first violation; nothing after it is decoded.
    pub error: Option<FrameError>,
    /// Bytes of an unfinished frame were left over.
    pub mid_frame: bool,
}

/// Decodes `stream` in pieces of the sizes `pieces` yields (cycled; a zero
/// size counts as one byte) under the protocol's own limit. See
/// [`decode_in_pieces_within`].
pub fn decode_in_pieces(stream: &[u8], pieces: &[usize]) -> Decoded {
    decode_in_pieces_within(stream, pieces, FrameLimit::ANY)
}

/// Decodes `stream` in pieces of the sizes `pieces` yields under `limit`,
/// asserting after each piece that the decoder holds at most one frame of
/// the limit plus that piece before draining and less than one frame of
/// the limit after (nothing at all of a frame being skipped), and that a
/// failed decoder stays failed.
pub fn decode_in_pieces_within(stream: &[u8], pieces: &[usize], limit: FrameLimit) -> Decoded {
    let most = HEADER_BYTES + limit.max_payload;
    let mut decoder = FrameDecoder::new();
    let mut out = Decoded {
        frames: Vec::new(),
        skipped: Vec::new(),
        error: None,
        mid_frame: false,
    };
    let mut rest = stream;
    let mut sizes = pieces.iter().copied().cycle();
    while !rest.is_empty() {
        let size = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
        let (piece, tail) = rest.split_at(size);
        rest = tail;
        let before = decoder.buffered();
        decoder.extend(piece);
        assert_eq!(decoder.buffered(), before + piece.len());
        assert!(
            decoder.buffered() <= most + piece.len(),
            "holds {} bytes after a {}-byte piece",
            decoder.buffered(),
            piece.len()
        );
        loop {
            let held = decoder.buffered();
            match decoder.next_frame_within::<ClientFrame>(limit) {
                Ok(Some(Item::Frame(frame))) => {
                    assert!(
                        held - decoder.buffered() <= most,
                        "handed out a frame longer than the limit"
                    );
                    out.frames.push(frame);
                }
                Ok(Some(Item::Skipped(len))) => {
                    assert!(len > limit.max_payload, "skipped a frame within the limit");
                    out.skipped.push(len);
                }
                Ok(None) => break,
                Err(error) => {
                    // Whatever follows, even a valid frame, is refused with
                    // the failed stream's own error: a decoder that forgot
                    // its failure would repeat the header's error (the bad
                    // header is still buffered) or go on decoding.
                    decoder.extend(&HELLO);
                    assert_eq!(
                        decoder.next_frame_within::<ClientFrame>(limit),
                        Err(FrameError::Undecodable("stream already failed")),
                        "a failed decoder must stay failed"
                    );
                    out.error = Some(error);
                    return out;
                }
            }
        }
        assert!(
            decoder.buffered() < most,
            "holds a whole frame it did not hand out"
        );
    }
    out.mid_frame = decoder.is_mid_frame();
    out
}

/// A valid `Hello(Participant)` frame, fed to a failed decoder.
const HELLO: [u8; 6] = [0, 0, 0, 2, 0, 0];

/// What the protocol says `stream` decodes to under the protocol's own
/// limit. See [`reference_decode_within`].
pub fn reference_decode(stream: &[u8]) -> Decoded {
    reference_decode_within(stream, FrameLimit::ANY)
}

/// What the protocol says `stream` decodes to under `limit`, read whole,
/// frame after frame (docs/PROTOCOL.md §1): a header of 4 bytes, big-endian;
/// a length of 0 or past 65,536 is a violation; past the limit, a violation
/// or a frame skipped once all of it has gone by, as the limit says; else
/// the payload, decoded. The first violation ends the stream; a stream
/// that stops inside a frame is mid-frame.
pub fn reference_decode_within(stream: &[u8], limit: FrameLimit) -> Decoded {
    let mut out = Decoded {
        frames: Vec::new(),
        skipped: Vec::new(),
        error: None,
        mid_frame: false,
    };
    let mut rest = stream;
    while !rest.is_empty() {
        let Some((header, after)) = rest.split_first_chunk::<4>() else {
            out.mid_frame = true;
            return out;
        };
        let announced = u32::from_be_bytes(*header);
        let len = announced as usize;
        let violation = if announced == 0 {
            Some(FrameError::Empty)
        } else if len > MAX_FRAME_BYTES {
            Some(FrameError::TooLong(announced))
        } else if len > limit.max_payload && limit.oversize == Oversize::Refuse {
            Some(FrameError::OverLimit {
                len: announced,
                limit: limit.max_payload,
                when: limit.when,
            })
        } else {
            None
        };
        if let Some(error) = violation {
            out.error = Some(error);
            return out;
        }
        let Some((payload, next)) = after.split_at_checked(len) else {
            out.mid_frame = true;
            return out;
        };
        if len > limit.max_payload {
            out.skipped.push(len);
        } else {
            match decode_payload::<ClientFrame>(payload) {
                Ok(frame) => out.frames.push(frame),
                Err(error) => {
                    out.error = Some(error);
                    return out;
                }
            }
        }
        rest = next;
    }
    out
}
