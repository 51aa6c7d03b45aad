//! The phases of a run, in order: connect observers then participants,
//! probe capacity, open-loop traffic, drain, leave. Returns everything
//! measured as [`RunData`] for the report.
//!
//! Before anything joins, one observer asks who is there (`Who`): a room
//! that is not empty stops the run at once with one line, and nobody in it
//! sees a join or a leave (an observer arrives and goes unannounced).
//! Observers connect first so that each of them can check it sees every
//! participant's "has joined" exactly once. If the room still turns out not
//! to be loadgen's alone (someone came after the question, or the server
//! predates it: a `Full` or a taken name while joining, a stranger's
//! notice), or clients cannot join, the run stops there with one line that
//! says why ([`RunData::stopped`]) instead of sending traffic whose failures
//! would only be consequences. Between phases the orchestrator polls the
//! shared counters (every 10 ms) and drives the progress display; it never
//! touches a socket on the hot path.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use logosnet::protocol::Role;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::check::{self, Tally};
use crate::client::{self, NoticeCounts, Outcome, ProbeAnswer};
use crate::config::Config;
use crate::pacer;
use crate::progress::Progress;
use crate::server_metrics::{self, ServerFigures};
use crate::shared::{Phase, ProblemKind, Shared};
use crate::stats::{self, CpuTime};
use crate::transport::Transport;

mod pacing;
mod verdict;

pub use pacing::HELD_BACK;
pub use verdict::{Count, RoomCensus};

/// How often the orchestrator looks at the counters.
const POLL: Duration = Duration::from_millis(10);

/// Delay between the end of the join and the first slot, so the send clock's
/// thread is up before anything is due.
const TRAFFIC_LEAD: Duration = Duration::from_millis(200);

/// Everything a run measured.
#[derive(Debug)]
pub struct RunData {
    /// The settings.
    pub config: Config,
    /// The server address used.
    pub addr: SocketAddr,
    /// Why the run stopped before its traffic, in one line; `None` if it ran.
    pub stopped: Option<String>,
    /// Clients that got into the room: participants, observers.
    pub joined: (u64, u64),
    /// From the first connect until the whole room was in.
    pub room_fill: Duration,
    /// Capacity probe answers (participant, observer); `None` if skipped.
    pub probe: (Option<ProbeAnswer>, Option<ProbeAnswer>),
    /// Lines sent: total, of which private.
    pub sent: (u64, u64),
    /// From the first scheduled slot until the clock had written (or queued)
    /// the last line.
    pub traffic: Duration,
    /// From the first scheduled slot until every delivery arrived (or the
    /// drain timed out).
    pub traffic_and_drain: Duration,
    /// The drain ended because everything arrived (not on timeout).
    pub drained: bool,
    /// Senders were still behind their schedule when the traffic phase's
    /// time limit (duration + phase timeout) ran out, so the rest of the
    /// schedule was dropped: loadgen (or the machine) could not offer the rate.
    pub behind: bool,
    /// Delivery verdict.
    pub tally: Tally,
    /// Deliveries counted on receipt (first receipts).
    pub delivered: u64,
    /// Participants whose "has left" some observer missed, or saw twice; and
    /// likewise for "has joined".
    pub notice_faults: NoticeFaults,
    /// Histograms (µs).
    pub delivery: Histogram<u64>,
    /// Scheduled send → line handed to the socket (see [`crate::pacer`]).
    pub send_lag: Histogram<u64>,
    /// Ready → run on loadgen's runtime, sampled every 10 ms during traffic
    /// and drain (see [`runtime_probe`]).
    pub runtime_delay: Histogram<u64>,
    /// Connect → `Accepted`.
    pub connect: Histogram<u64>,
    /// `Hello` → `UsernameAccepted`.
    pub join: Histogram<u64>,
    /// Problems by kind.
    pub problems: ProblemCounts,
    /// Examples of problems, with their kind.
    pub problem_examples: Vec<(ProblemKind, String)>,
    /// Names of people in the room who are not loadgen's.
    pub foreign_names: Vec<String>,
    /// loadgen's process id.
    pub own_pid: u32,
    /// loadgen's CPU over the whole run and over traffic plus drain.
    pub own_cpu: (CpuTime, CpuTime),
    /// loadgen's peak RSS, KiB.
    pub own_peak_rss_kib: Option<u64>,
    /// The server's CPU over the whole run and over traffic plus drain, if
    /// `--server-pid` was given and readable.
    pub server_cpu: Option<(CpuTime, CpuTime)>,
    /// The server's peak RSS (VmHWM), KiB, if `--server-pid` was given.
    pub server_peak_rss_kib: Option<u64>,
    /// The server's own figures over the run, from `--metrics-url`; the
    /// error if a scrape failed.
    pub server_metrics: Option<Result<ServerMetricsRun, String>>,
    /// The whole run.
    pub wall: Duration,
}

/// What the server's metrics say of the run: two scrapes' differences.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServerMetricsRun {
    /// From just before the traffic to the end of the leave phase, when
    /// every line the room took has long been counted: deliveries, drops
    /// and refusals.
    pub counts: ServerFigures,
    /// CPU seconds over traffic and drain, as the server read its own.
    pub cpu_traffic_s: Option<f64>,
}

/// Notice faults seen by observers, summed over observers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct NoticeFaults {
    /// "has joined" notices that should have arrived and did not.
    pub joined_missing: u64,
    /// "has joined" notices that arrived more than once.
    pub joined_duplicated: u64,
    /// "has left" notices that should have arrived and did not.
    pub left_missing: u64,
    /// "has left" notices that arrived more than once.
    pub left_duplicated: u64,
}

impl NoticeFaults {
    fn add(&mut self, counts: &NoticeCounts) {
        for (seen, missing, duplicated) in [
            (
                &counts.joined,
                &mut self.joined_missing,
                &mut self.joined_duplicated,
            ),
            (
                &counts.left,
                &mut self.left_missing,
                &mut self.left_duplicated,
            ),
        ] {
            for &n in seen {
                match n {
                    0 => *missing += 1,
                    1 => {}
                    n => *duplicated += u64::from(n - 1),
                }
            }
        }
    }

    /// True when every notice arrived exactly once.
    pub fn is_clean(&self) -> bool {
        *self == Self::default()
    }
}

/// Problem counts by kind (see [`ProblemKind`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProblemCounts {
    /// Signs of someone else in the room: `Full` or a taken name while
    /// joining, a notice or a message naming someone who is not loadgen's.
    pub foreign: u64,
    /// Clients that could not connect or join for another reason.
    pub join_failures: u64,
    /// `Full` outside the capacity probe and the join.
    pub unexpected_full: u64,
    /// Connections the server closed, or that failed, before their client left.
    pub unexpected_close: u64,
    /// Participants that left and whose connection the server did not close.
    pub not_closed_after_leave: u64,
    /// `ProtocolError` frames received, and frames that do not decode.
    pub protocol_errors: u64,
    /// Messages not byte for byte what was sent (including private lines at
    /// the wrong recipient).
    pub garbled: u64,
    /// Other frames out of place.
    pub unexpected_frames: u64,
}

impl ProblemCounts {
    fn read(shared: &Shared) -> Self {
        let get = |kind| shared.problems.count(kind);
        Self {
            foreign: get(ProblemKind::Foreign),
            join_failures: get(ProblemKind::JoinFailure),
            unexpected_full: get(ProblemKind::UnexpectedFull),
            unexpected_close: get(ProblemKind::UnexpectedClose),
            not_closed_after_leave: get(ProblemKind::NotClosedAfterLeave),
            protocol_errors: get(ProblemKind::ProtocolError),
            garbled: get(ProblemKind::Garbled),
            unexpected_frames: get(ProblemKind::UnexpectedFrame),
        }
    }

    /// True when nothing went wrong.
    pub fn is_clean(&self) -> bool {
        *self == Self::default()
    }
}

/// One scrape of `--metrics-url`, if given.
async fn scrape_metrics(config: &Config) -> Option<Result<ServerFigures, String>> {
    let url = config.metrics_url.as_deref()?;
    Some(
        server_metrics::scrape(url)
            .await
            .map_err(|e| format!("{e:#}")),
    )
}

/// The run's figures from the three scrapes (before the traffic, after the
/// drain, after the leave), or the first scrape's error; `None` without
/// `--metrics-url` or if the traffic never began.
fn server_metrics_run(
    before: Option<Result<ServerFigures, String>>,
    drained: Option<Result<ServerFigures, String>>,
    left: Option<Result<ServerFigures, String>>,
) -> Option<Result<ServerMetricsRun, String>> {
    let (before, drained, left) = (before?, drained?, left?);
    Some((|| {
        let (before, drained, left) = (before?, drained?, left?);
        Ok(ServerMetricsRun {
            counts: left.since(&before),
            cpu_traffic_s: drained.since(&before).cpu_seconds,
        })
    })())
}

/// Runs every phase against the configured server.
pub async fn run(config: Config) -> anyhow::Result<RunData> {
    let addr = tokio::net::lookup_host((config.ip.as_str(), config.port))
        .await
        .with_context(|| format!("cannot resolve {}", config.ip))?
        .next()
        .with_context(|| format!("no address for {}", config.ip))?;
    let transport =
        Transport::new(config.trust().as_ref(), &config.ip).context("cannot set up TLS")?;
    let phase_timeout = Duration::from_secs_f64(config.phase_timeout);
    let participants = config.participants as u64;
    let observers = config.observers as u64;
    let shared = Arc::new(Shared::new(config.clone(), addr, transport));
    let counters = &shared.counters;
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let server_cpu = || config.server_pid.and_then(stats::process_cpu);
    let own_cpu = || stats::own_cpu().unwrap_or_default();
    let own_cpu_start = own_cpu();
    let server_cpu_start = server_cpu();

    // 0. Who is there already: one observer asks before anything joins,
    // and an occupied room stops the run untouched.
    let fill_start = Instant::now();
    let before = verdict::preflight_stop(
        &shared,
        client::preflight(&shared.transport, addr, phase_timeout).await,
    );

    // 1. Connect: observers first, then participants.
    let mut tasks: Vec<JoinHandle<Option<Outcome>>> = Vec::new();
    let mut stops = Vec::new();
    let total = participants + observers;
    let mut observers_ready = 0;
    if before.is_none() {
        for i in 0..config.observers {
            let (stop, stopped) = oneshot::channel::<()>();
            stops.push(stop);
            tasks.push(tokio::spawn(client::observer(shared.clone(), i, stopped)));
        }
        wait_for("observers", observers, "joined", phase_timeout * 3, || {
            let done = load(&counters.ready) + load(&counters.failed);
            (load(&counters.ready), done >= observers, String::new())
        })
        .await;
        observers_ready = load(&counters.ready);
        for i in 0..config.participants {
            let index = u16::try_from(i).context("too many participants")?;
            let (stop, stopped) = oneshot::channel::<()>();
            stops.push(stop);
            tasks.push(tokio::spawn(client::participant(
                shared.clone(),
                index,
                stopped,
            )));
        }
        wait_for(
            "participants",
            participants,
            "joined",
            phase_timeout * 3,
            || {
                let done = load(&counters.ready) + load(&counters.failed);
                let joined = load(&counters.ready).saturating_sub(observers_ready);
                (joined, done >= total, String::new())
            },
        )
        .await;
    }
    let room_fill = fill_start.elapsed();
    let ready = load(&counters.ready);
    let joined = (ready - observers_ready, observers_ready);
    let stopped = before.or_else(|| verdict::join_stop(&shared, ready, total));

    // 2. Capacity probe.
    let (probe_participants, probe_observers) = config.probes();
    let mut probe = (None, None);
    if stopped.is_none() {
        let transport = &shared.transport;
        if probe_participants {
            probe.0 = Some(client::probe(transport, addr, Role::Participant, phase_timeout).await);
        }
        if probe_observers {
            probe.1 = Some(client::probe(transport, addr, Role::Observer, phase_timeout).await);
        }
    }

    // 3. Traffic, 4. drain.
    let mut traffic = Duration::ZERO;
    let mut traffic_and_drain = Duration::ZERO;
    let mut drained = false;
    let mut behind = false;
    let mut own_cpu_traffic = CpuTime::default();
    let mut server_cpu_traffic = None;
    let (mut metrics_before, mut metrics_drained, mut metrics_left) = (None, None, None);
    let mut sender_logs = vec![check::SenderLog::new(); config.participants];
    if stopped.is_none() {
        // Every participant joined, so every outlet is there, each at its
        // participant's index as the clock expects.
        let senders: Vec<pacer::Sender> = shared
            .take_outlets()
            .into_iter()
            .enumerate()
            .map(|(i, outlet)| Some(pacer::Sender::new(i as u16, outlet?, config.seed)))
            .collect::<Option<_>>()
            .context("a participant that joined left no outlet")?;
        let server_before = server_cpu();
        metrics_before = scrape_metrics(&config).await;
        let own_before = own_cpu();
        let start = Instant::now() + TRAFFIC_LEAD;
        shared.phase.set(Phase::Traffic);
        let messages = config.total_messages();
        let clock = pacer::start(shared.clone(), senders, start);
        let probe_task = tokio::spawn(runtime_probe(shared.clone()));
        let limit = Duration::from_secs_f64(config.duration) + TRAFFIC_LEAD + phase_timeout;
        let schedule_kept = wait_for("traffic", messages, "messages sent", limit, || {
            let status = format!("{} deliveries", load(&counters.delivered));
            (load(&counters.sent), clock.finished_schedule(), status)
        })
        .await;
        traffic = Instant::now().saturating_duration_since(start);
        behind = !schedule_kept;
        shared.phase.set(Phase::Drain);
        // Lines the clock was still writing when the drain began count, so
        // the expectation is re-read on every poll.
        let expected = || {
            let sent = load(&counters.sent);
            let private = load(&counters.sent_private);
            (sent - private) * (participants - 1 + observers) + private
        };
        drained = wait_for("drain", expected(), "deliveries", phase_timeout, || {
            let delivered = load(&counters.delivered);
            (delivered, delivered >= expected(), String::new())
        })
        .await;
        traffic_and_drain = Instant::now().saturating_duration_since(start);
        clock.stop();
        // It exits within one nap.
        let mut senders = tokio::task::spawn_blocking(move || clock.join())
            .await
            .context("the send clock failed")?;
        own_cpu_traffic = own_cpu().since(&own_before);
        metrics_drained = scrape_metrics(&config).await;
        server_cpu_traffic = server_before
            .zip(server_cpu())
            .map(|(before, after)| after.since(&before));

        // 5. Leave: participants close their sending side; observers count
        // the "has left" notices.
        shared.phase.set(Phase::Leave);
        let _ = probe_task.await;
        for sender in &mut senders {
            sender.leave();
        }
        wait_for(
            "leave",
            participants,
            "participants left",
            phase_timeout,
            || {
                let closed = load(&counters.participants_closed);
                let done = closed >= participants && load(&counters.observers_done) >= observers;
                let status = format!(
                    "{}/{observers} observers saw them go",
                    load(&counters.observers_done)
                );
                (closed, done, status)
            },
        )
        .await;
        for (i, sender) in senders.into_iter().enumerate() {
            sender_logs[i] = sender.into_log();
        }
        metrics_left = scrape_metrics(&config).await;
    }
    let server_metrics = server_metrics_run(metrics_before, metrics_drained, metrics_left);
    shared.phase.set(Phase::Close);
    drop(stops);

    drop(shared.take_outlets());
    let mut receivers = Vec::with_capacity(tasks.len());
    let mut notice_faults = NoticeFaults::default();
    for task in tasks {
        let Ok(Some(outcome)) = task.await else {
            continue;
        };
        if let Some(counts) = &outcome.notices {
            notice_faults.add(counts);
        }
        receivers.push(outcome.received);
    }
    let tally = if stopped.is_none() {
        check::verify(&sender_logs, &receivers)
    } else {
        notice_faults = NoticeFaults::default();
        Tally::default()
    };
    let server_total = server_cpu_start
        .zip(server_cpu())
        .map(|(before, after)| after.since(&before));

    Ok(RunData {
        stopped,
        joined,
        room_fill,
        probe,
        sent: (load(&counters.sent), load(&counters.sent_private)),
        traffic,
        traffic_and_drain,
        drained,
        behind,
        tally,
        delivered: load(&counters.delivered),
        notice_faults,
        delivery: shared.delivery.snapshot(),
        send_lag: shared.send_lag.snapshot(),
        runtime_delay: shared.runtime_delay.snapshot(),
        connect: shared.connect.snapshot(),
        join: shared.join.snapshot(),
        problems: ProblemCounts::read(&shared),
        problem_examples: shared.problems.examples(),
        foreign_names: shared.foreign_names(),
        own_pid: std::process::id(),
        own_cpu: (own_cpu().since(&own_cpu_start), own_cpu_traffic),
        own_peak_rss_kib: stats::process_memory_kib("self", "VmHWM"),
        server_cpu: server_total.zip(server_cpu_traffic),
        server_peak_rss_kib: config
            .server_pid
            .and_then(|pid| stats::process_memory_kib(&pid.to_string(), "VmHWM")),
        server_metrics,
        wall: fill_start.elapsed(),
        addr,
        config,
    })
}

/// Samples, every [`POLL`] until the leave phase, how long a task made ready
/// waits before the runtime runs it: it notes the time, yields, and records
/// the time until it runs again. The send clock writes off the runtime, so
/// its send lag no longer shows a busy receive side; this does.
async fn runtime_probe(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(POLL);
    while !shared.phase.now().leaving() {
        tick.tick().await;
        let ready = Instant::now();
        tokio::task::yield_now().await;
        shared
            .runtime_delay
            .record(ready.elapsed().as_micros() as u64);
    }
}

/// Polls `state` (position, done, status) until done or `limit` passes,
/// showing progress of `total` `unit`; true if it completed.
async fn wait_for(
    name: &'static str,
    total: u64,
    unit: &'static str,
    limit: Duration,
    mut state: impl FnMut() -> (u64, bool, String),
) -> bool {
    let mut progress = Progress::start(name, total, unit);
    let deadline = Instant::now() + limit;
    let mut tick = tokio::time::interval(POLL);
    loop {
        tick.tick().await;
        let (position, done, status) = state();
        if done {
            progress.finish(position, "");
            return true;
        }
        if Instant::now() >= deadline {
            progress.finish(
                position,
                &format!("gave up after {} s", limit.as_secs_f64()),
            );
            return false;
        }
        progress.update(position, || status);
    }
}

impl RunData {
    /// Whether the run passed every check.
    pub fn passed(&self) -> bool {
        let probe_ok = |p: &Option<ProbeAnswer>| p.as_ref().is_none_or(|a| *a == ProbeAnswer::Full);
        self.stopped.is_none()
            && !self.behind
            && self.tally.is_clean()
            && self.drained
            && self.problems.is_clean()
            && self.notice_faults.is_clean()
            && probe_ok(&self.probe.0)
            && probe_ok(&self.probe.1)
            && (self.config.allow_pacing || self.held_back().is_none())
    }

    /// The delivery median, when the run shows the server pacing its
    /// senders (flood control): see [`pacing`].
    pub fn held_back(&self) -> Option<Duration> {
        pacing::held_back(&self.delivery, &self.send_lag)
    }

    /// The line that says the server paced its senders, if it did: a
    /// failure, or with `--allow-pacing` a warning.
    pub fn pacing_line(&self) -> Option<String> {
        self.held_back().map(pacing::line)
    }

    /// Why the run failed, one plain line per cause (empty when it passed);
    /// see [`verdict`].
    pub fn failures(&self) -> Vec<String> {
        verdict::failures(self)
    }
}
