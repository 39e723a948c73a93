//! `DdsdDescribeUpgradePlan` and `DdsdDescribeRestartPlan` (ddsd extensions, any AccessKey): dry runs of
//! `UpgradeDBInstanceKernelVersion` / `RestartDBInstance`. Nothing is recorded and no node is touched.
//!
//! The steps are `dds_engine::workflow::plan_steps` / `plan_restart_steps` over the stored instance: the
//! commands a fault-free run executes, in order, assuming every replica set's primary is its
//! highest-priority electable member and the balancer is on. The same refusals as the real action apply
//! where they are decided from the record (unknown instance, standalone, already on the newest kernel, an
//! unknown `NodeId`); the live checks against the deployment are left to the real call.
//!
//! Request: `DBInstanceId`; the restart plan also takes `NodeId` as `RestartDBInstance` does.
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

use acs_rpc::{Gateway, RpcError, Verified};
use dds_engine::model::{Instance, Topology};
use dds_engine::sim::SimParams;
use dds_engine::workflow::{
    plan_restart_steps, plan_restart_steps_observed, plan_steps, plan_steps_observed, PlannedStep,
    RestartScope, RollingOperation, StepPlan, UpgradeConfig,
};
use serde_json::{json, Value};

use super::params::{clip, optional, required};
use super::upgrade::{load_instance, preflight_error};
use super::Context;

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

fn step_json(index: usize, step: &PlannedStep) -> Value {
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
    let mut o = serde_json::Map::new();
    o.insert("Index".into(), json!(index + 1));
    o.insert("Command".into(), json!(command));
    if let Some(rs) = rs {
        o.insert("ReplicaSet".into(), json!(rs));
    }
    if let Some(n) = node {
        o.insert("NodeId".into(), json!(n));
    }
    if let Some(k) = kernel {
        o.insert("KernelVersion".into(), json!(k));
    }
    Value::Object(o)
}

fn plan_json(
    ctx: &Context,
    instance: &Instance,
    plan: &StepPlan,
) -> serde_json::Map<String, Value> {
    let catalog = ctx.kernels.snapshot();
    let current = instance.current_kernel_version(|k| catalog.position(k).map(|(_, i)| i));
    let sets = instance.topology.replica_sets();
    let replica_sets: Vec<Value> = plan
        .expected_elections
        .iter()
        .map(|(name, n)| {
            let node = sets
                .iter()
                .find(|r| &r.name == name)
                .map(|r| r.node_id.clone());
            json!({"Name": name, "NodeId": node, "ExpectedElections": n})
        })
        .collect();
    let params = ctx
        .sim
        .as_ref()
        .map_or_else(SimParams::default, |s| s.params().clone());
    let estimate = estimate_ms(plan, &params, &ctx.rolling);
    let mut o = serde_json::Map::new();
    o.insert("DBInstanceId".into(), json!(instance.id));
    o.insert("CurrentKernelVersion".into(), json!(current));
    o.insert(
        "Steps".into(),
        json!({"Step": plan.steps.iter().enumerate().map(|(i, s)| step_json(i, s)).collect::<Vec<_>>()}),
    );
    o.insert("StepCount".into(), json!(plan.steps.len()));
    o.insert(
        "ExpectedElections".into(),
        json!(plan
            .expected_elections
            .iter()
            .map(|(_, n)| u64::from(*n))
            .sum::<u64>()),
    );
    o.insert("ReplicaSets".into(), json!({ "ReplicaSet": replica_sets }));
    o.insert("EstimatedDurationMs".into(), json!(estimate));
    if let Some(sim) = &ctx.sim {
        o.insert("SimSpeed".into(), json!(sim.speed()));
        o.insert(
            "EstimatedWallMs".into(),
            json!((estimate as f64 / sim.speed()).round() as u64),
        );
    }
    o
}

/// `DdsdDescribeUpgradePlan`.
pub async fn ddsd_describe_upgrade_plan(
    ctx: Arc<Context>,
    req: Verified,
) -> Result<Value, RpcError> {
    let id = required(&req, "DBInstanceId")?;
    let instance = load_instance(&ctx, id).await?;
    let catalog = ctx.kernels.snapshot();
    let Some(target) = catalog.newest(&instance.engine_version) else {
        tracing::error!(instance_id = %id, engine_version = %instance.engine_version, "engine version not in the kernel catalog");
        return Err(Gateway::InternalError.into());
    };
    let target = target.kernel_version.clone();
    // The same record-level refusals as the real call (standalone, already latest, ...).
    RollingOperation::plan_upgrade(&instance, &target, ctx.rolling.clone())
        .map_err(preflight_error)?;
    let plan = match observe(&ctx, &instance.id).await {
        Some(obs) => plan_steps_observed(&instance, &target, &obs),
        None => plan_steps(&instance, &target),
    };
    let mut o = plan_json(&ctx, &instance, &plan);
    o.insert("TargetKernelVersion".into(), json!(target));
    Ok(Value::Object(o))
}

/// `NodeId` read as `RestartDBInstance` reads it: absent, or on a replica-set instance its own id (or its
/// replica set's node id or name), means the whole instance.
fn restart_scope(req: &Verified, instance: &Instance) -> Result<RestartScope, RpcError> {
    let node_id = optional(req, "NodeId");
    if let Some(n) = node_id.filter(|n| n.len() > MAX_NODE_PARAM_LEN) {
        return Err(RpcError::invalid_parameter(
            "NodeId",
            format!(
                "At most {MAX_NODE_PARAM_LEN} characters, got \"{}…\".",
                clip(n)
            ),
        ));
    }
    Ok(match (node_id, &instance.topology) {
        (None, _) => RestartScope::Instance,
        (Some(n), Topology::ReplicaSet { replica_set })
            if n == instance.id || n == replica_set.node_id || n == replica_set.name =>
        {
            RestartScope::Instance
        }
        (Some(n), _) => RestartScope::Node {
            node_id: n.to_string(),
        },
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

/// Longest `NodeId` accepted, as `RestartDBInstance`.
const MAX_NODE_PARAM_LEN: usize = 64;

/// `DdsdDescribeRestartPlan`.
pub async fn ddsd_describe_restart_plan(
    ctx: Arc<Context>,
    req: Verified,
) -> Result<Value, RpcError> {
    let id = required(&req, "DBInstanceId")?;
    let instance = load_instance(&ctx, id).await?;
    let scope = restart_scope(&req, &instance)?;
    RollingOperation::plan_restart(&instance, scope.clone(), ctx.rolling.clone())
        .map_err(preflight_error)?;
    let plan = match observe(&ctx, &instance.id).await {
        Some(obs) => plan_restart_steps_observed(&instance, &scope, &obs),
        None => plan_restart_steps(&instance, &scope),
    };
    let mut o = plan_json(&ctx, &instance, &plan);
    if let RestartScope::Node { node_id } = &scope {
        o.insert("NodeId".into(), json!(node_id));
    }
    Ok(Value::Object(o))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::actions::testing::ADMIN;
    use crate::server::actions::upgrade::test_support::{env, kernels, req};
    use crate::server::store::Store;
    use dds_engine::build::fixtures;

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
        let v = ddsd_describe_upgrade_plan(
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

        let v = ddsd_describe_restart_plan(
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
            let e = ddsd_describe_upgrade_plan(env.ctx.clone(), r)
                .await
                .unwrap_err();
            assert_eq!(e.code(), code, "{params:?}");
        }
        let e = ddsd_describe_restart_plan(
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
