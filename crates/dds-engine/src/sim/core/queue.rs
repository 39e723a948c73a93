//! Randomness and the event queue, the only sources of change over virtual time. A draw is a pure function
//! of (seed, draw counter) and events run in (time, sequence) order, which is what makes a run replay
//! exactly from its seed and a restored snapshot carry on exactly where it stopped.

use super::{Event, Fleet, MAX_TIME_MS};
use crate::plane::Millis;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

impl Fleet {
    // ----------------------------------------------------------------------------------------------
    // Randomness and the queue

    /// A uniform draw from `lo..=hi`; each draw seeds a fresh `SmallRng` from the seed and a counter, so
    /// the generator state is just the counter (and snapshots need no RNG serialisation).
    pub(super) fn draw(&mut self, lo: u64, hi: u64) -> u64 {
        let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
        let mut rng = SmallRng::seed_from_u64(
            self.seed
                .wrapping_add(self.draws.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        );
        self.draws += 1;
        rng.gen_range(lo..=hi)
    }

    pub(super) fn draw_rate(&mut self) -> u64 {
        self.draw(
            self.params.catch_up_rate_min_permille,
            self.params.catch_up_rate_max_permille,
        )
        .max(1)
    }

    pub(super) fn jitter(&mut self) -> Millis {
        self.draw(0, self.params.election_jitter_max_ms)
    }

    /// Election timeout plus jitter; never zero, so retries always move time forward.
    pub(super) fn election_delay(&mut self) -> Millis {
        self.params.election_timeout_ms.max(1) + self.jitter()
    }

    pub(super) fn schedule(&mut self, at_ms: Millis, e: Event) {
        self.seq += 1;
        // Time ends at MAX_TIME_MS: later events never happen (clamping them would loop forever).
        if at_ms <= MAX_TIME_MS {
            self.queue.insert((at_ms.max(self.now_ms), self.seq), e);
        }
    }

    pub(super) fn cancel(&mut self, f: impl Fn(&Event) -> bool) {
        self.queue.retain(|_, e| !f(e));
    }

    pub(in crate::sim) fn next_event_ms(&self) -> Option<Millis> {
        self.queue.keys().next().map(|&(t, _)| t)
    }

    pub(in crate::sim) fn advance_to(&mut self, t: Millis) {
        let t = t.min(MAX_TIME_MS);
        while self.queue.keys().next().is_some_and(|&(at, _)| at <= t) {
            let Some(((at, _), e)) = self.queue.pop_first() else {
                break;
            };
            self.now_ms = self.now_ms.max(at);
            self.handle(e);
        }
        self.now_ms = self.now_ms.max(t);
    }
}

/// SplitMix64: a stateless hash for lazily computed random quantities.
pub(super) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
