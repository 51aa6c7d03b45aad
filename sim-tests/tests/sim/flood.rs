//! Floods against the real server, in simulated time: whoever floods is
//! slowed; everyone who keeps reading gets every line, in order, and is
//! never dropped; a member that stopped reading is dropped for its own
//! failing; timers fire on time whatever the load.

use std::time::Duration;

use logosnet::protocol::{
    ClientFrame, MAX_MESSAGE_CHARS, Presence, Role, ServerFrame, joined, left, no_hello_within,
    parse_line, parse_presence, public_line, too_far_behind,
};
use logosnet::server::MAX_LAG;
use testkit::peer::frame_bytes;
use tokio::time::Instant;

use crate::harness::{
    EventLog, Got, PieceSize, SimClient, World, connect, connect_paced, observer, participant,
};

const SEED: u64 = 9;

/// Lines in each flood, each of [`LINE_CHARS`] characters.
const LINES: usize = 1200;
const LINE_CHARS: usize = MAX_MESSAGE_CHARS;

/// The `k`th line of a flood from `sender`: numbered, 1,000 characters.
fn line(sender: &str, k: usize) -> String {
    let head = format!("{sender} {k:04} ");
    let fill = LINE_CHARS - head.len();
    format!("{head}{}", "f".repeat(fill))
}

/// `line(sender, k)` as every other member receives it.
fn delivered(sender: &str, k: usize) -> ServerFrame {
    public_line(sender, &line(sender, k))
}

fn flood(sender: &str, lines: usize) -> Vec<ClientFrame> {
    (0..lines)
        .map(|k| ClientFrame::Chat(line(sender, k)))
        .collect()
}

/// What a reader saw of a flood.
#[derive(Debug, Default)]
struct Seen {
    /// When each line arrived, by line number.
    arrivals: Vec<Instant>,
    /// Every "User … has left" notice: who, and how many lines had arrived
    /// then.
    left: Vec<(String, usize)>,
}

impl Seen {
    /// When `name` left: how many lines had arrived, once per notice.
    fn left_of(&self, name: &str) -> Vec<usize> {
        self.left
            .iter()
            .filter(|(who, _)| who == name)
            .map(|&(_, k)| k)
            .collect()
    }
}

/// Reads until `lines` flood lines from `sender` have arrived, checking
/// each is the next one; counts the sloth's departures. Panics on anything
/// else, on a close, or on a wait longer than `patience`. (A slow reader is
/// slow by its stream: see `connect_paced`.)
async fn read_flood(
    client: &mut SimClient,
    sender: &str,
    lines: usize,
    patience: Duration,
) -> Seen {
    let mut seen = Seen::default();
    while seen.arrivals.len() < lines {
        let got = client.next(patience).await;
        let k = seen.arrivals.len();
        match got {
            Got::Frame(ServerFrame::Notice(notice))
                if matches!(parse_presence(&notice), Some(Presence::Left(_))) =>
            {
                if let Some(Presence::Left(name)) = parse_presence(&notice) {
                    seen.left.push((name.to_owned(), k));
                }
            }
            Got::Frame(frame) => {
                assert_eq!(frame, delivered(sender, k), "{}: line {k}", client.label());
                seen.arrivals.push(Instant::now());
            }
            other => panic!("{}: waiting for line {k}, got {other:?}", client.label()),
        }
    }
    seen
}

/// Reads everything a client that never read was sent, after the fact:
/// a prefix of what it was owed (the flooder's join, then its `LINES`
/// lines), then possibly the reason it was dropped.
async fn check_sloth_got_a_prefix_of_the_flood(mut sloth: SimClient) {
    let owed: Vec<ServerFrame> = std::iter::once(joined("flood"))
        .chain((0..LINES).map(|k| delivered("flood", k)))
        .collect();
    let mut frames = Vec::new();
    loop {
        match sloth.next(Duration::from_secs(5)).await {
            Got::Frame(frame) => frames.push(frame),
            Got::Closed | Got::Failed(_) => break,
            Got::Nothing => {
                // turmoil parks the server's end behind a full window; a
                // write of ours lets it through (the reset ends the stream).
                let _ = sloth.try_send(&ClientFrame::Chat("hello?".into())).await;
            }
        }
    }
    if frames.last() == Some(&too_far_behind()) {
        frames.pop();
    }
    assert!(frames.len() < owed.len(), "the sloth got everything");
    assert_eq!(frames[..], owed[..frames.len()], "the sloth's frames");
}

/// Joins the watcher, a slow reader (`per_tick` bytes a `tick`), the sloth
/// and the flooder, in that order, and consumes every join notice.
async fn cast(
    log: &EventLog,
    per_tick: usize,
    tick: Duration,
) -> (SimClient, SimClient, SimClient, SimClient) {
    let mut watch = observer("watch", log).await;
    let mut slow = connect_paced("slow", log, PieceSize::AtMost(64), per_tick, tick).await;
    slow.join("slow").await;
    let sloth = participant("sloth", log).await;
    let flooder = participant("flood", log).await;
    for name in ["slow", "sloth", "flood"] {
        watch.expect(joined(name)).await;
    }
    for name in ["sloth", "flood"] {
        slow.expect(joined(name)).await;
    }
    (watch, slow, sloth, flooder)
}

/// With the default flood rule: one participant writes 1,200 lines of
/// 1,000 characters in one go. Its burst of 10 goes at once, then one line
/// every 200 ms, exactly; a reader on a slow link (300 bytes per 10 ms) and
/// an observer get every line in order and are never dropped; a
/// participant that never reads is dropped by the lag bound, not by
/// its queue's bound; and a silent socket beside the flood gets its Hello
/// timeout on time.
#[test]
fn a_flooder_is_slowed_to_its_allowance_and_every_reader_gets_every_line() {
    let world = World::timers(SEED, Duration::from_secs(330));
    let tick = world.tick;
    world.run_script(|log| async move {
        let (mut watch, mut slow, sloth, mut flooder) =
            cast(&log, 300, Duration::from_millis(10)).await;
        // A full bucket: the name took a token three seconds ago.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let start = Instant::now();
        let writer = tokio::spawn(async move {
            flooder.send_batch(&flood("flood", LINES)).await;
            flooder
        });
        let mute_log = log.clone();
        let mute = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let mut mute = connect("mute", &mute_log).await;
            let connected = Instant::now();
            mute.expect_quiet(Duration::from_millis(59_900)).await;
            mute.expect(no_hello_within(Duration::from_secs(60))).await;
            let late = Instant::now() - (connected + Duration::from_secs(60));
            // Connect's answer and the error each cross one 10 ms link.
            assert!(late <= 2 * tick, "the Hello timeout came {late:?} late");
            mute.expect_closed().await;
        });
        let slow_reader = tokio::spawn(async move {
            let seen = read_flood(&mut slow, "flood", LINES, Duration::from_secs(5)).await;
            (slow, seen)
        });
        let watched = read_flood(&mut watch, "flood", LINES, Duration::from_secs(5)).await;
        let (_slow, slowly) = slow_reader.await.expect("the slow reader");
        mute.await.expect("the silent socket");
        let _flooder = writer.await.expect("the flooder");

        // The burst at once, then exactly one line per 200 ms (± a tick).
        let first = watched.arrivals[0];
        assert!(first - start <= 3 * tick, "the burst waited");
        for k in 1..10 {
            assert_eq!(watched.arrivals[k], first, "burst line {k}");
        }
        for k in 10..LINES {
            let gap = watched.arrivals[k] - watched.arrivals[k - 1];
            let expected = Duration::from_millis(200);
            assert!(
                gap + tick >= expected && gap <= expected + tick,
                "line {k} came {gap:?} after the one before"
            );
        }
        // The sloth was dropped once, by the lag bound: far too early
        // for its queue to have reached its bound (about 960 lines).
        for seen in [&watched, &slowly] {
            let sloth_left = seen.left_of("sloth");
            assert_eq!(sloth_left.len(), 1, "the sloth left once");
            assert!(sloth_left[0] < 400, "dropped late: {sloth_left:?}");
        }
        let dropped_at = watched.arrivals[watched.left_of("sloth")[0]];
        assert!(dropped_at - start >= MAX_LAG, "dropped before its deadline");

        check_sloth_got_a_prefix_of_the_flood(sloth).await;
        Ok(())
    });
}

/// Reads notices until each of `names` has left; when each left.
async fn await_departures(client: &mut SimClient, names: &[&str]) -> Vec<(String, Instant)> {
    let mut gone = Vec::new();
    while gone.len() < names.len() {
        match client.next(Duration::from_secs(30)).await {
            Got::Frame(ServerFrame::Notice(notice)) => match parse_presence(&notice) {
                Some(Presence::Left(name)) if names.contains(&name) => {
                    gone.push((name.to_owned(), Instant::now()));
                }
                other => panic!("{}: got {other:?}", client.label()),
            },
            other => panic!(
                "{}: waiting for {names:?} to leave, got {other:?}",
                client.label()
            ),
        }
    }
    gone
}

/// With flood control off the same flood goes out as fast as the room can
/// send it. A reader on a slow link (300 bytes per 1 ms tick) falls four
/// seconds behind — within the lag bound — so it is never dropped and gets
/// every line at its own pace; the room waits for it no longer than the
/// hold budget, so the observer has the whole flood long before; and the
/// participant that never reads is dropped once its oldest line is 10 s
/// old, and told why if its socket will take it.
#[test]
fn without_flood_control_a_slow_reader_within_the_lag_bound_keeps_every_line_at_its_pace() {
    let mut world = World::new(SEED);
    world.duration = Duration::from_secs(120);
    world.config.room.flood = None;
    // The server writes in pieces of at most 64 bytes, so that turmoil's
    // window (counted in writes, not bytes) holds what a kernel's would,
    // a few KiB, and the never-reader's backlog stays in the server.
    world.pieces = PieceSize::AtMost(64);
    world.run_script(|log| async move {
        let (mut watch, mut slow, sloth, mut flooder) =
            cast(&log, 300, Duration::from_millis(1)).await;
        let start = Instant::now();
        let writer = tokio::spawn(async move {
            flooder.send_batch(&flood("flood", LINES)).await;
            flooder
        });
        let slow_reader = tokio::spawn(async move {
            let seen = read_flood(&mut slow, "flood", LINES, Duration::from_secs(5)).await;
            (slow, seen)
        });
        let watched = read_flood(&mut watch, "flood", LINES, Duration::from_secs(5)).await;
        let (mut slow, slowly) = slow_reader.await.expect("the slow reader");
        let _flooder = writer.await.expect("the flooder");
        // The slow reader took the flood at its own pace: 1.2 MB at 300 KB/s.
        let slow_took = *slowly.arrivals.last().expect("lines") - start;
        assert!(
            slow_took >= Duration::from_secs(3),
            "the flood reached the slow reader in only {slow_took:?}"
        );
        // The observer did not wait for it.
        let watch_took = *watched.arrivals.last().expect("lines") - start;
        println!("the flood took the observer {watch_took:?}, the slow reader {slow_took:?}");
        assert!(
            watch_took * 2 <= slow_took,
            "the observer moved at the slow reader's pace: {watch_took:?}"
        );
        // The sloth went 10 s after its first line was queued, for each.
        for client in [&mut watch, &mut slow] {
            let gone = await_departures(client, &["sloth"]).await;
            assert!(gone[0].1 - start >= MAX_LAG, "the sloth went early");
        }
        check_sloth_got_a_prefix_of_the_flood(sloth).await;
        Ok(())
    });
}

/// A reader that reads, but far too slowly for the room, pays for it alone.
/// Flood control off, one participant writes 1,200 lines of 1,000
/// characters in one go; beside an observer that keeps up, a participant
/// reads 10 bytes a millisecond (10 KB/s): enough to look alive, far too
/// little for the room. The observer gets the whole flood at once (the
/// room waits for the slow reader only for the hold budget), and the slow
/// reader is dropped once its oldest line is 10 s old — at its pace the
/// flood would take two minutes — and told why if its socket takes it.
#[test]
fn a_reader_too_slow_for_the_room_is_dropped_instead_of_holding_it() {
    let mut world = World::new(SEED);
    world.duration = Duration::from_secs(120);
    world.config.room.flood = None;
    world.pieces = PieceSize::AtMost(64);
    world.run_script(|log| async move {
        let (mut watch, mut slow, _sloth, mut flooder) =
            cast(&log, 10, Duration::from_millis(1)).await;
        let start = Instant::now();
        let writer = tokio::spawn(async move {
            flooder.send_batch(&flood("flood", LINES)).await;
            flooder
        });
        let slow_reader = tokio::spawn(async move {
            // A prefix of the flood, possibly the reason (if its socket
            // took it), then the close.
            let mut lines = 0;
            let mut told = false;
            loop {
                match slow.next(Duration::from_secs(30)).await {
                    Got::Frame(frame) if frame == left("sloth") => {}
                    Got::Frame(frame) if frame == too_far_behind() => told = true,
                    Got::Frame(frame) => {
                        assert!(!told, "a line after the reason");
                        assert_eq!(frame, delivered("flood", lines), "slow: line {lines}");
                        lines += 1;
                    }
                    Got::Closed | Got::Failed(_) => break,
                    Got::Nothing => {
                        // turmoil parks the server's end behind a full
                        // window; a write of ours lets it through.
                        let _ = slow.try_send(&ClientFrame::Chat("hello?".into())).await;
                    }
                }
            }
            lines
        });
        let watched = read_flood(&mut watch, "flood", LINES, Duration::from_secs(15)).await;
        let took = *watched.arrivals.last().expect("lines") - start;
        println!("the flood took the observer {took:?}");
        assert!(
            took <= Duration::from_secs(2),
            "the room moved at the slow reader's pace: the flood took {took:?}"
        );
        let gone = await_departures(&mut watch, &["slow", "sloth"]).await;
        let slow_got = slow_reader.await.expect("the slow reader");
        let _flooder = writer.await.expect("the flooder");
        assert!(slow_got < LINES, "the slow reader kept up after all");
        for (name, at) in gone {
            let after = at - start;
            assert!(
                after >= MAX_LAG && after <= MAX_LAG + Duration::from_secs(1),
                "{name} was dropped {after:?} into the flood"
            );
        }
        Ok(())
    });
}

/// Readers too slow for the room cannot hide under the heavy mark and keep
/// the server-wide budget spent instead. Flood control off, a budget of
/// 2 MiB (the room pauses at 1 MiB charged), four participants reading
/// 10 KB/s each and an observer that keeps up; one participant writes
/// 1,200 lines of 1,000 characters in one go. No slow queue is heavy, so
/// it is the budget that pauses the room — for its own hold budget at
/// most; then the furthest behind are dropped until the queues are under
/// the resume mark, again whenever they pass the mark with the hold
/// spent. Every slow reader goes, long before its lag would have dropped
/// it, and the observer gets every line in about the time the flood takes
/// it plus one hold, not at 10 KB/s (two minutes).
#[test]
fn slow_readers_cannot_keep_the_budget_spent() {
    const SLOW: usize = 4;
    let mut world = World::new(SEED);
    world.duration = Duration::from_secs(120);
    world.config.room.flood = None;
    world.config.max_queued_total = 2 << 20;
    world.pieces = PieceSize::AtMost(64);
    world.run_script(|log| async move {
        let mut watch = observer("watch", &log).await;
        let mut slow = Vec::new();
        for i in 0..SLOW {
            let name = format!("slow{i}");
            let tick = Duration::from_millis(1);
            let mut reader = connect_paced(&name, &log, PieceSize::AtMost(64), 10, tick).await;
            reader.join(&name).await;
            watch.expect(joined(&name)).await;
            slow.push(reader);
        }
        let mut flooder = participant("flood", &log).await;
        watch.expect(joined("flood")).await;
        let start = Instant::now();
        let writer = tokio::spawn(async move {
            flooder.send_batch(&flood("flood", LINES)).await;
            flooder
        });
        let watched = read_flood(&mut watch, "flood", LINES, Duration::from_secs(15)).await;
        let _flooder = writer.await.expect("the flooder");
        drop(slow);
        for i in 0..SLOW {
            let left = watched.left_of(&format!("slow{i}"));
            assert_eq!(left.len(), 1, "slow{i} left once, within the flood");
            let dropped_at = watched.arrivals[left[0].min(LINES - 1)];
            assert!(
                dropped_at - start < MAX_LAG,
                "slow{i} was dropped only by its lag, {:?} in",
                dropped_at - start
            );
        }
        let took = *watched.arrivals.last().expect("lines") - start;
        println!("the flood took the observer {took:?}");
        assert!(
            took <= Duration::from_secs(3),
            "the room moved at the slow readers' pace: the flood took {took:?}"
        );
        Ok(())
    });
}

/// Sixteen flooders at once, flood control off, a 1 s Hello timeout: a
/// silent socket is still closed on time. Deadlines fire every turn of the
/// room, whatever else is waiting.
#[test]
fn timers_fire_on_time_beside_sixteen_flooders() {
    const FLOODERS: usize = 16;
    const EACH: usize = 100;
    let mut world = World::new(SEED);
    world.duration = Duration::from_secs(60);
    world.config.room.flood = None;
    world.config.room.hello_timeout = Duration::from_secs(1);
    let tick = world.tick;
    world.run_script(|log| async move {
        let mut watch = observer("watch", &log).await;
        let mut flooders = Vec::new();
        for f in 0..FLOODERS {
            let name = format!("f{f:02}");
            flooders.push((participant(&name, &log).await, name.clone()));
            watch.expect(joined(&name)).await;
        }
        let mut writers = Vec::new();
        for (mut flooder, name) in flooders {
            writers.push(tokio::spawn(async move {
                // A dropped flooder's write may fail: that is its problem.
                let bytes: Vec<u8> = flood(&name, EACH).iter().flat_map(frame_bytes).collect();
                let _ = flooder.try_send_raw(&bytes).await;
                flooder
            }));
        }
        let mut mute = connect("mute", &log).await;
        let connected = Instant::now();
        let mute_task = tokio::spawn(async move {
            mute.expect(no_hello_within(Duration::from_secs(1))).await;
            let at = Instant::now() - connected;
            assert!(
                at >= Duration::from_secs(1) && at <= Duration::from_secs(1) + 3 * tick,
                "the Hello timeout came after {at:?}"
            );
        });
        // The observer keeps reading until the room is quiet: each flooder's
        // lines in order. (The flooders never read the others' floods, so
        // the server may drop some of them as too far behind: then nothing
        // more comes from that one.)
        let mut next = [0usize; FLOODERS];
        let mut gone = [false; FLOODERS];
        loop {
            match watch.next(Duration::from_secs(2)).await {
                Got::Frame(ServerFrame::Message(m)) => {
                    let line = parse_line(&m).expect("a chat line");
                    let f = flooder_number(line.sender);
                    assert!(!gone[f], "a line from {} after it left", line.sender);
                    assert_eq!(
                        ServerFrame::Message(m.clone()),
                        delivered(line.sender, next[f])
                    );
                    next[f] += 1;
                }
                Got::Frame(ServerFrame::Notice(n)) if parse_presence(&n).is_some() => {
                    let Some(Presence::Left(name)) = parse_presence(&n) else {
                        panic!("watch got {n:?}");
                    };
                    gone[flooder_number(name)] = true;
                }
                Got::Nothing => break,
                other => panic!("watch got {other:?}"),
            }
        }
        let delivered_lines: usize = next.iter().sum();
        assert!(
            delivered_lines >= EACH,
            "only {delivered_lines} lines went through"
        );
        mute_task.await.expect("the silent socket");
        for writer in writers {
            let _ = writer.await;
        }
        Ok(())
    });
}

/// Regression: with every sender paused on the server-wide budget, the room
/// must still wake when the queues drain (it once slept for ever, because
/// nothing asked to be told). A budget of 256 KiB, readers on slow links,
/// and a flood of 300 lines: every reader gets every line. The budget may
/// hold the room for 5 s here, longer than the readers need to drain, so
/// only the queues' own wake-up can resume it (never the hold running out).
#[test]
fn a_room_paused_on_the_server_budget_resumes_when_it_drains() {
    const FLOOD: usize = 300;
    let mut world = World::new(SEED);
    world.duration = Duration::from_secs(120);
    world.config.room.flood = None;
    world.config.max_queued_total = 256 * 1024;
    world.config.hold_budget = Duration::from_secs(5);
    world.run_script(|log| async move {
        let mut readers = Vec::new();
        for i in 0..4 {
            let label = format!("reader{i}");
            let tick = Duration::from_millis(1);
            let mut reader = connect_paced(&label, &log, PieceSize::AtMost(64), 200, tick).await;
            reader.hello(Role::Observer).await;
            readers.push(reader);
        }
        let mut flooder = participant("flood", &log).await;
        for reader in &mut readers {
            reader.expect(joined("flood")).await;
        }
        let writer = tokio::spawn(async move {
            flooder.send_batch(&flood("flood", FLOOD)).await;
            flooder
        });
        let mut tasks = Vec::new();
        for mut reader in readers {
            tasks.push(tokio::spawn(async move {
                read_flood(&mut reader, "flood", FLOOD, Duration::from_secs(10)).await;
                reader
            }));
        }
        for task in tasks {
            task.await.expect("a reader got every line");
        }
        let _flooder = writer.await.expect("the flooder");
        Ok(())
    });
}

/// The number in a flooder's name, `f07`.
fn flooder_number(name: &str) -> usize {
    name.strip_prefix('f')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{name:?} is no flooder"))
}
