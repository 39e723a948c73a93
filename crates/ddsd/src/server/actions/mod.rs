//! The declared API: every action ddsd answers, its typed request, its handler, and the errors.
//!
//! Used by the HTTP server (`crate::server::http`), which verifies a request and hands it to
//! [`ActionSpec::run`], and by tests ([`call`]); nothing else calls handlers. Handlers record intent
//! (an instance status plus an operation, in one store transaction); the runtime moves operations,
//! handlers never touch a node. A refused request changes nothing.
//!
//! [`ACTIONS`] is the table: one row per action with its columns — who may call it ([`Access`]),
//! whether it changes state ([`Effect`]), whether it honours `ClientToken` ([`Token`]), which data
//! plane it serves ([`Plane`]) — its request type and its handler. The dispatch checks the caller
//! and the plane from the row, parses the request type ([`FromParams`]: presence, formats, bounds),
//! runs the handler and serialises its response (structs in the vendor's PascalCase field names, in
//! the vendor's order). Every error is an [`errors::ApiError`] row.
//!
//! Adding an action = one row, one request type, one handler:
//! ```text
//! action!("DdsdDescribeUpgradePlan", AnyKey, Reads, Ignored, Any,
//!         rolling::UpgradeRequest => plan::ddsd_describe_upgrade_plan),
//! ```
//! with `impl FromParams for UpgradeRequest` reading `DBInstanceId` / `SwitchMode`, and
//! `async fn ddsd_describe_upgrade_plan(ctx: Arc<Context>, req: UpgradeRequest, call: Call)
//! -> Result<PlanResponse, ApiError>`.
//!
//! Modules:
//! - [`regions`]: `DescribeRegions` and the region/zone catalog;
//! - [`instances`]: `CreateDBInstance`, `CreateShardingDBInstance`, `DeleteDBInstance`,
//!   `ModifyDBInstanceMaintainTime` and the operator extensions `DdsdCreateDBInstance` /
//!   `DdsdCreateShardingDBInstance` (pinned kernel);
//! - [`describe`]: `DescribeDBInstances`, `DescribeDBInstanceAttribute`, `DescribeReplicaSetRole`,
//!   `DescribeShardingNetworkAddress` (the response shapes, with the processes' wire addresses);
//! - [`kernels`]: `DescribeAvailableEngineVersion`, `DescribeKernelReleaseNotes`, the operator
//!   extension `DdsdPublishKernelVersion`, and the live kernel catalog (embedded + published);
//! - [`classes`]: the instance classes (`DBInstanceClass`, `NodeClass`) ddsd offers and their limits;
//! - [`resources`]: `DescribeAvailableResource` (what may be created where, from the region, kernel and
//!   class catalogs) and `EvaluateResource` (whether the plane can place it);
//! - [`params`]: typed reading of request parameters (ints, flattened `Name.N.Field` lists);
//! - [`errors`]: the product's error table ([`errors::ApiError`]), the preflight and store mappings;
//! - [`rolling`]: what upgrades, restarts and their dry runs share: requests, target, acceptance;
//! - [`upgrade`]: the handler of `UpgradeDBInstanceKernelVersion` and its tests;
//! - [`restart`]: `RestartDBInstance` (whole instance, one shard / config server, one mongos);
//! - [`operations`]: the extension `DdsdDescribeOperations` (progress and reports of an instance's
//!   operations, docs/operations.md);
//! - [`deployment`]: the extension `DdsdDescribeDeployment` (a fresh observation of an instance's
//!   processes: states, health, kernels, lag; the console's topology);
//! - [`plan`]: the extensions `DdsdDescribeUpgradePlan` / `DdsdDescribeRestartPlan` (dry runs: ordered
//!   steps, expected elections, estimated duration);
//! - [`faults`]: the admin extensions `DdsdArmFault` / `DdsdDescribeFaults` / `DdsdClearFaults` (faults on
//!   demand, simulated data plane only).
//! - [`api_faults`]: the admin extensions `DdsdArmApiFault` / `DdsdDescribeApiFaults` /
//!   `DdsdClearApiFaults` (errors on demand at the API, any data plane; checked by the server
//!   before a vendor action's handler runs).
//! - [`switch`]: `SwitchDBInstanceHA` (a planned primary switch) and `RestartNode` (one member).
//! - [`switch_log`]: `DescribeDBInstanceSwitchLog` (every primary change ddsd caused or saw).
//! - [`role_zone`]: `DescribeRoleZoneInfo` (every node's role now and its zone).
//! - [`attributes`]: the instance's own attributes, `ModifyDBInstanceDescription`,
//!   `ModifyDBInstanceAttribute` (release protection), `ModifyResourceGroup`.
//! - [`accounts`]: `DescribeAccounts`, `ResetAccountPassword`, `ModifyAccountDescription` (the
//!   instance's `root` account the wire listeners authenticate).
//! - [`security_ips`]: `DescribeSecurityIps`, `ModifySecurityIps` (the whitelist the wire listeners
//!   enforce).
//! - [`tags`]: `TagResources`, `UntagResources`, `ListTagResources`, `DescribeTags`.
//! - [`parameters`]: `DescribeParameterTemplates`, `DescribeParameters`, `ModifyParameters`,
//!   `DescribeParameterModificationHistory` (the documented set of docs/parameters.md).
//! - [`spec`]: `ModifyDBInstanceSpec`, `ModifyNodeSpec` (a class change, run as a rolling restart onto
//!   the new class).
//! - [`tasks`]: the task center, `DescribeHistoryTasks` / `DescribeHistoryTasksStat` (operations as
//!   tasks).

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::server::actions::errors::ApiError;
use acs_rpc::Verified;
use serde_json::Value;

use dds_engine::workflow::UpgradeConfig;

use crate::server::plane::sim::SimPlane;
use crate::server::plane::DataPlane;
use crate::server::runtime::RuntimeHandle;
use crate::server::store::{Idempotency, Store};

pub mod accounts;
pub mod api_faults;
pub mod attributes;
pub mod classes;
pub mod deployment;
pub mod describe;
pub mod engine_upgrade;
pub mod errors;
pub mod events;
pub mod faults;
pub mod import;
pub mod instances;
pub mod kernels;
pub mod operations;
pub mod parameters;
pub mod params;
pub mod plan;
pub mod regions;
pub mod resources;
pub mod restart;
pub mod role_zone;
pub mod rolling;
pub mod security_ips;
pub mod spec;
pub mod switch;
pub mod switch_log;
pub mod tags;
pub mod tasks;
pub mod upgrade;

#[cfg(test)]
mod coverage;
#[cfg(test)]
mod tests;

pub use params::{optional, required, InstanceRequest};

/// The only API version ddsd serves.
pub const API_VERSION: &str = "2015-12-01";

/// What every handler may read.
pub struct Context {
    /// The region this endpoint serves (`--region`).
    pub region: String,
    pub regions: regions::RegionCatalog,
    pub store: Arc<dyn Store>,
    /// The kernel catalog, including kernels published at run time.
    pub kernels: Arc<kernels::KernelCatalog>,
    /// AccessKeyIds allowed to call the operator extensions (`Ddsd*` actions).
    pub admin_keys: BTreeSet<String>,
    /// Told after a handler records an operation, so the runtime picks it up at once (`None`
    /// when nothing drives operations, e.g. handler tests; the runtime's rescan finds them too).
    pub runtime: Option<RuntimeHandle>,
    /// The data plane, for the live preflight of upgrades and restarts (`None`: not checked when the
    /// request is accepted; the runtime still checks when the operation starts).
    pub plane: Option<Arc<dyn DataPlane>>,
    /// The simulated plane when it is the data plane: the ground truth `DdsdDescribeOperations` adds.
    pub sim: Option<Arc<SimPlane>>,
    /// The `mongodb` plane when it is the data plane: what `DdsdImportDBInstance` imports into.
    pub mongo: Option<Arc<crate::server::plane::mongodb::MongoPlane>>,
    /// Limits and timeouts of the upgrades and restarts accepted from now on (persisted with each
    /// operation, so a change applies to new operations only).
    pub rolling: UpgradeConfig,
    /// Errors armed to answer instead of vendor actions (`DdsdArmApiFault`); in memory only.
    pub api_faults: api_faults::ApiFaults,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("region", &self.region)
            .field("admin_keys", &self.admin_keys.len())
            .finish_non_exhaustive()
    }
}

impl Context {
    /// Wakes the runtime after an operation was recorded.
    pub fn operation_recorded(&self) {
        if let Some(r) = &self.runtime {
            r.notify();
        }
    }
}

/// Who may call an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Any AccessKey the server knows.
    AnyKey,
    /// Only an admin AccessKey (`Forbidden.RAM` otherwise), checked before any parameter is read.
    Admin,
}

/// Whether an action changes state (records an operation, writes the catalog, arms a fault).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Reads,
    Mutates,
}

/// Whether an action honours `ClientToken`: a retry with the same token and parameters replays the
/// first answer instead of acting twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    Ignored,
    ClientToken,
}

/// Which data planes an action serves, checked after the caller and before any parameter is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plane {
    Any,
    /// Only the simulated plane (`OperationDenied.NotSimulated` otherwise): faults on demand.
    Simulated,
    /// Only the `mongodb` plane (`OperationDenied.DataPlane` otherwise): imports.
    MongoDB,
}

/// The verified request's business parameters (protocol parameters removed).
pub type Params = std::collections::BTreeMap<String, String>;

/// A typed request: every parameter is read and bounded here, before the handler runs, so a
/// request that fails here has touched nothing.
pub trait FromParams: Sized {
    fn from_params(params: &Params) -> Result<Self, ApiError>;
}

/// What a handler learns about the call besides its typed request.
#[derive(Debug, Clone)]
pub struct Call {
    pub action: &'static str,
    pub access_key_id: String,
    /// For [`Token::ClientToken`] actions sent a token: the record to store with the intent (the
    /// handler fills in the `response` to replay).
    pub idempotency: Option<Idempotency>,
}

impl Call {
    fn new(action: &'static str, token: Token, req: &Verified) -> Self {
        let idempotency = match token {
            Token::ClientToken => {
                params::optional(&req.params, "ClientToken").map(|t| Idempotency {
                    scope: format!("{}/{action}", req.access_key_id),
                    client_token: t.to_string(),
                    fingerprint: params::fingerprint(&req.params),
                    response: Value::Null,
                })
            }
            Token::Ignored => None,
        };
        Self {
            action,
            access_key_id: req.access_key_id.clone(),
            idempotency,
        }
    }

    /// The response a retry with this call's `ClientToken` answers, when the token was used before
    /// for the same request (`IdempotentParameterMismatch` for another one). For handlers whose own
    /// checks a repeat would fail (the instance busy with the first call's change, addresses already
    /// added), asked before them.
    pub async fn replayed(&self, ctx: &Context) -> Result<Option<Value>, ApiError> {
        match &self.idempotency {
            Some(idem) => ctx
                .store
                .replayed(idem.clone())
                .await
                .map_err(errors::from_store),
            None => Ok(None),
        }
    }
}

/// The request of actions without parameters of their own.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoParams;

impl FromParams for NoParams {
    fn from_params(_: &Params) -> Result<Self, ApiError> {
        Ok(Self)
    }
}

/// The answer `{}` (only the `RequestId` the server adds).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Empty {}

/// One row of the table: the action's name, its columns, and how it runs.
pub struct ActionSpec {
    /// The vendor's `Action` name; `Ddsd*` rows are ddsd's operator extensions (docs/extensions.md).
    pub name: &'static str,
    pub access: Access,
    pub effect: Effect,
    pub token: Token,
    pub plane: Plane,
    run: Runner,
}

impl std::fmt::Debug for ActionSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActionSpec")
            .field("name", &self.name)
            .field("access", &self.access)
            .field("effect", &self.effect)
            .field("token", &self.token)
            .field("plane", &self.plane)
            .finish_non_exhaustive()
    }
}

pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Value, ApiError>> + Send>>;
type Runner = fn(Arc<Context>, Verified) -> HandlerFuture;

/// The response struct as the envelope's fields; one that does not serialise is ddsd's bug.
pub fn respond<T: serde::Serialize>(response: T) -> Result<Value, ApiError> {
    serde_json::to_value(response).map_err(|e| {
        tracing::error!("encoding the response: {e}");
        ApiError::Gateway(acs_rpc::Gateway::InternalError)
    })
}

/// One row: `name, access, effect, token, plane, Request => handler`, where the handler is
/// `async fn(Arc<Context>, Request, Call) -> Result<impl Serialize, ApiError>`.
macro_rules! action {
    ($name:literal, $access:ident, $effect:ident, $token:ident, $plane:ident,
     $request:ty => $handler:path) => {
        ActionSpec {
            name: $name,
            access: Access::$access,
            effect: Effect::$effect,
            token: Token::$token,
            plane: Plane::$plane,
            run: |ctx, req| {
                Box::pin(async move {
                    let call = Call::new($name, Token::$token, &req);
                    let request = <$request as FromParams>::from_params(&req.params)?;
                    respond($handler(ctx, request, call).await?)
                })
            },
        }
    };
}

/// Every action ddsd answers, by its vendor name.
#[rustfmt::skip]
pub static ACTIONS: &[ActionSpec] = &[
    //       name                               who     effect   ClientToken  plane
    action!("DescribeRegions",                  AnyKey, Reads,   Ignored,     Any,
            regions::DescribeRegionsRequest => regions::describe_regions),
    action!("CreateDBInstance",                 AnyKey, Mutates, ClientToken, Any,
            instances::CreateRequest => instances::create_db_instance),
    action!("CreateShardingDBInstance",         AnyKey, Mutates, ClientToken, Any,
            instances::CreateRequest => instances::create_sharding_db_instance),
    action!("DeleteDBInstance",                 AnyKey, Mutates, ClientToken, Any,
            InstanceRequest => instances::delete_db_instance),
    action!("ModifyDBInstanceMaintainTime",     AnyKey, Mutates, Ignored,     Any,
            instances::MaintainTimeRequest => instances::modify_db_instance_maintain_time),
    action!("DescribeDBInstances",              AnyKey, Reads,   Ignored,     Any,
            describe::DescribeInstancesRequest => describe::describe_db_instances),
    action!("DescribeDBInstanceAttribute",      AnyKey, Reads,   Ignored,     Any,
            describe::AttributeRequest => describe::describe_db_instance_attribute),
    action!("DescribeReplicaSetRole",           AnyKey, Reads,   Ignored,     Any,
            InstanceRequest => describe::describe_replica_set_role),
    action!("DescribeAvailableEngineVersion",   AnyKey, Reads,   Ignored,     Any,
            InstanceRequest => kernels::describe_available_engine_version),
    action!("DescribeKernelReleaseNotes",       AnyKey, Reads,   Ignored,     Any,
            kernels::ReleaseNotesRequest => kernels::describe_kernel_release_notes),
    action!("DdsdPublishKernelVersion",         Admin,  Mutates, Ignored,     Any,
            kernels::PublishKernelRequest => kernels::publish_kernel_version),
    action!("DdsdCreateDBInstance",             Admin,  Mutates, ClientToken, Any,
            instances::CreateRequest => instances::ddsd_create_db_instance),
    action!("DdsdCreateShardingDBInstance",     Admin,  Mutates, ClientToken, Any,
            instances::CreateRequest => instances::ddsd_create_sharding_db_instance),
    action!("UpgradeDBInstanceEngineVersion",   AnyKey, Mutates, Ignored,     Any,
            engine_upgrade::EngineUpgradeRequest => engine_upgrade::upgrade_db_instance_engine_version),
    action!("UpgradeDBInstanceKernelVersion",   AnyKey, Mutates, Ignored,     Any,
            rolling::UpgradeRequest => upgrade::upgrade_db_instance_kernel_version),
    action!("RestartDBInstance",                AnyKey, Mutates, Ignored,     Any,
            rolling::RestartRequest => restart::restart_db_instance),
    action!("DdsdDescribeUpgradePlan",          AnyKey, Reads,   Ignored,     Any,
            rolling::UpgradeRequest => plan::ddsd_describe_upgrade_plan),
    action!("DdsdDescribeRestartPlan",          AnyKey, Reads,   Ignored,     Any,
            rolling::RestartRequest => plan::ddsd_describe_restart_plan),
    action!("DdsdArmFault",                     Admin,  Mutates, Ignored,     Simulated,
            faults::ArmFaultRequest => faults::ddsd_arm_fault),
    action!("DdsdDescribeFaults",               Admin,  Reads,   Ignored,     Simulated,
            InstanceRequest => faults::ddsd_describe_faults),
    action!("DdsdClearFaults",                  Admin,  Mutates, Ignored,     Simulated,
            InstanceRequest => faults::ddsd_clear_faults),
    action!("DdsdDescribeOperations",           AnyKey, Reads,   Ignored,     Any,
            operations::DescribeOperationsRequest => operations::ddsd_describe_operations),
    action!("DdsdDescribeDeployment",           AnyKey, Reads,   Ignored,     Any,
            InstanceRequest => deployment::ddsd_describe_deployment),
    action!("DdsdArmApiFault",                  Admin,  Mutates, Ignored,     Any,
            api_faults::ArmApiFaultRequest => api_faults::ddsd_arm_api_fault),
    action!("DdsdDescribeApiFaults",            Admin,  Reads,   Ignored,     Any,
            NoParams => api_faults::ddsd_describe_api_faults),
    action!("DdsdClearApiFaults",               Admin,  Mutates, Ignored,     Any,
            api_faults::ClearApiFaultsRequest => api_faults::ddsd_clear_api_faults),
    action!("DdsdImportDBInstance",             Admin,  Mutates, Ignored,     MongoDB,
            import::ImportRequest => import::ddsd_import_db_instance),
    action!("DescribeAvailableResource",        AnyKey, Reads,   Ignored,     Any,
            resources::AvailableResourceRequest => resources::describe_available_resource),
    action!("EvaluateResource",                 AnyKey, Reads,   Ignored,     Any,
            resources::EvaluateRequest => resources::evaluate_resource),
    action!("DescribeDBInstanceSpecInfo",       AnyKey, Reads,   Ignored,     Any,
            spec::SpecInfoRequest => spec::describe_db_instance_spec_info),
    action!("DescribeShardingNetworkAddress",   AnyKey, Reads,   Ignored,     Any,
            describe::ShardingAddressRequest => describe::describe_sharding_network_address),
    action!("DescribeRoleZoneInfo",             AnyKey, Reads,   Ignored,     Any,
            InstanceRequest => role_zone::describe_role_zone_info),
    action!("SwitchDBInstanceHA",               AnyKey, Mutates, Ignored,     Any,
            switch::SwitchRequest => switch::switch_db_instance_ha),
    action!("RestartNode",                      AnyKey, Mutates, Ignored,     Any,
            switch::RestartNodeRequest => switch::restart_node),
    action!("DescribeDBInstanceSwitchLog",      AnyKey, Reads,   Ignored,     Any,
            switch_log::SwitchLogRequest => switch_log::describe_db_instance_switch_log),
    action!("DescribeHistoryTasks",             AnyKey, Reads,   Ignored,     Any,
            tasks::HistoryTasksRequest => tasks::describe_history_tasks),
    action!("DescribeHistoryTasksStat",         AnyKey, Reads,   Ignored,     Any,
            tasks::TaskFilter => tasks::describe_history_tasks_stat),
    action!("ModifyDBInstanceAttribute",        AnyKey, Mutates, Ignored,     Any,
            attributes::ReleaseProtectionRequest => attributes::modify_db_instance_attribute),
    action!("ModifyResourceGroup",              AnyKey, Mutates, Ignored,     Any,
            attributes::ResourceGroupRequest => attributes::modify_resource_group),
    action!("ModifyDBInstanceDescription",      AnyKey, Mutates, Ignored,     Any,
            attributes::DescriptionRequest => attributes::modify_db_instance_description),
    action!("TagResources",                     AnyKey, Mutates, Ignored,     Any,
            tags::TagRequest => tags::tag_resources),
    action!("UntagResources",                   AnyKey, Mutates, Ignored,     Any,
            tags::UntagRequest => tags::untag_resources),
    action!("ListTagResources",                 AnyKey, Reads,   Ignored,     Any,
            tags::ListTagsRequest => tags::list_tag_resources),
    action!("DescribeTags",                     AnyKey, Reads,   Ignored,     Any,
            tags::DescribeTagsRequest => tags::describe_tags),
    action!("DescribeAccounts",                 AnyKey, Reads,   Ignored,     Any,
            accounts::DescribeAccountsRequest => accounts::describe_accounts),
    action!("ResetAccountPassword",             AnyKey, Mutates, Ignored,     Simulated,
            accounts::ResetPasswordRequest => accounts::reset_account_password),
    action!("ModifyAccountDescription",         AnyKey, Mutates, Ignored,     Any,
            accounts::AccountDescriptionRequest => accounts::modify_account_description),
    action!("DescribeSecurityIps",              AnyKey, Reads,   Ignored,     Any,
            security_ips::DescribeRequest => security_ips::describe_security_ips),
    action!("ModifySecurityIps",                AnyKey, Mutates, ClientToken, Simulated,
            security_ips::ModifyRequest => security_ips::modify_security_ips),
    action!("DescribeParameterTemplates",       AnyKey, Reads,   Ignored,     Any,
            parameters::TemplatesRequest => parameters::describe_parameter_templates),
    action!("DescribeParameters",               AnyKey, Reads,   Ignored,     Any,
            parameters::DescribeRequest => parameters::describe_parameters),
    action!("ModifyParameters",                 AnyKey, Mutates, Ignored,     Any,
            parameters::ModifyRequest => parameters::modify_parameters),
    action!("DescribeParameterModificationHistory", AnyKey, Reads, Ignored,   Any,
            parameters::HistoryRequest => parameters::describe_parameter_modification_history),
    action!("DescribeActiveOperationTasks",     AnyKey, Reads,   Ignored,     Any,
            events::TasksRequest => events::describe_active_operation_tasks),
    action!("DescribeActiveOperationTask",      AnyKey, Reads,   Ignored,     Any,
            events::TaskRequest => events::describe_active_operation_task),
    action!("DescribeActiveOperationTaskCount", AnyKey, Reads,   Ignored,     Any,
            events::CountRequest => events::describe_active_operation_task_count),
    action!("DescribeActiveOperationTaskType",  AnyKey, Reads,   Ignored,     Any,
            events::TypeRequest => events::describe_active_operation_task_type),
    action!("DescribeActiveOperationTaskRegion", AnyKey, Reads,  Ignored,     Any,
            events::RegionRequest => events::describe_active_operation_task_region),
    action!("ModifyActiveOperationTasks",       AnyKey, Mutates, Ignored,     Any,
            events::ModifyTasksRequest => events::modify_active_operation_tasks),
    action!("CancelActiveOperationTasks",       AnyKey, Mutates, Ignored,     Any,
            events::CancelTasksRequest => events::cancel_active_operation_tasks),
    action!("DescribeActiveOperationMaintenanceConfig", AnyKey, Reads, Ignored, Any,
            events::DescribeConfigRequest => events::describe_active_operation_maintenance_config),
    action!("ModifyActiveOperationMaintenanceConfig", AnyKey, Mutates, Ignored, Any,
            events::ModifyConfigRequest => events::modify_active_operation_maintenance_config),
    action!("ModifyDBInstanceSpec",             AnyKey, Mutates, Ignored,     Any,
            spec::InstanceSpecRequest => spec::modify_db_instance_spec),
    action!("ModifyNodeSpec",                   AnyKey, Mutates, ClientToken, Any,
            spec::NodeSpecRequest => spec::modify_node_spec),
];

/// The row of an action, by its exact name.
pub fn lookup(action: &str) -> Option<&'static ActionSpec> {
    ACTIONS.iter().find(|a| a.name == action)
}

impl ActionSpec {
    /// Runs the action for a verified request: who may call, which plane, then the request type's
    /// parsing, then the handler.
    pub fn run(&'static self, ctx: Arc<Context>, req: Verified) -> HandlerFuture {
        let refused =
            if self.access == Access::Admin && !ctx.admin_keys.contains(&req.access_key_id) {
                Some(ApiError::ForbiddenRam)
            } else if self.plane == Plane::Simulated && ctx.sim.is_none() {
                Some(ApiError::NotSimulated)
            } else if self.plane == Plane::MongoDB && ctx.mongo.is_none() {
                Some(ApiError::NotMongoPlane)
            } else {
                None
            };
        match refused {
            Some(e) => Box::pin(std::future::ready(Err(e))),
            None => (self.run)(ctx, req),
        }
    }
}

/// Looks the action up and runs it as the server does (armed API faults aside).
pub async fn call(ctx: Arc<Context>, req: Verified) -> Result<Value, ApiError> {
    match lookup(&req.action) {
        Some(spec) => spec.run(ctx, req).await,
        None => Err(acs_rpc::Gateway::InvalidActionNotFound.into()),
    }
}

/// A [`Context`] over a fresh store in a temporary directory, for handler tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::server::store::fixtures::TempDir;
    use crate::server::store::{SqliteOptions, SqliteStore};

    /// The AccessKeyId the test context treats as admin.
    pub const ADMIN: &str = "admin";

    pub struct TestCtx {
        pub ctx: Arc<Context>,
        _dir: TempDir,
    }

    impl std::ops::Deref for TestCtx {
        type Target = Context;
        fn deref(&self) -> &Context {
            &self.ctx
        }
    }

    /// Runs one request through the table to its end, from a synchronous test.
    pub fn call_now(ctx: &TestCtx, req: Verified) -> Result<Value, ApiError> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a test runtime")
            .block_on(super::call(ctx.ctx.clone(), req))
    }

    pub fn ctx() -> TestCtx {
        let dir = TempDir::new("actions");
        let store = SqliteStore::open_in(dir.path(), SqliteOptions::default()).expect("open store");
        TestCtx {
            ctx: Arc::new(Context {
                region: "cn-hangzhou".into(),
                regions: regions::RegionCatalog::embedded(),
                store: Arc::new(store),
                kernels: Arc::new(kernels::KernelCatalog::embedded()),
                admin_keys: [ADMIN.to_string()].into_iter().collect(),
                runtime: None,
                plane: None,
                sim: None,
                mongo: None,
                rolling: UpgradeConfig::default(),
                api_faults: Default::default(),
            }),
            _dir: dir,
        }
    }
}
