//! The real `logosnet_server` binary as a child process on 127.0.0.1, port
//! 0, with what the storm tests read from `/proc` about it (open file
//! descriptors, resident memory), and a few client helpers over the crate's
//! own framing.

use std::net::SocketAddr;
use std::time::Duration;

use logosnet::framed::{FrameReader, write_frame};
use logosnet::protocol::{ClientFrame, Role, ServerFrame};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// Longest any single expected step may take before the test gives up. It
/// only bounds a hung test; nothing asserts how fast anything is.
pub const STEP_LIMIT: Duration = Duration::from_secs(30);

/// The running server: the crate's shared launcher (`tests/support`),
/// with the `/proc` readings the storm tests need added below.
pub use crate::support::Server as ServerProcess;

impl ServerProcess {
    /// How many file descriptors the server has open now.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("read /proc/<pid>/fd")
            .count()
    }

    /// `(VmRSS, VmHWM)` in KiB: resident memory now and at its peak.
    pub fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/<pid>/status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or_else(|| panic!("no {name} in /proc status"))
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Descriptors once the server is idle: polled until two readings a
    /// little apart agree, so that startup work is not mistaken for a leak.
    pub async fn settled_fds(&self) -> usize {
        let mut last = self.open_fds();
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = self.open_fds();
            if now == last {
                return now;
            }
            last = now;
        }
        last
    }

    /// Polls (bounded) until the open descriptors are back to `baseline`;
    /// returns the last count seen.
    pub async fn wait_for_fds_at_most(&self, baseline: usize) -> usize {
        let mut now = self.open_fds();
        for _ in 0..600 {
            if now <= baseline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            now = self.open_fds();
        }
        now
    }
}

/// Lets this test process open the thousands of sockets the storms need.
pub fn raise_fd_limit() {
    rlimit::increase_nofile_limit(u64::MAX).expect("raise RLIMIT_NOFILE");
}

/// A client connection, split so one task can read while another writes.
pub struct Client {
    /// Frames from the server.
    pub reader: FrameReader<OwnedReadHalf>,
    /// Bytes to the server.
    pub writer: OwnedWriteHalf,
}

impl Client {
    /// Connects.
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        Self::from_stream(stream)
    }

    /// Wraps an already connected stream.
    pub fn from_stream(stream: TcpStream) -> Self {
        let (read, writer) = stream.into_split();
        Self {
            reader: FrameReader::new(read),
            writer,
        }
    }

    /// Sends one frame.
    pub async fn send(&mut self, frame: &ClientFrame) {
        write_frame(&mut self.writer, frame)
            .await
            .expect("write a frame");
    }

    /// The next frame; panics on end of stream, error or [`STEP_LIMIT`].
    pub async fn recv(&mut self) -> ServerFrame {
        recv_from(&mut self.reader).await
    }

    /// Reads until `want` arrives, skipping other frames; panics after
    /// [`STEP_LIMIT`].
    pub async fn recv_until(&mut self, want: &ServerFrame) {
        loop {
            if &self.recv().await == want {
                return;
            }
        }
    }

    /// Frames until the server closes: `Ok` with them on a clean close or
    /// a reset, panics after [`STEP_LIMIT`].
    pub async fn recv_to_close(&mut self) -> Vec<ServerFrame> {
        let mut frames = Vec::new();
        loop {
            match tokio::time::timeout(STEP_LIMIT, self.reader.next::<ServerFrame>()).await {
                Ok(Ok(Some(frame))) => frames.push(frame),
                Ok(Ok(None) | Err(_)) => return frames,
                Err(_) => panic!("not closed within {STEP_LIMIT:?}; got {frames:?}"),
            }
        }
    }

    /// Hello as a participant, then a name; returns once it is accepted.
    pub async fn join(addr: SocketAddr, name: &str) -> Self {
        let mut client = Self::connect(addr).await;
        client.send(&ClientFrame::Hello(Role::Participant)).await;
        assert_eq!(client.recv().await, ServerFrame::Accepted);
        client.send(&ClientFrame::Username(name.into())).await;
        assert_eq!(client.recv().await, ServerFrame::UsernameAccepted);
        client
    }

    /// Hello as an observer; returns once it is accepted.
    pub async fn observe(addr: SocketAddr) -> Self {
        let mut client = Self::connect(addr).await;
        client.send(&ClientFrame::Hello(Role::Observer)).await;
        assert_eq!(client.recv().await, ServerFrame::Accepted);
        client
    }
}

/// The next frame from a read half; panics on end of stream, error or
/// [`STEP_LIMIT`].
pub async fn recv_from(reader: &mut FrameReader<OwnedReadHalf>) -> ServerFrame {
    match tokio::time::timeout(2 * STEP_LIMIT, reader.next::<ServerFrame>()).await {
        Ok(Ok(Some(frame))) => frame,
        Ok(other) => panic!("expected a frame, got {other:?}"),
        Err(_) => panic!("no frame within {STEP_LIMIT:?}"),
    }
}

/// A Notice frame.
pub fn notice(text: &str) -> ServerFrame {
    ServerFrame::Notice(text.to_owned())
}

/// Runs a whole scenario under an overall bound, so that a hang fails the
/// test instead of stalling the suite.
pub async fn bounded<F: std::future::Future<Output = ()>>(limit: Duration, scenario: F) {
    tokio::time::timeout(limit, scenario)
        .await
        .unwrap_or_else(|_| panic!("scenario did not finish within {limit:?}"));
}
