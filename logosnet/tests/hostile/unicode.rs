//! Hostile text end to end: invalid UTF-8, embedded NUL, names of
//! combining marks, bidirectional overrides or blank characters, names that
//! differ only by Unicode normalization or by case, look-alikes of an
//! active name and of `Anonymous`, names that imitate a room line, against
//! the rule in `logosnet::username`, each refusal with its reason.

use std::time::Duration;

use logosnet::protocol::{
    ClientFrame, Role, ServerFrame, invalid_username, is_name_refusal, joined, left, name_reserved,
    name_too_similar, private_line, public_line,
};
use logosnet::room::MAX_REFUSED_NAMES;
use logosnet::server::ServerConfig;
use logosnet::username::{ANONYMOUS, UsernameError};
use testkit::{Peer, spawn_server};

use crate::server_process::bounded;

/// Every one is refused by the username rule as invalid.
fn deceptive_names() -> Vec<(&'static str, String)> {
    vec![
        ("ten combining marks", "\u{301}".repeat(10)),
        ("ten right-to-left overrides", "\u{202e}".repeat(10)),
        ("an override hiding a name", "\u{202e}nimda".to_owned()),
        ("an embedded NUL", "ad\0min".to_owned()),
        ("a terminal escape", "\u{1b}[2Jbob".to_owned()),
        ("a zero-width space", "bo\u{200b}b".to_owned()),
        ("a trailing variation selector", "bob\u{fe0f}".to_owned()),
        ("a combining grapheme joiner", "bo\u{34f}b".to_owned()),
        (
            "only Hangul fillers",
            "\u{3164}\u{115f}\u{1160}\u{ffa0}".to_owned(),
        ),
        ("only Braille blanks", "\u{2800}".repeat(10)),
        ("a line break", "bob\nalice".to_owned()),
        ("eleven characters", "abcdefghijk".to_owned()),
        ("nothing", String::new()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deceptive_names_are_refused_and_normalization_twins_collide() {
    let (addr, _server) = spawn_server(ServerConfig::default()).await;
    bounded(Duration::from_secs(120), async {
        // "josé" with a precomposed é is accepted and announced as typed.
        let mut jose = Peer::participant(addr, "jos\u{e9}").await;

        let mut other = Peer::connect("other", addr).await;
        other.hello(Role::Participant).await;
        // The same name spelled e + combining acute is the same name.
        other
            .send(&ClientFrame::Username("jose\u{301}".into()))
            .await;
        assert_eq!(other.recv().await, ServerFrame::UsernameTaken);
        // A connection may be refused only so many names: a fresh one for
        // each batch, kept open so that no departure reaches josé.
        let names = deceptive_names();
        let mut testers = Vec::new();
        for batch in names.chunks(MAX_REFUSED_NAMES as usize) {
            let mut tester = Peer::connect("tester", addr).await;
            tester.hello(Role::Participant).await;
            for (what, name) in batch {
                tester.send(&ClientFrame::Username(name.clone())).await;
                let reason = tester.recv().await;
                assert!(
                    reason.text().is_some_and(is_name_refusal),
                    "a name with {what}: {reason:?}"
                );
                assert_eq!(
                    tester.recv().await,
                    ServerFrame::UsernameInvalid,
                    "a name with {what}"
                );
            }
            testers.push(tester);
        }
        // A base letter carrying marks is a visible name; it is stored and
        // shown in NFC (a + U+0301 becomes á).
        other
            .send(&ClientFrame::Username("a\u{301}\u{302}\u{303}".into()))
            .await;
        assert_eq!(other.recv().await, ServerFrame::UsernameAccepted);
        let joined = joined("\u{e1}\u{302}\u{303}");
        assert_eq!(other.recv().await, joined);
        assert_eq!(jose.recv().await, joined);

        // A private line addressed in the other spelling reaches josé.
        other
            .send(&ClientFrame::Chat("@jose\u{301} psst".into()))
            .await;
        assert_eq!(
            jose.recv().await,
            private_line("\u{e1}\u{302}\u{303}", "@jose\u{301} psst")
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_is_a_violation_and_nul_or_escapes_in_chat_pass_through_unchanged() {
    let (addr, _server) = spawn_server(ServerConfig::default()).await;
    bounded(Duration::from_secs(120), async {
        let mut watcher = Peer::observer(addr, "watcher").await;
        let mut alice = Peer::participant(addr, "alice").await;
        watcher.recv_until(&joined("alice")).await;

        // Chat text is delivered byte for byte, NUL and escapes included:
        // the server frames it, and the receiving client escapes control
        // characters before showing it (see SECURITY.md).
        let line = "nul\0here \u{1b}[2J\u{202e}txet";
        alice.send(&ClientFrame::Chat(line.into())).await;
        assert_eq!(watcher.recv().await, public_line("alice", line));

        // A Username whose string is not UTF-8 (Username, length 2, ff fe):
        // a protocol violation, the connection is told why and closed, and
        // the unnamed participant's departure is announced.
        let mut bad = Peer::connect("bad", addr).await;
        bad.hello(Role::Participant).await;
        bad.send_raw(&[0, 0, 0, 4, 1, 2, 0xff, 0xfe]).await;
        assert_eq!(
            bad.until_closed().await,
            vec![ServerFrame::ProtocolError(
                "undecodable payload: invalid UTF-8 in a string".into()
            )]
        );
        watcher.recv_until(&left("Anonymous")).await;

        // The same inside a Chat from an active participant: closed, and its
        // name is freed and announced.
        alice.send_raw(&[0, 0, 0, 5, 2, 3, b'a', 0xc3, 0x28]).await;
        let frames = alice.until_closed().await;
        assert_eq!(
            frames.last(),
            Some(&ServerFrame::ProtocolError(
                "undecodable payload: invalid UTF-8 in a string".into()
            ))
        );
        watcher.recv_until(&left("alice")).await;

        // The server is still serving, and the name is free again.
        Peer::participant(addr, "alice").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn look_alikes_of_an_active_name_and_of_anonymous_are_taken() {
    let (addr, _server) = spawn_server(ServerConfig::default()).await;
    bounded(Duration::from_secs(120), async {
        let mut alice = Peer::participant(addr, "alice").await;

        let mut other = Peer::connect("other", addr).await;
        other.hello(Role::Participant).await;
        let similar = name_too_similar("alice");
        for (what, name, reason) in [
            ("Cyrillic a", "\u{430}lice", Some(&similar)),
            ("a digit one", "a1ice", Some(&similar)),
            (
                "full-width letters",
                "\u{ff41}\u{ff4c}\u{ff49}\u{ff43}\u{ff45}",
                Some(&similar),
            ),
            ("another case", "Alice", None),
            ("capitals", "ALICE", None),
            (
                "the reserved name",
                "Anonymous",
                Some(&name_reserved(ANONYMOUS)),
            ),
            (
                "the reserved name in capitals",
                "ANONYMOUS",
                Some(&name_reserved(ANONYMOUS)),
            ),
            (
                "the reserved name with Cyrillic o",
                "an\u{43e}nymous",
                Some(&name_reserved(ANONYMOUS)),
            ),
        ] {
            other.send(&ClientFrame::Username(name.into())).await;
            if let Some(reason) = reason {
                assert_eq!(&other.recv().await, reason, "{what}");
            }
            assert_eq!(other.recv().await, ServerFrame::UsernameTaken, "{what}");
        }
        // A blank name is invalid, not taken; so are names that would
        // imitate a room line or could not be addressed.
        let mut third = Peer::connect("third", addr).await;
        third.hello(Role::Participant).await;
        for (name, broken) in [
            ("\u{3164}", UsernameError::Invisible('\u{3164}')),
            ("@bob", UsernameError::StartsWithAt('@')),
            (">bob:", UsernameError::LinePrefix('>')),
            ("bob:", UsernameError::Colon(':')),
        ] {
            third.send(&ClientFrame::Username(name.into())).await;
            assert_eq!(third.recv().await, invalid_username(broken), "{name:?}");
            assert_eq!(third.recv().await, ServerFrame::UsernameInvalid, "{name:?}");
        }

        // A different name is accepted; a private line to `Alice` reaches
        // alice.
        other.send(&ClientFrame::Username("bob".into())).await;
        assert_eq!(other.recv().await, ServerFrame::UsernameAccepted);
        assert_eq!(alice.recv().await, joined("bob"));
        other.send(&ClientFrame::Chat("@Alice hi".into())).await;
        assert_eq!(alice.recv().await, private_line("bob", "@Alice hi"));

        // Once alice leaves, her look-alike is free, and shown as typed.
        drop(alice);
        other.recv_until(&left("alice")).await;
        Peer::participant(addr, "\u{430}lice").await;
    })
    .await;
}
