//! `DescribeRoleZoneInfo`: every data-bearing member of a replica-set instance, or of every shard and
//! the config server of a sharded cluster, plus each mongos, with its role now and its zone — what
//! automation reads before and after an upgrade or an HA switch to see who is primary where.
//!
//! Each entry: `InsName` the node the member belongs to (the instance for a replica set, the shard's or
//! config server's node id, the mongos's own), `NodeType` `normal` / `shard` / `configServer` /
//! `mongos`, `RoleId` the member's node id (as `DescribeReplicaSetRole` and `RestartNode` name it),
//! `RoleType` `Primary` or `Secondary` as the deployment reports them now (the first electable member is
//! `Primary` while nothing can be observed), `Hidden` for a hidden or delayed member, `ReadOnly` for a
//! read-only one (the vendor's page lists only the first three; a read-only node has its own role
//! there), `Primary` for a mongos (it serves on its own, as the vendor lists it); `ZoneId` the instance's
//! zone (ddsd places every member in it). Arbiters hold no data and are left out. A standalone is
//! `OperationDenied.DBInstanceType`, as the vendor does not support it.

use std::sync::Arc;

use dds_engine::model::{Instance, MemberKind, ReplicaSetSpec, Topology};
use dds_engine::plane::DeploymentObservation;
use serde_json::{json, Value};

use super::errors::ApiError;
use super::params::InstanceRequest;
use super::rolling::load_instance;
use super::{Call, Context};

fn entry(i: &Instance, ins_name: &str, node_type: &str, role_id: &str, role: &str) -> Value {
    json!({
        "InsName": ins_name,
        "NodeType": node_type,
        "RoleId": role_id,
        "RoleType": role,
        "ZoneId": i.zone_id,
    })
}

/// The members of one replica set with their roles now.
fn members(
    i: &Instance,
    rs: &ReplicaSetSpec,
    ins_name: &str,
    node_type: &str,
    observed: Option<&DeploymentObservation>,
) -> Vec<Value> {
    let observed_set = observed.and_then(|o| o.replica_set(&rs.name));
    // With nothing observed, the member the set was created with as primary is shown as one.
    let assumed = rs
        .members
        .iter()
        .find(|m| m.kind == MemberKind::Electable)
        .map(|m| m.node_id.as_str());
    let primary = match observed_set {
        Some(o) => o.primary.as_deref(),
        None => assumed,
    };
    rs.members
        .iter()
        .filter_map(|m| {
            let role = match m.kind {
                MemberKind::Electable if primary == Some(m.node_id.as_str()) => "Primary",
                MemberKind::Electable => "Secondary",
                MemberKind::Hidden | MemberKind::Delayed => "Hidden",
                MemberKind::ReadOnly => "ReadOnly",
                MemberKind::Arbiter => return None,
            };
            Some(entry(i, ins_name, node_type, &m.node_id, role))
        })
        .collect()
}

/// `DescribeRoleZoneInfo`.
pub async fn describe_role_zone_info(
    ctx: Arc<Context>,
    req: InstanceRequest,
    _call: Call,
) -> Result<Value, ApiError> {
    let instance = load_instance(&ctx, &req.db_instance_id).await?;
    let i = &instance;
    if let Topology::Standalone { .. } = i.topology {
        return Err(ApiError::InstanceType {
            detail: "a standalone instance has no roles to describe".into(),
        });
    }
    let observed = match &ctx.plane {
        Some(plane) => plane.observe(&i.id).await.ok().flatten(),
        None => None,
    };
    let obs = observed.as_ref();
    let zone_info: Vec<Value> = match &i.topology {
        Topology::Standalone { .. } => Vec::new(),
        Topology::ReplicaSet { replica_set } => members(i, replica_set, &i.id, "normal", obs),
        Topology::Sharded {
            config_server,
            shards,
            mongos,
        } => shards
            .iter()
            .flat_map(|s| members(i, s, &s.node_id, "shard", obs))
            .chain(members(
                i,
                config_server,
                &config_server.node_id,
                "configServer",
                obs,
            ))
            .chain(
                mongos
                    .iter()
                    .map(|m| entry(i, &m.node_id, "mongos", &m.node_id, "Primary")),
            )
            .collect(),
    };
    Ok(json!({"ZoneInfos": {"ZoneInfo": zone_info}}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::actions::upgrade::test_support::{env, kernels, req, Env};
    use crate::server::plane::DataPlane;
    use dds_engine::build::fixtures;

    async fn call(t: &Env, id: &str) -> Result<Value, ApiError> {
        crate::server::actions::call(
            t.ctx.clone(),
            req("DescribeRoleZoneInfo", &[("DBInstanceId", id)]),
        )
        .await
    }

    fn primaries(v: &Value) -> Vec<(String, String)> {
        v["ZoneInfos"]["ZoneInfo"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["RoleType"] == "Primary" && e["NodeType"] != "mongos")
            .map(|e| {
                (
                    e["InsName"].as_str().unwrap().to_string(),
                    e["RoleId"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn every_node_with_its_role_now() {
        let t = env(200.0).await;
        let (_, older) = kernels(&t, "4.4");
        let rs = t
            .running_instance(
                "dds-rz1",
                fixtures::replica_set(fixtures::psh("rs", &older)),
                "4.4",
            )
            .await;
        let v = call(&t, &rs).await.unwrap();
        let infos = v["ZoneInfos"]["ZoneInfo"].as_array().unwrap();
        let roles: Vec<&str> = infos
            .iter()
            .map(|e| e["RoleType"].as_str().unwrap())
            .collect();
        assert_eq!(roles.len(), 3, "{v}");
        assert!(
            roles.contains(&"Primary") && roles.contains(&"Secondary") && roles.contains(&"Hidden"),
            "{roles:?}"
        );
        for e in infos {
            assert_eq!(
                (e["InsName"].as_str(), e["NodeType"].as_str()),
                (Some(rs.as_str()), Some("normal"))
            );
            assert!(e["ZoneId"].as_str().is_some_and(|z| !z.is_empty()));
        }
        let obs = t.plane.observe(&rs).await.unwrap().unwrap();
        let primary = obs.replica_set("rs").unwrap().primary.clone().unwrap();
        assert_eq!(primaries(&v), vec![(rs.clone(), primary)]);

        let sharded = t
            .running_instance("dds-rz2", fixtures::sharded(2, 2, &older), "4.4")
            .await;
        let v = call(&t, &sharded).await.unwrap();
        let infos = v["ZoneInfos"]["ZoneInfo"].as_array().unwrap();
        let count = |kind: &str| infos.iter().filter(|e| e["NodeType"] == kind).count();
        assert_eq!(count("mongos"), 2, "{v}");
        assert!(count("shard") >= 4 && count("configServer") >= 2, "{v}");
        // One primary per shard and for the config server, each the one the deployment reports.
        let obs = t.plane.observe(&sharded).await.unwrap().unwrap();
        let mut seen = primaries(&v);
        seen.sort();
        let Topology::Sharded {
            config_server,
            shards,
            ..
        } = &t
            .ctx
            .store
            .get_instance(&sharded)
            .await
            .unwrap()
            .unwrap()
            .topology
        else {
            panic!("sharded")
        };
        let mut want: Vec<(String, String)> = shards
            .iter()
            .chain([config_server])
            .map(|s| {
                let p = obs.replica_set(&s.name).unwrap().primary.clone().unwrap();
                (s.node_id.clone(), p)
            })
            .collect();
        want.sort();
        assert_eq!(seen, want);

        let standalone = t
            .running_instance("dds-rz3", fixtures::standalone("sa-0", &older), "4.4")
            .await;
        let e = call(&t, &standalone).await.unwrap_err();
        assert_eq!(
            (e.code(), e.status()),
            ("OperationDenied.DBInstanceType", 403)
        );
        let e = call(&t, "dds-bpnothere0000000").await.unwrap_err();
        assert_eq!(e.code(), "InvalidDBInstanceId.NotFound");
    }
}
