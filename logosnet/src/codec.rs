//! Frames to bytes and back: [`encode`] one way, [`FrameDecoder`] the other.
//!
//! [`encode`] turns one message into one whole frame (header and payload),
//! checking its length in every build. [`decode_payload`] turns one
//! payload back into exactly one message. [`FrameDecoder`] owns one
//! connection's partial-frame buffer. Bytes arrive
//! in whatever pieces the network gives (down to one byte); complete payloads
//! come out in order. Every header is judged against a [`FrameLimit`] the
//! moment its four bytes are in, before a byte of its payload is kept: a
//! length past [`MAX_FRAME_BYTES`] is always a violation; a length past the
//! limit the caller gives is either a violation too ([`Oversize::Refuse`])
//! or skipped — its payload discarded as it streams in, never held, and
//! reported as [`Decoded::Skipped`] once it has gone by ([`Oversize::Skip`]).
//! Nothing is reserved for an announced length: the buffer grows only by
//! what the peer actually sent, so it holds at most one frame of the limit
//! plus what the caller read on top. It does no I/O: the async wrapper is
//! [`crate::connection`]; the server picks the limit for each connection's
//! state (see [`crate::room::Room::frame_limit`]). What the bytes mean —
//! the types, the limits — is [`crate::protocol`]'s.

use bytes::{Buf, Bytes, BytesMut};
use postcard::ser_flavors::Size;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::protocol::{self, FrameError, HEADER_BYTES, MAX_FRAME_BYTES};

/// Why a message could not be made into a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// Its payload is longer than [`MAX_FRAME_BYTES`]: no peer would take
    /// it, and its length may not even fit the header.
    #[error("a payload of {0} bytes exceeds the maximum of {MAX_FRAME_BYTES}")]
    TooLong(usize),
    /// postcard could not serialize it (never for the protocol's types).
    #[error("cannot serialize the message: {0}")]
    Unserializable(postcard::Error),
}

/// Encodes one message as a complete frame (header and payload), ready to be
/// written or shared among many recipients. A payload over
/// [`MAX_FRAME_BYTES`] is an error, in release builds too.
pub fn encode<T: Serialize>(message: &T) -> Result<Bytes, EncodeError> {
    let mut out = Vec::with_capacity(HEADER_BYTES + 16);
    out.extend_from_slice(&[0; HEADER_BYTES]);
    let mut out = postcard::to_extend(message, out).map_err(EncodeError::Unserializable)?;
    let payload_len = out.len() - HEADER_BYTES;
    let header = u32::try_from(payload_len)
        .ok()
        .filter(|_| payload_len <= MAX_FRAME_BYTES)
        .ok_or(EncodeError::TooLong(payload_len))?;
    out[..HEADER_BYTES].copy_from_slice(&header.to_be_bytes());
    // Exactly the frame's bytes: a queued frame's memory is then what the
    // server's accounting charges for it.
    out.shrink_to_fit();
    Ok(Bytes::from(out))
}

/// Decodes one payload (the bytes after the header) into exactly one value:
/// unknown variants, bad varints, invalid UTF-8 and trailing bytes are errors,
/// and so is an *overlong* varint (one padded with `80` bytes past what its
/// value needs, such as `80 00` for 0), which postcard itself would take.
///
/// Why refuse padding: one message then has exactly one encoding, the one
/// [`encode`] writes, so the frame limits ([`crate::protocol::MAX_HELLO_PAYLOAD`]
/// and the rest) are the lengths of the longest real messages rather than
/// of padded ones, and a peer that pads is found out at once instead of
/// being taken for a conforming one. Checked by re-measuring the value:
/// the payload was consumed exactly, and the only freedom postcard leaves
/// in these types is varint padding, so a payload longer than the value's
/// own encoding padded a varint.
pub fn decode_payload<T: Serialize + DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    match postcard::take_from_bytes::<T>(payload) {
        Ok((value, [])) => match postcard::serialize_with_flavor(&value, Size::default()) {
            Ok(len) if len == payload.len() => Ok(value),
            _ => Err(FrameError::Undecodable(OVERLONG_VARINT)),
        },
        Ok((_, _rest)) => Err(FrameError::Undecodable("trailing bytes after the message")),
        Err(e) => Err(FrameError::Undecodable(postcard_reason(&e))),
    }
}

/// The violation's words for a padded varint.
const OVERLONG_VARINT: &str = "overlong varint";

/// The payload length the header at the start of `bytes` announces, once
/// all four of its bytes are there.
pub fn announced_len(bytes: &[u8]) -> Option<u32> {
    bytes
        .first_chunk::<HEADER_BYTES>()
        .copied()
        .map(u32::from_be_bytes)
}

/// The first payload byte of every `ServerFrame::Message`: its variant
/// index (7) as postcard writes it, one varint byte.
pub const MESSAGE_TAG: u8 = 7;

/// The text of a `ServerFrame::Message` payload where it lies, its bytes
/// not yet checked to be UTF-8: for a reader that must not allocate per
/// message (loadgen). `None` for any other payload, or one that is no
/// whole message; [`decode_payload`] then gives the verdict. It reads the
/// length exactly as the strict decoder does, so it is never more lenient
/// than it: a text it returns is the strict decoder's `String` whenever
/// that is UTF-8.
pub fn message_text(payload: &[u8]) -> Option<&[u8]> {
    match payload {
        // A length under 128 is one varint byte: the common case, read here.
        [MESSAGE_TAG, len @ 0..0x80, text @ ..] => {
            (usize::from(*len) == text.len()).then_some(text)
        }
        // Longer: exact, and its length written in as few bytes as it
        // needs (the strict decoder refuses a padded one).
        [MESSAGE_TAG, rest @ ..] => match postcard::take_from_bytes::<&[u8]>(rest) {
            Ok((text, [])) if rest.len() == protocol::varint_len(text.len()) + text.len() => {
                Some(text)
            }
            _ => None,
        },
        _ => None,
    }
}

/// The violation's words for a postcard decoding error.
fn postcard_reason(e: &postcard::Error) -> &'static str {
    use postcard::Error as E;
    match e {
        E::DeserializeUnexpectedEnd => "message ends early",
        E::DeserializeBadVarint => "bad varint",
        E::DeserializeBadUtf8 => "invalid UTF-8 in a string",
        // Our types raise a custom error only for an unknown variant index.
        E::DeserializeBadEnum | E::SerdeDeCustom => "unknown message or role variant",
        _ => "not a valid message",
    }
}

/// The most a decoder ever holds under [`FrameLimit::ANY`]: one whole
/// frame. Callers add at most one read's worth on top before draining, so
/// memory per connection is bounded.
pub const MAX_BUFFERED_FRAME: usize = HEADER_BYTES + MAX_FRAME_BYTES;

/// What happens to a frame longer than a [`FrameLimit`] allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oversize {
    /// A violation ([`FrameError::OverLimit`]), seen at the header.
    Refuse,
    /// The payload is discarded as it arrives, then reported as
    /// [`Decoded::Skipped`].
    Skip,
}

/// The longest payload a connection may send now, and what happens to a
/// longer one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimit {
    /// The longest payload taken whole (at most [`MAX_FRAME_BYTES`]).
    pub max_payload: usize,
    /// What happens to a longer one.
    pub oversize: Oversize,
    /// Where the connection is, as a violation's reason says it
    /// ("before Hello").
    pub when: &'static str,
}

impl FrameLimit {
    /// The protocol's own limit and nothing tighter: what a client reading
    /// the server uses.
    pub const ANY: FrameLimit = FrameLimit {
        max_payload: MAX_FRAME_BYTES,
        oversize: Oversize::Refuse,
        when: "",
    };
}

/// What the decoder hands out: a whole frame, or word that an oversized
/// one went by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded<T> {
    /// A whole frame (or payload).
    Frame(T),
    /// A frame over the limit was skipped; this was its announced length.
    Skipped(usize),
}

/// Reassembles frames from a byte stream split at arbitrary points.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    /// Bytes received and not yet handed out or discarded.
    buf: BytesMut,
    /// An oversized frame being skipped: its length and the payload bytes
    /// still to discard.
    skipping: Option<Skipping>,
    /// Set once a violation is seen: the stream cannot be resynchronised.
    failed: bool,
    /// Bytes of the frame last handed out in place (header and payload),
    /// still at the front of `buf`; dropped by the next call.
    in_place: usize,
}

#[derive(Debug, Clone, Copy)]
struct Skipping {
    /// The skipped frame's announced payload length.
    len: usize,
    /// Payload bytes still to discard.
    left: usize,
}

impl FrameDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes received from the peer.
    pub fn extend(&mut self, data: &[u8]) {
        self.release_in_place();
        self.buf.extend_from_slice(data);
    }

    /// The buffer to read into directly (e.g. with `read_buf`), avoiding a copy.
    pub fn buffer_mut(&mut self) -> &mut BytesMut {
        self.release_in_place();
        &mut self.buf
    }

    /// Bytes held that are not yet part of a returned frame.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.in_place
    }

    /// True when a frame has started but not finished: an end of stream now
    /// means the peer left mid-frame.
    pub fn is_mid_frame(&self) -> bool {
        self.buffered() > 0 || self.skipping.is_some()
    }

    /// The length the next frame's header announces, once all four bytes
    /// of it are in (and no frame is being skipped).
    pub fn announced(&self) -> Option<u32> {
        match self.skipping {
            None => announced_len(&self.buf[self.in_place..]),
            Some(_) => None,
        }
    }

    /// Drops the frame last handed out in place.
    fn release_in_place(&mut self) {
        self.buf.advance(std::mem::take(&mut self.in_place));
    }

    /// The next complete payload under the protocol's own limit, lent where
    /// it lies until the next call: no copy, no allocation, no reference
    /// count. `Ok(None)` if more bytes are needed; after an error the
    /// decoder stays failed, as with [`FrameDecoder::next_payload`].
    pub fn next_payload_in_place(&mut self) -> Result<Option<&[u8]>, FrameError> {
        self.release_in_place();
        match self.judge_header(FrameLimit::ANY)? {
            Some(Judged::Take(len)) => {
                // One advance per frame, at the next call: header and all.
                self.in_place = HEADER_BYTES + len;
                Ok(Some(&self.buf[HEADER_BYTES..HEADER_BYTES + len]))
            }
            // `ANY` refuses, never skips.
            Some(Judged::Skip(_)) | None => Ok(None),
        }
    }

    /// Judges the next header against `limit` once it is in; for a frame
    /// to take, waits until its whole payload is buffered. The header is
    /// left in place.
    fn judge_header(&mut self, limit: FrameLimit) -> Result<Option<Judged>, FrameError> {
        if self.failed {
            return Err(FrameError::Undecodable("stream already failed"));
        }
        let Some(announced) = self.announced() else {
            return Ok(None);
        };
        let judged = judge(announced, limit).inspect_err(|_| self.failed = true)?;
        if let Judged::Take(len) = judged
            && self.buf.len() < HEADER_BYTES + len
        {
            return Ok(None);
        }
        Ok(Some(judged))
    }

    /// Takes the next complete payload under the protocol's own limit,
    /// `Ok(None)` if more bytes are needed. After an error the decoder
    /// stays failed: a stream with a bad header cannot be resynchronised.
    pub fn next_payload(&mut self) -> Result<Option<Bytes>, FrameError> {
        match self.next_payload_within(FrameLimit::ANY)? {
            Some(Decoded::Frame(payload)) => Ok(Some(payload)),
            // `ANY` refuses, never skips.
            Some(Decoded::Skipped(_)) | None => Ok(None),
        }
    }

    /// Takes the next complete payload, or word of a skipped one, judging
    /// a new header against `limit`; `Ok(None)` if more bytes are needed.
    pub fn next_payload_within(
        &mut self,
        limit: FrameLimit,
    ) -> Result<Option<Decoded<Bytes>>, FrameError> {
        self.release_in_place();
        if self.failed {
            return Err(FrameError::Undecodable("stream already failed"));
        }
        if self.skipping.is_none() {
            match self.judge_header(limit)? {
                None => return Ok(None),
                Some(Judged::Take(len)) => {
                    self.buf.advance(HEADER_BYTES);
                    return Ok(Some(Decoded::Frame(self.buf.split_to(len).freeze())));
                }
                Some(Judged::Skip(len)) => {
                    self.buf.advance(HEADER_BYTES);
                    self.skipping = Some(Skipping { len, left: len });
                }
            }
        }
        Ok(self.discard_skipped())
    }

    /// Discards what is buffered of the frame being skipped; word of it
    /// once the last byte has gone.
    fn discard_skipped(&mut self) -> Option<Decoded<Bytes>> {
        let skip = self.skipping.as_mut()?;
        let discard = skip.left.min(self.buf.len());
        self.buf.advance(discard);
        skip.left -= discard;
        if skip.left > 0 {
            return None;
        }
        let len = skip.len;
        self.skipping = None;
        Some(Decoded::Skipped(len))
    }

    /// Takes and decodes the next complete frame under the protocol's own
    /// limit, `Ok(None)` if more bytes are needed.
    pub fn next_frame<T: Serialize + DeserializeOwned>(&mut self) -> Result<Option<T>, FrameError> {
        match self.next_frame_within(FrameLimit::ANY)? {
            Some(Decoded::Frame(frame)) => Ok(Some(frame)),
            Some(Decoded::Skipped(_)) | None => Ok(None),
        }
    }

    /// Takes and decodes the next complete frame, or word of a skipped one,
    /// judging a new header against `limit`; `Ok(None)` if more bytes are
    /// needed.
    pub fn next_frame_within<T: Serialize + DeserializeOwned>(
        &mut self,
        limit: FrameLimit,
    ) -> Result<Option<Decoded<T>>, FrameError> {
        match self.next_payload_within(limit)? {
            None => Ok(None),
            Some(Decoded::Skipped(len)) => Ok(Some(Decoded::Skipped(len))),
            Some(Decoded::Frame(payload)) => match decode_payload(&payload) {
                Ok(frame) => Ok(Some(Decoded::Frame(frame))),
                Err(e) => {
                    self.failed = true;
                    Err(e)
                }
            },
        }
    }
}

/// What a header's length means under a limit.
enum Judged {
    /// Buffer the payload and hand it out whole.
    Take(usize),
    /// Discard the payload as it arrives.
    Skip(usize),
}

/// Judges an announced length: past [`MAX_FRAME_BYTES`] always a
/// violation, past `limit` as the limit says.
fn judge(announced: u32, limit: FrameLimit) -> Result<Judged, FrameError> {
    let len = protocol::check_length(announced)?;
    if len <= limit.max_payload {
        return Ok(Judged::Take(len));
    }
    match limit.oversize {
        Oversize::Skip => Ok(Judged::Skip(len)),
        Oversize::Refuse => Err(FrameError::OverLimit {
            len: announced,
            limit: limit.max_payload,
            when: limit.when,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{self, ClientFrame, Role, ServerFrame};

    /// The frame's bytes; every frame these tests encode fits.
    fn encode(message: &impl Serialize) -> Bytes {
        super::encode(message).expect("a frame within the limit")
    }

    fn sample_stream() -> (Vec<u8>, Vec<ClientFrame>) {
        let frames = vec![
            ClientFrame::Hello(Role::Participant),
            ClientFrame::Username("bob".into()),
            ClientFrame::Chat("héllo wörld".into()),
            ClientFrame::Chat("x".repeat(1000)),
            ClientFrame::Chat("@alice psst".into()),
            ClientFrame::Who,
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
    fn a_roster_comes_back_whole_from_pieces_of_every_size() {
        let frames = [
            ServerFrame::Roster {
                participants: vec!["alice".into(), "名前".into(), "🦀".into()],
                observers: 300,
            },
            ServerFrame::Roster {
                participants: Vec::new(),
                observers: 0,
            },
            ServerFrame::Notice("after".into()),
        ];
        let bytes: Vec<u8> = frames.iter().flat_map(|f| encode(f).to_vec()).collect();
        for piece in 1..=bytes.len() {
            let mut decoder = FrameDecoder::new();
            let mut out = Vec::new();
            for chunk in bytes.chunks(piece) {
                decoder.extend(chunk);
                while let Some(frame) = decoder.next_frame::<ServerFrame>().unwrap() {
                    out.push(frame);
                }
            }
            assert_eq!(out, frames, "pieces of {piece}");
        }
    }

    #[test]
    fn every_piece_size_gives_the_same_frames() {
        let (bytes, frames) = sample_stream();
        for piece in 1..=bytes.len() {
            assert_eq!(decode_in_pieces(&bytes, piece), frames, "piece {piece}");
        }
    }

    #[test]
    fn payloads_lent_in_place_are_those_handed_out_whole_at_every_piece_size() {
        let (bytes, frames) = sample_stream();
        for piece in 1..=bytes.len() {
            let mut decoder = FrameDecoder::new();
            let mut out: Vec<ClientFrame> = Vec::new();
            for chunk in bytes.chunks(piece) {
                decoder.extend(chunk);
                while let Some(payload) = decoder.next_payload_in_place().unwrap() {
                    out.push(decode_payload(payload).unwrap());
                }
            }
            assert_eq!(out, frames, "piece {piece}");
            assert!(!decoder.is_mid_frame());
            assert_eq!(decoder.buffered(), 0);
        }
    }

    #[test]
    fn a_payload_lent_in_place_counts_as_handed_out() {
        let frame = encode(&ServerFrame::Message("hi".into()));
        let mut decoder = FrameDecoder::new();
        decoder.extend(&frame);
        decoder.extend(&frame[..3]);
        assert!(decoder.next_payload_in_place().unwrap().is_some());
        // Only the second frame's first three bytes are still to come.
        assert_eq!(decoder.buffered(), 3);
        assert!(decoder.is_mid_frame());
        assert_eq!(decoder.announced(), None);
        decoder.extend(&frame[3..]);
        assert_eq!(decoder.announced(), Some(frame.len() as u32 - 4));
        let payload = decoder.next_payload_in_place().unwrap().unwrap();
        assert_eq!(payload, &frame[HEADER_BYTES..]);
        assert!(!decoder.is_mid_frame());
    }

    #[test]
    fn a_bad_header_fails_the_in_place_reader_for_good() {
        let mut decoder = FrameDecoder::new();
        decoder.extend(&[0, 0, 0, 0, 1, 2]);
        assert_eq!(decoder.next_payload_in_place(), Err(FrameError::Empty));
        assert_stays_failed(&mut decoder);
    }

    /// What every reader of a failed decoder gets, whatever arrives next.
    const ALREADY_FAILED: FrameError = FrameError::Undecodable("stream already failed");

    /// Asserts that a decoder that reported a violation refuses for good:
    /// given a valid frame after it, every way of reading says the stream
    /// already failed — not the first error again (the bad header is still
    /// in the buffer, so a decoder that forgot its failure would repeat
    /// it), and not the valid frame.
    fn assert_stays_failed(decoder: &mut FrameDecoder) {
        decoder.extend(&encode(&ClientFrame::Hello(Role::Observer)));
        assert_eq!(decoder.next_payload_in_place(), Err(ALREADY_FAILED));
        assert_eq!(decoder.next_payload(), Err(ALREADY_FAILED));
        assert_eq!(decoder.next_payload_within(CHATTING), Err(ALREADY_FAILED));
        assert_eq!(decoder.next_frame::<ClientFrame>(), Err(ALREADY_FAILED));
    }

    #[test]
    fn the_message_tag_is_the_first_byte_of_every_message_payload() {
        for text in ["", "hi", &"x".repeat(300)] {
            let frame = encode(&ServerFrame::Message(text.into()));
            assert_eq!(frame[HEADER_BYTES], MESSAGE_TAG);
            assert_eq!(message_text(&frame[HEADER_BYTES..]), Some(text.as_bytes()));
        }
    }

    #[test]
    fn message_text_is_none_where_the_strict_decoder_gives_no_message() {
        let notice = encode(&ServerFrame::Notice("hi".into()));
        assert_eq!(message_text(&notice[HEADER_BYTES..]), None);
        for payload in [
            &[MESSAGE_TAG, 2, b'a'][..],          // ends early
            &[MESSAGE_TAG, 1, b'a', b'b'][..],    // trailing byte
            &[MESSAGE_TAG][..],                   // no length
            &[MESSAGE_TAG, 0xff, 0xff, 0xff][..], // bad length
            &[MESSAGE_TAG, 0x81, 0x00, b'a'][..], // padded length
        ] {
            assert_eq!(message_text(payload), None, "{payload:?}");
            assert!(
                decode_payload::<ServerFrame>(payload).is_err(),
                "{payload:?}"
            );
        }
        // Not UTF-8: the bytes are lent; the strict decoder refuses them.
        let payload = [MESSAGE_TAG, 2, 0xff, 0xfe];
        assert_eq!(message_text(&payload), Some(&[0xff, 0xfe][..]));
        assert!(decode_payload::<ServerFrame>(&payload).is_err());
    }

    /// The varint decision on a byte stream, one way: the issue's
    /// `00 00 00 03 80 00 00` (a `Hello` whose index is padded to two
    /// bytes) is a violation, named, and the decoder takes nothing after it.
    #[test]
    fn a_frame_with_an_overlong_varint_fails_the_stream() {
        let mut decoder = FrameDecoder::new();
        decoder.extend(&[0, 0, 0, 3, 0x80, 0x00, 0x00]);
        decoder.extend(&encode(&ClientFrame::Hello(Role::Participant)));
        let error = decoder.next_frame::<ClientFrame>().unwrap_err();
        assert_eq!(error, FrameError::Undecodable("overlong varint"));
        assert_eq!(
            error.reason(),
            "undecodable payload: overlong varint",
            "the ProtocolError text"
        );
        assert_eq!(
            decoder.next_frame::<ClientFrame>(),
            Err(FrameError::Undecodable("stream already failed")),
            "the good Hello behind it is not taken"
        );
    }

    /// And the other way: the same `Hello` written as short as it can be,
    /// `00 00 00 02 00 00`, and a line whose length needs two bytes
    /// (`c8 01`), decode in pieces of every size.
    #[test]
    fn frames_with_minimal_varints_decode_in_any_pieces() {
        let mut bytes = vec![0, 0, 0, 2, 0x00, 0x00];
        bytes.extend_from_slice(&[0, 0, 0, 203, 2, 0xc8, 0x01]);
        bytes.extend_from_slice(&[b'x'; 200]);
        let want = vec![
            ClientFrame::Hello(Role::Participant),
            ClientFrame::Chat("x".repeat(200)),
        ];
        for piece in 1..=bytes.len() {
            assert_eq!(decode_in_pieces(&bytes, piece), want, "piece {piece}");
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
        let bytes = encode(&protocol::joined("bob"));
        let mut decoder = FrameDecoder::new();
        decoder.extend(&bytes[..2]);
        assert_eq!(decoder.next_frame::<ServerFrame>(), Ok(None));
        assert!(decoder.is_mid_frame());
        decoder.extend(&bytes[2..bytes.len() - 1]);
        assert_eq!(decoder.next_frame::<ServerFrame>(), Ok(None));
        decoder.extend(&bytes[bytes.len() - 1..]);
        assert_eq!(
            decoder.next_frame::<ServerFrame>(),
            Ok(Some(protocol::joined("bob")))
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
        assert_stays_failed(&mut decoder);
    }

    #[test]
    fn an_announced_length_reserves_nothing() {
        // A header for the largest frame, then a few bytes of it: the
        // buffer holds what arrived, not room for what was announced.
        let mut decoder = FrameDecoder::new();
        decoder.extend(&(MAX_FRAME_BYTES as u32).to_be_bytes());
        decoder.extend(&[2, 0x80, 0x80, 0x04]);
        assert_eq!(decoder.next_payload(), Ok(None));
        assert!(decoder.is_mid_frame());
        assert!(
            decoder.buf.capacity() < 1024,
            "reserved {} bytes",
            decoder.buf.capacity()
        );
    }

    const BEFORE_HELLO: FrameLimit = FrameLimit {
        max_payload: protocol::MAX_HELLO_PAYLOAD,
        oversize: Oversize::Refuse,
        when: "before Hello",
    };

    const CHATTING: FrameLimit = FrameLimit {
        max_payload: protocol::MAX_CHAT_PAYLOAD,
        oversize: Oversize::Skip,
        when: "",
    };

    #[test]
    fn a_refusing_limit_fails_at_the_header_and_keeps_nothing() {
        let mut decoder = FrameDecoder::new();
        // The attack: a 65,536-byte frame announced before Hello.
        decoder.extend(&(MAX_FRAME_BYTES as u32).to_be_bytes());
        let error = decoder.next_payload_within(BEFORE_HELLO).unwrap_err();
        assert_eq!(
            error.reason(),
            "frame length 65536 exceeds the limit of 2 bytes before Hello"
        );
        assert!(decoder.buf.capacity() < 1024);
        assert_stays_failed(&mut decoder);

        // At the limit, the frame is taken; one byte over, refused.
        let mut decoder = FrameDecoder::new();
        decoder.extend(&[0, 0, 0, 2, 0, 0]);
        assert_eq!(
            decoder.next_frame_within::<ClientFrame>(BEFORE_HELLO),
            Ok(Some(Decoded::Frame(ClientFrame::Hello(Role::Participant))))
        );
        decoder.extend(&[0, 0, 0, 3]);
        assert!(matches!(
            decoder.next_payload_within(BEFORE_HELLO),
            Err(FrameError::OverLimit {
                len: 3,
                limit: 2,
                ..
            })
        ));
    }

    #[test]
    fn the_protocol_maximum_is_judged_before_the_state_limit() {
        for limit in [BEFORE_HELLO, CHATTING] {
            let mut decoder = FrameDecoder::new();
            decoder.extend(&(MAX_FRAME_BYTES as u32 + 1).to_be_bytes());
            assert_eq!(
                decoder.next_payload_within(limit),
                Err(FrameError::TooLong(MAX_FRAME_BYTES as u32 + 1))
            );
        }
    }

    #[test]
    fn a_skipping_limit_discards_the_payload_as_it_streams_in() {
        let long = ClientFrame::Chat("x".repeat(60_000));
        let after = ClientFrame::Chat("next".into());
        let mut stream = encode(&long).to_vec();
        stream.extend_from_slice(&encode(&after));
        let announced = encode(&long).len() - HEADER_BYTES;
        let mut decoder = FrameDecoder::new();
        let mut got = Vec::new();
        for piece in stream.chunks(1000) {
            decoder.extend(piece);
            while let Some(item) = decoder.next_frame_within::<ClientFrame>(CHATTING).unwrap() {
                got.push(item);
            }
            // Never more than a piece held, however much was announced.
            assert!(decoder.buffered() <= 1000, "holds {}", decoder.buffered());
        }
        assert_eq!(
            got,
            vec![Decoded::Skipped(announced), Decoded::Frame(after)]
        );
        assert!(!decoder.is_mid_frame());
    }

    #[test]
    fn a_skipped_frame_cut_short_is_mid_frame() {
        let mut decoder = FrameDecoder::new();
        decoder.extend(&5000u32.to_be_bytes());
        decoder.extend(&[b'x'; 100]);
        assert_eq!(decoder.next_payload_within(CHATTING), Ok(None));
        assert_eq!(decoder.buffered(), 0);
        assert!(decoder.is_mid_frame());
        assert_eq!(
            decoder.announced(),
            None,
            "no header pending while skipping"
        );
    }

    #[test]
    fn a_frame_within_the_limit_is_taken_whole_under_a_skipping_limit() {
        let line = ClientFrame::Chat("\u{1F980}".repeat(1000));
        let mut decoder = FrameDecoder::new();
        decoder.extend(&encode(&line));
        assert_eq!(
            decoder.next_frame_within::<ClientFrame>(CHATTING),
            Ok(Some(Decoded::Frame(line)))
        );
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
        assert_eq!(
            decoder.next_frame::<ClientFrame>(),
            Err(FrameError::Undecodable("unknown message or role variant"))
        );
        assert_stays_failed(&mut decoder);
    }

    #[test]
    fn each_undecodable_payload_is_named_for_what_is_wrong() {
        // The reasons a client author reads in the ProtocolError.
        for (payload, why) in [
            (&[2][..], "message ends early"),
            (
                &[
                    2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                ][..],
                "bad varint",
            ),
            (&[2, 2, 0xff, 0xfe][..], "invalid UTF-8 in a string"),
            (&[9][..], "unknown message or role variant"),
            (&[0, 2][..], "unknown message or role variant"),
            (&[0, 0, 0][..], "trailing bytes after the message"),
        ] {
            assert_eq!(
                decode_payload::<ClientFrame>(payload),
                Err(FrameError::Undecodable(why)),
                "{payload:02x?}"
            );
        }
    }

    #[test]
    fn bytes_read_into_the_buffer_are_decoded() {
        // What a reader does with `read_buf`: no copy through `extend`.
        let (bytes, frames) = sample_stream();
        let mut decoder = FrameDecoder::new();
        decoder.buffer_mut().extend_from_slice(&bytes);
        assert_eq!(decoder.buffered(), bytes.len());
        let mut out: Vec<ClientFrame> = Vec::new();
        while let Some(frame) = decoder.next_frame().unwrap() {
            out.push(frame);
        }
        assert_eq!(out, frames);
    }
}
