//! Frames over any async byte stream, in mini-redis's `Connection` shape:
//! [`Connection::read_frame`] and [`Connection::write_frame`] are the one
//! reader and writer that the client, the simulations and the tests share.
//!
//! It adds only I/O to [`crate::codec`]: read into the decoder's buffer,
//! hand out whole frames, tell a clean end of stream from one mid-frame;
//! encode, write, flush. The buffer is private, so no caller can read
//! around it. The server does not use this: its connection task reads
//! through its own bounded, poll-based path, because it owes strangers
//! nothing a peer asks it to reserve (see `server::connection`).

use std::io;

use bytes::BytesMut;
use serde::{Serialize, de::DeserializeOwned};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};

use crate::codec::{self, FrameDecoder, MAX_BUFFERED_FRAME};
use crate::protocol::{FrameError, HEADER_BYTES};

/// Bytes asked of the stream per read. Small enough to keep a connection's
/// buffer bounded, large enough that a busy reader makes few system calls.
pub const READ_CHUNK_BYTES: usize = 16 * 1024;

/// Why no further frame can be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The stream failed.
    #[error("connection error: {0}")]
    Io(#[from] io::Error),
    /// The peer broke the framing or sent an undecodable payload.
    #[error("protocol violation: {0}")]
    Frame(#[from] FrameError),
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed in the middle of a frame")]
    ClosedMidFrame,
}

/// One peer's byte stream and the frames being reassembled from it.
///
/// Either direction works on its own, so the two halves of a split stream
/// can each be a `Connection`: reading needs `S: AsyncRead`, writing
/// `S: AsyncWrite`.
#[derive(Debug)]
pub struct Connection<S> {
    /// The byte stream.
    stream: S,
    /// What has been read of frames not yet handed out.
    decoder: FrameDecoder,
}

impl<S> Connection<S> {
    /// Wraps a stream.
    pub fn new(stream: S) -> Self {
        Self {
            stream,
            decoder: FrameDecoder::new(),
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The wrapped stream, to write raw bytes or shut it down.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// Gives back the wrapped stream. Bytes read but not yet handed out as
    /// frames are lost.
    pub fn into_inner(self) -> S {
        self.stream
    }
}

impl<S: AsyncRead + AsyncWrite> Connection<S> {
    /// Splits into a reading connection and a writing one, so that one task
    /// can read while another writes. What was read and not yet handed out
    /// goes with the reading half.
    pub fn split(self) -> (Connection<ReadHalf<S>>, Connection<WriteHalf<S>>) {
        let (read, write) = tokio::io::split(self.stream);
        let reader = Connection {
            stream: read,
            decoder: self.decoder,
        };
        (reader, Connection::new(write))
    }
}

impl<S: AsyncRead + Unpin> Connection<S> {
    /// The next frame, or `Ok(None)` when the peer closed cleanly between
    /// frames. Cancel-safe: a cancelled call loses no bytes, and the next
    /// one carries on where it stopped (so it may sit in a `select!` or
    /// under a timeout).
    pub async fn read_frame<T: Serialize + DeserializeOwned>(
        &mut self,
    ) -> Result<Option<T>, ReadError> {
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
    async fn fill(&mut self) -> io::Result<usize> {
        read_into(&mut self.decoder, &mut self.stream).await
    }
}

/// Reads once from `source` into `decoder` (at most [`READ_CHUNK_BYTES`]);
/// 0 means end of stream. Cancel-safe: a cancelled read loses no bytes.
/// [`Connection`]'s own read, for a caller that keeps the stream and the
/// decoder apart (loadgen reads frames in place with
/// [`FrameDecoder::next_payload_in_place`]).
///
/// Once a header is in, room for the whole frame it announces (at most
/// [`MAX_BUFFERED_FRAME`]) is reserved at once, so a large frame is read
/// into one allocation rather than a doubling series. That is this
/// reader's choice, made for a peer it chose to talk to (the client's
/// server); the decoder itself reserves nothing.
pub async fn read_into<R: AsyncRead + Unpin>(
    decoder: &mut FrameDecoder,
    source: &mut R,
) -> io::Result<usize> {
    let announced = decoder.announced();
    let buf = decoder.buffer_mut();
    if let Some(len) = announced {
        let total = (HEADER_BYTES + len as usize).min(MAX_BUFFERED_FRAME);
        reserve_no_more_than(buf, total.saturating_sub(buf.len()));
    }
    if buf.capacity() - buf.len() < READ_CHUNK_BYTES {
        reserve_no_more_than(buf, READ_CHUNK_BYTES);
    }
    // At most one chunk per read, even when room for a whole large frame
    // is reserved: the buffer then never holds more than one maximum frame
    // plus one chunk.
    let mut limited = bytes::BufMut::limit(buf, READ_CHUNK_BYTES);
    source.read_buf(&mut limited).await
}

/// Makes room for `additional` more bytes, allocating no more than what is
/// held plus that. (`BytesMut::reserve` may double the allocation instead,
/// which let a reader that met large frames in a row allocate past twice
/// its bound.) The bytes copied when it grows are less than one frame.
fn reserve_no_more_than(buf: &mut BytesMut, additional: usize) {
    if buf.try_reclaim(additional) {
        return;
    }
    let mut grown = BytesMut::with_capacity(buf.len() + additional);
    grown.extend_from_slice(buf);
    *buf = grown;
}

impl<S: AsyncWrite + Unpin> Connection<S> {
    /// Encodes and writes one frame, then flushes: a no-op on TCP, but a
    /// TLS stream may hold the end of the record until it is flushed. A
    /// message too long to be a frame is an `InvalidInput` error and
    /// nothing is written.
    pub async fn write_frame<T: Serialize>(&mut self, message: &T) -> io::Result<()> {
        let frame =
            codec::encode(message).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        self.stream.write_all(&frame).await?;
        self.stream.flush().await
    }
}

#[cfg(test)]
mod tests;
