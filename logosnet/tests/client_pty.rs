//! The client in a pseudo-terminal (its terminal front end, with line
//! editing): a message arriving while the user is half-way through a line
//! must not garble it, and the whole line must still be sent.

mod client_harness;
mod support;

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use client_harness::{CLIENT, Client, WAIT};
use expectrl::process::unix::WaitStatus;
use expectrl::{Expect, Session};
use support::{Peer, Server};

type Pty = Session<expectrl::process::unix::UnixProcess, expectrl::process::unix::PtyStream>;

fn spawn_in_pty(port: u16) -> Pty {
    let mut command = Command::new(CLIENT);
    command.args(["--ip", "127.0.0.1", "--port", &port.to_string()]);
    let mut pty = Session::spawn(command).expect("spawn the client in a pty");
    pty.get_process_mut()
        .set_window_size(100, 30)
        .expect("set the pty size");
    pty.set_expect_timeout(Some(WAIT));
    pty
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

#[test]
fn half_typed_line_survives_an_incoming_message_and_is_sent_whole() {
    let server = Server::start(&[]);
    let mut alice = spawn_in_pty(server.addr.port());
    expect(&mut alice, "Enter username, max 10 chars: ");
    alice.send("alice\r").expect("type the name");
    expect(&mut alice, "User alice has joined");
    expect(&mut alice, "> alice: ");

    alice.send("half a li").expect("type half a line");
    // Each keystroke redraws the input line; this is its last state.
    expect(&mut alice, "> alice: half a li");

    let mut bob = Client::join("bob", server.addr.port());
    bob.send("hello from bob");
    expect(&mut alice, "User bob has joined");
    expect(&mut alice, ">        bob: hello from bob");
    // Printed above the input line, which is redrawn below it intact.
    expect(&mut alice, "> alice: half a li");

    alice.send("ne\r").expect("finish the line");
    bob.expect_line(">      alice: half a line");

    // Ctrl-D leaves cleanly.
    alice.send("\x04").expect("send Ctrl-D");
    assert_eq!(exit_code(&alice), 0);
    bob.expect_line("User alice has left");
}

#[test]
fn ctrl_c_leaves_cleanly_in_a_terminal() {
    let server = Server::start(&[]);
    let mut alice = spawn_in_pty(server.addr.port());
    expect(&mut alice, "Enter username, max 10 chars: ");
    alice.send("alice\r").expect("type the name");
    expect(&mut alice, "> alice: ");
    alice.send("\x03").expect("send Ctrl-C");
    assert_eq!(exit_code(&alice), 0);
}

#[test]
fn a_hostile_window_title_reaches_the_terminal_escaped() {
    let server = Server::start(&[]);
    let mut alice = spawn_in_pty(server.addr.port());
    expect(&mut alice, "Enter username, max 10 chars: ");
    alice.send("alice\r").expect("type the name");
    expect(&mut alice, "> alice: ");

    let mut evil = Peer::participant(server.addr, "evil");
    evil.chat("\x1b]0;pwned\x07\x1b[2J");
    expect(&mut alice, r">       evil: \x1b]0;pwned\x07\x1b[2J");
    alice.send("exit()\r").expect("type exit()");
    assert_eq!(exit_code(&alice), 0);
}
