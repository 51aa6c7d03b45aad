//! The real `logosnet_server` binary as a child process on 127.0.0.1, port
//! 0, with what the storm and memory tests read from `/proc` about it (open
//! file descriptors, resident memory): the reason those tests need a
//! process at all. The peers are `testkit`'s.

use std::time::Duration;

use logosnet::protocol::{MAX_MESSAGE_CHARS, public_line};
use logosnet::server::{IDLE_BUFFER_BYTES, INBOX_BYTES, MAX_DECODER_BYTES};
use testkit::peer::frame_bytes as encode;

/// Longest any single expected step may take before the test gives up. It
/// only bounds a hung test; nothing asserts how fast anything is.
pub const STEP_LIMIT: Duration = Duration::from_secs(30);

/// The running server: the crate's shared launcher (`tests/support`),
/// with the `/proc` readings the storm tests need added below.
pub use crate::support::Server as ServerProcess;

impl ServerProcess {
    /// How many file descriptors the server has open now.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("read /proc/<pid>/fd")
            .count()
    }

    /// `(VmRSS, VmHWM)` in KiB: resident memory now and at its peak.
    pub fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/<pid>/status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or_else(|| panic!("no {name} in /proc status"))
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Polls until the server holds at most `target` descriptors, within
    /// [`FDS_DEADLINE`] (closes may lag on a loaded machine, and nothing
    /// announces them); returns the last count seen, for the caller to
    /// assert on.
    pub async fn wait_for_fds_at_most(&self, target: usize) -> usize {
        let deadline = tokio::time::Instant::now() + FDS_DEADLINE;
        loop {
            let now = self.open_fds();
            if now <= target || tokio::time::Instant::now() >= deadline {
                return now;
            }
            // A pause between looks, not a guess at how long closes take.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// How long the descriptor tests wait for the server's closes to show in
/// `/proc`: generous, since it only bounds a failing test.
pub const FDS_DEADLINE: Duration = Duration::from_secs(60);

/// Lets this test process open the thousands of sockets the storms need.
pub fn raise_fd_limit() {
    rlimit::increase_nofile_limit(u64::MAX).expect("raise RLIMIT_NOFILE");
}

/// Runs a whole scenario under an overall bound, so that a hang fails the
/// test instead of stalling the suite.
pub async fn bounded<F: std::future::Future<Output = ()>>(limit: Duration, scenario: F) {
    tokio::time::timeout(limit, scenario)
        .await
        .unwrap_or_else(|_| panic!("scenario did not finish within {limit:?}"));
}

/// Resident memory the server may reach, from SECURITY.md: a base for the
/// binary, runtime and allocator; a fixed amount per connection (its
/// decoder, its inbox and one line past it, its two emptied queue buffers,
/// the task); and the outgoing queues, charged by the memory that holds
/// them, which the room stops filling at half of `--max-queued-total`,
/// plus one longest line to every member already taken — the last push
/// may double one buffer, so twice that; in KiB.
pub fn memory_bound_kib(connections: usize, max_queued_total: usize) -> u64 {
    const BASE: usize = 16 << 20;
    const TASK: usize = 4096;
    let longest_line = encode(&public_line("x", &"\u{10FFFF}".repeat(MAX_MESSAGE_CHARS))).len();
    let per_connection =
        MAX_DECODER_BYTES + INBOX_BYTES + longest_line + 2 * IDLE_BUFFER_BYTES + TASK;
    let queues = 2 * (max_queued_total / 2 + 510 * longest_line);
    ((BASE + connections * per_connection + queues) / 1024) as u64
}
