//! `logosnet_client`'s command line: [`ClientArgs`] and how it becomes a
//! client [`Config`].

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use super::{host, seconds_between};
use crate::client::{Config, EXIT_STATUS_HELP};
use crate::protocol::Role;
use crate::tls::Trust;

/// Shortest `--connect-timeout`: one millisecond.
pub const MIN_CONNECT_TIMEOUT: Duration = Duration::from_millis(1);

/// Longest `--connect-timeout`: an hour, far past any server that is going
/// to answer at all.
pub const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(3600);

/// The client's arguments.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "logosnet_client",
    version,
    about = "The LogosNet chat client: join a room, or watch it with --observe",
    long_about = None,
    after_help = EXIT_STATUS_HELP
)]
pub struct ClientArgs {
    /// IPv4 or IPv6 address or host name of the server
    #[arg(short, long, value_name = "IP", value_parser = host)]
    pub ip: String,

    /// Port of the server
    #[arg(short, long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,

    /// Watch the room read-only instead of joining it
    #[arg(short, long)]
    pub observe: bool,

    /// `--timestamps`: put the local time before every room line.
    #[arg(
        long,
        help = "Start every room line with the local time, as [HH:MM:SS]"
    )]
    pub timestamps: bool,

    /// Seconds to wait for the server to answer before giving up
    #[arg(
        long,
        value_name = "SECS",
        allow_negative_numbers = true,
        default_value = "10",
        value_parser = seconds_between(MIN_CONNECT_TIMEOUT, MAX_CONNECT_TIMEOUT)
    )]
    pub connect_timeout: Duration,

    /// Seconds a server that accepted the connection may take to answer before it is called not a LogosNet server
    #[arg(
        long,
        value_name = "SECS",
        allow_negative_numbers = true,
        default_value = "5",
        value_parser = seconds_between(MIN_CONNECT_TIMEOUT, MAX_CONNECT_TIMEOUT)
    )]
    pub answer_timeout: Duration,

    /// Connect with TLS, verifying the server against the system's trusted certificates
    #[arg(long)]
    pub tls: bool,

    /// Connect with TLS, trusting only the CA certificates in this PEM file (implies --tls)
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,

    /// With --observe: when the server goes away or is not up yet, try again (1 s doubling to 30 s, with jitter)
    #[arg(long, requires = "observe")]
    pub reconnect: bool,
}

impl ClientArgs {
    /// What the client is to do.
    pub fn config(&self) -> Config {
        Config {
            host: self.ip.clone(),
            port: self.port,
            role: if self.observe {
                Role::Observer
            } else {
                Role::Participant
            },
            timestamps: self.timestamps,
            connect_timeout: self.connect_timeout,
            answer_timeout: self.answer_timeout,
            tls: match (&self.tls_ca, self.tls) {
                (Some(file), _) => Some(Trust::CaFile(file.clone())),
                (None, true) => Some(Trust::System),
                (None, false) => None,
            },
            reconnect: self.reconnect,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{EXIT_USAGE, parse};
    use crate::client::{ANSWER_TIMEOUT, CONNECT_TIMEOUT};

    fn args(extra: &[&str]) -> Result<ClientArgs, crate::cli::Stop> {
        let mut all = vec!["logosnet_client"];
        if !extra
            .iter()
            .any(|arg| arg.starts_with("-i") || arg.starts_with("--ip"))
        {
            all.extend(["-i", "localhost"]);
        }
        if !extra
            .iter()
            .any(|arg| arg.starts_with("-p") || arg.starts_with("--port"))
        {
            all.extend(["-p", "8021"]);
        }
        all.extend_from_slice(extra);
        parse("logosnet_client", all)
    }

    #[test]
    fn defaults_join_as_a_participant() {
        let config = args(&[]).unwrap().config();
        assert_eq!(config.host, "localhost");
        assert_eq!(config.port, 8021);
        assert_eq!(config.role, Role::Participant);
        assert!(!config.timestamps);
        assert_eq!(config.connect_timeout, CONNECT_TIMEOUT);
        assert_eq!(config.answer_timeout, ANSWER_TIMEOUT);
        assert!(!config.reconnect);
    }

    #[test]
    fn an_ipv6_address_in_brackets_is_the_same_address() {
        for ip in ["::1", "[::1]"] {
            assert_eq!(args(&["--ip", ip]).unwrap().config().host, "::1", "{ip}");
        }
    }

    #[test]
    fn only_an_observer_reconnects() {
        let config = args(&["--observe", "--reconnect"]).unwrap().config();
        assert!(config.reconnect);
        let stop = args(&["--reconnect"]).unwrap_err();
        assert_eq!(stop.status, EXIT_USAGE);
        assert_eq!(
            stop.stderr.as_deref(),
            Some(
                "logosnet_client: the following required arguments were not provided: \
                 --observe (try --help)"
            )
        );
    }

    #[test]
    fn options_reach_the_config() {
        let config = args(&["--observe", "--timestamps", "--connect-timeout", "0.25"])
            .unwrap()
            .config();
        assert_eq!(config.role, Role::Observer);
        assert!(config.timestamps);
        assert_eq!(config.connect_timeout, Duration::from_millis(250));
    }

    #[test]
    fn tls_is_off_by_default_and_a_ca_file_implies_it() {
        assert_eq!(args(&[]).unwrap().config().tls, None);
        assert_eq!(args(&["--tls"]).unwrap().config().tls, Some(Trust::System));
        for extra in [
            &["--tls-ca", "ca.pem"][..],
            &["--tls", "--tls-ca", "ca.pem"],
        ] {
            assert_eq!(
                args(extra).unwrap().config().tls,
                Some(Trust::CaFile("ca.pem".into())),
                "{extra:?}"
            );
        }
    }

    #[test]
    fn a_bad_argument_is_one_line_and_status_64() {
        for (extra, line) in [
            (
                &["--port", "70000"][..],
                "logosnet_client: invalid value '70000' for '--port <PORT>': \
                 70000 is not in 1..=65535 (try --help)",
            ),
            (
                &["--port", "0"][..],
                "logosnet_client: invalid value '0' for '--port <PORT>': \
                 0 is not in 1..=65535 (try --help)",
            ),
            (
                &["--ip", "127.0.0.1:8021"][..],
                "logosnet_client: invalid value '127.0.0.1:8021' for '--ip <IP>': \
                 give the port with --port, not in the address: \
                 --ip 127.0.0.1 --port 8021 (try --help)",
            ),
            (
                &["--obsrve"][..],
                "logosnet_client: unexpected argument '--obsrve' found \
                 (a similar argument exists: '--observe') (try --help)",
            ),
            (
                &["--connect-timeout", "1e30"][..],
                "logosnet_client: invalid value '1e30' for '--connect-timeout <SECS>': \
                 must be a number of seconds from 0.001 to 3600 (try --help)",
            ),
        ] {
            let stop = args(extra).unwrap_err();
            assert_eq!(stop.status, EXIT_USAGE, "{extra:?}");
            assert_eq!(stop.stderr.as_deref(), Some(line), "{extra:?}");
            assert_eq!(stop.stdout, "");
        }
    }

    #[test]
    fn help_is_status_zero_on_stdout_with_the_exit_statuses() {
        let stop = parse::<ClientArgs, _, _>("logosnet_client", ["logosnet_client", "--help"])
            .unwrap_err();
        assert_eq!(stop.status, 0);
        assert_eq!(stop.stderr, None);
        assert!(stop.stdout.contains("--ip <IP>"), "{}", stop.stdout);
        assert!(stop.stdout.contains(EXIT_STATUS_HELP), "{}", stop.stdout);
    }
}
