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
//! `fixtures::with_higher_priority` set exists to exercise that case.
//!
//! Sharded clusters: 2–32 shards (each a three-member set plus its `ReadonlyReplicas`), exactly one
//! config server replica set of three members (the vendor's `ConfigServer.1`), 2–32 mongos.
//!
//! The module is split by concern; every item is re-exported here, so its path stays `build::…`:
//! - `ids`: the [`IdSource`] and the vendor-style ids of instances, shards, config servers, mongos, members;
//! - `layout`: [`replica_set_members`], the member layout above;
//! - `params`: the create parameters ([`CreateCommon`], [`CreateReplicaSet`], [`CreateSharded`], …);
//! - `validate`: [`BuildError`] and the checks of those parameters ([`validate_replica_set`],
//!   [`validate_sharded`]);
//! - `instance`: the instances built from valid parameters ([`build_replica_set_instance`],
//!   [`build_sharded_instance`]);
//! - `fixtures`: ready-made topologies for tests and simulations; compiled only for tests and under the
//!   `testkit` feature.
//!
//! [`Instance`]: crate::model::Instance
//! [`Topology`]: crate::model::Topology

mod ids;
mod instance;
mod layout;
mod params;
mod validate;

#[cfg(any(test, feature = "testkit"))]
pub mod fixtures;

pub use ids::{
    config_server_id, instance_id, member_id, mongos_id, region_code, shard_id, IdSource,
};
pub use instance::{build_replica_set_instance, build_sharded_instance};
pub use layout::replica_set_members;
pub use params::{
    CreateCommon, CreateConfigServer, CreateMongos, CreateReplicaSet, CreateShard, CreateSharded,
};
pub use validate::{
    check_description, passthrough_id_ok, tag_ok, validate_replica_set, validate_sharded,
    BuildError,
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

#[cfg(test)]
mod tests;
