//! Whether the server paced loadgen's senders, so that the latency figures
//! measured its flood control instead of the server.
//!
//! The server gives no sign of pacing on the wire: flood control holds a
//! sender's next line and stops reading that socket until the line is due
//! (see `logosnet::room::flood`). Two things could show it from outside:
//! - **loadgen's send lag**, once the socket stops taking bytes. It cannot
//!   be trusted here: the kernel's buffers on both ends (hundreds of KiB)
//!   take a whole run's lines of a paced sender (at 20 lines a second for
//!   10 s, 16 KiB), so loadgen goes on writing on time and its send lag
//!   stays near zero while the lines wait in the server's socket.
//! - **lines held back**: lines that left loadgen on time and still took
//!   a long time to arrive. That is what a paced run shows (issue 21: at
//!   5,000 msgs/s a delivery median of 2.5 s), and what this module reads.
//!
//! The rule: the delivery median is at least [`HELD_BACK`] while loadgen's
//! send lag p99 is at most half of it, so most of each line's wait came
//! after loadgen wrote it. An unpaced server here delivers the median line
//! in well under a millisecond at the default rate (BENCHMARKS.md), three
//! orders of magnitude below the bound. A server so overloaded that it holds
//! half its lines for a second matches the rule too; the line says
//! "(flood control?)" for that reason, and such a run is no pass either.
//! This module reads only the two histograms; it decides nothing else.

use std::time::Duration;

use hdrhistogram::Histogram;

/// The delivery median at or above which lines count as held back by the
/// server: a second, about a thousand times an unpaced server's median at
/// the default rate, and five times the default flood allowance's spacing
/// (5 lines a second), which a paced sender's backlog soon exceeds.
pub const HELD_BACK: Duration = Duration::from_secs(1);

/// The delivery median when the run shows the server pacing its senders
/// (see the module docs); `None` when it does not. Both histograms are in
/// microseconds.
pub(super) fn held_back(delivery: &Histogram<u64>, send_lag: &Histogram<u64>) -> Option<Duration> {
    if delivery.is_empty() {
        return None;
    }
    let median = delivery.value_at_quantile(0.5);
    let lag = if send_lag.is_empty() {
        0
    } else {
        send_lag.value_at_quantile(0.99)
    };
    let bound = u64::try_from(HELD_BACK.as_micros()).unwrap_or(u64::MAX);
    (median >= bound && lag <= median / 2).then(|| Duration::from_micros(median))
}

/// The one line that says so, with the median it saw.
pub(super) fn line(median: Duration) -> String {
    format!(
        "the server is pacing senders (flood control?): start it with --flood-rate 0 to measure the server (half the lines took {:.1} s or more to arrive although loadgen sent them on time)",
        median.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::new_histogram;

    fn histogram(values_ms: &[u64]) -> Histogram<u64> {
        let mut h = new_histogram();
        for ms in values_ms {
            h.record(ms * 1000).unwrap();
        }
        h
    }

    #[test]
    fn lines_held_a_second_after_an_on_time_send_are_pacing() {
        let delivery = histogram(&[0, 800, 1_600, 2_400, 3_200]);
        let on_time = histogram(&[0, 0, 1, 0, 2]);
        let median = held_back(&delivery, &on_time).expect("paced");
        assert!((1.59..1.61).contains(&median.as_secs_f64()), "{median:?}");
        assert_eq!(
            line(median),
            "the server is pacing senders (flood control?): start it with --flood-rate 0 to measure the server (half the lines took 1.6 s or more to arrive although loadgen sent them on time)"
        );
    }

    #[test]
    fn a_fast_server_or_a_late_loadgen_is_not_pacing() {
        let on_time = histogram(&[0, 1, 2]);
        // Fast deliveries.
        assert_eq!(held_back(&histogram(&[1, 2, 3, 900]), &on_time), None);
        // Slow, but loadgen itself sent late: its own lag explains it.
        let late = histogram(&[900, 1_500, 2_000]);
        assert_eq!(held_back(&histogram(&[1_000, 1_600, 2_100]), &late), None);
        // Nothing delivered: nothing to say.
        assert_eq!(held_back(&new_histogram(), &on_time), None);
    }
}
