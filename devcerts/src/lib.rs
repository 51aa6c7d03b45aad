//! Development certificates for LogosNet's TLS: a private certificate
//! authority and server certificates it signs, made in memory with rcgen and
//! written as the PEM files `logosnet_server --tls-cert/--tls-key` and
//! `logosnet_client --tls-ca` read.
//!
//! The CA's key is written beside its certificate (`ca-key.pem`), so a
//! second host's certificate can be signed by the same CA later
//! ([`write_signed`]) and clients go on trusting the one `ca.pem`.
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

/// The CA's name (its subject's common name). A CA read back from its key
/// ([`Ca::from_key_pem`]) is rebuilt with this name, so what it signs names
/// the same issuer as the certificate clients trust.
pub const CA_NAME: &str = "LogosNet development CA";

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
        let params = ca_params(name)?;
        let key = KeyPair::generate_for(kind.algorithm())?;
        let pem = params.self_signed(&key)?.pem();
        Ok(Self {
            issuer: Issuer::new(params, key),
            kind,
            pem,
        })
    }

    /// The CA [`write_set`] made, from its certificate and key (PEM): it
    /// signs with that key under [`CA_NAME`], the subject of `cert_pem`.
    pub fn from_key_pem(cert_pem: &str, key_pem: &str) -> Result<Self, rcgen::Error> {
        let key = KeyPair::from_pem(key_pem)?;
        let kind = if key.algorithm() == &rcgen::PKCS_ED25519 {
            KeyKind::Ed25519
        } else {
            KeyKind::EcdsaP256
        };
        Ok(Self {
            issuer: Issuer::new(ca_params(CA_NAME)?, key),
            kind,
            pem: cert_pem.to_owned(),
        })
    }

    /// The CA's private key, PEM: whoever holds it can sign certificates
    /// every client that trusts this CA accepts.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
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

/// A CA certificate's parameters: its name, a CA that signs only server
/// certificates (no intermediate CAs), and what its key may be used for.
fn ca_params(name: &str) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::new())?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(params)
}

/// The files of a TLS set-up.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The CA certificate (`--tls-ca`).
    pub ca: PathBuf,
    /// The CA's private key, to sign more certificates with
    /// ([`write_signed`]); keep it private.
    pub ca_key: PathBuf,
    /// The server certificate (`--tls-cert`).
    pub cert: PathBuf,
    /// The server's private key (`--tls-key`).
    pub key: PathBuf,
}

/// Writes a CA and a server certificate for `names` into `dir` as `ca.pem`,
/// `ca-key.pem`, `cert.pem` and `key.pem` (the keys readable by their
/// owner only).
pub fn write_set(dir: &Path, names: &[&str], kind: KeyKind) -> io::Result<Paths> {
    let ca = Ca::new(CA_NAME, kind).map_err(io::Error::other)?;
    let ca_key = dir.join("ca-key.pem");
    write_private(&ca_key, &ca.key_pem())?;
    write_server(&ca, dir, ca_key, names)
}

/// Signs a server certificate for `names` with the CA [`write_set`] left in
/// `ca_dir` (`ca.pem` and `ca-key.pem`), and writes it into `dir` as
/// `cert.pem` and `key.pem`, with a copy of `ca.pem` (not of the CA's key):
/// a second host's set, trusted by every client that trusts the first.
pub fn write_signed(ca_dir: &Path, dir: &Path, names: &[&str]) -> io::Result<Paths> {
    let ca_key = ca_dir.join("ca-key.pem");
    let read = |path: &Path| {
        fs::read_to_string(path)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot read {}: {e}", path.display())))
    };
    let ca = Ca::from_key_pem(&read(&ca_dir.join("ca.pem"))?, &read(&ca_key)?)
        .map_err(|e| io::Error::other(format!("{}: {e}", ca_key.display())))?;
    write_server(&ca, dir, ca_key, names)
}

/// Writes `ca`'s certificate and a server certificate it signs for `names`
/// into `dir`.
fn write_server(ca: &Ca, dir: &Path, ca_key: PathBuf, names: &[&str]) -> io::Result<Paths> {
    let server = ca.issue(names).map_err(io::Error::other)?;
    let paths = Paths {
        ca: dir.join("ca.pem"),
        ca_key,
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

    /// A second host's set: a certificate for `names` signed by `first`'s
    /// CA, in a directory of its own.
    pub fn signed_by(first: &TempSet, names: &[&str]) -> io::Result<Self> {
        let dir = tempfile::Builder::new().prefix("logosnet-tls-").tempdir()?;
        let paths = write_signed(first.dir(), dir.path(), names)?;
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
    fn a_second_set_shares_the_first_ones_ca() {
        for kind in [KeyKind::EcdsaP256, KeyKind::Ed25519] {
            let first = TempSet::local(kind).unwrap();
            let ca_key = fs::read_to_string(&first.paths.ca_key).unwrap();
            assert!(
                ca_key.starts_with("-----BEGIN PRIVATE KEY-----"),
                "{ca_key}"
            );
            let second = TempSet::signed_by(&first, &["chat.example.org"]).unwrap();
            let read = |p: &Path| fs::read_to_string(p).unwrap();
            assert_eq!(read(&second.paths.ca), read(&first.paths.ca));
            assert_eq!(second.paths.ca_key, first.paths.ca_key);
            assert!(!second.dir().join("ca-key.pem").exists());
            assert_ne!(read(&second.paths.cert), read(&first.paths.cert));
        }
    }

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
