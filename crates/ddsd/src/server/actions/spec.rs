//! `ModifyDBInstanceSpec` and `ModifyNodeSpec`: a class (and storage) change, run as a rolling restart of
//! the processes in scope onto the new class (`dds_engine::workflow::RollingKind::ClassChange`): every
//! process restarted exactly once, secondaries first, one non-forced stepdown per replica set, the mongos
//! one at a time, with `RestartDBInstance`'s gates. The instance reads `DBInstanceClassChanging` while it
//! runs; the new class and storage are written to the record in the transaction that ends the operation
//! successfully, so `DescribeDBInstanceAttribute` shows them from then on and a failed change keeps the old
//! ones.
//!
//! `ModifyDBInstanceSpec` (`DBInstanceId`, `DBInstanceClass`, `DBInstanceStorage`, `EffectiveTime`): a
//! replica-set instance. `ModifyNodeSpec` (`DBInstanceId`, `NodeId`, `NodeClass`, `NodeStorage`,
//! `EffectiveTime`, `ClientToken`): one shard, the config server or one mongos of a sharded cluster. At least
//! one of class and storage is given; the other keeps its value. Refusals, all before anything changes, in
//! this order: parameters (`Missing…`, `InvalidParameter`), unknown instance, the other action's topology
//! (`OperationDenied.DBInstanceType`), unknown `NodeId` (`InvalidParameter`), a class that is not in the
//! catalog or not for that part (`InvalidDBInstanceClass.NotFound`), storage outside 10–16000 GB in steps of
//! 10, smaller than now, or on a mongos (`InvalidParameter`), nothing to change (`InvalidParameter` naming
//! the class parameter), then as `RestartDBInstance`: not `Running` or another operation unfinished
//! (`OperationDenied.DBInstanceStatus`), a standalone (`OperationDenied.DBInstanceType`), the live
//! preflight (`IncorrectDBInstanceState`).

use std::sync::Arc;

use dds_engine::build::{MAX_STORAGE_GB, MIN_STORAGE_GB};
use dds_engine::model::{Instance, Topology};
use dds_engine::workflow::{RestartScope, RollingOperation};
use serde::Serialize;

use super::classes::{self, Role};
use super::errors::ApiError;
use super::params::{clip, optional, parse_u32, required};
use super::rolling::{accept_idempotent, load_instance, Planned};
use super::{respond, Call, Context, FromParams, Params};
use crate::server::store::Accepted;

/// Longest `NodeId` accepted (vendor node ids are about 20 characters).
const MAX_ID_LEN: usize = 64;
/// Longest `ClientToken` (the vendor's limit).
const MAX_CLIENT_TOKEN_LEN: usize = 64;

/// Zone migration along with the change: not something ddsd does.
const ZONE_PARAMS: &[&str] = &[
    "TargetZoneId",
    "TargetSecondaryZoneId",
    "TargetHiddenZoneId",
    "TargetVswitchId",
];

/// `EffectiveTime`: `Immediately` (default) or `MaintainTime` (the maintenance window, as `SwitchMode=1`).
fn effective_time(params: &Params) -> Result<bool, ApiError> {
    match optional(params, "EffectiveTime") {
        None | Some("Immediately") => Ok(false),
        Some("MaintainTime") => Ok(true),
        Some(v) => Err(ApiError::invalid_parameter(
            "EffectiveTime",
            format!(
                "Valid values are Immediately and MaintainTime, got \"{}\".",
                clip(v)
            ),
        )),
    }
}

fn storage(params: &Params, name: &str) -> Result<Option<u32>, ApiError> {
    let Some(v) = optional(params, name) else {
        return Ok(None);
    };
    let gb = parse_u32(name, v, u32::MAX)?;
    if !(MIN_STORAGE_GB..=MAX_STORAGE_GB).contains(&gb) || !gb.is_multiple_of(10) {
        return Err(ApiError::invalid_parameter(
            name,
            format!("Storage is {MIN_STORAGE_GB} to {MAX_STORAGE_GB} GB in steps of 10, got {gb}."),
        ));
    }
    Ok(Some(gb))
}

fn class_param<'a>(params: &'a Params, name: &str) -> Result<Option<&'a str>, ApiError> {
    match optional(params, name) {
        Some(v) if v.len() > MAX_ID_LEN || v.chars().any(char::is_control) => {
            Err(ApiError::ClassNotFound {
                param: name.to_string(),
            })
        }
        other => Ok(other),
    }
}

fn no_zone_migration(params: &Params) -> Result<(), ApiError> {
    for p in ZONE_PARAMS {
        if optional(params, p).is_some() {
            return Err(ApiError::invalid_parameter(
                p,
                "ddsd does not migrate an instance across zones.",
            ));
        }
    }
    Ok(())
}

/// `ModifyDBInstanceSpec`'s request. `ReplicationFactor` and `ReadonlyReplicas` are accepted only with the
/// instance's current values: ddsd does not add or remove members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSpecRequest {
    pub db_instance_id: String,
    pub class: Option<String>,
    pub storage_gb: Option<u32>,
    pub replication_factor: Option<u32>,
    pub readonly_replicas: Option<u32>,
    pub deferred: bool,
}

impl FromParams for InstanceSpecRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        let db_instance_id = required(params, "DBInstanceId")?.to_string();
        let class = class_param(params, "DBInstanceClass")?.map(str::to_string);
        let storage_gb = storage(params, "DBInstanceStorage")?;
        if class.is_none() && storage_gb.is_none() {
            return Err(ApiError::invalid_parameter(
                "DBInstanceClass",
                "Specify DBInstanceClass, DBInstanceStorage or both.",
            ));
        }
        let count = |name: &str| {
            optional(params, name)
                .map(|v| parse_u32(name, v, 1_000))
                .transpose()
        };
        no_zone_migration(params)?;
        Ok(Self {
            db_instance_id,
            class,
            storage_gb,
            replication_factor: count("ReplicationFactor")?,
            readonly_replicas: count("ReadonlyReplicas")?,
            deferred: effective_time(params)?,
        })
    }
}

/// `ModifyNodeSpec`'s request. `ReadonlyReplicas` is accepted only with the shard's current value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpecRequest {
    pub db_instance_id: String,
    pub node_id: String,
    pub class: Option<String>,
    pub storage_gb: Option<u32>,
    pub readonly_replicas: Option<u32>,
    pub deferred: bool,
}

impl FromParams for NodeSpecRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        let db_instance_id = required(params, "DBInstanceId")?.to_string();
        let node_id = required(params, "NodeId")?;
        if node_id.len() > MAX_ID_LEN || node_id.chars().any(char::is_control) {
            return Err(ApiError::invalid_parameter(
                "NodeId",
                format!("Not a node id: \"{}…\".", clip(node_id)),
            ));
        }
        let class = class_param(params, "NodeClass")?.map(str::to_string);
        let storage_gb = storage(params, "NodeStorage")?;
        if class.is_none() && storage_gb.is_none() {
            return Err(ApiError::invalid_parameter(
                "NodeClass",
                "Specify NodeClass, NodeStorage or both.",
            ));
        }
        if let Some(token) = optional(params, "ClientToken") {
            if token.len() > MAX_CLIENT_TOKEN_LEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(ApiError::invalid_parameter(
                    "ClientToken",
                    "Use at most 64 printable ASCII characters.",
                ));
            }
        }
        no_zone_migration(params)?;
        Ok(Self {
            db_instance_id,
            node_id: node_id.to_string(),
            class,
            storage_gb,
            readonly_replicas: optional(params, "ReadonlyReplicas")
                .map(|v| parse_u32("ReadonlyReplicas", v, 1_000))
                .transpose()?,
            deferred: effective_time(params)?,
        })
    }
}

/// The vendor's answer: the order number of the change (and the `RequestId` the server adds).
#[derive(Debug, Clone, Serialize)]
pub struct SpecResponse {
    #[serde(rename = "OrderId")]
    pub order_id: String,
}

/// A vendor-like 15-digit order number.
fn order_id() -> String {
    use rand::Rng;
    let n: u64 = rand::thread_rng().gen_range(100_000_000_000_000..1_000_000_000_000_000);
    n.to_string()
}

/// The part of an instance a change names, with what it has now.
struct Part {
    scope: RestartScope,
    role: Role,
    class: String,
    /// `None` for a mongos (no storage of its own).
    storage_gb: Option<u32>,
    readonly_replicas: u32,
    electable_and_hidden: u32,
}

fn same_count(name: &str, asked: Option<u32>, now: u32) -> Result<(), ApiError> {
    match asked {
        Some(n) if n != now => Err(ApiError::invalid_parameter(
            name,
            format!("ddsd does not change the number of members: the value is {now}, not {n}."),
        )),
        _ => Ok(()),
    }
}

fn instance_part(instance: &Instance) -> Result<Part, ApiError> {
    match &instance.topology {
        Topology::Sharded { .. } => Err(ApiError::InstanceType {
            detail:
                "ModifyDBInstanceSpec changes a replica-set or standalone instance; change the \
                     nodes of a sharded cluster with ModifyNodeSpec"
                    .into(),
        }),
        Topology::Standalone { .. } => Ok(Part {
            scope: RestartScope::Instance,
            role: Role::Standalone,
            class: instance.class.clone(),
            storage_gb: Some(instance.storage_gb),
            readonly_replicas: 0,
            electable_and_hidden: 1,
        }),
        Topology::ReplicaSet { replica_set } => {
            let ro = u32::try_from(replica_set.readonly_replicas()).unwrap_or(u32::MAX);
            Ok(Part {
                scope: RestartScope::Instance,
                role: Role::ReplicaSet,
                class: instance.class.clone(),
                storage_gb: Some(instance.storage_gb),
                readonly_replicas: ro,
                electable_and_hidden: u32::try_from(replica_set.members.len())
                    .unwrap_or(u32::MAX)
                    .saturating_sub(ro),
            })
        }
    }
}

fn node_part(instance: &Instance, node_id: &str) -> Result<Part, ApiError> {
    let Topology::Sharded {
        config_server,
        shards,
        mongos,
    } = &instance.topology
    else {
        return Err(ApiError::InstanceType {
            detail: "ModifyNodeSpec changes a node of a sharded cluster; change a replica-set \
                     instance with ModifyDBInstanceSpec"
                .into(),
        });
    };
    let scope = RestartScope::Node {
        node_id: node_id.to_string(),
    };
    if let Some(m) = mongos.iter().find(|m| m.node_id == node_id) {
        return Ok(Part {
            scope,
            role: Role::Mongos,
            class: m.class.clone(),
            storage_gb: None,
            readonly_replicas: 0,
            electable_and_hidden: 1,
        });
    }
    let (rs, role) = if config_server.node_id == node_id || config_server.name == node_id {
        (config_server, Role::ConfigServer)
    } else if let Some(s) = shards
        .iter()
        .find(|s| s.node_id == node_id || s.name == node_id)
    {
        (s, Role::Shard)
    } else {
        return Err(ApiError::InvalidNodeId {
            detail: format!("{} is not a node of {}", clip(node_id), instance.id),
        });
    };
    Ok(Part {
        scope: RestartScope::Node {
            node_id: rs.node_id.clone(),
        },
        role,
        class: rs.class.clone(),
        storage_gb: Some(rs.storage_gb),
        readonly_replicas: u32::try_from(rs.readonly_replicas()).unwrap_or(u32::MAX),
        electable_and_hidden: 0,
    })
}

/// The target class and storage of `part`, or the refusal: an unknown class or one of another role,
/// storage on a mongos or smaller than now, nothing to change.
fn target(
    part: &Part,
    class: Option<&str>,
    storage_gb: Option<u32>,
    class_name: &str,
    storage_name: &str,
) -> Result<(String, Option<u32>), ApiError> {
    if let Some(c) = class {
        if classes::lookup(c, part.role).is_none() {
            return Err(ApiError::ClassNotFound {
                param: class_name.to_string(),
            });
        }
    }
    let storage = match (part.storage_gb, storage_gb) {
        (None, Some(_)) => {
            return Err(ApiError::invalid_parameter(
                storage_name,
                "A mongos has no storage of its own.",
            ))
        }
        (Some(now), Some(gb)) if gb < now => {
            return Err(ApiError::invalid_parameter(
                storage_name,
                format!("Storage cannot be decreased: it is {now} GB, {gb} GB was asked."),
            ))
        }
        (now, asked) => asked.or(now),
    };
    let class = class.unwrap_or(&part.class).to_string();
    if class == part.class && storage == part.storage_gb {
        return Err(ApiError::invalid_parameter(
            class_name,
            format!(
                "Nothing to change: the class is already {} and the storage {} GB.",
                part.class,
                part.storage_gb
                    .map_or_else(|| "(none)".to_string(), |g| g.to_string())
            ),
        ));
    }
    Ok((class, storage))
}

async fn plan(
    ctx: &Context,
    instance: Instance,
    part: &Part,
    class: &str,
    storage_gb: Option<u32>,
    deferred: bool,
) -> Result<Planned, ApiError> {
    let mut op = RollingOperation::plan_class_change(
        &instance,
        part.scope.clone(),
        class,
        storage_gb,
        ctx.rolling.clone(),
    )?;
    if deferred {
        op = op.with_maintain_window(instance.maintain_window);
    }
    Ok(Planned { instance, op })
}

/// Records the planned change with the call's `ClientToken` (if any), answering the order number.
async fn accept(
    ctx: &Context,
    planned: Planned,
    deferred: bool,
    call: Call,
) -> Result<serde_json::Value, ApiError> {
    let response = respond(SpecResponse {
        order_id: order_id(),
    })?;
    let idem = call.idempotency.map(|mut i| {
        i.response = response.clone();
        i
    });
    match accept_idempotent(ctx, planned, deferred, idem).await? {
        Accepted::New { .. } => Ok(response),
        Accepted::Replayed { response } => Ok(response),
    }
}

/// `ModifyDBInstanceSpec`.
pub async fn modify_db_instance_spec(
    ctx: Arc<Context>,
    req: InstanceSpecRequest,
    call: Call,
) -> Result<serde_json::Value, ApiError> {
    let instance = load_instance(&ctx, &req.db_instance_id).await?;
    let part = instance_part(&instance)?;
    same_count(
        "ReplicationFactor",
        req.replication_factor,
        part.electable_and_hidden,
    )?;
    same_count(
        "ReadonlyReplicas",
        req.readonly_replicas,
        part.readonly_replicas,
    )?;
    let (class, storage) = target(
        &part,
        req.class.as_deref(),
        req.storage_gb,
        "DBInstanceClass",
        "DBInstanceStorage",
    )?;
    let planned = plan(&ctx, instance, &part, &class, storage, req.deferred).await?;
    accept(&ctx, planned, req.deferred, call).await
}

/// `ModifyNodeSpec`.
pub async fn modify_node_spec(
    ctx: Arc<Context>,
    req: NodeSpecRequest,
    call: Call,
) -> Result<serde_json::Value, ApiError> {
    let instance = load_instance(&ctx, &req.db_instance_id).await?;
    // A retry of a change already accepted answers as the first time: the instance is busy with it
    // now, which would otherwise refuse the retry.
    if let Some(replayed) = call.replayed(&ctx).await? {
        return Ok(replayed);
    }
    let part = node_part(&instance, &req.node_id)?;
    same_count(
        "ReadonlyReplicas",
        req.readonly_replicas,
        part.readonly_replicas,
    )?;
    let (class, storage) = target(
        &part,
        req.class.as_deref(),
        req.storage_gb,
        "NodeClass",
        "NodeStorage",
    )?;
    let planned = plan(&ctx, instance, &part, &class, storage, req.deferred).await?;
    accept(&ctx, planned, req.deferred, call).await
}

/// `DescribeDBInstanceSpecInfo`'s request: `InstanceClass`, any class of the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecInfoRequest {
    pub instance_class: String,
}

impl FromParams for SpecInfoRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        Ok(Self {
            instance_class: required(params, "InstanceClass")?.to_string(),
        })
    }
}

/// `DescribeDBInstanceSpecInfo`: a class's cores and memory (GB) as text, and a description in the
/// vendor's form — `mdb.*` classes are dedicated, `dds.*` general-purpose. An unknown class is
/// `InvalidDBInstanceClass.NotFound` naming `InstanceClass`.
pub async fn describe_db_instance_spec_info(
    _ctx: Arc<Context>,
    req: SpecInfoRequest,
    _call: Call,
) -> Result<serde_json::Value, ApiError> {
    let class = classes::find(&req.instance_class).ok_or_else(|| ApiError::ClassNotFound {
        param: "InstanceClass".into(),
    })?;
    Ok(serde_json::json!({
        "CPU": class.cpu_cores.to_string(),
        "Memory": class.memory_gb.to_string(),
        "Description": class.description(),
    }))
}

#[cfg(test)]
mod tests {
    /// Request parameters, expected code and HTTP status.
    type Refusal<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str, u16);

    use super::*;
    use crate::server::actions::upgrade::test_support::{env, kernels, req, Env};
    use crate::server::plane::DataPlane;
    use crate::server::store::{OperationKind, OperationStatus, Store};
    use dds_engine::build::fixtures;
    use dds_engine::model::DbInstanceStatus;
    use dds_engine::sim::Fault;
    use serde_json::Value;
    use std::collections::BTreeMap;

    async fn call(t: &Env, action: &str, params: &[(&str, &str)]) -> Result<Value, ApiError> {
        crate::server::actions::call(t.ctx.clone(), req(action, params)).await
    }

    /// Restarts by command per process, from the simulation's ground truth.
    async fn restarts(t: &Env, id: &str) -> BTreeMap<String, u32> {
        let truth = t.plane.truth(id).await.unwrap().unwrap();
        truth
            .processes
            .iter()
            .map(|p| (p.node_id.clone(), p.starts_by_command))
            .collect()
    }

    async fn instance(t: &Env, id: &str) -> Instance {
        t.store.get_instance(id).await.unwrap().unwrap()
    }

    #[tokio::test]
    async fn a_replica_set_changes_class_by_one_rolling_restart() {
        let t = env(200.0).await;
        let (_, older) = kernels(&t, "4.4");
        let id = t
            .running_instance(
                "dds-sp1",
                fixtures::replica_set(fixtures::psh("rs", &older)),
                "4.4",
            )
            .await;
        let v = call(
            &t,
            "ModifyDBInstanceSpec",
            &[
                ("DBInstanceId", &id),
                ("DBInstanceClass", "dds.mongo.standard"),
                ("DBInstanceStorage", "30"),
            ],
        )
        .await
        .unwrap();
        assert_eq!(v["OrderId"].as_str().unwrap().len(), 15, "{v}");
        assert_eq!(
            t.status(&id).await,
            DbInstanceStatus::DbInstanceClassChanging
        );
        // Not applied before it succeeded.
        assert_eq!(instance(&t, &id).await.class, "dds.mongo.mid");
        let e = call(
            &t,
            "ModifyDBInstanceSpec",
            &[
                ("DBInstanceId", &id),
                ("DBInstanceClass", "dds.mongo.large"),
            ],
        )
        .await
        .unwrap_err();
        assert_eq!(
            (e.code(), e.status()),
            ("OperationDenied.DBInstanceStatus", 403)
        );
        t.settled(&id, 30_000).await;
        let inst = instance(&t, &id).await;
        assert_eq!(
            (inst.class.as_str(), inst.storage_gb),
            ("dds.mongo.standard", 30)
        );
        let Topology::ReplicaSet { replica_set } = &inst.topology else {
            unreachable!()
        };
        assert_eq!(replica_set.class, "dds.mongo.standard");
        let r = restarts(&t, &id).await;
        assert_eq!(r.len(), 3);
        assert!(r.values().all(|n| *n == 1), "{r:?}");
        let ops = t.store.list_operations(&id, 1).await.unwrap();
        assert_eq!(ops[0].kind, OperationKind::ClassChange);
        assert_eq!(ops[0].status, OperationStatus::Succeeded);
        assert_eq!(
            super::super::operations::recorded_by(&ops[0]),
            "ModifyDBInstanceSpec"
        );
        let attr = call(&t, "DescribeDBInstanceAttribute", &[("DBInstanceId", &id)])
            .await
            .unwrap();
        let a = &attr["DBInstances"]["DBInstance"][0];
        assert_eq!(a["DBInstanceClass"], "dds.mongo.standard", "{a}");
        assert_eq!(a["DBInstanceStorage"], 30, "{a}");
    }

    #[tokio::test]
    async fn a_node_change_restarts_only_that_node_and_a_token_replays() {
        let t = env(200.0).await;
        let (_, older) = kernels(&t, "4.4");
        let id = t
            .running_instance("dds-sp2", fixtures::sharded(2, 2, &older), "4.4")
            .await;
        let params = [
            ("DBInstanceId", id.as_str()),
            ("NodeId", "shard1"),
            ("NodeClass", "dds.shard.standard"),
            ("NodeStorage", "40"),
            ("ClientToken", "tok-1"),
        ];
        let first = call(&t, "ModifyNodeSpec", &params).await.unwrap();
        assert_eq!(
            t.status(&id).await,
            DbInstanceStatus::DbInstanceClassChanging
        );
        // The retry answers the same order while the change runs; the token with other values is refused.
        assert_eq!(call(&t, "ModifyNodeSpec", &params).await.unwrap(), first);
        let mut other = params.to_vec();
        other[3] = ("NodeStorage", "50");
        let e = call(&t, "ModifyNodeSpec", &other).await.unwrap_err();
        assert_eq!(e.code(), "IdempotentParameterMismatch");
        t.settled(&id, 30_000).await;
        assert_eq!(t.store.list_operations(&id, 10).await.unwrap().len(), 2);
        let inst = instance(&t, &id).await;
        let Topology::Sharded { shards, mongos, .. } = &inst.topology else {
            unreachable!()
        };
        assert_eq!(shards[1].class, "dds.shard.standard");
        assert_eq!(shards[1].storage_gb, 40);
        assert_eq!(shards[0].class, "dds.mongo.mid");
        assert_eq!(inst.storage_gb, 20 + 40);
        let in_scope: Vec<String> = shards[1]
            .members
            .iter()
            .map(|m| m.node_id.clone())
            .collect();
        let mongos0 = mongos[0].node_id.clone();
        for (node, n) in restarts(&t, &id).await {
            assert_eq!(n, u32::from(in_scope.contains(&node)), "{node}");
        }
        let ops = t.store.list_operations(&id, 1).await.unwrap();
        assert_eq!(
            super::super::operations::recorded_by(&ops[0]),
            "ModifyNodeSpec"
        );

        // One mongos: only it restarts.
        let before = restarts(&t, &id).await;
        call(
            &t,
            "ModifyNodeSpec",
            &[
                ("DBInstanceId", &id),
                ("NodeId", &mongos0),
                ("NodeClass", "dds.mongos.standard"),
            ],
        )
        .await
        .unwrap();
        t.settled(&id, 30_000).await;
        for (node, n) in restarts(&t, &id).await {
            let expected = before[&node] + u32::from(node == mongos0);
            assert_eq!(n, expected, "{node}");
        }
        let inst = instance(&t, &id).await;
        assert_eq!(inst.topology.mongos()[0].class, "dds.mongos.standard");
        assert_eq!(inst.topology.mongos()[1].class, "dds.mongos.mid");
    }

    #[tokio::test]
    async fn a_failed_change_keeps_the_old_class() {
        let t = env(200.0).await;
        let (_, older) = kernels(&t, "4.4");
        let id = t
            .running_instance(
                "dds-sp3",
                fixtures::replica_set(fixtures::psh("rs", &older)),
                "4.4",
            )
            .await;
        let inst = instance(&t, &id).await;
        let Topology::ReplicaSet { replica_set } = &inst.topology else {
            unreachable!()
        };
        let bad = replica_set.members[1].node_id.clone();
        t.plane
            .arm_fault(
                &id,
                serde_json::to_value(Fault::StuckInState {
                    node_id: bad,
                    state: dds_engine::plane::MemberState::Recovering,
                })
                .unwrap(),
            )
            .await
            .unwrap();
        call(
            &t,
            "ModifyDBInstanceSpec",
            &[
                ("DBInstanceId", &id),
                ("DBInstanceClass", "dds.mongo.large"),
            ],
        )
        .await
        .unwrap();
        t.settled(&id, 60_000).await;
        let ops = t.store.list_operations(&id, 1).await.unwrap();
        assert_eq!(ops[0].status, OperationStatus::Failed);
        let inst = instance(&t, &id).await;
        assert_eq!(inst.class, "dds.mongo.mid");
        assert_eq!(inst.status, DbInstanceStatus::Running);
    }

    #[tokio::test]
    async fn maintain_time_waits_for_the_window_while_running() {
        // Plane time starts at 12:00Z and runs 200x; the window is 16:00Z-17:00Z, 72 s of wall time away.
        let t = env(200.0).await;
        let (_, older) = kernels(&t, "4.4");
        let id = t
            .running_instance(
                "dds-sp7",
                fixtures::replica_set(fixtures::psh("rs", &older)),
                "4.4",
            )
            .await;
        call(
            &t,
            "ModifyDBInstanceMaintainTime",
            &[
                ("DBInstanceId", &id),
                ("MaintainStartTime", "16:00Z"),
                ("MaintainEndTime", "17:00Z"),
            ],
        )
        .await
        .unwrap();
        call(
            &t,
            "ModifyDBInstanceSpec",
            &[
                ("DBInstanceId", &id),
                ("DBInstanceClass", "dds.mongo.large"),
                ("EffectiveTime", "MaintainTime"),
            ],
        )
        .await
        .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(t.status(&id).await, DbInstanceStatus::Running);
        let ops = t.store.list_operations(&id, 1).await.unwrap();
        assert_eq!(ops[0].kind, OperationKind::ClassChange);
        assert!(!ops[0].status.is_finished());
        assert!(restarts(&t, &id).await.values().all(|n| *n == 0));
        assert_eq!(instance(&t, &id).await.class, "dds.mongo.mid");
        // Another change is refused while this one waits.
        let e = call(
            &t,
            "ModifyDBInstanceSpec",
            &[("DBInstanceId", &id), ("DBInstanceStorage", "30")],
        )
        .await
        .unwrap_err();
        assert_eq!(e.code(), "OperationDenied.DBInstanceStatus");
    }

    #[tokio::test]
    async fn refusals_change_nothing() {
        let t = env(200.0).await;
        let (_, older) = kernels(&t, "4.4");
        let rs = t
            .running_instance(
                "dds-sp4",
                fixtures::replica_set(fixtures::psh("rs", &older)),
                "4.4",
            )
            .await;
        let sh = t
            .running_instance("dds-sp5", fixtures::sharded(2, 2, &older), "4.4")
            .await;
        let sa = t
            .running_instance("dds-sp6", fixtures::standalone("sa-0", &older), "4.4")
            .await;
        let i = "DBInstanceId";
        let ds = "ModifyDBInstanceSpec";
        let ns = "ModifyNodeSpec";
        let cases: Vec<Refusal> = vec![
            (
                ds,
                vec![("DBInstanceClass", "dds.mongo.large")],
                "MissingDBInstanceId",
                400,
            ),
            (ds, vec![(i, &rs)], "InvalidParameter", 400),
            (
                ds,
                vec![(i, "dds-nope"), ("DBInstanceClass", "dds.mongo.large")],
                "InvalidDBInstanceId.NotFound",
                404,
            ),
            (
                ds,
                vec![(i, &sh), ("DBInstanceClass", "dds.mongo.large")],
                "OperationDenied.DBInstanceType",
                403,
            ),
            (
                ds,
                vec![(i, &sa), ("DBInstanceClass", "dds.sn2.large.1")],
                "OperationDenied.DBInstanceType",
                403,
            ),
            (
                ds,
                vec![(i, &rs), ("DBInstanceClass", "dds.nope")],
                "InvalidDBInstanceClass.NotFound",
                404,
            ),
            (
                ds,
                vec![(i, &rs), ("DBInstanceClass", "dds.shard.mid")],
                "InvalidDBInstanceClass.NotFound",
                404,
            ),
            (
                ds,
                vec![(i, &rs), ("DBInstanceClass", "dds.mongo.mid")],
                "InvalidParameter",
                400,
            ),
            (
                ds,
                vec![
                    (i, &rs),
                    ("DBInstanceClass", "dds.mongo.mid"),
                    ("DBInstanceStorage", "20"),
                ],
                "InvalidParameter",
                400,
            ),
            (
                ds,
                vec![(i, &rs), ("DBInstanceStorage", "10")],
                "InvalidParameter",
                400,
            ),
            (
                ds,
                vec![(i, &rs), ("DBInstanceStorage", "25")],
                "InvalidParameter",
                400,
            ),
            (
                ds,
                vec![
                    (i, &rs),
                    ("DBInstanceStorage", "30"),
                    ("EffectiveTime", "Later"),
                ],
                "InvalidParameter",
                400,
            ),
            (
                ds,
                vec![
                    (i, &rs),
                    ("DBInstanceStorage", "30"),
                    ("ReplicationFactor", "5"),
                ],
                "InvalidParameter",
                400,
            ),
            (
                ds,
                vec![
                    (i, &rs),
                    ("DBInstanceStorage", "30"),
                    ("TargetZoneId", "cn-hangzhou-i"),
                ],
                "InvalidParameter",
                400,
            ),
            (
                ns,
                vec![(i, &sh), ("NodeClass", "dds.shard.large")],
                "MissingNodeId",
                400,
            ),
            (
                ns,
                vec![(i, &rs), ("NodeId", &rs), ("NodeClass", "dds.shard.large")],
                "OperationDenied.DBInstanceType",
                403,
            ),
            (
                ns,
                vec![
                    (i, &sh),
                    ("NodeId", "d-nope"),
                    ("NodeClass", "dds.shard.large"),
                ],
                "InvalidParameter",
                400,
            ),
            (
                ns,
                vec![
                    (i, &sh),
                    ("NodeId", "shard0"),
                    ("NodeClass", "dds.mongos.large"),
                ],
                "InvalidDBInstanceClass.NotFound",
                404,
            ),
            (
                ns,
                vec![
                    (i, &sh),
                    ("NodeId", "mongos0"),
                    ("NodeClass", "dds.shard.large"),
                ],
                "InvalidDBInstanceClass.NotFound",
                404,
            ),
            (
                ns,
                vec![(i, &sh), ("NodeId", "mongos0"), ("NodeStorage", "30")],
                "InvalidParameter",
                400,
            ),
            (
                ns,
                vec![
                    (i, &sh),
                    ("NodeId", "mongos0"),
                    ("NodeClass", "dds.mongos.mid"),
                ],
                "InvalidParameter",
                400,
            ),
            (
                ns,
                vec![(i, &sh), ("NodeId", "cfg"), ("NodeClass", "dds.shard.mid")],
                "InvalidDBInstanceClass.NotFound",
                404,
            ),
            (
                ns,
                vec![(i, &sh), ("NodeId", "shard0"), ("NodeStorage", "10")],
                "InvalidParameter",
                400,
            ),
        ];
        for (action, params, code, status) in cases {
            let e = call(&t, action, &params).await.unwrap_err();
            assert_eq!(
                (e.code(), e.status()),
                (code, status),
                "{action} {params:?}: {}",
                e.message()
            );
        }
        for id in [&rs, &sh, &sa] {
            assert_eq!(t.status(id).await, DbInstanceStatus::Running);
            assert!(t
                .store
                .list_operations(id, 10)
                .await
                .unwrap()
                .iter()
                .all(|o| o.kind == OperationKind::Create));
        }
        // The config server takes its own class.
        call(
            &t,
            ns,
            &[
                (i, &sh),
                ("NodeId", "cfg"),
                ("NodeClass", "mdb.shard.2x.xlarge.d"),
            ],
        )
        .await
        .unwrap();
        assert_eq!(
            t.status(&sh).await,
            DbInstanceStatus::DbInstanceClassChanging
        );
    }

    #[tokio::test]
    async fn spec_info_of_every_class_and_an_unknown_one() {
        let t = env(50.0).await;
        for c in classes::CLASSES {
            let v = call(
                &t,
                "DescribeDBInstanceSpecInfo",
                &[("InstanceClass", c.code)],
            )
            .await
            .unwrap();
            assert_eq!(v["CPU"], Value::from(c.cpu_cores.to_string()), "{}", c.code);
            assert_eq!(
                v["Memory"],
                Value::from(c.memory_gb.to_string()),
                "{}",
                c.code
            );
            assert!(v["Description"].as_str().unwrap().contains(" GB ("));
        }
        let e = call(
            &t,
            "DescribeDBInstanceSpecInfo",
            &[("InstanceClass", "dds.mongo.huge")],
        )
        .await
        .unwrap_err();
        assert_eq!(
            (e.code(), e.status()),
            ("InvalidDBInstanceClass.NotFound", 404)
        );
        let e = call(&t, "DescribeDBInstanceSpecInfo", &[])
            .await
            .unwrap_err();
        assert_eq!(e.code(), "MissingInstanceClass");
    }
}
