//! The scrape's shape (every family, one sample per label) and where each
//! count added where it happens lands.

use super::*;

/// The names a scrape carries, as a parser reads them back.
fn sample_names(text: &str) -> Vec<String> {
    let lines = text.lines().map(|line| Ok(line.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("a text exposition");
    scrape.samples.into_iter().map(|s| s.metric).collect()
}

#[test]
fn a_fresh_scrape_lists_every_figure_at_zero() {
    let metrics = Metrics::new();
    assert_eq!(metrics.snapshot(), Snapshot::default());
    let text = metrics.encode();
    let names = sample_names(&text);
    for name in [
        "logosnet_build_info",
        "logosnet_connections",
        "logosnet_queued_bytes",
        "logosnet_queued_bytes_budget",
        "logosnet_room_paused",
        "logosnet_room_pauses_total",
        "logosnet_room_paused_seconds_total",
        "logosnet_lines_total",
        "logosnet_deliveries_total",
        "logosnet_written_bytes_total",
        "logosnet_warnings_total",
        "logosnet_flood_delayed_lines_total",
        "logosnet_connections_accepted_total",
        "logosnet_refusals_total",
        "logosnet_drops_total",
        "logosnet_tls_handshakes_total",
        "logosnet_certificate_reloads_total",
    ] {
        assert!(names.iter().any(|n| n == name), "{name} missing:\n{text}");
    }
    // One sample per state and per reason.
    let count = |name: &str| names.iter().filter(|n| *n == name).count();
    assert_eq!(count("logosnet_connections"), 4);
    assert_eq!(count("logosnet_refusals_total"), Refusal::ALL.len());
    assert_eq!(count("logosnet_drops_total"), Dropped::ALL.len());
}

#[test]
fn every_reason_has_its_own_label() {
    let refusals: std::collections::BTreeSet<_> = Refusal::ALL.iter().map(|r| r.label()).collect();
    assert_eq!(refusals.len(), Refusal::ALL.len());
    let drops: std::collections::BTreeSet<_> = Dropped::ALL.iter().map(|d| d.label()).collect();
    assert_eq!(drops.len(), Dropped::ALL.len());
}

#[test]
fn counts_added_where_they_happen_land_in_their_own_place() {
    let metrics = Metrics::new();
    metrics.refused_at_accept(Refusal::Rate);
    metrics.refused_at_accept(Refusal::PerAddress);
    metrics.refused_at_accept(Refusal::PerAddress);
    metrics.refused_at_accept(Refusal::Busy);
    metrics.dropped(DropReason::Lagging {
        lag: Duration::from_secs(11),
    });
    metrics.handshake(true);
    metrics.handshake(false);
    metrics.handshake(false);
    metrics.accepted();
    let s = metrics.snapshot();
    assert_eq!(s.refused(Refusal::Rate), 1);
    assert_eq!(s.refused(Refusal::PerAddress), 2);
    assert_eq!(s.refused(Refusal::Busy), 1);
    assert_eq!(s.refused(Refusal::Full), 0);
    assert_eq!(s.dropped(Dropped::TooFarBehind), 1);
    assert_eq!(s.dropped(Dropped::BudgetShed), 0);
    assert_eq!((s.tls_handshakes_ok, s.tls_handshakes_failed), (1, 2));
    assert_eq!(s.accepted, 1);
}
