//! What the operation tells the outside: a live [`Progress`] (enough for a progress bar per replica set), a
//! final [`Report`], and [`plan_steps`], a dry run of the commands a fault-free run issues.

use super::gates::{GateBlock, GateUnmet};
use super::operation::{
    ElectionCause, ElectionRecord, Failure, MemberStep, Outcome, Phase, PrimaryStage,
    ProcessRecord, RestartScope, RevertOutcome, RollingKind, RollingOperation, RsStatus, RsTrack,
};
use crate::model::{Instance, MemberSpec, ReplicaSetKind, ReplicaSetSpec};
use crate::plane::{BalancerMode, DeploymentObservation, Millis};
use serde::{Deserialize, Serialize};

/// What the workflow is waiting on for one process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WaitingOn {
    /// The gate before its stop (or stepdown) is closed.
    PreStopGate {
        block: Option<GateBlock>,
        since_ms: Millis,
    },
    /// Stop issued, process not yet down.
    Stop {
        since_ms: Millis,
    },
    /// Start issued, process not yet up.
    Start {
        since_ms: Millis,
    },
    /// Up; the post-start gate does not hold yet.
    PostStartGate {
        unmet: Option<GateUnmet>,
        start_issued_ms: Millis,
    },
    /// The gate holds; the stability window ends at `until_ms`.
    Stability {
        until_ms: Millis,
    },
    StepDown {
        attempts: u32,
        retry_at_ms: Option<Millis>,
    },
    NewPrimary {
        since_ms: Millis,
    },
    /// No primary at all in the set.
    AnyPrimary {
        since_ms: Millis,
    },
    /// Being put back on its previous kernel after a failure.
    Revert,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentWork {
    pub node_id: String,
    pub waiting_on: WaitingOn,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaSetProgress {
    pub name: String,
    pub node_id: String,
    pub kind: ReplicaSetKind,
    pub status: RsStatus,
    /// Members finished (restarted and gated, or already on the target).
    pub members_done: usize,
    pub members_total: usize,
    pub current: Option<CurrentWork>,
    pub elections: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MongosProgress {
    pub done: usize,
    pub total: usize,
    pub current: Vec<CurrentWork>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub kind: RollingKind,
    pub phase: Phase,
    pub replica_sets: Vec<ReplicaSetProgress>,
    pub mongos: MongosProgress,
    /// Elections observed so far, all replica sets.
    pub elections: u64,
    pub balancer_recorded: Option<BalancerMode>,
    pub failure: Option<Failure>,
    /// Set while the start waits for a transient preflight failure to clear (an election, a member
    /// catching up); the operation fails with it once `pre_stop_gate_deadline_ms` has passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_blocked: Option<StartBlockedProgress>,
}

/// [`super::operation::StartBlocked`] as shown: with its reason in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartBlockedProgress {
    pub since_ms: Millis,
    pub reason: super::PreflightError,
    pub message: String,
}

/// One process in the final report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessReport {
    pub node_id: String,
    pub from_kernel: String,
    /// Kernel last observed running (the truthful per-node `CurrentKernelVersion`).
    pub kernel: Option<String>,
    /// Restarted by this operation and passed its gate.
    pub restarted: bool,
    /// Already on the target: not touched.
    pub skipped: bool,
    /// Out of service: from this operation's stop to the first observation of the new process serving.
    pub downtime_ms: Option<u64>,
    pub failed: bool,
    pub revert: Option<RevertOutcome>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaSetReport {
    pub name: String,
    pub node_id: String,
    pub kind: ReplicaSetKind,
    pub status: RsStatus,
    /// Term delta over the operation.
    pub elections: u64,
    pub priority_takeovers: u64,
    pub unplanned_elections: u64,
    pub election_log: Vec<ElectionRecord>,
    /// Time observed without any primary (no writes possible), total and longest stretch.
    pub no_primary_ms: u64,
    pub longest_no_primary_ms: u64,
    /// Each stretch without a primary: from the first observation without one (the old primary
    /// refusing writes) to the first with a new one (accepting them), in plane time.
    #[serde(default)]
    pub write_unavailable: Vec<Window>,
    pub members: Vec<ProcessReport>,
}

/// A stretch of plane time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub from_ms: Millis,
    pub until_ms: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalancerReport {
    pub recorded: Option<BalancerMode>,
    pub restored: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub kind: RollingKind,
    pub outcome: Outcome,
    pub started_ms: Option<Millis>,
    pub finished_ms: Millis,
    pub duration_ms: u64,
    pub replica_sets: Vec<ReplicaSetReport>,
    pub mongos: Vec<ProcessReport>,
    /// `None` for a replica-set instance.
    pub balancer: Option<BalancerReport>,
    pub other_failures: Vec<Failure>,
    pub warnings: Vec<String>,
    /// Commands the plane accepted.
    pub commands_executed: u64,
}

impl Report {
    /// Every process in scope with the kernel last observed running it, for recording the truthful per-node
    /// `CurrentKernelVersion` (e.g. with `Topology::set_kernel_version`) when the operation ends — also after a
    /// failure, when the instance is left on a version mix.
    pub fn node_kernels(&self) -> Vec<(String, String)> {
        self.replica_sets
            .iter()
            .flat_map(|r| &r.members)
            .chain(&self.mongos)
            .map(|p| {
                (
                    p.node_id.clone(),
                    p.kernel.clone().unwrap_or_else(|| p.from_kernel.clone()),
                )
            })
            .collect()
    }
}

fn done(p: &ProcessRecord) -> bool {
    p.step.finished_ok()
}

fn process_work(p: &ProcessRecord, stability_ms: u64) -> Option<WaitingOn> {
    Some(match &p.step {
        MemberStep::Stopping { issued_ms, .. } => WaitingOn::Stop {
            since_ms: *issued_ms,
        },
        MemberStep::Starting { issued_ms, .. } => WaitingOn::Start {
            since_ms: *issued_ms,
        },
        MemberStep::Gating {
            ok_since_ms: Some(ok),
            ..
        } => WaitingOn::Stability {
            until_ms: ok + stability_ms,
        },
        MemberStep::Gating {
            start_issued_ms,
            ok_since_ms: None,
        } => WaitingOn::PostStartGate {
            unmet: p.last_unmet.clone(),
            start_issued_ms: *start_issued_ms,
        },
        MemberStep::Reverting(_) => WaitingOn::Revert,
        MemberStep::Pending => WaitingOn::PreStopGate {
            block: p.last_block.clone(),
            since_ms: p.blocked_since_ms?,
        },
        _ => return None,
    })
}

fn rs_current(rs: &RsTrack, stability_ms: u64) -> Option<CurrentWork> {
    if let Some(p) = rs.procs.iter().find(|p| p.step.in_flight()) {
        return Some(CurrentWork {
            node_id: p.node_id.clone(),
            waiting_on: process_work(p, stability_ms)?,
        });
    }
    match &rs.primary_stage {
        Some(PrimaryStage::SteppingDown {
            node_id,
            attempts,
            retry_at_ms,
            ..
        }) => {
            return Some(CurrentWork {
                node_id: node_id.clone(),
                waiting_on: WaitingOn::StepDown {
                    attempts: *attempts,
                    retry_at_ms: *retry_at_ms,
                },
            })
        }
        Some(PrimaryStage::AwaitingNewPrimary {
            node_id, since_ms, ..
        }) => {
            return Some(CurrentWork {
                node_id: node_id.clone(),
                waiting_on: WaitingOn::NewPrimary {
                    since_ms: *since_ms,
                },
            })
        }
        None => {}
    }
    if let Some(p) = rs
        .procs
        .iter()
        .find(|p| p.step == MemberStep::Pending && p.blocked_since_ms.is_some())
    {
        return Some(CurrentWork {
            node_id: p.node_id.clone(),
            waiting_on: process_work(p, stability_ms)?,
        });
    }
    rs.primary_wait_since_ms.map(|since_ms| CurrentWork {
        node_id: rs.node_id.clone(),
        waiting_on: WaitingOn::AnyPrimary { since_ms },
    })
}

fn process_report(p: &ProcessRecord) -> ProcessReport {
    ProcessReport {
        node_id: p.node_id.clone(),
        from_kernel: p.from_kernel.clone(),
        kernel: p.last_kernel.clone(),
        restarted: p.restarted,
        skipped: p.step == MemberStep::Skipped,
        downtime_ms: match (p.stop_issued_ms, p.serving_again_ms) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        },
        failed: p.step == MemberStep::Failed,
        revert: p.revert.clone(),
    }
}

impl RollingOperation {
    /// Live progress.
    pub fn progress(&self) -> Progress {
        let stability = self.config.gate_stability_ms;
        let replica_sets = self
            .replica_sets
            .iter()
            .filter(|r| r.status != RsStatus::OutOfScope)
            .map(|rs| ReplicaSetProgress {
                name: rs.name.clone(),
                node_id: rs.node_id.clone(),
                kind: rs.kind,
                status: rs.status,
                members_done: rs.procs.iter().filter(|p| done(p)).count(),
                members_total: rs.procs.len(),
                current: rs_current(rs, stability),
                elections: rs.elections_total(),
            })
            .collect();
        let in_scope: Vec<&ProcessRecord> = self
            .mongos
            .iter()
            .filter(|m| m.in_scope)
            .map(|m| &m.proc)
            .collect();
        let mongos = MongosProgress {
            done: in_scope.iter().filter(|p| done(p)).count(),
            total: in_scope.len(),
            current: in_scope
                .iter()
                .filter_map(|p| {
                    let w = process_work(p, self.config.mongos_stability_ms)?;
                    Some(CurrentWork {
                        node_id: p.node_id.clone(),
                        waiting_on: w,
                    })
                })
                .collect(),
        };
        Progress {
            kind: self.kind.clone(),
            phase: self.phase.clone(),
            replica_sets,
            mongos,
            elections: self.replica_sets.iter().map(RsTrack::elections_total).sum(),
            balancer_recorded: self.balancer.recorded,
            failure: self.failure.clone(),
            start_blocked: self.start_blocked.as_ref().map(|b| StartBlockedProgress {
                since_ms: b.since_ms,
                reason: b.reason.clone(),
                message: b.reason.to_string(),
            }),
        }
    }

    /// The final report; `None` while the operation runs.
    pub fn report(&self) -> Option<Report> {
        let outcome = self.outcome()?;
        let finished_ms = self.finished_ms.unwrap_or(0);
        let replica_sets = self
            .replica_sets
            .iter()
            .filter(|r| r.status != RsStatus::OutOfScope)
            .map(|rs| {
                let count = |cause| {
                    rs.elections
                        .iter()
                        .filter(|e| e.cause == cause)
                        .map(|e| e.count)
                        .sum()
                };
                ReplicaSetReport {
                    name: rs.name.clone(),
                    node_id: rs.node_id.clone(),
                    kind: rs.kind,
                    status: rs.status,
                    elections: rs.elections_total(),
                    priority_takeovers: count(ElectionCause::PriorityTakeover),
                    unplanned_elections: count(ElectionCause::Unplanned),
                    election_log: rs.elections.clone(),
                    no_primary_ms: rs.no_primary_total_ms,
                    longest_no_primary_ms: rs.no_primary_longest_ms,
                    write_unavailable: rs.no_primary_windows.clone(),
                    members: rs.procs.iter().map(process_report).collect(),
                }
            })
            .collect();
        Some(Report {
            kind: self.kind.clone(),
            outcome,
            started_ms: self.started_ms,
            finished_ms,
            duration_ms: self.started_ms.map_or(0, |s| finished_ms.saturating_sub(s)),
            replica_sets,
            mongos: self
                .mongos
                .iter()
                .filter(|m| m.in_scope)
                .map(|m| process_report(&m.proc))
                .collect(),
            balancer: self.sharded.then_some(BalancerReport {
                recorded: self.balancer.recorded,
                restored: self.balancer.restored,
            }),
            other_failures: self.other_failures.clone(),
            warnings: self
                .warnings
                .iter()
                .chain(self.replica_sets.iter().flat_map(|r| &r.takeover_notes))
                .cloned()
                .collect(),
            commands_executed: self.commands_ok,
        })
    }
}

/// One command of a dry run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PlannedStep {
    StopBalancer,
    StopMember {
        replica_set: String,
        node_id: String,
    },
    StartMember {
        replica_set: String,
        node_id: String,
        kernel_version: String,
    },
    StepDown {
        replica_set: String,
        node_id: String,
    },
    StopMongos {
        node_id: String,
    },
    StartMongos {
        node_id: String,
        kernel_version: String,
    },
    StartBalancer,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepPlan {
    pub steps: Vec<PlannedStep>,
    /// Per replica set (upgrade order): elections a fault-free run causes — 1 for the stepdown, 2 when the
    /// old primary outranks every other electable member and takes over again once caught up (F9).
    pub expected_elections: Vec<(String, u32)>,
}

/// The member a fault-free deployment has as primary: the highest-priority electable one, first on ties.
fn assumed_primary(rs: &ReplicaSetSpec) -> Option<&MemberSpec> {
    rs.members
        .iter()
        .filter(|m| m.kind.electable())
        .fold(None, |best: Option<&MemberSpec>, m| match best {
            Some(b) if b.priority >= m.priority => Some(b),
            _ => Some(m),
        })
}

fn plan_inner(
    instance: &Instance,
    target: Option<&str>,
    rs_names: &[String],
    mongos: &[String],
    observed: Option<&DeploymentObservation>,
) -> StepPlan {
    let needs = |kernel: &str| target.is_none_or(|t| t != kernel);
    let mut steps = Vec::new();
    let mut expected_elections = Vec::new();
    let sets: Vec<&ReplicaSetSpec> = instance
        .topology
        .replica_sets()
        .into_iter()
        .filter(|r| rs_names.contains(&r.name))
        .collect();
    let balancer =
        instance.instance_type() == crate::model::DbInstanceType::Sharding && !sets.is_empty();
    if balancer {
        steps.push(PlannedStep::StopBalancer);
    }
    for rs in sets {
        // The workflow re-reads the primary before acting, so a live observation beats the record's guess.
        let live = observed
            .and_then(|o| o.replica_set(&rs.name))
            .and_then(|o| o.primary.as_deref())
            .and_then(|id| rs.members.iter().find(|m| m.node_id == id));
        let primary = live.or_else(|| assumed_primary(rs));
        let restart = |steps: &mut Vec<PlannedStep>, m: &MemberSpec| {
            steps.push(PlannedStep::StopMember {
                replica_set: rs.name.clone(),
                node_id: m.node_id.clone(),
            });
            steps.push(PlannedStep::StartMember {
                replica_set: rs.name.clone(),
                node_id: m.node_id.clone(),
                kernel_version: target.unwrap_or(&m.kernel_version).to_string(),
            });
        };
        for m in &rs.members {
            if Some(&m.node_id) != primary.map(|p| &p.node_id) && needs(&m.kernel_version) {
                restart(&mut steps, m);
            }
        }
        let mut elections = 0;
        if let Some(p) = primary {
            if needs(&p.kernel_version) {
                steps.push(PlannedStep::StepDown {
                    replica_set: rs.name.clone(),
                    node_id: p.node_id.clone(),
                });
                restart(&mut steps, p);
                elections = 1;
                let outranks = rs
                    .members
                    .iter()
                    .filter(|m| m.kind.electable() && m.node_id != p.node_id)
                    .all(|m| m.priority < p.priority);
                if outranks {
                    elections = 2;
                }
            }
        }
        expected_elections.push((rs.name.clone(), elections));
    }
    for m in instance.topology.mongos() {
        if mongos.contains(&m.node_id) && needs(&m.kernel_version) {
            steps.push(PlannedStep::StopMongos {
                node_id: m.node_id.clone(),
            });
            steps.push(PlannedStep::StartMongos {
                node_id: m.node_id.clone(),
                kernel_version: target.unwrap_or(&m.kernel_version).to_string(),
            });
        }
    }
    if balancer {
        steps.push(PlannedStep::StartBalancer);
    }
    StepPlan {
        steps,
        expected_elections,
    }
}

/// Dry run of an upgrade to `target_kernel` from the instance record, assuming a healthy deployment whose
/// primaries are the highest-priority members and whose balancer is on (`full`): the commands a fault-free run
/// executes, in order with shards one at a time (`max_parallel_shards = 1`); with a wider window the commands
/// of the shards after the canary interleave, each replica set's own keeping this order. A balancer found off
/// at run time removes the two balancer steps.
pub fn plan_steps(instance: &Instance, target_kernel: &str) -> StepPlan {
    let scope = super::operation::full_scope(instance);
    plan_inner(
        instance,
        Some(target_kernel),
        &scope.replica_sets,
        &scope.mongos,
        None,
    )
}

/// [`plan_steps`] with each replica set's primary taken from a live observation where it has one: the
/// order a fault-free run of the deployment as it is now will execute.
pub fn plan_steps_observed(
    instance: &Instance,
    target_kernel: &str,
    observed: &DeploymentObservation,
) -> StepPlan {
    let scope = super::operation::full_scope(instance);
    plan_inner(
        instance,
        Some(target_kernel),
        &scope.replica_sets,
        &scope.mongos,
        Some(observed),
    )
}

/// Dry run of a rolling restart.
pub fn plan_restart_steps(instance: &Instance, scope: &RestartScope) -> StepPlan {
    match super::operation::resolve_scope(instance, scope) {
        Ok(s) => plan_inner(instance, None, &s.replica_sets, &s.mongos, None),
        Err(_) => StepPlan {
            steps: Vec::new(),
            expected_elections: Vec::new(),
        },
    }
}

/// [`plan_restart_steps`] with each replica set's primary taken from a live observation where it has one.
pub fn plan_restart_steps_observed(
    instance: &Instance,
    scope: &RestartScope,
    observed: &DeploymentObservation,
) -> StepPlan {
    match super::operation::resolve_scope(instance, scope) {
        Ok(s) => plan_inner(instance, None, &s.replica_sets, &s.mongos, Some(observed)),
        Err(_) => StepPlan {
            steps: Vec::new(),
            expected_elections: Vec::new(),
        },
    }
}
