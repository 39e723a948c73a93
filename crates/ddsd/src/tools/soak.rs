//! `ddsd bench soak`: minutes of mixed signed load with upgrades and restarts running, while ddsd
//! is killed (SIGKILL) and restarted `--kills` times at even intervals; then the end state is
//! checked:
//!
//! 1. every accepted upgrade and restart finished: no instance is left in a transitional status,
//!    every pool instance is `Running`, every operation `DdsdDescribeOperations` lists ended
//!    `Succeeded`, no acknowledged (2xx) upgrade or restart is missing from them (kills
//!    included), every instance whose upgrade was accepted runs a newer kernel than it was
//!    created on;
//! 2. the store passes `PRAGMA integrity_check` (after a graceful stop);
//! 3. no 5xx and no connection failure outside the kill windows (a window runs from the kill to
//!    `--kill-grace-secs` after the restarted server printed its listening line);
//! 4. RSS does not grow after warm-up: in every server lifetime long enough, the RSS at its end is
//!    within `--rss-slack-mib` of the RSS once `--warmup-secs` had passed.
//!
//! Halfway through, a newer 4.4 kernel is published (`DdsdPublishKernelVersion`), so instances
//! upgraded in the first half can be upgraded again. Prints a summary (recorded in
//! BENCHMARKS.md) and exits non-zero when a check fails.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::tools::bench_api::{self, Spawned};
use crate::tools::loadgen::{self, LoadPlan, Mix, Op, SignMode};
use ddsd_client::{Client, Signature};

#[derive(Debug, Clone, clap::Args)]
pub struct SoakArgs {
    /// Length of the loaded period.
    #[arg(long, default_value_t = 600)]
    pub duration_secs: u64,
    /// SIGKILL + restart of ddsd, at even intervals.
    #[arg(long, default_value_t = 2)]
    pub kills: usize,
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Total requests per second.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    #[arg(long, default_value = "attr=80,list=10,upgrade=5,restart=5")]
    pub mix: Mix,
    #[arg(long, value_enum, default_value = "mixed")]
    pub signature: SignMode,
    /// Instances in the pool (created pinned to an older 4.4 kernel).
    #[arg(long, default_value_t = 100)]
    pub instances: usize,
    /// Data-plane simulation speed.
    #[arg(long, default_value_t = 20.0)]
    pub sim_speed: f64,
    /// RSS growth is measured from this long after each (re)start.
    #[arg(long, default_value_t = 60)]
    pub warmup_secs: u64,
    /// Allowed RSS growth after warm-up within one server lifetime.
    #[arg(long, default_value_t = 16.0)]
    pub rss_slack_mib: f64,
    /// How long after a restart errors still count as part of the kill.
    #[arg(long, default_value_t = 2.0)]
    pub kill_grace_secs: f64,
    /// How long to wait at the end for every operation to finish.
    #[arg(long, default_value_t = 900)]
    pub settle_secs: u64,
    /// A 30-second run with 20 instances at 150 req/s (CI smoke); overrides the sizes above.
    #[arg(long)]
    pub short: bool,
    /// ddsd binary to run (default: this one).
    #[arg(long)]
    pub binary: Option<std::path::PathBuf>,
    /// Keep the data dir afterwards.
    #[arg(long)]
    pub keep: bool,
}

/// One server lifetime: when it started serving (load-relative seconds) and when it ended.
#[derive(Debug, Clone)]
struct Lifetime {
    ready_at: f64,
    killed_at: Option<f64>,
    rss_kib: Vec<(f64, u64)>,
    /// `ddsd_nonce_cache_entries` from `GET /metrics`, sampled with the RSS.
    nonces: Vec<(f64, u64)>,
}

pub async fn soak(mut args: SoakArgs) -> anyhow::Result<()> {
    if args.short {
        args.duration_secs = 30;
        args.instances = 20;
        args.rate = 150.0;
        args.connections = 4;
        args.warmup_secs = 5;
        args.sim_speed = args.sim_speed.max(50.0);
        args.settle_secs = args.settle_secs.min(300);
    }
    if args.duration_secs == 0 || args.duration_secs > bench_api::MAX_DURATION_SECS {
        bail!(
            "--duration-secs must be 1..={}",
            bench_api::MAX_DURATION_SECS
        );
    }
    if !args.rate.is_finite() || args.rate <= 0.0 {
        bail!("--rate must be positive");
    }
    let binary = match &args.binary {
        Some(b) => b.clone(),
        None => std::env::current_exe().context("locating this binary")?,
    };
    let dir = std::env::temp_dir().join(format!("ddsd-soak-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let extra = vec![
        format!("sim_speed = {}", args.sim_speed),
        // The per-key limit stays on the path, above the offered load.
        "key_rate_per_sec = 1000000000".to_string(),
    ];
    let mut server = Spawned::start(&binary, &dir, &extra)?;
    let endpoint = format!("http://{}", server.addr);
    let client = Client::with_signature(&endpoint, server.credentials.clone(), Signature::V3)?;
    println!(
        "ddsd bench soak: {} s, {} kills, {} connections at {} req/s, mix {}, {} instances, sim speed {}; data {}; load average {}",
        args.duration_secs,
        args.kills,
        args.connections,
        args.rate,
        args.mix,
        args.instances,
        args.sim_speed,
        dir.display(),
        bench_api::load_average()
    );

    let pinned = bench_api::older_kernel().context("no older 4.4 kernel in the catalog")?;
    let pool = bench_api::create_pool(&client, args.instances, 16, Some(&pinned)).await?;
    let running =
        bench_api::wait_running(&client, pool.len(), Duration::from_secs(args.settle_secs)).await?;
    if (running as usize) < pool.len() {
        bail!("only {running} of {} instances reached Running", pool.len());
    }
    eprintln!("soak: {} instances Running on {pinned}", pool.len());

    let plan = LoadPlan {
        addr: server.addr,
        credentials: server.credentials.clone(),
        connections: args.connections,
        duration: Duration::from_secs(args.duration_secs),
        rate: Some(args.rate),
        mix: args.mix.clone(),
        sign: args.signature,
        list_pages: pool.len().div_ceil(30).max(1) as u32,
        pool: Arc::new(pool.clone()),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let stop = Arc::new(AtomicBool::new(false));
    // One clock for the kill windows and the generator's failure times: were each to read its own
    // start, a generator task polled late would date a failure at the kill before the kill.
    let started = Instant::now();
    let load = rt.spawn(loadgen::run_since(plan, stop.clone(), started));
    let now = || started.elapsed().as_secs_f64();

    let total = args.duration_secs as f64;
    let kill_times: Vec<f64> = (1..=args.kills)
        .map(|k| total * k as f64 / (args.kills + 1) as f64)
        .collect();
    let publish_at = total / 2.0;
    let mut published = None;
    let mut lifetimes = vec![Lifetime {
        ready_at: 0.0,
        killed_at: None,
        rss_kib: Vec::new(),
        nonces: Vec::new(),
    }];
    let mut windows: Vec<(f64, f64)> = Vec::new();
    let mut next_kill = 0;
    let sample_every = (total / 120.0).clamp(1.0, 5.0);
    let mut next_sample = 0.0;
    while now() < total {
        let t = now();
        if t >= next_sample {
            let life = lifetimes.last_mut().expect("one lifetime");
            if let Ok(kib) = loadgen::resident_kib(server.pid()) {
                life.rss_kib.push((t, kib));
            }
            if let Some(n) = nonce_entries(&endpoint).await {
                life.nonces.push((t, n));
            }
            next_sample = t + sample_every;
        }
        if next_kill < kill_times.len() && t >= kill_times[next_kill] {
            let killed_at = now();
            server.kill()?;
            lifetimes.last_mut().expect("one lifetime").killed_at = Some(killed_at);
            eprintln!("soak: killed ddsd (SIGKILL) at {killed_at:.1} s");
            let mut restarted = server;
            let (s, result) = tokio::task::spawn_blocking(move || {
                let r = restarted.restart();
                (restarted, r)
            })
            .await?;
            server = s;
            result?;
            let ready_at = now();
            eprintln!(
                "soak: restarted at {ready_at:.1} s ({:.2} s after the kill)",
                ready_at - killed_at
            );
            windows.push((killed_at, ready_at + args.kill_grace_secs));
            lifetimes.push(Lifetime {
                ready_at,
                killed_at: None,
                rss_kib: Vec::new(),
                nonces: Vec::new(),
            });
            next_kill += 1;
        }
        if published.is_none() && t >= publish_at {
            let kernel = "mongodb_20250601_4.4.25";
            match client
                .call(
                    "DdsdPublishKernelVersion",
                    &[
                        ("EngineVersion", "4.4"),
                        ("KernelVersion", kernel),
                        ("ReleaseNote", "soak: a newer kernel mid-run"),
                        ("ReleaseDate", "2025-06-01"),
                    ],
                )
                .await
            {
                Ok(_) => {
                    eprintln!("soak: published {kernel} at {t:.1} s");
                    published = Some(kernel.to_string());
                }
                Err(e) => {
                    eprintln!("soak: publishing {kernel} failed: {e}");
                    published = Some(String::new());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let report = load.await.context("the load generator stopped")??;
    // A runtime may not be dropped (blocking) inside another one.
    rt.shutdown_background();
    bench_api::print_report("soak load", &report);

    // 1. Every operation finishes.
    let settle_started = Instant::now();
    let settle_deadline = settle_started + Duration::from_secs(args.settle_secs);
    let counts = loop {
        let counts = bench_api::status_counts(&client).await?;
        let busy: u64 = counts
            .iter()
            .filter(|(s, _)| s.as_str() != "Running")
            .map(|(_, n)| n)
            .sum();
        if busy == 0 || Instant::now() >= settle_deadline {
            break counts;
        }
        eprintln!("soak: waiting for operations to finish: {counts:?}");
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let settle_secs = settle_started.elapsed().as_secs_f64();
    let mut problems: Vec<String> = Vec::new();
    let busy: Vec<String> = counts
        .iter()
        .filter(|(s, n)| s.as_str() != "Running" && **n > 0)
        .map(|(s, n)| format!("{n} {s}"))
        .collect();
    if !busy.is_empty() {
        problems.push(format!(
            "after {settle_secs:.0} s instances are still {}",
            busy.join(", ")
        ));
    }
    let upgraded: BTreeSet<&str> = report
        .accepted_writes
        .iter()
        .filter(|(_, op, _)| *op == Op::Upgrade)
        .map(|(_, _, id)| id.as_str())
        .collect();
    let restarts = report
        .accepted_writes
        .iter()
        .filter(|(_, op, _)| *op == Op::Restart)
        .count();
    let mut kernels: BTreeMap<String, usize> = BTreeMap::new();
    let mut operations: BTreeMap<(String, String), usize> = BTreeMap::new();
    // The soak's server runs with the store's defaults.
    let kept_per_instance =
        crate::server::store::SqliteOptions::default().finished_operations_kept as usize;
    for id in &pool {
        let v = client
            .call("DescribeDBInstanceAttribute", &[("DBInstanceId", id)])
            .await?;
        let attr = &v["DBInstances"]["DBInstance"][0];
        let status = attr["DBInstanceStatus"].as_str().unwrap_or("?");
        let kernel = attr["CurrentKernelVersion"].as_str().unwrap_or("?");
        *kernels.entry(kernel.to_string()).or_insert(0) += 1;
        if status != "Running" {
            problems.push(format!("{id} ends {status}"));
        }
        if upgraded.contains(id.as_str()) && kernel == pinned {
            problems.push(format!(
                "{id}: an upgrade was accepted but it still runs {kernel}"
            ));
        }
        // Every operation the instance still has on record.
        let v = client
            .call(
                "DdsdDescribeOperations",
                &[("DBInstanceId", id), ("MaxRecords", "100")],
            )
            .await?;
        let listed = v["Operations"]["Operation"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut recorded: BTreeMap<String, usize> = BTreeMap::new();
        for op in &listed {
            let action = op["Action"].as_str().unwrap_or("?").to_string();
            let status = op["Status"].as_str().unwrap_or("?").to_string();
            if status != "Succeeded" {
                problems.push(format!("{id}: {action} ended {status}"));
            }
            *recorded.entry(action.clone()).or_insert(0) += 1;
            *operations.entry((action, status)).or_insert(0) += 1;
        }
        // An acknowledged (2xx) upgrade or restart must have its operation, kills or not. (The
        // store keeps only the newest finished operations per instance: check below that.)
        if listed.len() < kept_per_instance {
            for op in [Op::Upgrade, Op::Restart] {
                let acknowledged = report
                    .accepted_writes
                    .iter()
                    .filter(|(_, o, i)| *o == op && i == id)
                    .count();
                let kept = recorded.get(op.action()).copied().unwrap_or(0);
                if kept < acknowledged {
                    problems.push(format!(
                        "{id}: {acknowledged} {} acknowledged but {kept} recorded",
                        op.action()
                    ));
                }
            }
        }
    }

    // 2. Store integrity, after a graceful stop.
    let exit = server.terminate()?;
    if !exit.success() {
        problems.push(format!("ddsd exited with {exit} on SIGTERM"));
    }
    // Through the store's read-only check rather than the API: the server has stopped by now,
    // and this touches the file without any write path of the server.
    let integrity = crate::server::store::sqlite::integrity_check(&dir.join("data"))?;
    if integrity != "ok" {
        problems.push(format!("PRAGMA integrity_check: {integrity}"));
    }

    // 3. No 5xx / connection failure outside the kill windows.
    let in_window = |t: f64| windows.iter().any(|(a, b)| t >= *a && t <= *b);
    let mut during_kills = 0u64;
    let mut outside: BTreeMap<(u16, String), u64> = BTreeMap::new();
    for f in &report.failures {
        if f.status >= 500 || f.status == 0 {
            if in_window(f.at_secs) {
                during_kills += 1;
            } else {
                *outside.entry((f.status, f.code.clone())).or_insert(0) += 1;
            }
        }
    }
    if report.failures.len() >= 100_000 {
        problems.push("more failures than the timeline keeps; the 5xx check is incomplete".into());
    }
    for ((status, code), n) in &outside {
        problems.push(format!("{n} x {status} {code} outside the kill windows"));
    }

    // 4. RSS after warm-up, per server lifetime.
    let mut rss_lines = Vec::new();
    for (i, life) in lifetimes.iter().enumerate() {
        let end = life.killed_at.unwrap_or(total);
        let warm = life.ready_at + args.warmup_secs as f64;
        let after: Vec<&(f64, u64)> = life.rss_kib.iter().filter(|(t, _)| *t >= warm).collect();
        let (Some(first), Some(last)) = (after.first(), after.last()) else {
            rss_lines.push(format!(
                "lifetime {} ({:.0}-{:.0} s): too short for a warm-up of {} s",
                i + 1,
                life.ready_at,
                end,
                args.warmup_secs
            ));
            continue;
        };
        let peak = life.rss_kib.iter().map(|(_, k)| *k).max().unwrap_or(0);
        let growth_mib = (last.1 as f64 - first.1 as f64) / 1024.0;
        let nonces_at = |t: f64| {
            life.nonces
                .iter()
                .min_by(|a, b| (a.0 - t).abs().total_cmp(&(b.0 - t).abs()))
                .map_or(0, |(_, n)| *n)
        };
        rss_lines.push(format!(
            "lifetime {} ({:.0}-{:.0} s): VmRSS {:.1} MiB after warm-up -> {:.1} MiB at the end (growth {:+.1} MiB, peak {:.1} MiB); nonce cache {} -> {} entries",
            i + 1,
            life.ready_at,
            end,
            first.1 as f64 / 1024.0,
            last.1 as f64 / 1024.0,
            growth_mib,
            peak as f64 / 1024.0,
            nonces_at(first.0),
            nonces_at(last.0)
        ));
        if growth_mib > args.rss_slack_mib {
            problems.push(format!(
                "lifetime {}: RSS grew {growth_mib:.1} MiB after warm-up (slack {} MiB)",
                i + 1,
                args.rss_slack_mib
            ));
        }
    }

    println!("---- soak summary ----");
    println!(
        "load: {} requests in {:.0} s ({:.0} req/s), p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms",
        report.completed(),
        report.elapsed.as_secs_f64(),
        report.throughput(),
        loadgen::ms(&report.latency, 0.5),
        loadgen::ms(&report.latency, 0.99),
        loadgen::ms(&report.latency, 0.999)
    );
    println!(
        "writes accepted: {} upgrades on {} instances, {} restarts; kernels at the end: {kernels:?}",
        report
            .accepted_writes
            .iter()
            .filter(|(_, op, _)| *op == Op::Upgrade)
            .count(),
        upgraded.len(),
        restarts
    );
    println!(
        "kills: {} (windows {}); 5xx/transport failures during kills: {during_kills}, outside: {}",
        windows.len(),
        windows
            .iter()
            .map(|(a, b)| format!("{a:.1}-{b:.1} s"))
            .collect::<Vec<_>>()
            .join(", "),
        outside.values().sum::<u64>()
    );
    println!(
        "settled: {counts:?} after {settle_secs:.0} s; newer kernel published: {}",
        published.as_deref().unwrap_or("no")
    );
    println!(
        "operations recorded (action, status): {}",
        operations
            .iter()
            .map(|((a, st), n)| format!("{a} {st} x{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("PRAGMA integrity_check: {integrity}");
    for l in &rss_lines {
        println!("{l}");
    }
    // The RSS timeline, about one sample a minute, for the record.
    let timeline: Vec<String> = lifetimes
        .iter()
        .flat_map(|l| l.rss_kib.iter())
        .scan(f64::NEG_INFINITY, |last, (t, kib)| {
            let keep = *t - *last >= 60.0;
            if keep {
                *last = *t;
            }
            Some(keep.then(|| format!("{t:.0}s {:.1}", *kib as f64 / 1024.0)))
        })
        .flatten()
        .collect();
    println!("VmRSS MiB over time: {}", timeline.join(", "));
    println!("load average at the end: {}", bench_api::load_average());
    if args.keep {
        println!("data dir kept: {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    if problems.is_empty() {
        println!("RESULT: PASSED");
        Ok(())
    } else {
        for p in problems.iter().take(50) {
            println!("problem: {p}");
        }
        println!("RESULT: FAILED ({} problems)", problems.len());
        bail!("the soak found {} problems", problems.len())
    }
}

/// The replay guard's size, from ddsd's own metrics (`None` if they cannot be read).
async fn nonce_entries(endpoint: &str) -> Option<u64> {
    let text = reqwest::get(format!("{endpoint}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("ddsd_nonce_cache_entries "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}
