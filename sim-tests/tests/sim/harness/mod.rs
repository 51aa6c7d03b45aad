//! The simulation harness: builds a turmoil [`Sim`] that runs the real
//! `logosnet::server::serve` on a host named [`SERVER`], and runs scenarios
//! against it with [`SimClient`]s (`testkit`'s peer on turmoil's TCP).
//! [`World::run_script`] is the usual scenario: one client host, run to
//! the end.

pub mod client;
pub mod listener;
pub mod log;
pub mod rng;
pub mod room_record;
pub mod tls;

use std::cell::Cell;
use std::future::Future;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use logosnet::server::{RateLimit, ServerConfig, serve};
use turmoil::{Builder, Sim};

pub use client::{
    Got, SimClient, connect, connect_paced, connect_quiet, connect_with, observer, participant,
};
pub use listener::{PieceSize, PieceStats, SimListener};
pub use log::EventLog;

/// The server host's name.
pub const SERVER: &str = "server";
/// The port the simulated server listens on.
pub const PORT: u16 = 8021;

/// Everything a scenario may vary about the world it runs in.
#[derive(Debug, Clone)]
pub struct World {
    /// turmoil's seed.
    pub seed: u64,
    /// Simulated time per step.
    pub tick: Duration,
    /// Simulated time after which the run fails.
    pub duration: Duration,
    /// Segments per connection: turmoil's accept backlog and flow window.
    pub tcp_capacity: usize,
    /// Fixed one-way latency of every message.
    pub latency: Duration,
    /// The server's limits.
    pub config: ServerConfig,
    /// Read and write piece sizes of every server connection.
    pub pieces: PieceSize,
}

impl World {
    /// A world with 1 ms ticks, a fixed 1 ms latency, 60 s of time and the
    /// server's default limits, but for the per-address limit and the
    /// connection rate: they are off, because scenarios put their crowds on
    /// one simulated host (hosts cost quadratically; see the README), where
    /// the real server would count them as one source. `admission.rs`
    /// turns them on where they are the subject.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            tick: Duration::from_millis(1),
            duration: Duration::from_secs(60),
            tcp_capacity: 64,
            latency: Duration::from_millis(1),
            config: ServerConfig {
                max_per_address: 0,
                connect_rate: RateLimit {
                    burst: 0,
                    ..RateLimit::DEFAULT
                },
                ..ServerConfig::default()
            },
            pieces: PieceSize::Any,
        }
    }

    /// A world for timer scenarios: 10 ms ticks and latency, `duration` of
    /// simulated time.
    pub fn timers(seed: u64, duration: Duration) -> Self {
        Self {
            tick: Duration::from_millis(10),
            latency: Duration::from_millis(10),
            duration,
            ..Self::new(seed)
        }
    }

    /// Builds the simulation with the server host running.
    pub fn build<'a>(&self) -> Running<'a> {
        self.build_serving(|host| async move {
            host.log.record(SERVER, format_args!("starting"));
            let listener = host.listen(PORT, 0).await?;
            serve(listener, host.config, std::future::pending()).await;
            Ok(())
        })
    }

    /// Builds the world and runs `script` (given the run's event log) as
    /// the one client host, `"clients"`, until it is done; panics with the
    /// log's tail if it failed, the time ran out or the server panicked.
    /// Returns the sizes of the pieces the server's connections read and
    /// wrote.
    pub fn run_script<F, Fut>(&self, script: F) -> PieceStats
    where
        F: FnOnce(EventLog) -> Fut,
        Fut: Future<Output = turmoil::Result> + 'static,
    {
        let mut run = self.build();
        run.sim.client("clients", script(run.log.clone()));
        let stats = run.stats.clone();
        run.run();
        lock(&stats).clone()
    }

    /// Builds the simulation with the server host running `server`, which
    /// is called again each time the host restarts.
    pub fn build_serving<'a, F, Fut>(&self, server: F) -> Running<'a>
    where
        F: Fn(ServerHost) -> Fut + 'a,
        Fut: Future<Output = turmoil::Result> + 'static,
    {
        install_panic_counter();
        let mut sim = Builder::new()
            .rng_seed(self.seed)
            .tick_duration(self.tick)
            .simulation_duration(self.duration)
            .tcp_capacity(self.tcp_capacity)
            .min_message_latency(self.latency)
            .max_message_latency(self.latency)
            .build();
        let log = EventLog::new();
        let stats = Arc::new(Mutex::new(PieceStats::default()));
        let host = ServerHost {
            config: self.config.clone(),
            pieces: self.pieces,
            seed: self.seed,
            stats: stats.clone(),
            log: log.clone(),
        };
        sim.host(SERVER, move || server(host.clone()));
        Running { sim, log, stats }
    }
}

/// What the server host starts with: the world's server settings and where
/// it records.
#[derive(Clone)]
pub struct ServerHost {
    /// The server's limits.
    pub config: ServerConfig,
    /// Read and write piece sizes of every server connection.
    pub pieces: PieceSize,
    /// The world's seed.
    pub seed: u64,
    /// Shared with [`Running::stats`].
    pub stats: Arc<Mutex<PieceStats>>,
    /// The run's event log.
    pub log: EventLog,
}

impl ServerHost {
    /// A capped listener on `port`; its piece sizes are seeded from the
    /// world's seed and `salt` (0 for the first listener).
    pub async fn listen(&self, port: u16, salt: u64) -> std::io::Result<SimListener> {
        let (stats, log) = (self.stats.clone(), self.log.clone());
        SimListener::bind(port, self.pieces, self.seed ^ salt, stats, log).await
    }
}

/// A built simulation, its event log and the server's piece statistics.
pub struct Running<'a> {
    /// The turmoil simulation.
    pub sim: Sim<'a>,
    /// The run's event log.
    pub log: EventLog,
    /// Sizes of the pieces the server's connections read and wrote.
    pub stats: Arc<Mutex<PieceStats>>,
}

impl Running<'_> {
    /// Runs until every client host is done; panics with the log's tail if
    /// a client failed, the time ran out or the server panicked. Returns the
    /// event log's hash.
    pub fn run(mut self) -> u64 {
        let result = self.sim.run();
        self.finish(result)
    }

    /// Checks the outcome of a run driven by hand.
    pub fn finish(&self, result: turmoil::Result) -> u64 {
        if let Err(e) = result {
            panic!(
                "simulation failed: {e}\n--- last events ---\n{}",
                self.log.tail(40)
            );
        }
        assert_eq!(
            panics_on_this_thread(),
            0,
            "a task panicked inside the simulation (see the panic message above)"
        );
        let hash = self.log.hash();
        println!("trace hash {hash:016x} ({} events)", self.log.len());
        hash
    }
}

thread_local! {
    static PANICS: Cell<usize> = const { Cell::new(0) };
}

/// Counts panics per thread, so a panic in a server task (which tokio
/// catches and turmoil never sees) still fails the test that ran it.
fn install_panic_counter() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.with(|p| p.set(p.get() + 1));
            previous(info);
        }));
    });
    PANICS.with(|p| p.set(0));
}

fn panics_on_this_thread() -> usize {
    PANICS.with(Cell::get)
}

/// Locks `m`, carrying on past a panic elsewhere (the panic itself fails
/// the simulation).
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
