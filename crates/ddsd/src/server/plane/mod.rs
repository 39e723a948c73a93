//! The data plane as the runtime sees it: observe an instance's deployment, execute workflow commands,
//! provision and deprovision deployments, and (for tests and demos) inject faults.
//!
//! - this module: the [`DataPlane`] trait and [`PlaneClock`], the plane's own time base;
//! - [`mongodb`]: deployments ddsd does not own, through the official driver and host agents;
//! - [`sim`]: the default implementation, one simulated fleet (`dds_engine::sim::SimFleet`) per instance on
//!   real time scaled by a speed factor, persisted in the store so a restart of ddsd does not reset the
//!   simulated deployments.
//!
//! Time: every plane has a clock in milliseconds ([`DataPlane::now_ms`]). Observations are stamped with it
//! and the workflows' deadlines (`WaitUntil`) are expressed in it; [`DataPlane::wall_duration`] converts a
//! stretch of plane time into how long the runtime actually sleeps. For a real deployment both clocks are the
//! wall clock; for the simulation, plane time runs `sim_speed` times faster.
//!
//! May use: `store` (snapshots, clock) and `dds-engine`. Used by `runtime`, `actions` (the fault
//! extensions) and the serve wiring; never by the client or the tools.

pub mod data;
pub mod mongodb;
pub mod ports;
pub mod sim;

use crate::server::store::{Clock, Store, StoreError};
use dds_engine::model::Instance;
use dds_engine::plane::{Command, CommandError, DeploymentObservation, Millis};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub type PlaneResult<T> = Result<T, PlaneError>;
pub type PlaneFuture<'a, T> = Pin<Box<dyn Future<Output = PlaneResult<T>> + Send + 'a>>;

/// The plane could not be asked, or could not record the answer. Unlike a [`CommandError`] (the plane
/// answered "no"), the outcome of the request is unknown: the caller re-observes and decides again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaneError {
    #[error("data-plane state could not be stored: {0}")]
    Store(#[from] StoreError),
    /// Stored data-plane state that does not decode.
    #[error("data-plane state does not decode: {0}")]
    Corrupt(String),
    #[error("invalid fault: {0}")]
    InvalidFault(String),
    #[error("this data plane does not support {0}")]
    Unsupported(&'static str),
    #[error("invalid data-plane configuration: {0}")]
    Config(String),
    /// The deployment (or its agent) did not answer: the outcome is unknown, observe again later.
    #[error("the deployment is unavailable: {0}")]
    Unavailable(String),
    /// A newer claim on an operation of this instance has reached the plane; the caller must stop.
    #[error("instance {instance_id}: fencing epoch {presented} is older than {current}")]
    Fenced {
        instance_id: String,
        presented: u64,
        current: u64,
    },
}

/// The MongoDB address of every process of one deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// The host clients connect to.
    pub host: String,
    /// By node id.
    pub ports: std::collections::BTreeMap<String, u16>,
}

impl Endpoints {
    /// `host:port` of `node_id`.
    pub fn address(&self, node_id: &str) -> Option<String> {
        self.ports
            .get(node_id)
            .map(|p| format!("{}:{p}", self.host))
    }
}

/// What the runtime needs from the deployments it manages.
pub trait DataPlane: Send + Sync + 'static {
    /// The plane's clock, ms.
    fn now_ms(&self) -> Millis;

    /// How long to wait on the wall clock for `plane_ms` of plane time to pass.
    fn wall_duration(&self, plane_ms: u64) -> Duration;

    /// Records that an operation on `instance_id` was claimed with `epoch` (the store's fencing epoch): from
    /// now on, changes carrying an older epoch are refused with [`PlaneError::Fenced`]. Fails the same way if
    /// a newer epoch was already seen.
    fn fence(&self, instance_id: &str, epoch: u64) -> PlaneFuture<'_, ()>;

    /// Starts creating `instance`'s deployment. Idempotent: an existing deployment is left as it is. The inner
    /// error is a refusal (e.g. a topology the plane cannot build).
    fn provision(
        &self,
        instance: &Instance,
        epoch: u64,
    ) -> PlaneFuture<'_, Result<(), CommandError>>;

    /// Starts removing the deployment: processes shut down, and once all are gone [`DataPlane::observe`]
    /// returns `None`. Idempotent; a missing deployment is already removed.
    fn deprovision(
        &self,
        instance_id: &str,
        epoch: u64,
    ) -> PlaneFuture<'_, Result<(), CommandError>>;

    /// The deployment as it is now, `None` when there is none.
    fn observe(&self, instance_id: &str) -> PlaneFuture<'_, Option<DeploymentObservation>>;

    /// Carries out a workflow command of operation `operation_id`; the inner error is the plane's
    /// refusal. The same command of the same operation, sent again (after a crash), is recognised
    /// as a repeat where the plane can tell.
    fn execute(
        &self,
        instance_id: &str,
        epoch: u64,
        operation_id: &str,
        command: &Command,
    ) -> PlaneFuture<'_, Result<(), CommandError>>;

    /// Whether every host of the deployment can run `kernel_version` (its binary is installed);
    /// the inner error says which host lacks it. Planes that provide every kernel say yes.
    fn check_kernel(
        &self,
        _instance_id: &str,
        _kernel_version: &str,
    ) -> PlaneFuture<'_, Result<(), String>> {
        Box::pin(async { Ok(Ok(())) })
    }

    /// Arms a fault, in the plane's own vocabulary (for the simulation: a serialised
    /// `dds_engine::sim::Fault`).
    fn arm_fault(&self, instance_id: &str, fault: Value) -> PlaneFuture<'_, ()>;

    /// Where each process of the deployment accepts MongoDB clients, when the plane knows (the
    /// simulation with its wire protocol on). `None` without a deployment or without ports.
    fn endpoints(&self, _instance_id: &str) -> PlaneFuture<'_, Option<Endpoints>> {
        Box::pin(async { Ok(None) })
    }

    /// How many more processes the plane can give a place to (a wire port), when it has a bound:
    /// what `EvaluateResource` answers from. `None`: no bound the plane knows of.
    fn free_process_slots(&self) -> Option<usize> {
        None
    }

    /// The faults armed since the last [`DataPlane::clear_faults`], oldest first.
    fn list_faults(&self, instance_id: &str) -> PlaneFuture<'_, Vec<Value>>;

    fn clear_faults(&self, instance_id: &str) -> PlaneFuture<'_, ()>;
}

/// Plane time as a linear function of wall time: `plane = base_plane + (wall - base_wall) × speed`, never
/// going backwards. The mapping is kept in the store so plane time continues across restarts of ddsd: time
/// that passed while ddsd was down passed for the simulated deployments too, as it would for real ones.
pub struct PlaneClock {
    wall: Clock,
    base_wall_ms: u64,
    base_plane_ms: u64,
    speed: f64,
    /// The latest value handed out, so a wall clock stepping back never moves plane time back.
    last_ms: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct ClockRecord {
    wall_ms: u64,
    plane_ms: u64,
    speed: f64,
}

/// Highest accepted speed factor: a day of plane time in under 9 s of wall time.
pub const MAX_SPEED: f64 = 10_000.0;

impl PlaneClock {
    /// The setting the mapping is stored under.
    pub const SETTING: &'static str = "plane.clock";

    pub fn check_speed(speed: f64) -> PlaneResult<()> {
        if !(speed.is_finite() && speed > 0.0 && speed <= MAX_SPEED) {
            return Err(PlaneError::Config(format!(
                "sim_speed must be > 0 and <= {MAX_SPEED}, got {speed}"
            )));
        }
        Ok(())
    }

    /// A clock that starts at the wall clock's time (so at speed 1 plane time is Unix time).
    pub fn new(wall: Clock, speed: f64) -> PlaneResult<PlaneClock> {
        Self::check_speed(speed)?;
        let now = wall.now_ms();
        Ok(Self::with_base(wall, now, now, speed))
    }

    fn with_base(wall: Clock, base_wall_ms: u64, base_plane_ms: u64, speed: f64) -> PlaneClock {
        PlaneClock {
            wall,
            base_wall_ms,
            base_plane_ms,
            speed,
            last_ms: AtomicU64::new(base_plane_ms),
        }
    }

    /// Continues the plane time recorded in `store` (or starts it), now running at `speed`, and records
    /// the new mapping.
    pub async fn resume(store: &dyn Store, wall: Clock, speed: f64) -> PlaneResult<PlaneClock> {
        Self::check_speed(speed)?;
        let wall_now = wall.now_ms();
        let plane_now = match store.get_setting(Self::SETTING).await? {
            Some(text) => {
                let rec: ClockRecord = serde_json::from_str(&text)
                    .map_err(|e| PlaneError::Corrupt(format!("{}: {e}", Self::SETTING)))?;
                Self::project(rec.base(), rec.speed, wall_now)
            }
            None => wall_now,
        };
        let rec = ClockRecord {
            wall_ms: wall_now,
            plane_ms: plane_now,
            speed,
        };
        let text = serde_json::to_string(&rec).map_err(|e| PlaneError::Corrupt(e.to_string()))?;
        store.put_setting(Self::SETTING, &text).await?;
        Ok(Self::with_base(wall, wall_now, plane_now, speed))
    }

    fn project((base_wall, base_plane): (u64, u64), speed: f64, wall_now: u64) -> u64 {
        let elapsed = wall_now.saturating_sub(base_wall) as f64 * speed;
        base_plane.saturating_add(elapsed as u64)
    }

    pub fn now_ms(&self) -> Millis {
        let t = Self::project(
            (self.base_wall_ms, self.base_plane_ms),
            self.speed,
            self.wall.now_ms(),
        );
        self.last_ms.fetch_max(t, Ordering::SeqCst).max(t)
    }

    pub fn wall_duration(&self, plane_ms: u64) -> Duration {
        Duration::from_secs_f64(plane_ms as f64 / self.speed / 1_000.0)
    }

    pub fn speed(&self) -> f64 {
        self.speed
    }
}

impl ClockRecord {
    fn base(&self) -> (u64, u64) {
        (self.wall_ms, self.plane_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::store::fixtures::{open_store, TempDir};
    use std::sync::Arc;

    #[test]
    fn plane_time_runs_at_speed_and_never_back() {
        let wall = Arc::new(AtomicU64::new(1_000_000));
        let c = PlaneClock::new(Clock::manual(wall.clone()), 60.0).unwrap();
        assert_eq!(c.now_ms(), 1_000_000);
        wall.store(1_001_000, Ordering::SeqCst);
        assert_eq!(c.now_ms(), 1_060_000);
        wall.store(999_000, Ordering::SeqCst);
        assert_eq!(c.now_ms(), 1_060_000, "a wall clock stepping back");
        assert_eq!(c.wall_duration(60_000), Duration::from_secs(1));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, MAX_SPEED * 2.0] {
            match PlaneClock::new(Clock::system(), bad) {
                Err(PlaneError::Config(m)) => {
                    assert!(m.starts_with("sim_speed must be > 0"), "{m}")
                }
                Err(other) => panic!("{bad}: {other:?}"),
                Ok(_) => panic!("{bad} accepted"),
            }
        }
    }

    #[tokio::test]
    async fn plane_time_continues_across_restarts_and_speed_changes() {
        let dir = TempDir::new("clock");
        let store = open_store(&dir);
        let wall = Arc::new(AtomicU64::new(5_000));
        let c = PlaneClock::resume(&store, Clock::manual(wall.clone()), 10.0)
            .await
            .unwrap();
        wall.store(6_000, Ordering::SeqCst);
        assert_eq!(c.now_ms(), 15_000);
        drop(c);
        // 3 s of wall time since the recorded base, ddsd down for most of it: 30 s of plane time passed at
        // the old speed. From now on it runs at the new one.
        wall.store(8_000, Ordering::SeqCst);
        let c = PlaneClock::resume(&store, Clock::manual(wall.clone()), 2.0)
            .await
            .unwrap();
        assert_eq!(c.now_ms(), 35_000);
        wall.store(9_000, Ordering::SeqCst);
        assert_eq!(c.now_ms(), 37_000);
    }
}
