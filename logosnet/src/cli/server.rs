//! `logosnet_server`'s command line: [`ServerArgs`] and how it becomes a
//! [`ServerConfig`].
//!
//! To add an option: a field here with its doc line (the `--help` text),
//! `value_name` and, for a number, a value parser that checks its range; a
//! line in [`ServerArgs::config`]; a row in README's option table (a test
//! compares the two).

use std::time::Duration;

use clap::Parser;

use super::{millis_between, seconds_between};
use crate::server::ServerConfig;

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

/// The server's exit statuses, as `--help` prints them after the options.
pub const SERVER_EXIT_STATUS_HELP: &str = "\
Exit status:
  0   stopped by SIGINT or SIGTERM, after telling every client
  1   could not start: the address does not resolve, the port is in use,
      or the runtime failed (one line on stderr)
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
    #[arg(short, long, value_name = "IP")]
    pub ip: String,

    /// Port to listen on (0: any free port)
    #[arg(short, long, value_name = "PORT")]
    pub port: u16,

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
}

impl ServerArgs {
    /// The server configuration these arguments ask for: the defaults with
    /// each option applied.
    pub fn config(&self) -> ServerConfig {
        let mut config = ServerConfig::default();
        config.room.hello_timeout = self.hello_timeout;
        config.write_gap = self.write_gap;
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
    fn defaults_are_the_spec_and_the_library_defaults() {
        let parsed = args(&[]).unwrap();
        assert_eq!(parsed.hello_timeout, HELLO_TIMEOUT);
        assert_eq!(parsed.write_gap, WRITE_GAP);
        let config = parsed.config();
        let default = ServerConfig::default();
        assert_eq!(config.room, default.room);
        assert_eq!(config.write_gap, default.write_gap);
    }

    #[test]
    fn options_reach_the_config() {
        let parsed = args(&["--hello-timeout", "0.5", "--write-gap-ms", "0"]).unwrap();
        let config = parsed.config();
        assert_eq!(config.room.hello_timeout, Duration::from_millis(500));
        assert_eq!(config.write_gap, Duration::ZERO);
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
