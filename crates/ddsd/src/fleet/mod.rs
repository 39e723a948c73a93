//! `ddsd sim-fleet`: simulated MongoDB deployments in a process of their own, seen from outside
//! exactly as real ones are — every `mongod` and `mongos` on its own wire-protocol port, every
//! process on a host behind the agent protocol (`crate::agent`). A `ddsd serve` with
//! `plane = "mongodb"` imports them (`DdsdImportDBInstance`) and drives them through the driver
//! and the agents, as it would real hosts.
//!
//! - this module: the process (store, simulated plane, wire listeners, one agent endpoint per
//!   deployment, the control endpoint) and the control actions, signed with the fleet's admin key:
//!   `CreateDeployment`, `DescribeDeployments`, `DescribeTruth` (the simulation's ground truth),
//!   `ArmFault` (the simulation's faults), `RemoveKernel`, `ArmAgentFault`;
//! - `hosts`: the simulated hosts as an agent backend.
//!
//! May use: the server (its simulated plane, wire listeners, store, kernel catalog and ground-truth
//! report) and the agent (protocol and service). Must not use the client or the tools.

pub mod hosts;

use crate::agent::api::{AgentError, AgentFuture, ProcessKind};
use crate::agent::service::{AgentKey, AgentService, ExtraActions, ServiceConfig};
use crate::server::actions::operations::simulation_section;
use crate::server::plane::ports::PortBook;
use crate::server::plane::sim::{SimPlane, SimPlaneConfig};
use crate::server::plane::DataPlane;
use crate::server::store::{SqliteOptions, SqliteStore, Store};
use crate::server::wire::supervisor::{Supervisor, WireSettings};
use anyhow::Context as _;
use dds_engine::build::{
    self, CreateCommon, CreateConfigServer, CreateMongos, CreateReplicaSet, CreateShard,
    CreateSharded,
};
use dds_engine::catalog::Catalog;
use dds_engine::model::{DbInstanceStatus, Instance, Topology};
use hosts::{AgentFault, Registry, SimHost, SimHosts};
use rand::{Rng as _, SeedableRng as _};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The control endpoint's key belongs to this pseudo-host (no process runs on it).
const ADMIN_HOST: &str = "fleet-admin";
const ADMIN_KEY_FILE: &str = "fleet-admin-key.json";
const REGISTRY_SETTING: &str = "fleet.registry";
const REGION: &str = "cn-hangzhou";
/// Deployments one fleet holds.
const MAX_DEPLOYMENTS: usize = 256;

#[derive(Debug, Clone, clap::Args)]
pub struct FleetArgs {
    /// Where the fleet keeps its deployments (a restart continues them).
    #[arg(long, default_value = "./data-fleet")]
    pub data_dir: PathBuf,
    /// The control endpoint.
    #[arg(long, default_value = "127.0.0.1:9200")]
    pub listen: SocketAddr,
    /// Simulated time per wall time.
    #[arg(long, default_value_t = 1.0)]
    pub sim_speed: f64,
}

struct Fleet {
    store: Arc<dyn Store>,
    plane: Arc<SimPlane>,
    catalog: Arc<Catalog>,
    registry: Arc<Mutex<Registry>>,
    backend: Arc<SimHosts>,
    bind: std::net::IpAddr,
    /// Deployment ids whose agent endpoint is served.
    served: Mutex<BTreeMap<String, ()>>,
    shutdown: tokio::sync::watch::Receiver<bool>,
}

pub fn run(args: FleetArgs) -> std::process::ExitCode {
    crate::server::logging::init(crate::server::config::LogFormat::Text);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ddsd sim-fleet: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ddsd sim-fleet: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn random_token(len: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

/// The admin key, made on first start (mode 0600).
fn admin_key(data_dir: &std::path::Path) -> anyhow::Result<(String, String, bool)> {
    let path = data_dir.join(ADMIN_KEY_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let v: Value = serde_json::from_str(&text).context("reading the fleet admin key")?;
        let id = v["AccessKeyId"].as_str().unwrap_or_default().to_string();
        let secret = v["AccessKeySecret"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        anyhow::ensure!(
            !id.is_empty() && !secret.is_empty(),
            "{} is incomplete",
            path.display()
        );
        return Ok((id, secret, false));
    }
    let (id, secret) = (format!("FLEET{}", random_token(16)), random_token(30));
    let text = json!({"AccessKeyId": id, "AccessKeySecret": secret}).to_string();
    let mut f = std::fs::OpenOptions::new();
    f.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        f.mode(0o600);
    }
    f.open(&path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok((id, secret, true))
}

async fn serve(args: FleetArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let data_dir = args.data_dir.clone();
    let store: Arc<dyn Store> = Arc::new(
        tokio::task::spawn_blocking(move || {
            SqliteStore::open_in(&data_dir, SqliteOptions::default())
        })
        .await?
        .context("opening the fleet's store")?,
    );
    let bind = args.listen.ip();
    let plane = Arc::new(
        SimPlane::open(
            store.clone(),
            SimPlaneConfig {
                speed: args.sim_speed,
                ports: Some(Arc::new(PortBook::auto(bind))),
                advertised_host: if bind.is_unspecified() {
                    "127.0.0.1".into()
                } else {
                    bind.to_string()
                },
                ..SimPlaneConfig::default()
            },
        )
        .await
        .context("opening the simulated fleet")?,
    );
    let wire = Supervisor::spawn(
        plane.clone(),
        store.clone(),
        WireSettings {
            bind,
            ..Default::default()
        },
    );
    let registry: Registry = match store.get_setting(REGISTRY_SETTING).await? {
        Some(text) => serde_json::from_str(&text).context("the fleet's host registry")?,
        None => Registry::default(),
    };
    let registry = Arc::new(Mutex::new(registry));
    let save_store = store.clone();
    let save: Arc<dyn Fn(&Registry) + Send + Sync> = Arc::new(move |r: &Registry| {
        if let Ok(text) = serde_json::to_string(r) {
            let store = save_store.clone();
            tokio::spawn(async move {
                if let Err(e) = store.put_setting(REGISTRY_SETTING, &text).await {
                    tracing::error!(error = %e, "saving the host registry");
                }
            });
        }
    });
    let backend = Arc::new(SimHosts {
        plane: plane.clone(),
        registry: registry.clone(),
        save,
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let fleet = Arc::new(Fleet {
        store: store.clone(),
        plane: plane.clone(),
        catalog: Arc::new(Catalog::embedded()),
        registry: registry.clone(),
        backend: backend.clone(),
        bind,
        served: Mutex::new(BTreeMap::new()),
        shutdown: stop_rx,
    });
    // The hosts come back where they were: each deployment's agent endpoint on its port.
    let ports: Vec<(String, u16)> = lock(&registry)
        .agent_ports
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    for (deployment, port) in ports {
        fleet.serve_agents(&deployment, port).await?;
    }

    let (admin_id, admin_secret, created) = admin_key(&args.data_dir)?;
    let control = AgentService::new(
        backend.clone(),
        vec![AgentKey {
            access_key_id: admin_id.clone(),
            secret: acs_rpc::Secret::new(admin_secret.clone()),
            host: ADMIN_HOST.into(),
        }],
        ServiceConfig::default(),
    )?;
    let for_control = fleet.clone();
    let extra: ExtraActions = Arc::new(move |action, params, host| {
        if host != ADMIN_HOST {
            return None;
        }
        for_control.clone().control(action, params)
    });
    let control = control.with_extra_actions(extra);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let local = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        if created {
            writeln!(out, "AccessKeyId: {admin_id}")?;
            writeln!(out, "AccessKeySecret: {admin_secret}")?;
        }
        writeln!(out, "ddsd sim-fleet listening on http://{local}")?;
        out.flush()?;
    }
    tracing::info!(listen = %local, speed = args.sim_speed, "sim-fleet serving");
    let shutdown = async {
        use tokio::signal::unix::{signal, SignalKind};
        if let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
    };
    control.serve(listener, shutdown).await;
    let _ = stop_tx.send(true);
    wire.shutdown().await;
    Ok(())
}

fn lock(r: &Mutex<Registry>) -> std::sync::MutexGuard<'_, Registry> {
    r.lock().unwrap_or_else(|e| e.into_inner())
}

fn param<'a>(p: &'a BTreeMap<String, String>, name: &'static str) -> Result<&'a str, AgentError> {
    p.get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or(AgentError::InvalidParameter {
            name,
            reason: "required".into(),
        })
}

fn count(
    p: &BTreeMap<String, String>,
    name: &'static str,
    default: u32,
    range: std::ops::RangeInclusive<u32>,
) -> Result<u32, AgentError> {
    match p.get(name) {
        None => Ok(default),
        Some(v) => v.parse::<u32>().ok().filter(|n| range.contains(n)).ok_or(
            AgentError::InvalidParameter {
                name,
                reason: format!("{v} is not in {range:?}"),
            },
        ),
    }
}

impl Fleet {
    fn control(
        self: Arc<Self>,
        action: &str,
        params: BTreeMap<String, String>,
    ) -> Option<AgentFuture<'static, Value>> {
        let fut: AgentFuture<'static, Value> = match action {
            "CreateDeployment" => Box::pin(async move { self.create_deployment(params).await }),
            "DescribeDeployments" => Box::pin(async move { self.describe_deployments().await }),
            "DescribeTruth" => Box::pin(async move { self.describe_truth(params).await }),
            "ArmFault" => Box::pin(async move {
                let id = param(&params, "DeploymentId")?.to_string();
                let fault: Value = serde_json::from_str(param(&params, "Fault")?).map_err(|e| {
                    AgentError::InvalidParameter {
                        name: "Fault",
                        reason: e.to_string(),
                    }
                })?;
                self.plane.arm_fault(&id, fault).await.map_err(|e| {
                    AgentError::InvalidParameter {
                        name: "Fault",
                        reason: e.to_string(),
                    }
                })?;
                Ok(json!({"DeploymentId": id}))
            }),
            "RemoveKernel" => Box::pin(async move {
                let host = param(&params, "Host")?.to_string();
                let kernel = param(&params, "KernelVersion")?.to_string();
                let mut r = lock(&self.registry);
                let h = r
                    .hosts
                    .get_mut(&host)
                    .ok_or_else(|| AgentError::NoSuchProcess(host.clone()))?;
                let removed = h.kernels.remove(&kernel);
                (self.backend.save)(&r);
                Ok(json!({"Host": host, "KernelVersion": kernel, "Removed": removed}))
            }),
            "ArmAgentFault" => Box::pin(async move {
                let host = param(&params, "Host")?.to_string();
                let busy = match params.get("Kind").map(String::as_str) {
                    Some("Busy") | None => true,
                    Some("Delay") => false,
                    Some(other) => {
                        return Err(AgentError::InvalidParameter {
                            name: "Kind",
                            reason: format!("{other}: Busy or Delay"),
                        })
                    }
                };
                let action = match params.get("TargetAction").map(String::as_str) {
                    None => None,
                    Some(a @ ("DescribeHost" | "StopProcess" | "StartProcess")) => {
                        Some(a.to_string())
                    }
                    Some(other) => {
                        return Err(AgentError::InvalidParameter {
                            name: "TargetAction",
                            reason: format!("{other}: DescribeHost, StopProcess or StartProcess"),
                        })
                    }
                };
                let fault = AgentFault {
                    action,
                    busy,
                    delay_ms: u64::from(count(&params, "DelayMs", 0, 0..=600_000)?),
                    count: count(&params, "Count", 1, 1..=1_000)?,
                };
                let mut r = lock(&self.registry);
                if !r.hosts.contains_key(&host) {
                    return Err(AgentError::NoSuchProcess(host));
                }
                r.faults.insert(host.clone(), fault);
                Ok(json!({"Host": host}))
            }),
            _ => return None,
        };
        Some(fut)
    }

    async fn create_deployment(
        self: Arc<Self>,
        params: BTreeMap<String, String>,
    ) -> Result<Value, AgentError> {
        let invalid =
            |name: &'static str, reason: String| AgentError::InvalidParameter { name, reason };
        if lock(&self.registry).agent_ports.len() >= MAX_DEPLOYMENTS {
            return Err(invalid(
                "Kind",
                format!("the fleet holds {MAX_DEPLOYMENTS} deployments"),
            ));
        }
        let sharded = match params.get("Kind").map(String::as_str) {
            None | Some("replicate") => false,
            Some("sharding") => true,
            Some(other) => return Err(invalid("Kind", format!("{other}: replicate or sharding"))),
        };
        let engine_version = params
            .get("EngineVersion")
            .cloned()
            .unwrap_or_else(|| "4.4".into());
        let password = param(&params, "AccountPassword")?.to_string();
        let encoded = crate::server::wire::accounts::encode_password(&password)
            .map_err(|e| invalid("AccountPassword", e))?;
        let common = CreateCommon::new(REGION, "cn-hangzhou-h", &engine_version);
        let mut rng = rand::rngs::StdRng::from_entropy();
        let created = acs_rpc::format_timestamp(time::OffsetDateTime::now_utc());
        let built = if sharded {
            let shards = count(&params, "Shards", 2, 2..=8)? as usize;
            let mongos = count(&params, "Mongos", 2, 2..=8)? as usize;
            build::build_sharded_instance(
                &CreateSharded {
                    common,
                    shards: (0..shards)
                        .map(|_| CreateShard {
                            class: "dds.shard.mid".into(),
                            storage_gb: 20,
                            readonly_replicas: 0,
                        })
                        .collect(),
                    config_servers: vec![CreateConfigServer {
                        class: "dds.cs.mid".into(),
                        storage_gb: 20,
                    }],
                    mongos: (0..mongos)
                        .map(|_| CreateMongos {
                            class: "dds.mongos.mid".into(),
                        })
                        .collect(),
                },
                &self.catalog,
                &created,
                &mut rng,
            )
        } else {
            build::build_replica_set_instance(
                &CreateReplicaSet {
                    common,
                    class: "dds.mongo.mid".into(),
                    storage_gb: 20,
                    replication_factor: count(&params, "ReplicationFactor", 3, 3..=7)?,
                    readonly_replicas: 0,
                },
                &self.catalog,
                &created,
                &mut rng,
            )
        };
        let mut instance: Instance = built.map_err(|e| invalid("EngineVersion", e.to_string()))?;
        let kernel = match params.get("KernelVersion") {
            Some(k) => {
                let known = self
                    .catalog
                    .kernels(&engine_version)
                    .is_some_and(|ks| ks.iter().any(|r| &r.kernel_version == k));
                if !known {
                    return Err(invalid(
                        "KernelVersion",
                        format!("{k} is not a {engine_version} kernel"),
                    ));
                }
                k.clone()
            }
            None => instance
                .topology
                .kernel_versions()
                .next()
                .unwrap_or_default()
                .to_string(),
        };
        crate::server::actions::instances::pin_kernel(&mut instance, &kernel);
        instance.status = DbInstanceStatus::Running;
        let id = instance.id.clone();
        let failed = |e: String| AgentError::Failed(e);
        self.store
            .import_instance(instance.clone(), Vec::new())
            .await
            .map_err(|e| failed(e.to_string()))?;
        crate::server::wire::accounts::store_root_account(&*self.store, &id, &encoded)
            .await
            .map_err(|e| failed(e.to_string()))?;
        match self.plane.provision(&instance, 1).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(failed(e.to_string())),
            Err(e) => return Err(failed(e.to_string())),
        }
        // One host per process, each with its own key and every kernel of the engine version and of the
        // next major (what a major version upgrade starts the processes on).
        let next = dds_engine::catalog::next_engine_version(&engine_version);
        let kernels: std::collections::BTreeSet<String> = std::iter::once(engine_version.as_str())
            .chain(next)
            .flat_map(|e| self.catalog.kernels(e).unwrap_or_default())
            .map(|r| r.kernel_version.clone())
            .collect();
        let mut processes: Vec<(String, ProcessKind, Option<String>)> = Vec::new();
        for rs in instance.topology.replica_sets() {
            for m in &rs.members {
                processes.push((
                    m.node_id.clone(),
                    ProcessKind::Mongod,
                    Some(rs.name.clone()),
                ));
            }
        }
        for m in instance.topology.mongos() {
            processes.push((m.node_id.clone(), ProcessKind::Mongos, None));
        }
        {
            let mut r = lock(&self.registry);
            for (node, kind, rs) in &processes {
                let name = format!("host-{node}");
                r.hosts.insert(
                    name.clone(),
                    SimHost {
                        name,
                        deployment: id.clone(),
                        process: node.clone(),
                        kind: *kind,
                        replica_set: rs.clone(),
                        kernels: kernels.clone(),
                        kernel: kernel.clone(),
                        generation: 1,
                        access_key_id: format!("AGENT{}", random_token(16)),
                        access_key_secret: random_token(30),
                    },
                );
            }
        }
        let port = self
            .serve_agents(&id, 0)
            .await
            .map_err(|e| failed(format!("{e:#}")))?;
        {
            let mut r = lock(&self.registry);
            r.agent_ports.insert(id.clone(), port);
            (self.backend.save)(&r);
        }
        self.wait_ready(&id).await?;
        self.manifest(&id).await
    }

    /// Serves the agent endpoint of `deployment`'s hosts on `port` (0: any); returns the port.
    async fn serve_agents(&self, deployment: &str, port: u16) -> anyhow::Result<u16> {
        let keys: Vec<AgentKey> = lock(&self.registry)
            .hosts
            .values()
            .filter(|h| h.deployment == deployment)
            .map(|h| AgentKey {
                access_key_id: h.access_key_id.clone(),
                secret: acs_rpc::Secret::new(h.access_key_secret.clone()),
                host: h.name.clone(),
            })
            .collect();
        let service = AgentService::new(self.backend.clone(), keys, ServiceConfig::default())?;
        let listener = tokio::net::TcpListener::bind(SocketAddr::new(self.bind, port))
            .await
            .with_context(|| {
                format!("binding the agent endpoint of {deployment} on port {port}")
            })?;
        let port = listener.local_addr()?.port();
        let mut stop = self.shutdown.clone();
        tokio::spawn(service.serve(listener, async move {
            let _ = stop.wait_for(|s| *s).await;
        }));
        self.served
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(deployment.to_string(), ());
        Ok(port)
    }

    /// Until every replica set has a primary and every process runs (at most a minute).
    async fn wait_ready(&self, id: &str) -> Result<(), AgentError> {
        let started = Instant::now();
        loop {
            if let Ok(Some(obs)) = self.plane.observe(id).await {
                let ready = obs.replica_sets.iter().all(|rs| {
                    rs.primary.is_some()
                        && rs
                            .members
                            .iter()
                            .all(|m| m.process_up && m.state.is_steady())
                }) && obs.mongos.iter().all(|m| m.up);
                if ready {
                    return Ok(());
                }
            }
            if started.elapsed() > Duration::from_secs(60) {
                return Err(AgentError::Failed(format!(
                    "{id} did not come up within 60 s"
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn manifest(&self, id: &str) -> Result<Value, AgentError> {
        let failed = |e: String| AgentError::Failed(e);
        let instance = self
            .store
            .get_instance(id)
            .await
            .map_err(|e| failed(e.to_string()))?
            .ok_or_else(|| AgentError::NoSuchProcess(id.to_string()))?;
        let endpoints = self
            .plane
            .endpoints(id)
            .await
            .map_err(|e| failed(e.to_string()))?
            .ok_or_else(|| failed(format!("{id} has no ports")))?;
        let seeds: Vec<String> = match &instance.topology {
            Topology::Sharded { mongos, .. } => mongos
                .iter()
                .filter_map(|m| endpoints.address(&m.node_id))
                .collect(),
            t => t
                .replica_sets()
                .iter()
                .flat_map(|rs| rs.members.iter())
                .filter_map(|m| endpoints.address(&m.node_id))
                .collect(),
        };
        let r = lock(&self.registry);
        let port = r.agent_ports.get(id).copied().unwrap_or(0);
        let host = if self.bind.is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            self.bind.to_string()
        };
        let agents: Vec<Value> = r
            .hosts
            .values()
            .filter(|h| h.deployment == id)
            .map(|h| {
                json!({
                    "Host": h.name, "Process": h.process,
                    "Endpoint": format!("http://{host}:{port}"),
                    "AccessKeyId": h.access_key_id, "AccessKeySecret": h.access_key_secret,
                })
            })
            .collect();
        Ok(json!({
            "DeploymentId": id,
            "Kind": if matches!(instance.topology, Topology::Sharded { .. }) { "sharding" } else { "replicate" },
            "EngineVersion": instance.engine_version,
            "SeedList": seeds.join(","),
            "Username": "root",
            "AuthSource": "admin",
            "AgentEndpoint": format!("http://{host}:{port}"),
            "Agents": agents,
        }))
    }

    async fn describe_deployments(self: Arc<Self>) -> Result<Value, AgentError> {
        let ids: Vec<String> = lock(&self.registry).agent_ports.keys().cloned().collect();
        let mut out = Vec::new();
        for id in ids {
            out.push(self.manifest(&id).await?);
        }
        Ok(json!({"Deployments": out}))
    }

    async fn describe_truth(
        self: Arc<Self>,
        params: BTreeMap<String, String>,
    ) -> Result<Value, AgentError> {
        let id = param(&params, "DeploymentId")?.to_string();
        let ms = |name: &'static str| -> Result<Option<u64>, AgentError> {
            params
                .get(name)
                .map(|v| {
                    v.parse::<u64>().map_err(|_| AgentError::InvalidParameter {
                        name,
                        reason: format!("{v} is not a number of ms"),
                    })
                })
                .transpose()
        };
        let from = ms("FromMs")?.unwrap_or(0);
        let until = ms("UntilMs")?.unwrap_or_else(|| self.plane.now_ms());
        let truth = self
            .plane
            .truth(&id)
            .await
            .map_err(|e| AgentError::Failed(e.to_string()))?
            .ok_or_else(|| AgentError::NoSuchProcess(id.clone()))?;
        let mut section = simulation_section(&truth, from, until);
        section["NowMs"] = json!(self.plane.now_ms());
        // At least one mongos serving throughout: the time without any, inside the window.
        let no_mongos_ms: u64 = truth
            .no_mongos
            .iter()
            .map(|i| {
                let (a, b) = (i.from_ms.max(from), i.until_ms.unwrap_or(until).min(until));
                b.saturating_sub(a)
            })
            .sum();
        section["NoMongosMs"] = json!(no_mongos_ms);
        let step_downs = truth
            .commands
            .iter()
            .filter(|c| c.at_ms >= from && c.at_ms <= until)
            .filter(|c| matches!(c.command, dds_engine::plane::Command::StepDown { .. }))
            .count();
        section["StepDowns"] = json!(step_downs);
        Ok(section)
    }
}
