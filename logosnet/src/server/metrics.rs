//! What an operator can read of the running server: the figures behind
//! `--metrics ADDR:PORT`'s `/metrics`, in the Prometheus text format.
//!
//! [`Metrics`] is a handful of atomics and nothing else the server's paths
//! ever touch. Who writes what:
//! - the room task *publishes* once per turn what the room and the
//!   pressure policy already count ([`Room::tally`](crate::room::Room::tally),
//!   [`Room::census`](crate::room::Room::census), the policy's pauses):
//!   a few relaxed stores a turn, whatever the turn delivered, and nothing
//!   per delivery;
//! - the room task adds one to a drop's reason when it drops a member
//!   (rare), the accept loop to a refusal's reason, a TLS handshake task to
//!   its outcome, a certificate reload to its outcome;
//! - the queues' server-wide `Totals` are read as they are at scrape
//!   time (bytes charged, bytes written).
//!
//! A scrape reads those atomics (relaxed: each figure is exact, two
//! figures may be a turn apart) and `/proc/self` for the process figures
//! (`process`), and formats them with the official Prometheus client
//! ([`prometheus_client`]) through a [`Collector`], so no registry lock or
//! map lookup is ever on the room's path. `http` ([`serve_metrics`]) serves them on a
//! listener of their own.

mod http;
mod process;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

pub use http::{MAX_SCRAPE_CONNECTIONS, METRICS_PATH, SCRAPE_CONNECTION_LIFETIME, serve_metrics};
pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

use super::outbox::Totals;
use super::pressure::{DropReason, Pressure};
use crate::room::{CloseReason, Room};

/// Why a connection was refused, as the metrics name it (the `reason`
/// label of `logosnet_refusals_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its role was full (`Full`).
    Full,
    /// Its source had `--max-per-ip` connections open.
    PerAddress,
    /// Its source opened connections faster than `--max-new-per-ip` allows.
    Rate,
    /// Every socket was taken by members (or by sockets past the table):
    /// `server busy`.
    Busy,
    /// It was closed to make room for a newer connection (before Hello or
    /// before a name).
    Evicted,
    /// A name it asked for was refused by the username rule.
    Name,
}

impl Refusal {
    /// Every reason, in the order a scrape lists them.
    pub const ALL: [Refusal; 6] = [
        Refusal::Full,
        Refusal::PerAddress,
        Refusal::Rate,
        Refusal::Busy,
        Refusal::Evicted,
        Refusal::Name,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Full => "full",
            Refusal::PerAddress => "per_address",
            Refusal::Rate => "rate",
            Refusal::Busy => "busy",
            Refusal::Evicted => "evicted",
            Refusal::Name => "name",
        }
    }
}

/// Why the server dropped a connection, as the metrics name it (the
/// `reason` label of `logosnet_drops_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// Its oldest undelivered line was `--max-lag` old.
    TooFarBehind,
    /// The server-wide budget stayed short past its hold and it drained
    /// least meanwhile.
    BudgetShed,
    /// It broke the protocol.
    Violation,
    /// No `Hello` within the Hello timeout.
    HelloTimeout,
    /// No name within the username timeout, the naming ceiling, or too
    /// many names refused.
    UsernameTimeout,
    /// A frame it began was not finished within the frame deadline.
    FrameTimeout,
}

impl Dropped {
    /// Every reason, in the order a scrape lists them.
    pub const ALL: [Dropped; 6] = [
        Dropped::TooFarBehind,
        Dropped::BudgetShed,
        Dropped::Violation,
        Dropped::HelloTimeout,
        Dropped::UsernameTimeout,
        Dropped::FrameTimeout,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Dropped::TooFarBehind => "too_far_behind",
            Dropped::BudgetShed => "budget_shed",
            Dropped::Violation => "violation",
            Dropped::HelloTimeout => "hello_timeout",
            Dropped::UsernameTimeout => "username_timeout",
            Dropped::FrameTimeout => "frame_timeout",
        }
    }
}

/// The room's figures, as the room task last published them.
#[derive(Debug, Default)]
struct Published {
    before_hello: AtomicU64,
    naming: AtomicU64,
    participants: AtomicU64,
    observers: AtomicU64,
    paused: AtomicBool,
    pauses: AtomicU64,
    paused_nanos: AtomicU64,
    public_lines: AtomicU64,
    private_lines: AtomicU64,
    deliveries: AtomicU64,
    warnings: AtomicU64,
    flood_delayed: AtomicU64,
    full: AtomicU64,
    busy: AtomicU64,
    evicted: AtomicU64,
    names_refused: AtomicU64,
    violations: AtomicU64,
    hello_timeouts: AtomicU64,
    username_timeouts: AtomicU64,
    frame_timeouts: AtomicU64,
}

/// Counts added to where they happen.
#[derive(Debug, Default)]
struct Counted {
    accepted: AtomicU64,
    per_address: AtomicU64,
    rate: AtomicU64,
    busy_at_accept: AtomicU64,
    too_far_behind: AtomicU64,
    budget_shed: AtomicU64,
    handshakes_ok: AtomicU64,
    handshakes_failed: AtomicU64,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
}

/// The figures themselves, shared by the server's tasks and the collector.
#[derive(Debug, Default)]
struct Figures {
    published: Published,
    counted: Counted,
    /// The queues' totals, once `serve` has made them.
    totals: OnceLock<Arc<Totals>>,
    /// `--max-queued-total`, once `serve` has started.
    budget: AtomicU64,
}

/// See the module docs. Make one, hand it to the server
/// ([`ServerConfig::metrics`](super::ServerConfig::metrics)) and to
/// whatever serves it ([`serve_metrics`]).
pub struct Metrics {
    /// What every task writes to.
    figures: Arc<Figures>,
    /// The collectors a scrape runs: ours and the process's.
    registry: Registry,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("figures", &self.snapshot())
            .finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Every figure at one scrape (process figures aside), as plain numbers:
/// what a test compares and the collector formats.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Connections before `Hello`.
    pub before_hello: u64,
    /// Participants without a name yet.
    pub naming: u64,
    /// Named participants.
    pub participants: u64,
    /// Observers.
    pub observers: u64,
    /// Bytes charged to every outgoing queue together.
    pub queued_bytes: u64,
    /// The server-wide budget for them (`--max-queued-total`).
    pub queued_bytes_budget: u64,
    /// The room is paused (takes no chat line) now.
    pub paused: bool,
    /// Times the room was paused.
    pub pauses: u64,
    /// Time paused in all.
    pub paused_for: Duration,
    /// Public lines taken.
    pub public_lines: u64,
    /// Private lines taken.
    pub private_lines: u64,
    /// Chat lines queued for their recipients.
    pub deliveries: u64,
    /// Bytes written to connections' sockets (before TLS).
    pub written_bytes: u64,
    /// Warnings sent.
    pub warnings: u64,
    /// Frames held by flood control.
    pub flood_delayed: u64,
    /// Sockets the accept loop admitted.
    pub accepted: u64,
    /// Refusals, in [`Refusal::ALL`]'s order.
    pub refusals: [u64; 6],
    /// Drops, in [`Dropped::ALL`]'s order.
    pub drops: [u64; 6],
    /// TLS handshakes completed.
    pub tls_handshakes_ok: u64,
    /// TLS handshakes that failed, timed out or were abandoned.
    pub tls_handshakes_failed: u64,
    /// Certificate reloads that put a new pair in service.
    pub reloads_ok: u64,
    /// Certificate reloads that kept the old pair.
    pub reloads_failed: u64,
}

impl Snapshot {
    /// Refusals for `why`.
    pub fn refused(&self, why: Refusal) -> u64 {
        self.refusals[Refusal::ALL.iter().position(|&r| r == why).unwrap_or(0)]
    }

    /// Drops for `why`.
    pub fn dropped(&self, why: Dropped) -> u64 {
        self.drops[Dropped::ALL.iter().position(|&d| d == why).unwrap_or(0)]
    }
}

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

fn add(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

fn store(counter: &AtomicU64, value: impl TryInto<u64>) {
    counter.store(value.try_into().unwrap_or(u64::MAX), Ordering::Relaxed);
}

impl Metrics {
    /// Everything at zero.
    pub fn new() -> Self {
        let figures = Arc::new(Figures::default());
        let mut registry = Registry::default();
        registry.register_collector(Box::new(ServerCollector(figures.clone())));
        registry.register_collector(Box::new(process::ProcessCollector));
        Self { figures, registry }
    }

    /// Every figure now.
    pub fn snapshot(&self) -> Snapshot {
        self.figures.snapshot()
    }

    /// The whole scrape, in the Prometheus text format (version 0.0.4).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail; a collector's error would only
        // cut the scrape short.
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
        {
            tracing::warn!(error = %e, "a metrics scrape was cut short");
        }
        text
    }

    /// `serve` started: the queues' totals and the budget they answer to.
    pub(super) fn attach(&self, totals: Arc<Totals>, budget: usize) {
        let _ = self.figures.totals.set(totals);
        store(&self.figures.budget, budget);
    }

    /// The room task's figures at the end of a turn: copies of what the
    /// room and the policy count (stores, not additions: a turn that did
    /// nothing writes the same numbers again).
    pub(super) fn publish(&self, room: &Room, pressure: &Pressure, now: Instant) {
        let p = &self.figures.published;
        let census = room.census();
        store(&p.before_hello, census.before_hello);
        store(&p.naming, census.naming);
        store(&p.participants, census.participants);
        store(&p.observers, census.observers);
        let pauses = pressure.pauses(now);
        p.paused.store(pauses.paused, Ordering::Relaxed);
        store(&p.pauses, pauses.count);
        store(&p.paused_nanos, pauses.total.as_nanos());
        let tally = room.tally();
        store(&p.public_lines, tally.public_lines);
        store(&p.private_lines, tally.private_lines);
        store(&p.deliveries, tally.deliveries);
        store(&p.warnings, tally.warnings);
        store(&p.flood_delayed, tally.flood_delayed);
        store(&p.names_refused, tally.names_refused);
        store(&p.full, tally.closed(CloseReason::Full));
        store(&p.busy, tally.closed(CloseReason::Busy));
        store(&p.evicted, tally.closed(CloseReason::MadeRoom));
        store(&p.violations, tally.closed(CloseReason::Violation));
        store(&p.hello_timeouts, tally.closed(CloseReason::HelloTimeout));
        store(
            &p.username_timeouts,
            tally.closed(CloseReason::UsernameTimeout),
        );
        store(&p.frame_timeouts, tally.frame_timeouts());
    }

    /// The room task dropped a member for `reason`.
    pub(super) fn dropped(&self, reason: DropReason) {
        let c = &self.figures.counted;
        match reason {
            DropReason::Lagging { .. } => add(&c.too_far_behind),
            DropReason::Shed { .. } => add(&c.budget_shed),
        }
    }

    /// The accept loop admitted a socket.
    pub(super) fn accepted(&self) {
        add(&self.figures.counted.accepted);
    }

    /// The accept loop refused a socket: past its source's rate, its
    /// source's open connections, or every socket (`server busy`).
    pub(super) fn refused_at_accept(&self, why: Refusal) {
        let c = &self.figures.counted;
        match why {
            Refusal::Rate => add(&c.rate),
            Refusal::PerAddress => add(&c.per_address),
            // The room's own refusals are published from its tally.
            _ => add(&c.busy_at_accept),
        }
    }

    /// A TLS handshake finished (`ok`) or failed.
    pub(super) fn handshake(&self, ok: bool) {
        let c = &self.figures.counted;
        add(if ok {
            &c.handshakes_ok
        } else {
            &c.handshakes_failed
        });
    }

    /// A certificate reload put the new pair in service (`ok`) or kept the
    /// old one.
    pub(super) fn reload(&self, ok: bool) {
        let c = &self.figures.counted;
        add(if ok { &c.reloads_ok } else { &c.reloads_failed });
    }
}

impl Figures {
    fn snapshot(&self) -> Snapshot {
        let p = &self.published;
        let c = &self.counted;
        let totals = self.totals.get();
        Snapshot {
            before_hello: load(&p.before_hello),
            naming: load(&p.naming),
            participants: load(&p.participants),
            observers: load(&p.observers),
            queued_bytes: totals.map_or(0, |t| t.charged() as u64),
            queued_bytes_budget: load(&self.budget),
            paused: p.paused.load(Ordering::Relaxed),
            pauses: load(&p.pauses),
            paused_for: Duration::from_nanos(load(&p.paused_nanos)),
            public_lines: load(&p.public_lines),
            private_lines: load(&p.private_lines),
            deliveries: load(&p.deliveries),
            written_bytes: totals.map_or(0, |t| t.written()),
            warnings: load(&p.warnings),
            flood_delayed: load(&p.flood_delayed),
            accepted: load(&c.accepted),
            refusals: [
                load(&p.full),
                load(&c.per_address),
                load(&c.rate),
                load(&p.busy) + load(&c.busy_at_accept),
                load(&p.evicted),
                load(&p.names_refused),
            ],
            drops: [
                load(&c.too_far_behind),
                load(&c.budget_shed),
                load(&p.violations),
                load(&p.hello_timeouts),
                load(&p.username_timeouts),
                load(&p.frame_timeouts),
            ],
            tls_handshakes_ok: load(&c.handshakes_ok),
            tls_handshakes_failed: load(&c.handshakes_failed),
            reloads_ok: load(&c.reloads_ok),
            reloads_failed: load(&c.reloads_failed),
        }
    }
}

/// Formats [`Figures`] at each scrape.
#[derive(Debug)]
struct ServerCollector(Arc<Figures>);

/// One figure for the collector: name (without `_total`), help, value.
type Line<'a, T> = (&'a str, &'a str, T);

fn counter<T>(encoder: &mut DescriptorEncoder, (name, help, value): Line<'_, T>) -> fmt::Result
where
    ConstCounter<T>: EncodeMetric,
{
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge<T>(encoder: &mut DescriptorEncoder, (name, help, value): Line<'_, T>) -> fmt::Result
where
    ConstGauge<T>: EncodeMetric,
{
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// A counter with one label, `key`, over `values`.
fn labelled_counters(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    key: &str,
    values: &[(&str, u64)],
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for &(label, value) in values {
        let labels = [(key, label)];
        ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for ServerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let s = self.0.snapshot();
        let e = &mut encoder;
        {
            let mut family = e.encode_descriptor(
                "logosnet_build",
                "The server's version.",
                None,
                MetricType::Info,
            )?;
            family.encode_info(&[("version", env!("CARGO_PKG_VERSION"))])?;
        }
        {
            let mut family = e.encode_descriptor(
                "logosnet_connections",
                "Connections the room knows, by state: before_hello (no Hello yet), naming (a participant without a name yet), participant (named, in the room), observer.",
                None,
                MetricType::Gauge,
            )?;
            for (state, value) in [
                ("before_hello", s.before_hello),
                ("naming", s.naming),
                ("participant", s.participants),
                ("observer", s.observers),
            ] {
                let labels = [("state", state)];
                ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
            }
        }
        gauge(
            e,
            (
                "logosnet_queued_bytes",
                "Bytes charged to every connection's outgoing queue together (the memory they hold).",
                s.queued_bytes,
            ),
        )?;
        gauge(
            e,
            (
                "logosnet_queued_bytes_budget",
                "The server-wide budget for queued bytes (--max-queued-total); the room pauses at half of it.",
                s.queued_bytes_budget,
            ),
        )?;
        gauge(
            e,
            (
                "logosnet_room_paused",
                "1 while the room takes no chat line (a member far behind or the budget holds it), else 0.",
                u64::from(s.paused),
            ),
        )?;
        counter(
            e,
            (
                "logosnet_room_pauses",
                "Times the room was paused.",
                s.pauses,
            ),
        )?;
        counter(
            e,
            (
                "logosnet_room_paused_seconds",
                "Seconds the room was paused, in all.",
                s.paused_for.as_secs_f64(),
            ),
        )?;
        labelled_counters(
            e,
            "logosnet_lines",
            "Chat lines taken, by kind: public (to everyone) or private (to one participant).",
            "kind",
            &[("public", s.public_lines), ("private", s.private_lines)],
        )?;
        counter(
            e,
            (
                "logosnet_deliveries",
                "Chat lines queued for a recipient: a public line once per member but its sender, a private line once.",
                s.deliveries,
            ),
        )?;
        counter(
            e,
            (
                "logosnet_written_bytes",
                "Bytes written to connections' sockets (before TLS).",
                s.written_bytes,
            ),
        )?;
        counter(
            e,
            (
                "logosnet_warnings",
                "Warning notices sent (a line too long, to no such user, an observer sending, ...).",
                s.warnings,
            ),
        )?;
        counter(
            e,
            (
                "logosnet_flood_delayed_lines",
                "Frames past Hello that flood control held until the sender's allowance covered them.",
                s.flood_delayed,
            ),
        )?;
        counter(
            e,
            (
                "logosnet_connections_accepted",
                "Sockets the accept loop admitted (refused ones are not counted here).",
                s.accepted,
            ),
        )?;
        let refusals: Vec<(&str, u64)> = Refusal::ALL
            .iter()
            .map(|&why| (why.label(), s.refused(why)))
            .collect();
        labelled_counters(
            e,
            "logosnet_refusals",
            "Connections or names refused, by reason: full (role full), per_address, rate, busy, evicted (closed to make room), name (a name refused by the username rule).",
            "reason",
            &refusals,
        )?;
        let drops: Vec<(&str, u64)> = Dropped::ALL
            .iter()
            .map(|&why| (why.label(), s.dropped(why)))
            .collect();
        labelled_counters(
            e,
            "logosnet_drops",
            "Connections the server closed on them, by reason: too_far_behind (--max-lag), budget_shed (the server-wide budget), violation, hello_timeout, username_timeout, frame_timeout.",
            "reason",
            &drops,
        )?;
        labelled_counters(
            e,
            "logosnet_tls_handshakes",
            "TLS handshakes, by result: ok, or failed (refused, timed out or abandoned).",
            "result",
            &[
                ("ok", s.tls_handshakes_ok),
                ("failed", s.tls_handshakes_failed),
            ],
        )?;
        labelled_counters(
            e,
            "logosnet_certificate_reloads",
            "Certificate reloads (SIGHUP), by result: ok (the new pair is in service) or failed (the old pair stays).",
            "result",
            &[("ok", s.reloads_ok), ("failed", s.reloads_failed)],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
