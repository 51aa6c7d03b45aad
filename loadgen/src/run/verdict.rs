//! A run's verdict in plain English: why it stopped before its traffic, or
//! which checks failed.
//!
//! Causes come first and a consequence is never listed after its cause: a
//! room that is not empty stops the run with one line; a connection the
//! server closed mid-run is one line that also accounts for the deliveries
//! and notices that connection could no longer receive, instead of three
//! more lines (and tens of thousands of "missing" notices) that restate it.
//! The JSON keeps every raw count; these lines are for people.

use std::sync::atomic::Ordering;

use logosnet::protocol::{MAX_OBSERVERS, MAX_PARTICIPANTS};

use crate::client::{Preflight, ProbeAnswer};
use crate::shared::{ProblemKind, Shared};

use super::RunData;

/// How many of something loadgen can vouch for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// Exactly this many.
    Exactly(u64),
    /// This many were seen; there may be more.
    AtLeast(u64),
    /// Nothing loadgen saw tells.
    Unknown,
}

impl Count {
    fn describe(self, one: &str, many: &str) -> String {
        let noun = |n: u64| if n == 1 { one } else { many };
        match self {
            Count::Exactly(n) => format!("{n} {}", noun(n)),
            Count::AtLeast(n) => format!("at least {n} {}", noun(n)),
            Count::Unknown => format!("an unknown number of {many}"),
        }
    }
}

/// Who else is in the room: exactly, as the preflight's `Who` was answered
/// ([`RoomCensus::asked`]), or as far as the join could tell
/// ([`RoomCensus::take`]).
///
/// Against a server that does not answer `Who`, loadgen counts with its own
/// joins: when one of its clients of a role is refused with `Full`, the role
/// is at capacity and everyone in it who is not loadgen's is a stranger
/// (capacity − loadgen's clients that got a slot). Without a `Full`, only
/// participants can show themselves (a taken name, a "has joined" or a chat
/// line naming them): that is a lower bound. Observers are silent, so
/// without a `Full` their number is unknown unless loadgen holds every slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomCensus {
    /// Participants already there.
    pub participants: Count,
    /// Observers already there.
    pub observers: Count,
}

impl RoomCensus {
    /// What the preflight was told: `participants` and `observers` besides
    /// loadgen's own.
    pub fn asked(participants: usize, observers: u32) -> Self {
        Self {
            participants: Count::Exactly(participants as u64),
            observers: Count::Exactly(u64::from(observers)),
        }
    }

    /// What the join phase learned.
    pub fn take(shared: &Shared) -> Self {
        let c = &shared.counters;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let count = |capacity: usize, requested: usize, accepted: u64, refused: u64, seen: u64| {
            let capacity = capacity as u64;
            if refused > 0 {
                Count::Exactly(capacity.saturating_sub(accepted).max(1))
            } else if seen > 0 {
                Count::AtLeast(seen)
            } else if requested as u64 == capacity && accepted == capacity {
                Count::Exactly(0)
            } else {
                Count::Unknown
            }
        };
        let strangers_seen = shared.foreign_names().len() as u64 + load(&c.names_taken);
        Self {
            participants: count(
                MAX_PARTICIPANTS,
                shared.config.participants,
                load(&c.participants_accepted),
                load(&c.participants_refused),
                strangers_seen,
            ),
            observers: count(
                MAX_OBSERVERS,
                shared.config.observers,
                load(&c.observers_accepted),
                load(&c.observers_refused),
                0,
            ),
        }
    }

    /// The one line that stops the run.
    pub fn line(&self) -> String {
        format!(
            "the room is not empty: {} / {} already there; loadgen needs an empty server or fewer clients",
            self.participants.describe("participant", "participants"),
            self.observers.describe("observer", "observers"),
        )
    }
}

/// Why the run must stop before anything joins, if it must: the preflight
/// found someone in the room (each stranger is counted as a foreign problem,
/// and the participants' names are kept for the report). An answer that
/// says nothing leaves the decision to the join.
pub(super) fn preflight_stop(shared: &Shared, answer: Preflight) -> Option<String> {
    let census = match answer {
        Preflight::Empty => return None,
        // No server, TLS on one side only, or a server from before `Who`:
        // the join meets the same and says so in its own words.
        Preflight::Unknown(_) => return None,
        Preflight::ObserversFull => RoomCensus {
            participants: Count::Unknown,
            observers: Count::Exactly(MAX_OBSERVERS as u64),
        },
        Preflight::Occupied {
            participants,
            observers,
        } => {
            for name in &participants {
                shared.note_foreign_name(name);
                shared.problems.report(ProblemKind::Foreign, || {
                    format!("preflight: {name} is in the room")
                });
            }
            for _ in 0..observers {
                shared.problems.report(ProblemKind::Foreign, || {
                    "preflight: an observer is in the room".to_owned()
                });
            }
            RoomCensus::asked(participants.len(), observers)
        }
    };
    Some(census.line())
}

/// Why the run must stop after the join, if it must: someone else is in the
/// room, or not every client got in.
pub(super) fn join_stop(shared: &Shared, ready: u64, total: u64) -> Option<String> {
    if shared.problems.count(ProblemKind::Foreign) > 0 {
        return Some(RoomCensus::take(shared).line());
    }
    if ready >= total {
        return None;
    }
    let c = &shared.counters;
    let failed = c.failed.load(Ordering::Relaxed);
    if c.connect_failed.load(Ordering::Relaxed) == total {
        let why = shared
            .connect_error
            .get()
            .map_or_else(|| "no reason given".to_owned(), |kind| kind.to_string());
        return Some(format!("cannot connect to {}: {why}", shared.addr));
    }
    if failed == 0 {
        return Some(format!(
            "only {ready} of {total} clients got into the room before loadgen gave up waiting"
        ));
    }
    let examples = shared.problems.examples();
    let first = first_example(&examples, ProblemKind::JoinFailure);
    Some(format!(
        "{failed} of {total} clients could not join the room{}",
        first.map_or_else(String::new, |e| format!("; the first: {e}"))
    ))
}

fn first_example(examples: &[(ProblemKind, String)], kind: ProblemKind) -> Option<&str> {
    examples
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, text)| text.as_str())
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The failure lines of a run, causes first (see the module docs).
pub(super) fn failures(data: &RunData) -> Vec<String> {
    if let Some(line) = &data.stopped {
        return vec![line.clone()];
    }
    let p = &data.problems;
    let t = &data.tally;
    let example = |kind| {
        first_example(&data.problem_examples, kind)
            .map_or_else(String::new, |e| format!(", e.g. {e}"))
    };
    let mut out = Vec::new();
    // Pacing is the cause of the latency figures, so it comes first.
    if !data.config.allow_pacing
        && let Some(line) = data.pacing_line()
    {
        out.push(line);
    }
    if p.foreign > 0 {
        let names = if data.foreign_names.is_empty() {
            String::new()
        } else {
            format!(" ({})", data.foreign_names.join(", "))
        };
        out.push(format!(
            "someone who is not a loadgen client used the room during the run{names}; loadgen needs the room to itself"
        ));
    }
    if data.behind {
        out.push(format!(
            "loadgen fell behind: only {} of {} messages were sent within duration + phase timeout (the client side is saturated; lower --rate)",
            data.sent.0,
            data.config.total_messages()
        ));
    }
    // A connection that ended early explains its lost deliveries, its
    // missing notices and the "has left" others saw during traffic.
    let ended_early = p.unexpected_close + p.protocol_errors;
    if p.unexpected_close > 0 {
        let lost = if t.lost > 0 {
            format!("; {} owed deliveries never arrived", t.lost)
        } else {
            String::new()
        };
        out.push(format!(
            "the server closed {} before the client left{lost} (a server drops a client that reads too slowly: compare loadgen's send lag and CPU){}",
            plural(p.unexpected_close, "connection", "connections"),
            example(ProblemKind::UnexpectedClose)
        ));
    }
    if p.protocol_errors > 0 {
        out.push(format!(
            "the server broke the protocol {}{}",
            plural(p.protocol_errors, "time", "times"),
            example(ProblemKind::ProtocolError)
        ));
    }
    if ended_early == 0 && t.lost > 0 {
        out.push(format!(
            "{} of {} owed deliveries never arrived (the drain waited {} s)",
            t.lost, t.expected, data.config.phase_timeout
        ));
    }
    if ended_early == 0 && t.lost == 0 && !data.drained {
        out.push(format!(
            "deliveries were still arriving when the drain gave up after {} s",
            data.config.phase_timeout
        ));
    }
    if t.duplicated + t.out_of_order + t.misdelivered > 0 {
        out.push(format!(
            "deliveries out of place: {} duplicated, {} out of order, {} misdelivered",
            t.duplicated, t.out_of_order, t.misdelivered
        ));
    }
    if p.garbled > 0 {
        out.push(format!(
            "{} arrived altered{}",
            plural(p.garbled, "message", "messages"),
            example(ProblemKind::Garbled)
        ));
    }
    if p.unexpected_full > 0 {
        out.push(format!(
            "the server sent Full {} to clients already in the room",
            plural(p.unexpected_full, "time", "times")
        ));
    }
    if ended_early == 0 && p.unexpected_frames > 0 {
        out.push(format!(
            "{} arrived out of place{}",
            plural(p.unexpected_frames, "frame", "frames"),
            example(ProblemKind::UnexpectedFrame)
        ));
    }
    if p.not_closed_after_leave > 0 {
        out.push(format!(
            "the server kept {} open after the participant left",
            plural(p.not_closed_after_leave, "connection", "connections")
        ));
    }
    if p.join_failures > 0 {
        out.push(format!(
            "{} could not join{}",
            plural(p.join_failures, "client", "clients"),
            example(ProblemKind::JoinFailure)
        ));
    }
    let n = &data.notice_faults;
    if ended_early == 0 && !n.is_clean() {
        out.push(format!(
            "join/leave notices: \"has joined\" {} missing and {} repeated, \"has left\" {} missing and {} repeated",
            n.joined_missing, n.joined_duplicated, n.left_missing, n.left_duplicated
        ));
    }
    for (role, answer) in [("participant", &data.probe.0), ("observer", &data.probe.1)] {
        if let Some(ProbeAnswer::Other(what)) = answer {
            out.push(format!(
                "the 256th {role} was not refused with Full: {what}"
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser as _;

    use super::*;
    use crate::check::Tally;
    use crate::config::Config;
    use crate::run::{NoticeFaults, ProblemCounts};
    use crate::stats::new_histogram;

    /// A run of the default full room in which everything went right.
    fn clean_run() -> RunData {
        let expected = 90 * 509 + 10;
        RunData {
            config: Config::parse_from(["loadgen"]),
            addr: "127.0.0.1:8021".parse().unwrap(),
            stopped: None,
            joined: (255, 255),
            room_fill: Duration::from_millis(100),
            probe: (Some(ProbeAnswer::Full), Some(ProbeAnswer::Full)),
            sent: (100, 10),
            traffic: Duration::from_secs(1),
            traffic_and_drain: Duration::from_secs(1),
            drained: true,
            behind: false,
            tally: Tally {
                expected,
                delivered: expected,
                ..Tally::default()
            },
            delivered: expected,
            notice_faults: NoticeFaults::default(),
            delivery: new_histogram(),
            send_lag: new_histogram(),
            runtime_delay: new_histogram(),
            connect: new_histogram(),
            join: new_histogram(),
            problems: ProblemCounts::default(),
            problem_examples: Vec::new(),
            foreign_names: Vec::new(),
            own_pid: 1,
            own_cpu: Default::default(),
            own_peak_rss_kib: None,
            server_cpu: None,
            server_peak_rss_kib: None,
            server_metrics: None,
            wall: Duration::from_secs(2),
        }
    }

    /// Every delivery arrived `ms` after a send on time.
    fn hold_back(run: &mut RunData, ms: u64) {
        run.delivery.record(ms * 1000).unwrap();
        run.send_lag.record(0).unwrap();
    }

    #[test]
    fn a_paced_run_fails_first_on_pacing_unless_allowed() {
        let mut run = clean_run();
        hold_back(&mut run, 2_000);
        run.drained = false;
        assert!(!run.passed());
        let failures = run.failures();
        assert_eq!(failures.len(), 2, "{failures:#?}");
        assert!(
            failures[0].starts_with("the server is pacing senders (flood control?): start it with --flood-rate 0 to measure the server"),
            "{failures:#?}"
        );
        run.drained = true;
        run.config.allow_pacing = true;
        assert!(run.passed());
        assert_eq!(run.failures(), Vec::<String>::new());
    }

    #[test]
    fn a_clean_run_passes_with_nothing_to_say() {
        let run = clean_run();
        assert!(run.passed());
        assert_eq!(run.failures(), Vec::<String>::new());
    }

    #[test]
    fn a_run_stopped_while_joining_says_one_line() {
        let mut run = clean_run();
        run.stopped = Some("the room is not empty: …".into());
        run.problems.foreign = 3;
        assert!(!run.passed());
        assert_eq!(run.failures(), vec!["the room is not empty: …".to_owned()]);
    }

    #[test]
    fn a_closed_connection_is_one_line_not_a_cascade() {
        let mut run = clean_run();
        // One observer dropped mid-run: it misses deliveries and every
        // "has left", the drain times out, and its participants' peers see
        // nothing odd; the report must say so once.
        run.problems.unexpected_close = 1;
        run.problem_examples = vec![(
            ProblemKind::UnexpectedClose,
            "observer 7: the server closed the connection during traffic".into(),
        )];
        run.tally.lost = 40;
        run.tally.delivered -= 40;
        run.drained = false;
        run.notice_faults.left_missing = 255;
        run.problems.unexpected_frames = 2;
        assert!(!run.passed());
        let failures = run.failures();
        assert_eq!(failures.len(), 1, "{failures:#?}");
        assert!(failures[0].starts_with("the server closed 1 connection before the client left; 40 owed deliveries never arrived"));
        assert!(
            failures[0]
                .ends_with("e.g. observer 7: the server closed the connection during traffic")
        );
    }

    #[test]
    fn every_failed_check_has_a_line() {
        let mutations: Vec<fn(&mut RunData)> = vec![
            |r| r.behind = true,
            |r| r.drained = false,
            |r| r.tally.lost = 1,
            |r| r.tally.duplicated = 1,
            |r| r.tally.out_of_order = 1,
            |r| r.tally.misdelivered = 1,
            |r| r.problems.foreign = 1,
            |r| r.problems.join_failures = 1,
            |r| r.problems.unexpected_full = 1,
            |r| r.problems.unexpected_close = 1,
            |r| r.problems.not_closed_after_leave = 1,
            |r| r.problems.protocol_errors = 1,
            |r| r.problems.garbled = 1,
            |r| r.problems.unexpected_frames = 1,
            |r| r.notice_faults.joined_missing = 1,
            |r| r.notice_faults.left_duplicated = 1,
            |r| r.probe.0 = Some(ProbeAnswer::Other("answered Accepted".into())),
            |r| r.probe.1 = Some(ProbeAnswer::Other("answered Accepted".into())),
            |r| hold_back(r, 2_000),
        ];
        for (i, mutate) in mutations.into_iter().enumerate() {
            let mut run = clean_run();
            mutate(&mut run);
            assert!(!run.passed(), "mutation {i} passed");
            assert_eq!(
                run.failures().len(),
                1,
                "mutation {i}: {:#?}",
                run.failures()
            );
        }
    }

    #[test]
    fn counts_read_as_english() {
        assert_eq!(
            Count::Exactly(1).describe("participant", "participants"),
            "1 participant"
        );
        assert_eq!(
            Count::Exactly(0).describe("observer", "observers"),
            "0 observers"
        );
        assert_eq!(
            Count::AtLeast(2).describe("participant", "participants"),
            "at least 2 participants"
        );
        assert_eq!(
            Count::Unknown.describe("observer", "observers"),
            "an unknown number of observers"
        );
        let census = RoomCensus {
            participants: Count::Exactly(3),
            observers: Count::Exactly(1),
        };
        assert_eq!(
            census.line(),
            "the room is not empty: 3 participants / 1 observer already there; loadgen needs an empty server or fewer clients"
        );
    }
}
