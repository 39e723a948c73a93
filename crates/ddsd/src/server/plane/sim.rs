//! The embedded default data plane: one simulated fleet (`dds_engine::sim::SimFleet`) per instance, on real
//! time scaled by `sim_speed`, persisted in the store.
//!
//! The simulated deployments stand for systems outside the control plane, so they must outlive a restart
//! (or a crash) of ddsd: each fleet's snapshot is written to the store whenever a command, a provision, a
//! teardown or a fault changes it — before the call returns, so an acknowledged command is never forgotten —
//! and, while it is only observed, at most every `snapshot_interval_ms`. Between snapshots nothing is lost:
//! the fleet is deterministic, so reloading the last snapshot and advancing it to the current plane time
//! replays the same events. Plane time keeps running while ddsd is down ([`PlaneClock`]), so a restart that
//! was in flight completes "during" the outage, as a real one would.
//!
//! Fleets live in memory while used (at most `max_loaded_fleets`; idle ones are dropped and reloaded from
//! their snapshot on demand). Calls for one instance are serialised by a per-instance lock held across the
//! snapshot write, so snapshots are written in the order the changes happened.

use super::data::DeploymentData;
use super::ports::PortBook;
use super::{DataPlane, Endpoints, PlaneClock, PlaneError, PlaneFuture, PlaneResult};
use crate::server::store::{Clock, Store};
use dds_engine::model::Instance;
use dds_engine::plane::{Command, CommandError, DeploymentObservation, Millis};
use dds_engine::sim::{Fault, SimFleet, SimParams, Truth};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Mutex as AsyncMutex, Notify};

/// Faults armed at once on one deployment.
pub const MAX_ARMED_FAULTS: usize = 64;

#[derive(Debug, Clone)]
pub struct SimPlaneConfig {
    /// `sim_speed`: plane time per wall time. 1.0 = MongoDB-like durations in real time; 60 = a minute per
    /// second.
    pub speed: f64,
    pub params: SimParams,
    pub max_loaded_fleets: usize,
    /// Wall-clock interval between snapshots of a fleet that is only observed.
    pub snapshot_interval_ms: u64,
    pub wall: Clock,
    /// Where the processes listen for MongoDB clients; `None` = no wire protocol (no ports given out).
    pub ports: Option<Arc<PortBook>>,
    /// The host clients are told to connect to (`ConnectionDomain`, `hello.hosts`).
    pub advertised_host: String,
    /// Bounds on each replica set's documents.
    pub data_limits: mongo_docstore::Limits,
}

impl Default for SimPlaneConfig {
    fn default() -> Self {
        Self {
            speed: 1.0,
            params: SimParams {
                // The truth log is for tests' invariant checks; a long-lived deployment keeps a short one so
                // its snapshot stays small.
                truth_log_limit: 1_000,
                ..SimParams::default()
            },
            max_loaded_fleets: 1_024,
            snapshot_interval_ms: 10_000,
            wall: Clock::system(),
            ports: None,
            advertised_host: "127.0.0.1".into(),
            data_limits: default_data_limits(),
        }
    }
}

/// Documents per replica set are kept in memory and written with every acknowledged write, so the
/// bounds are those of a development database, not of a production one (docs/wire.md).
pub fn default_data_limits() -> mongo_docstore::Limits {
    mongo_docstore::Limits {
        max_documents: 100_000,
        max_total_bytes: 32 * 1024 * 1024,
        max_databases: 64,
        max_collections: 256,
        max_session_records: 10_000,
        max_open_cursors: 1_000,
        max_result_documents: 100_000,
        ..mongo_docstore::Limits::default()
    }
}

/// One instance's deployment as persisted.
#[derive(Serialize, Deserialize)]
struct Record {
    format: u32,
    tearing_down: bool,
    faults: Vec<Value>,
    /// The newest fencing epoch seen.
    epoch: u64,
    fleet: Value,
    /// The MongoDB port of every process, by node id.
    #[serde(default)]
    ports: BTreeMap<String, u16>,
    /// The replica sets' documents ([`DeploymentData::to_text`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data: Option<String>,
}

const RECORD_FORMAT: u32 = 1;

struct Deployment {
    fleet: SimFleet,
    tearing_down: bool,
    faults: Vec<Value>,
    saved_at: Instant,
    ports: BTreeMap<String, u16>,
    data: DeploymentData,
    /// Changes made through [`SimPlane::with_wire`] so far, and how many of them are saved: a
    /// caller that changed something waits until its change is saved (group commit: one save
    /// covers every change made before it).
    changes_made: u64,
    changes_saved: u64,
}

/// What the wire server may touch of one deployment while the plane holds its lock.
pub struct WireAccess<'a> {
    pub fleet: &'a mut SimFleet,
    pub data: &'a mut DeploymentData,
    pub ports: &'a BTreeMap<String, u16>,
    pub tearing_down: bool,
}

/// Instances whose deployment changed by a command (not by time passing), for the wire supervisor.
#[derive(Default)]
pub struct Changes {
    ids: Mutex<BTreeSet<String>>,
    notify: Notify,
}

impl Changes {
    fn mark(&self, id: &str) {
        self.ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string());
        self.notify.notify_one();
    }
    /// Waits for a change, then returns every instance changed since the last call.
    pub async fn next(&self) -> BTreeSet<String> {
        loop {
            let ids = std::mem::take(&mut *self.ids.lock().unwrap_or_else(|e| e.into_inner()));
            if !ids.is_empty() {
                return ids;
            }
            self.notify.notified().await;
        }
    }
}

/// Every process of a fleet, by node id: mongod members (standalone included), then mongos.
fn process_ids(fleet: &SimFleet) -> Vec<String> {
    let obs = fleet.observe();
    obs.replica_sets
        .iter()
        .flat_map(|rs| rs.members.iter().map(|m| m.node_id.clone()))
        .chain(obs.mongos.iter().map(|m| m.node_id.clone()))
        .collect()
}

#[derive(Default)]
struct Slot {
    loaded: bool,
    deployment: Option<Deployment>,
    /// The newest fencing epoch seen (persisted with the deployment, when there is one).
    epoch: u64,
}

impl Slot {
    fn check_fence(&mut self, instance_id: &str, epoch: u64) -> PlaneResult<()> {
        if epoch < self.epoch {
            return Err(PlaneError::Fenced {
                instance_id: instance_id.to_string(),
                presented: epoch,
                current: self.epoch,
            });
        }
        self.epoch = epoch;
        Ok(())
    }
}

pub struct SimPlane {
    store: Arc<dyn Store>,
    clock: PlaneClock,
    config: SimPlaneConfig,
    slots: Mutex<HashMap<String, Arc<AsyncMutex<Slot>>>>,
    changes: Changes,
}

/// The seed of an instance's fleet: stable across restarts, different per instance.
fn seed_of(instance_id: &str) -> u64 {
    // FNV-1a.
    instance_id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn no_deployment(instance_id: &str) -> CommandError {
    CommandError::Other(format!("instance {instance_id} has no deployment"))
}

impl SimPlane {
    /// Opens the simulated plane over `store`, continuing the plane time recorded there.
    pub async fn open(store: Arc<dyn Store>, config: SimPlaneConfig) -> PlaneResult<SimPlane> {
        if config.max_loaded_fleets == 0 {
            return Err(PlaneError::Config(
                "max_loaded_fleets must be at least 1".into(),
            ));
        }
        let clock = PlaneClock::resume(store.as_ref(), config.wall.clone(), config.speed).await?;
        if let Some(book) = &config.ports {
            // Before any port is given out: every port a stored deployment already has.
            for id in store.plane_snapshot_ids().await? {
                if let Some(v) = store.load_plane_snapshot(&id).await? {
                    if let Some(ports) = v.get("ports").and_then(Value::as_object) {
                        book.reserve(
                            ports
                                .values()
                                .filter_map(Value::as_u64)
                                .filter_map(|p| u16::try_from(p).ok()),
                        );
                    }
                }
            }
        }
        Ok(SimPlane {
            store,
            clock,
            config,
            slots: Mutex::new(HashMap::new()),
            changes: Changes::default(),
        })
    }

    /// Instances changed by a command, a provision, a teardown or a fault.
    pub fn changes(&self) -> &Changes {
        &self.changes
    }

    pub fn advertised_host(&self) -> &str {
        &self.config.advertised_host
    }

    /// The instances with a stored deployment.
    pub async fn deployment_ids(&self) -> PlaneResult<Vec<String>> {
        Ok(self.store.plane_snapshot_ids().await?)
    }

    /// Gives a port to every process that has none (a new deployment, or one stored before the
    /// wire protocol was on). True when one was given.
    fn assign_ports(&self, d: &mut Deployment) -> bool {
        let Some(book) = &self.config.ports else {
            return false;
        };
        let mut assigned = false;
        for node in process_ids(&d.fleet) {
            if d.ports.contains_key(&node) {
                continue;
            }
            match book.allocate() {
                Some(p) => {
                    d.ports.insert(node, p);
                    assigned = true;
                }
                None => {
                    tracing::warn!(node = %node, "the wire port range is exhausted; the process gets no port");
                    break;
                }
            }
        }
        assigned
    }

    fn release_ports(&self, d: &Deployment) {
        if let Some(book) = &self.config.ports {
            book.release(d.ports.values().copied());
        }
    }

    /// Runs `f` on the deployment at the current plane time, with its documents brought in line
    /// with the fleet's elections. `f` says whether it changed anything; then (or after a
    /// rollback) the deployment is saved before this returns, so what `f` acknowledges is durable.
    /// Concurrent callers share saves: the lock is released while waiting for the save, and one
    /// save covers every change made before it. `None` without a deployment.
    pub async fn with_wire<R>(
        &self,
        instance_id: &str,
        f: impl FnOnce(&mut WireAccess<'_>) -> (R, bool),
    ) -> PlaneResult<Option<R>> {
        let slot = self.slot(instance_id);
        let mut slot = slot.lock().await;
        self.load(&mut slot, instance_id).await?;
        let Some(d) = slot.deployment.as_mut() else {
            return Ok(None);
        };
        let rolled_back = d.data.follow_elections(d.fleet.truth());
        let before = d.fleet.truth().commands.len();
        let mut access = WireAccess {
            fleet: &mut d.fleet,
            data: &mut d.data,
            ports: &d.ports,
            tearing_down: d.tearing_down,
        };
        let (out, changed) = f(&mut access);
        let commanded = d.fleet.truth().commands.len() != before;
        let mine = (changed || rolled_back > 0 || commanded).then(|| {
            d.changes_made += 1;
            d.changes_made
        });
        drop(slot);
        if let Some(mine) = mine {
            self.flush(instance_id, mine).await?;
        }
        if commanded {
            self.changes.mark(instance_id);
        }
        Ok(Some(out))
    }

    /// Saves the deployment unless a save since change number `mine` already covered it.
    async fn flush(&self, instance_id: &str, mine: u64) -> PlaneResult<()> {
        let slot = self.slot(instance_id);
        let mut slot = slot.lock().await;
        let epoch = slot.epoch;
        match slot.deployment.as_mut() {
            Some(d) if d.changes_saved < mine => self.save(instance_id, d, epoch).await,
            _ => Ok(()),
        }
    }

    pub fn speed(&self) -> f64 {
        self.clock.speed()
    }

    /// The duration model of every simulated deployment (for estimates such as `DdsdDescribeUpgradePlan`).
    pub fn params(&self) -> &SimParams {
        &self.config.params
    }

    fn slot(&self, instance_id: &str) -> Arc<AsyncMutex<Slot>> {
        let mut slots = match self.slots.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(s) = slots.get(instance_id) {
            return s.clone();
        }
        if slots.len() >= self.config.max_loaded_fleets {
            // Drop idle fleets (nobody holds their slot); they reload from their snapshot when next used.
            let idle: Vec<String> = slots
                .iter()
                .filter(|(_, s)| Arc::strong_count(s) == 1)
                .map(|(k, _)| k.clone())
                .take(slots.len() + 1 - self.config.max_loaded_fleets)
                .collect();
            for k in idle {
                slots.remove(&k);
            }
        }
        let s = Arc::new(AsyncMutex::new(Slot::default()));
        slots.insert(instance_id.to_string(), s.clone());
        s
    }

    /// Loads the deployment from its snapshot on first use, and advances it to the current plane time.
    async fn load(&self, slot: &mut Slot, instance_id: &str) -> PlaneResult<()> {
        if !slot.loaded {
            slot.deployment = match self.store.load_plane_snapshot(instance_id).await? {
                None => None,
                Some(v) => {
                    let rec: Record = serde_json::from_value(v)
                        .map_err(|e| PlaneError::Corrupt(format!("{instance_id}: {e}")))?;
                    if rec.format != RECORD_FORMAT {
                        return Err(PlaneError::Corrupt(format!(
                            "{instance_id}: snapshot format {}",
                            rec.format
                        )));
                    }
                    let fleet = SimFleet::from_snapshot(&rec.fleet)
                        .map_err(|e| PlaneError::Corrupt(format!("{instance_id}: {e}")))?;
                    slot.epoch = slot.epoch.max(rec.epoch);
                    let data = match &rec.data {
                        Some(text) => DeploymentData::from_text(text, self.config.data_limits)
                            .map_err(|e| PlaneError::Corrupt(format!("{instance_id}: {e}")))?,
                        None => DeploymentData::new(self.config.data_limits),
                    };
                    Some(Deployment {
                        fleet,
                        tearing_down: rec.tearing_down,
                        faults: rec.faults,
                        saved_at: Instant::now(),
                        ports: rec.ports,
                        data,
                        changes_made: 0,
                        changes_saved: 0,
                    })
                }
            };
            slot.loaded = true;
            let epoch = slot.epoch;
            if let Some(d) = slot.deployment.as_mut() {
                if self.assign_ports(d) {
                    self.save(instance_id, d, epoch).await?;
                }
            }
        }
        let now = self.clock.now_ms();
        if let Some(d) = slot.deployment.as_mut() {
            d.fleet.advance_to(now);
        }
        Ok(())
    }

    async fn save(&self, instance_id: &str, d: &mut Deployment, epoch: u64) -> PlaneResult<()> {
        let rec = Record {
            format: RECORD_FORMAT,
            tearing_down: d.tearing_down,
            faults: d.faults.clone(),
            epoch,
            fleet: d.fleet.to_snapshot(),
            ports: d.ports.clone(),
            data: (!d.data.is_empty()).then(|| d.data.to_text()),
        };
        let v = serde_json::to_value(&rec).map_err(|e| PlaneError::Corrupt(e.to_string()))?;
        let covered = d.changes_made;
        self.store.save_plane_snapshot(instance_id, v).await?;
        d.saved_at = Instant::now();
        d.changes_saved = d.changes_saved.max(covered);
        Ok(())
    }

    /// Reads the simulated deployment (ground truth for tests and the admin API).
    pub async fn inspect<R>(
        &self,
        instance_id: &str,
        f: impl FnOnce(&SimFleet) -> R,
    ) -> PlaneResult<Option<R>> {
        let slot = self.slot(instance_id);
        let mut slot = slot.lock().await;
        self.load(&mut slot, instance_id).await?;
        Ok(slot.deployment.as_ref().map(|d| f(&d.fleet)))
    }

    /// The fleet's ground truth (restart counts, elections, down intervals), if it has a deployment.
    pub async fn truth(&self, instance_id: &str) -> PlaneResult<Option<Truth>> {
        self.inspect(instance_id, |f| f.truth().clone()).await
    }
}

impl DataPlane for SimPlane {
    fn now_ms(&self) -> Millis {
        self.clock.now_ms()
    }

    fn wall_duration(&self, plane_ms: u64) -> Duration {
        self.clock.wall_duration(plane_ms)
    }

    fn fence(&self, instance_id: &str, epoch: u64) -> PlaneFuture<'_, ()> {
        let id = instance_id.to_string();
        Box::pin(async move {
            let slot = self.slot(&id);
            let mut slot = slot.lock().await;
            self.load(&mut slot, &id).await?;
            let advanced = epoch > slot.epoch;
            slot.check_fence(&id, epoch)?;
            let epoch = slot.epoch;
            if let (true, Some(d)) = (advanced, slot.deployment.as_mut()) {
                self.save(&id, d, epoch).await?;
            }
            Ok(())
        })
    }

    fn provision(
        &self,
        instance: &Instance,
        epoch: u64,
    ) -> PlaneFuture<'_, Result<(), CommandError>> {
        let instance = instance.clone();
        Box::pin(async move {
            let id = instance.id.as_str();
            let slot = self.slot(id);
            let mut slot = slot.lock().await;
            self.load(&mut slot, id).await?;
            slot.check_fence(id, epoch)?;
            if let Some(d) = &slot.deployment {
                return Ok(if d.tearing_down {
                    Err(CommandError::Other(format!(
                        "the deployment of {id} is being removed"
                    )))
                } else {
                    Ok(())
                });
            }
            let fleet = SimFleet::provision(
                &instance.topology,
                self.config.params.clone(),
                seed_of(id),
                self.clock.now_ms(),
            );
            let mut d = Deployment {
                fleet,
                tearing_down: false,
                faults: Vec::new(),
                saved_at: Instant::now(),
                ports: BTreeMap::new(),
                data: DeploymentData::new(self.config.data_limits),
                changes_made: 0,
                changes_saved: 0,
            };
            self.assign_ports(&mut d);
            if let Err(e) = self.save(id, &mut d, slot.epoch).await {
                self.release_ports(&d);
                return Err(e);
            }
            slot.deployment = Some(d);
            self.changes.mark(id);
            Ok(Ok(()))
        })
    }

    fn deprovision(
        &self,
        instance_id: &str,
        epoch: u64,
    ) -> PlaneFuture<'_, Result<(), CommandError>> {
        let id = instance_id.to_string();
        Box::pin(async move {
            let slot = self.slot(&id);
            let mut slot = slot.lock().await;
            self.load(&mut slot, &id).await?;
            slot.check_fence(&id, epoch)?;
            let epoch = slot.epoch;
            let Some(d) = slot.deployment.as_mut() else {
                return Ok(Ok(()));
            };
            if !d.tearing_down {
                d.fleet.teardown();
                d.tearing_down = true;
                self.save(&id, d, epoch).await?;
                self.changes.mark(&id);
            }
            Ok(Ok(()))
        })
    }

    fn observe(&self, instance_id: &str) -> PlaneFuture<'_, Option<DeploymentObservation>> {
        let id = instance_id.to_string();
        Box::pin(async move {
            let slot = self.slot(&id);
            let mut slot = slot.lock().await;
            self.load(&mut slot, &id).await?;
            let epoch = slot.epoch;
            let Some(d) = slot.deployment.as_mut() else {
                return Ok(None);
            };
            if d.tearing_down && d.fleet.is_down() {
                self.store.delete_plane_snapshot(&id).await?;
                self.release_ports(d);
                slot.deployment = None;
                self.changes.mark(&id);
                return Ok(None);
            }
            let obs = d.fleet.observe();
            if d.saved_at.elapsed() >= Duration::from_millis(self.config.snapshot_interval_ms) {
                // Only bounds the replay after a restart; a failure here loses nothing.
                if let Err(e) = self.save(&id, d, epoch).await {
                    tracing::warn!(instance = %id, error = %e, "cannot save the simulated deployment");
                }
            }
            Ok(Some(obs))
        })
    }

    fn execute(
        &self,
        instance_id: &str,
        epoch: u64,
        _operation_id: &str,
        command: &Command,
    ) -> PlaneFuture<'_, Result<(), CommandError>> {
        let (id, command) = (instance_id.to_string(), command.clone());
        Box::pin(async move {
            let slot = self.slot(&id);
            let mut slot = slot.lock().await;
            self.load(&mut slot, &id).await?;
            slot.check_fence(&id, epoch)?;
            let epoch = slot.epoch;
            let Some(d) = slot.deployment.as_mut() else {
                return Ok(Err(no_deployment(&id)));
            };
            if d.tearing_down {
                return Ok(Err(CommandError::Other(format!(
                    "the deployment of {id} is being removed"
                ))));
            }
            let result = d.fleet.apply(&command);
            // Saved before answering, refused or not (the fleet records every command it was given).
            self.save(&id, d, epoch).await?;
            self.changes.mark(&id);
            Ok(result)
        })
    }

    fn arm_fault(&self, instance_id: &str, fault: Value) -> PlaneFuture<'_, ()> {
        let id = instance_id.to_string();
        Box::pin(async move {
            let parsed: Fault = serde_json::from_value(fault.clone())
                .map_err(|e| PlaneError::InvalidFault(e.to_string()))?;
            let slot = self.slot(&id);
            let mut slot = slot.lock().await;
            self.load(&mut slot, &id).await?;
            let epoch = slot.epoch;
            let Some(d) = slot.deployment.as_mut() else {
                return Err(PlaneError::InvalidFault(no_deployment(&id).to_string()));
            };
            if d.faults.len() >= MAX_ARMED_FAULTS {
                return Err(PlaneError::InvalidFault(format!(
                    "at most {MAX_ARMED_FAULTS} faults may be armed"
                )));
            }
            d.fleet
                .arm_fault(parsed)
                .map_err(|e| PlaneError::InvalidFault(e.to_string()))?;
            d.faults.push(fault);
            self.save(&id, d, epoch).await?;
            self.changes.mark(&id);
            Ok(())
        })
    }

    fn free_process_slots(&self) -> Option<usize> {
        self.config.ports.as_ref().and_then(|book| book.free())
    }

    fn endpoints(&self, instance_id: &str) -> PlaneFuture<'_, Option<Endpoints>> {
        let id = instance_id.to_string();
        Box::pin(async move {
            if self.config.ports.is_none() {
                return Ok(None);
            }
            let slot = self.slot(&id);
            let mut slot = slot.lock().await;
            self.load(&mut slot, &id).await?;
            Ok(slot.deployment.as_ref().map(|d| Endpoints {
                host: self.config.advertised_host.clone(),
                ports: d.ports.clone(),
            }))
        })
    }

    fn list_faults(&self, instance_id: &str) -> PlaneFuture<'_, Vec<Value>> {
        let id = instance_id.to_string();
        Box::pin(async move {
            let slot = self.slot(&id);
            let mut slot = slot.lock().await;
            self.load(&mut slot, &id).await?;
            Ok(slot
                .deployment
                .as_ref()
                .map(|d| d.faults.clone())
                .unwrap_or_default())
        })
    }

    fn clear_faults(&self, instance_id: &str) -> PlaneFuture<'_, ()> {
        let id = instance_id.to_string();
        Box::pin(async move {
            let slot = self.slot(&id);
            let mut slot = slot.lock().await;
            self.load(&mut slot, &id).await?;
            let epoch = slot.epoch;
            let Some(d) = slot.deployment.as_mut() else {
                return Ok(());
            };
            d.fleet.clear_faults();
            d.faults.clear();
            self.save(&id, d, epoch).await?;
            self.changes.mark(&id);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::runtime::provision::deployment_ready as provision_ready;
    use crate::server::store::fixtures::{open_store, replica_set, TempDir};
    use dds_engine::plane::MemberState;
    use std::sync::atomic::{AtomicU64, Ordering};

    const T0: u64 = 1_780_000_000_000;

    struct World {
        dir: TempDir,
        wall: Arc<AtomicU64>,
    }

    impl World {
        fn new() -> World {
            World {
                dir: TempDir::new("plane"),
                wall: Arc::new(AtomicU64::new(T0)),
            }
        }
        fn store(&self) -> Arc<dyn Store> {
            Arc::new(open_store(&self.dir))
        }
        async fn plane(&self, store: Arc<dyn Store>, max_loaded_fleets: usize) -> SimPlane {
            SimPlane::open(
                store,
                SimPlaneConfig {
                    wall: Clock::manual(self.wall.clone()),
                    max_loaded_fleets,
                    snapshot_interval_ms: 0,
                    ..SimPlaneConfig::default()
                },
            )
            .await
            .unwrap()
        }
        fn advance(&self, ms: u64) {
            self.wall.fetch_add(ms, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn a_provisioned_deployment_comes_up_over_plane_time() {
        let w = World::new();
        let plane = w.plane(w.store(), 16).await;
        let inst = replica_set("dds-p1", "t");
        assert_eq!(plane.observe("dds-p1").await.unwrap(), None);
        plane.provision(&inst, 1).await.unwrap().unwrap();
        // Idempotent.
        plane.provision(&inst, 1).await.unwrap().unwrap();
        let obs = plane.observe("dds-p1").await.unwrap().unwrap();
        assert!(obs.replica_sets[0].primary.is_none());
        assert!(obs.replica_sets[0]
            .members
            .iter()
            .all(|m| m.state == MemberState::Startup));
        let e = provision_ready(&inst, &obs).unwrap_err();
        assert!(e.ends_with("has no primary"), "{e}");
        w.advance(120_000);
        let obs = plane.observe("dds-p1").await.unwrap().unwrap();
        assert_eq!(provision_ready(&inst, &obs), Ok(()));
        assert_eq!(
            obs.now_ms,
            T0 + 120_000,
            "plane time = wall time at speed 1"
        );
    }

    #[tokio::test]
    async fn the_deployment_survives_a_restart_of_ddsd_and_time_keeps_running() {
        let w = World::new();
        let inst = replica_set("dds-p2", "t");
        let secondary = "dds-p2-1";
        {
            let plane = w.plane(w.store(), 16).await;
            plane.provision(&inst, 1).await.unwrap().unwrap();
            w.advance(120_000);
            let obs = plane.observe("dds-p2").await.unwrap().unwrap();
            assert_eq!(provision_ready(&inst, &obs), Ok(()));
            let stop = Command::StopMember {
                replica_set: obs.replica_sets[0].name.clone(),
                node_id: secondary.into(),
            };
            assert_eq!(
                plane.execute("dds-p2", 1, "op", &stop).await.unwrap(),
                Ok(())
            );
        }
        // ddsd is down for a minute; the stop completes meanwhile, as it would on a real host.
        w.advance(60_000);
        let plane = w.plane(w.store(), 16).await;
        let obs = plane.observe("dds-p2").await.unwrap().unwrap();
        let m = obs.replica_sets[0].member(secondary).unwrap();
        assert!(!m.process_up, "{m:?}");
        assert_eq!(m.state, MemberState::Down);
        let truth = plane.truth("dds-p2").await.unwrap().unwrap();
        assert_eq!(truth.process(secondary).unwrap().stops_by_command, 1);
    }

    #[tokio::test]
    async fn commands_from_an_older_claim_are_refused_even_after_a_restart() {
        let w = World::new();
        let inst = replica_set("dds-p3", "t");
        let store = w.store();
        {
            let plane = w.plane(store.clone(), 16).await;
            plane.provision(&inst, 3).await.unwrap().unwrap();
            w.advance(120_000);
            plane.fence("dds-p3", 7).await.unwrap();
            assert!(matches!(
                plane.fence("dds-p3", 6).await,
                Err(PlaneError::Fenced {
                    presented: 6,
                    current: 7,
                    ..
                })
            ));
        }
        let plane = w.plane(store, 16).await;
        let stop = Command::StopMember {
            replica_set: "mgset-dds-p3".into(),
            node_id: "dds-p3-1".into(),
        };
        assert!(matches!(
            plane.execute("dds-p3", 6, "op", &stop).await,
            Err(PlaneError::Fenced { .. })
        ));
        assert!(matches!(
            plane.deprovision("dds-p3", 6).await,
            Err(PlaneError::Fenced { .. })
        ));
        let truth = plane.truth("dds-p3").await.unwrap().unwrap();
        assert!(truth.commands.is_empty(), "nothing reached the fleet");
        assert_eq!(
            plane.execute("dds-p3", 7, "op", &stop).await.unwrap(),
            Ok(())
        );
    }

    #[tokio::test]
    async fn deprovision_tears_down_then_forgets_the_deployment() {
        let w = World::new();
        let store = w.store();
        let plane = w.plane(store.clone(), 16).await;
        let inst = replica_set("dds-p4", "t");
        assert_eq!(plane.deprovision("dds-p4", 1).await.unwrap(), Ok(()));
        plane.provision(&inst, 1).await.unwrap().unwrap();
        w.advance(120_000);
        plane.deprovision("dds-p4", 1).await.unwrap().unwrap();
        assert_eq!(
            plane.provision(&inst, 1).await.unwrap(),
            Err(CommandError::Other(
                "the deployment of dds-p4 is being removed".into()
            )),
            "no provisioning while tearing down"
        );
        let obs = plane.observe("dds-p4").await.unwrap();
        assert!(obs.is_some(), "shutting down takes a while");
        w.advance(60_000);
        assert_eq!(plane.observe("dds-p4").await.unwrap(), None);
        assert_eq!(store.load_plane_snapshot("dds-p4").await.unwrap(), None);
    }

    #[tokio::test]
    async fn faults_are_armed_listed_and_cleared() {
        let w = World::new();
        let plane = w.plane(w.store(), 16).await;
        let inst = replica_set("dds-p5", "t");
        plane.provision(&inst, 1).await.unwrap().unwrap();
        let fault = serde_json::json!({"StartFails": {"node_id": "dds-p5-1"}});
        plane.arm_fault("dds-p5", fault.clone()).await.unwrap();
        assert_eq!(plane.list_faults("dds-p5").await.unwrap(), vec![fault]);
        for bad in [
            serde_json::json!({"NoSuchFault": {}}),
            serde_json::json!({"StartFails": {"node_id": "not-a-member"}}),
        ] {
            assert!(matches!(
                plane.arm_fault("dds-p5", bad).await,
                Err(PlaneError::InvalidFault(_))
            ));
        }
        assert!(matches!(
            plane
                .arm_fault(
                    "dds-none",
                    serde_json::json!({"StartFails": {"node_id": "x"}})
                )
                .await,
            Err(PlaneError::InvalidFault(_))
        ));
        plane.clear_faults("dds-p5").await.unwrap();
        assert!(plane.list_faults("dds-p5").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn idle_fleets_are_dropped_and_reloaded_unchanged() {
        let w = World::new();
        let plane = w.plane(w.store(), 1).await;
        let ids = ["dds-e1", "dds-e2", "dds-e3"];
        for id in ids {
            plane
                .provision(&replica_set(id, "t"), 1)
                .await
                .unwrap()
                .unwrap();
        }
        w.advance(120_000);
        for id in ids {
            let obs = plane.observe(id).await.unwrap().unwrap();
            assert_eq!(provision_ready(&replica_set(id, "t"), &obs), Ok(()), "{id}");
        }
        assert!(plane.slots.lock().unwrap().len() <= 2);
        // The same answers as a plane that kept everything in memory.
        let w2 = World::new();
        let full = w2.plane(w2.store(), 16).await;
        for id in ids {
            full.provision(&replica_set(id, "t"), 1)
                .await
                .unwrap()
                .unwrap();
        }
        w2.advance(120_000);
        for id in ids {
            assert_eq!(
                plane.observe(id).await.unwrap(),
                full.observe(id).await.unwrap(),
                "{id}"
            );
        }
    }

    #[test]
    fn seeds_differ_per_instance_and_are_stable() {
        assert_eq!(seed_of("dds-a"), seed_of("dds-a"));
        assert_ne!(seed_of("dds-a"), seed_of("dds-b"));
    }
}
