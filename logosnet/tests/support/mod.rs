//! Shared by the end-to-end tests that need the server as a process (its
//! exit status, a signal, its command line, `/proc` readings): start the
//! real `logosnet_server` binary, found through Cargo's
//! `CARGO_BIN_EXE_logosnet_server`, on a free port. Every wait is bounded;
//! the server is killed when the handle drops. Everything else starts the
//! server in process with `testkit::spawn_server`, and every peer is
//! `testkit::Peer`.
//!
//! The server's log (its stderr) is captured like the test's own output:
//! a thread copies each line through `eprintln!`, which the test harness
//! holds back and shows only if the test fails. A passing run stays quiet
//! even when a test provokes warnings on purpose.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::{Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long any single wait in a test may take before it fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// A running `logosnet_server`.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    /// Copies the server's stderr into the test's captured output.
    log: Option<JoinHandle<()>>,
    /// Every line of the server's stderr, as it comes (in a mutex so that
    /// a `Server` may be shared between threads).
    logged: Mutex<mpsc::Receiver<String>>,
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
    /// `listening on ADDR` lines (a TLS one ends in ` (tls)`, the metrics
    /// one in ` (metrics)`): their addresses, in order. `addr` is the
    /// first.
    pub fn start_listening(args: &[&str], lines: usize) -> (Self, Vec<SocketAddr>) {
        Self::start_logging(args, lines, "warn")
    }

    /// [`Server::start_listening`], logging what `filter` (as `RUST_LOG`)
    /// lets through.
    pub fn start_logging(args: &[&str], lines: usize, filter: &str) -> (Self, Vec<SocketAddr>) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_logosnet_server"))
            .args(args)
            .env("RUST_LOG", filter)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start logosnet_server");
        let (lines_tx, logged) = mpsc::channel();
        let log = child
            .stderr
            .take()
            .map(|stderr| forward_log(stderr, lines_tx));
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let addrs: Vec<SocketAddr> = (0..lines)
            .map(|_| {
                let mut line = String::new();
                stdout
                    .read_line(&mut line)
                    .expect("read the listening line");
                line.trim()
                    .strip_prefix("listening on ")
                    .map(|rest| {
                        rest.trim_end_matches(" (tls)")
                            .trim_end_matches(" (metrics)")
                    })
                    .unwrap_or_else(|| panic!("unexpected line {line:?}"))
                    .parse()
                    .expect("listening address")
            })
            .collect();
        let addr = addrs[0];
        (
            Self {
                child,
                addr,
                log,
                logged: Mutex::new(logged),
            },
            addrs,
        )
    }

    /// The next line the server logs that `wanted` accepts (lines before it
    /// are skipped); panics if none comes within [`WAIT`].
    pub fn log_line(&self, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        let logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match logged.recv_timeout(left) {
                Ok(line) if wanted(&line) => return line,
                Ok(_) => {}
                Err(e) => panic!("no such log line within {WAIT:?}: {e}"),
            }
        }
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
fn forward_log(stderr: ChildStderr, lines: mpsc::Sender<String>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            eprintln!("logosnet_server: {line}");
            let _ = lines.send(line);
        }
    })
}
