//! A simulated LogosNet client for scenarios: connects to the simulated
//! server, sends and receives frames through `logosnet::framed` (no second
//! copy of the frame logic), logs every frame to the [`EventLog`], and asserts
//! on exactly what arrives.
//!
//! A client can write each frame in pieces of N bytes with a tick between
//! pieces, and read through a [`Capped`] stream, so a scenario controls the
//! piece sizes on both sides of the wire.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use logosnet::framed::{self, FrameReader, ReadError};
use logosnet::protocol::{self, ClientFrame, Role, ServerFrame};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use turmoil::net::TcpStream;

use super::listener::{Capped, PieceSize, PieceStats};
use super::log::EventLog;
use super::{PORT, SERVER};

/// How long (simulated) a client waits for a frame it expects.
pub const EXPECT_WITHIN: Duration = Duration::from_secs(5);

/// What one read attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Got {
    /// A whole frame.
    Frame(ServerFrame),
    /// The server closed the connection cleanly.
    Closed,
    /// The connection failed (reset, broken frame): the text says how.
    Failed(String),
    /// Nothing arrived in the time allowed.
    Nothing,
}

/// The read side of a client's connection: plain TCP or TLS.
pub type Reader = Box<dyn AsyncRead + Unpin + Send>;

/// The write side of a client's connection: plain TCP or TLS.
pub type Writer = Box<dyn AsyncWrite + Unpin + Send>;

/// One simulated client connection.
pub struct SimClient {
    /// Label used in the log and in assertion messages.
    pub label: String,
    reader: FrameReader<Reader>,
    writer: Writer,
    log: EventLog,
    write_piece: Option<usize>,
    /// Bytes read in the current tick, for [`SimClient::next_paced`].
    read_this_tick: usize,
}

impl SimClient {
    /// Connects with whole-frame writes and uncapped reads; panics if the
    /// server cannot be reached.
    pub async fn connect(label: &str, log: &EventLog) -> Self {
        Self::connect_with(label, log, PieceSize::Any, None)
            .await
            .unwrap_or_else(|e| panic!("{label}: connect failed: {e}"))
    }

    /// Connects; reads come in `read` pieces and each frame is written in
    /// pieces of `write_piece` bytes (a tick apart) when it is `Some`.
    pub async fn connect_with(
        label: &str,
        log: &EventLog,
        read: PieceSize,
        write_piece: Option<usize>,
    ) -> io::Result<Self> {
        let stream = TcpStream::connect((SERVER, PORT)).await?;
        log.record(label, format_args!("connected"));
        let (read_half, writer) = stream.into_split();
        let stats = Arc::new(Mutex::new(PieceStats::default()));
        let reader = Capped::new(read_half, read, label_seed(label), stats);
        Ok(Self::over(
            label,
            log,
            Box::new(reader),
            Box::new(writer),
            write_piece,
        ))
    }

    /// A client over an already connected stream's two halves; each frame
    /// is written in pieces of `write_piece` bytes when it is `Some`.
    pub fn over(
        label: &str,
        log: &EventLog,
        reader: Reader,
        writer: Writer,
        write_piece: Option<usize>,
    ) -> Self {
        Self {
            label: label.to_owned(),
            reader: FrameReader::new(reader),
            writer,
            log: log.clone(),
            write_piece,
            read_this_tick: 0,
        }
    }

    /// Sends one frame (in pieces if so configured); panics on failure.
    pub async fn send(&mut self, frame: &ClientFrame) {
        if let Err(e) = self.try_send(frame).await {
            panic!("{}: sending {frame:?} failed: {e}", self.label);
        }
    }

    /// Sends one frame (in pieces if so configured).
    pub async fn try_send(&mut self, frame: &ClientFrame) -> io::Result<()> {
        self.log.record(&self.label, format_args!("send {frame:?}"));
        match self.write_piece {
            None => framed::write_frame(&mut self.writer, frame).await,
            Some(n) => {
                let bytes = protocol::encode(frame);
                for piece in bytes.chunks(n.max(1)) {
                    flushed(&mut self.writer, piece).await?;
                    // Let a tick pass so every piece travels on its own.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Ok(())
            }
        }
    }

    /// Sends several frames back to back as one byte stream — one write, or
    /// pieces of the configured size that cut across frame boundaries — so
    /// the server sees several frames (and parts of frames) per read.
    pub async fn send_batch(&mut self, frames: &[ClientFrame]) {
        self.log
            .record(&self.label, format_args!("send batch {frames:?}"));
        let mut bytes = Vec::new();
        for frame in frames {
            bytes.extend_from_slice(&protocol::encode(frame));
        }
        let result = match self.write_piece {
            None => flushed(&mut self.writer, &bytes).await,
            Some(n) => {
                let mut result = Ok(());
                for piece in bytes.chunks(n.max(1)) {
                    result = flushed(&mut self.writer, piece).await;
                    if result.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                result
            }
        };
        if let Err(e) = result {
            panic!("{}: batch write failed: {e}", self.label);
        }
    }

    /// Writes raw bytes as one segment, reporting a failure.
    pub async fn try_send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.log
            .record(&self.label, format_args!("send {} raw bytes", bytes.len()));
        self.writer.write_all(bytes).await
    }

    /// Writes raw bytes (a partial frame, say) as one segment.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.log
            .record(&self.label, format_args!("send raw {bytes:02x?}"));
        if let Err(e) = flushed(&mut self.writer, bytes).await {
            panic!("{}: raw write failed: {e}", self.label);
        }
    }

    /// Waits up to `within` for the next frame or the end of the connection.
    pub async fn next(&mut self, within: Duration) -> Got {
        let got = match tokio::time::timeout(within, self.reader.next::<ServerFrame>()).await {
            Err(_) => Got::Nothing,
            Ok(Ok(Some(frame))) => Got::Frame(frame),
            Ok(Ok(None)) => Got::Closed,
            Ok(Err(ReadError::Io(e))) => Got::Failed(format!("io: {}", e.kind())),
            Ok(Err(e)) => Got::Failed(e.to_string()),
        };
        if got != Got::Nothing {
            self.log.record(&self.label, format_args!("got {got:?}"));
        }
        got
    }

    /// Like [`SimClient::next`], for a reader on a slow link: it takes at
    /// most `per_tick` bytes off the socket each `tick` (in reads of its
    /// configured piece size), so the server sees a reader that keeps
    /// reading, slowly.
    pub async fn next_paced(&mut self, per_tick: usize, tick: Duration, within: Duration) -> Got {
        let give_up = tokio::time::Instant::now() + within;
        let got = loop {
            match self.reader.decoder().next_frame::<ServerFrame>() {
                Ok(Some(frame)) => break Got::Frame(frame),
                Ok(None) => {}
                Err(e) => break Got::Failed(e.to_string()),
            }
            if self.read_this_tick >= per_tick {
                tokio::time::sleep(tick).await;
                self.read_this_tick = 0;
            }
            match tokio::time::timeout_at(give_up, self.reader.fill()).await {
                Err(_) => break Got::Nothing,
                Ok(Ok(0)) if self.reader.decoder().is_mid_frame() => {
                    break Got::Failed("closed mid-frame".into());
                }
                Ok(Ok(0)) => break Got::Closed,
                Ok(Ok(n)) => self.read_this_tick += n,
                Ok(Err(e)) => break Got::Failed(format!("io: {}", e.kind())),
            }
        };
        if got != Got::Nothing {
            self.log.record(&self.label, format_args!("got {got:?}"));
        }
        got
    }

    /// Asserts that the next frame is `expected`.
    pub async fn expect(&mut self, expected: ServerFrame) {
        let got = self.next(EXPECT_WITHIN).await;
        assert_eq!(
            got,
            Got::Frame(expected),
            "{} at {:?}",
            self.label,
            turmoil::sim_elapsed()
        );
    }

    /// Asserts that the next frame is `Notice(text)`.
    pub async fn expect_notice(&mut self, text: &str) {
        self.expect(ServerFrame::Notice(text.to_owned())).await;
    }

    /// Asserts that the next frame is `Message(text)`.
    pub async fn expect_message(&mut self, text: &str) {
        self.expect(ServerFrame::Message(text.to_owned())).await;
    }

    /// Asserts that nothing arrives (and the connection stays open) for
    /// `within`.
    pub async fn expect_quiet(&mut self, within: Duration) {
        let got = self.next(within).await;
        assert_eq!(got, Got::Nothing, "{} expected silence", self.label);
    }

    /// Asserts that the server ends the connection (cleanly or not) next.
    pub async fn expect_closed(&mut self) {
        match self.next(EXPECT_WITHIN).await {
            Got::Closed | Got::Failed(_) => {}
            other => panic!("{}: expected the close, got {other:?}", self.label),
        }
    }

    /// Asserts that the server ends the connection gracefully next: a clean
    /// end of stream, not a reset.
    pub async fn expect_clean_close(&mut self) {
        let got = self.next(EXPECT_WITHIN).await;
        assert_eq!(got, Got::Closed, "{}: expected a clean close", self.label);
    }

    /// Sends `Hello(role)` and expects `Accepted`.
    pub async fn hello(&mut self, role: Role) {
        self.send(&ClientFrame::Hello(role)).await;
        self.expect(ServerFrame::Accepted).await;
    }

    /// Hello as a participant, then `name`: expects the acceptance and the
    /// room's "has joined" notice.
    pub async fn join(&mut self, name: &str) {
        self.hello(Role::Participant).await;
        self.send(&ClientFrame::Username(name.to_owned())).await;
        self.expect(ServerFrame::UsernameAccepted).await;
        self.expect_notice(&format!("User {name} has joined")).await;
    }

    /// Sends a chat line.
    pub async fn chat(&mut self, line: &str) {
        self.send(&ClientFrame::Chat(line.to_owned())).await;
    }

    /// Drops the connection (both halves), as a client that quits does.
    pub fn leave(self) {
        self.log.record(&self.label, format_args!("leaves"));
    }
}

/// Writes and flushes (a TLS writer sends a record's end only when flushed).
async fn flushed(writer: &mut Writer, bytes: &[u8]) -> io::Result<()> {
    writer.write_all(bytes).await?;
    writer.flush().await
}

/// A seed for a client's piece sizes, from its label.
pub fn label_seed(label: &str) -> u64 {
    label
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
}

/// Connects a participant named `name` (label = name) and joins the room.
pub async fn participant(name: &str, log: &EventLog) -> SimClient {
    let mut client = SimClient::connect(name, log).await;
    client.join(name).await;
    client
}

/// Connects an observer labelled `label`.
pub async fn observer(label: &str, log: &EventLog) -> SimClient {
    let mut client = SimClient::connect(label, log).await;
    client.hello(Role::Observer).await;
    client
}
