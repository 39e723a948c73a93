//! `DdsdDescribeDeployment` (ddsd extension, any AccessKey): a fresh observation of an instance's
//! processes, as the workflows see them — per replica set its term, primary and members (state,
//! health, whether the process is up, the kernel it runs, replication lag behind the primary), the
//! mongos (up, kernel) and the balancer. The console draws an instance's topology from it.
//!
//! Request: `DBInstanceId` (required). Response: `DBInstanceId`, `ObservedMs` (plane time),
//! `Observed` (`false` when the data plane has no deployment for the instance, e.g. still creating),
//! `ReplicaSets[]` (`Name`, `Term`, `Primary`, `OplogWindowMs`, `Members[]` with `NodeId`, `State`,
//! `Role` (`Primary`/`Secondary`/`Arbiter`/`Other`), `Healthy`, `ProcessUp`, `KernelVersion`,
//! `LagMs` (`null` without a primary)), `Mongos[]` (`NodeId`, `Up`, `KernelVersion`) and
//! `Balancer` (`Mode`, `InBalancerRound`; `null` for a replica set).

use std::sync::Arc;

use serde_json::{json, Value};

use super::errors::ApiError;
use super::params::InstanceRequest;
use super::rolling::load_instance;
use super::{Call, Context};
use dds_engine::plane::{DeploymentObservation, MemberState};

fn role(state: MemberState, primary: bool) -> &'static str {
    match state {
        _ if primary => "Primary",
        MemberState::Secondary => "Secondary",
        MemberState::Arbiter => "Arbiter",
        _ => "Other",
    }
}

/// The observation in the extension's shape.
pub fn deployment_json(id: &str, o: Option<&DeploymentObservation>) -> Value {
    let Some(o) = o else {
        return json!({"DBInstanceId": id, "Observed": false, "ObservedMs": null,
                      "ReplicaSets": [], "Mongos": [], "Balancer": null});
    };
    let replica_sets: Vec<Value> = o
        .replica_sets
        .iter()
        .map(|rs| {
            let members: Vec<Value> = rs
                .members
                .iter()
                .map(|m| {
                    let primary = rs.primary.as_deref() == Some(m.node_id.as_str());
                    let lag = (rs.primary.is_some() && m.process_up)
                        .then(|| rs.primary_optime_ms.saturating_sub(m.optime_ms));
                    json!({
                        "NodeId": m.node_id,
                        "State": format!("{:?}", m.state),
                        "Role": role(m.state, primary),
                        "Healthy": m.healthy,
                        "ProcessUp": m.process_up,
                        "KernelVersion": m.kernel_version,
                        "LagMs": lag,
                    })
                })
                .collect();
            json!({
                "Name": rs.name,
                "Term": rs.term,
                "Primary": rs.primary,
                "OplogWindowMs": rs.oplog_window_ms,
                "Members": members,
            })
        })
        .collect();
    let mongos: Vec<Value> = o
        .mongos
        .iter()
        .map(|m| json!({"NodeId": m.node_id, "Up": m.up, "KernelVersion": m.kernel_version}))
        .collect();
    json!({
        "DBInstanceId": id,
        "Observed": true,
        "ObservedMs": o.now_ms,
        "ReplicaSets": replica_sets,
        "Mongos": mongos,
        "Balancer": o.balancer.map(|b| json!({"Mode": format!("{:?}", b.mode), "InBalancerRound": b.in_balancer_round})),
    })
}

/// `DdsdDescribeDeployment`.
pub async fn ddsd_describe_deployment(
    ctx: Arc<Context>,
    req: InstanceRequest,
    _call: Call,
) -> Result<Value, ApiError> {
    let id = req.db_instance_id.as_str();
    load_instance(&ctx, id).await?;
    let observation = match &ctx.plane {
        Some(plane) => plane.observe(id).await.ok().flatten(),
        None => None,
    };
    Ok(deployment_json(id, observation.as_ref()))
}
