//! `ddsd bench plane`: the same sharded-cluster upgrade (`--shards` shards, 2 mongos, pinned on the
//! oldest 4.4 kernel) `--runs` times on each data plane at the same `--sim-speed`:
//!
//! - `sim`: a fresh `ddsd serve` whose embedded simulated plane runs the deployment;
//! - `mongodb`: a fresh `ddsd sim-fleet` holding the deployment and a fresh
//!   `ddsd serve --plane mongodb` that imports it and drives it through the driver and the agents.
//!
//! For each run, the wall time from the accepted `UpgradeDBInstanceKernelVersion` to `Running`;
//! the medians and their ratio (mongodb / sim). For the mongodb plane, from `GET /metrics`
//! before and after each run: observations, the MongoDB commands and the milliseconds one
//! observation costs. A measurement, not a test; results and command in BENCHMARKS.md.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde_json::Value;

use crate::tools::bench::{start_server, start_server_with};
use ddsd_client::{Client, Credentials};

const OLD_44: &str = "mongodb_20211020_4.4.6";
const PASSWORD: &str = "Bench#pass1";

#[derive(Debug, Clone, clap::Args)]
pub struct PlaneArgs {
    /// Upgrades per plane.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Shards of the cluster (plus one config server set and 2 mongos).
    #[arg(long, default_value_t = 3)]
    pub shards: u32,
    /// Simulation speed of both planes.
    #[arg(long, default_value_t = 30.0)]
    pub sim_speed: f64,
}

struct Fleet {
    child: Child,
    client: Client,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_fleet(binary: &Path, dir: &Path, speed: f64) -> anyhow::Result<Fleet> {
    let log = std::fs::File::create(dir.join("fleet.log"))?;
    let mut child = Command::new(binary)
        .args(["sim-fleet", "--listen", "127.0.0.1:0", "--sim-speed"])
        .arg(speed.to_string())
        .arg("--data-dir")
        .arg(dir.join("fleet"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .context("starting sim-fleet")?;
    let mut lines = BufReader::new(child.stdout.take().context("no stdout")?).lines();
    let (mut id, mut secret) = (None, None);
    let endpoint = loop {
        let Some(line) = lines.next() else {
            bail!("sim-fleet exited before listening");
        };
        let line = line?;
        if let Some(v) = line.strip_prefix("AccessKeyId: ") {
            id = Some(v.to_string());
        } else if let Some(v) = line.strip_prefix("AccessKeySecret: ") {
            secret = Some(v.to_string());
        } else if let Some(v) = line.strip_prefix("ddsd sim-fleet listening on ") {
            break v.to_string();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    let (Some(id), Some(secret)) = (id, secret) else {
        bail!("sim-fleet did not print a fresh admin key");
    };
    let client = Client::for_version(
        &endpoint,
        Credentials {
            access_key_id: id,
            secret: acs_rpc::Secret::new(secret),
        },
        crate::agent::api::AGENT_API_VERSION,
        Duration::from_secs(120),
    )?;
    Ok(Fleet { child, client })
}

async fn status(api: &Client, id: &str) -> anyhow::Result<String> {
    let v = api
        .call("DescribeDBInstanceAttribute", &[("DBInstanceId", id)])
        .await?;
    Ok(v["DBInstances"]["DBInstance"][0]["DBInstanceStatus"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

async fn wait_running(api: &Client, id: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        if status(api, id).await? == "Running" {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{id} not Running after 15 minutes");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Wall seconds from the accepted upgrade to `Running`, and that it succeeded.
async fn upgrade(api: &Client, id: &str) -> anyhow::Result<f64> {
    // A fresh deployment may still be catching up (the preflight refuses a lagging member).
    let mut tries = 0;
    let started = loop {
        let started = Instant::now();
        match api
            .call("UpgradeDBInstanceKernelVersion", &[("DBInstanceId", id)])
            .await
        {
            Ok(_) => break started,
            Err(e) if e.code() == Some("IncorrectDBInstanceState") && tries < 100 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    wait_running(api, id).await?;
    let took = started.elapsed().as_secs_f64();
    let ops = api
        .call("DdsdDescribeOperations", &[("DBInstanceId", id)])
        .await?;
    let op = &ops["Operations"]["Operation"][0];
    if op["Status"] != "Succeeded" {
        bail!("the upgrade of {id} ended {}", op["Status"]);
    }
    Ok(took)
}

/// `name value` lines of `GET /metrics` (no labels).
async fn metric(endpoint: &str, name: &str) -> anyhow::Result<f64> {
    let text = reqwest::get(format!("{endpoint}/metrics"))
        .await?
        .text()
        .await?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no {name} in /metrics"))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

pub async fn bench(args: PlaneArgs) -> anyhow::Result<()> {
    if args.runs == 0 || args.runs > 50 || !(2..=8).contains(&args.shards) {
        bail!("--runs must be 1 to 50 and --shards 2 to 8");
    }
    let binary = std::env::current_exe().context("locating this binary")?;
    let dir = std::env::temp_dir().join(format!("ddsd-bench-plane-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(dir.join("sim"))?;
    std::fs::create_dir_all(dir.join("mongodb"))?;
    let shards = args.shards.to_string();

    // The in-process simulation.
    let mut sim_s = Vec::new();
    {
        let server = start_server(&binary, &dir.join("sim"), Some(args.sim_speed))?;
        let api = Client::new(&server.endpoint, server.credentials.clone())?;
        for _ in 0..args.runs {
            let mut q: Vec<(String, String)> = vec![
                ("RegionId".into(), "cn-hangzhou".into()),
                ("Engine".into(), "MongoDB".into()),
                ("EngineVersion".into(), "4.4".into()),
                ("KernelVersion".into(), OLD_44.into()),
                ("ConfigServer.1.Class".into(), "dds.cs.mid".into()),
                ("ConfigServer.1.Storage".into(), "20".into()),
                ("Mongos.1.Class".into(), "dds.mongos.mid".into()),
                ("Mongos.2.Class".into(), "dds.mongos.mid".into()),
            ];
            for i in 1..=args.shards {
                q.push((format!("ReplicaSet.{i}.Class"), "dds.shard.mid".into()));
                q.push((format!("ReplicaSet.{i}.Storage"), "20".into()));
            }
            let params: Vec<(&str, &str)> =
                q.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let v = api.call("DdsdCreateShardingDBInstance", &params).await?;
            let id = v["DBInstanceId"].as_str().context("no id")?.to_string();
            wait_running(&api, &id).await?;
            let took = upgrade(&api, &id).await?;
            println!("sim      run: {took:.2} s");
            sim_s.push(took);
        }
    }

    // The mongodb plane over a separate fleet.
    let mut mongo_s = Vec::new();
    let (mut per_obs_cmds, mut per_obs_ms, mut obs_per_run) = (Vec::new(), Vec::new(), Vec::new());
    {
        let fleet = start_fleet(&binary, &dir.join("mongodb"), args.sim_speed)?;
        let server =
            start_server_with(&binary, &dir.join("mongodb"), None, "plane = \"mongodb\"\n")?;
        let api = Client::new(&server.endpoint, server.credentials.clone())?;
        for _ in 0..args.runs {
            let m: Value = fleet
                .client
                .call(
                    "CreateDeployment",
                    &[
                        ("Kind", "sharding"),
                        ("KernelVersion", OLD_44),
                        ("Shards", &shards),
                        ("AccountPassword", PASSWORD),
                    ],
                )
                .await?;
            let mut q: Vec<(String, String)> = vec![
                (
                    "SeedList".into(),
                    m["SeedList"].as_str().unwrap_or_default().into(),
                ),
                ("Username".into(), "root".into()),
                ("Password".into(), PASSWORD.into()),
            ];
            for (i, a) in m["Agents"].as_array().into_iter().flatten().enumerate() {
                for f in ["Endpoint", "AccessKeyId", "AccessKeySecret"] {
                    q.push((
                        format!("Agent.{}.{f}", i + 1),
                        a[f].as_str().unwrap_or_default().into(),
                    ));
                }
            }
            let params: Vec<(&str, &str)> =
                q.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let v = api.call("DdsdImportDBInstance", &params).await?;
            let id = v["DBInstanceId"].as_str().context("no id")?.to_string();
            let obs0 = metric(&server.endpoint, "ddsd_plane_observations_total").await?;
            let cmd0 = metric(&server.endpoint, "ddsd_plane_commands_total").await?;
            let sec0 = metric(&server.endpoint, "ddsd_plane_observe_seconds_total").await?;
            let took = upgrade(&api, &id).await?;
            let obs = metric(&server.endpoint, "ddsd_plane_observations_total").await? - obs0;
            let cmd = metric(&server.endpoint, "ddsd_plane_commands_total").await? - cmd0;
            let sec = metric(&server.endpoint, "ddsd_plane_observe_seconds_total").await? - sec0;
            println!(
                "mongodb  run: {took:.2} s, {obs} observations, {:.1} commands and {:.1} ms each",
                cmd / obs.max(1.0),
                sec * 1000.0 / obs.max(1.0)
            );
            mongo_s.push(took);
            per_obs_cmds.push(cmd / obs.max(1.0));
            per_obs_ms.push(sec * 1000.0 / obs.max(1.0));
            obs_per_run.push(obs);
        }
    }
    let (s, m) = (median(&mut sim_s), median(&mut mongo_s));
    println!(
        "\n{} shards + config servers + 2 mongos at sim speed {}, {} runs each",
        args.shards, args.sim_speed, args.runs
    );
    println!(
        "upgrade wall time, median: sim {s:.2} s, mongodb {m:.2} s, ratio {:.2}x",
        m / s
    );
    println!(
        "one observation (mongodb plane), median: {:.1} commands, {:.1} ms; {:.0} observations per upgrade",
        median(&mut per_obs_cmds),
        median(&mut per_obs_ms),
        median(&mut obs_per_run)
    );
    println!(
        "machine load average (1/5/15 min) at the end: {}",
        crate::tools::bench_api::load_average()
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
