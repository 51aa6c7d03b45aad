//! Finding and connecting to the server: resolve `--ip` (an address or a
//! host name), try each address in turn, and turn every failure into an
//! [`Ending`] that names what was tried. How long all of it may take is the
//! driver's business: it bounds resolving, connecting and the wait for the
//! server's first answer together by one `--connect-timeout`.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

use super::ending::{Ending, describe_io};

/// The default `--connect-timeout`: how long the client waits from start
/// until the server answers `Hello`. A silent (firewalled) address would
/// otherwise hang for the kernel's SYN retries, about two minutes, and a
/// server that accepts but never answers, forever.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// `host:port`, with an IPv6 literal in brackets, for messages.
pub(crate) fn target_name(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Connects to the first address of `host` that accepts.
pub(crate) async fn connect(host: &str, port: u16) -> Result<(TcpStream, SocketAddr), Ending> {
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
                return Ok((stream, addr));
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
        let Err(ending) = connect("127.0.0.1", port).await else {
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
