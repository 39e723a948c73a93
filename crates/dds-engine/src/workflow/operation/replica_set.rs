//! One replica set: finish the member in flight, drive the primary's stepdown, then pick the next member —
//! the non-primaries one at a time in configuration order, the primary last via a non-forced stepdown (I1,
//! I2, I3, I7), and an expected priority takeover waited for before the set counts as done. The primary is
//! re-read from every observation, never remembered.

use super::context::{failure, Cx, Env};
use super::member::advance_member;
use super::state::{FailureReason, MemberStep, PrimaryStage, ProcessRecord, RsStatus, RsTrack};
use crate::plane::{Command, DeploymentObservation, MemberState, ReplicaSetObservation};
use crate::workflow::config::UpgradeConfig;
use crate::workflow::gates::{self, GateBlock};

/// One replica set: finish the in-flight member, then the stepdown stage, then pick the next member.
pub(super) fn advance_rs(
    env: &Env<'_>,
    seq: &mut u64,
    rs: &mut RsTrack,
    obs: &DeploymentObservation,
    cx: &mut Cx,
) {
    let Some(ro) = obs.replica_set(&rs.name) else {
        cx.failures.push(failure(
            Some(&rs.name),
            None,
            FailureReason::ReplicaSetNotObserved,
            cx.now,
        ));
        rs.failed_here = true;
        rs.status = RsStatus::Failed;
        return;
    };
    let failures_before = cx.failures.len();
    // Several hand-overs can happen in one step (member done → next member stopped).
    for _ in 0..4 {
        let halted = env.halted || rs.failed_here || cx.failures.len() > failures_before;
        if let Some(j) = rs.procs.iter().position(|p| p.step.in_flight()) {
            // Even when halted, a member already out of service is brought back (or put back): never left down.
            let was = rs.procs[j].step.clone();
            advance_member(env, rs, j, ro, cx);
            if cx.failures.len() > failures_before {
                rs.failed_here = true;
            }
            let changed = rs.procs[j].step != was;
            if !cx.cmds.is_empty() || (rs.procs[j].step.in_flight() && !changed) {
                return;
            }
            // Finished, or moved on (e.g. failed → being put back) without a command yet: go again.
            continue;
        }
        if halted {
            // Touch nothing more: an unfinished stepdown is abandoned (the old primary keeps running).
            rs.primary_stage = None;
            rs.status = if rs.failed_here {
                RsStatus::Failed
            } else {
                RsStatus::Halted
            };
            rs.finished_ms = Some(cx.now);
            return;
        }
        if rs.primary_stage.is_some() {
            advance_primary_stage(env, seq, rs, ro, cx);
            if cx.failures.len() > failures_before {
                rs.failed_here = true;
                continue;
            }
            if rs.primary_stage.is_some() {
                return;
            }
        }
        if !pick_next(env, seq, rs, ro, cx) {
            if cx.failures.len() > failures_before {
                rs.failed_here = true;
                continue;
            }
            return;
        }
    }
}

/// Chooses and starts the next piece of work in an idle replica set. Returns true when it changed something
/// that should be re-evaluated right away.
fn pick_next(
    env: &Env<'_>,
    seq: &mut u64,
    rs: &mut RsTrack,
    ro: &ReplicaSetObservation,
    cx: &mut Cx,
) -> bool {
    let cfg = env.cfg;
    let primary = ro.primary.clone();
    // A primary switch restarts nobody: only the primary (re-read now) is handed over.
    if env.switch_only {
        for p in &mut rs.procs {
            if p.step == MemberStep::Pending && Some(&p.node_id) != primary.as_ref() {
                p.step = MemberStep::Skipped;
            }
        }
    }
    // I4: a member already on the target is never restarted.
    for p in &mut rs.procs {
        if p.step == MemberStep::Pending {
            if let Some(m) = ro.member(&p.node_id) {
                if m.process_up && env.on_target(m.kernel_version.as_deref()) {
                    p.step = MemberStep::Skipped;
                }
            }
        }
    }
    // I3: non-primary members first, in configuration order; the primary is re-read every time.
    if let Some(j) = rs
        .procs
        .iter()
        .position(|p| p.step == MemberStep::Pending && Some(&p.node_id) != primary.as_ref())
    {
        rs.primary_wait_since_ms = None;
        let node = rs.procs[j].node_id.clone();
        match gates::pre_stop(&rs.roles, ro, &node, true) {
            Ok(()) => {
                let p = &mut rs.procs[j];
                p.blocked_since_ms = None;
                p.last_block = None;
                p.pre_stop_started_ms = ro.member(&node).and_then(|m| m.started_ms);
                p.stop_issued_ms.get_or_insert(cx.now);
                p.step = MemberStep::Stopping {
                    issued_ms: cx.now,
                    acked: false,
                };
                cx.cmds.push(Command::StopMember {
                    replica_set: rs.name.clone(),
                    node_id: node,
                });
            }
            Err(block) => block_or_fail(env, &rs.name, &mut rs.procs[j], block, cx),
        }
        return false;
    }
    let Some(p_id) = primary else {
        // Nothing left but the primary, and there is none (an election is running): wait for one.
        let since = *rs.primary_wait_since_ms.get_or_insert(cx.now);
        if cx.deadline(since, cfg.primary_wait_deadline_ms) {
            rs.failed_here = true;
            cx.failures.push(failure(
                Some(&rs.name),
                None,
                FailureReason::NoPrimary,
                cx.now,
            ));
        }
        return false;
    };
    rs.primary_wait_since_ms = None;
    let Some(pj) = rs.procs.iter().position(|p| p.node_id == p_id) else {
        rs.failed_here = true;
        cx.failures.push(failure(
            Some(&rs.name),
            None,
            FailureReason::UnknownPrimary { node_id: p_id },
            cx.now,
        ));
        return false;
    };
    if rs.procs.iter().all(|p| p.step.finished_ok()) {
        // A caught-up member that outranks the primary will take over (F9): let that election happen while
        // this set is still ours to watch, so it is counted and the next set does not start mid-election.
        if let Some(heir) = takeover_pending(rs, ro, &p_id) {
            let since = *rs.takeover_wait_since_ms.get_or_insert(cx.now);
            if !cx.deadline(since, cfg.priority_takeover_wait_ms) {
                return false;
            }
            rs.takeover_notes.push(format!(
                "{heir} outranks primary {p_id} but did not take over"
            ));
        }
        rs.status = RsStatus::Done;
        rs.finished_ms = Some(cx.now);
        return false;
    }
    if rs.procs[pj].step != MemberStep::Pending {
        // The primary is finished but another member is not and cannot be picked (it is failed): nothing to do.
        return false;
    }
    if rs.stepdowns_accepted >= cfg.max_stepdowns_per_replica_set {
        rs.procs[pj].step = MemberStep::Failed;
        cx.failures.push(failure(
            Some(&rs.name),
            Some(&p_id),
            FailureReason::TooManyStepDowns {
                accepted: rs.stepdowns_accepted,
            },
            cx.now,
        ));
        return false;
    }
    match gates::step_down_ready(&rs.roles, ro, &p_id, cfg.max_lag_ms) {
        Ok(()) => {
            let p = &mut rs.procs[pj];
            p.blocked_since_ms = None;
            p.last_block = None;
            *seq += 1;
            let id = env.step_down_base + *seq;
            rs.primary_stage = Some(PrimaryStage::SteppingDown {
                node_id: p_id.clone(),
                step_down_id: id,
                first_attempt_ms: cx.now,
                attempts: 1,
                acked: false,
                retry_at_ms: None,
                last_error: None,
            });
            cx.cmds.push(step_down_cmd(cfg, &rs.name, &p_id, id));
        }
        Err(block) => block_or_fail(env, &rs.name, &mut rs.procs[pj], block, cx),
    }
    false
}

/// A serving electable member with a higher priority than the primary, which MongoDB will make primary
/// once it is caught up.
fn takeover_pending(rs: &RsTrack, ro: &ReplicaSetObservation, primary: &str) -> Option<String> {
    let prio = |id: &str| {
        rs.roles
            .iter()
            .find(|r| r.node_id == id)
            .map_or(0, |r| r.priority)
    };
    let p = prio(primary);
    rs.roles
        .iter()
        .filter(|r| r.kind.electable() && r.node_id != primary && r.priority > p)
        .find(|r| {
            ro.member(&r.node_id)
                .is_some_and(|m| m.process_up && m.healthy && m.state == MemberState::Secondary)
        })
        .map(|r| r.node_id.clone())
}

fn step_down_cmd(cfg: &UpgradeConfig, rs: &str, node: &str, id: u64) -> Command {
    Command::StepDown {
        replica_set: rs.to_string(),
        node_id: node.to_string(),
        step_down_id: id,
        step_down_secs: cfg.step_down_secs,
        catch_up_secs: cfg.step_down_catch_up_secs,
    }
}

pub(super) fn block_or_fail(
    env: &Env<'_>,
    rs: &str,
    p: &mut ProcessRecord,
    block: GateBlock,
    cx: &mut Cx,
) {
    let since = *p.blocked_since_ms.get_or_insert(cx.now);
    p.last_block = Some(block.clone());
    if cx.deadline(since, env.cfg.pre_stop_gate_deadline_ms) {
        p.step = MemberStep::Failed;
        cx.failures.push(failure(
            Some(rs),
            Some(&p.node_id),
            FailureReason::PreStopGateTimeout { block },
            cx.now,
        ));
    }
}

/// Another member is primary now: the stepdown stage is over. In a primary switch that was the whole job
/// for the old primary; otherwise it is now an ordinary member, restarted like the others.
fn handed_over(env: &Env<'_>, rs: &mut RsTrack, old_primary: &str) {
    rs.primary_stage = None;
    if env.switch_only {
        if let Some(p) = rs.procs.iter_mut().find(|p| p.node_id == old_primary) {
            if p.step == MemberStep::Pending {
                p.step = MemberStep::Done;
            }
        }
    }
}

fn advance_primary_stage(
    env: &Env<'_>,
    seq: &mut u64,
    rs: &mut RsTrack,
    ro: &ReplicaSetObservation,
    cx: &mut Cx,
) {
    let cfg = env.cfg;
    let Some(stage) = rs.primary_stage.clone() else {
        return;
    };
    let fail_primary = |rs: &mut RsTrack, node_id: &str, reason: FailureReason, cx: &mut Cx| {
        rs.primary_stage = None;
        if let Some(j) = rs.procs.iter().position(|p| p.node_id == node_id) {
            rs.procs[j].step = MemberStep::Failed;
        }
        cx.failures
            .push(failure(Some(&rs.name), Some(node_id), reason, cx.now));
    };
    match stage {
        PrimaryStage::SteppingDown {
            node_id,
            step_down_id,
            first_attempt_ms,
            attempts,
            acked,
            retry_at_ms,
            last_error,
        } => match ro.primary.as_deref() {
            Some(p) if p != node_id => handed_over(env, rs, &node_id),
            None => {
                rs.primary_stage = Some(PrimaryStage::AwaitingNewPrimary {
                    node_id,
                    since_ms: cx.now,
                    from_ack: false,
                })
            }
            Some(_) => {
                if let Some(at) = retry_at_ms {
                    if cx.now < at {
                        cx.wake_at(at);
                        return;
                    }
                    if cx.now >= first_attempt_ms.saturating_add(cfg.stepdown_deadline_ms) {
                        fail_primary(
                            rs,
                            &node_id,
                            FailureReason::StepDownRefused {
                                attempts,
                                last_error,
                            },
                            cx,
                        );
                        return;
                    }
                    *seq += 1;
                    let id = env.step_down_base + *seq;
                    rs.primary_stage = Some(PrimaryStage::SteppingDown {
                        node_id: node_id.clone(),
                        step_down_id: id,
                        first_attempt_ms,
                        attempts: attempts + 1,
                        acked: false,
                        retry_at_ms: None,
                        last_error,
                    });
                    cx.cmds.push(step_down_cmd(cfg, &rs.name, &node_id, id));
                } else if !acked {
                    // Recorded but its answer was lost (resume): repeat it under the same id.
                    cx.cmds
                        .push(step_down_cmd(cfg, &rs.name, &node_id, step_down_id));
                } else {
                    cx.wake_at(cx.now + 1_000);
                }
            }
        },
        PrimaryStage::AwaitingNewPrimary {
            node_id,
            since_ms,
            from_ack,
        } => match ro.primary.as_deref() {
            Some(p) if p != node_id => handed_over(env, rs, &node_id),
            _ => {
                // This observation was taken after the acknowledged stepdown happened.
                let since_ms = if from_ack {
                    cx.now.max(since_ms)
                } else {
                    since_ms
                };
                rs.primary_stage = Some(PrimaryStage::AwaitingNewPrimary {
                    node_id: node_id.clone(),
                    since_ms,
                    from_ack: false,
                });
                if cx.deadline(since_ms, cfg.new_primary_deadline_ms) {
                    fail_primary(rs, &node_id, FailureReason::NoNewPrimary, cx);
                }
            }
        },
    }
}
