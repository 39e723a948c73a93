//! Seeded simulation of rolling operations: a [`RollingOperation`] driven against a [`SimFleet`] on virtual
//! time, with every step held against the invariants.
//!
//! One `u64` seed decides everything — topology, operation, faults of the test matrix, where the control
//! plane "crashes" — so a failing run is replayed exactly from its seed ([`scenario`] then [`run`]). The loop:
//! observe → `step` → audit (I1–I8 re-derived, [`DecisionAudit`]) and ground truth (the fleet's [`Truth`]: no
//! primary ever asked to stop, ≤ 1 member per replica set out by our commands) → execute on the fleet →
//! `on_result`, fast-forwarding virtual time to the next fleet event or the operation's `WaitUntil`.
//! Kill-and-resume serialises the operation to JSON and continues from the copy, at chosen crash points:
//! before the commands run, after they ran but before their results were recorded, after, or — F16 — with the
//! step's record lost altogether (member commands only: losing the balancer record is outside the runtime's
//! persist-before-execute contract).
//!
//! At the end: success ⇒ every process on the target (or restarted) exactly once, the balancer back in its
//! recorded mode, and — fault-free — exactly the elections `plan_steps` predicts per replica set and exactly
//! its step count executed; failure ⇒ nothing begun after the failing member except putting it back, the
//! balancer restored, and the report naming member and reason.

use super::check::{DecisionAudit, Violation};
use super::operation::{
    Decision, FailureReason, MemberStep, Outcome, RestartScope, RollingKind, RollingOperation,
    RsStatus,
};
use super::report::{plan_restart_steps, plan_steps, Report};
use super::UpgradeConfig;
use crate::build::fixtures;
use crate::model::{Instance, ReplicaSetSpec, Topology};
use crate::plane::{BalancerMode, Command, MemberState, Millis};
use crate::sim::{ElectionCause as SimElectionCause, Fault, SimFleet, SimParams, Truth};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::fmt;

/// Kernel every process starts on.
pub const FROM_KERNEL: &str = "mongodb_20211020_4.4.6";
/// Kernel the upgrades go to.
pub const TO_KERNEL: &str = "mongodb_20220629_4.4.9";
/// Kernel a major version upgrade starts on (engine 4.2).
pub const ENGINE_FROM_KERNEL: &str = "mongodb_20230421_4.2.16";
/// Kernel a major version upgrade goes to (the newest of engine 4.4).
pub const ENGINE_TO_KERNEL: &str = "mongodb_20240119_4.4.19";
/// Virtual time at which every run starts (2026-01-01T00:00:00Z).
pub const START_MS: Millis = 1_767_225_600_000;

/// Where the control plane "crashes" around one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crash {
    None,
    /// The state was persisted after `step`; the commands never ran.
    BeforeExecute,
    /// The commands ran; their results were never recorded.
    BeforeResult,
    /// Everything was recorded; the state is reloaded from JSON.
    AfterResult,
    /// F16: the commands ran but the step's record was lost (the state from before the step is reloaded).
    LostRecord,
}

/// How often a run crashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPlan {
    Never,
    /// About one step in `one_in`, crash point chosen at random.
    Random {
        one_in: u32,
    },
    /// At every step, cycling through the crash points.
    EveryStep,
}

/// A fault of the test matrix armed for a run, with its row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultSpec {
    Sim {
        row: &'static str,
        fault: Fault,
    },
    /// F10: the balancer is off before the operation.
    BalancerOff,
}

impl FaultSpec {
    pub fn row(&self) -> &'static str {
        match self {
            FaultSpec::Sim { row, .. } => row,
            FaultSpec::BalancerOff => "F10",
        }
    }
}

impl fmt::Display for FaultSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultSpec::Sim { row, fault } => write!(f, "{row}:{fault:?}"),
            FaultSpec::BalancerOff => write!(f, "F10:BalancerOff"),
        }
    }
}

/// One seeded run.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub seed: u64,
    pub topology_name: String,
    pub instance: Instance,
    pub kind: RollingKind,
    pub config: UpgradeConfig,
    pub params: SimParams,
    pub faults: Vec<FaultSpec>,
    pub crash: CrashPlan,
}

impl Scenario {
    /// A fault-free, crash-free scenario with default limits and simulation parameters.
    pub fn new(seed: u64, topology_name: &str, instance: Instance, kind: RollingKind) -> Self {
        Scenario {
            seed,
            topology_name: topology_name.to_string(),
            instance,
            kind,
            config: UpgradeConfig::default(),
            params: SimParams::default(),
            faults: Vec::new(),
            crash: CrashPlan::Never,
        }
    }

    /// An upgrade from [`FROM_KERNEL`] to [`TO_KERNEL`] of `topology`.
    pub fn upgrade(seed: u64, topology_name: &str, topology: Topology) -> Self {
        Self::new(
            seed,
            topology_name,
            fixtures::instance("dds-bpsim", "4.4", topology),
            RollingKind::Upgrade {
                target_kernel: TO_KERNEL.to_string(),
            },
        )
    }

    pub fn with_fault(mut self, row: &'static str, fault: Fault) -> Self {
        self.faults.push(FaultSpec::Sim { row, fault });
        self
    }

    /// `seed=… topology=… op=… faults=… crash=…`, the line a failing test prints.
    pub fn describe(&self) -> String {
        let faults: Vec<String> = self.faults.iter().map(ToString::to_string).collect();
        let op = match &self.kind {
            RollingKind::Upgrade { .. } => "upgrade".to_string(),
            RollingKind::Restart { scope } => format!("restart({scope:?})"),
            RollingKind::Switch { scope, .. } => format!("switch({scope:?})"),
            RollingKind::ClassChange { scope, class, .. } => {
                format!("class_change({scope:?},{class})")
            }
            RollingKind::EngineUpgrade { target_fcv, .. } => {
                format!("engine-upgrade({target_fcv})")
            }
        };
        format!(
            "seed={} topology={} op={op} faults=[{}] crash={:?}",
            self.seed,
            self.topology_name,
            faults.join(", "),
            self.crash
        )
    }
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub outcome: Outcome,
    pub steps: u64,
    pub resumes: u64,
    pub virtual_ms: Millis,
    pub report: Report,
    /// The fleet's ground truth at the end (after a settling period).
    pub truth: Truth,
}

/// A run that broke an invariant (or never finished).
#[derive(Debug, Clone)]
pub struct RunError {
    pub scenario: String,
    pub step: u64,
    pub at_ms: Millis,
    pub violation: Violation,
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} — step {} at +{} ms: {}",
            self.scenario,
            self.step,
            self.at_ms.saturating_sub(START_MS),
            self.violation
        )
    }
}

impl std::error::Error for RunError {}

fn pick<'a, T>(rng: &mut SmallRng, items: &'a [T]) -> &'a T {
    &items[rng.gen_range(0..items.len())]
}

fn set_kind(mut rs: ReplicaSetSpec) -> ReplicaSetSpec {
    rs.kind = crate::model::ReplicaSetKind::Instance;
    rs
}

/// The scenario a seed stands for: topology (PSS, PSH, PSA, 5 and 7 members, delayed, higher priority,
/// read-only replicas, sharded with 1–4 shards and 1–4 mongos), operation (mostly upgrades, some rolling
/// restarts of the instance or one node) and at most one fault row of F1–F17, plus a crash plan.
pub fn scenario(seed: u64) -> Scenario {
    scenario_of(seed, default_kind)
}

/// The upgrade or restart of [`scenario`] (six in seven upgrades).
fn default_kind(rng: &mut SmallRng, instance: &Instance) -> RollingKind {
    let sharded = matches!(instance.topology, Topology::Sharded { .. });
    if rng.gen_ratio(1, 7) {
        let scope = if sharded && rng.gen_bool(0.5) {
            let nodes: Vec<String> = instance
                .topology
                .replica_sets()
                .iter()
                .map(|r| r.node_id.clone())
                .chain(instance.topology.mongos().iter().map(|m| m.node_id.clone()))
                .collect();
            RestartScope::Node {
                node_id: pick(rng, &nodes).clone(),
            }
        } else {
            RestartScope::Instance
        };
        RollingKind::Restart { scope }
    } else {
        RollingKind::Upgrade {
            target_kernel: TO_KERNEL.to_string(),
        }
    }
}

/// A scenario whose operation is a primary switch (`SwitchDBInstanceHA`) or a one-member restart
/// (`RestartNode`), half and half, over the same topologies, faults and crashes as [`scenario`].
pub fn switch_or_member_scenario(seed: u64) -> Scenario {
    scenario_of(seed, |rng, instance| {
        let sets = instance.topology.replica_sets();
        let rs = pick(rng, &sets);
        let node_id = rs.node_id.clone();
        if rng.gen_bool(0.5) {
            let scope = match instance.topology {
                Topology::Sharded { .. } => RestartScope::Node { node_id },
                _ => RestartScope::Instance,
            };
            RollingKind::Switch {
                scope,
                candidates: Vec::new(),
            }
        } else {
            let members: Vec<String> = rs.members.iter().map(|m| m.node_id.clone()).collect();
            RollingKind::Restart {
                scope: RestartScope::Member {
                    node_id,
                    role_id: pick(rng, &members).clone(),
                },
            }
        }
    })
}

/// A scenario whose operation is a class change (`ModifyDBInstanceSpec` of the instance, or
/// `ModifyNodeSpec` of one shard, config server or mongos of a sharded cluster) or the rolling restart
/// a `ModifyParameters` records (the instance, or one node), half and half, over the same topologies,
/// faults and crashes as [`scenario`]. Every process in scope must be restarted exactly once.
pub fn spec_or_parameter_scenario(seed: u64) -> Scenario {
    scenario_of(seed, |rng, instance| {
        let nodes: Vec<(String, Option<u32>)> = instance
            .topology
            .replica_sets()
            .iter()
            .filter(|r| r.kind != crate::model::ReplicaSetKind::Instance)
            .map(|r| (r.node_id.clone(), Some(r.storage_gb + 10)))
            .chain(
                instance
                    .topology
                    .mongos()
                    .iter()
                    .map(|m| (m.node_id.clone(), None)),
            )
            .collect();
        let class_change = rng.gen_bool(0.5);
        // A sharded cluster changes class node by node (`ModifyNodeSpec`); its parameters may restart
        // the whole cluster.
        let (scope, storage_gb) = if nodes.is_empty() || (!class_change && rng.gen_bool(0.25)) {
            (RestartScope::Instance, Some(instance.storage_gb + 10))
        } else {
            let (node_id, storage) = pick(rng, &nodes).clone();
            (RestartScope::Node { node_id }, storage)
        };
        if class_change {
            RollingKind::ClassChange {
                scope,
                class: "dds.sim.larger".to_string(),
                storage_gb,
            }
        } else {
            RollingKind::Restart { scope }
        }
    })
}
/// A scenario whose operation is a major version upgrade (`UpgradeDBInstanceEngineVersion`) from
/// [`ENGINE_FROM_KERNEL`] (4.2) to [`ENGINE_TO_KERNEL`] (4.4, FCV raised last), over the same topologies,
/// faults and crashes as [`scenario`].
pub fn engine_upgrade_scenario(seed: u64) -> Scenario {
    scenario_on(seed, "4.2", ENGINE_FROM_KERNEL, ENGINE_TO_KERNEL, |_, _| {
        RollingKind::EngineUpgrade {
            target_kernel: ENGINE_TO_KERNEL.to_string(),
            target_fcv: "4.4".to_string(),
        }
    })
}

fn scenario_of(
    seed: u64,
    kind_of: impl FnOnce(&mut SmallRng, &Instance) -> RollingKind,
) -> Scenario {
    scenario_on(seed, "4.4", FROM_KERNEL, TO_KERNEL, kind_of)
}

fn scenario_on(
    seed: u64,
    engine: &str,
    from_kernel: &str,
    to_kernel: &str,
    kind_of: impl FnOnce(&mut SmallRng, &Instance) -> RollingKind,
) -> Scenario {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x005E_ED0F_5CE4_A210);
    let k = from_kernel;
    let (name, topology) = match rng.gen_range(0..16) {
        0 | 1 => (
            "pss".to_string(),
            fixtures::replica_set(fixtures::pss("rs0", k)),
        ),
        2 | 3 => (
            "psh".to_string(),
            fixtures::replica_set(fixtures::psh("rs0", k)),
        ),
        4 => (
            "psa".to_string(),
            fixtures::replica_set(fixtures::psa("rs0", k)),
        ),
        5 => (
            "five".to_string(),
            fixtures::replica_set(fixtures::five_members("rs0", k)),
        ),
        6 => (
            "seven".to_string(),
            fixtures::replica_set(fixtures::seven_members("rs0", k)),
        ),
        7 => {
            let delay = *pick(&mut rng, &[60u32, 600, 3600]);
            (
                format!("delayed{delay}s"),
                fixtures::replica_set(fixtures::with_delayed("rs0", k, delay)),
            )
        }
        8 => (
            "higher-priority".to_string(),
            fixtures::replica_set(fixtures::with_higher_priority("rs0", k)),
        ),
        9 => {
            let ro = rng.gen_range(1..=2);
            (
                format!("psh+{ro}ro"),
                fixtures::replica_set(set_kind(fixtures::with_readonly("rs0", k, ro))),
            )
        }
        _ => {
            let shards = rng.gen_range(1..=4);
            let mongos = *pick(&mut rng, &[1usize, 2, 2, 3, 4]);
            (
                format!("sharded{shards}x{mongos}"),
                fixtures::sharded(shards, mongos, k),
            )
        }
    };
    let mut instance = fixtures::instance("dds-bpsim", engine, topology);
    // A retry after a failed upgrade: some processes already run the target (never restarted again, I4).
    let mut name = name;
    if rng.gen_ratio(1, 6) {
        let ids: Vec<String> = instance
            .topology
            .replica_sets()
            .iter()
            .flat_map(|r| r.members.iter().map(|m| m.node_id.clone()))
            .chain(instance.topology.mongos().iter().map(|m| m.node_id.clone()))
            .collect();
        let keep_old = rng.gen_range(0..ids.len());
        for (i, id) in ids.iter().enumerate() {
            if i != keep_old && rng.gen_bool(0.35) {
                instance.topology.set_kernel_version(id, to_kernel);
            }
        }
        name.push_str("+mixed");
    }
    let sharded = matches!(instance.topology, Topology::Sharded { .. });
    let kind = kind_of(&mut rng, &instance);
    let mut config = UpgradeConfig::default();
    // Mostly the default window; sometimes strictly sequential or a window narrower than the shard count.
    if sharded && rng.gen_ratio(1, 4) {
        config.max_parallel_shards = rng.gen_range(1..=3);
    }
    if sharded && rng.gen_ratio(1, 3) {
        config.mongos_batch = rng.gen_range(2..=3);
    }
    let faults = pick_faults(&mut rng, &instance);
    let crash = match rng.gen_range(0..20) {
        0 => CrashPlan::EveryStep,
        1..=6 => CrashPlan::Random {
            one_in: rng.gen_range(3..12),
        },
        _ => CrashPlan::Never,
    };
    Scenario {
        seed,
        topology_name: name,
        instance,
        kind,
        config,
        params: SimParams::default(),
        faults,
        crash,
    }
}

fn pick_faults(rng: &mut SmallRng, instance: &Instance) -> Vec<FaultSpec> {
    if rng.gen_bool(0.4) {
        return Vec::new();
    }
    let sets = instance.topology.replica_sets();
    let rs = *pick(rng, &sets);
    let member = pick(rng, &rs.members).node_id.clone();
    let mongos: Vec<String> = instance
        .topology
        .mongos()
        .iter()
        .map(|m| m.node_id.clone())
        .collect();
    let sharded = !mongos.is_empty();
    let shard_row = |r: &'static str| {
        if rs.kind == crate::model::ReplicaSetKind::Shard {
            "F12"
        } else {
            r
        }
    };
    let at = START_MS + rng.gen_range(0..900_000);
    let spec = match rng.gen_range(0..13) {
        0 | 1 => FaultSpec::Sim {
            row: shard_row("F1"),
            fault: Fault::StartFails { node_id: member },
        },
        2 => FaultSpec::Sim {
            row: "F2",
            fault: Fault::StuckInState {
                node_id: member,
                state: *pick(rng, &[MemberState::Startup2, MemberState::Recovering]),
            },
        },
        3 => FaultSpec::Sim {
            row: "F2",
            fault: Fault::NeverCatchesUp { node_id: member },
        },
        4 => FaultSpec::Sim {
            row: "F3",
            fault: Fault::StepDownRefused {
                replica_set: rs.name.clone(),
                until_ms: if rng.gen_bool(0.5) {
                    None
                } else {
                    Some(at + rng.gen_range(0..400_000))
                },
            },
        },
        5 => FaultSpec::Sim {
            row: "F4",
            fault: Fault::NoNewPrimary {
                replica_set: rs.name.clone(),
                until_ms: if rng.gen_bool(0.5) {
                    None
                } else {
                    Some(at + rng.gen_range(0..60_000))
                },
            },
        },
        6 | 7 => FaultSpec::Sim {
            row: "F7",
            fault: Fault::Crash {
                node_id: member,
                at_ms: at,
                recover_after_ms: if rng.gen_bool(0.6) {
                    Some(rng.gen_range(5_000..400_000))
                } else {
                    None
                },
            },
        },
        8 => FaultSpec::Sim {
            row: "F8",
            fault: Fault::PrimaryChange {
                replica_set: rs.name.clone(),
                at_ms: at,
            },
        },
        9 => FaultSpec::Sim {
            row: "F17",
            fault: Fault::OplogWindow {
                replica_set: rs.name.clone(),
                window_ms: rng.gen_range(60_000..1_800_000),
            },
        },
        10 => FaultSpec::Sim {
            row: "F2",
            fault: Fault::SlowStart {
                node_id: member,
                extra_ms: rng.gen_range(10_000..300_000),
            },
        },
        11 if sharded => {
            if rng.gen_bool(0.5) {
                FaultSpec::BalancerOff
            } else {
                FaultSpec::Sim {
                    row: "F11",
                    fault: Fault::BalancerRound {
                        until_ms: START_MS + rng.gen_range(1_000..400_000),
                    },
                }
            }
        }
        12 if sharded => FaultSpec::Sim {
            row: "F13",
            fault: Fault::MongosStartFails {
                node_id: pick(rng, &mongos).clone(),
            },
        },
        _ => FaultSpec::Sim {
            row: shard_row("F1"),
            fault: Fault::StartFails { node_id: member },
        },
    };
    vec![spec]
}

fn fail(scenario: &Scenario, step: u64, at_ms: Millis, v: Violation) -> RunError {
    RunError {
        scenario: scenario.describe(),
        step,
        at_ms,
        violation: v,
    }
}

fn violation(invariant: &'static str, detail: impl Into<String>) -> Violation {
    Violation {
        invariant,
        detail: detail.into(),
    }
}

fn reload(op: &RollingOperation) -> Result<RollingOperation, Violation> {
    let json =
        serde_json::to_string(op).map_err(|e| violation("I11", format!("serialise: {e}")))?;
    serde_json::from_str(&json).map_err(|e| violation("I11", format!("deserialise: {e}")))
}

/// The live progress agrees with the state: counts within bounds, finished sets complete, and a set with a
/// member out of service names it.
fn check_progress(op: &RollingOperation) -> Result<(), Violation> {
    let p = op.progress();
    for (rs, track) in p.replica_sets.iter().zip(
        op.replica_sets
            .iter()
            .filter(|r| r.status != RsStatus::OutOfScope),
    ) {
        if rs.members_done > rs.members_total
            || (rs.status == RsStatus::Done && rs.members_done != rs.members_total)
        {
            return Err(violation("progress", format!("{rs:?}")));
        }
        if let Some(m) = track.procs.iter().find(|m| m.step.in_flight()) {
            if rs.current.as_ref().map(|c| c.node_id.as_str()) != Some(m.node_id.as_str()) {
                return Err(violation(
                    "progress",
                    format!("{} out but not shown: {rs:?}", m.node_id),
                ));
            }
        }
    }
    if p.mongos.done > p.mongos.total {
        return Err(violation("progress", format!("{:?}", p.mongos)));
    }
    Ok(())
}

/// Ground truth after every step: I2 (nobody asked a primary to stop) and I1 (never two members of a set out
/// because of our commands).
fn check_truth_step(truth: &Truth) -> Result<(), Violation> {
    if let Some(a) = truth.primary_stop_attempts.first() {
        return Err(violation(
            "I2",
            format!(
                "stop of primary {} in {} at {}",
                a.node_id, a.replica_set, a.at_ms
            ),
        ));
    }
    for rs in &truth.replica_sets {
        if rs.max_out_by_commands > 1 {
            return Err(violation(
                "I1",
                format!(
                    "{} had {} members out by our commands",
                    rs.name, rs.max_out_by_commands
                ),
            ));
        }
    }
    Ok(())
}

/// Runs one scenario to its end, checking every step.
pub fn run(scenario: &Scenario) -> Result<RunSummary, RunError> {
    run_traced(scenario, &mut None)
}

/// [`run`], recording one line per step (decision, crash point, command results) into `trace` when given.
pub fn run_traced(
    scenario: &Scenario,
    trace: &mut Option<Vec<String>>,
) -> Result<RunSummary, RunError> {
    let mut fleet = SimFleet::new(
        &scenario.instance.topology,
        scenario.params.clone(),
        scenario.seed,
        START_MS,
    );
    for f in &scenario.faults {
        match f {
            FaultSpec::Sim { fault, .. } => fleet.arm_fault(fault.clone()).map_err(|e| {
                fail(
                    scenario,
                    0,
                    START_MS,
                    violation("setup", format!("fault {f}: {e}")),
                )
            })?,
            FaultSpec::BalancerOff => fleet.set_balancer(BalancerMode::Off, None),
        }
    }
    let planned = match &scenario.kind {
        RollingKind::Upgrade { target_kernel } => RollingOperation::plan_upgrade(
            &scenario.instance,
            target_kernel,
            scenario.config.clone(),
        ),
        RollingKind::Restart { scope } => RollingOperation::plan_restart(
            &scenario.instance,
            scope.clone(),
            scenario.config.clone(),
        ),
        RollingKind::Switch { scope, candidates } => RollingOperation::plan_switch(
            &scenario.instance,
            scope.clone(),
            candidates.clone(),
            scenario.config.clone(),
        ),
        RollingKind::ClassChange {
            scope,
            class,
            storage_gb,
        } => RollingOperation::plan_class_change(
            &scenario.instance,
            scope.clone(),
            class,
            *storage_gb,
            scenario.config.clone(),
        ),
        RollingKind::EngineUpgrade {
            target_kernel,
            target_fcv,
        } => RollingOperation::plan_engine_upgrade(
            &scenario.instance,
            target_kernel,
            target_fcv,
            scenario.config.clone(),
        ),
    };
    let mut op = planned.map_err(|e| {
        fail(
            scenario,
            0,
            START_MS,
            violation("I9", format!("plan refused: {e}")),
        )
    })?;
    let mut audit = DecisionAudit::new();
    let mut crash_rng = SmallRng::seed_from_u64(scenario.seed ^ 0xC4A5_11ED);
    let mut resumes = 0u64;
    let deadline_ms = START_MS + 48 * 3_600_000;
    let mut step_no = 0u64;
    loop {
        step_no += 1;
        let now = fleet.now_ms();
        let err = |v| fail(scenario, step_no, now, v);
        if step_no > 200_000 || now > deadline_ms {
            return Err(err(violation("liveness", "operation did not finish")));
        }
        let obs = fleet.observe();
        let before = op.clone();
        let decision = op.step(&obs, now);
        check_progress(&op).map_err(err)?;
        audit
            .check_step(&before, &op, &obs, now, &decision)
            .map_err(err)?;
        let crash = match scenario.crash {
            CrashPlan::Never => Crash::None,
            CrashPlan::Random { one_in } => {
                if crash_rng.gen_ratio(1, one_in) {
                    *pick(
                        &mut crash_rng,
                        &[
                            Crash::BeforeExecute,
                            Crash::BeforeResult,
                            Crash::AfterResult,
                            Crash::LostRecord,
                        ],
                    )
                } else {
                    Crash::None
                }
            }
            CrashPlan::EveryStep => match step_no % 4 {
                0 => Crash::BeforeExecute,
                1 => Crash::BeforeResult,
                2 => Crash::AfterResult,
                _ => Crash::LostRecord,
            },
        };
        if let Some(t) = trace.as_mut() {
            t.push(format!(
                "#{step_no} +{}ms {crash:?} {decision:?}",
                now - START_MS
            ));
        }
        match decision {
            Decision::Done(_) => {
                audit.check_end(&op, &obs).map_err(err)?;
                break;
            }
            Decision::WaitUntil(t) => {
                let next = fleet.next_event_ms().map_or(t, |e| e.min(t)).max(now + 1);
                fleet.advance_to(next);
                if crash != Crash::None {
                    op = reload(&op).map_err(err)?;
                    resumes += 1;
                }
            }
            Decision::Issue(cmds) => {
                if crash == Crash::BeforeExecute {
                    op = reload(&op).map_err(err)?;
                    resumes += 1;
                    continue;
                }
                let results: Vec<_> = cmds.iter().map(|c| fleet.apply(c)).collect();
                for (c, r) in cmds.iter().zip(&results) {
                    audit.on_result(c, r);
                }
                if let Some(t) = trace.as_mut() {
                    t.push(format!("    results {results:?}"));
                }
                check_truth_step(fleet.truth()).map_err(err)?;
                // F16 loses the record of a start only: a lost record of a stop or of the balancer is
                // outside the runtime's persist-before-execute contract.
                let only_starts = cmds.iter().all(|c| {
                    matches!(c, Command::StartMember { .. } | Command::StartMongos { .. })
                });
                match crash {
                    Crash::BeforeResult => {
                        op = reload(&op).map_err(err)?;
                        resumes += 1;
                        continue;
                    }
                    Crash::LostRecord if only_starts => {
                        op = reload(&before).map_err(err)?;
                        resumes += 1;
                        continue;
                    }
                    _ => {}
                }
                for (c, r) in cmds.iter().zip(results) {
                    op.on_result(c, r, now);
                }
                if crash != Crash::None {
                    op = reload(&op).map_err(err)?;
                    resumes += 1;
                }
            }
        }
        check_truth_step(fleet.truth()).map_err(err)?;
    }
    let end_ms = fleet.now_ms();
    let report = op
        .report()
        .ok_or_else(|| fail(scenario, step_no, end_ms, violation("§4.2", "no report")))?;
    // Let late effects (a priority takeover after catch-up) happen before counting elections.
    fleet.advance_to(end_ms + 120_000);
    check_end_truth(scenario, &op, &report, fleet.truth(), end_ms)
        .map_err(|v| fail(scenario, step_no, end_ms, v))?;
    Ok(RunSummary {
        outcome: report.outcome.clone(),
        steps: step_no,
        resumes,
        virtual_ms: end_ms - START_MS,
        report,
        truth: fleet.truth().clone(),
    })
}

/// A major version upgrade raises the feature compatibility version last: only on success, once, on every
/// replica set, to the target, after the last process launch of the operation and with every running process
/// on the target at that moment. Any other operation never touches it.
fn check_fcv_truth(op: &RollingOperation, truth: &Truth) -> Result<(), Violation> {
    let Some(target_fcv) = op.target_fcv() else {
        if !truth.fcv_changes.is_empty() {
            return Err(violation(
                "FCV",
                "FCV changed by an operation that is not a major upgrade",
            ));
        }
        return Ok(());
    };
    let succeeded = op.failure.is_none();
    let fcv_failed = matches!(
        op.failure.as_ref().map(|f| &f.reason),
        Some(FailureReason::FcvNotRaised { .. })
    );
    if !succeeded {
        if !truth.fcv_changes.is_empty() && !fcv_failed {
            return Err(violation("FCV", "FCV raised by a failed major upgrade"));
        }
        return Ok(());
    }
    for rs in &op.replica_sets {
        let n = truth
            .fcv_changes
            .iter()
            .filter(|(_, name, v)| name == &rs.name && v == target_fcv)
            .count();
        if n != 1 {
            return Err(violation(
                "FCV",
                format!("{}: FCV raised to {target_fcv} {n} times", rs.name),
            ));
        }
    }
    let Some(first) = truth.fcv_changes.iter().map(|(t, _, _)| *t).min() else {
        return Err(violation("FCV", "FCV never raised"));
    };
    let target = op.target().unwrap_or_default();
    for p in &truth.processes {
        // Launches by this operation happened before the FCV was raised, and the binary every process ran
        // at that moment was the target.
        let before: Vec<&(Millis, String)> =
            p.launches.iter().filter(|(t, _)| *t <= first).collect();
        if p.launches.iter().any(|(t, k)| *t > first && k != target) {
            return Err(violation(
                "FCV",
                format!(
                    "{} launched on another binary after the FCV was raised",
                    p.node_id
                ),
            ));
        }
        if let Some((_, k)) = before.last() {
            if k != target {
                return Err(violation(
                    "FCV",
                    format!("FCV raised while {} ran {k}", p.node_id),
                ));
            }
        }
        if p.starts_by_command > 0
            && truth.commands.iter().any(|c| {
                c.at_ms > first
                    && c.result.is_ok()
                    && matches!(&c.command, Command::StartMember { node_id, .. } | Command::StartMongos { node_id, .. } if *node_id == p.node_id)
            })
        {
            return Err(violation(
                "FCV",
                format!("{} restarted after the FCV was raised", p.node_id),
            ));
        }
    }
    Ok(())
}

fn check_end_truth(
    scenario: &Scenario,
    op: &RollingOperation,
    report: &Report,
    truth: &Truth,
    end_ms: Millis,
) -> Result<(), Violation> {
    let started = op.started_ms.unwrap_or(end_ms);
    // The balancer ends in the mode it was found in (I6), on every path.
    if let (Some(recorded), Some((_, last))) = (op.balancer.recorded, truth.balancer_modes.last()) {
        if *last != recorded {
            return Err(violation(
                "I6",
                format!("balancer ended {last:?}, recorded {recorded:?}"),
            ));
        }
    }
    // Elections the operation reported equal those that happened while it ran.
    for rs in &report.replica_sets {
        let Some(t) = truth.replica_set(&rs.name) else {
            continue;
        };
        let during = t
            .elections
            .iter()
            .filter(|e| e.at_ms >= started && e.at_ms <= end_ms)
            .count() as u64;
        if during != rs.elections {
            return Err(violation(
                "report",
                format!(
                    "{}: reported {} elections, {during} happened",
                    rs.name, rs.elections
                ),
            ));
        }
    }
    let reverted = |node: &str| {
        op.replica_sets
            .iter()
            .flat_map(|r| &r.procs)
            .chain(op.mongos.iter().map(|m| &m.proc))
            .find(|p| p.node_id == node)
            .is_some_and(|p| p.revert.is_some())
    };
    for p in &truth.processes {
        let allowed = 1 + u32::from(reverted(&p.node_id));
        if p.stops_by_command > allowed || p.starts_by_command > allowed {
            return Err(violation(
                "I4",
                format!(
                    "{} stopped {} / started {} times by command",
                    p.node_id, p.stops_by_command, p.starts_by_command
                ),
            ));
        }
    }
    check_fcv_truth(op, truth)?;
    let fault_free = scenario.faults.is_empty();
    match &report.outcome {
        Outcome::Succeeded => {
            let in_scope: Vec<(&str, &str)> = op
                .replica_sets
                .iter()
                .filter(|r| r.status != RsStatus::OutOfScope)
                .flat_map(|r| {
                    r.procs
                        .iter()
                        .map(|p| (p.node_id.as_str(), p.from_kernel.as_str()))
                })
                .chain(
                    op.mongos
                        .iter()
                        .filter(|m| m.in_scope)
                        .map(|m| (m.proc.node_id.as_str(), m.proc.from_kernel.as_str())),
                )
                .collect();
            for (node, from) in in_scope {
                let Some(p) = truth.process(node) else {
                    return Err(violation("I4", format!("{node} unknown to the fleet")));
                };
                let skipped = op
                    .replica_sets
                    .iter()
                    .flat_map(|r| r.procs.iter())
                    .any(|p| p.node_id == node && p.step == MemberStep::Skipped);
                // A switch restarts nobody; `RestartNode` only its member.
                let untouched = op.is_switch() || (skipped && op.target().is_none());
                let needed = !untouched && op.target().is_none_or(|t| t != from);
                let expected = u32::from(needed);
                if p.stops_by_command != expected || p.starts_by_command != expected {
                    return Err(violation(
                        "I4",
                        format!(
                            "{node}: {} stops / {} starts, expected exactly {expected}",
                            p.stops_by_command, p.starts_by_command
                        ),
                    ));
                }
                if let Some(t) = op.target() {
                    if p.launches.last().map(|(_, k)| k.as_str()).unwrap_or(from) != t {
                        return Err(violation("I4", format!("{node} not running the target")));
                    }
                }
            }
            // A switch or a one-member restart has no dry run: one handover per set in scope for a
            // switch, at most one (the member was primary) for `RestartNode`; a priority takeover
            // that follows (the old primary outranks the new one) is MongoDB's, not ours.
            let narrow = op.is_switch()
                || matches!(
                    op.kind,
                    RollingKind::Restart {
                        scope: RestartScope::Member { .. }
                    }
                );
            if fault_free && scenario.crash == CrashPlan::Never && narrow {
                for rs in op
                    .replica_sets
                    .iter()
                    .filter(|r| r.status != RsStatus::OutOfScope)
                {
                    let Some(t) = truth.replica_set(&rs.name) else {
                        continue;
                    };
                    let handovers = t
                        .elections_since(started)
                        .filter(|e| e.cause != SimElectionCause::PriorityTakeover)
                        .count();
                    let ok = if op.is_switch() {
                        handovers == 1
                    } else {
                        handovers <= 1
                    };
                    if !ok {
                        return Err(violation(
                            "elections",
                            format!("{}: {handovers} elections besides takeovers", rs.name),
                        ));
                    }
                }
            }
            if fault_free && scenario.crash == CrashPlan::Never && !narrow {
                let plan = match &op.kind {
                    RollingKind::Upgrade { target_kernel }
                    | RollingKind::EngineUpgrade { target_kernel, .. } => {
                        plan_steps(&scenario.instance, target_kernel)
                    }
                    RollingKind::Restart { scope } | RollingKind::ClassChange { scope, .. } => {
                        plan_restart_steps(&scenario.instance, scope)
                    }
                    RollingKind::Switch { .. } => unreachable!("checked above"),
                };
                // A major version upgrade adds its accepted setFeatureCompatibilityVersion commands.
                let fcv_ok = truth
                    .commands
                    .iter()
                    .filter(|c| {
                        c.result.is_ok()
                            && matches!(c.command, Command::SetFeatureCompatibilityVersion { .. })
                    })
                    .count();
                if (plan.steps.len() + fcv_ok) as u64 != report.commands_executed {
                    return Err(violation(
                        "plan",
                        format!(
                            "plan_steps predicted {} steps, {} executed",
                            plan.steps.len(),
                            report.commands_executed
                        ),
                    ));
                }
                for (rs, expected) in &plan.expected_elections {
                    let Some(t) = truth.replica_set(rs) else {
                        continue;
                    };
                    let n = t.elections_since(started).count() as u32;
                    let takeovers = t
                        .elections_since(started)
                        .filter(|e| e.cause == SimElectionCause::PriorityTakeover)
                        .count() as u32;
                    if n != *expected {
                        return Err(violation(
                            "elections",
                            format!(
                                "{rs}: {n} elections ({takeovers} takeovers), expected {expected}"
                            ),
                        ));
                    }
                }
                for rs in &report.replica_sets {
                    for m in &rs.members {
                        if m.restarted && m.downtime_ms.is_none() {
                            return Err(violation(
                                "report",
                                format!("{} has no downtime", m.node_id),
                            ));
                        }
                    }
                }
            }
        }
        Outcome::Failed(f) => {
            // Nothing began after the failure but putting failed members back and finishing restarts already
            // under way.
            let in_flight_before: Vec<&str> = op
                .replica_sets
                .iter()
                .flat_map(|r| &r.procs)
                .chain(op.mongos.iter().map(|m| &m.proc))
                .filter(|p| p.stop_issued_ms.is_some_and(|t| t <= f.at_ms) || p.revert.is_some())
                .map(|p| p.node_id.as_str())
                .collect();
            for c in &truth.commands {
                if c.at_ms <= f.at_ms || c.result.is_err() {
                    continue;
                }
                let node = match &c.command {
                    Command::StopMember { node_id, .. } | Command::StopMongos { node_id } => {
                        node_id
                    }
                    Command::StepDown { node_id, .. } => {
                        return Err(violation(
                            "§4.2",
                            format!("stepdown of {node_id} after the failure"),
                        ));
                    }
                    _ => continue,
                };
                if !in_flight_before.contains(&node.as_str()) {
                    return Err(violation(
                        "§4.2",
                        format!("{node} stopped after the failure at {}", f.at_ms),
                    ));
                }
            }
            if matches!(f.reason, FailureReason::Preflight(_)) && !truth.commands.is_empty() {
                return Err(violation(
                    "I9",
                    "a refused preflight touched the deployment",
                ));
            }
            if fault_free {
                return Err(violation(
                    "liveness",
                    format!("fault-free run failed: {f:?}"),
                ));
            }
        }
    }
    // Members never left stopped by the operation.
    for rs in &op.replica_sets {
        for p in &rs.procs {
            if matches!(
                p.step,
                MemberStep::Stopping { .. } | MemberStep::Starting { .. }
            ) {
                return Err(violation("§4.2", format!("{} left mid-restart", p.node_id)));
            }
        }
    }
    Ok(())
}
