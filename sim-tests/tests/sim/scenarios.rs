//! The named scenarios of issue 4, one test each, asserting exact frames.
//!
//! Each test builds a [`World`], adds client hosts whose scripts assert on
//! every frame they receive, and runs it. "Nothing else arrived" is shown
//! with a sentinel: a later frame that must be the very next one received.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use logosnet::protocol::invalid_username;
use logosnet::protocol::{
    ClientFrame, MAX_MESSAGE_CHARS, MAX_OBSERVERS, MAX_PARTICIPANTS, Role, ServerFrame,
    choose_a_username_first, joined, left, no_hello_within, no_such_user, observers_only_read,
    private_line, private_needs_a_space, public_line, too_far_behind, too_long_warning,
};
use logosnet::server::HOLD_BUDGET;
use logosnet::username::UsernameError;
use testkit::peer::frame_bytes as encode;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::harness::{
    Got, PieceSize, SERVER, SimClient, World, connect, connect_with, observer, participant,
};

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

/// Scenario 1: The whole happy path.
#[test]
fn happy_path_join_chat_private_leave() {
    World::new(SEED).run_script(|log| async move {
        let mut watcher = observer("watcher", &log).await;
        let mut alice = participant("alice", &log).await;
        watcher.expect(joined("alice")).await;
        let mut bob = participant("bob", &log).await;
        alice.expect(joined("bob")).await;
        watcher.expect(joined("bob")).await;

        alice.chat("hello").await;
        bob.expect(public_line("alice", "hello")).await;
        watcher.expect(public_line("alice", "hello")).await;

        bob.chat("@alice psst").await;
        alice.expect(private_line("bob", "@alice psst")).await;

        // Three frames in one write: one segment, one server read.
        let lines = ["one", "@alice two", "three"].map(|l| ClientFrame::Chat(l.into()));
        bob.send_batch(&lines).await;
        alice.expect(public_line("bob", "one")).await;
        alice.expect(private_line("bob", "@alice two")).await;
        alice.expect(public_line("bob", "three")).await;
        watcher.expect(public_line("bob", "one")).await;
        watcher.expect(public_line("bob", "three")).await;

        bob.leave();
        alice.expect(left("bob")).await;
        watcher.expect(left("bob")).await;
        // The sender never got its own line back, nor anyone the private one.
        alice.expect_quiet(Duration::from_secs(1)).await;
        watcher.expect_quiet(Duration::from_secs(1)).await;
        Ok(())
    });
}

/// Scenario 2: Frames in pieces of at most `cap` bytes in both directions: the
/// server reads and writes through a capped stream, the clients write each
/// frame in `cap`-byte pieces a tick apart and read through a capped stream.
fn pieces_scenario(server: PieceSize, client_read: PieceSize, client_write: usize, cap: usize) {
    let mut world = World::new(SEED);
    world.pieces = server;
    let stats = world.run_script(|log| async move {
        let connect = |label: &'static str| {
            let log = log.clone();
            async move {
                connect_with(label, &log, client_read, Some(client_write))
                    .await
                    .expect("connect")
            }
        };
        let mut watcher = connect("watcher").await;
        watcher.hello(Role::Observer).await;
        let mut alice = connect("alice").await;
        alice.join("alice").await;
        watcher.expect(joined("alice")).await;
        let mut zoe = connect("zoë").await;
        zoe.join("zoë").await;
        alice.expect(joined("zoë")).await;
        watcher.expect(joined("zoë")).await;

        alice.chat("héllo wörld 🦀").await;
        zoe.expect(public_line("alice", "héllo wörld 🦀")).await;
        watcher.expect(public_line("alice", "héllo wörld 🦀")).await;
        zoe.chat("@alice ça va?").await;
        alice.expect(private_line("zoë", "@alice ça va?")).await;
        // Pieces that cut across frame boundaries.
        let lines = ["a", "bb", "@alice ccc", "dddd"].map(|l| ClientFrame::Chat(l.into()));
        zoe.send_batch(&lines).await;
        for line in ["a", "bb", "@alice ccc", "dddd"] {
            if line.starts_with('@') {
                alice.expect(private_line("zoë", line)).await;
            } else {
                alice.expect(public_line("zoë", line)).await;
                watcher.expect(public_line("zoë", line)).await;
            }
        }
        zoe.leave();
        alice.expect(left("zoë")).await;
        watcher.expect(left("zoë")).await;
        Ok(())
    });
    assert!(
        stats.reads > 20,
        "the server read only {} pieces",
        stats.reads
    );
    assert!(
        stats.max_read <= cap,
        "server read {} bytes",
        stats.max_read
    );
    assert!(
        stats.max_write <= cap,
        "server wrote {} bytes",
        stats.max_write
    );
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

/// Scenario 3: A participant that disconnects after 2 header bytes, after the
/// header, and in the middle of the payload: nothing partial is delivered
/// and the room hears that it left.
#[test]
fn disconnect_mid_frame_delivers_nothing_partial() {
    World::new(SEED).run_script(|log| async move {
        let mut watcher = observer("watcher", &log).await;
        let mut alice = participant("alice", &log).await;
        watcher.expect(joined("alice")).await;
        let frame = encode(&ClientFrame::Chat("secret words".into()));
        for (name, cut) in [("dan2", 2), ("dan4", 4), ("dan9", 9)] {
            let mut dan = participant(name, &log).await;
            alice.expect(joined(name)).await;
            watcher.expect(joined(name)).await;
            dan.send_raw(&frame[..cut]).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            dan.leave();
            alice.expect(left(name)).await;
            watcher.expect(left(name)).await;
        }
        alice.chat("still here").await;
        watcher.expect(public_line("alice", "still here")).await;
        alice.expect_quiet(Duration::from_secs(1)).await;
        Ok(())
    });
}

/// Scenario 4: The 60 s username timeout, in simulated time.
#[test]
fn username_timeout_after_sixty_seconds() {
    World::timers(SEED, Duration::from_secs(90)).run_script(|log| async move {
        let mut watcher = observer("watcher", &log).await;
        let mut slow = connect("slow", &log).await;
        let start = Instant::now();
        slow.hello(Role::Participant).await;
        // Still connected at 59.9 s: a chat before naming is answered.
        tokio::time::sleep_until(start + Duration::from_millis(59_900)).await;
        slow.chat("still here?").await;
        slow.expect(choose_a_username_first()).await;
        slow.expect(ServerFrame::UsernameTimeout).await;
        assert_between(
            "UsernameTimeout",
            Instant::now(),
            start + Duration::from_secs(60),
            Duration::from_millis(100),
        );
        slow.expect_closed().await;
        watcher.expect(left("Anonymous")).await;
        Ok(())
    });
}

/// Scenario 5: Every refused name restarts the 60 s: `UsernameInvalid` at 50 s and
/// `UsernameTaken` at 100 s leave the connection alive at 159 s and timed
/// out at 160 s.
#[test]
fn refused_names_restart_the_timer() {
    World::timers(SEED, Duration::from_secs(200)).run_script(|log| async move {
        let _bob = participant("bob", &log).await;
        let mut carl = connect("carl", &log).await;
        let start = Instant::now();
        carl.hello(Role::Participant).await;
        tokio::time::sleep_until(start + Duration::from_secs(50)).await;
        carl.send(&ClientFrame::Username("not valid".into())).await;
        carl.expect(invalid_username(UsernameError::Whitespace(' ')))
            .await;
        carl.expect(ServerFrame::UsernameInvalid).await;
        tokio::time::sleep_until(start + Duration::from_secs(100)).await;
        carl.send(&ClientFrame::Username("bob".into())).await;
        carl.expect(ServerFrame::UsernameTaken).await;
        tokio::time::sleep_until(start + Duration::from_secs(159)).await;
        carl.chat("alive?").await;
        carl.expect(choose_a_username_first()).await;
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
}

/// Scenario 6: A connection that never says Hello is closed after 60 s.
#[test]
fn silent_connection_gets_hello_timeout() {
    World::timers(SEED, Duration::from_secs(90)).run_script(|log| async move {
        let mut mute = connect("mute", &log).await;
        let start = Instant::now();
        mute.expect_quiet(Duration::from_millis(59_900)).await;
        mute.expect(no_hello_within(Duration::from_secs(60))).await;
        assert_between(
            "hello timeout",
            Instant::now(),
            start + Duration::from_secs(60),
            Duration::from_millis(100),
        );
        mute.expect_closed().await;
        Ok(())
    });
}

/// Connects `count` clients at once from one host and says `Hello(role)`
/// on each; returns them in label order.
async fn crowd(
    prefix: &str,
    count: usize,
    role: Role,
    log: &crate::harness::EventLog,
) -> Vec<SimClient> {
    let mut set = JoinSet::new();
    for i in 0..count {
        let (label, log) = (format!("{prefix}{i:03}"), log.clone());
        set.spawn(async move {
            let mut client = connect(&label, &log).await;
            client.hello(role).await;
            (i, client)
        });
    }
    let mut clients: Vec<(usize, SimClient)> = set.join_all().await;
    clients.sort_by_key(|(i, _)| *i);
    clients.into_iter().map(|(_, c)| c).collect()
}

/// Scenario 7: 255 participants and 255 observers fill the room; the 256th of each
/// gets `Full` and is closed; a freed slot is taken at once.
#[test]
fn full_room_refuses_the_256th_of_each_role() {
    let mut world = World::new(SEED);
    world.tcp_capacity = 1024;
    let mut run = world.build();
    let log = run.log.clone();
    run.sim.client("crowd", async move {
        let mut players = crowd("p", MAX_PARTICIPANTS, Role::Participant, &log).await;
        let mut watchers = crowd("o", MAX_OBSERVERS, Role::Observer, &log).await;
        for role in [Role::Participant, Role::Observer] {
            let mut extra = connect("extra", &log).await;
            extra.send(&ClientFrame::Hello(role)).await;
            extra.expect(ServerFrame::Full).await;
            extra.expect_closed().await;
        }
        // An eager client writes on after its Hello (many segments in the
        // same tick): the server must still get `Full` to it before closing,
        // not reset the connection over the bytes it has not read.
        let mut eager = connect("eager", &log).await;
        eager.send(&ClientFrame::Hello(Role::Participant)).await;
        for i in 0..300 {
            eager
                .send(&ClientFrame::Username(format!("eager{i}")))
                .await;
        }
        eager.expect(ServerFrame::Full).await;
        eager.expect_clean_close().await;
        // A participant leaves: every observer hears it, and its slot is
        // free for the very next Hello.
        players.remove(0).leave();
        for w in &mut watchers {
            w.expect(left("Anonymous")).await;
        }
        let mut late = connect("late-p", &log).await;
        late.hello(Role::Participant).await;
        // An observer leaves (silently): the next observer is admitted at
        // once, and the one after is refused again.
        watchers.remove(0).leave();
        let mut late_o = connect("late-o", &log).await;
        late_o.hello(Role::Observer).await;
        for role in [Role::Participant, Role::Observer] {
            let mut extra = connect("extra2", &log).await;
            extra.send(&ClientFrame::Hello(role)).await;
            extra.expect(ServerFrame::Full).await;
            extra.expect_closed().await;
        }
        drop((players, watchers, late, late_o));
        Ok(())
    });
    run.run();
}

/// Scenario 8: Two participants ask for the same free name in the same tick: exactly
/// one wins, whatever the seed.
#[test]
fn same_name_in_the_same_tick_has_one_winner() {
    for seed in 0..6 {
        World::new(seed).run_script(|log| async move {
            let mut watcher = observer("watcher", &log).await;
            let mut a = connect("a", &log).await;
            let mut b = connect("b", &log).await;
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
            let replies = [
                a.next(Duration::from_secs(1)).await,
                b.next(Duration::from_secs(1)).await,
            ];
            let won = Got::Frame(ServerFrame::UsernameAccepted);
            let lost = Got::Frame(ServerFrame::UsernameTaken);
            assert!(
                replies == [won.clone(), lost.clone()] || replies == [lost, won],
                "seed {seed}: {replies:?}"
            );
            watcher.expect(joined("zed")).await;
            watcher.expect_quiet(Duration::from_secs(1)).await;
            Ok(())
        });
    }
}

/// Scenario 9: Private messages reach their target and nobody else: not a third
/// participant, not an observer, not the sender.
#[test]
fn private_messages_reach_only_their_target() {
    World::new(SEED).run_script(|log| async move {
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
                c.expect(joined(name)).await;
            }
        }
        alice.chat("@bob meet at noon").await;
        bob.expect(private_line("alice", "@bob meet at noon")).await;
        carol.chat("@alice just you").await;
        alice.expect(private_line("carol", "@alice just you")).await;
        alice.chat("@nobody hello").await;
        alice.expect(no_such_user("nobody")).await;
        alice.chat("@bob").await;
        alice.expect(private_needs_a_space()).await;
        // The sentinel must be the very next frame for everyone else.
        alice.chat("sentinel").await;
        bob.expect(public_line("alice", "sentinel")).await;
        carol.expect(public_line("alice", "sentinel")).await;
        watcher.expect(public_line("alice", "sentinel")).await;
        alice.expect_quiet(Duration::from_secs(1)).await;
        Ok(())
    });
}

/// The public line `sender` sends as its `i`-th message in the partition
/// scenarios.
fn numbered(sender: &str, i: usize) -> String {
    format!("{sender} says {i}")
}

/// Scenario 10a: The link between one client and the server is held: everyone else
/// keeps chatting without delay; on release the held client gets every
/// frame it is owed, in order.
#[test]
fn held_client_gets_what_it_is_owed_after_release() {
    let mut world = World::new(SEED);
    // Flood control off: the senders here must not be slowed.
    world.config.room.flood = None;
    world.duration = Duration::from_secs(30);
    let mut run = world.build();
    let log = run.log.clone();
    let released: Arc<Mutex<Option<Instant>>> = Arc::default();
    let released_seen = released.clone();
    let carol_log = log.clone();
    run.sim.client("held", async move {
        let mut carol = participant("carol", &carol_log).await;
        let mut expected = vec![joined("alice"), joined("bob")];
        for i in 0..10 {
            expected.push(public_line("alice", &numbered("alice", i)));
            expected.push(public_line("bob", &numbered("bob", i)));
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
        alice.expect(joined("bob")).await;
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
                to.expect(public_line(name, &line)).await;
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
        alice.expect(left("carol")).await;
        bob.expect(left("carol")).await;
        Ok(())
    });
    run.run();
}

/// Reads frames until the connection ends or `quiet` passes with nothing;
/// returns the frames and whether the connection ended.
async fn drain(client: &mut SimClient, quiet: Duration) -> (Vec<ServerFrame>, bool) {
    let mut frames = Vec::new();
    loop {
        match client.next(quiet).await {
            Got::Frame(frame) => frames.push(frame),
            Got::Closed | Got::Failed(_) => return (frames, true),
            Got::Nothing => return (frames, false),
        }
    }
}

/// Scenario 10b: The link between one client and the server is partitioned (its
/// segments are lost): the others keep chatting without delay and lose
/// nothing; the server, unable to deliver, drops the cut-off client as a
/// slow consumer and announces it, and after repair that client has seen
/// only a prefix of what it was owed, in order.
#[test]
fn partitioned_client_is_dropped_and_others_lose_nothing() {
    // The first 64 lost segments use up turmoil's flow window (credits
    // come back only when the peer reads); then the 16 KiB outbox fills.
    const LINES: usize = 300;
    let mut world = World::new(SEED);
    // Flood control off: the senders here must not be slowed.
    world.config.room.flood = None;
    world.duration = Duration::from_secs(30);
    // Small marks, so the cut-off client's queue turns heavy and may hold
    // the room (for the hold budget at most); a 2 s lag bound drops it.
    world.config.heavy_queued_bytes = 8 * 1024;
    world.config.light_queued_bytes = 2 * 1024;
    world.config.max_lag = Duration::from_secs(2);
    let mut run = world.build();
    let log = run.log.clone();
    let carol_log = log.clone();
    let line = |i: usize| format!("{i:04} {}", "x".repeat(200));
    run.sim.client("cut", async move {
        let mut carol = participant("carol", &carol_log).await;
        let (frames, _) = drain(&mut carol, Duration::from_secs(10)).await;
        let mut owed = vec![joined("alice"), joined("bob")];
        owed.extend((0..LINES).map(|i| public_line("alice", &line(i))));
        assert!(
            frames.len() < owed.len(),
            "carol got everything through a partition"
        );
        assert_eq!(
            frames[..],
            owed[..frames.len()],
            "carol's frames are not a prefix"
        );
        Ok(())
    });
    run.sim.client("others", async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut alice = participant("alice", &log).await;
        let mut bob = participant("bob", &log).await;
        alice.expect(joined("bob")).await;
        turmoil::partition("cut", SERVER);
        log.record("fault", format_args!("partition cut <-> server"));
        let cut = Instant::now();
        let carol_left = Got::Frame(left("carol"));
        let mut departures = 0;
        for i in 0..LINES {
            let sent = Instant::now();
            alice.chat(&line(i)).await;
            loop {
                let got = bob.next(Duration::from_secs(1)).await;
                if got == carol_left {
                    departures += 1;
                } else {
                    assert_eq!(got, Got::Frame(public_line("alice", &line(i))));
                    break;
                }
            }
            // A member that stops reading can hold the room for the hold
            // budget at most (plus the 5 % it earns back meanwhile).
            assert!(
                sent.elapsed() <= HOLD_BUDGET + HOLD_BUDGET / 10,
                "delayed by the cut-off client"
            );
        }
        if departures == 0 {
            // The flood was quicker than the lag bound: carol goes once her
            // oldest unsent line is 2 s old.
            bob.expect(left("carol")).await;
            departures += 1;
        }
        assert_eq!(departures, 1, "bob heard carol leave {departures} times");
        let gone_after = cut.elapsed();
        assert!(
            gone_after >= Duration::from_secs(2) && gone_after <= Duration::from_secs(3),
            "carol dropped {gone_after:?} after the cut"
        );
        alice.expect(left("carol")).await;
        turmoil::repair("cut", SERVER);
        log.record("fault", format_args!("repair cut <-> server"));
        alice.expect_quiet(Duration::from_secs(1)).await;
        Ok(())
    });
    run.run();
}

/// Scenario 11: A participant that stops reading while another floods is dropped as
/// a slow consumer (once its oldest unsent line is older than the lag
/// bound, here 1 s) and announced as left; the rest see every message, in
/// order.
#[test]
fn client_that_stops_reading_is_dropped_as_slow_consumer() {
    // About 1.5 s of flood: she is dropped within it, and reads what is
    // left for her before the server's 2 s linger on her socket runs out.
    const LINES: usize = 700;
    let mut world = World::new(SEED);
    // Flood control off: the senders here must not be slowed.
    world.config.room.flood = None;
    world.config.max_lag = Duration::from_secs(1);
    world.duration = Duration::from_secs(60);
    world.run_script(|log| async move {
        let line = |i: usize| format!("{i:04} {}", "y".repeat(995));
        let mut watcher = observer("watcher", &log).await;
        let mut carol = participant("carol", &log).await;
        let mut alice = participant("alice", &log).await;
        let mut bob = participant("bob", &log).await;
        carol.expect(joined("alice")).await;
        alice.expect(joined("bob")).await;
        for name in ["carol", "alice", "bob"] {
            watcher.expect(joined(name)).await;
        }
        // From here on carol never reads. alice floods; bob and the watcher
        // read everything as it comes.
        let carol_left = Got::Frame(left("carol"));
        let mut departures = [0, 0];
        let start = Instant::now();
        for i in 0..LINES {
            alice.chat(&line(i)).await;
            let expected = Got::Frame(public_line("alice", &line(i)));
            for (reader, seen) in [&mut bob, &mut watcher].into_iter().zip(&mut departures) {
                loop {
                    let got = reader.next(Duration::from_secs(1)).await;
                    if got == carol_left {
                        *seen += 1;
                        // Her lines wait from the moment turmoil's window
                        // of 64 segments is full (a few lines in); 1 s
                        // later, to within the 100 ms the queue dates its
                        // lines by, she is dropped.
                        let after = start.elapsed();
                        assert!(
                            after >= Duration::from_secs(1) && after <= Duration::from_millis(1500),
                            "dropped {after:?} into the flood, at line {i}"
                        );
                    } else {
                        assert_eq!(got, expected, "{} at line {i}", reader.label());
                        break;
                    }
                }
            }
        }
        assert_eq!(departures, [1, 1], "carol's departure announcements");
        alice.expect(left("carol")).await;
        // carol was cut off: she holds a prefix of the flood, then the end.
        // (turmoil parks the server's FIN behind her full receive queue and
        // only moves it on when another segment arrives, so she pokes the
        // server; its reset for the closed socket then ends her stream.)
        let (mut frames, mut ended) = drain(&mut carol, Duration::from_secs(5)).await;
        if !ended {
            carol.chat("anyone there?").await;
            let (more, end) = drain(&mut carol, Duration::from_secs(5)).await;
            frames.extend(more);
            ended = end;
        }
        assert!(ended, "carol's connection is still open");
        assert!(frames.len() < LINES, "carol got the whole flood");
        // The last frame she can get is the reason she was dropped.
        assert_eq!(
            frames.pop(),
            Some(too_far_behind()),
            "carol was not told why"
        );
        let owed = std::iter::once(joined("bob"))
            .chain((0..LINES).map(|i| public_line("alice", &line(i))));
        for (i, (got, owed)) in frames.iter().zip(owed).enumerate() {
            assert_eq!(got, &owed, "carol's frame {i}");
        }
        Ok(())
    });
}

/// Scenario 12: The server crashes and restarts: clients see their connection end,
/// reconnect, and their names are free again.
#[test]
fn server_crash_and_restart_frees_names() {
    let mut world = World::new(SEED);
    world.duration = Duration::from_secs(30);
    let mut run = world.build();
    let log = run.log.clone();
    let both_in: Arc<Mutex<bool>> = Arc::default();
    let joined_flag = both_in.clone();
    run.sim.client("clients", async move {
        let mut alice = participant("alice", &log).await;
        let mut bob = participant("bob", &log).await;
        alice.expect(joined("bob")).await;
        *joined_flag.lock().unwrap() = true;
        alice.expect_closed().await;
        bob.expect_closed().await;
        // Reconnect until the restarted server answers.
        let mut again = Vec::new();
        for name in ["alice", "bob"] {
            let client = loop {
                match connect_with(name, &log, PieceSize::Any, None).await {
                    Ok(client) => break client,
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            };
            again.push(client);
        }
        let [mut alice, mut bob] = <[SimClient; 2]>::try_from(again).expect("two");
        alice.join("alice").await;
        bob.join("bob").await;
        alice.expect(joined("bob")).await;
        bob.chat("back again").await;
        alice.expect(public_line("bob", "back again")).await;
        Ok(())
    });
    let (mut crashed, mut bounced) = (None, false);
    let result = loop {
        match run.sim.step() {
            Ok(true) => break Ok(()),
            Err(e) => break Err(e),
            Ok(false) => {}
        }
        let now = run.sim.elapsed();
        if crashed.is_none() && *both_in.lock().unwrap() {
            run.sim.crash(SERVER);
            run.log
                .record("fault", format_args!("crash server at {now:?}"));
            crashed = Some(now);
        }
        if let Some(at) = crashed
            && !bounced
            && now >= at + Duration::from_secs(2)
        {
            run.sim.bounce(SERVER);
            run.log
                .record("fault", format_args!("restart server at {now:?}"));
            bounced = true;
        }
    };
    assert!(bounced, "the server was never restarted");
    run.finish(result);
}

/// Scenario 13: A 1001-character line is never delivered (its sender is warned); a
/// 1000-character one is delivered whole — characters, not bytes.
#[test]
fn thousand_characters_delivered_thousand_and_one_not() {
    World::new(SEED).run_script(|log| async move {
        let mut watcher = observer("watcher", &log).await;
        let mut alice = participant("alice", &log).await;
        let mut bob = participant("bob", &log).await;
        alice.expect(joined("bob")).await;
        for name in ["alice", "bob"] {
            watcher.expect(joined(name)).await;
        }
        let over = MAX_MESSAGE_CHARS + 1;
        for long in [
            "a".repeat(over),
            "🦀".repeat(over),
            format!("@bob {}", "b".repeat(over - 5)),
        ] {
            alice.chat(&long).await;
            alice.expect(too_long_warning()).await;
        }
        for whole in [
            "a".repeat(MAX_MESSAGE_CHARS),
            "🦀".repeat(MAX_MESSAGE_CHARS),
        ] {
            alice.chat(&whole).await;
            bob.expect(public_line("alice", &whole)).await;
            watcher.expect(public_line("alice", &whole)).await;
        }
        let private = format!("@bob {}", "c".repeat(MAX_MESSAGE_CHARS - 5));
        alice.chat(&private).await;
        bob.expect(private_line("alice", &private)).await;
        alice.expect_quiet(Duration::from_secs(1)).await;
        watcher.expect_quiet(Duration::from_secs(1)).await;
        Ok(())
    });
}

/// Scenario 14: Whatever an observer sends after its Hello reaches nobody; it is
/// only warned.
#[test]
fn observer_frames_never_reach_anyone() {
    World::new(SEED).run_script(|log| async move {
        let mut loud = observer("loud", &log).await;
        let mut quiet = observer("quiet", &log).await;
        let mut alice = participant("alice", &log).await;
        loud.expect(joined("alice")).await;
        quiet.expect(joined("alice")).await;
        for frame in [
            ClientFrame::Chat("hello all".into()),
            ClientFrame::Chat("@alice psst".into()),
            ClientFrame::Username("loud".into()),
            ClientFrame::Hello(Role::Participant),
            ClientFrame::Hello(Role::Observer),
        ] {
            loud.send(&frame).await;
            loud.expect(observers_only_read()).await;
        }
        alice.chat("sentinel").await;
        loud.expect(public_line("alice", "sentinel")).await;
        quiet.expect(public_line("alice", "sentinel")).await;
        alice.expect_quiet(Duration::from_secs(1)).await;
        // The name the observer tried is still free.
        let _loud_person = participant("loud", &log).await;
        alice.expect(joined("loud")).await;
        Ok(())
    });
}

/// Scenario 15: A participant that leaves before its name is accepted is announced
/// as "User Anonymous has left".
#[test]
fn unnamed_participant_leaves_as_anonymous() {
    World::new(SEED).run_script(|log| async move {
        let mut watcher = observer("watcher", &log).await;
        let mut alice = participant("alice", &log).await;
        watcher.expect(joined("alice")).await;
        let mut never = connect("never", &log).await;
        never.hello(Role::Participant).await;
        never.leave();
        alice.expect(left("Anonymous")).await;
        watcher.expect(left("Anonymous")).await;
        let mut tried = connect("tried", &log).await;
        tried.hello(Role::Participant).await;
        tried.send(&ClientFrame::Username("two words".into())).await;
        tried
            .expect(invalid_username(UsernameError::Whitespace(' ')))
            .await;
        tried.expect(ServerFrame::UsernameInvalid).await;
        tried.send(&ClientFrame::Username("alice".into())).await;
        tried.expect(ServerFrame::UsernameTaken).await;
        tried.leave();
        alice.expect(left("Anonymous")).await;
        watcher.expect(left("Anonymous")).await;
        alice.expect_quiet(Duration::from_secs(1)).await;
        Ok(())
    });
}
