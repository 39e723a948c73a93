//! The balancer: rounds computed lazily from the seed (a round nobody looks at costs nothing and needs no
//! event), `balancerStop` letting a running round finish, `balancerStart`, and the direct setter tests use
//! (F10/F11).

use super::queue::splitmix64;
use super::{Event, Fleet};
use crate::plane::{BalancerMode, CommandError, Millis};
use crate::sim::truth::push_bounded;

impl Fleet {
    fn natural_round_end(&self, t: Millis) -> Option<Millis> {
        let b = self.balancer?;
        if b.mode != BalancerMode::Full || t < b.full_since_ms {
            return None;
        }
        let cs = self.config_rs?;
        self.sets[cs].primary?;
        let interval = self.params.balancer_interval_ms.max(1);
        let d = t - b.full_since_ms;
        let k = d / interval;
        if k == 0 {
            return None;
        }
        let lo = self.params.balancer_round_min_ms;
        let hi = self.params.balancer_round_max_ms.max(lo);
        // Lazily computed, so a round's length is a pure function of (seed, round number).
        let dur = (lo + splitmix64(self.seed ^ 0xBA1A_4CE5 ^ k) % (hi - lo + 1)).min(interval);
        (d % interval < dur).then_some(b.full_since_ms + k * interval + dur)
    }

    pub(super) fn in_round(&self) -> bool {
        self.balancer
            .is_some_and(|b| self.now_ms < b.forced_round_until_ms)
            || self.natural_round_end(self.now_ms).is_some()
    }

    pub(in crate::sim) fn set_balancer(
        &mut self,
        mode: BalancerMode,
        in_round_until_ms: Option<Millis>,
    ) {
        let now = self.now_ms;
        let Some(b) = self.balancer.as_mut() else {
            return;
        };
        if b.mode != mode {
            b.mode = mode;
            if mode == BalancerMode::Full {
                b.full_since_ms = now;
            }
            push_bounded(
                &mut self.truth.balancer_modes,
                (now, mode),
                self.params.truth_log_limit,
            );
        }
        b.forced_round_until_ms = in_round_until_ms.unwrap_or(0);
        if let Some(until) = in_round_until_ms {
            self.schedule(until, Event::Visible);
        }
    }

    pub(super) fn balancer_command(&mut self, mode: BalancerMode) -> Result<(), CommandError> {
        if self.balancer.is_none() {
            return Err(CommandError::Other("not a sharded cluster".into()));
        }
        if !self.mongos.iter().any(|m| m.ready) {
            return Err(CommandError::Other("no mongos available".into()));
        }
        if self
            .config_rs
            .is_none_or(|c| self.sets[c].primary.is_none())
        {
            return Err(CommandError::Other(
                "config server replica set has no primary".into(),
            ));
        }
        let now = self.now_ms;
        let natural_end = self.natural_round_end(now);
        if self.balancer.is_some_and(|b| b.mode == mode) {
            return Ok(());
        }
        if mode == BalancerMode::Off {
            // balancerStop lets the running round finish.
            if let Some(end) = natural_end {
                if let Some(b) = self.balancer.as_mut() {
                    b.forced_round_until_ms = b.forced_round_until_ms.max(end);
                }
                self.schedule(end, Event::Visible);
            }
        }
        let Some(b) = self.balancer.as_mut() else {
            return Ok(());
        };
        b.mode = mode;
        if mode == BalancerMode::Full {
            b.full_since_ms = now;
        }
        push_bounded(
            &mut self.truth.balancer_modes,
            (now, mode),
            self.params.truth_log_limit,
        );
        Ok(())
    }
}
