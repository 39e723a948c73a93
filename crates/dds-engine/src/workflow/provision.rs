//! Create and delete as small pure state machines: `state + observation + now → decision`, like the rolling
//! workflows beside them in [`workflow`](super), persisted by ddsd's runtime after every transition (which
//! also executes the [`PlaneEffect`]s on the data plane and feeds the results back through `on_result`).
//!
//! Create (`CreateDBInstance`, status `Creating`): ask the plane to provision the deployment, then wait until
//! every process is up and healthy and every replica set has a primary; the instance then becomes `Running`.
//! If the deployment does not come up before the deadline (or the plane keeps refusing), whatever was built
//! is deprovisioned and the instance is removed, as a failed order is.
//!
//! Delete (`DeleteDBInstance`, status `Deleting`): ask the plane to deprovision, wait until the deployment is
//! gone, then the instance is removed. If the plane keeps refusing, the instance goes back to `Running`.
//!
//! Both resume from a fresh observation: a deployment that already exists is not provisioned twice, one
//! that is already gone is not deprovisioned again.

use crate::model::{Instance, Topology};
use crate::plane::{CommandError, DeploymentObservation, Millis};
use serde::{Deserialize, Serialize};

/// Deadlines and retry policy of create and delete, persisted with the operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProvisionConfig {
    /// From the first step until every process serves. The vendor's own creations take 5–15 minutes.
    pub ready_deadline_ms: u64,
    /// From a deprovision request until the deployment is gone before the request is repeated.
    pub teardown_deadline_ms: u64,
    /// Refusals of provision/deprovision tolerated before giving up.
    pub max_attempts: u32,
    /// First retry delay after a refusal; doubles up to `retry_max_ms`.
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
}

impl Default for ProvisionConfig {
    fn default() -> Self {
        Self {
            ready_deadline_ms: 30 * 60_000,
            teardown_deadline_ms: 10 * 60_000,
            max_attempts: 8,
            retry_initial_ms: 1_000,
            retry_max_ms: 60_000,
        }
    }
}

impl ProvisionConfig {
    fn backoff(&self, attempts: u32) -> u64 {
        let shift = attempts.saturating_sub(1).min(20);
        self.retry_initial_ms
            .saturating_mul(1 << shift)
            .min(self.retry_max_ms)
    }
}

/// A deployment-level effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PlaneEffect {
    Provision,
    Deprovision,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProvisionOutcome {
    /// Create: the deployment serves; the instance is `Running`.
    Ready,
    /// Create failed and was cleaned up, or delete finished: the instance goes away.
    Removed,
    /// Delete gave up; the instance is back to `Running`.
    Kept,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProvisionDecision {
    Do(PlaneEffect),
    WaitUntil(Millis),
    Done(ProvisionOutcome),
}

/// Why a deployment does not serve yet, or `Ok` when it does: every process up, healthy and in a steady
/// state, a primary in every replica set, every mongos up. A standalone is observed as a one-member replica
/// set named after its node id.
pub fn deployment_ready(instance: &Instance, obs: &DeploymentObservation) -> Result<(), String> {
    let sets: Vec<(&str, Vec<&str>)> = match &instance.topology {
        Topology::Standalone { member } => {
            vec![(member.node_id.as_str(), vec![member.node_id.as_str()])]
        }
        t => t
            .replica_sets()
            .into_iter()
            .map(|rs| {
                (
                    rs.name.as_str(),
                    rs.members.iter().map(|m| m.node_id.as_str()).collect(),
                )
            })
            .collect(),
    };
    for (name, members) in sets {
        let rs = obs
            .replica_set(name)
            .ok_or_else(|| format!("replica set {name} not observed"))?;
        if rs.primary.is_none() {
            return Err(format!("replica set {name} has no primary"));
        }
        for node in members {
            let m = rs
                .member(node)
                .ok_or_else(|| format!("{node} not observed in {name}"))?;
            if !(m.process_up && m.healthy && m.state.is_steady()) {
                return Err(format!("{node} is {:?}", m.state));
            }
        }
    }
    for mongos in instance.topology.mongos() {
        let up = obs
            .mongos
            .iter()
            .any(|m| m.node_id == mongos.node_id && m.up);
        if !up {
            return Err(format!("mongos {} is not up", mongos.node_id));
        }
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CreatePhase {
    Provisioning,
    WaitingReady {
        since_ms: Millis,
    },
    /// Giving up: removing whatever was built.
    Removing {
        requested_ms: Option<Millis>,
    },
    Finished(ProvisionOutcome),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateOperation {
    pub config: ProvisionConfig,
    pub phase: CreatePhase,
    pub started_ms: Option<Millis>,
    pub finished_ms: Option<Millis>,
    /// Refusals in a row of the current request.
    pub attempts: u32,
    pub retry_at_ms: Option<Millis>,
    /// What the readiness check last found missing.
    pub waiting_on: Option<String>,
    pub failure: Option<String>,
}

impl CreateOperation {
    pub fn new(config: ProvisionConfig) -> Self {
        Self {
            config,
            phase: CreatePhase::Provisioning,
            started_ms: None,
            finished_ms: None,
            attempts: 0,
            retry_at_ms: None,
            waiting_on: None,
            failure: None,
        }
    }

    fn finish(&mut self, outcome: ProvisionOutcome, now: Millis) -> ProvisionDecision {
        self.phase = CreatePhase::Finished(outcome);
        self.finished_ms.get_or_insert(now);
        ProvisionDecision::Done(outcome)
    }

    fn retry_pending(&self, now: Millis) -> Option<Millis> {
        self.retry_at_ms.filter(|&t| t > now)
    }

    pub fn step(
        &mut self,
        instance: &Instance,
        obs: Option<&DeploymentObservation>,
        now: Millis,
    ) -> ProvisionDecision {
        let started = *self.started_ms.get_or_insert(now);
        // Each arm either decides or moves to another phase; three moves at most.
        for _ in 0..4 {
            match self.phase.clone() {
                CreatePhase::Finished(o) => return ProvisionDecision::Done(o),
                CreatePhase::Provisioning => {
                    if obs.is_some() {
                        self.phase = CreatePhase::WaitingReady { since_ms: now };
                        continue;
                    }
                    if let Some(t) = self.retry_pending(now) {
                        return ProvisionDecision::WaitUntil(t);
                    }
                    return ProvisionDecision::Do(PlaneEffect::Provision);
                }
                CreatePhase::WaitingReady { .. } => {
                    let Some(obs) = obs else {
                        // The deployment vanished (or the provision never took): ask again.
                        self.phase = CreatePhase::Provisioning;
                        continue;
                    };
                    match deployment_ready(instance, obs) {
                        Ok(()) => {
                            self.waiting_on = None;
                            return self.finish(ProvisionOutcome::Ready, now);
                        }
                        Err(why) => {
                            let deadline = started.saturating_add(self.config.ready_deadline_ms);
                            if now >= deadline {
                                self.failure = Some(format!(
                                    "the deployment did not come up within {} ms: {why}",
                                    self.config.ready_deadline_ms
                                ));
                                self.attempts = 0;
                                self.retry_at_ms = None;
                                self.phase = CreatePhase::Removing { requested_ms: None };
                                continue;
                            }
                            self.waiting_on = Some(why);
                            return ProvisionDecision::WaitUntil(deadline);
                        }
                    }
                }
                CreatePhase::Removing { requested_ms } => {
                    if obs.is_none() {
                        return self.finish(ProvisionOutcome::Removed, now);
                    }
                    if let Some(t) = self.retry_pending(now) {
                        return ProvisionDecision::WaitUntil(t);
                    }
                    match requested_ms {
                        Some(at) if now < at.saturating_add(self.config.teardown_deadline_ms) => {
                            return ProvisionDecision::WaitUntil(
                                at.saturating_add(self.config.teardown_deadline_ms),
                            );
                        }
                        _ => return ProvisionDecision::Do(PlaneEffect::Deprovision),
                    }
                }
            }
        }
        ProvisionDecision::WaitUntil(now.saturating_add(1))
    }

    pub fn on_result(
        &mut self,
        effect: PlaneEffect,
        result: Result<(), CommandError>,
        now: Millis,
    ) {
        match (effect, result) {
            (PlaneEffect::Provision, Ok(())) => {
                self.attempts = 0;
                self.retry_at_ms = None;
                if self.phase == CreatePhase::Provisioning {
                    self.phase = CreatePhase::WaitingReady { since_ms: now };
                }
            }
            (PlaneEffect::Provision, Err(e)) => {
                self.attempts += 1;
                if self.attempts >= self.config.max_attempts {
                    self.failure = Some(format!("the data plane refused to provision: {e}"));
                    self.attempts = 0;
                    self.retry_at_ms = None;
                    self.phase = CreatePhase::Removing { requested_ms: None };
                } else {
                    self.retry_at_ms = Some(now.saturating_add(self.config.backoff(self.attempts)));
                }
            }
            (PlaneEffect::Deprovision, Ok(())) => {
                self.attempts = 0;
                self.retry_at_ms = None;
                if let CreatePhase::Removing { .. } = self.phase {
                    self.phase = CreatePhase::Removing {
                        requested_ms: Some(now),
                    };
                }
            }
            // Cleanup is retried for as long as it takes: giving up would leave processes behind.
            (PlaneEffect::Deprovision, Err(_)) => {
                self.attempts = self.attempts.saturating_add(1);
                self.retry_at_ms = Some(now.saturating_add(self.config.backoff(self.attempts)));
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeletePhase {
    Requesting,
    WaitingGone { since_ms: Millis },
    Finished(ProvisionOutcome),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteOperation {
    pub config: ProvisionConfig,
    pub phase: DeletePhase,
    pub started_ms: Option<Millis>,
    pub finished_ms: Option<Millis>,
    pub attempts: u32,
    pub retry_at_ms: Option<Millis>,
    pub failure: Option<String>,
}

impl DeleteOperation {
    pub fn new(config: ProvisionConfig) -> Self {
        Self {
            config,
            phase: DeletePhase::Requesting,
            started_ms: None,
            finished_ms: None,
            attempts: 0,
            retry_at_ms: None,
            failure: None,
        }
    }

    fn finish(&mut self, outcome: ProvisionOutcome, now: Millis) -> ProvisionDecision {
        self.phase = DeletePhase::Finished(outcome);
        self.finished_ms.get_or_insert(now);
        ProvisionDecision::Done(outcome)
    }

    pub fn step(&mut self, obs: Option<&DeploymentObservation>, now: Millis) -> ProvisionDecision {
        self.started_ms.get_or_insert(now);
        match self.phase.clone() {
            DeletePhase::Finished(o) => ProvisionDecision::Done(o),
            _ if obs.is_none() => self.finish(ProvisionOutcome::Removed, now),
            DeletePhase::Requesting => match self.retry_at_ms.filter(|&t| t > now) {
                Some(t) => ProvisionDecision::WaitUntil(t),
                None => ProvisionDecision::Do(PlaneEffect::Deprovision),
            },
            DeletePhase::WaitingGone { since_ms } => {
                let deadline = since_ms.saturating_add(self.config.teardown_deadline_ms);
                if now >= deadline {
                    // The teardown stalled: ask again (the plane answers repeats from its state).
                    ProvisionDecision::Do(PlaneEffect::Deprovision)
                } else {
                    ProvisionDecision::WaitUntil(deadline)
                }
            }
        }
    }

    pub fn on_result(
        &mut self,
        effect: PlaneEffect,
        result: Result<(), CommandError>,
        now: Millis,
    ) {
        if effect != PlaneEffect::Deprovision {
            return;
        }
        match result {
            Ok(()) => {
                self.attempts = 0;
                self.retry_at_ms = None;
                self.phase = DeletePhase::WaitingGone { since_ms: now };
            }
            Err(e) => {
                self.attempts += 1;
                if self.attempts >= self.config.max_attempts {
                    self.failure = Some(format!("the data plane refused to deprovision: {e}"));
                    self.finish(ProvisionOutcome::Kept, now);
                } else {
                    self.phase = DeletePhase::Requesting;
                    self.retry_at_ms = Some(now.saturating_add(self.config.backoff(self.attempts)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::fixtures;
    use crate::plane::{MemberObservation, MemberState, MongosObservation, ReplicaSetObservation};

    const KERNEL: &str = "mongodb_20220518_4.0.21";

    /// Primary-secondary-hidden, as the vendor builds a three-node replica set.
    fn replica_set(id: &str) -> Instance {
        let rs = fixtures::psh(&format!("mgset-{id}"), KERNEL);
        fixtures::instance(id, "4.0", fixtures::replica_set(rs))
    }

    fn standalone(id: &str) -> Instance {
        fixtures::instance(id, "4.0", fixtures::standalone(&format!("{id}-0"), KERNEL))
    }

    /// Two shards and two mongos.
    fn sharded(id: &str) -> Instance {
        fixtures::instance(id, "4.0", fixtures::sharded(2, 2, KERNEL))
    }

    /// What a plane would report for `instance` with every process serving.
    fn healthy(instance: &Instance) -> DeploymentObservation {
        let member = |node: &str, state| MemberObservation {
            node_id: node.into(),
            state,
            healthy: true,
            process_up: true,
            kernel_version: Some("k".into()),
            optime_ms: 0,
            state_since_ms: 0,
            started_ms: Some(0),
        };
        let replica_sets = match &instance.topology {
            Topology::Standalone { member: m } => vec![ReplicaSetObservation {
                name: m.node_id.clone(),
                term: 0,
                primary: Some(m.node_id.clone()),
                primary_optime_ms: 0,
                members: vec![member(&m.node_id, MemberState::Primary)],
                oplog_window_ms: None,
                fcv: None,
            }],
            t => t
                .replica_sets()
                .into_iter()
                .map(|rs| ReplicaSetObservation {
                    name: rs.name.clone(),
                    term: 1,
                    primary: Some(rs.members[0].node_id.clone()),
                    primary_optime_ms: 0,
                    members: rs
                        .members
                        .iter()
                        .enumerate()
                        .map(|(i, m)| {
                            member(
                                &m.node_id,
                                if i == 0 {
                                    MemberState::Primary
                                } else {
                                    MemberState::Secondary
                                },
                            )
                        })
                        .collect(),
                    oplog_window_ms: None,
                    fcv: None,
                })
                .collect(),
        };
        DeploymentObservation {
            now_ms: 0,
            replica_sets,
            mongos: instance
                .topology
                .mongos()
                .iter()
                .map(|m| MongosObservation {
                    node_id: m.node_id.clone(),
                    up: true,
                    kernel_version: Some("k".into()),
                    started_ms: Some(0),
                })
                .collect(),
            balancer: None,
        }
    }

    #[test]
    fn readiness_needs_every_process_and_a_primary_everywhere() {
        for inst in [replica_set("dds-1"), standalone("dds-2"), sharded("dds-3")] {
            let ok = healthy(&inst);
            assert_eq!(deployment_ready(&inst, &ok), Ok(()), "{}", inst.id);

            let mut no_primary = ok.clone();
            no_primary.replica_sets[0].primary = None;
            let err = deployment_ready(&inst, &no_primary).unwrap_err();
            assert!(err.ends_with("has no primary"), "{err}");

            let mut starting = ok.clone();
            let last = starting.replica_sets.len() - 1;
            let m = starting.replica_sets[last].members.last_mut().unwrap();
            m.state = MemberState::Startup2;
            let err = deployment_ready(&inst, &starting).unwrap_err();
            assert!(err.contains("Startup2"), "{err}");

            let mut missing = ok.clone();
            missing.replica_sets[0].members.pop();
            let err = deployment_ready(&inst, &missing).unwrap_err();
            assert!(err.contains("not observed in"), "{err}");
        }
        let inst = sharded("dds-4");
        let mut mongos_down = healthy(&inst);
        mongos_down.mongos[1].up = false;
        assert!(deployment_ready(&inst, &mongos_down)
            .unwrap_err()
            .contains("mongos"));
    }

    #[test]
    fn create_provisions_once_then_waits_for_readiness() {
        let inst = replica_set("dds-c");
        let mut op = CreateOperation::new(ProvisionConfig::default());
        assert_eq!(
            op.step(&inst, None, 1_000),
            ProvisionDecision::Do(PlaneEffect::Provision)
        );
        op.on_result(PlaneEffect::Provision, Ok(()), 1_001);
        // Coming up: nothing more to do but wait (until the deadline at the latest).
        let mut starting = healthy(&inst);
        starting.replica_sets[0].primary = None;
        assert_eq!(
            op.step(&inst, Some(&starting), 2_000),
            ProvisionDecision::WaitUntil(1_000 + 30 * 60_000)
        );
        assert!(op.waiting_on.as_deref().unwrap().contains("no primary"));
        assert_eq!(
            op.step(&inst, Some(&healthy(&inst)), 3_000),
            ProvisionDecision::Done(ProvisionOutcome::Ready)
        );
        assert_eq!(op.finished_ms, Some(3_000));
        // Finished is final.
        assert_eq!(
            op.step(&inst, None, 4_000),
            ProvisionDecision::Done(ProvisionOutcome::Ready)
        );
    }

    #[test]
    fn create_resumed_after_the_provision_does_not_provision_again() {
        // Persisted before the provision was acknowledged; the deployment exists.
        let inst = replica_set("dds-c");
        let mut op = CreateOperation::new(ProvisionConfig::default());
        assert_eq!(
            op.step(&inst, None, 1_000),
            ProvisionDecision::Do(PlaneEffect::Provision)
        );
        let mut resumed: CreateOperation =
            serde_json::from_value(serde_json::to_value(&op).unwrap()).unwrap();
        assert_eq!(
            resumed.step(&inst, Some(&healthy(&inst)), 5_000),
            ProvisionDecision::Done(ProvisionOutcome::Ready)
        );
    }

    #[test]
    fn create_that_never_comes_up_is_removed() {
        let inst = replica_set("dds-c");
        let cfg = ProvisionConfig {
            ready_deadline_ms: 10_000,
            ..ProvisionConfig::default()
        };
        let mut op = CreateOperation::new(cfg);
        op.step(&inst, None, 0);
        op.on_result(PlaneEffect::Provision, Ok(()), 1);
        let mut stuck = healthy(&inst);
        stuck.replica_sets[0].members[2].state = MemberState::Recovering;
        assert_eq!(
            op.step(&inst, Some(&stuck), 9_999),
            ProvisionDecision::WaitUntil(10_000)
        );
        assert_eq!(
            op.step(&inst, Some(&stuck), 10_000),
            ProvisionDecision::Do(PlaneEffect::Deprovision)
        );
        assert!(op.failure.as_deref().unwrap().contains("Recovering"));
        op.on_result(PlaneEffect::Deprovision, Ok(()), 10_001);
        // Tearing down: wait, do not repeat the request.
        assert!(matches!(
            op.step(&inst, Some(&stuck), 12_000),
            ProvisionDecision::WaitUntil(_)
        ));
        assert_eq!(
            op.step(&inst, None, 20_000),
            ProvisionDecision::Done(ProvisionOutcome::Removed)
        );
    }

    #[test]
    fn refused_provisions_back_off_then_give_up() {
        let inst = replica_set("dds-c");
        let cfg = ProvisionConfig {
            max_attempts: 3,
            retry_initial_ms: 100,
            retry_max_ms: 150,
            ..ProvisionConfig::default()
        };
        let mut op = CreateOperation::new(cfg);
        let refused = || Err(CommandError::Other("no capacity".into()));
        op.step(&inst, None, 0);
        op.on_result(PlaneEffect::Provision, refused(), 0);
        assert_eq!(op.step(&inst, None, 50), ProvisionDecision::WaitUntil(100));
        assert_eq!(
            op.step(&inst, None, 100),
            ProvisionDecision::Do(PlaneEffect::Provision)
        );
        op.on_result(PlaneEffect::Provision, refused(), 100);
        assert_eq!(op.step(&inst, None, 100), ProvisionDecision::WaitUntil(250));
        op.on_result(PlaneEffect::Provision, refused(), 250);
        // Nothing was built: done at once.
        assert_eq!(
            op.step(&inst, None, 251),
            ProvisionDecision::Done(ProvisionOutcome::Removed)
        );
        assert!(op.failure.as_deref().unwrap().contains("no capacity"));
    }

    #[test]
    fn delete_deprovisions_and_waits_until_gone() {
        let inst = replica_set("dds-d");
        let cfg = ProvisionConfig {
            teardown_deadline_ms: 1_000,
            ..ProvisionConfig::default()
        };
        let mut op = DeleteOperation::new(cfg);
        let obs = healthy(&inst);
        assert_eq!(
            op.step(Some(&obs), 0),
            ProvisionDecision::Do(PlaneEffect::Deprovision)
        );
        op.on_result(PlaneEffect::Deprovision, Ok(()), 10);
        assert_eq!(
            op.step(Some(&obs), 500),
            ProvisionDecision::WaitUntil(1_010)
        );
        assert_eq!(
            op.step(Some(&obs), 1_010),
            ProvisionDecision::Do(PlaneEffect::Deprovision),
            "a stalled teardown is requested again"
        );
        assert_eq!(
            op.step(None, 1_500),
            ProvisionDecision::Done(ProvisionOutcome::Removed)
        );
        // A delete resumed after the deployment is gone finishes without asking the plane.
        let mut fresh = DeleteOperation::new(ProvisionConfig::default());
        assert_eq!(
            fresh.step(None, 0),
            ProvisionDecision::Done(ProvisionOutcome::Removed)
        );
    }

    #[test]
    fn delete_refused_for_good_keeps_the_instance() {
        let inst = replica_set("dds-d");
        let mut op = DeleteOperation::new(ProvisionConfig {
            max_attempts: 2,
            ..ProvisionConfig::default()
        });
        let obs = healthy(&inst);
        op.step(Some(&obs), 0);
        op.on_result(
            PlaneEffect::Deprovision,
            Err(CommandError::Other("x".into())),
            0,
        );
        assert!(matches!(
            op.step(Some(&obs), 1),
            ProvisionDecision::WaitUntil(_)
        ));
        op.on_result(
            PlaneEffect::Deprovision,
            Err(CommandError::Other("x".into())),
            5_000,
        );
        assert_eq!(
            op.step(Some(&obs), 5_001),
            ProvisionDecision::Done(ProvisionOutcome::Kept)
        );
    }
}
