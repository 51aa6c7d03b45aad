//! Every TLS error in words a user can act on: rustls's own `Display`
//! prints some causes as Rust names (`keys may not be consistent:
//! KeyMismatch`, `received fatal alert: HandshakeFailure`). The causes a
//! user meets get a sentence; the rest get their Rust name split into
//! lower-case words (`NoSignatureSchemesInCommon` → `no signature schemes
//! in common`), so no line ever shows a bare type name. Pure functions of
//! the error: no I/O.

use super::rustls::{AlertDescription, CertificateError, Error, InconsistentKeys};

/// `error` in words (see the module docs).
pub fn describe(error: &Error) -> String {
    match error {
        Error::InconsistentKeys(InconsistentKeys::KeyMismatch) => {
            "the key file does not match the certificate".into()
        }
        Error::InconsistentKeys(InconsistentKeys::Unknown) => {
            "cannot check that the key file matches the certificate".into()
        }
        Error::AlertReceived(alert) => format!("the other side refused: {}", alert_words(*alert)),
        Error::InvalidCertificate(e) => describe_certificate(e),
        Error::InvalidMessage(what) => format!(
            "the other side sent something that is not TLS ({})",
            words(&format!("{what:?}"))
        ),
        Error::PeerIncompatible(why) => format!(
            "the other side's TLS is incompatible: {}",
            words(&format!("{why:?}"))
        ),
        Error::PeerMisbehaved(why) => format!(
            "the other side broke the TLS protocol: {}",
            words(&format!("{why:?}"))
        ),
        Error::InappropriateMessage { .. } | Error::InappropriateHandshakeMessage { .. } => {
            "the other side sent a TLS message out of turn".into()
        }
        Error::NoCertificatesPresented => "the other side sent no certificate".into(),
        Error::General(text) => text.clone(),
        other => other.to_string(),
    }
}

/// A certificate the client refused, in words.
pub(super) fn describe_certificate(error: &CertificateError) -> String {
    use CertificateError as E;
    match error {
        E::UnknownIssuer => "its certificate is not signed by a trusted CA".into(),
        // A CA of the same name, other keys: typically a CA made again.
        E::BadSignature => "its certificate's signature does not verify with the trusted CA of \
                            that name (an older or another CA file?)"
            .into(),
        E::Expired | E::ExpiredContext { .. } => format!("its certificate has expired ({error})"),
        E::NotValidYet | E::NotValidYetContext { .. } => {
            format!("its certificate is not valid yet ({error})")
        }
        E::NotValidForName | E::NotValidForNameContext { .. } => {
            format!("its certificate is for another name ({error})")
        }
        E::Other(_) => error.to_string(),
        other => words(&format!("{other:?}")),
    }
}

/// A TLS alert the other side sent, in words.
fn alert_words(alert: AlertDescription) -> String {
    use AlertDescription as A;
    match alert {
        A::HandshakeFailure => "no cipher suite or key exchange in common".into(),
        A::ProtocolVersion => "no TLS version in common".into(),
        A::BadCertificate | A::UnsupportedCertificate | A::CertificateUnknown => {
            "it did not accept the certificate".into()
        }
        A::UnknownCA => "it does not trust the CA that signed the certificate".into(),
        A::CertificateExpired => "a certificate has expired".into(),
        A::UnrecognisedName => "it has no certificate for the name asked for".into(),
        A::DecryptError => "the handshake did not verify".into(),
        A::InternalError => "an internal error on its side".into(),
        other => words(&format!("{other:?}")),
    }
}

/// A Rust name (`NoSignatureSchemesInCommon`, `Unknown(42)`) as lower-case
/// words (`no signature schemes in common`, `unknown (42)`).
fn words(name: &str) -> String {
    let mut out = String::new();
    let mut previous_lower = false;
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            if previous_lower {
                out.push(' ');
            }
            out.push(c.to_ascii_lowercase());
            previous_lower = false;
        } else if c == '(' {
            out.push_str(" (");
            previous_lower = false;
        } else {
            out.push(c);
            previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::rustls::{PeerIncompatible, PeerMisbehaved};

    use super::*;

    #[test]
    fn a_key_that_does_not_match_says_so() {
        let error = Error::InconsistentKeys(InconsistentKeys::KeyMismatch);
        assert_eq!(
            describe(&error),
            "the key file does not match the certificate"
        );
    }

    #[test]
    fn alerts_and_protocol_faults_are_words_not_rust_names() {
        assert_eq!(
            describe(&Error::AlertReceived(AlertDescription::ProtocolVersion)),
            "the other side refused: no TLS version in common"
        );
        assert_eq!(
            describe(&Error::AlertReceived(
                AlertDescription::NoApplicationProtocol
            )),
            "the other side refused: no application protocol"
        );
        assert_eq!(
            describe(&Error::PeerIncompatible(
                PeerIncompatible::NoSignatureSchemesInCommon
            )),
            "the other side's TLS is incompatible: no signature schemes in common"
        );
        assert_eq!(
            describe(&Error::PeerMisbehaved(
                PeerMisbehaved::TooMuchEarlyDataReceived
            )),
            "the other side broke the TLS protocol: too much early data received"
        );
    }

    #[test]
    fn no_line_is_a_bare_rust_name() {
        for error in [
            Error::InconsistentKeys(InconsistentKeys::Unknown),
            Error::AlertReceived(AlertDescription::Unknown(200)),
            Error::InvalidCertificate(CertificateError::UnknownIssuer),
            Error::InvalidCertificate(CertificateError::Revoked),
            Error::NoCertificatesPresented,
        ] {
            let line = describe(&error);
            // A lower-case letter followed by a capital: `KeyMismatch`.
            let chars: Vec<char> = line.chars().collect();
            let camel = chars
                .windows(2)
                .any(|w| w[0].is_ascii_lowercase() && w[1].is_ascii_uppercase());
            assert!(!camel, "{error:?}: {line}");
        }
    }
}
