//! The last phase of a major version upgrade (`RollingKind::EngineUpgrade`): once every process in the
//! deployment runs the new major's binary, `setFeatureCompatibilityVersion` to the new major — through a
//! mongos for a sharded cluster, on the primary for a replica set, as MongoDB documents it. Raising the FCV
//! is what makes the upgrade one-way, so it waits for every process to be observed on the target (a process
//! that crashed after its restart counts by its record: it restarted onto the target), and it is never
//! issued after a failure. The command is idempotent; it is repeated until every replica set reports the
//! new FCV, up to `pre_stop_gate_deadline_ms`.

use super::context::{failure, Cx};
use super::state::{FailureReason, Phase, RollingOperation};
use crate::plane::{Command, CommandError, DeploymentObservation, Millis};

/// Wait between a refused (or not yet visible) `setFeatureCompatibilityVersion` and its repeat.
pub(super) const FCV_RETRY_MS: Millis = 2_000;
/// Wait while a process is not yet observed on the target.
const FCV_WAIT_MS: Millis = 1_000;

impl RollingOperation {
    /// The first process that keeps the FCV from being raised: up on another kernel, or down without
    /// having been restarted onto the target by this operation.
    pub fn fcv_blocker(&self, obs: &DeploymentObservation) -> Option<String> {
        let target = self.target()?;
        for rs in &self.replica_sets {
            let Some(ro) = obs.replica_set(&rs.name) else {
                return Some(rs.name.clone());
            };
            if ro.primary.is_none() {
                return Some(format!("{} (no primary)", rs.name));
            }
            for p in &rs.procs {
                let m = ro.member(&p.node_id);
                let kernel = m
                    .filter(|m| m.process_up)
                    .and_then(|m| m.kernel_version.as_deref());
                let ok = match kernel {
                    Some(k) => k == target,
                    None => p.step.finished_ok() && p.last_kernel.as_deref() == Some(target),
                };
                if !ok {
                    return Some(p.node_id.clone());
                }
            }
        }
        for ms in &self.mongos {
            let m = obs.mongos.iter().find(|m| m.node_id == ms.proc.node_id);
            let kernel = m.filter(|m| m.up).and_then(|m| m.kernel_version.as_deref());
            let ok = match kernel {
                Some(k) => k == target,
                None => {
                    ms.proc.step.finished_ok() && ms.proc.last_kernel.as_deref() == Some(target)
                }
            };
            if !ok {
                return Some(ms.proc.node_id.clone());
            }
        }
        None
    }

    /// Whether every replica set reports `fcv`.
    fn fcv_everywhere(&self, obs: &DeploymentObservation, fcv: &str) -> bool {
        self.replica_sets.iter().all(|rs| {
            obs.replica_set(&rs.name)
                .is_some_and(|ro| ro.fcv.as_deref() == Some(fcv))
        })
    }

    pub(super) fn step_fcv(&mut self, obs: &DeploymentObservation, since_ms: Millis, cx: &mut Cx) {
        let Some(target) = self.target_fcv().map(str::to_string) else {
            self.phase = Phase::Finished;
            return;
        };
        if self.failure.is_some() {
            self.phase = Phase::Finished;
            return;
        }
        if self.fcv.from.is_none() {
            self.fcv.from = self
                .replica_sets
                .first()
                .and_then(|rs| obs.replica_set(&rs.name))
                .and_then(|ro| ro.fcv.clone());
        }
        if self.fcv_everywhere(obs, &target) {
            self.fcv.raised_ms = Some(cx.now);
            self.phase = Phase::Finished;
            return;
        }
        let blocker = self.fcv_blocker(obs);
        if cx.deadline(since_ms, self.config.pre_stop_gate_deadline_ms) {
            cx.failures.push(failure(
                None,
                None,
                FailureReason::FcvNotRaised {
                    attempts: self.fcv.attempts,
                    last_error: self.fcv.last_error.clone(),
                    waiting_for: blocker,
                },
                cx.now,
            ));
            self.phase = Phase::Finished;
            return;
        }
        if blocker.is_some() {
            cx.wake_at(cx.now + FCV_WAIT_MS);
            return;
        }
        if let Some(t) = self.fcv.retry_at_ms.filter(|t| cx.now < *t) {
            cx.wake_at(t);
            return;
        }
        self.fcv.retry_at_ms = None;
        self.fcv.issued = true;
        self.fcv.acked = false;
        self.fcv.attempts += 1;
        self.fcv.first_issued_ms.get_or_insert(cx.now);
        let replica_set = if self.sharded {
            None
        } else {
            self.replica_sets.first().map(|rs| rs.name.clone())
        };
        cx.cmds.push(Command::SetFeatureCompatibilityVersion {
            replica_set,
            version: target,
        });
    }

    pub(super) fn fcv_result(&mut self, result: Result<(), CommandError>, now: Millis) {
        // Either way the next step looks again after a pause: the new FCV must be observed everywhere.
        self.fcv.retry_at_ms = Some(now + FCV_RETRY_MS);
        match result {
            Ok(()) => self.fcv.acked = true,
            Err(e) => {
                self.fcv.issued = false;
                self.fcv.last_error = Some(e);
            }
        }
    }
}
