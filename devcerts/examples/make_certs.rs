//! Makes a private CA and a server certificate for trying LogosNet over TLS:
//!
//! ```text
//! cargo run -p devcerts --example make_certs -- DIR [NAME...]
//! ```
//!
//! writes `DIR/ca.pem` (give it to clients with `--tls-ca`), `DIR/cert.pem`
//! and `DIR/key.pem` (the server's `--tls-cert` and `--tls-key`). The
//! certificate is valid for each NAME (host names or IP addresses the
//! clients will type); without any, for localhost, 127.0.0.1 and ::1.

use std::path::PathBuf;
use std::process::ExitCode;

use devcerts::{KeyKind, LOCAL_NAMES, write_set};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: make_certs DIR [NAME...]");
        return ExitCode::from(64);
    };
    let given: Vec<String> = args.collect();
    let names: Vec<&str> = if given.is_empty() {
        LOCAL_NAMES.to_vec()
    } else {
        given.iter().map(String::as_str).collect()
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("make_certs: cannot create {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    match write_set(&dir, &names, KeyKind::EcdsaP256) {
        Ok(paths) => {
            println!("CA certificate:     {}", paths.ca.display());
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
