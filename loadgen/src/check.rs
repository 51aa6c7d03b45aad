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
//! receivers and 255 senders at 10,000 msgs/s for 10 s, about 15 MB.

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
    /// Each message's destination, by sequence number.
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

/// What one receiver got, per sender.
///
/// Laid out for the hot path: one contiguous block of `[seen, private]` bit
/// words per receiver (each sender's run of words back to back) and one
/// array of per-sender high-water marks, so a receipt touches two small,
/// mostly cached places and never allocates.
#[derive(Debug, Clone)]
pub struct ReceiverLog {
    /// Whose log this is.
    receiver: Receiver,
    /// Bit words per sender: enough for the most messages one may send.
    words_per_sender: usize,
    /// `[seen, received as private]`, `words_per_sender` pairs per sender.
    bits: Vec<[u64; 2]>,
    /// Per sender: highest sequence number received so far, plus one.
    high: Vec<u32>,
    /// Receipts of a message already received.
    duplicated: u64,
    /// First receipts after a later message of the same sender.
    out_of_order: u64,
    /// Receipts with a sequence number no sender could have used.
    beyond: u64,
}

impl ReceiverLog {
    /// An empty log for a room of `participants` senders, each sending at
    /// most `max_per_sender` messages.
    pub fn new(receiver: Receiver, participants: usize, max_per_sender: usize) -> Self {
        let words_per_sender = max_per_sender.div_ceil(64);
        Self {
            receiver,
            words_per_sender,
            bits: vec![[0; 2]; participants * words_per_sender],
            high: vec![0; participants],
            duplicated: 0,
            out_of_order: 0,
            beyond: 0,
        }
    }

    /// Who this is.
    pub fn receiver(&self) -> Receiver {
        self.receiver
    }

    fn word(&self, sender: usize, seq: usize) -> Option<usize> {
        (sender < self.high.len() && seq / 64 < self.words_per_sender)
            .then(|| sender * self.words_per_sender + seq / 64)
    }

    /// Records message `seq` from `sender`, delivered as private or public.
    pub fn record(&mut self, sender: PeerId, seq: u32, private: bool) -> Receipt {
        let s = usize::from(sender);
        let Some(w) = self.word(s, seq as usize) else {
            self.beyond += 1;
            return Receipt::Duplicate;
        };
        let mask = 1u64 << (seq % 64);
        let word = &mut self.bits[w];
        if word[0] & mask != 0 {
            self.duplicated += 1;
            return Receipt::Duplicate;
        }
        word[0] |= mask;
        if private {
            word[1] |= mask;
        }
        if seq < self.high[s] {
            self.out_of_order += 1;
            Receipt::OutOfOrder
        } else {
            self.high[s] = seq + 1;
            Receipt::InOrder
        }
    }

    /// Whether `seq` from `sender` arrived, and whether as private.
    fn got(&self, sender: usize, seq: usize) -> (bool, bool) {
        match self.word(sender, seq) {
            Some(w) => {
                let mask = 1u64 << (seq % 64);
                (self.bits[w][0] & mask != 0, self.bits[w][1] & mask != 0)
            }
            None => (false, false),
        }
    }

    /// Receipts of sequence numbers at or past `sent` from `sender`.
    fn unsent(&self, sender: usize, sent: usize) -> u64 {
        let Some(first) = self.word(sender, 0) else {
            return 0;
        };
        (0..self.words_per_sender)
            .map(|i| {
                let word = self.bits[first + i][0];
                let keep_from = sent.saturating_sub(i * 64).min(64);
                let unsent = if keep_from == 64 {
                    0
                } else {
                    word >> keep_from
                };
                u64::from(unsent.count_ones())
            })
            .sum()
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
        tally.duplicated += log.duplicated;
        tally.out_of_order += log.out_of_order;
        tally.misdelivered += log.beyond;
        for s in 0..log.high.len() {
            let sent = senders.get(s).map_or(&[][..], |l| &l.dests[..]);
            for (seq, dest) in sent.iter().enumerate() {
                let expected = match (*dest, log.receiver) {
                    (Dest::Public, Receiver::Observer) => true,
                    (Dest::Public, Receiver::Participant(me)) => usize::from(me) != s,
                    (Dest::Private(to), Receiver::Participant(me)) => to == me,
                    (Dest::Private(_), Receiver::Observer) => false,
                };
                let (seen, as_private) = log.got(s, seq);
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
            tally.misdelivered += log.unsent(s, sent.len());
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
            ReceiverLog::new(Receiver::Participant(0), 2, 100),
            ReceiverLog::new(Receiver::Participant(1), 2, 100),
            ReceiverLog::new(Receiver::Observer, 2, 100),
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
        receivers[2].record(0, 100, false);
        receivers[2].record(7, 0, false);
        let tally = verify(&senders, &receivers);
        assert_eq!(tally.misdelivered, 4, "{tally:?}");
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
