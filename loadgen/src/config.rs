//! The command line: every knob of a run, with the defaults. The
//! limits it checks against (the room's capacity per role, the longest line
//! and name) are the protocol's own, from [`logosnet::protocol`].

use std::path::PathBuf;

use clap::Parser;
use logosnet::protocol::{MAX_MESSAGE_CHARS, MAX_OBSERVERS, MAX_PARTICIPANTS, MAX_USERNAME_CHARS};
use logosnet::tls::Trust;

/// loadgen: fills a LogosNet room, drives open-loop chat traffic, checks every
/// delivery and reports capacity and latency.
#[derive(Debug, Clone, Parser)]
#[command(version, about)]
pub struct Config {
    /// Server IP address or host name
    #[arg(long, default_value = "127.0.0.1")]
    pub ip: String,
    /// Server port
    #[arg(long, default_value_t = 8021)]
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
}

impl Config {
    /// Checks the values that clap cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.participants == 0 || self.participants > MAX_PARTICIPANTS {
            return Err(format!("--participants must be 1..={MAX_PARTICIPANTS}"));
        }
        if self.observers > MAX_OBSERVERS {
            return Err(format!("--observers must be 0..={MAX_OBSERVERS}"));
        }
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return Err("--rate must be a positive number".into());
        }
        if !(self.duration.is_finite() && self.duration >= 0.0) {
            return Err("--duration must be a non-negative number of seconds".into());
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
        if !(self.phase_timeout.is_finite() && self.phase_timeout > 0.0) {
            return Err("--phase-timeout must be a positive number of seconds".into());
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

    /// Messages the whole run offers: rate × duration.
    pub fn total_messages(&self) -> u64 {
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
    fn tls_is_off_unless_asked_for_and_a_ca_file_implies_it() {
        assert_eq!(parse(&[]).trust(), None);
        assert_eq!(parse(&["--tls"]).trust(), Some(Trust::System));
        let ca = Some(Trust::CaFile("ca.pem".into()));
        assert_eq!(parse(&["--tls-ca", "ca.pem"]).trust(), ca);
        assert_eq!(parse(&["--tls", "--tls-ca", "ca.pem"]).trust(), ca);
    }
}
