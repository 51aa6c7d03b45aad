//! Finding and connecting to the server: resolve `--ip` (an address or a
//! host name), try each address in turn, with `--tls` shake hands over the
//! first that accepts, and turn every failure into an [`Ending`] that names
//! what was tried. How long all of it may take is the driver's business: it
//! bounds resolving, connecting, the handshake and the wait for the
//! server's first answer together by one `--connect-timeout`.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_util::either::Either;

use super::display::sanitize;
use super::ending::{Ending, describe_io};
use crate::tls::rustls::pki_types::ServerName;
use crate::tls::{self, HandshakeFailure, TlsConnector, Trust};

/// The connection to the server: plain TCP, or TLS over it.
pub(crate) type ServerStream = Either<TcpStream, TlsStream<TcpStream>>;

/// What a TLS connection needs before it connects: whom to trust, and the
/// name the server's certificate must carry.
pub(crate) struct TlsTarget {
    /// Whom to trust: the CA file or the system's roots.
    connector: TlsConnector,
    /// The name or address the certificate must carry (`--ip`).
    name: ServerName<'static>,
}

impl TlsTarget {
    /// Reads the trusted certificates for `host`; an unusable CA file, an
    /// empty system store or a host name no certificate can carry ends the
    /// run before anything is sent.
    pub(crate) fn prepare(host: &str, trust: &Trust) -> Result<Self, Ending> {
        let setup = |e: tls::SetupError| Ending::TlsSetup(sanitize(&e.to_string()).into_owned());
        let config = tls::client_config(trust).map_err(setup)?;
        let name = tls::server_name(host).map_err(setup)?;
        Ok(Self {
            connector: TlsConnector::from(config),
            name,
        })
    }
}

/// The default `--connect-timeout`: how long the client waits from start
/// until the server answers `Hello`. A silent (firewalled) address would
/// otherwise hang for the kernel's SYN retries, about two minutes, and a
/// server that accepts but never answers, forever.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The default `--answer-timeout`: how long a server that accepted the
/// connection (and, with `--tls`, finished the handshake) may take to answer
/// `Hello`. A LogosNet server answers at once; a web server or any other
/// listener that waits for its own kind of request never does, and "not
/// answering as a LogosNet server" after a few seconds is a better line
/// than a generic timeout at the end of `--connect-timeout`.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// `host:port`, with an IPv6 literal in brackets, for messages.
pub(crate) fn target_name(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Connects to the first address of `host` that accepts, then, given a
/// [`TlsTarget`], completes the TLS handshake with it.
pub(crate) async fn connect(
    host: &str,
    port: u16,
    tls: Option<&TlsTarget>,
) -> Result<(ServerStream, SocketAddr), Ending> {
    let target = target_name(host, port);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match tokio::net::lookup_host((host, port)).await {
        Ok(addrs) => addrs.collect(),
        Err(e) => {
            return Err(Ending::HostNotFound {
                target,
                reason: e.to_string(),
            });
        }
    };
    let mut failure = Ending::HostNotFound {
        target,
        reason: "no address found".into(),
    };
    for addr in addrs {
        let reason = match TcpStream::connect(addr).await {
            Ok(stream) => {
                // Chat lines are small and interactive.
                let _ = stream.set_nodelay(true);
                let Some(tls) = tls else {
                    return Ok((Either::Left(stream), addr));
                };
                // A failed handshake is final: the address answered.
                return match tls.connector.connect(tls.name.clone(), stream).await {
                    Ok(secure) => Ok((Either::Right(secure), addr)),
                    Err(e) => Err(handshake_ending(addr, &e)),
                };
            }
            Err(e) => describe_io(&e),
        };
        failure = Ending::ConnectFailed {
            addr: addr.to_string(),
            reason,
        };
    }
    Err(failure)
}

/// The ending for a failed TLS handshake with `addr`.
fn handshake_ending(addr: SocketAddr, error: &io::Error) -> Ending {
    let addr = addr.to_string();
    match tls::classify_handshake_error(error) {
        HandshakeFailure::NotTls => Ending::NotTlsServer { addr },
        HandshakeFailure::Certificate(reason) => Ending::CertificateRefused {
            addr,
            // The reason may quote names from the server's certificate.
            reason: sanitize(&reason).into_owned(),
        },
        HandshakeFailure::Closed => Ending::TlsFailed {
            addr,
            reason: "the server closed the connection".into(),
        },
        HandshakeFailure::Other(reason) => Ending::TlsFailed {
            addr,
            reason: sanitize(&reason).into_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_targets_are_bracketed() {
        assert_eq!(target_name("127.0.0.1", 8021), "127.0.0.1:8021");
        assert_eq!(target_name("::1", 8021), "[::1]:8021");
        assert_eq!(target_name("[::1]", 8021), "[::1]:8021");
        assert_eq!(target_name("localhost", 1), "localhost:1");
    }

    #[tokio::test]
    async fn refused_connection_names_the_address() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let Err(ending) = connect("127.0.0.1", port, None).await else {
            panic!("connected to a closed port");
        };
        assert_eq!(
            ending.message(),
            Some(format!(
                "Cannot connect to 127.0.0.1:{port}: connection refused"
            ))
        );
        assert_eq!(ending.exit_code(), 1);
    }
}
