//! Incremental frame reassembly: bytes in pieces of any size → whole frames.
//!
//! [`FrameDecoder`] owns one connection's partial-frame buffer. Bytes arrive
//! in whatever pieces the network gives (down to one byte); complete payloads
//! come out in order, and a header that breaks the length rule is rejected
//! before a byte of its payload is buffered. It does no I/O: the async
//! wrapper is [`crate::framed`].

use bytes::{Buf, Bytes, BytesMut};
use serde::de::DeserializeOwned;

use crate::protocol::{self, FrameError, HEADER_BYTES, MAX_FRAME_BYTES};

/// The most a decoder ever holds: one whole frame. Callers add at most one
/// read's worth on top before draining, so memory per connection is bounded.
pub const MAX_BUFFERED_FRAME: usize = HEADER_BYTES + MAX_FRAME_BYTES;

/// Reassembles frames from a byte stream split at arbitrary points.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: BytesMut,
    /// Set once a violation is seen: the stream cannot be resynchronised.
    failed: bool,
}

impl FrameDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes received from the peer.
    pub fn extend(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The buffer to read into directly (e.g. with `read_buf`), avoiding a copy.
    pub fn buffer_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Bytes held that are not yet part of a returned frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// True when a frame has started but not finished: an end of stream now
    /// means the peer left mid-frame.
    pub fn is_mid_frame(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Takes the next complete payload, `Ok(None)` if more bytes are needed.
    /// After an error the decoder stays failed: a stream with a bad header
    /// cannot be resynchronised.
    pub fn next_payload(&mut self) -> Result<Option<Bytes>, FrameError> {
        if self.failed {
            return Err(FrameError::Undecodable("stream already failed"));
        }
        if self.buf.len() < HEADER_BYTES {
            return Ok(None);
        }
        let header: [u8; HEADER_BYTES] = [self.buf[0], self.buf[1], self.buf[2], self.buf[3]];
        let len = match protocol::check_length(u32::from_be_bytes(header)) {
            Ok(len) => len,
            Err(e) => {
                self.failed = true;
                return Err(e);
            }
        };
        let total = HEADER_BYTES + len;
        if self.buf.len() < total {
            self.buf.reserve(total - self.buf.len());
            return Ok(None);
        }
        self.buf.advance(HEADER_BYTES);
        Ok(Some(self.buf.split_to(len).freeze()))
    }

    /// Takes and decodes the next complete frame, `Ok(None)` if more bytes
    /// are needed.
    pub fn next_frame<T: DeserializeOwned>(&mut self) -> Result<Option<T>, FrameError> {
        match self.next_payload()? {
            None => Ok(None),
            Some(payload) => match protocol::decode_payload(&payload) {
                Ok(frame) => Ok(Some(frame)),
                Err(e) => {
                    self.failed = true;
                    Err(e)
                }
            },
        }
    }
}

#[cfg(any(test, feature = "fuzzing"))]
pub mod audit;
#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ClientFrame, Role, ServerFrame, encode};

    fn sample_stream() -> (Vec<u8>, Vec<ClientFrame>) {
        let frames = vec![
            ClientFrame::Hello(Role::Participant),
            ClientFrame::Username("bob".into()),
            ClientFrame::Chat("héllo wörld".into()),
            ClientFrame::Chat("x".repeat(1000)),
            ClientFrame::Chat("@alice psst".into()),
        ];
        let bytes = frames.iter().flat_map(|f| encode(f).to_vec()).collect();
        (bytes, frames)
    }

    fn decode_in_pieces(bytes: &[u8], piece: usize) -> Vec<ClientFrame> {
        let mut decoder = FrameDecoder::new();
        let mut out = Vec::new();
        for chunk in bytes.chunks(piece) {
            decoder.extend(chunk);
            while let Some(frame) = decoder.next_frame().unwrap() {
                out.push(frame);
            }
        }
        assert_eq!(decoder.buffered(), 0);
        out
    }

    #[test]
    fn every_piece_size_gives_the_same_frames() {
        let (bytes, frames) = sample_stream();
        for piece in 1..=bytes.len() {
            assert_eq!(decode_in_pieces(&bytes, piece), frames, "piece {piece}");
        }
    }

    #[test]
    fn every_single_split_point_gives_the_same_frames() {
        let (bytes, frames) = sample_stream();
        for split in 0..=bytes.len() {
            let mut decoder = FrameDecoder::new();
            let mut out: Vec<ClientFrame> = Vec::new();
            for part in [&bytes[..split], &bytes[split..]] {
                decoder.extend(part);
                while let Some(frame) = decoder.next_frame().unwrap() {
                    out.push(frame);
                }
            }
            assert_eq!(out, frames, "split at {split}");
        }
    }

    #[test]
    fn partial_frame_is_none_and_mid_frame() {
        let bytes = encode(&ServerFrame::Notice("User bob has joined".into()));
        let mut decoder = FrameDecoder::new();
        decoder.extend(&bytes[..2]);
        assert_eq!(decoder.next_frame::<ServerFrame>(), Ok(None));
        assert!(decoder.is_mid_frame());
        decoder.extend(&bytes[2..bytes.len() - 1]);
        assert_eq!(decoder.next_frame::<ServerFrame>(), Ok(None));
        decoder.extend(&bytes[bytes.len() - 1..]);
        assert_eq!(
            decoder.next_frame::<ServerFrame>(),
            Ok(Some(ServerFrame::Notice("User bob has joined".into())))
        );
        assert!(!decoder.is_mid_frame());
    }

    #[test]
    fn oversized_header_is_rejected_before_its_payload() {
        let mut decoder = FrameDecoder::new();
        decoder.extend(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(decoder.next_payload(), Err(FrameError::TooLong(u32::MAX)));
        // Nothing beyond the header was reserved for the announced payload.
        assert!(decoder.buf.capacity() < 1024);
        assert!(decoder.next_payload().is_err(), "stays failed");
    }

    #[test]
    fn zero_length_header_is_rejected() {
        let mut decoder = FrameDecoder::new();
        decoder.extend(&[0, 0, 0, 0, 0]);
        assert_eq!(decoder.next_payload(), Err(FrameError::Empty));
    }

    #[test]
    fn largest_frame_is_accepted_and_one_more_is_not() {
        let mut decoder = FrameDecoder::new();
        let mut bytes = (MAX_FRAME_BYTES as u32).to_be_bytes().to_vec();
        bytes.resize(MAX_BUFFERED_FRAME, 7);
        decoder.extend(&bytes);
        let payload = decoder.next_payload().unwrap().unwrap();
        assert_eq!(payload.len(), MAX_FRAME_BYTES);

        decoder.extend(&(MAX_FRAME_BYTES as u32 + 1).to_be_bytes());
        assert_eq!(
            decoder.next_payload(),
            Err(FrameError::TooLong(MAX_FRAME_BYTES as u32 + 1))
        );
    }

    #[test]
    fn undecodable_payload_fails_the_stream() {
        let mut decoder = FrameDecoder::new();
        decoder.extend(&[0, 0, 0, 1, 9]);
        assert!(matches!(
            decoder.next_frame::<ClientFrame>(),
            Err(FrameError::Undecodable(_))
        ));
        decoder.extend(&encode(&ClientFrame::Hello(Role::Observer)));
        assert!(decoder.next_frame::<ClientFrame>().is_err());
    }
}
