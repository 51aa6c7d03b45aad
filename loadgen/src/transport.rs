//! How loadgen reaches the server: plain TCP, or TLS over it (`--tls`,
//! `--tls-ca`). This is the connect step only: it hands back the two halves
//! of a connection, and everything after reads and writes them whichever
//! they are. Plain TCP keeps tokio's owned halves (no lock between them),
//! so the plaintext figures are what they were before TLS existed.

use std::io;
use std::net::SocketAddr;

use logosnet::tls::rustls::pki_types::ServerName;
use logosnet::tls::{self, ClientTlsStream, TlsConnector, Trust};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::either::Either;

use crate::config::Config;

/// The read half of a connection to the server.
pub type ReadHalf = Either<OwnedReadHalf, tokio::io::ReadHalf<ClientTlsStream<TcpStream>>>;

/// The write half of a connection to the server.
pub type WriteHalf = Either<OwnedWriteHalf, tokio::io::WriteHalf<ClientTlsStream<TcpStream>>>;

/// Plain TCP, or TLS with what the client trusts and the name it checks.
pub enum Transport {
    /// Plain TCP.
    Plain,
    /// TLS over TCP.
    Tls {
        /// Trusts the system's roots or `--tls-ca`.
        connector: TlsConnector,
        /// `--ip`, as the certificate must name it.
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

impl Transport {
    /// The transport the command line asks for; reads the CA file now, so a
    /// bad one stops the run before anything connects.
    pub fn from_config(config: &Config) -> Result<Self, tls::SetupError> {
        let trust = match (&config.tls_ca, config.tls) {
            (Some(file), _) => Trust::CaFile(file.clone()),
            (None, true) => Trust::System,
            (None, false) => return Ok(Transport::Plain),
        };
        Ok(Transport::Tls {
            connector: TlsConnector::from(tls::client_config(&trust)?),
            name: tls::server_name(&config.ip)?,
        })
    }

    /// Connects to `addr` (and shakes hands, over TLS).
    pub async fn connect(&self, addr: SocketAddr) -> Result<(ReadHalf, WriteHalf), String> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect failed: {e}"))?;
        let _ = stream.set_nodelay(true);
        match self {
            Transport::Plain => {
                let (read, write) = stream.into_split();
                Ok((Either::Left(read), Either::Left(write)))
            }
            Transport::Tls { connector, name } => {
                let secure = connector
                    .connect(name.clone(), stream)
                    .await
                    .map_err(|e| format!("TLS handshake failed: {e}"))?;
                let (read, write) = tokio::io::split(secure);
                Ok((Either::Right(read), Either::Right(write)))
            }
        }
    }
}

/// Writes `bytes` and flushes: a no-op on TCP, but a TLS session may hold
/// the end of a record until it is flushed, and nothing else would send it.
pub async fn send(writer: &mut WriteHalf, bytes: &[u8]) -> io::Result<()> {
    writer.write_all(bytes).await?;
    writer.flush().await
}
