//! Store latencies on a realistic fleet. Not part of the normal run:
//! `cargo test -p ddsd --release --lib store::bench -- --ignored --nocapture`

use super::fixtures::{new_op, replica_set, sharded, standalone, TempDir};
use super::*;
use dds_engine::model::{DbInstanceStatus, Tag};
use std::time::{Duration, Instant};

fn percentiles(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    format!(
        "n={} p50={:.3}ms p99={:.3}ms max={:.3}ms",
        samples.len(),
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        at(1.0).as_secs_f64() * 1e3
    )
}

async fn timed<T, F: std::future::Future<Output = T>>(samples: &mut Vec<Duration>, f: F) -> T {
    let t = Instant::now();
    let out = f.await;
    samples.push(t.elapsed());
    out
}

fn fleet_instance(n: usize) -> Instance {
    let id = format!("dds-bench{n:05}");
    // Creation times spread over a day, several instances per second.
    let ts = format!(
        "2026-03-01T{:02}:{:02}:{:02}Z",
        (n / 3600) % 24,
        (n / 60) % 60,
        n % 60
    );
    let mut i = match n % 10 {
        0 => standalone(&id, &ts),
        1 | 2 => sharded(&id, &ts),
        _ => replica_set(&id, &ts),
    };
    i.region_id = ["cn-hangzhou", "cn-beijing", "cn-shanghai"][n % 3].into();
    i.status = if n.is_multiple_of(50) {
        DbInstanceStatus::MinorVersionUpgrading
    } else {
        DbInstanceStatus::Running
    };
    i.description = format!("service-{} shard {}", n % 97, n);
    i.tags.push(Tag {
        key: "team".into(),
        value: format!("team-{}", n % 40),
    });
    i
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run explicitly in release"]
async fn store_latencies_on_10k_instances() {
    const N: usize = 10_000;
    let dir = TempDir::new("bench");
    let store = Arc::new(SqliteStore::open_in(dir.path(), SqliteOptions::default()).unwrap());

    // Fill with 64 concurrent writers: measures group commit.
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for _ in 0..64 {
        let (store, next) = (store.clone(), next.clone());
        tasks.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= N {
                    break;
                }
                store
                    .create_instance_with_operation(
                        fleet_instance(n),
                        new_op(OperationKind::Create),
                        None,
                    )
                    .await
                    .unwrap();
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let fill = t.elapsed();
    println!(
        "create_instance_with_operation x{N}, 64 concurrent: {:.2}s = {:.0}/s",
        fill.as_secs_f64(),
        N as f64 / fill.as_secs_f64()
    );

    let mut s = Vec::new();
    for k in 0..2_000 {
        let id = format!("dds-bench{:05}", (k * 7919) % N);
        assert!(timed(&mut s, store.get_instance(&id))
            .await
            .unwrap()
            .is_some());
    }
    println!("get_instance: {}", percentiles(s));

    let cases: Vec<(&str, InstanceFilter, Page)> = vec![
        (
            "list default page 1 size 30",
            InstanceFilter::default(),
            Page::new(1, 30).unwrap(),
        ),
        (
            "list default page 1 size 100",
            InstanceFilter::default(),
            Page::new(1, 100).unwrap(),
        ),
        (
            "list default page 70 size 100",
            InstanceFilter::default(),
            Page::new(70, 100).unwrap(),
        ),
        (
            "list region page 1 size 30",
            InstanceFilter {
                region_id: Some("cn-beijing".into()),
                ..InstanceFilter::default()
            },
            Page::new(1, 30).unwrap(),
        ),
        (
            "list sharding page 1 size 30",
            InstanceFilter {
                instance_type: DbInstanceType::Sharding,
                ..InstanceFilter::default()
            },
            Page::new(1, 30).unwrap(),
        ),
        (
            "list status filter",
            InstanceFilter {
                status: Some(DbInstanceStatus::MinorVersionUpgrading),
                ..InstanceFilter::default()
            },
            Page::new(1, 30).unwrap(),
        ),
        (
            "list tag filter",
            InstanceFilter {
                tags: vec![TagFilter {
                    key: "team".into(),
                    value: Some("team-7".into()),
                }],
                ..InstanceFilter::default()
            },
            Page::new(1, 30).unwrap(),
        ),
        (
            "list description substring",
            InstanceFilter {
                description: Some("service-42 ".into()),
                ..InstanceFilter::default()
            },
            Page::new(1, 30).unwrap(),
        ),
    ];
    for (name, filter, page) in cases {
        let mut s = Vec::new();
        let mut total = 0;
        for _ in 0..200 {
            total = timed(&mut s, store.list_instances(&filter, page))
                .await
                .unwrap()
                .total;
        }
        println!("{name} (total {total}): {}", percentiles(s));
    }

    // Sequential writes: each waits for its own fsync.
    let ids: Vec<String> = (0..N)
        .filter(|n| n % 10 >= 3 && !n.is_multiple_of(50))
        .take(200)
        .map(|n| format!("dds-bench{n:05}"))
        .collect();
    let mut s = Vec::new();
    let mut ops = Vec::new();
    for id in &ids {
        // The create operation is unfinished: finish it first (not timed).
        let create = store.list_operations(id, 1).await.unwrap().remove(0);
        let c = store
            .claim_operation(&create.id, "bench", 60_000)
            .await
            .unwrap();
        store
            .finish_operation(
                &create.id,
                c.epoch,
                OperationFinish {
                    outcome: OperationOutcome::Succeeded,
                    state: Value::Null,
                    report: None,
                    instance: InstanceChange::Update(InstanceUpdate::default()),
                },
            )
            .await
            .unwrap();
        let op = new_op(OperationKind::Upgrade);
        timed(
            &mut s,
            store.begin_operation(
                id,
                &[DbInstanceStatus::Running],
                DbInstanceStatus::MinorVersionUpgrading,
                op.clone(),
                None,
            ),
        )
        .await
        .unwrap();
        ops.push(op.id);
    }
    println!("begin_operation, sequential: {}", percentiles(s));
    let mut s = Vec::new();
    let mut epochs = Vec::new();
    for op in &ops {
        epochs.push(
            timed(&mut s, store.claim_operation(op, "bench", 60_000))
                .await
                .unwrap()
                .epoch,
        );
    }
    println!("claim_operation, sequential: {}", percentiles(s));
    let state = serde_json::json!({"phase": "ReplicaSets", "procs": (0..9).map(|n| serde_json::json!({"node": n, "step": "Gating", "since": 12345678})).collect::<Vec<_>>()});
    let mut s = Vec::new();
    for (op, epoch) in ops.iter().zip(&epochs) {
        timed(
            &mut s,
            store.save_operation(op, *epoch, state.clone(), InstanceUpdate::default()),
        )
        .await
        .unwrap();
    }
    println!(
        "save_operation (~1 KB state), sequential: {}",
        percentiles(s)
    );

    // 64 concurrent saves: group commit.
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (op, epoch) in ops.iter().cloned().zip(epochs.iter().copied()) {
        let (store, state) = (store.clone(), state.clone());
        tasks.spawn(async move {
            for _ in 0..10 {
                store
                    .save_operation(&op, epoch, state.clone(), InstanceUpdate::default())
                    .await
                    .unwrap();
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let n = ops.len() * 10;
    println!(
        "save_operation x{n}, {} concurrent: {:.0}/s",
        ops.len(),
        n as f64 / t.elapsed().as_secs_f64()
    );
    let file = std::fs::metadata(store.path()).unwrap().len();
    println!("database file: {:.1} MiB", file as f64 / 1048576.0);
}
