//! `kill -9` of ddsd at random moments during 20 rolling upgrades (10 replica sets, 10 sharded clusters)
//! — and during 6 major version upgrades (4.2 → 4.4, the FCV raised last) —
//! restarted on the same data dir each time, against the real binary.
//!
//! What must hold when the dust settles, checked against the simulated fleet's ground truth (through
//! `DdsdDescribeOperations`' `Simulation` section, docs/operations.md):
//! - every upgrade finished and succeeded; every instance is `Running` with `CurrentKernelVersion` = the
//!   newest kernel at the instance and on every shard, config server and mongos;
//! - every process was restarted exactly once (no second restart after a resume, no failed start), no
//!   primary was ever asked to stop, each replica set had exactly one election;
//! - the balancer of each sharded cluster is back in the mode it had before (and the report says restored).
//!
//! The kill delays come from a seeded RNG; the seed is printed (set `DDSD_CRASH_SEED` to reuse it — the
//! delays repeat, the moments they hit depend on the machine). Plane time keeps running while ddsd is down,
//! so a stop or start issued just before a kill completes during the outage, as it would on real hosts.

mod common;

use common::crash::{self, Server};

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use serde_json::Value;

const UPGRADES_RS: usize = 10;
const UPGRADES_SHARDED: usize = 10;
const OLD_44: &str = "mongodb_20211020_4.4.6";
/// Wall-clock bounds of the whole test's phases.
const CREATE_TIMEOUT: Duration = Duration::from_secs(60);
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(100);

fn temp_root() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ddsd-upgrade-crash-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The shared create parameters, pinned to the oldest 4.4 kernel.
fn rs_params() -> Vec<(&'static str, &'static str)> {
    let mut p = crash::rs_params();
    p.push(("KernelVersion", OLD_44));
    p
}

fn sharded_params() -> Vec<(&'static str, &'static str)> {
    let mut p = crash::sharded_params();
    p.push(("KernelVersion", OLD_44));
    p
}

/// Every `CurrentKernelVersion` the attribute shows, with where it is.
fn kernels(a: &Value) -> Vec<(String, String)> {
    let mut out = vec![(
        "instance".to_string(),
        a["CurrentKernelVersion"].as_str().unwrap_or("").to_string(),
    )];
    for (list, item) in [
        ("ShardList", "ShardAttribute"),
        ("ConfigserverList", "ConfigserverAttribute"),
        ("MongosList", "MongosAttribute"),
    ] {
        for n in a[list][item].as_array().into_iter().flatten() {
            out.push((
                n["NodeId"].as_str().unwrap_or("").to_string(),
                n["CurrentKernelVersion"].as_str().unwrap_or("").to_string(),
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_upgrades_survive_kill_9_at_random_moments() {
    let seed: u64 = std::env::var("DDSD_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    println!("DDSD_CRASH_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let root = temp_root();
    let t0 = Instant::now();

    let server = Server::start(&root);
    let ids = server
        .create_all(
            UPGRADES_RS,
            UPGRADES_SHARDED,
            |sharded| {
                if sharded {
                    ("DdsdCreateShardingDBInstance", sharded_params())
                } else {
                    ("DdsdCreateDBInstance", rs_params())
                }
            },
            CREATE_TIMEOUT,
        )
        .await;
    // The target: the newest 4.4 kernel, i.e. the last one released after the pinned kernel.
    let notes = server
        .call("DescribeKernelReleaseNotes", &[("KernelVersion", OLD_44)])
        .await;
    let target = notes["ReleaseNotes"]["ReleaseNote"]
        .as_array()
        .and_then(|l| l.last())
        .and_then(|n| n["KernelVersion"].as_str())
        .expect("a newer 4.4 kernel")
        .to_string();
    for id in &ids {
        let a = server.attribute(id).await;
        assert!(kernels(&a).iter().all(|(_, k)| k == OLD_44), "{a}");
    }

    for id in &ids {
        server
            .call("UpgradeDBInstanceKernelVersion", &[("DBInstanceId", id)])
            .await;
    }
    // Let them run for a random while (sometimes barely past a restart), then pull the plug; again.
    let (server, kills) = server
        .kill_until_settled(
            &root,
            &ids,
            &mut rng,
            1_000,
            UPGRADE_TIMEOUT,
            &format!("upgrades (seed {seed})"),
        )
        .await;
    println!(
        "{kills} kills while upgrades were running; {:.1} s in all",
        t0.elapsed().as_secs_f64()
    );
    assert!(
        kills >= 10,
        "too few kills landed during the upgrades ({kills})"
    );

    for id in &ids {
        let a = server.attribute(id).await;
        assert_eq!(a["DBInstanceStatus"], "Running", "{id}");
        for (node, k) in kernels(&a) {
            assert_eq!(k, target, "{id} {node} (seed {seed})");
        }
        let op = server.last_operation(id).await;
        assert_eq!(op["Action"], "UpgradeDBInstanceKernelVersion");
        assert_eq!(op["Status"], "Succeeded", "{id}: {op} (seed {seed})");
        let sim = &op["Simulation"];
        let procs = sim["Processes"].as_array().unwrap();
        let sharded = id_is_sharded(&a);
        assert_eq!(procs.len(), if sharded { 3 * 3 + 2 } else { 3 }, "{id}");
        for p in procs {
            assert_eq!(p["Restarts"], 1, "{id}: {p} (seed {seed})");
            assert_eq!(p["FailedStarts"], 0, "{id}: {p}");
            assert_eq!(p["KernelVersion"], target.as_str(), "{id}: {p}");
        }
        for rs in sim["ReplicaSets"].as_array().unwrap() {
            assert_eq!(rs["Elections"], 1, "{id}: {rs} (seed {seed})");
        }
        assert_eq!(sim["PrimaryStopAttempts"], 0, "{id}");
        if sharded {
            assert_eq!(sim["BalancerModeBefore"], "Full", "{id}");
            assert_eq!(sim["BalancerModeAfter"], sim["BalancerModeBefore"], "{id}");
            assert_eq!(op["Report"]["Balancer"]["Restored"], true, "{id}: {op}");
        }
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&root);
}

fn id_is_sharded(a: &Value) -> bool {
    a["DBInstanceType"] == "sharding"
}

const OLD_42: &str = "mongodb_20220830_4.2.12";
const MAJOR_UPGRADES_RS: usize = 3;
const MAJOR_UPGRADES_SHARDED: usize = 3;

/// The same `kill -9` treatment for major version upgrades (`UpgradeDBInstanceEngineVersion`, 4.2 → 4.4):
/// after any number of kills every process restarted exactly once onto the newest 4.4 kernel, and the
/// feature compatibility version was raised once per replica set, after the last launch.
#[tokio::test(flavor = "multi_thread")]
async fn major_upgrades_survive_kill_9_at_random_moments() {
    let seed: u64 = std::env::var("DDSD_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    println!("DDSD_CRASH_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let root = temp_root();
    let server = Server::start(&root);
    let on_42 = |mut p: Vec<(&'static str, &'static str)>| {
        for (k, v) in &mut p {
            match *k {
                "EngineVersion" => *v = "4.2",
                "KernelVersion" => *v = OLD_42,
                _ => {}
            }
        }
        p
    };
    let ids = server
        .create_all(
            MAJOR_UPGRADES_RS,
            MAJOR_UPGRADES_SHARDED,
            |sharded| {
                if sharded {
                    ("DdsdCreateShardingDBInstance", on_42(sharded_params()))
                } else {
                    ("DdsdCreateDBInstance", on_42(rs_params()))
                }
            },
            CREATE_TIMEOUT,
        )
        .await;
    for id in &ids {
        server
            .call(
                "UpgradeDBInstanceEngineVersion",
                &[("DBInstanceId", id), ("EngineVersion", "4.4")],
            )
            .await;
    }
    // Let them run for a random while (sometimes barely past a restart), then pull the plug; again.
    let (server, kills) = server
        .kill_until_settled(
            &root,
            &ids,
            &mut rng,
            1_000,
            UPGRADE_TIMEOUT,
            &format!("major upgrades (seed {seed})"),
        )
        .await;
    println!("{kills} kills while major upgrades were running");
    assert!(
        kills >= 3,
        "too few kills landed during the upgrades ({kills})"
    );
    for id in &ids {
        let a = server.attribute(id).await;
        assert_eq!(a["DBInstanceStatus"], "Running", "{id}");
        assert_eq!(a["EngineVersion"], "4.4", "{id} (seed {seed})");
        let op = server.last_operation(id).await;
        assert_eq!(op["Action"], "UpgradeDBInstanceEngineVersion");
        assert_eq!(op["Status"], "Succeeded", "{id}: {op} (seed {seed})");
        let target = op["TargetKernelVersion"].as_str().unwrap().to_string();
        for (node, k) in kernels(&a) {
            assert_eq!(k, target, "{id} {node} (seed {seed})");
        }
        let sim = &op["Simulation"];
        let mut last_launch = 0;
        for p in sim["Processes"].as_array().unwrap() {
            assert_eq!(p["Restarts"], 1, "{id}: {p} (seed {seed})");
            assert_eq!(p["FailedStarts"], 0, "{id}: {p}");
            last_launch = last_launch.max(p["LastLaunchMs"].as_u64().unwrap());
        }
        let sets = sim["ReplicaSets"].as_array().unwrap();
        let changes = sim["FcvChanges"].as_array().unwrap();
        assert_eq!(changes.len(), sets.len(), "{id}: {changes:?} (seed {seed})");
        for c in changes {
            assert_eq!(c["Version"], "4.4", "{id}");
            assert!(
                c["AtMs"].as_u64().unwrap() > last_launch,
                "{id}: FCV raised before the last launch: {c} (seed {seed})"
            );
        }
        assert_eq!(sim["PrimaryStopAttempts"], 0, "{id}");
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&root);
}
