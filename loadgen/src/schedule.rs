//! The open-loop schedule and the choice of each message's destination: pure
//! functions of the settings and a seed, no clock and no I/O.
//!
//! The run offers `rate` messages per second for `duration` seconds: global
//! slot `n` (0 ≤ n < rate × duration) is due `n / rate` seconds after the
//! traffic starts and belongs to participant `n mod P`. So every participant
//! sends at `rate / P` per second, the room as a whole at an even `rate`, and
//! a participant's slots are `i, i + P, i + 2P, …`. Whether a message is
//! private, and to whom, comes from a per-participant generator seeded with
//! `--seed`, so a run's traffic is reproducible.

use std::time::Duration;

use crate::check::{Dest, PeerId};

/// When slot `n` is due, after the traffic starts.
pub fn slot_offset(slot: u64, rate: f64) -> Duration {
    Duration::from_secs_f64(slot as f64 / rate)
}

/// The slots participant `index` of `participants` sends, out of `total`.
pub fn slots_of(index: u16, participants: usize, total: u64) -> impl Iterator<Item = u64> {
    (u64::from(index)..total).step_by(participants.max(1))
}

/// Public, or private to a random *other* participant with probability
/// `private_fraction` (always public in a room of one).
pub fn choose_dest(
    rng: &mut SplitMix64,
    sender: PeerId,
    participants: usize,
    private_fraction: f64,
) -> Dest {
    let participants = participants as u64;
    if participants > 1 && rng.next_f64() < private_fraction {
        let offset = 1 + rng.next_u64() % (participants - 1);
        Dest::Private(((u64::from(sender) + offset) % participants) as PeerId)
    } else {
        Dest::Public
    }
}

/// A small deterministic generator (splitmix64): one per participant.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// The generator for `stream` (a participant index) under `seed`.
    pub fn new(seed: u64, stream: u64) -> Self {
        Self(seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_slot_belongs_to_exactly_one_participant() {
        let (participants, total) = (7, 100);
        let mut seen = vec![0u32; total as usize];
        for index in 0..participants as u16 {
            for slot in slots_of(index, participants, total) {
                assert_eq!(slot % participants as u64, u64::from(index));
                seen[slot as usize] += 1;
            }
        }
        assert!(seen.iter().all(|&n| n == 1), "{seen:?}");
    }

    #[test]
    fn slots_are_evenly_spaced_in_time() {
        assert_eq!(slot_offset(0, 1000.0), Duration::ZERO);
        assert_eq!(slot_offset(1500, 1000.0), Duration::from_millis(1500));
        assert_eq!(slot_offset(3, 4.0), Duration::from_millis(750));
    }

    #[test]
    fn private_messages_go_to_someone_else_at_about_the_fraction() {
        let mut rng = SplitMix64::new(1, 3);
        let mut private = 0;
        for _ in 0..10_000 {
            match choose_dest(&mut rng, 3, 5, 0.1) {
                Dest::Private(to) => {
                    assert_ne!(to, 3);
                    assert!(to < 5);
                    private += 1;
                }
                Dest::Public => {}
            }
        }
        assert!((800..1200).contains(&private), "{private} private of 10000");
    }

    #[test]
    fn a_room_of_one_and_a_zero_fraction_are_all_public() {
        let mut rng = SplitMix64::new(9, 0);
        for _ in 0..100 {
            assert_eq!(choose_dest(&mut rng, 0, 1, 1.0), Dest::Public);
            assert_eq!(choose_dest(&mut rng, 0, 5, 0.0), Dest::Public);
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_traffic() {
        let draw = |seed| {
            let mut rng = SplitMix64::new(seed, 4);
            (0..50)
                .map(|_| choose_dest(&mut rng, 4, 255, 0.5))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }
}
