//! One connection's read buffer, with every frame parsed where it lies.
//!
//! Reading is loadgen's hot path: at 5,000 msgs/s a full room receives 2.5
//! million frames a second. [`FrameBuffer`] is the library's own reader
//! with nothing copied out: [`logosnet::connection::read_into`] reads into
//! a [`FrameDecoder`] (the one codec, its header checks and its bound of
//! one frame plus one read), [`FrameDecoder::next_payload_in_place`] lends
//! each payload where it lies, and [`codec::message_text`] finds a chat
//! message's text in it (no `String`, no copy, no reference count).
//! Anything else is decoded strictly by [`codec::decode_payload`], and so
//! is a message whose text must be shown ([`MessageView::decode`]), which
//! rejects text that is not UTF-8.

use std::io;

use logosnet::codec::{self, FrameDecoder};
use logosnet::connection::{self, ReadError};
use logosnet::protocol::{FrameError, ServerFrame};
use tokio::io::AsyncRead;

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
    /// The message text's bytes within it.
    text: &'a [u8],
}

impl<'a> MessageView<'a> {
    /// The message text's bytes: what the strict decoder returns as the
    /// `String` when they are UTF-8.
    pub fn text(&self) -> &'a [u8] {
        self.text
    }

    /// The strict decoding of the same payload: the frame, or why it is not
    /// one (text that is not UTF-8).
    pub fn decode(&self) -> Result<ServerFrame, FrameError> {
        codec::decode_payload(self.payload)
    }
}

/// Reads a byte stream and yields its frames without copying them out.
#[derive(Debug, Default)]
pub struct FrameBuffer {
    /// The bytes read and not yet handed out.
    decoder: FrameDecoder,
}

impl FrameBuffer {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads once from `source`; 0 means end of stream. Cancel-safe: a
    /// cancelled read loses no bytes.
    pub async fn fill<R: AsyncRead + Unpin>(&mut self, source: &mut R) -> io::Result<usize> {
        connection::read_into(&mut self.decoder, source).await
    }

    /// The next whole frame, `Ok(None)` if more bytes are needed. After a
    /// bad header the buffer stays failed.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, FrameError> {
        let Some(payload) = self.decoder.next_payload_in_place()? else {
            return Ok(None);
        };
        if let Some(text) = codec::message_text(payload) {
            return Ok(Some(Frame::Message(MessageView { payload, text })));
        }
        codec::decode_payload(payload).map(|frame| Some(Frame::Other(frame)))
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
        self.decoder.is_mid_frame()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use logosnet::codec::MAX_BUFFERED_FRAME;
    use logosnet::connection::READ_CHUNK_BYTES;

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
        let tag = codec::MESSAGE_TAG;
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
            let capacity = buffer.decoder.buffer_mut().capacity();
            assert!(capacity <= MAX_BUFFERED_FRAME + READ_CHUNK_BYTES);
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
