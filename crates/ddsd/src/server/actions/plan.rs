//! `DdsdDescribeUpgradePlan` and `DdsdDescribeRestartPlan` (ddsd extensions, any AccessKey): dry runs of
//! `UpgradeDBInstanceKernelVersion` / `RestartDBInstance`. Nothing is recorded and no node is touched.
//!
//! The steps are `dds_engine::workflow::plan_steps` / `plan_restart_steps` over the stored instance: the
//! commands a fault-free run executes, in order, assuming every replica set's primary is its
//! highest-priority electable member and the balancer is on. The same refusals as the real action apply
//! where they are decided from the record (unknown instance, standalone, already on the newest kernel, an
//! unknown `NodeId`); the live checks against the deployment are left to the real call.
//!
//! Request: the real action's (`rolling::UpgradeRequest` / `rolling::RestartRequest`), read the same way;
//! parameters that only matter when the operation runs (`SwitchMode`, `ParallelRestartMongos`) are
//! checked and otherwise ignored.
//!
//! Response: `DBInstanceId`, `CurrentKernelVersion`, `TargetKernelVersion` (upgrade), `Steps.Step[]`
//! (`Index` from 1, `Command`, and `ReplicaSet` / `NodeId` / `KernelVersion` where they apply), `StepCount`,
//! `ExpectedElections` (total) and `ReplicaSets.ReplicaSet[]` (`Name`, `NodeId`, `ExpectedElections`),
//! `EstimatedDurationMs` (plane time), and with the simulated plane `SimSpeed` and `EstimatedWallMs`
//! (`EstimatedDurationMs / SimSpeed`).
//!
//! The estimate adds up, step by step, the mean of each duration range of the simulated deployment's model
//! (`SimParams`) plus the workflow's own waits (`UpgradeConfig`): a stop is a mean shutdown; a start is a
//! mean launch, initial sync and recovery, one heartbeat for the primary to see it, and the gate's
//! stability window; a stepdown is a mean handoff and a heartbeat; a mongos start adds its stability
//! window. It assumes shards are done one at a time (the default) and no fault.

use std::sync::Arc;

use dds_engine::model::Instance;
use dds_engine::sim::SimParams;
use dds_engine::workflow::{
    plan_restart_steps, plan_restart_steps_observed, plan_steps, plan_steps_observed, PlannedStep,
    RestartScope, StepPlan, UpgradeConfig,
};
use serde::Serialize;

use super::errors::ApiError;
use super::rolling::{Planned, RestartRequest, UpgradeRequest};
use super::{Call, Context};

fn mean(min: u64, max: u64) -> u64 {
    min / 2 + max / 2
}

/// Plane milliseconds one step of a fault-free run is expected to take.
pub fn step_estimate_ms(step: &PlannedStep, sim: &SimParams, cfg: &UpgradeConfig) -> u64 {
    match step {
        // `balancerStop` waits for a round in progress; half a round on average.
        PlannedStep::StopBalancer => {
            sim.heartbeat_interval_ms
                + mean(sim.balancer_round_min_ms, sim.balancer_round_max_ms) / 2
        }
        PlannedStep::StartBalancer => sim.heartbeat_interval_ms,
        PlannedStep::StopMember { .. } => mean(sim.stop_min_ms, sim.stop_max_ms),
        PlannedStep::StartMember { .. } => {
            mean(sim.startup_min_ms, sim.startup_max_ms)
                + mean(sim.startup2_min_ms, sim.startup2_max_ms)
                + mean(sim.recovering_min_ms, sim.recovering_max_ms)
                + sim.heartbeat_interval_ms
                + cfg.gate_stability_ms
        }
        PlannedStep::StepDown { .. } => {
            mean(sim.handoff_min_ms, sim.handoff_max_ms) + sim.heartbeat_interval_ms
        }
        PlannedStep::StopMongos { .. } => mean(sim.mongos_stop_min_ms, sim.mongos_stop_max_ms),
        PlannedStep::StartMongos { .. } => {
            mean(sim.mongos_start_min_ms, sim.mongos_start_max_ms) + cfg.mongos_stability_ms
        }
    }
}

pub fn estimate_ms(plan: &StepPlan, sim: &SimParams, cfg: &UpgradeConfig) -> u64 {
    plan.steps
        .iter()
        .map(|s| step_estimate_ms(s, sim, cfg))
        .sum()
}

/// One command of the plan, numbered from 1.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Step {
    pub index: usize,
    pub command: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica_set: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_version: Option<String>,
}

impl Step {
    fn new(index: usize, step: &PlannedStep) -> Self {
        let (command, rs, node, kernel) = match step {
            PlannedStep::StopBalancer => ("StopBalancer", None, None, None),
            PlannedStep::StartBalancer => ("StartBalancer", None, None, None),
            PlannedStep::StopMember {
                replica_set,
                node_id,
            } => ("StopMember", Some(replica_set), Some(node_id), None),
            PlannedStep::StartMember {
                replica_set,
                node_id,
                kernel_version,
            } => (
                "StartMember",
                Some(replica_set),
                Some(node_id),
                Some(kernel_version),
            ),
            PlannedStep::StepDown {
                replica_set,
                node_id,
            } => ("StepDown", Some(replica_set), Some(node_id), None),
            PlannedStep::StopMongos { node_id } => ("StopMongos", None, Some(node_id), None),
            PlannedStep::StartMongos {
                node_id,
                kernel_version,
            } => ("StartMongos", None, Some(node_id), Some(kernel_version)),
        };
        Self {
            index: index + 1,
            command,
            replica_set: rs.cloned(),
            node_id: node.cloned(),
            kernel_version: kernel.cloned(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Steps {
    #[serde(rename = "Step")]
    pub step: Vec<Step>,
}

/// The elections a replica set is expected to go through.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReplicaSetPlan {
    pub name: String,
    pub node_id: Option<String>,
    pub expected_elections: u32,
}

#[derive(Debug, Serialize)]
pub struct ReplicaSets {
    #[serde(rename = "ReplicaSet")]
    pub replica_set: Vec<ReplicaSetPlan>,
}

/// The answer of both dry runs (`TargetKernelVersion` for an upgrade, `NodeId` for a restart of one
/// node).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PlanResponse {
    #[serde(rename = "DBInstanceId")]
    pub db_instance_id: String,
    pub current_kernel_version: Option<String>,
    pub steps: Steps,
    pub step_count: usize,
    pub expected_elections: u64,
    pub replica_sets: ReplicaSets,
    pub estimated_duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sim_speed: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_wall_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_kernel_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
}

impl PlanResponse {
    fn new(ctx: &Context, instance: &Instance, plan: &StepPlan) -> Self {
        let catalog = ctx.kernels.snapshot();
        let sets = instance.topology.replica_sets();
        let params = ctx
            .sim
            .as_ref()
            .map_or_else(SimParams::default, |s| s.params().clone());
        let estimate = estimate_ms(plan, &params, &ctx.rolling);
        Self {
            db_instance_id: instance.id.clone(),
            current_kernel_version: instance
                .current_kernel_version(|k| catalog.position(k).map(|(_, i)| i)),
            steps: Steps {
                step: plan
                    .steps
                    .iter()
                    .enumerate()
                    .map(|(i, s)| Step::new(i, s))
                    .collect(),
            },
            step_count: plan.steps.len(),
            expected_elections: plan
                .expected_elections
                .iter()
                .map(|(_, n)| u64::from(*n))
                .sum(),
            replica_sets: ReplicaSets {
                replica_set: plan
                    .expected_elections
                    .iter()
                    .map(|(name, n)| ReplicaSetPlan {
                        name: name.clone(),
                        node_id: sets
                            .iter()
                            .find(|r| &r.name == name)
                            .map(|r| r.node_id.clone()),
                        expected_elections: *n,
                    })
                    .collect(),
            },
            estimated_duration_ms: estimate,
            sim_speed: ctx.sim.as_ref().map(|s| s.speed()),
            estimated_wall_ms: ctx
                .sim
                .as_ref()
                .map(|s| (estimate as f64 / s.speed()).round() as u64),
            target_kernel_version: None,
            node_id: None,
        }
    }
}

/// `DdsdDescribeUpgradePlan`.
pub async fn ddsd_describe_upgrade_plan(
    ctx: Arc<Context>,
    req: UpgradeRequest,
    _call: Call,
) -> Result<PlanResponse, ApiError> {
    // The same record-level refusals as the real call (standalone, already latest, ...).
    let (Planned { instance, .. }, target) = req.plan(&ctx).await?;
    let plan = match observe(&ctx, &instance.id).await {
        Some(obs) => plan_steps_observed(&instance, &target, &obs),
        None => plan_steps(&instance, &target),
    };
    Ok(PlanResponse {
        target_kernel_version: Some(target),
        ..PlanResponse::new(&ctx, &instance, &plan)
    })
}

/// A fresh observation of the deployment, where the data plane has one: the workflow re-reads each
/// primary before acting, so the dry run must start from the same primaries.
async fn observe(
    ctx: &Context,
    instance_id: &str,
) -> Option<dds_engine::plane::DeploymentObservation> {
    match ctx.plane.as_ref()?.observe(instance_id).await {
        Ok(obs) => obs,
        Err(e) => {
            // The dry run still answers from the record; it just cannot see a moved primary.
            tracing::warn!(instance_id, error = %e, "no live observation for the plan");
            None
        }
    }
}

/// `DdsdDescribeRestartPlan`.
pub async fn ddsd_describe_restart_plan(
    ctx: Arc<Context>,
    req: RestartRequest,
    _call: Call,
) -> Result<PlanResponse, ApiError> {
    let (Planned { instance, .. }, scope) = req.plan(&ctx).await?;
    let plan = match observe(&ctx, &instance.id).await {
        Some(obs) => plan_restart_steps_observed(&instance, &scope, &obs),
        None => plan_restart_steps(&instance, &scope),
    };
    let node_id = match scope {
        RestartScope::Node { node_id } | RestartScope::Member { node_id, .. } => Some(node_id),
        RestartScope::Instance => None,
    };
    Ok(PlanResponse {
        node_id,
        ..PlanResponse::new(&ctx, &instance, &plan)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::actions::testing::ADMIN;
    use crate::server::actions::upgrade::test_support::{env, kernels, req};
    use crate::server::store::Store;
    use dds_engine::build::fixtures;
    use serde_json::json;

    #[test]
    fn the_estimate_matches_the_simulation_benchmark_for_a_replica_set() {
        // upgrade_bench measured a 3-member (P, S, hidden) replica set at 127.6 s mean over 50 seeds.
        let inst = fixtures::instance(
            "dds-est",
            "4.0",
            fixtures::replica_set(fixtures::psh("rs", "mongodb_20230101_4.0.28")),
        );
        let plan = plan_steps(&inst, "mongodb_20240101_4.0.30");
        let ms = estimate_ms(&plan, &SimParams::default(), &UpgradeConfig::default());
        assert!((110_000..=150_000).contains(&ms), "{ms}");
    }

    #[tokio::test]
    async fn the_plan_lists_every_command_and_changes_nothing() {
        let env = env(200.0).await;
        let (newest, older) = kernels(&env, "4.4");
        let id = env
            .running_instance("dds-plan1", fixtures::sharded(2, 2, &older), "4.4")
            .await;
        let v = crate::server::actions::call(
            env.ctx.clone(),
            req("DdsdDescribeUpgradePlan", &[("DBInstanceId", &id)]),
        )
        .await
        .unwrap();
        assert_eq!(v["TargetKernelVersion"], json!(newest));
        assert_eq!(v["CurrentKernelVersion"], json!(older));
        let steps = v["Steps"]["Step"].as_array().unwrap();
        // Balancer off and on, 3 replica sets of 3 members (stop + start each, one stepdown each), 2 mongos.
        assert_eq!(steps.len(), 2 + 3 * (3 * 2 + 1) + 2 * 2);
        assert_eq!(v["StepCount"], json!(steps.len()));
        assert_eq!(steps[0]["Command"], "StopBalancer");
        assert_eq!(steps.last().unwrap()["Command"], "StartBalancer");
        assert_eq!(steps[1]["Index"], 2);
        assert_eq!(v["ExpectedElections"], json!(3));
        assert_eq!(v["ReplicaSets"]["ReplicaSet"].as_array().unwrap().len(), 3);
        assert!(v["EstimatedDurationMs"].as_u64().unwrap() > 0);
        assert_eq!(v["SimSpeed"], json!(200.0));
        // A dry run records nothing.
        assert!(env.store.list_operations(&id, 10).await.unwrap().len() == 1);
        assert_eq!(
            env.store.get_instance(&id).await.unwrap().unwrap().status,
            dds_engine::model::DbInstanceStatus::Running
        );

        let v = crate::server::actions::call(
            env.ctx.clone(),
            req("DdsdDescribeRestartPlan", &[("DBInstanceId", &id)]),
        )
        .await
        .unwrap();
        assert_eq!(v["StepCount"], json!(2 + 3 * 7 + 4));
        assert!(v.get("TargetKernelVersion").is_none());
    }

    #[tokio::test]
    async fn refusals_are_those_of_the_real_action() {
        let env = env(200.0).await;
        let (newest, older) = kernels(&env, "4.4");
        let standalone = env
            .running_instance("dds-plan2", fixtures::standalone("sa-0", &older), "4.4")
            .await;
        let latest = env
            .running_instance(
                "dds-plan3",
                fixtures::replica_set(fixtures::psh("rs", &newest)),
                "4.4",
            )
            .await;
        for (params, code) in [
            (vec![], "MissingDBInstanceId"),
            (
                vec![("DBInstanceId", "dds-nope")],
                "InvalidDBInstanceId.NotFound",
            ),
            (
                vec![("DBInstanceId", standalone.as_str())],
                "OperationDenied.DBInstanceType",
            ),
            (
                vec![("DBInstanceId", latest.as_str())],
                "InvalidMinorVersionAlreadyLatest",
            ),
        ] {
            let mut r = req("DdsdDescribeUpgradePlan", &params);
            r.access_key_id = ADMIN.into();
            let e = crate::server::actions::call(env.ctx.clone(), r)
                .await
                .unwrap_err();
            assert_eq!(e.code(), code, "{params:?}");
        }
        let e = crate::server::actions::call(
            env.ctx.clone(),
            req(
                "DdsdDescribeRestartPlan",
                &[("DBInstanceId", &latest), ("NodeId", "d-nope")],
            ),
        )
        .await
        .unwrap_err();
        assert_eq!(e.code(), "InvalidParameter");
    }
}
