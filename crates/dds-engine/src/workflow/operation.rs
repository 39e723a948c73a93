//! The rolling operation: one state machine for `UpgradeDBInstanceKernelVersion` (every process onto a target
//! kernel) and `RestartDBInstance` (every process in scope restarted once on its own kernel).
//!
//! `step(observation, now)` → [`Decision`]; `on_result(command, result, now)` records what the plane answered.
//! The state is plain serde data: the runtime persists it after every `step` (before executing the commands)
//! and after every `on_result`. After a crash it reloads the state and calls `step` with a fresh observation;
//! every in-flight step is re-derived from what is observed (I11):
//!
//! | recorded step        | observed                          | action                                   |
//! |----------------------|-----------------------------------|------------------------------------------|
//! | `Stopping`           | process down                      | start it on the target                   |
//! | `Stopping`           | up, on target / new process       | gate it — never stop it again (I4)       |
//! | `Stopping`, unacked  | up, same process                  | re-check the pre-stop gate, stop again   |
//! | `Starting`           | up                                | gate it                                  |
//! | `Starting`, unacked  | down                              | start again (the plane answers repeats)  |
//! | `SteppingDown`       | another primary                   | the old primary is now an ordinary member|
//! | `SteppingDown`, unacked | still primary                  | repeat with the same `step_down_id`      |
//!
//! Why a rolling *restart* needs more than "observed kernel = target" as its idempotency key: the kernel does
//! not change. The key is the durable per-member step record plus the process start time the plane reports
//! (`started_ms`): the record is written before the stop is executed, together with the start time of the
//! process about to be stopped, so "a different process is running now" proves the restart happened even if
//! the acknowledgement was lost. Without a start time from the plane the record alone still suffices, because
//! nothing but this operation starts a member it recorded as `Stopping`.
//!
//! Order and pacing: balancer (record its mode once, before `balancerStop` runs; wait for no round) → config
//! servers → the first shard alone (canary) → the other shards in order, up to `max_parallel_shards` at a
//! time (default 8; the next starts when one finishes) → mongos in waves of `mongos_batch` (never all of
//! them) → balancer back to the recorded mode. Inside a set, one member at a time in configuration order,
//! the primary re-read before every choice and restarted last; a set whose restarted member outranks the
//! primary waits (bounded) for the priority takeover, so the election is counted here and the next set does
//! not start in the middle of it.
//!
//! Failure (§4.2): the first member that misses a deadline ends the rollout. Nothing new is started anywhere;
//! a member already out of service in another set (parallel shards) is brought back, never left down; a
//! failed member started on the new kernel is put back on its previous kernel once (only if stopping it keeps
//! I1); a stepdown in flight is abandoned with the old primary still running; the balancer is restored; the
//! operation ends `Failed` with the member and the reason.

use super::config::UpgradeConfig;
use super::gates::{self, Expect, GateBlock, GateUnmet, MemberRole};
use super::preflight::{self, PreflightError, Scope, SetRoles};
use crate::model::{Instance, MaintainWindow, ReplicaSetKind, Topology};
use crate::plane::{
    BalancerMode, Command, CommandError, DeploymentObservation, MemberState, Millis,
    ReplicaSetObservation,
};
use serde::{Deserialize, Serialize};

/// What the operation does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OperationKind {
    /// `UpgradeDBInstanceKernelVersion`: every process onto `target_kernel`, each restarted at most once.
    Upgrade { target_kernel: String },
    /// `RestartDBInstance`: every process in scope restarted exactly once on its current kernel.
    Restart { scope: RestartScope },
}

/// `RestartDBInstance`'s `NodeId`: the whole instance, or one shard / config server / mongos of a sharded
/// cluster (by its vendor node id, or a replica set by name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestartScope {
    Instance,
    Node { node_id: String },
}

/// What the runtime should do next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decision {
    /// Execute these commands (in any order; they never target the same process) and report each result with
    /// `on_result`, then call `step` again.
    Issue(Vec<Command>),
    /// Nothing to do until this time unless the deployment changes: the runtime may poll earlier (it should
    /// cap the sleep at its poll interval) but the decision will not change on the clock alone before it.
    WaitUntil(Millis),
    /// Finished; every later `step` returns the same.
    Done(Outcome),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Succeeded,
    Failed(Failure),
}

/// The first thing that went wrong: where and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The replica set of the failing member, if a mongod.
    pub replica_set: Option<String>,
    /// The failing process (`None` for instance-level failures such as the balancer).
    pub node_id: Option<String>,
    pub reason: FailureReason,
    pub at_ms: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailureReason {
    /// The deployment failed the live preflight when the operation started; nothing was touched.
    Preflight(PreflightError),
    BalancerNotObserved,
    /// `balancerStop` did not take effect (or a round kept running) before the deadline.
    BalancerStopTimeout {
        in_balancer_round: bool,
    },
    ReplicaSetNotObserved,
    /// The observed primary is not a member of the replica set's configuration.
    UnknownPrimary {
        node_id: String,
    },
    /// The gate before a stop or stepdown stayed closed past its deadline (e.g. F7).
    PreStopGateTimeout {
        block: GateBlock,
    },
    /// The replica set had no primary for longer than allowed while one was needed.
    NoPrimary,
    StopTimeout,
    /// The plane refused a command.
    CommandRejected {
        command: String,
        error: CommandError,
    },
    /// `StartMember`/`StartMongos` failed outright (binary missing, crash on start).
    StartFailed {
        error: CommandError,
    },
    /// Not up and serving on the new kernel before `member_start_deadline_ms`.
    StartTimeout {
        last: GateUnmet,
    },
    /// Up, but the post-start gate never held before `member_catch_up_deadline_ms` (F2).
    CatchUpTimeout {
        last: GateUnmet,
    },
    /// Non-forced stepdown refused until `stepdown_deadline_ms` (F3). Never forced.
    StepDownRefused {
        attempts: u32,
        last_error: Option<CommandError>,
    },
    /// The stepdown was accepted but no other member became primary in time (F4); the old primary was left
    /// running.
    NoNewPrimary,
    /// The old primary was re-elected after `accepted` stepdowns before it could be restarted.
    TooManyStepDowns {
        accepted: u32,
    },
}

/// Where the operation is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Not started (waiting for the maintenance window, or the first step).
    Preflight,
    StoppingBalancer {
        since_ms: Millis,
    },
    ReplicaSets,
    Mongos,
    RestoringBalancer {
        since_ms: Millis,
    },
    Finished,
}

/// The durable per-process step record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberStep {
    Pending,
    /// Observed on the target before this operation touched it: never restarted (I4).
    Skipped,
    Stopping {
        issued_ms: Millis,
        acked: bool,
    },
    Starting {
        issued_ms: Millis,
        acked: bool,
    },
    /// Started; waiting for the post-start gate (I8). `ok_since_ms`: since when the gate has held.
    Gating {
        start_issued_ms: Millis,
        ok_since_ms: Option<Millis>,
    },
    Done,
    /// Failed; being put back on its previous kernel (once).
    Reverting(RevertStage),
    /// Failed (revert, if any, finished — see `ProcessRecord::revert`).
    Failed,
}

impl MemberStep {
    /// Touched and not finished: the one member of its replica set that may be out of service.
    pub fn in_flight(&self) -> bool {
        matches!(
            self,
            MemberStep::Stopping { .. }
                | MemberStep::Starting { .. }
                | MemberStep::Gating { .. }
                | MemberStep::Reverting(_)
        )
    }
    pub fn finished_ok(&self) -> bool {
        matches!(self, MemberStep::Done | MemberStep::Skipped)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RevertStage {
    Begin,
    Stopping { issued_ms: Millis, acked: bool },
    Starting { issued_ms: Millis, acked: bool },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RevertOutcome {
    /// Serving again on `kernel`.
    Reverted {
        kernel: String,
    },
    Failed {
        reason: String,
    },
    /// Not attempted (e.g. stopping it again would break I1, or a restart that kept its kernel and is up).
    Skipped {
        reason: String,
    },
}

/// Per-process record (mongod member or mongos).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    pub node_id: String,
    /// Kernel before the operation: what a failed member is put back on, and what a restart keeps.
    pub from_kernel: String,
    pub step: MemberStep,
    /// Start time of the process that was (about to be) stopped, recorded with the stop.
    pub pre_stop_started_ms: Option<Millis>,
    /// Since when the gate before this process's stop (or stepdown) has been closed.
    pub blocked_since_ms: Option<Millis>,
    pub last_block: Option<GateBlock>,
    pub last_unmet: Option<GateUnmet>,
    /// First `StopMember` issued by this operation (downtime starts).
    pub stop_issued_ms: Option<Millis>,
    /// First observation of the restarted process up, healthy and steady (downtime ends).
    pub serving_again_ms: Option<Millis>,
    /// Kernel last observed running.
    pub last_kernel: Option<String>,
    /// A start was refused because the process was still shutting down (a mongos stops being reported as up
    /// as soon as its quiesce begins): try again at this time.
    #[serde(default)]
    pub start_retry_at_ms: Option<Millis>,
    /// Restarted by this operation and passed its gate.
    pub restarted: bool,
    pub revert: Option<RevertOutcome>,
}

impl ProcessRecord {
    fn new(node_id: &str, from_kernel: &str) -> Self {
        Self {
            node_id: node_id.to_string(),
            from_kernel: from_kernel.to_string(),
            step: MemberStep::Pending,
            pre_stop_started_ms: None,
            blocked_since_ms: None,
            last_block: None,
            last_unmet: None,
            stop_issued_ms: None,
            serving_again_ms: None,
            last_kernel: None,
            start_retry_at_ms: None,
            restarted: false,
            revert: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RsStatus {
    /// Not in this operation's scope.
    OutOfScope,
    Pending,
    Active,
    Done,
    /// The first failure happened here.
    Failed,
    /// Left as it was because another part failed.
    Halted,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PrimaryStage {
    SteppingDown {
        node_id: String,
        step_down_id: u64,
        first_attempt_ms: Millis,
        attempts: u32,
        acked: bool,
        retry_at_ms: Option<Millis>,
        last_error: Option<CommandError>,
    },
    AwaitingNewPrimary {
        node_id: String,
        since_ms: Millis,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ElectionCause {
    /// The handoff after this operation's stepdown.
    StepDown,
    /// A higher-priority member took over after catching up (F9) — expected with unequal priorities.
    PriorityTakeover,
    /// Anything else (primary crash, network): not caused by the workflow.
    Unplanned,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElectionRecord {
    pub at_ms: Millis,
    pub term: u64,
    /// Term delta at this observation (elections between two observations are counted, not seen).
    pub count: u64,
    pub new_primary: Option<String>,
    pub cause: ElectionCause,
}

/// One replica set's progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RsTrack {
    pub name: String,
    pub node_id: String,
    pub kind: ReplicaSetKind,
    pub status: RsStatus,
    /// The operation's failure happened in this set; it becomes `Failed` once nothing is in flight.
    pub failed_here: bool,
    pub roles: Vec<MemberRole>,
    /// Parallel to `roles`.
    pub procs: Vec<ProcessRecord>,
    pub primary_stage: Option<PrimaryStage>,
    /// Since when the workflow has been waiting for this set to have any primary.
    pub primary_wait_since_ms: Option<Millis>,
    /// Stepdowns the plane accepted in this set.
    pub stepdowns_accepted: u32,
    /// Since when the finished set has been waiting for an expected priority takeover.
    #[serde(default)]
    pub takeover_wait_since_ms: Option<Millis>,
    /// Expected takeovers that did not happen in time (reported as warnings).
    #[serde(default)]
    pub takeover_notes: Vec<String>,
    pub first_term: Option<u64>,
    pub last_term: Option<u64>,
    pub last_primary: Option<String>,
    pub elections: Vec<ElectionRecord>,
    pub no_primary_since_ms: Option<Millis>,
    pub no_primary_total_ms: u64,
    pub no_primary_longest_ms: u64,
    pub started_ms: Option<Millis>,
    pub finished_ms: Option<Millis>,
}

impl RsTrack {
    pub fn elections_total(&self) -> u64 {
        match (self.first_term, self.last_term) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => 0,
        }
    }
    fn in_scope(&self) -> bool {
        self.status != RsStatus::OutOfScope
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MongosTrack {
    pub in_scope: bool,
    pub proc: ProcessRecord,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalancerTrack {
    /// The mode observed before this operation touched the balancer (I6). Written once, before `StopBalancer`
    /// is executed, so a resumed operation never mistakes its own "off" for the user's.
    pub recorded: Option<BalancerMode>,
    pub stop_issued: bool,
    pub stop_acked: bool,
    pub start_issued: bool,
    pub start_acked: bool,
    /// Set when the operation ends: whether the recorded mode was observed again.
    pub restored: Option<bool>,
    /// `balancerStart` was refused (e.g. the config servers are between primaries): retry at this time.
    #[serde(default)]
    pub retry_at_ms: Option<Millis>,
    #[serde(default)]
    pub last_error: Option<CommandError>,
}

/// `UpgradeDBInstanceKernelVersion`'s operation (the same machine as a restart; see [`OperationKind`]).
pub type UpgradeOperation = RollingOperation;

/// The persisted operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollingOperation {
    pub instance_id: String,
    pub kind: OperationKind,
    pub config: UpgradeConfig,
    /// When set, new replica sets (and the mongos phase) start only inside the window; a started replica set
    /// finishes even past its end (`SwitchMode=1`).
    pub window: Option<MaintainWindow>,
    pub sharded: bool,
    pub phase: Phase,
    pub replica_sets: Vec<RsTrack>,
    pub mongos: Vec<MongosTrack>,
    pub balancer: BalancerTrack,
    /// Stepdowns issued so far; ids are `started_ms * 1000 + seq`, unique per instance.
    pub step_down_seq: u64,
    pub started_ms: Option<Millis>,
    pub finished_ms: Option<Millis>,
    pub failure: Option<Failure>,
    /// Failures after the first (e.g. a shard restarting in parallel that also failed its gate).
    pub other_failures: Vec<Failure>,
    pub warnings: Vec<String>,
    pub commands_issued: u64,
    /// Commands the plane accepted (the executed steps).
    pub commands_ok: u64,
    /// While the live preflight at the start fails for a transient reason: since when, and why. The
    /// operation waits up to `pre_stop_gate_deadline_ms` for the deployment to settle.
    #[serde(default)]
    pub start_blocked: Option<StartBlocked>,
}

/// Why an accepted operation has not started yet although it may (see [`PreflightError::is_transient`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartBlocked {
    pub since_ms: Millis,
    pub reason: PreflightError,
}

/// How often a start blocked by a transient preflight failure looks again.
const START_RETRY_WAIT_MS: Millis = 1_000;

/// Wait before repeating a refused `balancerStart`.
const BALANCER_RETRY_MS: Millis = 5_000;

/// Wait before repeating a start the plane refused because the process was still exiting.
const START_RETRY_MS: Millis = 1_000;

/// Whether a (repeated) start may be sent now; otherwise schedules the wake-up.
fn start_allowed(p: &mut ProcessRecord, cx: &mut Cx) -> bool {
    match p.start_retry_at_ms {
        Some(t) if cx.now < t => {
            cx.wake_at(t);
            false
        }
        _ => {
            p.start_retry_at_ms = None;
            true
        }
    }
}

/// Per-step scratch: commands to issue, the next wake-up, failures raised.
struct Cx {
    now: Millis,
    cmds: Vec<Command>,
    wake: Option<Millis>,
    failures: Vec<Failure>,
}

impl Cx {
    fn wake_at(&mut self, t: Millis) {
        let t = t.max(self.now + 1);
        self.wake = Some(self.wake.map_or(t, |w| w.min(t)));
    }
    fn deadline(&mut self, since: Millis, limit_ms: u64) -> bool {
        let at = since.saturating_add(limit_ms);
        if self.now >= at {
            true
        } else {
            self.wake_at(at);
            false
        }
    }
}

fn env_of<'a>(
    cfg: &'a UpgradeConfig,
    kind: &'a OperationKind,
    halted: bool,
    started_ms: Option<Millis>,
) -> Env<'a> {
    Env {
        cfg,
        target: match kind {
            OperationKind::Upgrade { target_kernel } => Some(target_kernel.as_str()),
            OperationKind::Restart { .. } => None,
        },
        halted,
        step_down_base: started_ms.unwrap_or(0).saturating_mul(1_000),
    }
}

/// Read-only context shared by the replica-set and mongos steppers.
struct Env<'a> {
    cfg: &'a UpgradeConfig,
    target: Option<&'a str>,
    halted: bool,
    step_down_base: u64,
}

impl Env<'_> {
    fn expected_kernel<'k>(&'k self, p: &'k ProcessRecord) -> &'k str {
        self.target.unwrap_or(&p.from_kernel)
    }
    fn on_target(&self, kernel: Option<&str>) -> bool {
        self.target.is_some() && kernel == self.target
    }
    /// Evidence that the process running now is not the one this record stopped.
    fn already_restarted(
        &self,
        p: &ProcessRecord,
        kernel: Option<&str>,
        started: Option<Millis>,
    ) -> bool {
        if self.on_target(kernel) {
            return true;
        }
        matches!((p.pre_stop_started_ms, started), (Some(a), Some(b)) if a != b)
    }
}

fn failure(rs: Option<&str>, node: Option<&str>, reason: FailureReason, now: Millis) -> Failure {
    Failure {
        replica_set: rs.map(str::to_string),
        node_id: node.map(str::to_string),
        reason,
        at_ms: now,
    }
}

impl RollingOperation {
    /// Plans `UpgradeDBInstanceKernelVersion` onto `target_kernel` (the catalog's newest minor for the
    /// instance's `EngineVersion`). Checks what the instance record can tell; the deployment itself is checked
    /// by the first `step` (or up front with [`RollingOperation::preflight`]).
    pub fn plan_upgrade(
        instance: &Instance,
        target_kernel: &str,
        config: UpgradeConfig,
    ) -> Result<Self, PreflightError> {
        let scope = full_scope(instance);
        preflight::check_static(instance, Some(target_kernel), &scope, &config)?;
        Ok(Self::build(
            instance,
            OperationKind::Upgrade {
                target_kernel: target_kernel.to_string(),
            },
            &scope,
            config,
        ))
    }

    /// Shorthand for [`RollingOperation::plan_upgrade`] (the name the runtime contract uses).
    pub fn plan(
        instance: &Instance,
        target_kernel: &str,
        config: UpgradeConfig,
    ) -> Result<Self, PreflightError> {
        Self::plan_upgrade(instance, target_kernel, config)
    }

    /// Plans `RestartDBInstance` for the whole instance or one node (shard, config server or mongos).
    pub fn plan_restart(
        instance: &Instance,
        scope: RestartScope,
        config: UpgradeConfig,
    ) -> Result<Self, PreflightError> {
        let resolved = resolve_scope(instance, &scope)?;
        preflight::check_static(instance, None, &resolved, &config)?;
        Ok(Self::build(
            instance,
            OperationKind::Restart { scope },
            &resolved,
            config,
        ))
    }

    /// The live preflight this operation will run when it starts, for a caller that wants to refuse up front.
    pub fn preflight(&self, obs: &DeploymentObservation) -> Result<(), PreflightError> {
        check_live_from_tracks(self, obs)
    }

    /// Defers the start (and the start of every further replica set) to the maintenance window.
    pub fn with_maintain_window(mut self, window: MaintainWindow) -> Self {
        self.window = Some(window);
        self
    }

    fn build(
        instance: &Instance,
        kind: OperationKind,
        scope: &Scope,
        config: UpgradeConfig,
    ) -> Self {
        let replica_sets = instance
            .topology
            .replica_sets()
            .into_iter()
            .map(|spec| RsTrack {
                name: spec.name.clone(),
                node_id: spec.node_id.clone(),
                kind: spec.kind,
                status: if scope.replica_sets.contains(&spec.name) {
                    RsStatus::Pending
                } else {
                    RsStatus::OutOfScope
                },
                failed_here: false,
                roles: preflight::roles(spec),
                procs: spec
                    .members
                    .iter()
                    .map(|m| ProcessRecord::new(&m.node_id, &m.kernel_version))
                    .collect(),
                primary_stage: None,
                primary_wait_since_ms: None,
                stepdowns_accepted: 0,
                takeover_wait_since_ms: None,
                takeover_notes: Vec::new(),
                first_term: None,
                last_term: None,
                last_primary: None,
                elections: Vec::new(),
                no_primary_since_ms: None,
                no_primary_total_ms: 0,
                no_primary_longest_ms: 0,
                started_ms: None,
                finished_ms: None,
            })
            .collect();
        let mongos = instance
            .topology
            .mongos()
            .iter()
            .map(|m| MongosTrack {
                in_scope: scope.mongos.contains(&m.node_id),
                proc: ProcessRecord::new(&m.node_id, &m.kernel_version),
            })
            .collect();
        Self {
            instance_id: instance.id.clone(),
            kind,
            config,
            window: None,
            sharded: matches!(instance.topology, Topology::Sharded { .. }),
            phase: Phase::Preflight,
            replica_sets,
            mongos,
            balancer: BalancerTrack::default(),
            step_down_seq: 0,
            started_ms: None,
            finished_ms: None,
            failure: None,
            other_failures: Vec::new(),
            warnings: Vec::new(),
            commands_issued: 0,
            commands_ok: 0,
            start_blocked: None,
        }
    }

    pub fn target(&self) -> Option<&str> {
        match &self.kind {
            OperationKind::Upgrade { target_kernel } => Some(target_kernel),
            OperationKind::Restart { .. } => None,
        }
    }

    pub fn is_finished(&self) -> bool {
        self.phase == Phase::Finished
    }

    pub fn outcome(&self) -> Option<Outcome> {
        self.is_finished().then(|| match &self.failure {
            Some(f) => Outcome::Failed(f.clone()),
            None => Outcome::Succeeded,
        })
    }

    fn needs_balancer(&self) -> bool {
        self.sharded && self.replica_sets.iter().any(RsTrack::in_scope)
    }

    /// Advances the operation given a fresh observation taken at `now_ms`.
    pub fn step(&mut self, obs: &DeploymentObservation, now_ms: Millis) -> Decision {
        if let Some(o) = self.outcome() {
            return Decision::Done(o);
        }
        self.observe(obs, now_ms);
        let mut cx = Cx {
            now: now_ms,
            cmds: Vec::new(),
            wake: None,
            failures: Vec::new(),
        };
        // Phases can complete within one step (e.g. a replica-set instance has no balancer phase); a bounded
        // loop keeps a bug from spinning forever.
        for _ in 0..8 {
            let before = self.phase.clone();
            match self.phase.clone() {
                Phase::Preflight => self.step_preflight(obs, &mut cx),
                Phase::StoppingBalancer { since_ms } => {
                    self.step_stop_balancer(obs, since_ms, &mut cx)
                }
                Phase::ReplicaSets => self.step_replica_sets(obs, &mut cx),
                Phase::Mongos => self.step_mongos(obs, &mut cx),
                Phase::RestoringBalancer { since_ms } => {
                    self.step_restore_balancer(obs, since_ms, &mut cx)
                }
                Phase::Finished => {}
            }
            self.absorb_failures(&mut cx);
            if self.phase == Phase::Finished {
                self.finish(now_ms);
                break;
            }
            if !cx.cmds.is_empty() || self.phase == before {
                break;
            }
        }
        if let Some(o) = self.outcome() {
            return Decision::Done(o);
        }
        if !cx.cmds.is_empty() {
            self.commands_issued += cx.cmds.len() as u64;
            return Decision::Issue(cx.cmds);
        }
        Decision::WaitUntil(cx.wake.unwrap_or(now_ms + 1_000))
    }

    fn absorb_failures(&mut self, cx: &mut Cx) {
        for f in cx.failures.drain(..) {
            if self.failure.is_none() {
                self.failure = Some(f);
            } else {
                self.other_failures.push(f);
            }
        }
    }

    fn finish(&mut self, now: Millis) {
        self.finished_ms = Some(now);
        for rs in &mut self.replica_sets {
            if let Some(since) = rs.no_primary_since_ms.take() {
                let d = now.saturating_sub(since);
                rs.no_primary_total_ms += d;
                rs.no_primary_longest_ms = rs.no_primary_longest_ms.max(d);
            }
        }
    }

    /// Bookkeeping from every observation: elections (term deltas), windows without a primary, kernels seen,
    /// when restarted processes serve again.
    fn observe(&mut self, obs: &DeploymentObservation, now: Millis) {
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
                    let d = now.saturating_sub(since);
                    rs.no_primary_total_ms += d;
                    rs.no_primary_longest_ms = rs.no_primary_longest_ms.max(d);
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

    fn step_preflight(&mut self, obs: &DeploymentObservation, cx: &mut Cx) {
        if let Some(w) = self.window {
            if !w.contains(cx.now) {
                // A wait that outlived its window starts afresh in the next one.
                self.start_blocked = None;
                cx.wake_at(cx.now + w.ms_until_open(cx.now));
                return;
            }
        }
        if let Err(e) = check_live_from_tracks(self, obs) {
            let since_ms = self.start_blocked.as_ref().map_or(cx.now, |b| b.since_ms);
            if e.is_transient()
                && cx.now.saturating_sub(since_ms) < self.config.pre_stop_gate_deadline_ms
            {
                self.start_blocked = Some(StartBlocked {
                    since_ms,
                    reason: e,
                });
                cx.wake_at(cx.now + START_RETRY_WAIT_MS);
                return;
            }
            cx.failures
                .push(failure(None, None, FailureReason::Preflight(e), cx.now));
            self.phase = Phase::Finished;
            return;
        }
        self.start_blocked = None;
        self.started_ms = Some(cx.now);
        // The instance record can be stale; what runs now is what a failed member goes back to and what a
        // restart keeps.
        for rs in &mut self.replica_sets {
            if let Some(ro) = obs.replica_set(&rs.name) {
                for p in &mut rs.procs {
                    if let Some(k) = ro.member(&p.node_id).and_then(|m| m.kernel_version.clone()) {
                        p.from_kernel = k;
                    }
                }
            }
        }
        for ms in &mut self.mongos {
            if let Some(k) = obs
                .mongos
                .iter()
                .find(|m| m.node_id == ms.proc.node_id)
                .and_then(|m| m.kernel_version.clone())
            {
                ms.proc.from_kernel = k;
            }
        }
        for rs in &self.replica_sets {
            if rs.in_scope() && preflight_loses_write_majority(rs) {
                self.warnings.push(format!(
                    "{}: w:majority writes stall while its data-bearing secondary restarts (PSA-like set)",
                    rs.name
                ));
            }
        }
        let serving_mongos = self.mongos.len();
        if self.mongos.iter().any(|m| m.in_scope) && serving_mongos < 2 {
            self.warnings
                .push("only one mongos: clients have no router while it restarts".to_string());
        }
        self.phase = if self.needs_balancer() {
            Phase::StoppingBalancer { since_ms: cx.now }
        } else {
            Phase::ReplicaSets
        };
    }

    fn step_stop_balancer(&mut self, obs: &DeploymentObservation, since_ms: Millis, cx: &mut Cx) {
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

    fn step_restore_balancer(
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
                    self.phase = Phase::Finished;
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
                    self.phase = Phase::Finished;
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
                self.phase = Phase::Finished;
            }
            None => self.phase = Phase::Finished,
        }
    }

    fn exclusive(&self, i: usize) -> bool {
        let rs = &self.replica_sets[i];
        match rs.kind {
            ReplicaSetKind::Instance | ReplicaSetKind::ConfigServer => true,
            ReplicaSetKind::Shard => {
                self.config.canary_shard
                    && self
                        .replica_sets
                        .iter()
                        .position(|r| r.kind == ReplicaSetKind::Shard && r.in_scope())
                        == Some(i)
            }
        }
    }

    fn window_open(&self, cx: &mut Cx) -> bool {
        match self.window {
            Some(w) if !w.contains(cx.now) => {
                cx.wake_at(cx.now + w.ms_until_open(cx.now));
                false
            }
            _ => true,
        }
    }

    /// Config servers first, then the canary shard alone, then the other shards up to `max_parallel_shards`
    /// at a time (I5).
    fn schedule(&mut self, cx: &mut Cx) {
        if self.failure.is_some() || !cx.failures.is_empty() {
            return;
        }
        let max_parallel = self.config.max_parallel_shards.max(1) as usize;
        let mut active = self
            .replica_sets
            .iter()
            .filter(|r| r.status == RsStatus::Active)
            .count();
        for i in 0..self.replica_sets.len() {
            match self.replica_sets[i].status {
                RsStatus::OutOfScope | RsStatus::Done => continue,
                RsStatus::Active => {
                    if self.exclusive(i) {
                        return;
                    }
                }
                RsStatus::Failed | RsStatus::Halted => return,
                RsStatus::Pending => {
                    let exclusive = self.exclusive(i);
                    let fits = if exclusive {
                        active == 0
                    } else {
                        active < max_parallel
                    };
                    if !fits || !self.window_open(cx) {
                        return;
                    }
                    let rs = &mut self.replica_sets[i];
                    rs.status = RsStatus::Active;
                    rs.started_ms = Some(cx.now);
                    active += 1;
                    if exclusive {
                        return;
                    }
                }
            }
        }
    }

    fn step_replica_sets(&mut self, obs: &DeploymentObservation, cx: &mut Cx) {
        self.schedule(cx);
        let mut seq = self.step_down_seq;
        for i in 0..self.replica_sets.len() {
            if self.replica_sets[i].status != RsStatus::Active {
                continue;
            }
            let halted = self.failure.is_some() || !cx.failures.is_empty();
            let env = env_of(&self.config, &self.kind, halted, self.started_ms);
            let rs = &mut self.replica_sets[i];
            advance_rs(&env, &mut seq, rs, obs, cx);
            // A set that just finished frees a slot for the next one within the same step.
            if rs.status == RsStatus::Done {
                self.schedule(cx);
            }
        }
        self.step_down_seq = seq;
        let halted = self.failure.is_some() || !cx.failures.is_empty();
        let busy = self
            .replica_sets
            .iter()
            .any(|r| r.status == RsStatus::Active);
        if busy {
            return;
        }
        if halted {
            for rs in &mut self.replica_sets {
                if rs.status == RsStatus::Pending {
                    rs.status = RsStatus::Halted;
                }
            }
            self.phase = self.wind_down_phase(cx.now);
        } else if self
            .replica_sets
            .iter()
            .all(|r| matches!(r.status, RsStatus::Done | RsStatus::OutOfScope))
            && self.window_open(cx)
        {
            self.phase = Phase::Mongos;
        }
    }

    fn wind_down_phase(&self, now: Millis) -> Phase {
        if self.balancer.recorded.is_some() {
            Phase::RestoringBalancer { since_ms: now }
        } else {
            Phase::Finished
        }
    }

    fn step_mongos(&mut self, obs: &DeploymentObservation, cx: &mut Cx) {
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

fn preflight_loses_write_majority(rs: &RsTrack) -> bool {
    let voters = rs.roles.iter().filter(|r| r.kind.votes()).count();
    let data_voters = rs
        .roles
        .iter()
        .filter(|r| r.kind.votes() && r.kind.data_bearing())
        .count();
    data_voters > 0 && data_voters - 1 < (voters / 2 + 1).min(data_voters)
}

/// The live preflight, from the tracks (the operation does not keep the instance record).
fn check_live_from_tracks(
    op: &RollingOperation,
    obs: &DeploymentObservation,
) -> Result<(), PreflightError> {
    let sets: Vec<SetRoles<'_>> = op
        .replica_sets
        .iter()
        .filter(|r| r.in_scope())
        .map(|r| SetRoles {
            name: &r.name,
            roles: &r.roles,
        })
        .collect();
    let mongos: Vec<&str> = op
        .mongos
        .iter()
        .filter(|m| m.in_scope)
        .map(|m| m.proc.node_id.as_str())
        .collect();
    preflight::check_live(op.target(), &sets, &mongos, op.sharded, obs, &op.config)
}

pub(crate) fn full_scope(instance: &Instance) -> Scope {
    Scope {
        replica_sets: instance
            .topology
            .replica_sets()
            .iter()
            .map(|r| r.name.clone())
            .collect(),
        mongos: instance
            .topology
            .mongos()
            .iter()
            .map(|m| m.node_id.clone())
            .collect(),
    }
}

pub(crate) fn resolve_scope(
    instance: &Instance,
    scope: &RestartScope,
) -> Result<Scope, PreflightError> {
    match scope {
        RestartScope::Instance => Ok(full_scope(instance)),
        RestartScope::Node { node_id } => {
            if let Some(rs) = instance
                .topology
                .replica_sets()
                .into_iter()
                .find(|r| &r.node_id == node_id || &r.name == node_id)
            {
                // A replica-set instance's only "node" is the instance itself.
                return Ok(Scope {
                    replica_sets: vec![rs.name.clone()],
                    mongos: Vec::new(),
                });
            }
            if instance
                .topology
                .mongos()
                .iter()
                .any(|m| &m.node_id == node_id)
            {
                return Ok(Scope {
                    replica_sets: Vec::new(),
                    mongos: vec![node_id.clone()],
                });
            }
            Err(PreflightError::NoSuchNode {
                node_id: node_id.chars().take(64).collect(),
            })
        }
    }
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

/// Fails `p` (and marks it for a revert when it was started on the new kernel).
fn fail_process(p: &mut ProcessRecord, rs: Option<&str>, reason: FailureReason, cx: &mut Cx) {
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

/// One replica set: finish the in-flight member, then the stepdown stage, then pick the next member.
fn advance_rs(
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
    let primary = ro.primary.clone();
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

fn step_down_cmd(cfg: &UpgradeConfig, rs: &str, node: &str, id: u64) -> Command {
    Command::StepDown {
        replica_set: rs.to_string(),
        node_id: node.to_string(),
        step_down_id: id,
        step_down_secs: cfg.step_down_secs,
        catch_up_secs: cfg.step_down_catch_up_secs,
    }
}

fn block_or_fail(env: &Env<'_>, rs: &str, p: &mut ProcessRecord, block: GateBlock, cx: &mut Cx) {
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
            Some(p) if p != node_id => rs.primary_stage = None,
            None => {
                rs.primary_stage = Some(PrimaryStage::AwaitingNewPrimary {
                    node_id,
                    since_ms: cx.now,
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
        PrimaryStage::AwaitingNewPrimary { node_id, since_ms } => match ro.primary.as_deref() {
            Some(p) if p != node_id => rs.primary_stage = None,
            _ => {
                if cx.deadline(since_ms, cfg.new_primary_deadline_ms) {
                    fail_primary(rs, &node_id, FailureReason::NoNewPrimary, cx);
                }
            }
        },
    }
}

/// Drives the in-flight member `j` of `rs` one step.
fn advance_member(
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
                // The stop was recorded but maybe never executed: same gate as the first time, then repeat.
                match gates::pre_stop(&rs.roles, ro, &role.node_id, true) {
                    Ok(()) => {
                        rs.procs[j].blocked_since_ms = None;
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
