//! The report: the figures of a run as one value ([`Report`], the JSON
//! document), rendered as a table on stdout ([`table`]) and the delivery
//! histogram as `.hgrm` text ([`hgrm`]).
//!
//! The JSON field names are stable: [`Report`] and its parts are the schema,
//! each field documented where it is declared (and in BENCHMARKS.md's JSON
//! section); `schema_version` changes if a field is renamed or its meaning
//! changes (adding a field does not). Durations are seconds (`_s`),
//! latencies microseconds (`_us`), memory KiB (`_kib`), CPU per delivery
//! nanoseconds (`_ns`).

mod hgrm;
mod table;

use serde::Serialize;

use crate::check::Tally;
use crate::client::ProbeAnswer;
use crate::run::{NoticeFaults, ProblemCounts, RunData, ServerMetricsRun};
use crate::stats::{CpuTime, Summary};

pub use hgrm::hgrm;

/// Bumped when an existing field is renamed or changes meaning. 2: `loadgen.pid`
/// is loadgen's real pid (was 0), `server.cpu_total_s` is measured (was 0),
/// `problems.unexpected_close` no longer counts connections left open after
/// a participant left (now `problems.not_closed_after_leave`), and Full or a
/// taken name while joining count as `problems.foreign`, not `join_failures`.
pub const SCHEMA_VERSION: u32 = 2;

/// loadgen's send lag p99 (or its runtime delay p99, the same thing for its
/// receive side) above this share of the delivery p99 means loadgen, not
/// the server, set the latency figures (issue 14's threshold).
pub const BOTTLENECK_LAG_SHARE: f64 = 0.10;

/// How the warning printed when [`BOTTLENECK_LAG_SHARE`] is exceeded
/// begins (`bench.sh` looks for it).
pub const BOTTLENECK_WARNING: &str = "loadgen is the bottleneck, not the server";

/// The whole report (the JSON document).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// See [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// loadgen's version.
    pub loadgen_version: &'static str,
    /// True when every check passed (the exit status is 0 exactly then).
    pub passed: bool,
    /// Why the run failed, one plain line per cause, causes before
    /// consequences; empty when it passed. A run stopped before its traffic
    /// has exactly one.
    pub failures: Vec<String>,
    /// Why the figures may mislead though the checks passed (loadgen was the
    /// bottleneck, could not send at the offered rate, or with
    /// `--allow-pacing` the server paced its senders).
    pub warnings: Vec<String>,
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
    /// The first few problems of each kind, described.
    pub problem_examples: Vec<String>,
    /// loadgen's own cost.
    pub loadgen: ProcessReport,
    /// The server's cost, when `--server-pid` was given.
    pub server: Option<ProcessReport>,
    /// The server's own figures, when `--metrics-url` was given.
    pub server_metrics: Option<ServerMetricsReport>,
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
    /// `--allow-pacing`: a run the server paced may still pass.
    pub allow_pacing: bool,
    /// Characters per line.
    pub size: usize,
    /// Fraction of private messages.
    pub private_fraction: f64,
    /// Seed.
    pub seed: u64,
    /// Runtime worker threads.
    pub threads: usize,
    /// Every connection was TLS (`--tls` or `--tls-ca`): the connect and
    /// join latencies include the TLS handshake, and the participants'
    /// lines were written by their connections' writer tasks.
    pub tls: bool,
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
    /// First scheduled slot until the last line was written (or queued),
    /// seconds.
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
    /// True if the server paced the senders (flood control): lines that
    /// left on time took [`crate::run::HELD_BACK`] or more to arrive. Such a
    /// run passes only with `--allow-pacing`.
    pub paced: bool,
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
    /// Scheduled send time → the line handed to the socket: by the send
    /// clock over plain TCP (or queued behind bytes the server had not
    /// accepted yet), by the connection's writer task over TLS once written.
    /// loadgen's own lag, included in `delivery`.
    pub send_lag: Summary,
    /// A task made ready → run by loadgen's runtime, sampled every 10 ms
    /// during traffic and drain: how long a reader waits its turn (loadgen's
    /// receive side busy, or denied a core).
    pub runtime_delay: Summary,
    /// TCP connect started (and over TLS, the handshake) → `Accepted`
    /// received, every client.
    pub connect: Summary,
    /// `Hello` written → `UsernameAccepted` received (so it includes the
    /// `Accepted` round trip and the `Username` one), every participant.
    pub join: Summary,
}

/// One process's cost.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessReport {
    /// The process id.
    pub pid: u32,
    /// CPU (user + system, from `/proc/<pid>/stat`) from loadgen's first
    /// connect to its end, seconds.
    pub cpu_total_s: f64,
    /// CPU over traffic and drain, seconds.
    pub cpu_traffic_s: f64,
    /// That CPU as a share of one core over traffic and drain (1.0 = one
    /// core busy throughout).
    pub cpu_traffic_cores: f64,
    /// `cpu_traffic_s` per delivery made, nanoseconds; `null` when nothing
    /// was delivered.
    pub cpu_per_delivery_ns: Option<f64>,
    /// Peak resident set size (`VmHWM`), KiB.
    pub peak_rss_kib: Option<u64>,
}

impl ProcessReport {
    fn new(
        pid: u32,
        (total, traffic): (CpuTime, CpuTime),
        window_s: f64,
        delivered: u64,
        peak_rss_kib: Option<u64>,
    ) -> Self {
        let traffic_s = traffic.total().as_secs_f64();
        Self {
            pid,
            cpu_total_s: total.total().as_secs_f64(),
            cpu_traffic_s: traffic_s,
            cpu_traffic_cores: if window_s > 0.0 {
                traffic_s / window_s
            } else {
                0.0
            },
            cpu_per_delivery_ns: (delivered > 0).then(|| traffic_s * 1e9 / delivered as f64),
            peak_rss_kib,
        }
    }
}

/// What the server's metrics endpoint said of the run (`--metrics-url`).
#[derive(Debug, Clone, Serialize)]
pub struct ServerMetricsReport {
    /// The endpoint.
    pub url: String,
    /// Chat lines the server queued for a recipient, from just before the
    /// traffic to the end of the leave phase; `null` if a scrape failed.
    pub deliveries: Option<u64>,
    /// Connections the server dropped meanwhile (every reason).
    pub drops: Option<u64>,
    /// Connections or names it refused meanwhile (every reason).
    pub refusals: Option<u64>,
    /// The server's CPU over traffic and drain, seconds, as it read its own.
    pub cpu_traffic_s: Option<f64>,
    /// That CPU per delivery the server counted, nanoseconds.
    pub cpu_per_delivery_ns: Option<f64>,
    /// Why the figures are missing, if they are.
    pub error: Option<String>,
}

impl ServerMetricsReport {
    fn new(url: &str, run: &Result<ServerMetricsRun, String>) -> Self {
        match run {
            Ok(run) => {
                let deliveries = run.counts.deliveries;
                Self {
                    url: url.to_owned(),
                    deliveries: Some(deliveries),
                    drops: Some(run.counts.drops),
                    refusals: Some(run.counts.refusals),
                    cpu_traffic_s: run.cpu_traffic_s,
                    cpu_per_delivery_ns: run
                        .cpu_traffic_s
                        .filter(|_| deliveries > 0)
                        .map(|s| s * 1e9 / deliveries as f64),
                    error: None,
                }
            }
            Err(e) => Self {
                url: url.to_owned(),
                deliveries: None,
                drops: None,
                refusals: None,
                cpu_traffic_s: None,
                cpu_per_delivery_ns: None,
                error: Some(e.clone()),
            },
        }
    }
}

fn probe_text(answer: &Option<ProbeAnswer>) -> String {
    match answer {
        None => "skipped".to_owned(),
        Some(ProbeAnswer::Full) => "full".to_owned(),
        Some(ProbeAnswer::Other(what)) => what.clone(),
    }
}

/// The warnings of a run whose traffic ran.
fn warnings(data: &RunData, send_rate: f64, latency: &LatencyReport) -> Vec<String> {
    let mut out = Vec::new();
    if data.stopped.is_some() {
        return out;
    }
    let share = |s: &Summary| s.p99_us as f64 / latency.delivery.p99_us.max(1) as f64;
    let ms = |us: u64| us as f64 / 1000.0;
    let (lag, delay) = (&latency.send_lag, &latency.runtime_delay);
    if latency.delivery.count > 0 && share(lag).max(share(delay)) > BOTTLENECK_LAG_SHARE {
        out.push(format!(
            "{BOTTLENECK_WARNING}: loadgen's own delays (send lag p99 {:.3} ms, runtime delay p99 {:.3} ms) are over {:.0} % of the delivery p99 ({:.3} ms), so part of that latency is loadgen's and the server is at least this fast; lower --rate or add --threads 2",
            ms(lag.p99_us),
            ms(delay.p99_us),
            BOTTLENECK_LAG_SHARE * 100.0,
            ms(latency.delivery.p99_us),
        ));
    }
    if data.config.allow_pacing
        && let Some(line) = data.pacing_line()
    {
        out.push(line);
    }
    match &data.server_metrics {
        Some(Err(e)) => out.push(format!("the server's metrics could not be read: {e}")),
        Some(Ok(run)) if run.counts.deliveries != data.delivered => out.push(format!(
            "the server counted {} deliveries, loadgen received {}",
            run.counts.deliveries, data.delivered
        )),
        _ => {}
    }
    if !data.traffic.is_zero() && send_rate < 0.95 * data.config.rate {
        out.push(format!(
            "loadgen sent {send_rate:.0}/s of the {} offered: it fell behind its schedule, so latency includes its own lag (see send lag)",
            data.config.rate
        ));
    }
    out
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
        let send_rate = if data.traffic.is_zero() {
            0.0
        } else {
            sent as f64 / data.traffic.as_secs_f64()
        };
        let latency = LatencyReport {
            delivery: Summary::of(&data.delivery),
            send_lag: Summary::of(&data.send_lag),
            runtime_delay: Summary::of(&data.runtime_delay),
            connect: Summary::of(&data.connect),
            join: Summary::of(&data.join),
        };
        Self {
            schema_version: SCHEMA_VERSION,
            loadgen_version: env!("CARGO_PKG_VERSION"),
            passed: data.passed(),
            failures: data.failures(),
            warnings: warnings(data, send_rate, &latency),
            config: ConfigReport {
                server: data.addr.to_string(),
                participants: c.participants,
                observers: c.observers,
                rate: c.rate,
                duration_s: c.duration,
                allow_pacing: c.allow_pacing,
                size: c.size,
                private_fraction: c.private,
                seed: c.seed,
                threads: c.threads,
                tls: c.trust().is_some(),
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
                send_rate,
                drained: data.drained,
                fell_behind: data.behind,
                paced: data.held_back().is_some(),
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
            latency,
            notices: data.notice_faults,
            problems: data.problems,
            problem_examples: data
                .problem_examples
                .iter()
                .map(|(_, text)| text.clone())
                .collect(),
            loadgen: ProcessReport::new(
                data.own_pid,
                data.own_cpu,
                window,
                data.delivered,
                data.own_peak_rss_kib,
            ),
            server: c.server_pid.map(|pid| {
                ProcessReport::new(
                    pid,
                    data.server_cpu.unwrap_or_default(),
                    window,
                    data.delivered,
                    data.server_peak_rss_kib,
                )
            }),
            server_metrics: c
                .metrics_url
                .as_deref()
                .zip(data.server_metrics.as_ref())
                .map(|(url, run)| ServerMetricsReport::new(url, run)),
            wall_s: data.wall.as_secs_f64(),
        }
    }
}
