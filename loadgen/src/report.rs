//! The report: a table on stdout, the same figures as JSON, and the delivery
//! histogram in HdrHistogram's percentile-distribution (`.hgrm`) format.
//!
//! The JSON field names are stable: [`Report`] and its parts are the schema,
//! each field documented where it is declared; `schema_version` changes if a
//! field is renamed or its meaning changes (adding a field does not).
//! Durations are seconds (`_s`), latencies microseconds (`_us`), memory KiB
//! (`_kib`).

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::check::Tally;
use crate::client::ProbeAnswer;
use crate::run::{NoticeFaults, ProblemCounts, RunData};
use crate::stats::{CpuTime, Summary};

/// Bumped when an existing field is renamed or changes meaning.
pub const SCHEMA_VERSION: u32 = 1;

/// The whole report (the JSON document).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// See [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// loadgen's version.
    pub loadgen_version: &'static str,
    /// True when every check passed (the exit status is 0 exactly then).
    pub passed: bool,
    /// Why the run failed, one line each; empty when it passed.
    pub failures: Vec<String>,
    /// The settings of the run.
    pub config: ConfigReport,
    /// Filling the room and the capacity probe.
    pub room: RoomReport,
    /// The traffic phase.
    pub traffic: TrafficReport,
    /// The delivery verdict.
    pub deliveries: DeliveryReport,
    /// Latency summaries.
    pub latency: LatencyReport,
    /// Join/leave notices that observers missed or saw twice.
    pub notices: NoticeFaults,
    /// Problems by kind.
    pub problems: ProblemCounts,
    /// The first few problems, described.
    pub problem_examples: Vec<String>,
    /// loadgen's own cost.
    pub loadgen: ProcessReport,
    /// The server's cost, when `--server-pid` was given.
    pub server: Option<ProcessReport>,
    /// The whole run, first connect to last close, seconds.
    pub wall_s: f64,
}

/// The settings of the run.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigReport {
    /// The server address used.
    pub server: String,
    /// Participants asked for.
    pub participants: usize,
    /// Observers asked for.
    pub observers: usize,
    /// Messages per second offered.
    pub rate: f64,
    /// Seconds of traffic.
    pub duration_s: f64,
    /// Characters per line.
    pub size: usize,
    /// Fraction of private messages.
    pub private_fraction: f64,
    /// Seed.
    pub seed: u64,
    /// Runtime worker threads.
    pub threads: usize,
}

/// Filling the room.
#[derive(Debug, Clone, Serialize)]
pub struct RoomReport {
    /// Participants that got a name accepted.
    pub participants_joined: u64,
    /// Observers that got `Accepted`.
    pub observers_joined: u64,
    /// First connect until the whole room was in, seconds.
    pub join_time_s: f64,
    /// The 256th participant: `"full"` (refused, as it must be),
    /// `"skipped"`, or what happened instead.
    pub probe_participant: String,
    /// The 256th observer, likewise.
    pub probe_observer: String,
}

/// The traffic phase.
#[derive(Debug, Clone, Serialize)]
pub struct TrafficReport {
    /// Lines sent in total.
    pub messages_sent: u64,
    /// Of which public.
    pub public_sent: u64,
    /// Of which private.
    pub private_sent: u64,
    /// First scheduled slot until the last sender finished, seconds.
    pub traffic_s: f64,
    /// First scheduled slot until every delivery arrived, seconds.
    pub traffic_and_drain_s: f64,
    /// Lines sent per second over `traffic_s`.
    pub send_rate: f64,
    /// True if every delivery arrived before the drain timeout.
    pub drained: bool,
    /// True if senders were still behind schedule when the traffic phase's
    /// limit (duration + phase timeout) ran out and the rest was dropped.
    pub fell_behind: bool,
}

/// The delivery verdict.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryReport {
    /// Deliveries that should have happened.
    pub expected: u64,
    /// Expected deliveries that happened, each counted once.
    pub delivered: u64,
    /// Deliveries per second over `traffic_and_drain_s`.
    pub per_second: f64,
    /// Expected deliveries that never happened.
    pub lost: u64,
    /// Repeated receipts.
    pub duplicated: u64,
    /// Receipts after a later message of the same sender.
    pub out_of_order: u64,
    /// Receipts that should not have happened (wrong recipient, own line,
    /// public/private mix-up, unknown sequence number).
    pub misdelivered: u64,
}

/// Latency summaries, microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyReport {
    /// Scheduled send time → receipt, every delivery (no coordinated
    /// omission: a late send counts against latency).
    pub delivery: Summary,
    /// Scheduled send time → write started: loadgen's own lag, included in
    /// `delivery`.
    pub send_lag: Summary,
    /// Connect started → `Accepted`, every client.
    pub connect: Summary,
    /// `Hello` written → `UsernameAccepted`, every participant.
    pub join: Summary,
}

/// One process's cost.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessReport {
    /// The process id (the server's; 0 for loadgen itself).
    pub pid: u32,
    /// CPU over the whole run, seconds (loadgen only; 0 for the server).
    pub cpu_total_s: f64,
    /// CPU over traffic and drain, seconds.
    pub cpu_traffic_s: f64,
    /// That CPU as a share of one core over traffic and drain (1.0 = one
    /// core busy throughout).
    pub cpu_traffic_cores: f64,
    /// Peak resident set size (`VmHWM`), KiB.
    pub peak_rss_kib: Option<u64>,
}

fn probe_text(answer: &Option<ProbeAnswer>) -> String {
    match answer {
        None => "skipped".to_owned(),
        Some(ProbeAnswer::Full) => "full".to_owned(),
        Some(ProbeAnswer::Other(what)) => what.clone(),
    }
}

fn cores(cpu: CpuTime, secs: f64) -> f64 {
    if secs > 0.0 {
        cpu.total().as_secs_f64() / secs
    } else {
        0.0
    }
}

impl Report {
    /// Builds the report from what the run measured.
    pub fn new(data: &RunData) -> Self {
        let c = &data.config;
        let window = data.traffic_and_drain.as_secs_f64();
        let Tally {
            expected,
            delivered,
            lost,
            duplicated,
            out_of_order,
            misdelivered,
        } = data.tally;
        let (sent, private) = data.sent;
        Self {
            schema_version: SCHEMA_VERSION,
            loadgen_version: env!("CARGO_PKG_VERSION"),
            passed: data.passed(),
            failures: data.failures(),
            config: ConfigReport {
                server: data.addr.to_string(),
                participants: c.participants,
                observers: c.observers,
                rate: c.rate,
                duration_s: c.duration,
                size: c.size,
                private_fraction: c.private,
                seed: c.seed,
                threads: c.threads,
            },
            room: RoomReport {
                participants_joined: data.joined.0,
                observers_joined: data.joined.1,
                join_time_s: data.room_fill.as_secs_f64(),
                probe_participant: probe_text(&data.probe.0),
                probe_observer: probe_text(&data.probe.1),
            },
            traffic: TrafficReport {
                messages_sent: sent,
                public_sent: sent - private,
                private_sent: private,
                traffic_s: data.traffic.as_secs_f64(),
                traffic_and_drain_s: window,
                send_rate: if data.traffic.is_zero() {
                    0.0
                } else {
                    sent as f64 / data.traffic.as_secs_f64()
                },
                drained: data.drained,
                fell_behind: data.behind,
            },
            deliveries: DeliveryReport {
                expected,
                delivered,
                per_second: if window > 0.0 {
                    delivered as f64 / window
                } else {
                    0.0
                },
                lost,
                duplicated,
                out_of_order,
                misdelivered,
            },
            latency: LatencyReport {
                delivery: Summary::of(&data.delivery),
                send_lag: Summary::of(&data.send_lag),
                connect: Summary::of(&data.connect),
                join: Summary::of(&data.join),
            },
            notices: data.notice_faults,
            problems: data.problems,
            problem_examples: data.problem_examples.clone(),
            loadgen: ProcessReport {
                pid: 0,
                cpu_total_s: data.own_cpu.0.total().as_secs_f64(),
                cpu_traffic_s: data.own_cpu.1.total().as_secs_f64(),
                cpu_traffic_cores: cores(data.own_cpu.1, window),
                peak_rss_kib: data.own_peak_rss_kib,
            },
            server: c.server_pid.map(|pid| ProcessReport {
                pid,
                cpu_total_s: 0.0,
                cpu_traffic_s: data.server_cpu.map_or(0.0, |cpu| cpu.total().as_secs_f64()),
                cpu_traffic_cores: data.server_cpu.map_or(0.0, |cpu| cores(cpu, window)),
                peak_rss_kib: data.server_peak_rss_kib,
            }),
            wall_s: data.wall.as_secs_f64(),
        }
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let c = &self.config;
        let r = &self.room;
        let t = &self.traffic;
        let d = &self.deliveries;
        let row = |out: &mut String, label: &str, value: String| {
            let _ = writeln!(out, "  {label:<26} {value}");
        };
        let _ = writeln!(
            out,
            "loadgen report: {} participants + {} observers at {} msgs/s for {} s, {} chars, {:.0}% private, server {}",
            c.participants,
            c.observers,
            c.rate,
            c.duration_s,
            c.size,
            c.private_fraction * 100.0,
            c.server
        );
        row(
            &mut out,
            "connections",
            format!(
                "{} participants + {} observers",
                r.participants_joined, r.observers_joined
            ),
        );
        row(
            &mut out,
            "room join time",
            format!("{:.3} s", r.join_time_s),
        );
        row(
            &mut out,
            "capacity probe (256th)",
            format!(
                "participant: {}, observer: {}",
                r.probe_participant, r.probe_observer
            ),
        );
        row(
            &mut out,
            "messages sent",
            format!(
                "{} ({} public, {} private) in {:.3} s = {:.1}/s",
                t.messages_sent, t.public_sent, t.private_sent, t.traffic_s, t.send_rate
            ),
        );
        if t.traffic_s > 0.0 && t.send_rate < 0.95 * c.rate {
            row(
                &mut out,
                "warning",
                format!(
                    "loadgen sent {:.0}/s of the {} offered: it fell behind its schedule, so latency includes its own lag (see send lag)",
                    t.send_rate, c.rate
                ),
            );
        }
        row(
            &mut out,
            "deliveries",
            format!(
                "{} of {} expected in {:.3} s = {:.0}/s",
                d.delivered, d.expected, t.traffic_and_drain_s, d.per_second
            ),
        );
        row(
            &mut out,
            "lost / dup / out of order",
            format!(
                "{} / {} / {} (misdelivered {})",
                d.lost, d.duplicated, d.out_of_order, d.misdelivered
            ),
        );
        let _ = writeln!(
            out,
            "  {:<26} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "latency (ms)", "count", "p50", "p90", "p99", "p99.9", "max"
        );
        let l = &self.latency;
        for (name, s) in [
            ("delivery (sched→recv)", &l.delivery),
            ("send lag (sched→write)", &l.send_lag),
            ("connect (→Accepted)", &l.connect),
            ("join (Hello→Accepted)", &l.join),
        ] {
            let ms = |us: u64| us as f64 / 1000.0;
            let _ = writeln!(
                out,
                "  {name:<26} {:>9} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                s.count,
                ms(s.p50_us),
                ms(s.p90_us),
                ms(s.p99_us),
                ms(s.p99_9_us),
                ms(s.max_us)
            );
        }
        let lg = &self.loadgen;
        row(
            &mut out,
            "loadgen CPU",
            format!(
                "{:.2} s in traffic+drain ({:.0}% of a core), {:.2} s total, peak RSS {}",
                lg.cpu_traffic_s,
                lg.cpu_traffic_cores * 100.0,
                lg.cpu_total_s,
                kib(lg.peak_rss_kib)
            ),
        );
        if let Some(s) = &self.server {
            row(
                &mut out,
                "server",
                format!(
                    "pid {}: peak RSS {}, {:.2} s CPU in traffic+drain ({:.0}% of a core)",
                    s.pid,
                    kib(s.peak_rss_kib),
                    s.cpu_traffic_s,
                    s.cpu_traffic_cores * 100.0
                ),
            );
        }
        if self.passed {
            let _ = writeln!(out, "  result: PASS");
        } else {
            let _ = writeln!(out, "  result: FAIL");
            for f in &self.failures {
                let _ = writeln!(out, "    - {f}");
            }
            for e in &self.problem_examples {
                let _ = writeln!(out, "    e.g. {e}");
            }
        }
        out
    }
}

fn kib(value: Option<u64>) -> String {
    value.map_or_else(
        || "n/a".to_owned(),
        |k| format!("{:.1} MiB", k as f64 / 1024.0),
    )
}

/// Writes a histogram of microseconds as HdrHistogram's percentile
/// distribution text (the `.hgrm` format the HdrHistogram plotter reads),
/// values in milliseconds, five ticks per half distance as the Java and C
/// implementations print by default.
pub fn hgrm(hist: &Histogram<u64>) -> String {
    const SCALE: f64 = 1000.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    for v in hist.iter_quantiles(5) {
        total += v.count_since_last_iteration();
        let value = v.value_iterated_to() as f64 / SCALE;
        let q = v.quantile_iterated_to();
        if q < 1.0 {
            let _ = writeln!(
                out,
                "{value:>12.3} {q:>2.12} {total:>10} {:>14.2}",
                1.0 / (1.0 - q)
            );
        } else {
            let _ = writeln!(out, "{value:>12.3} {q:>1.12} {total:>10}");
        }
    }
    let sub_buckets = (2 * 10u64.pow(u32::from(hist.sigfig()))).next_power_of_two();
    let _ = writeln!(
        out,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
        hist.mean() / SCALE,
        hist.stdev() / SCALE
    );
    let _ = writeln!(
        out,
        "#[Max     = {:>12.3}, Total count    = {:>12}]",
        hist.max() as f64 / SCALE,
        hist.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        hist.buckets(),
        sub_buckets
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::new_histogram;

    #[test]
    fn hgrm_has_header_rows_and_footer() {
        let mut hist = new_histogram();
        for v in 1..=10_000u64 {
            hist.record(v).unwrap();
        }
        let text = hgrm(&hist);
        let mut lines = text.lines();
        assert!(lines.next().unwrap().contains("1/(1-Percentile)"));
        assert_eq!(lines.next(), Some(""));
        let rows: Vec<&str> = text
            .lines()
            .skip(2)
            .take_while(|l| !l.starts_with('#'))
            .collect();
        let first: Vec<&str> = rows[0].split_whitespace().collect();
        assert_eq!(first[0], "0.001");
        let last: Vec<&str> = rows.last().unwrap().split_whitespace().collect();
        assert_eq!(last.len(), 3, "the 100% row has no 1/(1-p) column");
        assert_eq!(last[1], "1.000000000000");
        assert_eq!(last[2], "10000");
        assert!(text.contains("Total count    =        10000]"));
        assert!(text.contains("SubBuckets     =         2048]"));
    }
}
