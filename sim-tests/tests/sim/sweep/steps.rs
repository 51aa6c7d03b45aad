//! The sweep's steps: the [`Driver`] picks each one from a [`SplitMix`]
//! seeded by the sweep seed — a connection, a name (valid, invalid or
//! taken), a public or private line of random size, a flood of dozens of
//! lines in one write, a leave, a drop mid-frame, a frame out of place, a
//! held or partitioned link, a latency change — records what it expects
//! in the shared [`Observed`], and hands the step to the client host that
//! owns the connection as a [`Command`]; network faults go back to the
//! caller as [`Fault`]s to apply to the simulation.

use std::time::Duration;

use logosnet::protocol::{ClientFrame, MAX_MESSAGE_CHARS, Role, private_line, public_line};
use testkit::peer::frame_bytes;
use tokio::sync::mpsc;

use super::HOSTS;
use super::invariants::{Client, Sent, Shared, lock};
use crate::harness::EventLog;
use crate::harness::rng::SplitMix;

/// Names participants ask for.
const NAMES: [&str; 6] = ["ann", "bo", "cy", "dee", "eve", "fay"];
/// Names the rule refuses.
const BAD_NAMES: [&str; 4] = ["", "two words", "elevenchars", "tab\tname"];

/// What the driver asks a client host to do.
#[derive(Debug)]
pub enum Command {
    /// Connect and say Hello (and ask for `name` in the same write).
    Connect {
        id: usize,
        role: Role,
        name: Option<String>,
    },
    /// Write these frames back to back in one write.
    Send {
        id: usize,
        frames: Vec<ClientFrame>,
    },
    /// Write the first `cut` bytes of the frame, then hang up.
    CutAndDrop {
        id: usize,
        frame: ClientFrame,
        cut: usize,
    },
    Drop {
        id: usize,
    },
}

pub enum Fault {
    Hold(usize),
    Release(usize),
    Partition(usize),
    Repair(usize),
    Latency(u64),
}

/// Steps a partition lasts before it is repaired.
pub const PARTITION_STEPS: u64 = 3;

pub struct Driver {
    pub rng: SplitMix,
    pub shared: Shared,
    pub inboxes: Vec<mpsc::UnboundedSender<Command>>,
    pub held: [bool; HOSTS],
    /// When each host's held link was last released.
    pub released_at: [Duration; HOSTS],
    /// Steps left until a partitioned host's link is repaired.
    pub cut: [Option<u64>; HOSTS],
    pub next_id: usize,
    pub min_latency_ms: u64,
    pub log: EventLog,
}

impl Driver {
    fn send(&self, host: usize, command: Command) {
        self.log
            .record("driver", format_args!("c{host} {command:?}"));
        // A host only stops listening when the session is over.
        let _ = self.inboxes[host].send(command);
    }

    /// Picks a live client matching `want`, if any.
    fn pick(&mut self, want: impl Fn(&Client) -> bool) -> Option<(usize, usize)> {
        let candidates: Vec<(usize, usize)> = lock(&self.shared)
            .clients
            .iter()
            .filter(|(_, c)| c.closed_at.is_none() && !c.cut && want(c))
            .map(|(&id, c)| (id, c.host))
            .collect();
        if candidates.is_empty() {
            return None;
        }
        Some(candidates[self.rng.below(candidates.len() as u64) as usize])
    }

    fn chat_line(&mut self, id: usize, target: Option<&str>, flood: bool) -> (String, bool) {
        let long = flood || self.rng.chance(10);
        let pad = if long {
            990 + self.rng.below(30)
        } else {
            self.rng.below(80)
        };
        let prefix = target.map_or(String::new(), |t| format!("@{t} "));
        let line = format!("{prefix}m{id} {}", "z".repeat(pad as usize));
        let deliverable = line.chars().count() <= MAX_MESSAGE_CHARS;
        (line, deliverable)
    }

    /// The cut clients of host `h` are doomed (their streams hang): hang up.
    pub fn hang_up_cut(&mut self, h: usize) {
        let doomed: Vec<usize> = lock(&self.shared)
            .clients
            .iter()
            .filter(|(_, c)| c.host == h && c.cut && c.closed_at.is_none())
            .map(|(&id, _)| id)
            .collect();
        for id in doomed {
            self.send(h, Command::Drop { id });
        }
    }

    /// Carries out one random step; returns the network faults for the
    /// caller to apply to the simulation.
    pub fn step(&mut self) -> Vec<Fault> {
        let mut faults = Vec::new();
        for h in 0..HOSTS {
            if let Some(left) = self.cut[h].as_mut() {
                *left -= 1;
                if *left == 0 {
                    self.cut[h] = None;
                    self.log.record("driver", format_args!("repair c{h}"));
                    faults.push(Fault::Repair(h));
                    self.hang_up_cut(h);
                }
            }
        }
        if let Some(fault) = self.random_step() {
            faults.push(fault);
        }
        faults
    }

    fn random_step(&mut self) -> Option<Fault> {
        let roll = self.rng.below(100);
        match roll {
            0..12 => {
                let (id, host) = (self.next_id, self.rng.below(HOSTS as u64) as usize);
                if self.cut[host].is_some() {
                    return None;
                }
                self.next_id += 1;
                let role = if self.rng.chance(75) {
                    Role::Participant
                } else {
                    Role::Observer
                };
                lock(&self.shared).clients.insert(
                    id,
                    Client {
                        host,
                        role: Some(role),
                        ..Client::default()
                    },
                );
                // Half the participants name themselves at once: Hello and
                // Username back to back in one write.
                let name = (role == Role::Participant && self.rng.chance(50))
                    .then(|| NAMES[self.rng.below(NAMES.len() as u64) as usize].to_owned());
                if let (Some(name), Some(c)) = (&name, lock(&self.shared).clients.get_mut(&id)) {
                    c.asked.push_back(name.clone());
                }
                self.send(host, Command::Connect { id, role, name });
            }
            12..24 => {
                let naming = |c: &Client| {
                    c.role == Some(Role::Participant) && c.admitted && c.name.is_none()
                };
                if let Some((id, host)) = self.pick(naming) {
                    let name = if self.rng.chance(25) {
                        BAD_NAMES[self.rng.below(BAD_NAMES.len() as u64) as usize]
                    } else {
                        NAMES[self.rng.below(NAMES.len() as u64) as usize]
                    };
                    if let Some(c) = lock(&self.shared).clients.get_mut(&id) {
                        c.asked.push_back(name.to_owned());
                    }
                    self.send(
                        host,
                        Command::Send {
                            id,
                            frames: vec![ClientFrame::Username(name.to_owned())],
                        },
                    );
                }
            }
            24..66 => {
                let active = |c: &Client| c.name.is_some();
                if let Some((sender, host)) = self.pick(active) {
                    // Sometimes a burst: several lines in one write, so one
                    // segment (and one server read) holds several frames.
                    // And now and then a flood: dozens of lines at once, far
                    // past the burst the flood rule allows.
                    let flood = self.rng.chance(10);
                    let burst = if flood {
                        20 + self.rng.below(40)
                    } else if self.rng.chance(25) {
                        2 + self.rng.below(3)
                    } else {
                        1
                    };
                    let mut frames = Vec::new();
                    for _ in 0..burst {
                        let private = self.rng.chance(30);
                        let target =
                            private.then(|| NAMES[self.rng.below(NAMES.len() as u64) as usize]);
                        let id = lock(&self.shared).sent.len();
                        let (line, deliverable) = self.chat_line(id, target, flood);
                        let mut shared = lock(&self.shared);
                        let sender_name = shared.clients[&sender].name.clone().unwrap_or_default();
                        let delivered = if private {
                            private_line(&sender_name, &line)
                        } else {
                            public_line(&sender_name, &line)
                        };
                        let text = delivered.text().unwrap_or_default().to_owned();
                        shared.frame_text.insert(text, id);
                        shared.sent.push(Sent {
                            sender,
                            target: target.map(str::to_owned),
                            at: Duration::MAX,
                            due: Duration::MAX,
                            deliverable,
                        });
                        frames.push(ClientFrame::Chat(line));
                    }
                    self.send(host, Command::Send { id: sender, frames });
                }
            }
            66..71 => {
                if let Some((id, host)) = self.pick(|_| true) {
                    self.send(host, Command::Drop { id });
                }
            }
            71..75 => {
                if let Some((id, host)) = self.pick(|c| c.admitted) {
                    let frame = ClientFrame::Chat("never finished".into());
                    let cut = 1 + self.rng.below(frame_bytes(&frame).len() as u64 - 1) as usize;
                    self.send(host, Command::CutAndDrop { id, frame, cut });
                }
            }
            75..81 => {
                // Frames out of place: an observer chatting, a participant
                // chatting before its name, a second Hello.
                if let Some((id, host)) =
                    self.pick(|c| c.admitted && c.name.is_none() && c.asked.is_empty())
                {
                    let frame = if self.rng.chance(50) {
                        ClientFrame::Chat(format!("out of place {id}"))
                    } else {
                        ClientFrame::Hello(Role::Participant)
                    };
                    self.send(
                        host,
                        Command::Send {
                            id,
                            frames: vec![frame],
                        },
                    );
                }
            }
            81..90 => {
                let h = self.rng.below(HOSTS as u64) as usize;
                if self.cut[h].is_some() {
                    return None;
                }
                self.held[h] = !self.held[h];
                if self.held[h] {
                    for c in lock(&self.shared).clients.values_mut() {
                        if c.host == h && c.closed_at.is_none() {
                            c.held = true;
                        }
                    }
                }
                self.log.record(
                    "driver",
                    format_args!("{} c{h}", if self.held[h] { "hold" } else { "release" }),
                );
                return Some(if self.held[h] {
                    Fault::Hold(h)
                } else {
                    Fault::Release(h)
                });
            }
            90..94 => {
                let h = self.rng.below(HOSTS as u64) as usize;
                if self.cut[h].is_some() || self.held[h] {
                    return None;
                }
                self.cut[h] = Some(PARTITION_STEPS);
                for c in lock(&self.shared).clients.values_mut() {
                    if c.host == h {
                        c.cut = true;
                    }
                }
                self.log.record("driver", format_args!("partition c{h}"));
                return Some(Fault::Partition(h));
            }
            _ => {
                // Never below the builder's minimum (turmoil panics).
                let ms = self.min_latency_ms + self.rng.below(20);
                self.log
                    .record("driver", format_args!("max latency {ms} ms"));
                return Some(Fault::Latency(ms));
            }
        }
        None
    }
}
