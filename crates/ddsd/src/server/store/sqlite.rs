//! The embedded store: one SQLite file (WAL, `synchronous=FULL`) under the data directory.
//!
//! Threads, not `spawn_blocking`: SQLite calls block (a `synchronous=FULL` commit waits for an fsync, ~3 ms on
//! our disks), so they must stay off the async workers. A `Mutex<Connection>` behind `spawn_blocking` would
//! park one blocking-pool thread per waiting caller (the pool grows to 512 threads) and give no order. Instead:
//!
//! - one **writer thread** owns the only read-write connection and takes jobs from a bounded queue. It
//!   drains up to `max_write_batch` queued jobs into one `BEGIN IMMEDIATE` transaction, each job inside its own
//!   `SAVEPOINT` (a failing job is rolled back alone), and answers every job only after the `COMMIT` is
//!   durable. One fsync then covers many concurrent requests (group commit), while each request keeps
//!   all-or-nothing semantics and is acknowledged only once it is on disk;
//! - `readers` **reader threads** own read-only connections; in WAL mode they never wait for the writer and
//!   see every transaction committed before their read starts.
//!
//! Callers await a oneshot answer; a full queue makes them wait (back-pressure) instead of piling up threads.
//! Dropping the store closes the queues; the threads finish what was queued and close their connections.
//!
//! One process per file: the store holds an exclusive SQLite lock on `<file>.lock` for its whole life (a
//! connection in `locking_mode=EXCLUSIVE` that wrote once), so a second ddsd on the same data directory is
//! refused at start instead of writing alongside. The lock is an OS file lock: it goes away with the process,
//! `kill -9` included, so a restart never finds a stale lock.

use super::schema::{self, MIGRATIONS};
use super::sql::{self, Ctx};
use super::{
    Accepted, Clock, Idempotency, InstanceFilter, InstancePage, InstancePatch, InstanceUpdate,
    NewOperation, Operation, OperationFinish, Page, Store, StoreError, StoreFuture, StoreResult,
};
use dds_engine::model::{DbInstanceStatus, Instance};
use rusqlite::Connection;
use serde_json::Value;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// The database file's name inside the data directory.
pub const DB_FILE_NAME: &str = "ddsd.sqlite3";

/// `PRAGMA integrity_check` of the store file in `data_dir`, opened read-only: `"ok"` or SQLite's
/// findings. For checks after a server has stopped (`ddsd bench soak`): the API cannot answer
/// then, and this opens no write path, runs no migration and takes no lease.
pub fn integrity_check(data_dir: &Path) -> StoreResult<String> {
    let path = data_dir.join(DB_FILE_NAME);
    let conn = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| StoreError::Backend(format!("opening {}: {e}", path.display())))?;
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| StoreError::Backend(format!("integrity_check of {}: {e}", path.display())))
}

#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// How long a statement waits for a lock held by another connection.
    pub busy_timeout_ms: u64,
    /// Read-only connections (each on its own thread).
    pub readers: usize,
    /// Jobs queued per queue before callers wait.
    pub queue_capacity: usize,
    /// Most write jobs committed together.
    pub max_write_batch: usize,
    /// How long a `ClientToken` is remembered.
    pub idempotency_ttl_ms: u64,
    /// Finished operations kept per instance; older ones are dropped when another finishes.
    pub finished_operations_kept: u32,
    /// Refuse to open a database another store has open (see the module docs). Off only for tests that
    /// exercise SQLite's own multi-writer locking.
    pub exclusive: bool,
    pub clock: Clock,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            busy_timeout_ms: 5_000,
            readers: 2,
            queue_capacity: 1_024,
            max_write_batch: 64,
            idempotency_ttl_ms: 24 * 3_600_000,
            finished_operations_kept: 50,
            exclusive: true,
            clock: Clock::system(),
        }
    }
}

/// A job for the writer: runs inside the batch transaction, answers after the commit.
trait WriteJob: Send {
    /// Runs the job; `false` when it failed and its savepoint must be rolled back.
    fn run(&mut self, conn: &Connection, ctx: &Ctx) -> bool;
    /// Answers the caller once the batch's fate is known.
    fn complete(self: Box<Self>, commit: StoreResult<()>);
}

struct Job<T, F> {
    work: Option<F>,
    output: Option<StoreResult<T>>,
    reply: oneshot::Sender<StoreResult<T>>,
}

impl<T, F> WriteJob for Job<T, F>
where
    T: Send,
    F: FnOnce(&Connection, &Ctx) -> StoreResult<T> + Send,
{
    fn run(&mut self, conn: &Connection, ctx: &Ctx) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        let output = catch_unwind(AssertUnwindSafe(|| work(conn, ctx))).unwrap_or_else(|_| {
            Err(StoreError::Backend(
                "internal error: a store job panicked".into(),
            ))
        });
        let ok = output.is_ok();
        self.output = Some(output);
        ok
    }

    fn complete(self: Box<Self>, commit: StoreResult<()>) {
        let answer = match self.output {
            // A failed job was rolled back to its savepoint: its own error is the answer either way.
            Some(Err(e)) => Err(e),
            Some(Ok(v)) => commit.map(|()| v),
            None => Err(commit.err().unwrap_or(StoreError::Closed)),
        };
        let _ = self.reply.send(answer);
    }
}

type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

#[derive(Clone)]
struct WriterConfig {
    max_batch: usize,
    idempotency_ttl_ms: u64,
    finished_operations_kept: u32,
    clock: Clock,
}

/// The SQLite [`Store`]. Cheap to share behind an `Arc`.
pub struct SqliteStore {
    /// Held, never used: its lock keeps other stores out (dropped last).
    _lock: Option<Mutex<Connection>>,
    writer: mpsc::Sender<Box<dyn WriteJob>>,
    readers: mpsc::Sender<ReadJob>,
    path: PathBuf,
    schema_version_found: u32,
}

impl SqliteStore {
    /// Opens (creating if needed) `<data_dir>/ddsd.sqlite3`.
    pub fn open_in(data_dir: &Path, options: SqliteOptions) -> StoreResult<SqliteStore> {
        SqliteStore::open(&data_dir.join(DB_FILE_NAME), options)
    }

    /// Opens or creates the database file, migrates it to the current schema and starts the threads. Blocks
    /// (file I/O, migrations): call it before serving, or from `spawn_blocking`.
    pub fn open(path: &Path, options: SqliteOptions) -> StoreResult<SqliteStore> {
        SqliteStore::open_with_migrations(path, options, MIGRATIONS)
    }

    pub(crate) fn open_with_migrations(
        path: &Path,
        options: SqliteOptions,
        migrations: &[schema::Migration],
    ) -> StoreResult<SqliteStore> {
        if options.readers == 0 || options.queue_capacity == 0 || options.max_write_batch == 0 {
            return Err(StoreError::Invalid(
                "readers, queue_capacity and max_write_batch must be at least 1".into(),
            ));
        }
        let lock = if options.exclusive {
            Some(Mutex::new(lock_database(path)?))
        } else {
            None
        };
        let busy = Duration::from_millis(options.busy_timeout_ms);
        let writer_conn = schema::open_writer(path, busy)?;
        let schema_version_found = schema::migrate(&writer_conn, migrations)?;
        let reader_conns = (0..options.readers)
            .map(|_| schema::open_reader(path, busy))
            .collect::<StoreResult<Vec<_>>>()?;

        let (writer, writer_rx) = mpsc::channel::<Box<dyn WriteJob>>(options.queue_capacity);
        let cfg = WriterConfig {
            max_batch: options.max_write_batch,
            idempotency_ttl_ms: options.idempotency_ttl_ms,
            finished_operations_kept: options.finished_operations_kept,
            clock: options.clock.clone(),
        };
        spawn_thread("ddsd-store-writer".into(), move || {
            writer_loop(writer_conn, writer_rx, cfg)
        })?;

        let (readers, reader_rx) = mpsc::channel::<ReadJob>(options.queue_capacity);
        let reader_rx = Arc::new(Mutex::new(reader_rx));
        for (n, conn) in reader_conns.into_iter().enumerate() {
            let rx = reader_rx.clone();
            spawn_thread(format!("ddsd-store-reader-{n}"), move || {
                reader_loop(conn, rx)
            })?;
        }
        Ok(SqliteStore {
            _lock: lock,
            writer,
            readers,
            path: path.to_path_buf(),
            schema_version_found,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version the file had before this open migrated it (0 = new file).
    pub fn schema_version_found(&self) -> u32 {
        self.schema_version_found
    }

    /// The schema version this build writes.
    pub fn schema_version() -> u32 {
        schema::latest_version()
    }

    fn write<T, F>(&self, work: F) -> StoreFuture<'_, T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &Ctx) -> StoreResult<T> + Send + 'static,
    {
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            let job = Box::new(Job {
                work: Some(work),
                output: None,
                reply,
            });
            self.writer
                .send(job)
                .await
                .map_err(|_| StoreError::Closed)?;
            answer.await.map_err(|_| StoreError::Closed)?
        })
    }

    fn read<T, F>(&self, work: F) -> StoreFuture<'_, T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            let job: ReadJob = Box::new(move |conn| {
                let _ = reply.send(work(conn));
            });
            self.readers
                .send(job)
                .await
                .map_err(|_| StoreError::Closed)?;
            answer.await.map_err(|_| StoreError::Closed)?
        })
    }

    /// A future that fails at once: argument errors are reported without touching the queues.
    fn fail<T: Send + 'static>(e: StoreError) -> StoreFuture<'static, T> {
        Box::pin(std::future::ready(Err(e)))
    }
}

/// Takes the exclusive lock on `<path>.lock`, or fails with [`StoreError::Locked`] at once.
fn lock_database(path: &Path) -> StoreResult<Connection> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let conn = Connection::open(&lock_path)?;
    conn.busy_timeout(Duration::ZERO)?;
    let _mode: String = conn.query_row("PRAGMA locking_mode = EXCLUSIVE", [], |r| r.get(0))?;
    // In exclusive locking mode the lock taken by a write is kept until the connection closes.
    match conn.execute_batch("BEGIN EXCLUSIVE; COMMIT;") {
        Ok(()) => Ok(conn),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::DatabaseBusy
                || e.code == rusqlite::ErrorCode::DatabaseLocked =>
        {
            Err(StoreError::Locked(path.display().to_string()))
        }
        Err(e) => Err(e.into()),
    }
}

fn spawn_thread(name: String, f: impl FnOnce() + Send + 'static) -> StoreResult<()> {
    std::thread::Builder::new()
        .name(name)
        .spawn(f)
        .map(drop)
        .map_err(|e| StoreError::Backend(format!("cannot start a store thread: {e}")))
}

fn writer_loop(conn: Connection, mut rx: mpsc::Receiver<Box<dyn WriteJob>>, cfg: WriterConfig) {
    let mut batch: Vec<Box<dyn WriteJob>> = Vec::with_capacity(cfg.max_batch);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < cfg.max_batch {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let commit = run_batch(&conn, &mut batch, &cfg);
        if let Err(e) = &commit {
            tracing::error!(error = %e, jobs = batch.len(), "store write transaction failed");
        }
        for job in batch.drain(..) {
            job.complete(commit.clone());
        }
    }
}

fn run_batch(
    conn: &Connection,
    batch: &mut [Box<dyn WriteJob>],
    cfg: &WriterConfig,
) -> StoreResult<()> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let ctx = Ctx {
        now_ms: cfg.clock.now_ms(),
        idempotency_ttl_ms: cfg.idempotency_ttl_ms,
        finished_operations_kept: cfg.finished_operations_kept,
    };
    let ran = batch
        .iter_mut()
        .try_for_each(|job| -> rusqlite::Result<()> {
            conn.execute_batch("SAVEPOINT job")?;
            if job.run(conn, &ctx) {
                conn.execute_batch("RELEASE job")
            } else {
                conn.execute_batch("ROLLBACK TO job; RELEASE job")
            }
        });
    match ran.and_then(|()| conn.execute_batch("COMMIT")) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e.into())
        }
    }
}

fn reader_loop(conn: Connection, rx: Arc<Mutex<mpsc::Receiver<ReadJob>>>) {
    loop {
        let job = {
            let mut rx = match rx.lock() {
                Ok(rx) => rx,
                Err(poisoned) => poisoned.into_inner(),
            };
            rx.blocking_recv()
        };
        let Some(job) = job else { break };
        // A panicking job drops its reply sender; the caller sees `Closed` rather than the thread dying.
        let _ = catch_unwind(AssertUnwindSafe(|| job(&conn)));
    }
}

impl Store for SqliteStore {
    fn get_instance(&self, id: &str) -> StoreFuture<'_, Option<Instance>> {
        let id = id.to_string();
        self.read(move |c| sql::get_instance(c, &id))
    }

    fn list_instances(&self, filter: &InstanceFilter, page: Page) -> StoreFuture<'_, InstancePage> {
        if let Err(e) = sql::check_filter(filter).and_then(|()| Page::new(page.number, page.size)) {
            return Self::fail(e);
        }
        let filter = filter.clone();
        self.read(move |c| sql::list_instances(c, &filter, page))
    }

    fn create_instance_with_operation(
        &self,
        instance: Instance,
        operation: NewOperation,
        idempotency: Option<Idempotency>,
    ) -> StoreFuture<'_, Accepted> {
        let encoded = (|| {
            Ok((
                sql::encode_instance(instance)?,
                sql::encode_new_operation(&operation)?,
                idempotency
                    .as_ref()
                    .map(sql::encode_idempotency)
                    .transpose()?,
            ))
        })();
        match encoded {
            Ok((instance, op, idem)) => self.write(move |c, ctx| {
                sql::create_instance_with_operation(c, ctx, &instance, &op, idem.as_ref())
            }),
            Err(e) => Self::fail(e),
        }
    }

    fn begin_operation(
        &self,
        instance_id: &str,
        expected: &[DbInstanceStatus],
        new_status: DbInstanceStatus,
        operation: NewOperation,
        idempotency: Option<Idempotency>,
    ) -> StoreFuture<'_, Accepted> {
        let encoded = (|| {
            Ok((
                sql::encode_new_operation(&operation)?,
                idempotency
                    .as_ref()
                    .map(sql::encode_idempotency)
                    .transpose()?,
            ))
        })();
        let (op, idem) = match encoded {
            Ok(v) => v,
            Err(e) => return Self::fail(e),
        };
        let instance_id = instance_id.to_string();
        let expected = expected.to_vec();
        self.write(move |c, ctx| {
            sql::begin_operation(
                c,
                ctx,
                &instance_id,
                &expected,
                new_status,
                &op,
                idem.as_ref(),
            )
        })
    }

    fn modify_instance(&self, id: &str, patch: InstancePatch) -> StoreFuture<'_, Instance> {
        let id = id.to_string();
        self.write(move |c, ctx| sql::modify_instance(c, ctx, &id, &patch))
    }

    fn delete_instance(&self, id: &str) -> StoreFuture<'_, bool> {
        let id = id.to_string();
        self.write(move |c, _| sql::delete_instance(c, &id))
    }

    fn get_operation(&self, id: &str) -> StoreFuture<'_, Option<Operation>> {
        let id = id.to_string();
        self.read(move |c| sql::get_operation(c, &id))
    }

    fn list_operations(&self, instance_id: &str, limit: u32) -> StoreFuture<'_, Vec<Operation>> {
        if let Err(e) = sql::check_limit(limit) {
            return Self::fail(e);
        }
        let instance_id = instance_id.to_string();
        self.read(move |c| sql::list_operations(c, &instance_id, limit))
    }

    fn unfinished_operations(&self, limit: u32) -> StoreFuture<'_, Vec<Operation>> {
        if let Err(e) = sql::check_limit(limit) {
            return Self::fail(e);
        }
        self.read(move |c| sql::unfinished_operations(c, limit))
    }

    fn operations_created_between(
        &self,
        from_ms: u64,
        to_ms: u64,
        limit: u32,
    ) -> StoreFuture<'_, Vec<Operation>> {
        if let Err(e) = sql::check_limit(limit) {
            return Self::fail(e);
        }
        self.read(move |c| sql::operations_created_between(c, from_ms, to_ms, limit))
    }

    fn claim_operation(&self, id: &str, holder: &str, lease_ms: u64) -> StoreFuture<'_, Operation> {
        if let Err(e) = sql::check_id("lease holder", holder) {
            return Self::fail(e);
        }
        if lease_ms == 0 || lease_ms > 86_400_000 {
            return Self::fail(StoreError::Invalid("lease must be 1 ms..=1 day".into()));
        }
        let (id, holder) = (id.to_string(), holder.to_string());
        self.write(move |c, ctx| sql::claim_operation(c, ctx, &id, &holder, lease_ms))
    }

    fn save_operation(
        &self,
        id: &str,
        epoch: u64,
        state: Value,
        update: InstanceUpdate,
    ) -> StoreFuture<'_, ()> {
        let state = match sql::check_update(&update).and_then(|()| {
            sql::encode_json("operation state", &state, super::limits::MAX_STATE_BYTES)
        }) {
            Ok(s) => s,
            Err(e) => return Self::fail(e),
        };
        let id = id.to_string();
        self.write(move |c, ctx| sql::save_operation(c, ctx, &id, epoch, &state, &update))
    }

    fn renew_lease(&self, id: &str, epoch: u64) -> StoreFuture<'_, ()> {
        let id = id.to_string();
        self.write(move |c, ctx| sql::renew_lease(c, ctx, &id, epoch))
    }

    fn finish_operation(
        &self,
        id: &str,
        epoch: u64,
        finish: OperationFinish,
    ) -> StoreFuture<'_, ()> {
        let finish = match sql::encode_finish(finish) {
            Ok(f) => f,
            Err(e) => return Self::fail(e),
        };
        let id = id.to_string();
        self.write(move |c, ctx| sql::finish_operation(c, ctx, &id, epoch, &finish))
    }

    fn save_plane_snapshot(&self, instance_id: &str, snapshot: Value) -> StoreFuture<'_, ()> {
        let snapshot = match sql::check_id("DBInstanceId", instance_id).and_then(|()| {
            sql::encode_json(
                "plane snapshot",
                &snapshot,
                super::limits::MAX_SNAPSHOT_BYTES,
            )
        }) {
            Ok(s) => s,
            Err(e) => return Self::fail(e),
        };
        let instance_id = instance_id.to_string();
        self.write(move |c, ctx| sql::save_plane_snapshot(c, ctx, &instance_id, &snapshot))
    }

    fn load_plane_snapshot(&self, instance_id: &str) -> StoreFuture<'_, Option<Value>> {
        let instance_id = instance_id.to_string();
        self.read(move |c| sql::load_plane_snapshot(c, &instance_id))
    }

    fn delete_plane_snapshot(&self, instance_id: &str) -> StoreFuture<'_, bool> {
        let instance_id = instance_id.to_string();
        self.write(move |c, _| sql::delete_plane_snapshot(c, &instance_id))
    }

    fn plane_snapshot_ids(&self) -> StoreFuture<'_, Vec<String>> {
        self.read(sql::plane_snapshot_ids)
    }

    fn add_active_tasks(
        &self,
        tasks: Vec<super::events::NewActiveTask>,
    ) -> StoreFuture<'_, Vec<i64>> {
        self.write(move |c, ctx| super::events::add(c, ctx, &tasks))
    }

    fn list_active_tasks(
        &self,
        filter: super::events::ActiveTaskFilter,
        limit: u32,
    ) -> StoreFuture<'_, Vec<super::events::ActiveTask>> {
        self.read(move |c| super::events::list(c, &filter, limit))
    }

    fn modify_active_tasks(
        &self,
        ids: Vec<i64>,
        from: Vec<u8>,
        patch: super::events::ActiveTaskPatch,
    ) -> StoreFuture<'_, Result<Vec<super::events::ActiveTask>, super::events::TaskRefusal>> {
        self.write(move |c, ctx| super::events::modify(c, ctx, &ids, &from, &patch))
    }

    fn get_setting(&self, key: &str) -> StoreFuture<'_, Option<String>> {
        if let Err(e) = sql::check_setting(key, None) {
            return Self::fail(e);
        }
        let key = key.to_string();
        self.read(move |c| sql::get_setting(c, &key))
    }

    fn put_setting(&self, key: &str, value: &str) -> StoreFuture<'_, ()> {
        if let Err(e) = sql::check_setting(key, Some(value)) {
            return Self::fail(e);
        }
        let (key, value) = (key.to_string(), value.to_string());
        self.write(move |c, _| sql::put_setting(c, &key, &value))
    }

    fn import_instance(
        &self,
        instance: Instance,
        settings: Vec<(String, String)>,
    ) -> StoreFuture<'_, ()> {
        for (k, v) in &settings {
            if let Err(e) = sql::check_setting(k, Some(v)) {
                return Self::fail(e);
            }
        }
        match sql::encode_instance(instance) {
            Ok(encoded) => {
                self.write(move |c, ctx| sql::import_instance(c, ctx, &encoded, &settings))
            }
            Err(e) => Self::fail(e),
        }
    }

    fn put_setting_once(
        &self,
        key: &str,
        value: &str,
        idempotency: Idempotency,
    ) -> StoreFuture<'_, Option<Value>> {
        if let Err(e) = sql::check_setting(key, Some(value)) {
            return Self::fail(e);
        }
        let idem = match sql::encode_idempotency(&idempotency) {
            Ok(i) => i,
            Err(e) => return Self::fail(e),
        };
        let (key, value) = (key.to_string(), value.to_string());
        self.write(move |c, ctx| sql::put_setting_once(c, ctx, &key, &value, &idem))
    }

    fn replayed(&self, idempotency: Idempotency) -> StoreFuture<'_, Option<Value>> {
        let idem = match sql::encode_idempotency(&idempotency) {
            Ok(i) => i,
            Err(e) => return Self::fail(e),
        };
        self.write(move |c, ctx| sql::idempotent_replay(c, ctx, &idem))
    }
}
