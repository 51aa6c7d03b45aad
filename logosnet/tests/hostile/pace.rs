//! The pace of a full room on the real binary: 255 participants talking at
//! their flood allowance and reading slowly, so every queue falls behind at
//! once. The server-wide budget and the lag bound let nobody set the pace,
//! and the server's peak memory stays under the bound SECURITY.md states;
//! and SIGTERM in the middle of a connect/close storm always ends the
//! server.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use logosnet::protocol::{ClientFrame, MAX_MESSAGE_CHARS, Role, too_far_behind};
use logosnet::server::MAX_QUEUED_TOTAL;
use testkit::{Got, Peer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::server_process::{STEP_LIMIT, ServerProcess, bounded, memory_bound_kib, raise_fd_limit};

/// Participants in the full room.
const PARTICIPANTS: usize = 255;
/// Lines each sends: its burst of 10, then 5 a second for 4 s.
const LINES: usize = 30;

/// 255 participants each send 30 lines of 1,000 characters at once (flood
/// control lets them through at the allowance: 10 at once, then 5 a
/// second: 1.3 MB/s to each reader) and read one frame every 20 ms (about
/// 50 KB/s). Every queue falls behind together: the budget pauses the room
/// for its hold, then drops whoever drained least, and the lag bound (2 s
/// here) the rest. Each participant ends told it is too far behind or
/// having read to the end; the server's peak resident memory stays under
/// the bound for 256 connections at the default budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_room_at_its_allowance_reading_slowly_stays_within_the_memory_bound() {
    raise_fd_limit();
    let server = ServerProcess::start(&["--max-lag", "2"]);
    let addr = server.addr;
    let (rss_before, _) = server.memory_kib();
    bounded(Duration::from_secs(240), async {
        let mut members = Vec::new();
        for i in 0..PARTICIPANTS {
            members.push(Peer::participant(addr, &format!("p{i:03}")).await);
        }
        let mut tasks = JoinSet::new();
        for (i, member) in members.into_iter().enumerate() {
            let (mut reader, mut writer) = member.split();
            let line = |k: usize| {
                let head = format!("p{i:03} {k:02} ");
                format!("{head}{}", "a".repeat(MAX_MESSAGE_CHARS - head.len()))
            };
            let lines: Vec<ClientFrame> = (0..LINES).map(|k| ClientFrame::Chat(line(k))).collect();
            tasks.spawn(async move {
                // A dropped member's writes may fail: that is its problem.
                let _ = writer
                    .try_send_raw(
                        &lines
                            .iter()
                            .flat_map(testkit::peer::frame_bytes)
                            .collect::<Vec<u8>>(),
                    )
                    .await;
                let mut told = false;
                loop {
                    match reader.next(STEP_LIMIT).await {
                        Got::Frame(frame) => {
                            told |= frame == too_far_behind();
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Got::Nothing => panic!("p{i:03}: neither dropped nor done"),
                        _ => return told,
                    }
                }
            });
        }
        let mut told = 0;
        while let Some(done) = tasks.join_next().await {
            told += usize::from(done.expect("a member"));
        }
        let (rss, hwm) = server.memory_kib();
        let bound = memory_bound_kib(PARTICIPANTS + 1, MAX_QUEUED_TOTAL);
        println!(
            "{told} of {PARTICIPANTS} told they were too far behind; server VmRSS \
             {rss_before} KiB at start, {rss} KiB at the end, peak (VmHWM) {hwm} KiB; \
             bound {bound} KiB"
        );
        assert!(hwm < bound, "peak RSS {hwm} KiB over the bound {bound} KiB");
        assert!(told > 0, "nobody fell behind: the test proves nothing");
    })
    .await;
}

/// SIGTERM while four tasks open and close connections as fast as they
/// can, some saying Hello first: the server exits with status 0 every time,
/// within its 5 s grace (the support's wait allows 10 s). It once hung in
/// 4 of 25 tries: connections accepted just before the stop were never
/// known to the room, their tasks never ended, and the last wait had no
/// bound. 30 tries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_connect_close_storm_always_ends_the_server() {
    const TRIES: u64 = 30;
    raise_fd_limit();
    let mut took = Vec::new();
    for attempt in 0..TRIES {
        let mut server = ServerProcess::start(&[]);
        let addr = server.addr;
        let stop = Arc::new(AtomicBool::new(false));
        let mut storm = JoinSet::new();
        for t in 0..4 {
            let stop = stop.clone();
            storm.spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let Ok(mut stream) = TcpStream::connect(addr).await else {
                        continue;
                    };
                    if (n + t).is_multiple_of(2) {
                        let hello = testkit::peer::frame_bytes(&ClientFrame::Hello(Role::Observer));
                        let _ = stream.write_all(&hello).await;
                    }
                }
            });
        }
        // Let the storm run a little, a different while each try.
        tokio::time::sleep(Duration::from_millis(20 + 7 * attempt)).await;
        let started = std::time::Instant::now();
        let (server, status) = tokio::task::spawn_blocking(move || {
            let status = server.signal_and_wait("TERM");
            (server, status)
        })
        .await
        .expect("the wait");
        took.push(started.elapsed());
        stop.store(true, Ordering::Relaxed);
        while storm.join_next().await.is_some() {}
        assert!(status.success(), "try {attempt}: exit status {status}");
        drop(server);
    }
    let worst = took.iter().max().copied().unwrap_or_default();
    println!("{TRIES} tries: every one exited; the slowest took {worst:?}");
}
