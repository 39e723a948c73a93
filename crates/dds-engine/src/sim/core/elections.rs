//! Elections: who may stand, who wins (voters vote for a candidate at least as fresh as themselves), when an
//! election is called (election timeout plus jitter), priority takeovers and the majority check. Terms count
//! successful elections only, and every one is recorded in the truth with its cause.

use super::{Event, Fleet, Proc, WriteRef};
use crate::model::MemberKind;
use crate::plane::{MemberState, Millis};
use crate::sim::truth::{push_bounded, ElectionCause, ElectionRecord};

fn is_voting_state(s: MemberState) -> bool {
    matches!(
        s,
        MemberState::Primary
            | MemberState::Secondary
            | MemberState::Startup2
            | MemberState::Recovering
            | MemberState::Arbiter
            | MemberState::Rollback
    )
}

impl Fleet {
    // ----------------------------------------------------------------------------------------------
    // Elections

    pub(super) fn lose_primary(&mut self, rs: usize, elect: bool) {
        let Some(p) = self.sets[rs].primary.take() else {
            return;
        };
        let now = self.now_ms;
        let set = &mut self.sets[rs];
        set.last_primary = Some(p);
        set.write = WriteRef::Frozen(now);
        self.open_no_primary(rs);
        self.cancel(
            |e| matches!(*e, Event::Takeover { rs: r, .. } | Event::MajorityCheck { rs: r } if r == rs),
        );
        if elect && !self.sets[rs].standalone {
            let at = now + self.election_delay();
            self.schedule_election(rs, at);
        }
    }

    pub(super) fn schedule_election(&mut self, rs: usize, at_ms: Millis) {
        if self.torn_down {
            return;
        }
        let pending = self
            .queue
            .iter()
            .find(|(_, e)| matches!(**e, Event::Election { rs: r } if r == rs))
            .map(|(&k, _)| k);
        if let Some(k) = pending {
            if k.0 <= at_ms {
                return;
            }
            self.queue.remove(&k);
        }
        self.schedule(at_ms, Event::Election { rs });
    }

    /// Whether member `c` may stand for election now.
    pub(super) fn can_stand(&self, rs: usize, c: usize) -> bool {
        let mem = &self.members[c];
        mem.proc == Proc::Up
            && mem.state == MemberState::Secondary
            && mem.kind.electable()
            && mem.priority > 0
            && self.now_ms >= mem.ineligible_until_ms
            && !(self.fault_no_new_primary(rs) && self.sets[rs].last_primary != Some(c))
    }

    /// Whether `c` gets a majority: voters vote for a candidate at least as fresh as themselves.
    pub(super) fn wins(&self, rs: usize, c: usize) -> bool {
        let oc = self.optime(c);
        let votes = self.sets[rs]
            .members
            .iter()
            .filter(|&&v| {
                let mem = &self.members[v];
                mem.kind.votes()
                    && mem.proc != Proc::Down
                    && is_voting_state(mem.state)
                    && (v == c || mem.kind == MemberKind::Arbiter || self.optime(v) <= oc)
            })
            .count();
        votes >= self.sets[rs].majority
    }

    pub(super) fn pick_winner(&self, rs: usize) -> Option<usize> {
        let mut candidates: Vec<usize> = self.sets[rs]
            .members
            .iter()
            .copied()
            .filter(|&c| self.can_stand(rs, c))
            .collect();
        candidates.sort_by_key(|&c| {
            (
                std::cmp::Reverse(self.members[c].priority),
                std::cmp::Reverse(self.optime(c)),
                c,
            )
        });
        candidates.into_iter().find(|&c| self.wins(rs, c))
    }

    pub(super) fn become_primary(
        &mut self,
        rs: usize,
        w: usize,
        cause: ElectionCause,
        step_down_id: Option<u64>,
    ) {
        let now = self.now_ms;
        self.cancel(
            |e| matches!(*e, Event::Election { rs: r } | Event::Handoff { rs: r, .. } if r == rs),
        );
        // Taken before `w` is primary (a primary's optime is "now"): what the winner had applied, the
        // point after which the old primary's writes are rolled back.
        let winner_optime_ms = self.optime(w);
        let set = &mut self.sets[rs];
        set.primary = Some(w);
        set.term += 1;
        set.write = WriteRef::Live;
        set.ever_primary = true;
        let term = set.term;
        self.close_no_primary(rs);
        let record = ElectionRecord {
            term,
            at_ms: now,
            winner: self.members[w].node_id.clone(),
            cause,
            step_down_id,
            winner_optime_ms,
        };
        push_bounded(
            &mut self.truth.replica_sets[rs].elections,
            record,
            self.params.truth_log_limit,
        );
        self.set_state(w, MemberState::Primary);
        self.reconsider_takeover(rs);
        self.check_majority(rs);
    }

    /// After a member became able to take part: call an election if there is no primary, or look for a
    /// priority takeover if there is one.
    pub(super) fn reconsider(&mut self, rs: usize) {
        if self.sets[rs].standalone || self.torn_down {
            return;
        }
        if self.sets[rs].primary.is_some() {
            self.reconsider_takeover(rs);
            return;
        }
        let handoff_pending = self
            .queue
            .values()
            .any(|e| matches!(*e, Event::Handoff { rs: r, .. } if r == rs));
        if handoff_pending {
            return;
        }
        let delay = if self.sets[rs].ever_primary {
            self.election_delay()
        } else {
            self.draw(self.params.initiate_min_ms, self.params.initiate_max_ms)
        };
        self.schedule_election(rs, self.now_ms + delay);
    }

    pub(super) fn reconsider_takeover(&mut self, rs: usize) {
        self.cancel(|e| matches!(*e, Event::Takeover { rs: r, .. } if r == rs));
        let Some(p) = self.sets[rs].primary else {
            return;
        };
        if self.torn_down {
            return;
        }
        let pp = self.members[p].priority;
        let candidate = self.sets[rs]
            .members
            .iter()
            .copied()
            .filter(|&c| {
                let mem = &self.members[c];
                c != p
                    && mem.priority > pp
                    && mem.kind.electable()
                    && mem.proc == Proc::Up
                    && mem.state == MemberState::Secondary
                    && !self.fault_no_new_primary(rs)
            })
            .min_by_key(|&c| (std::cmp::Reverse(self.members[c].priority), c));
        let Some(c) = candidate else {
            return;
        };
        let Some(fresh_at) = self.time_fresh(c) else {
            return;
        };
        let at = fresh_at.max(self.members[c].ineligible_until_ms)
            + self.params.priority_takeover_delay_ms.max(1)
            + self.jitter();
        self.schedule(at, Event::Takeover { rs, candidate: c });
    }

    /// A primary that cannot see a majority of voters steps down after the election timeout.
    pub(super) fn check_majority(&mut self, rs: usize) {
        let set = &self.sets[rs];
        if set.standalone || set.primary.is_none() {
            return;
        }
        let able = set
            .members
            .iter()
            .filter(|&&v| {
                let mem = &self.members[v];
                mem.kind.votes() && mem.proc != Proc::Down && is_voting_state(mem.state)
            })
            .count();
        let pending = self
            .queue
            .values()
            .any(|e| matches!(*e, Event::MajorityCheck { rs: r } if r == rs));
        if able < set.majority && !pending {
            let at = self.now_ms + self.params.election_timeout_ms.max(1);
            self.schedule(at, Event::MajorityCheck { rs });
        }
    }

    pub(super) fn voters_able(&self, rs: usize) -> usize {
        self.sets[rs]
            .members
            .iter()
            .filter(|&&v| {
                let mem = &self.members[v];
                mem.kind.votes() && mem.proc != Proc::Down && is_voting_state(mem.state)
            })
            .count()
    }
}
