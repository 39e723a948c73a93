//! The runtime: the task that moves operations forward.
//!
//! Handlers only record intent (an operation in the store, in the same transaction as the status change).
//! The runtime finds unfinished operations — at start, when a handler calls [`RuntimeHandle::notify`], and
//! on a slow periodic rescan — claims each one (a new fencing epoch, exclusive per instance) and drives it:
//!
//! ```text
//! loop {
//!     observe the deployment (fresh, from the data plane)
//!     step the operation's state machine (pure)
//!     persist the new state + instance change          <- before acting
//!     execute the effects on the data plane, feed each result back
//!     persist again
//!     or: wait (until the state machine's deadline, capped at the poll interval)
//!     or: finish (state, report, final instance change: one transaction)
//! }
//! ```
//!
//! Every store write and every data-plane change carries the epoch; once anybody claimed the operation
//! since (the store) or announced a newer claim to the plane ([`DataPlane::fence`], right after claiming),
//! the call fails and this driver stops without touching anything else. Any other failure (store or plane unavailable) abandons the
//! in-memory state and restarts the driver after a backoff from what was persisted plus a fresh
//! observation — exactly the path a restart after a crash takes. That is why dropping a [`Runtime`] at any
//! point, or killing the process, is safe: [`Runtime::start`] on the same store resumes every unfinished
//! operation.
//!
//! - [`operation`]: the operation-kind dispatch ([`OperationState`]) over create, delete, upgrade, restart;
//! - [`provision`]: the create and delete workflows, whose state machines are `dds_engine::workflow::provision`.
//!
//! May use: `store`, `plane`, `metrics` and `dds-engine`. Used by the serve wiring and by `actions`
//! (to wake the runtime and read operation states); never by the client or the tools.

pub mod operation;
pub mod provision;

#[cfg(test)]
mod tests;

pub use dds_engine::workflow::provision::ProvisionConfig;
pub use operation::{Completion, Effect, OperationState, Step};

use crate::server::plane::{DataPlane, PlaneError};
use crate::server::store::{InstanceUpdate, Operation, OperationFinish, Store, StoreError};
use dds_engine::plane::CommandError;
use dds_engine::workflow::provision::PlaneEffect;
use operation::apply_update;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tracing::Instrument;

#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// The lease holder name. A single-node ddsd keeps the same name across restarts, so it re-claims its own
    /// operations at once; replicas sharing a PostgreSQL store need distinct names.
    pub holder_id: String,
    /// Operations driven at the same time; the rest wait their turn (oldest first).
    pub max_concurrent_operations: usize,
    /// Longest stretch of plane time between two observations while an operation waits.
    pub poll_interval_ms: u64,
    /// Wall-clock bounds on that sleep: never spin faster than the minimum (a fast simulation), never wait
    /// longer than the maximum.
    pub min_poll_wall_ms: u64,
    pub max_poll_wall_ms: u64,
    /// Wall-clock lease on a claimed operation; renewed by every write and at a third of its length.
    pub lease_ms: u64,
    /// Backoff before re-driving an operation whose driver hit a store or plane error.
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    /// Wall-clock period of the rescan that catches operations nobody notified about.
    pub rescan_interval_ms: u64,
    /// Unfinished operations read per scan.
    pub scan_limit: u32,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            holder_id: "ddsd".into(),
            max_concurrent_operations: 16,
            poll_interval_ms: 1_000,
            min_poll_wall_ms: 10,
            max_poll_wall_ms: 1_000,
            lease_ms: 60_000,
            retry_initial_ms: 200,
            retry_max_ms: 30_000,
            rescan_interval_ms: 5_000,
            scan_limit: 1_000,
        }
    }
}

/// A cheap handle for handlers: tells the runtime that an operation was recorded.
#[derive(Clone)]
pub struct RuntimeHandle {
    notify: Arc<Notify>,
}

impl RuntimeHandle {
    pub fn notify(&self) {
        // `notify_one` keeps a permit when the supervisor is busy, so no notification is lost.
        self.notify.notify_one();
    }
}

/// The running runtime. Dropping it aborts every driver at its next await point (what was persisted stays,
/// as after a crash).
pub struct Runtime {
    handle: RuntimeHandle,
    stop: watch::Sender<bool>,
    supervisor: Option<JoinHandle<()>>,
}

impl Runtime {
    /// Starts driving every unfinished operation in `store` on `plane`. Must be called inside a tokio runtime.
    pub fn start(
        store: Arc<dyn Store>,
        plane: Arc<dyn DataPlane>,
        config: RuntimeConfig,
    ) -> Runtime {
        let notify = Arc::new(Notify::new());
        let (stop, stopped) = watch::channel(false);
        let shared = Arc::new(Shared {
            store,
            plane,
            config,
        });
        let supervisor = tokio::spawn(supervise(shared, notify.clone(), stopped));
        Runtime {
            handle: RuntimeHandle { notify },
            stop,
            supervisor: Some(supervisor),
        }
    }

    pub fn handle(&self) -> RuntimeHandle {
        self.handle.clone()
    }

    /// Stops every driver and waits until all are gone (graceful shutdown of ddsd).
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(supervisor) = self.supervisor.take() {
            let _ = supervisor.await;
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(supervisor) = &self.supervisor {
            supervisor.abort();
        }
    }
}

struct Shared {
    store: Arc<dyn Store>,
    plane: Arc<dyn DataPlane>,
    config: RuntimeConfig,
}

/// Why a driver stopped before its operation finished.
enum DriveError {
    /// Somebody else owns the operation now (a newer claim, in the store or at the plane), or it is gone:
    /// nothing more to do here.
    Lost(String),
    /// Store or plane trouble: re-drive from the persisted state after a backoff.
    Retry(String),
    /// The persisted state does not decode; retrying will not help. Left unfinished and visible, retried
    /// only at the slowest pace.
    Broken(String),
}

impl From<StoreError> for DriveError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::StaleEpoch { .. }
            | StoreError::LeaseHeld { .. }
            | StoreError::OperationFinished(_)
            | StoreError::OperationNotFound(_)
            | StoreError::InstanceNotFound(_) => DriveError::Lost(e.to_string()),
            _ => DriveError::Retry(format!("store: {e}")),
        }
    }
}

impl From<PlaneError> for DriveError {
    fn from(e: PlaneError) -> Self {
        match e {
            PlaneError::Fenced { .. } => DriveError::Lost(e.to_string()),
            _ => DriveError::Retry(format!("data plane: {e}")),
        }
    }
}

async fn supervise(shared: Arc<Shared>, notify: Arc<Notify>, mut stopped: watch::Receiver<bool>) {
    let cfg = &shared.config;
    let permits = Arc::new(Semaphore::new(cfg.max_concurrent_operations.max(1)));
    let mut drivers: JoinSet<(String, Result<(), DriveError>)> = JoinSet::new();
    let mut running: HashMap<tokio::task::Id, String> = HashMap::new();
    // Consecutive failures and the earliest next attempt, per operation.
    let mut backoff: HashMap<String, (u32, Instant)> = HashMap::new();
    let rescan = Duration::from_millis(cfg.rescan_interval_ms.max(1));
    loop {
        match shared.store.unfinished_operations(cfg.scan_limit).await {
            Ok(ops) => {
                let now = Instant::now();
                for op in ops {
                    if running.values().any(|id| *id == op.id)
                        || backoff.get(&op.id).is_some_and(|(_, at)| *at > now)
                    {
                        continue;
                    }
                    let Ok(permit) = permits.clone().try_acquire_owned() else {
                        break;
                    };
                    let shared = shared.clone();
                    let span = tracing::info_span!("operation", id = %op.id, instance = %op.instance_id, kind = %op.kind);
                    let op_id = op.id.clone();
                    let task = drivers.spawn(
                        async move {
                            let _permit = permit;
                            let id = op.id.clone();
                            (id, drive(&shared, op).await)
                        }
                        .instrument(span),
                    );
                    running.insert(task.id(), op_id);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list unfinished operations"),
        }
        // The next moment a backed-off operation may run again bounds the wait.
        let now = Instant::now();
        let wake = backoff
            .values()
            .map(|(_, at)| at.saturating_duration_since(now))
            .filter(|d| !d.is_zero())
            .min()
            .map_or(rescan, |d| d.min(rescan));
        tokio::select! {
            _ = stopped.changed() => {
                drivers.shutdown().await;
                return;
            }
            _ = notify.notified() => {}
            Some(done) = drivers.join_next_with_id(), if !drivers.is_empty() => {
                let (task, result) = match done {
                    Ok((task, (id, result))) => (task, Some((id, result))),
                    Err(e) => (e.id(), None),
                };
                let op_id = running.remove(&task);
                match result {
                    Some((id, Ok(()))) => {
                        backoff.remove(&id);
                    }
                    Some((id, Err(DriveError::Lost(why)))) => {
                        // Somebody else holds it: look again at the next rescan, not in a tight loop.
                        tracing::info!(operation = %id, %why, "stopped driving");
                        backoff.insert(id, (0, Instant::now() + rescan));
                    }
                    Some((id, Err(err))) => {
                        let (n, _) = backoff.get(&id).copied().unwrap_or((0, now));
                        let n = n.saturating_add(1);
                        let (delay, why) = match err {
                            DriveError::Broken(why) => (Duration::from_millis(cfg.retry_max_ms), why),
                            DriveError::Retry(why) | DriveError::Lost(why) => (retry_delay(cfg, n), why),
                        };
                        tracing::warn!(operation = %id, attempt = n, retry_in_ms = delay.as_millis() as u64, error = %why, "operation driver failed");
                        backoff.insert(id, (n, Instant::now() + delay));
                    }
                    None => {
                        // A panicking driver is a bug; treat it like an error so it is retried, slowly.
                        if let Some(id) = op_id {
                            tracing::error!(operation = %id, "operation driver panicked");
                            backoff.insert(id, (u32::MAX, Instant::now() + Duration::from_millis(cfg.retry_max_ms)));
                        }
                    }
                }
            }
            _ = tokio::time::sleep(wake) => {}
        }
        // Forget backoffs of operations that are no longer unfinished (bounded by the scan anyway).
        if backoff.len() > cfg.scan_limit as usize {
            let now = Instant::now();
            backoff.retain(|_, (_, at)| *at > now);
        }
    }
}

fn retry_delay(cfg: &RuntimeConfig, attempt: u32) -> Duration {
    let shift = attempt.saturating_sub(1).min(20);
    Duration::from_millis(
        cfg.retry_initial_ms
            .saturating_mul(1 << shift)
            .min(cfg.retry_max_ms),
    )
}

/// Persists `state` and `update` under the claim.
struct Persist<'a> {
    shared: &'a Shared,
    op_id: String,
    epoch: u64,
    last_state: serde_json::Value,
    last_write: Instant,
}

impl Persist<'_> {
    /// Writes unless nothing changed (`force` writes anyway: the intent before effects).
    async fn save(
        &mut self,
        state: &OperationState,
        update: InstanceUpdate,
        force: bool,
    ) -> Result<(), DriveError> {
        let json = state.to_json();
        if !force && json == self.last_state && update.is_empty() {
            return Ok(());
        }
        self.shared
            .store
            .save_operation(&self.op_id, self.epoch, json.clone(), update)
            .await?;
        self.last_state = json;
        self.last_write = Instant::now();
        Ok(())
    }

    async fn keep_lease(&mut self) -> Result<(), DriveError> {
        let third = Duration::from_millis(self.shared.config.lease_ms / 3);
        if self.last_write.elapsed() >= third {
            self.shared
                .store
                .renew_lease(&self.op_id, self.epoch)
                .await?;
            self.last_write = Instant::now();
        }
        Ok(())
    }
}

async fn drive(shared: &Shared, op: Operation) -> Result<(), DriveError> {
    let cfg = &shared.config;
    let (store, plane) = (&shared.store, &shared.plane);
    let claimed = store
        .claim_operation(&op.id, &cfg.holder_id, cfg.lease_ms)
        .await?;
    let epoch = claimed.epoch;
    let mut state = OperationState::from_json(claimed.kind, claimed.state.clone())
        .map_err(|e| DriveError::Broken(format!("stored state does not decode: {e}")))?;
    let Some(mut instance) = store.get_instance(&claimed.instance_id).await? else {
        return Err(DriveError::Lost("the instance is gone".into()));
    };
    // From here on the plane refuses anything an older claim of this instance still tries.
    plane.fence(&instance.id, epoch).await?;
    tracing::info!(epoch, "driving operation");
    let mut persist = Persist {
        shared,
        op_id: claimed.id.clone(),
        epoch,
        last_state: claimed.state,
        last_write: Instant::now(),
    };
    let min_wall = Duration::from_millis(cfg.min_poll_wall_ms);
    let max_wall = Duration::from_millis(cfg.max_poll_wall_ms.max(cfg.min_poll_wall_ms));
    state.follow_maintain_window(instance.maintain_window);
    let mut window_read = Instant::now();
    loop {
        // A deferred operation starts in the window the instance has now (ModifyDBInstanceMaintainTime may
        // move it while the operation waits); read it at most once per longest sleep.
        if state.waits_for_window() && window_read.elapsed() >= max_wall {
            window_read = Instant::now();
            if let Some(current) = store.get_instance(&instance.id).await? {
                instance.maintain_window = current.maintain_window;
                state.follow_maintain_window(current.maintain_window);
            }
        }
        let obs = plane.observe(&instance.id).await?;
        // The deployment's own time when it was seen (a remote deployment's clock is its own).
        let now = obs.as_ref().map_or_else(|| plane.now_ms(), |o| o.now_ms);
        let step = state.step(&instance, obs.as_ref(), now);
        let update = state.instance_update(&instance, obs.as_ref());
        match step {
            Step::Done(done) => {
                let outcome = done.outcome;
                let report = done.report;
                let finish = OperationFinish {
                    outcome,
                    state: state.to_json(),
                    report: Some(report.clone()),
                    instance: done.instance,
                };
                store
                    .finish_operation(&persist.op_id, epoch, finish)
                    .await?;
                tracing::info!(outcome = ?outcome, "operation finished");
                crate::server::metrics::global().operation_finished(
                    state.kind().as_str(),
                    crate::server::store::OperationStatus::from(outcome).as_str(),
                    &report,
                );
                return Ok(());
            }
            Step::Effects(effects) => {
                // The intent is durable before anything is done.
                persist.save(&state, update.clone(), true).await?;
                apply_update(&mut instance, &update);
                for effect in &effects {
                    let result =
                        execute(plane.as_ref(), &instance, epoch, &persist.op_id, effect).await?;
                    match &result {
                        Err(e) => tracing::info!(?effect, error = %e, "the data plane refused"),
                        Ok(()) => tracing::debug!(?effect, "executed"),
                    }
                    state.on_result(effect, result, plane.now_ms());
                }
                persist
                    .save(&state, InstanceUpdate::default(), false)
                    .await?;
                // Let the effects take hold before the next observation.
                tokio::time::sleep(min_wall).await;
            }
            Step::WaitUntil(t) => {
                persist.save(&state, update.clone(), false).await?;
                apply_update(&mut instance, &update);
                persist.keep_lease().await?;
                let plane_wait = t.saturating_sub(now).clamp(1, cfg.poll_interval_ms.max(1));
                let wall = plane.wall_duration(plane_wait).clamp(min_wall, max_wall);
                tokio::time::sleep(wall).await;
            }
        }
    }
}

async fn execute(
    plane: &dyn DataPlane,
    instance: &dds_engine::model::Instance,
    epoch: u64,
    operation_id: &str,
    effect: &Effect,
) -> Result<Result<(), CommandError>, PlaneError> {
    match effect {
        Effect::Plane(PlaneEffect::Provision) => plane.provision(instance, epoch).await,
        Effect::Plane(PlaneEffect::Deprovision) => plane.deprovision(&instance.id, epoch).await,
        Effect::Command(cmd) => plane.execute(&instance.id, epoch, operation_id, cmd).await,
    }
}
