//! Checking create parameters: [`BuildError`], the vendor's limits applied to every parameter, and
//! [`validate_replica_set`] / [`validate_sharded`], which refuse before anything is generated. Apart from the
//! building so that a handler can validate without an [`IdSource`](super::IdSource).

use super::params::{CreateCommon, CreateReplicaSet, CreateSharded};
use super::{
    ENGINE, MAX_CLASS_LEN, MAX_DESCRIPTION_CHARS, MAX_MONGOS, MAX_READONLY_REPLICAS, MAX_SHARDS,
    MAX_STORAGE_GB, MAX_TAGS, MIN_MONGOS, MIN_SHARDS, MIN_STORAGE_GB, NETWORK_TYPE, STORAGE_ENGINE,
    STORAGE_TYPES,
};
use crate::catalog::Catalog;

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
    passthrough_id_ok(v)
        .then(|| v.to_string())
        .ok_or(BuildError::InvalidId {
            param: param.to_string(),
        })
}

/// Whether `v` may be a passed-through id: at most 128 letters, digits, `-`, `_` and `.`.
pub fn passthrough_id_ok(v: &str) -> bool {
    v.len() <= 128
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// A tag (at creation and `TagResources`): a key of 1 to 128 characters, a value of at most 128, neither
/// starting with `aliyun`, `acs:`, `http://` or `https://`, no control characters.
pub fn tag_ok(key: &str, value: &str) -> bool {
    (1..=128).contains(&key.chars().count())
        && value.chars().count() <= 128
        && !reserved_prefix(key)
        && !reserved_prefix(value)
        && !key.chars().chain(value.chars()).any(char::is_control)
}

/// `DBInstanceDescription` (at creation and `ModifyDBInstanceDescription`): 2 to 256 characters, starting
/// with a letter, no control characters, not starting with `http://` / `https://`.
pub fn check_description(d: &str) -> Result<(), BuildError> {
    let n = d.chars().count();
    let ok = (2..=MAX_DESCRIPTION_CHARS).contains(&n)
        && d.chars().next().is_some_and(char::is_alphabetic)
        && !d.chars().any(char::is_control)
        && !reserved_prefix(d);
    if ok {
        Ok(())
    } else {
        Err(BuildError::InvalidDescription)
    }
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
        check_description(d)?;
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
        if !tag_ok(&tag.key, &tag.value) {
            return Err(BuildError::InvalidTag { index: i + 1 });
        }
    }
    check_passthrough_id("VpcId", &c.vpc_id)?;
    check_passthrough_id("VSwitchId", &c.vswitch_id)?;
    check_passthrough_id("ResourceGroupId", &c.resource_group_id)?;
    Ok(kernel)
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
