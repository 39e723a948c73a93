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
//! - `seeded_class_change_and_parameter_restart` for class changes (`ModifyDBInstanceSpec` /
//!   `ModifyNodeSpec`) and the rolling restarts `ModifyParameters` records: 300 seeds,
//!   `DDS_SIM_SPEC_SEED=<n>` replays one.
//! - `seeded_engine_upgrade` for major version upgrades (`UpgradeDBInstanceEngineVersion`, 4.2 → 4.4,
//!   FCV raised last): 300 seeds, `DDS_SIM_ENGINE_SEED=<n>` replays one.

use dds_engine::workflow::harness::{
    engine_upgrade_scenario, run, run_traced, scenario, spec_or_parameter_scenario,
    switch_or_member_scenario, RunSummary, Scenario,
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

/// Runs seeds 1..=n of `make` (or replays `replay`), tallying outcomes per operation; panics with every
/// failing seed's line. `check` adds a family's own condition on each run that held the invariants.
/// Answers the tally (empty after a replay).
fn run_family(
    make: fn(u64) -> Scenario,
    replay: &str,
    count: &str,
    default: u64,
    name: &str,
    check: fn(&Scenario, &RunSummary) -> Result<(), String>,
) -> BTreeMap<String, u64> {
    if let Some(seed) = env_u64(replay) {
        let s = make(seed);
        println!("{}", s.describe());
        match run(&s) {
            Ok(summary) => {
                println!("{summary:#?}");
                return BTreeMap::new();
            }
            Err(e) => panic!("{e}"),
        }
    }
    let n = env_u64(count).unwrap_or(default);
    let mut failures = Vec::new();
    let mut outcomes = BTreeMap::<String, u64>::new();
    for seed in 1..=n {
        let s = make(seed);
        match run(&s) {
            Ok(summary) if check(&s, &summary).is_err() => {
                failures.push(format!(
                    "{}: {}",
                    s.describe(),
                    check(&s, &summary).unwrap_err()
                ));
            }
            Ok(summary) => {
                let key = match &summary.outcome {
                    dds_engine::workflow::Outcome::Succeeded => "succeeded".to_string(),
                    dds_engine::workflow::Outcome::Failed(f) => {
                        format!("failed:{}", reason_name(&f.reason))
                    }
                };
                let op = s.describe();
                let op = op
                    .split(' ')
                    .nth(2)
                    .unwrap_or("?")
                    .split('(')
                    .next()
                    .unwrap_or("?")
                    .to_string();
                *outcomes.entry(format!("{op}:{key}")).or_default() += 1;
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    println!("{n} {name} seeds; outcomes {outcomes:?}");
    for f in failures.iter().take(100) {
        eprintln!("{f}\n  replay: {replay}=<seed> cargo test -p dds-engine --test simulation -- --nocapture");
    }
    assert!(
        failures.is_empty(),
        "{} of {n} seeds failed",
        failures.len()
    );
    outcomes
}

#[test]
fn seeded_class_change_and_parameter_restart() {
    run_family(
        spec_or_parameter_scenario,
        "DDS_SIM_SPEC_SEED",
        "DDS_SIM_SPEC_SEEDS",
        300,
        "class change / parameter restart",
        |_, _| Ok(()),
    );
}

#[test]
fn seeded_engine_upgrade() {
    let outcomes = run_family(
        engine_upgrade_scenario,
        "DDS_SIM_ENGINE_SEED",
        "DDS_SIM_ENGINE_SEEDS",
        300,
        "major version upgrade",
        |_, summary| match summary.outcome {
            // Raised last (the audit checks when), on every replica set.
            dds_engine::workflow::Outcome::Succeeded if summary.truth.fcv_changes.is_empty() => {
                Err("succeeded without raising the FCV".into())
            }
            _ => Ok(()),
        },
    );
    if !outcomes.is_empty() {
        let succeeded: u64 = outcomes
            .iter()
            .filter(|(k, _)| k.ends_with(":succeeded"))
            .map(|(_, v)| v)
            .sum();
        let n: u64 = outcomes.values().sum();
        assert!(succeeded > n / 3, "too few successes: {outcomes:?}");
    }
}
