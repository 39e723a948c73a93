//! The parameters of `CreateDBInstance` and `CreateShardingDBInstance` as plain data, with their wire names
//! in the docs. Nothing is checked here: the checks live in `validate`, the building in `instance`.

use crate::model::{ChargeType, Tag};

/// Parameters shared by `CreateDBInstance` and `CreateShardingDBInstance` (wire names in the docs).
/// `None` / empty means "not sent".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateCommon {
    /// `RegionId`.
    pub region_id: String,
    /// `ZoneId`.
    pub zone_id: String,
    /// `Engine`; the vendor accepts only `MongoDB`.
    pub engine: Option<String>,
    /// `EngineVersion`, e.g. `4.4`.
    pub engine_version: String,
    /// `DBInstanceDescription`.
    pub description: Option<String>,
    /// `StorageType`.
    pub storage_type: Option<String>,
    /// `StorageEngine`.
    pub storage_engine: Option<String>,
    /// `ChargeType`.
    pub charge_type: ChargeType,
    /// `NetworkType`.
    pub network_type: Option<String>,
    /// `VpcId`.
    pub vpc_id: Option<String>,
    /// `VSwitchId`.
    pub vswitch_id: Option<String>,
    /// `ResourceGroupId`.
    pub resource_group_id: Option<String>,
    /// `Tag.N.Key` / `Tag.N.Value`, in N order.
    pub tags: Vec<Tag>,
}

impl CreateCommon {
    pub fn new(region_id: &str, zone_id: &str, engine_version: &str) -> Self {
        Self {
            region_id: region_id.to_string(),
            zone_id: zone_id.to_string(),
            engine: None,
            engine_version: engine_version.to_string(),
            description: None,
            storage_type: None,
            storage_engine: None,
            charge_type: ChargeType::PostPaid,
            network_type: None,
            vpc_id: None,
            vswitch_id: None,
            resource_group_id: None,
            tags: Vec::new(),
        }
    }
}

/// `CreateDBInstance`: a replica set, or a standalone with `ReplicationFactor` 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateReplicaSet {
    pub common: CreateCommon,
    /// `DBInstanceClass`.
    pub class: String,
    /// `DBInstanceStorage`, GB.
    pub storage_gb: u32,
    /// `ReplicationFactor` (default 3).
    pub replication_factor: u32,
    /// `ReadonlyReplicas` (default 0).
    pub readonly_replicas: u32,
}

/// `ReplicaSet.N.*` of `CreateShardingDBInstance`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateShard {
    pub class: String,
    pub storage_gb: u32,
    pub readonly_replicas: u32,
}

/// `ConfigServer.N.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateConfigServer {
    pub class: String,
    pub storage_gb: u32,
}

/// `Mongos.N.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateMongos {
    pub class: String,
}

/// `CreateShardingDBInstance`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateSharded {
    pub common: CreateCommon,
    pub shards: Vec<CreateShard>,
    pub config_servers: Vec<CreateConfigServer>,
    pub mongos: Vec<CreateMongos>,
}
