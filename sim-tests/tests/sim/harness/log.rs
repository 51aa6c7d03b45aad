//! The simulation's event log: every frame a simulated client sends or
//! receives, every accept and every fault, stamped with simulated time. Its
//! FNV-1a hash is the run's fingerprint: the same seed must give the same
//! hash (the determinism test), and a failing seed prints it for replay.

use std::fmt;
use std::sync::{Arc, Mutex};

/// A shared, append-only event log. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct EventLog {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    hash: u64,
    lines: Vec<String>,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            hash: FNV_OFFSET,
            lines: Vec::new(),
        }
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

impl EventLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `who: what`, stamped with the simulated time if called from
    /// inside the simulation.
    pub fn record(&self, who: &str, what: fmt::Arguments<'_>) {
        let at = turmoil::sim_elapsed().unwrap_or_default();
        let line = format!("{:>9.3} {who}: {what}", at.as_secs_f64());
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for byte in line.bytes().chain([b'\n']) {
            inner.hash = (inner.hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME);
        }
        inner.lines.push(line);
    }

    /// The hash of everything recorded so far.
    pub fn hash(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).hash
    }

    /// Number of events recorded.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .lines
            .len()
    }

    /// The last `n` events, for failure messages.
    pub fn tail(&self, n: usize) -> String {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let start = inner.lines.len().saturating_sub(n);
        inner.lines[start..].join("\n")
    }
}
