//! The named scenarios of issue 4, one test each, asserting exact frames.

use std::time::Duration;

use logosnet::protocol::{ClientFrame, Role, ServerFrame};

use crate::harness::{World, observer, participant};

const SEED: u64 = 4;

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
