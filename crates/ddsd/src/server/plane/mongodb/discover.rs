//! Importing a deployment ddsd does not own: from a seed list, credentials and the agent of each
//! host, find the topology over the wire — a replica set's members from `replSetGetConfig`
//! (arbiters, hidden and delayed members, read-only members), a sharded cluster's shards from
//! `listShards`, its config servers from the mongos's `serverStatus.sharding`, its mongos from the
//! seed list — and the kernel each process runs (its agent's word, checked against `buildInfo`).
//! Every process must be managed by one of the given agents; its process name becomes its
//! `NodeId`.

use super::probe::{flag, number, Connector};
use super::record::{DeploymentRecord, ProcessRecord, ReplicaSetRecord};
use crate::agent::api::{AgentClient, AgentEndpoint, ProcessDescription, ProcessKind};
use bson::{doc, Document};
use dds_engine::model::{MemberKind, MemberSpec, MongosSpec, ReplicaSetKind, ReplicaSetSpec};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// What the caller of an import gives.
#[derive(Clone)]
pub struct ImportRequest {
    pub seeds: Vec<String>,
    pub username: String,
    pub password: String,
    pub auth_source: String,
    pub agents: Vec<AgentEndpoint>,
}

/// The discovered deployment: the topology for the instance and the record for the plane.
#[derive(Debug, Clone)]
pub struct Discovered {
    pub sharded: bool,
    /// Replica sets in upgrade order (config servers first), with their kind.
    pub replica_sets: Vec<ReplicaSetSpec>,
    pub mongos: Vec<MongosSpec>,
    pub record: DeploymentRecord,
    /// `X.Y` of the kernels found.
    pub engine_version: String,
}

/// Why an import was refused: the parameter at fault and what was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    pub parameter: &'static str,
    pub reason: String,
}

fn refuse(parameter: &'static str, reason: impl Into<String>) -> ImportError {
    ImportError {
        parameter,
        reason: reason.into(),
    }
}

/// Bounds on what one import may find.
const MAX_SHARDS: usize = 64;
const MAX_MEMBERS: usize = 50;

pub async fn discover(
    req: &ImportRequest,
    connect_timeout: Duration,
    command_timeout: Duration,
    agent_timeout: Duration,
) -> Result<Discovered, ImportError> {
    // Which agent runs which address.
    let mut managed: BTreeMap<String, (usize, ProcessDescription)> = BTreeMap::new();
    for (i, a) in req.agents.iter().enumerate() {
        let client = AgentClient::new(a, agent_timeout)
            .map_err(|e| refuse("Agent.N.Endpoint", format!("{}: {e:#}", a.endpoint)))?;
        let host = client.describe_host().await.map_err(|e| {
            refuse(
                "Agent.N.Endpoint",
                format!("agent {} ({}) did not answer: {e}", i + 1, a.endpoint),
            )
        })?;
        for p in host.processes {
            managed.insert(p.address.clone(), (i, p));
        }
    }
    let conn = Connector::new(
        &req.username,
        &req.password,
        &req.auth_source,
        connect_timeout,
        command_timeout,
    );
    let mut first = None;
    for seed in &req.seeds {
        if let Ok(h) = conn.admin(seed, doc! {"hello": 1}).await {
            first = Some((seed.clone(), h));
            break;
        }
    }
    let Some((seed, hello)) = first else {
        return Err(refuse(
            "SeedList",
            "no seed answers hello (check the addresses and that the processes run)",
        ));
    };
    let mut d = Discovery {
        conn: &conn,
        managed: &managed,
        used: BTreeSet::new(),
        versions: BTreeSet::new(),
    };
    let (sharded, replica_sets, mongos_records) = if hello.get_str("msg").ok() == Some("isdbgrid") {
        let mut mongos = Vec::new();
        for s in &req.seeds {
            let h = conn
                .admin(s, doc! {"hello": 1})
                .await
                .map_err(|e| refuse("SeedList", format!("mongos {s}: {e}")))?;
            if h.get_str("msg").ok() != Some("isdbgrid") {
                return Err(refuse(
                    "SeedList",
                    format!("{s} is not a mongos: list the mongos of a sharded cluster"),
                ));
            }
            mongos.push(d.process(s, ProcessKind::Mongos).await?);
        }
        let status = conn
            .admin(&seed, super::probe::server_status_command())
            .await
            .map_err(|e| refuse("SeedList", format!("serverStatus on {seed}: {e}")))?;
        let cs = status
            .get_document("sharding")
            .ok()
            .and_then(|s| s.get_str("configsvrConnectionString").ok())
            .ok_or_else(|| {
                refuse(
                    "SeedList",
                    format!(
                        "{seed} does not report serverStatus.sharding.configsvrConnectionString"
                    ),
                )
            })?
            .to_string();
        let mut sets = vec![
            d.replica_set(&cs, ReplicaSetKind::ConfigServer, None)
                .await?,
        ];
        let shards = conn
            .admin(&seed, doc! {"listShards": 1})
            .await
            .map_err(|e| refuse("SeedList", format!("listShards on {seed}: {e}")))?;
        let list = shards
            .get_array("shards")
            .map_err(|_| refuse("SeedList", format!("listShards on {seed} lists no shards")))?;
        if list.is_empty() || list.len() > MAX_SHARDS {
            return Err(refuse(
                "SeedList",
                format!(
                    "the cluster has {} shards (1 to {MAX_SHARDS} can be imported)",
                    list.len()
                ),
            ));
        }
        for s in list {
            let s = s.as_document().cloned().unwrap_or_default();
            let id = s.get_str("_id").unwrap_or_default().to_string();
            let host = s.get_str("host").unwrap_or_default().to_string();
            sets.push(
                d.replica_set(&host, ReplicaSetKind::Shard, Some(id))
                    .await?,
            );
        }
        (true, sets, mongos)
    } else if hello.get_str("setName").is_ok() {
        let rs = d.replica_set(&seed, ReplicaSetKind::Instance, None).await?;
        (false, vec![rs], Vec::new())
    } else {
        return Err(refuse(
            "SeedList",
            format!("{seed} is a standalone mongod: import a replica set or a sharded cluster"),
        ));
    };
    if d.versions.len() != 1 {
        return Err(refuse(
            "SeedList",
            format!(
                "the processes run engine versions {:?}: an instance has one",
                d.versions
            ),
        ));
    }
    let engine_version = d.versions.iter().next().cloned().unwrap_or_default();
    let (specs, records): (Vec<_>, Vec<_>) = replica_sets.into_iter().unzip();
    let (mongos_specs, mongos_records): (Vec<_>, Vec<_>) = mongos_records.into_iter().unzip();
    Ok(Discovered {
        sharded,
        replica_sets: specs,
        mongos: mongos_specs,
        record: DeploymentRecord {
            replica_sets: records,
            mongos: mongos_records,
            agents: req.agents.clone(),
            username: req.username.clone(),
            password: req.password.clone(),
            auth_source: req.auth_source.clone(),
        },
        engine_version,
    })
}

struct Discovery<'a> {
    conn: &'a Connector,
    managed: &'a BTreeMap<String, (usize, ProcessDescription)>,
    used: BTreeSet<String>,
    /// Engine versions (`X.Y`) of the processes seen.
    versions: BTreeSet<String>,
}

impl Discovery<'_> {
    /// The agent-managed process at `address`, its kernel checked against what it reports.
    async fn managed_process(
        &mut self,
        address: &str,
        kind: ProcessKind,
        arbiter: bool,
    ) -> Result<(String, String, usize), ImportError> {
        let Some((agent, p)) = self.managed.get(address) else {
            return Err(refuse(
                "Agent.N.Endpoint",
                format!("{address} is not managed by any of the given agents"),
            ));
        };
        if p.kind != kind {
            return Err(refuse(
                "Agent.N.Endpoint",
                format!("the agent runs {} at {address} as a {:?}", p.name, p.kind),
            ));
        }
        if !self.used.insert(p.name.clone()) {
            return Err(refuse(
                "Agent.N.Endpoint",
                format!("two processes are named {}", p.name),
            ));
        }
        // An arbiter holds no users: its version comes from hello's maxWireVersion at best, so its
        // agent's word stands.
        if !arbiter {
            if let Ok(b) = self.conn.admin(address, doc! {"buildInfo": 1}).await {
                let v = b.get_str("version").unwrap_or_default();
                if !p.kernel_version.ends_with(&format!("_{v}")) && p.kernel_version != v {
                    return Err(refuse(
                        "Agent.N.Endpoint",
                        format!(
                            "{address} reports version {v} but its agent says it runs {}",
                            p.kernel_version
                        ),
                    ));
                }
                if let Some((major, rest)) = v.split_once('.') {
                    let minor = rest.split('.').next().unwrap_or_default();
                    self.versions.insert(format!("{major}.{minor}"));
                }
            }
        }
        Ok((p.name.clone(), p.kernel_version.clone(), *agent))
    }

    async fn process(
        &mut self,
        address: &str,
        kind: ProcessKind,
    ) -> Result<(MongosSpec, ProcessRecord), ImportError> {
        let (name, kernel, agent) = self.managed_process(address, kind, false).await?;
        Ok((
            MongosSpec {
                node_id: name.clone(),
                class: "dds.mongos.mid".into(),
                kernel_version: kernel,
            },
            ProcessRecord {
                node_id: name,
                address: address.to_string(),
                agent,
            },
        ))
    }

    /// A replica set from `hosts` (`name/h1:p1,h2:p2` or one `h:p`).
    async fn replica_set(
        &mut self,
        hosts: &str,
        kind: ReplicaSetKind,
        node_id: Option<String>,
    ) -> Result<(ReplicaSetSpec, ReplicaSetRecord), ImportError> {
        let list = hosts.rsplit('/').next().unwrap_or_default();
        let mut config = None;
        for h in list.split(',').filter(|h| !h.is_empty()) {
            if let Ok(c) = self.conn.admin(h, doc! {"replSetGetConfig": 1}).await {
                config = c.get_document("config").ok().cloned();
                if config.is_some() {
                    break;
                }
            }
        }
        let config: Document = config.ok_or_else(|| {
            refuse(
                "SeedList",
                format!("no member of {hosts} answers replSetGetConfig"),
            )
        })?;
        let name = config.get_str("_id").unwrap_or_default().to_string();
        let members = config.get_array("members").cloned().unwrap_or_default();
        if members.is_empty() || members.len() > MAX_MEMBERS {
            return Err(refuse(
                "SeedList",
                format!("replica set {name} has {} members", members.len()),
            ));
        }
        let mut specs = Vec::new();
        let mut records = Vec::new();
        for m in members.iter().filter_map(|m| m.as_document()) {
            let address = m.get_str("host").unwrap_or_default().to_string();
            let arbiter = flag(m, "arbiterOnly");
            let priority = number(m.get("priority")).unwrap_or(1.0);
            let votes = number(m.get("votes")).unwrap_or(1.0);
            let delay = number(m.get("secondaryDelaySecs"))
                .or_else(|| number(m.get("slaveDelay")))
                .unwrap_or(0.0);
            let member_kind = if arbiter {
                MemberKind::Arbiter
            } else if votes == 0.0 {
                MemberKind::ReadOnly
            } else if delay > 0.0 {
                MemberKind::Delayed
            } else if flag(m, "hidden") || priority == 0.0 {
                MemberKind::Hidden
            } else {
                MemberKind::Electable
            };
            let (node, kernel, agent) = self
                .managed_process(&address, ProcessKind::Mongod, arbiter)
                .await?;
            specs.push(MemberSpec {
                node_id: node.clone(),
                kind: member_kind,
                priority: if member_kind.electable() {
                    priority.clamp(1.0, 100.0) as u8
                } else {
                    0
                },
                delay_secs: delay.max(0.0) as u32,
                kernel_version: kernel,
            });
            records.push(ProcessRecord {
                node_id: node,
                address,
                agent,
            });
        }
        let class = match kind {
            ReplicaSetKind::Instance => "dds.mongo.mid",
            ReplicaSetKind::Shard => "dds.shard.mid",
            ReplicaSetKind::ConfigServer => "dds.cs.mid",
        };
        Ok((
            ReplicaSetSpec {
                name: name.clone(),
                node_id: node_id.unwrap_or_else(|| name.clone()),
                kind,
                class: class.into(),
                storage_gb: 20,
                members: specs,
            },
            ReplicaSetRecord {
                name,
                members: records,
            },
        ))
    }
}
