//! End-to-end tests of the real `logosnet_server` binary over TCP: the
//! protocol as a client written from docs/PROTOCOL.md would see it.

mod support;

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use logosnet::protocol::{ClientFrame, Role, ServerFrame, encode};
use support::{Peer, Server, message, notice};

#[test]
fn handshake_join_chat_private_and_leave() {
    let server = Server::start(&[]);
    let mut observer = Peer::hello(server.addr, Role::Observer);
    let mut alice = Peer::participant(server.addr, "alice");
    observer.expect(notice("User alice has joined"));
    let mut bob = Peer::participant(server.addr, "bob");
    alice.expect(notice("User bob has joined"));
    observer.expect(notice("User bob has joined"));

    alice.chat("hi");
    bob.expect(message(">      alice: hi"));
    observer.expect(message(">      alice: hi"));

    bob.chat("@alice psst");
    alice.expect(message("%        bob: @alice psst"));

    bob.chat("@carol anyone?");
    bob.expect(notice("Warning: user carol doesn't exist"));

    drop(bob);
    alice.expect(notice("User bob has left"));
    observer.expect(notice("User bob has left"));
    // The private line and the warning reached nobody else.
    alice.chat("still here");
    observer.expect(message(">      alice: still here"));
}

#[test]
fn example_bytes_on_the_wire() {
    let server = Server::start(&[]);
    let mut peer = Peer::connect(server.addr);
    peer.send_raw(&[0, 0, 0, 2, 0, 0]);
    let mut reply = [0u8; 5];
    peer.stream.read_exact(&mut reply).unwrap();
    assert_eq!(reply, [0, 0, 0, 1, 0], "Accepted");
    peer.send_raw(&[0, 0, 0, 5, 1, 3, b'b', b'o', b'b']);
    let mut reply = [0u8; 5];
    peer.stream.read_exact(&mut reply).unwrap();
    assert_eq!(reply, [0, 0, 0, 1, 2], "UsernameAccepted");
}

#[test]
fn one_and_two_byte_writes_are_reassembled() {
    let server = Server::start(&[]);
    let mut alice = Peer::participant(server.addr, "alice");
    for piece in [1, 2] {
        let mut peer = Peer::connect(server.addr);
        let name = format!("p{piece}");
        let mut bytes = encode(&ClientFrame::Hello(Role::Participant)).to_vec();
        bytes.extend_from_slice(&encode(&ClientFrame::Username(name.clone())));
        bytes.extend_from_slice(&encode(&ClientFrame::Chat("piecewise".into())));
        for chunk in bytes.chunks(piece) {
            peer.send_raw(chunk);
            peer.stream.flush().unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
        peer.expect(ServerFrame::Accepted);
        peer.expect(ServerFrame::UsernameAccepted);
        alice.expect(notice(&format!("User {name} has joined")));
        alice.expect(message(&format!("> {name:>10}: piecewise")));
        drop(peer);
        alice.expect(notice(&format!("User {name} has left")));
    }
}

#[test]
fn username_rules_over_the_wire() {
    let server = Server::start(&[]);
    let _alice = Peer::participant(server.addr, "alice");
    let mut p = Peer::hello(server.addr, Role::Participant);
    for (name, reply) in [
        ("", ServerFrame::UsernameInvalid),
        ("elevenchars", ServerFrame::UsernameInvalid),
        ("two words", ServerFrame::UsernameInvalid),
        ("esc\u{1b}", ServerFrame::UsernameInvalid),
        ("alice", ServerFrame::UsernameTaken),
        ("ten_chars_", ServerFrame::UsernameAccepted),
    ] {
        p.send(&ClientFrame::Username(name.into()));
        assert_eq!(p.recv(), reply, "{name:?}");
    }
}

#[test]
fn message_cap_is_1000_characters() {
    let server = Server::start(&[]);
    let mut alice = Peer::participant(server.addr, "alice");
    let mut bob = Peer::participant(server.addr, "bob");
    alice.expect(notice("User bob has joined"));
    alice.chat(&"a".repeat(1001));
    assert!(matches!(alice.recv(), ServerFrame::Notice(w) if w.starts_with("Warning")));
    let whole = "b".repeat(1000);
    alice.chat(&whole);
    bob.expect(message(&format!(">      alice: {whole}")));
}

#[test]
fn observers_are_read_only() {
    let server = Server::start(&[]);
    let mut alice = Peer::participant(server.addr, "alice");
    let mut observer = Peer::hello(server.addr, Role::Observer);
    observer.chat("can anyone hear me?");
    assert!(matches!(observer.recv(), ServerFrame::Notice(w) if w.starts_with("Warning")));
    alice.expect_silence(Duration::from_millis(200));
    alice.chat("ping");
    observer.expect(message(">      alice: ping"));
}

#[test]
fn capacity_is_255_of_each_and_a_freed_slot_is_reusable() {
    let server = Server::start(&[]);
    let participants: Vec<Peer> = (0..255)
        .map(|_| Peer::hello(server.addr, Role::Participant))
        .collect();
    let mut observers: Vec<Peer> = (0..255)
        .map(|_| Peer::hello(server.addr, Role::Observer))
        .collect();
    for role in [Role::Participant, Role::Observer] {
        let mut extra = Peer::connect(server.addr);
        extra.send(&ClientFrame::Hello(role));
        assert_eq!(extra.until_closed(), vec![ServerFrame::Full], "{role:?}");
    }
    drop(observers.pop());
    // The slot frees when the server sees the close; retry briefly.
    let mut admitted = None;
    for _ in 0..100 {
        let mut again = Peer::connect(server.addr);
        again.send(&ClientFrame::Hello(Role::Observer));
        match again.recv() {
            ServerFrame::Accepted => {
                admitted = Some(again);
                break;
            }
            ServerFrame::Full => std::thread::sleep(Duration::from_millis(20)),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(admitted.is_some(), "freed observer slot was not reusable");
    drop(participants);
}

#[test]
fn hostile_lengths_get_a_protocol_error_and_the_server_keeps_serving() {
    let server = Server::start(&[]);
    let mut alice = Peer::participant(server.addr, "alice");
    for (bytes, reason) in [
        (
            &[0u8, 0, 0, 0][..],
            "frame length 0 is not allowed (must be 1..=65536)",
        ),
        (
            &[0xff, 0xff, 0xff, 0xff][..],
            "frame length 4294967295 exceeds the maximum of 65536",
        ),
        (
            &[0, 1, 0, 1][..],
            "frame length 65537 exceeds the maximum of 65536",
        ),
        (
            &[0, 0, 0, 1, 9][..],
            "undecodable payload: unknown message or role variant",
        ),
        (
            &[0, 0, 0, 3, 0, 0, 0][..],
            "undecodable payload: trailing bytes after the message",
        ),
    ] {
        let mut hostile = Peer::connect(server.addr);
        hostile.send_raw(bytes);
        assert_eq!(
            hostile.until_closed(),
            vec![ServerFrame::ProtocolError(reason.into())]
        );
    }
    // A named participant that breaks the framing is announced as left.
    let mut mallory = Peer::participant(server.addr, "mallory");
    alice.expect(notice("User mallory has joined"));
    mallory.send_raw(&[0, 0, 0, 4, 2, 2, 0xff, 0xfe]);
    assert_eq!(
        mallory.until_closed(),
        vec![ServerFrame::ProtocolError(
            "undecodable payload: invalid UTF-8 in a string".into()
        )]
    );
    alice.expect(notice("User mallory has left"));
    let mut bob = Peer::participant(server.addr, "bob");
    alice.expect(notice("User bob has joined"));
    bob.chat("all good");
    alice.expect(message(">        bob: all good"));
}

#[test]
fn disconnect_mid_frame_delivers_nothing_partial_and_announces_the_leave() {
    let server = Server::start(&[]);
    let mut observer = Peer::hello(server.addr, Role::Observer);
    let whole = encode(&ClientFrame::Chat("never seen".into()));
    for (i, cut) in [2, 4, whole.len() - 1].into_iter().enumerate() {
        let name = format!("cut{i}");
        let mut quitter = Peer::participant(server.addr, &name);
        observer.expect(notice(&format!("User {name} has joined")));
        quitter.send_raw(&whole[..cut]);
        drop(quitter);
        observer.expect(notice(&format!("User {name} has left")));
    }
}

#[test]
fn never_reading_client_is_dropped_and_others_get_every_message() {
    // Flood control off: the sender must outrun the kernel's buffers.
    let server = Server::start(&["--flood-rate", "0"]);
    let mut reader = Peer::participant(server.addr, "reader");
    // The sloth never reads; a small receive buffer makes its queue fill
    // after fewer messages.
    let sloth = {
        let socket = socket_with_small_receive_buffer(server.addr);
        let mut peer = Peer::from_stream(socket);
        peer.send(&ClientFrame::Hello(Role::Participant));
        peer.send(&ClientFrame::Username("sloth".into()));
        peer
    };
    reader.expect(notice("User sloth has joined"));
    let mut sender = Peer::participant(server.addr, "sender");
    reader.expect(notice("User sender has joined"));

    let line = "z".repeat(1000);
    let mut sent = 0;
    let mut dropped = false;
    // At least 3,000 messages of 1000 characters; keep going (bounded) until
    // the sloth's queue overflows past the kernel's socket buffers.
    while sent < 20_000 && !(dropped && sent >= 3_000) {
        for _ in 0..500 {
            sender.chat(&line);
            sent += 1;
        }
        for _ in 0..500 {
            match reader.recv() {
                ServerFrame::Message(m) => assert_eq!(m, format!(">     sender: {line}")),
                ServerFrame::Notice(n) if n == "User sloth has left" => {
                    dropped = true;
                    assert!(matches!(reader.recv(), ServerFrame::Message(_)));
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert!(
        dropped,
        "the never-reading client was not dropped after {sent} messages"
    );
    drop(sloth);
    // Still serving.
    sender.chat("after");
    reader.expect(message(">     sender: after"));
}

#[test]
fn silent_connection_is_closed_at_the_hello_timeout() {
    let server = Server::start(&["--hello-timeout", "0.5"]);
    let mut silent = Peer::connect(server.addr);
    assert_eq!(
        silent.until_closed(),
        vec![ServerFrame::ProtocolError("no Hello within 0.5 s".into())]
    );
}

#[test]
fn shutdown_notifies_everyone_and_exits_zero() {
    let mut server = Server::start(&[]);
    let mut alice = Peer::participant(server.addr, "alice");
    let mut observer = Peer::hello(server.addr, Role::Observer);
    let status = server.signal_and_wait("TERM");
    assert!(status.success(), "{status:?}");
    assert_eq!(
        alice.until_closed(),
        vec![notice("Server is shutting down")]
    );
    assert_eq!(
        observer.until_closed(),
        vec![notice("Server is shutting down")]
    );
}

#[test]
fn listens_on_ipv6_and_host_names() {
    for ip in ["::1", "localhost"] {
        let server = Server::start_on(ip, &[]);
        let mut peer = Peer::hello(server.addr, Role::Observer);
        peer.expect_silence(Duration::from_millis(50));
    }
}

#[test]
fn port_in_use_and_bad_address_fail_with_one_line() {
    let server = Server::start(&[]);
    let port = server.addr.port().to_string();
    for args in [
        ["--ip", "127.0.0.1", "--port", port.as_str()],
        ["--ip", "not an address", "--port", "0"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_logosnet_server"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("logosnet_server: "), "{stderr}");
    }
}

#[test]
fn help_shows_the_options_and_description() {
    let out = Command::new(env!("CARGO_BIN_EXE_logosnet_server"))
        .arg("-h")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.starts_with("The LogosNet chat server\n"), "{help}");
    assert!(
        help.contains("--port <PORT>") && help.contains("Port to listen on"),
        "{help}"
    );
    assert!(
        help.contains("--ip <IP>") && help.contains("IPv4 or IPv6 address or host name"),
        "{help}"
    );
}

fn socket_with_small_receive_buffer(addr: std::net::SocketAddr) -> std::net::TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let stream = socket.connect(addr).await.unwrap();
        stream.into_std().unwrap()
    })
}
