//! Preflight (I9): the conditions under which a rolling operation may start.
//!
//! Split in two so a handler can refuse synchronously while the engine re-checks at the moment it starts:
//! - [`check_static`] needs only the instance record: status `Running`, not standalone, a second electable
//!   member in every replica set, target ≠ recorded kernels.
//! - [`check_live`] needs a fresh [`DeploymentObservation`]: every replica set in scope has exactly one primary,
//!   every member up, healthy and steady, lag under the threshold, the oplog window ≫ the expected per-member
//!   downtime (when observed, F17), the balancer observable on a sharded cluster, mongos up, and some process
//!   not yet on the target.

use super::config::UpgradeConfig;
use super::gates::lag_ms;
use super::gates::MemberRole;
use crate::model::{DbInstanceStatus, Instance, MemberKind, ReplicaSetSpec, Topology};
use crate::plane::{DeploymentObservation, MemberState};
use serde::{Deserialize, Serialize};

/// Why an operation may not start: a reason, never a vendor code (ddsd maps each to its `ApiError`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum PreflightError {
    #[error("instance status is {status}, not Running")]
    NotRunning { status: DbInstanceStatus },
    #[error("standalone instances cannot be upgraded or restarted online")]
    Standalone,
    #[error("every process already runs {kernel}")]
    AlreadyOnTarget { kernel: String },
    #[error("invalid target kernel {kernel:?}")]
    InvalidTarget { kernel: String },
    #[error("replica set {replica_set} has no second electable member to hand the primary to")]
    NoElectableSecondary { replica_set: String },
    #[error("node {node_id} is not a shard, config server or mongos of this instance")]
    NoSuchNode { node_id: String },
    #[error("node {node_id} is not a replica set (shard or config server) of this instance")]
    NotAReplicaSet { node_id: String },
    #[error("role {role_id} is not a member of the replica set in scope")]
    NoSuchRole { role_id: String },
    #[error("replica set {replica_set} has no electable secondary caught up with its primary to switch to")]
    NoCaughtUpSecondary { replica_set: String },
    #[error("replica set {replica_set} is not observable")]
    ReplicaSetNotObserved { replica_set: String },
    #[error("member {node_id} of {replica_set} is not observable")]
    MemberNotObserved {
        replica_set: String,
        node_id: String,
    },
    #[error("replica set {replica_set} has no primary")]
    NoPrimary { replica_set: String },
    #[error("replica set {replica_set} reports {count} primaries")]
    MultiplePrimaries { replica_set: String, count: usize },
    #[error("member {node_id} of {replica_set} is {state:?} (healthy={healthy}, up={process_up})")]
    MemberUnhealthy {
        replica_set: String,
        node_id: String,
        state: MemberState,
        healthy: bool,
        process_up: bool,
    },
    #[error("member {node_id} of {replica_set} lags {lag_ms} ms (max {max_lag_ms} ms)")]
    LagTooHigh {
        replica_set: String,
        node_id: String,
        lag_ms: u64,
        max_lag_ms: u64,
    },
    #[error("oplog window of {replica_set} is {window_ms} ms, needs at least {required_ms} ms")]
    OplogWindowTooSmall {
        replica_set: String,
        window_ms: u64,
        required_ms: u64,
    },
    #[error("the balancer state is not observable")]
    BalancerNotObserved,
    #[error("mongos {node_id} is down or not observable")]
    MongosDown { node_id: String },
    #[error(
        "restarting a data-bearing member of {replica_set} loses w:majority write availability"
    )]
    WriteMajorityLoss { replica_set: String },
    #[error("invalid workflow configuration: {reason}")]
    InvalidConfig { reason: String },
    /// A major version upgrade needs the feature compatibility version to equal the running major (MongoDB
    /// starts the next major's binary only on such data).
    #[error("replica set {replica_set} has featureCompatibilityVersion {fcv}, needs {expected}")]
    FcvMismatch {
        replica_set: String,
        fcv: String,
        expected: String,
    },
}

impl PreflightError {
    /// Whether the deployment may well pass a moment later without anyone acting: an election in progress,
    /// a member restarting or catching up, a process not observed once. When the live preflight fails this
    /// way as an accepted operation starts, the operation waits for it (bounded), rather than failing an
    /// upgrade that was accepted a moment ago, or that waited hours for its maintenance window.
    pub fn is_transient(&self) -> bool {
        use PreflightError::*;
        matches!(
            self,
            ReplicaSetNotObserved { .. }
                | MemberNotObserved { .. }
                | NoPrimary { .. }
                | MultiplePrimaries { .. }
                | MemberUnhealthy { .. }
                | LagTooHigh { .. }
                | BalancerNotObserved
                | MongosDown { .. }
                | NoCaughtUpSecondary { .. }
        )
    }
}

/// Which parts of the instance an operation touches.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Scope {
    /// Names of the replica sets in scope, in upgrade order.
    pub replica_sets: Vec<String>,
    pub mongos: Vec<String>,
}

pub(crate) fn roles(spec: &ReplicaSetSpec) -> Vec<MemberRole> {
    spec.members
        .iter()
        .map(|m| MemberRole {
            node_id: m.node_id.clone(),
            kind: m.kind,
            priority: m.priority,
            delay_secs: m.delay_secs,
        })
        .collect()
}

/// True when restarting some data-bearing voter of `spec` leaves fewer data-bearing voters than
/// `writeMajorityCount` (PSA and the like).
pub fn loses_write_majority(spec: &ReplicaSetSpec) -> bool {
    let voters = spec.voting_members();
    let data_voters = spec
        .members
        .iter()
        .filter(|m| m.kind.votes() && m.kind.data_bearing())
        .count();
    let write_majority = (voters / 2 + 1).min(data_voters);
    data_voters > 0 && data_voters - 1 < write_majority
}

/// Checks that need only the instance record. `target` is `None` for a restart.
pub(crate) fn check_static(
    instance: &Instance,
    target: Option<&str>,
    scope: &Scope,
    cfg: &UpgradeConfig,
) -> Result<(), PreflightError> {
    cfg.validate()
        .map_err(|reason| PreflightError::InvalidConfig { reason })?;
    if instance.status != DbInstanceStatus::Running {
        return Err(PreflightError::NotRunning {
            status: instance.status,
        });
    }
    if matches!(instance.topology, Topology::Standalone { .. }) {
        return Err(PreflightError::Standalone);
    }
    if let Some(t) = target {
        if t.trim().is_empty() || t.len() > 128 {
            return Err(PreflightError::InvalidTarget {
                kernel: t.chars().take(128).collect(),
            });
        }
        if instance.topology.kernel_versions().all(|k| k == t) {
            return Err(PreflightError::AlreadyOnTarget {
                kernel: t.to_string(),
            });
        }
    }
    for rs in instance.topology.replica_sets() {
        if !scope.replica_sets.contains(&rs.name) {
            continue;
        }
        let electable = rs.members.iter().filter(|m| m.kind.electable()).count();
        if electable < 2 {
            return Err(PreflightError::NoElectableSecondary {
                replica_set: rs.name.clone(),
            });
        }
        if !cfg.allow_write_majority_loss && loses_write_majority(rs) {
            return Err(PreflightError::WriteMajorityLoss {
                replica_set: rs.name.clone(),
            });
        }
    }
    Ok(())
}

/// One replica set in scope, with its configuration.
pub(crate) struct SetRoles<'a> {
    pub name: &'a str,
    pub roles: &'a [MemberRole],
}

/// A primary switch's own live check, run before [`check_live`]: some electable secondary among
/// `candidates` (any, when empty) is serving and within the lag threshold, so the non-forced stepdown has
/// someone to hand over to. A set without a primary or not observed passes here: `check_live` names that.
pub(crate) fn check_switchable(
    set: &SetRoles<'_>,
    candidates: &[String],
    obs: &DeploymentObservation,
    cfg: &UpgradeConfig,
) -> Result<(), PreflightError> {
    let Some(ro) = obs.replica_set(set.name) else {
        return Ok(());
    };
    let Some(primary) = ro.primary.as_deref() else {
        return Ok(());
    };
    let named = |id: &str| candidates.is_empty() || candidates.iter().any(|c| c == id);
    let ready = set.roles.iter().any(|role| {
        role.kind.electable()
            && role.node_id != primary
            && named(&role.node_id)
            && ro.member(&role.node_id).is_some_and(|m| {
                m.process_up
                    && m.healthy
                    && m.state == MemberState::Secondary
                    && lag_ms(role, ro, m) <= cfg.max_lag_ms
            })
    });
    if ready {
        Ok(())
    } else {
        Err(PreflightError::NoCaughtUpSecondary {
            replica_set: set.name.to_string(),
        })
    }
}

/// Checks against a fresh observation of the deployment.
pub(crate) fn check_live(
    target: Option<&str>,
    sets: &[SetRoles<'_>],
    mongos: &[&str],
    sharded: bool,
    obs: &DeploymentObservation,
    cfg: &UpgradeConfig,
) -> Result<(), PreflightError> {
    let mut all_on_target = true;
    for set in sets {
        let rs_name = &set.name.to_string();
        let ro = obs
            .replica_set(rs_name)
            .ok_or_else(|| PreflightError::ReplicaSetNotObserved {
                replica_set: rs_name.clone(),
            })?;
        let primaries = ro
            .members
            .iter()
            .filter(|m| m.state == MemberState::Primary)
            .count();
        if primaries > 1 {
            return Err(PreflightError::MultiplePrimaries {
                replica_set: rs_name.clone(),
                count: primaries,
            });
        }
        if ro.primary.is_none() || primaries == 0 {
            return Err(PreflightError::NoPrimary {
                replica_set: rs_name.clone(),
            });
        }
        for role in set.roles {
            let m = ro
                .member(&role.node_id)
                .ok_or_else(|| PreflightError::MemberNotObserved {
                    replica_set: rs_name.clone(),
                    node_id: role.node_id.clone(),
                })?;
            if !(m.process_up && m.healthy && m.state.is_steady()) {
                return Err(PreflightError::MemberUnhealthy {
                    replica_set: rs_name.clone(),
                    node_id: role.node_id.clone(),
                    state: m.state,
                    healthy: m.healthy,
                    process_up: m.process_up,
                });
            }
            let lag = lag_ms(role, ro, m);
            let allowed = role.lag_allowance_ms(cfg.max_lag_ms);
            if lag > allowed {
                return Err(PreflightError::LagTooHigh {
                    replica_set: rs_name.clone(),
                    node_id: role.node_id.clone(),
                    lag_ms: lag,
                    max_lag_ms: allowed,
                });
            }
            if target.is_some() && m.kernel_version.as_deref() != target {
                all_on_target = false;
            }
        }
        if let Some(window_ms) = ro.oplog_window_ms {
            let required_ms = cfg.required_oplog_window_ms();
            let has_data = set.roles.iter().any(|r| r.kind != MemberKind::Arbiter);
            if has_data && window_ms < required_ms {
                return Err(PreflightError::OplogWindowTooSmall {
                    replica_set: rs_name.clone(),
                    window_ms,
                    required_ms,
                });
            }
        }
    }
    if sharded && !sets.is_empty() && obs.balancer.is_none() {
        return Err(PreflightError::BalancerNotObserved);
    }
    for id in mongos {
        let m = obs.mongos.iter().find(|m| m.node_id == *id);
        match m {
            Some(m) if m.up => {
                if target.is_some() && m.kernel_version.as_deref() != target {
                    all_on_target = false;
                }
            }
            _ => {
                return Err(PreflightError::MongosDown {
                    node_id: id.to_string(),
                })
            }
        }
    }
    if let Some(t) = target {
        if all_on_target {
            return Err(PreflightError::AlreadyOnTarget {
                kernel: t.to_string(),
            });
        }
    }
    Ok(())
}
