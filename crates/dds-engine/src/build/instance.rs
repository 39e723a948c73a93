//! Building instances from valid create parameters: the replica set or standalone of `CreateDBInstance` and
//! the sharded cluster of `CreateShardingDBInstance`, in status `Creating`, with fresh vendor-style ids.
//! `instance_shell` (the instance-level fields every kind shares) is also what the test fixtures start from.

use super::ids::{config_server_id, digits, instance_id, member_id, mongos_id, shard_id, IdSource};
use super::layout::replica_set_members;
use super::params::{CreateCommon, CreateReplicaSet, CreateSharded};
use super::validate::{validate_replica_set, validate_sharded, BuildError};
use super::{DEFAULT_STORAGE_TYPE, ENGINE, NETWORK_TYPE, SHARD_MEMBERS, STORAGE_ENGINE};
use crate::catalog::Catalog;
use crate::model::{
    DbInstanceStatus, Instance, LockMode, MaintainWindow, MemberKind, MemberSpec, MongosSpec,
    ReplicaSetKind, ReplicaSetSpec, Topology,
};

pub(super) fn instance_shell(
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
