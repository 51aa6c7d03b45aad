//! Admission under abuse, in simulated time: slots cannot be squatted past
//! the naming ceiling, a connection stuck in the middle of a frame (or
//! dribbling one) is closed at the frame deadline while one the server has
//! stopped reading is not, a participant cut off for good loses its slot,
//! one host cannot hold more than its share of connections nor open them
//! faster than its rate, and a full socket table makes room for an honest
//! newcomer at the expense of a connection that has not got far — never a
//! member's.
//!
//! Keepalive is not here: turmoil's TCP has no probes, so a peer that dies
//! in a room where nothing is written to it cannot be found by the
//! simulation. The tokio listener's keepalive options are read back from a
//! real socket instead (`logosnet::server` tests), and the cut-off peer
//! below is found by the lag bound once the room writes to it.

use std::time::Duration;

use logosnet::protocol::invalid_username;
use logosnet::protocol::{
    ClientFrame, HEADER_BYTES, MAX_MESSAGE_CHARS, MAX_PARTICIPANTS, Role, ServerFrame,
    closed_to_make_room_before_hello, closed_to_make_room_before_naming, joined, left, public_line,
    server_busy, too_long_warning, too_many_connections_from, too_many_names,
    too_many_new_connections_from,
};
use logosnet::room::flood::FloodLimit;
use logosnet::room::{MAX_REFUSED_NAMES, NAMING_CEILING};
use logosnet::server::{
    FRAME_DEADLINE, MAX_LAG, MAX_MAKING_ROOM, MAX_NEW_PER_ADDRESS, MAX_PER_ADDRESS,
    NEW_PER_ADDRESS_WINDOW, RateLimit,
};
use logosnet::username::UsernameError;
use testkit::peer::frame_bytes as encode;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::harness::{Got, SERVER, World, connect, observer, participant};

const SEED: u64 = 10;

/// How late a timer may be seen by a client: a few 10 ms ticks of latency
/// and scheduling.
const SLACK: Duration = Duration::from_millis(100);

/// Asserts that `at` lies in `[due, due + SLACK]`.
fn assert_at(what: &str, at: Instant, due: Instant) {
    assert!(
        at >= due && at <= due + SLACK,
        "{what}: {:?} after the due instant (allowed 0 to {SLACK:?})",
        at.checked_duration_since(due)
            .map_or_else(|| format!("-{:?}", due - at), |d| format!("{d:?}")),
    );
}

/// 255 participants take every slot and keep it by sending an invalid name
/// every 50 s, each refusal restarting the 60 s timer. The ceiling ends
/// them all 5 minutes after their `Accepted`, and the room is open again.
#[test]
fn squatters_cannot_hold_the_room_past_the_naming_ceiling() {
    let mut world = World::timers(SEED, NAMING_CEILING + Duration::from_secs(60));
    world.tcp_capacity = 1024;
    world.run_script(|log| async move {
        let mut watcher = observer("watcher", &log).await;
        let mut squatters = JoinSet::new();
        let mut admitted = Vec::new();
        for i in 0..MAX_PARTICIPANTS {
            let mut squatter = connect(&format!("squat{i}"), &log).await;
            // The ceiling counts from the server's Accepted, a latency
            // after this.
            let start = Instant::now();
            squatter.hello(Role::Participant).await;
            admitted.push((squatter, start));
        }
        let mut late = connect("late", &log).await;
        late.send(&ClientFrame::Hello(Role::Participant)).await;
        late.expect(ServerFrame::Full).await;
        late.expect_closed().await;
        for (mut squatter, accepted) in admitted {
            squatters.spawn(async move {
                let mut refused = 0;
                loop {
                    tokio::time::sleep_until(accepted + Duration::from_secs(50) * (refused + 1))
                        .await;
                    if Instant::now() >= accepted + NAMING_CEILING {
                        break;
                    }
                    squatter
                        .send(&ClientFrame::Username("not valid".into()))
                        .await;
                    squatter
                        .expect(invalid_username(UsernameError::Whitespace(' ')))
                        .await;
                    squatter.expect(ServerFrame::UsernameInvalid).await;
                    refused += 1;
                }
                squatter.expect(ServerFrame::UsernameTimeout).await;
                assert_at(squatter.label(), Instant::now(), accepted + NAMING_CEILING);
                squatter.expect_closed().await;
                refused
            });
        }
        // Still full just before the ceiling.
        tokio::time::sleep(NAMING_CEILING - Duration::from_secs(20)).await;
        let mut early = connect("early", &log).await;
        early.send(&ClientFrame::Hello(Role::Participant)).await;
        early.expect(ServerFrame::Full).await;
        while let Some(refused) = squatters.join_next().await {
            assert_eq!(refused.expect("squatter task"), 5, "refusals at 50..250 s");
        }
        for _ in 0..MAX_PARTICIPANTS {
            watcher.expect(left("Anonymous")).await;
        }
        // Every slot is free again.
        let mut honest = participant("honest", &log).await;
        watcher.expect(joined("honest")).await;
        honest.chat("finally").await;
        watcher.expect(public_line("honest", "finally")).await;
        Ok(())
    });
}

/// A participant cycling through refused names is cut at the eleventh
/// refusal, told why, long before any timer.
#[test]
fn the_eleventh_refused_name_ends_the_connection() {
    World::timers(SEED, Duration::from_secs(60)).run_script(|log| async move {
        let mut watcher = observer("watcher", &log).await;
        let mut cycler = connect("cycler", &log).await;
        cycler.hello(Role::Participant).await;
        for i in 0..MAX_REFUSED_NAMES {
            // Within the flood allowance, so each is answered at once.
            tokio::time::sleep(Duration::from_millis(500)).await;
            cycler
                .send(&ClientFrame::Username(format!("bad name {i}")))
                .await;
            cycler
                .expect(invalid_username(UsernameError::Whitespace(' ')))
                .await;
            cycler.expect(ServerFrame::UsernameInvalid).await;
        }
        cycler
            .send(&ClientFrame::Username("bad name again".into()))
            .await;
        cycler.expect(too_many_names(MAX_REFUSED_NAMES)).await;
        cycler.expect(ServerFrame::UsernameTimeout).await;
        cycler.expect_closed().await;
        watcher.expect(left("Anonymous")).await;
        Ok(())
    });
}

/// A named participant that sends part of a chat frame and nothing more,
/// and one that dribbles a frame a byte every 5 s, are both closed when the
/// frame deadline of reading time has passed since its first byte.
#[test]
fn a_participant_stuck_mid_frame_is_closed_at_the_frame_deadline() {
    World::timers(SEED, Duration::from_secs(120)).run_script(|log| async move {
        let mut watcher = observer("watcher", &log).await;
        let mut stuck = participant("stuck", &log).await;
        watcher.expect(joined("stuck")).await;
        let mut dribbler = participant("dribbler", &log).await;
        stuck.expect(joined("dribbler")).await;
        watcher.expect(joined("dribbler")).await;
        let frame = encode(&ClientFrame::Chat("never finished".into()));
        let reason = ServerFrame::ProtocolError(format!(
            "frame not finished within {} s",
            FRAME_DEADLINE.as_secs()
        ));

        stuck.send_raw(&frame[..7]).await;
        let stuck_began = Instant::now();
        let dribbling = tokio::spawn(async move {
            let began = Instant::now();
            for byte in frame.iter() {
                dribbler.send_raw(&[*byte]).await;
                let next_byte = Instant::now() + Duration::from_secs(5);
                loop {
                    match dribbler.next(next_byte - Instant::now()).await {
                        Got::Nothing => break,
                        // The room's news (stuck leaving) is not the answer.
                        Got::Frame(ServerFrame::Notice(_)) => {}
                        got => return (dribbler, began, got),
                    }
                }
            }
            panic!("the dribbler finished its frame");
        });
        // The room goes on meanwhile, and hears nothing of either frame.
        tokio::time::sleep(Duration::from_secs(30)).await;
        watcher.expect_quiet(Duration::from_secs(1)).await;
        tokio::time::sleep_until(stuck_began + FRAME_DEADLINE - Duration::from_secs(1)).await;
        stuck.expect(reason.clone()).await;
        assert_at("stuck", Instant::now(), stuck_began + FRAME_DEADLINE);
        stuck.expect_closed().await;
        let (mut dribbler, began, got) = dribbling.await.expect("dribbler task");
        assert_eq!(got, Got::Frame(reason));
        // Closed at the deadline after its first byte, not 60 s after its
        // last: a byte every 5 s does not keep a frame open.
        assert_at("dribbler", Instant::now(), began + FRAME_DEADLINE);
        dribbler.expect_closed().await;
        let mut gone = [
            watcher.next(Duration::from_secs(1)).await,
            watcher.next(Duration::from_secs(1)).await,
        ];
        gone.sort_by_key(|got| format!("{got:?}"));
        assert_eq!(
            gone,
            [Got::Frame(left("dribbler")), Got::Frame(left("stuck")),]
        );
        Ok(())
    });
}

/// A frame left half-read while the server is not reading its sender is
/// not blamed for the wait. Two oversized frames that cost a whole bucket
/// each hold the sender's input for 64 s; meanwhile its inbox fills with two
/// long lines, and the decoder holds the start of a third, unread. The
/// third is finished 70 s after its first byte, a few seconds after
/// reading resumed: delivered, not cut at the 60 s frame deadline.
#[test]
fn a_frame_paused_by_flood_control_past_the_deadline_is_not_cut() {
    const BUCKET: u32 = 64;
    let mut world = World::timers(SEED, Duration::from_secs(150));
    world.config.room.flood = FloodLimit::new(1, BUCKET);
    world.run_script(|log| async move {
        let mut watcher = observer("watcher", &log).await;
        let mut sender = participant("sender", &log).await;
        watcher.expect(joined("sender")).await;
        // Let the name's token come back: a full bucket.
        tokio::time::sleep(Duration::from_secs(2)).await;
        // 65,000 bytes cost 64 tokens (one per KiB and one).
        let oversized = {
            let mut bytes = 65_000u32.to_be_bytes().to_vec();
            bytes.resize(HEADER_BYTES + 65_000, b'x');
            bytes
        };
        // Lines of 1,000 characters, 3,997 bytes: two fill an inbox.
        let long = |c: char| {
            std::iter::repeat_n('\u{1F980}', MAX_MESSAGE_CHARS - 1)
                .chain([c])
                .collect::<String>()
        };
        let (first, second, third) = (long('a'), long('b'), long('c'));
        let third_frame = encode(&ClientFrame::Chat(third.clone()));
        let mut stream = oversized.repeat(2);
        stream.extend_from_slice(&encode(&ClientFrame::Chat(first.clone())));
        stream.extend_from_slice(&encode(&ClientFrame::Chat(second.clone())));
        stream.extend_from_slice(&third_frame[..10]);
        let began = Instant::now();
        sender.send_raw(&stream).await;
        sender.expect(too_long_warning()).await;
        tokio::time::sleep_until(began + Duration::from_secs(70)).await;
        sender.send_raw(&third_frame[10..]).await;
        // The second oversized frame was answered at 64 s, while this one
        // was still unfinished.
        sender.expect(too_long_warning()).await;
        for line in [first, second, third] {
            watcher.expect(public_line("sender", &line)).await;
        }
        assert!(
            began.elapsed() > FRAME_DEADLINE + Duration::from_secs(10),
            "the third line was finished after {:?}",
            began.elapsed()
        );
        sender.expect_quiet(Duration::from_secs(1)).await;
        Ok(())
    });
}

/// A participant whose link is cut for good (its segments lost, no FIN or
/// RST ever arrives) holds its slot only until the room next writes to it
/// and its oldest unsent line is `MAX_LAG` old; then the room hears it leave, the slot
/// and the name are free again.
#[test]
fn a_participant_partitioned_for_good_loses_its_slot() {
    let mut world = World::timers(SEED, Duration::from_secs(60));
    world.config.room.max_participants = 2;
    // A small flow window: the cut-off peer's writer blocks after a few
    // lost writes rather than 64.
    world.tcp_capacity = 8;
    let mut run = world.build();
    let log = run.log.clone();
    let lid_log = log.clone();
    run.sim.client("lid", async move {
        let _lid = participant("lid", &lid_log).await;
        // The lid closes; this host hears nothing more and never closes
        // its socket (a FIN would not cross the partition anyway).
        tokio::time::sleep(Duration::from_secs(50)).await;
        Ok(())
    });
    run.sim.client("others", async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut alice = participant("alice", &log).await;
        turmoil::partition("lid", SERVER);
        log.record("fault", format_args!("partition lid <-> server"));
        let cut = Instant::now();
        let mut late = connect("late", &log).await;
        late.send(&ClientFrame::Hello(Role::Participant)).await;
        late.expect(ServerFrame::Full).await;
        // A quiet room writes nothing to lid, so nothing can fail (in the
        // real server, keepalive finds it). alice talks, within her flood
        // allowance, until the room hears lid leave.
        let mut said = 0;
        loop {
            alice.chat(&format!("line {said}")).await;
            said += 1;
            match alice.next(Duration::from_millis(250)).await {
                Got::Nothing => {}
                Got::Frame(frame) if frame == left("lid") => break,
                other => panic!("alice got {other:?}"),
            }
            assert!(
                cut.elapsed() < MAX_LAG + Duration::from_secs(10),
                "lid still held its slot after {:?}",
                cut.elapsed()
            );
        }
        assert!(cut.elapsed() >= MAX_LAG, "dropped before the lag bound");
        // The slot and the name are free.
        let mut again = connect("again", &log).await;
        again.join("lid").await;
        alice.expect(joined("lid")).await;
        log.record("done", format_args!("{said} lines said"));
        Ok(())
    });
    run.run();
}

/// With the per-address limit on, one host can hold 16 connections; the
/// 17th is told why and closed, another host is unaffected, and a slot
/// comes back when one of the 16 ends.
#[test]
fn one_host_holds_at_most_its_share_of_connections() {
    let mut world = World::new(SEED);
    world.config.max_per_address = MAX_PER_ADDRESS;
    let mut run = world.build();
    let log = run.log.clone();
    let neighbour_log = log.clone();
    run.sim.client("crowd", async move {
        let me = turmoil::lookup("crowd");
        let mut held = Vec::new();
        for i in 0..MAX_PER_ADDRESS {
            let mut client = connect(&format!("c{i}"), &log).await;
            client.hello(Role::Observer).await;
            held.push(client);
        }
        let mut extra = connect("extra", &log).await;
        extra.expect(too_many_connections_from(me)).await;
        extra.expect_closed().await;
        // One leaves; its count is released when its task ends.
        if let Some(client) = held.pop() {
            client.leave();
        }
        let mut admitted = None;
        for attempt in 0..20 {
            let mut again = connect(&format!("again{attempt}"), &log).await;
            again.send(&ClientFrame::Hello(Role::Observer)).await;
            match again.next(Duration::from_secs(1)).await {
                Got::Frame(ServerFrame::Accepted) => {
                    admitted = Some(again);
                    break;
                }
                Got::Frame(ServerFrame::ProtocolError(_)) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => panic!("again{attempt}: {other:?}"),
            }
        }
        assert!(admitted.is_some(), "the freed slot never came back");
        Ok(())
    });
    run.sim.client("neighbour", async move {
        // Another host, once the crowd is at its limit.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let _neighbour = observer("neighbour", &neighbour_log).await;
        Ok(())
    });
    run.run();
}

/// A small socket table (32) so the crowd stays cheap; the rule is the
/// same at 2,048.
const TABLE: usize = 32;

/// Every socket is held — a watcher and 31 silent sockets from one host —
/// when an honest participant arrives from another: it gets in and
/// chats, and the oldest silent socket is told why it was closed; the
/// other silent ones and the watcher keep their places.
#[test]
fn a_full_table_of_silent_sockets_makes_room_for_an_honest_participant() {
    let mut world = World::new(SEED);
    world.config.max_connections = TABLE;
    let mut run = world.build();
    let log = run.log.clone();
    let honest_log = log.clone();
    let (go, ready) = tokio::sync::oneshot::channel::<()>();
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    run.sim.client("squatters", async move {
        let mut watcher = observer("watcher", &log).await;
        let mut silent = Vec::new();
        for i in 0..TABLE - 1 {
            silent.push(connect(&format!("silent{i}"), &log).await);
        }
        // Let the server accept them all before the newcomer comes.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let _ = go.send(());
        let mut oldest = silent.remove(0);
        oldest.expect(closed_to_make_room_before_hello()).await;
        oldest.expect_closed().await;
        watcher.expect(joined("honest")).await;
        watcher.expect(public_line("honest", "made it")).await;
        let _ = finished.await;
        // Nobody else was told anything: each still holds its socket.
        for mut held in silent {
            held.expect_quiet(Duration::from_millis(10)).await;
        }
        Ok(())
    });
    run.sim.client("honest", async move {
        let _ = ready.await;
        let mut honest = participant("honest", &honest_log).await;
        honest.chat("made it").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let _ = done.send(());
        Ok(())
    });
    run.run();
}

/// A table of members only: a newcomer is told `server busy` and closed,
/// and every member stays and is served. With one participant still
/// unnamed among them, that one makes room (told why, announced as
/// leaving), not a member.
#[test]
fn members_are_never_closed_to_make_room() {
    let mut world = World::new(SEED);
    world.config.max_connections = 4;
    world.run_script(|log| async move {
        let mut alice = participant("alice", &log).await;
        let mut bob = participant("bob", &log).await;
        alice.expect(joined("bob")).await;
        let mut watcher = observer("watcher", &log).await;
        let mut unnamed = connect("unnamed", &log).await;
        unnamed.hello(Role::Participant).await;
        // Every socket is taken; only `unnamed` is not a member.
        let mut first = connect("first", &log).await;
        unnamed.expect(closed_to_make_room_before_naming()).await;
        unnamed.expect_closed().await;
        for member in [&mut alice, &mut bob, &mut watcher] {
            member.expect(left("Anonymous")).await;
        }
        first.hello(Role::Observer).await;
        // Now every socket is a member's: the next is refused.
        let mut second = connect("second", &log).await;
        second.expect(server_busy()).await;
        second.expect_closed().await;
        alice.chat("still here").await;
        for member in [&mut bob, &mut watcher, &mut first] {
            member.expect(public_line("alice", "still here")).await;
        }
        Ok(())
    });
}

/// With the default rate on, 33 connections at once from one host: 32 are
/// admitted and one is told to come back in 19 s (600 s / 32 = 18.75 s,
/// rounded up). A connection at 18 s is still refused; one after 18.75 s
/// is admitted, and the one right behind it refused again. Another host
/// is not affected at any point.
#[test]
fn the_rate_refuses_the_thirty_third_in_a_burst_and_admits_after_refill() {
    let mut world = World::timers(SEED, Duration::from_secs(30));
    world.config.connect_rate = RateLimit::DEFAULT;
    let mut run = world.build();
    let log = run.log.clone();
    let other_log = log.clone();
    let refill = NEW_PER_ADDRESS_WINDOW / MAX_NEW_PER_ADDRESS;
    run.sim.client("burst", async move {
        let me = turmoil::lookup("burst");
        let told = too_many_new_connections_from(me, refill);
        assert_eq!(
            told.text(),
            Some(format!("too many new connections from {me}; try again in 19 s").as_str())
        );
        let started = Instant::now();
        let mut burst = JoinSet::new();
        for i in 0..=MAX_NEW_PER_ADDRESS {
            let log = log.clone();
            burst.spawn(async move {
                let mut client = connect(&format!("b{i}"), &log).await;
                client.send(&ClientFrame::Hello(Role::Observer)).await;
                (client.next(Duration::from_secs(1)).await, client)
            });
        }
        let (mut admitted, mut refused) = (Vec::new(), Vec::new());
        while let Some(answer) = burst.join_next().await {
            match answer.expect("burst task") {
                (Got::Frame(ServerFrame::Accepted), client) => admitted.push(client),
                (Got::Frame(frame), _) => refused.push(frame),
                (other, client) => panic!("{}: {other:?}", client.label()),
            }
        }
        assert_eq!(admitted.len(), MAX_NEW_PER_ADDRESS as usize);
        assert_eq!(refused, vec![told.clone()]);
        // Before the token is back: still refused.
        tokio::time::sleep_until(started + Duration::from_secs(18)).await;
        let mut early = connect("early", &log).await;
        assert!(matches!(
            early.next(Duration::from_secs(1)).await,
            Got::Frame(ServerFrame::ProtocolError(reason))
                if reason == "too many new connections from ".to_owned() + &me.to_string() + "; try again in 1 s"
        ));
        // After it: one is admitted, the next refused for another interval.
        tokio::time::sleep_until(started + refill + Duration::from_millis(50)).await;
        let mut late = connect("late", &log).await;
        late.hello(Role::Observer).await;
        let mut greedy = connect("greedy", &log).await;
        greedy.expect(told).await;
        greedy.expect_closed().await;
        Ok(())
    });
    run.sim.client("other", async move {
        // In the middle of the burst's refusals, another host is admitted.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let _other = observer("other", &other_log).await;
        Ok(())
    });
    run.run();
}

/// Sockets past the table are bounded too: with a table of two and the
/// sockets closed to make room lingering (their peers neither read nor
/// close), the first `MAX_MAKING_ROOM` past the table each close the
/// oldest silent socket, and the next is told `server busy` at once.
#[test]
fn past_the_room_being_made_a_socket_is_refused_at_once() {
    let mut world = World::new(SEED);
    world.config.max_connections = 2;
    world.config.close_linger = Duration::from_secs(30);
    world.tcp_capacity = 1024;
    world.run_script(|log| async move {
        let total = 2 + MAX_MAKING_ROOM + 1;
        let mut sockets = Vec::with_capacity(total);
        for i in 0..total {
            sockets.push(connect(&format!("s{i}"), &log).await);
        }
        let mut sockets = sockets.into_iter();
        for mut made_room in sockets.by_ref().take(MAX_MAKING_ROOM) {
            made_room.expect(closed_to_make_room_before_hello()).await;
            made_room.expect_closed().await;
        }
        let mut kept: Vec<_> = sockets.by_ref().take(2).collect();
        let mut refused = sockets.next().expect("the last socket");
        refused.expect(server_busy()).await;
        refused.expect_closed().await;
        for socket in &mut kept {
            socket.expect_quiet(Duration::from_millis(100)).await;
        }
        Ok(())
    });
}
