//! The named scenarios of issue 4, one test each, asserting exact frames.
//!
//! Each test builds a [`World`], adds client hosts whose scripts assert on
//! every frame they receive, and runs it. "Nothing else arrived" is shown
//! with a sentinel: a later frame that must be the very next one received.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use logosnet::protocol::{ClientFrame, Role, ServerFrame};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::harness::{Got, PieceSize, SERVER, SimClient, World, observer, participant};

const SEED: u64 = 4;

/// Asserts that `at` lies in `[from, from + slack]`.
fn assert_between(what: &str, at: Instant, from: Instant, slack: Duration) {
    assert!(
        at >= from && at <= from + slack,
        "{what}: happened {:?} after the mark, expected within {slack:?} after it",
        at.checked_duration_since(from)
            .map_or_else(|| format!("-{:?}", from - at), |d| format!("{d:?}")),
    );
}

/// 1. The whole happy path.
#[test]
fn happy_path_join_chat_private_leave() {
    let mut run = World::new(SEED).build();
    let log = run.log.clone();
    run.sim.client("clients", async move {
        let mut watcher = observer("watcher", &log).await;
        let mut alice = participant("alice", &log).await;
        watcher.expect_notice("User alice has joined").await;
        let mut bob = participant("bob", &log).await;
        alice.expect_notice("User bob has joined").await;
        watcher.expect_notice("User bob has joined").await;

        alice.chat("hello").await;
        bob.expect_message(">      alice: hello").await;
        watcher.expect_message(">      alice: hello").await;

        bob.chat("@alice psst").await;
        alice.expect_message("%        bob: @alice psst").await;

        bob.leave();
        alice.expect_notice("User bob has left").await;
        watcher.expect_notice("User bob has left").await;
        // The sender never got its own line back, nor anyone the private one.
        alice.expect_quiet(Duration::from_secs(1)).await;
        watcher.expect_quiet(Duration::from_secs(1)).await;
        Ok(())
    });
    run.run();
}

/// 2. Frames in pieces of at most `cap` bytes in both directions: the
/// server reads and writes through a capped stream, the clients write each
/// frame in `cap`-byte pieces a tick apart and read through a capped stream.
fn pieces_scenario(server: PieceSize, client_read: PieceSize, client_write: usize, cap: usize) {
    let mut world = World::new(SEED);
    world.pieces = server;
    let mut run = world.build();
    let log = run.log.clone();
    run.sim.client("clients", async move {
        let connect = |label: &'static str| {
            let log = log.clone();
            async move {
                SimClient::connect_with(label, &log, client_read, Some(client_write))
                    .await
                    .expect("connect")
            }
        };
        let mut watcher = connect("watcher").await;
        watcher.hello(Role::Observer).await;
        let mut alice = connect("alice").await;
        alice.join("alice").await;
        watcher.expect_notice("User alice has joined").await;
        let mut zoe = connect("zoë").await;
        zoe.join("zoë").await;
        alice.expect_notice("User zoë has joined").await;
        watcher.expect_notice("User zoë has joined").await;

        alice.chat("héllo wörld 🦀").await;
        zoe.expect_message(">      alice: héllo wörld 🦀").await;
        watcher.expect_message(">      alice: héllo wörld 🦀").await;
        zoe.chat("@alice ça va?").await;
        alice.expect_message("%        zoë: @alice ça va?").await;
        zoe.leave();
        alice.expect_notice("User zoë has left").await;
        watcher.expect_notice("User zoë has left").await;
        Ok(())
    });
    let stats = run.stats.clone();
    run.run();
    let stats = stats.lock().unwrap();
    assert!(stats.reads > 20, "the server read only {} pieces", stats.reads);
    assert!(stats.max_read <= cap, "server read {} bytes", stats.max_read);
    assert!(stats.max_write <= cap, "server wrote {} bytes", stats.max_write);
}

#[test]
fn two_byte_pieces_both_ways() {
    pieces_scenario(PieceSize::AtMost(2), PieceSize::AtMost(2), 2, 2);
}

#[test]
fn one_byte_pieces_both_ways() {
    pieces_scenario(PieceSize::AtMost(1), PieceSize::AtMost(1), 1, 1);
}

#[test]
fn random_pieces_both_ways() {
    let random = PieceSize::Random { max: 7 };
    pieces_scenario(random, random, 3, 7);
}

/// 3. A participant that disconnects after 2 header bytes, after the
/// header, and in the middle of the payload: nothing partial is delivered
/// and the room hears that it left.
#[test]
fn disconnect_mid_frame_delivers_nothing_partial() {
    let mut run = World::new(SEED).build();
    let log = run.log.clone();
    run.sim.client("clients", async move {
        let mut watcher = observer("watcher", &log).await;
        let mut alice = participant("alice", &log).await;
        watcher.expect_notice("User alice has joined").await;
        let frame = logosnet::protocol::encode(&ClientFrame::Chat("secret words".into()));
        for (name, cut) in [("dan2", 2), ("dan4", 4), ("dan9", 9)] {
            let mut dan = participant(name, &log).await;
            alice.expect_notice(&format!("User {name} has joined")).await;
            watcher.expect_notice(&format!("User {name} has joined")).await;
            dan.send_raw(&frame[..cut]).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            dan.leave();
            alice.expect_notice(&format!("User {name} has left")).await;
            watcher.expect_notice(&format!("User {name} has left")).await;
        }
        alice.chat("still here").await;
        watcher.expect_message(">      alice: still here").await;
        alice.expect_quiet(Duration::from_secs(1)).await;
        Ok(())
    });
    run.run();
}

/// 4. The 60 s username timeout, in simulated time.
#[test]
fn username_timeout_after_sixty_seconds() {
    let mut run = World::timers(SEED, Duration::from_secs(90)).build();
    let log = run.log.clone();
    run.sim.client("clients", async move {
        let mut watcher = observer("watcher", &log).await;
        let mut slow = SimClient::connect("slow", &log).await;
        let start = Instant::now();
        slow.hello(Role::Participant).await;
        // Still connected at 59.9 s: a chat before naming is answered.
        tokio::time::sleep_until(start + Duration::from_millis(59_900)).await;
        slow.chat("still here?").await;
        slow.expect_notice("Warning: choose a username before chatting")
            .await;
        slow.expect(ServerFrame::UsernameTimeout).await;
        assert_between(
            "UsernameTimeout",
            Instant::now(),
            start + Duration::from_secs(60),
            Duration::from_millis(100),
        );
        slow.expect_closed().await;
        watcher.expect_notice("User Anonymous has left").await;
        Ok(())
    });
    run.run();
}

/// 5. Every refused name restarts the 60 s: `UsernameInvalid` at 50 s and
/// `UsernameTaken` at 100 s leave the connection alive at 159 s and timed
/// out at 160 s.
#[test]
fn refused_names_restart_the_timer() {
    let mut run = World::timers(SEED, Duration::from_secs(200)).build();
    let log = run.log.clone();
    run.sim.client("clients", async move {
        let _bob = participant("bob", &log).await;
        let mut carl = SimClient::connect("carl", &log).await;
        let start = Instant::now();
        carl.hello(Role::Participant).await;
        tokio::time::sleep_until(start + Duration::from_secs(50)).await;
        carl.send(&ClientFrame::Username("not valid".into())).await;
        carl.expect(ServerFrame::UsernameInvalid).await;
        tokio::time::sleep_until(start + Duration::from_secs(100)).await;
        carl.send(&ClientFrame::Username("bob".into())).await;
        carl.expect(ServerFrame::UsernameTaken).await;
        tokio::time::sleep_until(start + Duration::from_secs(159)).await;
        carl.chat("alive?").await;
        carl.expect_notice("Warning: choose a username before chatting")
            .await;
        carl.expect(ServerFrame::UsernameTimeout).await;
        assert_between(
            "UsernameTimeout",
            Instant::now(),
            start + Duration::from_secs(160),
            Duration::from_millis(100),
        );
        carl.expect_closed().await;
        Ok(())
    });
    run.run();
}

/// 6. A connection that never says Hello is closed after 60 s.
#[test]
fn silent_connection_gets_hello_timeout() {
    let mut run = World::timers(SEED, Duration::from_secs(90)).build();
    let log = run.log.clone();
    run.sim.client("clients", async move {
        let mut mute = SimClient::connect("mute", &log).await;
        let start = Instant::now();
        mute.expect_quiet(Duration::from_millis(59_900)).await;
        mute.expect(ServerFrame::ProtocolError("no Hello within 60 s".into()))
            .await;
        assert_between(
            "hello timeout",
            Instant::now(),
            start + Duration::from_secs(60),
            Duration::from_millis(100),
        );
        mute.expect_closed().await;
        Ok(())
    });
    run.run();
}

/// Connects `count` clients at once from one host and says `Hello(role)`
/// on each; returns them in label order.
async fn crowd(prefix: &str, count: usize, role: Role, log: &crate::harness::EventLog) -> Vec<SimClient> {
    let mut set = JoinSet::new();
    for i in 0..count {
        let (label, log) = (format!("{prefix}{i:03}"), log.clone());
        set.spawn(async move {
            let mut client = SimClient::connect(&label, &log).await;
            client.hello(role).await;
            (i, client)
        });
    }
    let mut clients: Vec<(usize, SimClient)> = set.join_all().await;
    clients.sort_by_key(|(i, _)| *i);
    clients.into_iter().map(|(_, c)| c).collect()
}

/// 7. 255 participants and 255 observers fill the room; the 256th of each
/// gets `Full` and is closed; a freed slot is taken at once.
#[test]
fn full_room_refuses_the_256th_of_each_role() {
    let mut world = World::new(SEED);
    world.tcp_capacity = 1024;
    let mut run = world.build();
    let log = run.log.clone();
    run.sim.client("crowd", async move {
        let mut players = crowd("p", 255, Role::Participant, &log).await;
        let mut watchers = crowd("o", 255, Role::Observer, &log).await;
        for role in [Role::Participant, Role::Observer] {
            let mut extra = SimClient::connect("extra", &log).await;
            extra.send(&ClientFrame::Hello(role)).await;
            extra.expect(ServerFrame::Full).await;
            extra.expect_closed().await;
        }
        // A participant leaves: every observer hears it, and its slot is
        // free for the very next Hello.
        players.remove(0).leave();
        for w in &mut watchers {
            w.expect_notice("User Anonymous has left").await;
        }
        let mut late = SimClient::connect("late-p", &log).await;
        late.hello(Role::Participant).await;
        // An observer leaves (silently): the next observer is admitted at
        // once, and the one after is refused again.
        watchers.remove(0).leave();
        let mut late_o = SimClient::connect("late-o", &log).await;
        late_o.hello(Role::Observer).await;
        for role in [Role::Participant, Role::Observer] {
            let mut extra = SimClient::connect("extra2", &log).await;
            extra.send(&ClientFrame::Hello(role)).await;
            extra.expect(ServerFrame::Full).await;
            extra.expect_closed().await;
        }
        drop((players, watchers, late, late_o));
        Ok(())
    });
    run.run();
}

/// 8. Two participants ask for the same free name in the same tick: exactly
/// one wins, whatever the seed.
#[test]
fn same_name_in_the_same_tick_has_one_winner() {
    for seed in 0..6 {
        let mut run = World::new(seed).build();
        let log = run.log.clone();
        run.sim.client("clients", async move {
            let mut watcher = observer("watcher", &log).await;
            let mut a = SimClient::connect("a", &log).await;
            let mut b = SimClient::connect("b", &log).await;
            a.hello(Role::Participant).await;
            b.hello(Role::Participant).await;
            let before = Instant::now();
            let claim = ClientFrame::Username("zed".into());
            if seed % 2 == 0 {
                a.send(&claim).await;
                b.send(&claim).await;
            } else {
                b.send(&claim).await;
                a.send(&claim).await;
            }
            assert_eq!(Instant::now(), before, "both claims left in one tick");
            let replies = [a.next(Duration::from_secs(1)).await, b.next(Duration::from_secs(1)).await];
            let won = Got::Frame(ServerFrame::UsernameAccepted);
            let lost = Got::Frame(ServerFrame::UsernameTaken);
            assert!(
                replies == [won.clone(), lost.clone()] || replies == [lost, won],
                "seed {seed}: {replies:?}"
            );
            watcher.expect_notice("User zed has joined").await;
            watcher.expect_quiet(Duration::from_secs(1)).await;
            Ok(())
        });
        run.run();
    }
}

/// 9. Private messages reach their target and nobody else: not a third
/// participant, not an observer, not the sender.
#[test]
fn private_messages_reach_only_their_target() {
    let mut run = World::new(SEED).build();
    let log = run.log.clone();
    run.sim.client("clients", async move {
        let mut watcher = observer("watcher", &log).await;
        let mut alice = participant("alice", &log).await;
        let mut bob = participant("bob", &log).await;
        let mut carol = participant("carol", &log).await;
        for (c, joins) in [
            (&mut watcher, &["alice", "bob", "carol"][..]),
            (&mut alice, &["bob", "carol"][..]),
            (&mut bob, &["carol"][..]),
        ] {
            for name in joins {
                c.expect_notice(&format!("User {name} has joined")).await;
            }
        }
        alice.chat("@bob meet at noon").await;
        bob.expect_message("%      alice: @bob meet at noon").await;
        carol.chat("@alice just you").await;
        alice.expect_message("%      carol: @alice just you").await;
        alice.chat("@nobody hello").await;
        alice.expect_notice("Warning: user nobody doesn't exist").await;
        alice.chat("@bob").await;
        alice
            .expect_notice("Warning: a private message needs a space after the name: @name text")
            .await;
        // The sentinel must be the very next frame for everyone else.
        alice.chat("sentinel").await;
        bob.expect_message(">      alice: sentinel").await;
        carol.expect_message(">      alice: sentinel").await;
        watcher.expect_message(">      alice: sentinel").await;
        alice.expect_quiet(Duration::from_secs(1)).await;
        Ok(())
    });
    run.run();
}

/// The public line `sender` sends as its `i`-th message in the partition
/// scenarios.
fn numbered(sender: &str, i: usize) -> String {
    format!("{sender} says {i}")
}

/// 10a. The link between one client and the server is held: everyone else
/// keeps chatting without delay; on release the held client gets every
/// frame it is owed, in order.
#[test]
fn held_client_gets_what_it_is_owed_after_release() {
    let mut world = World::new(SEED);
    world.duration = Duration::from_secs(30);
    let mut run = world.build();
    let log = run.log.clone();
    let released: Arc<Mutex<Option<Instant>>> = Arc::default();
    let released_seen = released.clone();
    let carol_log = log.clone();
    run.sim.client("held", async move {
        let mut carol = participant("carol", &carol_log).await;
        let mut expected = vec![
            ServerFrame::Notice("User alice has joined".into()),
            ServerFrame::Notice("User bob has joined".into()),
        ];
        for i in 0..10 {
            expected.push(ServerFrame::Message(format!("> {:>10}: {}", "alice", numbered("alice", i))));
            expected.push(ServerFrame::Message(format!("> {:>10}: {}", "bob", numbered("bob", i))));
        }
        for (i, frame) in expected.into_iter().enumerate() {
            let got = carol.next(Duration::from_secs(20)).await;
            assert_eq!(got, Got::Frame(frame), "carol's frame {i}");
            if i >= 2 {
                let release = released_seen.lock().unwrap().expect("released");
                assert!(Instant::now() >= release, "a held frame arrived early");
            }
        }
        carol.expect_quiet(Duration::from_secs(1)).await;
        Ok(())
    });
    run.sim.client("others", async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut alice = participant("alice", &log).await;
        let mut bob = participant("bob", &log).await;
        alice.expect_notice("User bob has joined").await;
        turmoil::hold("held", SERVER);
        log.record("fault", format_args!("hold held <-> server"));
        for i in 0..10 {
            for name in ["alice", "bob"] {
                let (from, to) = if name == "alice" {
                    (&mut alice, &mut bob)
                } else {
                    (&mut bob, &mut alice)
                };
                let line = numbered(name, i);
                let sent = Instant::now();
                from.chat(&line).await;
                to.expect_message(&format!("> {name:>10}: {line}")).await;
                assert!(
                    sent.elapsed() <= Duration::from_millis(10),
                    "delayed by the held client"
                );
            }
        }
        turmoil::release("held", SERVER);
        log.record("fault", format_args!("release held <-> server"));
        *released.lock().unwrap() = Some(Instant::now());
        // Nothing else arrives until carol, served in full, hangs up.
        alice.expect_notice("User carol has left").await;
        bob.expect_notice("User carol has left").await;
        Ok(())
    });
    run.run();
}
