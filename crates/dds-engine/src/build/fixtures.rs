//! Topologies for tests and simulations, with short readable ids (`rs0-0`, `shard1-2`, `mongos0`).
//! Every electable member has priority 1 unless the builder says otherwise; member 0 is the primary a
//! fresh simulated fleet elects.

use super::instance::instance_shell;
use super::{member_id, replica_set_members, CreateCommon};
use crate::model::{
    DbInstanceStatus, Instance, MemberKind, MemberSpec, MongosSpec, ReplicaSetKind, ReplicaSetSpec,
    Topology,
};

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
