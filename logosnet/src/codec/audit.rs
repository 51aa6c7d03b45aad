//! A checking harness for [`FrameDecoder`]: feeds it a byte stream in given
//! pieces, asserts the buffering bound after every piece, and returns what
//! came out, so that the property tests (`codec/proptests.rs`) and the fuzz
//! target (`fuzz/fuzz_targets/decoder.rs`) share one oracle.
//!
//! Compiled only for tests and with the `fuzzing` feature.

use super::{FrameDecoder, MAX_BUFFERED_FRAME};
use crate::protocol::{ClientFrame, FrameError};

/// Everything a decoder produced from one stream: the frames in order, then
/// the violation that stopped it (if any), and whether it ended mid-frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The frames, in order.
    pub frames: Vec<ClientFrame>,
    /// The first violation; nothing after it is decoded.
    pub error: Option<FrameError>,
    /// Bytes of an unfinished frame were left over.
    pub mid_frame: bool,
}

/// Decodes `stream` in pieces of the sizes `pieces` yields (cycled; a zero
/// size counts as one byte), asserting after each piece that the decoder
/// holds at most one maximum frame plus that piece before draining and less
/// than one maximum frame after, and that a failed decoder stays failed.
pub fn decode_in_pieces(stream: &[u8], pieces: &[usize]) -> Decoded {
    let mut decoder = FrameDecoder::new();
    let mut out = Decoded {
        frames: Vec::new(),
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
            decoder.buffered() <= MAX_BUFFERED_FRAME + piece.len(),
            "holds {} bytes after a {}-byte piece",
            decoder.buffered(),
            piece.len()
        );
        loop {
            let held = decoder.buffered();
            match decoder.next_frame::<ClientFrame>() {
                Ok(Some(frame)) => {
                    assert!(
                        held - decoder.buffered() <= MAX_BUFFERED_FRAME,
                        "handed out a frame longer than the maximum"
                    );
                    out.frames.push(frame);
                }
                Ok(None) => break,
                Err(error) => {
                    assert!(
                        decoder.next_frame::<ClientFrame>().is_err(),
                        "a failed decoder must stay failed"
                    );
                    out.error = Some(error);
                    return out;
                }
            }
        }
        assert!(
            decoder.buffered() < MAX_BUFFERED_FRAME,
            "holds a whole frame it did not hand out"
        );
    }
    out.mid_frame = decoder.is_mid_frame();
    out
}

/// Decodes `stream` in one piece: the reference every split must match.
pub fn decode_whole(stream: &[u8]) -> Decoded {
    decode_in_pieces(stream, &[stream.len()])
}
