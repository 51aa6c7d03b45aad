//! Frames over any async byte stream: the one reader and writer that the
//! client, loadgen, the simulations and the tests share.
//!
//! It adds only I/O to [`crate::codec`]: read into the decoder's buffer,
//! hand out whole frames, tell a clean end of stream from one mid-frame.

use std::io;

use serde::{Serialize, de::DeserializeOwned};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::codec::{FrameDecoder, MAX_BUFFERED_FRAME};
use crate::protocol::{self, FrameError, HEADER_BYTES};

/// Bytes asked of the socket per read. Small enough to keep a connection's
/// buffer bounded, large enough that a busy reader makes few system calls.
pub const READ_CHUNK_BYTES: usize = 16 * 1024;

/// Why no further frame can be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The socket failed.
    #[error("connection error: {0}")]
    Io(#[from] io::Error),
    /// The peer broke the framing or sent an undecodable payload.
    #[error("protocol violation: {0}")]
    Frame(#[from] FrameError),
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed in the middle of a frame")]
    ClosedMidFrame,
}

/// Reads whole frames from a byte stream, whatever sizes its reads come in.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    decoder: FrameDecoder,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Wraps a stream.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            decoder: FrameDecoder::new(),
        }
    }

    /// The next frame, or `Ok(None)` when the peer closed cleanly between
    /// frames.
    pub async fn next<T: DeserializeOwned>(&mut self) -> Result<Option<T>, ReadError> {
        loop {
            if let Some(frame) = self.decoder.next_frame()? {
                return Ok(Some(frame));
            }
            if self.fill().await? == 0 {
                return if self.decoder.is_mid_frame() {
                    Err(ReadError::ClosedMidFrame)
                } else {
                    Ok(None)
                };
            }
        }
    }

    /// Reads once from the stream into the decoder; 0 means end of stream.
    /// Cancel-safe: a cancelled read loses no bytes.
    ///
    /// Once a header is in, room for the whole frame it announces (at most
    /// [`MAX_BUFFERED_FRAME`]) is reserved at once, so a large frame is read
    /// into one allocation rather than a doubling series. That is this
    /// reader's choice, made for a peer it chose to talk to (the client's
    /// server); the decoder itself reserves nothing, and the server, which
    /// owes strangers nothing, reads through its own bounded path.
    pub async fn fill(&mut self) -> io::Result<usize> {
        let announced = self.decoder.announced();
        let buf = self.decoder.buffer_mut();
        if let Some(len) = announced {
            let total = (HEADER_BYTES + len as usize).min(MAX_BUFFERED_FRAME);
            buf.reserve(total.saturating_sub(buf.len()));
        }
        if buf.capacity() - buf.len() < READ_CHUNK_BYTES / 2 {
            buf.reserve(READ_CHUNK_BYTES);
        }
        // At most one chunk per read, even when the decoder has reserved
        // room for a whole large frame: the buffer then never holds more
        // than one maximum frame plus one chunk.
        self.inner
            .read_buf(&mut bytes::BufMut::limit(buf, READ_CHUNK_BYTES))
            .await
    }

    /// The decoder, for callers that drive [`FrameReader::fill`] themselves.
    pub fn decoder(&mut self) -> &mut FrameDecoder {
        &mut self.decoder
    }

    /// The wrapped stream.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Gives back the wrapped stream.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

/// Encodes and writes one frame, then flushes: a no-op on TCP, but a TLS
/// stream may hold the end of the record until it is flushed.
pub async fn write_frame<W, T>(writer: &mut W, message: &T) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    writer.write_all(&protocol::encode(message)).await?;
    writer.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ClientFrame, Role};

    #[tokio::test]
    async fn reads_frames_written_one_byte_at_a_time() {
        let (mut a, b) = tokio::io::duplex(1);
        let frames = vec![
            ClientFrame::Hello(Role::Participant),
            ClientFrame::Username("ann".into()),
        ];
        let expected = frames.clone();
        let writer = tokio::spawn(async move {
            for f in &frames {
                write_frame(&mut a, f).await.unwrap();
            }
        });
        let mut reader = FrameReader::new(b);
        let mut got = Vec::new();
        while let Some(f) = reader.next::<ClientFrame>().await.unwrap() {
            got.push(f);
        }
        writer.await.unwrap();
        assert_eq!(got, expected);
    }

    #[tokio::test]
    async fn end_of_stream_mid_frame_is_reported() {
        let (mut a, b) = tokio::io::duplex(64);
        a.write_all(&[0, 0, 0, 5, 1]).await.unwrap();
        drop(a);
        let mut reader = FrameReader::new(b);
        assert!(matches!(
            reader.next::<ClientFrame>().await,
            Err(ReadError::ClosedMidFrame)
        ));
    }
}
