//! Upgrade benchmark: how long a rolling `UpgradeDBInstanceKernelVersion` takes in simulated time, against
//! the critical-path lower bound, and how many seeded upgrades per second the simulation runs.
//!
//! ```text
//! cargo run --release -p dds-engine --example upgrade_bench -- [--seeds N] [--poll-ms MS] \
//!     [--event-driven] [--max-parallel-shards N]
//! ```
//!
//! The "default" rows run `UpgradeConfig::default()`; `--max-parallel-shards N` replaces its shard bound there
//! (how the default was chosen). The sequential rows always run with `max_parallel_shards = 1`.
//!
//! Each run drives [`RollingOperation`] against a [`SimFleet`] on virtual time the way the ddsd runtime does
//! (observe → step → execute → feed results back), waking at the workflow's own deadline, at every internal
//! event of the fleet, and at least every `--poll-ms` of simulated time (default 100 ms; ddsd serve polls at
//! 1 s of plane time).
//!
//! Two bounds, both in simulated milliseconds (BENCHMARKS.md `## Upgrade` has the prose):
//!
//! - **chain bound** (per run): the sequential chain this run had to go through, from the durations the
//!   simulation actually drew. Per restarted mongod: from its accepted `StopMember` to the moment it really
//!   was steady (SECONDARY/ARBITER since its new process started, which `state_since_ms` dates exactly even
//!   though heartbeats report it later) and caught up (lag ≤ `max_lag_ms`), plus `gate_stability_ms`. For a
//!   primary, also from its accepted `StepDown` to the election of its successor. Per mongos: from
//!   `StopMongos` to serving again, plus `mongos_stability_ms`. Plus the wait for `balancerStop` to take
//!   effect. Replica sets add up in the order the workflow must take them (config servers, the canary shard,
//!   then the other shards in order, each taking the first of `max_parallel_shards` slots to free). No
//!   orchestrator that keeps the gates and that order can finish this run faster; what it spends above the
//!   bound is its own overhead (heartbeat-delayed visibility, polling, the gap between a gate opening and the
//!   next command).
//! - **parameter bound**: the same chain with every drawn duration at its minimum in `SimParams`
//!   (`stop_min + startup_min + startup2_min + recovering_min + gate_stability` per member, `handoff_min` per
//!   primary, `mongos_stop_min + mongos_start_min + mongos_stability` per mongos). It does not depend on the
//!   seed; with the default (random) durations no run can approach it, so it is reported as a ratio.
//!
//! The `fixed` rows run with every duration range collapsed to its minimum (and no steady replication lag),
//! where the two bounds coincide.

use std::collections::HashMap;
use std::time::Instant;

use dds_engine::build::fixtures;
use dds_engine::model::{Instance, MemberKind, ReplicaSetKind};
use dds_engine::plane::{BalancerMode, Command, DeploymentObservation, Millis};
use dds_engine::sim::{SimFleet, SimParams, Truth};
use dds_engine::workflow::{Decision, Outcome, RollingOperation, UpgradeConfig};

const FROM: &str = "mongodb_20230101_4.0.28";
const TO: &str = "mongodb_20240101_4.0.30";
const START_MS: Millis = 1_767_225_600_000; // 2026-01-01T00:00:00Z

/// When a restarted process was really ready again, from the observations.
#[derive(Default, Clone)]
struct Ready {
    started_ms: Option<Millis>,
    steady_since_ms: Option<Millis>,
    lag_ok_at_ms: Option<Millis>,
}

impl Ready {
    fn at(&self) -> Option<Millis> {
        Some(self.steady_since_ms?.max(self.lag_ok_at_ms?))
    }
}

struct Tracker {
    max_lag_ms: u64,
    members: HashMap<String, Ready>,
    mongos: HashMap<String, Ready>,
    /// First time the balancer was seen off with no round in progress after `StopBalancer`.
    balancer_quiet_at_ms: Option<Millis>,
    balancer_stop_at_ms: Option<Millis>,
}

impl Tracker {
    fn new(cfg: &UpgradeConfig) -> Self {
        Self {
            max_lag_ms: cfg.max_lag_ms,
            members: HashMap::new(),
            mongos: HashMap::new(),
            balancer_quiet_at_ms: None,
            balancer_stop_at_ms: None,
        }
    }

    fn observe(&mut self, obs: &DeploymentObservation, now: Millis) {
        for rs in &obs.replica_sets {
            for m in &rs.members {
                let Some(st) = m.started_ms else { continue };
                let r = self.members.entry(m.node_id.clone()).or_default();
                if r.started_ms != Some(st) {
                    *r = Ready {
                        started_ms: Some(st),
                        ..Ready::default()
                    };
                }
                if r.steady_since_ms.is_none()
                    && m.state.is_steady()
                    && m.healthy
                    && m.state_since_ms >= st
                {
                    r.steady_since_ms = Some(m.state_since_ms);
                }
                let lag = rs.primary_optime_ms.saturating_sub(m.optime_ms);
                if r.lag_ok_at_ms.is_none() && rs.primary.is_some() && lag <= self.max_lag_ms {
                    r.lag_ok_at_ms = Some(now);
                }
            }
        }
        for m in &obs.mongos {
            let Some(st) = m.started_ms else { continue };
            let r = self.mongos.entry(m.node_id.clone()).or_default();
            if r.started_ms != Some(st) {
                *r = Ready {
                    started_ms: Some(st),
                    ..Ready::default()
                };
            }
            if m.up && r.steady_since_ms.is_none() {
                r.steady_since_ms = Some(now);
                r.lag_ok_at_ms = Some(now);
            }
        }
        if let (Some(_), None, Some(b)) = (
            self.balancer_stop_at_ms,
            self.balancer_quiet_at_ms,
            obs.balancer,
        ) {
            if b.mode == BalancerMode::Off && !b.in_balancer_round {
                self.balancer_quiet_at_ms = Some(now);
            }
        }
    }
}

struct RunResult {
    /// Observe-step rounds the run took.
    steps: u64,
    duration_ms: u64,
    chain_bound_ms: u64,
    param_bound_ms: u64,
    elections: u64,
}

fn accepted<'a>(truth: &'a Truth) -> impl Iterator<Item = (Millis, &'a Command)> + 'a {
    truth
        .commands
        .iter()
        .filter(|c| c.result.is_ok())
        .map(|c| (c.at_ms, &c.command))
}

/// Sum of the chain of one replica set, from what this run drew.
fn rs_chain_ms(
    name: &str,
    truth: &Truth,
    tracker: &Tracker,
    cfg: &UpgradeConfig,
) -> Result<u64, String> {
    let mut total = 0u64;
    let rs_truth = truth
        .replica_set(name)
        .ok_or_else(|| format!("no truth for {name}"))?;
    for (at, cmd) in accepted(truth) {
        match cmd {
            Command::StopMember {
                replica_set,
                node_id,
            } if replica_set == name => {
                let ready = tracker
                    .members
                    .get(node_id)
                    .and_then(Ready::at)
                    .ok_or_else(|| format!("{node_id} never observed ready"))?;
                total += ready.saturating_sub(at) + cfg.gate_stability_ms;
            }
            Command::StepDown { replica_set, .. } if replica_set == name => {
                let elected = rs_truth
                    .elections_since(at)
                    .next()
                    .ok_or_else(|| format!("no election in {name} after the stepdown"))?;
                total += elected.at_ms - at;
            }
            _ => {}
        }
    }
    Ok(total)
}

fn param_bound_ms(instance: &Instance, p: &SimParams, cfg: &UpgradeConfig) -> u64 {
    let member = |kind: MemberKind| {
        let start = if kind == MemberKind::Arbiter {
            p.startup_min_ms
        } else {
            p.startup_min_ms + p.startup2_min_ms + p.recovering_min_ms
        };
        p.stop_min_ms + start + cfg.gate_stability_ms
    };
    let rs_bound = |rs: &dds_engine::model::ReplicaSetSpec| {
        rs.members.iter().map(|m| member(m.kind)).sum::<u64>() + p.handoff_min_ms
    };
    let sets = instance.topology.replica_sets();
    let cfg_and_canary: Vec<u64> = sets.iter().map(|rs| rs_bound(rs)).collect();
    let mut total = 0;
    let shards: Vec<u64> = sets
        .iter()
        .zip(&cfg_and_canary)
        .filter(|(rs, _)| rs.kind == ReplicaSetKind::Shard)
        .map(|(_, b)| *b)
        .collect();
    total += sets
        .iter()
        .zip(&cfg_and_canary)
        .filter(|(rs, _)| rs.kind != ReplicaSetKind::Shard)
        .map(|(_, b)| *b)
        .sum::<u64>();
    total += shard_schedule(&shards, cfg);
    total += instance.topology.mongos().len() as u64
        * (p.mongos_stop_min_ms + p.mongos_start_min_ms + cfg.mongos_stability_ms);
    total
}

/// Shards in workflow order: the canary alone, then the others in order, each starting as soon as one of the
/// `max_parallel_shards` slots frees (the workflow keeps a sliding window, not batches). Starting every shard
/// at the earliest free slot is the fastest schedule that keeps that order and bound.
fn shard_schedule(shards: &[u64], cfg: &UpgradeConfig) -> u64 {
    let (first, rest): (&[u64], &[u64]) = if cfg.canary_shard && !shards.is_empty() {
        shards.split_at(1)
    } else {
        (&[], shards)
    };
    let mut slots = vec![0u64; (cfg.max_parallel_shards.max(1) as usize).min(rest.len().max(1))];
    for &d in rest {
        if let Some(free) = slots.iter_mut().min() {
            *free += d;
        }
    }
    first.iter().sum::<u64>() + slots.iter().copied().max().unwrap_or(0)
}

fn run(
    instance: &Instance,
    cfg: &UpgradeConfig,
    params: &SimParams,
    seed: u64,
    poll_ms: Option<u64>,
) -> Result<RunResult, String> {
    let mut fleet = SimFleet::new(&instance.topology, params.clone(), seed, START_MS);
    let mut op = RollingOperation::plan_upgrade(instance, TO, cfg.clone())
        .map_err(|e| format!("plan: {e}"))?;
    let mut tracker = Tracker::new(cfg);
    let mut now = START_MS;
    let mut steps = 0u64;
    let outcome = loop {
        steps += 1;
        if steps > 2_000_000 {
            return Err("no progress after 2M steps".into());
        }
        fleet.advance_to(now);
        let obs = fleet.observe();
        tracker.observe(&obs, now);
        match op.step(&obs, now) {
            Decision::Issue(cmds) => {
                for c in &cmds {
                    let r = fleet.apply(c);
                    if *c == Command::StopBalancer && r.is_ok() {
                        tracker.balancer_stop_at_ms.get_or_insert(now);
                    }
                    op.on_result(c, r, now);
                }
            }
            Decision::WaitUntil(t) => {
                let mut next = t.max(now + 1);
                if let Some(e) = fleet.next_event_ms() {
                    next = next.min(e.max(now + 1));
                }
                if let Some(p) = poll_ms {
                    next = next.min(now + p);
                }
                now = next;
            }
            Decision::Done(o) => break o,
        }
    };
    if let Outcome::Failed(f) = outcome {
        if std::env::var_os("BENCH_DEBUG").is_some() {
            for c in &fleet.truth().commands {
                eprintln!("{} {:?} {:?}", c.at_ms - START_MS, c.command, c.result);
            }
            eprintln!("{:#?}", fleet.observe().mongos);
            eprintln!(
                "{:#?}",
                fleet
                    .truth()
                    .processes
                    .iter()
                    .filter(|p| p.replica_set.is_none())
                    .collect::<Vec<_>>()
            );
        }
        return Err(format!("upgrade failed: {f:?}"));
    }
    let truth = fleet.truth();
    // What a user relies on, checked on every run so a fast but wrong run cannot count.
    for p in &truth.processes {
        if truth.restarts(&p.node_id) != 1 {
            return Err(format!(
                "{} restarted {} times",
                p.node_id,
                truth.restarts(&p.node_id)
            ));
        }
    }
    let mut elections = 0;
    for rs in &truth.replica_sets {
        let n = rs.elections_since(START_MS).count() as u64;
        if n != 1 {
            return Err(format!("{}: {n} elections", rs.name));
        }
        elections += n;
    }
    if let Some(&(_, last)) = truth.balancer_modes.last() {
        if last != BalancerMode::Full {
            return Err("balancer not restored".into());
        }
    }
    let started = op.started_ms.ok_or("never started")?;
    let finished = op.finished_ms.ok_or("never finished")?;

    let sets = instance.topology.replica_sets();
    let mut chains: Vec<(ReplicaSetKind, u64)> = Vec::new();
    for rs in &sets {
        chains.push((rs.kind, rs_chain_ms(&rs.name, truth, &tracker, cfg)?));
    }
    let mut bound = chains
        .iter()
        .filter(|(k, _)| *k != ReplicaSetKind::Shard)
        .map(|(_, c)| c)
        .sum::<u64>();
    let shards: Vec<u64> = chains
        .iter()
        .filter(|(k, _)| *k == ReplicaSetKind::Shard)
        .map(|(_, c)| *c)
        .collect();
    bound += shard_schedule(&shards, cfg);
    for (at, cmd) in accepted(truth) {
        if let Command::StopMongos { node_id } = cmd {
            let ready = tracker
                .mongos
                .get(node_id)
                .and_then(Ready::at)
                .ok_or_else(|| format!("{node_id} never observed serving"))?;
            bound += ready.saturating_sub(at) + cfg.mongos_stability_ms;
        }
    }
    if let (Some(a), Some(b)) = (tracker.balancer_stop_at_ms, tracker.balancer_quiet_at_ms) {
        bound += b - a;
    }
    Ok(RunResult {
        steps,
        duration_ms: finished - started,
        chain_bound_ms: bound,
        param_bound_ms: param_bound_ms(instance, params, cfg),
        elections,
    })
}

fn fixed_params() -> SimParams {
    let p = SimParams::default();
    SimParams {
        election_jitter_max_ms: 0,
        handoff_max_ms: p.handoff_min_ms,
        initiate_max_ms: p.initiate_min_ms,
        stop_max_ms: p.stop_min_ms,
        startup_max_ms: p.startup_min_ms,
        startup2_max_ms: p.startup2_min_ms,
        recovering_max_ms: p.recovering_min_ms,
        steady_lag_min_ms: 0,
        steady_lag_max_ms: 0,
        mongos_stop_max_ms: p.mongos_stop_min_ms,
        mongos_start_max_ms: p.mongos_start_min_ms,
        ..p
    }
}

struct Case {
    name: String,
    instance: Instance,
    cfg: UpgradeConfig,
}

/// `parallel`: the bound used by the "default" rows (`UpgradeConfig::default()` unless
/// `--max-parallel-shards` overrides it, to compare candidate defaults). The sequential rows always set 1.
fn cases(parallel: u32) -> Vec<Case> {
    let default = UpgradeConfig {
        max_parallel_shards: parallel,
        ..UpgradeConfig::default()
    };
    let sharded = |prefix: &str, shards: usize| {
        fixtures::instance(
            &format!("dds-bench-{prefix}{shards}"),
            "4.0",
            fixtures::sharded(shards, 2, FROM),
        )
    };
    let mut v = vec![Case {
        name: "replica set (3 members: P, S, hidden)".into(),
        instance: fixtures::instance(
            "dds-bench-rs",
            "4.0",
            fixtures::replica_set(fixtures::psh("rs0", FROM)),
        ),
        cfg: default.clone(),
    }];
    for shards in [1usize, 4, 16] {
        v.push(Case {
            name: default_row(shards, parallel),
            instance: sharded("s", shards),
            cfg: default.clone(),
        });
    }
    for shards in [1usize, 4, 16] {
        v.push(Case {
            name: sequential_row(shards),
            instance: sharded("q", shards),
            cfg: UpgradeConfig {
                max_parallel_shards: 1,
                ..default.clone()
            },
        });
    }
    for shards in [4usize, 16] {
        v.push(Case {
            name: format!(
                "sharded, {shards} shards, 2 mongos, canary then {} in parallel",
                shards - 1
            ),
            instance: sharded("p", shards),
            cfg: UpgradeConfig {
                max_parallel_shards: (shards - 1) as u32,
                ..default.clone()
            },
        });
    }
    v
}

fn default_row(shards: usize, parallel: u32) -> String {
    format!("sharded, {shards} shard(s), 2 mongos, default (canary, then {parallel} at a time)")
}

fn sequential_row(shards: usize) -> String {
    format!("sharded, {shards} shard(s), 2 mongos, max_parallel_shards = 1 (sequential)")
}

fn secs(ms: f64) -> String {
    format!("{:.1}", ms / 1000.0)
}

fn main() {
    let mut seeds = 20u64;
    let mut poll_ms = Some(100u64);
    let mut parallel = UpgradeConfig::default().max_parallel_shards;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seeds" => seeds = args.next().and_then(|v| v.parse().ok()).unwrap_or(seeds),
            "--poll-ms" => {
                poll_ms = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&p: &u64| p > 0)
            }
            "--event-driven" => poll_ms = None,
            "--max-parallel-shards" => {
                parallel = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&p: &u32| p > 0)
                    .unwrap_or(parallel)
            }
            other => {
                eprintln!(
                    "unknown argument {other}; use --seeds N, --poll-ms MS, --event-driven, \
                     --max-parallel-shards N"
                );
                std::process::exit(2);
            }
        }
    }
    println!(
        "seeds per case: {seeds}; poll: {}; default rows: max_parallel_shards = {parallel}",
        poll_ms.map_or("event-driven only".to_string(), |p| format!("{p} ms"))
    );
    println!();
    println!("| case | durations | mean duration s | mean chain bound s | overhead over chain bound (mean / max) | parameter bound s | mean / parameter bound | elections per run |");
    println!("|---|---|---|---|---|---|---|---|");
    let mut means: HashMap<String, f64> = HashMap::new();
    for case in cases(parallel) {
        for (label, params) in [("random", SimParams::default()), ("fixed", fixed_params())] {
            let (mut d, mut b, mut worst, mut el) = (0.0, 0.0, 0.0f64, 0u64);
            let mut pb = 0;
            for seed in 0..seeds {
                match run(&case.instance, &case.cfg, &params, seed, poll_ms) {
                    Ok(r) => {
                        d += r.duration_ms as f64;
                        b += r.chain_bound_ms as f64;
                        worst = worst.max(r.duration_ms as f64 / r.chain_bound_ms as f64 - 1.0);
                        pb = r.param_bound_ms;
                        el = r.elections;
                    }
                    Err(e) => {
                        eprintln!("{} seed {seed}: {e}", case.name);
                        std::process::exit(1);
                    }
                }
            }
            let n = seeds as f64;
            let (d, b) = (d / n, b / n);
            means.insert(format!("{}/{label}", case.name), d);
            println!(
                "| {} | {label} | {} | {} | {:.1} % / {:.1} % | {} | {:.2} | {el} |",
                case.name,
                secs(d),
                secs(b),
                (d / b - 1.0) * 100.0,
                worst * 100.0,
                secs(pb as f64),
                d / pb as f64,
            );
        }
    }
    println!();
    let one = |k: &str| means.get(k).copied().unwrap_or(f64::NAN);
    let ratio = |row: String| {
        one(&format!("{row}/random")) / one(&format!("{}/random", default_row(1, parallel)))
    };
    println!(
        "16 shards / 1 shard (random durations): default (canary, then {parallel} at a time) {:.2}x, \
         sequential {:.2}x, canary + 15 in parallel {:.2}x",
        ratio(default_row(16, parallel)),
        ratio(sequential_row(16)),
        ratio("sharded, 16 shards, 2 mongos, canary then 15 in parallel".into()),
    );
    println!();
    println!("throughput (event-driven, random durations, wall clock on this machine):");
    for case in cases(parallel).into_iter().filter(|c| {
        c.name.starts_with("replica set")
            || c.name == default_row(4, parallel)
            || c.name == default_row(16, parallel)
    }) {
        let n = if case.name.contains("16") {
            seeds.max(5)
        } else {
            seeds.max(50) * 4
        };
        let t = Instant::now();
        let mut steps = 0;
        for seed in 0..n {
            match run(
                &case.instance,
                &case.cfg,
                &SimParams::default(),
                10_000 + seed,
                None,
            ) {
                Ok(r) => steps += r.steps,
                Err(e) => {
                    eprintln!("{} seed {seed}: {e}", case.name);
                    std::process::exit(1);
                }
            }
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "- {}: {n} upgrades in {:.3} s = {:.0} upgrades/s ({} observe-step rounds per upgrade)",
            case.name,
            s,
            n as f64 / s,
            steps / n
        );
    }
}
