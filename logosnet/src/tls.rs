//! TLS set-up shared by the server, the client and loadgen: certificate
//! chains and keys read from PEM files, rustls configurations on the `ring`
//! provider, the name a client verifies, and the two facts that tell a TLS
//! peer from a LogosNet one when the wrong kind answers.
//!
//! TLS wraps the unchanged frame stream: nothing here knows a frame. This
//! module opens no socket; the server's listener ([`crate::server::TlsListener`])
//! and the client's connect step use what it builds. Files are read once,
//! when a binary starts, and every failure is one [`SetupError`] line that
//! names the file; rustls's errors are put in words by `words`.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

mod words;

pub use tokio_rustls::client::TlsStream as ClientTlsStream;
pub use tokio_rustls::rustls;
pub use tokio_rustls::{TlsAcceptor, TlsConnector};
pub use words::describe as describe_error;

/// What a plaintext peer that met a TLS port should do, as the client and
/// loadgen both say it.
pub const ADD_TLS_HINT: &str = "add --tls (or --tls-ca FILE for a private CA)";

/// What a TLS peer that met a plaintext port should do.
pub const LEAVE_OUT_TLS_HINT: &str = "for a plaintext port leave out --tls";

/// Why TLS could not be set up: each names the file or source at fault, in
/// one line.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The certificate file is missing, unreadable or holds no certificate.
    #[error("cannot read the certificate file {}: {reason}", path.display())]
    Certificates {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The key file is missing, unreadable or holds no private key.
    #[error("cannot read the private key file {}: {reason}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The key does not belong to the certificate, or rustls refused them.
    #[error("cannot use the certificate {} with the key {}: {reason}", cert.display(), key.display())]
    Pair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        reason: String,
    },
    /// The CA file is missing, unreadable or holds no usable certificate.
    #[error("cannot read the CA file {}: {reason}", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The operating system's certificate store gave no usable root.
    #[error("no trusted root certificates found on this system ({reason}); use --tls-ca FILE")]
    NoSystemRoots {
        /// What the loader reported.
        reason: String,
    },
    /// The host name cannot be checked against a certificate.
    #[error("cannot verify a server named {host:?}: {reason}")]
    ServerName {
        /// The name as given.
        host: String,
        /// Why it is not a DNS name or an IP address.
        reason: String,
    },
    /// rustls refused the configuration (no protocol version in common
    /// with the provider: a build problem, not a user's).
    #[error("TLS set-up failed: {}", words::describe(.0))]
    Rustls(#[from] rustls::Error),
}

/// Whom a client trusts to vouch for the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The operating system's roots (`--tls`).
    System,
    /// The certificates in this PEM file, and only those (`--tls-ca FILE`).
    CaFile(PathBuf),
}

/// The crypto provider every configuration here uses: `ring`, named
/// explicitly so that no other provider a dependency might enable is ever
/// picked by default.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server's configuration: the chain in `cert` (the server's own
/// certificate first, then any intermediates) and the private key in `key`
/// (PKCS#8, PKCS#1 or SEC1), both PEM. Checks that the key matches the
/// certificate.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, SetupError> {
    let chain = read_certificates(cert).map_err(|reason| SetupError::Certificates {
        path: cert.to_owned(),
        reason,
    })?;
    let private_key = PrivateKeyDer::from_pem_file(key).map_err(|e| SetupError::Key {
        path: key.to_owned(),
        reason: describe_pem(&e, "private key"),
    })?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|e| SetupError::Pair {
            cert: cert.to_owned(),
            key: key.to_owned(),
            reason: words::describe(&e),
        })?;
    Ok(Arc::new(config))
}

/// The client's configuration for `trust`.
pub fn client_config(trust: &Trust) -> Result<Arc<ClientConfig>, SetupError> {
    let roots = match trust {
        Trust::System => system_roots()?,
        Trust::CaFile(path) => ca_roots(path)?,
    };
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The name the server's certificate must carry for `host`: a DNS name, or
/// an IP address (checked against the certificate's IP SANs). IPv6 may be
/// given in brackets.
pub fn server_name(host: &str) -> Result<ServerName<'static>, SetupError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_owned()).map_err(|e| SetupError::ServerName {
        host: host.to_owned(),
        reason: e.to_string(),
    })
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| describe_pem(&e, "certificate"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| describe_pem(&e, "certificate"))?;
    if chain.is_empty() {
        return Err("no PEM certificate (BEGIN CERTIFICATE) in it".into());
    }
    Ok(chain)
}

fn ca_roots(path: &Path) -> Result<RootCertStore, SetupError> {
    let refuse = |reason: String| SetupError::CaFile {
        path: path.to_owned(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    for cert in read_certificates(path).map_err(refuse)? {
        roots
            .add(cert)
            .map_err(|e| refuse(format!("not a usable CA certificate: {e}")))?;
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, SetupError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let reason = found
            .errors
            .first()
            .map_or_else(|| "the store is empty".to_owned(), ToString::to_string);
        return Err(SetupError::NoSystemRoots { reason });
    }
    if !found.errors.is_empty() {
        tracing::debug!(
            errors = found.errors.len(),
            added,
            "some system roots were unreadable"
        );
    }
    Ok(roots)
}

/// A PEM error in words, with the kind of item that was wanted.
fn describe_pem(error: &rustls::pki_types::pem::Error, wanted: &str) -> String {
    use rustls::pki_types::pem::Error as E;
    match error {
        E::NoItemsFound => format!("no PEM {wanted} in it"),
        E::Io(e) => describe_file_error(e),
        other => format!("not valid PEM: {other}"),
    }
}

fn describe_file_error(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::NotFound => "no such file".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => error.to_string(),
    }
}

/// True if `header`, the first four bytes a peer sent where a LogosNet
/// frame's length was expected, opens a TLS record: a content type from
/// change_cipher_spec (20) to heartbeat (24), then major version 3 and a
/// minor version from SSL 3.0 (0) to TLS 1.3's legacy values (4). Such a
/// header announces a frame of over 300 MB, so no LogosNet peer ever sends
/// one.
pub fn is_tls_record_header(header: [u8; 4]) -> bool {
    matches!(header, [20..=24, 3, 0..=4, _])
}

/// How a client's TLS handshake failed, as far as the user can act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// The server answered with bytes that are not TLS at all: the port
    /// does not speak TLS.
    NotTls,
    /// The server's certificate was refused; the text says why.
    Certificate(String),
    /// The server closed the connection before the handshake finished.
    Closed,
    /// Anything else (a TLS alert, a socket error), in words.
    Other(String),
}

/// Sorts a failed client handshake (the error tokio-rustls returns) into a
/// [`HandshakeFailure`].
pub fn classify_handshake_error(error: &io::Error) -> HandshakeFailure {
    use rustls::Error as E;
    if let Some(tls) = error.get_ref().and_then(|inner| inner.downcast_ref::<E>()) {
        return match tls {
            E::InvalidMessage(_) => HandshakeFailure::NotTls,
            E::InvalidCertificate(e) => {
                HandshakeFailure::Certificate(words::describe_certificate(e))
            }
            other => HandshakeFailure::Other(words::describe(other)),
        };
    }
    match error.kind() {
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::BrokenPipe => HandshakeFailure::Closed,
        _ => HandshakeFailure::Other(error.to_string()),
    }
}

#[cfg(test)]
mod tests;
