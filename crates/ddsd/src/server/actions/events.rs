//! Scheduled O&M events — how the vendor rolls a new minor version out: `DdsdPublishKernelVersion`
//! with `Rollout=Scheduled` records one minor-version-upgrade event (`rds_apsaradb_upgrade`) for
//! every instance of the engine version on an older kernel, switching at the instance's next
//! maintenance window; the [`Scheduler`] starts each event's upgrade at its switch time through
//! the same planning and acceptance as `UpgradeDBInstanceKernelVersion`, and records how it ended.
//!
//! The actions: `DescribeActiveOperationTasks` / `DescribeActiveOperationTask` (the events),
//! `DescribeActiveOperationTaskCount` / `DescribeActiveOperationTaskType` /
//! `DescribeActiveOperationTaskRegion` (counts),
//! `ModifyActiveOperationTasks` (move the switch time up to the event's deadline, or start now),
//! `CancelActiveOperationTasks`, `DescribeActiveOperationMaintenanceConfig` /
//! `ModifyActiveOperationMaintenanceConfig` (the account's O&M cycle: which days events switch on,
//! and at what time). Events live in the store and survive restarts; an instance that reaches the
//! event's kernel some other way (a manual upgrade) closes its event as succeeded.

use std::sync::Arc;
use std::time::Duration;

use dds_engine::model::{Instance, MaintainWindow, UtcTimeOfDay};
use serde::{Deserialize, Serialize};

use super::errors::{from_store, ApiError};
use super::params::{clip, optional, parse_u32_in, parse_utc_ms, required, wall_now_ms, wall_time};
use super::rolling::{accept_operation, load_instance, UpgradeRequest};
use super::{Call, Context, Empty, FromParams, Params};
use crate::server::store::events::{
    ActiveTask, ActiveTaskFilter, ActiveTaskPatch, NewActiveTask, TaskRefusal, MAX_NEW_TASKS,
    TASK_CANCELLED, TASK_FAILED, TASK_RUNNING, TASK_SUCCEEDED, TASK_WAITING,
};
use crate::server::store::{InstanceFilter, OperationStatus, Page};

/// The vendor's task type of a minor-version upgrade, the only kind ddsd schedules.
pub const MINOR_UPGRADE: &str = "rds_apsaradb_upgrade";
/// Task types the vendor documents (`TaskType` filters); `all` matches every one.
const TASK_TYPES: &[&str] = &[
    "rds_apsaradb_ha",
    "rds_apsaradb_transfer",
    MINOR_UPGRADE,
    "rds_apsaradb_maxscale",
    "all",
];
/// How long after its first switch time an event may be moved (`Deadline`).
pub const DEADLINE_AFTER_SWITCH_MS: u64 = 14 * DAY_MS;
const DAY_MS: u64 = 86_400_000;
/// Most events one listing reads (the scheduler's and the handlers' bound).
const MAX_LISTED: u32 = 10_000;
/// Most `Ids` in one modify or cancel.
const MAX_IDS: usize = 100;
/// A running event with no operation after this long was interrupted between its two writes (a
/// crash): it waits again.
const ORPHAN_AFTER_MS: u64 = 60_000;
/// How often the scheduler looks at the events: a switch time is honoured within this.
pub const TICK: Duration = Duration::from_secs(1);
const CONFIG_KEY: &str = "active_operation/maintenance_config";

/// The event's parameters (`TaskParams`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TaskParams {
    target_kernel_version: String,
}

// ---------------------------------------------------------------------------------------------
// The account's O&M cycle

/// `ModifyActiveOperationMaintenanceConfig`'s values, kept as one setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceConfig {
    /// `Week` or `Month`.
    pub cycle_type: String,
    /// Days of the week (1 = Monday … 7 = Sunday) or of the month (1–28).
    pub cycle_time: Vec<u8>,
    pub start: UtcTimeOfDay,
    pub end: UtcTimeOfDay,
    /// 1 in effect, 2 not.
    pub status: u8,
    pub created_ms: u64,
    pub modified_ms: u64,
}

impl MaintenanceConfig {
    fn allows(&self, day_start_ms: u64) -> bool {
        let Ok(t) = time::OffsetDateTime::from_unix_timestamp(
            i64::try_from(day_start_ms / 1000).unwrap_or(0),
        ) else {
            return false;
        };
        let day = if self.cycle_type == "Week" {
            t.weekday().number_from_monday()
        } else {
            t.day()
        };
        self.cycle_time.contains(&day)
    }
}

/// The events matching `filter`, by id (at most [`MAX_LISTED`]).
async fn listed(ctx: &Context, filter: ActiveTaskFilter) -> Result<Vec<ActiveTask>, ApiError> {
    ctx.store
        .list_active_tasks(filter, MAX_LISTED)
        .await
        .map_err(from_store)
}

/// The events in one of `statuses`.
fn in_status(statuses: Vec<u8>) -> ActiveTaskFilter {
    ActiveTaskFilter {
        statuses,
        ..ActiveTaskFilter::default()
    }
}

async fn load_config(ctx: &Context) -> Result<Option<MaintenanceConfig>, ApiError> {
    let raw = ctx
        .store
        .get_setting(CONFIG_KEY)
        .await
        .map_err(from_store)?;
    Ok(raw.and_then(|s| serde_json::from_str(&s).ok()))
}

/// When an event created at `now_ms` switches: the next opening of the O&M window strictly after
/// now — the account's cycle (its days, its start time) when one is in effect, else the instance's
/// own maintenance window, any day.
pub fn next_switch_ms(
    now_ms: u64,
    window: MaintainWindow,
    config: Option<&MaintenanceConfig>,
) -> u64 {
    let today = now_ms - now_ms % DAY_MS;
    match config.filter(|c| c.status == 1) {
        Some(c) => {
            let start = u64::from(c.start.minutes()) * 60_000;
            // A month-day cycle allows at least one day in every month: 62 days always reach it.
            (0..=62)
                .map(|d| today + d * DAY_MS)
                .find(|&day| day + start > now_ms && c.allows(day))
                .map_or(today + DAY_MS + start, |day| day + start)
        }
        None => {
            let start = u64::from(window.start.minutes()) * 60_000;
            if today + start > now_ms {
                today + start
            } else {
                today + DAY_MS + start
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Publishing as a scheduled rollout

/// The minor-version-upgrade events a kernel about to be published brings: one per replica set or
/// sharded cluster of the engine version not on it yet (the new kernel is the newest, so that is every instance not
/// already on it), switching at `switch_ms` or else at the instance's next window. Refused before
/// anything is published when there are more than the store takes at once.
pub(crate) async fn plan_rollout(
    ctx: &Context,
    engine_version: &str,
    kernel_version: &str,
    switch_ms: Option<u64>,
) -> Result<Vec<NewActiveTask>, ApiError> {
    let now = wall_now_ms();
    let config = load_config(ctx).await?;
    let mut new = Vec::new();
    for inst in instances_of(ctx, engine_version).await? {
        // A standalone is not upgraded in place (`OperationDenied.DBInstanceType`): no event that
        // could only fail.
        if inst.is_standalone() || runs_at_least(ctx, &inst, kernel_version) {
            continue;
        }
        let switch =
            switch_ms.unwrap_or_else(|| next_switch_ms(now, inst.maintain_window, config.as_ref()));
        new.push(NewActiveTask {
            instance_id: inst.id.clone(),
            task_type: MINOR_UPGRADE.to_string(),
            switch_time_ms: switch,
            deadline_ms: switch.saturating_add(DEADLINE_AFTER_SWITCH_MS),
            params: serde_json::to_string(&TaskParams {
                target_kernel_version: kernel_version.to_string(),
            })
            .unwrap_or_default(),
        });
    }
    if new.len() > MAX_NEW_TASKS {
        return Err(ApiError::invalid_parameter(
            "Rollout",
            format!(
                "{} instances would get an event; a scheduled rollout covers at most {MAX_NEW_TASKS}.",
                new.len()
            ),
        ));
    }
    Ok(new)
}

/// Records the events [`plan_rollout`] planned, once the kernel is published; answers their ids.
pub(crate) async fn record_rollout(
    ctx: &Context,
    tasks: Vec<NewActiveTask>,
) -> Result<Vec<i64>, ApiError> {
    ctx.store.add_active_tasks(tasks).await.map_err(from_store)
}

async fn instances_of(ctx: &Context, engine_version: &str) -> Result<Vec<Instance>, ApiError> {
    let mut out = Vec::new();
    for instance_type in [
        dds_engine::model::DbInstanceType::Replicate,
        dds_engine::model::DbInstanceType::Sharding,
    ] {
        let mut number = 1;
        loop {
            let filter = InstanceFilter {
                instance_type,
                engine_version: Some(engine_version.to_string()),
                ..InstanceFilter::default()
            };
            let page = Page::new(number, 100).map_err(from_store)?;
            let got = ctx
                .store
                .list_instances(&filter, page)
                .await
                .map_err(from_store)?;
            let done = got.instances.len() < 100;
            out.extend(got.instances);
            if done || out.len() >= MAX_LISTED as usize {
                break;
            }
            number += 1;
        }
    }
    Ok(out)
}

/// Whether every process of `inst` runs `kernel` or a newer one of the catalog.
fn runs_at_least(ctx: &Context, inst: &Instance, kernel: &str) -> bool {
    let catalog = ctx.kernels.snapshot();
    let order = |k: &str| catalog.position(k).map(|(_, i)| i);
    let Some(target) = order(kernel) else {
        return false;
    };
    inst.current_kernel_version(order)
        .and_then(|k| order(&k))
        .is_some_and(|i| i >= target)
}

// ---------------------------------------------------------------------------------------------
// The scheduler

/// Starts due events and follows running ones, once per `tick`. Stops when dropped.
pub struct Scheduler {
    task: tokio::task::JoinHandle<()>,
}

impl Scheduler {
    pub fn spawn(ctx: Arc<Context>, tick: Duration) -> Self {
        let task = tokio::spawn(async move {
            let mut every = tokio::time::interval(tick);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                if let Err(e) = step(&ctx, wall_now_ms()).await {
                    tracing::warn!(error = %e.message(), "scheduled O&M events: a step failed; trying again");
                }
            }
        });
        Scheduler { task }
    }

    /// Stops between two store writes; what was written resumes on the next start.
    pub fn shutdown(self) {
        self.task.abort();
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One look at every unfinished event at `now_ms`.
pub(crate) async fn step(ctx: &Context, now_ms: u64) -> Result<(), ApiError> {
    let running = listed(ctx, in_status(vec![TASK_RUNNING])).await?;
    for t in running {
        follow(ctx, &t, now_ms).await?;
    }
    let waiting = listed(ctx, in_status(vec![TASK_WAITING])).await?;
    for t in waiting {
        start_if_due(ctx, &t, now_ms).await?;
    }
    Ok(())
}

async fn set(
    ctx: &Context,
    t: &ActiveTask,
    from: u8,
    patch: ActiveTaskPatch,
) -> Result<bool, ApiError> {
    Ok(ctx
        .store
        .modify_active_tasks(vec![t.id], vec![from], patch)
        .await
        .map_err(from_store)?
        .is_ok())
}

fn finish(status: u8, result: impl Into<String>) -> ActiveTaskPatch {
    ActiveTaskPatch {
        status: Some(status),
        result_info: Some(result.into()),
        ..ActiveTaskPatch::default()
    }
}

async fn follow(ctx: &Context, t: &ActiveTask, now_ms: u64) -> Result<(), ApiError> {
    let Some(op_id) = &t.operation_id else {
        if t.modified_ms.saturating_add(ORPHAN_AFTER_MS) <= now_ms {
            set(
                ctx,
                t,
                TASK_RUNNING,
                ActiveTaskPatch {
                    status: Some(TASK_WAITING),
                    ..ActiveTaskPatch::default()
                },
            )
            .await?;
        }
        return Ok(());
    };
    let op = ctx.store.get_operation(op_id).await.map_err(from_store)?;
    let patch = match op.map(|o| o.status) {
        Some(OperationStatus::Succeeded) => {
            finish(TASK_SUCCEEDED, format!("Upgraded by operation {op_id}."))
        }
        Some(OperationStatus::Failed) => finish(TASK_FAILED, format!("Operation {op_id} failed.")),
        None => finish(TASK_FAILED, format!("Operation {op_id} is gone.")),
        Some(_) => return Ok(()),
    };
    set(ctx, t, TASK_RUNNING, patch).await?;
    Ok(())
}

async fn start_if_due(ctx: &Context, t: &ActiveTask, now_ms: u64) -> Result<(), ApiError> {
    let target = serde_json::from_str::<TaskParams>(&t.params)
        .map(|p| p.target_kernel_version)
        .unwrap_or_default();
    let inst = match load_instance(ctx, &t.instance_id).await {
        Ok(i) => i,
        // Deleted meanwhile: the event went with it.
        Err(ApiError::InstanceNotFound) => return Ok(()),
        Err(e) => return Err(e),
    };
    if runs_at_least(ctx, &inst, &target) {
        set(
            ctx,
            t,
            TASK_WAITING,
            finish(
                TASK_SUCCEEDED,
                format!("The instance already runs {target} or newer."),
            ),
        )
        .await?;
        return Ok(());
    }
    if t.switch_time_ms > now_ms {
        return Ok(());
    }
    // Claimed first, so that a cancel racing this start either wins before it or is refused.
    let claim = ActiveTaskPatch {
        status: Some(TASK_RUNNING),
        start_time_ms: Some(now_ms),
        ..ActiveTaskPatch::default()
    };
    if !set(ctx, t, TASK_WAITING, claim).await? {
        return Ok(());
    }
    let req = UpgradeRequest {
        db_instance_id: t.instance_id.clone(),
        deferred: false,
    };
    let started = match req.plan(ctx).await {
        Ok((planned, _)) => accept_operation(ctx, planned, false).await,
        Err(e) => Err(e),
    };
    let claimed = ActiveTask {
        status: TASK_RUNNING,
        ..t.clone()
    };
    match started {
        Ok(op_id) => {
            tracing::info!(event = t.id, instance_id = %t.instance_id, operation_id = %op_id, "scheduled O&M event started its upgrade");
            set(
                ctx,
                &claimed,
                TASK_RUNNING,
                ActiveTaskPatch {
                    operation_id: Some(op_id),
                    ..ActiveTaskPatch::default()
                },
            )
            .await?;
        }
        // Busy: the event waits and tries again, until its deadline.
        Err(ApiError::OperationUnfinished { .. } | ApiError::StatusDenied)
            if now_ms < t.deadline_ms =>
        {
            set(
                ctx,
                &claimed,
                TASK_RUNNING,
                ActiveTaskPatch {
                    status: Some(TASK_WAITING),
                    ..ActiveTaskPatch::default()
                },
            )
            .await?;
        }
        Err(e) => {
            tracing::warn!(event = t.id, instance_id = %t.instance_id, code = %e.code(), "scheduled O&M event could not start its upgrade");
            set(
                ctx,
                &claimed,
                TASK_RUNNING,
                finish(TASK_FAILED, format!("{}: {}", e.code(), e.message())),
            )
            .await?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Requests

fn int_in(params: &Params, name: &str, allowed: &[i32], default: i32) -> Result<i32, ApiError> {
    match optional(params, name) {
        None => Ok(default),
        Some(v) => v
            .parse::<i32>()
            .ok()
            .filter(|n| allowed.contains(n))
            .ok_or_else(|| {
                ApiError::invalid_parameter(
                    name,
                    format!("Valid values are {allowed:?}, got \"{}\".", clip(v)),
                )
            }),
    }
}

fn task_type(params: &Params, required_here: bool) -> Result<Option<String>, ApiError> {
    let v = if required_here {
        Some(required(params, "TaskType")?)
    } else {
        optional(params, "TaskType")
    };
    match v {
        None | Some("all") => Ok(None),
        Some(t) if TASK_TYPES.contains(&t) => Ok(Some(t.to_string())),
        Some(t) => Err(ApiError::invalid_parameter(
            "TaskType",
            format!(
                "Valid values are {}, got \"{}\".",
                TASK_TYPES.join(", "),
                clip(t)
            ),
        )),
    }
}

fn page(params: &Params, default_size: u32) -> Result<(u32, u32), ApiError> {
    let number = optional(params, "PageNumber")
        .map(|v| parse_u32_in("PageNumber", v, 1, 1_000_000))
        .transpose()?
        .unwrap_or(1);
    let size = optional(params, "PageSize")
        .map(|v| parse_u32_in("PageSize", v, 1, 100))
        .transpose()?
        .unwrap_or(default_size);
    Ok((number, size))
}

/// `Region`: this endpoint's region or `all`; another region has no events here.
fn region_matches(ctx: &Context, params: &Params, required_here: bool) -> Result<bool, ApiError> {
    let v = if required_here {
        Some(required(params, "Region")?)
    } else {
        optional(params, "Region")
    };
    Ok(matches!(v, None | Some("all")) || v == Some(ctx.region.as_str()))
}

/// `DescribeActiveOperationTasks`.
#[derive(Debug, Clone)]
pub struct TasksRequest {
    params: Params,
}

impl FromParams for TasksRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        int_in(params, "Status", &[-1, 3, 4, 5, 6, 7], -1)?;
        int_in(params, "AllowCancel", &[-1, 0, 1], -1)?;
        int_in(params, "AllowChange", &[-1, 0, 1], -1)?;
        task_type(params, false)?;
        page(params, 30)?;
        if let Some(l) = optional(params, "ChangeLevel") {
            if !["all", "S0", "S1"].contains(&l) {
                return Err(ApiError::invalid_parameter(
                    "ChangeLevel",
                    format!("Valid values are all, S0, S1, got \"{}\".", clip(l)),
                ));
            }
        }
        if let Some(i) = optional(params, "InsName") {
            if i.len() > 64 {
                return Err(ApiError::invalid_parameter(
                    "InsName",
                    "At most 64 characters.",
                ));
            }
        }
        Ok(Self {
            params: params.clone(),
        })
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskItem {
    pub allow_cancel: String,
    pub allow_change: String,
    pub change_level: String,
    pub change_level_en: String,
    pub change_level_zh: String,
    pub created_time: String,
    #[serde(rename = "CurrentAVZ")]
    pub current_avz: String,
    pub db_type: String,
    pub db_version: String,
    pub deadline: String,
    pub id: i64,
    pub impact_en: String,
    pub impact_zh: String,
    pub ins_comment: String,
    pub ins_name: String,
    pub modified_time: String,
    pub prepare_interval: String,
    pub region: String,
    pub result_info: String,
    pub start_time: String,
    pub status: i32,
    pub sub_ins_names: Vec<String>,
    pub switch_time: String,
    pub task_params: String,
    pub task_type: String,
    pub task_type_en: String,
    pub task_type_zh: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TasksResponse {
    pub items: Vec<TaskItem>,
    pub page_number: u32,
    pub page_size: u32,
    pub total_record_count: u32,
}

fn item(ctx: &Context, t: &ActiveTask, inst: Option<&Instance>) -> TaskItem {
    let waiting = t.status == TASK_WAITING;
    let flag = |b: bool| if b { "1" } else { "0" }.to_string();
    TaskItem {
        allow_cancel: flag(waiting),
        allow_change: flag(waiting),
        change_level: "S1".into(),
        change_level_en: "System maintenance".into(),
        change_level_zh: "系统运维".into(),
        created_time: wall_time(t.created_ms),
        current_avz: inst.map(|i| i.zone_id.clone()).unwrap_or_default(),
        db_type: "mongodb".into(),
        db_version: inst.map(|i| i.engine_version.clone()).unwrap_or_default(),
        deadline: wall_time(t.deadline_ms),
        id: t.id,
        impact_en: "Each member restarts once and each replica set elects a new primary once; connections to a restarting member are closed.".into(),
        impact_zh: "每个节点重启一次，每个副本集切换一次主节点。".into(),
        ins_comment: inst.map(|i| i.description.clone()).unwrap_or_default(),
        ins_name: t.instance_id.clone(),
        modified_time: wall_time(t.modified_ms),
        // An event starts its rolling upgrade at the switch time itself: nothing is prepared before.
        prepare_interval: "00:00:00".into(),
        region: ctx.region.clone(),
        result_info: t.result_info.clone(),
        start_time: wall_time(t.start_time_ms.unwrap_or(t.switch_time_ms)),
        status: i32::from(t.status),
        sub_ins_names: Vec::new(),
        switch_time: wall_time(t.switch_time_ms),
        task_params: t.params.clone(),
        task_type: t.task_type.clone(),
        task_type_en: "Minor version upgrade".into(),
        task_type_zh: "小版本升级".into(),
    }
}

async fn with_instances(
    ctx: &Context,
    tasks: &[ActiveTask],
) -> Result<Vec<(ActiveTask, Option<Instance>)>, ApiError> {
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        let inst = ctx
            .store
            .get_instance(&t.instance_id)
            .await
            .map_err(from_store)?;
        out.push((t.clone(), inst));
    }
    Ok(out)
}

fn paged<T>(all: Vec<T>, number: u32, size: u32) -> Vec<T> {
    let skip = (number.saturating_sub(1) as usize).saturating_mul(size as usize);
    all.into_iter().skip(skip).take(size as usize).collect()
}

/// `DescribeActiveOperationTasks`: every event matching the filters, newest first.
pub async fn describe_active_operation_tasks(
    ctx: Arc<Context>,
    req: TasksRequest,
    _call: Call,
) -> Result<TasksResponse, ApiError> {
    let p = &req.params;
    let (number, size) = page(p, 30)?;
    let status = int_in(p, "Status", &[-1, 3, 4, 5, 6, 7], -1)?;
    let allow_cancel = int_in(p, "AllowCancel", &[-1, 0, 1], -1)?;
    let allow_change = int_in(p, "AllowChange", &[-1, 0, 1], -1)?;
    let level = optional(p, "ChangeLevel").unwrap_or("all");
    let db_type = optional(p, "DbType").unwrap_or("all");
    let filter = ActiveTaskFilter {
        instance_id: optional(p, "InsName").map(str::to_string),
        statuses: if status < 0 {
            vec![]
        } else {
            vec![status as u8]
        },
        task_type: task_type(p, false)?,
        due_by_ms: None,
    };
    let mut tasks = if region_matches(&ctx, p, false)?
        && level != "S0"
        && (db_type == "all" || db_type.eq_ignore_ascii_case("mongodb"))
    {
        listed(&ctx, filter).await?
    } else {
        Vec::new()
    };
    let waiting = |t: &ActiveTask| i32::from(t.status == TASK_WAITING);
    tasks.retain(|t| {
        (allow_cancel < 0 || waiting(t) == allow_cancel)
            && (allow_change < 0 || waiting(t) == allow_change)
    });
    tasks.reverse();
    let total = u32::try_from(tasks.len()).unwrap_or(u32::MAX);
    let page_tasks = paged(tasks, number, size);
    let items = with_instances(&ctx, &page_tasks)
        .await?
        .iter()
        .map(|(t, i)| item(&ctx, t, i.as_ref()))
        .collect();
    Ok(TasksResponse {
        items,
        page_number: number,
        page_size: size,
        total_record_count: total,
    })
}

/// `DescribeActiveOperationTask`: `Region` and `TaskType` (`all` both, or this region and a type);
/// `IsHistory=0` the waiting and running events, `1` the finished ones.
#[derive(Debug, Clone)]
pub struct TaskRequest {
    region: String,
    task_type: Option<String>,
    history: bool,
    page_number: u32,
    page_size: u32,
}

impl FromParams for TaskRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        let region = required(params, "Region")?.to_string();
        let task_type = task_type(params, true)?;
        let history = int_in(params, "IsHistory", &[0, 1], 0)? == 1;
        let (page_number, page_size) = page(params, 30)?;
        Ok(Self {
            region,
            task_type,
            history,
            page_number,
            page_size,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskBrief {
    pub created_time: String,
    pub db_type: String,
    pub deadline: String,
    pub id: i64,
    pub ins_name: String,
    pub modified_time: String,
    pub prepare_interval: String,
    pub region: String,
    pub result_info: String,
    pub start_time: String,
    pub status: i32,
    pub switch_time: String,
    pub task_params: String,
    pub task_type: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskResponse {
    pub items: Vec<TaskBrief>,
    pub page_number: u32,
    pub page_size: u32,
    pub total_record_count: u32,
}

fn statuses(history: bool) -> Vec<u8> {
    if history {
        vec![TASK_SUCCEEDED, TASK_FAILED, TASK_CANCELLED]
    } else {
        vec![TASK_WAITING, TASK_RUNNING]
    }
}

/// `DescribeActiveOperationTask`.
pub async fn describe_active_operation_task(
    ctx: Arc<Context>,
    req: TaskRequest,
    _call: Call,
) -> Result<TaskResponse, ApiError> {
    let mut tasks = if req.region == "all" || req.region == ctx.region {
        listed(
            &ctx,
            ActiveTaskFilter {
                statuses: statuses(req.history),
                task_type: req.task_type.clone(),
                ..ActiveTaskFilter::default()
            },
        )
        .await?
    } else {
        Vec::new()
    };
    tasks.reverse();
    let total = u32::try_from(tasks.len()).unwrap_or(u32::MAX);
    let items = paged(tasks, req.page_number, req.page_size)
        .iter()
        .map(|t| {
            let i = item(&ctx, t, None);
            TaskBrief {
                created_time: i.created_time,
                db_type: i.db_type,
                deadline: i.deadline,
                id: i.id,
                ins_name: i.ins_name,
                modified_time: i.modified_time,
                prepare_interval: i.prepare_interval,
                region: i.region,
                result_info: i.result_info,
                start_time: i.start_time,
                status: i.status,
                switch_time: i.switch_time,
                task_params: i.task_params,
                task_type: i.task_type,
            }
        })
        .collect();
    Ok(TaskResponse {
        items,
        page_number: req.page_number,
        page_size: req.page_size,
        total_record_count: total,
    })
}

/// `DescribeActiveOperationTaskCount` (no parameters of its own).
#[derive(Debug, Clone)]
pub struct CountRequest;

impl FromParams for CountRequest {
    fn from_params(_params: &Params) -> Result<Self, ApiError> {
        Ok(Self)
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CountResponse {
    /// ddsd never asks a console to pop a notice up.
    pub need_pop: i32,
    pub task_count: i32,
}

/// `DescribeActiveOperationTaskCount`: the waiting events.
pub async fn describe_active_operation_task_count(
    ctx: Arc<Context>,
    _req: CountRequest,
    _call: Call,
) -> Result<CountResponse, ApiError> {
    let n = listed(&ctx, in_status(vec![TASK_WAITING])).await?.len();
    Ok(CountResponse {
        need_pop: 0,
        task_count: i32::try_from(n).unwrap_or(i32::MAX),
    })
}

/// `DescribeActiveOperationTaskType`: `IsHistory` as for `DescribeActiveOperationTask`.
#[derive(Debug, Clone)]
pub struct TypeRequest {
    history: bool,
}

impl FromParams for TypeRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        Ok(Self {
            history: int_in(params, "IsHistory", &[0, 1], 0)? == 1,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TypeItem {
    pub count: i32,
    pub task_type: String,
    pub task_type_info_en: String,
    pub task_type_info_zh: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TypeResponse {
    pub type_list: Vec<TypeItem>,
}

/// `DescribeActiveOperationTaskType`: the task types with events, and how many.
pub async fn describe_active_operation_task_type(
    ctx: Arc<Context>,
    req: TypeRequest,
    _call: Call,
) -> Result<TypeResponse, ApiError> {
    let tasks = listed(&ctx, in_status(statuses(req.history))).await?;
    let mut counts: std::collections::BTreeMap<String, i32> = Default::default();
    for t in &tasks {
        *counts.entry(t.task_type.clone()).or_default() += 1;
    }
    Ok(TypeResponse {
        type_list: counts
            .into_iter()
            .map(|(task_type, count)| TypeItem {
                count,
                task_type,
                task_type_info_en: "Minor version upgrade".into(),
                task_type_info_zh: "小版本升级".into(),
            })
            .collect(),
    })
}

/// `DescribeActiveOperationTaskRegion`: `TaskType` (required), `IsHistory`.
#[derive(Debug, Clone)]
pub struct RegionRequest {
    task_type: Option<String>,
    history: bool,
}

impl FromParams for RegionRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        Ok(Self {
            task_type: task_type(params, true)?,
            history: int_in(params, "IsHistory", &[0, 1], 0)? == 1,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RegionItem {
    pub count: i32,
    pub region: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RegionResponse {
    pub region_list: Vec<RegionItem>,
}

/// `DescribeActiveOperationTaskRegion`: the regions with events of the type (this endpoint serves
/// one), and how many.
pub async fn describe_active_operation_task_region(
    ctx: Arc<Context>,
    req: RegionRequest,
    _call: Call,
) -> Result<RegionResponse, ApiError> {
    let n = listed(
        &ctx,
        ActiveTaskFilter {
            statuses: statuses(req.history),
            task_type: req.task_type,
            ..ActiveTaskFilter::default()
        },
    )
    .await?
    .len();
    Ok(RegionResponse {
        region_list: (n > 0)
            .then(|| RegionItem {
                count: i32::try_from(n).unwrap_or(i32::MAX),
                region: ctx.region.clone(),
            })
            .into_iter()
            .collect(),
    })
}

/// `Ids`: 1–100 comma-separated event ids.
fn ids(params: &Params) -> Result<Vec<i64>, ApiError> {
    let raw = required(params, "Ids")?;
    let ids: Vec<&str> = raw.split(',').map(str::trim).collect();
    if ids.len() > MAX_IDS {
        return Err(ApiError::invalid_parameter(
            "Ids",
            format!("At most {MAX_IDS} ids."),
        ));
    }
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let n = id.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
            ApiError::invalid_parameter("Ids", format!("\"{}\" is not an event id.", clip(id)))
        })?;
        if !out.contains(&n) {
            out.push(n);
        }
    }
    Ok(out)
}

fn refusal(r: TaskRefusal) -> ApiError {
    match r {
        TaskRefusal::NotFound(id) => {
            ApiError::invalid_parameter("Ids", format!("Event {id} does not exist."))
        }
        TaskRefusal::Status { id, status } => ApiError::invalid_parameter(
            "Ids",
            format!("Event {id} has status {status}; only waiting events (3) can be moved or cancelled."),
        ),
    }
}

/// `ModifyActiveOperationTasks`: `Ids`, `SwitchTime` (UTC, not in the past, not after any event's
/// `Deadline`), `ImmediateStart` (`1`: start at once, `SwitchTime` ignored).
#[derive(Debug, Clone)]
pub struct ModifyTasksRequest {
    ids: Vec<i64>,
    raw_ids: String,
    switch_ms: Option<u64>,
}

impl FromParams for ModifyTasksRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        let ids = ids(params)?;
        let immediate = int_in(params, "ImmediateStart", &[0, 1], 0)? == 1;
        let switch_ms = if immediate {
            None
        } else {
            Some(parse_utc_ms("SwitchTime", required(params, "SwitchTime")?)?)
        };
        Ok(Self {
            raw_ids: ids.iter().map(i64::to_string).collect::<Vec<_>>().join(","),
            ids,
            switch_ms,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct IdsResponse {
    pub ids: String,
}

/// `ModifyActiveOperationTasks`: every event moved, or none.
pub async fn modify_active_operation_tasks(
    ctx: Arc<Context>,
    req: ModifyTasksRequest,
    _call: Call,
) -> Result<IdsResponse, ApiError> {
    let now = wall_now_ms();
    let switch = req.switch_ms.unwrap_or(now);
    // A minute of slack for the caller's clock; anything earlier is a time already gone.
    if switch.saturating_add(60_000) < now {
        return Err(ApiError::invalid_parameter(
            "SwitchTime",
            "The switch time is in the past.",
        ));
    }
    let all = listed(&ctx, ActiveTaskFilter::default()).await?;
    for id in &req.ids {
        if let Some(t) = all.iter().find(|t| t.id == *id) {
            if switch > t.deadline_ms {
                return Err(ApiError::invalid_parameter(
                    "SwitchTime",
                    format!(
                        "Event {id} must switch by its deadline {}.",
                        wall_time(t.deadline_ms)
                    ),
                ));
            }
        }
    }
    let patch = ActiveTaskPatch {
        switch_time_ms: Some(switch),
        ..ActiveTaskPatch::default()
    };
    ctx.store
        .modify_active_tasks(req.ids.clone(), vec![TASK_WAITING], patch)
        .await
        .map_err(from_store)?
        .map_err(refusal)?;
    tracing::info!(ids = %req.raw_ids, switch_time = %wall_time(switch), "scheduled O&M events moved");
    Ok(IdsResponse { ids: req.raw_ids })
}

/// `CancelActiveOperationTasks`: `Ids`.
#[derive(Debug, Clone)]
pub struct CancelTasksRequest {
    ids: Vec<i64>,
    raw_ids: String,
}

impl FromParams for CancelTasksRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        let ids = ids(params)?;
        Ok(Self {
            raw_ids: ids.iter().map(i64::to_string).collect::<Vec<_>>().join(","),
            ids,
        })
    }
}

/// `CancelActiveOperationTasks`: every event cancelled, or none.
pub async fn cancel_active_operation_tasks(
    ctx: Arc<Context>,
    req: CancelTasksRequest,
    _call: Call,
) -> Result<IdsResponse, ApiError> {
    ctx.store
        .modify_active_tasks(
            req.ids.clone(),
            vec![TASK_WAITING],
            finish(TASK_CANCELLED, "Cancelled by the user."),
        )
        .await
        .map_err(from_store)?
        .map_err(refusal)?;
    tracing::info!(ids = %req.raw_ids, "scheduled O&M events cancelled");
    Ok(IdsResponse { ids: req.raw_ids })
}

/// `DescribeActiveOperationMaintenanceConfig` (no parameters of its own).
#[derive(Debug, Clone)]
pub struct DescribeConfigRequest;

impl FromParams for DescribeConfigRequest {
    fn from_params(_params: &Params) -> Result<Self, ApiError> {
        Ok(Self)
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConfigBody {
    pub created_time: String,
    pub cycle_time: String,
    pub cycle_type: String,
    pub maintain_end_time: String,
    pub maintain_start_time: String,
    pub modified_time: String,
    pub status: i32,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeConfigResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<ConfigBody>,
    pub has_config: i32,
}

fn with_seconds(t: UtcTimeOfDay) -> String {
    format!("{:02}:{:02}:00Z", t.minutes() / 60, t.minutes() % 60)
}

/// `DescribeActiveOperationMaintenanceConfig`.
pub async fn describe_active_operation_maintenance_config(
    ctx: Arc<Context>,
    _req: DescribeConfigRequest,
    _call: Call,
) -> Result<DescribeConfigResponse, ApiError> {
    let config = load_config(&ctx).await?;
    Ok(DescribeConfigResponse {
        has_config: i32::from(config.is_some()),
        config: config.map(|c| ConfigBody {
            created_time: wall_time(c.created_ms),
            cycle_time: c
                .cycle_time
                .iter()
                .map(u8::to_string)
                .collect::<Vec<_>>()
                .join(","),
            cycle_type: c.cycle_type,
            maintain_end_time: with_seconds(c.end),
            maintain_start_time: with_seconds(c.start),
            modified_time: wall_time(c.modified_ms),
            status: i32::from(c.status),
        }),
    })
}

/// `ModifyActiveOperationMaintenanceConfig`: `CycleType` (`Week` / `Month`), `CycleTime` (days:
/// 1–7 from Monday, or 1–28), `MaintainStartTime` / `MaintainEndTime` (`HH:mmZ`, end later than
/// start), `Status` (1 in effect, 2 not). All required.
#[derive(Debug, Clone)]
pub struct ModifyConfigRequest {
    cycle_type: String,
    cycle_time: Vec<u8>,
    start: UtcTimeOfDay,
    end: UtcTimeOfDay,
    status: u8,
}

impl FromParams for ModifyConfigRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        let cycle_type = required(params, "CycleType")?;
        let max = match cycle_type {
            "Week" => 7,
            "Month" => 28,
            other => {
                return Err(ApiError::invalid_parameter(
                    "CycleType",
                    format!("Valid values are Week and Month, got \"{}\".", clip(other)),
                ))
            }
        };
        let raw = required(params, "CycleTime")?;
        let mut cycle_time = Vec::new();
        for d in raw.split(',').map(str::trim) {
            let n = d
                .parse::<u8>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| {
                    ApiError::invalid_parameter(
                        "CycleTime",
                        format!(
                            "Each day is 1 to {max} for {cycle_type}, got \"{}\".",
                            clip(d)
                        ),
                    )
                })?;
            if !cycle_time.contains(&n) {
                cycle_time.push(n);
            }
        }
        cycle_time.sort_unstable();
        let window = super::params::maintain_window(params)?;
        let (start, end) = (window.start, window.end);
        let status = u8::try_from(int_in(params, "Status", &[1, 2], 0)?).unwrap_or(0);
        if status == 0 {
            required(params, "Status")?;
        }
        Ok(Self {
            cycle_type: cycle_type.to_string(),
            cycle_time,
            start,
            end,
            status,
        })
    }
}

/// `ModifyActiveOperationMaintenanceConfig`: applies to events created from now on.
pub async fn modify_active_operation_maintenance_config(
    ctx: Arc<Context>,
    req: ModifyConfigRequest,
    _call: Call,
) -> Result<Empty, ApiError> {
    let now = wall_now_ms();
    let created_ms = load_config(&ctx).await?.map_or(now, |c| c.created_ms);
    let config = MaintenanceConfig {
        cycle_type: req.cycle_type,
        cycle_time: req.cycle_time,
        start: req.start,
        end: req.end,
        status: req.status,
        created_ms,
        modified_ms: now,
    };
    let json = serde_json::to_string(&config).unwrap_or_default();
    ctx.store
        .put_setting(CONFIG_KEY, &json)
        .await
        .map_err(from_store)?;
    Ok(Empty {})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> u64 {
        parse_utc_ms("t", s).unwrap()
    }

    fn window(a: &str, b: &str) -> MaintainWindow {
        MaintainWindow::new(a.parse().unwrap(), b.parse().unwrap()).unwrap()
    }

    #[test]
    fn an_event_switches_at_the_next_opening_of_the_window() {
        let w = window("02:00Z", "03:00Z");
        assert_eq!(
            next_switch_ms(at("2026-12-07T01:00:00Z"), w, None),
            at("2026-12-07T02:00:00Z")
        );
        // Inside or past today's window: tomorrow's.
        assert_eq!(
            next_switch_ms(at("2026-12-07T02:30:00Z"), w, None),
            at("2026-12-08T02:00:00Z")
        );
        assert_eq!(
            next_switch_ms(at("2026-12-07T02:00:00Z"), w, None),
            at("2026-12-08T02:00:00Z")
        );
    }

    #[test]
    fn the_accounts_cycle_chooses_the_day_and_the_time() {
        let mut c = MaintenanceConfig {
            cycle_type: "Week".into(),
            // 2026-12-07 is a Monday: Saturday and Sunday only.
            cycle_time: vec![6, 7],
            start: "04:00Z".parse().unwrap(),
            end: "05:00Z".parse().unwrap(),
            status: 1,
            created_ms: 0,
            modified_ms: 0,
        };
        let w = window("02:00Z", "03:00Z");
        let now = at("2026-12-07T01:00:00Z");
        assert_eq!(next_switch_ms(now, w, Some(&c)), at("2026-12-12T04:00:00Z"));
        c.cycle_type = "Month".into();
        c.cycle_time = vec![1];
        assert_eq!(next_switch_ms(now, w, Some(&c)), at("2027-01-01T04:00:00Z"));
        // Not in effect: the instance's own window.
        c.status = 2;
        assert_eq!(next_switch_ms(now, w, Some(&c)), at("2026-12-07T02:00:00Z"));
    }
}
