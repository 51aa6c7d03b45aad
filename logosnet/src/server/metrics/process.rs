//! The process's own figures, named as Prometheus' own clients name them
//! (the Go client's `process` collector): CPU seconds, resident and
//! virtual memory, open and allowed descriptors, start time. Read from
//! `/proc/self` at each scrape, on Linux; elsewhere none is exported.
//!
//! `/proc/self/stat` is split after the last `)`, since the command name
//! before it may hold spaces and parentheses.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::{counter, gauge};

/// See the module docs.
#[derive(Debug)]
pub(super) struct ProcessCollector;

/// What one scrape read; `None` for what could not be read.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct ProcessFigures {
    pub(super) cpu_seconds: Option<f64>,
    pub(super) resident_bytes: Option<u64>,
    pub(super) virtual_bytes: Option<u64>,
    pub(super) open_fds: Option<u64>,
    pub(super) max_fds: Option<u64>,
    pub(super) start_time_seconds: Option<f64>,
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let f = read();
        let e = &mut encoder;
        if let Some(v) = f.cpu_seconds {
            counter(
                e,
                (
                    "process_cpu_seconds",
                    "Total user and system CPU time spent in seconds.",
                    v,
                ),
            )?;
        }
        if let Some(v) = f.resident_bytes {
            gauge(
                e,
                (
                    "process_resident_memory_bytes",
                    "Resident memory size in bytes.",
                    v,
                ),
            )?;
        }
        if let Some(v) = f.virtual_bytes {
            gauge(
                e,
                (
                    "process_virtual_memory_bytes",
                    "Virtual memory size in bytes.",
                    v,
                ),
            )?;
        }
        if let Some(v) = f.open_fds {
            gauge(
                e,
                ("process_open_fds", "Number of open file descriptors.", v),
            )?;
        }
        if let Some(v) = f.max_fds {
            gauge(
                e,
                (
                    "process_max_fds",
                    "Maximum number of open file descriptors.",
                    v,
                ),
            )?;
        }
        if let Some(v) = f.start_time_seconds {
            gauge(
                e,
                (
                    "process_start_time_seconds",
                    "Start time of the process since unix epoch in seconds.",
                    v,
                ),
            )?;
        }
        Ok(())
    }
}

/// Reads the figures now.
#[cfg(target_os = "linux")]
pub(super) fn read() -> ProcessFigures {
    let stat = std::fs::read_to_string("/proc/self/stat").ok();
    let boot = std::fs::read_to_string("/proc/stat").ok();
    // SAFETY: sysconf reads a system constant; it has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    // SAFETY: as above.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let mut figures = stat
        .as_deref()
        .and_then(|stat| parse_stat(stat, ticks, page, boot.as_deref().and_then(boot_time)))
        .unwrap_or_default();
    figures.open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|dir| dir.count() as u64);
    figures.max_fds = rlimit::getrlimit(rlimit::Resource::NOFILE)
        .ok()
        .map(|(soft, _hard)| soft);
    figures
}

/// Reads nothing: the figures come from Linux's `/proc`.
#[cfg(not(target_os = "linux"))]
pub(super) fn read() -> ProcessFigures {
    ProcessFigures::default()
}

/// The figures in `/proc/self/stat`: `ticks` is the clock's ticks a
/// second, `page` the page size, `boot` the boot time (seconds since the
/// epoch) that the start time counts from.
pub(super) fn parse_stat(
    stat: &str,
    ticks: i64,
    page: i64,
    boot: Option<u64>,
) -> Option<ProcessFigures> {
    let (_, rest) = stat.rsplit_once(')')?;
    // Fields from the third (`state`) on: field N is `fields[N - 3]`.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    let ticks = u64::try_from(ticks).ok().filter(|&t| t > 0)?;
    let page = u64::try_from(page).ok().filter(|&p| p > 0)?;
    let cpu = field(14)
        .zip(field(15))
        .map(|(user, system)| (user + system) as f64 / ticks as f64);
    Some(ProcessFigures {
        cpu_seconds: cpu,
        resident_bytes: field(24).map(|pages| pages.saturating_mul(page)),
        virtual_bytes: field(23),
        open_fds: None,
        max_fds: None,
        start_time_seconds: field(22)
            .zip(boot)
            .map(|(start, boot)| boot as f64 + start as f64 / ticks as f64),
    })
}

/// The `btime` line of `/proc/stat`: when the machine booted.
pub(super) fn boot_time(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|t| t.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_is_read_after_the_command_name_whatever_it_holds() {
        // A command name with spaces and a parenthesis, then fields 3 on:
        // utime 250 and stime 150 ticks, starttime 1000 ticks, vsize
        // 8192000, rss 300 pages.
        let mut fields: Vec<String> = (3..=52).map(|n| n.to_string()).collect();
        let mut set = |n: usize, v: &str| fields[n - 3] = v.to_owned();
        set(14, "250");
        set(15, "150");
        set(22, "1000");
        set(23, "8192000");
        set(24, "300");
        let stat = format!("4242 (a (weird) name) {}\n", fields.join(" "));
        let figures = parse_stat(&stat, 100, 4096, Some(1_700_000_000)).expect("parses");
        assert_eq!(figures.cpu_seconds, Some(4.0));
        assert_eq!(figures.resident_bytes, Some(300 * 4096));
        assert_eq!(figures.virtual_bytes, Some(8_192_000));
        assert_eq!(figures.start_time_seconds, Some(1_700_000_010.0));
        assert_eq!(parse_stat("no parenthesis", 100, 4096, None), None);
        assert_eq!(
            boot_time("cpu 1 2 3\nbtime 1700000000\n"),
            Some(1_700_000_000)
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_figures() {
        let figures = read();
        assert!(figures.cpu_seconds.is_some_and(|s| s >= 0.0));
        assert!(figures.resident_bytes.is_some_and(|b| b > 0));
        assert!(
            figures.open_fds.is_some_and(|n| n >= 3),
            "stdin, stdout, stderr"
        );
        assert!(
            figures
                .max_fds
                .is_some_and(|n| n >= figures.open_fds.unwrap_or(0))
        );
        assert!(
            figures
                .start_time_seconds
                .is_some_and(|t| t > 1_500_000_000.0)
        );
    }
}
