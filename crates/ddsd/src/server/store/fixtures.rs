//! Test instances and temporary data directories shared by the store, plane and runtime tests.

use super::{NewOperation, OperationKind, SqliteOptions, SqliteStore};
use dds_engine::model::{
    ChargeType, DbInstanceStatus, Instance, LockMode, MaintainWindow, MemberKind, MemberSpec,
    MongosSpec, ReplicaSetKind, ReplicaSetSpec, Tag, Topology,
};
use std::path::{Path, PathBuf};

/// An older 4.0 kernel from the embedded catalog, so upgrades have somewhere to go.
pub const KERNEL: &str = "mongodb_20220518_4.0.21";

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("ddsd-{label}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn open_store(dir: &TempDir) -> SqliteStore {
    SqliteStore::open_in(dir.path(), SqliteOptions::default()).expect("open store")
}

fn member(node_id: String, kind: MemberKind, priority: u8) -> MemberSpec {
    MemberSpec {
        node_id,
        kind,
        priority,
        delay_secs: 0,
        kernel_version: KERNEL.into(),
    }
}

/// Primary-secondary-hidden with equal priorities, as the vendor builds a three-node replica set.
pub fn replica_set_spec(name: &str, node_id: &str, kind: ReplicaSetKind) -> ReplicaSetSpec {
    ReplicaSetSpec {
        name: name.into(),
        node_id: node_id.into(),
        kind,
        class: "dds.mongo.mid".into(),
        storage_gb: 20,
        members: vec![
            member(format!("{node_id}-0"), MemberKind::Electable, 1),
            member(format!("{node_id}-1"), MemberKind::Electable, 1),
            member(format!("{node_id}-2"), MemberKind::Hidden, 0),
        ],
    }
}

fn base(id: &str, creation_time: &str, topology: Topology) -> Instance {
    Instance {
        id: id.into(),
        description: format!("test instance {id}"),
        region_id: "cn-hangzhou".into(),
        zone_id: "cn-hangzhou-h".into(),
        engine: "MongoDB".into(),
        engine_version: "4.0".into(),
        class: "dds.mongo.mid".into(),
        storage_gb: 20,
        storage_type: "cloud_essd1".into(),
        storage_engine: "WiredTiger".into(),
        charge_type: ChargeType::PostPaid,
        network_type: "VPC".into(),
        vpc_id: "vpc-test".into(),
        vswitch_id: "vsw-test".into(),
        resource_group_id: "rg-default".into(),
        status: DbInstanceStatus::Running,
        lock_mode: LockMode::Unlock,
        maintain_window: MaintainWindow::default(),
        creation_time: creation_time.into(),
        tags: vec![Tag {
            key: "env".into(),
            value: "test".into(),
        }],
        topology,
    }
}

pub fn replica_set(id: &str, creation_time: &str) -> Instance {
    base(
        id,
        creation_time,
        Topology::ReplicaSet {
            replica_set: replica_set_spec(&format!("mgset-{id}"), id, ReplicaSetKind::Instance),
        },
    )
}

pub fn standalone(id: &str, creation_time: &str) -> Instance {
    base(
        id,
        creation_time,
        Topology::Standalone {
            member: member(format!("{id}-0"), MemberKind::Electable, 1),
        },
    )
}

pub fn sharded(id: &str, creation_time: &str) -> Instance {
    base(
        id,
        creation_time,
        Topology::Sharded {
            config_server: replica_set_spec(
                &format!("cs-{id}"),
                &format!("cs-{id}"),
                ReplicaSetKind::ConfigServer,
            ),
            shards: (0..2)
                .map(|n| {
                    replica_set_spec(
                        &format!("d-{id}-{n}"),
                        &format!("d-{id}-{n}"),
                        ReplicaSetKind::Shard,
                    )
                })
                .collect(),
            mongos: (0..2)
                .map(|n| MongosSpec {
                    node_id: format!("s-{id}-{n}"),
                    class: "dds.mongos.mid".into(),
                    kernel_version: KERNEL.into(),
                })
                .collect(),
        },
    )
}

pub fn new_op(kind: OperationKind) -> NewOperation {
    NewOperation {
        id: uuid::Uuid::new_v4().to_string(),
        kind,
        state: serde_json::json!({ "phase": "start" }),
    }
}
