//! `/metrics` over HTTP/1.1 on a listener of its own (never a chat port),
//! with hyper's server: one path, `GET` (or `HEAD`) only; anything else is
//! `404` or `405`.
//!
//! Bounded like everything else the server serves: at most
//! [`MAX_SCRAPE_CONNECTIONS`] connections at once (past it a new one is
//! closed at once), each for at most [`SCRAPE_CONNECTION_LIFETIME`]
//! (a scraper keeping its connection alive opens a new one then), request
//! headers within [`SCRAPE_HEADER_TIMEOUT`] and [`SCRAPE_BUFFER_BYTES`].
//! A scrape formats the [`Metrics`] then and there; it reads atomics and
//! `/proc`, and takes no lock the room's tasks take. Run it on a runtime
//! the room does not use and a scrape costs the room nothing at all (the
//! binary does).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::Metrics;

/// The path the figures are served at.
pub const METRICS_PATH: &str = "/metrics";

/// Scrape connections open at once: a Prometheus server or two, and an
/// operator's `curl`, with room to spare; past it a connection is closed as
/// soon as it is accepted, so a flood of them costs descriptors only up to
/// this.
pub const MAX_SCRAPE_CONNECTIONS: usize = 8;

/// How long one scrape connection may stay open, kept alive or not: a
/// minute, four of Prometheus' default 15 s scrape intervals.
pub const SCRAPE_CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

/// How long a request's headers may take to arrive.
const SCRAPE_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The most a connection's read buffer may hold: a scrape request is a few
/// hundred bytes.
const SCRAPE_BUFFER_BYTES: usize = 16 * 1024;

/// Serves `metrics` on `listener` until `shutdown` resolves.
pub async fn serve_metrics<F>(listener: TcpListener, metrics: Arc<Metrics>, shutdown: F)
where
    F: Future<Output = ()>,
{
    let slots = Arc::new(Semaphore::new(MAX_SCRAPE_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "metrics: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "metrics: too many scrape connections; closed");
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let answer = answer(&metrics, &request);
                async move { Ok::<_, Infallible>(answer) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(SCRAPE_HEADER_TIMEOUT)
                .max_buf_size(SCRAPE_BUFFER_BYTES)
                .serve_connection(TokioIo::new(stream), service);
            // Past its lifetime the connection is simply dropped (closed).
            let served = tokio::time::timeout(SCRAPE_CONNECTION_LIFETIME, connection).await;
            if let Ok(Err(e)) = served {
                tracing::debug!(%peer, error = %e, "metrics: connection failed");
            }
            drop(slot);
        });
    }
}

/// The answer to one request.
fn answer(metrics: &Metrics, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let plain = |status: StatusCode, text: &'static str| {
        let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
        *response.status_mut() = status;
        response
    };
    if request.uri().path() != METRICS_PATH {
        return plain(
            StatusCode::NOT_FOUND,
            "not found: the figures are at /metrics\n",
        );
    }
    let head = match *request.method() {
        Method::GET => false,
        Method::HEAD => true,
        _ => {
            let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
            response
                .headers_mut()
                .insert(ALLOW, hyper::header::HeaderValue::from_static("GET, HEAD"));
            return response;
        }
    };
    let body = if head {
        Bytes::new()
    } else {
        Bytes::from(metrics.encode())
    };
    let mut response = Response::new(Full::new(body));
    response.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(super::CONTENT_TYPE),
    );
    response
}
