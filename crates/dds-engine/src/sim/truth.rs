//! Ground truth the simulated fleet records for invariant checks: what really happened, independent of
//! what the orchestrator observed or believes.

use crate::plane::{BalancerMode, Command, CommandError, Millis};
use serde::{Deserialize, Serialize};

/// A time interval; `until_ms` is `None` while it is still open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interval {
    pub from_ms: Millis,
    pub until_ms: Option<Millis>,
}

impl Interval {
    /// Length as of `now_ms` for an open interval.
    pub fn duration_ms(&self, now_ms: Millis) -> Millis {
        self.until_ms.unwrap_or(now_ms).saturating_sub(self.from_ms)
    }
}

/// A period a process was not running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownInterval {
    pub from_ms: Millis,
    pub until_ms: Option<Millis>,
    /// Whether it began with our `StopMember` / `StopMongos` (as opposed to a crash or a failed start).
    pub by_command: bool,
}

/// What happened to one process (mongod member or mongos).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessTruth {
    pub node_id: String,
    /// The replica set of a mongod; `None` for a mongos.
    pub replica_set: Option<String>,
    /// Accepted `StopMember` / `StopMongos` commands that actually began a shutdown (repeats are not counted).
    pub stops_by_command: u32,
    /// Accepted start commands that actually launched the process (repeats are not counted).
    pub starts_by_command: u32,
    /// Starts that crashed (`Fault::StartFails`, `Fault::MongosStartFails`).
    pub failed_starts: u32,
    /// Crashes injected with `Fault::Crash`.
    pub crashes: u32,
    pub down: Vec<DownInterval>,
    /// The kernel of every launch, with its time.
    pub launches: Vec<(Millis, String)>,
}

/// Why a member became primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ElectionCause {
    /// The first election of a newly provisioned replica set.
    Initiate,
    /// Election handoff after a (non-forced) stepdown: no election timeout.
    Handoff,
    /// After the election timeout, with no handoff (the primary died, lost its majority, or the handoff
    /// candidate could not win).
    Timeout,
    /// A higher-priority member caught up and took over.
    PriorityTakeover,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElectionRecord {
    /// The term the winner was elected in.
    pub term: u64,
    pub at_ms: Millis,
    pub winner: String,
    pub cause: ElectionCause,
    /// The `step_down_id` of our `StepDown` that led to it, if any.
    pub step_down_id: Option<u64>,
    /// The winner's optime when it was elected: writes of the old primary after it are rolled back.
    #[serde(default)]
    pub winner_optime_ms: Millis,
}

/// An accepted `StopMember`, with the other members of its replica set that were not available
/// (not running, or not PRIMARY/SECONDARY/ARBITER) at that moment — ground truth for invariant I1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopRecord {
    pub at_ms: Millis,
    pub node_id: String,
    pub others_unavailable: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaSetTruth {
    pub name: String,
    /// The term before anything happened in the simulation.
    pub initial_term: u64,
    pub elections: Vec<ElectionRecord>,
    /// Periods without a writable primary (F18's write gaps).
    pub no_primary: Vec<Interval>,
    /// Most members unavailable at once because of our stop commands (stopped and not yet back to a steady
    /// state).
    pub max_out_by_commands: usize,
    /// Most members unavailable at once for any reason.
    pub max_unavailable: usize,
    pub stops: Vec<StopRecord>,
    /// Members that came back too stale to catch up from the oplog.
    pub too_stale: Vec<String>,
}

impl ReplicaSetTruth {
    /// The longest period without a writable primary, as of `now_ms`.
    pub fn longest_no_primary_ms(&self, now_ms: Millis) -> Millis {
        self.no_primary
            .iter()
            .map(|i| i.duration_ms(now_ms))
            .max()
            .unwrap_or(0)
    }
    /// Elections at or after `from_ms`.
    pub fn elections_since(&self, from_ms: Millis) -> impl Iterator<Item = &ElectionRecord> {
        self.elections.iter().filter(move |e| e.at_ms >= from_ms)
    }
}

/// Someone asked to stop a member while it was primary (refused with `IsPrimary`, and recorded because
/// asking at all breaks invariant I2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrimaryStopAttempt {
    pub at_ms: Millis,
    pub replica_set: String,
    pub node_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandRecord {
    pub at_ms: Millis,
    pub command: Command,
    pub result: Result<(), CommandError>,
}

/// Everything the fleet recorded. Lists are bounded (`SimParams::truth_log_limit`); the oldest entries go
/// first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Truth {
    /// Mongod members in topology order, then mongos.
    pub processes: Vec<ProcessTruth>,
    /// In the instance's upgrade order (config servers, then shards).
    pub replica_sets: Vec<ReplicaSetTruth>,
    pub primary_stop_attempts: Vec<PrimaryStopAttempt>,
    /// Balancer mode changes, starting with the initial mode.
    pub balancer_modes: Vec<(Millis, BalancerMode)>,
    /// Periods in which no mongos was serving (sharded clusters, after the first mongos came up).
    pub no_mongos: Vec<Interval>,
    pub commands: Vec<CommandRecord>,
    /// Every change of a replica set's `featureCompatibilityVersion`: (time, replica set, new version).
    #[serde(default)]
    pub fcv_changes: Vec<(Millis, String, String)>,
}

impl Truth {
    pub fn process(&self, node_id: &str) -> Option<&ProcessTruth> {
        self.processes.iter().find(|p| p.node_id == node_id)
    }
    pub fn replica_set(&self, name: &str) -> Option<&ReplicaSetTruth> {
        self.replica_sets.iter().find(|r| r.name == name)
    }
    /// Launches by our start commands (0 for an unknown node).
    pub fn restarts(&self, node_id: &str) -> u32 {
        self.process(node_id).map_or(0, |p| p.starts_by_command)
    }
}

/// Appends, dropping the oldest tenth once `limit` is exceeded.
pub(crate) fn push_bounded<T>(v: &mut Vec<T>, item: T, limit: usize) {
    v.push(item);
    if v.len() > limit.max(10) {
        let drop = v.len() / 10;
        v.drain(..drop);
    }
}
