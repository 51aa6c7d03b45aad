//! End-to-end: loadgen against the real `logosnet_server` binary on a free
//! port. The server binary belongs to another crate, so it is built here with
//! the same cargo and profile and found next to loadgen's own binary. The
//! server's and loadgen's output is kept and shown only when a test fails.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use logosnet::protocol::{self, ClientFrame, Role, ServerFrame};

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

/// A running server, killed on drop. Its stderr goes to a file that is
/// printed only if the test fails, so a passing run is quiet.
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Server {
    fn start() -> Self {
        let log = temp_path(&format!("server-{}.log", unique()));
        let mut child = Command::new(server_binary())
            .args(["--ip", "127.0.0.1", "--port", "0"])
            .stdout(Stdio::piped())
            .stderr(File::create(&log).expect("create the server log"))
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
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        let port = addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port in the listening line");
        Server { child, port, log }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("--- server stderr ---\n{log}");
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// One loadgen run's exit status and output. Its stderr (progress lines)
/// is printed only if the test fails.
struct Run {
    ok: bool,
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

/// Runs loadgen with `args`, bounded by [`RUN_LIMIT`].
fn loadgen(args: &[&str]) -> Run {
    let name = unique();
    let stdout_path = temp_path(&format!("loadgen-{name}.out"));
    let stderr_path = temp_path(&format!("loadgen-{name}.err"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .stdout(File::create(&stdout_path).expect("create loadgen stdout"))
        .stderr(File::create(&stderr_path).expect("create loadgen stderr"))
        .spawn()
        .expect("start loadgen");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll loadgen") {
            break Some(status);
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let take = |path: &Path| {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let _ = std::fs::remove_file(path);
        text
    };
    let run = Run {
        ok: status.is_some_and(|s| s.success()),
        stdout: take(&stdout_path),
        stderr: take(&stderr_path),
    };
    assert!(
        status.is_some(),
        "loadgen did not finish within {RUN_LIMIT:?}"
    );
    run
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
    assert_eq!(u(&report, "/server/pid"), u64::from(server.child.id()));
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

#[test]
fn full_room_refuses_the_256th_of_each_role() {
    let server = Server::start();
    let port = server.port.to_string();
    let json = temp_path("full.json");
    let run = loadgen(&[
        "--port",
        &port,
        "--rate",
        "100",
        "--duration",
        "1",
        "--json",
        json.to_str().unwrap(),
    ]);
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

#[test]
fn no_server_is_one_line_naming_the_address() {
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
    ]);
    assert!(!run.ok, "loadgen passed with no server");
    assert_eq!(run.stdout, "", "no table for a run that never started");
    let line = format!("cannot connect to 127.0.0.1:{port}: connection refused");
    assert_eq!(reported(&run.stderr), vec![format!("loadgen: {line}")]);
    let report = read_json(&json);
    assert_eq!(report["passed"], false);
    assert_eq!(report["failures"], serde_json::json!([line]));
    assert_eq!(u(&report, "/problems/join_failures"), 3);
}

/// Someone already in the room: participants with names, observers.
struct Occupants(#[allow(dead_code)] Vec<TcpStream>);

/// Joins `names` as participants and `observers` observers, the way any
/// client would.
fn occupy(port: u16, names: &[&str], observers: usize) -> Occupants {
    let mut streams = Vec::new();
    let mut join = |role: Role, name: Option<&str>| {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        let mut exchange = |frame: ClientFrame, want: ServerFrame| {
            stream.write_all(&protocol::encode(&frame)).expect("write");
            let want = protocol::encode(&want);
            let mut got = vec![0; want.len()];
            stream.read_exact(&mut got).expect("answer");
            assert_eq!(got, want, "answer to {frame:?}");
        };
        exchange(ClientFrame::Hello(role), ServerFrame::Accepted);
        if let Some(name) = name {
            exchange(
                ClientFrame::Username(name.to_owned()),
                ServerFrame::UsernameAccepted,
            );
        }
        streams.push(stream);
    };
    for _ in 0..observers {
        join(Role::Observer, None);
    }
    for name in names {
        join(Role::Participant, Some(name));
    }
    Occupants(streams)
}

#[test]
fn occupied_room_stops_with_one_line_and_nothing_else() {
    let server = Server::start();
    let _occupants = occupy(server.port, &["alice", "bob"], 1);
    let port = server.port.to_string();
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
    ]);
    assert!(!run.ok, "loadgen passed in an occupied room");
    assert_eq!(run.stdout, "", "no table for a run that never started");
    let line = "the room is not empty: 2 participants / 1 observer already there; \
                loadgen needs an empty server or fewer clients";
    assert_eq!(reported(&run.stderr), vec![format!("loadgen: {line}")]);
    let report = read_json(&json);
    assert_eq!(report["passed"], false);
    assert_eq!(report["failures"], serde_json::json!([line]));
    assert_eq!(u(&report, "/traffic/messages_sent"), 0);
    assert!(
        u(&report, "/problems/foreign") >= 3,
        "two Full participants, one Full observer"
    );
    for kind in [
        "unexpected_close",
        "join_failures",
        "garbled",
        "protocol_errors",
    ] {
        assert_eq!(u(&report, &format!("/problems/{kind}")), 0, "{kind}");
    }
}
