//! `DescribeDBInstances` and `DescribeDBInstanceAttribute`: the stored instances in the vendor's
//! response shapes, with the field types of the vendor's SDK models (`DBInstanceStorage`,
//! `MaxConnections`, `Port`, `NodeStorage` and shard `ReadonlyReplicas` are integers;
//! `ReplicationFactor`, `ReadonlyReplicas` of the attribute call, `KindCode`, `ConnectionPort` and
//! `MaxDiskMbps` are strings).
//!
//! Values ddsd derives rather than stores:
//! - `CurrentKernelVersion` of the instance and of each shard / config server replica set is the
//!   oldest kernel any of its processes runs (what bounds its behaviour on a mixed version set);
//!   each mongos reports its own;
//! - node `Status` follows the instance's status (a node is `Creating` while its instance is);
//! - `KindCode` is `3` for a standalone, `0` on local disks, `18` on cloud disks;
//! - `MaxConnections` / `MaxIOPS` / `MaxMBPS` come from the instance class table;
//! - endpoints: where the plane serves MongoDB's wire protocol (the simulation does by default),
//!   the addresses a client really connects to — `ReplicaSets.ReplicaSet[]` has one entry per
//!   member a client may use (not hidden, not delayed, not an arbiter) with its current role
//!   (`Primary`, `Secondary`, `ReadOnly`: roles follow elections), mongos, shards and config
//!   servers have their `host` and `Port`. Without a wire protocol they keep the vendor's naming
//!   (`<node id>.mongodb.rds.aliyuncs.com`, port 3717) and resolve nowhere.
//!
//! `DescribeDBInstances` lists replica sets and standalones for `DBInstanceType=replicate` (the
//! default) and sharded clusters only for `sharding`, newest first, one page of `PageSize` ∈ {30,
//! 50, 100} (default 30); it carries no `CurrentKernelVersion`, like the vendor's.

use std::sync::Arc;

use crate::server::actions::errors::ApiError;
use dds_engine::catalog::Catalog;
use dds_engine::model::{
    ChargeType, DbInstanceStatus, DbInstanceType, Instance, MemberKind, ReplicaSetSpec, Topology,
};
use serde_json::{json, Map, Value};

use super::classes;
use super::errors::from_store;
use super::params::{clip, optional, optional_bool, parse_u32, parse_u32_in, required, tags};
use super::rolling::load_instance;
use super::{Call, Context, FromParams, Params};
use crate::server::plane::Endpoints;
use crate::server::store::{limits, InstanceFilter, Page, TagFilter};
use dds_engine::plane::DeploymentObservation;

/// `PageSize` values the vendor accepts.
pub const PAGE_SIZES: [u32; 3] = [30, 50, 100];
pub const DEFAULT_PAGE_SIZE: u32 = 30;
/// Highest `PageNumber` the vendor accepts (Integer.MAX_VALUE).
const MAX_PAGE_NUMBER: u32 = i32::MAX as u32;
const DOMAIN_SUFFIX: &str = "mongodb.rds.aliyuncs.com";
const PORT: u16 = 3717;

fn endpoint(node_id: &str) -> String {
    format!("{node_id}.{DOMAIN_SUFFIX}")
}

/// Where the deployment's processes really listen, and who is primary now.
pub struct Live {
    pub endpoints: Endpoints,
    pub observation: Option<DeploymentObservation>,
}

impl Live {
    /// The instance's live endpoints, when its plane serves the wire protocol.
    pub async fn of(ctx: &Context, instance_id: &str) -> Option<Live> {
        let plane = ctx.plane.as_ref()?;
        let endpoints = plane.endpoints(instance_id).await.ok().flatten()?;
        let observation = plane.observe(instance_id).await.ok().flatten();
        Some(Live {
            endpoints,
            observation,
        })
    }

    fn port(&self, node_id: &str) -> Option<u16> {
        self.endpoints.ports.get(node_id).copied()
    }

    fn is_primary(&self, rs: &str, node_id: &str) -> bool {
        self.observation
            .as_ref()
            .and_then(|o| o.replica_set(rs))
            .is_some_and(|r| r.primary.as_deref() == Some(node_id))
    }

    /// A replica set's host and the port of its primary (or first member while there is none).
    fn set_port(&self, rs: &ReplicaSetSpec) -> u16 {
        rs.members
            .iter()
            .find(|m| self.is_primary(&rs.name, &m.node_id))
            .or_else(|| rs.members.first())
            .and_then(|m| self.port(&m.node_id))
            .unwrap_or(PORT)
    }

    /// Every member a client may connect to: node id, port, role now.
    fn roles<'a>(&self, rs: &'a ReplicaSetSpec) -> Vec<(&'a str, u16, &'static str)> {
        rs.members
            .iter()
            .filter(|m| matches!(m.kind, MemberKind::Electable | MemberKind::ReadOnly))
            .filter_map(|m| {
                let port = self.port(&m.node_id)?;
                let role = if m.kind == MemberKind::ReadOnly {
                    "ReadOnly"
                } else if self.is_primary(&rs.name, &m.node_id) {
                    "Primary"
                } else {
                    "Secondary"
                };
                Some((m.node_id.as_str(), port, role))
            })
            .collect()
    }

    /// `DescribeDBInstanceAttribute`'s `ReplicaSets.ReplicaSet[]`.
    fn members(&self, i: &Instance, rs: &ReplicaSetSpec) -> Vec<Value> {
        self.roles(rs)
            .into_iter()
            .map(|(_, port, role)| {
                let mut v = replica_set_endpoint(i, &self.endpoints.host, role);
                v["ConnectionDomain"] = json!(self.endpoints.host);
                v["ConnectionPort"] = json!(port.to_string());
                v
            })
            .collect()
    }

    /// `DescribeReplicaSetRole`'s `ReplicaSets.ReplicaSet[]`.
    fn role_entries(&self, i: &Instance, rs: &ReplicaSetSpec) -> Vec<Value> {
        self.roles(rs)
            .into_iter()
            .map(|(node_id, port, role)| role_entry(i, &self.endpoints.host, port, role, node_id))
            .collect()
    }
}

/// `KindCode`: `3` standalone, `0` local disks, `18` cloud disks.
fn kind_code(i: &Instance) -> &'static str {
    if i.is_standalone() {
        "3"
    } else if i.storage_type == "local_ssd" {
        "0"
    } else {
        "18"
    }
}

/// Replica set members that are not read-only (the vendor's `ReplicationFactor`).
fn replication_factor(i: &Instance) -> Option<usize> {
    match &i.topology {
        Topology::Standalone { .. } => Some(1),
        Topology::ReplicaSet { replica_set } => Some(
            replica_set
                .members
                .iter()
                .filter(|m| m.kind != MemberKind::ReadOnly)
                .count(),
        ),
        Topology::Sharded { .. } => None,
    }
}

fn readonly_replicas(i: &Instance) -> Option<usize> {
    match &i.topology {
        Topology::Standalone { .. } => Some(0),
        Topology::ReplicaSet { replica_set } => Some(replica_set.readonly_replicas()),
        Topology::Sharded { .. } => None,
    }
}

/// The oldest kernel among `kernels` by catalog order (unknown kernels count as oldest).
fn oldest<'a>(kernels: impl Iterator<Item = &'a str>, catalog: &Catalog) -> String {
    kernels
        .min_by_key(|k| catalog.ordinal(k))
        .unwrap_or_default()
        .to_string()
}

fn rs_kernel(rs: &ReplicaSetSpec, catalog: &Catalog) -> String {
    oldest(
        rs.members.iter().map(|m| m.kernel_version.as_str()),
        catalog,
    )
}

fn class_limits(code: &str) -> (u32, u32, u32) {
    classes::find(code).map_or((0, 0, 0), |c| (c.max_connections, c.max_iops, c.max_mbps))
}

fn tags_value(i: &Instance) -> Value {
    let list: Vec<Value> = i
        .tags
        .iter()
        .map(|t| json!({"Key": t.key, "Value": t.value}))
        .collect();
    json!({"Tag": list})
}

/// One element of `DescribeDBInstances`' `DBInstances.DBInstance`.
pub fn list_item(i: &Instance) -> Value {
    let mut o = Map::new();
    o.insert("BackupRetentionPolicy".into(), json!(0));
    o.insert("ChargeType".into(), json!(i.charge_type.as_str()));
    o.insert("CreationTime".into(), json!(i.creation_time));
    o.insert("DBInstanceClass".into(), json!(i.class));
    o.insert("DBInstanceDescription".into(), json!(i.description));
    o.insert("DBInstanceId".into(), json!(i.id));
    o.insert("DBInstanceStatus".into(), json!(i.status.as_str()));
    o.insert("DBInstanceStorage".into(), json!(i.storage_gb));
    o.insert("DBInstanceType".into(), json!(i.instance_type().as_str()));
    o.insert("Engine".into(), json!(i.engine));
    o.insert("EngineVersion".into(), json!(i.engine_version));
    o.insert("KindCode".into(), json!(kind_code(i)));
    o.insert("LockMode".into(), json!(i.lock_mode.as_str()));
    if let Topology::Sharded { shards, mongos, .. } = &i.topology {
        let mongos: Vec<Value> = mongos
            .iter()
            .map(|m| json!({"NodeClass": m.class, "NodeDescription": "", "NodeId": m.node_id}))
            .collect();
        o.insert("MongosList".into(), json!({"MongosAttribute": mongos}));
        let shards: Vec<Value> = shards
            .iter()
            .map(|s| {
                json!({
                    "NodeClass": s.class,
                    "NodeDescription": "",
                    "NodeId": s.node_id,
                    "NodeStorage": s.storage_gb,
                    "ReadonlyReplicas": s.readonly_replicas(),
                })
            })
            .collect();
        o.insert("ShardList".into(), json!({"ShardAttribute": shards}));
    }
    o.insert("NetworkType".into(), json!(i.network_type));
    o.insert("RegionId".into(), json!(i.region_id));
    if let Some(rf) = replication_factor(i) {
        o.insert("ReplicationFactor".into(), json!(rf.to_string()));
    }
    o.insert("ResourceGroupId".into(), json!(i.resource_group_id));
    o.insert("StorageType".into(), json!(i.storage_type));
    o.insert("Tags".into(), tags_value(i));
    o.insert("VpcAuthMode".into(), json!("Close"));
    o.insert("ZoneId".into(), json!(i.zone_id));
    Value::Object(o)
}

/// The single element of `DescribeDBInstanceAttribute`'s `DBInstances.DBInstance`.
pub fn attribute(i: &Instance, catalog: &Catalog, live: Option<&Live>) -> Value {
    let status = i.status.as_str();
    let lock = i.lock_mode.as_str();
    let current = i
        .current_kernel_version(|k| catalog.ordinal(k))
        .unwrap_or_default();
    let mut o = Map::new();
    o.insert("AIGatewayEnabled".into(), json!(false));
    o.insert("BurstingEnabled".into(), json!(false));
    o.insert("ChargeType".into(), json!(i.charge_type.as_str()));
    o.insert("ColdDataEnabled".into(), json!(false));
    o.insert("CreationTime".into(), json!(i.creation_time));
    o.insert("CurrentKernelVersion".into(), json!(current));
    o.insert("DBInstanceClass".into(), json!(i.class));
    o.insert("DBInstanceDescription".into(), json!(i.description));
    o.insert("DBInstanceId".into(), json!(i.id));
    o.insert("DBInstanceOrderStatus".into(), json!("all_completed"));
    o.insert("DBInstanceReleaseProtection".into(), json!(false));
    o.insert("DBInstanceStatus".into(), json!(status));
    o.insert("DBInstanceStorage".into(), json!(i.storage_gb));
    o.insert("DBInstanceType".into(), json!(i.instance_type().as_str()));
    o.insert("Encrypted".into(), json!(false));
    o.insert("Engine".into(), json!(i.engine));
    o.insert("EngineVersion".into(), json!(i.engine_version));
    o.insert("KindCode".into(), json!(kind_code(i)));
    o.insert("LockMode".into(), json!(lock));
    o.insert(
        "MaintainEndTime".into(),
        json!(i.maintain_window.end.to_string()),
    );
    o.insert(
        "MaintainStartTime".into(),
        json!(i.maintain_window.start.to_string()),
    );
    let (max_connections, max_iops, max_mbps) = match &i.topology {
        Topology::Sharded { shards, mongos, .. } => (
            mongos.iter().map(|m| class_limits(&m.class).0).sum(),
            shards.iter().map(|s| class_limits(&s.class).1).sum(),
            shards.iter().map(|s| class_limits(&s.class).2).sum(),
        ),
        _ => class_limits(&i.class),
    };
    o.insert("MaxConnections".into(), json!(max_connections));
    o.insert("MaxIOPS".into(), json!(max_iops));
    o.insert("MaxMBPS".into(), json!(max_mbps));
    o.insert("NetworkType".into(), json!(i.network_type));
    if let Some(ro) = readonly_replicas(i) {
        o.insert("ReadonlyReplicas".into(), json!(ro.to_string()));
    }
    o.insert("RegionId".into(), json!(i.region_id));
    match &i.topology {
        Topology::Standalone { member } => {
            let mut set = replica_set_endpoint(i, &i.id, "Primary");
            if let Some(port) = live.and_then(|l| l.port(&member.node_id)) {
                set["ConnectionDomain"] = json!(live.map(|l| l.endpoints.host.clone()));
                set["ConnectionPort"] = json!(port.to_string());
            }
            o.insert("ReplicaSets".into(), json!({"ReplicaSet": [set]}));
        }
        Topology::ReplicaSet { replica_set } if live.is_some() => {
            o.insert("ReplicaSetName".into(), json!(replica_set.name));
            let sets = live.map(|l| l.members(i, replica_set)).unwrap_or_default();
            o.insert("ReplicaSets".into(), json!({"ReplicaSet": sets}));
        }
        Topology::ReplicaSet { replica_set } => {
            o.insert("ReplicaSetName".into(), json!(replica_set.name));
            let mut sets = vec![
                replica_set_endpoint(i, &format!("{}1", i.id), "Primary"),
                replica_set_endpoint(i, &format!("{}2", i.id), "Secondary"),
            ];
            if replica_set.readonly_replicas() > 0 {
                sets.push(replica_set_endpoint(i, &format!("{}-ro", i.id), "ReadOnly"));
            }
            o.insert("ReplicaSets".into(), json!({"ReplicaSet": sets}));
        }
        Topology::Sharded {
            config_server,
            shards,
            mongos,
        } => {
            let cs = config_server;
            let (conns, iops, _) = class_limits(&cs.class);
            let host_of = |node_id: &str| match live {
                Some(l) => l.endpoints.host.clone(),
                None => endpoint(node_id),
            };
            let set_port = |rs: &ReplicaSetSpec| live.map_or(PORT, |l| l.set_port(rs));
            let configservers = vec![json!({
                "ConnectString": host_of(&cs.node_id),
                "CurrentKernelVersion": rs_kernel(cs, catalog),
                "LockMode": lock,
                "MaxConnections": conns,
                "MaxIOPS": iops,
                "NodeClass": cs.class,
                "NodeDescription": "",
                "NodeId": cs.node_id,
                "NodeStorage": cs.storage_gb,
                "Port": set_port(cs),
                "Status": status,
            })];
            o.insert(
                "ConfigserverList".into(),
                json!({"ConfigserverAttribute": configservers}),
            );
            let mongos: Vec<Value> = mongos
                .iter()
                .map(|m| {
                    let (conns, iops, _) = class_limits(&m.class);
                    let port = live.and_then(|l| l.port(&m.node_id)).unwrap_or(PORT);
                    json!({
                        "ConnectSting": host_of(&m.node_id),
                        "ConnectString": host_of(&m.node_id),
                        "CurrentKernelVersion": m.kernel_version,
                        "LockMode": lock,
                        "MaxConnections": conns,
                        "MaxIOPS": iops,
                        "NodeClass": m.class,
                        "NodeDescription": "",
                        "NodeId": m.node_id,
                        "Port": port,
                        "Status": status,
                        "VPCId": i.vpc_id,
                        "VSwitchId": i.vswitch_id,
                        "VpcCloudInstanceId": m.node_id,
                    })
                })
                .collect();
            o.insert("MongosList".into(), json!({"MongosAttribute": mongos}));
            o.insert("ProtocolType".into(), json!("mongodb"));
            let shards: Vec<Value> = shards
                .iter()
                .map(|s| {
                    let (conns, iops, mbps) = class_limits(&s.class);
                    json!({
                        "ConnectString": host_of(&s.node_id),
                        "CurrentKernelVersion": rs_kernel(s, catalog),
                        "LockMode": lock,
                        "MaxConnections": conns,
                        "MaxDiskMbps": mbps.to_string(),
                        "MaxIOPS": iops,
                        "NodeClass": s.class,
                        "NodeDescription": "",
                        "NodeId": s.node_id,
                        "NodeStorage": s.storage_gb,
                        "Port": set_port(s),
                        "ReadonlyReplicas": s.readonly_replicas(),
                        "ReplicaSetName": s.name,
                        "Status": status,
                    })
                })
                .collect();
            o.insert("ShardList".into(), json!({"ShardAttribute": shards}));
        }
    }
    if let Some(rf) = replication_factor(i) {
        o.insert("ReplicationFactor".into(), json!(rf.to_string()));
    }
    o.insert("ResourceGroupId".into(), json!(i.resource_group_id));
    o.insert("StorageEngine".into(), json!(i.storage_engine));
    o.insert("StorageType".into(), json!(i.storage_type));
    o.insert("Tags".into(), tags_value(i));
    o.insert("UseClusterBackup".into(), json!(false));
    o.insert("VPCCloudInstanceIds".into(), json!(i.id));
    o.insert("VPCId".into(), json!(i.vpc_id));
    o.insert("VSwitchId".into(), json!(i.vswitch_id));
    o.insert("VpcAuthMode".into(), json!("Close"));
    o.insert("ZoneId".into(), json!(i.zone_id));
    Value::Object(o)
}

fn replica_set_endpoint(i: &Instance, host: &str, role: &str) -> Value {
    json!({
        "ConnectionDomain": endpoint(host),
        "ConnectionPort": PORT.to_string(),
        "NetworkType": i.network_type,
        "ReplicaSetRole": role,
        "VPCCloudInstanceId": i.id,
        "VPCId": i.vpc_id,
        "VSwitchId": i.vswitch_id,
    })
}

/// `DescribeDBInstanceAttribute`: `DBInstanceId`, `Engine` (MongoDB only), `IsDelete`.
#[derive(Debug, Clone)]
pub struct AttributeRequest {
    pub db_instance_id: String,
}

impl FromParams for AttributeRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        let db_instance_id = required(params, "DBInstanceId")?.to_string();
        if let Some(engine) = optional(params, "Engine") {
            if engine != "MongoDB" {
                return Err(ApiError::invalid_parameter(
                    "Engine",
                    "The value must be MongoDB.",
                ));
            }
        }
        // Released instances are removed, not kept in a recycle bin: there is nothing to show for
        // IsDelete=true.
        if optional_bool(params, "IsDelete")? == Some(true) {
            return Err(ApiError::InstanceNotFound);
        }
        Ok(Self { db_instance_id })
    }
}

/// `DescribeDBInstanceAttribute`.
pub async fn describe_db_instance_attribute(
    ctx: Arc<Context>,
    req: AttributeRequest,
    _call: Call,
) -> Result<Value, ApiError> {
    let instance = load_instance(&ctx, &req.db_instance_id).await?;
    let catalog = ctx.kernels.snapshot();
    let live = Live::of(&ctx, &instance.id).await;
    let mut a = attribute(&instance, &catalog, live.as_ref());
    a["DBInstanceReleaseProtection"] =
        json!(super::attributes::release_protected(&ctx, &instance.id).await?);
    Ok(json!({"DBInstances": {"DBInstance": [a]}}))
}

/// One `DescribeReplicaSetRole` entry, in the SDK model's fields.
fn role_entry(i: &Instance, host: &str, port: u16, role: &str, node_id: &str) -> Value {
    json!({
        "ConnectionDomain": host,
        "ConnectionPort": port.to_string(),
        "ConnectionType": "vpc",
        "NetworkType": i.network_type,
        "ReplicaSetRole": role,
        "RoleId": node_id,
    })
}

/// `DescribeReplicaSetRole`: every member a client may connect to with its role now (roles follow
/// elections), `RoleId` being the member's node id. A sharded cluster has no instance-level
/// replica set; it answers an empty list, as the vendor's does.
pub async fn describe_replica_set_role(
    ctx: Arc<Context>,
    req: super::params::InstanceRequest,
    _call: Call,
) -> Result<Value, ApiError> {
    let instance = load_instance(&ctx, &req.db_instance_id).await?;
    let live = Live::of(&ctx, &instance.id).await;
    let i = &instance;
    let sets: Vec<Value> = match (&i.topology, &live) {
        (Topology::ReplicaSet { replica_set }, Some(l)) => l.role_entries(i, replica_set),
        (Topology::ReplicaSet { replica_set }, None) => replica_set
            .members
            .iter()
            .filter(|m| m.kind == MemberKind::Electable)
            .take(2)
            .zip(["Primary", "Secondary"])
            .map(|(m, role)| role_entry(i, &endpoint(&m.node_id), PORT, role, &m.node_id))
            .collect(),
        (Topology::Standalone { member }, l) => {
            let (host, port) = match l.as_ref().and_then(|l| l.port(&member.node_id)) {
                Some(port) => (l.as_ref().map(|l| l.endpoints.host.clone()), port),
                None => (None, PORT),
            };
            let host = host.unwrap_or_else(|| endpoint(&i.id));
            vec![role_entry(i, &host, port, "Primary", &member.node_id)]
        }
        (Topology::Sharded { .. }, _) => Vec::new(),
    };
    Ok(json!({"DBInstanceId": instance.id, "ReplicaSets": {"ReplicaSet": sets}}))
}

/// `DescribeShardingNetworkAddress`'s request: `DBInstanceId`, `NodeId` (a mongos, shard or config
/// server), `NetworkType` (`VPC`, `Classic`, `Public`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardingAddressRequest {
    pub db_instance_id: String,
    pub node_id: Option<String>,
    /// `None` for VPC (or unset): ddsd's only network; `Some` for a type it has no address on.
    pub other_network: Option<String>,
}

impl FromParams for ShardingAddressRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        let db_instance_id = required(params, "DBInstanceId")?.to_string();
        let node_id = string_filter(params, "NodeId")?;
        let other_network = match optional(params, "NetworkType") {
            None | Some("VPC") => None,
            Some(t @ ("Classic" | "Public")) => Some(t.to_string()),
            Some(v) => {
                return Err(ApiError::invalid_parameter(
                    "NetworkType",
                    format!(
                        "Valid values are VPC, Classic and Public, not \"{}\".",
                        clip(v)
                    ),
                ))
            }
        };
        Ok(Self {
            db_instance_id,
            node_id,
            other_network,
        })
    }
}

/// `DescribeShardingNetworkAddress`: the VPC addresses of a sharded cluster — every mongos, or with
/// `NodeId` one mongos, or the members a client may connect to of one shard or the config server
/// (`Role` `Primary`/`Secondary` now, `ReadOnly`). The addresses are where the processes listen when
/// the plane serves the wire protocol (`IPAddress` then set), else the vendor-style names on port
/// 3717. ddsd has no classic-network or public addresses: asking for one lists none. Not a sharded
/// cluster: `OperationDenied.DBInstanceType`; a `NodeId` not of this instance: `InvalidParameter`.
pub async fn describe_sharding_network_address(
    ctx: Arc<Context>,
    req: ShardingAddressRequest,
    _call: Call,
) -> Result<Value, ApiError> {
    let instance = load_instance(&ctx, &req.db_instance_id).await?;
    let i = &instance;
    let Topology::Sharded {
        config_server,
        shards,
        mongos,
    } = &i.topology
    else {
        return Err(ApiError::InstanceType {
            detail: "only a sharded cluster has sharding network addresses".into(),
        });
    };
    let set = match req.node_id.as_deref() {
        None => None,
        Some(n) if mongos.iter().any(|m| m.node_id == n) => None,
        Some(n) if config_server.node_id == n => Some((config_server, "configserver")),
        Some(n) => match shards.iter().find(|s| s.node_id == n) {
            Some(s) => Some((s, "shard")),
            None => {
                return Err(ApiError::invalid_parameter(
                    "NodeId",
                    format!("The instance has no node \"{}\".", clip(n)),
                ))
            }
        },
    };
    let live = Live::of(&ctx, &i.id).await;
    let address = |node_id: &str, owner: &str, node_type: &str, role: Option<&str>| {
        let (host, port) = match &live {
            Some(l) => (l.endpoints.host.clone(), l.port(node_id).unwrap_or(PORT)),
            None => (endpoint(node_id), PORT),
        };
        let ip = host
            .parse::<std::net::IpAddr>()
            .map_or_else(|_| String::new(), |ip| ip.to_string());
        let mut v = json!({
            "NodeId": owner,
            "NodeType": node_type,
            "NetworkAddress": host,
            "Port": port.to_string(),
            "IPAddress": ip,
            "NetworkType": "VPC",
            "VPCId": i.vpc_id,
            "VswitchId": i.vswitch_id,
            "ExpiredTime": "",
        });
        if let Some(r) = role {
            v["Role"] = json!(r);
        }
        v
    };
    let addresses: Vec<Value> = if req.other_network.is_some() {
        Vec::new()
    } else if let Some((rs, node_type)) = set {
        match &live {
            Some(l) => l
                .roles(rs)
                .into_iter()
                .map(|(member, _, role)| address(member, &rs.node_id, node_type, Some(role)))
                .collect(),
            None => vec![address(&rs.node_id, &rs.node_id, node_type, None)],
        }
    } else {
        mongos
            .iter()
            .filter(|m| req.node_id.as_deref().is_none_or(|n| n == m.node_id))
            .map(|m| address(&m.node_id, &m.node_id, "mongos", None))
            .collect()
    };
    Ok(json!({
        "NetworkAddresses": {"NetworkAddress": addresses},
        "CompatibleConnections": {"CompatibleConnection": []},
    }))
}

/// What `DescribeDBInstances` was asked for.
enum Query {
    /// Nothing can match (a serverless listing, expired instances, an endpoint ddsd never issued).
    Nothing,
    Filter(Box<InstanceFilter>),
}

fn string_filter(params: &Params, name: &str) -> Result<Option<String>, ApiError> {
    match optional(params, name) {
        Some(v) if v.len() > limits::MAX_FIELD_LEN => Err(ApiError::invalid_parameter(
            name,
            format!("At most {} characters.", limits::MAX_FIELD_LEN),
        )),
        v => Ok(v.map(str::to_string)),
    }
}

/// `yyyy-MM-ddTHH:mm:ssZ` or `yyyy-MM-ddTHH:mmZ`.
fn valid_expire_time(s: &str) -> bool {
    let with_seconds =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    let without = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]Z");
    time::PrimitiveDateTime::parse(s, with_seconds).is_ok()
        || time::PrimitiveDateTime::parse(s, without).is_ok()
}

fn parse_query(ctx: &Context, params: &Params) -> Result<Query, ApiError> {
    let mut nothing = false;
    let instance_type = match optional(params, "DBInstanceType") {
        None | Some("replicate") => DbInstanceType::Replicate,
        Some("sharding") => DbInstanceType::Sharding,
        Some("serverless") => {
            nothing = true;
            DbInstanceType::Replicate
        }
        Some(v) => {
            return Err(ApiError::invalid_parameter(
                "DBInstanceType",
                format!(
                    "Valid values are replicate, sharding and serverless, not \"{}\".",
                    clip(v)
                ),
            ))
        }
    };
    let region_id = string_filter(params, "RegionId")?;
    if let Some(r) = &region_id {
        if !ctx.regions.contains(r) {
            return Err(ApiError::RegionNotFound);
        }
    }
    let mut ids: Vec<String> = match optional(params, "DBInstanceId") {
        None => Vec::new(),
        Some(v) => {
            let ids: Vec<String> = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            if ids.len() > limits::MAX_FILTER_IDS
                || ids.iter().any(|id| id.len() > limits::MAX_ID_LEN)
            {
                return Err(ApiError::invalid_parameter(
                    "DBInstanceId",
                    format!(
                        "At most {} comma-separated instance ids.",
                        limits::MAX_FILTER_IDS
                    ),
                ));
            }
            ids
        }
    };
    if let Some(domain) = string_filter(params, "ConnectionDomain")? {
        // ddsd's replica set endpoints are `<DBInstanceId><n>.mongodb.rds.aliyuncs.com`.
        let host = domain.split('.').next().unwrap_or("");
        let owner = host
            .strip_prefix("dds-")
            .filter(|rest| rest.len() >= 16 && rest.is_ascii())
            .map(|rest| format!("dds-{}", &rest[..16]));
        match owner {
            Some(id) if ids.is_empty() || ids.contains(&id) => ids = vec![id],
            _ => nothing = true,
        }
    }
    let status = match optional(params, "DBInstanceStatus") {
        None => None,
        Some(v) => Some(
            v.parse::<DbInstanceStatus>()
                .map_err(|_| ApiError::StatusNotFound)?,
        ),
    };
    let charge_type = match optional(params, "ChargeType") {
        None => None,
        Some(v) => Some(v.parse::<ChargeType>().map_err(|_| {
            ApiError::invalid_parameter("ChargeType", "Valid values are PostPaid and PrePaid.")
        })?),
    };
    let replication_factor = match optional(params, "ReplicationFactor") {
        None => None,
        Some(v) => {
            let n = parse_u32("ReplicationFactor", v, 7)?;
            if ![1, 3, 5, 7].contains(&n) {
                return Err(ApiError::invalid_parameter(
                    "ReplicationFactor",
                    "Valid values are 1, 3, 5 and 7.",
                ));
            }
            Some(n)
        }
    };
    if let Some(v) = optional(params, "DBNodeType") {
        if !["customized", "standard", "default"].contains(&v) {
            return Err(ApiError::invalid_parameter(
                "DBNodeType",
                "Valid values are customized, standard and default.",
            ));
        }
    }
    // ddsd bills nothing, so no instance ever expires.
    if optional_bool(params, "Expired")? == Some(true) {
        nothing = true;
    }
    if let Some(v) = optional(params, "ExpireTime") {
        if !valid_expire_time(v) {
            return Err(ApiError::invalid_parameter(
                "ExpireTime",
                "Use yyyy-MM-ddTHH:mm:ssZ (UTC).",
            ));
        }
        nothing = true;
    }
    let tags = tags(params, limits::MAX_TAGS)?
        .into_iter()
        .map(|(key, value)| TagFilter { key, value })
        .collect();
    if nothing {
        return Ok(Query::Nothing);
    }
    Ok(Query::Filter(Box::new(InstanceFilter {
        instance_type,
        region_id,
        ids,
        status,
        engine: string_filter(params, "Engine")?,
        engine_version: string_filter(params, "EngineVersion")?,
        class: string_filter(params, "DBInstanceClass")?,
        description: string_filter(params, "DBInstanceDescription")?,
        charge_type,
        zone_id: string_filter(params, "ZoneId")?,
        vpc_id: string_filter(params, "VpcId")?,
        vswitch_id: string_filter(params, "VSwitchId")?,
        network_type: string_filter(params, "NetworkType")?,
        resource_group_id: string_filter(params, "ResourceGroupId")?,
        replication_factor,
        tags,
    })))
}

/// `PageNumber` (default 1) and `PageSize` (30 default, 50, 100).
fn parse_page(params: &Params) -> Result<(u32, u32), ApiError> {
    let number = match optional(params, "PageNumber") {
        None => 1,
        Some(v) => parse_u32_in("PageNumber", v, 1, MAX_PAGE_NUMBER)?,
    };
    let size = match optional(params, "PageSize") {
        None => DEFAULT_PAGE_SIZE,
        Some(v) => {
            let n = v.parse::<u32>().ok().filter(|n| PAGE_SIZES.contains(n));
            n.ok_or_else(|| {
                ApiError::invalid_parameter(
                    "PageSize",
                    format!("Valid values are 30, 50 and 100, not \"{}\".", clip(v)),
                )
            })?
        }
    };
    Ok((number, size))
}

/// `DescribeDBInstances`: the page (`PageNumber`, `PageSize`) and the filters. The filters are checked
/// against the region catalog, so the handler reads them (`parse_query`) before the store is asked.
#[derive(Debug, Clone)]
pub struct DescribeInstancesRequest {
    pub page_number: u32,
    pub page_size: u32,
    params: Params,
}

impl FromParams for DescribeInstancesRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        let (page_number, page_size) = parse_page(params)?;
        Ok(Self {
            page_number,
            page_size,
            params: params.clone(),
        })
    }
}

/// `DescribeDBInstances`.
pub async fn describe_db_instances(
    ctx: Arc<Context>,
    req: DescribeInstancesRequest,
    _call: Call,
) -> Result<Value, ApiError> {
    let (number, size) = (req.page_number, req.page_size);
    let query = parse_query(&ctx, &req.params)?;
    let (items, total): (Vec<Value>, u64) = match query {
        Query::Nothing => (Vec::new(), 0),
        Query::Filter(filter) => {
            if number > limits::MAX_PAGE_NUMBER {
                // Far past any fleet's last page: empty, but the count is still right.
                let page = Page::new(1, 1).map_err(from_store)?;
                let p = ctx
                    .store
                    .list_instances(&filter, page)
                    .await
                    .map_err(from_store)?;
                (Vec::new(), p.total)
            } else {
                let page = Page::new(number, size).map_err(from_store)?;
                let p = ctx
                    .store
                    .list_instances(&filter, page)
                    .await
                    .map_err(from_store)?;
                (p.instances.iter().map(list_item).collect(), p.total)
            }
        }
    };
    Ok(json!({
        "DBInstances": {"DBInstance": items},
        "PageNumber": number,
        "PageSize": size,
        "TotalCount": total,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::actions::upgrade::test_support::{env, kernels, req, Env};
    use dds_engine::build::fixtures;

    async fn addresses(t: &Env, params: &[(&str, &str)]) -> Result<Value, ApiError> {
        crate::server::actions::call(t.ctx.clone(), req("DescribeShardingNetworkAddress", params))
            .await
    }

    fn node_ids(v: &Value) -> Vec<(String, String)> {
        v["NetworkAddresses"]["NetworkAddress"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["NodeId"].as_str().unwrap().to_string(),
                    a["NodeType"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn sharding_addresses_per_node_and_refusals() {
        let t = env(200.0).await;
        let (_, older) = kernels(&t, "4.4");
        let id = t
            .running_instance("dds-na1", fixtures::sharded(2, 2, &older), "4.4")
            .await;
        let instance = t.ctx.store.get_instance(&id).await.unwrap().unwrap();
        let Topology::Sharded {
            config_server,
            shards,
            mongos,
        } = &instance.topology
        else {
            panic!("sharded")
        };
        let all = addresses(&t, &[("DBInstanceId", &id)]).await.unwrap();
        let want: Vec<(String, String)> = mongos
            .iter()
            .map(|m| (m.node_id.clone(), "mongos".to_string()))
            .collect();
        assert_eq!(node_ids(&all), want);
        let first = &all["NetworkAddresses"]["NetworkAddress"][0];
        assert_eq!(first["NetworkType"], "VPC");
        assert_eq!(first["VPCId"], json!(instance.vpc_id));
        assert!(first["Port"].as_str().unwrap().parse::<u16>().is_ok());

        let one = addresses(&t, &[("DBInstanceId", &id), ("NodeId", &mongos[1].node_id)])
            .await
            .unwrap();
        assert_eq!(node_ids(&one), want[1..].to_vec());
        let shard = addresses(&t, &[("DBInstanceId", &id), ("NodeId", &shards[0].node_id)])
            .await
            .unwrap();
        assert!(node_ids(&shard)
            .iter()
            .all(|(n, k)| n == &shards[0].node_id && k == "shard"));
        let cs = addresses(
            &t,
            &[("DBInstanceId", &id), ("NodeId", &config_server.node_id)],
        )
        .await
        .unwrap();
        assert!(node_ids(&cs)
            .iter()
            .all(|(n, k)| n == &config_server.node_id && k == "configserver"));
        let public = addresses(&t, &[("DBInstanceId", &id), ("NetworkType", "Public")])
            .await
            .unwrap();
        assert!(node_ids(&public).is_empty());

        let refused = |params: Vec<(&'static str, String)>, code: &'static str, status: u16| {
            let t = &t;
            async move {
                let p: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let e = addresses(t, &p).await.unwrap_err();
                assert_eq!((e.code(), e.status()), (code, status), "{params:?}");
            }
        };
        refused(
            vec![("DBInstanceId", id.clone()), ("NodeId", "d-nothere".into())],
            "InvalidParameter",
            400,
        )
        .await;
        refused(
            vec![
                ("DBInstanceId", id.clone()),
                ("NetworkType", "Internet".into()),
            ],
            "InvalidParameter",
            400,
        )
        .await;
        refused(vec![], "MissingDBInstanceId", 400).await;
        let rs = t
            .running_instance(
                "dds-na2",
                fixtures::replica_set(fixtures::psh("rs", &older)),
                "4.4",
            )
            .await;
        refused(
            vec![("DBInstanceId", rs)],
            "OperationDenied.DBInstanceType",
            403,
        )
        .await;
    }
}
