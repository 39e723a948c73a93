//! The simulated hosts: every process of a simulated deployment runs on a host of its own, behind
//! the agent protocol, with the kernels the host has installed. Stop and start are the simulated
//! fleet's own commands; the agent answers as a real one would (a stop answers once the process
//! is gone, a start once it runs). Faults on demand: a host whose kernel is missing, an agent that
//! answers late or says it is busy.

use crate::agent::api::{
    AgentError, AgentFuture, HostBackend, HostDescription, ProcessDescription, ProcessKind,
};
use crate::server::plane::sim::SimPlane;
use crate::server::plane::DataPlane;
use dds_engine::plane::{Command, CommandError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The fleet never fences itself: its commands carry one epoch.
const FLEET_EPOCH: u64 = 1;
/// How long a stop may take on the wall clock before the agent gives up.
const STOP_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimHost {
    pub name: String,
    pub deployment: String,
    pub process: String,
    pub kind: ProcessKind,
    /// The replica set of a mongod.
    pub replica_set: Option<String>,
    pub kernels: BTreeSet<String>,
    /// The kernel it runs or last ran.
    pub kernel: String,
    pub generation: u64,
    pub access_key_id: String,
    pub access_key_secret: String,
}

/// An agent fault armed on a host: the next `count` calls answer `OperationConflict`, or answer
/// `delay_ms` late.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentFault {
    /// `DescribeHost`, `StopProcess`, `StartProcess`, or `None` for any.
    pub action: Option<String>,
    pub busy: bool,
    pub delay_ms: u64,
    pub count: u32,
}

#[derive(Default, Serialize, Deserialize)]
pub struct Registry {
    pub hosts: BTreeMap<String, SimHost>,
    /// The agent endpoint's port of each deployment.
    pub agent_ports: BTreeMap<String, u16>,
    #[serde(skip)]
    pub faults: BTreeMap<String, AgentFault>,
}

pub struct SimHosts {
    pub plane: Arc<SimPlane>,
    pub registry: Arc<Mutex<Registry>>,
    /// Persists the registry after a change.
    pub save: Arc<dyn Fn(&Registry) + Send + Sync>,
}

fn lock(r: &Mutex<Registry>) -> std::sync::MutexGuard<'_, Registry> {
    r.lock().unwrap_or_else(|e| e.into_inner())
}

impl SimHosts {
    fn host(&self, name: &str) -> Result<SimHost, AgentError> {
        lock(&self.registry)
            .hosts
            .get(name)
            .cloned()
            .ok_or_else(|| AgentError::NoSuchProcess(name.to_string()))
    }

    /// Waits out an armed fault, or refuses with it.
    async fn fault(&self, host: &str, action: &str) -> Result<(), AgentError> {
        let armed = {
            let mut r = lock(&self.registry);
            match r.faults.get_mut(host) {
                Some(f) if f.count > 0 && f.action.as_deref().is_none_or(|a| a == action) => {
                    f.count -= 1;
                    Some(f.clone())
                }
                _ => None,
            }
        };
        if let Some(f) = armed {
            tokio::time::sleep(Duration::from_millis(f.delay_ms)).await;
            if f.busy {
                return Err(AgentError::Busy(host.to_string()));
            }
        }
        Ok(())
    }

    async fn describe_process(&self, h: &SimHost) -> Result<ProcessDescription, AgentError> {
        let failed = |e: crate::server::plane::PlaneError| AgentError::Failed(e.to_string());
        let obs = self
            .plane
            .observe(&h.deployment)
            .await
            .map_err(failed)?
            .ok_or_else(|| AgentError::NoSuchProcess(h.process.clone()))?;
        let (running, kernel) = match h.kind {
            ProcessKind::Mongod => obs
                .replica_sets
                .iter()
                .flat_map(|rs| rs.members.iter())
                .find(|m| m.node_id == h.process)
                .map(|m| (m.process_up, m.kernel_version.clone())),
            ProcessKind::Mongos => obs
                .mongos
                .iter()
                .find(|m| m.node_id == h.process)
                .map(|m| (m.up, m.kernel_version.clone())),
        }
        .ok_or_else(|| AgentError::NoSuchProcess(h.process.clone()))?;
        let endpoints = self.plane.endpoints(&h.deployment).await.map_err(failed)?;
        let port = endpoints
            .as_ref()
            .and_then(|e| e.ports.get(&h.process).copied())
            .unwrap_or(0);
        let address = endpoints
            .as_ref()
            .and_then(|e| e.address(&h.process))
            .unwrap_or_default();
        let kernel = kernel.unwrap_or_else(|| h.kernel.clone());
        if kernel != h.kernel {
            if let Some(stored) = lock(&self.registry).hosts.get_mut(&h.name) {
                stored.kernel = kernel.clone();
            }
        }
        Ok(ProcessDescription {
            name: h.process.clone(),
            kind: h.kind,
            address,
            port,
            kernel_version: kernel,
            running,
            pid: None,
            generation: h.generation,
            data_dir: None,
            config_file: None,
        })
    }

    async fn run(&self, h: &SimHost, command: Command) -> Result<(), AgentError> {
        let started = Instant::now();
        loop {
            match self
                .plane
                .execute(&h.deployment, FLEET_EPOCH, "agent", &command)
                .await
            {
                // A simulated shutdown ends some time after the process stops serving: a start
                // that comes in between waits for it, as a real agent waits for the old process
                // to exit before launching the new one.
                Ok(Err(CommandError::NotStopped(_))) if started.elapsed() < STOP_WAIT => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                other => return Self::outcome(other),
            }
        }
    }

    fn outcome(
        r: crate::server::plane::PlaneResult<Result<(), CommandError>>,
    ) -> Result<(), AgentError> {
        match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(CommandError::NoSuchNode(n))) => Err(AgentError::NoSuchProcess(n)),
            Ok(Err(e)) => Err(AgentError::Failed(e.to_string())),
            Err(e) => Err(AgentError::Failed(e.to_string())),
        }
    }

    fn checked(&self, host: &str, process: &str) -> Result<SimHost, AgentError> {
        let h = self.host(host)?;
        if h.process != process {
            // A key acts on its own host's process only.
            return Err(AgentError::NoSuchProcess(process.to_string()));
        }
        Ok(h)
    }
}

impl HostBackend for SimHosts {
    fn describe(&self, host: &str) -> AgentFuture<'_, HostDescription> {
        let host = host.to_string();
        Box::pin(async move {
            self.fault(&host, crate::agent::api::DESCRIBE_HOST).await?;
            let h = self.host(&host)?;
            let p = self.describe_process(&h).await?;
            Ok(HostDescription {
                host_name: h.name.clone(),
                kernels: h.kernels.iter().cloned().collect(),
                processes: vec![p],
            })
        })
    }

    fn stop(&self, host: &str, process: &str) -> AgentFuture<'_, (bool, ProcessDescription)> {
        let (host, process) = (host.to_string(), process.to_string());
        Box::pin(async move {
            self.fault(&host, crate::agent::api::STOP_PROCESS).await?;
            let h = self.checked(&host, &process)?;
            let before = self.describe_process(&h).await?;
            if !before.running {
                return Ok((false, before));
            }
            let command = match (&h.kind, &h.replica_set) {
                (ProcessKind::Mongod, Some(rs)) => Command::StopMember {
                    replica_set: rs.clone(),
                    node_id: h.process.clone(),
                },
                _ => Command::StopMongos {
                    node_id: h.process.clone(),
                },
            };
            self.run(&h, command).await?;
            let started = Instant::now();
            loop {
                let now = self.describe_process(&h).await?;
                if !now.running {
                    return Ok((true, now));
                }
                if started.elapsed() > STOP_WAIT {
                    return Err(AgentError::Failed(format!(
                        "{process} did not exit within {} s",
                        STOP_WAIT.as_secs()
                    )));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    }

    fn start(
        &self,
        host: &str,
        process: &str,
        kernel_version: &str,
    ) -> AgentFuture<'_, (bool, ProcessDescription)> {
        let (host, process, kernel) = (
            host.to_string(),
            process.to_string(),
            kernel_version.to_string(),
        );
        Box::pin(async move {
            self.fault(&host, crate::agent::api::START_PROCESS).await?;
            let h = self.checked(&host, &process)?;
            if !h.kernels.contains(&kernel) {
                return Err(AgentError::KernelNotInstalled {
                    host: h.name.clone(),
                    kernel,
                });
            }
            let before = self.describe_process(&h).await?;
            if before.running {
                if before.kernel_version == kernel {
                    return Ok((false, before));
                }
                return Err(AgentError::Failed(format!(
                    "{process} runs {}: stop it before starting it on {kernel}",
                    before.kernel_version
                )));
            }
            let command = match (&h.kind, &h.replica_set) {
                (ProcessKind::Mongod, Some(rs)) => Command::StartMember {
                    replica_set: rs.clone(),
                    node_id: h.process.clone(),
                    kernel_version: kernel.clone(),
                },
                _ => Command::StartMongos {
                    node_id: h.process.clone(),
                    kernel_version: kernel.clone(),
                },
            };
            self.run(&h, command).await?;
            let snapshot = {
                let mut r = lock(&self.registry);
                if let Some(stored) = r.hosts.get_mut(&host) {
                    stored.generation += 1;
                    stored.kernel = kernel.clone();
                }
                (self.save)(&r);
                r.hosts.get(&host).cloned()
            };
            let h = snapshot.unwrap_or(h);
            let mut after = self.describe_process(&h).await?;
            // The simulated process is up from the start command on (it then goes through
            // STARTUP and STARTUP2 as the wire shows).
            after.running = true;
            after.kernel_version = kernel;
            Ok((true, after))
        })
    }
}
