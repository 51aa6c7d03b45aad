//! End-to-end tests of `logosnet_client`: the real client binary against the
//! real server binary (or, for replies the real server cannot be made to
//! give quickly, a scripted server speaking the library's codec).

mod client_harness;
mod support;

use std::process::{Command, Stdio};

use client_harness::{CLIENT, Client, FakeServer};
use logosnet::protocol::{ClientFrame, Role, ServerFrame};
use support::{Peer, Server};

const OBSERVING: &str = "Observing the room until the server closes or Ctrl-C/SIGTERM/SIGHUP";

/// A client started with `extra` against the test playing the server,
/// which has read its Hello.
fn client_and_scripted_server(extra: &[&str]) -> (Client, FakeServer, u16) {
    let (listener, port) = FakeServer::listen();
    let client = Client::start("client", port, extra);
    let mut server = FakeServer::accept(&listener);
    let role = if extra.contains(&"--observe") {
        Role::Observer
    } else {
        Role::Participant
    };
    assert_eq!(server.recv(), ClientFrame::Hello(role));
    (client, server, port)
}

fn observer(port: u16) -> Client {
    let observer = Client::start("observer", port, &["--observe"]);
    // Printed on Accepted: from here on the observer is in the room.
    assert_eq!(observer.next_error_line(), OBSERVING);
    observer
}

#[test]
fn two_participants_and_an_observer_see_exactly_their_lines() {
    let server = Server::start(&[]);
    let port = server.addr.port();
    let mut observer = observer(port);

    let mut alice = Client::join("alice", port);
    observer.expect_line("User alice has joined");
    let mut bob = Client::join("bob", port);
    alice.expect_line("User bob has joined");
    observer.expect_line("User bob has joined");

    // Public: everyone but the sender, with the 14-character prefix.
    alice.send("hi everyone");
    bob.expect_line(">      alice: hi everyone");
    observer.expect_line(">      alice: hi everyone");

    // Private: only the addressee; an unknown name warns the sender.
    bob.send("@alice psst");
    alice.expect_line("%        bob: @alice psst");
    bob.send("@carol hello");
    bob.expect_line("Warning: user carol doesn't exist");

    // Refused locally, and empty lines are not sent at all.
    alice.send(&"x".repeat(1001));
    assert_eq!(
        alice.next_error_line(),
        "Line not sent: it has 1001 characters, the limit is 1000"
    );
    alice.send("");

    bob.send("exit()");
    assert_eq!(bob.wait().code(), Some(0), "exit() leaves cleanly");
    alice.expect_line("User bob has left");
    observer.expect_line("User bob has left");

    // The last line before end of input is still delivered.
    alice.send("last words");
    alice.close_stdin();
    assert_eq!(alice.wait().code(), Some(0), "end of input leaves cleanly");
    observer.expect_line(">      alice: last words");
    observer.expect_line("User alice has left");

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

#[test]
fn interrupt_and_terminate_signals_leave_cleanly() {
    let server = Server::start(&[]);
    let watcher = Client::join("watcher", server.addr.port());
    for (name, signal) in [("alice", "INT"), ("bob", "TERM")] {
        let mut client = Client::join(name, server.addr.port());
        watcher.expect_line(&format!("User {name} has joined"));
        client.signal(signal);
        assert_eq!(client.wait().code(), Some(0), "SIG{signal}");
        assert_eq!(client.rest_of_stderr(), Vec::<String>::new());
        watcher.expect_line(&format!("User {name} has left"));
    }
}

#[test]
fn taken_and_invalid_names_are_asked_for_again() {
    let server = Server::start(&[]);
    let _alice = Client::join("alice", server.addr.port());
    let mut second = Client::start("second", server.addr.port(), &[]);
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
    second.expect_line("User bob has joined");
    second.send("exit()");
    assert_eq!(second.wait().code(), Some(0));
}

#[test]
fn full_server_exits_with_status_two() {
    let server = Server::start(&[]);
    let _seated: Vec<Peer> = (0..255)
        .map(|_| Peer::hello(server.addr, Role::Participant))
        .collect();
    let mut late = Client::start("late", server.addr.port(), &[]);
    assert_eq!(late.wait().code(), Some(2));
    assert_eq!(late.rest_of_stderr(), ["Server is full, try again later"]);
    assert_eq!(late.rest_of_stdout(), Vec::<String>::new());
}

#[test]
fn refused_connection_exits_with_status_one_naming_the_address() {
    let (listener, port) = FakeServer::listen();
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

#[test]
fn server_shutdown_exits_with_status_one() {
    let mut server = Server::start(&[]);
    let port = server.addr.port();
    let mut alice = Client::join("alice", port);
    assert!(server.signal_and_wait("TERM").success());
    alice.expect_line("Server is shutting down");
    assert_eq!(alice.wait().code(), Some(1));
    assert_eq!(
        alice.rest_of_stderr(),
        [format!(
            "The server at 127.0.0.1:{port} closed the connection"
        )]
    );
}

#[test]
fn username_timeout_exits_with_status_three() {
    let (mut client, mut server, _) = client_and_scripted_server(&[]);
    server.send(&ServerFrame::Accepted);
    server.send(&ServerFrame::UsernameTimeout);
    assert_eq!(client.wait().code(), Some(3));
    assert_eq!(client.rest_of_stderr(), ["Timed out choosing a username"]);
}

#[test]
fn undecodable_bytes_from_the_server_are_a_protocol_error() {
    let (mut client, mut server, port) = client_and_scripted_server(&["--observe"]);
    server.send(&ServerFrame::Accepted);
    assert_eq!(client.next_error_line(), OBSERVING);
    // A zero-length frame is a violation of wire protocol v1.
    server.send_raw(&[0, 0, 0, 0]);
    assert_eq!(client.wait().code(), Some(1));
    assert_eq!(
        client.rest_of_stderr(),
        [format!(
            "Protocol error with the server at 127.0.0.1:{port}: protocol violation: \
             frame length 0 is not allowed (must be 1..=65536)"
        )]
    );
}

#[test]
fn hostile_escape_sequences_are_shown_escaped() {
    let server = Server::start(&[]);
    let observer = observer(server.addr.port());
    let alice = Client::join("alice", server.addr.port());
    observer.expect_line("User alice has joined");

    let mut evil = Peer::participant(server.addr, "evil");
    alice.expect_line("User evil has joined");
    observer.expect_line("User evil has joined");

    // Clear screen, retitle the window, ring the bell, return and
    // overwrite, backspace, DEL, an 8-bit CSI; then a fake second line.
    evil.chat("\x1b[2J\x1b]0;pwned\x07\rX\x08\x7f\u{9b}31m");
    evil.chat("hi\nUser alice has left");
    for client in [&alice, &observer] {
        client.expect_line(r">       evil: \x1b[2J\x1b]0;pwned\x07\x0dX\x08\x7f\u{9b}31m");
        client.expect_line(r">       evil: hi\x0aUser alice has left");
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

#[test]
fn observer_in_pipe_mode_logs_without_reading_its_input() {
    let server = Server::start(&[]);
    let port = server.addr.port().to_string();
    // Input that is already at its end, as under `< /dev/null` or a
    // service manager: the observer must not take it as a request to leave.
    let mut command = Command::new(CLIENT);
    command
        .args(["--ip", "127.0.0.1", "--port", &port, "--observe"])
        .stdin(Stdio::null());
    let mut observer = Client::from_command("observer", command);
    assert_eq!(observer.next_error_line(), OBSERVING);
    let mut alice = Client::join("alice", server.addr.port());
    observer.expect_line("User alice has joined");
    alice.send("hello log");
    observer.expect_line(">      alice: hello log");
    assert!(!observer.has_exited());
    observer.signal("HUP");
    assert_eq!(observer.wait().code(), Some(0), "SIGHUP leaves cleanly");
    assert_eq!(observer.rest_of_stderr(), Vec::<String>::new());
}

#[test]
fn observer_started_with_sighup_ignored_keeps_logging_after_a_hangup() {
    let server = Server::start(&[]);
    let port = server.addr.port().to_string();
    // What `nohup` does: SIGHUP ignored before the client starts.
    let mut command = Command::new("sh");
    command
        .args(["-c", "trap '' HUP; exec \"$0\" \"$@\""])
        .args([CLIENT, "--ip", "127.0.0.1", "--port", &port, "--observe"])
        .stdin(Stdio::null());
    let mut observer = Client::from_command("observer", command);
    assert_eq!(observer.next_error_line(), OBSERVING);
    observer.signal("HUP");
    let mut alice = Client::join("alice", server.addr.port());
    observer.expect_line("User alice has joined");
    assert!(!observer.has_exited(), "the hangup stopped it");
    observer.signal("TERM");
    assert_eq!(observer.wait().code(), Some(0));
    alice.close_stdin();
}

#[test]
fn timestamps_start_every_room_line_in_pipe_mode() {
    let server = Server::start(&[]);
    let observer = Client::start(
        "observer",
        server.addr.port(),
        &["--observe", "--timestamps"],
    );
    assert_eq!(
        observer.next_error_line(),
        OBSERVING,
        "remarks are not stamped"
    );
    let mut alice = Client::join("alice", server.addr.port());
    alice.send("hi");
    for rest in ["User alice has joined", ">      alice: hi"] {
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

#[test]
fn script_whose_names_are_all_refused_exits_with_status_four() {
    let server = Server::start(&[]);
    let _alice = Client::join("alice", server.addr.port());
    let mut script = Client::start("script", server.addr.port(), &[]);
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

#[test]
fn script_with_no_input_at_all_exits_with_status_four() {
    let server = Server::start(&[]);
    let port = server.addr.port().to_string();
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

#[test]
fn an_ssh_server_is_not_a_logosnet_server() {
    let (listener, port) = FakeServer::listen();
    let mut client = Client::start("client", port, &[]);
    let mut server = FakeServer::accept(&listener);
    server.send_raw(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n");
    assert_eq!(client.wait().code(), Some(1));
    assert_eq!(
        client.rest_of_stderr(),
        [format!(
            "127.0.0.1:{port} is not a LogosNet server (protocol v1)"
        )]
    );
}

#[test]
fn a_first_payload_that_is_no_server_frame_is_not_a_logosnet_server() {
    let (mut client, mut server, port) = client_and_scripted_server(&["--observe"]);
    // A well-formed header, then a payload with no such variant.
    server.send_raw(&[0, 0, 0, 2, 0x63, 0x00]);
    assert_eq!(client.wait().code(), Some(1));
    assert_eq!(
        client.rest_of_stderr(),
        [format!(
            "127.0.0.1:{port} is not a LogosNet server (protocol v1)"
        )]
    );
}

#[test]
fn a_server_that_never_answers_times_out_with_its_own_line() {
    let (mut client, _server, port) = client_and_scripted_server(&["--connect-timeout", "0.3"]);
    assert_eq!(client.wait().code(), Some(1));
    assert_eq!(
        client.rest_of_stderr(),
        [format!(
            "Timed out connecting to 127.0.0.1:{port}: no answer within 0.3 s"
        )]
    );
}

#[test]
fn interrupt_before_the_server_answers_leaves_cleanly() {
    let (mut client, mut server, _) = client_and_scripted_server(&[]);
    client.signal("INT");
    assert_eq!(client.wait().code(), Some(0));
    assert_eq!(client.rest_of_stderr(), Vec::<String>::new());
    // It closed without waiting for a server that says nothing.
    server.wait_for_close();
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
