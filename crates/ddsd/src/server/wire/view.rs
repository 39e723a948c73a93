//! From the simulated fleet to [`ProcessFacts`]: what one process says about itself and its replica
//! set at this instant, with the instance's `rs.conf()` (priorities, hidden and delayed members,
//! arbiters) and every process's advertised `host:port`.

use std::collections::BTreeMap;

use dds_engine::model::{Instance, MemberKind, Topology};
use dds_engine::plane::{DeploymentObservation, MemberState};
use dds_engine::sim::Truth;

use super::facts::{ProcessFacts, ProcessKind, StatusMember};
use crate::server::actions::parameters::Role as ParamRole;

/// One member as `rs.conf()` has it.
#[derive(Debug, Clone)]
pub struct ConfMember {
    pub node_id: String,
    pub kind: MemberKind,
    pub priority: u8,
    pub delay_secs: u32,
}

/// One replica set's configuration.
#[derive(Debug, Clone)]
pub struct ConfSet {
    pub name: String,
    /// The replica set's own node id (a shard's or the config server's `NodeId`).
    pub node_id: String,
    pub members: Vec<ConfMember>,
}

impl ConfSet {
    /// Voting members needed for `w: "majority"` (`writeMajorityCount`: a majority of the voting
    /// members, at most the voting data-bearing ones).
    pub fn write_majority(&self) -> usize {
        let voting = self.members.iter().filter(|m| m.kind.votes()).count();
        let data_voting = self
            .members
            .iter()
            .filter(|m| m.kind.votes() && m.kind.data_bearing())
            .count();
        (voting / 2 + 1).min(data_voting).max(1)
    }
    pub fn member(&self, node_id: &str) -> Option<&ConfMember> {
        self.members.iter().find(|m| m.node_id == node_id)
    }
}

/// Where a process sits in its instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Standalone,
    /// A mongod of the replica set with this name.
    Member(String),
    Mongos,
}

/// The parts of an instance the wire server needs, taken once per listener start.
#[derive(Debug, Clone)]
pub struct Layout {
    pub instance_id: String,
    pub sets: Vec<ConfSet>,
    /// Shard replica sets in order; the first is every database's primary shard.
    pub shards: Vec<String>,
    pub config_server: Option<String>,
    pub mongos: Vec<String>,
    pub standalone: bool,
}

impl Layout {
    pub fn of(instance: &Instance) -> Layout {
        let conf = |rs: &dds_engine::model::ReplicaSetSpec| ConfSet {
            name: rs.name.clone(),
            node_id: rs.node_id.clone(),
            members: rs
                .members
                .iter()
                .map(|m| ConfMember {
                    node_id: m.node_id.clone(),
                    kind: m.kind,
                    priority: m.priority,
                    delay_secs: m.delay_secs,
                })
                .collect(),
        };
        let mut layout = Layout {
            instance_id: instance.id.clone(),
            sets: Vec::new(),
            shards: Vec::new(),
            config_server: None,
            mongos: Vec::new(),
            standalone: false,
        };
        match &instance.topology {
            Topology::Standalone { .. } => layout.standalone = true,
            Topology::ReplicaSet { replica_set } => layout.sets.push(conf(replica_set)),
            Topology::Sharded {
                config_server,
                shards,
                mongos,
            } => {
                layout.sets.push(conf(config_server));
                layout.config_server = Some(config_server.name.clone());
                for s in shards {
                    layout.sets.push(conf(s));
                    layout.shards.push(s.name.clone());
                }
                layout.mongos = mongos.iter().map(|m| m.node_id.clone()).collect();
            }
        }
        layout
    }

    /// Whose parameters `node_id` runs with (the scope `ModifyParameters` changes) and as which role.
    pub fn parameter_scope(&self, node_id: &str) -> (String, ParamRole) {
        if self.mongos.iter().any(|m| m == node_id) {
            return (node_id.to_string(), ParamRole::Mongos);
        }
        match self.sets.iter().find(|s| s.member(node_id).is_some()) {
            Some(set) if self.config_server.as_deref() == Some(set.name.as_str()) => {
                (set.node_id.clone(), ParamRole::Cs)
            }
            Some(set) if !self.shards.is_empty() => (set.node_id.clone(), ParamRole::Db),
            _ => (self.instance_id.clone(), ParamRole::Normal),
        }
    }

    pub fn set(&self, name: &str) -> Option<&ConfSet> {
        self.sets.iter().find(|s| s.name == name)
    }

    /// The role of `node_id` given the fleet's observation (a standalone's set is the fleet's only one).
    pub fn role(&self, obs: &DeploymentObservation, node_id: &str) -> Option<Role> {
        if self.mongos.iter().any(|m| m == node_id) {
            return Some(Role::Mongos);
        }
        let rs = obs
            .replica_sets
            .iter()
            .find(|rs| rs.member(node_id).is_some())?;
        Some(if self.standalone {
            Role::Standalone
        } else {
            Role::Member(rs.name.clone())
        })
    }
}

/// `mongodb_20240119_4.4.19` → `(4, 4, 19)`, `5.0.22-20240110161145_1` → `(5, 0, 22)`; a bare `4.4.19`
/// works too.
pub fn release_of(kernel: &str) -> Option<(u32, u32, u32)> {
    // Both vendor formats (`mongodb_YYYYMMDD_X.Y.Z`, `X.Y.Z-YYYYMMDDhhmmss_N` from 5.0 on).
    if let Ok(k) = dds_engine::catalog::parse_kernel_version(kernel) {
        return Some(k.release);
    }
    let v = kernel.rsplit('_').next()?;
    let mut it = v.split('.').map(|p| p.parse::<u32>().ok());
    let a = it.next()??;
    let b = it.next()??;
    let c = it.next().flatten().unwrap_or(0);
    Some((a, b, c))
}

/// What the process answers as, now. `None` when the process is not part of the fleet.
#[allow(clippy::too_many_arguments)]
pub fn facts(
    layout: &Layout,
    obs: &DeploymentObservation,
    truth: &Truth,
    ports: &BTreeMap<String, u16>,
    host: &str,
    node_id: &str,
    connections_current: u32,
    connections_available: u32,
) -> Option<ProcessFacts> {
    let addr = |n: &str| ports.get(n).map(|p| format!("{host}:{p}"));
    let me = addr(node_id)?;
    let role = layout.role(obs, node_id)?;
    if role == Role::Mongos {
        let m = obs.mongos.iter().find(|m| m.node_id == node_id)?;
        // Between a process's start and the fleet knowing its binary there is nothing true to
        // say (a made-up wire version would make drivers refuse the server outright): no facts,
        // and the caller answers ShutdownInProgress, which drivers retry elsewhere.
        let kernel = m.kernel_version.clone()?;
        let release = release_of(&kernel).unwrap_or((0, 0, 0));
        return Some(ProcessFacts {
            kind: ProcessKind::Mongos,
            me,
            set_name: None,
            state: if m.up {
                MemberState::Primary
            } else {
                MemberState::Down
            },
            writable: m.up,
            term: 0,
            set_version: 0,
            primary: None,
            hosts: Vec::new(),
            passives: Vec::new(),
            arbiters: Vec::new(),
            hidden: false,
            // The cluster's FCV as its config servers keep it.
            fcv: obs
                .replica_sets
                .first()
                .and_then(|r| r.fcv.clone())
                .unwrap_or_else(|| format!("{}.{}", release.0, release.1)),
            kernel,
            release,
            now_ms: obs.now_ms,
            started_ms: m.started_ms.unwrap_or(obs.now_ms),
            optime_ms: obs.now_ms,
            election_ms: None,
            members: Vec::new(),
            connections_current,
            connections_available,
        });
    }
    let rs = obs
        .replica_sets
        .iter()
        .find(|rs| rs.member(node_id).is_some())?;
    let own = rs.member(node_id)?;
    let conf = layout.set(&rs.name);
    let conf_of = |n: &str| conf.and_then(|c| c.member(n));
    let kind_of = |n: &str| conf_of(n).map_or(MemberKind::Electable, |m| m.kind);
    // The others learn a member's state through heartbeats; the member itself knows at once that
    // its process runs.
    let state = if own.process_up && own.state == MemberState::Down {
        MemberState::Startup
    } else {
        own.state
    };
    let primary_addr = rs.primary.as_deref().and_then(addr);
    let election_ms = truth
        .replica_set(&rs.name)
        .and_then(|t| t.elections.last())
        .map(|e| e.at_ms);
    let mut hosts = Vec::new();
    let mut passives = Vec::new();
    let mut arbiters = Vec::new();
    for m in &rs.members {
        let Some(a) = addr(&m.node_id) else { continue };
        match kind_of(&m.node_id) {
            MemberKind::Electable => hosts.push(a),
            MemberKind::ReadOnly => passives.push(a),
            MemberKind::Arbiter => arbiters.push(a),
            MemberKind::Hidden | MemberKind::Delayed => {}
        }
    }
    let members = rs
        .members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let c = conf_of(&m.node_id);
            let kind = kind_of(&m.node_id);
            let is_self = m.node_id == node_id;
            let (mstate, healthy) = if is_self {
                (state, true)
            } else {
                (m.state, m.healthy)
            };
            StatusMember {
                id: i as i32,
                name: addr(&m.node_id).unwrap_or_default(),
                state: mstate,
                healthy,
                uptime_s: m
                    .started_ms
                    .map_or(0, |s| (obs.now_ms.saturating_sub(s) / 1000) as i64),
                optime_ms: m.optime_ms,
                sync_source: (mstate == MemberState::Secondary)
                    .then(|| primary_addr.clone())
                    .flatten(),
                election_ms: (rs.primary.as_deref() == Some(m.node_id.as_str()))
                    .then_some(election_ms)
                    .flatten(),
                is_self,
                priority: f64::from(c.map_or(1, |c| c.priority)),
                votes: i32::from(kind.votes()),
                hidden: matches!(kind, MemberKind::Hidden | MemberKind::Delayed),
                arbiter: kind == MemberKind::Arbiter,
                secondary_delay_s: i64::from(c.map_or(0, |c| c.delay_secs)),
            }
        })
        .collect();
    let kernel = own.kernel_version.clone()?;
    let release = release_of(&kernel).unwrap_or((0, 0, 0));
    let is_primary = rs.primary.as_deref() == Some(node_id);
    Some(ProcessFacts {
        kind: if role == Role::Standalone {
            ProcessKind::Standalone
        } else {
            ProcessKind::ReplicaSetMember
        },
        me,
        set_name: (role != Role::Standalone).then(|| rs.name.clone()),
        state,
        writable: is_primary && state == MemberState::Primary,
        term: rs.term,
        set_version: 1,
        primary: primary_addr,
        hosts,
        passives,
        arbiters,
        hidden: matches!(kind_of(node_id), MemberKind::Hidden | MemberKind::Delayed),
        // The set's data FCV as the fleet tracks it (`setFeatureCompatibilityVersion` moves it).
        fcv: rs
            .fcv
            .clone()
            .unwrap_or_else(|| format!("{}.{}", release.0, release.1)),
        kernel,
        release,
        now_ms: obs.now_ms,
        started_ms: own.started_ms.unwrap_or(obs.now_ms),
        optime_ms: if is_primary {
            obs.now_ms
        } else {
            own.optime_ms
        },
        election_ms: is_primary.then_some(election_ms).flatten(),
        members,
        connections_current,
        connections_available,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_come_from_the_vendor_kernel_name() {
        assert_eq!(release_of("mongodb_20240119_4.4.19"), Some((4, 4, 19)));
        assert_eq!(release_of("mongodb_20231120_7.0.2"), Some((7, 0, 2)));
        assert_eq!(release_of("5.0"), Some((5, 0, 0)));
        assert_eq!(release_of("mongodb_x"), None);
    }

    #[test]
    fn each_process_runs_the_parameters_of_its_scope() {
        let set = |name: &str, node: &str, members: &[&str]| ConfSet {
            name: name.into(),
            node_id: node.into(),
            members: members
                .iter()
                .map(|m| ConfMember {
                    node_id: (*m).into(),
                    kind: MemberKind::Electable,
                    priority: 1,
                    delay_secs: 0,
                })
                .collect(),
        };
        let sharded = Layout {
            instance_id: "dds-1".into(),
            sets: vec![
                set("cs", "dds-1-cs", &["c1", "c2"]),
                set("sh1", "d-sh1", &["a1", "a2"]),
            ],
            shards: vec!["sh1".into()],
            config_server: Some("cs".into()),
            mongos: vec!["s-m1".into()],
            standalone: false,
        };
        assert_eq!(
            sharded.parameter_scope("c2"),
            ("dds-1-cs".into(), ParamRole::Cs)
        );
        assert_eq!(
            sharded.parameter_scope("a1"),
            ("d-sh1".into(), ParamRole::Db)
        );
        assert_eq!(
            sharded.parameter_scope("s-m1"),
            ("s-m1".into(), ParamRole::Mongos)
        );
        let rs = Layout {
            instance_id: "dds-2".into(),
            sets: vec![set("mgset-2", "dds-2-rs", &["n1", "n2"])],
            shards: vec![],
            config_server: None,
            mongos: vec![],
            standalone: false,
        };
        assert_eq!(
            rs.parameter_scope("n2"),
            ("dds-2".into(), ParamRole::Normal)
        );
    }
}
