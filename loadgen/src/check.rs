//! The delivery checker: what was sent against what each receiver got. No I/O.
//!
//! Each sender keeps a [`SenderLog`] (for every sequence number, public or
//! private to whom) and each receiver a [`ReceiverLog`] (which sequence
//! numbers it got from each sender, and in what order). They are filled
//! independently while the run goes on — no sharing on the hot path — and
//! [`verify`] compares them at the end: every public message must reach every
//! other participant and every observer exactly once, every private one its
//! target only, each sender's messages in the order sent.
//!
//! Memory: two bits per (receiver, sender, message) — for a full room of 510
//! receivers and 255 senders at 10,000 msgs/s for 10 s, about 13 MB.

/// A participant's index, `0..participants`.
pub type PeerId = u16;

/// Where one sent message should go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// Every other participant and every observer.
    Public,
    /// That participant only.
    Private(PeerId),
}

/// What one participant sent, indexed by sequence number.
#[derive(Debug, Clone, Default)]
pub struct SenderLog {
    dests: Vec<Dest>,
}

impl SenderLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the next message (its sequence number is the count so far)
    /// and returns that sequence number.
    pub fn sent(&mut self, dest: Dest) -> u32 {
        let seq = self.dests.len() as u32;
        self.dests.push(dest);
        seq
    }

    /// Messages sent so far.
    pub fn len(&self) -> usize {
        self.dests.len()
    }

    /// True if nothing was sent.
    pub fn is_empty(&self) -> bool {
        self.dests.is_empty()
    }

    /// Public and private counts.
    pub fn counts(&self) -> (u64, u64) {
        let public = self.dests.iter().filter(|d| **d == Dest::Public).count() as u64;
        (public, self.dests.len() as u64 - public)
    }
}

/// Who a receiver is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receiver {
    /// A participant: gets others' public messages and private ones to it.
    Participant(PeerId),
    /// An observer: gets every public message.
    Observer,
}

/// How one receipt compares with what came before it from the same sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    /// First time, in order.
    InOrder,
    /// First time, but after a later message from the same sender.
    OutOfOrder,
    /// Already received.
    Duplicate,
}

#[derive(Debug, Clone, Default)]
struct Track {
    seen: Vec<u64>,
    private: Vec<u64>,
    /// Highest sequence number received so far, plus one (0: none yet).
    high: u32,
    duplicated: u64,
    out_of_order: u64,
}

fn bit(bits: &[u64], i: usize) -> bool {
    bits.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
}

fn set_bit(bits: &mut Vec<u64>, i: usize) {
    if bits.len() <= i / 64 {
        bits.resize(i / 64 + 1, 0);
    }
    bits[i / 64] |= 1 << (i % 64);
}

/// What one receiver got, per sender.
#[derive(Debug, Clone)]
pub struct ReceiverLog {
    receiver: Receiver,
    from: Vec<Track>,
}

impl ReceiverLog {
    /// An empty log for a room of `participants` senders.
    pub fn new(receiver: Receiver, participants: usize) -> Self {
        Self {
            receiver,
            from: vec![Track::default(); participants],
        }
    }

    /// Who this is.
    pub fn receiver(&self) -> Receiver {
        self.receiver
    }

    /// Records message `seq` from `sender`, delivered as private or public.
    /// Senders outside the room size are the caller's to reject.
    pub fn record(&mut self, sender: PeerId, seq: u32, private: bool) -> Receipt {
        let Some(track) = self.from.get_mut(usize::from(sender)) else {
            return Receipt::Duplicate;
        };
        let i = seq as usize;
        if bit(&track.seen, i) {
            track.duplicated += 1;
            return Receipt::Duplicate;
        }
        set_bit(&mut track.seen, i);
        if private {
            set_bit(&mut track.private, i);
        }
        if seq < track.high {
            track.out_of_order += 1;
            Receipt::OutOfOrder
        } else {
            track.high = seq + 1;
            Receipt::InOrder
        }
    }
}

/// The verdict over a whole run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    /// Deliveries that should have happened.
    pub expected: u64,
    /// Expected deliveries that happened (each counted once).
    pub delivered: u64,
    /// Expected deliveries that never happened.
    pub lost: u64,
    /// Receipts of a message already received by the same receiver.
    pub duplicated: u64,
    /// First receipts that came after a later message of the same sender.
    pub out_of_order: u64,
    /// Receipts that should not have happened: a private message at someone
    /// other than its target, a sender's own line, a sequence number never
    /// sent, or a message delivered as public when private or vice versa.
    pub misdelivered: u64,
}

impl Tally {
    /// True when every message went exactly where it should, once, in order.
    pub fn is_clean(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.out_of_order == 0 && self.misdelivered == 0
    }
}

/// Compares what each sender sent with what each receiver got.
pub fn verify(senders: &[SenderLog], receivers: &[ReceiverLog]) -> Tally {
    let mut tally = Tally::default();
    for log in receivers {
        for (s, track) in log.from.iter().enumerate() {
            tally.duplicated += track.duplicated;
            tally.out_of_order += track.out_of_order;
            let sent = senders.get(s).map_or(&[][..], |l| &l.dests[..]);
            for (seq, dest) in sent.iter().enumerate() {
                let expected = match (*dest, log.receiver) {
                    (Dest::Public, Receiver::Observer) => true,
                    (Dest::Public, Receiver::Participant(me)) => usize::from(me) != s,
                    (Dest::Private(to), Receiver::Participant(me)) => to == me,
                    (Dest::Private(_), Receiver::Observer) => false,
                };
                let seen = bit(&track.seen, seq);
                let as_private = bit(&track.private, seq);
                match (expected, seen) {
                    (true, true) if as_private == matches!(dest, Dest::Private(_)) => {
                        tally.expected += 1;
                        tally.delivered += 1;
                    }
                    (true, true) => {
                        tally.expected += 1;
                        tally.lost += 1;
                        tally.misdelivered += 1;
                    }
                    (true, false) => {
                        tally.expected += 1;
                        tally.lost += 1;
                    }
                    (false, true) => tally.misdelivered += 1,
                    (false, false) => {}
                }
            }
            // Sequence numbers the sender never used.
            let never_sent = track
                .seen
                .iter()
                .enumerate()
                .map(|(w, word)| {
                    let first = w * 64;
                    (0..64)
                        .filter(|b| word & (1 << b) != 0 && first + b >= sent.len())
                        .count() as u64
                })
                .sum::<u64>();
            tally.misdelivered += never_sent;
        }
    }
    tally
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two participants and one observer; participant 0 sends three public
    /// messages and one private to participant 1.
    fn room() -> (Vec<SenderLog>, Vec<ReceiverLog>) {
        let mut a = SenderLog::new();
        for dest in [Dest::Public, Dest::Public, Dest::Private(1), Dest::Public] {
            a.sent(dest);
        }
        let senders = vec![a, SenderLog::new()];
        let receivers = vec![
            ReceiverLog::new(Receiver::Participant(0), 2),
            ReceiverLog::new(Receiver::Participant(1), 2),
            ReceiverLog::new(Receiver::Observer, 2),
        ];
        (senders, receivers)
    }

    fn deliver_all_correctly(receivers: &mut [ReceiverLog]) {
        for seq in 0..4 {
            receivers[1].record(0, seq, seq == 2);
            if seq != 2 {
                receivers[2].record(0, seq, false);
            }
        }
    }

    #[test]
    fn perfect_delivery_is_clean() {
        let (senders, mut receivers) = room();
        deliver_all_correctly(&mut receivers);
        let tally = verify(&senders, &receivers);
        assert!(tally.is_clean(), "{tally:?}");
        assert_eq!(tally.expected, 7);
        assert_eq!(tally.delivered, 7);
    }

    #[test]
    fn dropped_message_is_lost() {
        let (senders, mut receivers) = room();
        for seq in [0, 1, 3] {
            receivers[2].record(0, seq, false);
        }
        for seq in [0, 1, 2] {
            receivers[1].record(0, seq, seq == 2);
        }
        let tally = verify(&senders, &receivers);
        assert_eq!(tally.lost, 1, "{tally:?}");
        assert_eq!(tally.delivered, 6);
        assert!(!tally.is_clean());
    }

    #[test]
    fn duplicated_message_is_counted() {
        let (senders, mut receivers) = room();
        deliver_all_correctly(&mut receivers);
        assert_eq!(receivers[2].record(0, 1, false), Receipt::Duplicate);
        let tally = verify(&senders, &receivers);
        assert_eq!(tally.duplicated, 1, "{tally:?}");
        assert_eq!(tally.lost, 0);
        assert!(!tally.is_clean());
    }

    #[test]
    fn reordered_messages_are_counted() {
        let (senders, mut receivers) = room();
        receivers[1].record(0, 0, false);
        receivers[1].record(0, 1, false);
        receivers[1].record(0, 2, true);
        receivers[1].record(0, 3, false);
        assert_eq!(receivers[2].record(0, 1, false), Receipt::InOrder);
        assert_eq!(receivers[2].record(0, 0, false), Receipt::OutOfOrder);
        receivers[2].record(0, 3, false);
        let tally = verify(&senders, &receivers);
        assert_eq!(tally.out_of_order, 1, "{tally:?}");
        assert_eq!(tally.lost, 0);
        assert!(!tally.is_clean());
    }

    #[test]
    fn private_message_at_the_wrong_receiver_is_misdelivered() {
        let (senders, mut receivers) = room();
        deliver_all_correctly(&mut receivers);
        receivers[2].record(0, 2, true);
        let tally = verify(&senders, &receivers);
        assert_eq!(tally.misdelivered, 1, "{tally:?}");
        assert!(!tally.is_clean());
    }

    #[test]
    fn own_line_echoed_and_unsent_numbers_are_misdelivered() {
        let (senders, mut receivers) = room();
        deliver_all_correctly(&mut receivers);
        receivers[0].record(0, 0, false);
        receivers[2].record(0, 99, false);
        let tally = verify(&senders, &receivers);
        assert_eq!(tally.misdelivered, 2, "{tally:?}");
    }

    #[test]
    fn public_delivered_as_private_is_not_a_delivery() {
        let (senders, mut receivers) = room();
        for seq in 0..4 {
            receivers[1].record(0, seq, true);
            if seq != 2 {
                receivers[2].record(0, seq, false);
            }
        }
        let tally = verify(&senders, &receivers);
        assert_eq!(tally.misdelivered, 3, "{tally:?}");
        assert_eq!(tally.lost, 3);
    }
}
