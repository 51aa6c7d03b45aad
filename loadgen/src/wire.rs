//! One connection's read buffer, with every frame parsed where it lies.
//!
//! Reading is loadgen's hot path: at 5,000 msgs/s a full room receives 2.5
//! million frames a second. [`FrameBuffer`] reads into one buffer per
//! connection, allocated once, and hands out each frame as a view into it:
//! a chat message as its text bytes (no `String`, no copy, no reference
//! count), anything else decoded by [`codec::decode_payload`]. Header
//! lengths go through the protocol's own
//! [`check_length`](protocol::check_length) before a byte of the payload is
//! waited for. It reads [`READ_CHUNK_BYTES`] at a time and reports
//! [`ReadError`]s, both [`logosnet::connection`]'s, like the library's own
//! reader; it does not use that reader because it hands out owned frames.
//!
//! What it knows of the encoding beyond [`logosnet::codec`]: a
//! `ServerFrame::Message` payload is the variant's tag (learned from
//! [`codec::encode`] at start, not written here) followed by the text as
//! postcard writes a string, a LEB128 length then the bytes. Only a payload of
//! exactly that shape with a one- or two-byte length takes the fast path;
//! everything else goes to the strict decoder, and a test checks the fast
//! path against it. It can be faster than the strict decoder, never more
//! lenient: a fast-path text that is not UTF-8 is re-decoded strictly by
//! [`MessageView::decode`], which rejects it.
//!
//! Memory: the buffer holds at most one partial frame plus one read, like
//! [`logosnet::connection::Connection`]'s.

use std::io;
use std::sync::LazyLock;

use logosnet::codec::{self, MAX_BUFFERED_FRAME};
use logosnet::connection::{READ_CHUNK_BYTES, ReadError};
use logosnet::protocol::{self, FrameError, HEADER_BYTES, ServerFrame};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes a buffer starts with: two reads' worth, so a connection that only
/// ever receives small frames never grows it.
const INITIAL_CAPACITY: usize = 2 * READ_CHUNK_BYTES;

/// The most a buffer ever holds: one partial frame plus one read.
pub const MAX_CAPACITY: usize = MAX_BUFFERED_FRAME + READ_CHUNK_BYTES;

/// The first payload byte of every `ServerFrame::Message`; `None` (never,
/// for an empty message) would send every frame to the strict decoder.
static MESSAGE_TAG: LazyLock<Option<u8>> = LazyLock::new(|| {
    codec::encode(&ServerFrame::Message(String::new()))
        .ok()
        .and_then(|frame| frame.get(HEADER_BYTES).copied())
});

/// One frame, borrowed from the buffer until the next call.
#[derive(Debug)]
pub enum Frame<'a> {
    /// A chat message, not yet known to be UTF-8.
    Message(MessageView<'a>),
    /// Any other frame, decoded strictly.
    Other(ServerFrame),
}

/// A `Message` frame seen in place.
#[derive(Debug, Clone, Copy)]
pub struct MessageView<'a> {
    /// The frame's whole payload, tag first.
    payload: &'a [u8],
    /// Where the text starts in it, after the tag and the length.
    text_at: usize,
}

impl<'a> MessageView<'a> {
    /// Recognises the payload of a `Message` in its canonical layout.
    fn parse(payload: &'a [u8]) -> Option<Self> {
        let (&tag, rest) = payload.split_first()?;
        if Some(tag) != *MESSAGE_TAG {
            return None;
        }
        let (len, length_bytes) = match *rest {
            [b0, ..] if b0 < 0x80 => (usize::from(b0), 1),
            [b0, b1, ..] if b1 != 0 && b1 < 0x80 => {
                (usize::from(b0 & 0x7f) | usize::from(b1) << 7, 2)
            }
            _ => return None,
        };
        let text_at = 1 + length_bytes;
        (payload.len() - text_at == len).then_some(Self { payload, text_at })
    }

    /// The message text's bytes: what the strict decoder returns as the
    /// `String` when they are UTF-8.
    pub fn text(&self) -> &'a [u8] {
        &self.payload[self.text_at..]
    }

    /// The strict decoding of the same payload: the frame, or why it is not
    /// one (text that is not UTF-8).
    pub fn decode(&self) -> Result<ServerFrame, FrameError> {
        codec::decode_payload(self.payload)
    }
}

/// Reads a byte stream and yields its frames without copying them out.
#[derive(Debug)]
pub struct FrameBuffer {
    /// Bytes read: two reads' worth to start with, grown only for a frame
    /// larger than that, to at most [`MAX_CAPACITY`].
    buf: Vec<u8>,
    /// Bytes before this are frames already handed out.
    start: usize,
    /// Set once a violation is seen: the stream cannot be resynchronised.
    failed: bool,
}

impl Default for FrameBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameBuffer {
    /// An empty buffer.
    pub fn new() -> Self {
        Self {
            buf: Vec::with_capacity(INITIAL_CAPACITY),
            start: 0,
            failed: false,
        }
    }

    /// Reads once from `source` (at most [`READ_CHUNK_BYTES`]); 0 means end of
    /// stream. Cancel-safe: a cancelled read loses no bytes.
    pub async fn fill<R: AsyncRead + Unpin>(&mut self, source: &mut R) -> io::Result<usize> {
        self.make_room();
        source
            .read_buf(&mut bytes::BufMut::limit(&mut self.buf, READ_CHUNK_BYTES))
            .await
    }

    /// Ensures room for one more read: drops the frames handed out (a move
    /// of at most one partial frame) and grows only for a frame larger than
    /// what is left.
    fn make_room(&mut self) {
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        if self.buf.capacity() - self.buf.len() < READ_CHUNK_BYTES {
            self.buf.drain(..self.start);
            self.start = 0;
            let spare = self.buf.capacity() - self.buf.len();
            if spare < READ_CHUNK_BYTES {
                self.buf.reserve_exact(READ_CHUNK_BYTES - spare);
            }
        }
    }

    /// The next whole frame, `Ok(None)` if more bytes are needed. After an
    /// error the buffer stays failed.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, FrameError> {
        if self.failed {
            return Err(FrameError::Undecodable("stream already failed"));
        }
        let Some(header) = self.buf[self.start..].first_chunk::<HEADER_BYTES>() else {
            return Ok(None);
        };
        let len = match protocol::check_length(u32::from_be_bytes(*header)) {
            Ok(len) => len,
            Err(e) => {
                self.failed = true;
                return Err(e);
            }
        };
        let payload_at = self.start + HEADER_BYTES;
        let end = payload_at + len;
        if self.buf.len() < end {
            return Ok(None);
        }
        self.start = end;
        let payload = &self.buf[payload_at..end];
        if let Some(view) = MessageView::parse(payload) {
            return Ok(Some(Frame::Message(view)));
        }
        match codec::decode_payload(payload) {
            Ok(frame) => Ok(Some(Frame::Other(frame))),
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }

    /// Reads until the next whole frame and returns it decoded strictly, or
    /// `Ok(None)` when the peer closed cleanly between frames. For the
    /// handshake, where speed does not matter.
    pub async fn read_frame<R: AsyncRead + Unpin>(
        &mut self,
        source: &mut R,
    ) -> Result<Option<ServerFrame>, ReadError> {
        loop {
            match self.next_frame()? {
                Some(Frame::Other(frame)) => return Ok(Some(frame)),
                Some(Frame::Message(view)) => return Ok(Some(view.decode()?)),
                None => {}
            }
            if self.fill(source).await? == 0 {
                return if self.is_mid_frame() {
                    Err(ReadError::ClosedMidFrame)
                } else {
                    Ok(None)
                };
            }
        }
    }

    /// True when a frame has started but not finished: an end of stream now
    /// means the peer left mid-frame.
    pub fn is_mid_frame(&self) -> bool {
        self.start < self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    /// The frame's bytes; every frame these tests encode fits.
    fn encode(frame: &ServerFrame) -> Bytes {
        codec::encode(frame).expect("a frame within the limit")
    }

    fn frames_of(buffer: &mut FrameBuffer) -> Vec<Result<ServerFrame, FrameError>> {
        let mut out = Vec::new();
        loop {
            match buffer.next_frame() {
                Ok(Some(Frame::Other(frame))) => out.push(Ok(frame)),
                Ok(Some(Frame::Message(view))) => {
                    let fast = String::from_utf8(view.text().to_vec());
                    let strict = view.decode();
                    match (&fast, &strict) {
                        (Ok(text), Ok(ServerFrame::Message(s))) => assert_eq!(text, s),
                        (Err(_), Err(_)) => {}
                        _ => panic!("fast path {fast:?} disagrees with strict {strict:?}"),
                    }
                    out.push(strict);
                }
                Ok(None) => return out,
                Err(e) => {
                    out.push(Err(e));
                    return out;
                }
            }
        }
    }

    async fn buffer_with(bytes: &[u8]) -> FrameBuffer {
        let mut buffer = FrameBuffer::new();
        let mut source = bytes;
        while buffer.fill(&mut source).await.unwrap() > 0 {}
        buffer
    }

    #[tokio::test]
    async fn fast_path_agrees_with_the_strict_decoder_at_every_length_class() {
        for len in [0, 1, 127, 128, 129, 1000, 4000, 16_383, 16_384, 65_000] {
            // `len` bytes at most, some of them multi-byte characters.
            let text: String = "ab€"
                .chars()
                .cycle()
                .scan(0, |bytes, c| {
                    *bytes += c.len_utf8();
                    (*bytes <= len).then_some(c)
                })
                .collect();
            let frame = ServerFrame::Message(text);
            let mut buffer = buffer_with(&encode(&frame)).await;
            assert_eq!(frames_of(&mut buffer), vec![Ok(frame)], "length {len}");
            assert!(!buffer.is_mid_frame());
        }
    }

    #[tokio::test]
    async fn every_other_frame_decodes_strictly() {
        let frames = [
            ServerFrame::Accepted,
            ServerFrame::Full,
            ServerFrame::UsernameAccepted,
            ServerFrame::UsernameTaken,
            ServerFrame::UsernameInvalid,
            ServerFrame::UsernameTimeout,
            ServerFrame::Notice("User a has joined".into()),
            ServerFrame::Message("> a: hi".into()),
            ServerFrame::ProtocolError("bye".into()),
        ];
        let bytes: Vec<u8> = frames.iter().flat_map(encode).collect();
        let mut buffer = buffer_with(&bytes).await;
        let got: Vec<_> = frames_of(&mut buffer)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, frames);
    }

    /// Payloads the fast path must leave to the strict decoder, or reject as
    /// the strict decoder does.
    #[tokio::test]
    async fn odd_message_payloads_get_the_strict_verdict() {
        let tag = MESSAGE_TAG.expect("the message tag");
        let payloads: &[&[u8]] = &[
            &[tag, 2, 0xff, 0xfe],          // not UTF-8
            &[tag, 2, b'a'],                // ends early
            &[tag, 1, b'a', b'b'],          // trailing byte
            &[tag, 0x81, 0x00, b'a'],       // overlong length
            &[tag, 0x80, 0x01],             // length 128, no text
            &[tag],                         // no length
            &[tag, 0xff, 0xff, 0xff, 0x0f], // huge length
        ];
        for payload in payloads {
            let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
            frame.extend_from_slice(payload);
            let mut buffer = buffer_with(&frame).await;
            let got = frames_of(&mut buffer);
            let strict = codec::decode_payload::<ServerFrame>(payload);
            assert_eq!(got, vec![strict], "{payload:?}");
        }
    }

    #[tokio::test]
    async fn bad_header_fails_the_stream_for_good() {
        let mut buffer = buffer_with(&[0, 0, 0, 0, 1, 2]).await;
        assert_eq!(buffer.next_frame().unwrap_err(), FrameError::Empty);
        assert!(buffer.next_frame().is_err());
    }

    #[tokio::test]
    async fn frames_split_anywhere_come_out_whole_and_the_buffer_stays_bounded() {
        let frames: Vec<ServerFrame> = (0..200)
            .map(|i| ServerFrame::Message("x".repeat(i * 300 % 65_000)))
            .collect();
        let bytes: Vec<u8> = frames.iter().flat_map(encode).collect();
        let (mut writer, mut reader) = tokio::io::duplex(7_777);
        let feed = tokio::spawn(async move {
            tokio::io::AsyncWriteExt::write_all(&mut writer, &bytes)
                .await
                .unwrap();
        });
        let mut buffer = FrameBuffer::new();
        let mut got = Vec::new();
        while let Some(frame) = buffer.read_frame(&mut reader).await.unwrap() {
            got.push(frame);
            assert!(buffer.buf.capacity() <= MAX_CAPACITY);
        }
        feed.await.unwrap();
        assert_eq!(got, frames);
    }

    #[tokio::test]
    async fn end_of_stream_mid_frame_is_reported() {
        let mut buffer = FrameBuffer::new();
        let mut source: &[u8] = &[0, 0, 0, 5, 7];
        assert!(matches!(
            buffer.read_frame(&mut source).await,
            Err(ReadError::ClosedMidFrame)
        ));
    }
}
