//! loadgen: fills a LogosNet room over TCP or TLS, drives open-loop chat
//! traffic, checks every delivery and reports capacity and latency (issue 5;
//! TLS, issue 13).
//!
//! It speaks wire protocol v1 only through the library's single definitions
//! — [`logosnet::protocol`] (the limits, the marks, the texts and their
//! parsers), [`logosnet::codec`] (frames to bytes and back) and
//! [`logosnet::connection`] (the read size, read errors and the frame
//! writer) — so it runs unchanged against any server of that protocol.
//! Layout, one concern per module:
//! - [`config`]: the command line and its defaults;
//! - [`message`]: the chat lines it sends and parses back (sans-IO);
//! - [`check`]: what was sent against what arrived (sans-IO);
//! - [`schedule`]: the open-loop send schedule and message destinations (sans-IO);
//! - [`stats`]: latency histograms and CPU/memory readings;
//! - [`server_metrics`]: the server's own figures from its Prometheus
//!   endpoint (`--metrics-url`);
//! - [`shared`]: phase, counters, problems and histograms the tasks share;
//! - [`transport`]: plain TCP or TLS, the connect step;
//! - [`wire`]: one connection's read buffer, frames parsed in place;
//! - [`client`]: one participant's or observer's connection: the join and
//!   the reader both roles share;
//! - [`pacer`]: the send clock, which writes every participant's lines;
//! - [`outlet`]: where a participant's lines go: its socket, or over TLS
//!   its connection's writer task;
//! - [`run`]: the phases — connect, probe, traffic, drain, leave — and the
//!   verdict;
//! - [`report`]: the figures as JSON, the table and `.hgrm`; [`plot`]: the SVG;
//! - [`progress`]: progress bars or plain lines on stderr.

#![warn(missing_docs, unreachable_pub)]

pub mod check;
pub mod client;
pub mod config;
pub mod message;
pub mod outlet;
pub mod pacer;
pub mod plot;
pub mod progress;
pub mod report;
pub mod run;
pub mod schedule;
pub mod server_metrics;
pub mod shared;
pub mod stats;
pub mod transport;
pub mod wire;
