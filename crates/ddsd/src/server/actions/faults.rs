//! Faults on demand (ddsd extensions, admin AccessKey only, simulated data plane only):
//! `DdsdArmFault`, `DdsdDescribeFaults`, `DdsdClearFaults`.
//!
//! They arm the simulated deployment's own faults (`dds_engine::sim::Fault`, the failure modes F1–F17 of the
//! upgrade test matrix) on one instance, so a user can watch an upgrade or restart meet them. Against any
//! other data plane they are refused with `OperationDenied.NotSimulated` (403): ddsd never injects faults into
//! real processes.
//!
//! `DdsdArmFault` parameters: `DBInstanceId`, `FaultType`, and per type:
//!
//! | `FaultType`        | target (`NodeId`)                      | other parameters                                        |
//! |--------------------|----------------------------------------|---------------------------------------------------------|
//! | `StartFails`       | a mongod                               | — (every start on a new kernel crash-loops)             |
//! | `NeverCatchesUp`   | a mongod                               | — (after its next start it never catches up)            |
//! | `StuckInState`     | a mongod                               | `State`: `STARTUP2` or `RECOVERING`                     |
//! | `SlowStart`        | a mongod                               | `ExtraSeconds` (every start takes that much longer)     |
//! | `Crash`            | a mongod                               | `DelaySeconds` (default 0), `RecoverAfterSeconds` (default: stays down) |
//! | `StepDownRefused`  | a replica set (its node id, name, or any member) | `DurationSeconds` (default: until cleared)    |
//! | `NoNewPrimary`     | a replica set                          | `DurationSeconds` (default: until cleared)              |
//! | `PrimaryChange`    | a replica set                          | `DelaySeconds` (default 0)                              |
//! | `OplogWindow`      | a replica set                          | `WindowSeconds`                                         |
//! | `MongosStartFails` | a mongos                               | —                                                       |
//! | `BalancerRound`    | — (sharded clusters)                   | `DurationSeconds`                                       |
//!
//! Durations are simulated seconds (plane time, which runs `sim_speed` times faster than the wall clock).
//! A replica-set instance's replica set is also named by the `DBInstanceId`. Answer: `DBInstanceId` and
//! `Fault` as listed. `DdsdDescribeFaults` answers `Faults.Fault[]` (armed since the last clear, oldest
//! first); `DdsdClearFaults` disarms them all (timed faults already scheduled still fire) and answers
//! `ClearedFaults`, how many were armed.

use std::sync::Arc;

use crate::server::actions::errors::ApiError;
use acs_rpc::Gateway;
use dds_engine::model::{Instance, Topology};
use dds_engine::plane::{MemberState, Millis};
use dds_engine::sim::Fault;
use serde_json::{json, Map, Value};

use super::params::{clip, optional, optional_u32, required, InstanceRequest};
use super::rolling::load_instance;
use super::{Call, Context, FromParams, Params};
use crate::server::plane::{DataPlane, PlaneError};

/// Longest duration parameter accepted: 30 simulated days.
const MAX_SECONDS: u32 = 30 * 86_400;

pub const FAULT_TYPES: &[&str] = &[
    "StartFails",
    "NeverCatchesUp",
    "StuckInState",
    "SlowStart",
    "Crash",
    "StepDownRefused",
    "NoNewPrimary",
    "PrimaryChange",
    "OplogWindow",
    "MongosStartFails",
    "BalancerRound",
];

fn no_deployment() -> ApiError {
    ApiError::incorrect_state("The instance has no running deployment.")
}

fn plane_error(e: PlaneError) -> ApiError {
    match e {
        PlaneError::Unsupported(_) => ApiError::NotSimulated,
        PlaneError::InvalidFault(m) if m.contains("has no deployment") => no_deployment(),
        PlaneError::InvalidFault(m) => {
            ApiError::invalid_parameter("FaultType", format!("The fault cannot be armed: {m}."))
        }
        other => {
            tracing::error!(error = %other, "data plane failed");
            Gateway::ServiceUnavailable.into()
        }
    }
}

fn bad_node(v: &str, what: &str) -> ApiError {
    ApiError::invalid_parameter(
        "NodeId",
        format!("\"{}\" is not {what} of this instance.", clip(v)),
    )
}

fn members(instance: &Instance) -> Vec<&dds_engine::model::MemberSpec> {
    match &instance.topology {
        Topology::Standalone { member } => vec![member],
        t => t
            .replica_sets()
            .into_iter()
            .flat_map(|rs| rs.members.iter())
            .collect(),
    }
}

fn mongod(params: &Params, instance: &Instance) -> Result<String, ApiError> {
    let n = required(params, "NodeId")?;
    members(instance)
        .iter()
        .find(|m| m.node_id == n)
        .map(|m| m.node_id.clone())
        .ok_or_else(|| bad_node(n, "a mongod"))
}

/// The replica set's name, from its node id, its name, a member's node id, or (replica-set instances) the
/// instance id.
fn replica_set(params: &Params, instance: &Instance) -> Result<String, ApiError> {
    let n = optional(params, "NodeId").unwrap_or(instance.id.as_str());
    let sets = instance.topology.replica_sets();
    if let (Topology::ReplicaSet { replica_set }, true) = (&instance.topology, n == instance.id) {
        return Ok(replica_set.name.clone());
    }
    sets.iter()
        .find(|rs| rs.node_id == n || rs.name == n || rs.members.iter().any(|m| m.node_id == n))
        .map(|rs| rs.name.clone())
        .ok_or_else(|| bad_node(n, "a replica set"))
}

fn seconds(params: &Params, name: &str) -> Result<Option<Millis>, ApiError> {
    Ok(optional_u32(params, name, MAX_SECONDS)?.map(|s| u64::from(s) * 1_000))
}

fn required_seconds(params: &Params, name: &str) -> Result<Millis, ApiError> {
    seconds(params, name)?.ok_or_else(|| ApiError::missing(name))
}

/// Builds the fault from the request; `now` is plane time.
pub fn fault_from_request(
    params: &Params,
    instance: &Instance,
    now: Millis,
) -> Result<Fault, ApiError> {
    let kind = required(params, "FaultType")?;
    Ok(match kind {
        "StartFails" => Fault::StartFails {
            node_id: mongod(params, instance)?,
        },
        "NeverCatchesUp" => Fault::NeverCatchesUp {
            node_id: mongod(params, instance)?,
        },
        "StuckInState" => {
            let state = match required(params, "State")? {
                "STARTUP2" => MemberState::Startup2,
                "RECOVERING" => MemberState::Recovering,
                other => {
                    return Err(ApiError::invalid_parameter(
                        "State",
                        format!(
                            "Valid values are STARTUP2 and RECOVERING, got \"{}\".",
                            clip(other)
                        ),
                    ))
                }
            };
            Fault::StuckInState {
                node_id: mongod(params, instance)?,
                state,
            }
        }
        "SlowStart" => Fault::SlowStart {
            node_id: mongod(params, instance)?,
            extra_ms: required_seconds(params, "ExtraSeconds")?,
        },
        "Crash" => Fault::Crash {
            node_id: mongod(params, instance)?,
            at_ms: now + seconds(params, "DelaySeconds")?.unwrap_or(0),
            recover_after_ms: seconds(params, "RecoverAfterSeconds")?,
        },
        "StepDownRefused" => Fault::StepDownRefused {
            replica_set: replica_set(params, instance)?,
            until_ms: seconds(params, "DurationSeconds")?.map(|d| now + d),
        },
        "NoNewPrimary" => Fault::NoNewPrimary {
            replica_set: replica_set(params, instance)?,
            until_ms: seconds(params, "DurationSeconds")?.map(|d| now + d),
        },
        "PrimaryChange" => Fault::PrimaryChange {
            replica_set: replica_set(params, instance)?,
            at_ms: now + seconds(params, "DelaySeconds")?.unwrap_or(0),
        },
        "OplogWindow" => Fault::OplogWindow {
            replica_set: replica_set(params, instance)?,
            window_ms: required_seconds(params, "WindowSeconds")?,
        },
        "MongosStartFails" => {
            let n = required(params, "NodeId")?;
            let node_id = instance
                .topology
                .mongos()
                .iter()
                .find(|m| m.node_id == n)
                .map(|m| m.node_id.clone())
                .ok_or_else(|| bad_node(n, "a mongos"))?;
            Fault::MongosStartFails { node_id }
        }
        "BalancerRound" => {
            if !matches!(instance.topology, Topology::Sharded { .. }) {
                return Err(ApiError::invalid_parameter(
                    "FaultType",
                    "BalancerRound applies to sharded clusters only.",
                ));
            }
            Fault::BalancerRound {
                until_ms: now + required_seconds(params, "DurationSeconds")?,
            }
        }
        other => {
            return Err(ApiError::invalid_parameter(
                "FaultType",
                format!(
                    "Unknown fault type \"{}\"; valid values: {}.",
                    clip(other),
                    FAULT_TYPES.join(", ")
                ),
            ))
        }
    })
}

/// A fault as answered: `FaultType` plus its fields in PascalCase (times in plane milliseconds).
pub fn fault_json(fault: &Value) -> Value {
    // Stored as serde's externally tagged form: {"StartFails": {"node_id": "…"}}.
    let Some((kind, fields)) = fault.as_object().and_then(|o| o.iter().next()) else {
        return json!({"FaultType": "Unknown"});
    };
    let mut o = Map::new();
    o.insert("FaultType".into(), json!(kind));
    if let Value::Object(f) = super::operations::pascal_keys(fields.clone()) {
        o.extend(f);
    }
    Value::Object(o)
}

/// The simulated plane; the row's `Simulated` column has refused the others already.
fn sim_plane(ctx: &Context) -> Result<Arc<crate::server::plane::sim::SimPlane>, ApiError> {
    ctx.sim.clone().ok_or(ApiError::NotSimulated)
}

/// `DdsdArmFault`: `DBInstanceId`, `FaultType` and the type's own parameters. Those name nodes of
/// the instance and times relative to plane time, so they are resolved against the instance
/// ([`fault_from_request`]) once it is loaded.
#[derive(Debug, Clone)]
pub struct ArmFaultRequest {
    pub db_instance_id: String,
    pub params: Params,
}

impl FromParams for ArmFaultRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        Ok(Self {
            db_instance_id: required(params, "DBInstanceId")?.to_string(),
            params: params.clone(),
        })
    }
}

/// `DdsdArmFault`.
pub async fn ddsd_arm_fault(
    ctx: Arc<Context>,
    req: ArmFaultRequest,
    _call: Call,
) -> Result<Value, ApiError> {
    let sim = sim_plane(&ctx)?;
    let id = req.db_instance_id.as_str();
    let instance = load_instance(&ctx, id).await?;
    let fault = fault_from_request(&req.params, &instance, sim.now_ms())?;
    let value = serde_json::to_value(&fault).map_err(|_| Gateway::InternalError)?;
    sim.arm_fault(id, value.clone())
        .await
        .map_err(plane_error)?;
    tracing::info!(instance_id = %id, fault = %value, "fault armed");
    Ok(json!({"DBInstanceId": id, "Fault": fault_json(&value)}))
}

/// `DdsdDescribeFaults`.
pub async fn ddsd_describe_faults(
    ctx: Arc<Context>,
    req: InstanceRequest,
    _call: Call,
) -> Result<Value, ApiError> {
    let sim = sim_plane(&ctx)?;
    let id = req.db_instance_id.as_str();
    load_instance(&ctx, id).await?;
    let faults = sim.list_faults(id).await.map_err(plane_error)?;
    let list: Vec<Value> = faults.iter().map(fault_json).collect();
    Ok(json!({"DBInstanceId": id, "Faults": {"Fault": list}}))
}

/// `DdsdClearFaults`.
pub async fn ddsd_clear_faults(
    ctx: Arc<Context>,
    req: InstanceRequest,
    _call: Call,
) -> Result<Value, ApiError> {
    let sim = sim_plane(&ctx)?;
    let id = req.db_instance_id.as_str();
    load_instance(&ctx, id).await?;
    let armed = sim.list_faults(id).await.map_err(plane_error)?.len();
    sim.clear_faults(id).await.map_err(plane_error)?;
    tracing::info!(instance_id = %id, cleared = armed, "faults cleared");
    Ok(json!({"DBInstanceId": id, "ClearedFaults": armed}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::actions::testing;
    use crate::server::actions::upgrade::test_support::{admin, env, kernels, req};
    use crate::server::store::Store;
    use dds_engine::build::fixtures;

    #[tokio::test]
    async fn faults_are_armed_listed_and_cleared() {
        let env = env(200.0).await;
        let (_, older) = kernels(&env, "4.4");
        let id = env
            .running_instance("dds-f1", fixtures::sharded(2, 2, &older), "4.4")
            .await;
        let inst = env.store.get_instance(&id).await.unwrap().unwrap();
        let Topology::Sharded { shards, mongos, .. } = &inst.topology else {
            unreachable!()
        };
        let member = shards[1].members[0].node_id.clone();
        let v = crate::server::actions::call(
            env.ctx.clone(),
            admin(
                "DdsdArmFault",
                &[
                    ("DBInstanceId", &id),
                    ("FaultType", "StartFails"),
                    ("NodeId", &member),
                ],
            ),
        )
        .await
        .unwrap();
        assert_eq!(
            v["Fault"],
            json!({"FaultType": "StartFails", "NodeId": member})
        );
        // A replica set named by one of its members; a timed fault in plane time.
        let now = env.ctx.sim.as_ref().unwrap().now_ms();
        let v = crate::server::actions::call(
            env.ctx.clone(),
            admin(
                "DdsdArmFault",
                &[
                    ("DBInstanceId", &id),
                    ("FaultType", "StepDownRefused"),
                    ("NodeId", &member),
                    ("DurationSeconds", "60"),
                ],
            ),
        )
        .await
        .unwrap();
        assert_eq!(v["Fault"]["ReplicaSet"], json!(shards[1].name));
        let until = v["Fault"]["UntilMs"].as_u64().unwrap();
        assert!(until >= now + 60_000 && until < now + 120_000, "{until}");
        crate::server::actions::call(
            env.ctx.clone(),
            admin(
                "DdsdArmFault",
                &[
                    ("DBInstanceId", &id),
                    ("FaultType", "MongosStartFails"),
                    ("NodeId", &mongos[0].node_id),
                ],
            ),
        )
        .await
        .unwrap();
        let list = crate::server::actions::call(
            env.ctx.clone(),
            admin("DdsdDescribeFaults", &[("DBInstanceId", &id)]),
        )
        .await
        .unwrap();
        let kinds: Vec<&str> = list["Faults"]["Fault"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["FaultType"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["StartFails", "StepDownRefused", "MongosStartFails"]);
        let v = crate::server::actions::call(
            env.ctx.clone(),
            admin("DdsdClearFaults", &[("DBInstanceId", &id)]),
        )
        .await
        .unwrap();
        assert_eq!(v["ClearedFaults"], json!(3));
        let list = crate::server::actions::call(
            env.ctx.clone(),
            admin("DdsdDescribeFaults", &[("DBInstanceId", &id)]),
        )
        .await
        .unwrap();
        assert_eq!(list["Faults"]["Fault"], json!([]));
    }

    #[tokio::test]
    async fn refusals_are_clear_and_arm_nothing() {
        let env = env(200.0).await;
        let (_, older) = kernels(&env, "4.4");
        let id = env
            .running_instance(
                "dds-f2",
                fixtures::replica_set(fixtures::psh("rs", &older)),
                "4.4",
            )
            .await;
        let member = match &env.store.get_instance(&id).await.unwrap().unwrap().topology {
            Topology::ReplicaSet { replica_set } => replica_set.members[1].node_id.clone(),
            _ => unreachable!(),
        };
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (vec![("FaultType", "StartFails")], "MissingDBInstanceId"),
            (
                vec![
                    ("DBInstanceId", "dds-nope"),
                    ("FaultType", "StartFails"),
                    ("NodeId", "x"),
                ],
                "InvalidDBInstanceId.NotFound",
            ),
            (vec![("DBInstanceId", &id)], "MissingFaultType"),
            (
                vec![("DBInstanceId", &id), ("FaultType", "Meteor")],
                "InvalidParameter",
            ),
            (
                vec![("DBInstanceId", &id), ("FaultType", "StartFails")],
                "MissingNodeId",
            ),
            (
                vec![
                    ("DBInstanceId", &id),
                    ("FaultType", "StartFails"),
                    ("NodeId", "d-nope"),
                ],
                "InvalidParameter",
            ),
            (
                vec![
                    ("DBInstanceId", &id),
                    ("FaultType", "MongosStartFails"),
                    ("NodeId", &member),
                ],
                "InvalidParameter",
            ),
            (
                vec![
                    ("DBInstanceId", &id),
                    ("FaultType", "BalancerRound"),
                    ("DurationSeconds", "5"),
                ],
                "InvalidParameter",
            ),
            (
                vec![
                    ("DBInstanceId", &id),
                    ("FaultType", "SlowStart"),
                    ("NodeId", &member),
                ],
                "MissingExtraSeconds",
            ),
            (
                vec![
                    ("DBInstanceId", &id),
                    ("FaultType", "Crash"),
                    ("NodeId", &member),
                    ("DelaySeconds", "-1"),
                ],
                "InvalidParameter",
            ),
            (
                vec![
                    ("DBInstanceId", &id),
                    ("FaultType", "StuckInState"),
                    ("NodeId", &member),
                    ("State", "PRIMARY"),
                ],
                "InvalidParameter",
            ),
        ];
        for (params, code) in cases {
            let e = crate::server::actions::call(env.ctx.clone(), admin("DdsdArmFault", &params))
                .await
                .unwrap_err();
            assert_eq!(e.code(), code, "{params:?}");
            assert!(e.status() < 500);
        }
        // Not an admin key.
        let e = crate::server::actions::call(
            env.ctx.clone(),
            req(
                "DdsdArmFault",
                &[
                    ("DBInstanceId", &id),
                    ("FaultType", "StartFails"),
                    ("NodeId", &member),
                ],
            ),
        )
        .await
        .unwrap_err();
        assert_eq!((e.code(), e.status()), ("Forbidden.RAM", 403));
        assert!(env
            .ctx
            .sim
            .as_ref()
            .unwrap()
            .list_faults(&id)
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn without_the_simulation_faults_are_refused() {
        let t = testing::ctx();
        let check = |e: ApiError| {
            assert_eq!(
                (e.code(), e.status()),
                ("OperationDenied.NotSimulated", 403)
            );
        };
        let params = [("DBInstanceId", "dds-x"), ("FaultType", "StartFails")];
        check(
            crate::server::actions::call(t.ctx.clone(), admin("DdsdArmFault", &params))
                .await
                .unwrap_err(),
        );
        check(
            crate::server::actions::call(t.ctx.clone(), admin("DdsdDescribeFaults", &params))
                .await
                .unwrap_err(),
        );
        check(
            crate::server::actions::call(t.ctx.clone(), admin("DdsdClearFaults", &params))
                .await
                .unwrap_err(),
        );
    }
}
