//! The LogosNet terminal client: a participant or an observer.
//!
//! - [`session`]: the client's protocol rules as a sans-IO state machine;
//! - [`display`]: text from the network made safe and unambiguous to print;
//! - [`ending`]: every way the client stops, with its message and exit code;
//! - [`reconnect`]: `--observe --reconnect`, a logger that comes back;
//! - `connect`: resolving, connecting and the TLS handshake;
//! - `signals`: SIGINT, SIGTERM and SIGHUP as requests to leave;
//! - `timestamp`: the `[HH:MM:SS] ` of `--timestamps`;
//! - [`driver`]: the event loop joining socket, session and front end, over
//!   any [`Dialer`] and [`Stop`];
//! - `terminal` / `pipe`: the two front ends. The terminal one (line editing
//!   that keeps a half-typed line intact while messages arrive) is used when
//!   both standard input and output are terminals; otherwise the pipe one
//!   (plain lines, no prompts, room lines on stdout and the client's own
//!   remarks on stderr), so the client can be scripted. In pipe mode an
//!   observer never reads standard input: it logs the room until the
//!   server closes or a signal stops it, so `&`, `nohup`, `< /dev/null` and
//!   service managers all work.
//!
//! `bin/logosnet_client.rs` only parses arguments ([`crate::cli::client`])
//! and calls [`run`].

mod connect;
pub mod display;
pub mod driver;
pub mod ending;
pub mod pipe;
pub mod reconnect;
pub mod session;
mod signals;
mod terminal;
mod timestamp;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use crate::protocol::Role;
use crate::tls::Trust;

pub use connect::{ANSWER_TIMEOUT, CONNECT_TIMEOUT};
pub use driver::{CLOSE_DRAIN, CONNECTING_NOTICE_DELAY, Dialer, Stop, WRITE_TIMEOUT};
pub use ending::{EXIT_STATUS_HELP, Ending};

use driver::{Behaviour, FrontEnd, TcpDialer};
use session::InputMode;
use signals::LeaveSignals;

/// What to connect to, as what, and how to show it.
#[derive(Debug, Clone)]
pub struct Config {
    /// The server's IP address or host name.
    pub host: String,
    /// The server's port.
    pub port: u16,
    /// Participant (default) or observer.
    pub role: Role,
    /// Put the local time before every room line.
    pub timestamps: bool,
    /// How long to wait, from the start, for the server's answer to
    /// `Hello` (see [`CONNECT_TIMEOUT`]).
    pub connect_timeout: Duration,
    /// How long a server that accepted the connection may take to answer
    /// `Hello` before it is called not a LogosNet server (see
    /// [`ANSWER_TIMEOUT`]); the connect timeout still bounds the whole.
    pub answer_timeout: Duration,
    /// Speak TLS, trusting these certificates; `None` for plaintext.
    pub tls: Option<Trust>,
    /// An observer that, when the server goes away or is not up yet,
    /// tries again with backoff instead of ending (see [`reconnect`]).
    pub reconnect: bool,
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
    // A host-name lookup still running on the blocking pool (the user left
    // or the connect timeout ran out during it) must not hold up the exit.
    runtime.shutdown_background();
    if let Some(message) = ending.message() {
        eprintln!("{message}");
    }
    ExitCode::from(ending.exit_code())
}

/// Columns a long line's rows after the first are indented by: the column
/// a chat line's text starts in, after the stamp with `--timestamps`.
fn continuation_indent(config: &Config) -> usize {
    let stamp = if config.timestamps {
        timestamp::STAMP_COLUMNS
    } else {
        0
    };
    crate::protocol::CHAT_PREFIX_CHARS + stamp
}

/// One run, or with `--reconnect` as many as it takes.
async fn run_with<F: FrontEnd>(front: &mut F, config: &Config, behaviour: Behaviour) -> Ending {
    if !config.reconnect {
        return driver::run_once(front, config, behaviour).await;
    }
    let mut dialer = match TcpDialer::new(config) {
        Ok(dialer) => dialer,
        Err(ending) => return ending,
    };
    let mut signals = LeaveSignals::new();
    reconnect::reconnecting(
        front,
        config,
        behaviour.mode,
        behaviour.announce_connecting,
        &mut dialer,
        &mut signals,
        fastrand::u64(..),
    )
    .await
}

async fn run_front_end(config: &Config) -> Ending {
    let indent = continuation_indent(config);
    if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        terminal::restore_terminal_on_panic();
        match terminal::TerminalFrontEnd::new(indent) {
            Ok(mut front) => {
                let behaviour = Behaviour {
                    mode: InputMode::Terminal,
                    announce_connecting: true,
                    returning: false,
                };
                let ending = run_with(&mut front, config, behaviour).await;
                front.finish();
                // Dropping it leaves raw mode before the final message.
                drop(front);
                return ending;
            }
            Err(e) => {
                tracing::debug!(error = %e, "no line editing; using plain lines");
            }
        }
    }
    let wrap = std::io::stdout().is_terminal().then_some(indent);
    let mut front = pipe::PipeFrontEnd::new(config.role == Role::Participant, wrap);
    let behaviour = Behaviour {
        mode: InputMode::Script,
        announce_connecting: std::io::stderr().is_terminal(),
        returning: false,
    };
    let ending = run_with(&mut front, config, behaviour).await;
    front.finish();
    ending
}
