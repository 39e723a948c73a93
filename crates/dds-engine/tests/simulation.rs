//! Seeded simulation of the rolling workflows against the simulated fleet, every step held against I1–I12.
//!
//! - `cargo test -p dds-engine --test simulation` runs 1,000 seeds (mixed topologies, operations, faults of
//!   F1–F17 and control-plane crashes).
//! - `DDS_SIM_SEED=<n> cargo test -p dds-engine --test simulation -- --nocapture` replays exactly one seed and
//!   prints its report.
//! - `DDS_SIM_SEEDS=100000 cargo test -p dds-engine --release --test simulation` runs more
//!   (`DDS_SIM_FIRST_SEED` moves the window).
//! - `seeded_switch_and_member_restart` does the same for primary switches (`SwitchDBInstanceHA`) and
//!   one-member restarts (`RestartNode`): 300 seeds, `DDS_SIM_SWITCH_SEED=<n>` replays one.
//! - `seeded_engine_upgrade` does the same for major version upgrades (`UpgradeDBInstanceEngineVersion`,
//!   4.2 → 4.4, FCV raised last): 300 seeds, `DDS_SIM_ENGINE_SEED=<n>` replays one.

use dds_engine::workflow::harness::{
    engine_upgrade_scenario, run, run_traced, scenario, switch_or_member_scenario,
};
use std::collections::BTreeMap;
use std::time::Instant;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

#[test]
fn seeded_simulation() {
    if let Some(seed) = env_u64("DDS_SIM_SEED") {
        let s = scenario(seed);
        println!("{}", s.describe());
        let mut trace = std::env::var("DDS_SIM_TRACE").is_ok().then(Vec::new);
        let result = run_traced(&s, &mut trace);
        for line in trace.unwrap_or_default() {
            println!("{line}");
        }
        match result {
            Ok(summary) => {
                println!("{summary:#?}");
                return;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let n = env_u64("DDS_SIM_SEEDS").unwrap_or(1_000);
    let first = env_u64("DDS_SIM_FIRST_SEED").unwrap_or(1);
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut outcomes = BTreeMap::<String, u64>::new();
    let mut steps = 0u64;
    for seed in first..first + n {
        let s = scenario(seed);
        match run(&s) {
            Ok(summary) => {
                steps += summary.steps;
                let key = match &summary.outcome {
                    dds_engine::workflow::Outcome::Succeeded => "succeeded".to_string(),
                    dds_engine::workflow::Outcome::Failed(f) => {
                        format!("failed:{}", reason_name(&f.reason))
                    }
                };
                *outcomes.entry(key).or_default() += 1;
            }
            Err(e) => {
                failures.push(e.to_string());
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{n} seeds in {secs:.2} s ({:.0} seeds/s, {steps} steps); outcomes {outcomes:?}",
        n as f64 / secs
    );
    for f in failures.iter().take(300) {
        eprintln!("{f}\n  replay: DDS_SIM_SEED=<seed> cargo test -p dds-engine --test simulation -- --nocapture");
    }
    assert!(
        failures.is_empty(),
        "{} of {n} seeds failed",
        failures.len()
    );
}

fn reason_name(r: &dds_engine::workflow::FailureReason) -> String {
    let s = format!("{r:?}");
    s.split([' ', '(', '{']).next().unwrap_or("").to_string()
}

#[test]
fn seeded_switch_and_member_restart() {
    if let Some(seed) = env_u64("DDS_SIM_SWITCH_SEED") {
        let s = switch_or_member_scenario(seed);
        println!("{}", s.describe());
        match run(&s) {
            Ok(summary) => {
                println!("{summary:#?}");
                return;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let n = env_u64("DDS_SIM_SWITCH_SEEDS").unwrap_or(300);
    let mut failures = Vec::new();
    let mut outcomes = BTreeMap::<String, u64>::new();
    for seed in 1..=n {
        let s = switch_or_member_scenario(seed);
        match run(&s) {
            Ok(summary) => {
                let key = match &summary.outcome {
                    dds_engine::workflow::Outcome::Succeeded => "succeeded".to_string(),
                    dds_engine::workflow::Outcome::Failed(f) => {
                        format!("failed:{}", reason_name(&f.reason))
                    }
                };
                *outcomes
                    .entry(format!(
                        "{}:{key}",
                        s.describe()
                            .split(' ')
                            .nth(2)
                            .unwrap_or("?")
                            .split('(')
                            .next()
                            .unwrap_or("?")
                    ))
                    .or_default() += 1;
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    println!("{n} switch / member-restart seeds; outcomes {outcomes:?}");
    for f in failures.iter().take(100) {
        eprintln!("{f}\n  replay: DDS_SIM_SWITCH_SEED=<seed> cargo test -p dds-engine --test simulation seeded_switch -- --nocapture");
    }
    assert!(
        failures.is_empty(),
        "{} of {n} seeds failed",
        failures.len()
    );
}

#[test]
fn seeded_engine_upgrade() {
    if let Some(seed) = env_u64("DDS_SIM_ENGINE_SEED") {
        let s = engine_upgrade_scenario(seed);
        println!("{}", s.describe());
        let mut trace = std::env::var("DDS_SIM_TRACE").is_ok().then(Vec::new);
        let result = run_traced(&s, &mut trace);
        for line in trace.unwrap_or_default() {
            println!("{line}");
        }
        match result {
            Ok(summary) => {
                println!("{summary:#?}");
                return;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let n = env_u64("DDS_SIM_ENGINE_SEEDS").unwrap_or(300);
    let mut failures = Vec::new();
    let mut outcomes = BTreeMap::<String, u64>::new();
    for seed in 1..=n {
        let s = engine_upgrade_scenario(seed);
        match run(&s) {
            Ok(summary) => {
                let key = match &summary.outcome {
                    dds_engine::workflow::Outcome::Succeeded => {
                        // Raised last, on every replica set.
                        assert!(
                            !summary.truth.fcv_changes.is_empty(),
                            "{}: succeeded without raising the FCV",
                            s.describe()
                        );
                        "succeeded".to_string()
                    }
                    dds_engine::workflow::Outcome::Failed(f) => {
                        format!("failed:{}", reason_name(&f.reason))
                    }
                };
                *outcomes.entry(key).or_default() += 1;
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    println!("{n} major version upgrade seeds; outcomes {outcomes:?}");
    for f in failures.iter().take(100) {
        eprintln!("{f}\n  replay: DDS_SIM_ENGINE_SEED=<seed> cargo test -p dds-engine --test simulation seeded_engine -- --nocapture");
    }
    assert!(
        failures.is_empty(),
        "{} of {n} seeds failed",
        failures.len()
    );
    assert!(
        outcomes.get("succeeded").copied().unwrap_or(0) > n / 3,
        "too few successes: {outcomes:?}"
    );
}
