//! A participant's sender: writes its share of the open-loop schedule.
//!
//! It owns the write half. It waits for the traffic phase, then for each of
//! its slots as the send clock ([`crate::pacer`]) releases them, and writes
//! the line for that slot stamped with the slot's *scheduled* time, however
//! late it is. It stops sending at the drain and shuts its half of the
//! connection at the leave phase, which is how a participant leaves.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use logosnet::protocol::{self, ClientFrame};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;

use crate::check::{Dest, SenderLog};
use crate::message;
use crate::schedule::{self, SplitMix64};
use crate::shared::{Phase, Shared};
use crate::stats::LatencyBuffer;

/// Sends participant `index`'s schedule on `writer`; returns what it sent.
pub(super) async fn run(shared: Arc<Shared>, index: u16, mut writer: OwnedWriteHalf) -> SenderLog {
    let mut sender = Sender {
        shared: &shared,
        index,
        rng: SplitMix64::new(shared.config.seed, u64::from(index)),
        line: String::with_capacity(shared.config.size + 32),
        log: SenderLog::new(),
        lag: LatencyBuffer::default(),
        broken: false,
    };
    let mut phase = shared.phase.subscribe();
    loop {
        let now = *phase.borrow_and_update();
        match now {
            Phase::Joining => {}
            Phase::Traffic => break,
            // Stopped before any traffic.
            _ => return sender.finish(),
        }
        if phase.changed().await.is_err() {
            return sender.finish();
        }
    }
    let Some(&start) = shared.traffic_start.get() else {
        return sender.finish();
    };
    let config = &shared.config;
    let mut slots = schedule::slots_of(index, config.participants, config.total_messages());
    let mut next_slot = slots.next();
    if next_slot.is_none() {
        shared.counters.senders_done.fetch_add(1, Ordering::Relaxed);
    }
    let mut sending = true;
    let due = shared.slots.clone();
    loop {
        tokio::select! {
            biased;
            changed = phase.changed() => {
                if changed.is_err() {
                    break;
                }
                let now = *phase.borrow_and_update();
                match now {
                    Phase::Drain => sending = false,
                    Phase::Leave => {
                        let _ = writer.shutdown().await;
                        break;
                    }
                    Phase::Close => break,
                    Phase::Joining | Phase::Traffic => {}
                }
            }
            () = due.next_due(index), if sending && next_slot.is_some() => {
                let Some(slot) = next_slot else { continue };
                let scheduled = start + schedule::slot_offset(slot, config.rate);
                sender.send(&mut writer, scheduled).await;
                next_slot = slots.next();
                if next_slot.is_none() {
                    shared.counters.senders_done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
    sender.finish()
}

struct Sender<'a> {
    shared: &'a Shared,
    index: u16,
    rng: SplitMix64,
    /// Reused for every line.
    line: String,
    log: SenderLog,
    lag: LatencyBuffer,
    /// A write failed: the connection is gone (its reader reports how).
    broken: bool,
}

impl Sender<'_> {
    /// Writes the line for the slot scheduled at `scheduled`.
    async fn send(&mut self, writer: &mut OwnedWriteHalf, scheduled: Instant) {
        let shared = self.shared;
        let config = &shared.config;
        let dest = schedule::choose_dest(
            &mut self.rng,
            self.index,
            config.participants,
            config.private,
        );
        // Logged as sent before the write: a line whose write fails is owed
        // all the same, and the checker counts it lost.
        let seq = self.log.sent(dest);
        let target = match dest {
            Dest::Private(to) => {
                shared.counters.sent_private.fetch_add(1, Ordering::Relaxed);
                shared.names.get(usize::from(to)).map(String::as_str)
            }
            Dest::Public => None,
        };
        let scheduled_us = shared.micros_since_epoch(scheduled);
        message::write_line(
            &mut self.line,
            target,
            self.index,
            seq,
            scheduled_us,
            config.size,
        );
        // Encode once, then take the buffer back for the next line.
        let chat = ClientFrame::Chat(std::mem::take(&mut self.line));
        let frame = protocol::encode(&chat);
        if let ClientFrame::Chat(buffer) = chat {
            self.line = buffer;
        }
        let lag = Instant::now().saturating_duration_since(scheduled);
        self.lag.push(lag.as_micros() as u64, &shared.send_lag);
        if !self.broken && writer.write_all(&frame).await.is_err() {
            self.broken = true;
        }
        shared.counters.sent.fetch_add(1, Ordering::Relaxed);
    }

    fn finish(mut self) -> SenderLog {
        self.shared.send_lag.merge(&mut self.lag);
        self.log
    }
}
