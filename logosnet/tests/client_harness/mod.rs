//! Running the real `logosnet_client` binary for the client's end-to-end
//! tests (the server, the peers and the scripted server come from
//! `testkit`): every wait has a deadline and every child is killed when its
//! handle drops.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use logosnet::protocol::{ClientFrame, ServerFrame, joined};
use testkit::Peer;
use tokio::net::{TcpListener, TcpStream};

/// The longest any single wait in these tests may take. Generous: it only
/// bounds a failing test, and a passing one never waits this long.
pub const WAIT: Duration = Duration::from_secs(15);

pub const CLIENT: &str = env!("CARGO_BIN_EXE_logosnet_client");

/// Lines of a child's output, read on a thread.
fn line_channel(stream: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

fn next_line(lines: &Receiver<String>, what: &str) -> String {
    match lines.recv_timeout(WAIT) {
        Ok(line) => line,
        Err(RecvTimeoutError::Timeout) => panic!("no line from {what} within {WAIT:?}"),
        Err(RecvTimeoutError::Disconnected) => panic!("{what} closed its output"),
    }
}

fn wait_exit(child: &mut Child, what: &str) -> ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not exit within {WAIT:?}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// Sends a signal by name (`TERM`, `INT`) to a process with the shell's
/// `kill` builtin (always there, unlike a `kill` binary).
fn send_signal(pid: u32, name: &str) {
    let status = Command::new("sh")
        .args(["-c", &format!("kill -{name} {pid}")])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid} failed");
}

/// A `logosnet_client` in pipe mode: stdin, stdout and stderr are pipes.
pub struct Client {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
}

impl Client {
    /// A participant (or, with `--observe` in `extra`, an observer).
    pub fn start(label: &str, port: u16, extra: &[&str]) -> Self {
        let port = port.to_string();
        let mut args = vec!["--ip", "127.0.0.1", "--port", &port];
        args.extend_from_slice(extra);
        Self::spawn(label, &args)
    }

    /// A client with exactly these arguments.
    pub fn spawn(label: &str, args: &[&str]) -> Self {
        let mut command = Command::new(CLIENT);
        command.args(args).stdin(Stdio::piped());
        Self::from_command(label, command)
    }

    /// Runs `command` (the client itself, or a shell that runs it) with
    /// stdout and stderr piped to the test; stdin is as the command says.
    pub fn from_command(label: &str, mut command: Command) -> Self {
        let mut child = with_default_signals(&mut command)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start logosnet_client");
        let stdout = line_channel(child.stdout.take().expect("client stdout"));
        let stderr = line_channel(child.stderr.take().expect("client stderr"));
        Self {
            name: label.to_owned(),
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
        }
    }

    /// A participant that has typed `name` and been let into the room (it
    /// has seen its own join notice, then who else is there).
    pub fn join(name: &str, port: u16) -> Self {
        let mut client = Self::start(name, port, &[]);
        client.send(name);
        client.expect_shown(joined(name));
        client.expect_roster();
        client
    }

    /// Asserts that the next stdout line says who is in the room, and
    /// returns it.
    pub fn expect_roster(&self) -> String {
        let line = self.next_line();
        assert!(
            is_roster_line(&line),
            "{}: not a roster: {line:?}",
            self.name
        );
        line
    }

    /// Writes one line to the client's standard input.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin already closed");
        writeln!(stdin, "{line}").expect("write to client stdin");
        stdin.flush().expect("flush client stdin");
    }

    /// Sends the client a signal by name (`INT`, `TERM`).
    pub fn signal(&self, name: &str) {
        send_signal(self.child.id(), name);
    }

    /// Ends the client's standard input (Ctrl-D).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The next line the client printed on stdout.
    pub fn next_line(&self) -> String {
        next_line(&self.stdout, &format!("{} (stdout)", self.name))
    }

    /// The next line the client printed on stderr.
    pub fn next_error_line(&self) -> String {
        next_line(&self.stderr, &format!("{} (stderr)", self.name))
    }

    /// Asserts the next stdout line.
    pub fn expect_line(&self, expected: &str) {
        assert_eq!(self.next_line(), expected, "{}'s next line", self.name);
    }

    /// Asserts that the next stdout line shows `frame`'s text.
    pub fn expect_shown(&self, frame: ServerFrame) {
        self.expect_line(shown(&frame));
    }

    /// Waits for the client to exit.
    pub fn wait(&mut self) -> ExitStatus {
        wait_exit(&mut self.child, &self.name)
    }

    /// Whether the client has exited already.
    pub fn has_exited(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_some()
    }

    /// Every stdout line not read yet, up to the end of output (call after
    /// the client exited).
    pub fn rest_of_stdout(&self) -> Vec<String> {
        rest(&self.stdout, &self.name)
    }

    /// Every stderr line not read yet, up to the end of output.
    pub fn rest_of_stderr(&self) -> Vec<String> {
        rest(&self.stderr, &self.name)
    }
}

fn rest(lines: &Receiver<String>, what: &str) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        match lines.recv_timeout(WAIT) {
            Ok(line) => out.push(line),
            Err(RecvTimeoutError::Disconnected) => return out,
            Err(RecvTimeoutError::Timeout) => panic!("{what}'s output did not end"),
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `line` is the client's account of who is in the room
/// (`logosnet::client::display::roster_line`).
pub fn is_roster_line(line: &str) -> bool {
    line.starts_with("In the room: ") || line == "Nobody else is in the room"
}

/// The text a client shows for `frame` (a notice or a chat line), before
/// any escaping of controls.
pub fn shown(frame: &ServerFrame) -> &str {
    frame.text().expect("a frame with a text")
}

/// The test playing the server: a `testkit` peer that reads the client's
/// frames and answers with whatever it is told to.
pub type ScriptedServer = Peer<TcpStream, ClientFrame, ServerFrame>;

/// Listens on 127.0.0.1 and a free port.
pub async fn listen() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the scripted server");
    let port = listener.local_addr().expect("local addr").port();
    (listener, port)
}

/// Accepts one connection within [`WAIT`].
pub async fn accept(listener: &TcpListener) -> ScriptedServer {
    let (stream, _) = tokio::time::timeout(WAIT, listener.accept())
        .await
        .expect("nobody connected")
        .expect("accept");
    Peer::server_side("scripted server", stream).with_patience(WAIT)
}

/// Starts `command` with SIGINT, SIGTERM, SIGHUP and SIGQUIT at their
/// default action, whatever the test runner inherited: the client keeps a
/// signal that was ignored when it started ignored (as `nohup` and a
/// non-interactive shell's `&` ask), so a suite started in the background
/// of a script would otherwise see its clients ignore the signals these
/// tests send. A test that wants one ignored says so in its own command
/// (`trap '' HUP` in a shell that then runs the client).
pub fn with_default_signals(command: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec only `signal`, which is
    // async-signal-safe, is called, and nothing is allocated.
    unsafe {
        command.pre_exec(|| {
            for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
                libc::signal(signal, libc::SIG_DFL);
            }
            Ok(())
        })
    }
}
