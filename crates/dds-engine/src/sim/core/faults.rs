//! Arming faults, and which armed faults apply to a member, a mongos or a replica set. The rules consult
//! faults only through these queries, so what each fault reaches is decided in one place (the faults
//! themselves are described on `Fault`).

use super::{Event, Fleet};
use crate::plane::{CommandError, MemberState, Millis};
use crate::sim::fault::Fault;
use crate::sim::SimParams;

impl Fleet {
    // ----------------------------------------------------------------------------------------------
    // Faults

    pub(super) fn fault_start_fails(&self, m: usize) -> bool {
        let id = &self.members[m].node_id;
        self.faults
            .iter()
            .any(|f| matches!(f, Fault::StartFails { node_id } if node_id == id))
    }
    pub(super) fn fault_stuck(&self, m: usize) -> Option<MemberState> {
        let id = &self.members[m].node_id;
        self.faults.iter().find_map(|f| match f {
            Fault::StuckInState { node_id, state } if node_id == id => Some(*state),
            _ => None,
        })
    }
    pub(super) fn fault_slow_apply(&self, m: usize) -> bool {
        let id = &self.members[m].node_id;
        self.faults
            .iter()
            .any(|f| matches!(f, Fault::NeverCatchesUp { node_id } if node_id == id))
    }
    pub(super) fn fault_slow_start_ms(&self, m: usize) -> Millis {
        let id = &self.members[m].node_id;
        self.faults
            .iter()
            .filter_map(|f| match f {
                Fault::SlowStart { node_id, extra_ms } if node_id == id => Some(*extra_ms),
                _ => None,
            })
            .fold(0, Millis::saturating_add)
            .min(SimParams::MAX_DURATION_MS)
    }
    pub(super) fn fault_step_down_refused(&self, rs: usize) -> bool {
        let name = &self.sets[rs].name;
        self.faults.iter().any(|f| {
            matches!(f, Fault::StepDownRefused { replica_set, until_ms }
            if replica_set == name && until_ms.is_none_or(|u| self.now_ms < u))
        })
    }
    pub(super) fn fault_no_new_primary(&self, rs: usize) -> bool {
        let name = &self.sets[rs].name;
        self.faults.iter().any(|f| {
            matches!(f, Fault::NoNewPrimary { replica_set, until_ms }
            if replica_set == name && until_ms.is_none_or(|u| self.now_ms < u))
        })
    }
    pub(super) fn fault_mongos_start_fails(&self, i: usize) -> bool {
        let id = &self.mongos[i].node_id;
        self.faults
            .iter()
            .any(|f| matches!(f, Fault::MongosStartFails { node_id } if node_id == id))
    }

    fn member_index(&self, node_id: &str) -> Option<usize> {
        self.members.iter().position(|m| m.node_id == node_id)
    }
    pub(super) fn set_index(&self, name: &str) -> Option<usize> {
        self.sets.iter().position(|s| s.name == name)
    }

    pub(in crate::sim) fn arm_fault(&mut self, fault: Fault) -> Result<(), CommandError> {
        let no_node = |id: &str| CommandError::NoSuchNode(id.chars().take(128).collect());
        match &fault {
            Fault::StartFails { node_id }
            | Fault::StuckInState { node_id, .. }
            | Fault::NeverCatchesUp { node_id }
            | Fault::SlowStart { node_id, .. } => {
                self.member_index(node_id).ok_or_else(|| no_node(node_id))?;
            }
            Fault::MongosStartFails { node_id } => {
                if !self.mongos.iter().any(|m| &m.node_id == node_id) {
                    return Err(no_node(node_id));
                }
            }
            Fault::StepDownRefused { replica_set, .. }
            | Fault::NoNewPrimary { replica_set, .. } => {
                self.set_index(replica_set)
                    .ok_or_else(|| no_node(replica_set))?;
            }
            Fault::Crash {
                node_id,
                at_ms,
                recover_after_ms,
            } => {
                let m = self.member_index(node_id).ok_or_else(|| no_node(node_id))?;
                let e = Event::Crash {
                    m,
                    recover_after_ms: *recover_after_ms,
                };
                self.schedule(*at_ms, e);
                return Ok(());
            }
            Fault::PrimaryChange { replica_set, at_ms } => {
                let rs = self
                    .set_index(replica_set)
                    .ok_or_else(|| no_node(replica_set))?;
                self.schedule(*at_ms, Event::PrimaryChange { rs });
                return Ok(());
            }
            Fault::BalancerRound { until_ms } => {
                let until = *until_ms;
                let b = self.balancer.as_mut().ok_or_else(|| no_node("balancer"))?;
                b.forced_round_until_ms = b.forced_round_until_ms.max(until);
                self.schedule(until, Event::Visible);
                return Ok(());
            }
            Fault::OplogWindow {
                replica_set,
                window_ms,
            } => {
                let rs = self
                    .set_index(replica_set)
                    .ok_or_else(|| no_node(replica_set))?;
                self.sets[rs].oplog_window_ms = *window_ms;
                return Ok(());
            }
        }
        self.faults.push(fault);
        Ok(())
    }
}
