//! End-to-end: loadgen against the real `logosnet_server` binary on a free
//! port. The server binary belongs to another crate, so it is built here with
//! the same cargo and profile and found next to loadgen's own binary.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Longest any loadgen run here may take before the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// Builds `logosnet_server` (once per test binary) into the directory that
/// holds loadgen's binary and returns its path.
fn server_binary() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let loadgen = PathBuf::from(env!("CARGO_BIN_EXE_loadgen"));
        let dir = loadgen.parent().expect("loadgen binary has a directory");
        let profile = dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("profile directory name");
        let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        build
            .args([
                "build",
                "--quiet",
                "-p",
                "logosnet",
                "--bin",
                "logosnet_server",
            ])
            // The directory above the profile's, so the binary lands next to
            // loadgen's whatever target directory the outer cargo used.
            .arg("--target-dir")
            .arg(dir.parent().expect("profile directory has a parent"))
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        match profile {
            "debug" => {}
            "release" => {
                build.arg("--release");
            }
            other => {
                build.args(["--profile", other]);
            }
        }
        let status = build.status().expect("run cargo build for logosnet_server");
        assert!(status.success(), "building logosnet_server failed");
        let server = dir.join("logosnet_server");
        assert!(server.exists(), "{} was not built", server.display());
        server
    })
}

/// A running server, killed on drop.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start() -> Self {
        Self::start_with(&["--ip", "127.0.0.1", "--port", "0"])
    }

    /// Starts the server with `args`; `port` is the one on its first
    /// `listening on` line (plaintext or TLS).
    fn start_with(args: &[&str]) -> Self {
        let mut child = Command::new(server_binary())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start logosnet_server");
        let stdout = child.stdout.take().expect("server stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the listening line");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .map(|addr| addr.trim_end_matches(" (tls)"))
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        let port = addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port in the listening line");
        Server { child, port }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs loadgen with `args`, bounded by [`RUN_LIMIT`]; returns its exit
/// success and stdout.
fn loadgen(args: &[&str]) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start loadgen");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("poll loadgen") {
            let mut out = String::new();
            if let Some(mut stdout) = child.stdout.take() {
                let _ = std::io::Read::read_to_string(&mut stdout, &mut out);
            }
            return (status.success(), out);
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("loadgen did not finish within {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("loadgen-test-{}-{name}", std::process::id()))
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

#[test]
fn small_room_has_zero_loss_and_a_well_formed_report() {
    let server = Server::start();
    let port = server.port.to_string();
    let json = temp_path("small.json");
    let hgrm = temp_path("small.hgrm");
    let svg = temp_path("small.svg");
    let pid = server.child.id().to_string();
    let (ok, table) = loadgen(&[
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
        "--skip-capacity-probe",
        "--server-pid",
        &pid,
        "--json",
        json.to_str().unwrap(),
        "--hgrm",
        hgrm.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert!(ok, "loadgen failed:\n{table}");
    assert!(table.contains("result: PASS"), "{table}");

    let report = read_json(&json);
    assert_eq!(report["schema_version"], 1);
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
    assert!(report["loadgen"]["cpu_total_s"].as_f64().is_some());

    let hgrm_text = std::fs::read_to_string(&hgrm).expect("hgrm written");
    let _ = std::fs::remove_file(&hgrm);
    assert!(hgrm_text.contains(&format!("Total count    = {expected:>12}]")));
    let svg_text = std::fs::read_to_string(&svg).expect("svg written");
    let _ = std::fs::remove_file(&svg);
    assert!(svg_text.starts_with("<svg") && svg_text.contains("<polyline"));
}

#[test]
fn small_room_over_tls_has_zero_loss() {
    let certs = devcerts::TempSet::local(devcerts::KeyKind::EcdsaP256).expect("certificates");
    let file = |p: &Path| p.to_str().expect("UTF-8 temp path").to_owned();
    let (cert, key, ca) = (
        file(&certs.paths.cert),
        file(&certs.paths.key),
        file(&certs.paths.ca),
    );
    let server = Server::start_with(&[
        "--ip",
        "127.0.0.1",
        "--tls-port",
        "0",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
    ]);
    let port = server.port.to_string();
    let json = temp_path("tls.json");
    let (ok, table) = loadgen(&[
        "--ip",
        "localhost",
        "--port",
        &port,
        "--tls-ca",
        &ca,
        "--participants",
        "10",
        "--observers",
        "10",
        "--rate",
        "100",
        "--duration",
        "2",
        "--skip-capacity-probe",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(ok, "loadgen over TLS failed:\n{table}");
    let report = read_json(&json);
    assert_eq!(report["passed"], true);
    assert_eq!(u(&report, "/room/participants_joined"), 10);
    assert_eq!(u(&report, "/room/observers_joined"), 10);
    let sent = u(&report, "/traffic/messages_sent");
    let private = u(&report, "/traffic/private_sent");
    assert_eq!(sent, 200, "100 msgs/s for 2 s");
    let expected = (sent - private) * 19 + private;
    assert_eq!(u(&report, "/deliveries/delivered"), expected);
    for field in ["lost", "duplicated", "out_of_order", "misdelivered"] {
        assert_eq!(u(&report, &format!("/deliveries/{field}")), 0, "{field}");
    }
    // Plaintext to the TLS port: nobody gets in, and loadgen says so.
    let (ok, table) = loadgen(&[
        "--port",
        &port,
        "--participants",
        "1",
        "--observers",
        "0",
        "--duration",
        "0",
        "--phase-timeout",
        "2",
    ]);
    assert!(!ok && table.contains("result: FAIL"), "{table}");
}

#[test]
fn full_room_refuses_the_256th_of_each_role() {
    let server = Server::start();
    let port = server.port.to_string();
    let json = temp_path("full.json");
    let (ok, table) = loadgen(&[
        "--port",
        &port,
        "--rate",
        "100",
        "--duration",
        "1",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(ok, "loadgen failed:\n{table}");
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

#[test]
fn no_server_is_a_failure_with_a_reason() {
    // Bind and drop a listener to get a port that (very likely) refuses.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
        .to_string();
    let json = temp_path("refused.json");
    let (ok, table) = loadgen(&[
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
    ]);
    assert!(!ok, "loadgen passed with no server:\n{table}");
    assert!(table.contains("result: FAIL"), "{table}");
    let report = read_json(&json);
    assert_eq!(report["passed"], false);
    assert_eq!(u(&report, "/problems/join_failures"), 3);
}
