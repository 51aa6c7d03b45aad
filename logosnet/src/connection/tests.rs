//! [`Connection`] over in-memory streams: frames written a byte at a time
//! come back whole, an end mid-frame is reported, an over-long message is
//! refused before a byte is written, and — whatever sizes the stream's
//! reads come in — the read buffer never holds more than one maximum frame
//! plus one read.

use std::pin::Pin;
use std::task::{Context, Poll};

use proptest::collection::vec;
use proptest::prelude::*;
use tokio::io::{AsyncRead, ReadBuf};

use super::*;
use crate::codec::FrameDecoder;
use crate::protocol::{ClientFrame, MAX_FRAME_BYTES, Role};

#[tokio::test]
async fn reads_frames_written_one_byte_at_a_time() {
    let (a, b) = tokio::io::duplex(1);
    let frames = vec![
        ClientFrame::Hello(Role::Participant),
        ClientFrame::Username("ann".into()),
    ];
    let expected = frames.clone();
    let writer = tokio::spawn(async move {
        let mut writer = Connection::new(a);
        for f in &frames {
            writer.write_frame(f).await.unwrap();
        }
    });
    let mut reader = Connection::new(b);
    let mut got = Vec::new();
    while let Some(f) = reader.read_frame::<ClientFrame>().await.unwrap() {
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
    let mut reader = Connection::new(b);
    assert!(matches!(
        reader.read_frame::<ClientFrame>().await,
        Err(ReadError::ClosedMidFrame)
    ));
}

#[tokio::test]
async fn a_message_too_long_for_a_frame_is_refused_unwritten() {
    let (a, mut b) = tokio::io::duplex(64);
    let mut writer = Connection::new(a);
    let error = writer
        .write_frame(&ClientFrame::Chat("x".repeat(MAX_FRAME_BYTES)))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    drop(writer);
    let mut rest = Vec::new();
    b.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "wrote {} bytes", rest.len());
}

/// A stream that returns its bytes in reads of the given sizes (cycled),
/// each also limited by the space the reader offers.
struct Piecewise {
    /// The whole stream.
    data: Vec<u8>,
    /// Bytes of it already read.
    at: usize,
    /// The read sizes, cycled.
    pieces: Vec<usize>,
    /// Reads made so far.
    next: usize,
}

impl AsyncRead for Piecewise {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let piece = this.pieces[this.next % this.pieces.len()].max(1);
        this.next += 1;
        let n = piece.min(buf.remaining()).min(this.data.len() - this.at);
        buf.put_slice(&this.data[this.at..this.at + n]);
        this.at += n;
        Poll::Ready(Ok(()))
    }
}

/// What decoding `stream` in one piece gives: the frames, then the
/// violation that stopped it.
fn decode_whole(stream: &[u8]) -> (Vec<ClientFrame>, Option<FrameError>) {
    let mut decoder = FrameDecoder::new();
    decoder.extend(stream);
    let mut frames = Vec::new();
    loop {
        match decoder.next_frame() {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => return (frames, None),
            Err(e) => return (frames, Some(e)),
        }
    }
}

/// Reads `stream` through a [`Connection`] in the given read sizes,
/// asserting after every read that the buffer holds, and has allocated, at
/// most one maximum frame plus one read; returns the frames and the
/// violation, if any.
fn read_through_connection(
    stream: Vec<u8>,
    pieces: Vec<usize>,
) -> (Vec<ClientFrame>, Option<FrameError>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut connection = Connection::new(Piecewise {
        data: stream,
        at: 0,
        pieces,
        next: 0,
    });
    let bound = MAX_BUFFERED_FRAME + READ_CHUNK_BYTES;
    let mut frames = Vec::new();
    runtime.block_on(async {
        loop {
            let n = connection.fill().await.unwrap();
            let buffer = connection.decoder.buffer_mut();
            assert!(buffer.len() <= bound, "holds {} > {bound}", buffer.len());
            assert!(
                buffer.capacity() <= bound,
                "allocated {} > {bound}",
                buffer.capacity()
            );
            loop {
                match connection.decoder.next_frame::<ClientFrame>() {
                    Ok(Some(frame)) => frames.push(frame),
                    Ok(None) => break,
                    Err(e) => return (frames, Some(e)),
                }
            }
            if n == 0 {
                return (frames, None);
            }
        }
    })
}

/// The frames' bytes, back to back.
fn stream_of(frames: &[ClientFrame]) -> Vec<u8> {
    frames
        .iter()
        .flat_map(|f| crate::codec::encode(f).unwrap().to_vec())
        .collect()
}

/// Longest chat line whose frame still fits: 1 tag byte and a 3-byte varint.
const MAX_CHAT_BYTES: usize = MAX_FRAME_BYTES - 4;

/// Frames of every size up to the maximum, and headers that lie.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        4 => (0..=MAX_CHAT_BYTES).prop_map(|n| {
            crate::codec::encode(&ClientFrame::Chat("y".repeat(n))).unwrap().to_vec()
        }),
        1 => (any::<u32>(), vec(any::<u8>(), 0..32)).prop_map(|(len, payload)| {
            [len.to_be_bytes().to_vec(), payload].concat()
        }),
    ];
    vec(piece, 0..8).prop_map(|pieces| pieces.concat())
}

fn read_sizes() -> impl Strategy<Value = Vec<usize>> {
    let size = prop_oneof![
        1..=64usize,
        1..=READ_CHUNK_BYTES,
        1..=2 * MAX_BUFFERED_FRAME
    ];
    vec(size, 1..16)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    /// Whatever sizes the stream's reads come in, the buffer never holds
    /// or allocates more than one maximum frame plus one read, and the
    /// frames are those of the whole stream.
    #[test]
    fn the_buffer_stays_within_one_frame_plus_a_read(
        stream in stream(),
        pieces in read_sizes(),
    ) {
        let expected = decode_whole(&stream);
        prop_assert_eq!(read_through_connection(stream, pieces), expected);
    }
}

/// Regression (found by the property test above): after a maximum-size
/// frame had made the reader reserve room for itself, a stream offering
/// more than [`READ_CHUNK_BYTES`] could fill all that spare room in one
/// read, so the buffer held more than one frame plus one read.
#[test]
fn large_reads_after_a_maximum_frame_stay_within_the_bound() {
    let frames: Vec<ClientFrame> = [MAX_CHAT_BYTES - 1, MAX_CHAT_BYTES, 16_378]
        .into_iter()
        .map(|n| ClientFrame::Chat("y".repeat(n)))
        .collect();
    let (got, error) = read_through_connection(stream_of(&frames), vec![29_958, 1]);
    assert_eq!(error, None);
    assert_eq!(got, frames);
}

/// Regression (found by the property test above, once its streams held
/// maximum-size frames back to back): `BytesMut::reserve` doubled the
/// allocation when the frame after a large one needed room, so a reader
/// could allocate past twice its bound.
#[test]
fn maximum_frames_back_to_back_stay_within_the_allocation_bound() {
    let frames: Vec<ClientFrame> = [MAX_CHAT_BYTES, MAX_CHAT_BYTES - 1, MAX_CHAT_BYTES]
        .into_iter()
        .map(|n| ClientFrame::Chat("y".repeat(n)))
        .collect();
    for pieces in [vec![1000], vec![READ_CHUNK_BYTES], vec![7, 65_000, 3]] {
        let (got, error) = read_through_connection(stream_of(&frames), pieces);
        assert_eq!(error, None);
        assert_eq!(got, frames);
    }
}
