//! `kill -9` of ddsd at random moments during 8 class changes (`ModifyDBInstanceSpec` of 4 replica sets,
//! `ModifyNodeSpec` of one shard of 4 sharded clusters), restarted on the same data dir each time, against
//! the real binary.
//!
//! What must hold when the dust settles, by the simulated fleet's ground truth (`DdsdDescribeOperations`'
//! `Simulation` section): every change succeeded and the instance is `Running` with the new class and
//! storage; every process in scope was restarted exactly once (no second restart after a resume, no failed
//! start), every other process not at all; no primary was ever asked to stop.
//!
//! The kill delays come from a seeded RNG; the seed is printed (`DDSD_CRASH_SEED` reuses it).

mod common;

use common::crash::{rs_params, sharded_params, Server};

use std::time::Duration;

use rand::{Rng, SeedableRng};

const CHANGES_RS: usize = 4;
const CHANGES_SHARDED: usize = 4;
const CREATE_TIMEOUT: Duration = Duration::from_secs(60);
const CHANGE_TIMEOUT: Duration = Duration::from_secs(100);

#[tokio::test(flavor = "multi_thread")]
async fn class_changes_survive_kill_9_at_random_moments() {
    let seed: u64 = std::env::var("DDSD_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    println!("DDSD_CRASH_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let root = std::env::temp_dir().join(format!("ddsd-spec-crash-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&root).unwrap();

    let server = Server::start(&root);
    let ids = server
        .create_all(
            CHANGES_RS,
            CHANGES_SHARDED,
            |sharded| {
                if sharded {
                    ("CreateShardingDBInstance", sharded_params())
                } else {
                    ("CreateDBInstance", rs_params())
                }
            },
            CREATE_TIMEOUT,
        )
        .await;

    // The shard each sharded cluster changes.
    let mut shard_of = std::collections::BTreeMap::new();
    for (i, id) in ids.iter().enumerate() {
        if i < CHANGES_RS {
            server
                .call(
                    "ModifyDBInstanceSpec",
                    &[
                        ("DBInstanceId", id),
                        ("DBInstanceClass", "dds.mongo.standard"),
                        ("DBInstanceStorage", "30"),
                    ],
                )
                .await;
        } else {
            let a = server.attribute(id).await;
            let shard = a["ShardList"]["ShardAttribute"][1]["NodeId"]
                .as_str()
                .unwrap()
                .to_string();
            server
                .call(
                    "ModifyNodeSpec",
                    &[
                        ("DBInstanceId", id),
                        ("NodeId", &shard),
                        ("NodeClass", "dds.shard.standard"),
                        ("NodeStorage", "40"),
                    ],
                )
                .await;
            shard_of.insert(id.clone(), shard);
        }
    }
    // Let them run for a random while (sometimes barely past a restart), then pull the plug; again.
    let (server, kills) = server
        .kill_until_settled(
            &root,
            &ids,
            &mut rng,
            600,
            CHANGE_TIMEOUT,
            &format!("class changes (seed {seed})"),
        )
        .await;
    println!("{kills} kills while class changes were running");
    assert!(kills >= 3, "too few kills landed ({kills})");

    for id in &ids {
        let a = server.attribute(id).await;
        assert_eq!(a["DBInstanceStatus"], "Running", "{id}");
        let op = server.last_operation(id).await;
        assert_eq!(op["Status"], "Succeeded", "{id}: {op} (seed {seed})");
        let shard = shard_of.get(id);
        match shard {
            None => {
                assert_eq!(op["Action"], "ModifyDBInstanceSpec");
                assert_eq!(a["DBInstanceClass"], "dds.mongo.standard", "{a}");
                assert_eq!(a["DBInstanceStorage"], 30, "{a}");
            }
            Some(shard) => {
                assert_eq!(op["Action"], "ModifyNodeSpec");
                for s in a["ShardList"]["ShardAttribute"].as_array().unwrap() {
                    let changed = s["NodeId"] == shard.as_str();
                    let (class, storage) = if changed {
                        ("dds.shard.standard", 40)
                    } else {
                        ("dds.shard.mid", 20)
                    };
                    assert_eq!(s["NodeClass"], class, "{s}");
                    assert_eq!(s["NodeStorage"], storage, "{s}");
                }
                assert_eq!(a["DBInstanceStorage"], 60, "{a}");
            }
        }
        let sim = &op["Simulation"];
        for p in sim["Processes"].as_array().unwrap() {
            let in_scope = shard.is_none_or(|s| p["ReplicaSet"] == s.as_str());
            assert_eq!(
                p["Restarts"],
                u64::from(in_scope),
                "{id}: {p} (seed {seed})"
            );
            assert_eq!(p["FailedStarts"], 0, "{id}: {p}");
        }
        assert_eq!(sim["PrimaryStopAttempts"], 0, "{id}");
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&root);
}
