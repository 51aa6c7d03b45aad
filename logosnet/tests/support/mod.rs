//! Shared by the end-to-end tests: start the real `logosnet_server` binary on
//! a free port, and a small blocking peer that speaks frames over real TCP.
//! Every wait is bounded; the server is killed when the handle drops.
//!
//! The server's log (its stderr) is captured like the test's own output:
//! a thread copies each line through `eprintln!`, which the test harness
//! holds back and shows only if the test fails. A passing run stays quiet
//! even when a test provokes warnings on purpose.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use logosnet::codec::FrameDecoder;
use logosnet::protocol::{self, ClientFrame, Role, ServerFrame};

/// How long any single wait in a test may take before it fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// A running `logosnet_server`.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    /// Copies the server's stderr into the test's captured output.
    log: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts the server on 127.0.0.1, port 0, with extra arguments.
    pub fn start(extra: &[&str]) -> Self {
        Self::start_on("127.0.0.1", extra)
    }

    /// Starts the server on `ip`, port 0.
    pub fn start_on(ip: &str, extra: &[&str]) -> Self {
        let mut args = vec!["--ip", ip, "--port", "0"];
        args.extend_from_slice(extra);
        Self::start_listening(&args, 1).0
    }

    /// Starts the server with exactly `args` and reads its first `lines`
    /// `listening on ADDR` lines (a TLS one ends in ` (tls)`): their
    /// addresses, in order. `addr` is the first.
    pub fn start_listening(args: &[&str], lines: usize) -> (Self, Vec<SocketAddr>) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_logosnet_server"))
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start logosnet_server");
        let log = child.stderr.take().map(forward_log);
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let addrs: Vec<SocketAddr> = (0..lines)
            .map(|_| {
                let mut line = String::new();
                stdout
                    .read_line(&mut line)
                    .expect("read the listening line");
                line.trim()
                    .strip_prefix("listening on ")
                    .map(|rest| rest.trim_end_matches(" (tls)"))
                    .unwrap_or_else(|| panic!("unexpected line {line:?}"))
                    .parse()
                    .expect("listening address")
            })
            .collect();
        let addr = addrs[0];
        (Self { child, addr, log }, addrs)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (e.g. "TERM") and waits for the exit status.
    pub fn signal_and_wait(&mut self, signal: &str) -> std::process::ExitStatus {
        Command::new("kill")
            .args([format!("-{signal}"), self.pid().to_string()])
            .status()
            .expect("kill");
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "server did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The server is gone, so its stderr ends and the copy finishes:
        // every line is in the test's output before the test reports.
        if let Some(log) = self.log.take() {
            let _ = log.join();
        }
    }
}

/// Copies the server's log line by line into the test's captured output
/// (a thread spawned from a test inherits its capture).
fn forward_log(stderr: ChildStderr) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            eprintln!("logosnet_server: {line}");
        }
    })
}

/// A blocking peer over real TCP.
pub struct Peer {
    pub stream: TcpStream,
    decoder: FrameDecoder,
}

impl Peer {
    pub fn connect(addr: SocketAddr) -> Self {
        Self::from_stream(TcpStream::connect_timeout(&addr, WAIT).expect("connect"))
    }

    /// Wraps an already connected (blocking) stream.
    pub fn from_stream(stream: TcpStream) -> Self {
        stream.set_nonblocking(false).expect("blocking");
        stream.set_read_timeout(Some(WAIT)).expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        Self {
            stream,
            decoder: FrameDecoder::new(),
        }
    }

    /// Connects and says Hello; expects `Accepted`.
    pub fn hello(addr: SocketAddr, role: Role) -> Self {
        let mut peer = Self::connect(addr);
        peer.send(&ClientFrame::Hello(role));
        peer.expect(ServerFrame::Accepted);
        peer
    }

    /// A named participant, its own join notice consumed.
    pub fn participant(addr: SocketAddr, name: &str) -> Self {
        let mut peer = Self::hello(addr, Role::Participant);
        peer.send(&ClientFrame::Username(name.into()));
        peer.expect(ServerFrame::UsernameAccepted);
        peer.expect(ServerFrame::Notice(format!("User {name} has joined")));
        peer
    }

    pub fn send(&mut self, frame: &ClientFrame) {
        self.stream
            .write_all(&protocol::encode(frame))
            .expect("write");
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    pub fn chat(&mut self, line: &str) {
        self.send(&ClientFrame::Chat(line.into()));
    }

    /// The next frame; panics on timeout, violation or end of stream.
    pub fn recv(&mut self) -> ServerFrame {
        match self.try_recv() {
            Some(frame) => frame,
            None => panic!("connection closed while a frame was expected"),
        }
    }

    /// The next frame, or `None` at a clean end of stream.
    pub fn try_recv(&mut self) -> Option<ServerFrame> {
        let mut buf = [0u8; 8192];
        loop {
            if let Some(frame) = self.decoder.next_frame().expect("valid frame") {
                return Some(frame);
            }
            let n = self.stream.read(&mut buf).expect("read within the wait");
            if n == 0 {
                assert!(!self.decoder.is_mid_frame(), "closed mid-frame");
                return None;
            }
            self.decoder.extend(&buf[..n]);
        }
    }

    pub fn expect(&mut self, frame: ServerFrame) {
        assert_eq!(self.recv(), frame);
    }

    /// Reads frames until the server closes, returning them.
    pub fn until_closed(&mut self) -> Vec<ServerFrame> {
        let mut frames = Vec::new();
        while let Some(frame) = self.try_recv() {
            frames.push(frame);
        }
        frames
    }

    /// Asserts nothing arrives within `quiet` (used only to show absence).
    pub fn expect_silence(&mut self, quiet: Duration) {
        self.stream.set_read_timeout(Some(quiet)).expect("timeout");
        let mut buf = [0u8; 1];
        match self.stream.read(&mut buf) {
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            other => panic!("expected silence, got {other:?}"),
        }
        self.stream.set_read_timeout(Some(WAIT)).expect("timeout");
    }
}

pub fn notice(text: &str) -> ServerFrame {
    ServerFrame::Notice(text.into())
}

pub fn message(text: &str) -> ServerFrame {
    ServerFrame::Message(text.into())
}
