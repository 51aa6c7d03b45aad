//! Measurements: latency histograms and the CPU and memory readings.
//!
//! Latencies are recorded in microseconds into HdrHistograms with three
//! significant digits. Connection tasks do not touch a shared histogram per
//! message: each batches into a fixed [`LatencyBuffer`] and merges it into
//! the shared [`Latencies`] under one lock when it fills.

use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Significant digits of every histogram.
pub const SIGNIFICANT_DIGITS: u8 = 3;

/// Latencies recorded between buffer flushes.
const BUFFER_LEN: usize = 256;

/// Largest latency tracked, µs: one hour. Anything longer is recorded as an
/// hour (and would fail the run long before by timing out).
pub const MAX_TRACKED_US: u64 = 3_600_000_000;

/// A new histogram (µs, 3 significant digits, up to [`MAX_TRACKED_US`]).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_TRACKED_US, SIGNIFICANT_DIGITS)
        .expect("1 µs to an hour at 3 significant digits is a valid histogram")
}

/// A histogram shared by the connection tasks.
#[derive(Debug)]
pub struct Latencies {
    /// Every value merged so far, µs.
    hist: Mutex<Histogram<u64>>,
}

impl Default for Latencies {
    fn default() -> Self {
        Self {
            hist: Mutex::new(new_histogram()),
        }
    }
}

impl Latencies {
    /// Records one value (µs).
    pub fn record(&self, micros: u64) {
        self.lock().saturating_record(micros);
    }

    /// Records a whole buffer and empties it.
    pub fn merge(&self, buffer: &mut LatencyBuffer) {
        if buffer.values.is_empty() {
            return;
        }
        let mut hist = self.lock();
        for &v in &buffer.values {
            hist.saturating_record(v);
        }
        buffer.values.clear();
    }

    /// A copy of the histogram so far.
    pub fn snapshot(&self) -> Histogram<u64> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Histogram<u64>> {
        self.hist.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A connection task's pending latencies: allocated once, reused.
#[derive(Debug)]
pub struct LatencyBuffer {
    /// Values not merged yet, µs (at most [`BUFFER_LEN`]).
    values: Vec<u64>,
}

impl Default for LatencyBuffer {
    fn default() -> Self {
        Self {
            values: Vec::with_capacity(BUFFER_LEN),
        }
    }
}

impl LatencyBuffer {
    /// Adds one value, merging into `into` when the buffer is full.
    pub fn push(&mut self, micros: u64, into: &Latencies) {
        self.values.push(micros);
        if self.values.len() == BUFFER_LEN {
            into.merge(self);
        }
    }
}

/// The usual percentiles of one histogram, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Values recorded.
    pub count: u64,
    /// Arithmetic mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p99_9_us: u64,
    /// Largest value.
    pub max_us: u64,
}

impl Summary {
    /// Summarises a histogram (all zero when empty).
    pub fn of(hist: &Histogram<u64>) -> Self {
        if hist.is_empty() {
            return Self::default();
        }
        Self {
            count: hist.len(),
            mean_us: hist.mean(),
            p50_us: hist.value_at_quantile(0.50),
            p90_us: hist.value_at_quantile(0.90),
            p99_us: hist.value_at_quantile(0.99),
            p99_9_us: hist.value_at_quantile(0.999),
            max_us: hist.max(),
        }
    }
}

/// CPU time a process has used.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuTime {
    /// User-mode time.
    pub user: Duration,
    /// Kernel-mode time.
    pub system: Duration,
}

impl CpuTime {
    /// User plus system.
    pub fn total(&self) -> Duration {
        self.user + self.system
    }

    /// The time used since `earlier`.
    pub fn since(&self, earlier: &CpuTime) -> CpuTime {
        CpuTime {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

/// This process's CPU time so far, all threads, read the way
/// [`process_cpu`] reads the server's (`/proc/self/stat`), so the two
/// figures share their clock-tick resolution and accounting.
pub fn own_cpu() -> Option<CpuTime> {
    read_proc_cpu("self")
}

/// Another process's CPU time from `/proc/<pid>/stat` (fields 14 and 15, in
/// clock ticks: 10 ms at the usual 100 Hz, so 0.1 % of a 10 s run).
pub fn process_cpu(pid: u32) -> Option<CpuTime> {
    read_proc_cpu(&pid.to_string())
}

fn read_proc_cpu(pid: &str) -> Option<CpuTime> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_proc_stat_cpu(&stat, clock_ticks_per_second())
}

fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as u64 } else { 100 }
}

/// Parses utime and stime out of a `/proc/<pid>/stat` line. The command name
/// (field 2) may contain spaces and parentheses, so fields are counted from
/// the last `)`.
fn parse_proc_stat_cpu(stat: &str, ticks_per_second: u64) -> Option<CpuTime> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    // After the name: field 3 is the state; utime is field 14, stime 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = |t: u64| Duration::from_secs_f64(t as f64 / ticks_per_second as f64);
    Some(CpuTime {
        user: ticks(utime),
        system: ticks(stime),
    })
}

/// A memory figure from `/proc/<pid>/status`, in KiB (e.g. `VmHWM`, the peak
/// resident set size, or `VmRSS`).
pub fn process_memory_kib(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kib(&status, field)
}

fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(field)?.strip_prefix(':')?;
        value.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_cpu_skips_a_name_with_spaces() {
        let line = "1234 (my (odd) name) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0";
        let cpu = parse_proc_stat_cpu(line, 100).unwrap();
        assert_eq!(cpu.user, Duration::from_millis(2500));
        assert_eq!(cpu.system, Duration::from_millis(500));
    }

    #[test]
    fn status_field_in_kib() {
        let status = "Name:\tx\nVmHWM:\t   12345 kB\nVmRSS:\t  100 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM"), Some(12345));
        assert_eq!(parse_status_kib(status, "VmRSS"), Some(100));
        assert_eq!(parse_status_kib(status, "VmSwap"), None);
    }

    #[test]
    fn own_process_readings_work() {
        let pid = std::process::id();
        assert!(process_cpu(pid).is_some());
        assert!(own_cpu().is_some());
        assert!(process_memory_kib("self", "VmHWM").unwrap() > 0);
    }

    #[test]
    fn buffer_merges_when_full_and_summary_reads_it() {
        let shared = Latencies::default();
        let mut buffer = LatencyBuffer::default();
        for v in 1..=1000 {
            buffer.push(v, &shared);
        }
        assert_eq!(shared.snapshot().len(), 768);
        shared.merge(&mut buffer);
        let summary = Summary::of(&shared.snapshot());
        assert_eq!(summary.count, 1000);
        assert_eq!(summary.p50_us, 500);
        assert_eq!(summary.max_us, 1000);
    }
}
