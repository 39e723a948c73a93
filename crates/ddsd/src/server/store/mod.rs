//! The control plane's durable state: instances, operations, idempotency records, the simulated data plane's
//! snapshots and a few settings.
//!
//! Layout:
//! - this module: the [`Store`] trait and the plain types it speaks. Nothing here mentions SQLite, so a
//!   PostgreSQL store (several ddsd replicas, operations claimed with a lease and a fencing epoch) can implement
//!   the same trait;
//! - [`sqlite`]: the embedded default, one SQLite file under the data directory;
//! - `schema`: the SQLite schema as an ordered list of migrations;
//! - `sql`: the SQL behind each method, as synchronous functions over one connection.
//!
//! Every method is one transaction. The methods that accept a request (`create_instance_with_operation`,
//! `begin_operation`) check the preconditions, change the instance's status and record the operation together,
//! so a client polling right after the call already sees the new status, and never sees a status without an
//! operation behind it. The methods the runtime uses to move an operation (`save_operation`,
//! `finish_operation`, `renew_lease`) carry the fencing epoch handed out by `claim_operation`: once another
//! claim has happened, a late writer gets [`StoreError::StaleEpoch`] and changes nothing.
//!
//! The trait is asynchronous (boxed futures, so `Arc<dyn Store>` works) because its callers are async and a
//! PostgreSQL client is natively async; the SQLite implementation runs its blocking work on its own threads.
//!
//! May use: `dds-engine`'s model and nothing else of ddsd. Used by the whole server; outside it only
//! the demo (the hand-over of `serve --demo`) and `ddsd bench soak` (its read-only
//! [`sqlite::integrity_check`]).

pub mod events;
mod sql;
pub mod sqlite;

mod schema;

#[cfg(test)]
mod bench;
#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod tests;

use dds_engine::model::{ChargeType, DbInstanceStatus, DbInstanceType, Instance, MaintainWindow};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use sqlite::{SqliteOptions, SqliteStore};

pub type StoreResult<T> = Result<T, StoreError>;

/// The future every [`Store`] method returns. Implementations copy what they need out of borrowed arguments
/// before returning, so the future only borrows the store.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = StoreResult<T>> + Send + 'a>>;

/// Settings under this prefix belong to one instance and are deleted with it (the wire protocol's
/// root account, for one).
pub fn instance_setting_prefix(instance_id: &str) -> String {
    format!("instance/{instance_id}/")
}

/// Waits for a store call from synchronous code on a tokio blocking thread (`spawn_blocking`, where the action
/// handlers run). Never call it from an async task: it would block a runtime worker (tokio refuses that with
/// a panic); async code simply `.await`s the future.
pub fn wait<T>(call: StoreFuture<'_, T>) -> StoreResult<T> {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle.block_on(call),
        Err(_) => Err(StoreError::Backend(
            "store call outside a tokio runtime".into(),
        )),
    }
}

/// Upper bounds on everything the store accepts, so no request can make it hold or return unbounded data.
pub mod limits {
    /// `PageSize` of DescribeDBInstances.
    pub const MAX_PAGE_SIZE: u32 = 100;
    /// Highest `PageNumber`; far beyond any fleet, low enough that the offset never overflows.
    pub const MAX_PAGE_NUMBER: u32 = 1_000_000;
    /// Ids, operation ids, holders.
    pub const MAX_ID_LEN: usize = 64;
    /// Any other indexed string (region, zone, class, VPC, filters).
    pub const MAX_FIELD_LEN: usize = 256;
    /// `DBInstanceDescription` (the vendor allows 2–256 characters).
    pub const MAX_DESCRIPTION_LEN: usize = 256;
    /// Tags per instance (the vendor's limit is 20).
    pub const MAX_TAGS: usize = 20;
    pub const MAX_TAG_LEN: usize = 128;
    /// Kernel changes in one instance update.
    pub const MAX_KERNEL_UPDATES: usize = 1_000;
    /// Instance ids in one DescribeDBInstances filter.
    pub const MAX_FILTER_IDS: usize = 100;
    /// A serialised instance.
    pub const MAX_INSTANCE_BYTES: usize = 256 * 1024;
    /// A serialised operation state.
    pub const MAX_STATE_BYTES: usize = 4 * 1024 * 1024;
    /// A serialised operation report.
    pub const MAX_REPORT_BYTES: usize = 1024 * 1024;
    /// `ClientToken` (the vendor: at most 64 ASCII characters).
    pub const MAX_CLIENT_TOKEN_LEN: usize = 64;
    pub const MAX_IDEMPOTENCY_SCOPE_LEN: usize = 256;
    pub const MAX_FINGERPRINT_LEN: usize = 256;
    /// The response replayed for a repeated `ClientToken`.
    pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;
    /// A serialised data-plane snapshot.
    pub const MAX_SNAPSHOT_BYTES: usize = 16 * 1024 * 1024;
    pub const MAX_SETTING_KEY_LEN: usize = 128;
    pub const MAX_SETTING_BYTES: usize = 1024 * 1024;
    /// Rows returned by the operation listings.
    pub const MAX_LIST_LIMIT: u32 = 10_000;
}

/// What an operation does to its instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OperationKind {
    Create,
    Delete,
    Upgrade,
    Restart,
    /// `SwitchDBInstanceHA`: a planned primary switch.
    Switch,
    /// `UpgradeDBInstanceEngineVersion`: one major version step.
    EngineUpgrade,
    /// `ModifyDBInstanceSpec` / `ModifyNodeSpec`: a rolling restart onto another class.
    ClassChange,
}

impl OperationKind {
    pub const ALL: &'static [OperationKind] = &[
        OperationKind::Create,
        OperationKind::Delete,
        OperationKind::Upgrade,
        OperationKind::Restart,
        OperationKind::Switch,
        OperationKind::EngineUpgrade,
        OperationKind::ClassChange,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            OperationKind::Create => "create",
            OperationKind::Delete => "delete",
            OperationKind::Upgrade => "upgrade",
            OperationKind::Restart => "restart",
            OperationKind::Switch => "switch",
            OperationKind::EngineUpgrade => "engine_upgrade",
            OperationKind::ClassChange => "class_change",
        }
    }
}

impl fmt::Display for OperationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OperationKind {
    type Err = StoreError;
    fn from_str(s: &str) -> StoreResult<Self> {
        OperationKind::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown operation kind {s:?}")))
    }
}

/// Where an operation is in its life. `Pending` and `Running` are unfinished; an instance has at most one
/// unfinished operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OperationStatus {
    /// Recorded by a handler, never claimed by a runtime.
    Pending,
    /// Claimed at least once.
    Running,
    Succeeded,
    Failed,
}

impl OperationStatus {
    pub const ALL: &'static [OperationStatus] = &[
        OperationStatus::Pending,
        OperationStatus::Running,
        OperationStatus::Succeeded,
        OperationStatus::Failed,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            OperationStatus::Pending => "pending",
            OperationStatus::Running => "running",
            OperationStatus::Succeeded => "succeeded",
            OperationStatus::Failed => "failed",
        }
    }
    pub fn is_finished(self) -> bool {
        matches!(self, OperationStatus::Succeeded | OperationStatus::Failed)
    }
}

impl fmt::Display for OperationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OperationStatus {
    type Err = StoreError;
    fn from_str(s: &str) -> StoreResult<Self> {
        OperationStatus::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown operation status {s:?}")))
    }
}

/// How a finished operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OperationOutcome {
    Succeeded,
    Failed,
}

impl From<OperationOutcome> for OperationStatus {
    fn from(o: OperationOutcome) -> Self {
        match o {
            OperationOutcome::Succeeded => OperationStatus::Succeeded,
            OperationOutcome::Failed => OperationStatus::Failed,
        }
    }
}

/// An operation as a handler records it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOperation {
    /// Chosen by the caller (a UUID), unique across the store.
    pub id: String,
    pub kind: OperationKind,
    /// The workflow's initial state, as the runtime will read it back.
    pub state: Value,
}

/// An operation as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub id: String,
    pub instance_id: String,
    pub kind: OperationKind,
    pub status: OperationStatus,
    /// The workflow state after the last persisted transition.
    pub state: Value,
    /// Fencing epoch: 0 until the first claim. Every claim takes the next value of one store-wide counter,
    /// so epochs only grow, across operations too, and a data plane can refuse commands carrying an epoch
    /// older than the newest it has seen.
    pub epoch: u64,
    pub lease_holder: Option<String>,
    pub lease_until_ms: Option<u64>,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub finished_ms: Option<u64>,
    /// What the workflow reported when it finished.
    pub report: Option<Value>,
}

/// A `ClientToken` and what the request carrying it looked like, so a retried request gets the original
/// answer and a different request reusing the token is refused (`IdempotentParameterMismatch`).
#[derive(Debug, Clone, PartialEq)]
pub struct Idempotency {
    /// Who and what the token belongs to, e.g. `<AccessKeyId>/CreateDBInstance`; tokens of different scopes
    /// never collide.
    pub scope: String,
    pub client_token: String,
    /// A digest of the request's business parameters, computed by the caller.
    pub fingerprint: String,
    /// The response to replay for a repeated request.
    pub response: Value,
}

/// The result of a request that records an operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Accepted {
    /// Recorded now; `instance` is the instance as stored by this transaction.
    New {
        instance: Box<Instance>,
        operation_id: String,
    },
    /// The same `ClientToken` with the same fingerprint was accepted before: nothing changed, answer with the
    /// original response.
    Replayed { response: Value },
}

/// A change the runtime makes to its instance while moving an operation. Applied to the stored instance
/// inside the transaction, so attributes a handler changed meanwhile (description, maintenance window) are
/// kept.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceUpdate {
    pub status: Option<DbInstanceStatus>,
    /// `(node_id, kernel)`: the per-process `CurrentKernelVersion` as observed.
    pub kernel_versions: Vec<(String, String)>,
    /// A class change that succeeded: the new class (and storage) of the instance or of one node.
    pub spec: Option<SpecUpdate>,
    /// A new `EngineVersion` (a finished major version upgrade).
    pub engine_version: Option<String>,
}

/// The class (and storage) a succeeded `ModifyDBInstanceSpec` / `ModifyNodeSpec` leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecUpdate {
    /// `None`: the instance (`DBInstanceClass`); else a shard, the config server or a mongos.
    pub node_id: Option<String>,
    pub class: String,
    pub storage_gb: Option<u32>,
}

impl InstanceUpdate {
    pub fn status(status: DbInstanceStatus) -> Self {
        Self {
            status: Some(status),
            ..Self::default()
        }
    }
    pub fn is_empty(&self) -> bool {
        self.status.is_none()
            && self.kernel_versions.is_empty()
            && self.spec.is_none()
            && self.engine_version.is_none()
    }
}

/// What finishing an operation does to its instance.
#[derive(Debug, Clone, PartialEq)]
pub enum InstanceChange {
    Update(InstanceUpdate),
    /// Remove the instance and everything that belongs to it (its operations included).
    Remove,
}

/// Everything `finish_operation` writes.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationFinish {
    pub outcome: OperationOutcome,
    pub state: Value,
    pub report: Option<Value>,
    pub instance: InstanceChange,
}

/// Changes to an instance's own attributes that need no operation (ModifyDBInstanceDescription,
/// ModifyDBInstanceMaintainTime). `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstancePatch {
    pub description: Option<String>,
    pub maintain_window: Option<MaintainWindow>,
    /// The instance's whole tag list (`TagResources`, `UntagResources`).
    pub tags: Option<Vec<dds_engine::model::Tag>>,
    /// `ModifyResourceGroup`.
    pub resource_group_id: Option<String>,
}

/// A `Tag.N.Key` / `Tag.N.Value` filter; without a value any value matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagFilter {
    pub key: String,
    pub value: Option<String>,
}

/// The DescribeDBInstances filters. Every set field must match.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceFilter {
    /// `DBInstanceType`. The vendor lists replica sets and standalones for `replicate` (the default) and
    /// sharded clusters only when `sharding` is asked for.
    pub instance_type: DbInstanceType,
    pub region_id: Option<String>,
    /// `DBInstanceId`; empty = any.
    pub ids: Vec<String>,
    pub status: Option<DbInstanceStatus>,
    pub engine: Option<String>,
    pub engine_version: Option<String>,
    pub class: Option<String>,
    /// Substring of `DBInstanceDescription`.
    pub description: Option<String>,
    pub charge_type: Option<ChargeType>,
    pub zone_id: Option<String>,
    pub vpc_id: Option<String>,
    pub vswitch_id: Option<String>,
    pub network_type: Option<String>,
    pub resource_group_id: Option<String>,
    pub replication_factor: Option<u32>,
    pub tags: Vec<TagFilter>,
}

impl Default for InstanceFilter {
    fn default() -> Self {
        Self {
            instance_type: DbInstanceType::Replicate,
            region_id: None,
            ids: Vec::new(),
            status: None,
            engine: None,
            engine_version: None,
            class: None,
            description: None,
            charge_type: None,
            zone_id: None,
            vpc_id: None,
            vswitch_id: None,
            network_type: None,
            resource_group_id: None,
            replication_factor: None,
            tags: Vec::new(),
        }
    }
}

/// `PageNumber` (from 1) and `PageSize` (1–100).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub number: u32,
    pub size: u32,
}

impl Page {
    pub fn new(number: u32, size: u32) -> StoreResult<Page> {
        if number == 0 || number > limits::MAX_PAGE_NUMBER {
            return Err(StoreError::Invalid(format!(
                "page number must be 1..={}",
                limits::MAX_PAGE_NUMBER
            )));
        }
        if size == 0 || size > limits::MAX_PAGE_SIZE {
            return Err(StoreError::Invalid(format!(
                "page size must be 1..={}",
                limits::MAX_PAGE_SIZE
            )));
        }
        Ok(Page { number, size })
    }
    pub fn offset(self) -> u64 {
        u64::from(self.number - 1) * u64::from(self.size)
    }
}

/// One page of instances, newest first (creation time descending, then id ascending), and how many match.
#[derive(Debug, Clone, PartialEq)]
pub struct InstancePage {
    pub instances: Vec<Instance>,
    pub total: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("instance {0} does not exist")]
    InstanceNotFound(String),
    #[error("operation {0} does not exist")]
    OperationNotFound(String),
    #[error("instance {0} already exists")]
    InstanceExists(String),
    #[error("operation {0} already exists")]
    OperationExists(String),
    /// The instance is not in one of the statuses the request needs (`OperationDenied.DBInstanceStatus`).
    #[error("instance {instance_id} is {actual}")]
    StatusMismatch {
        instance_id: String,
        actual: DbInstanceStatus,
    },
    /// Another operation on the instance has not finished (`OperationDenied.DBInstanceStatus`).
    #[error("instance {instance_id} has an unfinished operation {operation_id}")]
    OperationInProgress {
        instance_id: String,
        operation_id: String,
    },
    /// The `ClientToken` was used before with different parameters.
    #[error("client token reused with different parameters")]
    IdempotentParameterMismatch,
    /// Somebody claimed the operation after the caller did: the caller must stop driving it.
    #[error("operation {operation_id}: epoch {presented} is stale (current {current})")]
    StaleEpoch {
        operation_id: String,
        presented: u64,
        current: u64,
    },
    /// Another holder's lease on the operation has not expired.
    #[error("operation {operation_id} is leased by {holder} until {until_ms}")]
    LeaseHeld {
        operation_id: String,
        holder: String,
        until_ms: u64,
    },
    #[error("operation {0} has already finished")]
    OperationFinished(String),
    /// An argument is out of bounds or malformed; nothing was changed.
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// Another store (in this or another process) has the database open.
    #[error("{0} is in use by another ddsd")]
    Locked(String),
    /// The database was written by a newer ddsd.
    #[error("database schema version {found} is newer than this ddsd supports ({supported})")]
    SchemaTooNew { found: u32, supported: u32 },
    /// Stored data that does not decode: a bug or a damaged file, never the client's fault.
    #[error("stored data does not decode: {0}")]
    Corrupt(String),
    /// The store has shut down.
    #[error("the store is closed")]
    Closed,
    /// The database failed (I/O, locking); the transaction was rolled back and may be retried.
    #[error("database error: {0}")]
    Backend(String),
}

impl StoreError {
    /// Whether retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Backend(_))
    }
}

/// Wall-clock milliseconds since the Unix epoch, replaceable in tests (lease expiry, token expiry).
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> u64 + Send + Sync>);

impl Clock {
    pub fn system() -> Clock {
        Clock(Arc::new(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64)
        }))
    }
    /// A clock that reads `ms`; tests move it by storing into the atomic.
    pub fn manual(ms: Arc<AtomicU64>) -> Clock {
        Clock(Arc::new(move || ms.load(Ordering::SeqCst)))
    }
    /// The system clock plus a skew that tests can move forward (e.g. to let a lease lapse).
    pub fn skewed(skew_ms: Arc<AtomicU64>) -> Clock {
        let system = Clock::system();
        Clock(Arc::new(move || {
            system
                .now_ms()
                .saturating_add(skew_ms.load(Ordering::SeqCst))
        }))
    }
    pub fn now_ms(&self) -> u64 {
        (self.0)()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Clock({})", self.now_ms())
    }
}

/// ddsd's durable state. One call = one transaction; see the module docs for the rules.
pub trait Store: Send + Sync + 'static {
    /// The instance with this `DBInstanceId`.
    fn get_instance(&self, id: &str) -> StoreFuture<'_, Option<Instance>>;

    /// DescribeDBInstances: one page of the instances matching `filter` and the total count.
    fn list_instances(&self, filter: &InstanceFilter, page: Page) -> StoreFuture<'_, InstancePage>;

    /// CreateDBInstance / CreateShardingDBInstance: stores a new instance (status as given, normally
    /// `Creating`) and its create operation. With a `ClientToken` seen before: the original response when the
    /// fingerprint matches, [`StoreError::IdempotentParameterMismatch`] when not.
    fn create_instance_with_operation(
        &self,
        instance: Instance,
        operation: NewOperation,
        idempotency: Option<Idempotency>,
    ) -> StoreFuture<'_, Accepted>;

    /// Accepts a request that starts an operation on an existing instance: checks that the instance is in one
    /// of `expected` statuses and has no unfinished operation, sets its status to `new_status` and records
    /// `operation`, all at once. Idempotency as for `create_instance_with_operation`.
    fn begin_operation(
        &self,
        instance_id: &str,
        expected: &[DbInstanceStatus],
        new_status: DbInstanceStatus,
        operation: NewOperation,
        idempotency: Option<Idempotency>,
    ) -> StoreFuture<'_, Accepted>;

    /// Changes attributes that need no operation; returns the updated instance.
    fn modify_instance(&self, id: &str, patch: InstancePatch) -> StoreFuture<'_, Instance>;

    /// Removes an instance with its operations and data-plane snapshot. Refused while it has an unfinished
    /// operation. `false` when it did not exist.
    fn delete_instance(&self, id: &str) -> StoreFuture<'_, bool>;

    fn get_operation(&self, id: &str) -> StoreFuture<'_, Option<Operation>>;

    /// An instance's operations, newest first, at most `limit`.
    fn list_operations(&self, instance_id: &str, limit: u32) -> StoreFuture<'_, Vec<Operation>>;

    /// Pending and running operations, oldest first, at most `limit`.
    fn unfinished_operations(&self, limit: u32) -> StoreFuture<'_, Vec<Operation>>;

    /// Operations of every instance recorded (`created_ms`) from `from_ms` to `to_ms` inclusive, newest
    /// first, at most `limit` (the task center's listing).
    fn operations_created_between(
        &self,
        from_ms: u64,
        to_ms: u64,
        limit: u32,
    ) -> StoreFuture<'_, Vec<Operation>>;

    /// Takes ownership of an unfinished operation for `lease_ms`: gives it a new epoch (fencing every earlier
    /// claim) and marks it running. Refused while another holder's lease is live; the same holder may
    /// re-claim at once (a restarted single-node ddsd).
    fn claim_operation(&self, id: &str, holder: &str, lease_ms: u64) -> StoreFuture<'_, Operation>;

    /// Persists a transition: the new workflow state and a change to the instance (may be empty). Extends the
    /// lease. Fails with [`StoreError::StaleEpoch`] once the operation was claimed again.
    fn save_operation(
        &self,
        id: &str,
        epoch: u64,
        state: Value,
        update: InstanceUpdate,
    ) -> StoreFuture<'_, ()>;

    /// Extends the lease without changing anything else.
    fn renew_lease(&self, id: &str, epoch: u64) -> StoreFuture<'_, ()>;

    /// Ends an operation and applies its final change to the instance, fenced like `save_operation`.
    fn finish_operation(
        &self,
        id: &str,
        epoch: u64,
        finish: OperationFinish,
    ) -> StoreFuture<'_, ()>;

    /// The simulated data plane's state of one instance's deployment.
    fn save_plane_snapshot(&self, instance_id: &str, snapshot: Value) -> StoreFuture<'_, ()>;
    fn load_plane_snapshot(&self, instance_id: &str) -> StoreFuture<'_, Option<Value>>;
    /// `false` when there was none.
    fn delete_plane_snapshot(&self, instance_id: &str) -> StoreFuture<'_, bool>;
    /// The instances that have a data-plane snapshot, in id order (what a restarted plane serves).
    fn plane_snapshot_ids(&self) -> StoreFuture<'_, Vec<String>>;

    /// Scheduled O&M events: records new waiting events in one transaction, answering their ids.
    fn add_active_tasks(&self, tasks: Vec<events::NewActiveTask>) -> StoreFuture<'_, Vec<i64>>;
    /// Events matching the filter, by id, at most `limit`.
    fn list_active_tasks(
        &self,
        filter: events::ActiveTaskFilter,
        limit: u32,
    ) -> StoreFuture<'_, Vec<events::ActiveTask>>;
    /// Changes every event in `ids` or none (each must exist and be in one of `from`), answering
    /// the events as changed.
    fn modify_active_tasks(
        &self,
        ids: Vec<i64>,
        from: Vec<u8>,
        patch: events::ActiveTaskPatch,
    ) -> StoreFuture<'_, Result<Vec<events::ActiveTask>, events::TaskRefusal>>;

    fn get_setting(&self, key: &str) -> StoreFuture<'_, Option<String>>;
    fn put_setting(&self, key: &str, value: &str) -> StoreFuture<'_, ()>;

    /// `DdsdImportDBInstance`: stores an instance that already runs somewhere (no create operation)
    /// together with its settings, at once. [`StoreError::InstanceExists`] when the id is taken.
    fn import_instance(
        &self,
        instance: Instance,
        settings: Vec<(String, String)>,
    ) -> StoreFuture<'_, ()>;

    /// Writes a setting together with a `ClientToken` record, in one transaction. `Some(response)`:
    /// the token was used before for the same request, nothing was written, answer that response
    /// (a different request reusing it is `IdempotentParameterMismatch`).
    fn put_setting_once(
        &self,
        key: &str,
        value: &str,
        idempotency: Idempotency,
    ) -> StoreFuture<'_, Option<Value>>;

    /// The response recorded for this `ClientToken` and request, if any (a different request reusing
    /// the token is `IdempotentParameterMismatch`); nothing is written.
    fn replayed(&self, idempotency: Idempotency) -> StoreFuture<'_, Option<Value>>;
}
