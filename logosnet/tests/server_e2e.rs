//! End-to-end tests of the server over TCP: the protocol as a client
//! written from docs/PROTOCOL.md would see it. The server runs in this
//! process (`testkit::spawn_server`); the real binary is started only for
//! what needs a process: its exit status on SIGTERM and on bad arguments,
//! its address parsing, `--help`.

mod support;

use std::process::Command;
use std::time::Duration;

use logosnet::protocol::{
    ClientFrame, MAX_MESSAGE_CHARS, MAX_OBSERVERS, MAX_PARTICIPANTS, Role, ServerFrame,
    invalid_username, joined, left, name_too_similar, no_hello_within, no_such_user,
    observers_only_read, private_line, public_line, shutdown_notice, too_long_warning,
};
use logosnet::server::ServerConfig;
use logosnet::username::UsernameError;
use support::Server;
use testkit::peer::frame_bytes;
use testkit::{PATIENCE, Peer, spawn_server, unthrottled};
use tokio::io::AsyncReadExt;

#[tokio::test]
async fn handshake_join_chat_private_and_leave() {
    let (addr, _server) = spawn_server(ServerConfig::default()).await;
    let mut observer = Peer::observer(addr, "observer").await;
    let mut alice = Peer::participant(addr, "alice").await;
    observer.expect(joined("alice")).await;
    let mut bob = Peer::participant(addr, "bob").await;
    alice.expect(joined("bob")).await;
    observer.expect(joined("bob")).await;

    alice.chat("hi").await;
    bob.expect(public_line("alice", "hi")).await;
    observer.expect(public_line("alice", "hi")).await;

    bob.chat("@alice psst").await;
    alice.expect(private_line("bob", "@alice psst")).await;

    bob.chat("@carol anyone?").await;
    bob.expect(no_such_user("carol")).await;

    drop(bob);
    alice.expect(left("bob")).await;
    observer.expect(left("bob")).await;
    // The private line and the warning reached nobody else.
    alice.chat("still here").await;
    observer.expect(public_line("alice", "still here")).await;
}

#[tokio::test]
async fn example_bytes_on_the_wire() {
    let (addr, _server) = spawn_server(ServerConfig::default()).await;
    let mut peer = Peer::connect("raw", addr).await;
    peer.send_raw(&[0, 0, 0, 2, 0, 0]).await;
    let mut reply = [0u8; 5];
    peer.stream().read_exact(&mut reply).await.unwrap();
    assert_eq!(reply, [0, 0, 0, 1, 0], "Accepted");
    peer.send_raw(&[0, 0, 0, 5, 1, 3, b'b', b'o', b'b']).await;
    let mut reply = [0u8; 5];
    peer.stream().read_exact(&mut reply).await.unwrap();
    assert_eq!(reply, [0, 0, 0, 1, 2], "UsernameAccepted");
}

#[tokio::test]
async fn one_and_two_byte_writes_are_reassembled() {
    let (addr, _server) = spawn_server(ServerConfig::default()).await;
    let mut alice = Peer::participant(addr, "alice").await;
    for piece in [1, 2] {
        let name = format!("p{piece}");
        let mut peer = Peer::connect(&name, addr).await.writing_in_pieces(piece);
        peer.send_batch(&[
            ClientFrame::Hello(Role::Participant),
            ClientFrame::Username(name.clone()),
            ClientFrame::Chat("piecewise".into()),
        ])
        .await;
        peer.expect(ServerFrame::Accepted).await;
        peer.expect(ServerFrame::UsernameAccepted).await;
        alice.expect(joined(&name)).await;
        alice.expect(public_line(&name, "piecewise")).await;
        drop(peer);
        alice.expect(left(&name)).await;
    }
}

#[tokio::test]
async fn username_rules_over_the_wire() {
    let (addr, _server) = spawn_server(ServerConfig::default()).await;
    let _alice = Peer::participant(addr, "alice").await;
    let mut p = Peer::connect("naming", addr).await;
    p.hello(Role::Participant).await;
    let invalid = |broken| vec![invalid_username(broken), ServerFrame::UsernameInvalid];
    for (name, replies) in [
        ("", invalid(UsernameError::Empty)),
        ("elevenchars", invalid(UsernameError::TooLong)),
        ("two words", invalid(UsernameError::Whitespace(' '))),
        ("esc\u{1b}", invalid(UsernameError::Invisible('\u{1b}'))),
        ("@bob", invalid(UsernameError::StartsWithAt('@'))),
        (">bob:", invalid(UsernameError::LinePrefix('>'))),
        ("alice", vec![ServerFrame::UsernameTaken]),
        ("ALICE", vec![ServerFrame::UsernameTaken]),
        (
            "a1ice",
            vec![name_too_similar("alice"), ServerFrame::UsernameTaken],
        ),
        ("ten_chars_", vec![ServerFrame::UsernameAccepted]),
    ] {
        p.send(&ClientFrame::Username(name.into())).await;
        for reply in replies {
            assert_eq!(p.recv().await, reply, "{name:?}");
        }
    }
}

#[tokio::test]
async fn who_is_here_is_answered_to_the_asker_alone() {
    let (addr, _server) = spawn_server(ServerConfig::default()).await;
    let mut observer = Peer::observer(addr, "observer").await;
    let mut bob = Peer::participant(addr, "bob").await;
    let mut alice = Peer::participant(addr, "alice").await;
    observer.expect(joined("bob")).await;
    observer.expect(joined("alice")).await;
    bob.expect(joined("alice")).await;
    alice.send(&ClientFrame::Who).await;
    alice
        .expect(ServerFrame::Roster {
            participants: vec!["bob".into(), "alice".into()],
            observers: 1,
        })
        .await;
    observer.send(&ClientFrame::Who).await;
    observer
        .expect(ServerFrame::Roster {
            participants: vec!["bob".into(), "alice".into()],
            observers: 1,
        })
        .await;
    // Nobody else heard either question or answer: the room took both
    // before alice's line, so bob's next frame is that line.
    alice.chat("ping").await;
    bob.expect(public_line("alice", "ping")).await;
    // As bytes: `Who` is one byte of payload.
    let mut raw = Peer::connect("raw", addr).await;
    raw.hello(Role::Observer).await;
    raw.send_raw(&[0, 0, 0, 1, 3]).await;
    raw.expect(ServerFrame::Roster {
        participants: vec!["bob".into(), "alice".into()],
        observers: 2,
    })
    .await;
}

#[tokio::test]
async fn message_cap_is_1000_characters() {
    let (addr, _server) = spawn_server(ServerConfig::default()).await;
    let mut alice = Peer::participant(addr, "alice").await;
    let mut bob = Peer::participant(addr, "bob").await;
    alice.expect(joined("bob")).await;
    alice.chat(&"a".repeat(MAX_MESSAGE_CHARS + 1)).await;
    alice.expect(too_long_warning()).await;
    let whole = "b".repeat(MAX_MESSAGE_CHARS);
    alice.chat(&whole).await;
    bob.expect(public_line("alice", &whole)).await;
}

#[tokio::test]
async fn observers_are_read_only() {
    let (addr, _server) = spawn_server(ServerConfig::default()).await;
    let mut alice = Peer::participant(addr, "alice").await;
    let mut observer = Peer::observer(addr, "observer").await;
    observer.chat("can anyone hear me?").await;
    // The warning means the room has taken the observer's line; whatever
    // it sent alice for it is queued ahead of anything the room does next.
    observer.expect(observers_only_read()).await;
    let mut bob = Peer::participant(addr, "bob").await;
    // So alice's next frame is bob's arrival, not the observer's line.
    alice.expect(joined("bob")).await;
    alice.chat("ping").await;
    observer.expect(joined("bob")).await;
    observer.expect(public_line("alice", "ping")).await;
    bob.expect(public_line("alice", "ping")).await;
}

#[tokio::test]
async fn capacity_is_255_of_each_and_a_freed_slot_is_reusable() {
    let (addr, _server) = spawn_server(ServerConfig::default()).await;
    let mut participants = Peer::crowd(addr, Role::Participant, MAX_PARTICIPANTS).await;
    let mut observers = Peer::crowd(addr, Role::Observer, MAX_OBSERVERS).await;
    for role in [Role::Participant, Role::Observer] {
        let mut extra = Peer::connect("extra", addr).await;
        extra.send(&ClientFrame::Hello(role)).await;
        assert_eq!(
            extra.until_closed().await,
            vec![ServerFrame::Full],
            "{role:?}"
        );
    }
    // A participant's slot frees when the room forgets it, which it
    // announces: once an observer has heard the departure, the next Hello
    // is admitted, first time.
    drop(participants.pop());
    observers[0].expect(left("Anonymous")).await;
    let mut again = Peer::connect("again", addr).await;
    again.hello(Role::Participant).await;
    // An observer leaves silently, so its freed slot is looked for until
    // it comes back: within one generous deadline, however slowly the
    // server sees the close.
    drop(observers.pop());
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let mut again = Peer::connect("again", addr).await;
        again.send(&ClientFrame::Hello(Role::Observer)).await;
        match again.recv().await {
            ServerFrame::Accepted => break,
            ServerFrame::Full => assert!(
                tokio::time::Instant::now() < deadline,
                "the freed observer slot was not reusable within {PATIENCE:?}"
            ),
            other => panic!("unexpected {other:?}"),
        }
    }
    drop(participants);
}

#[tokio::test]
async fn hostile_lengths_get_a_protocol_error_and_the_server_keeps_serving() {
    let (addr, _server) = spawn_server(ServerConfig::default()).await;
    let mut alice = Peer::participant(addr, "alice").await;
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
        // A `Hello` with trailing bytes, or with its index padded (the
        // issue's bytes): longer than any `Hello`, refused at the header.
        (
            &[0, 0, 0, 3, 0, 0, 0][..],
            "frame length 3 exceeds the limit of 2 bytes before Hello",
        ),
        (
            &[0, 0, 0, 3, 0x80, 0, 0][..],
            "frame length 3 exceeds the limit of 2 bytes before Hello",
        ),
    ] {
        let mut hostile = Peer::connect("hostile", addr).await;
        hostile.send_raw(bytes).await;
        assert_eq!(
            hostile.until_closed().await,
            vec![ServerFrame::ProtocolError(reason.into())]
        );
    }
    // From a member, whose frames may be longer: `Chat("")` with a byte
    // after it, and `Chat("hi")` with its length padded to two bytes.
    for (bytes, reason) in [
        (
            &[0u8, 0, 0, 3, 2, 0, 0][..],
            "undecodable payload: trailing bytes after the message",
        ),
        (
            &[0, 0, 0, 5, 2, 0x82, 0, b'h', b'i'][..],
            "undecodable payload: overlong varint",
        ),
    ] {
        let mut hostile = Peer::connect("hostile", addr).await;
        hostile.hello(Role::Observer).await;
        hostile.send_raw(bytes).await;
        assert_eq!(
            hostile.until_closed().await,
            vec![ServerFrame::ProtocolError(reason.into())]
        );
    }
    // A named participant that breaks the framing is announced as left.
    let mut mallory = Peer::participant(addr, "mallory").await;
    alice.expect(joined("mallory")).await;
    mallory.send_raw(&[0, 0, 0, 4, 2, 2, 0xff, 0xfe]).await;
    assert_eq!(
        mallory.until_closed().await,
        vec![ServerFrame::ProtocolError(
            "undecodable payload: invalid UTF-8 in a string".into()
        )]
    );
    alice.expect(left("mallory")).await;
    let mut bob = Peer::participant(addr, "bob").await;
    alice.expect(joined("bob")).await;
    bob.chat("all good").await;
    alice.expect(public_line("bob", "all good")).await;
}

#[tokio::test]
async fn disconnect_mid_frame_delivers_nothing_partial_and_announces_the_leave() {
    let (addr, _server) = spawn_server(ServerConfig::default()).await;
    let mut observer = Peer::observer(addr, "observer").await;
    let whole = frame_bytes(&ClientFrame::Chat("never seen".into()));
    for (i, cut) in [2, 4, whole.len() - 1].into_iter().enumerate() {
        let name = format!("cut{i}");
        let mut quitter = Peer::participant(addr, &name).await;
        observer.expect(joined(&name)).await;
        quitter.send_raw(&whole[..cut]).await;
        drop(quitter);
        observer.expect(left(&name)).await;
    }
}

#[tokio::test]
async fn never_reading_client_is_dropped_and_others_get_every_message() {
    // Flood control off: the sender must outrun the kernel's buffers.
    let (addr, _server) = spawn_server(unthrottled()).await;
    let mut reader = Peer::participant(addr, "reader").await;
    // The sloth never reads; a small receive buffer makes its queue fill
    // after fewer messages.
    let sloth = {
        let mut peer = Peer::new("sloth", socket_with_small_receive_buffer(addr).await);
        peer.send(&ClientFrame::Hello(Role::Participant)).await;
        peer.send(&ClientFrame::Username("sloth".into())).await;
        peer
    };
    reader.expect(joined("sloth")).await;
    let mut sender = Peer::participant(addr, "sender").await;
    reader.expect(joined("sender")).await;

    let line = "z".repeat(MAX_MESSAGE_CHARS);
    let delivered = public_line("sender", &line);
    let mut sent = 0;
    let mut dropped = false;
    // At least 3,000 messages of 1000 characters; keep going (bounded) until
    // the sloth's queue overflows past the kernel's socket buffers.
    while sent < 20_000 && !(dropped && sent >= 3_000) {
        for _ in 0..500 {
            sender.chat(&line).await;
            sent += 1;
        }
        for _ in 0..500 {
            let frame = reader.recv().await;
            if frame == left("sloth") {
                dropped = true;
                assert_eq!(reader.recv().await, delivered);
            } else {
                assert_eq!(frame, delivered);
            }
        }
    }
    assert!(
        dropped,
        "the never-reading client was not dropped after {sent} messages"
    );
    drop(sloth);
    // Still serving.
    sender.chat("after").await;
    reader.expect(public_line("sender", "after")).await;
}

#[tokio::test]
async fn silent_connection_is_closed_at_the_hello_timeout() {
    let mut config = ServerConfig::default();
    config.room.hello_timeout = Duration::from_millis(500);
    let (addr, _server) = spawn_server(config).await;
    let mut silent = Peer::connect("silent", addr).await;
    assert_eq!(
        silent.until_closed().await,
        vec![no_hello_within(Duration::from_millis(500))]
    );
}

#[tokio::test]
async fn shutdown_notifies_everyone() {
    let (addr, server) = spawn_server(ServerConfig::default()).await;
    let mut alice = Peer::participant(addr, "alice").await;
    let mut observer = Peer::observer(addr, "observer").await;
    server.shut_down().await;
    assert_eq!(alice.until_closed().await, vec![shutdown_notice()]);
    assert_eq!(observer.until_closed().await, vec![shutdown_notice()]);
}

/// The binary's part of a shutdown: SIGTERM reaches `serve`, and the
/// process exits 0 once every client was told.
#[tokio::test]
async fn sigterm_notifies_everyone_and_exits_zero() {
    let mut server = Server::start(&[]);
    let mut alice = Peer::participant(server.addr, "alice").await;
    let status = server.signal_and_wait("TERM");
    assert!(status.success(), "{status:?}");
    assert_eq!(alice.until_closed().await, vec![shutdown_notice()]);
}

/// `--ip` takes IPv6 addresses and host names (the binary resolves them).
#[tokio::test]
async fn listens_on_ipv6_and_host_names() {
    for ip in ["::1", "localhost"] {
        let server = Server::start_on(ip, &[]);
        let mut peer = Peer::observer(server.addr, ip).await;
        let _alice = Peer::participant(server.addr, "alice").await;
        peer.expect(joined("alice")).await;
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

async fn socket_with_small_receive_buffer(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(addr).await.unwrap()
}

/// `--log-format json`: one JSON object a line; a connection's events
/// carry its id and its peer address, the room's included (the room
/// itself knows only the id).
#[tokio::test]
async fn json_logs_name_the_connection_and_its_peer() {
    let (server, _) = Server::start_logging(
        &["--ip", "127.0.0.1", "--port", "0", "--log-format", "json"],
        1,
        "info",
    );
    let mut alice = Peer::participant(server.addr, "alice").await;
    let local = alice.stream().local_addr().expect("alice's address");
    let line = server.log_line(|line| line.contains("\"joined\""));
    let event: serde_json::Value = serde_json::from_str(&line).expect("a JSON object");
    assert_eq!(event["message"], "joined");
    assert_eq!(event["user"], "alice");
    assert_eq!(event["level"], "INFO");
    assert!(event["conn"].is_u64(), "{line}");
    assert_eq!(event["peer"], local.to_string(), "{line}");
    let conn = event["conn"].clone();
    // Her leaving, logged by the room as her socket closes, too.
    drop(alice);
    let line = server.log_line(|line| line.contains("\"left\""));
    let event: serde_json::Value = serde_json::from_str(&line).expect("a JSON object");
    assert_eq!(event["conn"], conn, "{line}");
    assert_eq!(event["peer"], local.to_string(), "{line}");
}

/// SIGHUP without TLS: nothing to reload, and the server goes on (the
/// signal's default would have ended it).
#[tokio::test]
async fn sighup_without_tls_changes_nothing() {
    let mut server = Server::start(&[]);
    let status = Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let mut alice = Peer::participant(server.addr, "alice").await;
    alice.chat("still up").await;
    assert!(server.child.try_wait().expect("try_wait").is_none());
    assert!(server.signal_and_wait("TERM").success());
}

/// `--metrics`: the binary serves the figures on a port of its own, and
/// they agree with what the room did.
#[tokio::test]
async fn the_binary_serves_metrics_on_a_port_of_its_own() {
    let (server, addrs) = Server::start_listening(
        &[
            "--ip",
            "127.0.0.1",
            "--port",
            "0",
            "--metrics",
            "127.0.0.1:0",
        ],
        2,
    );
    assert_ne!(addrs[0], addrs[1]);
    let mut alice = Peer::participant(server.addr, "alice").await;
    let mut bob = Peer::participant(server.addr, "bob").await;
    alice.expect(joined("bob")).await;
    alice.chat("hi").await;
    bob.expect(public_line("alice", "hi")).await;
    // One thread (the default): the room's turn, which publishes the
    // figures at its end, is over before any connection task writes what
    // it queued, so bob holding the line means it is counted.
    let figures = testkit::metrics::scrape(addrs[1]).await;
    assert_eq!(figures.count("logosnet_deliveries_total", &[]), 1);
    assert_eq!(
        figures.count("logosnet_lines_total", &[("kind", "public")]),
        1
    );
    assert_eq!(
        figures.count("logosnet_connections", &[("state", "participant")]),
        2
    );
    assert!(figures.value("process_resident_memory_bytes", &[]) > 0.0);
}
