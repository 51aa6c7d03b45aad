//! End-to-end tests of `logosnet_client`: the real client binary, in pipe
//! mode, against the server running in this process (or, for replies the
//! real server cannot be made to give quickly, a scripted server speaking
//! the library's codec). The client's waits block the test's own thread;
//! the runtime's workers serve the room meanwhile.

mod client_harness;

use std::process::{Command, Stdio};

use client_harness::{CLIENT, Client, ScriptedServer, accept, listen, shown};
use logosnet::protocol::{
    ClientFrame, MAX_MESSAGE_CHARS, MAX_PARTICIPANTS, Role, ServerFrame, joined, left,
    no_such_user, private_line, public_line, shutdown_notice,
};
use logosnet::server::ServerConfig;
use testkit::{Peer, spawn_server, spawn_server_at};

const OBSERVING: &str = "Observing the room until the server closes or Ctrl-C/SIGTERM/SIGHUP";

/// A client started with `extra` against the test playing the server,
/// which has read its Hello.
async fn client_and_scripted_server(extra: &[&str]) -> (Client, ScriptedServer, u16) {
    let (listener, port) = listen().await;
    let client = Client::start("client", port, extra);
    let mut server = accept(&listener).await;
    let role = if extra.contains(&"--observe") {
        Role::Observer
    } else {
        Role::Participant
    };
    server.expect(ClientFrame::Hello(role)).await;
    (client, server, port)
}

fn observer(port: u16) -> Client {
    let observer = Client::start("observer", port, &["--observe"]);
    // Printed on Accepted: from here on the observer is in the room.
    assert_eq!(observer.next_error_line(), OBSERVING);
    observer.expect_roster();
    observer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_participants_and_an_observer_see_exactly_their_lines() {
    let (addr, _server) = spawn_server(ServerConfig::default()).await;
    let port = addr.port();
    let mut observer = observer(port);

    let mut alice = Client::join("alice", port);
    observer.expect_shown(joined("alice"));
    let mut bob = Client::join("bob", port);
    alice.expect_shown(joined("bob"));
    observer.expect_shown(joined("bob"));

    // Public: everyone but the sender, with the 14-character prefix.
    alice.send("hi everyone");
    bob.expect_shown(public_line("alice", "hi everyone"));
    observer.expect_shown(public_line("alice", "hi everyone"));

    // Private: only the addressee; an unknown name warns the sender.
    bob.send("@alice psst");
    alice.expect_shown(private_line("bob", "@alice psst"));
    bob.send("@carol hello");
    bob.expect_shown(no_such_user("carol"));

    // Refused locally, and empty lines are not sent at all.
    alice.send(&"x".repeat(MAX_MESSAGE_CHARS + 1));
    assert_eq!(
        alice.next_error_line(),
        format!(
            "Line not sent: it has {} characters, the limit is {MAX_MESSAGE_CHARS}",
            MAX_MESSAGE_CHARS + 1
        )
    );
    alice.send("");

    bob.send("exit()");
    assert_eq!(bob.wait().code(), Some(0), "exit() leaves cleanly");
    alice.expect_shown(left("bob"));
    observer.expect_shown(left("bob"));

    // The last line before end of input is still delivered.
    alice.send("last words");
    alice.close_stdin();
    assert_eq!(alice.wait().code(), Some(0), "end of input leaves cleanly");
    observer.expect_shown(public_line("alice", "last words"));
    observer.expect_shown(left("alice"));

    // An observer in pipe mode reads no input: a signal stops it.
    observer.signal("TERM");
    assert_eq!(observer.wait().code(), Some(0));

    // Nothing else was printed: no private line reached the observer, no
    // sender got its own line back, no empty line went out.
    for client in [&alice, &bob, &observer] {
        assert_eq!(client.rest_of_stdout(), Vec::<String>::new());
        assert_eq!(client.rest_of_stderr(), Vec::<String>::new());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_and_terminate_signals_leave_cleanly() {
    let (addr, _server) = spawn_server(ServerConfig::default()).await;
    let watcher = Client::join("watcher", addr.port());
    for (name, signal) in [("alice", "INT"), ("bob", "TERM")] {
        let mut client = Client::join(name, addr.port());
        watcher.expect_shown(joined(name));
        client.signal(signal);
        assert_eq!(client.wait().code(), Some(0), "SIG{signal}");
        assert_eq!(client.rest_of_stderr(), Vec::<String>::new());
        watcher.expect_shown(left(name));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taken_and_invalid_names_are_asked_for_again() {
    let (addr, _server) = spawn_server(ServerConfig::default()).await;
    let _alice = Client::join("alice", addr.port());
    let mut second = Client::start("second", addr.port(), &[]);
    second.send("alice");
    assert_eq!(second.next_error_line(), "Username already in use");
    second.send("two words");
    assert_eq!(
        second.next_error_line(),
        "Invalid username: no spaces or other whitespace"
    );
    second.send("elevenchars");
    assert_eq!(
        second.next_error_line(),
        "Invalid username: max 10 characters"
    );
    second.send("bob");
    second.expect_shown(joined("bob"));
    second.send("exit()");
    assert_eq!(second.wait().code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_refusal_says_which_rule_refused_the_name() {
    let (addr, _server) = spawn_server(ServerConfig::default()).await;
    let _alice = Client::join("alice", addr.port());
    let mut second = Client::start("second", addr.port(), &[]);
    for (name, says) in [
        ("Alice", "Username already in use"),
        (
            "a1ice",
            "Username refused: too similar to alice, who is in the room",
        ),
        (
            "anonymous",
            "Username refused: Anonymous is reserved for participants who leave before choosing a name",
        ),
        (
            "@bob",
            "Invalid username: it cannot start with @ (a private message to it could not be written)",
        ),
        (
            ">bob:",
            "Invalid username: it cannot start with > (lines from the room start with > or %)",
        ),
        (
            "bob:",
            "Invalid username: it cannot contain : (a line from the room puts : after the sender's name)",
        ),
        (
            "bo\u{200b}b",
            "Invalid username: no control or invisible characters (U+200B)",
        ),
    ] {
        second.send(name);
        assert_eq!(second.next_error_line(), says, "{name:?}");
    }
    second.send("bob");
    second.expect_shown(joined("bob"));
    assert_eq!(second.expect_roster(), "In the room: alice");
    // The reasons were the client's remarks, not room lines.
    second.close_stdin();
    assert_eq!(second.wait().code(), Some(0));
    assert_eq!(second.rest_of_stdout(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_lists_the_room_on_joining_and_when_asked_and_is_never_sent() {
    let (addr, _server) = spawn_server(ServerConfig::default()).await;
    let port = addr.port();
    let _watching = observer(port);
    let mut alice = Client::join("alice", port);
    let mut bob = Client::start("bob", port, &[]);
    bob.send("bob");
    bob.expect_shown(joined("bob"));
    assert_eq!(bob.expect_roster(), "In the room: alice and 1 observer");
    alice.expect_shown(joined("bob"));
    alice.send("/who");
    assert_eq!(alice.expect_roster(), "In the room: bob and 1 observer");
    // Only the exact line is the command: anything else is chat.
    alice.send("/who ");
    bob.expect_shown(public_line("alice", "/who "));
    // bob never saw the first: the next line he gets is alice's next one.
    alice.send("after");
    bob.expect_shown(public_line("alice", "after"));
    alice.close_stdin();
    assert_eq!(alice.wait().code(), Some(0));
    assert_eq!(alice.rest_of_stderr(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_server_exits_with_status_two() {
    let (addr, _server) = spawn_server(ServerConfig::default()).await;
    let _seated = Peer::crowd(addr, Role::Participant, MAX_PARTICIPANTS).await;
    let mut late = Client::start("late", addr.port(), &[]);
    assert_eq!(late.wait().code(), Some(2));
    assert_eq!(late.rest_of_stderr(), ["Server is full, try again later"]);
    assert_eq!(late.rest_of_stdout(), Vec::<String>::new());
}

#[tokio::test]
async fn refused_connection_exits_with_status_one_naming_the_address() {
    let (listener, port) = listen().await;
    drop(listener);
    let mut client = Client::start("client", port, &[]);
    assert_eq!(client.wait().code(), Some(1));
    assert_eq!(
        client.rest_of_stderr(),
        [format!(
            "Cannot connect to 127.0.0.1:{port}: connection refused"
        )]
    );
}

#[test]
fn unknown_host_exits_with_status_one_naming_it() {
    let mut client = Client::spawn(
        "client",
        &["--ip", "no-such-host.invalid", "--port", "8021"],
    );
    assert_eq!(client.wait().code(), Some(1));
    let stderr = client.rest_of_stderr();
    assert_eq!(stderr.len(), 1, "{stderr:?}");
    assert!(
        stderr[0].starts_with("Cannot find host no-such-host.invalid:8021: "),
        "{stderr:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_shutdown_exits_with_status_one() {
    let (addr, server) = spawn_server(ServerConfig::default()).await;
    let port = addr.port();
    let mut alice = Client::join("alice", port);
    server.shut_down().await;
    alice.expect_shown(shutdown_notice());
    assert_eq!(alice.wait().code(), Some(1));
    assert_eq!(
        alice.rest_of_stderr(),
        [format!(
            "The server at 127.0.0.1:{port} closed the connection"
        )]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn username_timeout_exits_with_status_three() {
    let (mut client, mut server, _) = client_and_scripted_server(&[]).await;
    server.send(&ServerFrame::Accepted).await;
    server.send(&ServerFrame::UsernameTimeout).await;
    assert_eq!(client.wait().code(), Some(3));
    assert_eq!(client.rest_of_stderr(), ["Timed out choosing a username"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_bytes_from_the_server_are_a_protocol_error() {
    let (mut client, mut server, port) = client_and_scripted_server(&["--observe"]).await;
    server.send(&ServerFrame::Accepted).await;
    assert_eq!(client.next_error_line(), OBSERVING);
    // A zero-length frame is a violation of wire protocol v1.
    server.send_raw(&[0, 0, 0, 0]).await;
    assert_eq!(client.wait().code(), Some(1));
    assert_eq!(
        client.rest_of_stderr(),
        [format!(
            "Protocol error with the server at 127.0.0.1:{port}: protocol violation: \
             frame length 0 is not allowed (must be 1..=65536)"
        )]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_escape_sequences_are_shown_escaped() {
    let (addr, _server) = spawn_server(ServerConfig::default()).await;
    let observer = observer(addr.port());
    let alice = Client::join("alice", addr.port());
    observer.expect_shown(joined("alice"));

    let mut evil = Peer::participant(addr, "evil").await;
    alice.expect_shown(joined("evil"));
    observer.expect_shown(joined("evil"));

    // Clear screen, retitle the window, ring the bell, return and
    // overwrite, backspace, DEL, an 8-bit CSI; then a fake second line.
    evil.chat("\x1b[2J\x1b]0;pwned\x07\rX\x08\x7f\u{9b}31m")
        .await;
    let fake_leave = left("alice");
    let fake_leave = fake_leave.text().expect("a notice's text");
    evil.chat(&format!("hi\n{fake_leave}")).await;
    for client in [&alice, &observer] {
        client.expect_shown(public_line(
            "evil",
            r"\x1b[2J\x1b]0;pwned\x07\x0dX\x08\x7f\u{9b}31m",
        ));
        client.expect_shown(public_line("evil", &format!(r"hi\x0a{fake_leave}")));
    }
}

#[test]
fn help_shows_the_options_description_and_exit_codes() {
    let output = Command::new(CLIENT)
        .arg("-h")
        .output()
        .expect("run logosnet_client -h");
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).expect("UTF-8 help");
    for expected in [
        "The LogosNet chat client: join a room, or watch it with --observe",
        "--ip <IP>",
        "IPv4 or IPv6 address or host name",
        "--port <PORT>",
        "--observe",
        "--timestamps",
        "--connect-timeout <SECS>",
        "Exit status:",
        "SIGTERM",
        "SIGHUP",
        "2   the server is full",
        "3   no username was accepted in time",
        "64  bad arguments",
    ] {
        assert!(
            help.contains(expected),
            "{expected:?} missing from:\n{help}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observer_in_pipe_mode_logs_without_reading_its_input() {
    let (addr, _server) = spawn_server(ServerConfig::default()).await;
    let port = addr.port().to_string();
    // Input that is already at its end, as under `< /dev/null` or a
    // service manager: the observer must not take it as a request to leave.
    let mut command = Command::new(CLIENT);
    command
        .args(["--ip", "127.0.0.1", "--port", &port, "--observe"])
        .stdin(Stdio::null());
    let mut observer = Client::from_command("observer", command);
    assert_eq!(observer.next_error_line(), OBSERVING);
    observer.expect_roster();
    let mut alice = Client::join("alice", addr.port());
    observer.expect_shown(joined("alice"));
    alice.send("hello log");
    observer.expect_shown(public_line("alice", "hello log"));
    assert!(!observer.has_exited());
    observer.signal("HUP");
    assert_eq!(observer.wait().code(), Some(0), "SIGHUP leaves cleanly");
    assert_eq!(observer.rest_of_stderr(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observer_started_with_sighup_ignored_keeps_logging_after_a_hangup() {
    let (addr, _server) = spawn_server(ServerConfig::default()).await;
    let port = addr.port().to_string();
    // What `nohup` does: SIGHUP ignored before the client starts.
    let mut command = Command::new("sh");
    command
        .args(["-c", "trap '' HUP; exec \"$0\" \"$@\""])
        .args([CLIENT, "--ip", "127.0.0.1", "--port", &port, "--observe"])
        .stdin(Stdio::null());
    let mut observer = Client::from_command("observer", command);
    assert_eq!(observer.next_error_line(), OBSERVING);
    observer.expect_roster();
    observer.signal("HUP");
    let mut alice = Client::join("alice", addr.port());
    observer.expect_shown(joined("alice"));
    assert!(!observer.has_exited(), "the hangup stopped it");
    observer.signal("TERM");
    assert_eq!(observer.wait().code(), Some(0));
    alice.close_stdin();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamps_start_every_room_line_in_pipe_mode() {
    let (addr, _server) = spawn_server(ServerConfig::default()).await;
    let observer = Client::start("observer", addr.port(), &["--observe", "--timestamps"]);
    assert_eq!(
        observer.next_error_line(),
        OBSERVING,
        "remarks are not stamped"
    );
    let mut alice = Client::join("alice", addr.port());
    alice.send("hi");
    for rest in [
        "Nobody else is in the room",
        shown(&joined("alice")),
        shown(&public_line("alice", "hi")),
    ] {
        let line = observer.next_line();
        assert!(is_stamped(&line, rest), "{line:?}");
    }
}

/// Whether `line` is `[HH:MM:SS] ` then `rest`.
fn is_stamped(line: &str, rest: &str) -> bool {
    let Some((stamp, after)) = line.split_at_checked(11) else {
        return false;
    };
    let digits = |range: std::ops::Range<usize>| stamp[range].bytes().all(|b| b.is_ascii_digit());
    after == rest
        && stamp.starts_with('[')
        && stamp.ends_with("] ")
        && digits(1..3)
        && &stamp[3..4] == ":"
        && digits(4..6)
        && &stamp[6..7] == ":"
        && digits(7..9)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_whose_names_are_all_refused_exits_with_status_four() {
    let (addr, _server) = spawn_server(ServerConfig::default()).await;
    let _alice = Client::join("alice", addr.port());
    let mut script = Client::start("script", addr.port(), &[]);
    script.send("alice");
    script.send("two words");
    script.close_stdin();
    assert_eq!(script.wait().code(), Some(4));
    assert_eq!(
        script.rest_of_stderr(),
        [
            "Username already in use",
            "Invalid username: no spaces or other whitespace",
            "Left before any username was accepted",
        ]
    );
    assert_eq!(script.rest_of_stdout(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_with_no_input_at_all_exits_with_status_four() {
    let (addr, _server) = spawn_server(ServerConfig::default()).await;
    let port = addr.port().to_string();
    let mut command = Command::new(CLIENT);
    command
        .args(["--ip", "127.0.0.1", "--port", &port])
        .stdin(Stdio::null());
    let mut script = Client::from_command("script", command);
    assert_eq!(script.wait().code(), Some(4));
    assert_eq!(
        script.rest_of_stderr(),
        ["Left before any username was accepted"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ssh_server_is_not_a_logosnet_server() {
    let (listener, port) = listen().await;
    let mut client = Client::start("client", port, &[]);
    let mut server = accept(&listener).await;
    server
        .send_raw(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")
        .await;
    assert_eq!(client.wait().code(), Some(1));
    assert_eq!(
        client.rest_of_stderr(),
        [format!(
            "127.0.0.1:{port} is not a LogosNet server (protocol v1)"
        )]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_payload_that_is_no_server_frame_is_not_a_logosnet_server() {
    let (mut client, mut server, port) = client_and_scripted_server(&["--observe"]).await;
    // A well-formed header, then a payload with no such variant.
    server.send_raw(&[0, 0, 0, 2, 0x63, 0x00]).await;
    assert_eq!(client.wait().code(), Some(1));
    assert_eq!(
        client.rest_of_stderr(),
        [format!(
            "127.0.0.1:{port} is not a LogosNet server (protocol v1)"
        )]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_times_out_with_its_own_line() {
    let (mut client, _server, port) =
        client_and_scripted_server(&["--connect-timeout", "0.3"]).await;
    assert_eq!(client.wait().code(), Some(1));
    assert_eq!(
        client.rest_of_stderr(),
        [format!(
            "Timed out connecting to 127.0.0.1:{port}: no answer within 0.3 s"
        )]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_that_accepts_and_stays_silent_is_not_answering_as_a_logosnet_server() {
    let (mut client, _server, port) =
        client_and_scripted_server(&["--answer-timeout", "0.2"]).await;
    assert_eq!(client.wait().code(), Some(1));
    assert_eq!(
        client.rest_of_stderr(),
        [format!(
            "127.0.0.1:{port} is not answering as a LogosNet server (no reply to Hello within 0.2 s)"
        )]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_before_the_server_answers_leaves_cleanly() {
    let (mut client, mut server, _) = client_and_scripted_server(&[]).await;
    client.signal("INT");
    assert_eq!(client.wait().code(), Some(0));
    assert_eq!(client.rest_of_stderr(), Vec::<String>::new());
    // It closed without waiting for a server that says nothing.
    server.until_closed().await;
}

#[test]
fn bad_arguments_exit_64_with_one_line_in_both_binaries() {
    let server_bin = env!("CARGO_BIN_EXE_logosnet_server");
    for (bin, args) in [
        (CLIENT, &["--ip", "127.0.0.1", "--port", "x"][..]),
        (CLIENT, &["--ip", "127.0.0.1"][..]),
        (
            CLIENT,
            &["-i", "::1", "-p", "1", "--connect-timeout", "0"][..],
        ),
        (
            server_bin,
            &[
                "--ip",
                "127.0.0.1",
                "--port",
                "0",
                "--hello-timeout",
                "1e20",
            ][..],
        ),
        (
            server_bin,
            &[
                "--ip",
                "127.0.0.1",
                "--port",
                "0",
                "--hello-timeout",
                "1e19",
            ][..],
        ),
        (server_bin, &["--bogus"][..]),
    ] {
        let output = Command::new(bin).args(args).output().expect("run");
        assert_eq!(output.status.code(), Some(64), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.ends_with(" (try --help)\n"), "{stderr}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn version_names_each_binary() {
    for bin in ["logosnet_client", "logosnet_server"] {
        let path = if bin == "logosnet_client" {
            CLIENT
        } else {
            env!("CARGO_BIN_EXE_logosnet_server")
        };
        let output = Command::new(path).arg("--version").output().expect("run");
        assert!(output.status.success());
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            format!("{bin} {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_logger_waits_for_its_server_comes_back_after_a_restart_and_stops_on_sigterm()
 {
    // A port nothing listens on yet.
    let (listener, port) = listen().await;
    let addr = listener.local_addr().expect("an address");
    drop(listener);
    let mut logger = Client::start("logger", port, &["--observe", "--reconnect"]);
    assert_eq!(
        logger.next_error_line(),
        format!(
            "Cannot connect to 127.0.0.1:{port}: connection refused; trying again until it answers"
        )
    );
    // The server comes up: the logger's first line is who is there.
    let server = spawn_server_at(addr, ServerConfig::default()).await;
    assert_eq!(logger.next_error_line(), OBSERVING);
    assert_eq!(logger.expect_roster(), "Nobody else is in the room");
    let alice = Peer::participant(addr, "alice").await;
    logger.expect_shown(joined("alice"));

    // A restart: one line for the loss, one for the return, then the room.
    server.shut_down().await;
    drop(alice);
    logger.expect_shown(shutdown_notice());
    logger.expect_line(&format!(
        "*** The server at 127.0.0.1:{port} closed the connection; reconnecting"
    ));
    let server = spawn_server_at(addr, ServerConfig::default()).await;
    logger.expect_line(&format!("*** Back in the room at 127.0.0.1:{port}"));
    assert_eq!(logger.expect_roster(), "Nobody else is in the room");
    let _bob = Peer::participant(addr, "bob").await;
    logger.expect_shown(joined("bob"));

    // Lost again, and stopped while it waits: cleanly, at once.
    server.shut_down().await;
    logger.expect_shown(shutdown_notice());
    logger.expect_line(&format!(
        "*** The server at 127.0.0.1:{port} closed the connection; reconnecting"
    ));
    logger.signal("TERM");
    assert_eq!(logger.wait().code(), Some(0), "SIGTERM stops it cleanly");
    assert_eq!(logger.rest_of_stdout(), Vec::<String>::new());
    assert_eq!(logger.rest_of_stderr(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_reconnect_an_observer_still_ends_when_its_server_does() {
    let (addr, server) = spawn_server(ServerConfig::default()).await;
    let mut logger = observer(addr.port());
    server.shut_down().await;
    logger.expect_shown(shutdown_notice());
    assert_eq!(logger.wait().code(), Some(1));
    assert_eq!(
        logger.rest_of_stderr(),
        [format!(
            "The server at 127.0.0.1:{} closed the connection",
            addr.port()
        )]
    );
}

#[test]
fn participants_do_not_reconnect() {
    let mut client = Client::spawn(
        "client",
        &["--ip", "127.0.0.1", "--port", "1", "--reconnect"],
    );
    assert_eq!(client.wait().code(), Some(64));
    assert_eq!(
        client.rest_of_stderr(),
        [
            "logosnet_client: the following required arguments were not provided: --observe (try --help)"
        ]
    );
}
