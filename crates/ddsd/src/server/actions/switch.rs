//! `SwitchDBInstanceHA` and `RestartNode`: the primary switch and the one-member restart, as intents of
//! the rolling operation (`dds_engine::workflow::RollingKind::Switch`, `RestartScope::Member`). They are
//! accepted exactly like `RestartDBInstance` (`rolling::accept`): refusals decided from the record, then
//! `OperationDenied.DBInstanceStatus` while another operation is unfinished, then the live preflight, then
//! status + operation in one store transaction. Nothing is touched by the handler.
//!
//! `SwitchDBInstanceHA` (`DBInstanceId`, `NodeId`, `RoleIds`, `SwitchMode`): on a replica-set instance the
//! instance's replica set (a `NodeId` naming the instance or its replica set is the same); on a sharded
//! cluster `NodeId` is required and names one shard or the config server (a mongos is `InvalidParameter`).
//! The primary hands over through one non-forced stepdown; no process restarts; status `HASwitching` while
//! it runs. `RoleIds` (comma-separated member node ids, as `DescribeReplicaSetRole`'s `RoleId`) names the
//! members to switch between: the primary among them is ignored, and one of the others must be an
//! electable secondary caught up with the primary. Without one — `RoleIds` naming only hidden or lagging
//! members, or no electable secondary caught up at all — the request is refused with `HaStatusNotSupport`
//! (400) and nothing changes. MongoDB's stepdown hands over to the freshest electable secondary: ddsd does
//! not change member priorities, so in a set with several electable secondaries the new primary may be
//! one not named. `SwitchMode` is `0` (now) or `1` (in the maintenance window), else `InvalidSwitchType`.
//!
//! `RestartNode` (`DBInstanceId`, `NodeId`, `RoleId`, `SwitchMode`): restarts the one member `RoleId` of the
//! replica set `NodeId` (a shard or the config server; on a replica-set instance `NodeId` may be omitted),
//! on its current kernel, with the gates of `RestartDBInstance`; a primary is stepped down (never forced)
//! first. `NodeId` naming a mongos restarts that mongos (`RoleId` must then be the same node id). Status
//! `NodeRestarting` while it runs.

use std::sync::Arc;

use dds_engine::model::{Instance, Topology};
use dds_engine::workflow::{PreflightError, RestartScope, RollingOperation};

use super::errors::ApiError;
use super::params::{clip, optional, required};
use super::rolling::{accept, load_instance, Planned};
use super::{Call, Context, Empty, FromParams, Params};

/// Longest `NodeId` / `RoleId` accepted (vendor ids are about 20 characters).
const MAX_ID_LEN: usize = 64;
/// Most entries in `RoleIds` (a replica set has at most 50 members; the vendor's at most 7 + 5 read-only).
const MAX_ROLE_IDS: usize = 16;

fn bounded_id<'a>(params: &'a Params, name: &str) -> Result<Option<&'a str>, ApiError> {
    match optional(params, name) {
        Some(v) if v.len() > MAX_ID_LEN || v.chars().any(char::is_control) => Err(
            ApiError::invalid_parameter(name, format!("Not a node id: \"{}…\".", clip(v))),
        ),
        other => Ok(other),
    }
}

/// `SwitchDBInstanceHA`'s request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchRequest {
    pub db_instance_id: String,
    pub node_id: Option<String>,
    pub role_ids: Vec<String>,
    pub deferred: bool,
}

impl FromParams for SwitchRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        let db_instance_id = required(params, "DBInstanceId")?.to_string();
        let node_id = bounded_id(params, "NodeId")?.map(str::to_string);
        let mut role_ids = Vec::new();
        if let Some(list) = optional(params, "RoleIds") {
            for r in list.split(',').map(str::trim) {
                if r.is_empty() || r.len() > MAX_ID_LEN || r.chars().any(char::is_control) {
                    return Err(ApiError::invalid_parameter(
                        "RoleIds",
                        format!(
                            "A comma-separated list of role ids, got \"{}\".",
                            clip(list)
                        ),
                    ));
                }
                if !role_ids.iter().any(|x| x == r) {
                    role_ids.push(r.to_string());
                }
            }
            if role_ids.len() > MAX_ROLE_IDS {
                return Err(ApiError::invalid_parameter(
                    "RoleIds",
                    format!("At most {MAX_ROLE_IDS} role ids."),
                ));
            }
        }
        let deferred = match optional(params, "SwitchMode") {
            None | Some("0") => false,
            Some("1") => true,
            Some(_) => return Err(ApiError::InvalidSwitchType),
        };
        Ok(Self {
            db_instance_id,
            node_id,
            role_ids,
            deferred,
        })
    }
}

/// `RestartNode`'s request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartNodeRequest {
    pub db_instance_id: String,
    pub node_id: Option<String>,
    pub role_id: String,
    pub deferred: bool,
}

impl FromParams for RestartNodeRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        let db_instance_id = required(params, "DBInstanceId")?.to_string();
        let node_id = bounded_id(params, "NodeId")?.map(str::to_string);
        let role_id = required(params, "RoleId")?;
        bounded_id(params, "RoleId")?;
        let deferred = match optional(params, "SwitchMode") {
            None | Some("0") => false,
            Some("1") => true,
            Some(v) => {
                return Err(ApiError::invalid_parameter(
                    "SwitchMode",
                    format!(
                        "Valid values are 0 (immediately) and 1 (in the maintenance window), got \"{}\".",
                        clip(v)
                    ),
                ))
            }
        };
        Ok(Self {
            db_instance_id,
            node_id,
            role_id: role_id.to_string(),
            deferred,
        })
    }
}

/// The replica set a `NodeId` names, as the engine's scope: on a replica-set instance, absent or naming
/// the instance / its replica set means the instance; on a sharded cluster it is required.
fn switch_scope(instance: &Instance, node_id: Option<&str>) -> Result<RestartScope, ApiError> {
    match (&instance.topology, node_id) {
        (Topology::Standalone { .. }, _) => Err(PreflightError::Standalone.into()),
        (Topology::ReplicaSet { .. }, None) => Ok(RestartScope::Instance),
        (Topology::ReplicaSet { replica_set }, Some(n))
            if n == instance.id || n == replica_set.node_id || n == replica_set.name =>
        {
            Ok(RestartScope::Instance)
        }
        (Topology::Sharded { .. }, None) => Err(ApiError::missing("NodeId")),
        (_, Some(n)) => Ok(RestartScope::Node {
            node_id: n.to_string(),
        }),
    }
}

impl SwitchRequest {
    pub async fn plan(&self, ctx: &Context) -> Result<Planned, ApiError> {
        let instance = load_instance(ctx, &self.db_instance_id).await?;
        let scope = switch_scope(&instance, self.node_id.as_deref())?;
        let mut op = RollingOperation::plan_switch(
            &instance,
            scope,
            self.role_ids.clone(),
            ctx.rolling.clone(),
        )?;
        if self.deferred {
            op = op.with_maintain_window(instance.maintain_window);
        }
        Ok(Planned { instance, op })
    }
}

impl RestartNodeRequest {
    pub async fn plan(&self, ctx: &Context) -> Result<Planned, ApiError> {
        let instance = load_instance(ctx, &self.db_instance_id).await?;
        let scope = match (&instance.topology, self.node_id.as_deref()) {
            (Topology::Standalone { .. }, _) => return Err(PreflightError::Standalone.into()),
            (Topology::ReplicaSet { replica_set }, n)
                if n.is_none_or(|n| {
                    n == instance.id || n == replica_set.node_id || n == replica_set.name
                }) =>
            {
                RestartScope::Member {
                    node_id: replica_set.node_id.clone(),
                    role_id: self.role_id.clone(),
                }
            }
            (Topology::Sharded { .. }, None) => return Err(ApiError::missing("NodeId")),
            (topology, Some(n)) if topology.mongos().iter().any(|m| m.node_id == n) => {
                if self.role_id != n {
                    return Err(ApiError::InvalidRoleId {
                        detail: format!(
                            "a mongos is restarted by its own node id: RoleId must be {}",
                            clip(n)
                        ),
                    });
                }
                RestartScope::Member {
                    node_id: n.to_string(),
                    role_id: n.to_string(),
                }
            }
            (_, n) => RestartScope::Member {
                node_id: n.unwrap_or_default().to_string(),
                role_id: self.role_id.clone(),
            },
        };
        let mut op = RollingOperation::plan_restart(&instance, scope, ctx.rolling.clone())?;
        if self.deferred {
            op = op.with_maintain_window(instance.maintain_window);
        }
        Ok(Planned { instance, op })
    }
}

/// `SwitchDBInstanceHA`.
pub async fn switch_db_instance_ha(
    ctx: Arc<Context>,
    req: SwitchRequest,
    _call: Call,
) -> Result<Empty, ApiError> {
    let planned = req.plan(&ctx).await?;
    accept(&ctx, planned, req.deferred).await
}

/// `RestartNode`.
pub async fn restart_node(
    ctx: Arc<Context>,
    req: RestartNodeRequest,
    _call: Call,
) -> Result<Empty, ApiError> {
    let planned = req.plan(&ctx).await?;
    accept(&ctx, planned, req.deferred).await
}

#[cfg(test)]
mod tests {
    /// Request parameters, expected code and HTTP status.
    type Refusal<'a> = (Vec<(&'a str, &'a str)>, &'a str, u16);

    use super::*;
    use crate::server::actions::upgrade::test_support::{env, kernels, req, Env};
    use crate::server::plane::DataPlane;
    use crate::server::store::{OperationKind, Store};
    use dds_engine::build::fixtures;
    use dds_engine::model::DbInstanceStatus;
    use dds_engine::sim::{ElectionCause, Fault};
    use serde_json::{json, Value};

    async fn call(t: &Env, action: &str, params: &[(&str, &str)]) -> Result<Value, ApiError> {
        crate::server::actions::call(t.ctx.clone(), req(action, params)).await
    }

    async fn primary(t: &Env, id: &str, rs: &str) -> String {
        let obs = t.plane.observe(id).await.unwrap().unwrap();
        obs.replica_set(rs).unwrap().primary.clone().unwrap()
    }

    /// Per-process restarts by command, from the simulation's ground truth.
    async fn restarts(t: &Env, id: &str) -> Vec<(String, u32)> {
        let truth = t.plane.truth(id).await.unwrap().unwrap();
        truth
            .processes
            .iter()
            .map(|p| (p.node_id.clone(), p.starts_by_command))
            .collect()
    }

    #[tokio::test]
    async fn a_switch_hands_the_primary_over_once_and_restarts_nobody() {
        let t = env(200.0).await;
        let (_, older) = kernels(&t, "4.4");
        let id = t
            .running_instance(
                "dds-ha1",
                fixtures::replica_set(fixtures::psh("rs", &older)),
                "4.4",
            )
            .await;
        let before = primary(&t, &id, "rs").await;
        let elections_before = t.plane.truth(&id).await.unwrap().unwrap().replica_sets[0]
            .elections
            .len();
        assert_eq!(
            call(&t, "SwitchDBInstanceHA", &[("DBInstanceId", &id)])
                .await
                .unwrap(),
            json!({})
        );
        assert_eq!(t.status(&id).await, DbInstanceStatus::HaSwitching);
        let e = call(&t, "SwitchDBInstanceHA", &[("DBInstanceId", &id)])
            .await
            .unwrap_err();
        assert_eq!(
            (e.code(), e.status()),
            ("OperationDenied.DBInstanceStatus", 403)
        );
        t.settled(&id, 30_000).await;
        let after = primary(&t, &id, "rs").await;
        assert_ne!(before, after);
        let truth = t.plane.truth(&id).await.unwrap().unwrap();
        let new: Vec<_> = truth.replica_sets[0].elections[elections_before..].to_vec();
        assert_eq!(new.len(), 1, "{new:?}");
        assert_eq!(new[0].cause, ElectionCause::Handoff);
        assert!(restarts(&t, &id).await.iter().all(|(_, n)| *n == 0));
        let ops = t.store.list_operations(&id, 1).await.unwrap();
        assert_eq!(ops[0].kind, OperationKind::Switch);
        assert_eq!(
            super::super::operations::recorded_by(&ops[0]),
            "SwitchDBInstanceHA"
        );
        assert_eq!(
            ops[0].status,
            crate::server::store::OperationStatus::Succeeded
        );
    }

    #[tokio::test]
    async fn a_sharded_switch_names_its_shard_and_refusals_change_nothing() {
        let t = env(200.0).await;
        let (_, older) = kernels(&t, "4.4");
        let id = t
            .running_instance("dds-ha2", fixtures::sharded(2, 2, &older), "4.4")
            .await;
        let standalone = t
            .running_instance("dds-ha3", fixtures::standalone("sa-0", &older), "4.4")
            .await;
        let hidden = "shard1-2".to_string();
        let cases: Vec<Refusal> = vec![
            (vec![], "MissingDBInstanceId", 400),
            (
                vec![("DBInstanceId", "dds-nope")],
                "InvalidDBInstanceId.NotFound",
                404,
            ),
            (vec![("DBInstanceId", &id)], "MissingNodeId", 400),
            (
                vec![("DBInstanceId", &id), ("NodeId", "mongos0")],
                "InvalidParameter",
                400,
            ),
            (
                vec![("DBInstanceId", &id), ("NodeId", "shard9")],
                "InvalidParameter",
                400,
            ),
            (
                vec![
                    ("DBInstanceId", &id),
                    ("NodeId", "shard1"),
                    ("SwitchMode", "2"),
                ],
                "InvalidSwitchType",
                400,
            ),
            (
                vec![
                    ("DBInstanceId", &id),
                    ("NodeId", "shard1"),
                    ("RoleIds", "shard0-1"),
                ],
                "InvalidParameter",
                400,
            ),
            (
                vec![
                    ("DBInstanceId", &id),
                    ("NodeId", "shard1"),
                    ("RoleIds", ","),
                ],
                "InvalidParameter",
                400,
            ),
            // The hidden member can never become primary.
            (
                vec![
                    ("DBInstanceId", &id),
                    ("NodeId", "shard1"),
                    ("RoleIds", &hidden),
                ],
                "HaStatusNotSupport",
                400,
            ),
            (
                vec![("DBInstanceId", &standalone)],
                "OperationDenied.DBInstanceType",
                403,
            ),
        ];
        for (params, code, status) in cases {
            let e = call(&t, "SwitchDBInstanceHA", &params).await.unwrap_err();
            assert_eq!((e.code(), e.status()), (code, status), "{params:?}");
        }
        for i in [&id, &standalone] {
            assert_eq!(t.status(i).await, DbInstanceStatus::Running);
            assert_eq!(t.store.list_operations(i, 10).await.unwrap().len(), 1);
        }

        let before = primary(&t, &id, "shard1").await;
        let other0 = primary(&t, &id, "shard0").await;
        let secondary = if before == "shard1-0" {
            "shard1-1"
        } else {
            "shard1-0"
        };
        let roles = format!("{before},{secondary}");
        call(
            &t,
            "SwitchDBInstanceHA",
            &[
                ("DBInstanceId", &id),
                ("NodeId", "shard1"),
                ("RoleIds", &roles),
                ("SwitchMode", "0"),
            ],
        )
        .await
        .unwrap();
        assert_eq!(t.status(&id).await, DbInstanceStatus::HaSwitching);
        t.settled(&id, 30_000).await;
        assert_eq!(primary(&t, &id, "shard1").await, secondary);
        assert_eq!(primary(&t, &id, "shard0").await, other0);
        assert!(restarts(&t, &id).await.iter().all(|(_, n)| *n == 0));
    }

    #[tokio::test]
    async fn no_caught_up_electable_secondary_is_refused_before_anything_changes() {
        let t = env(200.0).await;
        let (_, older) = kernels(&t, "4.4");
        let id = t
            .running_instance(
                "dds-ha4",
                fixtures::replica_set(fixtures::psh("rs", &older)),
                "4.4",
            )
            .await;
        let p = primary(&t, &id, "rs").await;
        let secondary = if p == "rs-0" { "rs-1" } else { "rs-0" };
        t.plane
            .arm_fault(
                &id,
                serde_json::to_value(Fault::Crash {
                    node_id: secondary.to_string(),
                    at_ms: t.plane.now_ms(),
                    recover_after_ms: None,
                })
                .unwrap(),
            )
            .await
            .unwrap();
        let e = call(&t, "SwitchDBInstanceHA", &[("DBInstanceId", &id)])
            .await
            .unwrap_err();
        assert_eq!((e.code(), e.status()), ("HaStatusNotSupport", 400));
        assert!(e.message().contains("rs"), "{}", e.message());
        assert_eq!(t.status(&id).await, DbInstanceStatus::Running);
        assert_eq!(t.store.list_operations(&id, 10).await.unwrap().len(), 1);
        assert_eq!(primary(&t, &id, "rs").await, p);
    }

    #[tokio::test]
    async fn restart_node_restarts_one_member_and_a_primary_after_its_stepdown() {
        let t = env(200.0).await;
        let (_, older) = kernels(&t, "4.4");
        let id = t
            .running_instance(
                "dds-rn1",
                fixtures::replica_set(fixtures::psh("rs", &older)),
                "4.4",
            )
            .await;
        call(
            &t,
            "RestartNode",
            &[("DBInstanceId", &id), ("RoleId", "rs-2")],
        )
        .await
        .unwrap();
        assert_eq!(t.status(&id).await, DbInstanceStatus::NodeRestarting);
        t.settled(&id, 30_000).await;
        for (node, n) in restarts(&t, &id).await {
            assert_eq!(n, u32::from(node == "rs-2"), "{node}");
        }
        let ops = t.store.list_operations(&id, 1).await.unwrap();
        assert_eq!(
            super::super::operations::recorded_by(&ops[0]),
            "RestartNode"
        );

        let p = primary(&t, &id, "rs").await;
        call(
            &t,
            "RestartNode",
            &[("DBInstanceId", &id), ("NodeId", "rs"), ("RoleId", &p)],
        )
        .await
        .unwrap();
        t.settled(&id, 30_000).await;
        assert_ne!(primary(&t, &id, "rs").await, p);
        for (node, n) in restarts(&t, &id).await {
            assert_eq!(n, u32::from(node == "rs-2" || node == p), "{node}");
        }

        let sharded = t
            .running_instance("dds-rn2", fixtures::sharded(1, 2, &older), "4.4")
            .await;
        let cases: Vec<Refusal> = vec![
            (vec![("DBInstanceId", &id)], "MissingRoleId", 400),
            (
                vec![("DBInstanceId", &id), ("RoleId", "rs-9")],
                "InvalidParameter",
                400,
            ),
            (
                vec![("DBInstanceId", &sharded), ("RoleId", "shard0-1")],
                "MissingNodeId",
                400,
            ),
            (
                vec![
                    ("DBInstanceId", &sharded),
                    ("NodeId", "mongos0"),
                    ("RoleId", "shard0-1"),
                ],
                "InvalidParameter",
                400,
            ),
            (
                vec![
                    ("DBInstanceId", &sharded),
                    ("NodeId", "shard0"),
                    ("RoleId", "shard0-1"),
                    ("SwitchMode", "5"),
                ],
                "InvalidParameter",
                400,
            ),
        ];
        for (params, code, status) in cases {
            let e = call(&t, "RestartNode", &params).await.unwrap_err();
            assert_eq!((e.code(), e.status()), (code, status), "{params:?}");
        }
        call(
            &t,
            "RestartNode",
            &[
                ("DBInstanceId", &sharded),
                ("NodeId", "mongos1"),
                ("RoleId", "mongos1"),
            ],
        )
        .await
        .unwrap();
        t.settled(&sharded, 30_000).await;
        for (node, n) in restarts(&t, &sharded).await {
            assert_eq!(n, u32::from(node == "mongos1"), "{node}");
        }
        let ops = t.store.list_operations(&sharded, 1).await.unwrap();
        assert_eq!(
            super::super::operations::recorded_by(&ops[0]),
            "RestartNode"
        );
    }
}
