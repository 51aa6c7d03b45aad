//! Development certificates for LogosNet's TLS: a private certificate
//! authority and server certificates it signs, made in memory with rcgen and
//! written as the PEM files `logosnet_server --tls-cert/--tls-key` and
//! `logosnet_client --tls-ca` read.
//!
//! Used by the TLS tests of every crate (so each test makes fresh keys and
//! none is checked in) and by the `make_certs` example that README's
//! "Running with TLS" section runs. It is a test-support crate: no release
//! binary depends on it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SignatureAlgorithm,
};

/// The names a certificate for a server on this machine carries: the ones a
/// client may type for it.
pub const LOCAL_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The key type of a CA and of the certificates it signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// ECDSA on P-256 with SHA-256: what most TLS software expects.
    EcdsaP256,
    /// Ed25519: fixed-size signatures, so every handshake has the same
    /// size (the simulations use it to stay deterministic).
    Ed25519,
}

impl KeyKind {
    fn algorithm(self) -> &'static SignatureAlgorithm {
        match self {
            KeyKind::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyKind::Ed25519 => &rcgen::PKCS_ED25519,
        }
    }
}

/// A certificate authority that exists only for the caller.
pub struct Ca {
    /// The CA's certificate parameters and key, to sign with.
    issuer: Issuer<'static, KeyPair>,
    /// The kind of key the CA (and what it signs) uses.
    kind: KeyKind,
    /// The CA's certificate, PEM, for a client to trust.
    pem: String,
}

/// A server certificate and its private key, PEM.
#[derive(Debug, Clone)]
pub struct ServerCert {
    /// The certificate (the chain is just this one: the CA is the root).
    pub cert_pem: String,
    /// The private key, PKCS#8.
    pub key_pem: String,
}

impl Ca {
    /// A new CA named `name` (its subject's common name).
    pub fn new(name: &str, kind: KeyKind) -> Result<Self, rcgen::Error> {
        let mut params = CertificateParams::new(Vec::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate_for(kind.algorithm())?;
        let pem = params.self_signed(&key)?.pem();
        Ok(Self {
            issuer: Issuer::new(params, key),
            kind,
            pem,
        })
    }

    /// The CA's certificate: what a client trusts with `--tls-ca`.
    pub fn cert_pem(&self) -> &str {
        &self.pem
    }

    /// A server certificate valid for `names` (host names or IP addresses,
    /// each becoming a subject alternative name), signed by this CA.
    pub fn issue(&self, names: &[&str]) -> Result<ServerCert, rcgen::Error> {
        let owned: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(owned)?;
        if let Some(first) = names.first() {
            params.distinguished_name.push(DnType::CommonName, *first);
        }
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate_for(self.kind.algorithm())?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(ServerCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// The three files of a TLS set-up.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The CA certificate (`--tls-ca`).
    pub ca: PathBuf,
    /// The server certificate (`--tls-cert`).
    pub cert: PathBuf,
    /// The server's private key (`--tls-key`).
    pub key: PathBuf,
}

/// Writes a CA and a server certificate for `names` into `dir` as `ca.pem`,
/// `cert.pem` and `key.pem` (the key readable by its owner only).
pub fn write_set(dir: &Path, names: &[&str], kind: KeyKind) -> io::Result<Paths> {
    let ca = Ca::new("LogosNet development CA", kind).map_err(io::Error::other)?;
    let server = ca.issue(names).map_err(io::Error::other)?;
    let paths = Paths {
        ca: dir.join("ca.pem"),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    fs::write(&paths.ca, ca.cert_pem())?;
    fs::write(&paths.cert, &server.cert_pem)?;
    write_private(&paths.key, &server.key_pem)?;
    Ok(paths)
}

/// A temporary directory holding a set for [`LOCAL_NAMES`]; removed when
/// dropped.
pub struct TempSet {
    /// The files.
    pub paths: Paths,
    /// The directory the files live in; deleting it on drop is its job.
    dir: tempfile::TempDir,
}

impl TempSet {
    /// A fresh CA and server certificate for this machine's names.
    pub fn local(kind: KeyKind) -> io::Result<Self> {
        Self::for_names(&LOCAL_NAMES, kind)
    }

    /// A fresh CA and a server certificate for `names`.
    pub fn for_names(names: &[&str], kind: KeyKind) -> io::Result<Self> {
        let dir = tempfile::Builder::new().prefix("logosnet-tls-").tempdir()?;
        let paths = write_set(dir.path(), names, kind)?;
        Ok(Self { paths, dir })
    }

    /// The directory, for extra files a test writes beside the set.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> io::Result<()> {
    fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_is_three_pem_files() {
        for kind in [KeyKind::EcdsaP256, KeyKind::Ed25519] {
            let set = TempSet::local(kind).unwrap();
            let ca = fs::read_to_string(&set.paths.ca).unwrap();
            let cert = fs::read_to_string(&set.paths.cert).unwrap();
            let key = fs::read_to_string(&set.paths.key).unwrap();
            assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
            assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");
            assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
            assert_ne!(ca, cert);
        }
    }
}
