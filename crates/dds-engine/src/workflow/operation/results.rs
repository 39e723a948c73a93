//! The plane's answers, recorded by [`RollingOperation::on_result`]: acknowledgements, and what a refused
//! stop, start or stepdown means for the durable step record. The runtime persists the state after each
//! answer, separately from `step`; nothing here issues a command, the next `step` acts on what was recorded.

use super::context::{failure, Cx};
use super::member::fail_process;
use super::state::{
    FailureReason, MemberStep, Phase, PrimaryStage, ProcessRecord, RevertOutcome, RevertStage,
    RollingOperation, RsTrack,
};
use crate::plane::{Command, CommandError, Millis};
use crate::workflow::config::UpgradeConfig;

/// Wait before repeating a refused `balancerStart`.
const BALANCER_RETRY_MS: Millis = 5_000;

/// Wait before repeating a start the plane refused because the process was still exiting.
const START_RETRY_MS: Millis = 1_000;

impl RollingOperation {
    /// Records the plane's answer to a command issued by `step`.
    pub fn on_result(&mut self, cmd: &Command, result: Result<(), CommandError>, now_ms: Millis) {
        if result.is_ok() {
            self.commands_ok += 1;
        }
        let mut cx = Cx {
            now: now_ms,
            cmds: Vec::new(),
            wake: None,
            failures: Vec::new(),
        };
        match cmd {
            Command::StopBalancer => match result {
                Ok(()) => self.balancer.stop_acked = true,
                Err(e) => {
                    cx.failures.push(failure(
                        None,
                        None,
                        FailureReason::CommandRejected {
                            command: "balancerStop".into(),
                            error: e,
                        },
                        now_ms,
                    ));
                    self.phase = Phase::RestoringBalancer { since_ms: now_ms };
                }
            },
            Command::StartBalancer => match result {
                Ok(()) => self.balancer.start_acked = true,
                Err(e) => {
                    // Retried until the restore deadline: the balancer must not stay off by accident (I6).
                    self.balancer.start_issued = false;
                    self.balancer.retry_at_ms = Some(now_ms + BALANCER_RETRY_MS);
                    self.balancer.last_error = Some(e);
                }
            },
            Command::StopMember {
                replica_set,
                node_id,
            }
            | Command::StartMember {
                replica_set,
                node_id,
                ..
            } => {
                let is_stop = matches!(cmd, Command::StopMember { .. });
                if let Some(rs) = self
                    .replica_sets
                    .iter_mut()
                    .find(|r| &r.name == replica_set)
                {
                    if let Some(p) = rs.procs.iter_mut().find(|p| &p.node_id == node_id) {
                        member_result(p, Some(replica_set), is_stop, result, &mut cx);
                    }
                }
            }
            Command::StopMongos { node_id } | Command::StartMongos { node_id, .. } => {
                let is_stop = matches!(cmd, Command::StopMongos { .. });
                if let Some(ms) = self.mongos.iter_mut().find(|m| &m.proc.node_id == node_id) {
                    member_result(&mut ms.proc, None, is_stop, result, &mut cx);
                }
            }
            Command::SetFeatureCompatibilityVersion { .. } => self.fcv_result(result, now_ms),
            Command::StepDown {
                replica_set,
                step_down_id,
                ..
            } => {
                if let Some(rs) = self
                    .replica_sets
                    .iter_mut()
                    .find(|r| &r.name == replica_set)
                {
                    step_down_result(&self.config, rs, *step_down_id, result, &mut cx);
                }
            }
        }
        for rs in &mut self.replica_sets {
            if cx
                .failures
                .iter()
                .any(|f| f.replica_set.as_deref() == Some(rs.name.as_str()))
            {
                rs.failed_here = true;
            }
        }
        self.absorb_failures(&mut cx);
    }
}

fn member_result(
    p: &mut ProcessRecord,
    rs: Option<&str>,
    is_stop: bool,
    result: Result<(), CommandError>,
    cx: &mut Cx,
) {
    match (&p.step, is_stop, result) {
        (MemberStep::Stopping { issued_ms, .. }, true, Ok(())) => {
            p.step = MemberStep::Stopping {
                issued_ms: *issued_ms,
                acked: true,
            }
        }
        (MemberStep::Stopping { .. }, true, Err(CommandError::IsPrimary(_))) => {
            // It became primary between the gate and the stop: untouched, re-planned on the next step.
            p.step = MemberStep::Pending;
        }
        (MemberStep::Stopping { .. }, true, Err(e)) => fail_process(
            p,
            rs,
            FailureReason::CommandRejected {
                command: "stop".into(),
                error: e,
            },
            cx,
        ),
        (MemberStep::Starting { issued_ms, .. }, false, Ok(())) => {
            p.step = MemberStep::Starting {
                issued_ms: *issued_ms,
                acked: true,
            }
        }
        (MemberStep::Starting { .. }, false, Err(CommandError::NotStopped(_))) if rs.is_none() => {
            // A mongos is reported down as soon as its shutdown begins; the process has not exited yet.
            p.start_retry_at_ms = Some(cx.now + START_RETRY_MS);
        }
        (MemberStep::Starting { issued_ms, .. }, false, Err(CommandError::NotStopped(_))) => {
            // Already running (a repeated start after a resume): judge it by the gate.
            p.step = MemberStep::Gating {
                start_issued_ms: *issued_ms,
                ok_since_ms: None,
            }
        }
        (MemberStep::Starting { .. }, false, Err(e)) => {
            fail_process(p, rs, FailureReason::StartFailed { error: e }, cx)
        }
        (MemberStep::Reverting(RevertStage::Stopping { issued_ms, .. }), true, Ok(())) => {
            p.step = MemberStep::Reverting(RevertStage::Stopping {
                issued_ms: *issued_ms,
                acked: true,
            })
        }
        (MemberStep::Reverting(RevertStage::Stopping { .. }), true, Err(e)) => {
            p.revert = Some(RevertOutcome::Skipped {
                reason: format!("stop refused: {e}"),
            });
            p.step = MemberStep::Failed;
        }
        (MemberStep::Reverting(RevertStage::Starting { issued_ms, .. }), false, Ok(())) => {
            p.step = MemberStep::Reverting(RevertStage::Starting {
                issued_ms: *issued_ms,
                acked: true,
            })
        }
        (
            MemberStep::Reverting(RevertStage::Starting { .. }),
            false,
            Err(CommandError::NotStopped(_)),
        ) => p.start_retry_at_ms = Some(cx.now + START_RETRY_MS),
        (MemberStep::Reverting(RevertStage::Starting { .. }), false, Err(e)) => {
            p.revert = Some(RevertOutcome::Failed {
                reason: format!("start on {} refused: {e}", p.from_kernel),
            });
            p.step = MemberStep::Failed;
        }
        // A late answer to a command the record has moved past (e.g. after a resume): the observation rules.
        _ => {}
    }
}

fn step_down_result(
    cfg: &UpgradeConfig,
    rs: &mut RsTrack,
    id: u64,
    result: Result<(), CommandError>,
    cx: &mut Cx,
) {
    let Some(PrimaryStage::SteppingDown {
        node_id,
        step_down_id,
        first_attempt_ms,
        attempts,
        ..
    }) = rs.primary_stage.clone()
    else {
        return;
    };
    if step_down_id != id {
        return;
    }
    match result {
        Ok(()) => {
            rs.stepdowns_accepted += 1;
            rs.primary_stage = Some(PrimaryStage::AwaitingNewPrimary {
                node_id,
                since_ms: cx.now,
                from_ack: true,
            })
        }
        Err(CommandError::NotPrimary(_)) => {
            // Someone else is primary already: the old primary is an ordinary member now.
            rs.primary_stage = None;
        }
        Err(e @ (CommandError::NoElectableSecondary | CommandError::Other(_))) => {
            if cx.now >= first_attempt_ms.saturating_add(cfg.stepdown_deadline_ms) {
                rs.primary_stage = None;
                if let Some(j) = rs.procs.iter().position(|p| p.node_id == node_id) {
                    rs.procs[j].step = MemberStep::Failed;
                }
                cx.failures.push(failure(
                    Some(&rs.name),
                    Some(&node_id),
                    FailureReason::StepDownRefused {
                        attempts,
                        last_error: Some(e),
                    },
                    cx.now,
                ));
            } else {
                rs.primary_stage = Some(PrimaryStage::SteppingDown {
                    node_id,
                    step_down_id,
                    first_attempt_ms,
                    attempts,
                    acked: true,
                    retry_at_ms: Some(cx.now + cfg.stepdown_backoff_ms(attempts)),
                    last_error: Some(e),
                });
            }
        }
        Err(e) => {
            rs.primary_stage = None;
            if let Some(j) = rs.procs.iter().position(|p| p.node_id == node_id) {
                rs.procs[j].step = MemberStep::Failed;
            }
            cx.failures.push(failure(
                Some(&rs.name),
                Some(&node_id),
                FailureReason::CommandRejected {
                    command: "replSetStepDown".into(),
                    error: e,
                },
                cx.now,
            ));
        }
    }
}
