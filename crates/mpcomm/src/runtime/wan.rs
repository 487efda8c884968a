//! Wide-area network emulation, in our own code.
//!
//! The ordering problem only shows when messages take different times to
//! reach different peers — peers in different cloud regions. Linux can
//! emulate that with `netem`, but many kernels (this project's CI among
//! them) and most laptops lack it, and it needs root. So each peer applies
//! the emulation to its *own outgoing datagrams*: before a datagram leaves,
//! the emulator decides, from the sender's and receiver's regions, whether
//! it is lost, how long it is delayed, and whether it is duplicated, using
//! the same [`NetProfile`] as the simulator. Delayed datagrams wait in a
//! queue ordered by departure time; the runtime's event loop sends them when
//! they are due.
//!
//! Emulation is off unless a run asks for it, so a real deployment sees only
//! the real network.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use bytes::Bytes;
use mpcomm_core::MemberId;
use mpcomm_sim::net::{Fate, NetProfile, NetStats};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::time::Instant;

/// What the emulation needs to know about a run.
#[derive(Clone, Debug, PartialEq)]
pub struct WanConfig {
    /// Delays, jitter, loss, duplication.
    pub profile: NetProfile,
    /// The region index of every member (index = member id).
    pub regions: Vec<usize>,
    /// Seed for this peer's random choices.
    pub seed: u64,
}

/// One peer's outgoing-datagram emulator.
#[derive(Debug)]
pub struct WanEmulator {
    profile: NetProfile,
    my_region: usize,
    regions: Vec<usize>,
    rng: ChaCha8Rng,
    queue: BinaryHeap<Reverse<(Instant, u64, MemberId, Bytes)>>,
    tiebreak: u64,
    stats: NetStats,
}

impl WanEmulator {
    /// The emulator for member `me`.
    pub fn new(cfg: &WanConfig, me: MemberId) -> WanEmulator {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        rng.set_stream(u64::from(me) + 1);
        WanEmulator {
            profile: cfg.profile.clone(),
            my_region: cfg.regions.get(usize::from(me)).copied().unwrap_or(0),
            regions: cfg.regions.clone(),
            rng,
            queue: BinaryHeap::new(),
            tiebreak: 0,
            stats: NetStats::default(),
        }
    }

    /// Decides the fate of a datagram to `to` sent at `now`. Copies due at
    /// once are appended to `now_out`; later ones are queued.
    pub fn route(
        &mut self,
        to: MemberId,
        bytes: &[u8],
        now: Instant,
        now_out: &mut Vec<(MemberId, Bytes)>,
    ) {
        self.stats.sent += 1;
        let region = self.regions.get(usize::from(to)).copied().unwrap_or(0);
        match self.profile.fate(self.my_region, region, &mut self.rng) {
            Fate::Lost => self.stats.lost += 1,
            Fate::Arrives(delays) => {
                self.stats.duplicated += delays.len() as u64 - 1;
                let bytes = Bytes::copy_from_slice(bytes);
                for d in delays {
                    if d < Duration::from_micros(50) {
                        now_out.push((to, bytes.clone()));
                    } else {
                        self.queue
                            .push(Reverse((now + d, self.tiebreak, to, bytes.clone())));
                        self.tiebreak += 1;
                    }
                }
            }
        }
    }

    /// When the next queued datagram is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse((t, ..))| *t)
    }

    /// Moves every datagram due by `now` to `out`.
    pub fn release(&mut self, now: Instant, out: &mut Vec<(MemberId, Bytes)>) {
        while let Some(Reverse((t, ..))) = self.queue.peek() {
            if *t > now {
                break;
            }
            if let Some(Reverse((_, _, to, bytes))) = self.queue.pop() {
                out.push((to, bytes));
            }
        }
    }

    /// Datagrams waiting in the delay queue.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// What the emulator did so far.
    pub fn stats(&self) -> NetStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mpcomm_sim::net::Delay;

    #[test]
    fn delays_between_regions_and_not_within() {
        let profile = NetProfile {
            intra: Delay::new(Duration::ZERO, Duration::ZERO),
            inter: Delay::new(Duration::from_millis(30), Duration::ZERO),
            ..NetProfile::default()
        };
        let cfg = WanConfig {
            profile,
            regions: vec![0, 0, 1],
            seed: 9,
        };
        let mut w = WanEmulator::new(&cfg, 0);
        let now = Instant::now();
        let mut out = vec![];
        w.route(1, b"same region", now, &mut out);
        w.route(2, b"other region", now, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, 1);
        assert_eq!(w.next_due(), Some(now + Duration::from_millis(30)));
        out.clear();
        w.release(now + Duration::from_millis(29), &mut out);
        assert!(out.is_empty());
        w.release(now + Duration::from_millis(30), &mut out);
        assert_eq!(out, vec![(2, Bytes::from_static(b"other region"))]);
        assert_eq!(w.queued(), 0);
    }
}
