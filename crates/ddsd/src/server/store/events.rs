//! Scheduled O&M events (`DescribeActiveOperationTasks`): the rows and their SQL.
//!
//! An event is created waiting (status 3) with a switch time; the scheduler moves it to running (4)
//! when it starts the operation behind it and to succeeded (5) or failed (6) when that ends; a user
//! cancels it (7) or moves its switch time while it waits. Every change is conditional on the status
//! the caller saw, so a user's move and the scheduler's start cannot both win.

use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use super::sql::Ctx;
use super::{StoreError, StoreResult};

/// The vendor's event statuses.
pub const TASK_WAITING: u8 = 3;
pub const TASK_RUNNING: u8 = 4;
pub const TASK_SUCCEEDED: u8 = 5;
pub const TASK_FAILED: u8 = 6;
pub const TASK_CANCELLED: u8 = 7;

/// Events created by one call at most (one per instance of a published engine version).
pub const MAX_NEW_TASKS: usize = 10_000;
/// Longest `params` / `result_info` text kept.
const MAX_TEXT_BYTES: usize = 4_096;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveTask {
    pub id: i64,
    pub instance_id: String,
    /// `rds_apsaradb_upgrade` for a minor-version upgrade.
    pub task_type: String,
    pub status: u8,
    pub switch_time_ms: u64,
    /// The latest switch time a move may choose.
    pub deadline_ms: u64,
    pub created_ms: u64,
    pub modified_ms: u64,
    /// When the operation behind the event started.
    pub start_time_ms: Option<u64>,
    pub operation_id: Option<String>,
    /// The event's parameters as JSON (`{"TargetKernelVersion": ...}`).
    pub params: String,
    pub result_info: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewActiveTask {
    pub instance_id: String,
    pub task_type: String,
    pub switch_time_ms: u64,
    pub deadline_ms: u64,
    pub params: String,
}

/// What a change sets; `None` keeps the stored value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActiveTaskPatch {
    pub status: Option<u8>,
    pub switch_time_ms: Option<u64>,
    pub start_time_ms: Option<u64>,
    pub operation_id: Option<String>,
    pub result_info: Option<String>,
}

/// Which events a listing returns; empty lists mean any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActiveTaskFilter {
    pub instance_id: Option<String>,
    pub statuses: Vec<u8>,
    pub task_type: Option<String>,
    /// Only events whose switch time is at or before this.
    pub due_by_ms: Option<u64>,
}

/// Why a batch change was refused (nothing changed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskRefusal {
    NotFound(i64),
    /// The event is not in a status the change applies to.
    Status {
        id: i64,
        status: u8,
    },
}

fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn uint(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn clip(s: &str) -> &str {
    if s.len() <= MAX_TEXT_BYTES {
        return s;
    }
    let mut end = MAX_TEXT_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

const COLUMNS: &str =
    "id, instance_id, task_type, status, switch_time_ms, deadline_ms, created_ms, \
                       modified_ms, start_time_ms, operation_id, params, result_info";

fn row(r: &Row<'_>) -> rusqlite::Result<ActiveTask> {
    Ok(ActiveTask {
        id: r.get(0)?,
        instance_id: r.get(1)?,
        task_type: r.get(2)?,
        status: u8::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
        switch_time_ms: uint(r.get(4)?),
        deadline_ms: uint(r.get(5)?),
        created_ms: uint(r.get(6)?),
        modified_ms: uint(r.get(7)?),
        start_time_ms: r.get::<_, Option<i64>>(8)?.map(uint),
        operation_id: r.get(9)?,
        params: r.get(10)?,
        result_info: r.get(11)?,
    })
}

/// Records waiting events; one whose instance no longer exists (deleted meanwhile) is skipped.
pub(crate) fn add(c: &Connection, ctx: &Ctx, tasks: &[NewActiveTask]) -> StoreResult<Vec<i64>> {
    if tasks.len() > MAX_NEW_TASKS {
        return Err(StoreError::Invalid(format!(
            "at most {MAX_NEW_TASKS} events at once"
        )));
    }
    let mut ids = Vec::with_capacity(tasks.len());
    let mut stmt = c.prepare_cached(
        "INSERT INTO active_operation_tasks (instance_id, task_type, status, switch_time_ms, \
         deadline_ms, created_ms, modified_ms, params) \
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7 WHERE EXISTS (SELECT 1 FROM instances WHERE id = ?1)",
    )?;
    for t in tasks {
        let added = stmt.execute(params![
            t.instance_id,
            t.task_type,
            i64::from(TASK_WAITING),
            int(t.switch_time_ms),
            int(t.deadline_ms),
            int(ctx.now_ms),
            clip(&t.params),
        ])?;
        if added > 0 {
            ids.push(c.last_insert_rowid());
        }
    }
    Ok(ids)
}

pub(crate) fn list(
    c: &Connection,
    filter: &ActiveTaskFilter,
    limit: u32,
) -> StoreResult<Vec<ActiveTask>> {
    let mut sql = format!("SELECT {COLUMNS} FROM active_operation_tasks WHERE 1 = 1");
    let mut args: Vec<SqlValue> = Vec::new();
    if let Some(i) = &filter.instance_id {
        args.push(SqlValue::Text(i.clone()));
        sql.push_str(&format!(" AND instance_id = ?{}", args.len()));
    }
    if let Some(t) = &filter.task_type {
        args.push(SqlValue::Text(t.clone()));
        sql.push_str(&format!(" AND task_type = ?{}", args.len()));
    }
    if let Some(due) = filter.due_by_ms {
        args.push(SqlValue::Integer(int(due)));
        sql.push_str(&format!(" AND switch_time_ms <= ?{}", args.len()));
    }
    if !filter.statuses.is_empty() {
        let marks: Vec<String> = filter
            .statuses
            .iter()
            .map(|s| {
                args.push(SqlValue::Integer(i64::from(*s)));
                format!("?{}", args.len())
            })
            .collect();
        sql.push_str(&format!(" AND status IN ({})", marks.join(", ")));
    }
    args.push(SqlValue::Integer(i64::from(limit)));
    sql.push_str(&format!(" ORDER BY id LIMIT ?{}", args.len()));
    let mut stmt = c.prepare(&sql)?;
    let rows = stmt.query_map(params_from_iter(args), row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(crate) fn get(c: &Connection, id: i64) -> StoreResult<Option<ActiveTask>> {
    Ok(c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM active_operation_tasks WHERE id = ?1"
    ))?
    .query_row([id], row)
    .optional()?)
}

/// Changes every event in `ids` or none: each must exist and be in one of `from`.
pub(crate) fn modify(
    c: &Connection,
    ctx: &Ctx,
    ids: &[i64],
    from: &[u8],
    patch: &ActiveTaskPatch,
) -> StoreResult<Result<Vec<ActiveTask>, TaskRefusal>> {
    let mut changed = Vec::with_capacity(ids.len());
    for &id in ids {
        let Some(t) = get(c, id)? else {
            return Ok(Err(TaskRefusal::NotFound(id)));
        };
        if !from.contains(&t.status) {
            return Ok(Err(TaskRefusal::Status {
                id,
                status: t.status,
            }));
        }
        changed.push(t);
    }
    let mut stmt = c.prepare_cached(
        "UPDATE active_operation_tasks SET status = coalesce(?2, status), \
         switch_time_ms = coalesce(?3, switch_time_ms), start_time_ms = coalesce(?4, start_time_ms), \
         operation_id = coalesce(?5, operation_id), result_info = coalesce(?6, result_info), \
         modified_ms = ?7 WHERE id = ?1",
    )?;
    for t in &mut changed {
        stmt.execute(params![
            t.id,
            patch.status.map(i64::from),
            patch.switch_time_ms.map(int),
            patch.start_time_ms.map(int),
            patch.operation_id,
            patch.result_info.as_deref().map(clip),
            int(ctx.now_ms),
        ])?;
        if let Some(s) = patch.status {
            t.status = s;
        }
        if let Some(s) = patch.switch_time_ms {
            t.switch_time_ms = s;
        }
        if let Some(s) = patch.start_time_ms {
            t.start_time_ms = Some(s);
        }
        if let Some(o) = &patch.operation_id {
            t.operation_id = Some(o.clone());
        }
        if let Some(r) = &patch.result_info {
            t.result_info = clip(r).to_string();
        }
        t.modified_ms = ctx.now_ms;
    }
    Ok(Ok(changed))
}
