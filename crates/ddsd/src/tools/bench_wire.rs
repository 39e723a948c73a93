//! `ddsd bench wire`: what an application sees of a simulated member through the official Rust
//! MongoDB driver, against a fresh `ddsd serve` (this binary) on a temporary data dir.
//!
//! - `latency`: one replica set; `ping`, `find` by `_id` and `insert` (`w: 1` and `w: "majority"`)
//!   round trips per second with their median and p99, from 1 and from 16 concurrent tasks (one
//!   driver pool, as an application has);
//! - `footprint`: `--instances` replica sets (three processes each, so three listeners), all
//!   `Running`, then `--idle-connections` idle driver connections spread over the members; the
//!   server's resident memory and open file descriptors before and after;
//! - `failover`: `--upgrades` times, a pinned replica set upgraded while a writer with retryable
//!   `w: "majority"` inserts; the longest stretch the writer could not write (wall time) against
//!   the report's write-unavailable window (plane and wall time).
//!
//! A measurement, not a test: it prints numbers and fails only if the server does. Results and
//! commands are in BENCHMARKS.md.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bson::{doc, Document};
use mongodb::options::{ClientOptions, WriteConcern};
use serde_json::Value;

use crate::tools::bench::{percentiles, resident_kib, start_server, Server};
use ddsd_client::{Client, Signature};

const PASSWORD: &str = "Bench!pass1";
/// The oldest catalogued 4.4 kernel: an upgrade always has somewhere to go.
const OLD_44: &str = "mongodb_20211020_4.4.6";

#[derive(Debug, Clone, clap::Args)]
pub struct WireArgs {
    /// What to measure.
    #[arg(value_enum)]
    pub what: WireBench,
    /// Length of each latency run.
    #[arg(long, default_value_t = 5)]
    pub duration_secs: u64,
    /// `footprint`: replica sets to create.
    #[arg(long, default_value_t = 1_000)]
    pub instances: usize,
    /// `footprint`: idle driver connections to open.
    #[arg(long, default_value_t = 1_000)]
    pub idle_connections: usize,
    /// `failover`: upgrades to run.
    #[arg(long, default_value_t = 20)]
    pub upgrades: usize,
    /// Simulation speed of the server's data plane.
    #[arg(long, default_value_t = 20.0)]
    pub sim_speed: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WireBench {
    Latency,
    Footprint,
    Failover,
}

pub async fn bench(args: WireArgs) -> anyhow::Result<()> {
    if args.duration_secs == 0 || args.duration_secs > 600 {
        bail!("--duration-secs must be between 1 and 600");
    }
    let binary = std::env::current_exe().context("locating this binary")?;
    let dir = std::env::temp_dir().join(format!("ddsd-bench-wire-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let server = start_server(&binary, &dir, Some(args.sim_speed))?;
    let api = Client::with_signature(&server.endpoint, server.credentials.clone(), Signature::V3)?;
    let out = match args.what {
        WireBench::Latency => latency(&api, &args).await,
        WireBench::Footprint => footprint(&api, &server, &args).await,
        WireBench::Failover => failover(&api, &args).await,
    };
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "machine load average (1/5/15 min) at the end: {}",
        crate::tools::bench_api::load_average()
    );
    out
}

async fn create(api: &Client, pinned: bool) -> anyhow::Result<String> {
    let mut p = vec![
        ("RegionId", "cn-hangzhou"),
        ("Engine", "MongoDB"),
        ("EngineVersion", "4.4"),
        ("DBInstanceClass", "dds.mongo.mid"),
        ("DBInstanceStorage", "20"),
        ("AccountPassword", PASSWORD),
    ];
    let action = if pinned {
        p.push(("KernelVersion", OLD_44));
        "DdsdCreateDBInstance"
    } else {
        "CreateDBInstance"
    };
    let v = api.call(action, &p).await?;
    Ok(v["DBInstanceId"]
        .as_str()
        .context("no DBInstanceId")?
        .to_string())
}

async fn attribute(api: &Client, id: &str) -> anyhow::Result<Value> {
    let v = api
        .call("DescribeDBInstanceAttribute", &[("DBInstanceId", id)])
        .await?;
    Ok(v["DBInstances"]["DBInstance"][0].clone())
}

async fn wait_status(api: &Client, id: &str, want: &str) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let a = attribute(api, id).await?;
        if a["DBInstanceStatus"] == want {
            return Ok(a);
        }
        if Instant::now() > deadline {
            bail!("{id} is {} after 10 minutes", a["DBInstanceStatus"]);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn members(a: &Value) -> Vec<String> {
    a["ReplicaSets"]["ReplicaSet"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| {
            Some(format!(
                "{}:{}",
                s["ConnectionDomain"].as_str()?,
                s["ConnectionPort"].as_str()?
            ))
        })
        .collect()
}

async fn driver(a: &Value, extra: &str) -> anyhow::Result<mongodb::Client> {
    let uri = format!(
        "mongodb://root:{}@{}/?replicaSet={}&authSource=admin&heartbeatFrequencyMS=500{extra}",
        PASSWORD.replace('!', "%21"),
        members(a).join(","),
        a["ReplicaSetName"].as_str().unwrap_or_default()
    );
    let mut opts = ClientOptions::parse(&uri).await?;
    opts.max_pool_size = Some(64);
    Ok(mongodb::Client::with_options(opts)?)
}

/// Runs `op` from `tasks` tasks for `secs` seconds; ops/s, median and p99 in microseconds.
async fn measure<F, Fut>(tasks: usize, secs: u64, op: F) -> anyhow::Result<(f64, f64, f64)>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let op = Arc::new(op);
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for t in 0..tasks {
        let (op, stop) = (op.clone(), stop.clone());
        handles.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut i = t as u64 * 1_000_000_000;
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                op(i).await?;
                samples.push(started.elapsed());
                i += 1;
            }
            anyhow::Ok(samples)
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await??);
    }
    let rate = all.len() as f64 / started.elapsed().as_secs_f64();
    let (p50, p99) = percentiles(&mut all);
    Ok((rate, p50, p99))
}

async fn latency(api: &Client, args: &WireArgs) -> anyhow::Result<()> {
    let id = create(api, false).await?;
    let a = wait_status(api, &id, "Running").await?;
    let client = driver(&a, "").await?;
    let db = client.database("bench");
    let docs: Vec<Document> = (0..1_000_i64).map(|i| doc! {"_id": i, "v": i}).collect();
    db.collection::<Document>("read").insert_many(docs).await?;
    println!(
        "one replica set ({id}), Rust driver mongodb 3.9.1, {} s per run",
        args.duration_secs
    );
    println!("| operation | tasks | ops/s | median | p99 |");
    println!("|---|---|---|---|---|");
    for tasks in [1usize, 16] {
        let secs = args.duration_secs;
        let d = db.clone();
        let r = measure(tasks, secs, move |_| {
            let d = d.clone();
            async move {
                d.run_command(doc! {"ping": 1}).await?;
                Ok(())
            }
        })
        .await?;
        row("ping", tasks, r);
        let c = db.collection::<Document>("read");
        let r = measure(tasks, secs, move |i| {
            let c = c.clone();
            async move {
                c.find_one(doc! {"_id": (i % 1_000) as i64}).await?;
                Ok(())
            }
        })
        .await?;
        row("find by _id", tasks, r);
        for (label, wc) in [
            ("insert w:1", WriteConcern::nodes(1)),
            ("insert w:majority", WriteConcern::majority()),
        ] {
            let coll = db.collection_with_options::<Document>(
                &format!("insert_{tasks}_{}", label.len()),
                mongodb::options::CollectionOptions::builder()
                    .write_concern(wc)
                    .build(),
            );
            let r = measure(tasks, secs, move |i| {
                let coll = coll.clone();
                async move {
                    coll.insert_one(doc! {"_id": i as i64}).await?;
                    Ok(())
                }
            })
            .await?;
            row(label, tasks, r);
        }
    }
    Ok(())
}

fn row(op: &str, tasks: usize, (rate, p50, p99): (f64, f64, f64)) {
    println!(
        "| {op} | {tasks} | {rate:.0} | {:.2} ms | {:.2} ms |",
        p50 / 1000.0,
        p99 / 1000.0
    );
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

async fn footprint(api: &Client, server: &Server, args: &WireArgs) -> anyhow::Result<()> {
    let pid = server.child.id();
    let (rss0, fds0) = (resident_kib(pid)?, open_fds(pid));
    let started = Instant::now();
    let mut ids = Vec::with_capacity(args.instances);
    for _ in 0..args.instances {
        ids.push(create(api, false).await?);
    }
    let mut addrs = Vec::new();
    for id in &ids {
        let a = wait_status(api, id, "Running").await?;
        addrs.extend(members(&a));
    }
    println!(
        "{} replica sets Running in {:.1} s; {} client-visible members (plus a hidden one each)",
        ids.len(),
        started.elapsed().as_secs_f64(),
        addrs.len()
    );
    // Listeners open once the processes are up; give the supervisor a moment.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (rss1, fds1) = (resident_kib(pid)?, open_fds(pid));
    let mut conns = Vec::new();
    for i in 0..args.idle_connections.min(addrs.len().max(1) * 16) {
        let addr = &addrs[i % addrs.len().max(1)];
        let stream = tokio::net::TcpStream::connect(addr.as_str()).await?;
        conns.push(stream);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss2, fds2) = (resident_kib(pid)?, open_fds(pid));
    println!("| state | VmRSS | open fds |");
    println!("|---|---|---|");
    println!("| empty | {:.1} MiB | {fds0} |", rss0 as f64 / 1024.0);
    println!(
        "| {} instances Running | {:.1} MiB | {fds1} |",
        ids.len(),
        rss1 as f64 / 1024.0
    );
    println!(
        "| + {} idle connections | {:.1} MiB | {fds2} |",
        conns.len(),
        rss2 as f64 / 1024.0
    );
    Ok(())
}

async fn failover(api: &Client, args: &WireArgs) -> anyhow::Result<()> {
    let mut client_gaps = Vec::new();
    let mut report_plane = Vec::new();
    let mut report_wall = Vec::new();
    for run in 0..args.upgrades {
        let id = create(api, true).await?;
        let a = wait_status(api, &id, "Running").await?;
        let client = driver(&a, "&retryWrites=true&w=majority").await?;
        let coll = client.database("bench").collection::<Document>("events");
        coll.insert_one(doc! {"_id": -1_i64}).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (coll, stop) = (coll.clone(), stop.clone());
            tokio::spawn(async move {
                let mut last_ok = Instant::now();
                let (mut longest, mut n, mut errors) = (Duration::ZERO, 0_i64, 0_u64);
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    match coll.insert_one(doc! {"_id": n}).await {
                        Ok(_) => {
                            longest = longest.max(last_ok.elapsed());
                            last_ok = Instant::now();
                        }
                        Err(_) => errors += 1,
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                (longest, n, errors)
            })
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        api.call("UpgradeDBInstanceKernelVersion", &[("DBInstanceId", &id)])
            .await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        wait_status(api, &id, "Running").await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, Ordering::Relaxed);
        let (gap, writes, errors) = writer.await?;
        let ops = api
            .call("DdsdDescribeOperations", &[("DBInstanceId", &id)])
            .await?;
        let rs = &ops["Operations"]["Operation"][0]["Report"]["ReplicaSets"][0];
        let windows = rs["WriteUnavailable"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let plane = windows
            .iter()
            .filter_map(|w| w["DurationMs"].as_u64())
            .max()
            .unwrap_or(0);
        let wall = windows
            .iter()
            .filter_map(|w| w["WallDurationMs"].as_u64())
            .max()
            .unwrap_or(0);
        eprintln!(
            "bench: run {}: client gap {:.0} ms, report {plane} ms plane / {wall} ms wall, {writes} writes, {errors} errors",
            run + 1,
            gap.as_secs_f64() * 1000.0
        );
        client_gaps.push(gap);
        report_plane.push(Duration::from_millis(plane));
        report_wall.push(Duration::from_millis(wall));
        api.call("DeleteDBInstance", &[("DBInstanceId", &id)])
            .await
            .ok();
    }
    let stat = |v: &mut Vec<Duration>| {
        v.sort();
        let median = v[v.len() / 2].as_secs_f64() * 1000.0;
        let max = v.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0);
        (median, max)
    };
    let (cg, cgm) = stat(&mut client_gaps);
    let (rp, rpm) = stat(&mut report_plane);
    let (rw, rwm) = stat(&mut report_wall);
    println!(
        "{} upgrades of a replica set at sim_speed {}",
        args.upgrades, args.sim_speed
    );
    println!("| measure | median | max |");
    println!("|---|---|---|");
    println!("| report write-unavailable window, plane time | {rp:.0} ms | {rpm:.0} ms |");
    println!("| report write-unavailable window, wall time | {rw:.0} ms | {rwm:.0} ms |");
    println!(
        "| client's longest gap between acknowledged writes, wall | {cg:.0} ms | {cgm:.0} ms |"
    );
    Ok(())
}
