//! `UpgradeDBInstanceEngineVersion`: a major version upgrade, one major at a time along MongoDB's path
//! 4.0 → 4.2 → 4.4 → 5.0 → 6.0 → 7.0 → 8.0.
//!
//! The handler records intent; the runtime drives the rolling operation
//! (`dds_engine::workflow::RollingKind::EngineUpgrade`): every process restarted exactly once onto the
//! newest kernel of the target major with the minor upgrade's gates (secondaries first, one non-forced
//! stepdown per replica set, mongos one at a time, balancer stopped and restored), then
//! `setFeatureCompatibilityVersion` to the new major once every process runs it — raised last. On success
//! the instance's `EngineVersion` becomes the target; a failure leaves it on its major with the kernels as
//! observed (a failure while raising the FCV leaves the new binaries on the old FCV, which MongoDB supports).
//!
//! Refusals, checked in this order, each change nothing:
//!
//! | condition                                              | code                               | HTTP |
//! |--------------------------------------------------------|------------------------------------|------|
//! | `DBInstanceId` / `EngineVersion` missing               | `MissingDBInstanceId` / `MissingEngineVersion` | 400 |
//! | `SwitchMode` not `0`/`1`                               | `InvalidParameter`                 | 400  |
//! | unknown instance                                       | `InvalidDBInstanceId.NotFound`     | 404  |
//! | `EngineVersion` not the next major (same, lower — no downgrade —, skipped, unknown, or no kernel in the catalog) | `EngineVersion.ERROR` | 400 |
//! | status not `Running`                                   | `OperationDenied.DBInstanceStatus` | 403  |
//! | standalone (or a set with one electable member)        | `OperationDenied.DBInstanceType`   | 403  |
//! | another operation recorded and unfinished              | `OperationDenied.DBInstanceStatus` | 403  |
//! | live preflight (as the minor upgrade), or the data's featureCompatibilityVersion is not the current major | `IncorrectDBInstanceState` | 403 |
//!
//! `EngineVersion.ERROR` (400) is the code the vendor's API page for this action lists; the page gives no
//! finer codes, so every unacceptable target answers it, with the reason in the message.
//!
//! The vendor's request has no `ClientToken`: like `UpgradeDBInstanceKernelVersion`, a repeat while the
//! first runs is refused as busy, and a repeat after it finished is a further step (or refused).

use std::sync::Arc;

use dds_engine::catalog::{engine_rank, ENGINE_UPGRADE_PATH};
use dds_engine::workflow::RollingOperation;

use super::errors::ApiError;
use super::kernels::next_engine_version;
use super::params::{clip, required};
use super::rolling::{accept, load_instance, switch_mode, Planned};
use super::{Call, Context, Empty, FromParams, Params};

/// Longest `EngineVersion` accepted (`X.Y`).
const MAX_ENGINE_VERSION_LEN: usize = 16;

/// `UpgradeDBInstanceEngineVersion`: `DBInstanceId`, `EngineVersion`, `SwitchMode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineUpgradeRequest {
    pub db_instance_id: String,
    pub engine_version: String,
    /// `SwitchMode=1`: wait for the maintenance window.
    pub deferred: bool,
}

impl FromParams for EngineUpgradeRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        let db_instance_id = required(params, "DBInstanceId")?.to_string();
        let engine_version = required(params, "EngineVersion")?;
        if engine_version.len() > MAX_ENGINE_VERSION_LEN {
            return Err(ApiError::EngineVersionError {
                detail: format!("\"{}…\" is not a major version", clip(engine_version)),
            });
        }
        Ok(Self {
            db_instance_id,
            engine_version: engine_version.to_string(),
            deferred: switch_mode(params)?,
        })
    }
}

/// The one target a `current` instance may go to, or why `target` is not it.
pub(crate) fn check_target(
    catalog: &dds_engine::catalog::Catalog,
    current: &str,
    target: &str,
) -> Result<String, ApiError> {
    let refuse = |detail: String| Err(ApiError::EngineVersionError { detail });
    let Some(t) = engine_rank(target) else {
        return refuse(format!(
            "{} is not one of {}",
            clip(target),
            ENGINE_UPGRADE_PATH.join(", ")
        ));
    };
    let Some(c) = engine_rank(current) else {
        return refuse(format!(
            "the instance's EngineVersion {current} has no upgrade path"
        ));
    };
    if t <= c {
        return refuse(format!(
            "{target} is not later than the instance's EngineVersion {current}; a major version \
             cannot be downgraded"
        ));
    }
    let Some(next) = next_engine_version(catalog, current) else {
        return refuse(format!("no major version after {current} is available"));
    };
    if target != next {
        return refuse(format!(
            "upgrade one major version at a time: {current} goes to {next} first"
        ));
    }
    Ok(next)
}

/// `UpgradeDBInstanceEngineVersion`.
pub async fn upgrade_db_instance_engine_version(
    ctx: Arc<Context>,
    req: EngineUpgradeRequest,
    _call: Call,
) -> Result<Empty, ApiError> {
    let instance = load_instance(&ctx, &req.db_instance_id).await?;
    let catalog = ctx.kernels.snapshot();
    let target = check_target(&catalog, &instance.engine_version, &req.engine_version)?;
    let Some(kernel) = catalog.newest(&target) else {
        return Err(ApiError::EngineVersionError {
            detail: format!("no kernel of {target} in the catalog"),
        });
    };
    let kernel = kernel.kernel_version.clone();
    let mut op =
        RollingOperation::plan_engine_upgrade(&instance, &kernel, &target, ctx.rolling.clone())?;
    if req.deferred {
        op = op.with_maintain_window(instance.maintain_window);
    }
    accept(&ctx, Planned { instance, op }, req.deferred).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::actions::upgrade::test_support::{env, kernels, req, Env};
    use crate::server::plane::DataPlane;
    use crate::server::store::{OperationKind, OperationStatus, Store};
    use dds_engine::build::fixtures;
    use dds_engine::model::DbInstanceStatus;
    use dds_engine::plane::Command;
    use serde_json::{json, Value};

    async fn call(t: &Env, action: &str, params: &[(&str, &str)]) -> Result<Value, ApiError> {
        crate::server::actions::call(t.ctx.clone(), req(action, params)).await
    }

    #[test]
    fn the_target_is_the_next_major_only() {
        let c = dds_engine::catalog::Catalog::embedded();
        assert_eq!(check_target(&c, "4.2", "4.4").unwrap(), "4.4");
        assert_eq!(check_target(&c, "6.0", "7.0").unwrap(), "7.0");
        for (from, to) in [
            ("4.2", "5.0"),
            ("4.2", "4.2"),
            ("4.4", "4.2"),
            ("4.4", "3.4"),
            ("4.4", "x"),
            ("8.0", "9.0"),
        ] {
            let e = check_target(&c, from, to).unwrap_err();
            assert_eq!(
                (e.code(), e.status()),
                ("EngineVersion.ERROR", 400),
                "{from} -> {to}"
            );
        }
    }

    #[tokio::test]
    async fn a_replica_set_goes_one_major_up_with_every_member_restarted_once_and_fcv_last() {
        let t = env(200.0).await;
        let (_, older) = kernels(&t, "4.2");
        let (newest_44, _) = kernels(&t, "4.4");
        let id = t
            .running_instance(
                "dds-eu1",
                fixtures::replica_set(fixtures::pss("rs", &older)),
                "4.2",
            )
            .await;
        let obs = t.plane.observe(&id).await.unwrap().unwrap();
        assert_eq!(obs.replica_sets[0].fcv.as_deref(), Some("4.2"));
        for (params, code, status) in [
            (
                vec![("DBInstanceId", id.as_str())],
                "MissingEngineVersion",
                400,
            ),
            (
                vec![("DBInstanceId", id.as_str()), ("EngineVersion", "5.0")],
                "EngineVersion.ERROR",
                400,
            ),
            (
                vec![("DBInstanceId", id.as_str()), ("EngineVersion", "4.0")],
                "EngineVersion.ERROR",
                400,
            ),
            (
                vec![("DBInstanceId", "dds-nope"), ("EngineVersion", "4.4")],
                "InvalidDBInstanceId.NotFound",
                404,
            ),
        ] {
            let e = call(&t, "UpgradeDBInstanceEngineVersion", &params)
                .await
                .unwrap_err();
            assert_eq!((e.code(), e.status()), (code, status), "{params:?}");
        }
        assert_eq!(
            call(
                &t,
                "UpgradeDBInstanceEngineVersion",
                &[("DBInstanceId", &id), ("EngineVersion", "4.4")]
            )
            .await
            .unwrap(),
            json!({})
        );
        assert_eq!(
            t.status(&id).await,
            DbInstanceStatus::EngineVersionUpgrading
        );
        let e = call(
            &t,
            "UpgradeDBInstanceEngineVersion",
            &[("DBInstanceId", &id), ("EngineVersion", "4.4")],
        )
        .await
        .unwrap_err();
        assert_eq!(
            (e.code(), e.status()),
            ("OperationDenied.DBInstanceStatus", 403)
        );
        t.settled(&id, 60_000).await;
        let ops = t.store.list_operations(&id, 1).await.unwrap();
        assert_eq!(ops[0].kind, OperationKind::EngineUpgrade);
        assert_eq!(
            ops[0].status,
            OperationStatus::Succeeded,
            "{:?}",
            ops[0].report
        );
        let inst = t.store.get_instance(&id).await.unwrap().unwrap();
        assert_eq!(inst.engine_version, "4.4");
        assert!(inst.topology.kernel_versions().all(|k| k == newest_44));
        let obs = t.plane.observe(&id).await.unwrap().unwrap();
        assert_eq!(obs.replica_sets[0].fcv.as_deref(), Some("4.4"));
        // Every member restarted exactly once; setFCV after the last start, on the replica set itself.
        let truth = t.plane.truth(&id).await.unwrap().unwrap();
        assert!(truth.processes.iter().all(|p| p.starts_by_command == 1));
        let last_start = truth
            .commands
            .iter()
            .filter(|c| matches!(c.command, Command::StartMember { .. }))
            .map(|c| c.at_ms)
            .max()
            .unwrap();
        let fcv: Vec<_> = truth
            .commands
            .iter()
            .filter(|c| matches!(c.command, Command::SetFeatureCompatibilityVersion { .. }))
            .collect();
        assert!(!fcv.is_empty());
        assert!(fcv.iter().all(|c| c.at_ms >= last_start));
        assert_eq!(
            fcv[0].command,
            Command::SetFeatureCompatibilityVersion {
                replica_set: Some("rs".into()),
                version: "4.4".into()
            }
        );
        // The next step is offered and a skipped one still refused.
        let v = call(
            &t,
            "DescribeAvailableEngineVersion",
            &[("DBInstanceId", &id)],
        )
        .await
        .unwrap();
        assert_eq!(v["EngineVersions"]["EngineVersion"], json!(["5.0"]));
        let e = call(
            &t,
            "UpgradeDBInstanceEngineVersion",
            &[("DBInstanceId", &id), ("EngineVersion", "6.0")],
        )
        .await
        .unwrap_err();
        assert_eq!(e.code(), "EngineVersion.ERROR");
    }
}
