//! The send clock: one OS thread that releases each participant's slots at
//! their scheduled instants.
//!
//! tokio's timer wheel ticks once a millisecond, so a task sleeping until a
//! slot wakes on average ~0.7 ms late — lateness that open-loop measurement
//! rightly counts as latency, but that is loadgen's, not the server's. A
//! plain thread sleeping with `std::thread::sleep` wakes within tens of
//! microseconds; it adds one permit to the due participant's semaphore, and
//! that participant sends. A participant that falls behind finds several
//! permits waiting and sends them back to back: no slot is lost, and the
//! lateness still counts from the scheduled time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::schedule;

/// Longest single sleep, so that a stop request is seen promptly.
const MAX_NAP: Duration = Duration::from_millis(20);

/// One semaphore per participant; a permit is a due slot.
#[derive(Debug)]
pub struct Slots {
    due: Vec<Semaphore>,
    stop: AtomicBool,
}

impl Slots {
    /// No slot due yet, for `participants` senders.
    pub fn new(participants: usize) -> Self {
        Self {
            due: (0..participants).map(|_| Semaphore::new(0)).collect(),
            stop: AtomicBool::new(false),
        }
    }

    /// Waits until participant `index` has a due slot, and takes it.
    pub async fn next_due(&self, index: u16) {
        if let Some(due) = self.due.get(usize::from(index))
            && let Ok(permit) = due.acquire().await
        {
            permit.forget();
        }
    }

    /// Stops the clock: no further slot is released.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Starts the clock: global slot `n` goes to participant `n mod P` at
/// `start + n / rate`.
pub fn start(slots: Arc<Slots>, start: Instant, rate: f64, total: u64) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let participants = slots.due.len() as u64;
        if participants == 0 {
            return;
        }
        for slot in 0..total {
            let due = start + schedule::slot_offset(slot, rate);
            loop {
                if slots.stop.load(Ordering::Relaxed) {
                    return;
                }
                let now = Instant::now();
                if now >= due {
                    break;
                }
                std::thread::sleep((due - now).min(MAX_NAP));
            }
            slots.due[(slot % participants) as usize].add_permits(1);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_slot_reaches_its_participant_in_order() {
        let slots = Arc::new(Slots::new(3));
        let clock = start(slots.clone(), Instant::now(), 10_000.0, 9);
        for index in [0, 1, 2, 0, 1, 2, 0, 1, 2] {
            slots.next_due(index).await;
        }
        clock.join().unwrap();
        for due in &slots.due {
            assert_eq!(due.available_permits(), 0);
        }
    }

    #[test]
    fn a_stopped_clock_releases_nothing_more() {
        let slots = Arc::new(Slots::new(1));
        slots.stop();
        start(slots.clone(), Instant::now(), 1.0, 5).join().unwrap();
        assert_eq!(slots.due[0].available_permits(), 0);
    }
}
