//! A checking harness for [`FrameDecoder`]: feeds it a byte stream in given
//! pieces under a [`FrameLimit`], asserts the buffering bound after every
//! piece, and returns what came out, so that the property tests
//! (`logosnet/tests/properties/codec.rs`) and the fuzz target
//! (`fuzz/fuzz_targets/decoder.rs`) share one oracle.

use logosnet::codec::{Decoded as Item, FrameDecoder, FrameLimit};
use logosnet::protocol::{ClientFrame, FrameError, HEADER_BYTES};

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

/// Decodes `stream` in one piece: the reference every split must match.
pub fn decode_whole(stream: &[u8]) -> Decoded {
    decode_in_pieces(stream, &[stream.len()])
}

/// [`decode_whole`] under `limit`.
pub fn decode_whole_within(stream: &[u8], limit: FrameLimit) -> Decoded {
    decode_in_pieces_within(stream, &[stream.len()], limit)
}
