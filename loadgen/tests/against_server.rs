//! End-to-end: the loadgen binary against the real server, which runs in
//! this test's own process (`testkit::spawn_server` on `127.0.0.1:0`, or
//! `spawn_tls_server` with a certificate `devcerts` makes, with the binary's
//! default settings) on a multi-thread runtime, so it keeps serving while
//! the test waits for loadgen. loadgen is a process because
//! its exit status, its stdout table and its stderr lines are under test;
//! it is found through Cargo's `CARGO_BIN_EXE_loadgen`, and no test builds
//! anything. loadgen's output is shown only when a test fails, the server's
//! log likewise (the test harness captures it).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use devcerts::{KeyKind, TempSet};
use logosnet::protocol::{joined, public_line};
use logosnet::room::flood::FloodLimit;
use logosnet::server::ServerConfig;
use logosnet::tls::{self, TlsAcceptor};
use testkit::{Peer, ServerHandle, spawn_server, spawn_tls_server};
use tokio::net::TcpStream;

/// Longest any loadgen run here may take before the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// The server in this process with the binary's defaults: its address, and
/// the handle that stops it when dropped.
async fn server() -> (SocketAddr, ServerHandle) {
    spawn_server(ServerConfig::default()).await
}

/// The server in this process serving TLS only, with a certificate for
/// this machine's names signed by a CA made for the test: its address, the
/// handle, and the files (`ca.pem` is what loadgen's `--tls-ca` trusts),
/// removed when dropped.
async fn tls_server() -> (SocketAddr, ServerHandle, TempSet) {
    let certs = TempSet::local(KeyKind::EcdsaP256).expect("make certificates");
    let config = tls::server_config(&certs.paths.cert, &certs.paths.key).expect("the server's TLS");
    let (addr, handle) = spawn_tls_server(ServerConfig::default(), TlsAcceptor::from(config)).await;
    (addr, handle, certs)
}

/// One loadgen run's exit status and output. Its output is printed only if
/// the test fails.
struct Run {
    ok: bool,
    /// The exit status, `None` if a signal ended it.
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Drop for Run {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- loadgen stdout ---\n{}\n--- loadgen stderr ---\n{}",
                self.stdout, self.stderr
            );
        }
    }
}

/// Runs loadgen with `args`, bounded by [`RUN_LIMIT`] (killed past it). The
/// wait is asynchronous, so the in-process server goes on serving.
async fn loadgen(args: &[&str]) -> Run {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(RUN_LIMIT, child)
        .await
        .unwrap_or_else(|_| panic!("loadgen did not finish within {RUN_LIMIT:?}"))
        .expect("run loadgen");
    Run {
        ok: output.status.success(),
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A name no other test of this process uses.
fn unique() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A plain progress line (`loadgen: participants 20/20 joined (done)`), as
/// opposed to a line that reports something.
fn is_progress(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("loadgen: ") else {
        return false;
    };
    let mut words = rest.split(' ');
    let phase = words.next().unwrap_or_default();
    let counts = words.next().unwrap_or_default();
    ["observers", "participants", "traffic", "drain", "leave"].contains(&phase)
        && counts
            .split_once('/')
            .is_some_and(|(a, b)| a.parse::<u64>().is_ok() && b.parse::<u64>().is_ok())
}

/// The lines of `stderr` that are not progress.
fn reported(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| !is_progress(l)).collect()
}

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "loadgen-test-{}-{}-{name}",
        std::process::id(),
        unique()
    ))
}

fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).expect("JSON report written");
    let _ = std::fs::remove_file(path);
    serde_json::from_str(&text).expect("JSON report parses")
}

fn u(v: &serde_json::Value, pointer: &str) -> u64 {
    v.pointer(pointer)
        .and_then(serde_json::Value::as_u64)
        .unwrap_or_else(|| panic!("{pointer} missing or not a number in {v:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_room_has_zero_loss_and_a_well_formed_report() {
    let (addr, _server) = server().await;
    let port = addr.port().to_string();
    let json = temp_path("small.json");
    let hgrm = temp_path("small.hgrm");
    let svg = temp_path("small.svg");
    // The server runs in this process: its figures are this process's.
    let pid = std::process::id().to_string();
    let run = loadgen(&[
        "--ip",
        "127.0.0.1",
        "--port",
        &port,
        "--participants",
        "20",
        "--observers",
        "20",
        "--rate",
        "200",
        "--duration",
        "2",
        // One generous wait for each phase and the drain: on a loaded
        // machine they take longer, and only a failing run waits it out.
        "--phase-timeout",
        "30",
        "--skip-capacity-probe",
        "--server-pid",
        &pid,
        "--json",
        json.to_str().unwrap(),
        "--hgrm",
        hgrm.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
    ])
    .await;
    assert!(run.ok, "loadgen failed");
    assert!(run.stdout.contains("result: PASS"));
    assert_eq!(reported(&run.stderr), Vec::<&str>::new());

    let report = read_json(&json);
    assert_eq!(report["schema_version"], 2);
    assert_eq!(report["passed"], true);
    assert_eq!(report["failures"].as_array().map(Vec::len), Some(0));
    assert_eq!(u(&report, "/room/participants_joined"), 20);
    assert_eq!(u(&report, "/room/observers_joined"), 20);
    assert_eq!(report["room"]["probe_participant"], "skipped");
    let sent = u(&report, "/traffic/messages_sent");
    let private = u(&report, "/traffic/private_sent");
    assert_eq!(sent, 400, "200 msgs/s for 2 s");
    assert_eq!(u(&report, "/traffic/public_sent") + private, sent);
    // Every public line reaches 19 participants and 20 observers; a private
    // one its target only.
    let expected = (sent - private) * 39 + private;
    assert_eq!(u(&report, "/deliveries/expected"), expected);
    assert_eq!(u(&report, "/deliveries/delivered"), expected);
    for field in ["lost", "duplicated", "out_of_order", "misdelivered"] {
        assert_eq!(u(&report, &format!("/deliveries/{field}")), 0, "{field}");
    }
    assert_eq!(u(&report, "/latency/delivery/count"), expected);
    assert_eq!(u(&report, "/latency/connect/count"), 40);
    assert_eq!(u(&report, "/latency/join/count"), 20);
    for which in ["delivery", "connect", "join"] {
        let p50 = u(&report, &format!("/latency/{which}/p50_us"));
        let max = u(&report, &format!("/latency/{which}/max_us"));
        assert!(p50 <= max, "{which}: p50 {p50} > max {max}");
    }
    assert!(u(&report, "/server/peak_rss_kib") > 0);
    assert_eq!(u(&report, "/server/pid"), u64::from(std::process::id()));
    assert!(u(&report, "/loadgen/pid") > 0);
    for who in ["loadgen", "server"] {
        let ns = report[who]["cpu_per_delivery_ns"].as_f64();
        assert!(ns.is_some_and(|ns| ns >= 0.0), "{who}: {ns:?}");
        assert!(report[who]["cpu_total_s"].as_f64().is_some_and(|s| s > 0.0));
    }
    assert!(run.stdout.contains("CPU per delivery"));
    assert!(report["warnings"].is_array());

    let hgrm_text = std::fs::read_to_string(&hgrm).expect("hgrm written");
    let _ = std::fs::remove_file(&hgrm);
    assert!(hgrm_text.contains(&format!("Total count    = {expected:>12}]")));
    let svg_text = std::fs::read_to_string(&svg).expect("svg written");
    let _ = std::fs::remove_file(&svg);
    assert!(svg_text.starts_with("<svg") && svg_text.contains("<polyline"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_room_over_tls_has_zero_loss() {
    let (addr, _server, certs) = tls_server().await;
    let port = addr.port().to_string();
    let ca = certs.paths.ca.to_str().expect("UTF-8 temp path");
    let json = temp_path("tls.json");
    // 4 lines a second each: under the default flood rate, so the figures
    // are the server's pace, not flood control's.
    let run = loadgen(&[
        "--ip",
        "127.0.0.1",
        "--port",
        &port,
        "--tls-ca",
        ca,
        "--participants",
        "10",
        "--observers",
        "10",
        "--rate",
        "40",
        "--duration",
        "2",
        "--phase-timeout",
        "30",
        "--skip-capacity-probe",
        "--json",
        json.to_str().unwrap(),
    ])
    .await;
    assert!(run.ok, "loadgen over TLS failed");
    assert!(run.stdout.contains(&format!("server {addr} over TLS")));
    assert!(run.stdout.contains("result: PASS"));
    assert_eq!(reported(&run.stderr), Vec::<&str>::new());

    let report = read_json(&json);
    assert_eq!(report["passed"], true);
    assert_eq!(report["config"]["tls"], true);
    assert_eq!(u(&report, "/room/participants_joined"), 10);
    assert_eq!(u(&report, "/room/observers_joined"), 10);
    let sent = u(&report, "/traffic/messages_sent");
    let private = u(&report, "/traffic/private_sent");
    assert_eq!(sent, 80, "40 msgs/s for 2 s");
    assert!(private > 0, "the default 10 % private");
    // A public line reaches 9 participants and 10 observers; a private one
    // its target only.
    let expected = (sent - private) * 19 + private;
    assert_eq!(u(&report, "/deliveries/expected"), expected);
    assert_eq!(u(&report, "/deliveries/delivered"), expected);
    for field in ["lost", "duplicated", "out_of_order", "misdelivered"] {
        assert_eq!(u(&report, &format!("/deliveries/{field}")), 0, "{field}");
    }
    let no_problems = serde_json::to_value(loadgen::run::ProblemCounts::default()).unwrap();
    assert_eq!(report["problems"], no_problems);
    assert_eq!(u(&report, "/latency/delivery/count"), expected);
    // Every line's send lag, recorded by the writer tasks over TLS.
    assert_eq!(u(&report, "/latency/send_lag/count"), sent);
    assert_eq!(u(&report, "/latency/connect/count"), 20);
    assert_eq!(u(&report, "/latency/join/count"), 10);
    assert!(
        report["room"]["join_time_s"]
            .as_f64()
            .is_some_and(|s| s > 0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_stops_the_run_with_one_line() {
    let (addr, _server, certs) = tls_server().await;
    let stranger = devcerts::Ca::new("Someone else's CA", KeyKind::EcdsaP256).expect("a CA");
    let stranger_file = certs.dir().join("stranger.pem");
    std::fs::write(&stranger_file, stranger.cert_pem()).expect("write the CA file");
    let port = addr.port().to_string();
    let run = loadgen(&[
        "--port",
        &port,
        "--tls-ca",
        stranger_file.to_str().expect("UTF-8 temp path"),
        "--participants",
        "1",
        "--observers",
        "1",
        "--duration",
        "1",
    ])
    .await;
    assert!(!run.ok, "loadgen trusted a certificate it should not have");
    assert_eq!(run.stdout, "", "no table for a run that never started");
    assert_eq!(
        reported(&run.stderr),
        vec![
            "loadgen: 2 of 2 clients could not join the room; the first: observer 0: \
             cannot verify the server: its certificate is not signed by a trusted CA"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_run_at_a_tls_port_stops_with_one_line() {
    let (addr, _server, _certs) = tls_server().await;
    let port = addr.port().to_string();
    let run = loadgen(&[
        "--port",
        &port,
        "--participants",
        "1",
        "--observers",
        "1",
        "--duration",
        "1",
    ])
    .await;
    assert!(!run.ok, "a plaintext run passed at a TLS port");
    assert_eq!(
        reported(&run.stderr),
        vec![
            "loadgen: 2 of 2 clients could not join the room; the first: observer 0: \
             the server speaks TLS: add --tls (or --tls-ca FILE for a private CA)"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_room_refuses_the_256th_of_each_role() {
    let (addr, _server) = server().await;
    let port = addr.port().to_string();
    let json = temp_path("full.json");
    let run = loadgen(&[
        "--port",
        &port,
        "--rate",
        "100",
        "--duration",
        "1",
        "--phase-timeout",
        "30",
        "--json",
        json.to_str().unwrap(),
    ])
    .await;
    assert!(run.ok, "loadgen failed");
    let report = read_json(&json);
    assert_eq!(u(&report, "/room/participants_joined"), 255);
    assert_eq!(u(&report, "/room/observers_joined"), 255);
    assert_eq!(report["room"]["probe_participant"], "full");
    assert_eq!(report["room"]["probe_observer"], "full");
    assert_eq!(u(&report, "/deliveries/lost"), 0);
    assert_eq!(
        u(&report, "/deliveries/delivered"),
        u(&report, "/deliveries/expected")
    );
}

#[tokio::test]
async fn no_server_is_one_line_naming_the_address() {
    // Bind and drop a listener to get a port that (very likely) refuses.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
        .to_string();
    let json = temp_path("refused.json");
    let run = loadgen(&[
        "--port",
        &port,
        "--participants",
        "2",
        "--observers",
        "1",
        "--duration",
        "1",
        "--phase-timeout",
        "2",
        "--json",
        json.to_str().unwrap(),
    ])
    .await;
    assert!(!run.ok, "loadgen passed with no server");
    assert_eq!(run.stdout, "", "no table for a run that never started");
    let line = format!("cannot connect to 127.0.0.1:{port}: connection refused");
    assert_eq!(reported(&run.stderr), vec![format!("loadgen: {line}")]);
    let report = read_json(&json);
    assert_eq!(report["passed"], false);
    assert_eq!(report["failures"], serde_json::json!([line]));
    assert_eq!(u(&report, "/problems/join_failures"), 3);
}

/// Joins `names` as participants and `observers` observers, the way any
/// client would; they stay in the room while the returned peers live.
async fn occupy(addr: SocketAddr, names: &[&str], observers: usize) -> Vec<Peer<TcpStream>> {
    let mut occupants = Vec::new();
    for i in 0..observers {
        occupants.push(Peer::observer(addr, &format!("occupant observer {i}")).await);
    }
    for name in names {
        occupants.push(Peer::participant(addr, name).await);
    }
    occupants
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn occupied_room_stops_with_one_line_and_nothing_else() {
    let (addr, _server) = server().await;
    let mut occupants = occupy(addr, &["alice", "bob"], 1).await;
    // Everyone has seen every join so far (bob his own, as he joined):
    // what comes next is loadgen's.
    for occupant in &mut occupants[..2] {
        occupant.recv_until(&joined("bob")).await;
    }
    let port = addr.port().to_string();
    let json = temp_path("occupied.json");
    let run = loadgen(&[
        "--port",
        &port,
        "--rate",
        "100",
        "--duration",
        "1",
        "--json",
        json.to_str().unwrap(),
    ])
    .await;
    assert!(!run.ok, "loadgen passed in an occupied room");
    assert_eq!(run.stdout, "", "no table for a run that never started");
    let line = "the room is not empty: 2 participants / 1 observer already there; \
                loadgen needs an empty server or fewer clients";
    assert_eq!(reported(&run.stderr), vec![format!("loadgen: {line}")]);
    let report = read_json(&json);
    assert_eq!(report["passed"], false);
    assert_eq!(report["failures"], serde_json::json!([line]));
    assert_eq!(u(&report, "/traffic/messages_sent"), 0);
    assert_eq!(
        u(&report, "/problems/foreign"),
        3,
        "two participants and one observer, counted by the preflight"
    );
    for kind in [
        "unexpected_close",
        "join_failures",
        "garbled",
        "protocol_errors",
    ] {
        assert_eq!(u(&report, &format!("/problems/{kind}")), 0, "{kind}");
    }
    // Nobody in the room saw loadgen: no join, no leave, nothing at all.
    for occupant in &mut occupants {
        occupant.expect_quiet(Duration::from_millis(300)).await;
    }
    // And the room is as it was: alice still reaches bob.
    occupants[1].chat("still here").await;
    occupants[2]
        .expect(public_line("alice", "still here"))
        .await;
}

/// The server with flood control at one line a second after a burst of one:
/// a participant sending five lines 0.2 s apart has them delivered 0, 0.8,
/// 1.6, 2.4 and 3.2 s late at the earliest, however fast the machine.
async fn pacing_server() -> (SocketAddr, ServerHandle) {
    let mut config = ServerConfig::default();
    config.room.flood = FloodLimit::new(1, 1);
    spawn_server(config).await
}

/// Two participants at 5 lines a second each for one second, no private
/// lines, plus `extra`.
async fn paced_run(addr: SocketAddr, json: &Path, extra: &[&str]) -> Run {
    let port = addr.port().to_string();
    let mut args = vec![
        "--ip",
        "127.0.0.1",
        "--port",
        &port,
        "--participants",
        "2",
        "--observers",
        "1",
        "--rate",
        "10",
        "--duration",
        "1",
        "--private",
        "0",
        "--skip-capacity-probe",
        "--json",
        json.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    loadgen(&args).await
}

const PACING_LINE: &str = "the server is pacing senders (flood control?): start it with --flood-rate 0 to measure the server";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_run_says_so_and_does_not_pass() {
    let (addr, _server) = pacing_server().await;
    let json = temp_path("paced.json");
    let run = paced_run(addr, &json, &[]).await;
    assert_eq!(run.code, Some(1));
    assert!(run.stdout.contains("result: FAIL"), "not a failure");
    let failures: Vec<&str> = run
        .stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .collect();
    // Every line arrived: pacing is the only thing wrong.
    assert_eq!(failures.len(), 1, "{failures:#?}");
    assert!(failures[0].starts_with(PACING_LINE), "{failures:#?}");
    let report = read_json(&json);
    assert_eq!(report["passed"], false);
    assert_eq!(report["traffic"]["paced"], true);
    assert_eq!(u(&report, "/deliveries/lost"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_pacing_passes_a_paced_run_with_the_line_as_a_warning() {
    let (addr, _server) = pacing_server().await;
    let json = temp_path("paced-allowed.json");
    let run = paced_run(addr, &json, &["--allow-pacing"]).await;
    assert!(run.ok, "the paced run was not allowed");
    assert!(run.stdout.contains("result: PASS"));
    let warning = run
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("warning"))
        .expect("a warning")
        .trim();
    assert!(warning.starts_with(PACING_LINE), "{warning}");
    let report = read_json(&json);
    assert_eq!(report["passed"], true);
    assert_eq!(report["traffic"]["paced"], true);
}

#[tokio::test]
async fn bad_arguments_are_one_line_and_exit_64() {
    for (args, expected) in [
        (
            &["--phase-timeout", "1e20"][..],
            "loadgen: --phase-timeout must be a number of seconds above 0 and at most 86400 (try --help)",
        ),
        (
            &["--rate", "fast"],
            "loadgen: invalid value 'fast' for '--rate <RATE>': invalid float literal (try --help)",
        ),
        (
            &["--no-such-option"],
            "loadgen: unexpected argument '--no-such-option' found (try --help)",
        ),
    ] {
        let run = loadgen(args).await;
        assert_eq!(run.code, Some(64), "{args:?}");
        assert_eq!(run.stdout, "", "{args:?}");
        assert_eq!(run.stderr, format!("{expected}\n"), "{args:?}");
    }
}

/// `--metrics-url`: the server's own count of deliveries, read from its
/// metrics endpoint before and after the traffic, equals loadgen's own;
/// nobody was dropped or refused; the server's CPU per delivery is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_own_delivery_count_equals_loadgens() {
    let metrics = std::sync::Arc::new(logosnet::server::Metrics::new());
    let config = ServerConfig {
        metrics: Some(metrics.clone()),
        ..ServerConfig::default()
    };
    let (addr, _server) = spawn_server(config).await;
    let scrape_at = testkit::metrics::serve_metrics_on_loopback(metrics).await;
    let url = format!("http://{scrape_at}/metrics");
    let port = addr.port().to_string();
    let json = temp_path("metrics.json");
    let run = loadgen(&[
        "--ip",
        "127.0.0.1",
        "--port",
        &port,
        "--participants",
        "10",
        "--observers",
        "10",
        "--rate",
        "100",
        "--duration",
        "1",
        "--skip-capacity-probe",
        "--metrics-url",
        &url,
        "--json",
        json.to_str().unwrap(),
    ])
    .await;
    assert!(run.ok, "loadgen failed");
    assert_eq!(reported(&run.stderr), Vec::<&str>::new());
    let report = read_json(&json);
    let delivered = u(&report, "/deliveries/delivered");
    assert!(delivered > 0);
    assert_eq!(u(&report, "/server_metrics/deliveries"), delivered);
    assert_eq!(u(&report, "/server_metrics/drops"), 0);
    assert_eq!(u(&report, "/server_metrics/refusals"), 0);
    assert_eq!(report["server_metrics"]["error"], serde_json::Value::Null);
    assert_eq!(report["server_metrics"]["url"], url.as_str());
    let ns = report["server_metrics"]["cpu_per_delivery_ns"].as_f64();
    assert!(ns.is_some_and(|ns| ns >= 0.0), "{ns:?}");
    // (A shared machine may warn that loadgen was the bottleneck; never
    // that the counts differ.)
    let warnings = report["warnings"].as_array().expect("warnings");
    assert!(
        warnings
            .iter()
            .all(|w| !w.as_str().unwrap_or_default().contains("server counted")),
        "{warnings:?}"
    );
    assert!(
        run.stdout
            .contains(&format!("{delivered} deliveries, 0 drops, 0 refusals")),
        "{}",
        run.stdout
    );
}

/// A `--metrics-url` that is not `http://HOST…` is refused before the run.
#[tokio::test]
async fn a_metrics_url_loadgen_cannot_scrape_is_refused_at_once() {
    let run = loadgen(&[
        "--ip",
        "127.0.0.1",
        "--port",
        "1",
        "--metrics-url",
        "https://x/metrics",
    ])
    .await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains("only http:// is supported"),
        "{}",
        run.stderr
    );
}
