//! How loadgen reaches the server: plain TCP, or TLS over it (`--tls`,
//! `--tls-ca FILE`), set up with the library's own helpers
//! ([`logosnet::tls::client_config`], [`logosnet::tls::server_name`]) and
//! failures sorted as the client sorts them
//! ([`logosnet::tls::classify_handshake_error`]).
//!
//! This is the connect step only: it hands back a [`Connected`] stream,
//! plain or TLS, and the client code reads and writes whichever it gets
//! through code generic over `AsyncRead + AsyncWrite`. The plaintext
//! variant is tokio's own `TcpStream`, untouched: nothing on the plaintext
//! path pays for TLS existing. It opens one connection per call and keeps
//! no state between them but the trust settings.

use std::io;
use std::net::SocketAddr;

use logosnet::tls::rustls::pki_types::ServerName;
use logosnet::tls::{self, ClientTlsStream, HandshakeFailure, TlsConnector, Trust};
use tokio::net::TcpStream;

/// A TLS stream to the server.
pub type TlsStream = ClientTlsStream<TcpStream>;

/// Plain TCP, or TLS with whom to trust and the name to check.
pub enum Transport {
    /// Plain TCP.
    Plain,
    /// TLS over TCP.
    Tls {
        /// Trusts the system's roots (`--tls`) or the CA file (`--tls-ca`).
        connector: TlsConnector,
        /// `--ip`, as the server's certificate must carry it.
        name: ServerName<'static>,
    },
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Plain => f.write_str("Plain"),
            Transport::Tls { name, .. } => write!(f, "Tls({name:?})"),
        }
    }
}

/// One connection to the server, handshake done.
pub enum Connected {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP (boxed: the TLS state is a few hundred bytes).
    Tls(Box<TlsStream>),
}

/// Why a connection could not be opened.
#[derive(Debug)]
pub enum ConnectError {
    /// No TCP connection.
    Tcp(io::Error),
    /// TCP connected, the TLS handshake failed; the reason in words.
    Handshake(String),
}

impl Transport {
    /// TLS trusting `trust` and checking the certificate against `host`
    /// (`--ip`), or plain TCP for `None`. Reads the CA file or the system's
    /// store now, so a bad one stops the run before anything connects.
    pub fn new(trust: Option<&Trust>, host: &str) -> Result<Self, tls::SetupError> {
        let Some(trust) = trust else {
            return Ok(Transport::Plain);
        };
        Ok(Transport::Tls {
            connector: TlsConnector::from(tls::client_config(trust)?),
            name: tls::server_name(host)?,
        })
    }

    /// Whether connections are TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, Transport::Tls { .. })
    }

    /// Connects to `addr` (with `TCP_NODELAY`: chat lines are small) and,
    /// over TLS, completes the handshake.
    pub async fn connect(&self, addr: SocketAddr) -> Result<Connected, ConnectError> {
        let stream = TcpStream::connect(addr).await.map_err(ConnectError::Tcp)?;
        let _ = stream.set_nodelay(true);
        match self {
            Transport::Plain => Ok(Connected::Plain(stream)),
            Transport::Tls { connector, name } => connector
                .connect(name.clone(), stream)
                .await
                .map(|secure| Connected::Tls(Box::new(secure)))
                .map_err(|e| ConnectError::Handshake(handshake_failure(&e))),
        }
    }
}

/// A failed handshake in words, for a problem line.
fn handshake_failure(error: &io::Error) -> String {
    match tls::classify_handshake_error(error) {
        HandshakeFailure::NotTls => {
            format!(
                "the server answered without TLS ({})",
                logosnet::tls::LEAVE_OUT_TLS_HINT
            )
        }
        HandshakeFailure::Certificate(why) => format!("cannot verify the server: {why}"),
        HandshakeFailure::Closed => {
            "the server closed the connection during the TLS handshake".to_owned()
        }
        HandshakeFailure::Other(why) => format!("the TLS handshake failed: {why}"),
    }
}
