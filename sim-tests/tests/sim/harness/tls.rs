//! TLS in the simulation: the server host serves one room on [`PORT`] in
//! plaintext and on [`TLS_PORT`] through `logosnet::server::TlsListener`,
//! both through [`Capped`] streams, so rustls itself reads and writes the
//! simulated TCP in pieces of the world's size. Clients shake hands with
//! tokio-rustls over turmoil's TCP and then are ordinary [`SimClient`]s.
//!
//! Certificates are Ed25519 (devcerts): their signatures have one size, so
//! every handshake has the same bytes count and the run replays exactly
//! even though TLS's own randomness differs each time.

use std::io;
use std::sync::{Arc, Mutex};

use devcerts::{KeyKind, TempSet};
use logosnet::server::{Both, TlsListener, serve};
use logosnet::tls::{self, TlsAcceptor, TlsConnector, Trust};
use turmoil::net::TcpStream;

use super::client::{SimClient, client_over, label_seed};
use super::listener::{Capped, PieceSize, PieceStats};
use super::{EventLog, PORT, Running, SERVER, World};

/// The simulated server's TLS port.
pub const TLS_PORT: u16 = 8022;

/// A CA and the server's certificate (for the host name [`SERVER`]), with
/// both sides' TLS configurations.
pub struct Certs {
    /// The server's side.
    pub acceptor: TlsAcceptor,
    /// A client's side, trusting the CA.
    pub connector: TlsConnector,
    _files: TempSet,
}

/// Fresh certificates for the simulated server.
pub fn certs() -> Certs {
    let files = TempSet::for_names(&[SERVER], KeyKind::Ed25519).expect("make certificates");
    let server = tls::server_config(&files.paths.cert, &files.paths.key).expect("server config");
    let client = tls::client_config(&Trust::CaFile(files.paths.ca.clone())).expect("client config");
    Certs {
        acceptor: TlsAcceptor::from(server),
        connector: TlsConnector::from(client),
        _files: files,
    }
}

impl World {
    /// Builds the simulation with the server host serving one room on
    /// [`PORT`] (plaintext) and [`TLS_PORT`] (TLS with `acceptor`; the
    /// handshake must finish within the Hello timeout), every connection
    /// capped to the world's piece size.
    pub fn build_tls<'a>(&self, acceptor: TlsAcceptor) -> Running<'a> {
        self.build_serving(move |host| {
            let acceptor = acceptor.clone();
            async move {
                host.log.record(SERVER, format_args!("starting with TLS"));
                let plain = host.listen(PORT, 0).await?;
                let secure = host.listen(TLS_PORT, 1).await?;
                let handshake_timeout = host.config.room.hello_timeout;
                let secure = TlsListener::new(secure, acceptor, handshake_timeout);
                serve(
                    Both::new(plain, secure),
                    host.config,
                    std::future::pending(),
                )
                .await;
                Ok(())
            }
        })
    }
}

/// Connects to the TLS port and completes the handshake; the client's raw
/// reads and writes come in `pieces`, and each frame is written in pieces
/// of `write_piece` bytes when it is `Some`.
pub async fn connect_tls(
    label: &str,
    log: &EventLog,
    connector: &TlsConnector,
    pieces: PieceSize,
    write_piece: Option<usize>,
) -> io::Result<SimClient> {
    let tcp = TcpStream::connect((SERVER, TLS_PORT)).await?;
    let stats = Arc::new(Mutex::new(PieceStats::default()));
    let capped = Capped::new(tcp, pieces, label_seed(label), stats);
    let name = tls::server_name(SERVER).map_err(io::Error::other)?;
    let secure = connector.connect(name, capped).await?;
    log.record(label, format_args!("connected over TLS"));
    Ok(client_over(label, log, Box::new(secure), write_piece))
}
