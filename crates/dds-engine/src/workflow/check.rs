//! Invariant checks over the workflow's own decisions: a second, deliberately simpler reading of I1–I12 that
//! every step of a run is held against, whatever plane it runs on. (Checks against a simulated deployment's
//! ground truth live in `workflow::harness`.)
//!
//! [`DecisionAudit::check_step`] is called after every `step` with the state before and after it, the
//! observation it saw and the decision it returned; [`DecisionAudit::check_end`] once the operation is done.

use super::gates::{lag_ms, MemberRole};
use super::operation::{
    Decision, MemberStep, Outcome, Phase, RevertStage, RollingKind, RollingOperation, RsStatus,
};
use crate::model::ReplicaSetKind;
use crate::plane::{
    BalancerMode, Command, CommandError, DeploymentObservation, MemberState, Millis,
};
use std::collections::BTreeMap;
use std::fmt;

/// A broken invariant: which one and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub invariant: &'static str,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.invariant, self.detail)
    }
}

impl std::error::Error for Violation {}

fn violation(invariant: &'static str, detail: impl Into<String>) -> Result<(), Violation> {
    Err(Violation {
        invariant,
        detail: detail.into(),
    })
}

/// Tracks the decisions of one operation across steps (and across resumes: it lives outside the operation).
#[derive(Debug, Clone, Default)]
pub struct DecisionAudit {
    /// Stops that began a restart (not reverts), per process: the time and the start time of the process
    /// stopped. A repeat after a resume stops the same process again and is not a second restart.
    restart_stops: BTreeMap<String, Vec<(Millis, Option<Millis>)>>,
    revert_stops: BTreeMap<String, u32>,
    /// Every command issued (kind, process, time), for the end checks.
    issued: Vec<(Millis, Command)>,
}

impl DecisionAudit {
    pub fn new() -> Self {
        Self::default()
    }

    /// Restarts begun per process.
    pub fn restarts_begun(&self, node_id: &str) -> usize {
        self.restart_stops.get(node_id).map_or(0, Vec::len)
    }

    fn begin_restart(
        &mut self,
        node_id: &str,
        now: Millis,
        process: Option<Millis>,
    ) -> Result<(), Violation> {
        let v = self.restart_stops.entry(node_id.to_string()).or_default();
        if process.is_some() && v.iter().any(|(_, p)| *p == process) {
            return Ok(());
        }
        v.push((now, process));
        if v.len() > 1 {
            violation("I4", format!("{node_id} restarted twice"))?;
        }
        Ok(())
    }

    pub fn issued(&self) -> &[(Millis, Command)] {
        &self.issued
    }

    /// Records the plane's answer: a refused stop began no restart.
    pub fn on_result(&mut self, cmd: &Command, result: &Result<(), CommandError>) {
        if result.is_ok() {
            return;
        }
        if let Command::StopMember { node_id, .. } | Command::StopMongos { node_id } = cmd {
            if let Some(v) = self.restart_stops.get_mut(node_id) {
                v.pop();
            }
        }
    }

    /// Checks one `step`: `before` is the state it was called on, `after` the state it left.
    pub fn check_step(
        &mut self,
        before: &RollingOperation,
        after: &RollingOperation,
        obs: &DeploymentObservation,
        now: Millis,
        decision: &Decision,
    ) -> Result<(), Violation> {
        check_shape(after)?;
        let Decision::Issue(cmds) = decision else {
            return Ok(());
        };
        let mut per_rs = BTreeMap::<&str, usize>::new();
        for cmd in cmds {
            self.issued.push((now, cmd.clone()));
            match cmd {
                Command::StopMember {
                    replica_set,
                    node_id,
                } => {
                    *per_rs.entry(replica_set).or_default() += 1;
                    self.check_stop(before, after, obs, now, replica_set, node_id)?;
                }
                Command::StartMember {
                    replica_set,
                    node_id,
                    kernel_version,
                } => {
                    *per_rs.entry(replica_set).or_default() += 1;
                    check_start(after, obs, replica_set, node_id, kernel_version)?;
                }
                Command::StepDown {
                    replica_set,
                    node_id,
                    ..
                } => {
                    *per_rs.entry(replica_set).or_default() += 1;
                    check_step_down(after, obs, replica_set, node_id)?;
                }
                Command::StopMongos { node_id } => {
                    check_order_mongos(after)?;
                    check_balancer_off(after, obs)?;
                    let rec = after.mongos.iter().find(|m| &m.proc.node_id == node_id);
                    let before_step = before
                        .mongos
                        .iter()
                        .find(|m| &m.proc.node_id == node_id)
                        .map(|m| m.proc.step.clone());
                    let m = obs.mongos.iter().find(|m| &m.node_id == node_id);
                    if before_step == Some(MemberStep::Pending) {
                        self.begin_restart(node_id, now, m.and_then(|m| m.started_ms))?;
                    }
                    if let (Some(t), Some(m)) = (after.target(), m) {
                        let reverting =
                            rec.is_some_and(|r| matches!(r.proc.step, MemberStep::Reverting(_)));
                        if m.kernel_version.as_deref() == Some(t) && !reverting {
                            violation(
                                "I4",
                                format!("stop of mongos {node_id} already on the target"),
                            )?;
                        }
                    }
                    let others_up = obs
                        .mongos
                        .iter()
                        .filter(|o| &o.node_id != node_id && o.up)
                        .filter(|o| {
                            !cmds.iter().any(
                                |c| matches!(c, Command::StopMongos { node_id } if *node_id == o.node_id),
                            )
                        })
                        .count();
                    if obs.mongos.len() > 1 && others_up == 0 {
                        violation(
                            "I5",
                            format!("stopping mongos {node_id} leaves none serving"),
                        )?;
                    }
                }
                Command::StartMongos { .. } => {}
                Command::SetFeatureCompatibilityVersion { version, .. } => {
                    check_set_fcv(after, obs, version)?;
                }
                Command::StopBalancer => {
                    if after.balancer.recorded.is_none() {
                        violation("I6", "balancer stopped before its mode was recorded")?;
                    }
                }
                Command::StartBalancer => {
                    if after.balancer.recorded != Some(BalancerMode::Full) {
                        violation("I6", "balancer started although it was recorded off")?;
                    }
                    if after
                        .replica_sets
                        .iter()
                        .any(|r| r.procs.iter().any(|p| p.step.in_flight()))
                        || after.mongos.iter().any(|m| m.proc.step.in_flight())
                    {
                        violation("I6", "balancer restarted while a process is out")?;
                    }
                }
            }
        }
        if let Some((rs, n)) = per_rs.iter().find(|(_, n)| **n > 1) {
            violation(
                "I1",
                format!("{n} commands for replica set {rs} in one step"),
            )?;
        }
        check_gated_done(before, after, obs, now)
    }

    fn check_stop(
        &mut self,
        before: &RollingOperation,
        after: &RollingOperation,
        obs: &DeploymentObservation,
        now: Millis,
        rs_name: &str,
        node_id: &str,
    ) -> Result<(), Violation> {
        let Some(ro) = obs.replica_set(rs_name) else {
            return violation("I11", format!("stop in unobserved replica set {rs_name}"));
        };
        if ro.primary.as_deref() == Some(node_id) {
            violation("I2", format!("stop of primary {node_id} in {rs_name}"))?;
        }
        let Some(rs) = after.replica_sets.iter().find(|r| r.name == rs_name) else {
            return violation("I11", format!("unknown replica set {rs_name}"));
        };
        let j = rs
            .procs
            .iter()
            .position(|p| p.node_id == node_id)
            .unwrap_or(usize::MAX);
        let Some(p) = rs.procs.get(j) else {
            return violation("I11", format!("unknown member {node_id}"));
        };
        let reverting = matches!(p.step, MemberStep::Reverting(RevertStage::Stopping { .. }));
        if !reverting && !matches!(p.step, MemberStep::Stopping { .. }) {
            violation("I11", format!("stop of {node_id} recorded as {:?}", p.step))?;
        }
        // I1, re-derived: every other voter serving, a majority left.
        let mut voters = 0;
        let mut serving_after = 0;
        for role in &rs.roles {
            if !role.kind.votes() {
                continue;
            }
            voters += 1;
            if role.node_id == node_id {
                continue;
            }
            let up = ro.member(&role.node_id).is_some_and(|m| {
                m.process_up
                    && m.healthy
                    && matches!(
                        m.state,
                        MemberState::Primary | MemberState::Secondary | MemberState::Arbiter
                    )
            });
            if !up {
                violation(
                    "I1",
                    format!(
                        "stop of {node_id} while voter {} is not serving",
                        role.node_id
                    ),
                )?;
            }
            serving_after += 1;
        }
        if serving_after < voters / 2 + 1 {
            violation("I1", format!("stop of {node_id} leaves no majority"))?;
        }
        let before_step = before
            .replica_sets
            .iter()
            .find(|r| r.name == rs_name)
            .and_then(|r| r.procs.get(j))
            .map(|p| p.step.clone());
        if reverting {
            // A repeat of the same revert stop after a resume is not a second revert.
            if !matches!(
                before_step,
                Some(MemberStep::Reverting(RevertStage::Stopping { .. }))
            ) {
                *self.revert_stops.entry(node_id.to_string()).or_default() += 1;
            }
            if self.revert_stops.get(node_id).copied().unwrap_or(0) > 1 {
                violation("I4", format!("{node_id} put back twice"))?;
            }
            return Ok(());
        }
        if let Some(t) = after.target() {
            if ro.member(node_id).and_then(|m| m.kernel_version.as_deref()) == Some(t) {
                violation("I4", format!("stop of {node_id}, already on the target"))?;
            }
        }
        if before_step == Some(MemberStep::Pending) {
            let process = ro.member(node_id).and_then(|m| m.started_ms);
            self.begin_restart(node_id, now, process)?;
        }
        check_order_rs(after, rs_name)?;
        check_balancer_off(after, obs)
    }

    /// Once the operation is done: the balancer is back in its recorded mode, a success left every process in
    /// scope on the target (restarted once), a failure names its member and reason and began no restart after
    /// it.
    pub fn check_end(
        &self,
        op: &RollingOperation,
        obs: &DeploymentObservation,
    ) -> Result<(), Violation> {
        let Some(outcome) = op.outcome() else {
            return violation("I11", "operation not finished");
        };
        if let (Some(recorded), Some(b)) = (op.balancer.recorded, obs.balancer) {
            if b.mode != recorded {
                violation(
                    "I6",
                    format!("balancer left {:?}, recorded {recorded:?}", b.mode),
                )?;
            }
        }
        for rs in &op.replica_sets {
            if rs.procs.iter().any(|p| p.step.in_flight()) {
                violation(
                    "I1",
                    format!("{} finished with a member in flight", rs.name),
                )?;
            }
        }
        match outcome {
            Outcome::Succeeded => {
                for rs in op
                    .replica_sets
                    .iter()
                    .filter(|r| r.status != RsStatus::OutOfScope)
                {
                    let Some(ro) = obs.replica_set(&rs.name) else {
                        return violation("I11", format!("{} not observed at the end", rs.name));
                    };
                    for p in &rs.procs {
                        let m = ro.member(&p.node_id);
                        match &op.kind {
                            RollingKind::Upgrade { target_kernel }
                            | RollingKind::EngineUpgrade { target_kernel, .. } => {
                                // A process down at the end crashed after its restart (the fleet's
                                // truth judges that); a running one must run the target.
                                let k = m.and_then(|m| m.kernel_version.as_deref());
                                if k.is_some() && k != Some(target_kernel) {
                                    violation(
                                        "I4",
                                        format!("{} not on the target at the end", p.node_id),
                                    )?;
                                }
                            }
                            RollingKind::Restart { .. }
                                if p.step == crate::workflow::MemberStep::Skipped =>
                            {
                                // `RestartNode`: a member outside the one named is never touched.
                                if self.restarts_begun(&p.node_id) != 0 {
                                    violation(
                                        "I4",
                                        format!("{} restarted outside the scope", p.node_id),
                                    )?;
                                }
                            }
                            RollingKind::Switch { .. } => {
                                if self.restarts_begun(&p.node_id) != 0 {
                                    violation(
                                        "I4",
                                        format!("{} restarted by a primary switch", p.node_id),
                                    )?;
                                }
                            }
                            RollingKind::Restart { .. } | RollingKind::ClassChange { .. } => {
                                if !p.restarted || self.restarts_begun(&p.node_id) != 1 {
                                    violation(
                                        "I4",
                                        format!("{} not restarted exactly once", p.node_id),
                                    )?;
                                }
                            }
                        }
                    }
                }
                for m in op.mongos.iter().filter(|m| m.in_scope) {
                    if let Some(t) = op.target() {
                        let k = obs.mongos.iter().find(|o| o.node_id == m.proc.node_id);
                        let k = k.and_then(|k| k.kernel_version.as_deref());
                        if k.is_some() && k != Some(t) {
                            violation(
                                "I4",
                                format!("mongos {} not on the target", m.proc.node_id),
                            )?;
                        }
                    }
                }
                if self.restart_stops.values().any(|v| v.len() != 1) {
                    violation("I4", "a process was restarted more than once")?;
                }
                if let Some(fcv) = op.target_fcv() {
                    for rs in &op.replica_sets {
                        let seen = obs.replica_set(&rs.name).and_then(|r| r.fcv.as_deref());
                        if seen != Some(fcv) {
                            violation(
                                "FCV",
                                format!("{} ends with FCV {seen:?}, not {fcv}", rs.name),
                            )?;
                        }
                    }
                }
            }
            Outcome::Failed(f) => {
                let late: Vec<&String> = self
                    .restart_stops
                    .iter()
                    .filter(|(_, stops)| stops.iter().any(|(t, _)| *t > f.at_ms))
                    .map(|(n, _)| n)
                    .collect();
                if !late.is_empty() {
                    violation(
                        "§4.2",
                        format!("restarts begun after the failure: {late:?}"),
                    )?;
                }
                let instance_level = matches!(
                    f.reason,
                    super::FailureReason::Preflight(_)
                        | super::FailureReason::BalancerNotObserved
                        | super::FailureReason::BalancerStopTimeout { .. }
                        | super::FailureReason::CommandRejected { .. }
                        | super::FailureReason::ReplicaSetNotObserved
                        | super::FailureReason::NoPrimary
                        | super::FailureReason::UnknownPrimary { .. }
                        | super::FailureReason::FcvNotRaised { .. }
                );
                if f.node_id.is_none() && !instance_level {
                    violation("§4.2", format!("failure names no member: {f:?}"))?;
                }
                if op.report().is_none() {
                    violation("§4.2", "no report")?;
                }
            }
        }
        Ok(())
    }
}

/// `setFeatureCompatibilityVersion` only from a major version upgrade's last phase, to its target, with no
/// failure, nothing in flight, every process finished and every process observed on the target binary.
fn check_set_fcv(
    op: &RollingOperation,
    obs: &DeploymentObservation,
    version: &str,
) -> Result<(), Violation> {
    if op.target_fcv() != Some(version) {
        return violation(
            "FCV",
            format!(
                "setFeatureCompatibilityVersion {version} issued by {:?}",
                op.kind
            ),
        );
    }
    if !matches!(op.phase, Phase::SettingFcv { .. }) || op.failure.is_some() {
        return violation(
            "FCV",
            format!("setFeatureCompatibilityVersion in phase {:?}", op.phase),
        );
    }
    let procs = op
        .replica_sets
        .iter()
        .flat_map(|r| &r.procs)
        .chain(op.mongos.iter().map(|m| &m.proc));
    for p in procs {
        if !p.step.finished_ok() {
            violation(
                "FCV",
                format!("FCV raised while {} is {:?}", p.node_id, p.step),
            )?;
        }
    }
    if let Some(b) = op.fcv_blocker(obs) {
        violation("FCV", format!("FCV raised while {b} is not on the target"))?;
    }
    Ok(())
}

fn check_shape(op: &RollingOperation) -> Result<(), Violation> {
    for rs in &op.replica_sets {
        let in_flight = rs.procs.iter().filter(|p| p.step.in_flight()).count();
        if in_flight > 1 {
            violation(
                "I1",
                format!("{} has {in_flight} members out at once", rs.name),
            )?;
        }
        if rs.primary_stage.is_some() && in_flight > 0 {
            violation(
                "I2",
                format!("{} steps down while a member is out", rs.name),
            )?;
        }
    }
    Ok(())
}

fn exclusive_done(op: &RollingOperation, before_idx: usize) -> bool {
    let first_shard = op
        .replica_sets
        .iter()
        .position(|r| r.kind == ReplicaSetKind::Shard && r.status != RsStatus::OutOfScope);
    op.replica_sets[..before_idx]
        .iter()
        .enumerate()
        .all(|(i, r)| {
            let exclusive = r.kind == ReplicaSetKind::ConfigServer
                || (op.config.canary_shard && Some(i) == first_shard);
            !exclusive || matches!(r.status, RsStatus::Done | RsStatus::OutOfScope)
        })
}

/// I5: config servers, then the canary shard, before any later replica set is touched.
fn check_order_rs(op: &RollingOperation, rs_name: &str) -> Result<(), Violation> {
    let Some(i) = op.replica_sets.iter().position(|r| r.name == rs_name) else {
        return Ok(());
    };
    if !exclusive_done(op, i) {
        violation(
            "I5",
            format!("{rs_name} touched before config servers / canary finished"),
        )?;
    }
    if op.phase == Phase::Mongos {
        violation("I5", format!("{rs_name} touched during the mongos phase"))?;
    }
    Ok(())
}

/// I5: mongos only after every mongod is done.
fn check_order_mongos(op: &RollingOperation) -> Result<(), Violation> {
    if op
        .replica_sets
        .iter()
        .any(|r| !matches!(r.status, RsStatus::Done | RsStatus::OutOfScope))
    {
        violation("I5", "mongos touched before every replica set finished")?;
    }
    Ok(())
}

/// I6: on a sharded cluster, nothing is touched while the balancer runs.
fn check_balancer_off(op: &RollingOperation, obs: &DeploymentObservation) -> Result<(), Violation> {
    if !op.sharded
        || !op
            .replica_sets
            .iter()
            .any(|r| r.status != RsStatus::OutOfScope)
    {
        return Ok(());
    }
    if op.balancer.recorded.is_none() {
        violation(
            "I6",
            "process touched before the balancer mode was recorded",
        )?;
    }
    match obs.balancer {
        Some(b) if b.mode == BalancerMode::Off && !b.in_balancer_round => Ok(()),
        b => violation("I6", format!("process touched while the balancer is {b:?}")),
    }
}

fn check_start(
    op: &RollingOperation,
    obs: &DeploymentObservation,
    rs_name: &str,
    node_id: &str,
    kernel: &str,
) -> Result<(), Violation> {
    let Some(rs) = op.replica_sets.iter().find(|r| r.name == rs_name) else {
        return violation("I11", format!("unknown replica set {rs_name}"));
    };
    let Some(p) = rs.procs.iter().find(|p| p.node_id == node_id) else {
        return violation("I11", format!("unknown member {node_id}"));
    };
    if obs
        .replica_set(rs_name)
        .and_then(|r| r.member(node_id))
        .is_some_and(|m| m.process_up)
    {
        violation("I4", format!("start of {node_id} while it runs"))?;
    }
    let expected = match (&p.step, op.target()) {
        (MemberStep::Reverting(_), _) | (_, None) => p.from_kernel.as_str(),
        (_, Some(t)) => t,
    };
    if kernel != expected {
        violation(
            "I4",
            format!("{node_id} started on {kernel}, expected {expected}"),
        )?;
    }
    Ok(())
}

fn check_step_down(
    op: &RollingOperation,
    obs: &DeploymentObservation,
    rs_name: &str,
    node_id: &str,
) -> Result<(), Violation> {
    let Some(rs) = op.replica_sets.iter().find(|r| r.name == rs_name) else {
        return violation("I11", format!("unknown replica set {rs_name}"));
    };
    for p in rs.procs.iter().filter(|p| p.node_id != node_id) {
        if !p.step.finished_ok() {
            violation(
                "I3",
                format!("stepdown of {node_id} before {} finished", p.node_id),
            )?;
        }
    }
    let ro = obs.replica_set(rs_name);
    if let (Some(t), Some(ro)) = (op.target(), ro) {
        if ro.member(node_id).and_then(|m| m.kernel_version.as_deref()) == Some(t) {
            violation(
                "I3",
                format!("stepdown of {node_id}, a primary already on the target"),
            )?;
        }
    }
    check_order_rs(op, rs_name)?;
    check_balancer_off(op, obs)
}

/// I8: a member marked done in this step passed its gate on this observation, after a stable window.
fn check_gated_done(
    before: &RollingOperation,
    after: &RollingOperation,
    obs: &DeploymentObservation,
    now: Millis,
) -> Result<(), Violation> {
    let cfg = &after.config;
    for (rb, ra) in before.replica_sets.iter().zip(&after.replica_sets) {
        for (j, (pb, pa)) in rb.procs.iter().zip(&ra.procs).enumerate() {
            if pa.step != MemberStep::Done || pb.step == MemberStep::Done {
                continue;
            }
            if after.is_switch() && pb.step == MemberStep::Pending {
                // A switched primary was never stopped: there is no restart to gate.
                if pa.stop_issued_ms.is_some() {
                    return violation("I4", format!("{} stopped by a switch", pa.node_id));
                }
                continue;
            }
            let MemberStep::Gating {
                ok_since_ms: Some(ok_since),
                ..
            } = pb.step
            else {
                return violation("I8", format!("{} done without a stable gate", pa.node_id));
            };
            if now < ok_since + cfg.gate_stability_ms {
                violation(
                    "I8",
                    format!("{} done before its stability window", pa.node_id),
                )?;
            }
            let role: &MemberRole = &ra.roles[j];
            let Some(ro) = obs.replica_set(&ra.name) else {
                return violation("I8", "gate without observation");
            };
            let Some(m) = ro.member(&pa.node_id) else {
                return violation("I8", "gate without member observation");
            };
            let kernel = after.target().unwrap_or(&pa.from_kernel);
            if !(m.process_up && m.healthy && m.state.is_steady())
                || m.state_since_ms < m.started_ms.unwrap_or(0)
                || m.kernel_version.as_deref() != Some(kernel)
                || ro.primary.is_none()
                || lag_ms(role, ro, m) > role.lag_allowance_ms(cfg.max_lag_ms)
            {
                violation(
                    "I8",
                    format!("{} done but its gate does not hold: {m:?}", pa.node_id),
                )?;
            }
        }
    }
    Ok(())
}
