//! `logosnet_client`: parses the command line ([`logosnet::cli::client`])
//! and runs [`logosnet::client::run`].

use std::process::ExitCode;

use logosnet::cli::{self, client::ClientArgs};
use logosnet::client;

fn main() -> ExitCode {
    match cli::parse::<ClientArgs, _, _>("logosnet_client", std::env::args_os()) {
        Ok(args) => client::run(args.config()),
        Err(stop) => stop.exit(),
    }
}
