//! A logger that comes back: `--observe --reconnect`.
//!
//! An observer started with `--reconnect` runs the client's usual loop
//! ([`super::driver`]) once per connection. When a run ends in a way that
//! trying again can mend — the server closed or went away, was not up yet,
//! refused the connection, was full, dropped the logger as too far behind
//! — it waits and dials again: 1 s, then 2, 4, 8, 16, and 30 s from then
//! on, each wait drawn uniformly from its second half ([`Backoff`]), so
//! that loggers that lost the same server do not all come back in the same
//! instant. A run that got into the room starts the waits at 1 s again.
//! Endings that another try cannot mend (the port speaks another protocol,
//! TLS on one side only, a refused certificate, a broken terminal) end the
//! logger as they end the client, with the same status; so does a signal
//! (status 0), which also cuts a wait short.
//!
//! What the log says: one line when the logger, having been in the room,
//! loses it (`*** The server at … closed the connection; reconnecting`), and
//! one when it is back (`*** Back in the room at …`), followed by who is
//! there then. Failed tries in between say nothing, and a logger that
//! starts before its server says once, on standard error, that it is
//! waiting. Participants never reconnect: a name is a person's choice.
//!
//! [`Backoff`] is the policy as a sans-IO unit (its waits are unit and
//! property tests); [`log_room`] runs it over any [`Dialer`] and [`Stop`],
//! which is how the simulations drive it across a server restart.

use std::io::Write;
use std::time::Duration;

use super::Config;
use super::driver::{self, Behaviour, Dialer, FrontEnd, Stop};
use super::ending::Ending;
use super::pipe::PipeFrontEnd;
use super::session::{Input, InputMode};
use super::timestamp::stamped;

/// The first wait after a loss, before jitter.
pub const FIRST_RETRY: Duration = Duration::from_secs(1);

/// The longest wait between tries, before jitter: a server back from a
/// restart is noticed within half a minute.
pub const MAX_RETRY: Duration = Duration::from_secs(30);

/// What starts the log's own lines, so they never pass for the room's
/// (which start with `>`, `%`, or a notice's words).
pub const LOG_MARK: &str = "***";

/// The waits between tries: [`FIRST_RETRY`], doubling up to [`MAX_RETRY`],
/// each drawn uniformly from the upper half of its nominal value ("equal
/// jitter"). Seeded, so that a simulation replays; the binary seeds it from
/// the system.
#[derive(Debug, Clone)]
pub struct Backoff {
    /// The next wait before jitter.
    nominal: Duration,
    /// Where the jitter comes from.
    rng: fastrand::Rng,
}

impl Backoff {
    /// A backoff whose first wait is about [`FIRST_RETRY`].
    pub fn new(seed: u64) -> Self {
        Self {
            nominal: FIRST_RETRY,
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// How long to wait before the next try; each call doubles the next
    /// nominal wait, up to [`MAX_RETRY`].
    pub fn next_delay(&mut self) -> Duration {
        let nominal = self.nominal;
        self.nominal = (nominal * 2).min(MAX_RETRY);
        let half = nominal / 2;
        let millis = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
        half + Duration::from_millis(self.rng.u64(0..=millis))
    }

    /// The logger got back into the room: the next loss starts again from
    /// [`FIRST_RETRY`].
    pub fn reset(&mut self) {
        self.nominal = FIRST_RETRY;
    }
}

/// Whether a run that ended this way is worth trying again: the server is
/// away, not up yet, full, or closed the connection (for any reason).
/// Endings that are about what the server *is* (not LogosNet, TLS on one
/// side only, a refused certificate) or about this machine (TLS set-up, the
/// terminal) are final.
pub fn is_retryable(ending: &Ending) -> bool {
    match ending {
        Ending::Full
        | Ending::HostNotFound { .. }
        | Ending::ConnectFailed { .. }
        | Ending::ConnectTimeout { .. }
        | Ending::NotAnswering { .. }
        | Ending::TlsFailed { .. }
        | Ending::ServerClosed { .. }
        | Ending::Protocol { .. }
        | Ending::ConnectionLost { .. } => true,
        Ending::Left
        | Ending::UsernameTimeout
        | Ending::NoName
        | Ending::NotLogosNet { .. }
        | Ending::SpeaksTls { .. }
        | Ending::NotTlsServer { .. }
        | Ending::CertificateRefused { .. }
        | Ending::TlsSetup(_)
        | Ending::Terminal(_) => false,
    }
}

/// The log's line when the logger, in the room, loses it.
pub fn lost_line(ending: &Ending) -> String {
    format!("{LOG_MARK} {ending}; reconnecting")
}

/// The log's line when the logger is back in the room, at the server's
/// address `addr` (as the loss line names it).
pub fn back_line(addr: &str) -> String {
    format!("{LOG_MARK} Back in the room at {addr}")
}

/// The remark (standard error) when the logger cannot get in at the start
/// and will keep trying.
pub fn waiting_remark(ending: &Ending) -> String {
    format!("{ending}; trying again until it answers")
}

/// Logs the room as `config` says (an observer), dialing with `dialer`,
/// until `stop` asks it to leave or an ending another try cannot mend;
/// room lines go to `out`, the client's remarks to `remarks`. `seed`
/// seeds the jitter. The program the binary runs for `--observe
/// --reconnect` in pipe mode, with any dialer and stop.
pub async fn log_room<D: Dialer, S: Stop, O: Write, E: Write>(
    config: &Config,
    mut dialer: D,
    mut stop: S,
    out: O,
    remarks: E,
    seed: u64,
) -> Ending {
    let mut front = PipeFrontEnd::writing_to(out, remarks);
    let ending = reconnecting(
        &mut front,
        config,
        InputMode::Script,
        false,
        &mut dialer,
        &mut stop,
        seed,
    )
    .await;
    front.finish();
    ending
}

/// The reconnecting loop over any front end (see the module docs).
pub(crate) async fn reconnecting<F: FrontEnd, D: Dialer, S: Stop>(
    front: &mut F,
    config: &Config,
    mode: InputMode,
    announce_connecting: bool,
    dialer: &mut D,
    stop: &mut S,
    seed: u64,
) -> Ending {
    let mut backoff = Backoff::new(seed);
    let mut been_in = false;
    let mut said_waiting = false;
    loop {
        let behaviour = Behaviour {
            mode,
            announce_connecting: announce_connecting && !been_in && !said_waiting,
            returning: been_in,
        };
        let outcome = driver::run(front, config, behaviour, dialer, stop).await;
        if outcome.admitted {
            been_in = true;
            backoff.reset();
        }
        let ending = outcome.ending;
        if !is_retryable(&ending) {
            return ending;
        }
        let said = if outcome.admitted {
            let line = lost_line(&ending);
            if config.timestamps {
                front.show(&stamped(&line))
            } else {
                front.show(&line)
            }
        } else if !been_in && !said_waiting {
            said_waiting = true;
            front.status(&waiting_remark(&ending))
        } else {
            Ok(())
        };
        if let Err(e) = said {
            return Ending::Terminal(e.to_string());
        }
        let wait = backoff.next_delay();
        tracing::debug!(?wait, %ending, "reconnecting");
        let sleep = tokio::time::sleep(wait);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                biased;
                () = stop.requested() => return Ending::Left,
                input = front.next_input(false) => match input {
                    Ok(Input::End | Input::Interrupt) => return Ending::Left,
                    Ok(_) => continue,
                    Err(e) => return Ending::Terminal(e.to_string()),
                },
                () = &mut sleep => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn waits_double_from_one_second_to_thirty_with_jitter_in_the_upper_half() {
        let mut backoff = Backoff::new(7);
        let nominal = [1, 2, 4, 8, 16, 30, 30, 30];
        for seconds in nominal {
            let wait = backoff.next_delay();
            let full = Duration::from_secs(seconds);
            assert!(wait >= full / 2 && wait <= full, "{wait:?} for {full:?}");
        }
        backoff.reset();
        assert!(backoff.next_delay() <= FIRST_RETRY);
    }

    #[test]
    fn the_jitter_differs_between_seeds_and_replays_with_one() {
        let waits = |seed| {
            let mut backoff = Backoff::new(seed);
            (0..6).map(|_| backoff.next_delay()).collect::<Vec<_>>()
        };
        assert_eq!(waits(1), waits(1));
        assert_ne!(waits(1), waits(2));
    }

    #[test]
    fn only_endings_another_try_can_mend_are_retried() {
        let addr = || "127.0.0.1:8021".to_owned();
        for retried in [
            Ending::Full,
            Ending::ServerClosed { addr: addr() },
            Ending::ConnectFailed {
                addr: addr(),
                reason: "connection refused".into(),
            },
            Ending::ConnectionLost {
                addr: addr(),
                reason: "reset".into(),
            },
            Ending::Protocol {
                addr: addr(),
                reason: "the server said: too far behind".into(),
            },
        ] {
            assert!(is_retryable(&retried), "{retried:?}");
        }
        for last in [
            Ending::Left,
            Ending::NotLogosNet { addr: addr() },
            Ending::SpeaksTls { addr: addr() },
            Ending::TlsSetup("no such file".into()),
            Ending::Terminal("gone".into()),
        ] {
            assert!(!is_retryable(&last), "{last:?}");
        }
    }

    #[test]
    fn the_logs_own_lines_never_read_like_the_rooms() {
        let lost = lost_line(&Ending::ServerClosed {
            addr: "127.0.0.1:8021".into(),
        });
        assert_eq!(
            lost,
            "*** The server at 127.0.0.1:8021 closed the connection; reconnecting"
        );
        assert_eq!(
            back_line("127.0.0.1:8021"),
            "*** Back in the room at 127.0.0.1:8021"
        );
        for line in [lost, back_line("x")] {
            assert!(crate::protocol::parse_line(&line).is_none());
            assert!(crate::protocol::parse_presence(&line).is_none());
        }
    }

    proptest! {
        #[test]
        fn every_wait_is_within_its_bounds_and_a_reset_starts_over(
            seed in any::<u64>(),
            tries in 1usize..40,
            reset_at in 0usize..40,
        ) {
            let mut backoff = Backoff::new(seed);
            let mut nominal = FIRST_RETRY;
            for i in 0..tries {
                if i == reset_at {
                    backoff.reset();
                    nominal = FIRST_RETRY;
                }
                let wait = backoff.next_delay();
                prop_assert!(wait >= nominal / 2, "{:?} under half of {:?}", wait, nominal);
                prop_assert!(wait <= nominal, "{:?} over {:?}", wait, nominal);
                prop_assert!(wait <= MAX_RETRY);
                nominal = (nominal * 2).min(MAX_RETRY);
            }
        }
    }
}
