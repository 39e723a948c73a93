//! `ddsd bench`: starts a fresh `ddsd serve` (this binary) on a temporary data dir, loads
//! `--instances` replica sets through the signed HTTP API (`CreateDBInstance`, `--concurrency`
//! requests in flight), optionally waits until the runtime has brought them all to `Running`,
//! then measures, one request at a time, the latency of `DescribeDBInstances` (one page of the
//! default `PageSize` 30: the first page, then random pages) and `DescribeDBInstanceAttribute` (a
//! random instance), and reads the server's resident memory (`VmRSS` in `/proc/<pid>/status`).
//!
//! It is a measurement, not a test: it prints numbers and fails only if the server does. Results
//! and the exact command are recorded in BENCHMARKS.md.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rand::Rng as _;

use ddsd_client::{Client, Credentials, Signature};

#[derive(Debug, Clone, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    /// `ddsd bench api` / `ddsd bench soak` (see `bench_api.rs`); without one, this benchmark.
    #[command(subcommand)]
    pub mode: Option<crate::tools::bench_api::BenchMode>,
    /// Instances to load.
    #[arg(long, default_value_t = 10_000)]
    pub instances: usize,
    /// Creates in flight while loading.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Measured requests per action.
    #[arg(long, default_value_t = 2_000)]
    pub requests: usize,
    /// Wait until every instance is Running before measuring.
    #[arg(long)]
    pub wait_running: bool,
    /// Simulation speed-up of the server's data plane (`sim_speed` in its config).
    #[arg(long)]
    pub sim_speed: Option<f64>,
    /// ddsd binary to start (default: this one).
    #[arg(long)]
    pub binary: Option<PathBuf>,
    /// Keep the data dir afterwards (its path is printed).
    #[arg(long)]
    pub keep: bool,
    /// Signature scheme of the measuring client.
    #[arg(long, value_enum, default_value = "v3")]
    pub signature: Signature,
}

/// A `ddsd serve` child, killed on drop.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) endpoint: String,
    pub(crate) credentials: Credentials,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn start_server(
    binary: &Path,
    dir: &Path,
    sim_speed: Option<f64>,
) -> anyhow::Result<Server> {
    start_server_with(binary, dir, sim_speed, "")
}

/// [`start_server`] with more of the configuration file (`extra`, TOML) after the basics.
pub(crate) fn start_server_with(
    binary: &Path,
    dir: &Path,
    sim_speed: Option<f64>,
    extra: &str,
) -> anyhow::Result<Server> {
    let config = dir.join("ddsd.toml");
    let mut toml = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nlog_format = \"json\"\n",
        dir.join("data").display()
    );
    if let Some(speed) = sim_speed {
        toml.push_str(&format!("sim_speed = {speed}\n"));
    }
    toml.push_str(extra);
    std::fs::write(&config, toml)?;
    let log = std::fs::File::create(dir.join("ddsd.log"))?;
    let mut child = Command::new(binary)
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let (mut id, mut secret) = (None, None);
    let endpoint = loop {
        let Some(line) = lines.next() else {
            let _ = child.kill();
            bail!(
                "ddsd exited before listening; see {}",
                dir.join("ddsd.log").display()
            );
        };
        let line = line?;
        if let Some(v) = line.strip_prefix("AccessKeyId: ") {
            id = Some(v.to_string());
        } else if let Some(v) = line.strip_prefix("AccessKeySecret: ") {
            secret = Some(v.to_string());
        } else if let Some(v) = line.strip_prefix("ddsd listening on ") {
            break v.to_string();
        }
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let (Some(id), Some(secret)) = (id, secret) else {
        bail!("ddsd did not print a fresh admin key");
    };
    Ok(Server {
        child,
        endpoint,
        credentials: Credentials {
            access_key_id: id,
            secret: acs_rpc::Secret::new(secret),
        },
    })
}

/// `VmRSS` of a process, in KiB.
pub fn resident_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/<pid>/status")
}

/// Median and 99th percentile (nearest rank) of latencies, in microseconds.
pub fn percentiles(samples: &mut [Duration]) -> (f64, f64) {
    if samples.is_empty() {
        return (0.0, 0.0);
    }
    samples.sort();
    let at = |q: f64| {
        let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
        samples[rank - 1].as_secs_f64() * 1e6
    };
    (at(0.5), at(0.99))
}

const CREATE: &[(&str, &str)] = &[
    ("RegionId", "cn-hangzhou"),
    ("EngineVersion", "4.4"),
    ("DBInstanceClass", "dds.mongo.mid"),
    ("DBInstanceStorage", "20"),
];

async fn load(client: &Client, n: usize, concurrency: usize) -> anyhow::Result<Vec<String>> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let client = client.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < n {
                let v = client.call("CreateDBInstance", CREATE).await?;
                ids.push(
                    v["DBInstanceId"]
                        .as_str()
                        .context("no DBInstanceId")?
                        .to_string(),
                );
            }
            anyhow::Ok(ids)
        }));
    }
    let mut ids = Vec::with_capacity(n);
    for t in tasks {
        ids.extend(t.await??);
    }
    Ok(ids)
}

async fn wait_running(client: &Client, total: usize) -> anyhow::Result<()> {
    loop {
        let v = client
            .call(
                "DescribeDBInstances",
                &[("DBInstanceStatus", "Running"), ("PageSize", "30")],
            )
            .await?;
        let running = v["TotalCount"].as_u64().unwrap_or(0) as usize;
        if running >= total {
            return Ok(());
        }
        eprintln!("bench: {running}/{total} Running");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

pub fn run(
    args: BenchArgs,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), crate::client::cli::Failure>>>> {
    if let Some(mode) = args.mode {
        return crate::tools::bench_api::run(mode);
    }
    Box::pin(async move { Ok(bench(args).await?) })
}

async fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let binary = match &args.binary {
        Some(b) => b.clone(),
        None => std::env::current_exe().context("locating this binary")?,
    };
    let dir = std::env::temp_dir().join(format!("ddsd-bench-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let server = start_server(&binary, &dir, args.sim_speed)?;
    let pid = server.child.id();
    let client =
        Client::with_signature(&server.endpoint, server.credentials.clone(), args.signature)?;
    let rss_empty = resident_kib(pid)?;

    let started = Instant::now();
    let ids = load(&client, args.instances, args.concurrency).await?;
    let load_secs = started.elapsed().as_secs_f64();
    eprintln!(
        "bench: loaded {} instances in {load_secs:.1} s ({:.0}/s)",
        ids.len(),
        ids.len() as f64 / load_secs
    );
    if args.wait_running {
        let t = Instant::now();
        wait_running(&client, ids.len()).await?;
        eprintln!(
            "bench: all Running {:.1} s after loading",
            t.elapsed().as_secs_f64()
        );
    }
    let rss_loaded = resident_kib(pid)?;

    let mut first = Vec::with_capacity(args.requests);
    for _ in 0..args.requests {
        let t = Instant::now();
        client.call("DescribeDBInstances", &[]).await?;
        first.push(t.elapsed());
    }
    let pages = ids.len().div_ceil(30).max(1) as u32;
    let mut list = Vec::with_capacity(args.requests);
    for _ in 0..args.requests {
        let page = rand::thread_rng().gen_range(1..=pages).to_string();
        let t = Instant::now();
        client
            .call("DescribeDBInstances", &[("PageNumber", &page)])
            .await?;
        list.push(t.elapsed());
    }
    let mut attr = Vec::with_capacity(args.requests);
    for _ in 0..args.requests {
        let id = &ids[rand::thread_rng().gen_range(0..ids.len())];
        let t = Instant::now();
        client
            .call("DescribeDBInstanceAttribute", &[("DBInstanceId", id)])
            .await?;
        attr.push(t.elapsed());
    }
    let rss_after = resident_kib(pid)?;
    let (first_p50, first_p99) = percentiles(&mut first);
    let (list_p50, list_p99) = percentiles(&mut list);
    let (attr_p50, attr_p99) = percentiles(&mut attr);

    println!("instances loaded:                 {}", ids.len());
    println!(
        "load (CreateDBInstance x{}, {} in flight): {load_secs:.1} s, {:.0} creates/s",
        ids.len(),
        args.concurrency,
        ids.len() as f64 / load_secs
    );
    println!(
        "DescribeDBInstances (page 1 of 30, {} requests):      median {:.0} us, p99 {:.0} us",
        args.requests, first_p50, first_p99
    );
    println!(
        "DescribeDBInstances (random page of 30, {} requests): median {:.0} us, p99 {:.0} us",
        args.requests, list_p50, list_p99
    );
    println!(
        "DescribeDBInstanceAttribute ({} requests):           median {:.0} us, p99 {:.0} us",
        args.requests, attr_p50, attr_p99
    );
    println!(
        "ddsd VmRSS: {:.1} MiB empty, {:.1} MiB loaded, {:.1} MiB after the measurements",
        rss_empty as f64 / 1024.0,
        rss_loaded as f64 / 1024.0,
        rss_after as f64 / 1024.0
    );
    println!(
        "machine load average (1/5/15 min) at the end: {}",
        crate::tools::bench_api::load_average()
    );
    drop(server);
    if args.keep {
        println!("data dir kept: {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut s: Vec<Duration> = (1..=100).rev().map(Duration::from_micros).collect();
        assert_eq!(percentiles(&mut s), (50.0, 99.0));
        let mut one = vec![Duration::from_micros(7)];
        assert_eq!(percentiles(&mut one), (7.0, 7.0));
        assert_eq!(percentiles(&mut []), (0.0, 0.0));
    }

    #[test]
    fn reads_this_process_rss() {
        assert!(resident_kib(std::process::id()).unwrap() > 0);
    }
}
