//! The phases of a run, in order: connect observers then participants,
//! probe capacity, open-loop traffic, drain, leave. Returns everything
//! measured as [`RunData`] for the report.
//!
//! Observers connect first so that each of them can check it sees every
//! participant's "has joined" exactly once. Between phases the orchestrator
//! polls the shared counters (every 10 ms) and drives the progress display;
//! it never touches a socket on the hot path.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use logosnet::protocol::Role;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use crate::check::{self, Tally};
use crate::client::{self, NoticeCounts, Outcome, ProbeAnswer};
use crate::config::Config;
use crate::pacer;
use crate::progress::Progress;
use crate::shared::{Counters, Phase, Problems, Shared};
use crate::stats::{self, CpuTime};

/// How often the orchestrator looks at the counters.
const POLL: Duration = Duration::from_millis(10);

/// Delay between announcing the traffic phase and its first slot, so every
/// client has seen the announcement before its first send is due.
const TRAFFIC_LEAD: Duration = Duration::from_millis(200);

/// Everything a run measured.
#[derive(Debug)]
pub struct RunData {
    /// The settings.
    pub config: Config,
    /// The server address used.
    pub addr: SocketAddr,
    /// Clients that got into the room: participants, observers.
    pub joined: (u64, u64),
    /// From the first connect until the whole room was in.
    pub room_fill: Duration,
    /// Capacity probe answers (participant, observer); `None` if skipped.
    pub probe: (Option<ProbeAnswer>, Option<ProbeAnswer>),
    /// Whether the traffic phase ran (it does not when joining failed).
    pub traffic_ran: bool,
    /// Lines sent: total, of which private.
    pub sent: (u64, u64),
    /// From the first scheduled slot until the last sender finished.
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
    /// Scheduled send → write started.
    pub send_lag: Histogram<u64>,
    /// Connect → `Accepted`.
    pub connect: Histogram<u64>,
    /// `Hello` → `UsernameAccepted`.
    pub join: Histogram<u64>,
    /// Problems by kind.
    pub problems: ProblemCounts,
    /// Examples of problems.
    pub problem_examples: Vec<String>,
    /// loadgen's CPU over the whole run and over traffic plus drain.
    pub own_cpu: (CpuTime, CpuTime),
    /// loadgen's peak RSS, KiB.
    pub own_peak_rss_kib: Option<u64>,
    /// The server's CPU over traffic plus drain, if `--server-pid` was given.
    pub server_cpu: Option<CpuTime>,
    /// The server's peak RSS (VmHWM), KiB, if `--server-pid` was given.
    pub server_peak_rss_kib: Option<u64>,
    /// The whole run.
    pub wall: Duration,
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

/// Problem counts by kind (see [`Problems`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProblemCounts {
    /// `Full` outside the capacity probe.
    pub unexpected_full: u64,
    /// Connections the server closed, or that failed, before their client left.
    pub unexpected_close: u64,
    /// `ProtocolError` frames received.
    pub protocol_errors: u64,
    /// Messages not byte for byte what was sent (including private lines at
    /// the wrong recipient).
    pub garbled: u64,
    /// Other frames out of place.
    pub unexpected_frames: u64,
    /// Clients that could not connect or join.
    pub join_failures: u64,
}

impl ProblemCounts {
    fn read(p: &Problems) -> Self {
        let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        Self {
            unexpected_full: get(&p.unexpected_full),
            unexpected_close: get(&p.unexpected_close),
            protocol_errors: get(&p.protocol_errors),
            garbled: get(&p.garbled),
            unexpected_frames: get(&p.unexpected_frames),
            join_failures: get(&p.join_failures),
        }
    }

    /// True when nothing went wrong.
    pub fn is_clean(&self) -> bool {
        *self == Self::default()
    }
}

impl RunData {
    /// Whether the run passed every check.
    pub fn passed(&self) -> bool {
        let probe_ok = |p: &Option<ProbeAnswer>| p.as_ref().is_none_or(|a| *a == ProbeAnswer::Full);
        self.traffic_ran
            && !self.behind
            && self.tally.is_clean()
            && self.drained
            && self.problems.is_clean()
            && self.notice_faults.is_clean()
            && probe_ok(&self.probe.0)
            && probe_ok(&self.probe.1)
    }

    /// The reasons the run failed, one line each (empty when it passed).
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.traffic_ran {
            out.push("the room could not be filled, so no traffic was sent".to_owned());
        }
        if self.behind {
            out.push(format!(
                "loadgen fell behind: only {} of {} messages were sent within duration + phase timeout (the client side is saturated; lower --rate)",
                self.sent.0,
                self.config.total_messages()
            ));
        }
        if !self.tally.is_clean() {
            out.push(format!(
                "deliveries: {} lost, {} duplicated, {} out of order, {} misdelivered",
                self.tally.lost,
                self.tally.duplicated,
                self.tally.out_of_order,
                self.tally.misdelivered
            ));
        }
        if self.traffic_ran && !self.drained {
            out.push("not every delivery arrived before the drain timeout".to_owned());
        }
        if !self.problems.is_clean() {
            out.push(format!("problems: {:?}", self.problems));
        }
        if self.problems.unexpected_close > 0 {
            out.push(
                "the server closed connections mid-run: it drops a client as a slow consumer once \
                 1 MiB is queued for it, so if loadgen was saturated (high send lag, CPU near one \
                 core per thread) these are loadgen's own clients falling behind"
                    .to_owned(),
            );
        }
        if !self.notice_faults.is_clean() {
            out.push(format!("join/leave notices: {:?}", self.notice_faults));
        }
        for (role, answer) in [("participant", &self.probe.0), ("observer", &self.probe.1)] {
            if let Some(ProbeAnswer::Other(what)) = answer {
                out.push(format!(
                    "the 256th {role} was not refused with Full: {what}"
                ));
            }
        }
        out
    }
}

/// Runs every phase against the configured server.
pub async fn run(config: Config) -> anyhow::Result<RunData> {
    let addr = tokio::net::lookup_host((config.ip.as_str(), config.port))
        .await
        .with_context(|| format!("cannot resolve {}", config.ip))?
        .next()
        .with_context(|| format!("no address for {}", config.ip))?;
    let phase_timeout = Duration::from_secs_f64(config.phase_timeout);
    let participants = config.participants as u64;
    let observers = config.observers as u64;
    let shared = Arc::new(Shared {
        connecting: Semaphore::new(config.connect_concurrency),
        config: config.clone(),
        addr,
        transport: crate::transport::Transport::from_config(&config)?,
        names: (0..config.participants)
            .map(|i| crate::message::participant_name(&config.name_prefix, i as u16))
            .collect(),
        epoch: Instant::now(),
        counters: Counters::default(),
        problems: Problems::default(),
        delivery: Default::default(),
        send_lag: Default::default(),
        connect: Default::default(),
        join: Default::default(),
        slots: Arc::new(pacer::Slots::new(config.participants)),
    });
    let counters = &shared.counters;
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let (phase_tx, phase_rx) = watch::channel(Phase::Joining);
    let cpu_start = stats::own_cpu();

    // 1. Connect: observers first, then participants.
    let fill_start = Instant::now();
    let mut tasks: Vec<JoinHandle<Option<Outcome>>> = Vec::new();
    for i in 0..config.observers {
        tasks.push(tokio::spawn(client::observer(
            shared.clone(),
            i,
            phase_rx.clone(),
        )));
    }
    wait_for("observers", observers, phase_timeout * 3, || {
        let done = load(&counters.ready) + load(&counters.failed);
        (load(&counters.ready), done >= observers, String::new())
    })
    .await;
    let observers_ready = load(&counters.ready);
    for i in 0..config.participants {
        let index = u16::try_from(i).context("too many participants")?;
        tasks.push(tokio::spawn(client::participant(
            shared.clone(),
            index,
            phase_rx.clone(),
        )));
    }
    let total = participants + observers;
    wait_for("join", total, phase_timeout * 3, || {
        let done = load(&counters.ready) + load(&counters.failed);
        let status = format!("accepted {}", load(&counters.accepted));
        (load(&counters.ready), done >= total, status)
    })
    .await;
    let room_fill = fill_start.elapsed();
    let ready = load(&counters.ready);
    let joined = (ready - observers_ready, observers_ready);
    let room_full = ready == total;

    // 2. Capacity probe.
    let (probe_participants, probe_observers) = config.probes();
    let mut probe = (None, None);
    if room_full {
        if probe_participants {
            probe.0 = Some(
                client::probe(&shared.transport, addr, Role::Participant, phase_timeout).await,
            );
        }
        if probe_observers {
            probe.1 =
                Some(client::probe(&shared.transport, addr, Role::Observer, phase_timeout).await);
        }
    }

    // 3. Traffic, 4. drain.
    let mut traffic = Duration::ZERO;
    let mut traffic_and_drain = Duration::ZERO;
    let mut drained = false;
    let mut behind = false;
    let mut cpu_traffic = CpuTime::default();
    let mut server_cpu = None;
    if room_full {
        let server_cpu_start = config.server_pid.and_then(stats::process_cpu);
        let cpu_before = stats::own_cpu();
        let start = Instant::now() + TRAFFIC_LEAD;
        let _ = phase_tx.send(Phase::Traffic(start));
        let messages = config.total_messages();
        let clock = pacer::start(shared.slots.clone(), start, config.rate, messages);
        let limit = Duration::from_secs_f64(config.duration) + TRAFFIC_LEAD + phase_timeout;
        let millis = (config.duration * 1000.0) as u64;
        let schedule_kept = wait_for("traffic", millis, limit, || {
            let elapsed = Instant::now().saturating_duration_since(start).as_millis() as u64;
            let status = format!(
                "sent {}/{messages}, deliveries {}",
                load(&counters.sent),
                load(&counters.delivered)
            );
            (
                elapsed.min(millis),
                load(&counters.senders_done) >= participants,
                status,
            )
        })
        .await;
        traffic = Instant::now().saturating_duration_since(start);
        behind = !schedule_kept;
        shared.slots.stop();
        let _ = phase_tx.send(Phase::Drain);
        // Sends already under way when the drain began still count, so the
        // expectation is re-read on every poll.
        let expected = || {
            let sent = load(&counters.sent);
            let private = load(&counters.sent_private);
            (sent - private) * (participants - 1 + observers) + private
        };
        drained = wait_for("drain", expected(), phase_timeout, || {
            let delivered = load(&counters.delivered);
            (delivered, delivered >= expected(), String::new())
        })
        .await;
        traffic_and_drain = Instant::now().saturating_duration_since(start);
        // Stopped above; it exits within one nap.
        let _ = tokio::task::spawn_blocking(move || clock.join()).await;
        cpu_traffic = stats::own_cpu().since(&cpu_before);
        server_cpu = server_cpu_start.and_then(|before| {
            config
                .server_pid
                .and_then(stats::process_cpu)
                .map(|after| after.since(&before))
        });
    }

    // 5. Leave: participants close; observers count the "has left" notices.
    if room_full {
        let _ = phase_tx.send(Phase::Leave);
        wait_for("leave", participants, phase_timeout, || {
            let closed = load(&counters.participants_closed);
            let done = closed >= participants && load(&counters.observers_done) >= observers;
            let status = format!("observers done {}", load(&counters.observers_done));
            (closed, done, status)
        })
        .await;
    }
    let _ = phase_tx.send(Phase::Close);

    let mut senders = vec![check::SenderLog::new(); config.participants];
    let mut receivers = Vec::with_capacity(tasks.len());
    let mut notice_faults = NoticeFaults::default();
    for task in tasks {
        let Ok(Some(outcome)) = task.await else {
            continue;
        };
        if let (Some(sent), check::Receiver::Participant(i)) =
            (outcome.sent, outcome.received.receiver())
        {
            senders[usize::from(i)] = sent;
        }
        if let Some(counts) = &outcome.notices {
            notice_faults.add(counts);
        }
        receivers.push(outcome.received);
    }
    let tally = if room_full {
        check::verify(&senders, &receivers)
    } else {
        Tally::default()
    };

    Ok(RunData {
        joined,
        room_fill,
        probe,
        traffic_ran: room_full,
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
        connect: shared.connect.snapshot(),
        join: shared.join.snapshot(),
        problems: ProblemCounts::read(&shared.problems),
        problem_examples: shared.problems.examples(),
        own_cpu: (stats::own_cpu().since(&cpu_start), cpu_traffic),
        own_peak_rss_kib: stats::process_memory_kib("self", "VmHWM"),
        server_cpu,
        server_peak_rss_kib: config
            .server_pid
            .and_then(|pid| stats::process_memory_kib(&pid.to_string(), "VmHWM")),
        wall: fill_start.elapsed(),
        addr,
        config,
    })
}

/// Polls `state` (position, done, status) until done or `limit` passes,
/// showing progress; true if it completed.
async fn wait_for(
    name: &'static str,
    total: u64,
    limit: Duration,
    mut state: impl FnMut() -> (u64, bool, String),
) -> bool {
    let mut progress = Progress::start(name, total);
    let deadline = Instant::now() + limit;
    let mut tick = tokio::time::interval(POLL);
    loop {
        tick.tick().await;
        let (position, done, status) = state();
        if done {
            progress.finish(&format!("{position}/{total}"));
            return true;
        }
        if Instant::now() >= deadline {
            progress.finish(&format!("timed out at {position}/{total} after {limit:?}"));
            return false;
        }
        progress.update(position, || status);
    }
}
