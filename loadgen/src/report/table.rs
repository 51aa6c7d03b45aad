//! The human-readable table loadgen prints on stdout after a run whose
//! traffic ran (a run stopped before it prints only its one line).

use std::fmt::Write as _;

use super::{ProcessReport, Report, ServerMetricsReport};

/// Width of the label column.
const LABEL_COLUMNS: usize = 31;

impl Report {
    /// The table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let c = &self.config;
        let r = &self.room;
        let t = &self.traffic;
        let d = &self.deliveries;
        let row = |out: &mut String, label: &str, value: String| {
            let _ = writeln!(out, "  {label:<LABEL_COLUMNS$} {value}");
        };
        let _ = writeln!(
            out,
            "loadgen report: {} participants + {} observers at {} msgs/s for {} s, {} chars, {:.0}% private, server {}{}",
            c.participants,
            c.observers,
            c.rate,
            c.duration_s,
            c.size,
            c.private_fraction * 100.0,
            c.server,
            if c.tls { " over TLS" } else { "" }
        );
        row(
            &mut out,
            "connections",
            format!(
                "{} participants + {} observers",
                r.participants_joined, r.observers_joined
            ),
        );
        row(
            &mut out,
            "room join time",
            format!("{:.3} s", r.join_time_s),
        );
        row(
            &mut out,
            "capacity probe (256th)",
            format!(
                "participant: {}, observer: {}",
                r.probe_participant, r.probe_observer
            ),
        );
        row(
            &mut out,
            "messages sent",
            format!(
                "{} ({} public, {} private) in {:.3} s = {:.1}/s",
                t.messages_sent, t.public_sent, t.private_sent, t.traffic_s, t.send_rate
            ),
        );
        row(
            &mut out,
            "deliveries",
            format!(
                "{} of {} expected in {:.3} s = {:.0}/s",
                d.delivered, d.expected, t.traffic_and_drain_s, d.per_second
            ),
        );
        row(
            &mut out,
            "lost / dup / out of order",
            format!(
                "{} / {} / {} (misdelivered {})",
                d.lost, d.duplicated, d.out_of_order, d.misdelivered
            ),
        );
        let _ = writeln!(
            out,
            "  {:<LABEL_COLUMNS$} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "latency (ms)", "count", "p50", "p90", "p99", "p99.9", "max"
        );
        let l = &self.latency;
        for (name, s) in [
            ("delivery (scheduled→received)", &l.delivery),
            ("send lag (scheduled→sent)", &l.send_lag),
            ("runtime delay (ready→run)", &l.runtime_delay),
            ("connect (connect→Accepted)", &l.connect),
            ("join (Hello→UsernameAccepted)", &l.join),
        ] {
            let ms = |us: u64| us as f64 / 1000.0;
            let _ = writeln!(
                out,
                "  {name:<LABEL_COLUMNS$} {:>9} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                s.count,
                ms(s.p50_us),
                ms(s.p90_us),
                ms(s.p99_us),
                ms(s.p99_9_us),
                ms(s.max_us)
            );
        }
        row(&mut out, "loadgen CPU", cost(&self.loadgen));
        if let Some(s) = &self.server {
            row(&mut out, "server CPU", cost(s));
        }
        if let Some(m) = &self.server_metrics {
            row(&mut out, "server metrics", server_metrics(m));
        }
        row(&mut out, "CPU per delivery", per_delivery(self));
        for w in &self.warnings {
            row(&mut out, "warning", w.clone());
        }
        if self.passed {
            let _ = writeln!(out, "  result: PASS");
        } else {
            let _ = writeln!(out, "  result: FAIL");
            for f in &self.failures {
                let _ = writeln!(out, "    - {f}");
            }
        }
        out
    }
}

fn cost(p: &ProcessReport) -> String {
    format!(
        "pid {}: {:.2} s in traffic+drain ({:.0}% of a core), {:.2} s in all, peak RSS {}",
        p.pid,
        p.cpu_traffic_s,
        p.cpu_traffic_cores * 100.0,
        p.cpu_total_s,
        kib(p.peak_rss_kib)
    )
}

fn per_delivery(report: &Report) -> String {
    let ns = |v: Option<f64>| v.map_or_else(|| "n/a".to_owned(), |ns| format!("{ns:.0} ns"));
    let own = report.loadgen.cpu_per_delivery_ns;
    let from_metrics = report
        .server_metrics
        .as_ref()
        .and_then(|m| m.cpu_per_delivery_ns);
    let theirs = report
        .server
        .as_ref()
        .map(|s| s.cpu_per_delivery_ns)
        .or(from_metrics.map(Some));
    match theirs {
        None => format!(
            "loadgen {} (server: pass --server-pid or --metrics-url)",
            ns(own)
        ),
        Some(theirs) => {
            let ratio = own
                .zip(theirs)
                .filter(|(_, s)| *s > 0.0)
                .map_or_else(String::new, |(o, s)| {
                    format!(", loadgen/server {:.2}", o / s)
                });
            format!("loadgen {}, server {}{ratio}", ns(own), ns(theirs))
        }
    }
}

fn server_metrics(m: &ServerMetricsReport) -> String {
    if let Some(e) = &m.error {
        return format!("unavailable: {e}");
    }
    let n = |v: Option<u64>| v.map_or_else(|| "n/a".to_owned(), |v| v.to_string());
    let cpu = m
        .cpu_per_delivery_ns
        .map_or_else(|| "n/a".to_owned(), |ns| format!("{ns:.0} ns"));
    format!(
        "{} deliveries, {} drops, {} refusals; CPU per delivery {cpu}",
        n(m.deliveries),
        n(m.drops),
        n(m.refusals)
    )
}

fn kib(value: Option<u64>) -> String {
    value.map_or_else(
        || "n/a".to_owned(),
        |k| format!("{:.1} MiB", k as f64 / 1024.0),
    )
}
