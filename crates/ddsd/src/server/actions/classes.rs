//! The instance classes ddsd offers (`DBInstanceClass`, `ReplicaSet.N.Class`, `ConfigServer.N.Class`,
//! `Mongos.N.Class`), modelled on the vendor's published specifications: which part of a deployment
//! may use a class, and the limits DescribeDBInstanceAttribute reports for it (`MaxConnections`,
//! `MaxIOPS`, `MaxMBPS`). An unknown class, or a class used for the wrong part (a mongos class as a
//! shard), is the vendor's `InvalidDBInstanceClass.NotFound`.

/// Where a class may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `DBInstanceClass` of a replica set instance.
    ReplicaSet,
    /// `DBInstanceClass` of a standalone (`ReplicationFactor` 1).
    Standalone,
    Shard,
    ConfigServer,
    Mongos,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceClass {
    pub code: &'static str,
    pub cpu_cores: u32,
    pub memory_gb: u32,
    pub max_connections: u32,
    pub max_iops: u32,
    pub max_mbps: u32,
    roles: &'static [Role],
}

use Role::{ConfigServer as C, Mongos as M, ReplicaSet as R, Shard as S, Standalone as N};

const fn class(
    code: &'static str,
    cpu_cores: u32,
    memory_gb: u32,
    max_connections: u32,
    max_iops: u32,
    max_mbps: u32,
    roles: &'static [Role],
) -> InstanceClass {
    InstanceClass {
        code,
        cpu_cores,
        memory_gb,
        max_connections,
        max_iops,
        max_mbps,
        roles,
    }
}

/// The catalog. General-purpose `dds.*` classes per role, and the dedicated `mdb.shard.*` classes
/// that the vendor sells for replica sets and every part of a sharded cluster.
pub const CLASSES: &[InstanceClass] = &[
    class("dds.mongo.mid", 1, 2, 500, 1_000, 100, &[R]),
    class("dds.mongo.standard", 2, 4, 1_000, 2_000, 150, &[R]),
    class("dds.mongo.large", 4, 8, 3_000, 4_000, 200, &[R]),
    class("dds.mongo.xlarge", 8, 16, 5_000, 8_000, 300, &[R]),
    class("dds.mongo.2xlarge", 8, 32, 8_000, 14_000, 400, &[R]),
    class("dds.mongo.4xlarge", 16, 64, 16_000, 16_000, 500, &[R]),
    class("dds.sn2.standard.1", 1, 2, 500, 1_000, 100, &[N]),
    class("dds.sn2.large.1", 2, 4, 1_000, 2_000, 150, &[N]),
    class("dds.sn4.large.1", 2, 8, 2_000, 4_000, 200, &[N]),
    class("dds.sn4.xlarge.1", 4, 16, 4_000, 8_000, 300, &[N]),
    class("dds.shard.mid", 1, 2, 1_000, 1_000, 100, &[S]),
    class("dds.shard.standard", 2, 4, 2_000, 2_000, 150, &[S]),
    class("dds.shard.large", 4, 8, 4_000, 4_000, 200, &[S]),
    class("dds.shard.xlarge", 8, 16, 8_000, 8_000, 300, &[S]),
    class("dds.shard.2xlarge", 8, 32, 16_000, 14_000, 400, &[S]),
    class("dds.shard.4xlarge", 16, 64, 16_000, 16_000, 500, &[S]),
    class("dds.cs.mid", 1, 2, 1_000, 1_000, 100, &[C]),
    class("dds.mongos.mid", 1, 2, 1_000, 0, 0, &[M]),
    class("dds.mongos.standard", 2, 4, 2_000, 0, 0, &[M]),
    class("dds.mongos.large", 4, 8, 4_000, 0, 0, &[M]),
    class("dds.mongos.xlarge", 8, 16, 8_000, 0, 0, &[M]),
    class("dds.mongos.2xlarge", 8, 32, 16_000, 0, 0, &[M]),
    class("mdb.shard.2x.large.d", 2, 4, 3_000, 10_800, 150, &[R, S, M]),
    class(
        "mdb.shard.2x.xlarge.d",
        4,
        8,
        8_000,
        21_600,
        200,
        &[R, S, C, M],
    ),
    class("mdb.shard.4x.large.d", 2, 8, 3_000, 10_800, 150, &[R, S, M]),
    class(
        "mdb.shard.4x.xlarge.d",
        4,
        16,
        8_000,
        21_600,
        200,
        &[R, S, M],
    ),
    class(
        "mdb.shard.4x.2xlarge.d",
        8,
        32,
        16_000,
        32_400,
        300,
        &[R, S, M],
    ),
    class(
        "mdb.shard.8x.2xlarge.d",
        8,
        64,
        16_000,
        32_400,
        300,
        &[R, S, M],
    ),
];

impl InstanceClass {
    /// The vendor's description of a class: `2 cores, 8 GB (dedicated)` — `mdb.*` classes are
    /// dedicated, `dds.*` general-purpose.
    pub fn description(&self) -> String {
        let kind = if self.code.starts_with("mdb.") {
            "dedicated"
        } else {
            "general-purpose"
        };
        format!("{} cores, {} GB ({kind})", self.cpu_cores, self.memory_gb)
    }
}

/// The class with this code, if it may be used for `role`.
pub fn lookup(code: &str, role: Role) -> Option<&'static InstanceClass> {
    CLASSES
        .iter()
        .find(|c| c.code == code && c.roles.contains(&role))
}

/// The class with this code for a replica-set instance of `members` members (a standalone when 1).
pub fn for_replica_set(code: &str, members: u32) -> Option<&'static InstanceClass> {
    let role = if members == 1 {
        Role::Standalone
    } else {
        Role::ReplicaSet
    };
    lookup(code, role)
}

/// The class with this code, whatever its role (for describing stored instances).
pub fn find(code: &str) -> Option<&'static InstanceClass> {
    CLASSES.iter().find(|c| c.code == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_every_role_has_classes() {
        for (i, c) in CLASSES.iter().enumerate() {
            assert!(CLASSES[..i].iter().all(|o| o.code != c.code), "{}", c.code);
            assert!(!c.roles.is_empty() && c.cpu_cores > 0 && c.max_connections > 0);
        }
        for role in [R, N, S, C, M] {
            assert!(CLASSES.iter().any(|c| c.roles.contains(&role)), "{role:?}");
        }
    }

    #[test]
    fn roles_are_enforced() {
        assert!(lookup("dds.mongo.mid", R).is_some());
        assert!(lookup("dds.mongo.mid", S).is_none());
        assert!(lookup("dds.mongos.mid", M).is_some());
        assert!(lookup("dds.mongos.mid", S).is_none());
        assert!(lookup("mdb.shard.2x.xlarge.d", C).is_some());
        assert!(lookup("mdb.shard.4x.large.d", C).is_none());
        assert!(lookup("dds.sn2.standard.1", N).is_some());
        assert!(lookup("dds.sn2.standard.1", R).is_none());
        assert!(lookup("DDS.MONGO.MID", R).is_none());
        assert!(find("nope").is_none());
    }
}
