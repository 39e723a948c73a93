//! The operation-kind dispatch: one persisted enum over every workflow the runtime drives, and the single
//! step/effect vocabulary the driver loop speaks.
//!
//! | kind      | state                                   | effects                     | instance while running      |
//! |-----------|-----------------------------------------|-----------------------------|-----------------------------|
//! | `create`  | [`CreateOperation`]                     | provision / deprovision     | `Creating` → `Running`      |
//! | `delete`  | [`DeleteOperation`]                     | deprovision                 | `Deleting` → removed        |
//! | `upgrade` | `dds_engine::workflow::RollingOperation` | plane commands              | `MinorVersionUpgrading`     |
//! | `restart` | `dds_engine::workflow::RollingOperation` | plane commands              | `Rebooting` / `NodeRestarting` |
//! | `switch`  | `dds_engine::workflow::RollingOperation` | plane commands (stepdowns)  | `HASwitching`               |
//! | `class_change` | `dds_engine::workflow::RollingOperation` | plane commands (a restart) | `DBInstanceClassChanging` |
//! | `engine_upgrade` | `dds_engine::workflow::RollingOperation` | plane commands, setFCV last | `EngineVersionUpgrading` |
//!
//! A new kind is a new variant here plus its three functions (`step`, `on_result`, `instance_update`);
//! the driver loop does not change.

use crate::server::store::{
    InstanceChange, InstanceUpdate, NewOperation, OperationKind, OperationOutcome, SpecUpdate,
};
use dds_engine::model::{DbInstanceStatus, Instance, MaintainWindow, Topology};
use dds_engine::plane::{Command, CommandError, DeploymentObservation, Millis};
use dds_engine::workflow::provision::{
    CreateOperation, DeleteOperation, PlaneEffect, ProvisionConfig, ProvisionDecision,
    ProvisionOutcome,
};
use dds_engine::workflow::{self, Decision, Outcome, Phase, RestartScope, RollingOperation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The persisted state of any operation. Stored as `{"kind": "...", "state": {...}}`; the `kind` matches the
/// store's operation kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "state", rename_all = "lowercase")]
pub enum OperationState {
    Create(CreateOperation),
    Delete(DeleteOperation),
    Upgrade(Box<RollingOperation>),
    Restart(Box<RollingOperation>),
    Switch(Box<RollingOperation>),
    /// `ModifyDBInstanceSpec` / `ModifyNodeSpec`: a restart of the scope onto the new class.
    #[serde(rename = "class_change")]
    ClassChange(Box<RollingOperation>),
    /// `UpgradeDBInstanceEngineVersion` (stored as kind `engine_upgrade`).
    #[serde(rename = "engine_upgrade")]
    EngineUpgrade(Box<RollingOperation>),
}

/// Something the driver executes on the data plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Plane(PlaneEffect),
    Command(Command),
}

/// How an operation ends.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub outcome: OperationOutcome,
    pub report: Value,
    pub instance: InstanceChange,
}

/// What the driver does next.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Effects(Vec<Effect>),
    WaitUntil(Millis),
    Done(Completion),
}

impl OperationState {
    /// A create operation with the default deadlines.
    pub fn create() -> Self {
        OperationState::Create(CreateOperation::new(ProvisionConfig::default()))
    }

    pub fn delete() -> Self {
        OperationState::Delete(DeleteOperation::new(ProvisionConfig::default()))
    }

    /// Wraps a planned rolling operation under the store kind matching what it does.
    pub fn rolling(op: RollingOperation) -> Self {
        match op.kind {
            workflow::RollingKind::Upgrade { .. } => OperationState::Upgrade(Box::new(op)),
            workflow::RollingKind::Restart { .. } => OperationState::Restart(Box::new(op)),
            workflow::RollingKind::Switch { .. } => OperationState::Switch(Box::new(op)),
            workflow::RollingKind::ClassChange { .. } => OperationState::ClassChange(Box::new(op)),
            workflow::RollingKind::EngineUpgrade { .. } => {
                OperationState::EngineUpgrade(Box::new(op))
            }
        }
    }

    pub fn kind(&self) -> OperationKind {
        match self {
            OperationState::Create(_) => OperationKind::Create,
            OperationState::Delete(_) => OperationKind::Delete,
            OperationState::Upgrade(_) => OperationKind::Upgrade,
            OperationState::Restart(_) => OperationKind::Restart,
            OperationState::Switch(_) => OperationKind::Switch,
            OperationState::ClassChange(_) => OperationKind::ClassChange,
            OperationState::EngineUpgrade(_) => OperationKind::EngineUpgrade,
        }
    }

    pub fn to_json(&self) -> Value {
        // Plain data with string keys: serialisation cannot fail.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Decodes a stored state and checks it is of the stored kind.
    pub fn from_json(kind: OperationKind, state: Value) -> Result<Self, String> {
        let s: OperationState = serde_json::from_value(state).map_err(|e| e.to_string())?;
        if s.kind() != kind {
            return Err(format!("a {} state stored as a {kind} operation", s.kind()));
        }
        Ok(s)
    }

    /// The operation record a handler stores for this state.
    pub fn new_operation(&self, id: String) -> NewOperation {
        NewOperation {
            id,
            kind: self.kind(),
            state: self.to_json(),
        }
    }

    /// What a client may see of a running operation (progress bar, current member, failure so far).
    pub fn progress(&self) -> Value {
        match self {
            OperationState::Create(op) => serde_json::json!({
                "phase": op.phase, "waiting_on": op.waiting_on, "failure": op.failure,
            }),
            OperationState::Delete(op) => serde_json::json!({
                "phase": op.phase, "failure": op.failure,
            }),
            OperationState::Upgrade(op)
            | OperationState::Restart(op)
            | OperationState::Switch(op)
            | OperationState::ClassChange(op)
            | OperationState::EngineUpgrade(op) => {
                serde_json::to_value(op.progress()).unwrap_or(Value::Null)
            }
        }
    }

    pub fn step(
        &mut self,
        instance: &Instance,
        obs: Option<&DeploymentObservation>,
        now: Millis,
    ) -> Step {
        match self {
            OperationState::Create(op) => {
                let d = op.step(instance, obs, now);
                let report = serde_json::json!({
                    "started_ms": op.started_ms, "finished_ms": op.finished_ms, "failure": op.failure,
                });
                provision_step(d, report, |o| match o {
                    ProvisionOutcome::Ready => Some(DbInstanceStatus::Running),
                    _ => None,
                })
            }
            OperationState::Delete(op) => {
                let d = op.step(obs, now);
                let report = serde_json::json!({
                    "started_ms": op.started_ms, "finished_ms": op.finished_ms, "failure": op.failure,
                });
                provision_step(d, report, |o| match o {
                    ProvisionOutcome::Kept => Some(DbInstanceStatus::Running),
                    _ => None,
                })
            }
            OperationState::Upgrade(op)
            | OperationState::Restart(op)
            | OperationState::Switch(op)
            | OperationState::ClassChange(op)
            | OperationState::EngineUpgrade(op) => {
                // Without a deployment the workflow sees no replica set and applies its own failure policy.
                let empty;
                let obs = match obs {
                    Some(o) => o,
                    None => {
                        empty = DeploymentObservation {
                            now_ms: now,
                            replica_sets: Vec::new(),
                            mongos: Vec::new(),
                            balancer: None,
                        };
                        &empty
                    }
                };
                match op.step(obs, now) {
                    Decision::Issue(cmds) => {
                        Step::Effects(cmds.into_iter().map(Effect::Command).collect())
                    }
                    Decision::WaitUntil(t) => Step::WaitUntil(t),
                    Decision::Done(outcome) => Step::Done(rolling_completion(op, &outcome)),
                }
            }
        }
    }

    pub fn on_result(&mut self, effect: &Effect, result: Result<(), CommandError>, now: Millis) {
        match (self, effect) {
            (OperationState::Create(op), Effect::Plane(e)) => op.on_result(*e, result, now),
            (OperationState::Delete(op), Effect::Plane(e)) => op.on_result(*e, result, now),
            (
                OperationState::Upgrade(op)
                | OperationState::Restart(op)
                | OperationState::Switch(op)
                | OperationState::ClassChange(op)
                | OperationState::EngineUpgrade(op),
                Effect::Command(c),
            ) => op.on_result(c, result, now),
            // A state machine only ever gets results of the effects it asked for.
            _ => {}
        }
    }

    /// Whether this is a deferred (`SwitchMode=1`) rolling operation, which starts replica sets and the mongos
    /// phase only inside the instance's maintenance window.
    pub fn waits_for_window(&self) -> bool {
        matches!(self, OperationState::Upgrade(op) | OperationState::Restart(op) | OperationState::Switch(op)
            | OperationState::ClassChange(op)
            | OperationState::EngineUpgrade(op) if op.window.is_some())
    }

    /// Points a deferred operation at the instance's window as it is now. The window is the instance's
    /// attribute, which `ModifyDBInstanceMaintainTime` may change while the operation waits; the operation
    /// must then start in the new window, not in the one recorded when it was accepted.
    pub fn follow_maintain_window(&mut self, window: MaintainWindow) {
        if let OperationState::Upgrade(op)
        | OperationState::Restart(op)
        | OperationState::Switch(op)
        | OperationState::ClassChange(op)
        | OperationState::EngineUpgrade(op) = self
        {
            if op.window.is_some() {
                op.window = Some(window);
            }
        }
    }

    /// How the instance record should read while the operation runs, given what is observed: the status
    /// once a deferred (`SwitchMode=1`) operation has actually started, and every process's observed kernel.
    pub fn instance_update(
        &self,
        instance: &Instance,
        obs: Option<&DeploymentObservation>,
    ) -> InstanceUpdate {
        let (OperationState::Upgrade(op)
        | OperationState::Restart(op)
        | OperationState::Switch(op)
        | OperationState::ClassChange(op)
        | OperationState::EngineUpgrade(op)) = self
        else {
            return InstanceUpdate::default();
        };
        let mut update = InstanceUpdate::default();
        if instance.status == DbInstanceStatus::Running
            && op.phase != Phase::Preflight
            && !op.is_finished()
        {
            update.status = Some(busy_status(op));
        }
        if let Some(obs) = obs {
            update.kernel_versions = observed_kernel_changes(&instance.topology, obs);
        }
        update
    }
}

fn provision_step(
    d: ProvisionDecision,
    report: Value,
    final_status: impl Fn(ProvisionOutcome) -> Option<DbInstanceStatus>,
) -> Step {
    match d {
        ProvisionDecision::Do(e) => Step::Effects(vec![Effect::Plane(e)]),
        ProvisionDecision::WaitUntil(t) => Step::WaitUntil(t),
        ProvisionDecision::Done(o) => Step::Done(Completion {
            outcome: match o {
                ProvisionOutcome::Ready => OperationOutcome::Succeeded,
                // A delete that removed the deployment succeeded; a create that had to be removed failed.
                ProvisionOutcome::Removed if report["failure"].is_null() => {
                    OperationOutcome::Succeeded
                }
                _ => OperationOutcome::Failed,
            },
            instance: match final_status(o) {
                Some(s) => InstanceChange::Update(InstanceUpdate::status(s)),
                None => InstanceChange::Remove,
            },
            report,
        }),
    }
}

/// The status a client sees while a rolling operation works on the deployment.
pub fn busy_status(op: &RollingOperation) -> DbInstanceStatus {
    match &op.kind {
        workflow::RollingKind::Upgrade { .. } => DbInstanceStatus::MinorVersionUpgrading,
        workflow::RollingKind::Restart {
            scope: RestartScope::Instance,
        } => DbInstanceStatus::Rebooting,
        workflow::RollingKind::Restart {
            scope: RestartScope::Node { .. } | RestartScope::Member { .. },
        } => DbInstanceStatus::NodeRestarting,
        workflow::RollingKind::Switch { .. } => DbInstanceStatus::HaSwitching,
        workflow::RollingKind::ClassChange { .. } => DbInstanceStatus::DbInstanceClassChanging,
        workflow::RollingKind::EngineUpgrade { .. } => DbInstanceStatus::EngineVersionUpgrading,
    }
}

fn rolling_completion(op: &RollingOperation, outcome: &Outcome) -> Completion {
    let report = op.report();
    // The instance ends on exactly `Running`, with each process's kernel as last observed: after a failed
    // upgrade that is the reported version mix.
    let mut kernels = Vec::new();
    if let Some(r) = &report {
        for p in r
            .replica_sets
            .iter()
            .flat_map(|rs| rs.members.iter())
            .chain(r.mongos.iter())
        {
            if let Some(k) = &p.kernel {
                kernels.push((p.node_id.clone(), k.clone()));
            }
        }
    }
    Completion {
        outcome: match outcome {
            Outcome::Succeeded => OperationOutcome::Succeeded,
            Outcome::Failed(_) => OperationOutcome::Failed,
        },
        report: serde_json::to_value(&report).unwrap_or(Value::Null),
        instance: InstanceChange::Update(InstanceUpdate {
            status: Some(DbInstanceStatus::Running),
            kernel_versions: kernels,
            spec: match (&op.kind, outcome) {
                // The new class is the instance's once every process in scope runs on it; a failed
                // change keeps the old one.
                (
                    workflow::RollingKind::ClassChange {
                        scope,
                        class,
                        storage_gb,
                    },
                    Outcome::Succeeded,
                ) => Some(SpecUpdate {
                    node_id: match scope {
                        RestartScope::Node { node_id } | RestartScope::Member { node_id, .. } => {
                            Some(node_id.clone())
                        }
                        RestartScope::Instance => None,
                    },
                    class: class.clone(),
                    storage_gb: *storage_gb,
                }),
                _ => None,
            },
            // A major version upgrade changes `EngineVersion` only once it succeeded (FCV raised); a failed
            // one leaves the instance on its major, with the kernels as observed.
            engine_version: match (outcome, op.target_fcv()) {
                (Outcome::Succeeded, Some(fcv)) => Some(fcv.to_string()),
                _ => None,
            },
        }),
    }
}

/// `(node_id, kernel)` for every process the plane reports running a kernel other than the recorded one.
pub fn observed_kernel_changes(
    topology: &Topology,
    obs: &DeploymentObservation,
) -> Vec<(String, String)> {
    let mut changes = Vec::new();
    let mut note = |node: &str, recorded: &str, observed: Option<&String>| {
        if let Some(k) = observed {
            if k != recorded {
                changes.push((node.to_string(), k.clone()));
            }
        }
    };
    let members = obs.replica_sets.iter().flat_map(|rs| rs.members.iter());
    let find = |node: &str| members.clone().find(|m| m.node_id == node);
    if let Topology::Standalone { member } = topology {
        if let Some(m) = find(&member.node_id) {
            note(
                &member.node_id,
                &member.kernel_version,
                m.kernel_version.as_ref(),
            );
        }
    }
    for rs in topology.replica_sets() {
        for spec in &rs.members {
            if let Some(m) = find(&spec.node_id) {
                note(
                    &spec.node_id,
                    &spec.kernel_version,
                    m.kernel_version.as_ref(),
                );
            }
        }
    }
    for spec in topology.mongos() {
        if let Some(m) = obs.mongos.iter().find(|m| m.node_id == spec.node_id) {
            note(
                &spec.node_id,
                &spec.kernel_version,
                m.kernel_version.as_ref(),
            );
        }
    }
    changes
}

/// Applies an update to a cached copy of the instance, as the store applies it to the stored one.
pub fn apply_update(instance: &mut Instance, update: &InstanceUpdate) {
    if let Some(s) = update.status {
        instance.status = s;
    }
    for (node, kernel) in &update.kernel_versions {
        instance.topology.set_kernel_version(node, kernel);
    }
    if let Some(spec) = &update.spec {
        instance.apply_spec(spec.node_id.as_deref(), &spec.class, spec.storage_gb);
    }
    if let Some(e) = &update.engine_version {
        instance.engine_version.clone_from(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::store::fixtures::{replica_set, KERNEL};
    use dds_engine::workflow::UpgradeConfig;

    #[test]
    fn states_round_trip_and_keep_their_kind() {
        let inst = replica_set("dds-k", "t");
        let upgrade = RollingOperation::plan_upgrade(
            &inst,
            "mongodb_20240101_4.0.30",
            UpgradeConfig::default(),
        )
        .unwrap();
        let restart =
            RollingOperation::plan_restart(&inst, RestartScope::Instance, UpgradeConfig::default())
                .unwrap();
        let switch = RollingOperation::plan_switch(
            &inst,
            RestartScope::Instance,
            Vec::new(),
            UpgradeConfig::default(),
        )
        .unwrap();
        assert_eq!(busy_status(&switch), DbInstanceStatus::HaSwitching);
        let class_change = RollingOperation::plan_class_change(
            &inst,
            RestartScope::Instance,
            "dds.mongo.large",
            Some(40),
            UpgradeConfig::default(),
        )
        .unwrap();
        let engine = RollingOperation::plan_engine_upgrade(
            &inst,
            "mongodb_20240101_4.2.30",
            "4.2",
            UpgradeConfig::default(),
        )
        .unwrap();
        assert_eq!(
            busy_status(&class_change),
            DbInstanceStatus::DbInstanceClassChanging
        );
        assert_eq!(
            busy_status(&engine),
            DbInstanceStatus::EngineVersionUpgrading
        );
        for (state, kind) in [
            (
                OperationState::rolling(engine),
                OperationKind::EngineUpgrade,
            ),
            (OperationState::rolling(switch), OperationKind::Switch),
            (
                OperationState::rolling(class_change),
                OperationKind::ClassChange,
            ),
            (OperationState::create(), OperationKind::Create),
            (OperationState::delete(), OperationKind::Delete),
            (OperationState::rolling(upgrade), OperationKind::Upgrade),
            (OperationState::rolling(restart), OperationKind::Restart),
        ] {
            assert_eq!(state.kind(), kind);
            let json = state.to_json();
            assert_eq!(json["kind"], kind.as_str());
            assert_eq!(
                OperationState::from_json(kind, json.clone()).unwrap(),
                state
            );
            let other = if kind == OperationKind::Create {
                OperationKind::Delete
            } else {
                OperationKind::Create
            };
            let err = OperationState::from_json(other, json).unwrap_err();
            assert!(
                err.contains(&format!("stored as a {other} operation")),
                "{err}"
            );
        }
        let err =
            OperationState::from_json(OperationKind::Create, serde_json::json!({})).unwrap_err();
        assert!(err.contains("missing field"), "{err}");
    }

    #[test]
    fn a_deferred_upgrade_shows_its_status_only_once_it_starts() {
        // SwitchMode=1: accepted while Running, the status flips when the workflow leaves preflight.
        let inst = replica_set("dds-w", "t");
        let mut op = RollingOperation::plan_upgrade(
            &inst,
            "mongodb_20240101_4.0.30",
            UpgradeConfig::default(),
        )
        .unwrap();
        let waiting = OperationState::rolling(op.clone());
        assert_eq!(
            waiting.instance_update(&inst, None),
            InstanceUpdate::default()
        );
        op.phase = Phase::ReplicaSets;
        let started = OperationState::rolling(op);
        assert_eq!(
            started.instance_update(&inst, None).status,
            Some(DbInstanceStatus::MinorVersionUpgrading)
        );
        let mut already = inst.clone();
        already.status = DbInstanceStatus::MinorVersionUpgrading;
        assert_eq!(started.instance_update(&already, None).status, None);
    }

    #[test]
    fn observed_kernels_are_mirrored_into_the_record() {
        use dds_engine::plane::{MemberObservation, MemberState, ReplicaSetObservation};
        let inst = replica_set("dds-o", "t");
        let Topology::ReplicaSet { replica_set: rs } = &inst.topology else {
            unreachable!()
        };
        let m = |node: &str, kernel: Option<&str>| MemberObservation {
            node_id: node.into(),
            state: MemberState::Secondary,
            healthy: true,
            process_up: kernel.is_some(),
            kernel_version: kernel.map(str::to_string),
            optime_ms: 0,
            state_since_ms: 0,
            started_ms: None,
        };
        let obs = DeploymentObservation {
            now_ms: 0,
            replica_sets: vec![ReplicaSetObservation {
                name: rs.name.clone(),
                term: 1,
                primary: None,
                primary_optime_ms: 0,
                members: vec![
                    m(&rs.members[0].node_id, Some(KERNEL)),
                    m(&rs.members[1].node_id, Some("mongodb_20240101_4.0.30")),
                    m(&rs.members[2].node_id, None),
                ],
                oplog_window_ms: None,
                fcv: None,
            }],
            mongos: vec![],
            balancer: None,
        };
        assert_eq!(
            observed_kernel_changes(&inst.topology, &obs),
            vec![(
                rs.members[1].node_id.clone(),
                "mongodb_20240101_4.0.30".to_string()
            )]
        );
    }
}
