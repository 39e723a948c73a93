//! `DdsdDescribeOperations` (ddsd extension, any AccessKey): an instance's operations, newest first, with
//! the live progress of an unfinished one and the report of a finished one. The vendor has no action that
//! returns per-member progress without changing a documented response shape, hence one extension; the wire
//! format is documented in `docs/operations.md`.
//!
//! Request: `DBInstanceId` (required), `OperationId` (optional: just that operation), `MaxRecords`
//! (optional, 1–100, default 10).
//!
//! Response: `DBInstanceId`, `Operations.Operation[]` with `OperationId`, `Action` (the vendor action that
//! recorded it), `Status` (`Pending`, `Running`, `Succeeded`, `Failed`), `CreateTime`, `UpdateTime`,
//! `FinishTime`, `TargetKernelVersion` / `NodeId` / `SwitchMode` where they apply, `Progress`, `Report` (once
//! finished) and — when the data plane is the simulation — `Simulation`, the simulated fleet's ground truth
//! over the operation's time span (elections, each process's restarts and downtime, each replica set's time
//! without a writable primary, the balancer mode before and after). `Progress` and `Report` are the
//! workflow's own structures with their field names in the vendor's PascalCase; times in them are plane
//! milliseconds (the simulation's clock, which runs `sim_speed` times faster than the wall clock).

use std::sync::Arc;

use crate::server::actions::errors::ApiError;
use dds_engine::plane::Millis;
use dds_engine::sim::Truth;
use dds_engine::workflow::{RestartScope, RollingKind, RollingOperation};
use serde_json::{json, Map, Value};

use super::errors::from_store;
use super::params::{clip, optional, parse_u32_in, required, wall_time};
use super::rolling::load_instance;
use super::{Call, Context, FromParams, Params};
use crate::server::plane::DataPlane;
use crate::server::runtime::OperationState;
use crate::server::store::{Operation, OperationKind, OperationStatus};

pub const DEFAULT_MAX_RECORDS: u32 = 10;
pub const MAX_RECORDS: u32 = 100;

/// `node_id` → `NodeId`, `downtime_ms` → `DowntimeMs`; enum variant names are already PascalCase.
fn pascal(key: &str) -> String {
    key.split('_')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// The workflow's serde output with every object key in PascalCase.
pub fn pascal_keys(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| (pascal(&k), pascal_keys(v)))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(pascal_keys).collect()),
        other => other,
    }
}

fn action_name(kind: OperationKind) -> &'static str {
    match kind {
        OperationKind::Create => "CreateDBInstance",
        OperationKind::Delete => "DeleteDBInstance",
        OperationKind::Upgrade => "UpgradeDBInstanceKernelVersion",
        OperationKind::Restart => "RestartDBInstance",
        OperationKind::Switch => "SwitchDBInstanceHA",
        OperationKind::EngineUpgrade => "UpgradeDBInstanceEngineVersion",
        OperationKind::ClassChange => "ModifyDBInstanceSpec",
    }
}

/// The vendor action that recorded an operation: by its kind, `RestartNode` for a one-member restart.
pub fn recorded_by(op: &Operation) -> &'static str {
    match rolling(op).map(|r| r.kind) {
        Some(RollingKind::Restart {
            scope: RestartScope::Member { .. },
        }) => "RestartNode",
        Some(RollingKind::ClassChange {
            scope: RestartScope::Node { .. },
            ..
        }) => "ModifyNodeSpec",
        _ => action_name(op.kind),
    }
}

fn status_name(s: OperationStatus) -> &'static str {
    match s {
        OperationStatus::Pending => "Pending",
        OperationStatus::Running => "Running",
        OperationStatus::Succeeded => "Succeeded",
        OperationStatus::Failed => "Failed",
    }
}

/// Length of the overlap of `[from, until)` with `[a, b)`.
fn overlap_ms(from: Millis, until: Millis, a: Millis, b: Millis) -> u64 {
    until.min(b).saturating_sub(from.max(a))
}

/// The simulated fleet's ground truth between `from_ms` and `until_ms` (plane time).
pub fn simulation_section(truth: &Truth, from_ms: Millis, until_ms: Millis) -> Value {
    let in_window = |t: Millis| t >= from_ms && t <= until_ms;
    let replica_sets: Vec<Value> = truth
        .replica_sets
        .iter()
        .map(|rs| {
            let elections: Vec<Value> = rs
                .elections
                .iter()
                .filter(|e| in_window(e.at_ms))
                .map(|e| {
                    json!({"Term": e.term, "AtMs": e.at_ms, "Winner": e.winner, "Cause": format!("{:?}", e.cause)})
                })
                .collect();
            let gaps: Vec<u64> = rs
                .no_primary
                .iter()
                .map(|i| overlap_ms(i.from_ms, i.until_ms.unwrap_or(until_ms), from_ms, until_ms))
                .filter(|d| *d > 0)
                .collect();
            // Who was primary when the span began: the winner of the last election before it.
            let initial_primary = rs
                .elections
                .iter()
                .filter(|e| e.at_ms < from_ms)
                .max_by_key(|e| (e.at_ms, e.term))
                .map(|e| e.winner.clone());
            json!({
                "Name": rs.name,
                "InitialPrimary": initial_primary,
                "Elections": elections.len(),
                "ElectionLog": elections,
                "NoWritablePrimaryMs": gaps.iter().sum::<u64>(),
                "LongestNoWritablePrimaryMs": gaps.iter().copied().max().unwrap_or(0),
                "NoWritablePrimaryPeriods": gaps.len(),
            })
        })
        .collect();
    let processes: Vec<Value> = truth
        .processes
        .iter()
        .map(|p| {
            let restarts = p
                .down
                .iter()
                .filter(|d| d.by_command && in_window(d.from_ms))
                .count();
            let down_ms: u64 = p
                .down
                .iter()
                .map(|d| overlap_ms(d.from_ms, d.until_ms.unwrap_or(until_ms), from_ms, until_ms))
                .sum();
            let kernel = p.launches.last().map(|(_, k)| k.clone());
            let down_periods: Vec<Value> = p
                .down
                .iter()
                .filter(|d| {
                    overlap_ms(d.from_ms, d.until_ms.unwrap_or(until_ms), from_ms, until_ms) > 0
                })
                .map(|d| {
                    json!({
                        "FromMs": d.from_ms.max(from_ms),
                        "UntilMs": d.until_ms.map(|u| u.min(until_ms)),
                        "ByCommand": d.by_command,
                    })
                })
                .collect();
            json!({
                "NodeId": p.node_id,
                "ReplicaSet": p.replica_set,
                "Restarts": restarts,
                "Launches": p.launches.iter().filter(|(t, _)| in_window(*t)).count(),
                "LastLaunchMs": p.launches.iter().map(|(t, _)| *t).filter(|t| in_window(*t)).max(),
                "FailedStarts": p.failed_starts,
                "DownMs": down_ms,
                "DownPeriods": down_periods,
                "KernelVersion": kernel,
            })
        })
        .collect();
    let mode_at = |t: Millis| {
        truth
            .balancer_modes
            .iter()
            .take_while(|(at, _)| *at <= t)
            .last()
            .map(|(_, m)| format!("{m:?}"))
    };
    json!({
        "FromMs": from_ms,
        "UntilMs": until_ms,
        "ReplicaSets": replica_sets,
        "Processes": processes,
        // setFeatureCompatibilityVersion as the fleet carried it out (a major version upgrade raises it
        // last: after every LastLaunchMs).
        "FcvChanges": truth
            .fcv_changes
            .iter()
            .filter(|(t, _, _)| in_window(*t))
            .map(|(t, rs, v)| json!({"AtMs": t, "ReplicaSet": rs, "Version": v}))
            .collect::<Vec<_>>(),
        "BalancerModeBefore": mode_at(from_ms.saturating_sub(1)),
        "BalancerModeAfter": mode_at(until_ms),
        "PrimaryStopAttempts": truth.primary_stop_attempts.iter().filter(|a| in_window(a.at_ms)).count(),
    })
}

pub(crate) fn rolling(op: &Operation) -> Option<RollingOperation> {
    match OperationState::from_json(op.kind, op.state.clone()).ok()? {
        OperationState::Upgrade(r)
        | OperationState::Restart(r)
        | OperationState::Switch(r)
        | OperationState::ClassChange(r)
        | OperationState::EngineUpgrade(r) => Some(*r),
        _ => None,
    }
}

async fn describe_one(ctx: &Context, op: &Operation) -> Value {
    let mut o = Map::new();
    o.insert("OperationId".into(), json!(op.id));
    o.insert("Action".into(), json!(recorded_by(op)));
    o.insert("Status".into(), json!(status_name(op.status)));
    o.insert("CreateTime".into(), json!(wall_time(op.created_ms)));
    o.insert("UpdateTime".into(), json!(wall_time(op.updated_ms)));
    if let Some(f) = op.finished_ms {
        o.insert("FinishTime".into(), json!(wall_time(f)));
    }
    let state = OperationState::from_json(op.kind, op.state.clone());
    if let Some(r) = rolling(op) {
        match &r.kind {
            RollingKind::Upgrade { target_kernel } => {
                o.insert("TargetKernelVersion".into(), json!(target_kernel));
            }
            RollingKind::EngineUpgrade {
                target_kernel,
                target_fcv,
            } => {
                o.insert("TargetKernelVersion".into(), json!(target_kernel));
                o.insert("TargetEngineVersion".into(), json!(target_fcv));
                o.insert(
                    "FeatureCompatibilityVersion".into(),
                    json!({
                        "From": r.fcv.from,
                        "Attempts": r.fcv.attempts,
                        "FirstIssuedMs": r.fcv.first_issued_ms,
                        "RaisedMs": r.fcv.raised_ms,
                    }),
                );
            }
            RollingKind::Restart {
                scope: RestartScope::Node { node_id },
            } => {
                o.insert("NodeId".into(), json!(node_id));
            }
            RollingKind::Restart {
                scope: RestartScope::Member { node_id, role_id },
            } => {
                o.insert("NodeId".into(), json!(node_id));
                o.insert("RoleId".into(), json!(role_id));
            }
            RollingKind::Switch { scope, candidates } => {
                if let RestartScope::Node { node_id } = scope {
                    o.insert("NodeId".into(), json!(node_id));
                }
                if !candidates.is_empty() {
                    o.insert("RoleIds".into(), json!(candidates.join(",")));
                }
            }
            RollingKind::ClassChange {
                scope,
                class,
                storage_gb,
            } => {
                if let RestartScope::Node { node_id } = scope {
                    o.insert("NodeId".into(), json!(node_id));
                }
                o.insert("TargetClass".into(), json!(class));
                if let Some(gb) = storage_gb {
                    o.insert("TargetStorage".into(), json!(gb));
                }
            }
            RollingKind::Restart { .. } => {}
        }
        o.insert(
            "SwitchMode".into(),
            json!(if r.window.is_some() { "1" } else { "0" }),
        );
        if let (Some(sim), Some(from)) = (&ctx.sim, r.started_ms) {
            let until = r.finished_ms.unwrap_or_else(|| sim.now_ms());
            match sim.truth(&op.instance_id).await {
                Ok(Some(truth)) => {
                    o.insert("Simulation".into(), simulation_section(&truth, from, until));
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(instance_id = %op.instance_id, error = %e, "ground truth unavailable")
                }
            }
        }
    }
    match state {
        Ok(s) => {
            o.insert("Progress".into(), pascal_keys(s.progress()));
        }
        Err(e) => {
            tracing::error!(operation_id = %op.id, error = %e, "stored operation state does not decode");
        }
    }
    if let Some(report) = &op.report {
        let mut report = pascal_keys(report.clone());
        if let Some(plane) = &ctx.plane {
            add_wall_times(&mut report, plane.as_ref());
        }
        o.insert("Report".into(), report);
    }
    Value::Object(o)
}

/// The report's durations are plane time; a client measures wall time (the simulation runs
/// `sim_speed` times faster). Each write-unavailable window and member downtime gets both.
fn add_wall_times(report: &mut Value, plane: &dyn crate::server::plane::DataPlane) {
    let wall = |ms: u64| plane.wall_duration(ms).as_millis() as u64;
    let sets = report
        .get_mut("ReplicaSets")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten();
    for rs in sets {
        for w in rs
            .get_mut("WriteUnavailable")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let d = w["UntilMs"]
                .as_u64()
                .unwrap_or(0)
                .saturating_sub(w["FromMs"].as_u64().unwrap_or(0));
            w["DurationMs"] = json!(d);
            w["WallDurationMs"] = json!(wall(d));
        }
        for m in rs
            .get_mut("Members")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(d) = m.get("DowntimeMs").and_then(Value::as_u64) {
                m["WallDowntimeMs"] = json!(wall(d));
            }
        }
    }
}

/// `DdsdDescribeOperations`: `DBInstanceId`, `OperationId` (one operation), `MaxRecords`.
#[derive(Debug, Clone)]
pub struct DescribeOperationsRequest {
    pub db_instance_id: String,
    pub operation_id: Option<String>,
    pub max_records: u32,
}

impl FromParams for DescribeOperationsRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        let db_instance_id = required(params, "DBInstanceId")?.to_string();
        let operation_id = optional(params, "OperationId");
        if let Some(o) = operation_id {
            if o.len() > crate::server::store::limits::MAX_ID_LEN {
                return Err(ApiError::invalid_parameter(
                    "OperationId",
                    format!("Unknown operation \"{}…\".", clip(o)),
                ));
            }
        }
        let max_records = optional(params, "MaxRecords")
            .map(|v| parse_u32_in("MaxRecords", v, 1, MAX_RECORDS))
            .transpose()?
            .unwrap_or(DEFAULT_MAX_RECORDS);
        Ok(Self {
            db_instance_id,
            operation_id: operation_id.map(str::to_string),
            max_records,
        })
    }
}

/// `DdsdDescribeOperations`.
pub async fn ddsd_describe_operations(
    ctx: Arc<Context>,
    req: DescribeOperationsRequest,
    _call: Call,
) -> Result<Value, ApiError> {
    let id = req.db_instance_id.as_str();
    load_instance(&ctx, id).await?;
    let ops = match req.operation_id.as_deref() {
        Some(op_id) => {
            let op = ctx
                .store
                .get_operation(op_id)
                .await
                .map_err(from_store)?
                .filter(|o| o.instance_id == id)
                .ok_or(ApiError::OperationNotFound)?;
            vec![op]
        }
        None => ctx
            .store
            .list_operations(id, req.max_records)
            .await
            .map_err(from_store)?,
    };
    let mut list = Vec::with_capacity(ops.len());
    for op in &ops {
        list.push(describe_one(&ctx, op).await);
    }
    Ok(json!({"DBInstanceId": id, "Operations": {"Operation": list}}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_become_pascal_case_and_values_stay() {
        let v = json!({"node_id": "n", "waiting_on": {"PreStopGate": {"since_ms": 5}}, "list": [{"members_done": 1}], "phase": "ReplicaSets"});
        assert_eq!(
            pascal_keys(v),
            json!({"NodeId": "n", "WaitingOn": {"PreStopGate": {"SinceMs": 5}}, "List": [{"MembersDone": 1}], "Phase": "ReplicaSets"})
        );
    }

    #[test]
    fn overlap_is_clipped_to_the_window() {
        assert_eq!(overlap_ms(0, 10, 5, 20), 5);
        assert_eq!(overlap_ms(6, 8, 5, 20), 2);
        assert_eq!(overlap_ms(30, 40, 5, 20), 0);
        assert_eq!(overlap_ms(0, 100, 5, 20), 15);
    }
}
