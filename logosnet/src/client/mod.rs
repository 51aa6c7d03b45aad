//! The LogosNet terminal client: a participant or an observer.
//!
//! - [`session`]: the client's protocol rules as a sans-IO state machine;
//! - [`display`]: control characters from the network made visible;
//! - [`ending`]: every way the client stops, with its message and exit code;
//! - `connect`: resolving and connecting;
//! - `driver`: the event loop joining socket, session and front end;
//! - `terminal` / `pipe`: the two front ends. The terminal one (line editing
//!   that keeps a half-typed line intact while messages arrive) is used when
//!   both standard input and output are terminals; otherwise the pipe one
//!   (plain lines, no prompts, room lines on stdout and the client's own
//!   remarks on stderr), so the client can be scripted.
//!
//! `bin/logosnet_client.rs` only parses arguments and calls [`run`].

mod connect;
pub mod display;
mod driver;
pub mod ending;
pub mod pipe;
pub mod session;
mod terminal;

use std::io::IsTerminal;
use std::process::ExitCode;

use crate::protocol::Role;

pub use connect::CONNECT_TIMEOUT;
pub use driver::{CLOSE_DRAIN, WRITE_TIMEOUT};
pub use ending::{EXIT_STATUS_HELP, Ending};

/// What to connect to and as what.
#[derive(Debug, Clone)]
pub struct Config {
    /// The server's IP address or host name.
    pub host: String,
    /// The server's port.
    pub port: u16,
    /// Participant (default) or observer.
    pub role: Role,
}

/// Runs the client until it ends; prints the ending's line on stderr and
/// returns its exit status (see [`EXIT_STATUS_HELP`]).
pub fn run(config: Config) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("Cannot start the client: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ending = runtime.block_on(run_front_end(&config));
    if let Some(message) = ending.message() {
        eprintln!("{message}");
    }
    ExitCode::from(ending.exit_code())
}

async fn run_front_end(config: &Config) -> Ending {
    let Config { host, port, role } = config;
    if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        match terminal::TerminalFrontEnd::new() {
            Ok(mut front) => {
                let ending = driver::run(&mut front, host, *port, *role).await;
                driver::FrontEnd::finish(&mut front);
                // Dropping it leaves raw mode before the final message.
                drop(front);
                return ending;
            }
            Err(e) => {
                tracing::debug!(error = %e, "no line editing; using plain lines");
            }
        }
    }
    let mut front = pipe::PipeFrontEnd::new();
    let ending = driver::run(&mut front, host, *port, *role).await;
    driver::FrontEnd::finish(&mut front);
    ending
}
