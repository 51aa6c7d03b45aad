//! Makes a private CA and a server certificate for trying LogosNet over TLS:
//!
//! ```text
//! cargo run -p devcerts --example make_certs -- DIR [NAME...]
//! cargo run -p devcerts --example make_certs -- --ca CA_DIR DIR NAME...
//! ```
//!
//! The first form writes `DIR/ca.pem` (give it to clients with
//! `--tls-ca`), `DIR/ca-key.pem` (the CA's key: keep it private, it signs
//! more certificates), `DIR/cert.pem` and `DIR/key.pem` (the server's
//! `--tls-cert` and `--tls-key`). The certificate is valid for each NAME
//! (host names or IP addresses the clients will type); without any, for
//! localhost, 127.0.0.1 and ::1.
//!
//! The second form signs a certificate for another host with the CA the
//! first form left in `CA_DIR`, and writes `DIR/cert.pem`, `DIR/key.pem`
//! and a copy of `ca.pem`: clients that trust `CA_DIR/ca.pem` trust it too.

use std::path::PathBuf;
use std::process::ExitCode;

use devcerts::{KeyKind, LOCAL_NAMES, write_set, write_signed};

const USAGE: &str = "usage: make_certs DIR [NAME...] | make_certs --ca CA_DIR DIR NAME...";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1).peekable();
    let ca_dir = if args.peek().map(String::as_str) == Some("--ca") {
        args.next();
        match args.next() {
            Some(dir) => Some(PathBuf::from(dir)),
            None => {
                eprintln!("{USAGE}");
                return ExitCode::from(64);
            }
        }
    } else {
        None
    };
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("{USAGE}");
        return ExitCode::from(64);
    };
    let given: Vec<String> = args.collect();
    if ca_dir.is_some() && given.is_empty() {
        eprintln!("make_certs: name the host the certificate is for ({USAGE})");
        return ExitCode::from(64);
    }
    let names: Vec<&str> = if given.is_empty() {
        LOCAL_NAMES.to_vec()
    } else {
        given.iter().map(String::as_str).collect()
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("make_certs: cannot create {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    let written = match &ca_dir {
        Some(ca_dir) => write_signed(ca_dir, &dir, &names),
        None => write_set(&dir, &names, KeyKind::EcdsaP256),
    };
    match written {
        Ok(paths) => {
            println!("CA certificate:     {}", paths.ca.display());
            println!(
                "CA key:             {} (keep it private; it signs more certificates)",
                paths.ca_key.display()
            );
            println!(
                "server certificate: {} (for {})",
                paths.cert.display(),
                names.join(", ")
            );
            println!("server key:         {}", paths.key.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("make_certs: {e}");
            ExitCode::FAILURE
        }
    }
}
