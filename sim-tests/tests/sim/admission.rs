//! Admission under abuse, in simulated time: slots cannot be squatted past
//! the naming ceiling, a connection stuck in the middle of a frame (or
//! dribbling one) is closed at the frame deadline while one the server has
//! stopped reading is not, a participant cut off for good loses its slot,
//! and one host cannot hold more than its share of connections.
//!
//! Keepalive is not here: turmoil's TCP has no probes, so a peer that dies
//! in a room where nothing is written to it cannot be found by the
//! simulation. The tokio listener's keepalive options are read back from a
//! real socket instead (`logosnet::server` tests), and the cut-off peer
//! below is found by the write deadline once the room writes to it.

use std::time::Duration;

use logosnet::protocol::invalid_username;
use logosnet::protocol::{
    ClientFrame, HEADER_BYTES, MAX_MESSAGE_CHARS, MAX_PARTICIPANTS, Role, ServerFrame, joined,
    left, public_line, too_long_warning, too_many_connections_from, too_many_names,
};
use logosnet::room::flood::FloodLimit;
use logosnet::room::{MAX_REFUSED_NAMES, NAMING_CEILING};
use logosnet::server::{FRAME_DEADLINE, MAX_PER_ADDRESS, WRITE_DEADLINE};
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
/// and the write deadline passes; then the room hears it leave, the slot
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
                cut.elapsed() < WRITE_DEADLINE + Duration::from_secs(10),
                "lid still held its slot after {:?}",
                cut.elapsed()
            );
        }
        assert!(
            cut.elapsed() >= WRITE_DEADLINE,
            "dropped before the write deadline"
        );
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
