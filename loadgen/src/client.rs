//! One participant's or observer's connection, through every phase.
//!
//! Each client is one task that owns its socket: it handshakes, then reads
//! every frame the server sends and — a participant — writes its share of the
//! open-loop schedule at the scheduled instants. Reads and the send timer are
//! one `select!`, so a client keeps reading while it waits to send. What it
//! sees goes into its own [`ReceiverLog`] / [`SenderLog`] (no sharing on the
//! hot path); only counters, batched latencies and problems are shared.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use logosnet::framed::FrameReader;
use logosnet::protocol::{self, ClientFrame, Role, ServerFrame};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

use crate::check::{Dest, Receiver, ReceiverLog, SenderLog};
use crate::message::{self, Garbled};
use crate::schedule::{self, SplitMix64};
use crate::shared::{Phase, Shared};
use crate::stats::LatencyBuffer;
use crate::transport::{ReadHalf, Transport, WriteHalf, send};

/// What one client leaves behind for the checker.
#[derive(Debug)]
pub struct Outcome {
    /// What it received.
    pub received: ReceiverLog,
    /// What it sent (participants).
    pub sent: Option<SenderLog>,
    /// Observers: how many times each participant's "has joined" and "has
    /// left" arrived.
    pub notices: Option<NoticeCounts>,
}

/// Join and leave notices seen by one observer, per participant.
#[derive(Debug, Clone)]
pub struct NoticeCounts {
    /// "User X has joined", per participant index.
    pub joined: Vec<u32>,
    /// "User X has left", per participant index.
    pub left: Vec<u32>,
}

/// Runs participant `index` to the end of the run.
pub async fn participant(
    shared: std::sync::Arc<Shared>,
    index: u16,
    phase: watch::Receiver<Phase>,
) -> Option<Outcome> {
    let name = message::participant_name(&shared.config.name_prefix, index);
    let mut client = Client::connect(&shared, Role::Participant, &name, phase).await?;
    client.run_participant(index).await;
    Some(client.finish())
}

/// Runs observer `index` (for naming in reports only) to the end of the run.
pub async fn observer(
    shared: std::sync::Arc<Shared>,
    index: usize,
    phase: watch::Receiver<Phase>,
) -> Option<Outcome> {
    let label = format!("observer {index}");
    let mut client = Client::connect(&shared, Role::Observer, &label, phase).await?;
    client.run_observer().await;
    Some(client.finish())
}

/// Result of asking for one slot beyond capacity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeAnswer {
    /// The server said `Full`.
    Full,
    /// Anything else (the frame, a close, an error), described.
    Other(String),
}

/// Asks for one more slot of `role` and reports the answer; the connection is
/// closed either way.
pub async fn probe(
    transport: &Transport,
    addr: SocketAddr,
    role: Role,
    timeout: Duration,
) -> ProbeAnswer {
    let attempt = async {
        let (read, mut writer) = transport.connect(addr).await?;
        let mut reader = FrameReader::new(read);
        send(&mut writer, &protocol::encode(&ClientFrame::Hello(role)))
            .await
            .map_err(|e| format!("write failed: {e}"))?;
        match reader.next::<ServerFrame>().await {
            Ok(Some(ServerFrame::Full)) => Ok(()),
            Ok(Some(other)) => Err(format!("answered {other:?}")),
            Ok(None) => Err("closed without an answer".to_owned()),
            Err(e) => Err(e.to_string()),
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(())) => ProbeAnswer::Full,
        Ok(Err(e)) => ProbeAnswer::Other(e),
        Err(_) => ProbeAnswer::Other(format!("no answer within {timeout:?}")),
    }
}

struct Client<'a> {
    shared: &'a Shared,
    label: &'a str,
    reader: FrameReader<ReadHalf>,
    writer: WriteHalf,
    phase: watch::Receiver<Phase>,
    current: Phase,
    received: ReceiverLog,
    latencies: LatencyBuffer,
    notices: Option<NoticeCounts>,
    sent: Option<SenderLog>,
    /// This client's name, for private messages addressed to it.
    me: Option<&'a str>,
    closed: bool,
}

impl<'a> Client<'a> {
    /// Connects and handshakes; `None` (with the problem reported) on failure.
    async fn connect(
        shared: &'a Shared,
        role: Role,
        label: &'a str,
        phase: watch::Receiver<Phase>,
    ) -> Option<Client<'a>> {
        let timeout = Duration::from_secs_f64(shared.config.phase_timeout);
        let permit = shared.connecting.acquire().await.ok()?;
        let handshake = Self::handshake(shared, role, label, phase);
        let result = tokio::time::timeout(timeout, handshake).await;
        drop(permit);
        let error = match result {
            Ok(Ok(client)) => {
                shared.counters.ready.fetch_add(1, Ordering::Relaxed);
                return Some(client);
            }
            Ok(Err(e)) => e,
            Err(_) => format!("no answer within {timeout:?}"),
        };
        shared.counters.failed.fetch_add(1, Ordering::Relaxed);
        shared.problems.report(&shared.problems.join_failures, || {
            format!("{label}: {error}")
        });
        None
    }

    async fn handshake(
        shared: &'a Shared,
        role: Role,
        label: &'a str,
        phase: watch::Receiver<Phase>,
    ) -> Result<Client<'a>, String> {
        let started = Instant::now();
        let (read, mut writer) = shared.transport.connect(shared.addr).await?;
        let mut reader = FrameReader::new(read);
        let hello_at = Instant::now();
        send(&mut writer, &protocol::encode(&ClientFrame::Hello(role)))
            .await
            .map_err(|e| format!("write failed: {e}"))?;
        expect(&mut reader, ServerFrame::Accepted).await?;
        shared.connect.record(started.elapsed().as_micros() as u64);
        shared.counters.accepted.fetch_add(1, Ordering::Relaxed);
        let participants = shared.config.participants;
        let (receiver, me, notices, sent) = match role {
            Role::Participant => {
                let username = ClientFrame::Username(label.to_owned());
                send(&mut writer, &protocol::encode(&username))
                    .await
                    .map_err(|e| format!("write failed: {e}"))?;
                expect(&mut reader, ServerFrame::UsernameAccepted).await?;
                shared.join.record(hello_at.elapsed().as_micros() as u64);
                let index =
                    message::participant_index(&shared.config.name_prefix, label, participants)
                        .ok_or("participant name out of range")?;
                (
                    Receiver::Participant(index),
                    Some(label),
                    None,
                    Some(SenderLog::new()),
                )
            }
            Role::Observer => (
                Receiver::Observer,
                None,
                Some(NoticeCounts {
                    joined: vec![0; participants],
                    left: vec![0; participants],
                }),
                None,
            ),
        };
        let current = *phase.borrow();
        Ok(Client {
            shared,
            label,
            reader,
            writer,
            phase,
            current,
            received: ReceiverLog::new(
                receiver,
                participants,
                shared.config.total_messages().div_ceil(participants as u64) as usize,
            ),
            latencies: LatencyBuffer::default(),
            notices,
            sent,
            me,
            closed: false,
        })
    }

    async fn run_participant(&mut self, index: u16) {
        let config = &self.shared.config;
        let mut slots = schedule::slots_of(index, config.participants, config.total_messages());
        let mut next_slot = slots.next();
        let mut rng = SplitMix64::new(config.seed, u64::from(index));
        let mut line = String::with_capacity(config.size + 32);
        let mut start: Option<Instant> = None;
        let mut left = false;
        // The handshake may have read frames past UsernameAccepted.
        if !self.drain_decoder() {
            return;
        }
        let mut stopped = false;
        let due = self.shared.slots.clone();
        loop {
            let sending = start.is_some() && !stopped && next_slot.is_some();
            tokio::select! {
                biased;
                changed = self.phase.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    self.current = *self.phase.borrow_and_update();
                    match self.current {
                        Phase::Traffic(at) if start.is_none() => {
                            start = Some(at);
                            if next_slot.is_none() {
                                self.shared.counters.senders_done.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Phase::Drain => stopped = true,
                        Phase::Leave if !left => {
                            stopped = true;
                            left = true;
                            let _ = self.writer.shutdown().await;
                        }
                        Phase::Close => break,
                        _ => {}
                    }
                }
                filled = self.reader.fill() => {
                    if !self.on_read(filled) {
                        if left {
                            self.shared.counters.participants_closed.fetch_add(1, Ordering::Relaxed);
                        }
                        break;
                    }
                }
                () = due.next_due(index), if sending => {
                    let (Some(at), Some(slot)) = (start, next_slot) else { continue };
                    let scheduled = self.slot_time(at, slot);
                    self.send_one(index, &mut rng, &mut line, scheduled).await;
                    next_slot = slots.next();
                    if next_slot.is_none() {
                        self.shared.counters.senders_done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    fn slot_time(&self, start: Instant, slot: u64) -> Instant {
        start + schedule::slot_offset(slot, self.shared.config.rate)
    }

    async fn send_one(
        &mut self,
        index: u16,
        rng: &mut SplitMix64,
        line: &mut String,
        scheduled: Instant,
    ) {
        let config = &self.shared.config;
        let dest = schedule::choose_dest(rng, index, config.participants, config.private);
        let Some(sent) = self.sent.as_mut() else {
            return;
        };
        let seq = sent.sent(dest);
        if dest != Dest::Public {
            self.shared
                .counters
                .sent_private
                .fetch_add(1, Ordering::Relaxed);
        }
        let target = match dest {
            Dest::Private(to) => self.shared.names.get(usize::from(to)).map(String::as_str),
            Dest::Public => None,
        };
        let scheduled_us = self.shared.micros_since_epoch(scheduled);
        message::write_line(line, target, index, seq, scheduled_us, config.size);
        // Encode once, then hand the buffer back for the next line.
        let chat = ClientFrame::Chat(std::mem::take(line));
        let frame = protocol::encode(&chat);
        if let ClientFrame::Chat(buffer) = chat {
            *line = buffer;
        }
        let lag = Instant::now().saturating_duration_since(scheduled);
        self.shared.send_lag.record(lag.as_micros() as u64);
        if let Err(e) = send(&mut self.writer, &frame).await {
            let label = self.label;
            self.shared
                .problems
                .report(&self.shared.problems.unexpected_close, || {
                    format!("{label}: write failed during traffic: {e}")
                });
        }
        self.shared.counters.sent.fetch_add(1, Ordering::Relaxed);
    }

    async fn run_observer(&mut self) {
        if !self.drain_decoder() {
            return;
        }
        loop {
            tokio::select! {
                biased;
                changed = self.phase.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    self.current = *self.phase.borrow_and_update();
                    if self.current == Phase::Close {
                        break;
                    }
                }
                filled = self.reader.fill() => {
                    if !self.on_read(filled) {
                        break;
                    }
                }
            }
        }
    }

    /// Handles one read from the socket: every whole frame it completed, all
    /// stamped with the same receipt time. False when the connection is over.
    fn on_read(&mut self, filled: std::io::Result<usize>) -> bool {
        let shared = self.shared;
        let problems = &shared.problems;
        let label = self.label;
        let leaving = matches!(self.current, Phase::Leave | Phase::Close);
        match filled {
            Ok(0) if leaving && self.me.is_some() => {
                self.closed = true;
                return false;
            }
            Ok(0) => {
                let how = if self.reader.decoder().is_mid_frame() {
                    "in the middle of a frame"
                } else {
                    "between frames"
                };
                problems.report(&problems.unexpected_close, || {
                    format!(
                        "{label}: server closed the connection {how} during {}",
                        self.current
                    )
                });
                return false;
            }
            Err(_) if leaving && self.me.is_some() => {
                self.closed = true;
                return false;
            }
            Err(e) => {
                problems.report(&problems.unexpected_close, || {
                    format!("{label}: connection failed during {}: {e}", self.current)
                });
                return false;
            }
            Ok(_) => {}
        }
        self.drain_decoder()
    }

    /// Handles every whole frame already buffered, all stamped with the same
    /// receipt time; false if the stream is broken.
    fn drain_decoder(&mut self) -> bool {
        // With several runtime threads another client may act on a phase
        // change (and the server answer it) before this task has polled it;
        // judge frames by the phase as it is now.
        self.current = *self.phase.borrow();
        let problems = &self.shared.problems;
        let label = self.label;
        let now = self.shared.micros_since_epoch(Instant::now());
        loop {
            match self.reader.decoder().next_frame::<ServerFrame>() {
                Ok(Some(frame)) => self.handle(frame, now),
                Ok(None) => return true,
                Err(e) => {
                    problems.report(&problems.protocol_errors, || {
                        format!("{label}: the server broke the framing: {e}")
                    });
                    return false;
                }
            }
        }
    }

    /// Handles one frame received at `now` (µs since the epoch).
    fn handle(&mut self, frame: ServerFrame, now: u64) {
        let problems = &self.shared.problems;
        let label = self.label;
        match frame {
            ServerFrame::Message(text) => self.delivery(&text, now),
            ServerFrame::Notice(text) => self.notice(&text),
            ServerFrame::Full => problems.report(&problems.unexpected_full, || {
                format!("{label}: unexpected Full")
            }),
            ServerFrame::ProtocolError(reason) => {
                problems.report(&problems.protocol_errors, || {
                    format!("{label}: ProtocolError({reason:?})")
                });
            }
            other => problems.report(&problems.unexpected_frames, || {
                format!("{label}: unexpected {other:?} during {}", self.current)
            }),
        }
    }

    fn delivery(&mut self, text: &str, now: u64) {
        let shared = self.shared;
        let config = &shared.config;
        let parsed = message::parse_delivery(
            text,
            &config.name_prefix,
            config.participants,
            self.me,
            config.size,
        );
        match parsed {
            Ok(d) => {
                self.latencies
                    .push(now.saturating_sub(d.scheduled_us), &shared.delivery);
                let receipt = self.received.record(d.sender, d.seq, d.private);
                if receipt != crate::check::Receipt::Duplicate {
                    shared.counters.delivered.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(why) => {
                let label = self.label;
                // A private line for someone else is a misdelivery, which the
                // checker counts once it knows the sender; others are garbled.
                if why == Garbled::Target {
                    shared.problems.report(&shared.problems.garbled, || {
                        format!("{label}: private message not addressed to it: {text:?}")
                    });
                } else {
                    shared.problems.report(&shared.problems.garbled, || {
                        format!("{label}: garbled message ({why:?}): {text:?}")
                    });
                }
            }
        }
    }

    fn notice(&mut self, text: &str) {
        let shared = self.shared;
        let config = &shared.config;
        let problems = &shared.problems;
        let label = self.label;
        let announced = |suffix: &str| {
            text.strip_prefix("User ")
                .and_then(|rest| rest.strip_suffix(suffix))
                .map(|name| {
                    message::participant_index(&config.name_prefix, name, config.participants)
                })
        };
        if let Some(who) = announced(" has joined") {
            // A join may still be in flight when traffic starts; observers
            // check that each participant's arrives exactly once.
            if let (Some(index), Some(counts)) = (who, self.notices.as_mut()) {
                counts.joined[usize::from(index)] += 1;
            }
            if who.is_some() && !matches!(self.current, Phase::Leave | Phase::Close) {
                return;
            }
        } else if let Some(who) = announced(" has left")
            && matches!(self.current, Phase::Leave | Phase::Close)
        {
            if let (Some(index), Some(counts)) = (who, self.notices.as_mut()) {
                counts.left[usize::from(index)] += 1;
                if counts.left[usize::from(index)] == 1 && counts.left.iter().all(|&n| n > 0) {
                    shared
                        .counters
                        .observers_done
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
            return;
        }
        problems.report(&problems.unexpected_frames, || {
            format!(
                "{label}: unexpected notice during {}: {text:?}",
                self.current
            )
        });
    }

    fn finish(mut self) -> Outcome {
        self.shared.delivery.merge(&mut self.latencies);
        if self.me.is_some() && matches!(self.current, Phase::Leave | Phase::Close) && !self.closed
        {
            let label = self.label;
            let problems = &self.shared.problems;
            problems.report(&problems.unexpected_close, || {
                format!("{label}: the server did not close the connection after it left")
            });
        }
        Outcome {
            received: self.received,
            sent: self.sent,
            notices: self.notices,
        }
    }
}

/// Reads the next frame and fails unless it is `want`.
async fn expect(reader: &mut FrameReader<ReadHalf>, want: ServerFrame) -> Result<(), String> {
    match reader.next::<ServerFrame>().await {
        Ok(Some(frame)) if frame == want => Ok(()),
        Ok(Some(frame)) => Err(format!("expected {want:?}, got {frame:?}")),
        Ok(None) => Err(format!("closed while waiting for {want:?}")),
        Err(e) => Err(format!("while waiting for {want:?}: {e}")),
    }
}
