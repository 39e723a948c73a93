//! What the rolling operations share — `UpgradeDBInstanceKernelVersion`, `RestartDBInstance` and their
//! dry runs `DdsdDescribeUpgradePlan` / `DdsdDescribeRestartPlan`: the typed requests, the choice of
//! target (the newest kernel; the restart scope), the record-level refusals, and the acceptance path
//! that records the intent.
//!
//! An action and its dry run read the same request type and plan through the same function here, so
//! the dry run refuses exactly what the action refuses from the record; only `accept` (the live
//! preflight and the store transaction) is the action's alone.

use dds_engine::model::{DbInstanceStatus, Instance, Topology};
use dds_engine::workflow::{RestartScope, RollingOperation};

use super::errors::{from_store, ApiError};
use super::params::{clip, optional, optional_bool, required};
use super::{Context, FromParams, Params};
use crate::server::runtime::operation::busy_status;
use crate::server::runtime::OperationState;
use crate::server::store::Accepted;

/// Longest `NodeId` / `NodeType` accepted (vendor node ids are about 20 characters).
const MAX_NODE_PARAM_LEN: usize = 64;

/// `SwitchMode`: `0` (default) now, `1` in the maintenance window.
pub(crate) fn switch_mode(params: &Params) -> Result<bool, ApiError> {
    match optional(params, "SwitchMode") {
        None | Some("0") => Ok(false),
        Some("1") => Ok(true),
        Some(v) => Err(ApiError::invalid_parameter(
            "SwitchMode",
            format!(
                "Valid values are 0 (immediately) and 1 (in the maintenance window), got \"{}\".",
                clip(v)
            ),
        )),
    }
}

fn bounded<'a>(params: &'a Params, name: &str) -> Result<Option<&'a str>, ApiError> {
    match optional(params, name) {
        Some(v) if v.len() > MAX_NODE_PARAM_LEN => Err(ApiError::invalid_parameter(
            name,
            format!(
                "At most {MAX_NODE_PARAM_LEN} characters, got \"{}…\".",
                clip(v)
            ),
        )),
        other => Ok(other),
    }
}

/// `UpgradeDBInstanceKernelVersion` / `DdsdDescribeUpgradePlan`: `DBInstanceId`, `SwitchMode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeRequest {
    pub db_instance_id: String,
    /// `SwitchMode=1`: wait for the maintenance window.
    pub deferred: bool,
}

impl FromParams for UpgradeRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        Ok(Self {
            db_instance_id: required(params, "DBInstanceId")?.to_string(),
            deferred: switch_mode(params)?,
        })
    }
}

/// `RestartDBInstance` / `DdsdDescribeRestartPlan`: `DBInstanceId`, `NodeId`, `NodeType` (checked
/// for length only: its values are undocumented), `ParallelRestartMongos`, `SwitchMode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartRequest {
    pub db_instance_id: String,
    pub node_id: Option<String>,
    pub parallel_mongos: bool,
    pub deferred: bool,
}

impl FromParams for RestartRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        let db_instance_id = required(params, "DBInstanceId")?.to_string();
        let node_id = bounded(params, "NodeId")?.map(str::to_string);
        bounded(params, "NodeType")?;
        Ok(Self {
            db_instance_id,
            node_id,
            parallel_mongos: optional_bool(params, "ParallelRestartMongos")?.unwrap_or(false),
            deferred: switch_mode(params)?,
        })
    }
}

/// A rolling operation planned from the record: the instance as loaded and the operation the
/// workflow would run (refusals decided from the record already answered).
#[derive(Debug)]
pub struct Planned {
    pub instance: Instance,
    pub op: RollingOperation,
}

/// Loads the instance or answers `InvalidDBInstanceId.NotFound`.
pub(crate) async fn load_instance(ctx: &Context, id: &str) -> Result<Instance, ApiError> {
    ctx.store
        .get_instance(id)
        .await
        .map_err(from_store)?
        .ok_or(ApiError::InstanceNotFound)
}

impl UpgradeRequest {
    /// The upgrade to the newest kernel of the instance's engine version.
    pub async fn plan(&self, ctx: &Context) -> Result<(Planned, String), ApiError> {
        let instance = load_instance(ctx, &self.db_instance_id).await?;
        let catalog = ctx.kernels.snapshot();
        let Some(target) = catalog.newest(&instance.engine_version) else {
            tracing::error!(instance_id = %instance.id, engine_version = %instance.engine_version, "engine version not in the kernel catalog");
            return Err(acs_rpc::Gateway::InternalError.into());
        };
        let target = target.kernel_version.clone();
        let mut op = RollingOperation::plan_upgrade(&instance, &target, ctx.rolling.clone())?;
        if self.deferred {
            op = op.with_maintain_window(instance.maintain_window);
        }
        Ok((Planned { instance, op }, target))
    }
}

impl RestartRequest {
    /// `NodeId` absent, or on a replica-set instance its own id (or its replica set's node id or
    /// name), means the whole instance, as there is no smaller unit to restart.
    pub fn scope(&self, instance: &Instance) -> RestartScope {
        match (self.node_id.as_deref(), &instance.topology) {
            (None, _) => RestartScope::Instance,
            (Some(n), Topology::ReplicaSet { replica_set })
                if n == instance.id || n == replica_set.node_id || n == replica_set.name =>
            {
                RestartScope::Instance
            }
            (Some(n), _) => RestartScope::Node {
                node_id: n.to_string(),
            },
        }
    }

    /// The restart of the requested scope.
    pub async fn plan(&self, ctx: &Context) -> Result<(Planned, RestartScope), ApiError> {
        let instance = load_instance(ctx, &self.db_instance_id).await?;
        let scope = self.scope(&instance);
        let mut cfg = ctx.rolling.clone();
        if self.parallel_mongos {
            // The workflow caps a batch so that one mongos keeps serving.
            cfg.mongos_batch = u32::try_from(instance.topology.mongos().len())
                .unwrap_or(u32::MAX)
                .max(1);
        }
        let mut op = RollingOperation::plan_restart(&instance, scope.clone(), cfg)?;
        if self.deferred {
            op = op.with_maintain_window(instance.maintain_window);
        }
        Ok((Planned { instance, op }, scope))
    }
}

/// Records a planned rolling operation: refuses while another operation is unfinished or the
/// deployment fails the live preflight, then status + operation in one transaction. `deferred`
/// (`SwitchMode=1`) keeps the instance `Running` until the runtime actually starts the operation
/// inside the maintenance window.
pub(crate) async fn accept(
    ctx: &Context,
    planned: Planned,
    deferred: bool,
) -> Result<super::Empty, ApiError> {
    accept_operation(ctx, planned, deferred).await?;
    Ok(super::Empty {})
}

/// [`accept`], answering the id of the operation recorded.
pub(crate) async fn accept_operation(
    ctx: &Context,
    planned: Planned,
    deferred: bool,
) -> Result<String, ApiError> {
    // No idempotency record is passed, so nothing can be replayed.
    match accept_idempotent(ctx, planned, deferred, None).await? {
        Accepted::New { operation_id, .. } => Ok(operation_id),
        Accepted::Replayed { .. } => Err(acs_rpc::Gateway::InternalError.into()),
    }
}

/// [`accept`] for an action that honours `ClientToken`: `idempotency` (its `response` filled in) is
/// stored with the intent; a retry with the same token and parameters answers
/// [`Accepted::Replayed`] with the stored response and records nothing.
pub(crate) async fn accept_idempotent(
    ctx: &Context,
    planned: Planned,
    deferred: bool,
    idempotency: Option<crate::server::store::Idempotency>,
) -> Result<Accepted, ApiError> {
    let Planned { instance, op } = planned;
    let id = instance.id.as_str();
    // Checked before the live preflight so that "another operation is running" is reported as such,
    // not as whatever that operation is doing to the deployment right now.
    let newest = ctx.store.list_operations(id, 1).await.map_err(from_store)?;
    if let Some(o) = newest.first().filter(|o| !o.status.is_finished()) {
        return Err(ApiError::OperationUnfinished {
            operation_id: o.id.clone(),
        });
    }
    if let Some(plane) = &ctx.plane {
        if let Some(target_kernel) = op.target() {
            match plane.check_kernel(id, target_kernel).await {
                Ok(Ok(())) => {}
                Ok(Err(why)) => return Err(ApiError::incorrect_state(&why)),
                Err(e) => {
                    tracing::error!(instance_id = %id, error = %e, "cannot ask the hosts for their kernels");
                    return Err(acs_rpc::Gateway::ServiceUnavailable.into());
                }
            }
        }
        match plane.observe(id).await {
            Ok(Some(obs)) => op.preflight(&obs)?,
            Ok(None) => {
                return Err(ApiError::incorrect_state(
                    "The instance has no running deployment.",
                ))
            }
            Err(e) => {
                tracing::error!(instance_id = %id, error = %e, "cannot observe the deployment");
                return Err(acs_rpc::Gateway::ServiceUnavailable.into());
            }
        }
    }
    let new_status = if deferred {
        DbInstanceStatus::Running
    } else {
        busy_status(&op)
    };
    let state = OperationState::rolling(op);
    let operation_id = uuid::Uuid::new_v4().to_string();
    let accepted = ctx
        .store
        .begin_operation(
            id,
            &[DbInstanceStatus::Running],
            new_status,
            state.new_operation(operation_id.clone()),
            idempotency,
        )
        .await
        .map_err(from_store)?;
    if let Accepted::New { .. } = accepted {
        ctx.operation_recorded();
        tracing::info!(instance_id = %id, operation_id = %operation_id, kind = %state.kind(), deferred, "operation accepted");
    }
    Ok(accepted)
}
