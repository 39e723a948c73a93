//! Durability against the real binary: instances, in-flight creations and deletions, and published
//! kernels survive `kill -9` of ddsd, and a restart on the same data dir finishes what was in flight.
//!
//! The simulated data plane runs at `sim_speed = 10`: a creation takes ~0.5–3 s of wall time, long
//! enough to kill ddsd while one is `Creating`, short enough for a quick test.

mod common;

use std::path::PathBuf;

use common::crash::Server;
use serde_json::Value;

const CONFIG: &str =
    "region = \"cn-hangzhou\"\nsim_speed = 10\n[[access_keys]]\nid = \"testid\"\nsecret = \"testsecret\"\n";

fn temp_root() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ddsd-durability-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const RS: &[(&str, &str)] = &[
    ("RegionId", "cn-hangzhou"),
    ("EngineVersion", "4.4"),
    ("DBInstanceClass", "dds.mongo.mid"),
    ("DBInstanceStorage", "20"),
];

const SHARDED: &[(&str, &str)] = &[
    ("RegionId", "cn-hangzhou"),
    ("Engine", "MongoDB"),
    ("EngineVersion", "5.0"),
    ("ReplicaSet.1.Class", "dds.shard.mid"),
    ("ReplicaSet.1.Storage", "20"),
    ("ReplicaSet.2.Class", "dds.shard.mid"),
    ("ReplicaSet.2.Storage", "20"),
    ("ConfigServer.1.Class", "dds.cs.mid"),
    ("ConfigServer.1.Storage", "20"),
    ("Mongos.1.Class", "dds.mongos.mid"),
    ("Mongos.2.Class", "dds.mongos.mid"),
];

const STANDALONE: &[(&str, &str)] = &[
    ("RegionId", "cn-hangzhou"),
    ("EngineVersion", "4.0"),
    ("DBInstanceClass", "dds.sn2.standard.1"),
    ("DBInstanceStorage", "20"),
    ("ReplicationFactor", "1"),
];

fn id_of(v: &Value) -> String {
    v["DBInstanceId"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn instances_and_in_flight_operations_survive_kill_9() {
    let root = temp_root();
    let first = Server::start_with(&root, CONFIG);

    // Settled instances of every shape, and one more that will be deleted.
    let running = vec![
        id_of(&first.call("CreateDBInstance", RS).await),
        id_of(&first.call("CreateShardingDBInstance", SHARDED).await),
        id_of(&first.call("CreateDBInstance", STANDALONE).await),
    ];
    let doomed = id_of(&first.call("CreateDBInstance", RS).await);
    for id in running.iter().chain([&doomed]) {
        first.wait_for(id, Some("Running")).await;
    }
    first
        .call(
            "ModifyDBInstanceMaintainTime",
            &[
                ("DBInstanceId", &running[0]),
                ("MaintainStartTime", "01:00Z"),
                ("MaintainEndTime", "02:30Z"),
            ],
        )
        .await;
    first
        .call(
            "DdsdPublishKernelVersion",
            &[
                ("EngineVersion", "4.4"),
                ("KernelVersion", "mongodb_20990101_4.4.99"),
                ("ReleaseNote", "Published before the crash."),
                ("ReleaseDate", "2099-01-02"),
            ],
        )
        .await;

    // In flight at the moment of the kill: a creation and a deletion.
    let creating = id_of(&first.call("CreateDBInstance", RS).await);
    first
        .call("DeleteDBInstance", &[("DBInstanceId", &doomed)])
        .await;
    assert_eq!(first.status(&creating).await.as_deref(), Some("Creating"));
    assert_eq!(first.status(&doomed).await.as_deref(), Some("Deleting"));
    first.kill9();

    let second = Server::start_with(&root, CONFIG);
    // Everything accepted before the crash is there; the creation finishes and the deletion too.
    for id in &running {
        assert_eq!(second.status(id).await.as_deref(), Some("Running"), "{id}");
    }
    assert!(second.status(&creating).await.is_some());
    second.wait_for(&creating, Some("Running")).await;
    second.wait_for(&doomed, None).await;
    let a = second
        .call(
            "DescribeDBInstanceAttribute",
            &[("DBInstanceId", &running[0])],
        )
        .await;
    let a = &a["DBInstances"]["DBInstance"][0];
    assert_eq!(a["MaintainStartTime"], "01:00Z");
    assert_eq!(a["MaintainEndTime"], "02:30Z");
    // The published kernel survived: release notes list it and new instances start on it.
    let notes = second
        .call(
            "DescribeKernelReleaseNotes",
            &[("KernelVersion", "mongodb_20240119_4.4.19")],
        )
        .await;
    assert!(
        notes.to_string().contains("mongodb_20990101_4.4.99"),
        "{notes}"
    );
    let fresh = id_of(&second.call("CreateDBInstance", RS).await);
    second.wait_for(&fresh, Some("Running")).await;
    let a = second
        .call("DescribeDBInstanceAttribute", &[("DBInstanceId", &fresh)])
        .await;
    assert_eq!(
        a["DBInstances"]["DBInstance"][0]["CurrentKernelVersion"],
        "mongodb_20990101_4.4.99"
    );
    // Replica sets and the standalone (the sharded cluster is listed separately).
    let listed = second.call("DescribeDBInstances", &[]).await;
    assert_eq!(listed["TotalCount"], 4, "{listed}");
    let listed = second
        .call("DescribeDBInstances", &[("DBInstanceType", "sharding")])
        .await;
    assert_eq!(listed["TotalCount"], 1, "{listed}");
    drop(second);
    let _ = std::fs::remove_dir_all(&root);
}
