//! End-to-end tests of `logosnet_client`: the real client binary against the
//! real server binary (or, for replies the real server cannot be made to
//! give quickly, a scripted server speaking the library's codec).

mod client_harness;
mod support;

use client_harness::{Client, FakeServer};
use logosnet::protocol::{ClientFrame, Role, ServerFrame};
use support::{Peer, Server};

const OBSERVING: &str = "Observing the room; type exit() or press Ctrl-D to leave";

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

    observer.send("exit()");
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
    let (listener, port) = FakeServer::listen();
    let mut client = Client::start("client", port, &[]);
    let mut server = FakeServer::accept(&listener);
    assert_eq!(server.recv(), ClientFrame::Hello(Role::Participant));
    server.send(&ServerFrame::Accepted);
    server.send(&ServerFrame::UsernameTimeout);
    assert_eq!(client.wait().code(), Some(3));
    assert_eq!(client.rest_of_stderr(), ["Timed out choosing a username"]);
}

#[test]
fn undecodable_bytes_from_the_server_are_a_protocol_error() {
    let (listener, port) = FakeServer::listen();
    let mut client = Client::start("observer", port, &["--observe"]);
    let mut server = FakeServer::accept(&listener);
    assert_eq!(server.recv(), ClientFrame::Hello(Role::Observer));
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
    let output = std::process::Command::new(client_harness::CLIENT)
        .arg("-h")
        .output()
        .expect("run logosnet_client -h");
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).expect("UTF-8 help");
    for expected in [
        "LogosNet Client, the client for the primitive networked chat program",
        "--ip <i>",
        "IP address",
        "--port <p>",
        "port number",
        "--observe",
        "Exit status:",
        "2  the server is full",
        "3  no username was accepted in time",
    ] {
        assert!(
            help.contains(expected),
            "{expected:?} missing from:\n{help}"
        );
    }
}
