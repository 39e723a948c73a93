//! `ModifyDBInstanceDescription`: the instance's name (`DBInstanceDescription`), as
//! `DescribeDBInstances` / `DescribeDBInstanceAttribute` show it and `DescribeDBInstances` filters on it.
//!
//! `ModifyResourceGroup`: the instance's `ResourceGroupId`, in any status.
//!
//! `ModifyDBInstanceAttribute`: release protection (`DBInstanceReleaseProtection`, `true`/`false`,
//! required), for pay-as-you-go instances (a subscription one is `ChargeTypeViolation`, as
//! `DeleteDBInstance` refuses those anyway), in any status. While it is on, `DeleteDBInstance` is refused
//! with `InstanceReleaseProtection` (403) and nothing changes; `DescribeDBInstanceAttribute` shows it. Kept
//! in the per-instance setting `instance/<id>/release_protection` (deleted with the instance). Answers `{}`.
//!
//! Request: `DBInstanceId`, `DBInstanceDescription` (both required; 2 to 256 characters, starting with a
//! letter, not with `http://` / `https://`, no control characters — the rule `CreateDBInstance` applies),
//! `NodeId` (the vendor names a shard or mongos with it; ddsd keeps one name per instance, so a `NodeId`
//! other than the instance's own id is `InvalidParameter`). Refused with
//! `OperationDenied.DBInstanceStatus` unless the instance is `Running` with no unfinished operation (a
//! `SwitchMode=1` one waiting for its window included), checked before anything changes. Answers `{}`.

use std::sync::Arc;

use dds_engine::build::check_description;
use dds_engine::model::{ChargeType, DbInstanceStatus};

use super::errors::{from_store, ApiError};
use super::params::{clip, optional, optional_bool, required};
use super::rolling::load_instance;
use super::{Call, Context, Empty, FromParams, Params};
use crate::server::store::InstancePatch;

/// `ModifyDBInstanceDescription`'s request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescriptionRequest {
    pub db_instance_id: String,
    pub description: String,
    pub node_id: Option<String>,
}

impl FromParams for DescriptionRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        let db_instance_id = required(params, "DBInstanceId")?.to_string();
        let description = required(params, "DBInstanceDescription")?;
        check_description(description).map_err(|e| {
            ApiError::invalid_parameter(
                "DBInstanceDescription",
                format!("{e} (got \"{}\").", clip(description)),
            )
        })?;
        Ok(Self {
            db_instance_id,
            description: description.to_string(),
            node_id: optional(params, "NodeId").map(str::to_string),
        })
    }
}

/// Refuses unless the instance is `Running` with no unfinished operation.
pub(crate) async fn idle(
    ctx: &Context,
    id: &str,
    status: DbInstanceStatus,
) -> Result<(), ApiError> {
    if status != DbInstanceStatus::Running {
        return Err(ApiError::StatusDenied);
    }
    let newest = ctx.store.list_operations(id, 1).await.map_err(from_store)?;
    if let Some(o) = newest.first().filter(|o| !o.status.is_finished()) {
        return Err(ApiError::OperationUnfinished {
            operation_id: o.id.clone(),
        });
    }
    Ok(())
}

/// `ModifyDBInstanceDescription`.
pub async fn modify_db_instance_description(
    ctx: Arc<Context>,
    req: DescriptionRequest,
    _call: Call,
) -> Result<Empty, ApiError> {
    let instance = load_instance(&ctx, &req.db_instance_id).await?;
    if let Some(n) = req.node_id.as_deref().filter(|n| *n != instance.id) {
        return Err(ApiError::invalid_parameter(
            "NodeId",
            format!(
                "ddsd keeps one name per instance, not per node (got \"{}\").",
                clip(n)
            ),
        ));
    }
    idle(&ctx, &instance.id, instance.status).await?;
    ctx.store
        .modify_instance(
            &instance.id,
            InstancePatch {
                description: Some(req.description),
                ..InstancePatch::default()
            },
        )
        .await
        .map_err(from_store)?;
    Ok(Empty {})
}

/// `ModifyDBInstanceAttribute`'s request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseProtectionRequest {
    pub db_instance_id: String,
    pub protected: bool,
}

impl FromParams for ReleaseProtectionRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        let db_instance_id = required(params, "DBInstanceId")?.to_string();
        // The SDKs send a boolean as `true` or `True`.
        required(params, "DBInstanceReleaseProtection")?;
        let protected = optional_bool(params, "DBInstanceReleaseProtection")?.unwrap_or_default();
        Ok(Self {
            db_instance_id,
            protected,
        })
    }
}

fn protection_key(instance_id: &str) -> String {
    format!(
        "{}release_protection",
        crate::server::store::instance_setting_prefix(instance_id)
    )
}

/// Whether the instance's release protection is on.
pub async fn release_protected(ctx: &Context, instance_id: &str) -> Result<bool, ApiError> {
    let v = ctx
        .store
        .get_setting(&protection_key(instance_id))
        .await
        .map_err(from_store)?;
    Ok(v.as_deref() == Some("true"))
}

/// `ModifyDBInstanceAttribute`.
pub async fn modify_db_instance_attribute(
    ctx: Arc<Context>,
    req: ReleaseProtectionRequest,
    _call: Call,
) -> Result<Empty, ApiError> {
    let instance = load_instance(&ctx, &req.db_instance_id).await?;
    if instance.charge_type == ChargeType::PrePaid {
        return Err(ApiError::ChargeTypeViolation);
    }
    ctx.store
        .put_setting(
            &protection_key(&instance.id),
            if req.protected { "true" } else { "false" },
        )
        .await
        .map_err(from_store)?;
    Ok(Empty {})
}

/// `ModifyResourceGroup`'s request: `DBInstanceId`, `ResourceGroupId` (both required; the id is kept as
/// given, at most 128 letters, digits, `-`, `_`, `.`, as at creation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceGroupRequest {
    pub db_instance_id: String,
    pub resource_group_id: String,
}

impl FromParams for ResourceGroupRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        let db_instance_id = required(params, "DBInstanceId")?.to_string();
        let group = required(params, "ResourceGroupId")?;
        if !dds_engine::build::passthrough_id_ok(group) {
            return Err(ApiError::invalid_parameter(
                "ResourceGroupId",
                format!(
                    "At most 128 letters, digits, '-', '_' and '.' (got \"{}\").",
                    clip(group)
                ),
            ));
        }
        Ok(Self {
            db_instance_id,
            resource_group_id: group.to_string(),
        })
    }
}

/// `ModifyResourceGroup`: moves the instance to another resource group, as `DescribeDBInstances` /
/// `DescribeDBInstanceAttribute` show it and `DescribeDBInstances` filters on it. Any status. Answers `{}`.
pub async fn modify_resource_group(
    ctx: Arc<Context>,
    req: ResourceGroupRequest,
    _call: Call,
) -> Result<Empty, ApiError> {
    let instance = load_instance(&ctx, &req.db_instance_id).await?;
    ctx.store
        .modify_instance(
            &instance.id,
            InstancePatch {
                resource_group_id: Some(req.resource_group_id),
                ..InstancePatch::default()
            },
        )
        .await
        .map_err(from_store)?;
    Ok(Empty {})
}

#[cfg(test)]
mod tests {
    /// Request parameters, expected code and HTTP status.
    type Refusal<'a> = (Vec<(&'a str, &'a str)>, &'a str, u16);

    use super::*;
    use crate::server::actions::upgrade::test_support::{env, kernels, req, Env};
    use crate::server::store::Store;
    use dds_engine::build::fixtures;
    use serde_json::{json, Value};

    async fn call(t: &Env, action: &str, params: &[(&str, &str)]) -> Result<Value, ApiError> {
        crate::server::actions::call(t.ctx.clone(), req(action, params)).await
    }

    #[tokio::test]
    async fn the_name_changes_and_refusals_change_nothing() {
        let t = env(200.0).await;
        let (_, older) = kernels(&t, "4.4");
        let id = t
            .running_instance(
                "dds-md1",
                fixtures::replica_set(fixtures::psh("rs", &older)),
                "4.4",
            )
            .await;
        let before = t
            .store
            .get_instance(&id)
            .await
            .unwrap()
            .unwrap()
            .description;
        let long = format!("a{}", "b".repeat(256));
        let cases: Vec<Refusal> = vec![
            (
                vec![("DBInstanceDescription", "orders")],
                "MissingDBInstanceId",
                400,
            ),
            (
                vec![("DBInstanceId", &id)],
                "MissingDBInstanceDescription",
                400,
            ),
            (
                vec![("DBInstanceId", &id), ("DBInstanceDescription", "1orders")],
                "InvalidParameter",
                400,
            ),
            (
                vec![("DBInstanceId", &id), ("DBInstanceDescription", "http://x")],
                "InvalidParameter",
                400,
            ),
            (
                vec![("DBInstanceId", &id), ("DBInstanceDescription", &long)],
                "InvalidParameter",
                400,
            ),
            (
                vec![
                    ("DBInstanceId", &id),
                    ("DBInstanceDescription", "orders"),
                    ("NodeId", "d-other"),
                ],
                "InvalidParameter",
                400,
            ),
            (
                vec![
                    ("DBInstanceId", "dds-nope"),
                    ("DBInstanceDescription", "orders"),
                ],
                "InvalidDBInstanceId.NotFound",
                404,
            ),
        ];
        for (params, code, status) in cases {
            let e = call(&t, "ModifyDBInstanceDescription", &params)
                .await
                .unwrap_err();
            assert_eq!((e.code(), e.status()), (code, status), "{params:?}");
        }
        assert_eq!(
            t.store
                .get_instance(&id)
                .await
                .unwrap()
                .unwrap()
                .description,
            before
        );

        let v = call(
            &t,
            "ModifyDBInstanceDescription",
            &[
                ("DBInstanceId", &id),
                ("DBInstanceDescription", "orders-db_1"),
            ],
        )
        .await
        .unwrap();
        assert_eq!(v, json!({}));
        assert_eq!(
            t.store
                .get_instance(&id)
                .await
                .unwrap()
                .unwrap()
                .description,
            "orders-db_1"
        );

        // While a restart runs: refused, the name kept.
        call(&t, "RestartDBInstance", &[("DBInstanceId", &id)])
            .await
            .unwrap();
        let e = call(
            &t,
            "ModifyDBInstanceDescription",
            &[("DBInstanceId", &id), ("DBInstanceDescription", "other")],
        )
        .await
        .unwrap_err();
        assert_eq!(
            (e.code(), e.status()),
            ("OperationDenied.DBInstanceStatus", 403)
        );
        t.settled(&id, 30_000).await;
        assert_eq!(
            t.store
                .get_instance(&id)
                .await
                .unwrap()
                .unwrap()
                .description,
            "orders-db_1"
        );
    }
}
