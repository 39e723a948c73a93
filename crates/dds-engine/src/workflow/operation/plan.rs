//! Planning: an instance record and a request turned into a [`RollingOperation`] before anything is touched —
//! the scope a `RestartDBInstance` node id resolves to, the static preflight, the initial tracks, and the
//! live preflight run from those tracks. Kept apart from stepping because callers (the runtime, the dry-run
//! report) use it without ever driving the machine.

use super::state::{
    BalancerTrack, MemberStep, MongosTrack, Phase, ProcessRecord, RestartScope, RollingKind,
    RollingOperation, RsStatus, RsTrack,
};
use crate::model::{Instance, MaintainWindow, Topology};
use crate::plane::DeploymentObservation;
use crate::workflow::config::UpgradeConfig;
use crate::workflow::preflight::{self, PreflightError, Scope, SetRoles};

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
            RollingKind::Upgrade {
                target_kernel: target_kernel.to_string(),
            },
            &scope,
            config,
        ))
    }

    /// Plans `UpgradeDBInstanceEngineVersion`: one step along the major version path. `target_kernel` is the
    /// newest kernel of `target_fcv` (the next major after the instance's `EngineVersion`; the caller checks
    /// the path), `from_fcv` the major the instance runs now, which its data's feature compatibility version
    /// must equal when the operation starts (checked live).
    pub fn plan_engine_upgrade(
        instance: &Instance,
        target_kernel: &str,
        target_fcv: &str,
        config: UpgradeConfig,
    ) -> Result<Self, PreflightError> {
        let scope = full_scope(instance);
        preflight::check_static(instance, Some(target_kernel), &scope, &config)?;
        Ok(Self::build(
            instance,
            RollingKind::EngineUpgrade {
                target_kernel: target_kernel.to_string(),
                target_fcv: target_fcv.to_string(),
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
        Self::plan_restart_of(instance, RollingKind::Restart { scope }, config)
    }

    /// Plans `ModifyDBInstanceSpec` (scope [`RestartScope::Instance`]) or `ModifyNodeSpec` (scope
    /// [`RestartScope::Node`]): the restart of that scope, onto `class` / `storage_gb`. The checks, the
    /// plan and the run are the restart's; a one-member scope is [`PreflightError::NoSuchNode`].
    pub fn plan_class_change(
        instance: &Instance,
        scope: RestartScope,
        class: &str,
        storage_gb: Option<u32>,
        config: UpgradeConfig,
    ) -> Result<Self, PreflightError> {
        if let RestartScope::Member { role_id, .. } = &scope {
            return Err(PreflightError::NoSuchNode {
                node_id: role_id.chars().take(64).collect(),
            });
        }
        let kind = RollingKind::ClassChange {
            scope,
            class: class.to_string(),
            storage_gb,
        };
        Self::plan_restart_of(instance, kind, config)
    }

    /// A restart-shaped operation (`Restart` or `ClassChange`) of the kind's scope.
    fn plan_restart_of(
        instance: &Instance,
        kind: RollingKind,
        config: UpgradeConfig,
    ) -> Result<Self, PreflightError> {
        let scope = match &kind {
            RollingKind::Restart { scope } | RollingKind::ClassChange { scope, .. } => scope,
            RollingKind::Upgrade { .. }
            | RollingKind::EngineUpgrade { .. }
            | RollingKind::Switch { .. } => &RestartScope::Instance,
        };
        let resolved = resolve_scope(instance, scope)?;
        preflight::check_static(instance, None, &resolved, &config)?;
        Ok(Self::build(instance, kind, &resolved, config))
    }

    /// Plans `SwitchDBInstanceHA` for the replica set(s) of `scope`: [`RestartScope::Instance`] (every
    /// replica set) or [`RestartScope::Node`] naming one shard or the config server (a mongos is
    /// [`PreflightError::NotAReplicaSet`]). `candidates` are member node ids of those sets (the request's
    /// `RoleIds`; the primary among them is ignored when the switch starts): at least one of them must be an
    /// electable, caught-up secondary ([`PreflightError::NoCaughtUpSecondary`], checked live). Nobody
    /// restarts, so a set whose restart would lose w:majority may still switch.
    pub fn plan_switch(
        instance: &Instance,
        scope: RestartScope,
        candidates: Vec<String>,
        config: UpgradeConfig,
    ) -> Result<Self, PreflightError> {
        let resolved = resolve_scope(instance, &scope)?;
        if let (RestartScope::Node { node_id }, true) = (&scope, resolved.replica_sets.is_empty()) {
            return Err(PreflightError::NotAReplicaSet {
                node_id: node_id.chars().take(64).collect(),
            });
        }
        let static_cfg = UpgradeConfig {
            allow_write_majority_loss: true,
            ..config.clone()
        };
        preflight::check_static(instance, None, &resolved, &static_cfg)?;
        for c in &candidates {
            let known = instance
                .topology
                .replica_sets()
                .into_iter()
                .filter(|r| resolved.replica_sets.contains(&r.name))
                .any(|r| r.members.iter().any(|m| &m.node_id == c));
            if !known {
                return Err(PreflightError::NoSuchRole {
                    role_id: c.chars().take(64).collect(),
                });
            }
        }
        Ok(Self::build(
            instance,
            RollingKind::Switch { scope, candidates },
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

    fn build(instance: &Instance, kind: RollingKind, scope: &Scope, config: UpgradeConfig) -> Self {
        // `RestartNode`: only the named member of its set is restarted.
        let only_member = match &kind {
            RollingKind::Restart {
                scope: RestartScope::Member { role_id, .. },
            } => Some(role_id.clone()),
            _ => None,
        };
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
                    .map(|m| {
                        let mut p = ProcessRecord::new(&m.node_id, &m.kernel_version);
                        if only_member.as_ref().is_some_and(|r| r != &m.node_id) {
                            p.step = MemberStep::Skipped;
                        }
                        p
                    })
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
                no_primary_windows: Vec::new(),
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
            fcv: Default::default(),
        }
    }
}

/// The live preflight, from the tracks (the operation does not keep the instance record).
pub(super) fn check_live_from_tracks(
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
    if let RollingKind::Switch { candidates, .. } = &op.kind {
        for set in &sets {
            preflight::check_switchable(set, candidates, obs, &op.config)?;
        }
    }
    if let RollingKind::EngineUpgrade { target_fcv, .. } = &op.kind {
        let expected = crate::catalog::ENGINE_UPGRADE_PATH
            .iter()
            .position(|e| e == target_fcv)
            .and_then(|i| i.checked_sub(1))
            .map(|i| crate::catalog::ENGINE_UPGRADE_PATH[i]);
        for set in &sets {
            let fcv = obs.replica_set(set.name).and_then(|r| r.fcv.as_deref());
            if let (Some(fcv), Some(expected)) = (fcv, expected) {
                if fcv != expected {
                    return Err(PreflightError::FcvMismatch {
                        replica_set: set.name.to_string(),
                        fcv: fcv.chars().take(16).collect(),
                        expected: expected.to_string(),
                    });
                }
            }
        }
    }
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
        RestartScope::Member { node_id, role_id } => {
            // A mongos is its own only member.
            if role_id == node_id
                && instance
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
            let Some(rs) = instance
                .topology
                .replica_sets()
                .into_iter()
                .find(|r| &r.node_id == node_id || &r.name == node_id)
            else {
                return Err(PreflightError::NotAReplicaSet {
                    node_id: node_id.chars().take(64).collect(),
                });
            };
            if !rs.members.iter().any(|m| &m.node_id == role_id) {
                return Err(PreflightError::NoSuchRole {
                    role_id: role_id.chars().take(64).collect(),
                });
            }
            Ok(Scope {
                replica_sets: vec![rs.name.clone()],
                mongos: Vec::new(),
            })
        }
    }
}
