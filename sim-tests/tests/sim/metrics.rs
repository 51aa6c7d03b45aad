//! The metrics' drop reasons, in simulated time: each way the server can
//! close a connection on it (too far behind, the server-wide budget, a
//! protocol violation, no Hello, no name, a frame not finished) adds one
//! to its own reason in `logosnet_drops_total` and to no other, and no
//! refusal is counted for it. The figures are read from the server's
//! [`Metrics`] (what a scrape formats; the scrape itself is tested end to
//! end in `logosnet/tests/metrics.rs`).

use std::sync::Arc;
use std::time::Duration;

use logosnet::protocol::{Role, joined, left};
use logosnet::server::Metrics;
use logosnet::server::metrics::{Dropped, Refusal, Snapshot};

use crate::harness::{World, observer, participant};

const SEED: u64 = 20;

/// A world whose timeouts (Hello, name, frame) are each 2 s, within a
/// peer's patience.
fn short_timeouts() -> World {
    let mut world = World::timers(SEED, Duration::from_secs(60));
    world.config.room.hello_timeout = Duration::from_secs(2);
    world.config.room.username_timeout = Duration::from_secs(2);
    world.config.frame_deadline = Duration::from_secs(2);
    world
}

/// `world` counting in fresh metrics.
fn counted(mut world: World) -> (World, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    world.config.metrics = Some(metrics.clone());
    (world, metrics)
}

/// One drop for `reason`, none for any other, no refusal.
fn only_drop(figures: &Snapshot, reason: Dropped) {
    for other in Dropped::ALL {
        assert_eq!(
            figures.dropped(other),
            u64::from(other == reason),
            "{other:?} after a drop for {reason:?}: {figures:#?}"
        );
    }
    for refusal in Refusal::ALL {
        assert_eq!(figures.refused(refusal), 0, "{refusal:?}: {figures:#?}");
    }
}

#[test]
fn a_reader_too_far_behind_counts_one_drop_for_it() {
    let mut world = World::new(SEED);
    world.config.room.flood = None;
    world.config.max_lag = Duration::from_secs(1);
    let (world, metrics) = counted(world);
    world.run_script(|log| async move {
        let mut watcher = observer("watcher", &log).await;
        let carol = participant("carol", &log).await;
        let mut alice = participant("alice", &log).await;
        watcher.expect(joined("carol")).await;
        watcher.expect(joined("alice")).await;
        // carol never reads; alice floods until the watcher hears her go.
        let line = "z".repeat(995);
        let mut gone = false;
        for _ in 0..2_000 {
            alice.chat(&line).await;
            loop {
                match watcher.next(Duration::from_millis(50)).await {
                    testkit::Got::Frame(frame) if frame == left("carol") => gone = true,
                    testkit::Got::Frame(_) => continue,
                    _ => {}
                }
                break;
            }
            if gone {
                break;
            }
        }
        assert!(gone, "carol was never dropped");
        only_drop(&metrics.snapshot(), Dropped::TooFarBehind);
        drop(carol);
        Ok(())
    });
}

#[test]
fn a_member_shed_for_the_budget_counts_one_drop_for_it() {
    let mut world = World::new(SEED);
    world.config.room.flood = None;
    // Past any flood here: only the budget can drop carol.
    world.config.max_lag = Duration::from_secs(3600);
    world.config.max_queued_total = 256 * 1024;
    let (world, metrics) = counted(world);
    world.run_script(|log| async move {
        let mut watcher = observer("watcher", &log).await;
        let carol = participant("carol", &log).await;
        let mut alice = participant("alice", &log).await;
        watcher.expect(joined("carol")).await;
        watcher.expect(joined("alice")).await;
        let line = "z".repeat(995);
        let mut gone = false;
        for _ in 0..2_000 {
            alice.chat(&line).await;
            loop {
                match watcher.next(Duration::from_millis(50)).await {
                    testkit::Got::Frame(frame) if frame == left("carol") => gone = true,
                    testkit::Got::Frame(_) => continue,
                    _ => {}
                }
                break;
            }
            if gone {
                break;
            }
        }
        assert!(gone, "carol was never dropped");
        let figures = metrics.snapshot();
        only_drop(&figures, Dropped::BudgetShed);
        assert!(
            figures.pauses >= 1,
            "the budget paused the room: {figures:#?}"
        );
        assert!(figures.paused_for > Duration::ZERO, "{figures:#?}");
        drop(carol);
        Ok(())
    });
}

#[test]
fn a_protocol_violation_counts_one_drop_for_it() {
    let (world, metrics) = counted(World::new(SEED));
    world.run_script(|log| async move {
        let mut rude = observer("rude", &log).await;
        // A frame of one byte whose tag names no frame.
        rude.send_raw(&[0, 0, 0, 1, 0xff]).await;
        rude.until_closed().await;
        only_drop(&metrics.snapshot(), Dropped::Violation);
        Ok(())
    });
}

#[test]
fn no_hello_in_time_counts_one_drop_for_it() {
    let (world, metrics) = counted(short_timeouts());
    world.run_script(|log| async move {
        let mut silent = crate::harness::connect("silent", &log).await;
        silent.until_closed().await;
        only_drop(&metrics.snapshot(), Dropped::HelloTimeout);
        Ok(())
    });
}

#[test]
fn no_name_in_time_counts_one_drop_for_it() {
    let (world, metrics) = counted(short_timeouts());
    world.run_script(|log| async move {
        let mut nameless = crate::harness::connect("nameless", &log).await;
        nameless.hello(Role::Participant).await;
        nameless.until_closed().await;
        only_drop(&metrics.snapshot(), Dropped::UsernameTimeout);
        Ok(())
    });
}

#[test]
fn a_frame_not_finished_in_time_counts_one_drop_for_it() {
    let (world, metrics) = counted(short_timeouts());
    world.run_script(|log| async move {
        let mut stuck = participant("stuck", &log).await;
        // A header for ten bytes, and one of them.
        stuck.send_raw(&[0, 0, 0, 10, 3]).await;
        stuck.until_closed().await;
        only_drop(&metrics.snapshot(), Dropped::FrameTimeout);
        Ok(())
    });
}
