//! The client in a pseudo-terminal (its terminal front end, with line
//! editing): a message arriving while the user is half-way through a line
//! must not garble it, and the whole line must still be sent; an input
//! line wider than the terminal is redrawn and erased whole (checked on an
//! emulated screen, not in the raw bytes); who is here, on joining and on
//! `/who`; refused names with their reasons; Ctrl-D deletes a character
//! on a line with text and leaves only on an empty one; no row of a long line that
//! passes for a line of the room, at 80 and 100 columns; names that line up
//! whatever their script; and the observer logs a room
//! from an interactive shell's background and with `< /dev/null`. The
//! server runs in this process; the client's waits block the test's own
//! thread while the runtime's workers serve the room.

mod client_harness;

use std::num::NonZeroU16;
use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use client_harness::{CLIENT, Client, WAIT, accept, listen, shown, with_default_signals};
use expectrl::process::unix::WaitStatus;
use expectrl::{Expect, Regex, Session};
use logosnet::client::session::{Prompt, USERNAME_PROMPT};
use logosnet::protocol::{
    CHAT_PREFIX_CHARS, ClientFrame, Role, ServerFrame, joined, left, public_line,
};
use logosnet::server::ServerConfig;
use testkit::{Peer, spawn_server};

type Pty = Session<expectrl::process::unix::UnixProcess, expectrl::process::unix::PtyStream>;

fn spawn_in_pty(port: u16) -> Pty {
    let mut command = Command::new(CLIENT);
    command.args(["--ip", "127.0.0.1", "--port", &port.to_string()]);
    with_default_signals(&mut command);
    let mut pty = Session::spawn(command).expect("spawn the client in a pty");
    pty.get_process_mut()
        .set_window_size(100, 30)
        .expect("set the pty size");
    pty.set_expect_timeout(Some(WAIT));
    pty
}

/// The chat prompt the client shows `name`.
fn prompt(name: &str) -> String {
    Prompt::Chat(name.to_owned()).text()
}

fn expect(pty: &mut Pty, text: &str) {
    if let Err(e) = pty.expect(text) {
        panic!("the terminal never showed {text:?}: {e}");
    }
}

fn exit_code(pty: &Pty) -> i32 {
    let deadline = Instant::now() + WAIT;
    loop {
        match pty.get_process().status().expect("child status") {
            WaitStatus::StillAlive => {
                assert!(Instant::now() < deadline, "the client did not exit");
                thread::sleep(Duration::from_millis(10));
            }
            WaitStatus::Exited(_, code) => return code,
            other => panic!("the client ended with {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_typed_line_survives_an_incoming_message_and_is_sent_whole() {
    let (addr, _server) = spawn_server(ServerConfig::default()).await;
    let mut alice = spawn_in_pty(addr.port());
    expect(&mut alice, USERNAME_PROMPT);
    alice.send("alice\r").expect("type the name");
    expect(&mut alice, shown(&joined("alice")));
    expect(&mut alice, &prompt("alice"));

    alice.send("half a li").expect("type half a line");
    // Each keystroke redraws the input line; this is its last state.
    expect(&mut alice, &format!("{}half a li", prompt("alice")));

    let mut bob = Client::join("bob", addr.port());
    bob.send("hello from bob");
    expect(&mut alice, shown(&joined("bob")));
    expect(&mut alice, shown(&public_line("bob", "hello from bob")));
    // Printed above the input line, which is redrawn below it intact.
    expect(&mut alice, &format!("{}half a li", prompt("alice")));

    alice.send("ne\r").expect("finish the line");
    bob.expect_shown(public_line("alice", "half a line"));

    // Ctrl-D leaves cleanly.
    alice.send("\x04").expect("send Ctrl-D");
    assert_eq!(exit_code(&alice), 0);
    bob.expect_shown(left("alice"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_d_mid_line_deletes_a_character_and_quits_only_on_an_empty_line() {
    let (addr, _server) = spawn_server(ServerConfig::default()).await;
    let mut alice = spawn_in_pty(addr.port());
    expect(&mut alice, USERNAME_PROMPT);
    alice.send("alice\r").expect("type the name");
    expect(&mut alice, &prompt("alice"));
    let bob = Client::join("bob", addr.port());
    expect(&mut alice, shown(&joined("bob")));

    // "abcd", the cursor two to the left (on the c), Ctrl-D: "abd".
    alice
        .send("abcd\x1b[D\x1b[D\x04")
        .expect("type, move, Ctrl-D");
    expect(&mut alice, &format!("{}abd", prompt("alice")));
    // At the end of a line with text, Ctrl-D does nothing.
    alice
        .send("\x1b[F\x04!\r")
        .expect("End, Ctrl-D, finish the line");
    bob.expect_shown(public_line("alice", "abd!"));

    // On the empty line, Ctrl-D leaves cleanly.
    alice.send("\x04").expect("send Ctrl-D");
    assert_eq!(exit_code(&alice), 0);
    bob.expect_shown(left("alice"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_leaves_cleanly_in_a_terminal() {
    let (addr, _server) = spawn_server(ServerConfig::default()).await;
    let mut alice = spawn_in_pty(addr.port());
    expect(&mut alice, USERNAME_PROMPT);
    alice.send("alice\r").expect("type the name");
    expect(&mut alice, &prompt("alice"));
    alice.send("\x03").expect("send Ctrl-C");
    assert_eq!(exit_code(&alice), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_window_title_reaches_the_terminal_escaped() {
    let (addr, _server) = spawn_server(ServerConfig::default()).await;
    let mut alice = spawn_in_pty(addr.port());
    expect(&mut alice, USERNAME_PROMPT);
    alice.send("alice\r").expect("type the name");
    expect(&mut alice, &prompt("alice"));

    let mut evil = Peer::participant(addr, "evil").await;
    evil.chat("\x1b]0;pwned\x07\x1b[2J").await;
    expect(
        &mut alice,
        shown(&public_line("evil", r"\x1b]0;pwned\x07\x1b[2J")),
    );
    alice.send("exit()\r").expect("type exit()");
    assert_eq!(exit_code(&alice), 0);
}

/// A small terminal, so that a line of 70 characters wraps.
const COLS: u16 = 40;
const ROWS: u16 = 12;

/// The client in a pty of `cols` x `rows` ([`COLS`] x [`ROWS`] unless
/// said otherwise; set by `stty` before the client starts, so it never
/// sees another size), with everything it writes fed to a terminal
/// emulator of the same size.
struct Screen {
    pty: Pty,
    emulator: vt100::Parser,
    cols: u16,
}

impl Screen {
    fn spawn(port: u16, extra: &[&str]) -> Self {
        Self::spawn_sized(port, extra, COLS, ROWS)
    }

    fn spawn_sized(port: u16, extra: &[&str], cols: u16, rows: u16) -> Self {
        let mut command = Command::new("sh");
        command
            .args([
                "-c",
                &format!("stty cols {cols} rows {rows} && exec \"$0\" \"$@\""),
            ])
            .args([CLIENT, "--ip", "127.0.0.1", "--port", &port.to_string()])
            .args(extra);
        with_default_signals(&mut command);
        let mut pty = Session::spawn(command).expect("spawn the client in a pty");
        pty.set_expect_timeout(Some(WAIT));
        pty.get_process_mut()
            .set_window_size(cols, rows)
            .expect("set the pty size");
        let size = |n| NonZeroU16::new(n).expect("non-zero size");
        Self {
            pty,
            emulator: vt100::Parser::new(size(rows), size(cols), 0),
            cols,
        }
    }

    /// Waits for `text` in the output and puts everything up to it on the
    /// emulated screen.
    fn expect(&mut self, text: &str) {
        match self.pty.expect(text) {
            Ok(found) => self.emulator.process(found.as_bytes()),
            Err(e) => panic!("the terminal never showed {text:?}: {e}\n{}", self.dump()),
        }
    }

    /// Waits for `frame`'s text after a `[HH:MM:SS] ` stamp.
    fn expect_stamped(&mut self, frame: &ServerFrame) {
        let text = shown(frame);
        let escaped: String = text
            .chars()
            .flat_map(|c| {
                let special = r"\.+*?()|[]{}^$".contains(c);
                special.then_some('\\').into_iter().chain([c])
            })
            .collect();
        self.expect_regex(&format!(r"\[\d\d:\d\d:\d\d\] {escaped}"));
    }

    fn expect_regex(&mut self, pattern: &str) {
        match self.pty.expect(Regex(pattern)) {
            Ok(found) => self.emulator.process(found.as_bytes()),
            Err(e) => panic!(
                "the terminal never matched {pattern:?}: {e}\n{}",
                self.dump()
            ),
        }
    }

    fn send(&mut self, keys: &str) {
        self.pty.send(keys).expect("type into the pty");
    }

    /// Feeds the emulator whatever the client has written so far, until
    /// the screen's rows satisfy `wanted`, within [`WAIT`]: a redraw may
    /// reach the pty in several writes, and a loaded machine may leave the
    /// last of them unread when the text a test waited for shows.
    fn wait_for_screen(&mut self, what: &str, wanted: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + WAIT;
        loop {
            if wanted(&self.rows()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the screen never showed {what} within {WAIT:?}\n{}",
                self.dump()
            );
            match self.pty.check(Regex("(?s).+")) {
                Ok(found) if !found.is_empty() => self.emulator.process(found.as_bytes()),
                // Nothing new yet: a pause between looks.
                Ok(_) => thread::sleep(Duration::from_millis(10)),
                Err(e) => panic!("the terminal failed: {e}\n{}", self.dump()),
            }
        }
    }

    /// The visible rows, trailing blanks trimmed.
    fn rows(&self) -> Vec<String> {
        self.emulator
            .screen()
            .rows(0, self.cols)
            .map(|row| row.trim_end().to_owned())
            .collect()
    }

    /// The screen column of the first `: ` in the row that holds `text`
    /// (a wide character takes two cells of the emulated screen).
    fn column_of_colon(&self, text: &str) -> u16 {
        let screen = self.emulator.screen();
        let row = self
            .rows()
            .iter()
            .position(|row| row.contains(text))
            .unwrap_or_else(|| panic!("no row holds {text:?}\n{}", self.dump()));
        let row = u16::try_from(row).expect("a row number");
        (0..self.cols)
            .find(|&col| {
                let cell = |c| screen.cell(row, c).map(|cell| cell.contents().to_owned());
                cell(col).as_deref() == Some(":") && cell(col + 1).as_deref() == Some(" ")
            })
            .unwrap_or_else(|| panic!("no ': ' in row {row}\n{}", self.dump()))
    }

    fn dump(&self) -> String {
        format!("screen:\n{}", self.rows().join("\n"))
    }
}

/// Joins as alice and types a line of 70 x's, which wraps once the 9
/// characters of the prompt are in front of it.
fn alice_with_a_wrapped_line(port: u16) -> Screen {
    let mut alice = Screen::spawn(port, &[]);
    alice.expect(USERNAME_PROMPT);
    alice.send("alice\r");
    alice.expect(shown(&joined("alice")));
    alice.expect(&prompt("alice"));
    let long = "x".repeat(70);
    alice.send(&long);
    alice.expect(&format!("{}{long}", prompt("alice")));
    alice.wait_for_screen("the line wrapped", |rows| {
        rows.iter().filter(|row| row.contains("xxxxx")).count() >= 2
    });
    alice
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_u_on_a_line_wider_than_the_terminal_erases_every_row_of_it() {
    let (addr, _server) = spawn_server(ServerConfig::default()).await;
    let mut alice = alice_with_a_wrapped_line(addr.port());
    alice.send("\x15");
    alice.send("z");
    alice.expect(&format!("{}z", prompt("alice")));
    let z_line = format!("{}z", prompt("alice"));
    // Every row of the erased line gone, and the new line shown once; a
    // row left behind stays there, so the wait ends in a failure.
    alice.wait_for_screen("the erased line gone and one new line", |rows| {
        !rows.iter().any(|row| row.contains("xx"))
            && rows.iter().filter(|row| row.starts_with(&z_line)).count() == 1
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enter_on_a_line_wider_than_the_terminal_leaves_it_on_screen_once() {
    let (addr, _server) = spawn_server(ServerConfig::default()).await;
    let mut bob = Client::join("bob", addr.port());
    let mut alice = alice_with_a_wrapped_line(addr.port());
    bob.expect_shown(joined("alice"));
    alice.send("\r");
    bob.expect_shown(public_line("alice", &"x".repeat(70)));
    // A message from bob makes the client print and redraw once more.
    bob.send("seen");
    alice.expect(shown(&public_line("bob", "seen")));
    alice.expect(&prompt("alice"));
    let x_line = format!("{}x", prompt("alice"));
    // Shown once and whole: one row starts it, 70 x's in all.
    alice.wait_for_screen("the sent line once, whole", |rows| {
        let starts = rows.iter().filter(|row| row.starts_with(&x_line)).count();
        let xs: usize = rows
            .iter()
            .filter(|row| !row.starts_with("Enter username"))
            .map(|row| row.matches('x').count())
            .sum();
        (starts, xs) == (1, 70)
    });
    bob.close_stdin();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamps_start_every_room_line_in_a_terminal() {
    let (addr, _server) = spawn_server(ServerConfig::default()).await;
    let mut alice = Screen::spawn(addr.port(), &["--timestamps"]);
    alice.expect(USERNAME_PROMPT);
    alice.send("alice\r");
    alice.expect_stamped(&joined("alice"));
    let mut bob = Peer::participant(addr, "bob").await;
    alice.expect_stamped(&joined("bob"));
    bob.chat("hi").await;
    alice.expect_stamped(&public_line("bob", "hi"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_server_is_announced_and_ctrl_c_leaves_at_once() {
    let (listener, port) = listen().await;
    let mut pty = spawn_in_pty(port);
    let mut server = accept(&listener).await;
    server.expect(ClientFrame::Hello(Role::Participant)).await;
    expect(&mut pty, &format!("Connecting to 127.0.0.1:{port}…"));
    pty.send("\x03").expect("send Ctrl-C");
    assert_eq!(exit_code(&pty), 0);
    server.until_closed().await;
}

/// Joins as `name` in a pty of `cols` columns and waits for the chat
/// prompt (after the join notice and the roster).
fn joined_screen(port: u16, name: &str, cols: u16) -> Screen {
    let mut screen = Screen::spawn_sized(port, &[], cols, 24);
    screen.expect(USERNAME_PROMPT);
    screen.send(&format!("{name}\r"));
    screen.expect(shown(&joined(name)));
    screen.expect(&prompt(name));
    screen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_roster_on_joining_and_who_in_a_conversation() {
    let (addr, _server) = spawn_server(ServerConfig::default()).await;
    let mut bob = Client::join("bob", addr.port());
    let _watcher = Peer::observer(addr, "watcher").await;
    let mut alice = Screen::spawn_sized(addr.port(), &[], 80, 24);
    alice.expect(USERNAME_PROMPT);
    alice.send("alice\r");
    alice.expect(shown(&joined("alice")));
    alice.expect("In the room: bob and 1 observer");
    bob.expect_shown(joined("alice"));
    // `/who` asks again, and is not sent to anyone.
    alice.send("/who\r");
    alice.expect("In the room: bob and 1 observer");
    alice.expect(&prompt("alice"));
    // bob's next line is the one after: the command never reached him.
    alice.send("hello\r");
    bob.expect_shown(public_line("alice", "hello"));
    // bob's `/who` (in pipe mode) is his own question too.
    bob.send("/who");
    assert_eq!(bob.expect_roster(), "In the room: alice and 1 observer");
    bob.send("hi");
    alice.expect(shown(&public_line("bob", "hi")));
    let rows = alice.rows();
    assert_eq!(
        rows.iter()
            .filter(|row| row.starts_with("In the room: bob and 1 observer"))
            .count(),
        2,
        "once on joining, once for /who\n{}",
        alice.dump()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_names_say_why_in_a_terminal() {
    let (addr, _server) = spawn_server(ServerConfig::default()).await;
    let _bob = Client::join("bob", addr.port());
    let mut alice = Screen::spawn_sized(addr.port(), &[], 100, 24);
    alice.expect(USERNAME_PROMPT);
    for (name, says) in [
        ("BOB", "Username already in use"),
        (
            "b0b",
            "Username refused: too similar to bob, who is in the room",
        ),
        (
            "Anonymous",
            "Username refused: Anonymous is reserved for participants who leave before choosing a name",
        ),
        (
            "@carol",
            "Invalid username: it cannot start with @ (a private message to it could not be written)",
        ),
        (
            ">bob:",
            "Invalid username: it cannot start with > (lines from the room start with > or %)",
        ),
    ] {
        alice.send(&format!("{name}\r"));
        alice.expect(says);
        alice.expect(USERNAME_PROMPT);
    }
    alice.send("alice\r");
    alice.expect("In the room: bob");
}

/// Sends, from bob, a line that fills the rest of the row his prefix
/// starts and then reads like alice's line, to a screen `cols` wide; no
/// row may then start like a line from the room but the real ones.
async fn padded_line_to_a_screen_of(cols: u16) {
    let (addr, _server) = spawn_server(ServerConfig::default()).await;
    let mut bob = Peer::participant(addr, "bob").await;
    let mut alice = joined_screen(addr.port(), "alice", cols);
    bob.recv_until(&joined("alice")).await;
    let fake = public_line("alice", "send me the password");
    let fake = shown(&fake);
    let padding = "x".repeat(usize::from(cols) - CHAT_PREFIX_CHARS);
    bob.chat(&format!("{padding}{fake}")).await;
    bob.chat("end").await;
    alice.expect(shown(&public_line("bob", "end")));
    alice.expect(&prompt("alice"));
    let rows = alice.rows();
    let room_rows: Vec<&String> = rows
        .iter()
        .filter(|row| row.starts_with("> ") || row.starts_with("% "))
        .collect();
    assert!(
        room_rows.iter().all(|row| !row.starts_with(fake)),
        "a row passes for alice's line\n{}",
        alice.dump()
    );
    let first = format!(
        ">        bob: {}",
        &padding[..usize::from(cols) - CHAT_PREFIX_CHARS]
    );
    assert!(
        rows.contains(&first),
        "bob's line starts its own row\n{}",
        alice.dump()
    );
    assert!(
        rows.iter()
            .any(|row| row.starts_with(' ') && row.trim_start().starts_with(fake)),
        "the rest of bob's line is there, indented\n{}",
        alice.dump()
    );
    // Only the room's real lines start at column 0 with a mark: bob's two
    // and the prompt.
    assert_eq!(room_rows.len(), 3, "{}", alice.dump());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_padded_to_80_columns_leaves_no_row_that_starts_like_a_room_line() {
    padded_line_to_a_screen_of(80).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_padded_to_100_columns_leaves_no_row_that_starts_like_a_room_line() {
    padded_line_to_a_screen_of(100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cjk_or_emoji_name_lines_up_with_an_ascii_one() {
    let (addr, _server) = spawn_server(ServerConfig::default()).await;
    let mut alice = joined_screen(addr.port(), "alice", 80);
    for name in ["名前", "🦀crab", "bob"] {
        let mut peer = Peer::participant(addr, name).await;
        peer.chat("same column").await;
        alice.expect(&format!("{name}: same column"));
    }
    alice.expect(&prompt("alice"));
    let columns: Vec<u16> = ["名前: same", "🦀crab: same", "bob: same"]
        .iter()
        .map(|text| alice.column_of_colon(text))
        .collect();
    assert_eq!(
        columns,
        [CHAT_PREFIX_CHARS as u16 - 2; 3],
        "{}",
        alice.dump()
    );
}

/// An interactive bash in a pty, with job control, as a user has it.
struct Shell {
    pty: Pty,
}

impl Shell {
    fn start() -> Self {
        let mut command = Command::new("bash");
        command
            .args(["--norc", "--noprofile", "-i"])
            .env("PS1", "$ ")
            .env("TERM", "dumb");
        with_default_signals(&mut command);
        let mut pty = Session::spawn(command).expect("spawn bash in a pty");
        pty.set_expect_timeout(Some(WAIT));
        let mut shell = Self { pty };
        shell.run("true");
        shell
    }

    /// Runs a command line and returns what it printed (up to a marker the
    /// shell prints after it).
    fn run(&mut self, line: &str) -> String {
        // Two lines, so that `line` may end with `&`.
        self.pty
            .send_line(format!("{line}\necho END-$((6*7))"))
            .expect("type into the shell");
        match self.pty.expect("END-42") {
            Ok(found) => String::from_utf8_lossy(found.before()).into_owned(),
            Err(e) => panic!("the shell did not finish {line:?}: {e}"),
        }
    }

    /// The exit status of the last foreground command.
    fn last_status(&mut self) -> String {
        self.pty.send_line("echo STATUS-$?").expect("type");
        match self.pty.expect(Regex(r"STATUS-(\d+)")) {
            Ok(found) => String::from_utf8_lossy(found.get(1).unwrap_or_default()).into_owned(),
            Err(e) => panic!("no status: {e}"),
        }
    }
}

/// What an observer in pipe mode says on stderr once it is in the room.
const OBSERVING_FROM_A_SCRIPT: &str =
    "Observing the room until the server closes or Ctrl-C/SIGTERM/SIGHUP";

/// A fresh file path under the test target's scratch directory.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("client_pty-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    dir.join("room.log")
}

/// Waits (bounded) until the file holds every one of `lines`.
fn wait_for_lines(path: &PathBuf, lines: &[&str]) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if lines.iter().all(|line| text.lines().any(|l| l == *line)) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{} never held {lines:?}; it has {text:?}",
            path.display()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observer_logs_from_the_background_of_an_interactive_shell() {
    let (addr, _server) = spawn_server(ServerConfig::default()).await;
    let log = scratch("background");
    let mut shell = Shell::start();
    let remarks = log.with_file_name("remarks.txt");
    shell.run(&format!(
        "'{CLIENT}' --ip 127.0.0.1 --port {} --observe > '{}' 2> '{}' &",
        addr.port(),
        log.display(),
        remarks.display()
    ));
    // Its banner says it is in the room; alice joins after that.
    wait_for_lines(&remarks, &[OBSERVING_FROM_A_SCRIPT]);
    let mut alice = Peer::participant(addr, "alice").await;
    alice.chat("hello log").await;
    let text = wait_for_lines(
        &log,
        &[
            shown(&joined("alice")),
            shown(&public_line("alice", "hello log")),
        ],
    );
    assert!(!text.contains("Stopped"), "{text}");
    let jobs = shell.run("jobs");
    assert!(jobs.contains("Running"), "the job is not running: {jobs:?}");
    assert!(!jobs.contains("Stopped"), "the job was stopped: {jobs:?}");
    shell.run("kill -TERM %1; wait %1");
    assert_eq!(shell.last_status(), "0", "SIGTERM leaves cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observer_with_input_from_dev_null_logs_until_ctrl_c() {
    let (addr, _server) = spawn_server(ServerConfig::default()).await;
    let mut shell = Shell::start();
    shell
        .pty
        .send_line(format!(
            "'{CLIENT}' --ip 127.0.0.1 --port {} --observe < /dev/null",
            addr.port()
        ))
        .expect("type the command");
    if let Err(e) = shell.pty.expect(OBSERVING_FROM_A_SCRIPT) {
        panic!("no observer banner: {e}");
    }
    let mut alice = Peer::participant(addr, "alice").await;
    alice.chat("still here").await;
    for frame in [joined("alice"), public_line("alice", "still here")] {
        let line = shown(&frame);
        if let Err(e) = shell.pty.expect(line) {
            panic!("the observer never showed {line:?}: {e}");
        }
    }
    shell.pty.send("\x03").expect("send Ctrl-C");
    assert_eq!(shell.last_status(), "0", "Ctrl-C leaves cleanly");
}
