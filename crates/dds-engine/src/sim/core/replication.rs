//! Replication arithmetic: each member's optime as a closed-form function of time (anchor, apply rate, steady
//! lag, delay), and when a member will reach an optime or come within the takeover freshness window. Being
//! computed rather than stepped, catching up needs no events of its own.

use super::{Fleet, WriteRef};
use crate::model::MemberKind;
use crate::plane::Millis;

impl Fleet {
    // ----------------------------------------------------------------------------------------------
    // Replication arithmetic

    pub(super) fn write_ref(&self, rs: usize) -> Millis {
        match self.sets[rs].write {
            WriteRef::Live => self.now_ms,
            WriteRef::Frozen(t) => t,
        }
    }

    fn optime_at(&self, m: usize, t: Millis) -> Millis {
        let mem = &self.members[m];
        if mem.kind == MemberKind::Arbiter {
            return 0;
        }
        if self.sets[mem.rs].primary == Some(m) {
            return self.write_ref(mem.rs);
        }
        let a = mem.apply;
        if !a.applying {
            return a.anchor_ms;
        }
        let by_rate = a.anchor_ms.saturating_add(
            t.saturating_sub(a.anchor_at_ms)
                .saturating_mul(a.rate_permille)
                / 1000,
        );
        let cap = self
            .write_ref(mem.rs)
            .min(t.saturating_sub(mem.lag_ms + mem.delay_ms));
        by_rate.min(cap).max(a.anchor_ms)
    }

    pub(super) fn optime(&self, m: usize) -> Millis {
        self.optime_at(m, self.now_ms)
    }

    /// When member `m`'s optime reaches `target`, assuming writes stopped at `target` (a stepdown).
    pub(super) fn time_reaching(&self, m: usize, target: Millis) -> Option<Millis> {
        if self.optime(m) >= target {
            return Some(self.now_ms);
        }
        let mem = &self.members[m];
        let a = mem.apply;
        if !a.applying {
            return None;
        }
        let by_lag = target + mem.lag_ms + mem.delay_ms;
        let need = target.saturating_sub(a.anchor_ms);
        let by_rate = a
            .anchor_at_ms
            .saturating_add(need.saturating_mul(1000).div_ceil(a.rate_permille.max(1)));
        Some(self.now_ms.max(by_lag).max(by_rate))
    }

    /// When member `m` comes within the takeover freshness window of a live primary's optime.
    pub(super) fn time_fresh(&self, m: usize) -> Option<Millis> {
        let window = self.params.priority_takeover_freshness_ms;
        let now = self.now_ms;
        if self.optime(m) + window >= now {
            return Some(now);
        }
        let mem = &self.members[m];
        let a = mem.apply;
        if !a.applying || mem.lag_ms + mem.delay_ms > window || a.rate_permille <= 1000 {
            return None;
        }
        // anchor + (t - at)·r/1000 ≥ t − window  ⇔  t·(r − 1000) ≥ at·r − anchor·1000 − window·1000
        let r = i128::from(a.rate_permille);
        let num = i128::from(a.anchor_at_ms) * r
            - i128::from(a.anchor_ms) * 1000
            - i128::from(window) * 1000;
        let den = r - 1000;
        let t = (num + den - 1).div_euclid(den);
        Some(now.max(u64::try_from(t.max(0)).unwrap_or(u64::MAX)))
    }
}
