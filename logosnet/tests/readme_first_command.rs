//! The README's first command is the one a newcomer runs before anything
//! else, so it is checked as written: the first line of the first `sh`
//! block under "## The two commands" must be
//! `cargo run --release --locked -p PACKAGE --bin BINARY -- ARGS…`, with
//! this package and one of its binaries; ARGS must parse as that binary's
//! command line, and the binary started with them (the port swapped for a
//! free one, since 8021 may be taken on a shared machine) must listen and
//! stop cleanly on SIGTERM. The test runs the binary Cargo built for it
//! (`CARGO_BIN_EXE_*`), never cargo itself.

mod support;

use logosnet::cli::{self, server::ServerArgs};
use support::Server;

const README: &str = include_str!("../../README.md");

/// The first line of the first `sh` block after the heading.
fn first_command() -> &'static str {
    README
        .lines()
        .skip_while(|line| line.trim() != "## The two commands")
        .skip_while(|line| line.trim() != "```sh")
        .nth(1)
        .expect("README: no sh block under \"## The two commands\"")
        .trim()
}

/// The cargo invocation's package and binary, and the arguments after `--`.
fn split(command: &str) -> (String, String, Vec<String>) {
    let words: Vec<&str> = command.split_whitespace().collect();
    let dashes = words
        .iter()
        .position(|w| *w == "--")
        .unwrap_or_else(|| panic!("no `--` before the binary's arguments in {command:?}"));
    let (cargo, args) = (&words[..dashes], &words[dashes + 1..]);
    assert_eq!(cargo[..2], ["cargo", "run"], "{command:?}");
    for flag in ["--release", "--locked"] {
        assert!(cargo.contains(&flag), "{command:?} lacks {flag}");
    }
    let value = |flag: &str| {
        cargo
            .iter()
            .position(|w| *w == flag)
            .and_then(|i| cargo.get(i + 1))
            .unwrap_or_else(|| panic!("{command:?} lacks {flag}"))
            .to_string()
    };
    (
        value("-p"),
        value("--bin"),
        args.iter().map(|a| (*a).to_owned()).collect(),
    )
}

#[test]
fn the_first_command_builds_this_server_and_its_arguments_parse() {
    let command = first_command();
    let (package, binary, args) = split(command);
    assert_eq!(package, env!("CARGO_PKG_NAME"), "{command:?}");
    assert_eq!(binary, "logosnet_server", "{command:?}");
    let parsed = cli::parse::<ServerArgs, _, _>(
        "logosnet_server",
        std::iter::once("logosnet_server".to_owned()).chain(args.iter().cloned()),
    )
    .unwrap_or_else(|stop| panic!("{command:?}: {:?}", stop.stderr));
    assert_eq!(parsed.ip, "127.0.0.1");
    assert_eq!(parsed.port, Some(8021));
}

#[test]
fn the_first_commands_server_starts_and_stops_on_sigterm() {
    let (_, _, mut args) = split(first_command());
    let port = args
        .iter()
        .position(|a| a == "--port" || a == "-p")
        .expect("the command gives --port");
    args[port + 1] = "0".to_owned();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (mut server, addrs) = Server::start_listening(&args, 1);
    assert_eq!(addrs[0].ip().to_string(), "127.0.0.1");
    assert_eq!(server.signal_and_wait("TERM").code(), Some(0));
}
