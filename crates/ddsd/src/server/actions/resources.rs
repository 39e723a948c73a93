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
//!
//! `EvaluateResource`: whether what a create (or a class change) asks for fits — checked as the create
//! actions check it, then against the plane's bound on processes (the simulation's configured wire
//! port range; none otherwise).

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

/// The zones of `region`, once `zone` (when given) is one of them.
fn zones_of<'a>(
    ctx: &'a Context,
    region: &str,
    zone: Option<&str>,
) -> Result<Vec<&'a str>, ApiError> {
    let zones = ctx.regions.zones(region).ok_or(ApiError::RegionNotFound)?;
    match zone {
        Some(z) if !zones.contains(&z) => Err(ApiError::ZoneNotFound),
        _ => Ok(zones),
    }
}

/// `DescribeAvailableResource`.
pub async fn describe_available_resource(
    ctx: Arc<Context>,
    req: AvailableResourceRequest,
    _call: Call,
) -> Result<Value, ApiError> {
    let zones = zones_of(&ctx, &req.region_id, req.zone_id.as_deref())?;
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

/// `EvaluateResource`'s request.
#[derive(Debug, Clone, PartialEq)]
pub struct EvaluateRequest {
    pub region_id: String,
    pub zone_id: String,
    pub engine_version: String,
    pub db_instance_id: Option<String>,
    /// A replica set or standalone: its class and member count (members + read-only ones).
    pub replica_set: Option<(String, u32)>,
    /// A sharded cluster (`ShardsInfo`): the processes its parts need.
    pub sharded_processes: Option<u32>,
}

/// Members of each shard and of the config server of a sharded cluster ddsd creates.
const SET_MEMBERS: u32 = 3;
/// Most parts `ShardsInfo` may list (the vendor's cluster limits are far below).
const MAX_SHARDS_INFO_PARTS: usize = 64;

/// `ShardsInfo`: `{"ConfigSvrs": [{"DBInstanceClass", "Storage"}], "Mongos": [{"DBInstanceClass"}],
/// "Shards": [{"DBInstanceClass", "Storage", "ReadonlyReplicas"}]}` — every class must be one of its
/// part's; returns the processes the cluster needs.
fn shards_info(text: &str) -> Result<u32, ApiError> {
    let bad = |why: String| ApiError::invalid_parameter("ShardsInfo", why);
    let v: Value = serde_json::from_str(text).map_err(|e| bad(format!("Not JSON: {e}.")))?;
    let Some(o) = v.as_object() else {
        return Err(bad("Not a JSON object.".into()));
    };
    if let Some(k) = o
        .keys()
        .find(|k| !["ConfigSvrs", "Mongos", "Shards"].contains(&k.as_str()))
    {
        return Err(bad(format!("Unknown key \"{}\".", clip(k))));
    }
    let mut processes = 0u32;
    for (key, role, storage) in [
        ("ConfigSvrs", Role::ConfigServer, true),
        ("Mongos", Role::Mongos, false),
        ("Shards", Role::Shard, true),
    ] {
        let parts = match o.get(key) {
            None => &Vec::new(),
            Some(Value::Array(a)) if a.len() <= MAX_SHARDS_INFO_PARTS => a,
            Some(_) => {
                return Err(bad(format!(
                    "{key} must be a list of at most {MAX_SHARDS_INFO_PARTS} entries."
                )))
            }
        };
        for part in parts {
            let class = part["DBInstanceClass"].as_str().unwrap_or_default();
            if classes::lookup(class, role).is_none() {
                return Err(ApiError::ClassNotFound {
                    param: "ShardsInfo".into(),
                });
            }
            if storage {
                let gb = match &part["Storage"] {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) => s.parse().ok(),
                    _ => None,
                };
                if !gb.is_some_and(|gb| {
                    (u64::from(MIN_STORAGE_GB)..=u64::from(MAX_STORAGE_GB)).contains(&gb)
                        && gb % u64::from(STORAGE_STEP_GB) == 0
                }) {
                    return Err(bad(format!(
                        "Storage of {key} must be {MIN_STORAGE_GB}-{MAX_STORAGE_GB} GB in steps of {STORAGE_STEP_GB}."
                    )));
                }
            }
            let readonly = match &part["ReadonlyReplicas"] {
                Value::Null => 0,
                Value::Number(n) => n
                    .as_u64()
                    .filter(|n| *n <= 5)
                    .ok_or_else(|| bad("ReadonlyReplicas must be 0-5.".into()))?
                    as u32,
                _ => return Err(bad("ReadonlyReplicas must be 0-5.".into())),
            };
            processes += match role {
                Role::Mongos => 1,
                _ => SET_MEMBERS + readonly,
            };
        }
    }
    Ok(processes)
}

impl FromParams for EvaluateRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        let region_id = required(params, "RegionId")?.to_string();
        let zone_id = required(params, "ZoneId")?.to_string();
        let engine_version = required(params, "EngineVersion")?.to_string();
        if let Some(e) = optional(params, "Engine") {
            if e != "MongoDB" {
                return Err(ApiError::invalid_parameter(
                    "Engine",
                    "The value must be MongoDB.",
                ));
            }
        }
        let count = |name: &str, valid: &[u32], default: u32| -> Result<u32, ApiError> {
            match optional(params, name) {
                None => Ok(default),
                Some(v) => v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| valid.contains(n))
                    .ok_or_else(|| {
                        ApiError::invalid_parameter(
                            name,
                            format!("Valid values are {valid:?}, not \"{}\".", clip(v)),
                        )
                    }),
            }
        };
        let sharded_processes = optional(params, "ShardsInfo")
            .map(shards_info)
            .transpose()?;
        let replica_set = match optional(params, "DBInstanceClass") {
            Some(_) if sharded_processes.is_some() => {
                return Err(ApiError::invalid_parameter(
                    "ShardsInfo",
                    "Give DBInstanceClass for a replica set or ShardsInfo for a sharded cluster, not both.",
                ))
            }
            Some(class) => {
                let members = count("ReplicationFactor", &[1, 3, 5, 7], 3)?;
                let readonly = count("ReadonlyReplicas", &[0, 1, 2, 3, 4, 5], 0)?;
                if members == 1 && engine_version != STANDALONE_ENGINE {
                    return Err(ApiError::invalid_parameter(
                        "ReplicationFactor",
                        format!("Standalone instances (ReplicationFactor 1) are only available for EngineVersion {STANDALONE_ENGINE}."),
                    ));
                }
                if members == 1 && readonly > 0 {
                    return Err(ApiError::invalid_parameter(
                        "ReadonlyReplicas",
                        "Read-only nodes are not available for standalone instances.",
                    ));
                }
                if classes::for_replica_set(class, members).is_none() {
                    return Err(ApiError::ClassNotFound {
                        param: "DBInstanceClass".into(),
                    });
                }
                Some((class.to_string(), members + readonly))
            }
            None if sharded_processes.is_none() => {
                return Err(ApiError::missing("DBInstanceClass"));
            }
            None => None,
        };
        if let Some(v) = optional(params, "Storage") {
            let ok = v.parse::<u32>().is_ok_and(|gb| {
                (MIN_STORAGE_GB..=MAX_STORAGE_GB).contains(&gb) && gb % STORAGE_STEP_GB == 0
            });
            if !ok {
                return Err(ApiError::invalid_parameter(
                    "Storage",
                    format!("{MIN_STORAGE_GB}-{MAX_STORAGE_GB} GB in steps of {STORAGE_STEP_GB}."),
                ));
            }
        }
        Ok(Self {
            region_id,
            zone_id,
            engine_version,
            db_instance_id: optional(params, "DBInstanceId").map(str::to_string),
            replica_set,
            sharded_processes,
        })
    }
}

/// `EvaluateResource`: whether a new instance (or a change of `DBInstanceId` onto the given class) fits
/// — `DBInstanceAvailable` `1`, or `0` when the plane's bound on processes (the simulation's configured
/// wire port range) cannot place the processes it needs. A change of an existing instance needs no new
/// processes beyond those it has. Refusals as the create actions': unknown region, zone, engine version
/// or class, bad counts or storage, neither `DBInstanceClass` nor `ShardsInfo`.
pub async fn evaluate_resource(
    ctx: Arc<Context>,
    req: EvaluateRequest,
    _call: Call,
) -> Result<Value, ApiError> {
    zones_of(&ctx, &req.region_id, Some(&req.zone_id))?;
    if !ctx
        .kernels
        .snapshot()
        .engine_versions()
        .any(|v| v == req.engine_version)
    {
        return Err(ApiError::EngineVersionNotFound {
            engine_version: req.engine_version.clone(),
        });
    }
    let wanted = req
        .replica_set
        .as_ref()
        .map(|(_, n)| *n)
        .or(req.sharded_processes)
        .unwrap_or(0);
    let needed = match &req.db_instance_id {
        Some(id) => {
            let instance = super::rolling::load_instance(&ctx, id).await?;
            let t = &instance.topology;
            let have = t
                .replica_sets()
                .iter()
                .map(|rs| rs.members.len())
                .sum::<usize>()
                + t.mongos().len();
            let have = u32::try_from(have).unwrap_or(u32::MAX);
            wanted.saturating_sub(have)
        }
        None => wanted,
    };
    let free = ctx.plane.as_ref().and_then(|p| p.free_process_slots());
    let available = free.is_none_or(|f| f >= needed as usize);
    Ok(json!({
        "DBInstanceAvailable": if available { "1" } else { "0" },
        "Engine": "MongoDB",
        "EngineVersion": req.engine_version,
    }))
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

    #[test]
    fn shards_info_counts_the_processes_and_checks_every_part() {
        let ok = r#"{"ConfigSvrs":[{"Storage":20,"DBInstanceClass":"dds.cs.mid"}],
            "Mongos":[{"DBInstanceClass":"dds.mongos.standard"},{"DBInstanceClass":"dds.mongos.mid"}],
            "Shards":[{"Storage":50,"DBInstanceClass":"dds.shard.standard"},
                      {"Storage":"60","DBInstanceClass":"dds.shard.mid","ReadonlyReplicas":2}]}"#;
        // 3 config servers + 2 mongos + 3 + (3 + 2).
        assert_eq!(shards_info(ok).unwrap(), 13);
        for (bad, code) in [
            ("[]", "InvalidParameter"),
            ("{", "InvalidParameter"),
            (r#"{"Shard":[]}"#, "InvalidParameter"),
            (
                r#"{"Shards":[{"Storage":55,"DBInstanceClass":"dds.shard.mid"}]}"#,
                "InvalidParameter",
            ),
            (
                r#"{"Shards":[{"Storage":50,"DBInstanceClass":"dds.mongos.mid"}]}"#,
                "InvalidDBInstanceClass.NotFound",
            ),
            (
                r#"{"Mongos":[{"DBInstanceClass":"dds.shard.mid"}]}"#,
                "InvalidDBInstanceClass.NotFound",
            ),
            (
                r#"{"Shards":[{"Storage":50,"DBInstanceClass":"dds.shard.mid","ReadonlyReplicas":9}]}"#,
                "InvalidParameter",
            ),
        ] {
            assert_eq!(shards_info(bad).unwrap_err().code(), code, "{bad}");
        }
    }

    #[tokio::test]
    async fn evaluate_checks_as_create_does() {
        let t = env(50.0).await;
        let eval = |params: Vec<(&'static str, &'static str)>| {
            let t = &t;
            async move {
                crate::server::actions::call(t.ctx.clone(), req("EvaluateResource", &params)).await
            }
        };
        let base = vec![
            ("RegionId", "cn-hangzhou"),
            ("ZoneId", "cn-hangzhou-h"),
            ("EngineVersion", "4.4"),
        ];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut p = base.clone();
            p.extend_from_slice(extra);
            p
        };
        // The test plane has no port range: everything valid fits.
        let v = eval(with(&[
            ("DBInstanceClass", "dds.mongo.mid"),
            ("ReplicationFactor", "7"),
        ]))
        .await
        .unwrap();
        assert_eq!(
            v,
            json!({"DBInstanceAvailable": "1", "Engine": "MongoDB", "EngineVersion": "4.4"})
        );
        for (params, code, status) in [
            (with(&[]), "MissingDBInstanceClass", 400),
            (
                with(&[("DBInstanceClass", "dds.shard.mid")]),
                "InvalidDBInstanceClass.NotFound",
                404,
            ),
            (
                with(&[
                    ("DBInstanceClass", "dds.mongo.mid"),
                    ("ReplicationFactor", "4"),
                ]),
                "InvalidParameter",
                400,
            ),
            (
                with(&[("DBInstanceClass", "dds.mongo.mid"), ("Storage", "15")]),
                "InvalidParameter",
                400,
            ),
            (
                with(&[
                    ("DBInstanceClass", "dds.sn2.standard.1"),
                    ("ReplicationFactor", "1"),
                ]),
                "InvalidParameter",
                400,
            ),
            (
                with(&[
                    ("DBInstanceClass", "dds.mongo.mid"),
                    ("DBInstanceId", "dds-bpnothere0000000"),
                ]),
                "InvalidDBInstanceId.NotFound",
                404,
            ),
            (
                vec![
                    ("RegionId", "cn-hangzhou"),
                    ("ZoneId", "cn-hangzhou-zz"),
                    ("EngineVersion", "4.4"),
                    ("DBInstanceClass", "dds.mongo.mid"),
                ],
                "InvalidZoneId.NotFound",
                404,
            ),
            (
                vec![
                    ("RegionId", "cn-hangzhou"),
                    ("ZoneId", "cn-hangzhou-h"),
                    ("EngineVersion", "9.9"),
                    ("DBInstanceClass", "dds.mongo.mid"),
                ],
                "InvalidEngineVersion.NotFound",
                404,
            ),
        ] {
            let e = eval(params.clone()).await.unwrap_err();
            assert_eq!((e.code(), e.status()), (code, status), "{params:?}");
        }
    }
}
