//! Bookkeeping from every observation, whatever the operation decides next: elections and what caused them,
//! windows without a primary, kernels seen, when restarted processes serve again. What it records is for
//! the report and the audit; the steppers decide from the observation itself.

use super::state::{
    ElectionCause, ElectionRecord, MemberStep, PrimaryStage, RollingOperation, RsTrack,
};
use crate::plane::{DeploymentObservation, Millis, ReplicaSetObservation};

impl RollingOperation {
    /// Bookkeeping from every observation: elections (term deltas), windows without a primary, kernels seen,
    /// when restarted processes serve again.
    pub(super) fn observe(&mut self, obs: &DeploymentObservation, now: Millis) {
        let target = self.target().map(str::to_string);
        for rs in &mut self.replica_sets {
            let Some(ro) = obs.replica_set(&rs.name) else {
                continue;
            };
            match rs.last_term {
                None => {
                    rs.first_term = Some(ro.term);
                    rs.last_term = Some(ro.term);
                }
                Some(t) if ro.term > t => {
                    let cause = election_cause(rs, ro);
                    rs.elections.push(ElectionRecord {
                        at_ms: now,
                        term: ro.term,
                        count: ro.term - t,
                        new_primary: ro.primary.clone(),
                        cause,
                    });
                    rs.last_term = Some(ro.term);
                }
                _ => {}
            }
            if ro.primary.is_some() {
                rs.last_primary = ro.primary.clone();
            }
            match (ro.primary.is_some(), rs.no_primary_since_ms) {
                (false, None) => rs.no_primary_since_ms = Some(now),
                (true, Some(since)) => {
                    rs.close_no_primary(since, now);
                    rs.no_primary_since_ms = None;
                }
                _ => {}
            }
            for p in &mut rs.procs {
                let Some(m) = ro.member(&p.node_id) else {
                    continue;
                };
                if m.process_up {
                    p.last_kernel = m.kernel_version.clone();
                }
                let restarted_process = match p.pre_stop_started_ms {
                    Some(old) => m.started_ms != Some(old),
                    None => true,
                } && m.state_since_ms >= m.started_ms.unwrap_or(0);
                if p.stop_issued_ms.is_some()
                    && p.serving_again_ms.is_none()
                    && matches!(p.step, MemberStep::Gating { .. } | MemberStep::Done)
                    && m.process_up
                    && m.healthy
                    && m.state.is_steady()
                    && restarted_process
                {
                    p.serving_again_ms = Some(now);
                }
            }
        }
        for ms in &mut self.mongos {
            let p = &mut ms.proc;
            let Some(m) = obs.mongos.iter().find(|m| m.node_id == p.node_id) else {
                continue;
            };
            if m.up {
                p.last_kernel = m.kernel_version.clone();
                let kernel_ok = match &target {
                    Some(t) => m.kernel_version.as_deref() == Some(t.as_str()),
                    None => true,
                };
                if p.stop_issued_ms.is_some()
                    && p.serving_again_ms.is_none()
                    && matches!(p.step, MemberStep::Gating { .. } | MemberStep::Done)
                    && kernel_ok
                {
                    p.serving_again_ms = Some(now);
                }
            }
        }
    }
}

fn election_cause(rs: &RsTrack, ro: &ReplicaSetObservation) -> ElectionCause {
    let new = ro.primary.as_deref();
    if let Some(stage) = &rs.primary_stage {
        let old = match stage {
            PrimaryStage::SteppingDown { node_id, .. } => node_id,
            PrimaryStage::AwaitingNewPrimary { node_id, .. } => node_id,
        };
        if new.is_some() && new != Some(old.as_str()) {
            return ElectionCause::StepDown;
        }
    }
    let priority = |id: &str| {
        rs.roles
            .iter()
            .find(|r| r.node_id == id)
            .map(|r| r.priority)
    };
    if let (Some(new), Some(prev)) = (new, rs.last_primary.as_deref()) {
        if new != prev {
            if let (Some(a), Some(b)) = (priority(new), priority(prev)) {
                // The previous primary is still up (no crash forced the election) and the winner outranks it.
                let prev_up = ro
                    .member(prev)
                    .is_some_and(|m| m.process_up && m.state.is_steady());
                if a > b && prev_up {
                    return ElectionCause::PriorityTakeover;
                }
            }
        }
    }
    ElectionCause::Unplanned
}
