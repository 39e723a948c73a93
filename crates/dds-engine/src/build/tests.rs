use super::*;
use crate::catalog::Catalog;
use crate::model::{DbInstanceStatus, MemberKind, ReplicaSetKind, Tag, Topology};
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
