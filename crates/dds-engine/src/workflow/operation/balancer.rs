//! The balancer phases (I6): stop it before any replica set is touched and wait out a round in progress,
//! and at the end put back the mode recorded before the operation touched it. Both sides hinge on that one
//! recorded mode, so they are kept together.

use super::context::{failure, Cx};
use super::state::{FailureReason, Phase, RollingOperation};
use crate::plane::{BalancerMode, Command, DeploymentObservation, Millis};

impl RollingOperation {
    pub(super) fn step_stop_balancer(
        &mut self,
        obs: &DeploymentObservation,
        since_ms: Millis,
        cx: &mut Cx,
    ) {
        let Some(b) = obs.balancer else {
            cx.failures.push(failure(
                None,
                None,
                FailureReason::BalancerNotObserved,
                cx.now,
            ));
            self.phase = Phase::RestoringBalancer { since_ms: cx.now };
            return;
        };
        if self.balancer.recorded.is_none() {
            self.balancer.recorded = Some(b.mode);
        }
        if b.mode == BalancerMode::Off && !b.in_balancer_round {
            self.phase = Phase::ReplicaSets;
            return;
        }
        if cx.deadline(since_ms, self.config.balancer_stop_deadline_ms) {
            cx.failures.push(failure(
                None,
                None,
                FailureReason::BalancerStopTimeout {
                    in_balancer_round: b.in_balancer_round,
                },
                cx.now,
            ));
            self.phase = Phase::RestoringBalancer { since_ms: cx.now };
            return;
        }
        if b.mode != BalancerMode::Off && !(self.balancer.stop_issued && self.balancer.stop_acked) {
            self.balancer.stop_issued = true;
            self.balancer.stop_acked = false;
            cx.cmds.push(Command::StopBalancer);
        }
    }

    pub(super) fn step_restore_balancer(
        &mut self,
        obs: &DeploymentObservation,
        since_ms: Millis,
        cx: &mut Cx,
    ) {
        let want = self.balancer.recorded;
        let observed = obs.balancer.map(|b| b.mode);
        match want {
            Some(BalancerMode::Full) => {
                if observed == Some(BalancerMode::Full) {
                    self.balancer.restored = Some(true);
                    self.phase = self.after_balancer(cx.now);
                } else if cx.deadline(since_ms, self.config.balancer_restore_deadline_ms) {
                    self.balancer.restored = Some(false);
                    let why = self
                        .balancer
                        .last_error
                        .as_ref()
                        .map_or(String::new(), |e| format!(" (last error: {e})"));
                    self.warnings.push(format!(
                        "balancer not observed back in mode full before the deadline{why}"
                    ));
                    self.phase = self.after_balancer(cx.now);
                } else if let Some(t) = self.balancer.retry_at_ms.filter(|t| cx.now < *t) {
                    cx.wake_at(t);
                } else if !(self.balancer.start_issued && self.balancer.start_acked) {
                    self.balancer.retry_at_ms = None;
                    self.balancer.start_issued = true;
                    self.balancer.start_acked = false;
                    cx.cmds.push(Command::StartBalancer);
                }
            }
            Some(BalancerMode::Off) => {
                self.balancer.restored = Some(observed == Some(BalancerMode::Off));
                self.phase = self.after_balancer(cx.now);
            }
            None => self.phase = self.after_balancer(cx.now),
        }
    }
}
