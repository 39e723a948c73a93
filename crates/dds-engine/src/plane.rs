//! The data-plane contract: what the orchestrator can observe of a deployment and the commands it can
//! issue. The simulated fleet (`sim`) implements it on virtual time; a real `mongod` plane can follow.
//!
//! Observations mirror what MongoDB itself reports (`replSetGetStatus`, `buildInfo`, `balancerStatus`)
//! so that the workflows written against them would drive a real deployment the same way.

use serde::{Deserialize, Serialize};

/// Milliseconds on the data plane's clock (virtual in tests, wall clock in `ddsd serve`).
pub type Millis = u64;

/// `stateStr` of a member as `replSetGetStatus` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MemberState {
    Primary,
    Secondary,
    Arbiter,
    /// Starting, config not yet loaded.
    Startup,
    /// Initial sync / catching up after start.
    Startup2,
    Recovering,
    Rollback,
    /// Not reachable: stopped, crashed, or failed to start.
    Down,
}

impl MemberState {
    /// Healthy steady states a gate can accept.
    pub fn is_steady(self) -> bool {
        matches!(
            self,
            MemberState::Primary | MemberState::Secondary | MemberState::Arbiter
        )
    }
}

/// One member as seen by the deployment (from the primary's point of view where that matters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberObservation {
    pub node_id: String,
    pub state: MemberState,
    /// `health` as seen from the current primary (or from a majority when there is no primary).
    pub healthy: bool,
    /// Whether the process is running at all (stopped on purpose or crashed ⇒ false).
    pub process_up: bool,
    /// `buildInfo.version` of the running process; `None` while the process is down.
    pub kernel_version: Option<String>,
    /// `optimeDate` of the member, ms.
    pub optime_ms: Millis,
    /// Since when the member has been in `state`, ms (for stability windows).
    pub state_since_ms: Millis,
    /// When the running process started (`serverStatus.uptime` subtracted from now); `None` while down or
    /// when the plane cannot tell. A restart changes it, which is how a rolling restart that keeps the kernel
    /// recognises a member it already restarted.
    #[serde(default)]
    pub started_ms: Option<Millis>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaSetObservation {
    pub name: String,
    /// Election term; each election increments it, so a term delta counts elections.
    pub term: u64,
    /// node_id of the current primary, if any.
    pub primary: Option<String>,
    /// `optimeDate` of the primary (the lag reference); 0 without a primary.
    pub primary_optime_ms: Millis,
    pub members: Vec<MemberObservation>,
    /// The primary's oplog window (newest minus oldest oplog entry), ms, when the plane knows it. A member
    /// down longer than this cannot catch up from the oplog (RS102), so preflight compares it with the
    /// expected per-member downtime.
    #[serde(default)]
    pub oplog_window_ms: Option<Millis>,
    /// `featureCompatibilityVersion` as the primary reports it (`getParameter`), e.g. `"4.4"`; `None` when
    /// the plane cannot tell (no primary, or an old snapshot).
    #[serde(default)]
    pub fcv: Option<String>,
}

impl ReplicaSetObservation {
    pub fn member(&self, node_id: &str) -> Option<&MemberObservation> {
        self.members.iter().find(|m| m.node_id == node_id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MongosObservation {
    pub node_id: String,
    pub up: bool,
    pub kernel_version: Option<String>,
    /// When the running mongos started; `None` while down or unknown (see `MemberObservation::started_ms`).
    #[serde(default)]
    pub started_ms: Option<Millis>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BalancerMode {
    /// `mode: "full"`.
    Full,
    /// `mode: "off"`.
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalancerObservation {
    pub mode: BalancerMode,
    pub in_balancer_round: bool,
}

/// A fresh observation of a whole instance's deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentObservation {
    pub now_ms: Millis,
    /// In the instance's upgrade order (config servers, then shards).
    pub replica_sets: Vec<ReplicaSetObservation>,
    pub mongos: Vec<MongosObservation>,
    /// `None` for a replica-set instance.
    pub balancer: Option<BalancerObservation>,
}

impl DeploymentObservation {
    pub fn replica_set(&self, name: &str) -> Option<&ReplicaSetObservation> {
        self.replica_sets.iter().find(|rs| rs.name == name)
    }
}

/// A command the orchestrator asks the data plane to carry out. Every command is safe to repeat:
/// the plane answers a repeated command from the current state (stopping a stopped process is a no-op).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Command {
    /// Clean shutdown of one mongod (`shutdown`); on a primary the plane refuses (never restart a primary).
    StopMember {
        replica_set: String,
        node_id: String,
    },
    /// Start one stopped mongod on `kernel_version`.
    StartMember {
        replica_set: String,
        node_id: String,
        kernel_version: String,
    },
    /// Non-forced `replSetStepDown` of `node_id`, which must be primary. `step_down_id` makes a repeat after
    /// a crash recognisable.
    StepDown {
        replica_set: String,
        node_id: String,
        step_down_id: u64,
        step_down_secs: u32,
        catch_up_secs: u32,
    },
    /// `balancerStop` (the plane sets mode off; a round in progress finishes on its own).
    StopBalancer,
    /// `balancerStart`.
    StartBalancer,
    StopMongos {
        node_id: String,
    },
    StartMongos {
        node_id: String,
        kernel_version: String,
    },
    /// `setFeatureCompatibilityVersion: version` (with `confirm: true` from 7.0 on): through a mongos for a
    /// sharded cluster (`replica_set` = `None`; the cluster sets it on the config servers and every shard),
    /// on the primary of `replica_set` for a replica set. Setting the version already in force is a no-op.
    SetFeatureCompatibilityVersion {
        replica_set: Option<String>,
        version: String,
    },
}

/// Why the plane refused a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum CommandError {
    #[error("no such node {0}")]
    NoSuchNode(String),
    #[error("refusing to stop {0}: it is primary")]
    IsPrimary(String),
    #[error("{0} is not primary")]
    NotPrimary(String),
    /// `replSetStepDown` refused: no electable secondary caught up (MongoDB's `ExceededTimeLimit`).
    #[error("stepdown refused: no electable secondaries caught up")]
    NoElectableSecondary,
    #[error("{0} is not stopped")]
    NotStopped(String),
    #[error("{0}")]
    Other(String),
}
