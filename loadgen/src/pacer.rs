//! The send clock: one OS thread that writes every participant's lines at
//! their scheduled instants.
//!
//! A send done by a runtime task leaves late twice over: tokio's timer wheel
//! ticks once a millisecond, and a task woken on time still waits its turn
//! behind every reader the runtime has to run (at 1,000 msgs/s, 509 reads per
//! message). Open-loop measurement rightly counts that lateness as latency,
//! but it is loadgen's, not the server's. So the clock thread, sleeping with
//! `std::thread::sleep` (it wakes within tens of microseconds), writes each
//! line itself on a duplicate of the participant's socket descriptor; the
//! runtime keeps the original for reading and never sends a chat line.
//! Over TLS that cannot be (one TLS state serves both directions): the clock
//! hands each line, when due, to the connection's writer task instead (see
//! [`crate::outlet`]).
//!
//! The sockets are non-blocking. A line the server is not accepting yet (its
//! receive window is full) waits in that participant's queue, in order, and
//! the clock retries every [`RETRY`]; a clock that falls behind writes its due
//! slots back to back. No slot is lost, and lateness counts from the
//! scheduled time. The queue is bounded by the participant's share of the
//! schedule (total messages / participants lines).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use logosnet::codec;
use logosnet::protocol::ClientFrame;

use crate::check::{Dest, SenderLog};
use crate::message;
use crate::outlet::{Offered, Outlet};
use crate::schedule::{self, SplitMix64};
use crate::shared::Shared;
use crate::stats::LatencyBuffer;

/// Longest single sleep, so that a stop request is seen promptly.
const MAX_NAP: Duration = Duration::from_millis(20);

/// How soon a line the server did not accept is offered again.
pub const RETRY: Duration = Duration::from_millis(1);

/// One participant's sending side: where its lines go, its choice of
/// destinations and the log of what it sent.
#[derive(Debug)]
pub struct Sender {
    /// The participant's index (its name's number, its slot in the schedule).
    index: u16,
    /// Where its lines are written.
    outlet: Outlet,
    /// Chooses each line's destination, seeded per participant.
    rng: SplitMix64,
    /// Reused for every line.
    line: String,
    /// Every line sent, by sequence number: what the checker expects.
    log: SenderLog,
    /// A write failed: the connection is gone (its reader reports how).
    broken: bool,
}

impl Sender {
    /// The sender of participant `index`, writing to `outlet`.
    pub fn new(index: u16, outlet: Outlet, seed: u64) -> Self {
        Self {
            index,
            outlet,
            rng: SplitMix64::new(seed, u64::from(index)),
            line: String::new(),
            log: SenderLog::new(),
            broken: false,
        }
    }

    /// Writes the line for the slot due at `scheduled`, or queues it behind
    /// what the server has not accepted yet. `lag` gets scheduled → now
    /// (over TLS the writer task records it once written).
    fn send(&mut self, shared: &Shared, scheduled: Instant, lag: &mut LatencyBuffer) {
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
        let frame = codec::encode(&chat);
        if let ClientFrame::Chat(buffer) = chat {
            self.line = buffer;
        }
        shared.counters.sent.fetch_add(1, Ordering::Relaxed);
        // A line is at most MAX_MESSAGE_CHARS ASCII characters, far under
        // the frame limit; one that could not be encoded would be owed all
        // the same, and the checker would count it lost.
        let Ok(frame) = frame else {
            return;
        };
        if self.broken {
            return;
        }
        match self.outlet.offer(frame, scheduled) {
            Offered::Written => lag.push(
                Instant::now()
                    .saturating_duration_since(scheduled)
                    .as_micros() as u64,
                &shared.send_lag,
            ),
            Offered::Handed => {}
            Offered::Broken => self.break_off(),
        }
    }

    /// Offers the queued bytes to the socket again; true if none are left.
    fn flush(&mut self) -> bool {
        if self.broken {
            return true;
        }
        match self.outlet.flush() {
            Ok(done) => done,
            Err(_) => {
                self.break_off();
                true
            }
        }
    }

    /// Notes that the connection is gone and drops what waits for it.
    fn break_off(&mut self) {
        self.broken = true;
        self.outlet.discard();
    }

    /// Whether bytes wait for the server.
    fn has_queued(&self) -> bool {
        self.outlet.has_queued()
    }

    /// Closes the sending side: how a participant leaves.
    pub fn leave(&mut self) {
        self.outlet.leave();
    }

    /// What this participant sent.
    pub fn log(&self) -> &SenderLog {
        &self.log
    }

    /// Gives up the log (the outlet closes when the sender is dropped).
    pub fn into_log(self) -> SenderLog {
        self.log
    }
}

/// The running clock.
#[derive(Debug)]
pub struct Clock {
    /// The clock thread; it hands the senders back when it ends.
    thread: JoinHandle<Vec<Sender>>,
    /// Set to stop the clock.
    stop: Arc<AtomicBool>,
    /// Set by the clock once every slot was written or queued.
    scheduled: Arc<AtomicBool>,
}

impl Clock {
    /// True once every slot of the schedule has been written or queued.
    pub fn finished_schedule(&self) -> bool {
        self.scheduled.load(Ordering::Acquire)
    }

    /// Stops the clock: no further slot is sent and queued bytes are
    /// dropped; it exits within one nap.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    /// Waits for the thread and takes the senders back.
    pub fn join(self) -> Vec<Sender> {
        self.thread
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

/// Starts the clock: global slot `n` is participant `n mod P`'s (P =
/// `senders.len()`, each sender at its own index) at `start + n / rate`.
/// After the last slot it keeps offering queued bytes until stopped.
pub fn start(shared: Arc<Shared>, mut senders: Vec<Sender>, start: Instant) -> Clock {
    let stop = Arc::new(AtomicBool::new(false));
    let scheduled = Arc::new(AtomicBool::new(false));
    let (stopping, done) = (stop.clone(), scheduled.clone());
    let thread = std::thread::spawn(move || {
        let rate = shared.config.rate;
        let participants = senders.len() as u64;
        let total = if participants == 0 {
            0
        } else {
            shared.config.total_messages()
        };
        let mut lag = LatencyBuffer::default();
        let stopped = || stopping.load(Ordering::Acquire);
        // Senders with bytes queued.
        let mut waiting = 0;
        'slots: for slot in 0..total {
            let due = start + schedule::slot_offset(slot, rate);
            loop {
                if stopped() {
                    break 'slots;
                }
                if waiting > 0 {
                    waiting = flush_all(&mut senders);
                }
                let now = Instant::now();
                if now >= due {
                    break;
                }
                let nap = if waiting > 0 { RETRY } else { MAX_NAP };
                std::thread::sleep((due - now).min(nap));
            }
            let sender = &mut senders[(slot % participants) as usize];
            let had_queued = sender.has_queued();
            sender.send(&shared, due, &mut lag);
            if !had_queued && sender.has_queued() {
                waiting += 1;
            }
        }
        done.store(!stopped(), Ordering::Release);
        shared.send_lag.merge(&mut lag);
        while waiting > 0 && !stopped() {
            std::thread::sleep(RETRY);
            waiting = flush_all(&mut senders);
        }
        senders
    });
    Clock {
        thread,
        stop,
        scheduled,
    }
}

/// Offers every sender's queued bytes again; returns how many still wait.
fn flush_all(senders: &mut [Sender]) -> usize {
    senders
        .iter_mut()
        .filter(|s| s.has_queued())
        .map(|s| usize::from(!s.flush()))
        .sum()
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;
    use std::net::{TcpListener, TcpStream};

    use clap::Parser as _;

    use super::*;
    use crate::config::Config;
    use crate::message::parse_delivery;
    use crate::transport::Transport;

    fn shared(args: &[&str]) -> Arc<Shared> {
        let config = Config::parse_from(std::iter::once("loadgen").chain(args.iter().copied()));
        Arc::new(Shared::new(
            config,
            "127.0.0.1:1".parse().unwrap(),
            Transport::Plain,
        ))
    }

    /// A connected pair: the sending socket (non-blocking, like loadgen's)
    /// and the far end.
    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let near = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        near.set_nonblocking(true).unwrap();
        let (far, _) = listener.accept().unwrap();
        (near, far)
    }

    /// Reads frames off `far` until it closes and returns their lines.
    fn lines_from(mut far: TcpStream) -> Vec<String> {
        let mut bytes = Vec::new();
        far.read_to_end(&mut bytes).unwrap();
        let mut decoder = codec::FrameDecoder::new();
        decoder.extend(&bytes);
        let mut lines = Vec::new();
        while let Some(frame) = decoder.next_frame::<ClientFrame>().unwrap() {
            match frame {
                ClientFrame::Chat(line) => lines.push(line),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(!decoder.is_mid_frame(), "a frame cut short");
        lines
    }

    /// The sequence numbers of `lines` as the server would deliver them
    /// from participant `sender` to an observer.
    fn sequence(lines: &[String], sender: u16, size: usize) -> Vec<u32> {
        lines
            .iter()
            .map(|line| {
                let delivered = logosnet::protocol::public_line(&format!("lg{sender}"), line);
                let text = delivered.text().expect("a chat line carries its text");
                parse_delivery(text.as_bytes(), "lg", 2, None, size)
                    .unwrap()
                    .seq
            })
            .collect()
    }

    #[test]
    fn every_slot_is_written_to_its_participant_in_order() {
        let shared = shared(&[
            "--participants",
            "2",
            "--rate",
            "2000",
            "--duration",
            "0.01",
            "--private",
            "0",
        ]);
        let (a, a_far) = pair();
        let (b, b_far) = pair();
        let senders = vec![
            Sender::new(0, Outlet::socket(a), 1),
            Sender::new(1, Outlet::socket(b), 1),
        ];
        let clock = start(shared.clone(), senders, Instant::now());
        while !clock.finished_schedule() {
            std::thread::sleep(Duration::from_millis(1));
        }
        clock.stop();
        let senders = clock.join();
        assert_eq!(senders[0].log().len(), 10);
        assert_eq!(senders[1].log().len(), 10);
        drop(senders);
        assert_eq!(
            sequence(&lines_from(a_far), 0, 64),
            (0..10).collect::<Vec<_>>()
        );
        assert_eq!(
            sequence(&lines_from(b_far), 1, 64),
            (0..10).collect::<Vec<_>>()
        );
        assert_eq!(shared.counters.sent.load(Ordering::Relaxed), 20);
        assert_eq!(shared.send_lag.snapshot().len(), 20);
    }

    #[test]
    fn lines_the_server_does_not_take_yet_wait_in_order() {
        // Lines of 1,000 characters while the far end reads nothing, until
        // the socket pushes back (the kernel may grow loopback buffers to
        // tens of MB first), then more behind the ones queued.
        const MOST: u32 = 100_000;
        let shared = shared(&["--participants", "1", "--size", "1000", "--private", "0"]);
        let (near, far) = pair();
        let mut sender = Sender::new(0, Outlet::socket(near), 1);
        let mut lag = LatencyBuffer::default();
        let mut sent = 0;
        while !sender.has_queued() && sent < MOST {
            sender.send(&shared, Instant::now(), &mut lag);
            sent += 1;
        }
        assert!(
            sender.has_queued(),
            "loopback took {MOST} lines without pushing back"
        );
        for _ in 0..100 {
            sender.send(&shared, Instant::now(), &mut lag);
            sent += 1;
        }
        let reader = std::thread::spawn(move || lines_from(far));
        while !sender.flush() {
            std::thread::sleep(RETRY);
        }
        sender.leave();
        drop(sender);
        let lines = reader.join().unwrap();
        assert_eq!(sequence(&lines, 0, 1000), (0..sent).collect::<Vec<_>>());
    }

    #[test]
    fn a_stopped_clock_sends_nothing_more() {
        let shared = shared(&["--participants", "1", "--rate", "1", "--duration", "5"]);
        let (near, _far) = pair();
        let clock = start(
            shared.clone(),
            vec![Sender::new(0, Outlet::socket(near), 1)],
            Instant::now(),
        );
        clock.stop();
        let senders = clock.join();
        assert!(senders[0].log().len() <= 1);
        assert!(!senders.is_empty());
    }
}
