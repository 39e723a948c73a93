//! The task center: `DescribeHistoryTasks` and `DescribeHistoryTasksStat` over ddsd's operations, in the
//! SDK models' shapes. Every operation is a task: its `TaskId` is the operation id (the one
//! `DdsdDescribeOperations` shows).
//!
//! | operation                                  | `TaskType`             |
//! |--------------------------------------------|------------------------|
//! | create (`CreateDBInstance`, …)             | `CreateIns`            |
//! | delete (`DeleteDBInstance`)                | `DeleteIns`            |
//! | upgrade (`UpgradeDBInstanceKernelVersion`) | `KernelVersionUpgrade` |
//! | restart (`RestartDBInstance`, `RestartNode`) | `RestartIns`         |
//! | switch (`SwitchDBInstanceHA`)              | `HaSwitch`             |
//!
//! `Status`: `Scheduled` (recorded, not picked up yet), `Waiting` (a `SwitchMode=1` operation waiting for
//! its maintenance window), `Running`, `Succeed`, `Failed`. `Progress` (0–100) counts the processes the
//! operation has finished among those it has to touch (a process in flight counts half; stopping and
//! restoring the balancer count one each), so it moves as the rolling operation does; it is 100 once the
//! operation succeeded and stays where it was when it failed. A create or delete is 0, 50 while it runs,
//! 100 when done. `StartTime` is when the operation was recorded, `EndTime` when it finished (absent
//! before), both wall clock; `RemainTime` is 0 once finished and otherwise an estimate from the elapsed
//! time and the progress (absent before any progress). `TaskDetail` is a JSON object: the vendor `Action`
//! that recorded it, its `NodeId` / `RoleId` / `TargetKernelVersion` where they apply, and its `Failure`.
//! `CurrentStepName` is the workflow's phase. `ActionInfo` lists no actions: ddsd's tasks cannot be
//! cancelled, paused or retried from the task center.
//!
//! Filters (all optional but the time range): `FromStartTime` / `ToStartTime` (required,
//! `yyyy-MM-ddTHH:mm:ssZ`, on the task's `StartTime`), `InstanceId` and `TaskId` (comma-separated, at most
//! 30 each), `Status` and `TaskType` (comma-separated values of the lists above and the vendor's other
//! types, which ddsd never produces), `FromExecTime` / `ToExecTime` (seconds the task has run, 0 = no
//! bound), `RegionId`, `ResourceGroupId`, `InstanceType` (`Instance` only). Newest first; `PageNumber`
//! (≥ 1), `PageSize` (10–100, default 10). A deleted instance's operations go with it, so its tasks
//! disappear once the delete has finished. At most [`MAX_TASKS`] tasks in the range are read.

use std::collections::BTreeMap;
use std::sync::Arc;

use dds_engine::model::Instance;
use dds_engine::workflow::{MemberStep, Phase, RestartScope, RollingKind, RollingOperation};
use serde::Serialize;
use serde_json::{json, Value};

use super::errors::{from_store, ApiError};
use super::operations::{pascal_keys, recorded_by, rolling};
use super::params::{clip, optional, parse_u32, parse_u32_in, utc_ms, wall_now_ms, wall_time};
use super::{Call, Context, FromParams, Params};
use crate::server::runtime::OperationState;
use crate::server::store::{Operation, OperationKind, OperationStatus};

/// Tasks read per request (newest first in the time range).
pub const MAX_TASKS: u32 = 10_000;
/// Most ids in `InstanceId` / `TaskId`.
const MAX_IDS: usize = 30;

pub const STATUSES: [&str; 7] = [
    "Scheduled",
    "Running",
    "Succeed",
    "Failed",
    "Cancelling",
    "Canceled",
    "Waiting",
];

/// The vendor's task types (the SDK model's list); ddsd produces five of them.
pub const TASK_TYPES: [&str; 23] = [
    "CreateIns",
    "DeleteIns",
    "ChangeVariable",
    "ModifyInsConfig",
    "RestartIns",
    "HaSwitch",
    "CloneIns",
    "KernelVersionUpgrade",
    "ProxyVersionUpgrade",
    "ModifyAccount",
    "ModifyInsSpec",
    "CreateReadIns",
    "StartIns",
    "StopIns",
    "ModifyNetwork",
    "LockIns",
    "UnlockIns",
    "DiskOnlineExpansion",
    "StorageOnlineExpansion",
    "AddInsNode",
    "DeleteInsNode",
    "ManualBackupIns",
    "ModifyInsStorageType",
];

/// The filters both actions take.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskFilter {
    pub from_ms: u64,
    pub to_ms: u64,
    pub instance_ids: Vec<String>,
    pub task_ids: Vec<String>,
    pub statuses: Vec<String>,
    pub task_types: Vec<String>,
    pub min_exec_s: u64,
    pub max_exec_s: u64,
    pub region_id: Option<String>,
    pub resource_group_id: Option<String>,
}

/// A comma-separated list: trimmed, non-empty entries, at most `max`, each of `allowed` when given.
fn list(
    params: &Params,
    name: &str,
    max: usize,
    allowed: Option<&[&str]>,
) -> Result<Vec<String>, ApiError> {
    let Some(v) = optional(params, name) else {
        return Ok(Vec::new());
    };
    let mut out: Vec<String> = Vec::new();
    for item in v.split(',').map(str::trim) {
        let bad = item.is_empty()
            || item.len() > 64
            || item.chars().any(char::is_control)
            || allowed.is_some_and(|a| !a.contains(&item));
        if bad {
            let hint = match allowed {
                Some(a) => format!("Valid values are {}", a.join(", ")),
                None => "A comma-separated list of ids".to_string(),
            };
            return Err(ApiError::invalid_parameter(
                name,
                format!("{hint}; got \"{}\".", clip(item)),
            ));
        }
        if !out.iter().any(|x| x == item) {
            out.push(item.to_string());
        }
    }
    if out.len() > max {
        return Err(ApiError::invalid_parameter(
            name,
            format!("At most {max} values."),
        ));
    }
    Ok(out)
}

impl FromParams for TaskFilter {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        let from_ms = utc_ms(params, "FromStartTime")?;
        let to_ms = utc_ms(params, "ToStartTime")?;
        if to_ms < from_ms {
            return Err(ApiError::invalid_parameter(
                "ToStartTime",
                "ToStartTime must not be earlier than FromStartTime.",
            ));
        }
        let secs = |name: &str| -> Result<u64, ApiError> {
            Ok(optional(params, name)
                .map(|v| parse_u32(name, v, u32::MAX))
                .transpose()?
                .map_or(0, u64::from))
        };
        if let Some(t) = optional(params, "InstanceType") {
            if t != "Instance" {
                return Err(ApiError::invalid_parameter(
                    "InstanceType",
                    format!("The only value is Instance, got \"{}\".", clip(t)),
                ));
            }
        }
        Ok(Self {
            from_ms,
            to_ms: to_ms.saturating_add(999),
            instance_ids: list(params, "InstanceId", MAX_IDS, None)?,
            task_ids: list(params, "TaskId", MAX_IDS, None)?,
            statuses: list(params, "Status", STATUSES.len(), Some(&STATUSES))?,
            task_types: list(params, "TaskType", TASK_TYPES.len(), Some(&TASK_TYPES))?,
            min_exec_s: secs("FromExecTime")?,
            max_exec_s: secs("ToExecTime")?,
            region_id: optional(params, "RegionId").map(str::to_string),
            resource_group_id: optional(params, "ResourceGroupId").map(str::to_string),
        })
    }
}

/// `DescribeHistoryTasks`: the filters and a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryTasksRequest {
    pub filter: TaskFilter,
    pub page_number: u32,
    pub page_size: u32,
}

impl FromParams for HistoryTasksRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        let filter = TaskFilter::from_params(params)?;
        Ok(Self {
            filter,
            page_number: optional(params, "PageNumber")
                .map(|v| parse_u32_in("PageNumber", v, 1, i32::MAX as u32))
                .transpose()?
                .unwrap_or(1),
            page_size: optional(params, "PageSize")
                .map(|v| parse_u32_in("PageSize", v, 10, 100))
                .transpose()?
                .unwrap_or(10),
        })
    }
}

/// One `Items[]` entry of `DescribeHistoryTasks`, in the SDK model's fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskItem {
    pub action_info: String,
    pub caller_source: String,
    pub current_step_name: String,
    pub db_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    pub instance_id: String,
    pub instance_name: String,
    pub instance_type: String,
    pub product: String,
    pub progress: f64,
    pub region_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remain_time: Option<u64>,
    pub start_time: String,
    pub status: String,
    pub task_detail: String,
    pub task_id: String,
    pub task_type: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HistoryTasksResponse {
    pub items: Vec<TaskItem>,
    pub page_number: u32,
    pub page_size: u32,
    pub total_count: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StatItem {
    pub status: String,
    pub total_count: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HistoryTasksStatResponse {
    pub items: Vec<StatItem>,
}

pub fn task_type(kind: OperationKind) -> &'static str {
    match kind {
        OperationKind::Create => "CreateIns",
        OperationKind::Delete => "DeleteIns",
        OperationKind::Upgrade => "KernelVersionUpgrade",
        OperationKind::Restart => "RestartIns",
        OperationKind::Switch => "HaSwitch",
        OperationKind::EngineUpgrade => "DbVersionUpgrade",
        OperationKind::ClassChange => "ModifyInsSpec",
    }
}

fn waits_for_window(r: &RollingOperation) -> bool {
    r.window.is_some() && r.phase == Phase::Preflight
}

fn task_status(op: &Operation, r: Option<&RollingOperation>) -> &'static str {
    match op.status {
        OperationStatus::Pending | OperationStatus::Running if r.is_some_and(waits_for_window) => {
            "Waiting"
        }
        OperationStatus::Pending => "Scheduled",
        OperationStatus::Running => "Running",
        OperationStatus::Succeeded => "Succeed",
        OperationStatus::Failed => "Failed",
    }
}

/// The share of a rolling operation's work done, 0–100 (see the module doc).
pub fn rolling_progress(r: &RollingOperation) -> f64 {
    let mut total = 0.0_f64;
    let mut done = 0.0_f64;
    let procs = r
        .replica_sets
        .iter()
        .filter(|rs| rs.status != dds_engine::workflow::operation::RsStatus::OutOfScope)
        .flat_map(|rs| rs.procs.iter())
        .chain(r.mongos.iter().filter(|m| m.in_scope).map(|m| &m.proc));
    for p in procs {
        match &p.step {
            MemberStep::Skipped => {}
            MemberStep::Done | MemberStep::Failed => {
                total += 1.0;
                done += 1.0;
            }
            s if s.in_flight() => {
                total += 1.0;
                done += 0.5;
            }
            _ => total += 1.0,
        }
    }
    if r.balancer.recorded.is_some() {
        total += 2.0;
        if r.balancer.stop_acked {
            done += 1.0;
        }
        if r.balancer.restored.is_some() {
            done += 1.0;
        }
    }
    if r.is_finished() && r.failure.is_none() {
        return 100.0;
    }
    if total == 0.0 {
        return 0.0;
    }
    // Whole percent, never 100 before the end.
    (100.0 * done / total).floor().min(99.0)
}

fn phase_name(p: &Phase) -> &'static str {
    match p {
        Phase::Preflight => "preflight",
        Phase::StoppingBalancer { .. } => "stop_balancer",
        Phase::ReplicaSets => "replica_sets",
        Phase::Mongos => "mongos",
        Phase::RestoringBalancer { .. } => "restore_balancer",
        Phase::SettingFcv { .. } => "set_feature_compatibility_version",
        Phase::Finished => "finished",
    }
}

/// An operation as a task of `instance`.
fn item(op: &Operation, instance: &Instance, now: u64) -> TaskItem {
    let r = rolling(op);
    let status = task_status(op, r.as_ref());
    let finished = op.status.is_finished();
    let (progress, step) = match &r {
        Some(r) => (rolling_progress(r), phase_name(&r.phase).to_string()),
        None => {
            let progress = match op.status {
                OperationStatus::Pending => 0.0,
                OperationStatus::Running => 50.0,
                OperationStatus::Succeeded => 100.0,
                OperationStatus::Failed => 0.0,
            };
            let phase = OperationState::from_json(op.kind, op.state.clone())
                .ok()
                .and_then(|s| s.progress()["phase"].as_str().map(str::to_string))
                .unwrap_or_default();
            (progress, phase)
        }
    };
    let elapsed_s = now.saturating_sub(op.created_ms) / 1_000;
    let remain_time = if finished {
        Some(0)
    } else if progress > 0.0 {
        Some((elapsed_s as f64 * (100.0 - progress) / progress).ceil() as u64)
    } else {
        None
    };
    let mut detail = serde_json::Map::new();
    detail.insert("Action".into(), json!(recorded_by(op)));
    if let Some(r) = &r {
        match &r.kind {
            RollingKind::Upgrade { target_kernel } => {
                detail.insert("TargetKernelVersion".into(), json!(target_kernel));
            }
            RollingKind::EngineUpgrade {
                target_kernel,
                target_fcv,
            } => {
                detail.insert("TargetKernelVersion".into(), json!(target_kernel));
                detail.insert("TargetEngineVersion".into(), json!(target_fcv));
            }
            RollingKind::Restart {
                scope: RestartScope::Node { node_id },
            }
            | RollingKind::Switch {
                scope: RestartScope::Node { node_id },
                ..
            }
            | RollingKind::ClassChange {
                scope: RestartScope::Node { node_id },
                ..
            } => {
                detail.insert("NodeId".into(), json!(node_id));
            }
            RollingKind::Restart {
                scope: RestartScope::Member { node_id, role_id },
            } => {
                detail.insert("NodeId".into(), json!(node_id));
                detail.insert("RoleId".into(), json!(role_id));
            }
            _ => {}
        }
        if let Some(f) = &r.failure {
            detail.insert(
                "Failure".into(),
                pascal_keys(serde_json::to_value(f).unwrap_or(Value::Null)),
            );
        }
    }
    TaskItem {
        action_info: json!({"steps": []}).to_string(),
        caller_source: "User".into(),
        current_step_name: step,
        db_type: "mongodb".into(),
        end_time: op.finished_ms.map(wall_time),
        instance_id: op.instance_id.clone(),
        instance_name: instance.description.clone(),
        instance_type: "Instance".into(),
        product: "dds".into(),
        progress,
        region_id: instance.region_id.clone(),
        remain_time,
        start_time: wall_time(op.created_ms),
        status: status.into(),
        task_detail: Value::Object(detail).to_string(),
        task_id: op.id.clone(),
        task_type: task_type(op.kind).into(),
    }
}

/// Every task matching the filter, newest first.
async fn matching(ctx: &Context, f: &TaskFilter) -> Result<Vec<TaskItem>, ApiError> {
    let ops = ctx
        .store
        .operations_created_between(f.from_ms, f.to_ms, MAX_TASKS)
        .await
        .map_err(from_store)?;
    let now = wall_now_ms();
    let mut instances: BTreeMap<String, Option<Instance>> = BTreeMap::new();
    let mut out = Vec::new();
    for op in &ops {
        if !f.instance_ids.is_empty() && !f.instance_ids.contains(&op.instance_id) {
            continue;
        }
        if !f.task_ids.is_empty() && !f.task_ids.contains(&op.id) {
            continue;
        }
        if !f.task_types.is_empty() && !f.task_types.iter().any(|t| t == task_type(op.kind)) {
            continue;
        }
        let ran_s = op.finished_ms.unwrap_or(now).saturating_sub(op.created_ms) / 1_000;
        if (f.min_exec_s > 0 && ran_s < f.min_exec_s) || (f.max_exec_s > 0 && ran_s > f.max_exec_s)
        {
            continue;
        }
        if !instances.contains_key(&op.instance_id) {
            let inst = ctx
                .store
                .get_instance(&op.instance_id)
                .await
                .map_err(from_store)?;
            instances.insert(op.instance_id.clone(), inst);
        }
        let Some(Some(instance)) = instances.get(&op.instance_id) else {
            continue;
        };
        if f.region_id
            .as_ref()
            .is_some_and(|r| *r != instance.region_id)
            || f.resource_group_id
                .as_ref()
                .is_some_and(|g| *g != instance.resource_group_id)
        {
            continue;
        }
        let it = item(op, instance, now);
        if !f.statuses.is_empty() && !f.statuses.contains(&it.status) {
            continue;
        }
        out.push(it);
    }
    Ok(out)
}

/// `DescribeHistoryTasks`.
pub async fn describe_history_tasks(
    ctx: Arc<Context>,
    req: HistoryTasksRequest,
    _call: Call,
) -> Result<HistoryTasksResponse, ApiError> {
    let all = matching(&ctx, &req.filter).await?;
    let total_count = all.len() as u64;
    let skip = (u64::from(req.page_number) - 1).saturating_mul(u64::from(req.page_size));
    let items = all
        .into_iter()
        .skip(usize::try_from(skip).unwrap_or(usize::MAX))
        .take(req.page_size as usize)
        .collect();
    Ok(HistoryTasksResponse {
        items,
        page_number: req.page_number,
        page_size: req.page_size,
        total_count,
    })
}

/// `DescribeHistoryTasksStat`: how many matching tasks are in each status (statuses with none left out).
pub async fn describe_history_tasks_stat(
    ctx: Arc<Context>,
    req: TaskFilter,
    _call: Call,
) -> Result<HistoryTasksStatResponse, ApiError> {
    let all = matching(&ctx, &req).await?;
    let items = STATUSES
        .iter()
        .map(|s| StatItem {
            status: s.to_string(),
            total_count: all.iter().filter(|t| t.status == *s).count() as u64,
        })
        .filter(|i| i.total_count > 0)
        .collect();
    Ok(HistoryTasksStatResponse { items })
}

#[cfg(test)]
mod tests {
    /// Request parameters, expected code and HTTP status.
    type Refusal<'a> = (Vec<(&'a str, &'a str)>, &'a str, u16);

    use super::*;
    use crate::server::actions::upgrade::test_support::{env, kernels, req, Env};
    use dds_engine::build::fixtures;

    const FROM: (&str, &str) = ("FromStartTime", "2000-01-01T00:00:00Z");
    const TO: (&str, &str) = ("ToStartTime", "2099-12-31T23:59:59Z");

    async fn tasks(t: &Env, extra: &[(&str, &str)]) -> Result<Value, ApiError> {
        let mut params = vec![FROM, TO];
        params.extend_from_slice(extra);
        crate::server::actions::call(t.ctx.clone(), req("DescribeHistoryTasks", &params)).await
    }

    #[tokio::test]
    async fn operations_are_tasks_whose_progress_moves() {
        let t = env(100.0).await;
        let (_, older) = kernels(&t, "4.4");
        let id = t
            .running_instance("dds-tc1", fixtures::sharded(2, 2, &older), "4.4")
            .await;
        let v = tasks(&t, &[]).await.unwrap();
        assert_eq!(v["TotalCount"], 1, "{v}");
        let create = &v["Items"][0];
        assert_eq!(
            (&create["TaskType"], &create["Status"], &create["Progress"]),
            (&json!("CreateIns"), &json!("Succeed"), &json!(100.0))
        );
        assert_eq!(create["RemainTime"], 0);
        assert_eq!(create["InstanceId"], id.as_str());
        assert_eq!(create["Product"], "dds");

        crate::server::actions::call(
            t.ctx.clone(),
            req("UpgradeDBInstanceKernelVersion", &[("DBInstanceId", &id)]),
        )
        .await
        .unwrap();
        let mut seen = Vec::new();
        loop {
            let v = tasks(&t, &[("TaskType", "KernelVersionUpgrade")])
                .await
                .unwrap();
            assert_eq!(v["TotalCount"], 1);
            let it = &v["Items"][0];
            let p = it["Progress"].as_f64().unwrap();
            if seen.last() != Some(&p) {
                seen.push(p);
            }
            if it["Status"] == "Succeed" {
                assert!(it["EndTime"].is_string());
                let detail: Value =
                    serde_json::from_str(it["TaskDetail"].as_str().unwrap()).unwrap();
                assert_eq!(detail["Action"], "UpgradeDBInstanceKernelVersion");
                break;
            }
            assert!(
                ["Scheduled", "Running"].contains(&it["Status"].as_str().unwrap()),
                "{it}"
            );
            assert!(it.get("EndTime").is_none());
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(seen.last(), Some(&100.0));
        assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
        assert!(
            seen.iter().filter(|p| **p > 0.0 && **p < 100.0).count() >= 3,
            "progress moves: {seen:?}"
        );

        // Filters, paging and the statistics.
        let v = tasks(&t, &[("Status", "Succeed,Failed"), ("InstanceId", &id)])
            .await
            .unwrap();
        assert_eq!(v["TotalCount"], 2);
        let newest = v["Items"][0]["TaskId"].as_str().unwrap().to_string();
        assert_eq!(v["Items"][0]["TaskType"], "KernelVersionUpgrade");
        let v = tasks(&t, &[("TaskId", &newest)]).await.unwrap();
        assert_eq!(v["TotalCount"], 1);
        for (params, n) in [
            (vec![("Status", "Running")], 0),
            (vec![("InstanceId", "dds-other")], 0),
            (vec![("RegionId", "cn-beijing")], 0),
            (vec![("ToExecTime", "1"), ("FromExecTime", "100000")], 0),
            (vec![("TaskType", "HaSwitch,CreateIns")], 1),
        ] {
            let v = tasks(&t, &params).await.unwrap();
            assert_eq!(v["TotalCount"], n, "{params:?}");
        }
        let v = tasks(&t, &[("PageNumber", "2"), ("PageSize", "10")])
            .await
            .unwrap();
        assert_eq!(
            (
                v["TotalCount"].as_u64(),
                v["Items"].as_array().map(Vec::len)
            ),
            (Some(2), Some(0))
        );
        let v = crate::server::actions::call(
            t.ctx.clone(),
            req(
                "DescribeHistoryTasks",
                &[
                    ("FromStartTime", "2000-01-01T00:00:00Z"),
                    ("ToStartTime", "2000-01-02T00:00:00Z"),
                ],
            ),
        )
        .await
        .unwrap();
        assert_eq!(v["TotalCount"], 0);
        let stat = crate::server::actions::call(
            t.ctx.clone(),
            req("DescribeHistoryTasksStat", &[FROM, TO]),
        )
        .await
        .unwrap();
        assert_eq!(
            stat["Items"],
            json!([{"Status": "Succeed", "TotalCount": 2}])
        );
    }

    #[tokio::test]
    async fn refusals_name_the_parameter() {
        let t = env(100.0).await;
        let cases: Vec<Refusal> = vec![
            (vec![TO], "MissingFromStartTime", 400),
            (vec![FROM], "MissingToStartTime", 400),
            (vec![("FromStartTime", "now"), TO], "InvalidParameter", 400),
            (
                vec![FROM, ("ToStartTime", "1999-01-01T00:00:00Z")],
                "InvalidParameter",
                400,
            ),
            (vec![FROM, TO, ("PageSize", "5")], "InvalidParameter", 400),
            (vec![FROM, TO, ("PageNumber", "0")], "InvalidParameter", 400),
            (vec![FROM, TO, ("Status", "Done")], "InvalidParameter", 400),
            (
                vec![FROM, TO, ("TaskType", "Upgrade")],
                "InvalidParameter",
                400,
            ),
            (
                vec![FROM, TO, ("InstanceType", "Cluster")],
                "InvalidParameter",
                400,
            ),
            (
                vec![FROM, TO, ("FromExecTime", "-1")],
                "InvalidParameter",
                400,
            ),
        ];
        for (params, code, status) in cases {
            let e =
                crate::server::actions::call(t.ctx.clone(), req("DescribeHistoryTasks", &params))
                    .await
                    .unwrap_err();
            assert_eq!((e.code(), e.status()), (code, status), "{params:?}");
        }
        let many: Vec<String> = (0..31).map(|i| format!("dds-{i}")).collect();
        let many = many.join(",");
        let e = crate::server::actions::call(
            t.ctx.clone(),
            req(
                "DescribeHistoryTasksStat",
                &[FROM, TO, ("InstanceId", &many)],
            ),
        )
        .await
        .unwrap_err();
        assert_eq!((e.code(), e.status()), ("InvalidParameter", 400));
    }
}
