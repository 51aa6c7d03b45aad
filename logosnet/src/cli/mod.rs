//! The command lines of both binaries: their argument structs
//! ([`server::ServerArgs`], [`client::ClientArgs`]) and the conventions they
//! share, kept in the library so that every rule is a unit test.
//!
//! Conventions, the same in `logosnet_server` and `logosnet_client`:
//! - `--help` and `--version` print to standard output and exit 0;
//!   `--version` names the binary itself (`logosnet_client 0.1.0`).
//! - A bad argument prints exactly one line on standard error,
//!   `<binary>: <what is wrong> (try --help)`, and exits [`EXIT_USAGE`].
//!   clap's own report is several lines (the error, a tip, the usage, a
//!   pointer to `--help`); [`one_line`] folds the error and its tip into
//!   one and drops the rest, which `--help` gives anyway.
//! - `--ip` takes an IPv6 address with or without brackets (`::1`,
//!   `[::1]`, as the server prints it) and refuses `host:port` with a hint
//!   to give the port with `--port` ([`host`]).
//! - Every value is checked when it is parsed, including its range: a
//!   duration too long to add to a clock reading is a usage error, never a
//!   panic later ([`seconds_between`], [`millis_between`]).
//!
//! This module does no I/O except in [`Stop::exit`], which prints what
//! parsing decided.

pub mod client;
pub mod server;

use std::ffi::OsString;
use std::net::Ipv6Addr;
use std::process::ExitCode;
use std::time::Duration;

use clap::error::ErrorKind;

/// Exit status for bad arguments in both binaries: `EX_USAGE` from BSD's
/// `sysexits.h`. It stays clear of the client's own statuses (1 to 4), so a
/// script can tell a typo from a full server (2) or a timeout (3).
pub const EXIT_USAGE: u8 = 64;

/// Why parsing produced no arguments: help or version was asked for, or an
/// argument was bad.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    /// The exit status: 0 for help and version, [`EXIT_USAGE`] otherwise.
    pub status: u8,
    /// Text for standard output (help, version).
    pub stdout: String,
    /// The one line for standard error, without its newline.
    pub stderr: Option<String>,
}

impl Stop {
    /// Prints what parsing decided and returns the exit status.
    pub fn exit(self) -> ExitCode {
        use std::io::Write;
        if !self.stdout.is_empty() {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(self.stdout.as_bytes());
            let _ = out.flush();
        }
        if let Some(line) = &self.stderr {
            eprintln!("{line}");
        }
        ExitCode::from(self.status)
    }
}

/// Parses `args` (the first one is the program name) into `A`, or says why
/// not, following the conventions in the module docs. `bin` names the
/// binary in the error line.
pub fn parse<A, I, T>(bin: &str, args: I) -> Result<A, Stop>
where
    A: clap::Parser,
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    A::try_parse_from(args).map_err(|error| match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let mut stdout = error.render().to_string();
            if !stdout.ends_with('\n') {
                stdout.push('\n');
            }
            Stop {
                status: 0,
                stdout,
                stderr: None,
            }
        }
        _ => Stop {
            status: EXIT_USAGE,
            stdout: String::new(),
            stderr: Some(format!("{bin}: {} (try --help)", one_line(&error))),
        },
    })
}

/// clap's report of a usage error folded into one line: the error itself
/// (with any list it gives, such as the missing arguments, joined by
/// spaces) and clap's tip, if any, in parentheses; without the `error:`
/// prefix, the usage and the pointer to `--help`.
pub fn one_line(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    let mut message = Vec::new();
    let mut tips = Vec::new();
    for line in rendered.lines() {
        let line = line.trim();
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if line.is_empty() {
            continue;
        }
        match line.strip_prefix("tip:") {
            Some(tip) => tips.push(tip.trim().to_owned()),
            None => message.push(line.strip_prefix("error:").unwrap_or(line).trim()),
        }
    }
    let mut out = message.join(" ");
    if out.is_empty() {
        out = error.kind().to_string();
    }
    if !tips.is_empty() {
        out = format!("{out} ({})", tips.join("; "));
    }
    // A value typed on the command line may hold a newline or an escape;
    // the report stays one printable line.
    out.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A clap value parser for `--ip`: an IPv4 or IPv6 address or a host name.
/// An IPv6 address may come in brackets, as the server's `listening on
/// [::1]:8021` line shows it; the brackets are taken off. An address with a
/// port (`127.0.0.1:8021`, `[::1]:8021`, `localhost:8021`) is refused with
/// the two options it should have been.
pub fn host(text: &str) -> Result<String, String> {
    let text = text.trim();
    let port_hint = |host: &str, port: &str| {
        format!("give the port with --port, not in the address: --ip {host} --port {port}")
    };
    if let Some(inner) = text.strip_prefix('[') {
        let (address, port) = match inner.split_once(']') {
            Some((address, "")) => (address, None),
            Some((address, rest)) => (address, rest.strip_prefix(':')),
            None => (inner, None),
        };
        if address.parse::<Ipv6Addr>().is_err() || !inner.contains(']') {
            return Err("brackets hold an IPv6 address, as in [::1]".into());
        }
        return match port {
            Some(port) => Err(port_hint(address, port)),
            None if inner.ends_with(']') => Ok(address.to_owned()),
            None => Err("brackets hold an IPv6 address, as in [::1]".into()),
        };
    }
    if text.is_empty() {
        return Err("must be an address or a host name".into());
    }
    if text.parse::<Ipv6Addr>().is_ok() {
        return Ok(text.to_owned());
    }
    match text.split_once(':') {
        Some((host, port)) if !port.contains(':') => Err(port_hint(host, port)),
        Some(_) => Err("must be an IPv4 or IPv6 address or a host name".into()),
        None => Ok(text.to_owned()),
    }
}

/// A clap value parser for a number of seconds, decimals allowed
/// (`0.5`, `60`), that must lie in `min..=max`.
pub fn seconds_between(
    min: Duration,
    max: Duration,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    duration_between(
        min,
        max,
        "a number of seconds",
        |d| d.as_secs_f64().to_string(),
        // Refuses negative, NaN, infinite and overflowing values.
        |text| Duration::try_from_secs_f64(text.parse().ok()?).ok(),
    )
}

/// A clap value parser for a whole number of milliseconds that must lie in
/// `min..=max`.
pub fn millis_between(
    min: Duration,
    max: Duration,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    duration_between(
        min,
        max,
        "a whole number of milliseconds",
        |d| d.as_millis().to_string(),
        |text| text.parse().ok().map(Duration::from_millis),
    )
}

/// A value parser: `read` the text as a duration, then check the range;
/// any failure is the one message "must be `what` from `min` to `max`".
fn duration_between(
    min: Duration,
    max: Duration,
    what: &'static str,
    show: fn(Duration) -> String,
    read: fn(&str) -> Option<Duration>,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    move |text| {
        let refuse = || format!("must be {what} from {} to {}", show(min), show(max));
        match read(text.trim()) {
            Some(duration) if (min..=max).contains(&duration) => Ok(duration),
            _ => Err(refuse()),
        }
    }
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn ipv6_addresses_come_with_or_without_brackets() {
        assert_eq!(host("::1"), Ok("::1".into()));
        assert_eq!(host("[::1]"), Ok("::1".into()));
        assert_eq!(host("[fe80::1]"), Ok("fe80::1".into()));
        assert_eq!(host("127.0.0.1"), Ok("127.0.0.1".into()));
        assert_eq!(host("localhost"), Ok("localhost".into()));
    }

    #[test]
    fn an_address_with_a_port_is_told_to_use_port() {
        for (text, hint) in [
            ("127.0.0.1:8021", "--ip 127.0.0.1 --port 8021"),
            ("[::1]:8021", "--ip ::1 --port 8021"),
            ("localhost:8021", "--ip localhost --port 8021"),
        ] {
            assert_eq!(
                host(text),
                Err(format!(
                    "give the port with --port, not in the address: {hint}"
                )),
                "{text}"
            );
        }
        for bad in ["[localhost]", "[::1", "[::1]x", ""] {
            assert!(host(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn seconds_take_decimals_within_the_range() {
        let parse = seconds_between(MS, DAY);
        assert_eq!(parse("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("60"), Ok(Duration::from_secs(60)));
        assert_eq!(parse("0.001"), Ok(MS));
        assert_eq!(parse("86400"), Ok(DAY));
    }

    #[test]
    fn seconds_outside_the_range_or_not_numbers_are_refused() {
        let parse = seconds_between(MS, DAY);
        for bad in [
            "0", "-1", "86400.5", "1e19", "1e20", "1e400", "inf", "NaN", "", "ten", "0x10",
        ] {
            assert_eq!(
                parse(bad),
                Err("must be a number of seconds from 0.001 to 86400".into()),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn millis_are_whole_and_within_the_range() {
        let parse = millis_between(Duration::ZERO, Duration::from_secs(1));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("1000"), Ok(Duration::from_secs(1)));
        for bad in ["1001", "-1", "1.5", "18446744073709551616", ""] {
            assert_eq!(
                parse(bad),
                Err("must be a whole number of milliseconds from 0 to 1000".into()),
                "{bad:?}"
            );
        }
    }
}
