//! Random argument vectors into both parsers: parsing never panics, a
//! parse that succeeds gives a configuration the server and client can use
//! without panicking, and one that fails says so in the documented way.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::time::Instant;

use proptest::prelude::*;

use super::client::{ClientArgs, MAX_CONNECT_TIMEOUT, MIN_CONNECT_TIMEOUT};
use super::server::{
    MAX_CONNECTIONS_SETTING, MAX_HELLO_TIMEOUT, MAX_NEW_PER_IP_WINDOW, MAX_PER_IP_SETTING,
    MAX_WRITE_GAP, MIN_HELLO_TIMEOUT, ServerArgs,
};
use super::{EXIT_USAGE, Stop, parse};
use crate::room::Room;
use crate::server::connect_rate::ConnectRates;
use crate::server::per_address::AddressGroup;

/// Every option either binary knows, and a few shapes clap treats specially.
const FLAGS: &[&str] = &[
    "--ip",
    "-i",
    "--port",
    "-p",
    "--observe",
    "-o",
    "--timestamps",
    "--connect-timeout",
    "--hello-timeout",
    "--write-gap-ms",
    "--max-per-ip",
    "--limit-loopback",
    "--limit-loopback=true",
    "--max-connections",
    "--max-new-per-ip",
    "--new-per-ip-window",
    "--help",
    "-h",
    "--version",
    "-V",
    "--",
    "-",
    "-ip",
    "--ip=",
    "--port=8021",
    "--hello-timeout=",
];

/// Values near and past every boundary the options have.
const VALUES: &[&str] = &[
    "127.0.0.1",
    "::1",
    "localhost",
    "0",
    "1",
    "8021",
    "65535",
    "65536",
    "-1",
    "0.0005",
    "0.001",
    "60",
    "1000",
    "1001",
    "2048",
    "2049",
    "3600",
    "86400",
    "86400.0001",
    "65537",
    "100001",
    "1e19",
    "1e20",
    "1e400",
    "18446744073709551616",
    "inf",
    "NaN",
    "",
    " ",
];

fn token() -> impl Strategy<Value = OsString> {
    prop_oneof![
        4 => proptest::sample::select(FLAGS).prop_map(OsString::from),
        4 => proptest::sample::select(VALUES).prop_map(OsString::from),
        2 => any::<f64>().prop_map(|x| OsString::from(x.to_string())),
        2 => any::<i128>().prop_map(|x| OsString::from(x.to_string())),
        2 => ".{0,12}".prop_map(OsString::from),
        1 => proptest::collection::vec(any::<u8>(), 0..8).prop_map(OsString::from_vec),
    ]
}

fn argv(bin: &'static str) -> impl Strategy<Value = Vec<OsString>> {
    proptest::collection::vec(token(), 0..8).prop_map(move |mut args| {
        args.insert(0, OsString::from(bin));
        args
    })
}

/// What every failed parse must look like.
fn check_stop(bin: &str, stop: &Stop) -> Result<(), TestCaseError> {
    match stop.status {
        0 => {
            prop_assert!(!stop.stdout.is_empty());
            prop_assert_eq!(&stop.stderr, &None);
        }
        EXIT_USAGE => {
            prop_assert_eq!(&stop.stdout, "");
            let line = stop.stderr.as_deref().unwrap_or_default();
            prop_assert!(line.starts_with(&format!("{bin}: ")), "{line:?}");
            prop_assert!(line.ends_with(" (try --help)"), "{line:?}");
            prop_assert!(!line.chars().any(char::is_control), "{line:?}");
        }
        other => prop_assert!(false, "undocumented status {other}"),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn server_parser_never_panics(args in argv("logosnet_server")) {
        match parse::<ServerArgs, _, _>("logosnet_server", args) {
            Ok(parsed) => {
                prop_assert!((MIN_HELLO_TIMEOUT..=MAX_HELLO_TIMEOUT).contains(&parsed.hello_timeout));
                prop_assert!(parsed.write_gap <= MAX_WRITE_GAP);
                prop_assert!(parsed.max_per_ip <= MAX_PER_IP_SETTING);
                // The configuration runs: the first connection sets a
                // deadline from the timeout without overflowing the clock.
                let config = parsed.config();
                let mut room = Room::new(config.room);
                let now = Instant::now();
                room.handle_open(now, 1);
                room.handle_timeout(now);
                prop_assert!(room.poll_timeout().is_some_and(|at| at > now));
                prop_assert!(now.checked_add(config.write_gap).is_some());
                prop_assert!((1..=MAX_CONNECTIONS_SETTING).contains(&parsed.max_connections));
                prop_assert!(parsed.new_per_ip_window <= MAX_NEW_PER_IP_WINDOW);
                // The rate runs too: a burst spent, then a refusal.
                let mut rates = ConnectRates::default();
                let source = AddressGroup::of(std::net::Ipv4Addr::LOCALHOST.into());
                for _ in 0..=config.connect_rate.burst.min(100) {
                    let _ = rates.admit(&config.connect_rate, now, source);
                }
            }
            Err(stop) => check_stop("logosnet_server", &stop)?,
        }
    }

    #[test]
    fn client_parser_never_panics(args in argv("logosnet_client")) {
        match parse::<ClientArgs, _, _>("logosnet_client", args) {
            Ok(parsed) => {
                let config = parsed.config();
                prop_assert!(
                    (MIN_CONNECT_TIMEOUT..=MAX_CONNECT_TIMEOUT).contains(&config.connect_timeout)
                );
                prop_assert!(Instant::now().checked_add(config.connect_timeout).is_some());
            }
            Err(stop) => check_stop("logosnet_client", &stop)?,
        }
    }
}
