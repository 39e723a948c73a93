//! The operation's persisted state: the records the runtime saves after every `step` and `on_result`, and
//! from which a resumed operation re-derives every in-flight step (I11). They are plain serde data kept
//! apart from the logic so the serialized format can be read and reviewed in one place: field names and
//! order are the persisted format and must not change.

use crate::model::{MaintainWindow, ReplicaSetKind};
use crate::plane::{BalancerMode, Command, CommandError, Millis};
use crate::workflow::config::UpgradeConfig;
use crate::workflow::gates::{GateBlock, GateUnmet, MemberRole};
use crate::workflow::preflight::PreflightError;
use serde::{Deserialize, Serialize};

/// What a rolling operation does (the store's `OperationKind` says which kind of operation a row
/// is; this carries the rolling one's target).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RollingKind {
    /// `UpgradeDBInstanceKernelVersion`: every process onto `target_kernel`, each restarted at most once.
    Upgrade { target_kernel: String },
    /// `RestartDBInstance` / `RestartNode`: every process in scope restarted exactly once on its current
    /// kernel.
    Restart { scope: RestartScope },
    /// `SwitchDBInstanceHA`: a planned primary switch — in each replica set in scope, the primary hands over
    /// through one non-forced stepdown and nothing is restarted. `candidates` (the request's `RoleIds` other
    /// than the primary; empty = any electable secondary) are the members one of which must be electable and
    /// caught up for the switch to start.
    Switch {
        scope: RestartScope,
        candidates: Vec<String>,
    },
    /// `ModifyDBInstanceSpec` / `ModifyNodeSpec`: a restart of `scope` ([`RestartScope::Instance`] or
    /// [`RestartScope::Node`]) — every process in it restarted exactly once on its current kernel — onto
    /// the class `class` (and `storage_gb`, GB, for a replica set; `None` for a mongos). Planned and run
    /// exactly as [`RollingKind::Restart`]; the caller applies the new class to its record once the
    /// operation succeeded.
    ClassChange {
        scope: RestartScope,
        class: String,
        storage_gb: Option<u32>,
    },
    /// `UpgradeDBInstanceEngineVersion`: a major version upgrade by one step. The rolling binary change of
    /// `Upgrade` onto `target_kernel` (the newest kernel of the next major), then — once every process runs
    /// it — `setFeatureCompatibilityVersion` to `target_fcv` (the new major), raised last.
    EngineUpgrade {
        target_kernel: String,
        target_fcv: String,
    },
}

/// `RestartDBInstance`'s `NodeId`: the whole instance, or one shard / config server / mongos of a sharded
/// cluster (by its vendor node id, or a replica set by name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestartScope {
    Instance,
    Node {
        node_id: String,
    },
    /// `RestartNode`: one member (`role_id`, its node id) of the replica set `node_id` (a shard's or the
    /// config server's node id, or the replica set of a replica-set instance); the other members are
    /// recorded `Skipped`. A primary is stepped down (never forced) before its restart. A mongos is named
    /// with `role_id` = `node_id` = its node id.
    Member {
        node_id: String,
        role_id: String,
    },
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
    /// A major version upgrade: every process runs the new binary, but the feature compatibility version
    /// could not be raised before `pre_stop_gate_deadline_ms` (refused `attempts` times, or never observed).
    /// The deployment is left on the new binaries with the previous FCV, which MongoDB supports.
    FcvNotRaised {
        attempts: u32,
        last_error: Option<CommandError>,
        /// A process not (or no longer) observed up on the target, which kept the FCV from being raised.
        waiting_for: Option<String>,
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
    /// A major version upgrade after the binary change (and the balancer's restore): raising the feature
    /// compatibility version, the last step.
    SettingFcv {
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
    pub(super) fn new(node_id: &str, from_kernel: &str) -> Self {
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
        /// `since_ms` is when the stepdown's acknowledgement was handled, which on a plane whose
        /// commands take deployment time (a stepdown answers once the member stepped down) can be
        /// well before the stepdown happened: the wait for a new primary is timed from the next
        /// observation instead.
        #[serde(default)]
        from_ack: bool,
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
    /// Each observed stretch without a primary (the writes-unavailable windows), oldest first,
    /// at most [`MAX_NO_PRIMARY_WINDOWS`].
    #[serde(default)]
    pub no_primary_windows: Vec<super::super::report::Window>,
    pub started_ms: Option<Millis>,
    pub finished_ms: Option<Millis>,
}

/// Windows kept per replica set; later ones only add to the totals.
pub const MAX_NO_PRIMARY_WINDOWS: usize = 64;

impl RsTrack {
    /// A stretch without a primary ended at `now`.
    pub(crate) fn close_no_primary(&mut self, since: Millis, now: Millis) {
        let d = now.saturating_sub(since);
        self.no_primary_total_ms += d;
        self.no_primary_longest_ms = self.no_primary_longest_ms.max(d);
        if self.no_primary_windows.len() < MAX_NO_PRIMARY_WINDOWS {
            self.no_primary_windows.push(super::super::report::Window {
                from_ms: since,
                until_ms: now,
            });
        }
    }

    pub fn elections_total(&self) -> u64 {
        match (self.first_term, self.last_term) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => 0,
        }
    }
    pub(super) fn in_scope(&self) -> bool {
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

/// The feature compatibility version step of a major version upgrade.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FcvTrack {
    /// The FCV observed before it was raised (per the first replica set in scope).
    pub from: Option<String>,
    pub issued: bool,
    pub acked: bool,
    pub attempts: u32,
    pub retry_at_ms: Option<Millis>,
    pub last_error: Option<CommandError>,
    /// When the command was first issued (after every process was observed on the target).
    pub first_issued_ms: Option<Millis>,
    /// When the new FCV was observed on every replica set.
    pub raised_ms: Option<Millis>,
}

/// `UpgradeDBInstanceKernelVersion`'s operation (the same machine as a restart; see [`RollingKind`]).
pub type UpgradeOperation = RollingOperation;

/// The persisted operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollingOperation {
    pub instance_id: String,
    pub kind: RollingKind,
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
    /// A major version upgrade's feature compatibility version step.
    #[serde(default)]
    pub fcv: FcvTrack,
}

/// Why an accepted operation has not started yet although it may (see [`PreflightError::is_transient`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartBlocked {
    pub since_ms: Millis,
    pub reason: PreflightError,
}

impl RollingOperation {
    pub fn target(&self) -> Option<&str> {
        match &self.kind {
            RollingKind::Upgrade { target_kernel }
            | RollingKind::EngineUpgrade { target_kernel, .. } => Some(target_kernel),
            RollingKind::Restart { .. }
            | RollingKind::Switch { .. }
            | RollingKind::ClassChange { .. } => None,
        }
    }

    /// The feature compatibility version a major version upgrade raises last.
    pub fn target_fcv(&self) -> Option<&str> {
        match &self.kind {
            RollingKind::EngineUpgrade { target_fcv, .. } => Some(target_fcv),
            _ => None,
        }
    }

    /// A primary switch (`SwitchDBInstanceHA`): stepdowns only, no process restarted.
    pub fn is_switch(&self) -> bool {
        matches!(self.kind, RollingKind::Switch { .. })
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
}
