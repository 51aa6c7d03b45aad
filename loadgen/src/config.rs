//! The command line: every knob of a run, with the defaults. The
//! limits it checks against (the room's capacity per role, the longest line
//! and name) are the protocol's own, from [`logosnet::protocol`]; the rest
//! ([`MAX_SECONDS`], [`MAX_RATE`], [`MAX_MESSAGES`]) keep every duration
//! and allocation a run derives from its options finite and small, so no
//! value is a panic later. It parses the way the server and client do
//! ([`logosnet::cli::parse`]): a bad argument is one line and exit 64.

use std::path::PathBuf;

use clap::Parser;
use logosnet::protocol::{MAX_MESSAGE_CHARS, MAX_OBSERVERS, MAX_PARTICIPANTS, MAX_USERNAME_CHARS};
use logosnet::tls::Trust;

/// The longest `--duration` and `--phase-timeout`: a day, like the
/// server's and client's longest durations; three phase timeouts plus the
/// traffic still fit any clock.
pub const MAX_SECONDS: f64 = 86_400.0;

/// The highest `--rate`, messages a second: a thousand times the default,
/// far past what one send clock thread writes.
pub const MAX_RATE: f64 = 1_000_000.0;

/// The most messages a run may offer (`--rate` × `--duration`): every
/// receiver keeps two bits per message for the checker, so at this bound
/// the 510 receivers of a full room hold about 250 MiB.
pub const MAX_MESSAGES: u64 = 2_000_000;

/// The most runtime worker threads: far more than any machine loadgen
/// shares with a server has cores.
pub const MAX_THREADS: usize = 1024;

/// loadgen: fills a LogosNet room, drives open-loop chat traffic, checks every
/// delivery and reports capacity and latency.
#[derive(Debug, Clone, Parser)]
#[command(version, about)]
pub struct Config {
    /// Server IP address or host name (an IPv6 address with or without
    /// brackets)
    #[arg(long, default_value = "127.0.0.1", value_parser = logosnet::cli::host)]
    pub ip: String,
    /// Server port
    #[arg(long, default_value_t = 8021, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,
    /// Participants to connect (each gets a unique name)
    #[arg(long, default_value_t = MAX_PARTICIPANTS)]
    pub participants: usize,
    /// Observers to connect
    #[arg(long, default_value_t = MAX_OBSERVERS)]
    pub observers: usize,
    /// Messages per second offered in total, spread evenly over participants
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Seconds of steady traffic
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Characters per chat line (longer if the line's header needs more)
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Fraction of messages sent as private (`@name text`), 0 to 1
    #[arg(long, default_value_t = 0.1)]
    pub private: f64,
    /// Write the report as JSON to this file
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the delivery-latency histogram (HdrHistogram percentile
    /// distribution, milliseconds) to this file
    #[arg(long, value_name = "FILE")]
    pub hgrm: Option<PathBuf>,
    /// Write a latency-by-percentile plot (SVG) to this file
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// The server's process id, to report its peak memory and CPU from /proc
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// The server's Prometheus endpoint (its --metrics), e.g.
    /// http://127.0.0.1:9021/metrics: scraped before and after the traffic
    /// to report the server's own deliveries, drops, refusals and CPU per
    /// delivery, from any machine
    #[arg(long, value_name = "URL")]
    pub metrics_url: Option<String>,
    /// Seed for the choice of private messages and their targets
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Skip the capacity probe (the 256th participant and observer must get
    /// Full); it is skipped anyway for a role with fewer than 255 clients
    #[arg(long)]
    pub skip_capacity_probe: bool,
    /// Participant names are this prefix followed by the index
    #[arg(long, default_value = "lg")]
    pub name_prefix: String,
    /// Connections opened and handshaking at once
    #[arg(long, default_value_t = 64)]
    pub connect_concurrency: usize,
    /// Seconds to wait for outstanding deliveries after the traffic ends, and
    /// for each other phase to complete
    #[arg(long, default_value_t = 10.0)]
    pub phase_timeout: f64,
    /// Runtime worker threads: 1 runs everything on one thread (leaving the
    /// other cores to the server)
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Connect every client over TLS, verifying the server's certificate
    /// against the system's trusted CAs and --ip
    #[arg(long)]
    pub tls: bool,
    /// Connect over TLS trusting only the CA certificates in this PEM file
    /// (implies --tls)
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Let a run pass although the server paced its senders (flood
    /// control): the figures are then flood control's, not the server's
    #[arg(long)]
    pub allow_pacing: bool,
}

impl Config {
    /// Checks the values that clap cannot; the error is one line naming
    /// the option and what it takes.
    pub fn validate(&self) -> Result<(), String> {
        if self.participants == 0 || self.participants > MAX_PARTICIPANTS {
            return Err(format!("--participants must be 1..={MAX_PARTICIPANTS}"));
        }
        if self.observers > MAX_OBSERVERS {
            return Err(format!("--observers must be 0..={MAX_OBSERVERS}"));
        }
        if !(self.rate > 0.0 && self.rate <= MAX_RATE) {
            return Err(format!(
                "--rate must be a number of messages a second above 0 and at most {MAX_RATE}"
            ));
        }
        if !(0.0..=MAX_SECONDS).contains(&self.duration) {
            return Err(format!(
                "--duration must be a number of seconds from 0 to {MAX_SECONDS}"
            ));
        }
        if self.total_messages() > MAX_MESSAGES {
            return Err(format!(
                "--rate × --duration must be at most {MAX_MESSAGES} messages (this run: {})",
                self.total_messages()
            ));
        }
        if !(0.0..=1.0).contains(&self.private) {
            return Err("--private must be between 0 and 1".into());
        }
        if self.size > MAX_MESSAGE_CHARS {
            return Err(format!(
                "--size must be at most {MAX_MESSAGE_CHARS} (the protocol's line limit)"
            ));
        }
        let longest = format!("{}{}", self.name_prefix, self.participants - 1);
        if self.name_prefix.is_empty()
            || longest.chars().count() > MAX_USERNAME_CHARS
            || !self.name_prefix.chars().all(|c| c.is_ascii_alphabetic())
        {
            return Err(format!(
                "--name-prefix must be ASCII letters, short enough that {longest:?} fits {MAX_USERNAME_CHARS} characters"
            ));
        }
        if self.connect_concurrency == 0 || self.threads == 0 {
            return Err("--connect-concurrency and --threads must be at least 1".into());
        }
        if self.threads > MAX_THREADS {
            return Err(format!("--threads must be at most {MAX_THREADS}"));
        }
        if !(self.phase_timeout > 0.0 && self.phase_timeout <= MAX_SECONDS) {
            return Err(format!(
                "--phase-timeout must be a number of seconds above 0 and at most {MAX_SECONDS}"
            ));
        }
        if let Some(url) = &self.metrics_url {
            crate::server_metrics::check_url(url).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Whom to trust over TLS, as the client's `--tls`/`--tls-ca` say;
    /// `None` for plain TCP.
    pub fn trust(&self) -> Option<Trust> {
        match (&self.tls_ca, self.tls) {
            (Some(file), _) => Some(Trust::CaFile(file.clone())),
            (None, true) => Some(Trust::System),
            (None, false) => None,
        }
    }

    /// Messages the whole run offers: rate × duration (saturating, so an
    /// out-of-range product is caught by [`Config::validate`]).
    pub fn total_messages(&self) -> u64 {
        // `as` saturates a float that does not fit and maps NaN to 0.
        (self.rate * self.duration).round() as u64
    }

    /// Whether the capacity probe runs for participants and for observers.
    pub fn probes(&self) -> (bool, bool) {
        (
            !self.skip_capacity_probe && self.participants == MAX_PARTICIPANTS,
            !self.skip_capacity_probe && self.observers == MAX_OBSERVERS,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Config {
        Config::parse_from(std::iter::once("loadgen").chain(args.iter().copied()))
    }

    #[test]
    fn every_out_of_range_value_is_one_line_not_a_panic() {
        for (args, starts) in [
            (&["--phase-timeout", "1e20"][..], "--phase-timeout must be"),
            (&["--phase-timeout", "0"], "--phase-timeout must be"),
            (&["--phase-timeout", "NaN"], "--phase-timeout must be"),
            (&["--duration", "1e20"], "--duration must be"),
            (&["--duration=-1"], "--duration must be"),
            (&["--duration", "inf"], "--duration must be"),
            (&["--rate", "1e300"], "--rate must be"),
            (&["--rate", "0"], "--rate must be"),
            (&["--rate", "NaN"], "--rate must be"),
            (
                &["--rate", "1000000", "--duration", "86400"],
                "--rate × --duration",
            ),
            (&["--private", "NaN"], "--private must be"),
            (&["--threads", "0"], "--connect-concurrency and --threads"),
            (&["--threads", "100000"], "--threads must be at most"),
            (&["--participants", "0"], "--participants must be"),
            (&["--size", "100000"], "--size must be"),
        ] {
            let error = parse(args).validate().expect_err(&format!("{args:?}"));
            assert!(error.starts_with(starts), "{args:?}: {error}");
            assert!(!error.contains('\n'), "{error}");
        }
        assert_eq!(parse(&[]).validate(), Ok(()));
        assert_eq!(parse(&["--phase-timeout", "86400"]).validate(), Ok(()));
    }

    #[test]
    fn tls_is_off_unless_asked_for_and_a_ca_file_implies_it() {
        assert_eq!(parse(&[]).trust(), None);
        assert_eq!(parse(&["--tls"]).trust(), Some(Trust::System));
        let ca = Some(Trust::CaFile("ca.pem".into()));
        assert_eq!(parse(&["--tls-ca", "ca.pem"]).trust(), ca);
        assert_eq!(parse(&["--tls", "--tls-ca", "ca.pem"]).trust(), ca);
    }
}
