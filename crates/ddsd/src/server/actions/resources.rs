//! `DescribeAvailableResource`: what may be created where — per architecture (`DbType` `normal` for
//! replica sets and standalones, `sharding`), per zone of the region, per engine version with a kernel
//! in the catalog, the storage engine (`WiredTiger`), per node type, the classes of the class catalog
//! with their storage range. It lists exactly what `CreateDBInstance` / `CreateShardingDBInstance` accept:
//! `NodeType` is the member count for `normal` (`3`, `5`, `7`, and `1` — a standalone — on 4.0 only) and
//! the part of the cluster for `sharding` (`shard`, `configserver`, `mongos`; a mongos has no storage
//! range). Filters: `ZoneId`, `DbType`, `EngineVersion`, `DBInstanceClass`, `ReplicationFactor`;
//! `InstanceChargeType` must be `PrePaid` or `PostPaid` (both are offered); `StorageType` and
//! `ResourceGroupId` do not narrow anything (every class takes every storage type ddsd records).
//! Unknown region `InvalidRegion.NotFound`, unknown zone `InvalidZoneId.NotFound`, other bad values
//! `InvalidParameter`.

use std::sync::Arc;

use dds_engine::build::{MAX_STORAGE_GB, MIN_STORAGE_GB, STORAGE_ENGINE};
use serde_json::{json, Value};

use super::classes::{self, InstanceClass, Role};
use super::errors::ApiError;
use super::params::{clip, optional, required};
use super::{Call, Context, FromParams, Params};

/// Storage is sold in steps of this many GB.
const STORAGE_STEP_GB: u32 = 10;
/// Replica-set member counts `CreateDBInstance` accepts, and the standalone's.
const REPLICATION_FACTORS: [u32; 3] = [3, 5, 7];
const STANDALONE_ENGINE: &str = "4.0";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvailableResourceRequest {
    pub region_id: String,
    pub zone_id: Option<String>,
    /// `normal`, `sharding`, or both.
    pub db_type: Option<String>,
    pub engine_version: Option<String>,
    pub class: Option<String>,
    pub replication_factor: Option<u32>,
}

impl FromParams for AvailableResourceRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        let region_id = required(params, "RegionId")?.to_string();
        let db_type = match optional(params, "DbType") {
            None => None,
            Some(t @ ("normal" | "sharding")) => Some(t.to_string()),
            Some(v) => {
                return Err(ApiError::invalid_parameter(
                    "DbType",
                    format!("Valid values are normal and sharding, not \"{}\".", clip(v)),
                ))
            }
        };
        if let Some(v) = optional(params, "InstanceChargeType") {
            if v != "PrePaid" && v != "PostPaid" {
                return Err(ApiError::invalid_parameter(
                    "InstanceChargeType",
                    format!(
                        "Valid values are PrePaid and PostPaid, not \"{}\".",
                        clip(v)
                    ),
                ));
            }
        }
        let replication_factor = match optional(params, "ReplicationFactor") {
            None => None,
            Some(v) => match v.parse::<u32>() {
                Ok(n) if n == 1 || REPLICATION_FACTORS.contains(&n) => Some(n),
                _ => {
                    return Err(ApiError::invalid_parameter(
                        "ReplicationFactor",
                        format!("Valid values are 1, 3, 5 and 7, not \"{}\".", clip(v)),
                    ))
                }
            },
        };
        Ok(Self {
            region_id,
            zone_id: optional(params, "ZoneId").map(str::to_string),
            db_type,
            engine_version: optional(params, "EngineVersion").map(str::to_string),
            class: optional(params, "DBInstanceClass").map(str::to_string),
            replication_factor,
        })
    }
}

/// One node type with the classes it may use (none left after the class filter: left out).
fn node_type(
    name: &str,
    role: Role,
    with_storage: bool,
    class_filter: Option<&str>,
) -> Option<Value> {
    let resources: Vec<Value> = classes::CLASSES
        .iter()
        .filter(|c| classes::lookup(c.code, role).is_some())
        .filter(|c| class_filter.is_none_or(|f| f == c.code))
        .map(|c| resource(c, with_storage))
        .collect();
    (!resources.is_empty()).then(|| {
        json!({
            "NodeType": name,
            "NetworkTypes": "VPC",
            "AvailableResources": {"AvailableResource": resources},
        })
    })
}

fn resource(c: &InstanceClass, with_storage: bool) -> Value {
    let mut v = json!({
        "InstanceClass": c.code,
        "InstanceClassRemark": format!(
            "{}, at most {} connections",
            c.description(),
            c.max_connections
        ),
    });
    if with_storage {
        v["DBInstanceStorageRange"] =
            json!({"Min": MIN_STORAGE_GB, "Max": MAX_STORAGE_GB, "Step": STORAGE_STEP_GB});
    }
    v
}

/// The node types of one architecture on one engine version.
fn node_types(req: &AvailableResourceRequest, sharding: bool, version: &str) -> Vec<Value> {
    let class = req.class.as_deref();
    if sharding {
        return [
            ("shard", Role::Shard, true),
            ("configserver", Role::ConfigServer, true),
            ("mongos", Role::Mongos, false),
        ]
        .into_iter()
        .filter_map(|(name, role, storage)| node_type(name, role, storage, class))
        .collect();
    }
    let mut factors: Vec<u32> = REPLICATION_FACTORS.to_vec();
    if version == STANDALONE_ENGINE {
        factors.insert(0, 1);
    }
    factors
        .into_iter()
        .filter(|n| req.replication_factor.is_none_or(|f| f == *n))
        .filter_map(|n| {
            let role = if n == 1 {
                Role::Standalone
            } else {
                Role::ReplicaSet
            };
            node_type(&n.to_string(), role, true, class)
        })
        .collect()
}

/// `DescribeAvailableResource`.
pub async fn describe_available_resource(
    ctx: Arc<Context>,
    req: AvailableResourceRequest,
    _call: Call,
) -> Result<Value, ApiError> {
    let zones = ctx
        .regions
        .zones(&req.region_id)
        .ok_or(ApiError::RegionNotFound)?;
    if let Some(z) = &req.zone_id {
        if !zones.contains(&z.as_str()) {
            return Err(ApiError::ZoneNotFound);
        }
    }
    let catalog = ctx.kernels.snapshot();
    let versions: Vec<&str> = catalog
        .engine_versions()
        .filter(|v| req.engine_version.as_deref().is_none_or(|f| f == *v))
        .collect();
    let types: Vec<Value> = [("normal", false), ("sharding", true)]
        .into_iter()
        .filter(|(name, _)| req.db_type.as_deref().is_none_or(|t| t == *name))
        .filter_map(|(name, sharding)| {
            let available: Vec<Value> = zones
                .iter()
                .filter(|z| req.zone_id.as_deref().is_none_or(|f| f == **z))
                .filter_map(|zone| {
                    let engine_versions: Vec<Value> = versions
                        .iter()
                        .filter_map(|v| {
                            let nodes = node_types(&req, sharding, v);
                            (!nodes.is_empty()).then(|| {
                                json!({
                                    "Version": v,
                                    "SupportedEngines": {"SupportedEngine": [{
                                        "Engine": STORAGE_ENGINE,
                                        "SupportedNodeTypes": {"SupportedNodeType": nodes},
                                    }]},
                                })
                            })
                        })
                        .collect();
                    (!engine_versions.is_empty()).then(|| {
                        json!({
                            "RegionId": req.region_id,
                            "ZoneId": zone,
                            "SupportedEngineVersions": {"SupportedEngineVersion": engine_versions},
                        })
                    })
                })
                .collect();
            (!available.is_empty())
                .then(|| json!({"DbType": name, "AvailableZones": {"AvailableZone": available}}))
        })
        .collect();
    Ok(json!({"SupportedDBTypes": {"SupportedDBType": types}}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::actions::upgrade::test_support::{env, req, Env};

    async fn call(t: &Env, params: &[(&str, &str)]) -> Result<Value, ApiError> {
        crate::server::actions::call(t.ctx.clone(), req("DescribeAvailableResource", params)).await
    }

    /// `(DbType, ZoneId, Version, NodeType, InstanceClass)` of every listed resource.
    fn rows(v: &Value) -> Vec<(String, String, String, String, String)> {
        let list = |v: &Value, outer: &str, inner: &str| -> Vec<Value> {
            v[outer][inner].as_array().cloned().unwrap_or_default()
        };
        let s = |v: &Value| v.as_str().unwrap().to_string();
        let mut out = Vec::new();
        for t in list(v, "SupportedDBTypes", "SupportedDBType") {
            for z in list(&t, "AvailableZones", "AvailableZone") {
                for e in list(&z, "SupportedEngineVersions", "SupportedEngineVersion") {
                    for g in list(&e, "SupportedEngines", "SupportedEngine") {
                        assert_eq!(g["Engine"], "WiredTiger");
                        for n in list(&g, "SupportedNodeTypes", "SupportedNodeType") {
                            for r in list(&n, "AvailableResources", "AvailableResource") {
                                out.push((
                                    s(&t["DbType"]),
                                    s(&z["ZoneId"]),
                                    s(&e["Version"]),
                                    s(&n["NodeType"]),
                                    s(&r["InstanceClass"]),
                                ));
                            }
                        }
                    }
                }
            }
        }
        out
    }

    #[tokio::test]
    async fn lists_what_create_accepts_and_filters() {
        let t = env(50.0).await;
        let all = rows(&call(&t, &[("RegionId", "cn-hangzhou")]).await.unwrap());
        // Every listed (NodeType, class) is one the create actions accept.
        for (db_type, _, version, node, class) in &all {
            let role = match (db_type.as_str(), node.as_str()) {
                ("normal", "1") => Role::Standalone,
                ("normal", _) => Role::ReplicaSet,
                (_, "shard") => Role::Shard,
                (_, "configserver") => Role::ConfigServer,
                _ => Role::Mongos,
            };
            assert!(classes::lookup(class, role).is_some(), "{class} as {node}");
            assert!(
                node != "1" || version == STANDALONE_ENGINE,
                "standalone on {version}"
            );
        }
        assert!(all.iter().any(|r| r.0 == "sharding" && r.3 == "mongos"));
        assert!(all.iter().any(|r| r.3 == "1") && all.iter().any(|r| r.3 == "7"));

        let narrowed = rows(
            &call(
                &t,
                &[
                    ("RegionId", "cn-hangzhou"),
                    ("DbType", "normal"),
                    ("EngineVersion", "4.4"),
                    ("ReplicationFactor", "3"),
                    ("DBInstanceClass", "dds.mongo.mid"),
                ],
            )
            .await
            .unwrap(),
        );
        assert!(!narrowed.is_empty());
        assert!(narrowed
            .iter()
            .all(|r| (r.0.as_str(), r.2.as_str(), r.3.as_str(), r.4.as_str())
                == ("normal", "4.4", "3", "dds.mongo.mid")));
        let zone = narrowed[0].1.clone();
        let one_zone = rows(
            &call(&t, &[("RegionId", "cn-hangzhou"), ("ZoneId", &zone)])
                .await
                .unwrap(),
        );
        assert!(one_zone.iter().all(|r| r.1 == zone));
        // A class of another part lists nothing for this one.
        let none = call(
            &t,
            &[
                ("RegionId", "cn-hangzhou"),
                ("DbType", "normal"),
                ("DBInstanceClass", "dds.mongos.mid"),
            ],
        )
        .await
        .unwrap();
        assert_eq!(none, json!({"SupportedDBTypes": {"SupportedDBType": []}}));

        for (params, code, status) in [
            (
                vec![("RegionId", "xx-nowhere")],
                "InvalidRegion.NotFound",
                404,
            ),
            (
                vec![("RegionId", "cn-hangzhou"), ("ZoneId", "cn-hangzhou-zz")],
                "InvalidZoneId.NotFound",
                404,
            ),
            (
                vec![("RegionId", "cn-hangzhou"), ("DbType", "serverless")],
                "InvalidParameter",
                400,
            ),
            (
                vec![("RegionId", "cn-hangzhou"), ("ReplicationFactor", "4")],
                "InvalidParameter",
                400,
            ),
            (
                vec![("RegionId", "cn-hangzhou"), ("InstanceChargeType", "Free")],
                "InvalidParameter",
                400,
            ),
            (vec![], "MissingRegionId", 400),
        ] {
            let e = call(&t, &params).await.unwrap_err();
            assert_eq!((e.code(), e.status()), (code, status), "{params:?}");
        }
    }
}
