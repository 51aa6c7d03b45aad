//! `logosnet_client`: argument parsing around [`logosnet::client::run`].

use std::process::ExitCode;

use clap::Parser;
use logosnet::client::{self, Config, EXIT_STATUS_HELP};
use logosnet::protocol::Role;

/// LogosNet Client, the client for the primitive networked chat program
#[derive(Debug, Parser)]
#[command(version, after_help = EXIT_STATUS_HELP)]
struct Args {
    /// IP address
    #[arg(short, long, value_name = "i")]
    ip: String,
    /// port number
    #[arg(short, long, value_name = "p")]
    port: u16,
    /// Watch the room read-only instead of joining it
    #[arg(short, long)]
    observe: bool,
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            // Usage errors exit 1, so that 2 and 3 keep their one meaning
            // each ("full" and "username timeout").
            return if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    client::run(Config {
        host: args.ip,
        port: args.port,
        role: if args.observe {
            Role::Observer
        } else {
            Role::Participant
        },
    })
}
