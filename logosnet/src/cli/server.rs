//! `logosnet_server`'s command line: [`ServerArgs`] and how it becomes a
//! [`ServerConfig`].
//!
//! To add an option: a field here with its doc line (the `--help` text),
//! `value_name` and, for a number, a value parser that checks its range; a
//! line in [`ServerArgs::config`]; a row in docs/OPERATING.md's option table (a test
//! compares the two).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;

use super::{host, millis_between, seconds_between};
use crate::room::flood::{FloodLimit, MAX_FLOOD_SETTING};
use crate::server::{MAX_CONNECTIONS, RateLimit, ServerConfig};

/// Shortest `--hello-timeout`: one millisecond (anything shorter would close
/// every connection before it could speak).
pub const MIN_HELLO_TIMEOUT: Duration = Duration::from_millis(1);

/// Longest `--hello-timeout`: a day. Past that an idle socket would hold a
/// descriptor for longer than any client waits before sending Hello; the
/// spec's value is 60 s.
pub const MAX_HELLO_TIMEOUT: Duration = Duration::from_secs(86_400);

/// Longest `--write-gap-ms`: one second, twenty times the 50 ms p99 latency
/// target; a longer gap could only make a busy connection lag.
pub const MAX_WRITE_GAP: Duration = Duration::from_secs(1);

/// Shortest `--max-lag`: a second. Shorter, and a reader on an ordinary
/// link that lost one packet (a retransmission waits 200 ms to a second)
/// would be dropped for it.
pub const MIN_MAX_LAG: Duration = Duration::from_secs(1);

/// Longest `--max-lag`: an hour; a reader that far behind is gone.
pub const MAX_MAX_LAG: Duration = Duration::from_secs(3600);

/// Longest `--hold-budget-ms`: the whole 10 s window, in which the room
/// could wait on readers all the time (the pace of the slowest again).
pub const MAX_HOLD_BUDGET: Duration = crate::server::HOLD_WINDOW;

/// Smallest `--max-queued-total`: 4 MiB, room for the fan-out of a few
/// maximum lines to a full room.
pub const MIN_QUEUED_TOTAL: u64 = 4 << 20;

/// Largest `--max-queued-total`: 64 GiB, far past any machine this runs on.
pub const MAX_QUEUED_TOTAL_SETTING: u64 = 64 << 30;

/// Largest `--max-per-ip`: the default socket table, past which a
/// per-source limit limits nothing at the default `--max-connections` (one
/// who raises that and wants no per-source limit sets 0).
pub const MAX_PER_IP_SETTING: u64 = MAX_CONNECTIONS as u64;

/// Most `--max-connections`: 65,536 sockets, thirty-two times the default
/// and far past what one room of 510 can use (each costs a descriptor and
/// kernel buffers).
pub const MAX_CONNECTIONS_SETTING: u64 = 65_536;

/// Most `--max-new-per-ip`: a hundred thousand a window, which limits
/// nothing a person would notice; 0 turns the rate off.
pub const MAX_NEW_PER_IP_SETTING: u64 = 100_000;

/// Longest `--new-per-ip-window`: a day.
pub const MAX_NEW_PER_IP_WINDOW: Duration = Duration::from_secs(86_400);

/// Most `--threads`: past the cores a machine has, more threads only add
/// switching.
pub const MAX_THREADS: i64 = 64;

/// The server's exit statuses, as `--help` prints them after the options.
pub const SERVER_EXIT_STATUS_HELP: &str = "\
Exit status:
  0   stopped by SIGINT or SIGTERM, after telling every client
  1   could not start: the address does not resolve, a port is in use,
      a TLS certificate or key file is unusable, or the runtime failed
      (one line on stderr)
  64  bad arguments (one line on stderr)";

/// The server's arguments.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "logosnet_server",
    version,
    about = "The LogosNet chat server",
    long_about = None,
    after_help = SERVER_EXIT_STATUS_HELP
)]
pub struct ServerArgs {
    /// IPv4 or IPv6 address or host name to listen on
    #[arg(short, long, value_name = "IP", value_parser = host)]
    pub ip: String,

    /// Port to listen on without encryption (0: any free port); may be left out when --tls-port is given
    #[arg(short, long, value_name = "PORT", required_unless_present = "tls_port")]
    pub port: Option<u16>,

    /// Port to listen on with TLS (0: any free port), beside or instead of --port; needs --tls-cert and --tls-key
    #[arg(long, value_name = "PORT", requires = "tls_cert", requires = "tls_key")]
    pub tls_port: Option<u16>,

    /// PEM file with the server's certificate, then any intermediate certificates
    #[arg(long, value_name = "FILE", requires = "tls_port")]
    pub tls_cert: Option<PathBuf>,

    /// PEM file with the certificate's private key (PKCS#8, PKCS#1 or SEC1)
    #[arg(long, value_name = "FILE", requires = "tls_port")]
    pub tls_key: Option<PathBuf>,

    /// Seconds a new connection has to send Hello before it is closed
    #[arg(
        long,
        value_name = "SECS",
        allow_negative_numbers = true,
        default_value = "60",
        value_parser = seconds_between(MIN_HELLO_TIMEOUT, MAX_HELLO_TIMEOUT)
    )]
    pub hello_timeout: Duration,

    /// Milliseconds a busy connection waits between writes to batch frames (0: off)
    #[arg(
        long = "write-gap-ms",
        value_name = "MS",
        allow_negative_numbers = true,
        default_value = "5",
        value_parser = millis_between(Duration::ZERO, MAX_WRITE_GAP)
    )]
    pub write_gap: Duration,

    /// Lines a second each participant may keep up after its burst; excess lines wait, none are dropped (0: flood control off)
    #[arg(
        long,
        value_name = "LINES",
        default_value = "5",
        value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_FLOOD_SETTING))
    )]
    pub flood_rate: u32,

    /// Lines a participant may send at once before it is slowed
    #[arg(
        long,
        value_name = "LINES",
        default_value = "10",
        value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_FLOOD_SETTING))
    )]
    pub flood_burst: u32,

    /// Seconds a member's oldest undelivered line may wait before it is dropped as too far behind
    #[arg(
        long,
        alias = "write-deadline",
        value_name = "SECS",
        allow_negative_numbers = true,
        default_value = "10",
        value_parser = seconds_between(MIN_MAX_LAG, MAX_MAX_LAG)
    )]
    pub max_lag: Duration,

    /// Milliseconds the room may wait at once for readers that fell behind, earned back over 10 s (0: never waits)
    #[arg(
        long = "hold-budget-ms",
        value_name = "MS",
        allow_negative_numbers = true,
        default_value = "500",
        value_parser = millis_between(Duration::ZERO, MAX_HOLD_BUDGET)
    )]
    pub hold_budget: Duration,

    /// Bytes all outgoing queues together may hold; reading pauses at half of it
    #[arg(
        long,
        value_name = "BYTES",
        default_value = "67108864",
        value_parser = clap::value_parser!(u64).range(MIN_QUEUED_TOTAL..=MAX_QUEUED_TOTAL_SETTING)
    )]
    pub max_queued_total: u64,

    /// Threads that run the sockets: 1 (the default) runs the whole server as one event loop on one thread
    #[arg(
        long,
        value_name = "N",
        default_value = "1",
        value_parser = clap::value_parser!(u16).range(1..=MAX_THREADS)
    )]
    pub threads: u16,

    /// Connections one IPv4 address or IPv6 /64 may have open at once; past it, refused (0: no limit)
    #[arg(
        long,
        value_name = "N",
        default_value = "16",
        value_parser = clap::value_parser!(u64).range(0..=MAX_PER_IP_SETTING)
    )]
    pub max_per_ip: u64,

    /// Apply --max-per-ip and --max-new-per-ip to loopback clients too (they are exempt by default)
    #[arg(long)]
    pub limit_loopback: bool,

    /// New connections one IPv4 address or IPv6 /64 may open at once, then one more each --new-per-ip-window / N; past it, refused (0: no limit)
    #[arg(
        long,
        value_name = "N",
        default_value = "32",
        value_parser = clap::value_parser!(u32).range(0..=MAX_NEW_PER_IP_SETTING as i64)
    )]
    pub max_new_per_ip: u32,

    /// Seconds in which a source's whole --max-new-per-ip comes back
    #[arg(
        long,
        value_name = "SECS",
        allow_negative_numbers = true,
        default_value = "600",
        value_parser = seconds_between(Duration::from_secs(1), MAX_NEW_PER_IP_WINDOW)
    )]
    pub new_per_ip_window: Duration,

    /// Sockets open at once before a newcomer makes room by closing the oldest that has not said Hello (else the oldest without a name)
    #[arg(
        long,
        value_name = "N",
        default_value = "2048",
        value_parser = clap::value_parser!(u64).range(1..=MAX_CONNECTIONS_SETTING)
    )]
    pub max_connections: u64,

    /// Serve Prometheus metrics at http://ADDR:PORT/metrics, on a listener of their own (keep it on loopback or a private network)
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<SocketAddr>,

    /// How log lines are written to stderr: text, or json (one object a line, with conn and peer on connection events)
    #[arg(
        long,
        value_name = "FORMAT",
        value_enum,
        default_value = "text",
        hide_possible_values = true
    )]
    pub log_format: LogFormat,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// tracing's text lines (coloured on a terminal).
    Text,
    /// tracing's JSON output, one object a line.
    Json,
}

/// Where the server listens with TLS, and with which certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsListen<'a> {
    /// The TLS port.
    pub port: u16,
    /// The certificate chain file.
    pub cert: &'a Path,
    /// The private key file.
    pub key: &'a Path,
}

impl ServerArgs {
    /// The TLS listener asked for, if any (parsing has checked that the
    /// port, the certificate and the key come together).
    pub fn tls(&self) -> Option<TlsListen<'_>> {
        Some(TlsListen {
            port: self.tls_port?,
            cert: self.tls_cert.as_deref()?,
            key: self.tls_key.as_deref()?,
        })
    }

    /// The server configuration these arguments ask for: the defaults with
    /// each option applied.
    pub fn config(&self) -> ServerConfig {
        let mut config = ServerConfig::default();
        config.room.hello_timeout = self.hello_timeout;
        config.write_gap = self.write_gap;
        config.room.flood = FloodLimit::new(self.flood_rate, self.flood_burst);
        config.max_lag = self.max_lag;
        config.hold_budget = self.hold_budget;
        config.max_queued_total = usize::try_from(self.max_queued_total).unwrap_or(usize::MAX);
        config.max_per_address = usize::try_from(self.max_per_ip).unwrap_or(usize::MAX);
        config.limit_loopback = self.limit_loopback;
        config.connect_rate = RateLimit {
            burst: self.max_new_per_ip,
            window: self.new_per_ip_window,
        };
        config.max_connections = usize::try_from(self.max_connections).unwrap_or(usize::MAX);
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{EXIT_USAGE, parse};
    use crate::room::HELLO_TIMEOUT;
    use crate::server::WRITE_GAP;

    fn args(extra: &[&str]) -> Result<ServerArgs, crate::cli::Stop> {
        let mut all = vec!["logosnet_server", "--ip", "::1", "--port", "0"];
        all.extend_from_slice(extra);
        parse("logosnet_server", all)
    }

    #[test]
    fn ip_takes_ipv6_with_or_without_brackets_and_refuses_a_port() {
        for ip in ["::1", "[::1]"] {
            let parsed = parse::<ServerArgs, _, _>(
                "logosnet_server",
                ["logosnet_server", "--ip", ip, "--port", "0"],
            )
            .unwrap();
            assert_eq!(parsed.ip, "::1", "{ip}");
        }
        let stop = parse::<ServerArgs, _, _>(
            "logosnet_server",
            ["logosnet_server", "--ip", "127.0.0.1:8021", "--port", "0"],
        )
        .unwrap_err();
        assert_eq!(stop.status, EXIT_USAGE);
        assert_eq!(
            stop.stderr.as_deref(),
            Some(
                "logosnet_server: invalid value '127.0.0.1:8021' for '--ip <IP>': \
                 give the port with --port, not in the address: \
                 --ip 127.0.0.1 --port 8021 (try --help)"
            )
        );
    }

    #[test]
    fn defaults_are_the_spec_and_the_library_defaults() {
        let parsed = args(&[]).unwrap();
        assert_eq!(parsed.hello_timeout, HELLO_TIMEOUT);
        assert_eq!(parsed.write_gap, WRITE_GAP);
        let config = parsed.config();
        let default = ServerConfig::default();
        assert_eq!(config.room, default.room);
        assert_eq!(config.write_gap, default.write_gap);
        assert_eq!(config.max_lag, default.max_lag);
        assert_eq!(config.hold_budget, default.hold_budget);
        assert_eq!(config.max_queued_total, default.max_queued_total);
        assert_eq!(config.max_per_address, default.max_per_address);
        assert_eq!(config.limit_loopback, default.limit_loopback);
        assert!(!config.limit_loopback, "loopback is exempt by default");
        assert_eq!(config.connect_rate, default.connect_rate);
        assert_eq!(config.max_connections, default.max_connections);
        assert_eq!(config.max_connections, MAX_CONNECTIONS);
    }

    #[test]
    fn the_doors_options_reach_the_config_and_bad_values_are_usage_errors() {
        let config = args(&[
            "--max-connections",
            "100",
            "--max-new-per-ip",
            "5",
            "--new-per-ip-window",
            "60",
        ])
        .unwrap()
        .config();
        assert_eq!(config.max_connections, 100);
        assert_eq!(
            config.connect_rate,
            RateLimit {
                burst: 5,
                window: Duration::from_secs(60)
            }
        );
        let off = args(&["--max-new-per-ip", "0"]).unwrap().config();
        assert!(!off.connect_rate.is_on());
        for bad in [
            &["--max-connections", "0"][..],
            &["--max-connections", "65537"][..],
            &["--max-new-per-ip", "-1"][..],
            &["--max-new-per-ip", "100001"][..],
            &["--new-per-ip-window", "0"][..],
            &["--new-per-ip-window", "86401"][..],
        ] {
            let stop = args(bad).unwrap_err();
            assert_eq!(stop.status, EXIT_USAGE, "{bad:?}");
        }
    }

    #[test]
    fn options_reach_the_config() {
        let parsed = args(&["--hello-timeout", "0.5", "--write-gap-ms", "0"]).unwrap();
        let config = parsed.config();
        assert_eq!(config.room.hello_timeout, Duration::from_millis(500));
        assert_eq!(config.write_gap, Duration::ZERO);
        let parsed = args(&[
            "--flood-rate",
            "0",
            "--max-lag",
            "2.5",
            "--hold-budget-ms",
            "0",
            "--max-queued-total",
            "8388608",
        ])
        .unwrap();
        let config = parsed.config();
        assert_eq!(config.room.flood, None);
        assert_eq!(config.max_lag, Duration::from_millis(2500));
        assert_eq!(config.hold_budget, Duration::ZERO);
        // The option's old name still works.
        let aliased = args(&["--write-deadline", "3"]).unwrap().config();
        assert_eq!(aliased.max_lag, Duration::from_secs(3));
        for bad in [
            &["--max-lag", "0.5"][..],
            &["--hold-budget-ms", "10001"][..],
        ] {
            assert_eq!(args(bad).unwrap_err().status, EXIT_USAGE, "{bad:?}");
        }
        assert_eq!(config.max_queued_total, 8 << 20);
        let config = args(&["--flood-rate", "2", "--flood-burst", "3"])
            .unwrap()
            .config();
        assert_eq!(config.room.flood, FloodLimit::new(2, 3));
        let config = args(&["--max-per-ip", "0", "--limit-loopback"])
            .unwrap()
            .config();
        assert_eq!(config.max_per_address, 0);
        assert!(config.limit_loopback);
        let stop = args(&["--max-per-ip", "2049"]).unwrap_err();
        assert_eq!(stop.status, EXIT_USAGE);
    }

    #[test]
    fn huge_timeouts_are_a_usage_error_not_a_panic() {
        for value in ["1e19", "1e20", "86401", "0", "-5"] {
            let stop = args(&["--hello-timeout", value]).unwrap_err();
            assert_eq!(stop.status, EXIT_USAGE, "{value}");
            assert_eq!(
                stop.stderr.as_deref(),
                Some(
                    format!(
                        "logosnet_server: invalid value '{value}' for '--hello-timeout <SECS>': \
                         must be a number of seconds from 0.001 to 86400 (try --help)"
                    )
                    .as_str()
                )
            );
        }
        let stop = args(&["--write-gap-ms", "99999999999999999"]).unwrap_err();
        assert_eq!(stop.status, EXIT_USAGE);
    }

    #[test]
    fn missing_arguments_are_named_on_one_line() {
        let stop = parse::<ServerArgs, _, _>("logosnet_server", ["logosnet_server"]).unwrap_err();
        assert_eq!(stop.status, EXIT_USAGE);
        assert_eq!(
            stop.stderr.as_deref(),
            Some(
                "logosnet_server: the following required arguments were not provided: \
                 --ip <IP> --port <PORT> (try --help)"
            )
        );
    }

    fn parse_all(all: &[&str]) -> Result<ServerArgs, crate::cli::Stop> {
        parse("logosnet_server", all.iter().copied())
    }

    #[test]
    fn tls_port_with_or_without_the_plaintext_port() {
        let tls = [
            "--tls-port",
            "8022",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
        ];
        let mut both = vec!["logosnet_server", "--ip", "::1", "--port", "8021"];
        both.extend(tls);
        let parsed = parse_all(&both).unwrap();
        assert_eq!(parsed.port, Some(8021));
        assert_eq!(
            parsed.tls(),
            Some(TlsListen {
                port: 8022,
                cert: Path::new("c.pem"),
                key: Path::new("k.pem"),
            })
        );
        let mut only_tls = vec!["logosnet_server", "--ip", "::1"];
        only_tls.extend(tls);
        let parsed = parse_all(&only_tls).unwrap();
        assert_eq!(parsed.port, None);
        assert_eq!(parsed.tls().map(|t| t.port), Some(8022));
        assert_eq!(args(&[]).unwrap().tls(), None);
    }

    #[test]
    fn tls_options_come_together_or_are_one_usage_line() {
        for (extra, missing) in [
            (
                &["--tls-port", "8022"][..],
                "--tls-cert <FILE> --tls-key <FILE>",
            ),
            (
                &["--tls-port", "8022", "--tls-cert", "c.pem"][..],
                "--tls-key <FILE>",
            ),
            (
                &["--tls-cert", "c.pem", "--tls-key", "k.pem"][..],
                "--tls-port <PORT>",
            ),
            (&["--tls-key", "k.pem"][..], "--tls-port <PORT>"),
        ] {
            let stop = args(extra).unwrap_err();
            assert_eq!(stop.status, EXIT_USAGE, "{extra:?}");
            let line = stop.stderr.unwrap_or_default();
            assert!(
                line.starts_with(
                    "logosnet_server: the following required arguments were not provided:"
                ) && line.contains(missing)
                    && line.ends_with("(try --help)")
                    && !line.contains('\n'),
                "{extra:?}: {line}"
            );
        }
    }

    #[test]
    fn version_names_the_server() {
        let stop = parse::<ServerArgs, _, _>("logosnet_server", ["logosnet_server", "--version"])
            .unwrap_err();
        assert_eq!(stop.status, 0);
        assert_eq!(
            stop.stdout,
            format!("logosnet_server {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
}
