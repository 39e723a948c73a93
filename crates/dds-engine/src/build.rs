//! Building instances: validated `CreateDBInstance` / `CreateShardingDBInstance` parameters become an
//! [`Instance`] with a [`Topology`] and vendor-style ids, plus ready-made topologies for tests.
//!
//! Ids look like the vendor's: an instance is `dds-` + a two-letter region code (`bp` for cn-hangzhou, as the
//! vendor does) + 14 lowercase alphanumerics; a shard is `d-…`, a config server replica set `cs-…`, a mongos
//! `s-…`; a mongod member is `<replica set node id>-<index>`. The random part comes from a caller-provided
//! [`IdSource`] (any seeded `rand` RNG is one), so the engine stays free of global randomness.
//!
//! Member layout, as the vendor deploys it:
//! - `ReplicationFactor` 3: primary, secondary (both electable) and one hidden member (priority 0, votes 1).
//! - 5 / 7: one primary, three / five secondaries, one hidden member — the vendor keeps exactly one hidden
//!   node and adds electable secondaries, which keeps the number of voters odd.
//! - `ReadonlyReplicas` 0–5 read-only members on top (priority 0, votes 0).
//! - `ReplicationFactor` 1 is a standalone (only for engine 4.0, as at the vendor).
//!
//! Every electable member gets priority 1, so no member takes over after an upgrade; the
//! [`fixtures::with_higher_priority`] set exists to exercise that case.
//!
//! Sharded clusters: 2–32 shards (each a three-member set plus its `ReadonlyReplicas`), exactly one
//! config server replica set of three members (the vendor's `ConfigServer.1`), 2–32 mongos.

use crate::catalog::Catalog;
use crate::model::{
    ChargeType, DbInstanceStatus, Instance, LockMode, MaintainWindow, MemberKind, MemberSpec,
    MongosSpec, ReplicaSetKind, ReplicaSetSpec, Tag, Topology,
};

pub const MIN_SHARDS: usize = 2;
pub const MAX_SHARDS: usize = 32;
pub const MIN_MONGOS: usize = 2;
pub const MAX_MONGOS: usize = 32;
pub const MAX_READONLY_REPLICAS: u32 = 5;
pub const MIN_STORAGE_GB: u32 = 10;
pub const MAX_STORAGE_GB: u32 = 16_000;
pub const MAX_TAGS: usize = 20;
pub const MAX_DESCRIPTION_CHARS: usize = 256;
pub const MAX_CLASS_LEN: usize = 64;
/// Members of a shard or config server replica set (the vendor's fixed three-member layout).
pub const SHARD_MEMBERS: u32 = 3;

pub const STORAGE_TYPES: &[&str] = &[
    "cloud_essd1",
    "cloud_essd2",
    "cloud_essd3",
    "cloud_auto",
    "local_ssd",
    "cloud_essd_dbfs_s",
];
pub const DEFAULT_STORAGE_TYPE: &str = "cloud_essd1";
pub const STORAGE_ENGINE: &str = "WiredTiger";
pub const NETWORK_TYPE: &str = "VPC";
pub const ENGINE: &str = "MongoDB";

/// Source of the random part of ids. Any `rand` RNG is one; tests may use a counter.
pub trait IdSource {
    /// `len` characters from `[0-9a-z]`.
    fn alphanumeric(&mut self, len: usize) -> String;
}

impl<R: rand::RngCore + ?Sized> IdSource for R {
    fn alphanumeric(&mut self, len: usize) -> String {
        const CHARS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        (0..len)
            .map(|_| CHARS[(self.next_u32() % CHARS.len() as u32) as usize] as char)
            .collect()
    }
}

/// The two-letter code in the vendor's ids for a region (`bp` for cn-hangzhou). Regions without a known
/// letter-only code get two letters derived from the region id, stable across runs.
pub fn region_code(region_id: &str) -> String {
    let known = match region_id {
        "cn-hangzhou" => Some("bp"),
        "cn-shanghai" => Some("uf"),
        "cn-shenzhen" => Some("wz"),
        "eu-central-1" => Some("gw"),
        "us-west-1" => Some("rj"),
        _ => None,
    };
    if let Some(code) = known {
        return code.to_string();
    }
    // FNV-1a, so the code does not depend on the process or the Rust version.
    let h = region_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let a = (b'a' + (h % 26) as u8) as char;
    let b = (b'a' + ((h / 26) % 26) as u8) as char;
    format!("{a}{b}")
}

fn node_id(prefix: &str, region_id: &str, ids: &mut dyn IdSource) -> String {
    format!(
        "{prefix}-{}{}",
        region_code(region_id),
        ids.alphanumeric(14)
    )
}

/// `DBInstanceId`, e.g. `dds-bp1a2b3c4d5e6f7g`.
pub fn instance_id(region_id: &str, ids: &mut dyn IdSource) -> String {
    node_id("dds", region_id, ids)
}
/// A shard's `NodeId`, `d-…`.
pub fn shard_id(region_id: &str, ids: &mut dyn IdSource) -> String {
    node_id("d", region_id, ids)
}
/// The config server replica set's `NodeId`, `cs-…`.
pub fn config_server_id(region_id: &str, ids: &mut dyn IdSource) -> String {
    node_id("cs", region_id, ids)
}
/// A mongos `NodeId`, `s-…`.
pub fn mongos_id(region_id: &str, ids: &mut dyn IdSource) -> String {
    node_id("s", region_id, ids)
}
/// A mongod member of a replica set: `<replica set node id>-<index>`.
pub fn member_id(replica_set_node_id: &str, index: usize) -> String {
    format!("{replica_set_node_id}-{index}")
}

/// Members of a replica set in `rs.conf()` order, laid out as the vendor does (see the module docs).
/// `replication_factor` is the number of voting members (3, 5 or 7; anything else is treated as 3 voters
/// of which the last is hidden — callers validate first).
pub fn replica_set_members(
    replica_set_node_id: &str,
    replication_factor: u32,
    readonly_replicas: u32,
    kernel_version: &str,
) -> Vec<MemberSpec> {
    let voters = replication_factor.max(3) as usize;
    let mut members = Vec::with_capacity(voters + readonly_replicas as usize);
    for i in 0..voters {
        let kind = if i + 1 == voters {
            MemberKind::Hidden
        } else {
            MemberKind::Electable
        };
        members.push(MemberSpec {
            node_id: member_id(replica_set_node_id, i),
            kind,
            priority: u8::from(kind == MemberKind::Electable),
            delay_secs: 0,
            kernel_version: kernel_version.to_string(),
        });
    }
    for i in voters..voters + readonly_replicas as usize {
        members.push(MemberSpec {
            node_id: member_id(replica_set_node_id, i),
            kind: MemberKind::ReadOnly,
            priority: 0,
            delay_secs: 0,
            kernel_version: kernel_version.to_string(),
        });
    }
    members
}

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

/// Why create parameters were refused. [`BuildError::parameter`] names the wire parameter so a handler can
/// answer with the vendor's `InvalidParameter`-style error (or a more specific code it maps to).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("Engine {0:?} is not supported; the value must be MongoDB")]
    InvalidEngine(String),
    #[error("EngineVersion {0:?} is not supported")]
    UnsupportedEngineVersion(String),
    #[error("standalone instances (ReplicationFactor 1) are only available for EngineVersion 4.0, not {0}")]
    StandaloneNotSupported(String),
    #[error("ReplicationFactor {0} is not supported; valid values are 1, 3, 5 and 7")]
    InvalidReplicationFactor(u32),
    #[error("{param} {value} is out of range; valid values are 0 to 5")]
    InvalidReadonlyReplicas { param: String, value: u32 },
    #[error("read-only nodes are not available for standalone instances")]
    ReadonlyReplicasOnStandalone,
    #[error("{param} is not a valid instance class")]
    InvalidClass { param: String },
    #[error("{param} {value} is not valid; storage is 10 to 16000 GB in steps of 10")]
    InvalidStorage { param: String, value: u32 },
    #[error("a sharded cluster has 2 to 32 shards (ReplicaSet.N), not {0}")]
    InvalidShardCount(usize),
    #[error("a sharded cluster has 2 to 32 mongos (Mongos.N), not {0}")]
    InvalidMongosCount(usize),
    #[error("a sharded cluster has exactly one config server (ConfigServer.1), not {0}")]
    InvalidConfigServerCount(usize),
    #[error("DBInstanceDescription must be 2 to 256 characters, start with a letter and not start with http:// or https://")]
    InvalidDescription,
    #[error("StorageEngine {0:?} is not supported; the value must be WiredTiger")]
    InvalidStorageEngine(String),
    #[error("StorageType {0:?} is not supported")]
    InvalidStorageType(String),
    #[error("NetworkType {0:?} is not supported; the value must be VPC")]
    InvalidNetworkType(String),
    #[error("Tag.{index} is not valid: keys are 1 to 128 characters, values up to 128, neither may start with aliyun, acs:, http:// or https://")]
    InvalidTag { index: usize },
    #[error("at most 20 tags are allowed, not {0}")]
    TooManyTags(usize),
    #[error("{param} is not valid")]
    InvalidId { param: String },
}

impl BuildError {
    /// The wire parameter at fault, e.g. `ReplicaSet.3.Storage`.
    pub fn parameter(&self) -> String {
        match self {
            BuildError::InvalidEngine(_) => "Engine".into(),
            BuildError::UnsupportedEngineVersion(_) => "EngineVersion".into(),
            BuildError::StandaloneNotSupported(_) | BuildError::InvalidReplicationFactor(_) => {
                "ReplicationFactor".into()
            }
            BuildError::InvalidReadonlyReplicas { param, .. }
            | BuildError::InvalidClass { param }
            | BuildError::InvalidStorage { param, .. }
            | BuildError::InvalidId { param } => param.clone(),
            BuildError::ReadonlyReplicasOnStandalone => "ReadonlyReplicas".into(),
            BuildError::InvalidShardCount(_) => "ReplicaSet".into(),
            BuildError::InvalidMongosCount(_) => "Mongos".into(),
            BuildError::InvalidConfigServerCount(_) => "ConfigServer".into(),
            BuildError::InvalidDescription => "DBInstanceDescription".into(),
            BuildError::InvalidStorageEngine(_) => "StorageEngine".into(),
            BuildError::InvalidStorageType(_) => "StorageType".into(),
            BuildError::InvalidNetworkType(_) => "NetworkType".into(),
            BuildError::InvalidTag { index } => format!("Tag.{index}.Key"),
            BuildError::TooManyTags(_) => "Tag".into(),
        }
    }
}

/// Client strings echoed in errors are cut short.
fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

fn check_class(param: String, class: &str) -> Result<(), BuildError> {
    let ok = !class.is_empty()
        && class.len() <= MAX_CLASS_LEN
        && class.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_' || b == b'-'
        });
    ok.then_some(()).ok_or(BuildError::InvalidClass { param })
}

fn check_storage(param: String, gb: u32) -> Result<(), BuildError> {
    let ok = (MIN_STORAGE_GB..=MAX_STORAGE_GB).contains(&gb) && gb.is_multiple_of(10);
    ok.then_some(())
        .ok_or(BuildError::InvalidStorage { param, value: gb })
}

fn check_readonly(param: String, n: u32) -> Result<(), BuildError> {
    (n <= MAX_READONLY_REPLICAS)
        .then_some(())
        .ok_or(BuildError::InvalidReadonlyReplicas { param, value: n })
}

fn reserved_prefix(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    ["aliyun", "acs:", "http://", "https://"]
        .iter()
        .any(|p| lower.starts_with(p))
}

/// Ids the client passes through (`VpcId`, `VSwitchId`, `ResourceGroupId`): short, no spaces or controls.
fn check_passthrough_id(param: &str, v: &Option<String>) -> Result<String, BuildError> {
    let v = v.as_deref().unwrap_or("");
    let ok = v.len() <= 128
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    ok.then(|| v.to_string()).ok_or(BuildError::InvalidId {
        param: param.to_string(),
    })
}

/// Checks the common parameters; returns the newest kernel of the engine version.
fn check_common(c: &CreateCommon, catalog: &Catalog) -> Result<String, BuildError> {
    if let Some(engine) = &c.engine {
        if engine != ENGINE {
            return Err(BuildError::InvalidEngine(clip(engine)));
        }
    }
    let kernel = catalog
        .newest(&c.engine_version)
        .ok_or_else(|| BuildError::UnsupportedEngineVersion(clip(&c.engine_version)))?
        .kernel_version
        .clone();
    if let Some(d) = &c.description {
        let n = d.chars().count();
        let ok = (2..=MAX_DESCRIPTION_CHARS).contains(&n)
            && d.chars().next().is_some_and(char::is_alphabetic)
            && !d.chars().any(char::is_control)
            && !reserved_prefix(d);
        if !ok {
            return Err(BuildError::InvalidDescription);
        }
    }
    if let Some(t) = &c.storage_type {
        if !STORAGE_TYPES.contains(&t.as_str()) {
            return Err(BuildError::InvalidStorageType(clip(t)));
        }
    }
    if let Some(e) = &c.storage_engine {
        if e != STORAGE_ENGINE {
            return Err(BuildError::InvalidStorageEngine(clip(e)));
        }
    }
    if let Some(n) = &c.network_type {
        if n != NETWORK_TYPE {
            return Err(BuildError::InvalidNetworkType(clip(n)));
        }
    }
    if c.tags.len() > MAX_TAGS {
        return Err(BuildError::TooManyTags(c.tags.len()));
    }
    for (i, tag) in c.tags.iter().enumerate() {
        let key_len = tag.key.chars().count();
        let ok = (1..=128).contains(&key_len)
            && tag.value.chars().count() <= 128
            && !reserved_prefix(&tag.key)
            && !reserved_prefix(&tag.value)
            && !tag
                .key
                .chars()
                .chain(tag.value.chars())
                .any(char::is_control);
        if !ok {
            return Err(BuildError::InvalidTag { index: i + 1 });
        }
    }
    check_passthrough_id("VpcId", &c.vpc_id)?;
    check_passthrough_id("VSwitchId", &c.vswitch_id)?;
    check_passthrough_id("ResourceGroupId", &c.resource_group_id)?;
    Ok(kernel)
}

fn instance_shell(
    c: &CreateCommon,
    id: String,
    creation_time: &str,
    topology: Topology,
) -> Instance {
    Instance {
        id,
        description: c.description.clone().unwrap_or_default(),
        region_id: c.region_id.clone(),
        zone_id: c.zone_id.clone(),
        engine: ENGINE.to_string(),
        engine_version: c.engine_version.clone(),
        class: String::new(),
        storage_gb: 0,
        storage_type: c
            .storage_type
            .clone()
            .unwrap_or_else(|| DEFAULT_STORAGE_TYPE.to_string()),
        storage_engine: STORAGE_ENGINE.to_string(),
        charge_type: c.charge_type,
        network_type: NETWORK_TYPE.to_string(),
        vpc_id: c.vpc_id.clone().unwrap_or_default(),
        vswitch_id: c.vswitch_id.clone().unwrap_or_default(),
        resource_group_id: c.resource_group_id.clone().unwrap_or_default(),
        status: DbInstanceStatus::Creating,
        lock_mode: LockMode::Unlock,
        maintain_window: MaintainWindow::default(),
        creation_time: creation_time.to_string(),
        tags: c.tags.clone(),
        topology,
    }
}

/// Validates `CreateDBInstance` parameters (nothing is generated on error).
pub fn validate_replica_set(p: &CreateReplicaSet, catalog: &Catalog) -> Result<String, BuildError> {
    let kernel = check_common(&p.common, catalog)?;
    match p.replication_factor {
        1 => {
            if p.common.engine_version != "4.0" {
                return Err(BuildError::StandaloneNotSupported(clip(
                    &p.common.engine_version,
                )));
            }
            if p.readonly_replicas != 0 {
                return Err(BuildError::ReadonlyReplicasOnStandalone);
            }
        }
        3 | 5 | 7 => check_readonly("ReadonlyReplicas".into(), p.readonly_replicas)?,
        n => return Err(BuildError::InvalidReplicationFactor(n)),
    }
    check_class("DBInstanceClass".into(), &p.class)?;
    check_storage("DBInstanceStorage".into(), p.storage_gb)?;
    Ok(kernel)
}

/// Builds the instance `CreateDBInstance` describes, in status `Creating`, every process on the engine
/// version's newest kernel. `creation_time` is `yyyy-MM-ddTHH:mm:ssZ` from the caller's clock.
pub fn build_replica_set_instance(
    p: &CreateReplicaSet,
    catalog: &Catalog,
    creation_time: &str,
    ids: &mut dyn IdSource,
) -> Result<Instance, BuildError> {
    let kernel = validate_replica_set(p, catalog)?;
    let id = instance_id(&p.common.region_id, ids);
    let topology = if p.replication_factor == 1 {
        Topology::Standalone {
            member: MemberSpec {
                node_id: member_id(&id, 0),
                kind: MemberKind::Electable,
                priority: 1,
                delay_secs: 0,
                kernel_version: kernel,
            },
        }
    } else {
        Topology::ReplicaSet {
            replica_set: ReplicaSetSpec {
                name: format!("mgset-{}", digits(ids, 8)),
                node_id: id.clone(),
                kind: ReplicaSetKind::Instance,
                class: p.class.clone(),
                storage_gb: p.storage_gb,
                members: replica_set_members(
                    &id,
                    p.replication_factor,
                    p.readonly_replicas,
                    &kernel,
                ),
            },
        }
    };
    let mut instance = instance_shell(&p.common, id, creation_time, topology);
    instance.class = p.class.clone();
    instance.storage_gb = p.storage_gb;
    Ok(instance)
}

/// Validates `CreateShardingDBInstance` parameters (nothing is generated on error).
pub fn validate_sharded(p: &CreateSharded, catalog: &Catalog) -> Result<String, BuildError> {
    let kernel = check_common(&p.common, catalog)?;
    if !(MIN_SHARDS..=MAX_SHARDS).contains(&p.shards.len()) {
        return Err(BuildError::InvalidShardCount(p.shards.len()));
    }
    if p.config_servers.len() != 1 {
        return Err(BuildError::InvalidConfigServerCount(p.config_servers.len()));
    }
    if !(MIN_MONGOS..=MAX_MONGOS).contains(&p.mongos.len()) {
        return Err(BuildError::InvalidMongosCount(p.mongos.len()));
    }
    for (i, s) in p.shards.iter().enumerate() {
        let n = i + 1;
        check_class(format!("ReplicaSet.{n}.Class"), &s.class)?;
        check_storage(format!("ReplicaSet.{n}.Storage"), s.storage_gb)?;
        check_readonly(
            format!("ReplicaSet.{n}.ReadonlyReplicas"),
            s.readonly_replicas,
        )?;
    }
    for (i, c) in p.config_servers.iter().enumerate() {
        check_class(format!("ConfigServer.{}.Class", i + 1), &c.class)?;
        check_storage(format!("ConfigServer.{}.Storage", i + 1), c.storage_gb)?;
    }
    for (i, m) in p.mongos.iter().enumerate() {
        check_class(format!("Mongos.{}.Class", i + 1), &m.class)?;
    }
    Ok(kernel)
}

/// Builds the sharded cluster `CreateShardingDBInstance` describes, in status `Creating`. The instance-level
/// `DBInstanceClass` is empty (each node carries its class) and `DBInstanceStorage` is the shards' total.
pub fn build_sharded_instance(
    p: &CreateSharded,
    catalog: &Catalog,
    creation_time: &str,
    ids: &mut dyn IdSource,
) -> Result<Instance, BuildError> {
    let kernel = validate_sharded(p, catalog)?;
    let region = &p.common.region_id;
    let id = instance_id(region, ids);
    let mut taken = std::collections::BTreeSet::new();
    // 36^14 ids make a clash within one instance absurdly unlikely, but a weak id source must not produce
    // two nodes with the same id.
    let mut unique = |make: &dyn Fn(&mut dyn IdSource) -> String, ids: &mut dyn IdSource| loop {
        let candidate = make(ids);
        if taken.insert(candidate.clone()) {
            break candidate;
        }
    };
    let cs_spec = &p.config_servers[0];
    let cs_id = unique(&|ids| config_server_id(region, ids), ids);
    let config_server = ReplicaSetSpec {
        name: cs_id.clone(),
        node_id: cs_id.clone(),
        kind: ReplicaSetKind::ConfigServer,
        class: cs_spec.class.clone(),
        storage_gb: cs_spec.storage_gb,
        members: replica_set_members(&cs_id, SHARD_MEMBERS, 0, &kernel),
    };
    let shards = p
        .shards
        .iter()
        .map(|s| {
            let sid = unique(&|ids| shard_id(region, ids), ids);
            ReplicaSetSpec {
                name: sid.clone(),
                node_id: sid.clone(),
                kind: ReplicaSetKind::Shard,
                class: s.class.clone(),
                storage_gb: s.storage_gb,
                members: replica_set_members(&sid, SHARD_MEMBERS, s.readonly_replicas, &kernel),
            }
        })
        .collect::<Vec<_>>();
    let mongos = p
        .mongos
        .iter()
        .map(|m| MongosSpec {
            node_id: unique(&|ids| mongos_id(region, ids), ids),
            class: m.class.clone(),
            kernel_version: kernel.clone(),
        })
        .collect();
    let storage_gb = shards.iter().map(|s| s.storage_gb).sum();
    let topology = Topology::Sharded {
        config_server,
        shards,
        mongos,
    };
    let mut instance = instance_shell(&p.common, id, creation_time, topology);
    instance.storage_gb = storage_gb;
    Ok(instance)
}

fn digits(ids: &mut dyn IdSource, len: usize) -> String {
    // Map the alphanumeric source onto digits so one id source serves every id shape.
    ids.alphanumeric(len)
        .bytes()
        .map(|b| (b'0' + (b % 10)) as char)
        .collect()
}

/// Topologies for tests and simulations, with short readable ids (`rs0-0`, `shard1-2`, `mongos0`).
/// Every electable member has priority 1 unless the builder says otherwise; member 0 is the primary a
/// fresh simulated fleet elects.
pub mod fixtures {
    use super::*;

    pub fn member(node_id: &str, kind: MemberKind, priority: u8, kernel: &str) -> MemberSpec {
        MemberSpec {
            node_id: node_id.to_string(),
            kind,
            priority: if kind.electable() { priority } else { 0 },
            delay_secs: 0,
            kernel_version: kernel.to_string(),
        }
    }

    fn set(name: &str, kind: ReplicaSetKind, members: Vec<MemberSpec>) -> ReplicaSetSpec {
        ReplicaSetSpec {
            name: name.to_string(),
            node_id: name.to_string(),
            kind,
            class: "dds.mongo.mid".to_string(),
            storage_gb: 20,
            members,
        }
    }

    fn layout(name: &str, kernel: &str, kinds: &[MemberKind]) -> ReplicaSetSpec {
        let members = kinds
            .iter()
            .enumerate()
            .map(|(i, &k)| member(&member_id(name, i), k, 1, kernel))
            .collect();
        set(name, ReplicaSetKind::Instance, members)
    }

    use MemberKind::{Arbiter, Electable as E, Hidden};

    /// Primary + two electable secondaries.
    pub fn pss(name: &str, kernel: &str) -> ReplicaSetSpec {
        layout(name, kernel, &[E, E, E])
    }
    /// The vendor's three-member set: primary, secondary, hidden.
    pub fn psh(name: &str, kernel: &str) -> ReplicaSetSpec {
        layout(name, kernel, &[E, E, Hidden])
    }
    /// Primary, secondary, arbiter.
    pub fn psa(name: &str, kernel: &str) -> ReplicaSetSpec {
        layout(name, kernel, &[E, E, Arbiter])
    }
    /// The vendor's five-member layout: four electable, one hidden.
    pub fn five_members(name: &str, kernel: &str) -> ReplicaSetSpec {
        layout(name, kernel, &[E, E, E, E, Hidden])
    }
    /// The vendor's seven-member layout: six electable, one hidden.
    pub fn seven_members(name: &str, kernel: &str) -> ReplicaSetSpec {
        layout(name, kernel, &[E, E, E, E, E, E, Hidden])
    }
    /// PSS plus a delayed member (hidden, priority 0, votes) lagging by `delay_secs`.
    pub fn with_delayed(name: &str, kernel: &str, delay_secs: u32) -> ReplicaSetSpec {
        let mut rs = layout(name, kernel, &[E, E, E, MemberKind::Delayed]);
        rs.members[3].delay_secs = delay_secs;
        rs
    }
    /// PSS whose first member (the initial primary) has priority 2: after it is stepped down and restarted
    /// it takes the primary role back once caught up — a second election.
    pub fn with_higher_priority(name: &str, kernel: &str) -> ReplicaSetSpec {
        let mut rs = pss(name, kernel);
        rs.members[0].priority = 2;
        rs
    }
    /// The vendor's three-member set plus `readonly` read-only members.
    pub fn with_readonly(name: &str, kernel: &str, readonly: u32) -> ReplicaSetSpec {
        set(
            name,
            ReplicaSetKind::Instance,
            replica_set_members(name, 3, readonly, kernel),
        )
    }

    pub fn replica_set(rs: ReplicaSetSpec) -> Topology {
        Topology::ReplicaSet { replica_set: rs }
    }

    pub fn standalone(node_id: &str, kernel: &str) -> Topology {
        Topology::Standalone {
            member: member(node_id, E, 1, kernel),
        }
    }

    /// Config servers `cfg` (PSH), shards `shard0…` (PSH each), mongos `mongos0…`.
    pub fn sharded(shards: usize, mongos: usize, kernel: &str) -> Topology {
        let psh_of = |name: &str, kind| {
            let mut rs = psh(name, kernel);
            rs.kind = kind;
            rs
        };
        Topology::Sharded {
            config_server: psh_of("cfg", ReplicaSetKind::ConfigServer),
            shards: (0..shards)
                .map(|i| psh_of(&format!("shard{i}"), ReplicaSetKind::Shard))
                .collect(),
            mongos: (0..mongos)
                .map(|i| MongosSpec {
                    node_id: format!("mongos{i}"),
                    class: "dds.mongos.mid".to_string(),
                    kernel_version: kernel.to_string(),
                })
                .collect(),
        }
    }

    /// A `Running` instance around `topology`, in cn-hangzhou.
    pub fn instance(id: &str, engine_version: &str, topology: Topology) -> Instance {
        let c = CreateCommon::new("cn-hangzhou", "cn-hangzhou-h", engine_version);
        let mut i = instance_shell(&c, id.to_string(), "2026-01-01T00:00:00Z", topology);
        if let Some(rs) = i.topology.replica_sets().first() {
            i.class = rs.class.clone();
            i.storage_gb = rs.storage_gb;
        }
        i.status = DbInstanceStatus::Running;
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    fn rs_params(engine: &str, rf: u32, ro: u32) -> CreateReplicaSet {
        CreateReplicaSet {
            common: CreateCommon::new("cn-hangzhou", "cn-hangzhou-h", engine),
            class: "dds.mongo.mid".into(),
            storage_gb: 20,
            replication_factor: rf,
            readonly_replicas: ro,
        }
    }

    fn sharded_params(shards: usize, mongos: usize) -> CreateSharded {
        CreateSharded {
            common: CreateCommon::new("cn-hangzhou", "cn-hangzhou-h", "4.4"),
            shards: (0..shards)
                .map(|i| CreateShard {
                    class: "mdb.shard.2x.xlarge.d".into(),
                    storage_gb: 20 + 10 * i as u32,
                    readonly_replicas: (i % 2) as u32,
                })
                .collect(),
            config_servers: vec![CreateConfigServer {
                class: "mdb.shard.2x.xlarge.d".into(),
                storage_gb: 20,
            }],
            mongos: (0..mongos)
                .map(|_| CreateMongos {
                    class: "mdb.shard.2x.xlarge.d".into(),
                })
                .collect(),
        }
    }

    fn is_vendor_id(id: &str, prefix: &str) -> bool {
        id.strip_prefix(prefix)
            .and_then(|r| r.strip_prefix("bp"))
            .is_some_and(|r| {
                r.len() == 14
                    && r.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            })
    }

    #[test]
    fn replica_set_layouts_match_the_vendor() {
        let catalog = Catalog::embedded();
        let newest = catalog.newest("4.4").unwrap().kernel_version.clone();
        for (rf, ro, electable) in [(3, 0, 2), (5, 2, 4), (7, 5, 6)] {
            let i = build_replica_set_instance(
                &rs_params("4.4", rf, ro),
                &catalog,
                "2026-11-26T05:00:00Z",
                &mut SmallRng::seed_from_u64(7),
            )
            .unwrap();
            assert!(is_vendor_id(&i.id, "dds-"), "{}", i.id);
            assert_eq!(i.status, DbInstanceStatus::Creating);
            let Topology::ReplicaSet { replica_set: rs } = &i.topology else {
                panic!("not a replica set")
            };
            assert_eq!(rs.node_id, i.id);
            assert_eq!(rs.voting_members(), rf as usize);
            assert_eq!(rs.readonly_replicas(), ro as usize);
            let kinds: Vec<_> = rs.members.iter().map(|m| m.kind).collect();
            assert_eq!(
                kinds
                    .iter()
                    .filter(|k| **k == MemberKind::Electable)
                    .count(),
                electable
            );
            assert_eq!(kinds[rf as usize - 1], MemberKind::Hidden);
            for (n, m) in rs.members.iter().enumerate() {
                assert_eq!(m.node_id, format!("{}-{n}", i.id));
                assert_eq!(m.kernel_version, newest);
                assert_eq!(m.priority > 0, m.kind == MemberKind::Electable);
            }
            assert!(rs.name.starts_with("mgset-"));
        }
    }

    #[test]
    fn standalone_only_on_4_0() {
        let catalog = Catalog::embedded();
        let ids = &mut SmallRng::seed_from_u64(1);
        let i = build_replica_set_instance(&rs_params("4.0", 1, 0), &catalog, "t", ids).unwrap();
        assert!(i.is_standalone());
        assert_eq!(
            build_replica_set_instance(&rs_params("4.4", 1, 0), &catalog, "t", ids),
            Err(BuildError::StandaloneNotSupported("4.4".into()))
        );
        assert_eq!(
            build_replica_set_instance(&rs_params("4.0", 1, 1), &catalog, "t", ids),
            Err(BuildError::ReadonlyReplicasOnStandalone)
        );
    }

    #[test]
    fn ids_are_deterministic_per_seed_and_differ_between_seeds() {
        let catalog = Catalog::embedded();
        let build = |seed| {
            build_sharded_instance(
                &sharded_params(3, 2),
                &catalog,
                "t",
                &mut SmallRng::seed_from_u64(seed),
            )
            .unwrap()
        };
        assert_eq!(build(5), build(5));
        assert_ne!(build(5).id, build(6).id);
    }

    #[test]
    fn sharded_cluster_layout() {
        let catalog = Catalog::embedded();
        let i = build_sharded_instance(
            &sharded_params(3, 4),
            &catalog,
            "t",
            &mut SmallRng::seed_from_u64(3),
        )
        .unwrap();
        let Topology::Sharded {
            config_server,
            shards,
            mongos,
        } = &i.topology
        else {
            panic!("not sharded")
        };
        assert!(is_vendor_id(&config_server.node_id, "cs-"));
        assert_eq!(config_server.members.len(), 3);
        assert_eq!(config_server.kind, ReplicaSetKind::ConfigServer);
        assert_eq!(shards.len(), 3);
        for (n, s) in shards.iter().enumerate() {
            assert!(is_vendor_id(&s.node_id, "d-"), "{}", s.node_id);
            assert_eq!(s.voting_members(), 3);
            assert_eq!(s.readonly_replicas(), n % 2);
            assert_eq!(s.members[0].node_id, format!("{}-0", s.node_id));
        }
        assert_eq!(mongos.len(), 4);
        assert!(mongos.iter().all(|m| is_vendor_id(&m.node_id, "s-")));
        assert_eq!(i.storage_gb, 20 + 30 + 40);
        assert_eq!(i.instance_type(), crate::model::DbInstanceType::Sharding);
        // Every process id is unique.
        let mut all: Vec<&str> = i
            .topology
            .replica_sets()
            .iter()
            .flat_map(|rs| rs.members.iter().map(|m| m.node_id.as_str()))
            .chain(mongos.iter().map(|m| m.node_id.as_str()))
            .collect();
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n);
    }

    /// An id source that keeps repeating itself must still yield distinct node ids.
    #[test]
    fn a_repeating_id_source_cannot_produce_duplicate_nodes() {
        struct Repeats(u32);
        impl IdSource for Repeats {
            fn alphanumeric(&mut self, len: usize) -> String {
                self.0 += 1;
                // The same value twice in a row, then the next.
                let v = self.0 / 2;
                format!("{v:0>len$}")
            }
        }
        let i = build_sharded_instance(
            &sharded_params(4, 4),
            &Catalog::embedded(),
            "t",
            &mut Repeats(0),
        )
        .unwrap();
        let Topology::Sharded { shards, mongos, .. } = &i.topology else {
            panic!()
        };
        let mut ids: Vec<_> = shards
            .iter()
            .map(|s| &s.node_id)
            .chain(mongos.iter().map(|m| &m.node_id))
            .collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 8);
    }

    #[test]
    fn invalid_parameters_are_typed_and_name_the_parameter() {
        let catalog = Catalog::embedded();
        let ids = &mut SmallRng::seed_from_u64(1);
        let rs_err = |p: CreateReplicaSet| {
            build_replica_set_instance(
                &p,
                &Catalog::embedded(),
                "t",
                &mut SmallRng::seed_from_u64(1),
            )
            .unwrap_err()
        };
        let e = rs_err(rs_params("3.4", 3, 0));
        assert_eq!(e, BuildError::UnsupportedEngineVersion("3.4".into()));
        assert_eq!(e.parameter(), "EngineVersion");
        assert_eq!(
            rs_err(rs_params("4.4", 4, 0)).parameter(),
            "ReplicationFactor"
        );
        assert_eq!(
            rs_err(rs_params("4.4", 0, 0)),
            BuildError::InvalidReplicationFactor(0)
        );
        assert_eq!(
            rs_err(rs_params("4.4", 3, 6)).parameter(),
            "ReadonlyReplicas"
        );
        let mut p = rs_params("4.4", 3, 0);
        p.class = "DDS MID".into();
        assert_eq!(rs_err(p).parameter(), "DBInstanceClass");
        for gb in [0, 5, 15, 16_010] {
            let mut p = rs_params("4.4", 3, 0);
            p.storage_gb = gb;
            assert_eq!(rs_err(p).parameter(), "DBInstanceStorage", "{gb}");
        }
        for bad in [
            "x",
            "1abc",
            "http://x",
            "https://name",
            "a\nb",
            &"a".repeat(257),
        ] {
            let mut p = rs_params("4.4", 3, 0);
            p.common.description = Some(bad.to_string());
            assert_eq!(rs_err(p), BuildError::InvalidDescription, "{bad:?}");
        }
        // The description captured from a real SDK request is accepted.
        let mut p = rs_params("4.4", 3, 0);
        p.common.description = Some("my db*~/ä+&=".into());
        assert_eq!(
            build_replica_set_instance(&p, &catalog, "t", ids)
                .unwrap()
                .description,
            "my db*~/ä+&="
        );
        let mut p = rs_params("4.4", 3, 0);
        p.common.storage_engine = Some("RocksDB".into());
        assert_eq!(rs_err(p).parameter(), "StorageEngine");
        let mut p = rs_params("4.4", 3, 0);
        p.common.storage_type = Some("cloud_ssd".into());
        assert_eq!(rs_err(p).parameter(), "StorageType");
        let mut p = rs_params("4.4", 3, 0);
        p.common.engine = Some("Redis".into());
        assert_eq!(rs_err(p).parameter(), "Engine");
        let mut p = rs_params("4.4", 3, 0);
        p.common.tags = vec![
            Tag {
                key: "env".into(),
                value: "test".into(),
            },
            Tag {
                key: "aliyun-x".into(),
                value: "v".into(),
            },
        ];
        assert_eq!(rs_err(p).parameter(), "Tag.2.Key");
        let mut p = rs_params("4.4", 3, 0);
        p.common.tags = (0..21)
            .map(|i| Tag {
                key: format!("k{i}"),
                value: String::new(),
            })
            .collect();
        assert_eq!(rs_err(p), BuildError::TooManyTags(21));
        let mut p = rs_params("4.4", 3, 0);
        p.common.vpc_id = Some("vpc x".into());
        assert_eq!(rs_err(p).parameter(), "VpcId");

        let sh_err = |p: CreateSharded| {
            build_sharded_instance(
                &p,
                &Catalog::embedded(),
                "t",
                &mut SmallRng::seed_from_u64(1),
            )
            .unwrap_err()
        };
        assert_eq!(
            sh_err(sharded_params(1, 2)),
            BuildError::InvalidShardCount(1)
        );
        assert_eq!(
            sh_err(sharded_params(33, 2)),
            BuildError::InvalidShardCount(33)
        );
        assert_eq!(
            sh_err(sharded_params(2, 1)),
            BuildError::InvalidMongosCount(1)
        );
        assert_eq!(
            sh_err(sharded_params(2, 33)),
            BuildError::InvalidMongosCount(33)
        );
        let mut p = sharded_params(2, 2);
        p.config_servers.clear();
        assert_eq!(sh_err(p), BuildError::InvalidConfigServerCount(0));
        let mut p = sharded_params(3, 2);
        p.shards[2].storage_gb = 7;
        assert_eq!(sh_err(p).parameter(), "ReplicaSet.3.Storage");
        let mut p = sharded_params(3, 2);
        p.shards[1].readonly_replicas = 9;
        assert_eq!(sh_err(p).parameter(), "ReplicaSet.2.ReadonlyReplicas");
        let mut p = sharded_params(2, 3);
        p.mongos[2].class = String::new();
        assert_eq!(sh_err(p).parameter(), "Mongos.3.Class");
        assert!(build_sharded_instance(&sharded_params(32, 32), &catalog, "t", ids).is_ok());
    }

    #[test]
    fn region_codes() {
        assert_eq!(region_code("cn-hangzhou"), "bp");
        let derived = region_code("ap-southeast-7");
        assert_eq!(derived.len(), 2);
        assert!(derived.bytes().all(|b| b.is_ascii_lowercase()));
        assert_eq!(derived, region_code("ap-southeast-7"));
        assert!(instance_id("cn-shanghai", &mut SmallRng::seed_from_u64(1)).starts_with("dds-uf"));
    }

    #[test]
    fn fixtures_have_the_documented_shapes() {
        use fixtures::*;
        let k = "k1";
        assert_eq!(
            pss("rs0", k)
                .members
                .iter()
                .filter(|m| m.kind.electable())
                .count(),
            3
        );
        assert_eq!(psh("rs0", k).members[2].kind, MemberKind::Hidden);
        let a = psa("rs0", k);
        assert_eq!(a.members[2].kind, MemberKind::Arbiter);
        assert_eq!(a.members[2].priority, 0);
        assert_eq!(five_members("rs0", k).voting_members(), 5);
        assert_eq!(seven_members("rs0", k).voting_members(), 7);
        let d = with_delayed("rs0", k, 3600);
        assert_eq!(
            (d.members[3].kind, d.members[3].delay_secs),
            (MemberKind::Delayed, 3600)
        );
        assert_eq!(with_higher_priority("rs0", k).members[0].priority, 2);
        assert_eq!(with_readonly("rs0", k, 2).readonly_replicas(), 2);
        let t = sharded(2, 3, k);
        assert_eq!(t.replica_sets().len(), 3);
        assert_eq!(t.mongos().len(), 3);
        assert_eq!(t.replica_sets()[0].name, "cfg");
        assert_eq!(t.replica_sets()[2].members[1].node_id, "shard1-1");
        let i = instance("dds-test", "4.4", replica_set(pss("rs0", k)));
        assert_eq!(i.status, DbInstanceStatus::Running);
        assert!(instance("dds-s", "4.0", standalone("dds-s-0", k)).is_standalone());
    }
}
