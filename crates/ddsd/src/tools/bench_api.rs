//! `ddsd bench api`: signed API throughput and latency under concurrent load, and the server's
//! memory, against a ddsd on loopback — a fresh one it starts (default) or a running one
//! (`--endpoint`, with `--pid` or the pid found from the listening socket).
//!
//! Steps: start (or find) the server; build the instance pool (`--instances`, created through the
//! API — pinned to the second-newest 4.4 kernel when the admin key allows, so upgrades have
//! somewhere to go); wait for them to be `Running` when the mix writes; optionally start
//! `--running-upgrades` upgrades that stay in flight; then `--runs` times: warm up, read RSS, run
//! the load (`crate::tools::loadgen`) for `--duration-secs`, read RSS. Prints each run and the medians.
//!
//! `ddsd bench soak` (`crate::tools::soak`) reuses the same pieces.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde_json::{json, Value};

use crate::tools::loadgen::{self, LoadPlan, LoadReport, Mix, SignMode};
use ddsd_client::{Client, Credentials, Signature};

/// Longest run the generator accepts: it is a bounded measurement, not a traffic source.
pub const MAX_DURATION_SECS: u64 = 3_600;

#[derive(Debug, Clone, clap::Subcommand)]
pub enum BenchMode {
    /// Signed API load: throughput, p50/p99/p99.9 latency, error codes, server RSS.
    Api(ApiArgs),
    /// Mixed load with upgrades for minutes, killing and restarting ddsd; checks the end state.
    Soak(crate::tools::soak::SoakArgs),
    /// MongoDB wire protocol through the Rust driver: latency, footprint, failover windows.
    Wire(crate::tools::bench_wire::WireArgs),
    /// The mongodb data plane over `ddsd sim-fleet` against the in-process simulation: upgrade
    /// duration and the cost of one observation.
    Plane(crate::tools::bench_plane::PlaneArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct ApiArgs {
    /// A running ddsd (loopback only). Without it a fresh ddsd is started on a temporary dir.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// AccessKey for --endpoint (else --data-dir's admin key).
    #[arg(long, value_name = "ID")]
    pub access_key_id: Option<String>,
    #[arg(long, value_name = "SECRET")]
    pub access_key_secret: Option<String>,
    /// Data dir of the ddsd at --endpoint (its admin-key.json signs).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Process whose RSS to report (default: the one listening on the endpoint's port).
    #[arg(long)]
    pub pid: Option<u32>,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Length of each measured run.
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    /// Unmeasured load before each run.
    #[arg(long, default_value_t = 2)]
    pub warmup_secs: u64,
    /// Measured runs; the summary line gives their medians.
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// Operation weights: attr (DescribeDBInstanceAttribute), list (DescribeDBInstances),
    /// upgrade (UpgradeDBInstanceKernelVersion), restart (RestartDBInstance).
    #[arg(long, default_value = "attr")]
    pub mix: Mix,
    /// Signature scheme of the generated requests.
    #[arg(long, value_enum, default_value = "v3")]
    pub signature: SignMode,
    /// Total requests per second (paced); default: as fast as the answers come.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Instances in the pool (created when the server has none).
    #[arg(long, default_value_t = 100)]
    pub instances: usize,
    /// Upgrades started before measuring and left running (needs a slow --sim-speed to stay
    /// in flight).
    #[arg(long, default_value_t = 0)]
    pub running_upgrades: usize,
    /// How long to wait for the pool to be Running.
    #[arg(long, default_value_t = 600)]
    pub wait_running_secs: u64,
    /// Worker threads of the generator's runtime (it shares the machine with the server).
    #[arg(long, default_value_t = 1)]
    pub client_threads: usize,
    /// Data-plane simulation speed of a started server (`sim_speed`).
    #[arg(long)]
    pub sim_speed: Option<f64>,
    /// Restart a started server with this simulation speed once the pool is Running, before the
    /// upgrades start: load fast, then keep the upgrades in flight while measuring.
    #[arg(long)]
    pub upgrade_sim_speed: Option<f64>,
    /// ddsd binary to start (default: this one).
    #[arg(long)]
    pub binary: Option<PathBuf>,
    /// Extra TOML lines for a started server's config.
    #[arg(long, value_name = "TOML")]
    pub server_config: Vec<String>,
    /// Also print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(
    mode: BenchMode,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), crate::client::cli::Failure>>>> {
    Box::pin(async move {
        match mode {
            BenchMode::Api(args) => api(args).await?,
            BenchMode::Soak(args) => crate::tools::soak::soak(args).await?,
            BenchMode::Wire(args) => crate::tools::bench_wire::bench(args).await?,
            BenchMode::Plane(args) => crate::tools::bench_plane::bench(args).await?,
        }
        Ok(())
    })
}

/// A `ddsd serve` child on a fixed loopback port, killed on drop.
pub(crate) struct Spawned {
    pub child: Child,
    pub binary: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    pub addr: SocketAddr,
    pub credentials: Credentials,
}

impl Spawned {
    /// Writes a config (loopback port picked now and kept across restarts, data under `dir`,
    /// `extra` TOML lines) and starts ddsd on it.
    pub fn start(binary: &Path, dir: &Path, extra: &[String]) -> anyhow::Result<Spawned> {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            l.local_addr()?.port()
        };
        let config = dir.join("ddsd.toml");
        let mut toml = format!(
            "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\nlog_format = \"json\"\n",
            dir.join("data").display()
        );
        for line in extra {
            toml.push_str(line);
            toml.push('\n');
        }
        std::fs::write(&config, toml)?;
        let log = dir.join("ddsd.log");
        let (child, created) = spawn(binary, &config, &log)?;
        let credentials = match created {
            Some(c) => c,
            None => Credentials::from_data_dir(&dir.join("data"))?,
        };
        Ok(Spawned {
            child,
            binary: binary.to_path_buf(),
            config,
            log,
            addr: format!("127.0.0.1:{port}").parse()?,
            credentials,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()?;
        if !status.success() {
            bail!("kill -TERM failed");
        }
        Ok(self.child.wait()?)
    }

    /// Starts the server again on the same config, data dir and port.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        let (child, _) = spawn(&self.binary, &self.config, &self.log)?;
        self.child = child;
        Ok(())
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts `ddsd serve --config`, waits for the listening line; returns the admin key when this
/// start created it.
fn spawn(binary: &Path, config: &Path, log: &Path) -> anyhow::Result<(Child, Option<Credentials>)> {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let mut cmd = Command::new(binary);
    cmd.arg("serve")
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file);
    for (k, _) in std::env::vars() {
        // The config file must be what the server runs with.
        if k.starts_with("DDSD_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let (mut id, mut secret) = (None, None);
    loop {
        let Some(line) = lines.next() else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("ddsd exited before listening; see {}", log.display());
        };
        let line = line?;
        if let Some(v) = line.strip_prefix("AccessKeyId: ") {
            id = Some(v.to_string());
        } else if let Some(v) = line.strip_prefix("AccessKeySecret: ") {
            secret = Some(v.to_string());
        } else if line.starts_with("ddsd listening on ") {
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    let created = match (id, secret) {
        (Some(access_key_id), Some(secret)) => Some(Credentials {
            access_key_id,
            secret: acs_rpc::Secret::new(secret),
        }),
        _ => None,
    };
    Ok((child, created))
}

/// A kernel of 4.4 older than the newest, so instances created on it can be upgraded.
pub(crate) fn older_kernel() -> Option<String> {
    let catalog = dds_engine::catalog::Catalog::embedded();
    let kernels = catalog.kernels("4.4")?;
    let n = kernels.len();
    (n >= 2).then(|| kernels[n - 2].kernel_version.clone())
}

/// Creates `n` replica sets, `concurrency` at a time: pinned to `kernel` (admin extension) when
/// given, else with `CreateDBInstance`.
pub(crate) async fn create_pool(
    client: &Client,
    n: usize,
    concurrency: usize,
    kernel: Option<&str>,
) -> anyhow::Result<Vec<String>> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency.clamp(1, 64) {
        let client = client.clone();
        let next = next.clone();
        let kernel = kernel.map(str::to_string);
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < n {
                let mut params = vec![
                    ("RegionId", "cn-hangzhou"),
                    ("EngineVersion", "4.4"),
                    ("DBInstanceClass", "dds.mongo.mid"),
                    ("DBInstanceStorage", "20"),
                ];
                let action = match &kernel {
                    Some(k) => {
                        params.push(("KernelVersion", k.as_str()));
                        "DdsdCreateDBInstance"
                    }
                    None => "CreateDBInstance",
                };
                let v = client.call(action, &params).await?;
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

/// Instance ids the server already has (replica sets), up to `max`.
pub(crate) async fn existing_ids(client: &Client, max: usize) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    let mut page = 1u32;
    while ids.len() < max {
        let p = page.to_string();
        let v = client
            .call(
                "DescribeDBInstances",
                &[("PageSize", "100"), ("PageNumber", &p)],
            )
            .await?;
        let list = v["DBInstances"]["DBInstance"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if list.is_empty() {
            break;
        }
        ids.extend(
            list.iter()
                .filter_map(|i| i["DBInstanceId"].as_str().map(str::to_string)),
        );
        page += 1;
    }
    ids.truncate(max);
    Ok(ids)
}

/// Instances per status (replica sets and sharded clusters): `Running`, the transitional
/// statuses operations use, and `other` for whatever else is not `Running`.
pub(crate) async fn status_counts(
    client: &Client,
) -> anyhow::Result<std::collections::BTreeMap<String, u64>> {
    let count = |status: Option<&'static str>, kind: &'static str| {
        let client = client.clone();
        async move {
            let mut params = vec![("DBInstanceType", kind)];
            if let Some(s) = status {
                params.push(("DBInstanceStatus", s));
            }
            let v = client.call("DescribeDBInstances", &params).await?;
            anyhow::Ok(v["TotalCount"].as_u64().unwrap_or(0))
        }
    };
    let mut counts = std::collections::BTreeMap::new();
    let mut total = 0;
    let mut named = 0;
    for kind in ["replicate", "sharding"] {
        total += count(None, kind).await?;
        for status in [
            "Running",
            "Creating",
            "MinorVersionUpgrading",
            "Rebooting",
            "Deleting",
        ] {
            let n = count(Some(status), kind).await?;
            named += n;
            *counts.entry(status.to_string()).or_insert(0) += n;
        }
    }
    counts.insert("other".to_string(), total.saturating_sub(named));
    counts.retain(|k, n| *n > 0 || k == "Running");
    Ok(counts)
}

/// Polls until at least `want` instances are `Running`, up to `timeout`; returns how many are.
pub(crate) async fn wait_running(
    client: &Client,
    want: usize,
    timeout: Duration,
) -> anyhow::Result<u64> {
    let deadline = Instant::now() + timeout;
    loop {
        let v = client
            .call(
                "DescribeDBInstances",
                &[("DBInstanceStatus", "Running"), ("PageSize", "30")],
            )
            .await?;
        let running = v["TotalCount"].as_u64().unwrap_or(0);
        if running as usize >= want || Instant::now() >= deadline {
            return Ok(running);
        }
        eprintln!("bench: {running}/{want} Running");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// A load report as one JSON object.
pub(crate) fn report_json(r: &LoadReport) -> Value {
    let mut per_op = serde_json::Map::new();
    for (op, h) in &r.per_op {
        per_op.insert(
            op.action().into(),
            json!({
                "requests": h.len(),
                "p50_ms": loadgen::ms(h, 0.5),
                "p99_ms": loadgen::ms(h, 0.99),
                "p999_ms": loadgen::ms(h, 0.999),
            }),
        );
    }
    let outcomes: Vec<Value> = r
        .outcomes
        .iter()
        .map(|((op, status, code), n)| {
            json!({"action": op.action(), "status": status, "code": code, "count": n})
        })
        .collect();
    json!({
        "elapsed_secs": r.elapsed.as_secs_f64(),
        "requests": r.completed(),
        "throughput_rps": r.throughput(),
        "ok_throughput_rps": r.ok_throughput(),
        "p50_ms": loadgen::ms(&r.latency, 0.5),
        "p99_ms": loadgen::ms(&r.latency, 0.99),
        "p999_ms": loadgen::ms(&r.latency, 0.999),
        "max_ms": r.latency.max() as f64 / 1000.0,
        "per_action": per_op,
        "outcomes": outcomes,
    })
}

pub(crate) fn print_report(label: &str, r: &LoadReport) {
    println!(
        "{label}: {} requests in {:.1} s = {:.0} req/s ({:.0} answered 2xx); latency p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.1} ms",
        r.completed(),
        r.elapsed.as_secs_f64(),
        r.throughput(),
        r.ok_throughput(),
        loadgen::ms(&r.latency, 0.5),
        loadgen::ms(&r.latency, 0.99),
        loadgen::ms(&r.latency, 0.999),
        r.latency.max() as f64 / 1000.0
    );
    if r.per_op.len() > 1 {
        for (op, h) in &r.per_op {
            println!(
                "  {:<32} {:>8} requests  p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms",
                op.action(),
                h.len(),
                loadgen::ms(h, 0.5),
                loadgen::ms(h, 0.99),
                loadgen::ms(h, 0.999)
            );
        }
    }
    for ((op, status, code), n) in &r.outcomes {
        println!("  {:<32} {status:>3} {code:<40} {n}", op.action());
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The host's load average line, to print next to the numbers (the machine is shared).
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

async fn api(args: ApiArgs) -> anyhow::Result<()> {
    if args.duration_secs == 0 || args.duration_secs > MAX_DURATION_SECS {
        bail!("--duration-secs must be 1..={MAX_DURATION_SECS}");
    }
    if args.runs == 0 || args.runs > 20 {
        bail!("--runs must be 1..=20");
    }
    if args.connections == 0 || args.connections > 4096 {
        bail!("--connections must be 1..=4096");
    }
    let dir = std::env::temp_dir().join(format!("ddsd-bench-api-{}", uuid::Uuid::new_v4()));
    let (mut spawned, addr, credentials, mut pid) = match &args.endpoint {
        Some(endpoint) => {
            let addr = loadgen::loopback_addr(endpoint)?;
            let creds = Credentials::resolve(
                args.access_key_id.as_deref(),
                args.access_key_secret.as_deref(),
                args.data_dir.as_deref(),
                &crate::client::profile::default_data_dir(),
            )?;
            let pid = match args.pid {
                Some(p) => p,
                None => loadgen::listener_pid(addr)?,
            };
            (None, addr, creds, pid)
        }
        None => {
            std::fs::create_dir_all(&dir)?;
            let binary = match &args.binary {
                Some(b) => b.clone(),
                None => std::env::current_exe().context("locating this binary")?,
            };
            // The per-key limit stays on the measured path, but far above the offered load; the
            // nonce cache is sized for a minute of load at full speed (its default of one
            // million live nonces is a sustained 1,100 requests/s over the 15-minute window).
            let mut extra = vec![
                "key_rate_per_sec = 1000000000".to_string(),
                "nonce_capacity = 20000000".to_string(),
            ];
            if let Some(s) = args.sim_speed {
                extra.push(format!("sim_speed = {s}"));
            }
            extra.extend(args.server_config.iter().cloned());
            let s = Spawned::start(&binary, &dir, &extra)?;
            let (addr, creds, pid) = (s.addr, s.credentials.clone(), s.pid());
            (Some(s), addr, creds, pid)
        }
    };
    let client = Client::with_signature(
        &format!("http://{addr}"),
        credentials.clone(),
        Signature::V3,
    )?;
    let mut rss_start = loadgen::resident_kib(pid)?;

    let mut pool = if spawned.is_some() {
        Vec::new()
    } else {
        existing_ids(&client, args.instances).await?
    };
    if pool.len() < args.instances && (spawned.is_some() || pool.is_empty()) {
        let want = args.instances - pool.len();
        // Pinned to an older kernel when allowed, so UpgradeDBInstanceKernelVersion has a target.
        let kernel = older_kernel();
        let t = Instant::now();
        let created = match create_pool(&client, want, 32, kernel.as_deref()).await {
            Ok(ids) => ids,
            Err(e) if kernel.is_some() => {
                eprintln!("bench: pinned create refused ({e:#}); creating on the newest kernel");
                create_pool(&client, want, 32, None).await?
            }
            Err(e) => return Err(e),
        };
        eprintln!(
            "bench: created {} instances in {:.1} s",
            created.len(),
            t.elapsed().as_secs_f64()
        );
        pool.extend(created);
    }
    if args.mix.has_writes() || args.running_upgrades > 0 {
        let running = wait_running(
            &client,
            pool.len(),
            Duration::from_secs(args.wait_running_secs),
        )
        .await?;
        eprintln!("bench: {running} of {} instances Running", pool.len());
    }
    if let (Some(speed), Some(server)) = (args.upgrade_sim_speed, spawned.as_mut()) {
        let rss_loaded = loadgen::resident_kib(pid)?;
        let text = std::fs::read_to_string(&server.config)?;
        let mut config: String = text
            .lines()
            .filter(|l| !l.starts_with("sim_speed"))
            .map(|l| format!("{l}\n"))
            .collect();
        config.push_str(&format!("sim_speed = {speed}\n"));
        std::fs::write(&server.config, config)?;
        let exit = server.terminate()?;
        server.restart()?;
        pid = server.pid();
        rss_start = loadgen::resident_kib(pid)?;
        eprintln!(
            "bench: VmRSS {:.1} MiB with the pool loaded; restarted ({exit}) at sim speed {speed}",
            rss_loaded as f64 / 1024.0
        );
    }
    let mut started_upgrades = 0;
    for id in pool.iter().take(args.running_upgrades) {
        match client
            .call(
                "UpgradeDBInstanceKernelVersion",
                &[("DBInstanceId", id), ("SwitchMode", "0")],
            )
            .await
        {
            Ok(_) => started_upgrades += 1,
            Err(e) => eprintln!("bench: upgrade of {id} refused: {e}"),
        }
    }
    if args.running_upgrades > 0 {
        let counts = status_counts(&client).await?;
        eprintln!("bench: started {started_upgrades} upgrades; instances by status: {counts:?}");
    }

    let pool = Arc::new(pool);
    let plan = LoadPlan {
        addr,
        credentials,
        connections: args.connections,
        duration: Duration::from_secs(args.duration_secs),
        rate: args.rate,
        mix: args.mix.clone(),
        sign: args.signature,
        list_pages: (pool.len().div_ceil(30)).max(1) as u32,
        pool,
    };
    // The generator gets its own runtime, sized on purpose: it shares the cores with the server.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads.max(1))
        .enable_all()
        .build()?;
    let rt = Arc::new(rt);
    let mut runs = Vec::new();
    println!(
        "ddsd bench api: {} connections, mix {}, signature {:?}, {} instances, {} running upgrades, {} s x {} runs; load average {}",
        args.connections,
        args.mix,
        args.signature,
        plan.pool.len(),
        started_upgrades,
        args.duration_secs,
        args.runs,
        load_average()
    );
    for i in 0..args.runs {
        if args.warmup_secs > 0 {
            let warm = LoadPlan {
                duration: Duration::from_secs(args.warmup_secs),
                ..plan.clone()
            };
            run_on(&rt, warm).await?;
        }
        let rss_before = loadgen::resident_kib(pid)?;
        let (server_cpu, own_cpu) = (
            loadgen::cpu_time(pid),
            loadgen::cpu_time(std::process::id()),
        );
        let report = run_on(&rt, plan.clone()).await?;
        let server_cpu = loadgen::cpu_time(pid)
            .zip(server_cpu)
            .map(|(b, a)| b.saturating_sub(a));
        let own_cpu = loadgen::cpu_time(std::process::id())
            .zip(own_cpu)
            .map(|(b, a)| b.saturating_sub(a));
        let rss_after = loadgen::resident_kib(pid)?;
        print_report(&format!("run {}", i + 1), &report);
        let per_request = |cpu: Option<Duration>| {
            cpu.map_or(f64::NAN, |c| {
                c.as_secs_f64() * 1e6 / report.completed().max(1) as f64
            })
        };
        println!(
            "  CPU per request: ddsd {:.1} us, load generator {:.1} us",
            per_request(server_cpu),
            per_request(own_cpu)
        );
        println!(
            "  ddsd VmRSS {:.1} MiB before, {:.1} MiB after (at start {:.1} MiB); load average {}",
            rss_before as f64 / 1024.0,
            rss_after as f64 / 1024.0,
            rss_start as f64 / 1024.0,
            load_average()
        );
        runs.push((report, rss_before, rss_after));
    }
    if started_upgrades > 0 {
        let counts = status_counts(&client).await?;
        println!("instances by status after the runs: {counts:?}");
    }
    let med = |f: &dyn Fn(&LoadReport) -> f64| median(runs.iter().map(|(r, _, _)| f(r)).collect());
    let (tp, ok_tp, p50, p99, p999) = (
        med(&|r| r.throughput()),
        med(&|r| r.ok_throughput()),
        med(&|r| loadgen::ms(&r.latency, 0.5)),
        med(&|r| loadgen::ms(&r.latency, 0.99)),
        med(&|r| loadgen::ms(&r.latency, 0.999)),
    );
    let rss_after_max = runs.iter().map(|(_, _, a)| *a).max().unwrap_or(0);
    println!(
        "median of {} runs: {tp:.0} req/s ({ok_tp:.0} answered 2xx), p50 {p50:.2} ms, p99 {p99:.2} ms, p99.9 {p999:.2} ms; ddsd VmRSS max {:.1} MiB",
        runs.len(),
        rss_after_max as f64 / 1024.0
    );
    if args.json {
        let summary = json!({
            "connections": args.connections,
            "mix": args.mix.to_string(),
            "signature": format!("{:?}", args.signature),
            "instances": plan.pool.len(),
            "running_upgrades": started_upgrades,
            "median": {"throughput_rps": tp, "ok_throughput_rps": ok_tp, "p50_ms": p50, "p99_ms": p99, "p999_ms": p999},
            "rss_kib_start": rss_start,
            "runs": runs.iter().map(|(r, b, a)| {
                let mut v = report_json(r);
                v["rss_kib_before"] = json!(b);
                v["rss_kib_after"] = json!(a);
                v
            }).collect::<Vec<_>>(),
        });
        println!("{summary}");
    }
    // A runtime may not be dropped (blocking) inside another one.
    if let Ok(rt) = Arc::try_unwrap(rt) {
        rt.shutdown_background();
    }
    drop(spawned);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Runs a plan on the generator's own runtime.
pub(crate) async fn run_on(
    rt: &Arc<tokio::runtime::Runtime>,
    plan: LoadPlan,
) -> anyhow::Result<LoadReport> {
    let stop = Arc::new(AtomicBool::new(false));
    rt.spawn(loadgen::run(plan, stop))
        .await
        .context("the load generator stopped")?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(vec![]), 0.0);
    }

    #[test]
    fn the_pinned_kernel_is_older_than_the_newest() {
        let k = older_kernel().unwrap();
        let catalog = dds_engine::catalog::Catalog::embedded();
        let all = catalog.kernels("4.4").unwrap();
        assert_ne!(all.last().unwrap().kernel_version, k);
        assert!(all.iter().any(|x| x.kernel_version == k));
    }
}
