//! A logger with `--reconnect` across a server restart: the real
//! reconnecting loop (`logosnet::client::reconnect::log_room`, the one the
//! binary runs for `--observe --reconnect` in pipe mode) dialing turmoil's
//! network, stopped by a simulated deadline instead of a signal. The
//! server host crashes (its listener and every connection gone), stays
//! down for a while and is restarted; the log must say once that it lost
//! the room, once that it is back, who is there on return, and then log
//! the room again.

use std::future::Future;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use logosnet::client::reconnect::{back_line, log_room, lost_line};
use logosnet::client::{Config, Dialer, Ending, Stop};
use logosnet::protocol::{Role, joined, left, public_line};
use tokio::time::Instant;
use turmoil::net::TcpStream;

use crate::harness::{PORT, PieceSize, SERVER, World, connect_with, lock, participant};

/// Dials the simulated server, as the binary's dialer dials TCP.
struct SimDialer;

impl Dialer for SimDialer {
    type Stream = TcpStream;

    async fn dial(&mut self) -> Result<(TcpStream, SocketAddr), Ending> {
        let failed = |e: io::Error| Ending::ConnectFailed {
            addr: format!("{SERVER}:{PORT}"),
            reason: e.kind().to_string(),
        };
        let stream = TcpStream::connect((SERVER, PORT)).await.map_err(failed)?;
        let addr = stream.peer_addr().map_err(failed)?;
        Ok((stream, addr))
    }
}

/// Asks the logger to leave at a simulated instant, as SIGTERM would.
struct StopAt(Instant);

impl Stop for StopAt {
    fn requested(&mut self) -> impl Future<Output = ()> {
        tokio::time::sleep_until(self.0)
    }
}

/// Where the logger writes, shared with the test.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        lock(&self.0).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&lock(&self.0))
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

fn text(frame: logosnet::protocol::ServerFrame) -> String {
    frame.text().unwrap_or_default().to_owned()
}

#[test]
fn a_reconnecting_logger_survives_a_server_restart_and_says_who_is_back() {
    let mut world = World::timers(19, Duration::from_secs(90));
    world.tcp_capacity = 256;
    let mut run = world.build();
    let log = run.log.clone();
    let (out, remarks) = (Shared::default(), Shared::default());
    let ending: Arc<Mutex<Option<Ending>>> = Arc::default();

    // alice is in the room before the logger, says a line, and loses the
    // room with the server.
    let people_log = log.clone();
    run.sim.client("alice", async move {
        let mut alice = participant("alice", &people_log).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        alice.chat("before").await;
        alice.expect_closed().await;
        Ok(())
    });
    // bob comes as soon as the server is back, and speaks well after the
    // logger can have come back (its waits after a loss add up to at most
    // 31 s).
    let bob_log = log.clone();
    run.sim.client("bob", async move {
        tokio::time::sleep(Duration::from_secs(9)).await;
        let mut bob = loop {
            match connect_with("bob", &bob_log, PieceSize::Any, None).await {
                Ok(client) => break client,
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        };
        bob.join("bob").await;
        tokio::time::sleep(Duration::from_secs(40)).await;
        bob.chat("after").await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        Ok(())
    });
    let config = Config {
        host: SERVER.to_owned(),
        port: PORT,
        role: Role::Observer,
        timestamps: false,
        connect_timeout: Duration::from_secs(10),
        answer_timeout: logosnet::client::ANSWER_TIMEOUT,
        tls: None,
        reconnect: true,
    };
    let (logger_out, logger_remarks, logger_ending) =
        (out.clone(), remarks.clone(), ending.clone());
    run.sim.client("logger", async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let stop = StopAt(Instant::now() + Duration::from_secs(75));
        let ended = log_room(&config, SimDialer, stop, logger_out, logger_remarks, 7).await;
        *lock(&logger_ending) = Some(ended);
        Ok(())
    });

    // The server crashes at 3 s and is restarted at 10 s.
    let (mut crashed, mut bounced) = (false, false);
    let result = loop {
        match run.sim.step() {
            Ok(true) => break Ok(()),
            Err(e) => break Err(e),
            Ok(false) => {}
        }
        let now = run.sim.elapsed();
        if !crashed && now >= Duration::from_secs(3) {
            run.sim.crash(SERVER);
            run.log
                .record("fault", format_args!("crash server at {now:?}"));
            crashed = true;
        }
        if crashed && !bounced && now >= Duration::from_secs(10) {
            run.sim.bounce(SERVER);
            run.log
                .record("fault", format_args!("restart server at {now:?}"));
            bounced = true;
        }
    };
    run.finish(result);

    let lines = out.lines();
    assert_eq!(
        lock(&ending).clone(),
        Some(Ending::Left),
        "a stop request ends it cleanly\n{lines:#?}"
    );
    // Its first line says who was there; then the room as it went.
    assert_eq!(lines[0], "In the room: alice", "{lines:#?}");
    assert_eq!(lines[1], text(public_line("alice", "before")), "{lines:#?}");
    // One line for the loss: the server closed (a crash is an end of
    // stream or a reset, which the client reads alike), at the address
    // the return names too.
    let addr = lines_addr(&lines);
    let lost = lost_line(&Ending::ServerClosed { addr: addr.clone() });
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.ends_with("; reconnecting"))
            .count(),
        1,
        "one line per loss\n{lines:#?}"
    );
    assert_eq!(lines[2], lost, "{lines:#?}");
    let back_at = lines
        .iter()
        .position(|l| l.starts_with("*** Back in the room at "))
        .unwrap_or_else(|| panic!("no line for the return\n{lines:#?}"));
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("*** Back")).count(),
        1,
        "one line per return\n{lines:#?}"
    );
    assert_eq!(back_at, 3, "{lines:#?}");
    assert_eq!(lines[back_at], back_line(&addr));
    // After the return: who is there, then the room again. bob joined the
    // restarted server either before the logger came back (he is in its
    // roster) or after (his join is logged), never both.
    let roster = &lines[back_at + 1];
    let after: Vec<&str> = lines[back_at + 2..].iter().map(String::as_str).collect();
    let (bob_joined, bob_said) = (text(joined("bob")), text(public_line("bob", "after")));
    let bob_left = text(left("bob"));
    let mut owed = vec![bob_said.as_str(), bob_left.as_str()];
    if roster != "In the room: bob" {
        assert_eq!(roster, "Nobody else is in the room", "{lines:#?}");
        owed.insert(0, &bob_joined);
    }
    assert_eq!(after, owed, "{lines:#?}");
    // Its remarks: the banner once, at the start, and nothing about waiting
    // (it was in the room from the start).
    assert_eq!(
        remarks.lines(),
        ["Observing the room until the server closes or Ctrl-C/SIGTERM/SIGHUP"]
    );
}

/// The server's address as the logger names it (the peer address of its
/// connection), taken from its return line.
fn lines_addr(lines: &[String]) -> String {
    lines
        .iter()
        .find_map(|l| l.strip_prefix("*** Back in the room at "))
        .unwrap_or_default()
        .to_owned()
}
