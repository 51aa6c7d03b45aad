//! How a client run ends: the one line it leaves on stderr and its exit
//! status. Every way out of the client is one [`Ending`], so the exit codes
//! documented in `--help` and docs/OPERATING.md are exactly these.

use std::fmt;
use std::io;
use std::time::Duration;

use crate::tls::{ADD_TLS_HINT, LEAVE_OUT_TLS_HINT};

/// The exit statuses, as `--help` prints them after the options.
pub const EXIT_STATUS_HELP: &str = "\
Exit status:
  0   left cleanly: exit(), end of input (Ctrl-D), Ctrl-C, SIGINT, SIGTERM
      or SIGHUP
  1   could not connect (refused, host not found, no answer in time, not a
      LogosNet server, TLS refused or not spoken on that port), the server
      closed the connection, the connection was lost, or a protocol error
  2   the server is full (\"Server is full, try again later\")
  3   no username was accepted in time (\"Timed out choosing a username\")
  4   pipe mode: input ended (or said exit()) before any username was
      accepted
  64  bad arguments (one line on stderr)";

/// Why the client stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The user left: `exit()`, end of input or Ctrl-C. Status 0.
    Left,
    /// The server answered `Full`. Status 2.
    Full,
    /// The server answered `UsernameTimeout`. Status 3.
    UsernameTimeout,
    /// A script's input ended, or said `exit()`, before any of its names was
    /// accepted: it never joined the room. Status 4.
    NoName,
    /// `--ip` did not resolve to any address. Status 1.
    HostNotFound {
        /// `host:port` as given.
        target: String,
        /// What the resolver said.
        reason: String,
    },
    /// No address of the target accepted the connection. Status 1.
    ConnectFailed {
        /// The address last tried.
        addr: String,
        /// Why it failed.
        reason: String,
    },
    /// The server gave no answer to `Hello` (or could not even be
    /// connected to) within the connect timeout. Status 1.
    ConnectTimeout {
        /// `host:port` as given.
        target: String,
        /// The timeout that ran out.
        timeout: Duration,
    },
    /// The server accepted the connection but did not answer `Hello`
    /// within the answer timeout: whatever listens there is not a LogosNet
    /// server, or is hung. Status 1.
    NotAnswering {
        /// The server's address.
        addr: String,
        /// How long it was given.
        waited: Duration,
    },
    /// The server's first bytes are not protocol v1. Status 1.
    NotLogosNet {
        /// The server's address.
        addr: String,
    },
    /// The server answered a plaintext client in TLS: the port wants
    /// `--tls`. Status 1.
    SpeaksTls {
        /// The server's address.
        addr: String,
    },
    /// A TLS client's handshake was answered with bytes that are not TLS:
    /// the port is a plaintext one. Status 1.
    NotTlsServer {
        /// The server's address.
        addr: String,
    },
    /// The server's certificate was not accepted. Status 1.
    CertificateRefused {
        /// The server's address.
        addr: String,
        /// Why, already safe to print.
        reason: String,
    },
    /// The TLS handshake failed otherwise (an alert, a close, a socket
    /// error). Status 1.
    TlsFailed {
        /// The server's address.
        addr: String,
        /// Why, already safe to print.
        reason: String,
    },
    /// TLS could not be set up before connecting: an unreadable CA file,
    /// no system roots, a host name no certificate can carry. Status 1.
    TlsSetup(String),
    /// The server closed the connection while the client was still in the
    /// room. Status 1.
    ServerClosed {
        /// The server's address.
        addr: String,
    },
    /// The server sent `ProtocolError`, something undecodable, or a frame
    /// that makes no sense at this point. Status 1.
    Protocol {
        /// The server's address.
        addr: String,
        /// What went wrong, already safe to print.
        reason: String,
    },
    /// Reading or writing the socket failed. Status 1.
    ConnectionLost {
        /// The server's address.
        addr: String,
        /// The socket error.
        reason: String,
    },
    /// The terminal or standard output failed. Status 1.
    Terminal(String),
}

impl Ending {
    /// The process exit status for this ending.
    pub fn exit_code(&self) -> u8 {
        match self {
            Ending::Left => 0,
            Ending::Full => 2,
            Ending::UsernameTimeout => 3,
            Ending::NoName => 4,
            Ending::HostNotFound { .. }
            | Ending::ConnectFailed { .. }
            | Ending::ConnectTimeout { .. }
            | Ending::NotAnswering { .. }
            | Ending::NotLogosNet { .. }
            | Ending::SpeaksTls { .. }
            | Ending::NotTlsServer { .. }
            | Ending::CertificateRefused { .. }
            | Ending::TlsFailed { .. }
            | Ending::TlsSetup(_)
            | Ending::ServerClosed { .. }
            | Ending::Protocol { .. }
            | Ending::ConnectionLost { .. }
            | Ending::Terminal(_) => 1,
        }
    }

    /// The one line printed on stderr, if any (leaving cleanly prints none).
    pub fn message(&self) -> Option<String> {
        match self {
            Ending::Left => None,
            other => Some(other.to_string()),
        }
    }
}

impl fmt::Display for Ending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ending::Left => write!(f, "Left the chat"),
            Ending::Full => write!(f, "Server is full, try again later"),
            Ending::UsernameTimeout => write!(f, "Timed out choosing a username"),
            Ending::NoName => write!(f, "Left before any username was accepted"),
            Ending::ConnectTimeout { target, timeout } => write!(
                f,
                "Timed out connecting to {target}: no answer within {} s",
                timeout.as_secs_f64()
            ),
            Ending::NotAnswering { addr, waited } => write!(
                f,
                "{addr} is not answering as a LogosNet server (no reply to Hello within {} s)",
                waited.as_secs_f64()
            ),
            Ending::NotLogosNet { addr } => {
                write!(f, "{addr} is not a LogosNet server (protocol v1)")
            }
            Ending::SpeaksTls { addr } => {
                write!(f, "{addr} speaks TLS: {ADD_TLS_HINT}")
            }
            Ending::NotTlsServer { addr } => write!(
                f,
                "{addr} is not a TLS server (it answered without TLS; {LEAVE_OUT_TLS_HINT})"
            ),
            Ending::CertificateRefused { addr, reason } => {
                write!(f, "Cannot verify the server at {addr}: {reason}")
            }
            Ending::TlsFailed { addr, reason } => {
                write!(f, "TLS handshake with {addr} failed: {reason}")
            }
            Ending::TlsSetup(reason) => write!(f, "Cannot set up TLS: {reason}"),
            Ending::HostNotFound { target, reason } => {
                write!(f, "Cannot find host {target}: {reason}")
            }
            Ending::ConnectFailed { addr, reason } => {
                write!(f, "Cannot connect to {addr}: {reason}")
            }
            Ending::ServerClosed { addr } => {
                write!(f, "The server at {addr} closed the connection")
            }
            Ending::Protocol { addr, reason } => {
                write!(f, "Protocol error with the server at {addr}: {reason}")
            }
            Ending::ConnectionLost { addr, reason } => {
                write!(f, "Lost the connection to {addr}: {reason}")
            }
            Ending::Terminal(reason) => write!(f, "Cannot use the terminal: {reason}"),
        }
    }
}

/// A socket error in a few plain words, without the `(os error N)` suffix
/// for the common cases.
pub fn describe_io(error: &io::Error) -> String {
    use io::ErrorKind as K;
    match error.kind() {
        K::ConnectionRefused => "connection refused".into(),
        K::ConnectionReset => "connection reset by the server".into(),
        K::ConnectionAborted => "connection aborted".into(),
        K::BrokenPipe => "the connection is closed".into(),
        K::TimedOut => "timed out".into(),
        K::HostUnreachable => "host unreachable".into(),
        K::NetworkUnreachable => "network unreachable".into(),
        K::AddrNotAvailable => "address not available".into(),
        _ => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_match_the_documented_table() {
        assert_eq!(Ending::Left.exit_code(), 0);
        assert_eq!(Ending::Full.exit_code(), 2);
        assert_eq!(Ending::UsernameTimeout.exit_code(), 3);
        let closed = Ending::ServerClosed {
            addr: "127.0.0.1:8021".into(),
        };
        assert_eq!(closed.exit_code(), 1);
        assert_eq!(Ending::NoName.exit_code(), 4);
        for code in ["  0   ", "  1   ", "  2   ", "  3   ", "  4   "] {
            assert!(EXIT_STATUS_HELP.contains(code), "{code} undocumented");
        }
        let usage = format!("  {}  bad arguments", crate::cli::EXIT_USAGE);
        assert!(EXIT_STATUS_HELP.contains(&usage), "{usage} undocumented");
    }

    #[test]
    fn spec_texts_are_exact() {
        assert_eq!(
            Ending::Full.message().as_deref(),
            Some("Server is full, try again later")
        );
        assert_eq!(
            Ending::UsernameTimeout.message().as_deref(),
            Some("Timed out choosing a username")
        );
        assert_eq!(Ending::Left.message(), None);
    }

    #[test]
    fn connect_timeout_has_its_own_line() {
        let timeout = Ending::ConnectTimeout {
            target: "example.org:8021".into(),
            timeout: Duration::from_millis(2500),
        };
        assert_eq!(
            timeout.message().as_deref(),
            Some("Timed out connecting to example.org:8021: no answer within 2.5 s")
        );
        assert_eq!(timeout.exit_code(), 1);
    }

    #[test]
    fn a_silent_server_is_not_answering_as_a_logosnet_server() {
        let silent = Ending::NotAnswering {
            addr: "127.0.0.1:8021".into(),
            waited: Duration::from_secs(5),
        };
        assert_eq!(
            silent.message().as_deref(),
            Some(
                "127.0.0.1:8021 is not answering as a LogosNet server (no reply to Hello within 5 s)"
            )
        );
        assert_eq!(silent.exit_code(), 1);
    }

    #[test]
    fn failures_name_the_address() {
        let refused = Ending::ConnectFailed {
            addr: "127.0.0.1:9".into(),
            reason: describe_io(&io::Error::from(io::ErrorKind::ConnectionRefused)),
        };
        assert_eq!(
            refused.message().as_deref(),
            Some("Cannot connect to 127.0.0.1:9: connection refused")
        );
    }
}
