//! One test peer for every suite: frames in and out over any byte stream —
//! a tokio `TcpStream`, a TLS stream, turmoil's simulated TCP, a half of
//! any of them — through the library's own [`Connection`], with every wait
//! bounded.
//!
//! A [`Peer`] is a client by default (it sends [`ClientFrame`]s and reads
//! [`ServerFrame`]s); `Peer<S, ClientFrame, ServerFrame>` is the other end,
//! a scripted server for the client's tests. Its waits use
//! `tokio::time`, so under turmoil they run on simulated time. Every frame
//! it sends or receives can be recorded through a [`Trace`] (the
//! simulations' event log).

use std::fmt::{self, Debug};
use std::io;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use logosnet::codec;
use logosnet::connection::{Connection, ReadError};
use logosnet::protocol::{self, ClientFrame, Role, ServerFrame};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;

/// How long a peer waits for a frame it expects, unless told otherwise. It
/// only bounds a failing test; nothing asserts how fast anything is.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Where a peer records what it does: called with its label and a line.
pub type Trace = Arc<dyn Fn(&str, fmt::Arguments<'_>) + Send + Sync>;

/// What one read attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Got<In> {
    /// A whole frame.
    Frame(In),
    /// The other end closed the connection cleanly.
    Closed,
    /// The connection failed (reset, broken frame): the text says how.
    Failed(String),
    /// Nothing arrived in the time allowed.
    Nothing,
}

/// A peer split in two by [`Peer::split`]: its reading half, then its
/// writing half.
pub type Halves<S, In, Out> = (Peer<ReadHalf<S>, In, Out>, Peer<WriteHalf<S>, In, Out>);

/// One end of a connection that speaks frames. See the module docs.
pub struct Peer<S, In = ServerFrame, Out = ClientFrame> {
    /// Names it in assertion messages and in the trace.
    label: String,
    /// The stream and the frames being reassembled from it.
    connection: Connection<S>,
    /// How long [`Peer::recv`] and the `expect` methods wait.
    patience: Duration,
    /// Write each frame in pieces of this many bytes, a millisecond apart.
    write_piece: Option<usize>,
    /// Where sends and receipts are recorded.
    trace: Option<Trace>,
    /// The frames it reads and writes.
    frames: PhantomData<fn(In) -> Out>,
}

impl<S, In, Out> Debug for Peer<S, In, Out> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Peer").field("label", &self.label).finish()
    }
}

impl<S> Peer<S> {
    /// A client over `stream`, waiting at most [`PATIENCE`] for a frame.
    pub fn new(label: &str, stream: S) -> Self {
        Self::over(label, stream)
    }
}

impl<S> Peer<S, ClientFrame, ServerFrame> {
    /// The server's end of `stream`: a scripted server for the client's
    /// tests, reading [`ClientFrame`]s and sending [`ServerFrame`]s.
    pub fn server_side(label: &str, stream: S) -> Self {
        Self::over(label, stream)
    }
}

impl<S, In, Out> Peer<S, In, Out> {
    /// A peer over `stream`, waiting at most [`PATIENCE`] for a frame.
    fn over(label: &str, stream: S) -> Self {
        Self {
            label: label.to_owned(),
            connection: Connection::new(stream),
            patience: PATIENCE,
            write_piece: None,
            trace: None,
            frames: PhantomData,
        }
    }

    /// Waits at most `patience` for each expected frame.
    pub fn with_patience(mut self, patience: Duration) -> Self {
        self.patience = patience;
        self
    }

    /// Writes every frame in pieces of `bytes` bytes, a millisecond apart
    /// (under turmoil each piece then travels on its own).
    pub fn writing_in_pieces(mut self, bytes: usize) -> Self {
        self.write_piece = Some(bytes.max(1));
        self
    }

    /// Records every send and receipt through `trace`.
    pub fn traced(mut self, trace: Trace) -> Self {
        self.trace = Some(trace);
        self
    }

    /// Its label.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The stream under the frames.
    pub fn stream(&mut self) -> &mut S {
        self.connection.get_mut()
    }

    /// Records a line in the trace, if there is one.
    pub fn note(&self, what: fmt::Arguments<'_>) {
        if let Some(trace) = &self.trace {
            trace(&self.label, what);
        }
    }

    /// Closes the connection (both directions), as a peer that quits does.
    pub fn leave(self) {
        self.note(format_args!("leaves"));
    }

    /// A peer over `connection` with this one's settings.
    fn with_connection<H>(&self, connection: Connection<H>) -> Peer<H, In, Out> {
        Peer {
            label: self.label.clone(),
            connection,
            patience: self.patience,
            write_piece: self.write_piece,
            trace: self.trace.clone(),
            frames: PhantomData,
        }
    }
}

impl<S: AsyncRead + AsyncWrite, In, Out> Peer<S, In, Out> {
    /// Splits into a reading peer and a writing one, so that one task can
    /// read while another writes. Nothing already read is lost.
    pub fn split(self) -> Halves<S, In, Out> {
        let settings = self.with_connection(Connection::new(()));
        let (reader, writer) = self.connection.split();
        (
            settings.with_connection(reader),
            settings.with_connection(writer),
        )
    }
}

impl<S: AsyncRead + Unpin, In: Serialize + DeserializeOwned + Debug + PartialEq, Out>
    Peer<S, In, Out>
{
    /// The next frame, `Ok(None)` at a clean end of stream, or why the
    /// stream cannot go on; waits as long as it takes. For callers that
    /// tell a broken frame from a broken connection; the rest use
    /// [`Peer::next`].
    pub async fn read(&mut self) -> Result<Option<In>, ReadError> {
        let read = self.connection.read_frame::<In>().await;
        match &read {
            Ok(Some(frame)) => self.note(format_args!("got {frame:?}")),
            Ok(None) => self.note(format_args!("got the end of the stream")),
            Err(e) => self.note(format_args!("read failed: {e}")),
        }
        read
    }

    /// Waits up to `within` for the next frame or the end of the connection.
    pub async fn next(&mut self, within: Duration) -> Got<In> {
        let read = tokio::time::timeout(within, self.connection.read_frame::<In>());
        let got = match read.await {
            Err(_) => Got::Nothing,
            Ok(Ok(Some(frame))) => Got::Frame(frame),
            Ok(Ok(None)) => Got::Closed,
            Ok(Err(ReadError::Io(e))) => Got::Failed(format!("io: {}", e.kind())),
            Ok(Err(e)) => Got::Failed(e.to_string()),
        };
        if got != Got::Nothing {
            self.note(format_args!("got {got:?}"));
        }
        got
    }

    /// The next frame; panics on anything else within the patience.
    pub async fn recv(&mut self) -> In {
        match self.next(self.patience).await {
            Got::Frame(frame) => frame,
            other => panic!("{}: expected a frame, got {other:?}", self.label),
        }
    }

    /// Asserts that the next frame is `expected`.
    pub async fn expect(&mut self, expected: In) {
        let got = self.next(self.patience).await;
        assert_eq!(got, Got::Frame(expected), "{}'s next frame", self.label);
    }

    /// Reads until `wanted` arrives, skipping other frames; panics at the
    /// end of the connection or when the patience runs out between frames.
    pub async fn recv_until(&mut self, wanted: &In) {
        while &self.recv().await != wanted {}
    }

    /// Asserts that nothing arrives, and the connection stays open, for
    /// `quiet`.
    pub async fn expect_quiet(&mut self, quiet: Duration) {
        let got = self.next(quiet).await;
        assert_eq!(got, Got::Nothing, "{} expected silence", self.label);
    }

    /// Asserts that the other end ends the connection next, cleanly or not.
    pub async fn expect_closed(&mut self) {
        match self.next(self.patience).await {
            Got::Closed | Got::Failed(_) => {}
            other => panic!("{}: expected the close, got {other:?}", self.label),
        }
    }

    /// Asserts that the other end ends the connection gracefully next: a
    /// clean end of stream, not a reset.
    pub async fn expect_clean_close(&mut self) {
        let got = self.next(self.patience).await;
        assert_eq!(got, Got::Closed, "{}: expected a clean close", self.label);
    }

    /// Every frame until the other end closes (cleanly or with a reset);
    /// panics if the patience runs out between two frames.
    pub async fn until_closed(&mut self) -> Vec<In> {
        let mut frames = Vec::new();
        loop {
            match self.next(self.patience).await {
                Got::Frame(frame) => frames.push(frame),
                Got::Closed | Got::Failed(_) => return frames,
                Got::Nothing => panic!(
                    "{}: not closed within {:?}; got {frames:?}",
                    self.label, self.patience
                ),
            }
        }
    }
}

impl<S: AsyncWrite + Unpin, In, Out: Serialize + Debug> Peer<S, In, Out> {
    /// Sends one frame (in pieces if so configured); panics on failure.
    pub async fn send(&mut self, frame: &Out) {
        if let Err(e) = self.try_send(frame).await {
            panic!("{}: sending {frame:?} failed: {e}", self.label);
        }
    }

    /// Sends one frame (in pieces if so configured).
    pub async fn try_send(&mut self, frame: &Out) -> io::Result<()> {
        self.note(format_args!("send {frame:?}"));
        match self.write_piece {
            None => self.connection.write_frame(frame).await,
            Some(_) => self.write_pieces(&frame_bytes(frame)).await,
        }
    }

    /// Sends several frames back to back as one byte stream — one write,
    /// or pieces of the configured size that cut across frame boundaries —
    /// so the other end sees several frames (and parts of frames) per read.
    pub async fn send_batch(&mut self, frames: &[Out]) {
        self.note(format_args!("send batch {frames:?}"));
        let bytes: Vec<u8> = frames.iter().flat_map(frame_bytes).collect();
        if let Err(e) = self.write_pieces(&bytes).await {
            panic!("{}: batch write failed: {e}", self.label);
        }
    }

    /// Writes raw bytes (a partial or broken frame, say) in one write.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        if let Err(e) = self.try_send_raw(bytes).await {
            panic!("{}: raw write failed: {e}", self.label);
        }
    }

    /// Writes raw bytes in one write, reporting a failure.
    pub async fn try_send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.note(format_args!("send raw {}", Hex(bytes)));
        flushed(self.connection.get_mut(), bytes).await
    }

    /// Shuts the write direction down (the other end reads an end of
    /// stream); the read direction stays open.
    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.note(format_args!("shuts its side down"));
        self.connection.get_mut().shutdown().await
    }

    /// Writes `bytes` whole, or in the configured pieces a millisecond
    /// apart.
    async fn write_pieces(&mut self, bytes: &[u8]) -> io::Result<()> {
        let stream = self.connection.get_mut();
        let Some(piece) = self.write_piece else {
            return flushed(stream, bytes).await;
        };
        for chunk in bytes.chunks(piece) {
            flushed(stream, chunk).await?;
            // Let a tick pass so that every piece travels on its own.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Ok(())
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Peer<S> {
    /// Sends `Hello(role)` and expects `Accepted`.
    pub async fn hello(&mut self, role: Role) {
        self.send(&ClientFrame::Hello(role)).await;
        self.expect(ServerFrame::Accepted).await;
    }

    /// Hello as a participant, then `name`: expects the acceptance and the
    /// room's join notice (which the newcomer gets too).
    pub async fn join(&mut self, name: &str) {
        self.hello(Role::Participant).await;
        self.send(&ClientFrame::Username(name.to_owned())).await;
        self.expect(ServerFrame::UsernameAccepted).await;
        self.expect(protocol::joined(name)).await;
    }

    /// Sends a chat line.
    pub async fn chat(&mut self, line: &str) {
        self.send(&ClientFrame::Chat(line.to_owned())).await;
    }
}

impl Peer<TcpStream> {
    /// Connects over TCP; panics if it cannot.
    pub async fn connect(label: &str, addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{label}: cannot connect to {addr}: {e}"));
        stream.set_nodelay(true).expect("TCP_NODELAY");
        Self::new(label, stream)
    }

    /// A participant named `name` (also its label) in the room at `addr`,
    /// its own join notice read.
    pub async fn participant(addr: SocketAddr, name: &str) -> Self {
        let mut peer = Self::connect(name, addr).await;
        peer.join(name).await;
        peer
    }

    /// An observer labelled `label` in the room at `addr`.
    pub async fn observer(addr: SocketAddr, label: &str) -> Self {
        let mut peer = Self::connect(label, addr).await;
        peer.hello(Role::Observer).await;
        peer
    }

    /// `count` peers admitted as `role` one after another (participants
    /// stay unnamed), labelled `role0`, `role1`, …: a room filled to a
    /// limit.
    pub async fn crowd(addr: SocketAddr, role: Role, count: usize) -> Vec<Self> {
        let mut crowd = Vec::with_capacity(count);
        for i in 0..count {
            let mut peer = Self::connect(&format!("{role:?}{i}"), addr).await;
            peer.hello(role).await;
            crowd.push(peer);
        }
        crowd
    }
}

/// One frame's bytes; panics if the test built a frame too long to be one.
pub fn frame_bytes<T: Serialize>(frame: &T) -> Vec<u8> {
    codec::encode(frame)
        .unwrap_or_else(|e| panic!("a test frame must fit: {e}"))
        .to_vec()
}

/// Writes and flushes (a TLS stream sends a record's end only when flushed).
async fn flushed<W: AsyncWrite + Unpin>(stream: &mut W, bytes: &[u8]) -> io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

/// Bytes as hex in a trace line, shortened past 32.
struct Hex<'a>(&'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0.iter().take(32) {
            write!(f, "{byte:02x}")?;
        }
        if self.0.len() > 32 {
            write!(f, "… ({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}
