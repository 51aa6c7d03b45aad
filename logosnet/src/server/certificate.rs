//! The TLS certificate in service, and replacing it while the server runs
//! (the binary does it on SIGHUP): a certificate from a public CA lives 90
//! days, and a restart to renew it would drop every member.
//!
//! Each handshake takes the configuration in service when it gets past its
//! ClientHello ([`ServerCertificate::current`]: a read lock held for the
//! time it takes to clone an `Arc`); a session already established keeps
//! the configuration it was made with, so nobody in the room notices a
//! replacement. A replacement is all or nothing: both files are read and
//! the key checked against the certificate first, and if anything is wrong
//! the pair in service stays, and [`reload`] says why in one line.
//!
//! The lock is the TLS listener's alone: the room and the connections'
//! reads and writes never take it.

use std::path::Path;
use std::sync::{Arc, RwLock};

use crate::tls::SetupError;
use crate::tls::rustls::ServerConfig;

use super::Metrics;

/// See the module docs.
#[derive(Debug)]
pub struct ServerCertificate {
    /// The configuration new handshakes use.
    current: RwLock<Arc<ServerConfig>>,
}

impl ServerCertificate {
    /// Serves `config` until it is replaced.
    pub fn new(config: Arc<ServerConfig>) -> Self {
        Self {
            current: RwLock::new(config),
        }
    }

    /// The configuration in service now.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Puts `config` in service for every handshake from now on.
    pub fn replace(&self, config: Arc<ServerConfig>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = config;
    }

    /// Reads `cert` and `key` again and puts the pair in service; if either
    /// is missing or unusable, or the key is not the certificate's, the
    /// pair in service stays and the error says why.
    pub fn reload(&self, cert: &Path, key: &Path) -> Result<(), SetupError> {
        let config = crate::tls::server_config(cert, key)?;
        self.replace(config);
        Ok(())
    }
}

/// What the binary does on SIGHUP: [`ServerCertificate::reload`], one log
/// line either way (a warning with the reason when the old pair stays),
/// and the outcome counted in `metrics`. True if the new pair is in
/// service.
pub fn reload(
    certificate: &ServerCertificate,
    cert: &Path,
    key: &Path,
    metrics: Option<&Metrics>,
) -> bool {
    let result = certificate.reload(cert, key);
    if let Some(metrics) = metrics {
        metrics.reload(result.is_ok());
    }
    match result {
        Ok(()) => {
            tracing::info!(cert = %cert.display(), key = %key.display(), "certificate reloaded; new TLS handshakes use it");
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "certificate not reloaded; the one in service stays");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use devcerts::{KeyKind, TempSet};

    #[test]
    fn a_broken_pair_keeps_the_one_in_service_and_both_outcomes_are_counted() {
        let old = TempSet::local(KeyKind::EcdsaP256).expect("certificates");
        let new = TempSet::local(KeyKind::EcdsaP256).expect("certificates");
        let first = crate::tls::server_config(&old.paths.cert, &old.paths.key).expect("usable");
        let certificate = ServerCertificate::new(first.clone());
        let metrics = Metrics::new();
        // The key of another pair, then a missing file: the first stays.
        assert!(!reload(
            &certificate,
            &new.paths.cert,
            &old.paths.key,
            Some(&metrics)
        ));
        assert!(Arc::ptr_eq(&certificate.current(), &first));
        let missing = new.dir().join("missing.pem");
        assert!(!reload(
            &certificate,
            &missing,
            &new.paths.key,
            Some(&metrics)
        ));
        assert!(Arc::ptr_eq(&certificate.current(), &first));
        // The new pair: in service.
        assert!(reload(
            &certificate,
            &new.paths.cert,
            &new.paths.key,
            Some(&metrics)
        ));
        assert!(!Arc::ptr_eq(&certificate.current(), &first));
        let figures = metrics.snapshot();
        assert_eq!((figures.reloads_ok, figures.reloads_failed), (1, 2));
    }
}
