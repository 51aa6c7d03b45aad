//! The server's own figures, from its Prometheus endpoint (`--metrics-url`,
//! the server's `--metrics`): one `GET` with hyper's HTTP/1.1 client, the
//! answer read by a Prometheus text-format parser (`prometheus-parse`), and
//! the difference between two scrapes. Works from any machine that can
//! reach the endpoint, where `--server-pid` needs the server's.
//!
//! What is read, by LogosNet's metric names: deliveries
//! (`logosnet_deliveries_total`), drops and refusals summed over their
//! reasons (`logosnet_drops_total`, `logosnet_refusals_total`), and the
//! process's CPU seconds (`process_cpu_seconds_total`). A server of the
//! protocol that exports none of them reads as zeros and no CPU.

use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Uri;
use hyper_util::rt::TokioIo;
use prometheus_parse::{Scrape, Value};
use tokio::net::TcpStream;

/// How long one scrape may take, connect to last byte.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

/// The most of a scrape that is read: a LogosNet scrape is a few KiB.
const MAX_SCRAPE_BYTES: usize = 4 << 20;

/// The figures of one scrape.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ServerFigures {
    /// Chat lines queued for a recipient.
    pub deliveries: u64,
    /// Connections the server closed on them, every reason.
    pub drops: u64,
    /// Connections or names refused, every reason.
    pub refusals: u64,
    /// The server process's CPU seconds, if it says.
    pub cpu_seconds: Option<f64>,
}

impl ServerFigures {
    /// What a scrape's text says.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let scrape = Scrape::parse(text.lines().map(|line| Ok(line.to_owned())))
            .context("not a Prometheus text exposition")?;
        let sum = |name: &str| -> f64 {
            scrape
                .samples
                .iter()
                .filter(|s| s.metric == name)
                .filter_map(|s| match s.value {
                    Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(v),
                    _ => None,
                })
                .sum()
        };
        let has = |name: &str| scrape.samples.iter().any(|s| s.metric == name);
        Ok(Self {
            deliveries: sum("logosnet_deliveries_total") as u64,
            drops: sum("logosnet_drops_total") as u64,
            refusals: sum("logosnet_refusals_total") as u64,
            cpu_seconds: has("process_cpu_seconds_total").then(|| sum("process_cpu_seconds_total")),
        })
    }

    /// What happened between `before` and `self` (counters only grow; a
    /// restarted server's smaller count reads as zero).
    pub fn since(&self, before: &Self) -> Self {
        Self {
            deliveries: self.deliveries.saturating_sub(before.deliveries),
            drops: self.drops.saturating_sub(before.drops),
            refusals: self.refusals.saturating_sub(before.refusals),
            cpu_seconds: self
                .cpu_seconds
                .zip(before.cpu_seconds)
                .map(|(after, before)| (after - before).max(0.0)),
        }
    }
}

/// Checks that `url` is one loadgen can scrape: `http://HOST:PORT/PATH`.
pub fn check_url(url: &str) -> anyhow::Result<Uri> {
    let uri: Uri = url
        .parse()
        .with_context(|| format!("--metrics-url {url}: not a URL"))?;
    if uri.scheme_str() != Some("http") {
        bail!("--metrics-url {url}: only http:// is supported");
    }
    if uri.authority().is_none() {
        bail!("--metrics-url {url}: no host");
    }
    Ok(uri)
}

/// Scrapes `url` once, within [`SCRAPE_TIMEOUT`].
pub async fn scrape(url: &str) -> anyhow::Result<ServerFigures> {
    let uri = check_url(url)?;
    let text = tokio::time::timeout(SCRAPE_TIMEOUT, fetch(&uri))
        .await
        .with_context(|| format!("{url}: no answer within {SCRAPE_TIMEOUT:?}"))??;
    ServerFigures::parse(&text).with_context(|| format!("{url}: unreadable"))
}

async fn fetch(uri: &Uri) -> anyhow::Result<String> {
    let authority = uri.authority().context("no host")?;
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(80);
    let stream = TcpStream::connect((host, port))
        .await
        .with_context(|| format!("cannot connect to {authority}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP handshake")?;
    tokio::spawn(connection);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, authority.as_str())
        .body(Empty::<Bytes>::new())
        .context("a request")?;
    let response = sender.send_request(request).await.context("the request")?;
    if !response.status().is_success() {
        bail!("HTTP {}", response.status());
    }
    let body = http_body_util::Limited::new(response.into_body(), MAX_SCRAPE_BYTES)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("the body: {e}"))?
        .to_bytes();
    String::from_utf8(body.to_vec()).context("not UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRAPE: &str = "\
# HELP logosnet_deliveries Chat lines queued for a recipient.
# TYPE logosnet_deliveries counter
logosnet_deliveries_total 120
# TYPE logosnet_drops counter
logosnet_drops_total{reason=\"too_far_behind\"} 2
logosnet_drops_total{reason=\"violation\"} 1
# TYPE logosnet_refusals counter
logosnet_refusals_total{reason=\"full\"} 4
# TYPE process_cpu_seconds counter
process_cpu_seconds_total 1.5
";

    #[test]
    fn reads_the_figures_and_their_difference() {
        let after = ServerFigures::parse(SCRAPE).expect("parses");
        assert_eq!(
            after,
            ServerFigures {
                deliveries: 120,
                drops: 3,
                refusals: 4,
                cpu_seconds: Some(1.5),
            }
        );
        let before = ServerFigures {
            deliveries: 20,
            drops: 1,
            refusals: 4,
            cpu_seconds: Some(0.5),
        };
        let delta = after.since(&before);
        assert_eq!((delta.deliveries, delta.drops, delta.refusals), (100, 2, 0));
        assert_eq!(delta.cpu_seconds, Some(1.0));
        // Another server's scrape: zeros, no CPU.
        let other = ServerFigures::parse("some_metric 1\n").expect("parses");
        assert_eq!(other, ServerFigures::default());
    }

    #[test]
    fn only_http_urls_with_a_host() {
        assert!(check_url("http://127.0.0.1:9021/metrics").is_ok());
        assert!(check_url("https://127.0.0.1:9021/metrics").is_err());
        assert!(check_url("127.0.0.1:9021").is_err());
        assert!(check_url("/metrics").is_err());
    }
}
