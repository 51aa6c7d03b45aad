//! The metrics endpoint from a test's side: serve a server's [`Metrics`]
//! on `127.0.0.1:0` as the binary's `--metrics` does, fetch `/metrics`
//! over HTTP, and read the answer with a Prometheus text-format parser
//! (the `prometheus-parse` crate, not a pattern of ours), so a test reads
//! what Prometheus would.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use logosnet::server::Metrics;
use logosnet::server::metrics::{METRICS_PATH, serve_metrics};
use prometheus_parse::{Scrape, Value};
use tokio::net::{TcpListener, TcpStream};

use crate::PATIENCE;

/// Serves `metrics` on `127.0.0.1` and a free port for as long as the
/// runtime runs; returns the address.
pub async fn serve_metrics_on_loopback(metrics: Arc<Metrics>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("the listener's address");
    tokio::spawn(serve_metrics(listener, metrics, std::future::pending()));
    addr
}

/// One `GET /metrics` from `addr`: the status and the body.
pub async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let stream = TcpStream::connect(addr).await.expect("connect to metrics");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP handshake");
    tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .expect("a request");
    let response = tokio::time::timeout(PATIENCE, sender.send_request(request))
        .await
        .expect("an answer in time")
        .expect("an answer");
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("the body")
        .to_bytes();
    (status, String::from_utf8(body.to_vec()).expect("UTF-8"))
}

/// A scrape of `addr`'s `/metrics`, parsed.
pub async fn scrape(addr: SocketAddr) -> Figures {
    let (status, body) = get(addr, METRICS_PATH).await;
    assert_eq!(status, 200, "{body}");
    Figures::parse(&body)
}

/// A parsed scrape.
#[derive(Debug)]
pub struct Figures {
    /// What the parser read.
    pub scrape: Scrape,
    /// The text it read.
    pub text: String,
}

impl Figures {
    /// Parses the text exposition `text`.
    pub fn parse(text: &str) -> Self {
        let lines = text.lines().map(|line| Ok(line.to_owned()));
        let scrape = Scrape::parse(lines).expect("a Prometheus text exposition");
        Self {
            scrape,
            text: text.to_owned(),
        }
    }

    /// The value of the one sample `name` whose labels include `labels`;
    /// panics if there is none or more than one.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let matching: Vec<f64> = self
            .scrape
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .filter_map(|s| match s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(v),
                _ => None,
            })
            .collect();
        match matching.as_slice() {
            [one] => *one,
            _ => panic!(
                "{} samples {name}{labels:?} in the scrape:\n{}",
                matching.len(),
                self.text
            ),
        }
    }

    /// [`Figures::value`] as a whole number, for a count.
    pub fn count(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let v = self.value(name, labels);
        assert!(v >= 0.0 && v.fract() == 0.0, "{name}{labels:?} = {v}");
        v as u64
    }
}
