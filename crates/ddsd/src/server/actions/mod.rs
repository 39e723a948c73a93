//! The action table: `Action` name → handler.
//!
//! A handler is an async function of the shared [`Context`] and the verified request, returning
//! the response fields (without `RequestId`, which the server adds) or an [`RpcError`]. Handlers
//! validate everything before touching the store, and a request that is refused changes nothing.
//! Handlers record intent (an instance status plus an operation, in one store transaction); the
//! runtime moves operations, handlers never touch a node. Adding an action = a handler in a module
//! + one row in [`ACTIONS`].
//!
//! Modules:
//! - [`regions`]: `DescribeRegions` and the region/zone catalog;
//! - [`instances`]: `CreateDBInstance`, `CreateShardingDBInstance`, `DeleteDBInstance`,
//!   `ModifyDBInstanceMaintainTime` and the operator extensions `DdsdCreateDBInstance` /
//!   `DdsdCreateShardingDBInstance` (pinned kernel);
//! - [`describe`]: `DescribeDBInstances`, `DescribeDBInstanceAttribute` (the response shapes);
//! - [`kernels`]: `DescribeAvailableEngineVersion`, `DescribeKernelReleaseNotes`, the operator
//!   extension `DdsdPublishKernelVersion`, and the live kernel catalog (embedded + published);
//! - [`classes`]: the instance classes (`DBInstanceClass`, `NodeClass`) ddsd offers and their limits;
//! - [`params`]: typed reading of request parameters (ints, flattened `Name.N.Field` lists);
//! - [`errors`]: the vendor's error rows and the store-error mapping;
//! - [`upgrade`]: `UpgradeDBInstanceKernelVersion` and the acceptance path of rolling operations;
//! - [`restart`]: `RestartDBInstance` (whole instance, one shard / config server, one mongos);
//! - [`operations`]: the extension `DdsdDescribeOperations` (progress and reports of an instance's
//!   operations, docs/operations.md);
//! - [`plan`]: the extensions `DdsdDescribeUpgradePlan` / `DdsdDescribeRestartPlan` (dry runs: ordered
//!   steps, expected elections, estimated duration);
//! - [`faults`]: the admin extensions `DdsdArmFault` / `DdsdDescribeFaults` / `DdsdClearFaults` (faults on
//!   demand, simulated data plane only).
//! - [`api_faults`]: the admin extensions `DdsdArmApiFault` / `DdsdDescribeApiFaults` /
//!   `DdsdClearApiFaults` (errors on demand at the API, any data plane; checked by the server
//!   before a vendor action's handler runs).

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use acs_rpc::{RpcError, Verified};
use serde_json::Value;

use dds_engine::workflow::UpgradeConfig;

use crate::server::plane::sim::SimPlane;
use crate::server::plane::DataPlane;
use crate::server::runtime::RuntimeHandle;
use crate::server::store::Store;

pub mod api_faults;
pub mod classes;
pub mod describe;
pub mod errors;
pub mod faults;
pub mod instances;
pub mod kernels;
pub mod operations;
pub mod params;
pub mod plan;
pub mod regions;
pub mod restart;
pub mod upgrade;

#[cfg(test)]
mod tests;

pub use params::{optional, required};

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
    /// `Forbidden.RAM` (403) unless the request was signed with an admin AccessKey.
    pub fn require_admin(&self, req: &Verified) -> Result<(), RpcError> {
        if self.admin_keys.contains(&req.access_key_id) {
            Ok(())
        } else {
            Err(errors::forbidden_ram())
        }
    }

    /// Wakes the runtime after an operation was recorded.
    pub fn operation_recorded(&self) {
        if let Some(r) = &self.runtime {
            r.notify();
        }
    }
}

pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Value, RpcError>> + Send>>;
pub type Handler = fn(Arc<Context>, Verified) -> HandlerFuture;

/// Every action ddsd answers, by its vendor name; `Ddsd*` rows are ddsd's operator extensions
/// (docs/extensions.md).
pub const ACTIONS: &[(&str, Handler)] = &[
    ("DescribeRegions", |c, r| {
        Box::pin(async move { regions::describe_regions(&c, &r) })
    }),
    ("CreateDBInstance", |c, r| {
        Box::pin(instances::create_db_instance(c, r))
    }),
    ("CreateShardingDBInstance", |c, r| {
        Box::pin(instances::create_sharding_db_instance(c, r))
    }),
    ("DeleteDBInstance", |c, r| {
        Box::pin(instances::delete_db_instance(c, r))
    }),
    ("ModifyDBInstanceMaintainTime", |c, r| {
        Box::pin(instances::modify_db_instance_maintain_time(c, r))
    }),
    ("DescribeDBInstances", |c, r| {
        Box::pin(describe::describe_db_instances(c, r))
    }),
    ("DescribeDBInstanceAttribute", |c, r| {
        Box::pin(describe::describe_db_instance_attribute(c, r))
    }),
    ("DescribeAvailableEngineVersion", |c, r| {
        Box::pin(kernels::describe_available_engine_version(c, r))
    }),
    ("DescribeKernelReleaseNotes", |c, r| {
        Box::pin(async move { kernels::describe_kernel_release_notes(&c, &r) })
    }),
    ("DdsdPublishKernelVersion", |c, r| {
        Box::pin(kernels::publish_kernel_version(c, r))
    }),
    ("DdsdCreateDBInstance", |c, r| {
        Box::pin(instances::ddsd_create_db_instance(c, r))
    }),
    ("DdsdCreateShardingDBInstance", |c, r| {
        Box::pin(instances::ddsd_create_sharding_db_instance(c, r))
    }),
    ("UpgradeDBInstanceKernelVersion", |c, r| {
        Box::pin(upgrade::upgrade_db_instance_kernel_version(c, r))
    }),
    ("RestartDBInstance", |c, r| {
        Box::pin(restart::restart_db_instance(c, r))
    }),
    ("DdsdDescribeUpgradePlan", |c, r| {
        Box::pin(plan::ddsd_describe_upgrade_plan(c, r))
    }),
    ("DdsdDescribeRestartPlan", |c, r| {
        Box::pin(plan::ddsd_describe_restart_plan(c, r))
    }),
    ("DdsdArmFault", |c, r| {
        Box::pin(faults::ddsd_arm_fault(c, r))
    }),
    ("DdsdDescribeFaults", |c, r| {
        Box::pin(faults::ddsd_describe_faults(c, r))
    }),
    ("DdsdClearFaults", |c, r| {
        Box::pin(faults::ddsd_clear_faults(c, r))
    }),
    ("DdsdDescribeOperations", |c, r| {
        Box::pin(operations::ddsd_describe_operations(c, r))
    }),
    ("DdsdArmApiFault", |c, r| {
        Box::pin(api_faults::ddsd_arm_api_fault(c, r))
    }),
    ("DdsdDescribeApiFaults", |c, r| {
        Box::pin(api_faults::ddsd_describe_api_faults(c, r))
    }),
    ("DdsdClearApiFaults", |c, r| {
        Box::pin(api_faults::ddsd_clear_api_faults(c, r))
    }),
];

pub fn lookup(action: &str) -> Option<Handler> {
    lookup_named(action).map(|(_, h)| h)
}

/// The handler and the table's own (`'static`) spelling of the action's name.
pub fn lookup_named(action: &str) -> Option<(&'static str, Handler)> {
    ACTIONS
        .iter()
        .find(|(name, _)| *name == action)
        .map(|(name, h)| (*name, *h))
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
                rolling: UpgradeConfig::default(),
                api_faults: Default::default(),
            }),
            _dir: dir,
        }
    }
}
