//! The SQLite schema as an ordered list of migrations, and the connection settings.
//!
//! `PRAGMA user_version` holds the number of the last migration applied. Each migration runs in its own
//! `BEGIN IMMEDIATE` transaction together with the `user_version` bump, so a crash mid-migration leaves the
//! previous version intact. Migrations are append-only: a released step is never edited, a change is a new step.
//! The SQL stays close to what PostgreSQL accepts (`STRICT` and `WITHOUT ROWID` are the SQLite-only parts).

use super::{StoreError, StoreResult};
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::time::Duration;

pub(crate) struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "instances, tags, operations, idempotency, settings",
        sql: r#"
CREATE TABLE instances (
    id                 TEXT PRIMARY KEY,
    region_id          TEXT NOT NULL,
    status             TEXT NOT NULL,
    instance_type      TEXT NOT NULL,
    engine             TEXT NOT NULL,
    engine_version     TEXT NOT NULL,
    class              TEXT NOT NULL,
    description        TEXT NOT NULL,
    charge_type        TEXT NOT NULL,
    zone_id            TEXT NOT NULL,
    vpc_id             TEXT NOT NULL,
    vswitch_id         TEXT NOT NULL,
    network_type       TEXT NOT NULL,
    resource_group_id  TEXT NOT NULL,
    replication_factor INTEGER,
    creation_time      TEXT NOT NULL,
    body               TEXT NOT NULL,
    updated_ms         INTEGER NOT NULL
) STRICT;
-- DescribeDBInstances always filters on the type and usually on the region, and sorts newest first. The
-- description rides along so a substring search scans the index, not the instance bodies.
CREATE INDEX instances_by_type ON instances (instance_type, creation_time DESC, id, description);
CREATE INDEX instances_by_region ON instances (region_id, instance_type, creation_time DESC, id);
CREATE INDEX instances_by_status ON instances (status);

CREATE TABLE instance_tags (
    instance_id TEXT NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    PRIMARY KEY (instance_id, key)
) STRICT, WITHOUT ROWID;
CREATE INDEX instance_tags_by_key ON instance_tags (key, value);

CREATE TABLE operations (
    id             TEXT PRIMARY KEY,
    instance_id    TEXT NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    kind           TEXT NOT NULL CHECK (kind IN ('create', 'delete', 'upgrade', 'restart')),
    status         TEXT NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'failed')),
    state          TEXT NOT NULL,
    epoch          INTEGER NOT NULL DEFAULT 0,
    lease_holder   TEXT,
    lease_until_ms INTEGER,
    lease_ms       INTEGER,
    created_ms     INTEGER NOT NULL,
    updated_ms     INTEGER NOT NULL,
    finished_ms    INTEGER,
    report         TEXT
) STRICT;
-- At most one unfinished operation per instance, whatever the code above the store does.
CREATE UNIQUE INDEX operations_one_unfinished ON operations (instance_id)
    WHERE status IN ('pending', 'running');
CREATE INDEX operations_by_instance ON operations (instance_id, created_ms);
CREATE INDEX operations_unfinished ON operations (created_ms, id)
    WHERE status IN ('pending', 'running');

CREATE TABLE idempotency (
    scope        TEXT NOT NULL,
    client_token TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    response     TEXT NOT NULL,
    created_ms   INTEGER NOT NULL,
    PRIMARY KEY (scope, client_token)
) STRICT, WITHOUT ROWID;
CREATE INDEX idempotency_by_age ON idempotency (created_ms);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT, WITHOUT ROWID;
"#,
    },
    Migration {
        version: 2,
        name: "simulated data-plane snapshots",
        // Deliberately no foreign key: the data plane stands for a deployment outside the control plane, whose
        // lifetime (provision .. deprovision) is not tied to the instance row.
        sql: r#"
CREATE TABLE plane_snapshots (
    instance_id TEXT PRIMARY KEY,
    snapshot    TEXT NOT NULL,
    saved_ms    INTEGER NOT NULL
) STRICT;
"#,
    },
    Migration {
        version: 3,
        name: "operations of kind switch (SwitchDBInstanceHA); operations by time (task center)",
        // SQLite cannot alter a CHECK constraint: the table is rebuilt with the same rows and indexes.
        // Nothing references `operations`, so dropping the old table keeps every foreign key intact.
        sql: r#"
CREATE TABLE operations_v3 (
    id             TEXT PRIMARY KEY,
    instance_id    TEXT NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    kind           TEXT NOT NULL CHECK (kind IN ('create', 'delete', 'upgrade', 'restart', 'switch')),
    status         TEXT NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'failed')),
    state          TEXT NOT NULL,
    epoch          INTEGER NOT NULL DEFAULT 0,
    lease_holder   TEXT,
    lease_until_ms INTEGER,
    lease_ms       INTEGER,
    created_ms     INTEGER NOT NULL,
    updated_ms     INTEGER NOT NULL,
    finished_ms    INTEGER,
    report         TEXT
) STRICT;
INSERT INTO operations_v3 (id, instance_id, kind, status, state, epoch, lease_holder, lease_until_ms,
                           lease_ms, created_ms, updated_ms, finished_ms, report)
    SELECT id, instance_id, kind, status, state, epoch, lease_holder, lease_until_ms,
           lease_ms, created_ms, updated_ms, finished_ms, report
    FROM operations;
DROP TABLE operations;
ALTER TABLE operations_v3 RENAME TO operations;
CREATE UNIQUE INDEX operations_one_unfinished ON operations (instance_id)
    WHERE status IN ('pending', 'running');
CREATE INDEX operations_by_instance ON operations (instance_id, created_ms);
CREATE INDEX operations_unfinished ON operations (created_ms, id)
    WHERE status IN ('pending', 'running');
-- The task center (DescribeHistoryTasks) lists every instance's operations by time.
CREATE INDEX operations_by_created ON operations (created_ms, id);
"#,
    },
    Migration {
        version: 4,
        name: "operations of kind engine_upgrade and class_change; scheduled O&M events",
        // The operations table is rebuilt as in migration 3 to widen its CHECK.
        sql: r#"
CREATE TABLE operations_v4 (
    id             TEXT PRIMARY KEY,
    instance_id    TEXT NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    kind           TEXT NOT NULL CHECK (kind IN ('create', 'delete', 'upgrade', 'restart', 'switch',
                                                 'engine_upgrade', 'class_change')),
    status         TEXT NOT NULL CHECK (status IN ('pending', 'running', 'succeeded', 'failed')),
    state          TEXT NOT NULL,
    epoch          INTEGER NOT NULL DEFAULT 0,
    lease_holder   TEXT,
    lease_until_ms INTEGER,
    lease_ms       INTEGER,
    created_ms     INTEGER NOT NULL,
    updated_ms     INTEGER NOT NULL,
    finished_ms    INTEGER,
    report         TEXT
) STRICT;
INSERT INTO operations_v4 (id, instance_id, kind, status, state, epoch, lease_holder, lease_until_ms,
                           lease_ms, created_ms, updated_ms, finished_ms, report)
    SELECT id, instance_id, kind, status, state, epoch, lease_holder, lease_until_ms,
           lease_ms, created_ms, updated_ms, finished_ms, report
    FROM operations;
DROP TABLE operations;
ALTER TABLE operations_v4 RENAME TO operations;
CREATE UNIQUE INDEX operations_one_unfinished ON operations (instance_id)
    WHERE status IN ('pending', 'running');
CREATE INDEX operations_by_instance ON operations (instance_id, created_ms);
CREATE INDEX operations_unfinished ON operations (created_ms, id)
    WHERE status IN ('pending', 'running');
CREATE INDEX operations_by_created ON operations (created_ms, id);
-- Scheduled O&M events (DescribeActiveOperationTasks): one row per event, the vendor's integer Id.
-- `status` is the vendor's number (3 waiting, 4 running, 5 succeeded, 6 failed, 7 cancelled);
-- `operation_id` is the operation an event started. An event goes with its instance.
CREATE TABLE active_operation_tasks (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id    TEXT NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    task_type      TEXT NOT NULL,
    status         INTEGER NOT NULL,
    switch_time_ms INTEGER NOT NULL,
    deadline_ms    INTEGER NOT NULL,
    created_ms     INTEGER NOT NULL,
    modified_ms    INTEGER NOT NULL,
    start_time_ms  INTEGER,
    operation_id   TEXT,
    params         TEXT NOT NULL,
    result_info    TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX active_operation_tasks_due ON active_operation_tasks (status, switch_time_ms);
CREATE INDEX active_operation_tasks_by_instance ON active_operation_tasks (instance_id, id);
"#,
    },
];

/// The schema version this build writes.
pub(crate) fn latest_version() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

pub(crate) fn user_version(conn: &Connection) -> StoreResult<u32> {
    Ok(conn.pragma_query_value(None, "user_version", |r| r.get::<_, u32>(0))?)
}

/// Brings the database up to the last of `migrations`; returns the version it found.
pub(crate) fn migrate(conn: &Connection, migrations: &[Migration]) -> StoreResult<u32> {
    let found = user_version(conn)?;
    let supported = migrations.last().map_or(0, |m| m.version);
    if found > supported {
        return Err(StoreError::SchemaTooNew { found, supported });
    }
    for m in migrations.iter().filter(|m| m.version > found) {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let applied = conn
            .execute_batch(m.sql)
            .and_then(|()| conn.pragma_update(None, "user_version", m.version))
            .and_then(|()| conn.execute_batch("COMMIT"));
        if let Err(e) = applied {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(StoreError::Backend(format!(
                "migration {} ({}) failed: {e}",
                m.version, m.name
            )));
        }
        tracing::info!(version = m.version, name = m.name, "store schema migrated");
    }
    Ok(found)
}

/// Opens the read-write connection: WAL (readers never block the writer), `synchronous=FULL` (a committed
/// transition survives power loss, not only a crash of ddsd), foreign keys on, and a busy timeout for the
/// rare case that another connection holds the write lock.
pub(crate) fn open_writer(path: &Path, busy_timeout: Duration) -> StoreResult<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(busy_timeout)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend(format!(
            "could not switch {} to WAL (journal_mode = {mode})",
            path.display()
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Opens a read-only connection for queries; it sees every transaction committed before each read starts.
pub(crate) fn open_reader(path: &Path, busy_timeout: Duration) -> StoreResult<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(busy_timeout)?;
    conn.pragma_update(None, "query_only", "ON")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}
