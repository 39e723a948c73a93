//! The `mongodb` data plane: deployments ddsd does not own — real `mongod`/`mongos` processes on
//! hosts, or a `ddsd sim-fleet` process, which looks the same from here — driven through the
//! official `mongodb` driver for what the wire protocol can do and through each host's agent
//! (`crate::agent::api`) for stopping a process and starting it on another binary.
//!
//! Observation: `hello` and `serverStatus` of every process (direct connections), `buildInfo` once
//! per process start, `replSetGetStatus` of each replica set (from its primary, else any member),
//! `balancerStatus` on a mongos. Commands: `replSetStepDown` with `secondaryCatchUpPeriodSecs`,
//! never `force`; `balancerStop`/`balancerStart`; stop/start through the agent under a command id
//! derived from the operation and the command, so a ddsd that crashed and sends a command again is
//! answered from the agent's log instead of restarting twice.
//!
//! Time is the deployment's: an observation is stamped with the processes' `serverStatus.localTime`
//! and the plane's clock follows it (with the rate it measures between observations), so the
//! workflows' deadlines run on the deployment's clock, not ddsd's.
//!
//! When no member of a replica set answers, the plane does not guess: the observation is an error
//! (outcome unknown), the runtime waits and observes again, and nothing is decided on a
//! deployment it cannot see.

pub mod discover;
pub mod probe;
pub mod record;

use super::{DataPlane, Endpoints, PlaneError, PlaneFuture, PlaneResult};
use crate::agent::api::{AgentCallError, AgentClient};
use crate::server::store::Store;
use bson::{doc, Bson, Document};
use dds_engine::model::Instance;
use dds_engine::plane::{
    BalancerMode, BalancerObservation, Command, CommandError, DeploymentObservation,
    MemberObservation, MemberState, Millis, MongosObservation, ReplicaSetObservation,
};
use probe::{flag, millis, number, CallError, Connector, ProcessProbe};
use record::DeploymentRecord;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct MongoPlaneConfig {
    /// A TCP connect to a process (a refused or silent port means the process is down).
    pub connect_timeout_ms: u64,
    /// Every command sent to a process.
    pub command_timeout_ms: u64,
    /// Every call to an agent (a stop waits for the process to exit).
    pub agent_timeout_ms: u64,
}

impl Default for MongoPlaneConfig {
    fn default() -> Self {
        MongoPlaneConfig {
            connect_timeout_ms: 1_000,
            command_timeout_ms: 5_000,
            agent_timeout_ms: 120_000,
        }
    }
}

/// One deployment being managed: its record, connections and what the plane tracks between
/// observations.
struct Live {
    record: DeploymentRecord,
    connector: Connector,
    agents: Vec<AgentClient>,
    /// Since when each process has been in its state (replSetGetStatus has no such field).
    states: Mutex<HashMap<String, (MemberState, Millis)>>,
    /// `buildInfo.version` per process start (start second, version).
    versions: Mutex<HashMap<String, (u64, String)>>,
    /// The kernel each process runs, as its agent last said.
    kernels: Mutex<HashMap<String, String>>,
}

/// The deployment's clock as the plane follows it.
struct DeploymentClock {
    inner: Mutex<ClockState>,
    last: AtomicU64,
}

struct ClockState {
    anchor: Option<(Instant, Millis)>,
    /// Deployment ms per wall ms.
    rate: f64,
    measured: bool,
}

impl DeploymentClock {
    fn new() -> DeploymentClock {
        DeploymentClock {
            inner: Mutex::new(ClockState {
                anchor: None,
                rate: 1.0,
                measured: false,
            }),
            last: AtomicU64::new(0),
        }
    }

    fn project(s: &ClockState) -> Millis {
        match s.anchor {
            Some((at, t)) => {
                t.saturating_add((at.elapsed().as_secs_f64() * 1_000.0 * s.rate) as u64)
            }
            None => crate::server::store::Clock::system().now_ms(),
        }
    }

    fn now_ms(&self) -> Millis {
        let t = Self::project(&self.inner.lock().unwrap_or_else(|e| e.into_inner()));
        self.last.fetch_max(t, Ordering::SeqCst).max(t)
    }

    /// A reading of the deployment's clock, taken just now.
    fn observed(&self, deployment_ms: Millis) {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match s.anchor {
            Some((at, t)) => {
                let wall_ms = at.elapsed().as_secs_f64() * 1_000.0;
                if wall_ms < 200.0 {
                    return;
                }
                if deployment_ms > t {
                    let r = ((deployment_ms - t) as f64 / wall_ms).clamp(0.1, super::MAX_SPEED);
                    s.rate = if s.measured {
                        0.5 * s.rate + 0.5 * r
                    } else {
                        r
                    };
                    s.measured = true;
                }
                s.anchor = Some((Instant::now(), deployment_ms));
            }
            None => s.anchor = Some((Instant::now(), deployment_ms)),
        }
    }

    fn wall_duration(&self, plane_ms: u64) -> Duration {
        let rate = self.inner.lock().unwrap_or_else(|e| e.into_inner()).rate;
        Duration::from_secs_f64(plane_ms as f64 / rate / 1_000.0)
    }
}

pub struct MongoPlane {
    store: Arc<dyn Store>,
    config: MongoPlaneConfig,
    live: Mutex<HashMap<String, Option<Arc<Live>>>>,
    clock: DeploymentClock,
    fences: Mutex<HashMap<String, u64>>,
}

impl MongoPlane {
    pub fn new(store: Arc<dyn Store>, config: MongoPlaneConfig) -> MongoPlane {
        MongoPlane {
            store,
            config,
            live: Mutex::new(HashMap::new()),
            clock: DeploymentClock::new(),
            fences: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &MongoPlaneConfig {
        &self.config
    }

    fn connector(&self, record: &DeploymentRecord) -> Connector {
        Connector::new(
            &record.username,
            &record.password,
            &record.auth_source,
            Duration::from_millis(self.config.connect_timeout_ms),
            Duration::from_millis(self.config.command_timeout_ms),
        )
    }

    fn build_live(&self, record: DeploymentRecord) -> PlaneResult<Live> {
        let timeout = Duration::from_millis(self.config.agent_timeout_ms);
        let agents = record
            .agents
            .iter()
            .map(|a| AgentClient::new(a, timeout))
            .collect::<anyhow::Result<Vec<_>>>()
            .map_err(|e| PlaneError::Config(format!("agent endpoint: {e:#}")))?;
        Ok(Live {
            connector: self.connector(&record),
            agents,
            states: Mutex::new(HashMap::new()),
            versions: Mutex::new(HashMap::new()),
            kernels: Mutex::new(HashMap::new()),
            record,
        })
    }

    async fn live(&self, instance_id: &str) -> PlaneResult<Option<Arc<Live>>> {
        if let Some(l) = self
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(instance_id)
        {
            return Ok(l.clone());
        }
        let loaded = match record::load(&*self.store, instance_id).await? {
            Some(r) => Some(Arc::new(self.build_live(r)?)),
            None => None,
        };
        let mut map = self.live.lock().unwrap_or_else(|e| e.into_inner());
        Ok(map.entry(instance_id.to_string()).or_insert(loaded).clone())
    }

    /// Starts managing an imported deployment (the import has stored `record` with the instance).
    pub fn adopt(&self, instance_id: &str, record: DeploymentRecord) -> PlaneResult<()> {
        let live = Arc::new(self.build_live(record)?);
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(instance_id.to_string(), Some(live));
        Ok(())
    }

    fn check_fence(&self, instance_id: &str, epoch: u64) -> PlaneResult<()> {
        let mut fences = self.fences.lock().unwrap_or_else(|e| e.into_inner());
        let current = fences.entry(instance_id.to_string()).or_insert(0);
        if epoch < *current {
            return Err(PlaneError::Fenced {
                instance_id: instance_id.to_string(),
                presented: epoch,
                current: *current,
            });
        }
        *current = epoch;
        Ok(())
    }

    async fn observe_live(&self, live: &Arc<Live>) -> PlaneResult<DeploymentObservation> {
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for p in live.record.processes() {
            let (live, node, address) = (live.clone(), p.node_id.clone(), p.address.clone());
            tasks.spawn(async move {
                let cached = live
                    .versions
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&node)
                    .cloned();
                let probe = live.connector.probe(&address, cached).await;
                (node, probe)
            });
        }
        let mut probes: HashMap<String, ProcessProbe> = HashMap::new();
        while let Some(done) = tasks.join_next().await {
            if let Ok((node, probe)) = done {
                probes.insert(node, probe);
            }
        }
        let mut commands: u64 = probes.values().map(|p| u64::from(p.commands)).sum();
        let now = probes
            .values()
            .filter_map(|p| p.local_ms)
            .max()
            .unwrap_or_else(|| self.clock.now_ms());
        self.clock.observed(now);
        for (node, p) in &probes {
            if let (Some(started), Some(v)) = (p.started_ms, &p.version) {
                live.versions
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(node.clone(), (started / 1000, v.clone()));
            }
        }

        let mut replica_sets = Vec::new();
        for rs in &live.record.replica_sets {
            let up: Vec<_> = rs
                .members
                .iter()
                .filter(|m| probes.get(&m.node_id).is_some_and(|p| p.up))
                .collect();
            if up.is_empty() {
                return Err(PlaneError::Unavailable(format!(
                    "no member of replica set {} answers",
                    rs.name
                )));
            }
            // The primary's view first: its health and optimes are the ones the gates mean.
            let source = up
                .iter()
                .find(|m| flag(&probes[&m.node_id].hello, "isWritablePrimary"))
                .or_else(|| up.first())
                .copied();
            let status = match source {
                Some(m) => {
                    commands += 1;
                    live.connector
                        .admin(&m.address, doc! {"replSetGetStatus": 1})
                        .await
                        .ok()
                }
                None => None,
            };
            let by_name: HashMap<String, Document> = status
                .as_ref()
                .and_then(|s| s.get_array("members").ok())
                .into_iter()
                .flatten()
                .filter_map(|m| m.as_document())
                .filter_map(|m| Some((m.get_str("name").ok()?.to_string(), m.clone())))
                .collect();
            let term = status
                .as_ref()
                .and_then(|s| number(s.get("term")))
                .unwrap_or(0.0) as u64;
            let mut members = Vec::new();
            for m in &rs.members {
                let p = probes.get(&m.node_id).cloned().unwrap_or_default();
                let seen = by_name.get(&m.address);
                let state = if !p.up {
                    MemberState::Down
                } else {
                    seen.and_then(|s| s.get_str("stateStr").ok())
                        .map(state_from_str)
                        .unwrap_or_else(|| state_from_hello(&p.hello))
                };
                let healthy =
                    p.up && seen.is_some_and(|s| number(s.get("health")).unwrap_or(0.0) >= 1.0);
                let optime_ms = seen.and_then(|s| millis(s.get("optimeDate"))).unwrap_or(0);
                let kernel_version = match &p.version {
                    Some(v) if p.up => Some(self.kernel_of(live, &m.node_id, v).await),
                    _ => None,
                };
                let since = {
                    let mut states = live.states.lock().unwrap_or_else(|e| e.into_inner());
                    let e = states.entry(m.node_id.clone()).or_insert((state, now));
                    if e.0 != state {
                        *e = (state, now);
                    }
                    e.1
                };
                // Without its own serverStatus (an arbiter), the primary's view of its uptime.
                let started_ms = p.started_ms.or_else(|| {
                    let up_s = seen.and_then(|s| number(s.get("uptime")))?;
                    Some(now.saturating_sub((up_s * 1000.0) as u64))
                });
                members.push(MemberObservation {
                    node_id: m.node_id.clone(),
                    state,
                    healthy,
                    process_up: p.up,
                    kernel_version,
                    optime_ms,
                    state_since_ms: since,
                    started_ms: if p.up { started_ms } else { None },
                });
            }
            let primary = members
                .iter()
                .find(|m| m.state == MemberState::Primary)
                .map(|m| (m.node_id.clone(), m.optime_ms));
            // The data's featureCompatibilityVersion, as the primary reports it.
            let fcv = match primary
                .as_ref()
                .and_then(|(node, _)| rs.members.iter().find(|m| &m.node_id == node))
            {
                Some(m) => {
                    commands += 1;
                    live.connector
                        .admin(
                            &m.address,
                            doc! {"getParameter": 1, "featureCompatibilityVersion": 1},
                        )
                        .await
                        .ok()
                        .and_then(|d| {
                            d.get_document("featureCompatibilityVersion")
                                .ok()?
                                .get_str("version")
                                .ok()
                                .map(str::to_string)
                        })
                }
                None => None,
            };
            replica_sets.push(ReplicaSetObservation {
                name: rs.name.clone(),
                term,
                primary: primary.as_ref().map(|p| p.0.clone()),
                primary_optime_ms: primary.map_or(0, |p| p.1),
                members,
                oplog_window_ms: None,
                fcv,
            });
        }

        let mut mongos = Vec::new();
        for m in &live.record.mongos {
            let p = probes.get(&m.node_id).cloned().unwrap_or_default();
            let kernel_version = match &p.version {
                Some(v) if p.up => Some(self.kernel_of(live, &m.node_id, v).await),
                _ => None,
            };
            mongos.push(MongosObservation {
                node_id: m.node_id.clone(),
                up: p.up,
                kernel_version,
                started_ms: if p.up { p.started_ms } else { None },
            });
        }
        let balancer = if live.record.mongos.is_empty() {
            None
        } else {
            commands += 1;
            Some(self.balancer_status(live, &probes).await?)
        };
        crate::server::metrics::global().plane_observed(commands, started.elapsed());
        Ok(DeploymentObservation {
            now_ms: now,
            replica_sets,
            mongos,
            balancer,
        })
    }

    async fn balancer_status(
        &self,
        live: &Live,
        probes: &HashMap<String, ProcessProbe>,
    ) -> PlaneResult<BalancerObservation> {
        for m in &live.record.mongos {
            if !probes.get(&m.node_id).is_some_and(|p| p.up) {
                continue;
            }
            if let Ok(s) = live
                .connector
                .admin(&m.address, doc! {"balancerStatus": 1})
                .await
            {
                let mode = match s.get_str("mode") {
                    Ok("full") => BalancerMode::Full,
                    _ => BalancerMode::Off,
                };
                return Ok(BalancerObservation {
                    mode,
                    in_balancer_round: flag(&s, "inBalancerRound"),
                });
            }
        }
        Err(PlaneError::Unavailable(
            "no mongos answers balancerStatus".into(),
        ))
    }

    /// The kernel a process runs, from the version it reports: the kernel its agent last named
    /// when that kernel is of this version, else what the agent says now.
    async fn kernel_of(&self, live: &Live, node_id: &str, version: &str) -> String {
        // `buildInfo.version` is the `X.Y.Z` both vendor formats carry (`mongodb_YYYYMMDD_X.Y.Z`,
        // `X.Y.Z-YYYYMMDDhhmmss_N` from 5.0 on).
        let matches = |k: &str| {
            k == version
                || k.ends_with(&format!("_{version}"))
                || dds_engine::catalog::parse_kernel_version(k).is_ok_and(|p| {
                    let (a, b, c) = p.release;
                    format!("{a}.{b}.{c}") == version
                })
        };
        let known = live
            .kernels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(node_id)
            .cloned();
        if let Some(k) = known.filter(|k| matches(k)) {
            return k;
        }
        if let Some(p) = live.record.process(node_id) {
            if let Some(agent) = live.agents.get(p.agent) {
                crate::server::metrics::global().plane_agent_call();
                if let Ok(host) = agent.describe_host().await {
                    let mut kernels = live.kernels.lock().unwrap_or_else(|e| e.into_inner());
                    for d in &host.processes {
                        kernels.insert(d.name.clone(), d.kernel_version.clone());
                    }
                    if let Some(k) = kernels.get(node_id).filter(|k| matches(k)) {
                        return k.clone();
                    }
                }
            }
        }
        // Not a binary any agent put there: a version no kernel id matches, so no gate accepts it.
        format!("unmanaged_{version}")
    }

    /// Stops the process (`start_on: None`) or starts it on a kernel, through its host's agent.
    async fn agent_command(
        &self,
        live: &Live,
        node_id: &str,
        start_on: Option<&str>,
        command_id: &str,
    ) -> PlaneResult<Result<(), CommandError>> {
        let Some(p) = live.record.process(node_id) else {
            return Ok(Err(CommandError::NoSuchNode(node_id.to_string())));
        };
        let Some(agent) = live.agents.get(p.agent) else {
            return Ok(Err(CommandError::NoSuchNode(node_id.to_string())));
        };
        crate::server::metrics::global().plane_agent_call();
        let answer = match start_on {
            None => agent.stop_process(node_id, command_id).await,
            Some(kernel) => agent.start_process(node_id, kernel, command_id).await,
        };
        match answer {
            Ok(outcome) => {
                live.kernels
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(node_id.to_string(), outcome.process.kernel_version.clone());
                Ok(Ok(()))
            }
            Err(e) => agent_refusal(&live.record.agents[p.agent].endpoint, node_id, e),
        }
    }
}

/// The agent's answer as the engine reads it: a definite refusal is the plane's "no"; anything
/// transient (no answer, busy, throttled, a server-side error) leaves the outcome unknown.
fn agent_refusal(
    endpoint: &str,
    node_id: &str,
    e: AgentCallError,
) -> PlaneResult<Result<(), CommandError>> {
    let transient = !e.answered()
        || e.code == "OperationConflict"
        || e.code.starts_with("Throttling")
        || e.code == "ServiceUnavailable"
        || (e.status >= 500 && e.code != "ProcessCommandFailed");
    if transient {
        return Err(PlaneError::Unavailable(format!(
            "agent {endpoint} for {node_id}: {e}"
        )));
    }
    if e.code == "InvalidProcessName.NotFound" {
        return Ok(Err(CommandError::NoSuchNode(node_id.to_string())));
    }
    Ok(Err(CommandError::Other(format!(
        "agent {endpoint} for {node_id}: {}: {}",
        e.code, e.message
    ))))
}

/// One id per (instance, operation, command): the same command of the same operation, sent again
/// after a crash, is the same command to the agent.
pub fn command_id(instance_id: &str, operation_id: &str, command: &Command) -> String {
    let mut h = Sha256::new();
    h.update(instance_id.as_bytes());
    h.update([0]);
    h.update(operation_id.as_bytes());
    h.update([0]);
    h.update(serde_json::to_vec(command).unwrap_or_default());
    hex::encode(&h.finalize()[..16])
}

fn state_from_str(s: &str) -> MemberState {
    match s {
        "PRIMARY" => MemberState::Primary,
        "SECONDARY" => MemberState::Secondary,
        "ARBITER" => MemberState::Arbiter,
        "STARTUP" => MemberState::Startup,
        "STARTUP2" => MemberState::Startup2,
        "ROLLBACK" => MemberState::Rollback,
        "RECOVERING" => MemberState::Recovering,
        // DOWN, UNKNOWN, REMOVED: not a member serving.
        _ => MemberState::Down,
    }
}

fn state_from_hello(h: &Document) -> MemberState {
    if flag(h, "isWritablePrimary") {
        MemberState::Primary
    } else if flag(h, "arbiterOnly") {
        MemberState::Arbiter
    } else if flag(h, "secondary") {
        MemberState::Secondary
    } else {
        MemberState::Startup2
    }
}

fn call_refusal(node_id: &str, e: CallError) -> PlaneResult<Result<(), CommandError>> {
    match e {
        // ExceededTimeLimit: no electable secondary caught up within secondaryCatchUpPeriodSecs.
        CallError::Refused { code: 262, .. } => Ok(Err(CommandError::NoElectableSecondary)),
        // NotWritablePrimary / NotPrimaryNoSecondaryOk.
        CallError::Refused {
            code: 10107 | 13435,
            ..
        } => Ok(Err(CommandError::NotPrimary(node_id.to_string()))),
        CallError::Refused { .. } => Ok(Err(CommandError::Other(format!("{node_id}: {e}")))),
        CallError::NoAnswer(m) => Err(PlaneError::Unavailable(m)),
    }
}

impl DataPlane for MongoPlane {
    fn now_ms(&self) -> Millis {
        self.clock.now_ms()
    }

    fn wall_duration(&self, plane_ms: u64) -> Duration {
        self.clock.wall_duration(plane_ms)
    }

    fn fence(&self, instance_id: &str, epoch: u64) -> PlaneFuture<'_, ()> {
        let r = self.check_fence(instance_id, epoch);
        Box::pin(async move { r })
    }

    fn provision(
        &self,
        instance: &Instance,
        _epoch: u64,
    ) -> PlaneFuture<'_, Result<(), CommandError>> {
        let id = instance.id.clone();
        Box::pin(async move {
            Ok(Err(CommandError::Other(format!(
                "the mongodb data plane does not create deployments ({id}): import one with DdsdImportDBInstance"
            ))))
        })
    }

    fn deprovision(
        &self,
        instance_id: &str,
        epoch: u64,
    ) -> PlaneFuture<'_, Result<(), CommandError>> {
        let id = instance_id.to_string();
        Box::pin(async move {
            self.check_fence(&id, epoch)?;
            // The processes are the operator's: ddsd stops managing them and leaves them running.
            record::forget(&*self.store, &id).await?;
            self.live
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id, None);
            Ok(Ok(()))
        })
    }

    fn observe(&self, instance_id: &str) -> PlaneFuture<'_, Option<DeploymentObservation>> {
        let id = instance_id.to_string();
        Box::pin(async move {
            match self.live(&id).await? {
                None => Ok(None),
                Some(live) => self.observe_live(&live).await.map(Some),
            }
        })
    }

    fn execute(
        &self,
        instance_id: &str,
        epoch: u64,
        operation_id: &str,
        command: &Command,
    ) -> PlaneFuture<'_, Result<(), CommandError>> {
        let id = instance_id.to_string();
        let command = command.clone();
        let command_id = command_id(instance_id, operation_id, &command);
        Box::pin(async move {
            self.check_fence(&id, epoch)?;
            let Some(live) = self.live(&id).await? else {
                return Ok(Err(CommandError::Other(format!(
                    "{id} is not a managed deployment"
                ))));
            };
            match &command {
                Command::StopMember { node_id, .. } | Command::StopMongos { node_id } => {
                    self.agent_command(&live, node_id, None, &command_id).await
                }
                Command::StartMember {
                    node_id,
                    kernel_version,
                    ..
                }
                | Command::StartMongos {
                    node_id,
                    kernel_version,
                } => {
                    self.agent_command(&live, node_id, Some(kernel_version), &command_id)
                        .await
                }
                Command::StepDown {
                    node_id,
                    step_down_secs,
                    catch_up_secs,
                    ..
                } => {
                    let Some(p) = live.record.process(node_id) else {
                        return Ok(Err(CommandError::NoSuchNode(node_id.clone())));
                    };
                    crate::server::metrics::global().plane_command();
                    let cmd = doc! {
                        "replSetStepDown": i64::from(*step_down_secs),
                        "secondaryCatchUpPeriodSecs": i64::from(*catch_up_secs),
                    };
                    match live.connector.admin(&p.address, cmd).await {
                        Ok(_) => Ok(Ok(())),
                        Err(e) => call_refusal(node_id, e),
                    }
                }
                Command::StopBalancer | Command::StartBalancer => {
                    let name = if command == Command::StopBalancer {
                        "balancerStop"
                    } else {
                        "balancerStart"
                    };
                    let mut last = CallError::NoAnswer("the deployment has no mongos".into());
                    for m in &live.record.mongos {
                        crate::server::metrics::global().plane_command();
                        let mut cmd = Document::new();
                        cmd.insert(name, Bson::Int32(1));
                        match live.connector.admin(&m.address, cmd).await {
                            Ok(_) => return Ok(Ok(())),
                            Err(e) => last = e,
                        }
                    }
                    call_refusal("mongos", last)
                }
                Command::SetFeatureCompatibilityVersion {
                    replica_set,
                    version,
                } => {
                    // MongoDB: through a mongos for a sharded cluster, on the primary for a replica set;
                    // from 7.0 on the command must carry `confirm: true`.
                    let mut cmd = doc! {"setFeatureCompatibilityVersion": version.clone()};
                    if dds_engine::catalog::engine_rank(version)
                        >= dds_engine::catalog::engine_rank("7.0")
                    {
                        cmd.insert("confirm", true);
                    }
                    let (who, targets): (&str, Vec<&str>) = match replica_set {
                        None => (
                            "mongos",
                            live.record
                                .mongos
                                .iter()
                                .map(|m| m.address.as_str())
                                .collect(),
                        ),
                        Some(name) => (
                            name.as_str(),
                            live.record
                                .replica_sets
                                .iter()
                                .filter(|r| &r.name == name)
                                .flat_map(|r| r.members.iter().map(|m| m.address.as_str()))
                                .collect(),
                        ),
                    };
                    let mut last = CallError::NoAnswer(format!("{who}: no process to ask"));
                    for address in targets {
                        crate::server::metrics::global().plane_command();
                        match live.connector.admin(address, cmd.clone()).await {
                            Ok(_) => return Ok(Ok(())),
                            // Not the primary (or a mongos shutting down): the next one.
                            Err(e) => last = e,
                        }
                    }
                    call_refusal(who, last)
                }
            }
        })
    }

    fn arm_fault(&self, _instance_id: &str, _fault: Value) -> PlaneFuture<'_, ()> {
        Box::pin(async { Err(PlaneError::Unsupported("faults")) })
    }

    fn endpoints(&self, instance_id: &str) -> PlaneFuture<'_, Option<Endpoints>> {
        let id = instance_id.to_string();
        Box::pin(async move {
            let Some(live) = self.live(&id).await? else {
                return Ok(None);
            };
            let mut host = String::new();
            let mut ports = BTreeMap::new();
            for p in live.record.processes() {
                if let Some((h, port)) = p.address.rsplit_once(':') {
                    if host.is_empty() {
                        host = h.to_string();
                    }
                    if let Ok(port) = port.parse() {
                        ports.insert(p.node_id.clone(), port);
                    }
                }
            }
            Ok(Some(Endpoints { host, ports }))
        })
    }

    fn check_kernel(
        &self,
        instance_id: &str,
        kernel_version: &str,
    ) -> PlaneFuture<'_, Result<(), String>> {
        let (id, kernel) = (instance_id.to_string(), kernel_version.to_string());
        Box::pin(async move {
            let Some(live) = self.live(&id).await? else {
                return Ok(Ok(()));
            };
            for (i, agent) in live.agents.iter().enumerate() {
                let needed: Vec<&str> = live
                    .record
                    .processes()
                    .filter(|p| p.agent == i)
                    .map(|p| p.node_id.as_str())
                    .collect();
                if needed.is_empty() {
                    continue;
                }
                crate::server::metrics::global().plane_agent_call();
                let host = agent.describe_host().await.map_err(|e| {
                    PlaneError::Unavailable(format!(
                        "agent {}: {e}",
                        live.record.agents[i].endpoint
                    ))
                })?;
                if !host.kernels.contains(&kernel) {
                    return Ok(Err(format!(
                        "Kernel {kernel} is not installed on host {} (processes {}).",
                        host.host_name,
                        needed.join(", ")
                    )));
                }
            }
            Ok(Ok(()))
        })
    }

    fn list_faults(&self, _instance_id: &str) -> PlaneFuture<'_, Vec<Value>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn clear_faults(&self, _instance_id: &str) -> PlaneFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }
}
