//! What `replSetGetStatus` shows: each member's state as the rest of the set last learnt it through
//! heartbeats, and the observation built from that. Kept apart from the real state because the lag between
//! the two is exactly what a careless orchestrator trips over.

use super::{Event, Fleet, Proc, Seen};
use crate::plane::{
    BalancerObservation, DeploymentObservation, MemberObservation, MemberState, Millis,
    MongosObservation, ReplicaSetObservation,
};

impl Fleet {
    // ----------------------------------------------------------------------------------------------
    // Views

    fn last_heartbeat(&self, m: usize, t: Millis) -> Millis {
        let hb = self.params.heartbeat_interval_ms.max(1);
        let p = self.members[m].hb_phase_ms % hb;
        if t < p {
            0
        } else {
            t - (t - p) % hb
        }
    }

    fn seen_at(&self, m: usize, t: Millis) -> Option<&Seen> {
        let hb_t = self.last_heartbeat(m, t);
        let seen = &self.members[m].seen;
        seen.iter()
            .rev()
            .find(|s| s.at_ms <= hb_t)
            .or_else(|| seen.first())
    }

    pub(super) fn record_seen(&mut self, m: usize) {
        let now = self.now_ms;
        let hb = self.params.heartbeat_interval_ms.max(1);
        let mem = &mut self.members[m];
        let entry = Seen {
            at_ms: now,
            state: mem.state,
            state_since_ms: mem.state_since_ms,
            reachable: mem.proc != Proc::Down,
        };
        if mem.seen.last().is_some_and(|s| {
            s.state == entry.state
                && s.reachable == entry.reachable
                && s.state_since_ms == entry.state_since_ms
        }) {
            return;
        }
        mem.seen.push(entry);
        // Entries older than one that every future heartbeat view will see are never needed again.
        while mem.seen.len() > 1 && mem.seen[1].at_ms + hb <= now {
            mem.seen.remove(0);
        }
        let p = mem.hb_phase_ms % hb;
        let next_tick = if now < p {
            p
        } else {
            now + (hb - (now - p) % hb) % hb
        };
        if next_tick > now {
            self.schedule(next_tick, Event::Visible);
        }
    }

    pub(in crate::sim) fn observe(&self) -> DeploymentObservation {
        let now = self.now_ms;
        let replica_sets = self
            .sets
            .iter()
            .enumerate()
            .map(|(r, s)| ReplicaSetObservation {
                name: s.name.clone(),
                term: s.term,
                primary: s.primary.map(|p| self.members[p].node_id.clone()),
                primary_optime_ms: if s.primary.is_some() {
                    self.write_ref(r)
                } else {
                    0
                },
                members: s.members.iter().map(|&m| self.observe_member(m)).collect(),
                oplog_window_ms: (!s.standalone).then_some(s.oplog_window_ms),
                fcv: self.fcv_of(r),
            })
            .collect();
        let mongos = self
            .mongos
            .iter()
            .map(|ms| MongosObservation {
                node_id: ms.node_id.clone(),
                up: ms.ready,
                kernel_version: ms.ready.then(|| ms.kernel.clone()),
                started_ms: if ms.ready { ms.started_ms } else { None },
            })
            .collect();
        DeploymentObservation {
            now_ms: now,
            replica_sets,
            mongos,
            balancer: self.balancer.map(|b| BalancerObservation {
                mode: b.mode,
                in_balancer_round: self.in_round(),
            }),
        }
    }

    fn observe_member(&self, m: usize) -> MemberObservation {
        let mem = &self.members[m];
        let running = mem.proc != Proc::Down;
        // Who is primary is known at once (the new primary says so itself); everything else comes from
        // heartbeats.
        let (state, since, healthy) = match self.seen_at(m, self.now_ms) {
            Some(s) if mem.state != MemberState::Primary && s.state != MemberState::Primary => {
                (s.state, s.state_since_ms, s.reachable)
            }
            _ => (mem.state, mem.state_since_ms, running),
        };
        MemberObservation {
            node_id: mem.node_id.clone(),
            state,
            healthy,
            process_up: running,
            kernel_version: running.then(|| mem.kernel.clone()),
            optime_ms: self.optime(m),
            state_since_ms: since,
            started_ms: if running { mem.started_ms } else { None },
        }
    }
}
