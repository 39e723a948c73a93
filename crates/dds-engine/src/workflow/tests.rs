//! State-machine tests against hand-driven observations.
//!
//! `Toy` is the smallest deployment that answers commands the way the plane contract says (stop refuses a
//! primary, stepdown hands off to the best caught-up electable member, start brings a member back as a
//! caught-up SECONDARY), with knobs for the failure rows of the test matrix. Effects are instant; the tests
//! move time and change states by hand where a row needs it. The realistic, timed model is `sim`, exercised by
//! the seeded simulation tests in `tests/`.

use super::check::DecisionAudit;
use super::gates::GateBlock;
use super::operation::*;
use super::report::{plan_restart_steps, plan_steps, plan_steps_observed, PlannedStep, WaitingOn};
use super::{PreflightError, UpgradeConfig};
use crate::model::*;
use crate::plane::*;
use std::collections::{BTreeMap, BTreeSet};

const OLD: &str = "mongodb_20230101_4.4.1";
const NEW: &str = "mongodb_20240101_4.4.2";
const BASE_OPTIME_MS: Millis = 1_000_000_000;

fn member(id: &str, kind: MemberKind, priority: u8) -> MemberSpec {
    MemberSpec {
        node_id: id.into(),
        kind,
        priority,
        delay_secs: if kind == MemberKind::Delayed { 3600 } else { 0 },
        kernel_version: OLD.into(),
    }
}

fn rs_spec(name: &str, kind: ReplicaSetKind, members: Vec<MemberSpec>) -> ReplicaSetSpec {
    ReplicaSetSpec {
        name: name.into(),
        node_id: format!("d-{name}"),
        kind,
        class: "dds.mongo.mid".into(),
        storage_gb: 10,
        members,
    }
}

fn pss(name: &str, kind: ReplicaSetKind) -> ReplicaSetSpec {
    rs_spec(
        name,
        kind,
        vec![
            member(&format!("{name}-0"), MemberKind::Electable, 2),
            member(&format!("{name}-1"), MemberKind::Electable, 2),
            member(&format!("{name}-2"), MemberKind::Hidden, 0),
        ],
    )
}

fn instance(topology: Topology) -> Instance {
    Instance {
        id: "dds-bp1toy".into(),
        description: String::new(),
        region_id: "cn-hangzhou".into(),
        zone_id: "cn-hangzhou-h".into(),
        engine: "MongoDB".into(),
        engine_version: "4.4".into(),
        class: "dds.mongo.mid".into(),
        storage_gb: 10,
        storage_type: "cloud_essd1".into(),
        storage_engine: "WiredTiger".into(),
        charge_type: ChargeType::PostPaid,
        network_type: "VPC".into(),
        vpc_id: String::new(),
        vswitch_id: String::new(),
        resource_group_id: String::new(),
        status: DbInstanceStatus::Running,
        lock_mode: LockMode::Unlock,
        maintain_window: MaintainWindow::default(),
        creation_time: "2026-01-01T00:00:00Z".into(),
        tags: Vec::new(),
        topology,
    }
}

fn replica_set(spec: ReplicaSetSpec) -> Instance {
    instance(Topology::ReplicaSet { replica_set: spec })
}

fn sharded(shards: usize, mongos: usize) -> Instance {
    instance(Topology::Sharded {
        config_server: pss("cfg", ReplicaSetKind::ConfigServer),
        shards: (0..shards)
            .map(|i| pss(&format!("sh{i}"), ReplicaSetKind::Shard))
            .collect(),
        mongos: (0..mongos)
            .map(|i| MongosSpec {
                node_id: format!("s-{i}"),
                class: "dds.mongos.mid".into(),
                kernel_version: OLD.into(),
            })
            .collect(),
    })
}

/// A deployment with instant effects.
struct Toy {
    now: Millis,
    specs: Vec<ReplicaSetSpec>,
    obs: DeploymentObservation,
    /// Nodes whose next start fails with an error (F1) / comes up but never leaves STARTUP2 / lags forever.
    start_error: BTreeSet<String>,
    stuck_startup2: BTreeSet<String>,
    lagging: BTreeSet<String>,
    refuse_stepdown: bool,
    /// `setFeatureCompatibilityVersion` is refused (e.g. a shard without a primary).
    refuse_fcv: bool,
    no_new_primary: bool,
    /// A restarted member with a higher priority than the primary takes over at once (F9).
    takeover: bool,
    /// This node wins an election just before every stop of it arrives (the stop then hits a primary).
    reelected_before_stop: Option<String>,
    /// Ground truth: every stop and start actually executed, per node.
    stops: BTreeMap<String, u32>,
    starts: BTreeMap<String, u32>,
    log: Vec<Command>,
    started_counter: Millis,
}

impl Toy {
    fn new(inst: &Instance) -> Self {
        let specs: Vec<ReplicaSetSpec> =
            inst.topology.replica_sets().into_iter().cloned().collect();
        let replica_sets = specs
            .iter()
            .map(|s| {
                let primary = s
                    .members
                    .iter()
                    .filter(|m| m.kind.electable())
                    .fold(None::<&MemberSpec>, |b, m| match b {
                        Some(b) if b.priority >= m.priority => Some(b),
                        _ => Some(m),
                    })
                    .map(|m| m.node_id.clone());
                ReplicaSetObservation {
                    name: s.name.clone(),
                    term: 1,
                    primary: primary.clone(),
                    primary_optime_ms: BASE_OPTIME_MS,
                    oplog_window_ms: Some(86_400_000),
                    fcv: None,
                    members: s
                        .members
                        .iter()
                        .map(|m| MemberObservation {
                            node_id: m.node_id.clone(),
                            state: if Some(&m.node_id) == primary.as_ref() {
                                MemberState::Primary
                            } else if m.kind == MemberKind::Arbiter {
                                MemberState::Arbiter
                            } else {
                                MemberState::Secondary
                            },
                            healthy: true,
                            process_up: true,
                            kernel_version: Some(m.kernel_version.clone()),
                            optime_ms: BASE_OPTIME_MS - u64::from(m.delay_secs) * 1000,
                            state_since_ms: 0,
                            started_ms: Some(0),
                        })
                        .collect(),
                }
            })
            .collect();
        let mongos = inst
            .topology
            .mongos()
            .iter()
            .map(|m| MongosObservation {
                node_id: m.node_id.clone(),
                up: true,
                kernel_version: Some(m.kernel_version.clone()),
                started_ms: Some(0),
            })
            .collect();
        let sharded = matches!(inst.topology, Topology::Sharded { .. });
        Toy {
            now: 1_000_000,
            specs,
            obs: DeploymentObservation {
                now_ms: 1_000_000,
                replica_sets,
                mongos,
                balancer: sharded.then_some(BalancerObservation {
                    mode: BalancerMode::Full,
                    in_balancer_round: false,
                }),
            },
            start_error: BTreeSet::new(),
            stuck_startup2: BTreeSet::new(),
            lagging: BTreeSet::new(),
            refuse_stepdown: false,
            refuse_fcv: false,
            no_new_primary: false,
            takeover: false,
            reelected_before_stop: None,
            stops: BTreeMap::new(),
            starts: BTreeMap::new(),
            log: Vec::new(),
            started_counter: 0,
        }
    }

    fn observe(&self) -> DeploymentObservation {
        let mut o = self.obs.clone();
        o.now_ms = self.now;
        o
    }

    fn rs_mut(&mut self, name: &str) -> &mut ReplicaSetObservation {
        self.obs
            .replica_sets
            .iter_mut()
            .find(|r| r.name == name)
            .unwrap()
    }

    fn member_mut(&mut self, rs: &str, node: &str) -> &mut MemberObservation {
        self.rs_mut(rs)
            .members
            .iter_mut()
            .find(|m| m.node_id == node)
            .unwrap()
    }

    fn spec(&self, rs: &str, node: &str) -> MemberSpec {
        self.specs
            .iter()
            .find(|s| s.name == rs)
            .unwrap()
            .members
            .iter()
            .find(|m| m.node_id == node)
            .unwrap()
            .clone()
    }

    fn set_down(&mut self, rs: &str, node: &str) {
        let now = self.now;
        let m = self.member_mut(rs, node);
        m.state = MemberState::Down;
        m.healthy = false;
        m.process_up = false;
        m.kernel_version = None;
        m.started_ms = None;
        m.state_since_ms = now;
        let r = self.rs_mut(rs);
        if r.primary.as_deref() == Some(node) {
            r.primary = None;
        }
    }

    fn set_up(&mut self, rs: &str, node: &str, kernel: &str) {
        let now = self.now;
        let started = now;
        let spec = self.spec(rs, node);
        let stuck = self.stuck_startup2.contains(node);
        let lagging = self.lagging.contains(node);
        let r = self.rs_mut(rs);
        let primary_optime = r.primary_optime_ms;
        let m = r.members.iter_mut().find(|m| m.node_id == node).unwrap();
        m.process_up = true;
        m.healthy = true;
        m.kernel_version = Some(kernel.into());
        m.started_ms = Some(started);
        m.state_since_ms = now;
        m.state = if stuck {
            MemberState::Startup2
        } else if spec.kind == MemberKind::Arbiter {
            MemberState::Arbiter
        } else {
            MemberState::Secondary
        };
        m.optime_ms =
            primary_optime - u64::from(spec.delay_secs) * 1000 - if lagging { 60_000 } else { 0 };
        if self.takeover && spec.kind.electable() {
            let r = self.rs_mut(rs);
            if let Some(p) = r.primary.clone() {
                let pp = self.spec(rs, &p).priority;
                if spec.priority > pp && !stuck && !lagging {
                    self.elect(rs, node);
                }
            }
        }
    }

    fn elect(&mut self, rs: &str, node: &str) {
        let now = self.now;
        let r = self.rs_mut(rs);
        for m in &mut r.members {
            if m.state == MemberState::Primary {
                m.state = MemberState::Secondary;
                m.state_since_ms = now;
            }
        }
        let m = r.members.iter_mut().find(|m| m.node_id == node).unwrap();
        m.state = MemberState::Primary;
        m.state_since_ms = now;
        r.primary = Some(node.into());
        r.term += 1;
    }

    fn apply(&mut self, cmd: &Command) -> Result<(), CommandError> {
        self.log.push(cmd.clone());
        match cmd {
            Command::StopMember {
                replica_set,
                node_id,
            } => {
                if self.reelected_before_stop.as_ref() == Some(node_id) {
                    self.elect(replica_set, node_id);
                }
                let r = self.rs_mut(replica_set);
                if r.primary.as_deref() == Some(node_id) {
                    return Err(CommandError::IsPrimary(node_id.clone()));
                }
                *self.stops.entry(node_id.clone()).or_default() += 1;
                self.set_down(replica_set, node_id);
                Ok(())
            }
            Command::StartMember {
                replica_set,
                node_id,
                kernel_version,
            } => {
                if self.member_mut(replica_set, node_id).process_up {
                    return Err(CommandError::NotStopped(node_id.clone()));
                }
                *self.starts.entry(node_id.clone()).or_default() += 1;
                if kernel_version == NEW && self.start_error.contains(node_id) {
                    return Err(CommandError::Other("exec format error".into()));
                }
                self.set_up(replica_set, node_id, kernel_version);
                Ok(())
            }
            Command::StepDown {
                replica_set,
                node_id,
                ..
            } => {
                if self.rs_mut(replica_set).primary.as_deref() != Some(node_id) {
                    return Err(CommandError::NotPrimary(node_id.clone()));
                }
                if self.refuse_stepdown {
                    return Err(CommandError::NoElectableSecondary);
                }
                if self.no_new_primary {
                    let now = self.now;
                    let r = self.rs_mut(replica_set);
                    r.primary = None;
                    r.term += 1;
                    let m = r
                        .members
                        .iter_mut()
                        .find(|m| &m.node_id == node_id)
                        .unwrap();
                    m.state = MemberState::Secondary;
                    m.state_since_ms = now;
                    return Ok(());
                }
                let spec = self
                    .specs
                    .iter()
                    .find(|s| &s.name == replica_set)
                    .unwrap()
                    .clone();
                let r = self.rs_mut(replica_set).clone();
                let heir = spec
                    .members
                    .iter()
                    .filter(|m| m.kind.electable() && &m.node_id != node_id)
                    .filter(|m| {
                        r.member(&m.node_id)
                            .is_some_and(|o| o.state == MemberState::Secondary)
                    })
                    .fold(None::<&MemberSpec>, |b, m| match b {
                        Some(b) if b.priority >= m.priority => Some(b),
                        _ => Some(m),
                    })
                    .ok_or(CommandError::NoElectableSecondary)?;
                let heir = heir.node_id.clone();
                self.elect(replica_set, &heir);
                Ok(())
            }
            Command::StopBalancer => {
                self.obs.balancer.as_mut().unwrap().mode = BalancerMode::Off;
                Ok(())
            }
            Command::StartBalancer => {
                self.obs.balancer.as_mut().unwrap().mode = BalancerMode::Full;
                Ok(())
            }
            Command::SetFeatureCompatibilityVersion { version, .. } => {
                if self.refuse_fcv {
                    return Err(CommandError::Other("no primary".into()));
                }
                for rs in &mut self.obs.replica_sets {
                    rs.fcv = Some(version.clone());
                }
                Ok(())
            }
            Command::StopMongos { node_id } => {
                *self.stops.entry(node_id.clone()).or_default() += 1;
                let m = self
                    .obs
                    .mongos
                    .iter_mut()
                    .find(|m| &m.node_id == node_id)
                    .unwrap();
                m.up = false;
                m.kernel_version = None;
                m.started_ms = None;
                Ok(())
            }
            Command::StartMongos {
                node_id,
                kernel_version,
            } => {
                *self.starts.entry(node_id.clone()).or_default() += 1;
                if kernel_version == NEW && self.start_error.contains(node_id) {
                    return Err(CommandError::Other("mongos: exec format error".into()));
                }
                self.started_counter += 1;
                let started = self.now + self.started_counter;
                let m = self
                    .obs
                    .mongos
                    .iter_mut()
                    .find(|m| &m.node_id == node_id)
                    .unwrap();
                m.up = true;
                m.kernel_version = Some(kernel_version.clone());
                m.started_ms = Some(started);
                Ok(())
            }
        }
    }

    fn kernels(&self) -> Vec<Option<String>> {
        self.obs
            .replica_sets
            .iter()
            .flat_map(|r| r.members.iter().map(|m| m.kernel_version.clone()))
            .chain(self.obs.mongos.iter().map(|m| m.kernel_version.clone()))
            .collect()
    }
}

/// Where a simulated control-plane crash happens relative to one step.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Crash {
    None,
    /// State persisted after `step`, commands never executed.
    BeforeExecute,
    /// Commands executed, their results never recorded.
    BeforeResult,
    /// Everything recorded; the state is reloaded from JSON.
    AfterResult,
}

fn reload(op: &RollingOperation) -> RollingOperation {
    let json = serde_json::to_string(op).unwrap();
    serde_json::from_str(&json).unwrap()
}

/// Runs the operation to the end; `crash(i)` chooses a crash for step `i`. Returns the number of steps.
fn drive(
    op: &mut RollingOperation,
    toy: &mut Toy,
    mut crash: impl FnMut(usize) -> Crash,
    mut hook: impl FnMut(&mut Toy, &RollingOperation),
) -> usize {
    let mut audit = DecisionAudit::new();
    for i in 0..20_000 {
        hook(toy, op);
        let obs = toy.observe();
        let before = op.clone();
        let d = op.step(&obs, toy.now);
        check_structural(op, &obs, &d);
        if let Err(v) = audit.check_step(&before, op, &obs, toy.now, &d) {
            panic!("step {i}: {v}\ndecision {d:?}");
        }
        let c = crash(i);
        match d {
            Decision::Done(_) => {
                if let Err(v) = audit.check_end(op, &obs) {
                    panic!("end: {v}");
                }
                return i;
            }
            Decision::WaitUntil(t) => {
                assert!(t > toy.now, "wait must move time forward");
                toy.now = t;
                if c != Crash::None {
                    *op = reload(op);
                }
            }
            Decision::Issue(cmds) => {
                if c == Crash::BeforeExecute {
                    *op = reload(op);
                    continue;
                }
                let results: Vec<_> = cmds.iter().map(|c| toy.apply(c)).collect();
                if c == Crash::BeforeResult {
                    for (cmd, r) in cmds.iter().zip(&results) {
                        audit.on_result(cmd, r);
                    }
                    *op = reload(op);
                    continue;
                }
                for (cmd, r) in cmds.iter().zip(results) {
                    audit.on_result(cmd, &r);
                    op.on_result(cmd, r, toy.now);
                }
                if c == Crash::AfterResult {
                    *op = reload(op);
                }
            }
        }
    }
    panic!("operation did not finish");
}

/// Invariants that hold on the decision alone, whatever the deployment does.
fn check_structural(op: &RollingOperation, obs: &DeploymentObservation, d: &Decision) {
    for rs in &op.replica_sets {
        let in_flight = rs.procs.iter().filter(|p| p.step.in_flight()).count();
        assert!(
            in_flight <= 1,
            "I1: {} has {in_flight} members in flight",
            rs.name
        );
        if rs.primary_stage.is_some() {
            assert_eq!(
                in_flight, 0,
                "stepdown while a member is out in {}",
                rs.name
            );
        }
    }
    if let Decision::Issue(cmds) = d {
        let mut per_rs = BTreeMap::<&str, usize>::new();
        for c in cmds {
            match c {
                Command::StopMember {
                    replica_set,
                    node_id,
                } => {
                    *per_rs.entry(replica_set).or_default() += 1;
                    let ro = obs.replica_set(replica_set).unwrap();
                    assert_ne!(
                        ro.primary.as_deref(),
                        Some(node_id.as_str()),
                        "I2: stop of primary"
                    );
                }
                Command::StepDown {
                    replica_set,
                    node_id,
                    ..
                } => {
                    *per_rs.entry(replica_set).or_default() += 1;
                    let rs = op
                        .replica_sets
                        .iter()
                        .find(|r| &r.name == replica_set)
                        .unwrap();
                    for p in rs.procs.iter().filter(|p| &p.node_id != node_id) {
                        assert!(
                            p.step.finished_ok(),
                            "I3: stepdown before {} finished",
                            p.node_id
                        );
                    }
                }
                Command::StartMember { replica_set, .. } => {
                    *per_rs.entry(replica_set).or_default() += 1;
                }
                _ => {}
            }
        }
        assert!(
            per_rs.values().all(|&n| n <= 1),
            "two commands for one replica set: {cmds:?}"
        );
    }
}

fn cfg() -> UpgradeConfig {
    UpgradeConfig::default()
}

fn outcome(op: &RollingOperation) -> Outcome {
    op.outcome().expect("finished")
}

fn member_cmds(log: &[Command]) -> Vec<String> {
    log.iter()
        .map(|c| match c {
            Command::StopMember { node_id, .. } => format!("stop {node_id}"),
            Command::StartMember {
                node_id,
                kernel_version,
                ..
            } => {
                format!(
                    "start {node_id} {}",
                    if kernel_version == NEW { "new" } else { "old" }
                )
            }
            Command::StepDown { node_id, .. } => format!("stepdown {node_id}"),
            Command::StopBalancer => "balancer stop".into(),
            Command::StartBalancer => "balancer start".into(),
            Command::SetFeatureCompatibilityVersion { version, .. } => format!("fcv {version}"),
            Command::StopMongos { node_id } => format!("stop {node_id}"),
            Command::StartMongos {
                node_id,
                kernel_version,
            } => {
                format!(
                    "start {node_id} {}",
                    if kernel_version == NEW { "new" } else { "old" }
                )
            }
        })
        .collect()
}

#[test]
fn pss_upgrade_restarts_secondaries_then_steps_down_the_primary() {
    let inst = replica_set(pss("rs", ReplicaSetKind::Instance));
    let mut op = RollingOperation::plan_upgrade(&inst, NEW, cfg()).unwrap();
    let mut toy = Toy::new(&inst);
    drive(&mut op, &mut toy, |_| Crash::None, |_, _| {});
    assert_eq!(outcome(&op), Outcome::Succeeded);
    assert_eq!(
        member_cmds(&toy.log),
        [
            "stop rs-1",
            "start rs-1 new",
            "stop rs-2",
            "start rs-2 new",
            "stepdown rs-0",
            "stop rs-0",
            "start rs-0 new"
        ]
    );
    assert!(toy.kernels().iter().all(|k| k.as_deref() == Some(NEW)));
    let report = op.report().unwrap();
    assert_eq!(report.replica_sets[0].elections, 1);
    assert_eq!(
        report.replica_sets[0].election_log[0].cause,
        ElectionCause::StepDown
    );
    assert!(report.replica_sets[0]
        .members
        .iter()
        .all(|m| m.restarted && m.downtime_ms.is_some()));
    // Each member waits out the stability window after its start.
    assert!(report.duration_ms >= 3 * cfg().gate_stability_ms);
    assert_eq!(
        report.commands_executed as usize,
        plan_steps(&inst, NEW).steps.len()
    );
    assert_eq!(
        plan_steps(&inst, NEW).expected_elections,
        vec![("rs".to_string(), 1)]
    );
    // Finished is final.
    assert!(matches!(
        op.step(&toy.observe(), toy.now + 5),
        Decision::Done(Outcome::Succeeded)
    ));
}

#[test]
fn the_observed_plan_follows_a_primary_that_is_not_the_record_s_first_member() {
    let inst = replica_set(pss("rs", ReplicaSetKind::Instance));
    let mut toy = Toy::new(&inst);
    // The deployment elected rs-1, not the member the record lists first.
    {
        let rs = toy.rs_mut("rs");
        rs.primary = Some("rs-1".into());
        for m in &mut rs.members {
            m.state = if m.node_id == "rs-1" {
                MemberState::Primary
            } else {
                MemberState::Secondary
            };
        }
    }
    let plan = plan_steps_observed(&inst, NEW, &toy.observe());
    let mut op = RollingOperation::plan_upgrade(&inst, NEW, cfg()).unwrap();
    drive(&mut op, &mut toy, |_| Crash::None, |_, _| {});
    assert_eq!(outcome(&op), Outcome::Succeeded);
    let executed = member_cmds(&toy.log);
    assert_eq!(
        executed,
        [
            "stop rs-0",
            "start rs-0 new",
            "stop rs-2",
            "start rs-2 new",
            "stepdown rs-1",
            "stop rs-1",
            "start rs-1 new"
        ]
    );
    let planned: Vec<String> = plan
        .steps
        .iter()
        .filter_map(|s| match s {
            PlannedStep::StopMember { node_id, .. } => Some(format!("stop {node_id}")),
            PlannedStep::StartMember { node_id, .. } => Some(format!("start {node_id} new")),
            PlannedStep::StepDown { node_id, .. } => Some(format!("stepdown {node_id}")),
            _ => None,
        })
        .collect();
    assert_eq!(planned, executed);
    // The record-only dry run guesses rs-0 and would name the wrong member first.
    assert!(matches!(
        &plan_steps(&inst, NEW).steps[0],
        PlannedStep::StopMember { node_id, .. } if node_id == "rs-1"
    ));
}

#[test]
fn members_on_target_are_skipped_and_a_primary_on_target_is_not_stepped_down() {
    let mut spec = pss("rs", ReplicaSetKind::Instance);
    spec.members[0].kernel_version = NEW.into(); // the primary
    spec.members[2].kernel_version = NEW.into();
    let inst = replica_set(spec);
    let mut op = RollingOperation::plan_upgrade(&inst, NEW, cfg()).unwrap();
    let mut toy = Toy::new(&inst);
    drive(&mut op, &mut toy, |_| Crash::None, |_, _| {});
    assert_eq!(outcome(&op), Outcome::Succeeded);
    assert_eq!(member_cmds(&toy.log), ["stop rs-1", "start rs-1 new"]);
    let r = op.report().unwrap();
    assert_eq!(r.replica_sets[0].elections, 0);
    assert!(r.replica_sets[0].members[0].skipped && r.replica_sets[0].members[2].skipped);
    assert_eq!(plan_steps(&inst, NEW).steps.len(), 2);
}

#[test]
fn target_equal_to_current_is_refused_statically_and_live() {
    let mut spec = pss("rs", ReplicaSetKind::Instance);
    for m in &mut spec.members {
        m.kernel_version = NEW.into();
    }
    let inst = replica_set(spec);
    assert!(matches!(
        RollingOperation::plan_upgrade(&inst, NEW, cfg()),
        Err(PreflightError::AlreadyOnTarget { .. })
    ));
    // The record says OLD, but the deployment already runs NEW everywhere (F15): nothing is touched.
    let stale = replica_set(pss("rs", ReplicaSetKind::Instance));
    let mut op = RollingOperation::plan_upgrade(&stale, NEW, cfg()).unwrap();
    let mut toy = Toy::new(&inst);
    drive(&mut op, &mut toy, |_| Crash::None, |_, _| {});
    assert!(toy.log.is_empty());
    match outcome(&op) {
        Outcome::Failed(f) => {
            assert!(matches!(
                f.reason,
                FailureReason::Preflight(PreflightError::AlreadyOnTarget { .. })
            ))
        }
        o => panic!("{o:?}"),
    }
}

#[test]
fn static_preflight_refusals_name_their_reason() {
    let mut standalone = replica_set(pss("rs", ReplicaSetKind::Instance));
    standalone.topology = Topology::Standalone {
        member: member("x", MemberKind::Electable, 1),
    };
    let e = RollingOperation::plan_upgrade(&standalone, NEW, cfg()).unwrap_err();
    assert_eq!(e, PreflightError::Standalone);

    let mut busy = replica_set(pss("rs", ReplicaSetKind::Instance));
    busy.status = DbInstanceStatus::MinorVersionUpgrading;
    let e = RollingOperation::plan_upgrade(&busy, NEW, cfg()).unwrap_err();
    assert_eq!(
        e,
        PreflightError::NotRunning {
            status: DbInstanceStatus::MinorVersionUpgrading
        }
    );

    let one = replica_set(rs_spec(
        "rs",
        ReplicaSetKind::Instance,
        vec![member("a", MemberKind::Electable, 1)],
    ));
    assert!(matches!(
        RollingOperation::plan_upgrade(&one, NEW, cfg()),
        Err(PreflightError::NoElectableSecondary { .. })
    ));
    let psa = replica_set(rs_spec(
        "rs",
        ReplicaSetKind::Instance,
        vec![
            member("a", MemberKind::Electable, 1),
            member("b", MemberKind::Electable, 1),
            member("c", MemberKind::Arbiter, 0),
        ],
    ));
    let strict = UpgradeConfig {
        allow_write_majority_loss: false,
        ..cfg()
    };
    assert!(matches!(
        RollingOperation::plan_upgrade(&psa, NEW, strict),
        Err(PreflightError::WriteMajorityLoss { .. })
    ));
    let op = RollingOperation::plan_upgrade(&psa, NEW, cfg()).unwrap();
    let mut toy = Toy::new(&psa);
    let mut op2 = op.clone();
    drive(&mut op2, &mut toy, |_| Crash::None, |_, _| {});
    assert_eq!(outcome(&op2), Outcome::Succeeded);
    assert!(op2
        .report()
        .unwrap()
        .warnings
        .iter()
        .any(|w| w.contains("w:majority")));
    assert!(matches!(
        RollingOperation::plan_upgrade(&psa, " ", cfg()),
        Err(PreflightError::InvalidTarget { .. })
    ));
    let bad = UpgradeConfig {
        mongos_batch: 0,
        ..cfg()
    };
    assert!(matches!(
        RollingOperation::plan_upgrade(&psa, NEW, bad),
        Err(PreflightError::InvalidConfig { .. })
    ));
}

/// The live preflight's refusal of `toy`'s deployment, and the failure of an operation started on it:
/// at once for a lasting reason, after waiting `pre_stop_gate_deadline_ms` (issuing nothing) for a
/// transient one that does not clear.
fn live_failure(inst: &Instance, toy: &Toy) -> PreflightError {
    let mut op = RollingOperation::plan_upgrade(inst, NEW, cfg()).unwrap();
    let err = op.preflight(&toy.observe()).unwrap_err();
    let mut now = toy.now;
    loop {
        match op.step(&toy.observe(), now) {
            Decision::Done(Outcome::Failed(Failure {
                reason: FailureReason::Preflight(e),
                at_ms,
                ..
            })) => {
                assert_eq!(e, err);
                let waited_ms = at_ms - toy.now;
                if e.is_transient() {
                    assert!(waited_ms >= cfg().pre_stop_gate_deadline_ms, "{waited_ms}");
                } else {
                    assert_eq!(waited_ms, 0);
                }
                return e;
            }
            Decision::WaitUntil(t) if err.is_transient() => {
                assert_eq!(
                    op.progress().start_blocked.map(|b| b.reason),
                    Some(err.clone())
                );
                assert!(op.started_ms.is_none());
                now = t;
            }
            d => panic!("{d:?}"),
        }
    }
}

#[test]
fn an_accepted_operation_waits_out_an_election_at_its_start_then_proceeds() {
    let inst = replica_set(pss("rs", ReplicaSetKind::Instance));
    let mut toy = Toy::new(&inst);
    // An election is in progress as the operation starts: nobody is primary for 20 s.
    let primary = toy.rs_mut("rs").primary.clone().unwrap();
    toy.rs_mut("rs").primary = None;
    toy.member_mut("rs", &primary).state = MemberState::Secondary;
    let mut op = RollingOperation::plan_upgrade(&inst, NEW, cfg()).unwrap();
    let start = toy.now;
    while toy.now < start + 20_000 {
        match op.step(&toy.observe(), toy.now) {
            Decision::WaitUntil(t) => toy.now = t,
            d => panic!("acted or ended during the election: {d:?}"),
        }
        let blocked = op.progress().start_blocked.expect("says why it waits");
        assert_eq!(blocked.since_ms, start);
        assert_eq!(blocked.message, "replica set rs has no primary");
    }
    toy.elect("rs", &primary);
    drive(&mut op, &mut toy, |_| Crash::None, |_, _| {});
    assert_eq!(outcome(&op), Outcome::Succeeded);
    assert!(op.started_ms.unwrap() >= start + 20_000);
    assert!(op.progress().start_blocked.is_none());
    assert!(toy.kernels().iter().all(|k| k.as_deref() == Some(NEW)));
}

#[test]
fn live_preflight_refuses_an_unhealthy_deployment() {
    let inst = replica_set(pss("rs", ReplicaSetKind::Instance));
    let mut toy = Toy::new(&inst);
    toy.set_down("rs", "rs-2");
    assert!(matches!(
        live_failure(&inst, &toy),
        PreflightError::MemberUnhealthy { .. }
    ));

    let mut toy = Toy::new(&inst);
    toy.member_mut("rs", "rs-1").optime_ms -= 30_000;
    assert!(matches!(
        live_failure(&inst, &toy),
        PreflightError::LagTooHigh { .. }
    ));

    let mut toy = Toy::new(&inst);
    toy.member_mut("rs", "rs-1").state = MemberState::Recovering;
    assert!(matches!(
        live_failure(&inst, &toy),
        PreflightError::MemberUnhealthy { .. }
    ));

    // F17: the oplog window does not cover the expected downtime many times over.
    let mut toy = Toy::new(&inst);
    toy.rs_mut("rs").oplog_window_ms = Some(5 * 60_000);
    let e = live_failure(&inst, &toy);
    assert_eq!(
        e,
        PreflightError::OplogWindowTooSmall {
            replica_set: "rs".into(),
            window_ms: 300_000,
            required_ms: 600_000
        }
    );

    let mut toy = Toy::new(&inst);
    toy.rs_mut("rs").primary = None;
    toy.member_mut("rs", "rs-0").state = MemberState::Secondary;
    assert!(matches!(
        live_failure(&inst, &toy),
        PreflightError::NoPrimary { .. }
    ));

    let sh = sharded(1, 2);
    let mut toy = Toy::new(&sh);
    toy.obs.balancer = None;
    assert_eq!(live_failure(&sh, &toy), PreflightError::BalancerNotObserved);
    let mut toy = Toy::new(&sh);
    toy.obs.mongos[1].up = false;
    assert!(matches!(
        live_failure(&sh, &toy),
        PreflightError::MongosDown { .. }
    ));
    assert!(toy.log.is_empty());
}

#[test]
fn sharded_upgrade_order_balancer_and_canary() {
    let inst = sharded(3, 2);
    // Sequential: every shard waits for the previous one.
    let sequential = UpgradeConfig {
        max_parallel_shards: 1,
        ..cfg()
    };
    let mut op = RollingOperation::plan_upgrade(&inst, NEW, sequential).unwrap();
    let mut toy = Toy::new(&inst);
    drive(&mut op, &mut toy, |_| Crash::None, |_, _| {});
    assert_eq!(outcome(&op), Outcome::Succeeded);
    let log = member_cmds(&toy.log);
    assert_eq!(log.first().unwrap(), "balancer stop");
    assert_eq!(log.last().unwrap(), "balancer start");
    let pos = |s: &str| log.iter().position(|l| l.starts_with(s)).unwrap();
    let last = |s: &str| log.iter().rposition(|l| l.starts_with(s)).unwrap();
    assert!(last("start cfg-") < pos("stop sh0-"));
    assert!(last("start sh0-") < pos("stop sh1-"));
    assert!(last("start sh1-") < pos("stop sh2-"));
    assert!(last("start sh2-") < pos("stop s-"));

    // Default: the canary still goes alone, then the other shards together, all before any mongos.
    let mut op = RollingOperation::plan_upgrade(&inst, NEW, cfg()).unwrap();
    let mut toy = Toy::new(&inst);
    drive(&mut op, &mut toy, |_| Crash::None, |_, _| {});
    assert_eq!(outcome(&op), Outcome::Succeeded);
    let log = member_cmds(&toy.log);
    let pos = |s: &str| log.iter().position(|l| l.starts_with(s)).unwrap();
    let last = |s: &str| log.iter().rposition(|l| l.starts_with(s)).unwrap();
    assert!(last("start cfg-") < pos("stop sh0-"));
    assert!(last("start sh0-") < pos("stop sh1-").min(pos("stop sh2-")));
    assert!(pos("stop sh2-") < last("start sh1-"), "sh1 and sh2 overlap");
    assert!(last("start sh1-").max(last("start sh2-")) < pos("stop s-"));
    assert!(toy.kernels().iter().all(|k| k.as_deref() == Some(NEW)));
    assert!(toy.stops.values().all(|&n| n == 1));
    let r = op.report().unwrap();
    assert_eq!(r.replica_sets.len(), 4);
    assert!(r.replica_sets.iter().all(|rs| rs.elections == 1));
    assert_eq!(r.balancer.unwrap().restored, Some(true));
    let plan = plan_steps(&inst, NEW);
    assert_eq!(plan.steps.len() as u64, r.commands_executed);
    assert_eq!(plan.steps.first(), Some(&PlannedStep::StopBalancer));
}

#[test]
fn balancer_off_stays_off_and_a_running_round_is_waited_for() {
    // F10
    let inst = sharded(1, 2);
    let mut toy = Toy::new(&inst);
    toy.obs.balancer.as_mut().unwrap().mode = BalancerMode::Off;
    let mut op = RollingOperation::plan_upgrade(&inst, NEW, cfg()).unwrap();
    drive(&mut op, &mut toy, |_| Crash::None, |_, _| {});
    assert_eq!(outcome(&op), Outcome::Succeeded);
    assert!(!toy
        .log
        .iter()
        .any(|c| matches!(c, Command::StartBalancer | Command::StopBalancer)));
    assert_eq!(toy.obs.balancer.unwrap().mode, BalancerMode::Off);

    // F11: a round in progress holds everything until it ends.
    let mut toy = Toy::new(&inst);
    toy.obs.balancer.as_mut().unwrap().in_balancer_round = true;
    let round_ends = toy.now + 45_000;
    let mut op = RollingOperation::plan_upgrade(&inst, NEW, cfg()).unwrap();
    let mut touched_during_round = false;
    drive(
        &mut op,
        &mut toy,
        |_| Crash::None,
        |toy, _| {
            if toy.now >= round_ends {
                toy.obs.balancer.as_mut().unwrap().in_balancer_round = false;
            } else if toy
                .log
                .iter()
                .any(|c| matches!(c, Command::StopMember { .. }))
            {
                touched_during_round = true;
            }
        },
    );
    assert!(!touched_during_round);
    assert_eq!(outcome(&op), Outcome::Succeeded);

    // A round that never ends: fail without touching a member, and the balancer goes back on.
    let mut toy = Toy::new(&inst);
    toy.obs.balancer.as_mut().unwrap().in_balancer_round = true;
    let mut op = RollingOperation::plan_upgrade(&inst, NEW, cfg()).unwrap();
    drive(&mut op, &mut toy, |_| Crash::None, |_, _| {});
    assert!(matches!(
        outcome(&op),
        Outcome::Failed(Failure {
            reason: FailureReason::BalancerStopTimeout {
                in_balancer_round: true
            },
            ..
        })
    ));
    assert_eq!(member_cmds(&toy.log), ["balancer stop", "balancer start"]);
}

#[test]
fn f1_start_failure_stops_the_rollout_and_reverts_the_member() {
    let inst = sharded(2, 2);
    let mut toy = Toy::new(&inst);
    toy.start_error.insert("cfg-1".into());
    let mut op = RollingOperation::plan_upgrade(&inst, NEW, cfg()).unwrap();
    drive(&mut op, &mut toy, |_| Crash::None, |_, _| {});
    assert_eq!(
        member_cmds(&toy.log),
        [
            "balancer stop",
            "stop cfg-1",
            "start cfg-1 new",
            "start cfg-1 old",
            "balancer start"
        ]
    );
    let Outcome::Failed(f) = outcome(&op) else {
        panic!()
    };
    assert_eq!(f.node_id.as_deref(), Some("cfg-1"));
    assert_eq!(f.replica_set.as_deref(), Some("cfg"));
    assert!(matches!(f.reason, FailureReason::StartFailed { .. }));
    let r = op.report().unwrap();
    assert_eq!(r.replica_sets.iter().map(|r| r.elections).sum::<u64>(), 0);
    let cfg_rs = &r.replica_sets[0];
    assert_eq!(cfg_rs.status, RsStatus::Failed);
    assert!(
        matches!(cfg_rs.members[1].revert, Some(RevertOutcome::Reverted { ref kernel }) if kernel == OLD)
    );
    assert_eq!(cfg_rs.members[1].kernel.as_deref(), Some(OLD));
    assert!(r.replica_sets[1..]
        .iter()
        .all(|r| r.status == RsStatus::Halted));
    assert_eq!(r.balancer.unwrap().restored, Some(true));
}

#[test]
fn f2_a_member_that_never_catches_up_fails_at_its_deadline() {
    let inst = replica_set(pss("rs", ReplicaSetKind::Instance));
    let mut toy = Toy::new(&inst);
    toy.lagging.insert("rs-1".into());
    let mut op = RollingOperation::plan_upgrade(&inst, NEW, cfg()).unwrap();
    let mut progress_seen = None;
    drive(
        &mut op,
        &mut toy,
        |_| Crash::None,
        |_, op| {
            if progress_seen.is_none() {
                if let Some(c) = op.progress().replica_sets[0].current.clone() {
                    if matches!(
                        c.waiting_on,
                        WaitingOn::PostStartGate { unmet: Some(_), .. }
                    ) {
                        progress_seen = Some(c);
                    }
                }
            }
        },
    );
    let c = progress_seen.expect("progress names the gate");
    assert_eq!(c.node_id, "rs-1");
    let Outcome::Failed(f) = outcome(&op) else {
        panic!()
    };
    assert!(
        matches!(f.reason, FailureReason::CatchUpTimeout { .. }),
        "{f:?}"
    );
    assert_eq!(f.node_id.as_deref(), Some("rs-1"));
    assert_eq!(f.at_ms - 1_000_000, cfg().member_catch_up_deadline_ms);
    // Put back once on the old kernel; nothing else touched.
    assert_eq!(
        member_cmds(&toy.log),
        ["stop rs-1", "start rs-1 new", "stop rs-1", "start rs-1 old"]
    );

    // Stuck in STARTUP2: a start problem, failed at the (shorter) start deadline.
    let mut toy = Toy::new(&inst);
    toy.stuck_startup2.insert("rs-1".into());
    let mut op = RollingOperation::plan_upgrade(&inst, NEW, cfg()).unwrap();
    drive(&mut op, &mut toy, |_| Crash::None, |_, _| {});
    let Outcome::Failed(f) = outcome(&op) else {
        panic!()
    };
    assert!(
        matches!(f.reason, FailureReason::StartTimeout { .. }),
        "{f:?}"
    );
    assert_eq!(f.at_ms - 1_000_000, cfg().member_start_deadline_ms);
}

#[test]
fn f3_refused_stepdown_is_retried_never_forced_and_the_primary_is_never_stopped() {
    let inst = replica_set(pss("rs", ReplicaSetKind::Instance));
    let mut toy = Toy::new(&inst);
    toy.refuse_stepdown = true;
    let mut op = RollingOperation::plan_upgrade(&inst, NEW, cfg()).unwrap();
    drive(&mut op, &mut toy, |_| Crash::None, |_, _| {});
    let Outcome::Failed(f) = outcome(&op) else {
        panic!()
    };
    let FailureReason::StepDownRefused { attempts, .. } = f.reason else {
        panic!("{f:?}")
    };
    assert!(attempts > 3, "retried with backoff: {attempts}");
    assert_eq!(f.node_id.as_deref(), Some("rs-0"));
    let stepdowns: Vec<u64> = toy
        .log
        .iter()
        .filter_map(|c| match c {
            Command::StepDown { step_down_id, .. } => Some(*step_down_id),
            _ => None,
        })
        .collect();
    assert_eq!(stepdowns.len() as u32, attempts);
    assert!(
        stepdowns.windows(2).all(|w| w[0] < w[1]),
        "each attempt has its own id"
    );
    assert_eq!(toy.stops.get("rs-0"), None);
    assert_eq!(toy.kernels()[0].as_deref(), Some(OLD));
}

#[test]
fn f4_no_new_primary_leaves_the_old_primary_running() {
    let inst = replica_set(pss("rs", ReplicaSetKind::Instance));
    let mut toy = Toy::new(&inst);
    toy.no_new_primary = true;
    let mut op = RollingOperation::plan_upgrade(&inst, NEW, cfg()).unwrap();
    drive(&mut op, &mut toy, |_| Crash::None, |_, _| {});
    let Outcome::Failed(f) = outcome(&op) else {
        panic!()
    };
    assert_eq!(f.reason, FailureReason::NoNewPrimary);
    assert_eq!(toy.stops.get("rs-0"), None);
    assert!(matches!(toy.log.last(), Some(Command::StepDown { .. })));
}

#[test]
fn f7_an_unrelated_member_down_blocks_the_next_stop() {
    let inst = replica_set(rs_spec(
        "rs",
        ReplicaSetKind::Instance,
        (0..5)
            .map(|i| {
                member(
                    &format!("m{i}"),
                    MemberKind::Electable,
                    if i == 0 { 2 } else { 1 },
                )
            })
            .collect(),
    ));
    // It comes back before the deadline: the rollout waits and completes.
    let mut toy = Toy::new(&inst);
    let mut op = RollingOperation::plan_upgrade(&inst, NEW, cfg()).unwrap();
    let mut crashed_at = None;
    let mut stops_while_down = None;
    drive(
        &mut op,
        &mut toy,
        |_| Crash::None,
        |toy, _| {
            let m1_done = toy.stops.contains_key("m1") && toy.member_mut("rs", "m1").process_up;
            match crashed_at {
                None if m1_done => {
                    toy.set_down("rs", "m4");
                    crashed_at = Some((toy.now, toy.stops.values().sum::<u32>()));
                }
                Some((t, stops)) if toy.now >= t + 100_000 && stops_while_down.is_none() => {
                    stops_while_down = Some(toy.stops.values().sum::<u32>() - stops);
                    toy.set_up("rs", "m4", OLD);
                }
                _ => {}
            }
        },
    );
    assert_eq!(stops_while_down, Some(0));
    assert_eq!(outcome(&op), Outcome::Succeeded);

    // It stays down: fail at the gate deadline naming the blocked member and the blocker.
    let mut toy = Toy::new(&inst);
    let mut op = RollingOperation::plan_upgrade(&inst, NEW, cfg()).unwrap();
    drive(
        &mut op,
        &mut toy,
        |_| Crash::None,
        |toy, _| {
            if toy.stops.contains_key("m1")
                && toy.member_mut("rs", "m1").process_up
                && toy.member_mut("rs", "m4").process_up
                && !toy.stops.contains_key("m2")
            {
                toy.set_down("rs", "m4");
            }
        },
    );
    let Outcome::Failed(f) = outcome(&op) else {
        panic!()
    };
    assert_eq!(f.node_id.as_deref(), Some("m2"));
    assert!(matches!(
        f.reason,
        FailureReason::PreStopGateTimeout { block: GateBlock::OtherUnhealthy { ref node_id, .. } } if node_id == "m4"
    ));
    assert_eq!(toy.stops.keys().collect::<Vec<_>>(), ["m1"]);
}

#[test]
fn f8_a_spontaneous_election_of_an_upgraded_member_makes_the_stepdown_unnecessary() {
    let inst = replica_set(pss("rs", ReplicaSetKind::Instance));
    let mut toy = Toy::new(&inst);
    let mut op = RollingOperation::plan_upgrade(&inst, NEW, cfg()).unwrap();
    let mut elected = false;
    drive(
        &mut op,
        &mut toy,
        |_| Crash::None,
        |toy, op| {
            let rs1_done = op.replica_sets[0].procs[1].step == MemberStep::Done;
            if rs1_done && !elected {
                elected = true;
                toy.elect("rs", "rs-1");
            }
        },
    );
    assert_eq!(outcome(&op), Outcome::Succeeded);
    assert!(!toy
        .log
        .iter()
        .any(|c| matches!(c, Command::StepDown { .. })));
    assert!(toy.stops.values().all(|&n| n == 1) && toy.stops.len() == 3);
    let r = op.report().unwrap();
    assert_eq!(r.replica_sets[0].elections, 1);
    assert_eq!(r.replica_sets[0].unplanned_elections, 1);
}

#[test]
fn f9_priority_takeover_is_counted_and_reported() {
    let inst = replica_set(rs_spec(
        "rs",
        ReplicaSetKind::Instance,
        vec![
            member("a", MemberKind::Electable, 5),
            member("b", MemberKind::Electable, 1),
            member("c", MemberKind::Electable, 1),
        ],
    ));
    let mut toy = Toy::new(&inst);
    toy.takeover = true;
    let mut op = RollingOperation::plan_upgrade(&inst, NEW, cfg()).unwrap();
    drive(&mut op, &mut toy, |_| Crash::None, |_, _| {});
    assert_eq!(outcome(&op), Outcome::Succeeded);
    let r = op.report().unwrap();
    assert_eq!(r.replica_sets[0].elections, 2);
    assert_eq!(r.replica_sets[0].priority_takeovers, 1);
    assert_eq!(plan_steps(&inst, NEW).expected_elections[0].1, 2);
}

#[test]
fn arbiters_hidden_delayed_and_readonly_members_restart_before_the_primary() {
    let inst = replica_set(rs_spec(
        "rs",
        ReplicaSetKind::Instance,
        vec![
            member("p", MemberKind::Electable, 3),
            member("d", MemberKind::Delayed, 0),
            member("s", MemberKind::Electable, 2),
            member("a", MemberKind::Arbiter, 0),
            member("h", MemberKind::Hidden, 0),
            member("r", MemberKind::ReadOnly, 0),
        ],
    ));
    let mut toy = Toy::new(&inst);
    let mut op = RollingOperation::plan_upgrade(&inst, NEW, cfg()).unwrap();
    drive(&mut op, &mut toy, |_| Crash::None, |_, _| {});
    assert_eq!(outcome(&op), Outcome::Succeeded);
    let stops: Vec<String> = member_cmds(&toy.log)
        .into_iter()
        .filter(|c| c.starts_with("stop"))
        .collect();
    assert_eq!(
        stops,
        ["stop d", "stop s", "stop a", "stop h", "stop r", "stop p"]
    );
}

fn crash_everywhere(
    inst: &Instance,
    op: RollingOperation,
    toy_setup: impl Fn(&mut Toy),
    seed: u64,
) {
    let mut rng = seed;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut toy = Toy::new(inst);
    toy_setup(&mut toy);
    let mut op = op;
    drive(
        &mut op,
        &mut toy,
        |_| match next() % 4 {
            0 => Crash::None,
            1 => Crash::BeforeExecute,
            2 => Crash::BeforeResult,
            _ => Crash::AfterResult,
        },
        |_, _| {},
    );
    assert_eq!(outcome(&op), Outcome::Succeeded, "seed {seed}");
    assert!(
        toy.stops.values().all(|&n| n == 1),
        "seed {seed}: {:?}",
        toy.stops
    );
    let processes = inst.topology.kernel_versions().count();
    assert_eq!(toy.stops.len(), processes, "seed {seed}");
    for rs in &toy.obs.replica_sets {
        assert_eq!(rs.term, 2, "seed {seed}: one election in {}", rs.name);
    }
}

#[test]
fn f5_resume_after_a_crash_at_any_point_restarts_every_process_once() {
    let inst = sharded(2, 3);
    for seed in 1..40 {
        let op = RollingOperation::plan_upgrade(&inst, NEW, cfg()).unwrap();
        crash_everywhere(&inst, op, |_| {}, seed);
    }
    let inst = replica_set(pss("rs", ReplicaSetKind::Instance));
    for seed in 1..40 {
        let op = RollingOperation::plan_restart(&inst, RestartScope::Instance, cfg()).unwrap();
        crash_everywhere(&inst, op, |_| {}, seed);
    }
}

#[test]
fn a_start_the_plane_delivers_late_is_timed_from_the_issue_that_ran() {
    let inst = replica_set(pss("rs", ReplicaSetKind::Instance));
    let mut toy = Toy::new(&inst);
    let mut op = RollingOperation::plan_upgrade(&inst, NEW, cfg()).unwrap();
    let deadline = cfg().member_start_deadline_ms;
    let mut delivered_ms = None;
    for _ in 0..10_000 {
        match op.step(&toy.observe(), toy.now) {
            Decision::Issue(cmds) => {
                let start = cmds.iter().find_map(|c| match c {
                    Command::StartMember { node_id, .. } => Some(node_id.clone()),
                    _ => None,
                });
                if let (Some(node), None) = (&start, delivered_ms) {
                    // The host's agent is busy for twice the start deadline: nothing runs, the runtime
                    // asks again. Once started, the member never leaves STARTUP2.
                    delivered_ms = Some(toy.now + 2 * deadline);
                    toy.now += 2 * deadline;
                    toy.stuck_startup2.insert(node.clone());
                    continue;
                }
                for c in &cmds {
                    let r = toy.apply(c);
                    op.on_result(c, r, toy.now);
                }
            }
            Decision::WaitUntil(t) => toy.now = t,
            Decision::Done(_) => break,
        }
    }
    let Outcome::Failed(f) = outcome(&op) else {
        panic!("a member stuck in STARTUP2 fails the upgrade");
    };
    assert!(
        matches!(f.reason, FailureReason::StartTimeout { .. }),
        "{f:?}"
    );
    // Timed from the issue that ran, not from the first attempt the plane could not deliver.
    let delivered = delivered_ms.unwrap();
    assert!(
        f.at_ms >= delivered + deadline,
        "{f:?} delivered at {delivered}"
    );
}

#[test]
fn a_stepdown_acknowledged_late_is_timed_from_the_observation_after_it() {
    // A plane whose stepdown answers once the member stepped down (the mongodb plane) can have its
    // answer handled at a time well before the stepdown happened; the wait for a new primary starts
    // at the first observation after it, not at that earlier time. Here no member is ever elected.
    let inst = replica_set(pss("rs", ReplicaSetKind::Instance));
    let mut toy = Toy::new(&inst);
    let mut op = RollingOperation::plan_upgrade(&inst, NEW, cfg()).unwrap();
    let deadline = cfg().new_primary_deadline_ms;
    let mut seen_after_ms = None;
    for _ in 0..10_000 {
        match op.step(&toy.observe(), toy.now) {
            Decision::Issue(cmds) => {
                for c in &cmds {
                    if matches!(c, Command::StepDown { .. }) && seen_after_ms.is_none() {
                        let issued = toy.now;
                        toy.no_new_primary = true;
                        let r = toy.apply(c);
                        op.on_result(c, r, issued);
                        // The stepdown itself took longer than the whole new-primary deadline.
                        toy.now = issued + deadline + 5_000;
                        seen_after_ms = Some(toy.now);
                        continue;
                    }
                    let r = toy.apply(c);
                    op.on_result(c, r, toy.now);
                }
            }
            Decision::WaitUntil(t) => toy.now = t,
            Decision::Done(_) => break,
        }
    }
    let seen_after = seen_after_ms.expect("the primary was stepped down");
    let Outcome::Failed(f) = outcome(&op) else {
        panic!("no new primary fails the upgrade");
    };
    assert_eq!(f.reason, FailureReason::NoNewPrimary);
    assert!(
        f.at_ms >= seen_after + deadline,
        "{f:?}: the wait began at the observation at {seen_after}"
    );
}

#[test]
fn f16_a_member_already_on_target_with_a_lost_step_record_is_not_restarted() {
    let inst = replica_set(pss("rs", ReplicaSetKind::Instance));
    let mut toy = Toy::new(&inst);
    let mut op = RollingOperation::plan_upgrade(&inst, NEW, cfg()).unwrap();
    let saved = op.clone();
    // Run until rs-1 has been started on the target, then lose everything recorded since the plan.
    let mut i = 0;
    loop {
        let d = op.step(&toy.observe(), toy.now);
        if let Decision::Issue(cmds) = d {
            for c in &cmds {
                let r = toy.apply(c);
                op.on_result(c, r, toy.now);
            }
            if cmds
                .iter()
                .any(|c| matches!(c, Command::StartMember { .. }))
            {
                break;
            }
        }
        i += 1;
        assert!(i < 100);
    }
    let mut op = saved;
    drive(&mut op, &mut toy, |_| Crash::None, |_, _| {});
    assert_eq!(outcome(&op), Outcome::Succeeded);
    assert_eq!(toy.stops["rs-1"], 1);
    assert!(toy.stops.values().all(|&n| n == 1));
}

#[test]
fn restart_keeps_kernels_and_restarts_each_process_once() {
    let inst = sharded(2, 2);
    let mut op = RollingOperation::plan_restart(&inst, RestartScope::Instance, cfg()).unwrap();
    let mut toy = Toy::new(&inst);
    drive(&mut op, &mut toy, |_| Crash::None, |_, _| {});
    assert_eq!(outcome(&op), Outcome::Succeeded);
    assert!(toy.kernels().iter().all(|k| k.as_deref() == Some(OLD)));
    assert_eq!(toy.stops.len(), inst.topology.kernel_versions().count());
    assert!(toy.stops.values().all(|&n| n == 1));
    assert_eq!(
        plan_restart_steps(&inst, &RestartScope::Instance)
            .steps
            .len() as u64,
        op.report().unwrap().commands_executed
    );
}

#[test]
fn restart_of_one_node_touches_only_that_node() {
    let inst = sharded(3, 3);
    let mut op = RollingOperation::plan_restart(
        &inst,
        RestartScope::Node {
            node_id: "d-sh1".into(),
        },
        cfg(),
    )
    .unwrap();
    let mut toy = Toy::new(&inst);
    drive(&mut op, &mut toy, |_| Crash::None, |_, _| {});
    assert_eq!(outcome(&op), Outcome::Succeeded);
    assert_eq!(
        toy.stops.keys().cloned().collect::<Vec<_>>(),
        ["sh1-0", "sh1-1", "sh1-2"]
    );
    assert!(matches!(toy.log.first(), Some(Command::StopBalancer)));
    let p = op.progress();
    assert_eq!(p.replica_sets.len(), 1);

    let mut op = RollingOperation::plan_restart(
        &inst,
        RestartScope::Node {
            node_id: "s-2".into(),
        },
        cfg(),
    )
    .unwrap();
    let mut toy = Toy::new(&inst);
    drive(&mut op, &mut toy, |_| Crash::None, |_, _| {});
    assert_eq!(outcome(&op), Outcome::Succeeded);
    assert_eq!(member_cmds(&toy.log), ["stop s-2", "start s-2 old"]);

    assert!(matches!(
        RollingOperation::plan_restart(
            &inst,
            RestartScope::Node {
                node_id: "d-nope".into()
            },
            cfg()
        ),
        Err(PreflightError::NoSuchNode { .. })
    ));
}

#[test]
fn parallel_shards_after_the_canary_never_overlap_within_a_set() {
    let inst = sharded(4, 2);
    let c = UpgradeConfig {
        max_parallel_shards: 2,
        ..cfg()
    };
    let mut op = RollingOperation::plan_upgrade(&inst, NEW, c).unwrap();
    let mut toy = Toy::new(&inst);
    let mut max_active = 0;
    let mut canary_alone = true;
    drive(
        &mut op,
        &mut toy,
        |_| Crash::None,
        |_, op| {
            let active: Vec<&str> = op
                .replica_sets
                .iter()
                .filter(|r| r.status == RsStatus::Active)
                .map(|r| r.name.as_str())
                .collect();
            max_active = max_active.max(active.len());
            if active.contains(&"sh0") && active.len() > 1
                || active.contains(&"cfg") && active.len() > 1
            {
                canary_alone = false;
            }
        },
    );
    assert_eq!(outcome(&op), Outcome::Succeeded);
    assert_eq!(max_active, 2);
    assert!(canary_alone);
}

#[test]
fn mongos_batches_always_leave_one_serving_and_f13_stops_at_a_failed_mongos() {
    let inst = sharded(1, 3);
    let c = UpgradeConfig {
        mongos_batch: 10,
        ..cfg()
    };
    let mut op = RollingOperation::plan_upgrade(&inst, NEW, c.clone()).unwrap();
    let mut toy = Toy::new(&inst);
    let mut min_up = usize::MAX;
    drive(
        &mut op,
        &mut toy,
        |_| Crash::None,
        |toy, _| {
            min_up = min_up.min(toy.obs.mongos.iter().filter(|m| m.up).count());
        },
    );
    assert_eq!(outcome(&op), Outcome::Succeeded);
    assert_eq!(min_up, 1);

    let mut toy = Toy::new(&inst);
    toy.start_error.insert("s-0".into());
    let mut op = RollingOperation::plan_upgrade(&inst, NEW, cfg()).unwrap();
    drive(&mut op, &mut toy, |_| Crash::None, |_, _| {});
    let Outcome::Failed(f) = outcome(&op) else {
        panic!()
    };
    assert_eq!(f.node_id.as_deref(), Some("s-0"));
    assert!(!toy.stops.contains_key("s-1") && !toy.stops.contains_key("s-2"));
    let r = op.report().unwrap();
    assert!(matches!(
        r.mongos[0].revert,
        Some(RevertOutcome::Reverted { .. })
    ));
    assert!(matches!(toy.log.last(), Some(Command::StartBalancer)));
}

#[test]
fn maintenance_window_defers_the_start() {
    let inst = replica_set(pss("rs", ReplicaSetKind::Instance));
    let w = MaintainWindow::new("18:00Z".parse().unwrap(), "22:00Z".parse().unwrap()).unwrap();
    let mut op = RollingOperation::plan_upgrade(&inst, NEW, cfg())
        .unwrap()
        .with_maintain_window(w);
    let mut toy = Toy::new(&inst);
    let day = 86_400_000;
    toy.now = 10 * day + 3 * 3_600_000; // 03:00Z
    let d = op.step(&toy.observe(), toy.now);
    assert_eq!(d, Decision::WaitUntil(10 * day + 18 * 3_600_000));
    drive(&mut op, &mut toy, |_| Crash::None, |_, _| {});
    assert_eq!(outcome(&op), Outcome::Succeeded);
    assert!(op.started_ms.unwrap() >= 10 * day + 18 * 3_600_000);
}

#[test]
fn state_round_trips_through_json() {
    let inst = sharded(1, 2);
    let mut op = RollingOperation::plan_upgrade(&inst, NEW, cfg()).unwrap();
    let mut toy = Toy::new(&inst);
    for _ in 0..6 {
        if let Decision::Issue(cmds) = op.step(&toy.observe(), toy.now) {
            for c in &cmds {
                let r = toy.apply(c);
                op.on_result(c, r, toy.now);
            }
        }
        toy.now += 1_000;
        let json = serde_json::to_value(&op).unwrap();
        let back: RollingOperation = serde_json::from_value(json).unwrap();
        assert_eq!(back, op);
    }
}

#[test]
fn a_primary_that_keeps_getting_re_elected_is_never_stopped_and_stepdowns_are_capped() {
    let inst = replica_set(pss("rs", ReplicaSetKind::Instance));
    let mut toy = Toy::new(&inst);
    let mut op = RollingOperation::plan_upgrade(&inst, NEW, cfg()).unwrap();
    toy.reelected_before_stop = Some("rs-0".into());
    drive(&mut op, &mut toy, |_| Crash::None, |_, _| {});
    let Outcome::Failed(f) = outcome(&op) else {
        panic!("{:?} {:?}", outcome(&op), member_cmds(&toy.log))
    };
    assert_eq!(f.reason, FailureReason::TooManyStepDowns { accepted: 3 });
    assert_eq!(toy.stops.get("rs-0"), None);
    assert_eq!(op.report().unwrap().replica_sets[0].elections, 6);
}

#[test]
fn a_primary_switch_is_one_stepdown_and_restarts_nobody() {
    let inst = replica_set(pss("rs", ReplicaSetKind::Instance));
    let mut op =
        RollingOperation::plan_switch(&inst, RestartScope::Instance, Vec::new(), cfg()).unwrap();
    let mut toy = Toy::new(&inst);
    assert_eq!(op.preflight(&toy.observe()), Ok(()));
    drive(&mut op, &mut toy, |_| Crash::None, |_, _| {});
    assert_eq!(outcome(&op), Outcome::Succeeded);
    assert_eq!(member_cmds(&toy.log), ["stepdown rs-0"]);
    assert!(toy.stops.is_empty() && toy.starts.is_empty());
    assert_eq!(toy.obs.replica_sets[0].primary.as_deref(), Some("rs-1"));
    let report = op.report().unwrap();
    assert_eq!(report.replica_sets[0].elections, 1);
    assert_eq!(
        report.replica_sets[0].election_log[0].cause,
        ElectionCause::StepDown
    );
    assert!(report.replica_sets[0].members.iter().all(|m| !m.restarted));

    // Resumed after a crash at any step, it still steps down exactly once.
    for at in 0..3 {
        for crash in [
            Crash::BeforeExecute,
            Crash::BeforeResult,
            Crash::AfterResult,
        ] {
            let mut op =
                RollingOperation::plan_switch(&inst, RestartScope::Instance, Vec::new(), cfg())
                    .unwrap();
            let mut toy = Toy::new(&inst);
            drive(
                &mut op,
                &mut toy,
                |i| if i == at { crash } else { Crash::None },
                |_, _| {},
            );
            assert_eq!(outcome(&op), Outcome::Succeeded, "{at} {crash:?}");
            assert!(toy.stops.is_empty(), "{at} {crash:?}");
            assert_ne!(toy.obs.replica_sets[0].primary.as_deref(), Some("rs-0"));
        }
    }
}

#[test]
fn a_switch_needs_a_caught_up_electable_secondary_among_its_candidates() {
    let inst = replica_set(pss("rs", ReplicaSetKind::Instance));
    // rs-2 is hidden: never electable.
    let op = RollingOperation::plan_switch(
        &inst,
        RestartScope::Instance,
        vec!["rs-0".into(), "rs-2".into()],
        cfg(),
    )
    .unwrap();
    let toy = Toy::new(&inst);
    assert_eq!(
        op.preflight(&toy.observe()),
        Err(PreflightError::NoCaughtUpSecondary {
            replica_set: "rs".into()
        })
    );
    let op =
        RollingOperation::plan_switch(&inst, RestartScope::Instance, Vec::new(), cfg()).unwrap();
    let mut toy = Toy::new(&inst);
    toy.member_mut("rs", "rs-1").optime_ms -= 30_000;
    assert_eq!(
        op.preflight(&toy.observe()),
        Err(PreflightError::NoCaughtUpSecondary {
            replica_set: "rs".into()
        })
    );
    assert!(PreflightError::NoCaughtUpSecondary {
        replica_set: "rs".into()
    }
    .is_transient());
    assert_eq!(
        RollingOperation::plan_switch(&inst, RestartScope::Instance, vec!["nobody".into()], cfg())
            .unwrap_err(),
        PreflightError::NoSuchRole {
            role_id: "nobody".into()
        }
    );
}

#[test]
fn a_sharded_switch_touches_one_shard_with_the_balancer_stopped() {
    let inst = sharded(2, 2);
    assert_eq!(
        RollingOperation::plan_switch(
            &inst,
            RestartScope::Node {
                node_id: "s-0".into()
            },
            Vec::new(),
            cfg()
        )
        .unwrap_err(),
        PreflightError::NotAReplicaSet {
            node_id: "s-0".into()
        }
    );
    let mut op = RollingOperation::plan_switch(
        &inst,
        RestartScope::Node {
            node_id: "d-sh1".into(),
        },
        Vec::new(),
        cfg(),
    )
    .unwrap();
    let mut toy = Toy::new(&inst);
    drive(&mut op, &mut toy, |_| Crash::None, |_, _| {});
    assert_eq!(outcome(&op), Outcome::Succeeded);
    assert_eq!(
        member_cmds(&toy.log),
        ["balancer stop", "stepdown sh1-0", "balancer start"]
    );
}

#[test]
fn restart_node_restarts_one_member_and_steps_a_primary_down_first() {
    let inst = replica_set(pss("rs", ReplicaSetKind::Instance));
    let member = |role: &str| RestartScope::Member {
        node_id: "rs".into(),
        role_id: role.into(),
    };
    let mut op = RollingOperation::plan_restart(&inst, member("rs-1"), cfg()).unwrap();
    let mut toy = Toy::new(&inst);
    drive(&mut op, &mut toy, |_| Crash::None, |_, _| {});
    assert_eq!(outcome(&op), Outcome::Succeeded);
    assert_eq!(member_cmds(&toy.log), ["stop rs-1", "start rs-1 old"]);

    let mut op = RollingOperation::plan_restart(&inst, member("rs-0"), cfg()).unwrap();
    let mut toy = Toy::new(&inst);
    drive(&mut op, &mut toy, |_| Crash::None, |_, _| {});
    assert_eq!(outcome(&op), Outcome::Succeeded);
    assert_eq!(
        member_cmds(&toy.log),
        ["stepdown rs-0", "stop rs-0", "start rs-0 old"]
    );
    assert_eq!(
        RollingOperation::plan_restart(&inst, member("rs-9"), cfg()).unwrap_err(),
        PreflightError::NoSuchRole {
            role_id: "rs-9".into()
        }
    );
}

#[test]
fn an_engine_upgrade_raises_the_fcv_once_after_the_last_restart() {
    let inst = replica_set(pss("rs", ReplicaSetKind::Instance));
    let mut op = RollingOperation::plan_engine_upgrade(&inst, NEW, "4.4", cfg()).unwrap();
    let mut toy = Toy::new(&inst);
    for rs in &mut toy.obs.replica_sets {
        rs.fcv = Some("4.2".into());
    }
    // Crashes at every step: the FCV step is re-derived from what is observed like every other.
    drive(
        &mut op,
        &mut toy,
        |i| match i % 3 {
            0 => Crash::AfterResult,
            1 => Crash::BeforeResult,
            _ => Crash::None,
        },
        |_, _| {},
    );
    assert_eq!(outcome(&op), Outcome::Succeeded);
    let cmds = member_cmds(&toy.log);
    let first_fcv = cmds.iter().position(|c| c == "fcv 4.4").unwrap();
    let last_start = cmds.iter().rposition(|c| c.starts_with("start ")).unwrap();
    assert!(first_fcv > last_start, "{cmds:?}");
    assert!(cmds[first_fcv..].iter().all(|c| c == "fcv 4.4"), "{cmds:?}");
    assert_eq!(op.fcv.from.as_deref(), Some("4.2"));
    assert!(op.fcv.raised_ms.is_some());
    assert!(toy.kernels().iter().all(|k| k.as_deref() == Some(NEW)));
}

#[test]
fn an_engine_upgrade_on_the_wrong_fcv_is_refused_before_anything_and_a_refused_fcv_fails_late() {
    let inst = replica_set(pss("rs", ReplicaSetKind::Instance));
    let mut op = RollingOperation::plan_engine_upgrade(&inst, NEW, "4.4", cfg()).unwrap();
    let mut toy = Toy::new(&inst);
    for rs in &mut toy.obs.replica_sets {
        rs.fcv = Some("4.0".into());
    }
    drive(&mut op, &mut toy, |_| Crash::None, |_, _| {});
    match outcome(&op) {
        Outcome::Failed(f) => assert!(
            matches!(
                f.reason,
                FailureReason::Preflight(PreflightError::FcvMismatch { .. })
            ),
            "{f:?}"
        ),
        o => panic!("{o:?}"),
    }
    assert!(toy.log.is_empty());

    let mut op = RollingOperation::plan_engine_upgrade(&inst, NEW, "4.4", cfg()).unwrap();
    let mut toy = Toy::new(&inst);
    toy.refuse_fcv = true;
    drive(&mut op, &mut toy, |_| Crash::None, |_, _| {});
    match outcome(&op) {
        Outcome::Failed(f) => match f.reason {
            FailureReason::FcvNotRaised {
                attempts,
                last_error,
                waiting_for,
            } => {
                assert!(attempts > 1);
                assert!(last_error.is_some() && waiting_for.is_none());
            }
            r => panic!("{r:?}"),
        },
        o => panic!("{o:?}"),
    }
    // The binaries changed; the FCV did not.
    assert!(toy.kernels().iter().all(|k| k.as_deref() == Some(NEW)));
    assert!(toy.obs.replica_sets.iter().all(|r| r.fcv.is_none()));
}
