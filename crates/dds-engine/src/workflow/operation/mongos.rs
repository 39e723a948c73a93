//! The mongos phase: waves of `mongos_batch` with another router serving while one restarts, and the
//! per-mongos stepper (stop → start → up on the expected kernel and stable, or put back). A mongos has no
//! replica set, primary or oplog, so its rules are simpler than a member's and are kept apart from them.

use super::context::{env_of, failure, start_allowed, Cx, Env};
use super::member::fail_process;
use super::state::{
    FailureReason, MemberStep, ProcessRecord, RevertOutcome, RevertStage, RollingOperation,
};
use crate::plane::{Command, DeploymentObservation, MemberState};
use crate::workflow::gates::{GateBlock, GateUnmet};

impl RollingOperation {
    pub(super) fn step_mongos(&mut self, obs: &DeploymentObservation, cx: &mut Cx) {
        let env = env_of(
            &self.config,
            &self.kind,
            self.failure.is_some(),
            self.started_ms,
        );
        let all = self.mongos.len();
        let batch = if all <= 1 {
            1
        } else {
            (self.config.mongos_batch as usize).clamp(1, all - 1)
        };
        for ms in self.mongos.iter_mut().filter(|m| m.in_scope) {
            if ms.proc.step.in_flight() {
                advance_mongos(&env, &mut ms.proc, obs, cx);
            }
        }
        let halted = self.failure.is_some() || !cx.failures.is_empty();
        if !halted {
            for ms in self.mongos.iter_mut().filter(|m| m.in_scope) {
                if ms.proc.step == MemberStep::Pending {
                    let m = obs.mongos.iter().find(|m| m.node_id == ms.proc.node_id);
                    if m.is_some_and(|m| m.up && env.on_target(m.kernel_version.as_deref())) {
                        ms.proc.step = MemberStep::Skipped;
                    }
                }
            }
            // Mongos go in waves: the next wave starts once every mongos of the previous one passed its gate,
            // so a kernel that fails on one wave never reaches the next.
            let wave_open = !self.mongos.iter().any(|m| m.proc.step.in_flight());
            let mut in_flight = 0;
            let n = self.mongos.len();
            for k in 0..n {
                if !wave_open || in_flight >= batch {
                    break;
                }
                if !(self.mongos[k].in_scope && self.mongos[k].proc.step == MemberStep::Pending) {
                    continue;
                }
                // At least one other mongos must keep serving while this one restarts.
                let serving_others = self
                    .mongos
                    .iter()
                    .enumerate()
                    .filter(|(j, other)| {
                        *j != k
                            && !other.proc.step.in_flight()
                            && obs
                                .mongos
                                .iter()
                                .any(|m| m.node_id == other.proc.node_id && m.up)
                    })
                    .count();
                let me = &mut self.mongos[k].proc;
                let my_obs = obs.mongos.iter().find(|m| m.node_id == me.node_id);
                let me_up = my_obs.is_some_and(|m| m.up);
                if (all > 1 && serving_others == 0) || !me_up {
                    let block = if me_up {
                        GateBlock::NoOtherMongosServing
                    } else {
                        GateBlock::NotServing {
                            node_id: me.node_id.clone(),
                            state: MemberState::Down,
                            healthy: false,
                        }
                    };
                    let since = *me.blocked_since_ms.get_or_insert(cx.now);
                    me.last_block = Some(block.clone());
                    if cx.deadline(since, self.config.pre_stop_gate_deadline_ms) {
                        me.step = MemberStep::Failed;
                        cx.failures.push(failure(
                            None,
                            Some(&me.node_id),
                            FailureReason::PreStopGateTimeout { block },
                            cx.now,
                        ));
                    }
                    break;
                }
                me.blocked_since_ms = None;
                me.last_block = None;
                me.pre_stop_started_ms = my_obs.and_then(|m| m.started_ms);
                me.stop_issued_ms.get_or_insert(cx.now);
                me.step = MemberStep::Stopping {
                    issued_ms: cx.now,
                    acked: false,
                };
                cx.cmds.push(Command::StopMongos {
                    node_id: me.node_id.clone(),
                });
                in_flight += 1;
            }
        }
        let halted = self.failure.is_some() || !cx.failures.is_empty();
        let busy = self.mongos.iter().any(|m| m.proc.step.in_flight());
        let pending = self
            .mongos
            .iter()
            .any(|m| m.in_scope && m.proc.step == MemberStep::Pending);
        if !busy && (halted || !pending) {
            self.phase = self.wind_down_phase(cx.now);
        }
    }
}

/// Drives one in-flight mongos one step (stop → start → up on the expected kernel and stable).
fn advance_mongos(env: &Env<'_>, p: &mut ProcessRecord, obs: &DeploymentObservation, cx: &mut Cx) {
    let cfg = env.cfg;
    let m = obs.mongos.iter().find(|m| m.node_id == p.node_id);
    let up = m.is_some_and(|m| m.up);
    let kernel = m.and_then(|m| m.kernel_version.clone());
    let started = m.and_then(|m| m.started_ms);
    match p.step.clone() {
        MemberStep::Stopping { issued_ms, acked } => {
            if !up {
                p.step = MemberStep::Starting {
                    issued_ms: cx.now,
                    acked: false,
                };
                cx.cmds.push(Command::StartMongos {
                    node_id: p.node_id.clone(),
                    kernel_version: env.expected_kernel(p).to_string(),
                });
            } else if env.already_restarted(p, kernel.as_deref(), started) {
                p.step = MemberStep::Gating {
                    start_issued_ms: issued_ms,
                    ok_since_ms: None,
                };
                advance_mongos(env, p, obs, cx);
            } else if acked {
                if cx.deadline(issued_ms, cfg.member_stop_deadline_ms) {
                    fail_process(p, None, FailureReason::StopTimeout, cx);
                }
            } else {
                cx.cmds.push(Command::StopMongos {
                    node_id: p.node_id.clone(),
                });
            }
        }
        MemberStep::Starting { issued_ms, acked } => {
            if up {
                p.step = MemberStep::Gating {
                    start_issued_ms: issued_ms,
                    ok_since_ms: None,
                };
                advance_mongos(env, p, obs, cx);
            } else if acked {
                if cx.deadline(issued_ms, cfg.mongos_start_deadline_ms) {
                    fail_process(
                        p,
                        None,
                        FailureReason::StartTimeout {
                            last: GateUnmet::ProcessDown,
                        },
                        cx,
                    );
                }
            } else if start_allowed(p, cx) {
                // Issued again: the deadline runs from this issue.
                p.step = MemberStep::Starting {
                    issued_ms: cx.now,
                    acked: false,
                };
                cx.cmds.push(Command::StartMongos {
                    node_id: p.node_id.clone(),
                    kernel_version: env.expected_kernel(p).to_string(),
                });
            }
        }
        MemberStep::Gating {
            start_issued_ms,
            ok_since_ms,
        } => {
            let expected = env.expected_kernel(p).to_string();
            let unmet = if !up {
                Some(GateUnmet::ProcessDown)
            } else if kernel.as_deref() != Some(expected.as_str()) {
                Some(GateUnmet::WrongKernel { observed: kernel })
            } else if matches!((p.pre_stop_started_ms, started), (Some(a), Some(b)) if a == b) {
                Some(GateUnmet::NotRestarted)
            } else {
                None
            };
            match unmet {
                None => {
                    let since = ok_since_ms.unwrap_or(cx.now);
                    p.last_unmet = None;
                    if cx.now >= since + cfg.mongos_stability_ms {
                        p.step = MemberStep::Done;
                        p.restarted = true;
                    } else {
                        p.step = MemberStep::Gating {
                            start_issued_ms,
                            ok_since_ms: Some(since),
                        };
                        cx.wake_at(since + cfg.mongos_stability_ms);
                    }
                }
                Some(u) => {
                    p.step = MemberStep::Gating {
                        start_issued_ms,
                        ok_since_ms: None,
                    };
                    p.last_unmet = Some(u.clone());
                    if cx.deadline(start_issued_ms, cfg.mongos_start_deadline_ms) {
                        fail_process(p, None, FailureReason::StartTimeout { last: u }, cx);
                    }
                }
            }
        }
        MemberStep::Reverting(stage) => {
            let from = p.from_kernel.clone();
            let start = Command::StartMongos {
                node_id: p.node_id.clone(),
                kernel_version: from.clone(),
            };
            match stage {
                RevertStage::Begin => {
                    if up && env.target.is_none() {
                        p.revert = Some(RevertOutcome::Skipped {
                            reason: "running on its kernel; a restart has nothing to put back"
                                .into(),
                        });
                        p.step = MemberStep::Failed;
                    } else if up && kernel.as_deref() == Some(from.as_str()) {
                        p.step = MemberStep::Reverting(RevertStage::Starting {
                            issued_ms: cx.now,
                            acked: true,
                        });
                    } else if up {
                        p.step = MemberStep::Reverting(RevertStage::Stopping {
                            issued_ms: cx.now,
                            acked: false,
                        });
                        cx.cmds.push(Command::StopMongos {
                            node_id: p.node_id.clone(),
                        });
                    } else {
                        p.step = MemberStep::Reverting(RevertStage::Starting {
                            issued_ms: cx.now,
                            acked: false,
                        });
                        cx.cmds.push(start);
                    }
                }
                RevertStage::Stopping { issued_ms, acked } => {
                    if !up {
                        p.step = MemberStep::Reverting(RevertStage::Starting {
                            issued_ms: cx.now,
                            acked: false,
                        });
                        cx.cmds.push(start);
                    } else if !acked {
                        cx.cmds.push(Command::StopMongos {
                            node_id: p.node_id.clone(),
                        });
                    } else if cx.deadline(issued_ms, cfg.member_stop_deadline_ms) {
                        p.revert = Some(RevertOutcome::Failed {
                            reason: "did not stop".into(),
                        });
                        p.step = MemberStep::Failed;
                    }
                }
                RevertStage::Starting { issued_ms, acked } => {
                    if up && kernel.as_deref() == Some(from.as_str()) {
                        p.revert = Some(RevertOutcome::Reverted { kernel: from });
                        p.step = MemberStep::Failed;
                    } else if cx.deadline(issued_ms, cfg.revert_deadline_ms) {
                        p.revert = Some(RevertOutcome::Failed {
                            reason: format!("not serving on {from} before the deadline"),
                        });
                        p.step = MemberStep::Failed;
                    } else if !up && !acked && start_allowed(p, cx) {
                        cx.cmds.push(start);
                    }
                }
            }
        }
        _ => {}
    }
}
