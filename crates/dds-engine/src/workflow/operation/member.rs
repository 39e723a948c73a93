//! One mongod member: stop → start → post-start gate (I8), re-derived from the observation after a resume
//! (I11), and the one-time revert onto its previous kernel when it fails (§4.2). The revert lives with the
//! restart because failing a started member hands it to the revert rather than ending its record there.

use super::context::{failure, start_allowed, Cx, Env};
use super::replica_set::block_or_fail;
use super::state::{FailureReason, MemberStep, ProcessRecord, RevertOutcome, RevertStage, RsTrack};
use crate::plane::{Command, ReplicaSetObservation};
use crate::workflow::gates::{self, Expect, GateUnmet};

/// Fails `p` (and marks it for a revert when it was started on the new kernel).
pub(super) fn fail_process(
    p: &mut ProcessRecord,
    rs: Option<&str>,
    reason: FailureReason,
    cx: &mut Cx,
) {
    let started = matches!(
        p.step,
        MemberStep::Starting { .. } | MemberStep::Gating { .. }
    );
    // An upgrade puts a started member back on its previous kernel; a restart only starts it again if it is
    // down (decided in the revert itself).
    p.step = if started {
        MemberStep::Reverting(RevertStage::Begin)
    } else {
        MemberStep::Failed
    };
    cx.failures
        .push(failure(rs, Some(&p.node_id), reason, cx.now));
}

/// Drives the in-flight member `j` of `rs` one step.
pub(super) fn advance_member(
    env: &Env<'_>,
    rs: &mut RsTrack,
    j: usize,
    ro: &ReplicaSetObservation,
    cx: &mut Cx,
) {
    let cfg = env.cfg;
    let rs_name = rs.name.clone();
    let role = rs.roles[j].clone();
    let m = ro.member(&role.node_id);
    let up = m.is_some_and(|m| m.process_up);
    let kernel = m.and_then(|m| m.kernel_version.clone());
    let started = m.and_then(|m| m.started_ms);
    match rs.procs[j].step.clone() {
        MemberStep::Stopping { issued_ms, acked } => {
            if !up {
                let p = &mut rs.procs[j];
                p.step = MemberStep::Starting {
                    issued_ms: cx.now,
                    acked: false,
                };
                cx.cmds.push(Command::StartMember {
                    replica_set: rs_name,
                    node_id: role.node_id.clone(),
                    kernel_version: env.expected_kernel(p).to_string(),
                });
            } else if env.already_restarted(&rs.procs[j], kernel.as_deref(), started) {
                rs.procs[j].step = MemberStep::Gating {
                    start_issued_ms: issued_ms,
                    ok_since_ms: None,
                };
                gate_member(env, rs, j, ro, cx);
            } else if acked {
                if cx.deadline(issued_ms, cfg.member_stop_deadline_ms) {
                    fail_process(
                        &mut rs.procs[j],
                        Some(&rs_name),
                        FailureReason::StopTimeout,
                        cx,
                    );
                }
            } else {
                // The stop was recorded but maybe never executed: same gate as the first time, then repeat
                // (its deadline from this issue).
                match gates::pre_stop(&rs.roles, ro, &role.node_id, true) {
                    Ok(()) => {
                        rs.procs[j].blocked_since_ms = None;
                        rs.procs[j].step = MemberStep::Stopping {
                            issued_ms: cx.now,
                            acked: false,
                        };
                        cx.cmds.push(Command::StopMember {
                            replica_set: rs_name,
                            node_id: role.node_id.clone(),
                        });
                    }
                    Err(block) => block_or_fail(env, &rs_name, &mut rs.procs[j], block, cx),
                }
            }
        }
        MemberStep::Starting { issued_ms, acked } => {
            if up {
                rs.procs[j].step = MemberStep::Gating {
                    start_issued_ms: issued_ms,
                    ok_since_ms: None,
                };
                gate_member(env, rs, j, ro, cx);
            } else if acked {
                if cx.deadline(issued_ms, cfg.member_start_deadline_ms) {
                    rs.procs[j].last_unmet = Some(GateUnmet::ProcessDown);
                    fail_process(
                        &mut rs.procs[j],
                        Some(&rs_name),
                        FailureReason::StartTimeout {
                            last: GateUnmet::ProcessDown,
                        },
                        cx,
                    );
                }
            } else if start_allowed(&mut rs.procs[j], cx) {
                // Issued again (the plane could not deliver it: an agent busy, late, unreachable): the
                // deadline runs from this issue, on the deployment's clock like every other time here.
                rs.procs[j].step = MemberStep::Starting {
                    issued_ms: cx.now,
                    acked: false,
                };
                let p = &rs.procs[j];
                cx.cmds.push(Command::StartMember {
                    replica_set: rs_name,
                    node_id: role.node_id.clone(),
                    kernel_version: env.expected_kernel(p).to_string(),
                });
            }
        }
        MemberStep::Gating { .. } => gate_member(env, rs, j, ro, cx),
        MemberStep::Reverting(stage) => {
            advance_revert(env, rs, j, ro, stage, cx);
        }
        _ => {}
    }
}

fn gate_member(env: &Env<'_>, rs: &mut RsTrack, j: usize, ro: &ReplicaSetObservation, cx: &mut Cx) {
    let cfg = env.cfg;
    let MemberStep::Gating {
        start_issued_ms,
        ok_since_ms,
    } = rs.procs[j].step.clone()
    else {
        return;
    };
    let role = &rs.roles[j];
    let p = &rs.procs[j];
    let expect = Expect {
        kernel: env.expected_kernel(p),
        old_started_ms: p.pre_stop_started_ms,
        max_lag_ms: cfg.max_lag_ms,
    };
    match gates::post_start(role, ro, expect) {
        Ok(state_since) => {
            let ok_since = ok_since_ms.unwrap_or(cx.now);
            let stable_from = ok_since.max(state_since);
            let p = &mut rs.procs[j];
            p.last_unmet = None;
            if cx.now >= stable_from.saturating_add(cfg.gate_stability_ms) {
                p.step = MemberStep::Done;
                p.restarted = true;
            } else {
                p.step = MemberStep::Gating {
                    start_issued_ms,
                    ok_since_ms: Some(ok_since),
                };
                cx.wake_at(stable_from + cfg.gate_stability_ms);
            }
        }
        Err(unmet) => {
            let rs_name = rs.name.clone();
            let p = &mut rs.procs[j];
            p.step = MemberStep::Gating {
                start_issued_ms,
                ok_since_ms: None,
            };
            p.last_unmet = Some(unmet.clone());
            let start_deadline = start_issued_ms.saturating_add(cfg.member_start_deadline_ms);
            let catch_up_deadline = start_issued_ms.saturating_add(cfg.member_catch_up_deadline_ms);
            if unmet.is_start_problem() && cx.now >= start_deadline {
                fail_process(
                    p,
                    Some(&rs_name),
                    FailureReason::StartTimeout { last: unmet },
                    cx,
                );
            } else if cx.now >= catch_up_deadline {
                fail_process(
                    p,
                    Some(&rs_name),
                    FailureReason::CatchUpTimeout { last: unmet },
                    cx,
                );
            } else if unmet.is_start_problem() {
                cx.wake_at(start_deadline);
            } else {
                cx.wake_at(catch_up_deadline);
            }
        }
    }
}

/// Puts a failed member back on its previous kernel, once (§4.2). Stops it first if it is up — only if
/// that keeps I1 — and counts the revert as done when it serves again on the old kernel.
fn advance_revert(
    env: &Env<'_>,
    rs: &mut RsTrack,
    j: usize,
    ro: &ReplicaSetObservation,
    stage: RevertStage,
    cx: &mut Cx,
) {
    let cfg = env.cfg;
    let rs_name = rs.name.clone();
    let node = rs.roles[j].node_id.clone();
    let m = ro.member(&node);
    let up = m.is_some_and(|m| m.process_up);
    let from = rs.procs[j].from_kernel.clone();
    let start_cmd = || Command::StartMember {
        replica_set: rs_name.clone(),
        node_id: node.clone(),
        kernel_version: from.clone(),
    };
    match stage {
        RevertStage::Begin => {
            if up && env.target.is_none() {
                rs.procs[j].revert = Some(RevertOutcome::Skipped {
                    reason: "running on its kernel; a restart has nothing to put back".into(),
                });
                rs.procs[j].step = MemberStep::Failed;
            } else if up && m.and_then(|m| m.kernel_version.as_deref()) == Some(from.as_str()) {
                // Already started on the previous kernel (the record of that start was lost): wait for it.
                rs.procs[j].step = MemberStep::Reverting(RevertStage::Starting {
                    issued_ms: cx.now,
                    acked: true,
                });
            } else if up {
                match gates::pre_stop(&rs.roles, ro, &node, false) {
                    Ok(()) => {
                        rs.procs[j].step = MemberStep::Reverting(RevertStage::Stopping {
                            issued_ms: cx.now,
                            acked: false,
                        });
                        cx.cmds.push(Command::StopMember {
                            replica_set: rs_name.clone(),
                            node_id: node.clone(),
                        });
                    }
                    Err(block) => {
                        rs.procs[j].revert = Some(RevertOutcome::Skipped {
                            reason: format!("stopping it again would break I1: {block}"),
                        });
                        rs.procs[j].step = MemberStep::Failed;
                    }
                }
            } else {
                rs.procs[j].step = MemberStep::Reverting(RevertStage::Starting {
                    issued_ms: cx.now,
                    acked: false,
                });
                cx.cmds.push(start_cmd());
            }
        }
        RevertStage::Stopping { issued_ms, acked } => {
            if !up {
                rs.procs[j].step = MemberStep::Reverting(RevertStage::Starting {
                    issued_ms: cx.now,
                    acked: false,
                });
                cx.cmds.push(start_cmd());
            } else if !acked {
                cx.cmds.push(Command::StopMember {
                    replica_set: rs_name.clone(),
                    node_id: node.clone(),
                });
            } else if cx.deadline(issued_ms, cfg.member_stop_deadline_ms) {
                rs.procs[j].revert = Some(RevertOutcome::Failed {
                    reason: "did not stop".into(),
                });
                rs.procs[j].step = MemberStep::Failed;
            }
        }
        RevertStage::Starting { issued_ms, acked } => {
            let serving = m.is_some_and(|m| {
                m.process_up
                    && m.healthy
                    && m.state.is_steady()
                    && m.kernel_version.as_deref() == Some(from.as_str())
            });
            if serving {
                rs.procs[j].revert = Some(RevertOutcome::Reverted { kernel: from });
                rs.procs[j].step = MemberStep::Failed;
            } else if cx.deadline(issued_ms, cfg.revert_deadline_ms) {
                rs.procs[j].revert = Some(RevertOutcome::Failed {
                    reason: format!("not serving on {from} before the deadline"),
                });
                rs.procs[j].step = MemberStep::Failed;
            } else if !up && !acked && start_allowed(&mut rs.procs[j], cx) {
                cx.cmds.push(start_cmd());
            }
        }
    }
}
