//! The simulated fleet: one instance's MongoDB deployment on virtual time, the embedded default data plane
//! and the world the workflow tests run against.
//!
//! It models what a rolling restart can get wrong, closely enough that a bad orchestrator is caught:
//! - **Processes**: a stop takes 2–15 s (the member keeps its state until the process exits); a start goes
//!   STARTUP (5–30 s, WiredTiger recovery) → STARTUP2 (0.5–3 s) → RECOVERING (1–5 s) → SECONDARY, or
//!   straight to ARBITER; all durations drawn from the seeded RNG.
//! - **Elections**: terms count successful elections. A non-forced stepdown needs an electable secondary
//!   that catches up within `secondaryCatchUpPeriodSecs` and a write majority; writes stop at once and the
//!   handoff candidate becomes primary 1–3 s after it caught up, with no election timeout. A primary that dies
//!   (or loses its majority) is replaced only after the election timeout (10 s + up to 15 % jitter). The
//!   winner is the highest-priority electable SECONDARY that is at least as fresh as a majority of voters.
//!   A member with a higher priority than the primary takes over 10 s (+ jitter) after it came within 2 s
//!   of the primary's optime: the primary steps down and the member is elected 1–3 s later, once it has
//!   applied the last write. A stepped-down member cannot be elected for `stepDownSecs` (a restart clears
//!   that, as in mongod). A primary that sees no majority of voters steps down after the election timeout.
//! - **Shutdown and faults** are described on [`Fault`]; a start on a kernel fails only where a fault says so.
//! - **Replication**: the primary's optime is "now" (writes never stop); each secondary trails by a steady
//!   lag of up to 500 ms (a delayed member by its delay as well); a restarted member starts applying in
//!   STARTUP2 at 4–16× the write rate from where it stopped, so it may already be SECONDARY while still
//!   lagging. Members whose downtime exceeds the oplog window come back too stale and stay RECOVERING.
//! - **Heartbeats**: `state`/`healthy` as `replSetGetStatus` reports them lag reality by up to one
//!   heartbeat (2 s, each member with its own phase); the primary's own state, `process_up`, the kernel
//!   (`buildInfo`) and optimes are current.
//! - **Sharding**: mongos processes (stop 1–3 s, start 2–6 s), a balancer whose rounds (0.5–4 s, every
//!   10 s while `full` and the config servers have a primary) are computed lazily; `balancerStop` lets a
//!   round in progress finish.
//!
//! Everything is deterministic in (topology, params, seed, commands and their times): randomness is drawn
//! from `SmallRng::seed_from_u64(seed + draw counter)`, collections are ordered, and nothing reads a clock.
//! The whole fleet serialises to JSON ([`SimFleet::to_snapshot`]) so `ddsd serve` can persist the simulated
//! deployment across its own restarts: after [`SimFleet::from_snapshot`], [`SimFleet::advance_to`] the wall
//! clock and in-flight restarts complete as if nothing had happened.
//!
//! A standalone appears in observations as a one-member "replica set" named after its node id whose only
//! member is PRIMARY while it runs (`term` 0); it can be stopped (nothing to step down to) and never holds
//! an election.

mod core;
mod fault;
#[cfg(test)]
mod tests;
mod truth;

pub use fault::Fault;
pub use truth::{
    CommandRecord, DownInterval, ElectionCause, ElectionRecord, Interval, PrimaryStopAttempt,
    ProcessTruth, ReplicaSetTruth, StopRecord, Truth,
};

use crate::model::Topology;
use crate::plane::{BalancerMode, Command, CommandError, DeploymentObservation, Millis};
use serde::{Deserialize, Serialize};

/// Timings and rates of the simulation, all realistic MongoDB defaults. Ranges are inclusive and drawn
/// uniformly from the seeded RNG.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimParams {
    /// `heartbeatIntervalMillis`.
    pub heartbeat_interval_ms: Millis,
    /// `electionTimeoutMillis`.
    pub election_timeout_ms: Millis,
    /// Random extra wait before calling an election (`electionTimeoutOffsetLimitFraction` 0.15 of 10 s).
    pub election_jitter_max_ms: Millis,
    /// From the moment the handoff candidate has caught up until it is primary.
    pub handoff_min_ms: Millis,
    pub handoff_max_ms: Millis,
    /// First election of a newly initiated replica set, once a majority is SECONDARY.
    pub initiate_min_ms: Millis,
    pub initiate_max_ms: Millis,
    /// Wait before a caught-up higher-priority member takes over (plus election jitter).
    pub priority_takeover_delay_ms: Millis,
    /// How close to the primary's optime a member must be to take over (`priorityTakeoverFreshnessWindowSeconds`).
    pub priority_takeover_freshness_ms: Millis,
    /// Clean shutdown of a mongod.
    pub stop_min_ms: Millis,
    pub stop_max_ms: Millis,
    /// STARTUP (process launch and storage recovery).
    pub startup_min_ms: Millis,
    pub startup_max_ms: Millis,
    pub startup2_min_ms: Millis,
    pub startup2_max_ms: Millis,
    pub recovering_min_ms: Millis,
    pub recovering_max_ms: Millis,
    /// How long a crash-looping binary stays up before it dies.
    pub failed_start_min_ms: Millis,
    pub failed_start_max_ms: Millis,
    /// Steady replication lag of a secondary.
    pub steady_lag_min_ms: Millis,
    pub steady_lag_max_ms: Millis,
    /// Oplog apply rate while catching up, in thousandths of the write rate (4000 = 4×).
    pub catch_up_rate_min_permille: u64,
    pub catch_up_rate_max_permille: u64,
    /// Apply rate of a member under `Fault::NeverCatchesUp`.
    pub slow_apply_rate_permille: u64,
    pub mongos_stop_min_ms: Millis,
    pub mongos_stop_max_ms: Millis,
    pub mongos_start_min_ms: Millis,
    pub mongos_start_max_ms: Millis,
    /// Balancer: a round may start every interval; rounds last min..max.
    pub balancer_interval_ms: Millis,
    pub balancer_round_min_ms: Millis,
    pub balancer_round_max_ms: Millis,
    /// Default oplog window of every replica set.
    pub oplog_window_ms: Millis,
    /// How long the processes of a fleet built with [`SimFleet::new`] have already been running.
    pub initial_uptime_ms: Millis,
    /// Bound on each list in [`Truth`].
    pub truth_log_limit: usize,
}

impl Default for SimParams {
    fn default() -> Self {
        Self {
            heartbeat_interval_ms: 2_000,
            election_timeout_ms: 10_000,
            election_jitter_max_ms: 1_500,
            handoff_min_ms: 1_000,
            handoff_max_ms: 3_000,
            initiate_min_ms: 1_000,
            initiate_max_ms: 3_000,
            priority_takeover_delay_ms: 10_000,
            priority_takeover_freshness_ms: 2_000,
            stop_min_ms: 2_000,
            stop_max_ms: 15_000,
            startup_min_ms: 5_000,
            startup_max_ms: 30_000,
            startup2_min_ms: 500,
            startup2_max_ms: 3_000,
            recovering_min_ms: 1_000,
            recovering_max_ms: 5_000,
            failed_start_min_ms: 1_000,
            failed_start_max_ms: 3_000,
            steady_lag_min_ms: 0,
            steady_lag_max_ms: 500,
            catch_up_rate_min_permille: 4_000,
            catch_up_rate_max_permille: 16_000,
            slow_apply_rate_permille: 500,
            mongos_stop_min_ms: 1_000,
            mongos_stop_max_ms: 3_000,
            mongos_start_min_ms: 2_000,
            mongos_start_max_ms: 6_000,
            balancer_interval_ms: 10_000,
            balancer_round_min_ms: 500,
            balancer_round_max_ms: 4_000,
            oplog_window_ms: 24 * 3_600_000,
            initial_uptime_ms: 3_600_000,
            truth_log_limit: 10_000,
        }
    }
}

impl SimParams {
    /// Longest duration any parameter may have (a year), which keeps time arithmetic far from overflow.
    pub const MAX_DURATION_MS: Millis = 365 * 86_400_000;
    /// Fastest apply rate (1000×).
    pub const MAX_RATE_PERMILLE: u64 = 1_000_000;

    /// The parameters with every value brought into range (the fleet applies this itself).
    pub fn sanitized(mut self) -> Self {
        self.heartbeat_interval_ms = self.heartbeat_interval_ms.min(Self::MAX_DURATION_MS);
        self.election_timeout_ms = self.election_timeout_ms.min(Self::MAX_DURATION_MS);
        self.election_jitter_max_ms = self.election_jitter_max_ms.min(Self::MAX_DURATION_MS);
        self.handoff_min_ms = self.handoff_min_ms.min(Self::MAX_DURATION_MS);
        self.handoff_max_ms = self.handoff_max_ms.min(Self::MAX_DURATION_MS);
        self.initiate_min_ms = self.initiate_min_ms.min(Self::MAX_DURATION_MS);
        self.initiate_max_ms = self.initiate_max_ms.min(Self::MAX_DURATION_MS);
        self.priority_takeover_delay_ms =
            self.priority_takeover_delay_ms.min(Self::MAX_DURATION_MS);
        self.priority_takeover_freshness_ms = self
            .priority_takeover_freshness_ms
            .min(Self::MAX_DURATION_MS);
        self.stop_min_ms = self.stop_min_ms.min(Self::MAX_DURATION_MS);
        self.stop_max_ms = self.stop_max_ms.min(Self::MAX_DURATION_MS);
        self.startup_min_ms = self.startup_min_ms.min(Self::MAX_DURATION_MS);
        self.startup_max_ms = self.startup_max_ms.min(Self::MAX_DURATION_MS);
        self.startup2_min_ms = self.startup2_min_ms.min(Self::MAX_DURATION_MS);
        self.startup2_max_ms = self.startup2_max_ms.min(Self::MAX_DURATION_MS);
        self.recovering_min_ms = self.recovering_min_ms.min(Self::MAX_DURATION_MS);
        self.recovering_max_ms = self.recovering_max_ms.min(Self::MAX_DURATION_MS);
        self.failed_start_min_ms = self.failed_start_min_ms.min(Self::MAX_DURATION_MS);
        self.failed_start_max_ms = self.failed_start_max_ms.min(Self::MAX_DURATION_MS);
        self.steady_lag_min_ms = self.steady_lag_min_ms.min(Self::MAX_DURATION_MS);
        self.steady_lag_max_ms = self.steady_lag_max_ms.min(Self::MAX_DURATION_MS);
        self.mongos_stop_min_ms = self.mongos_stop_min_ms.min(Self::MAX_DURATION_MS);
        self.mongos_stop_max_ms = self.mongos_stop_max_ms.min(Self::MAX_DURATION_MS);
        self.mongos_start_min_ms = self.mongos_start_min_ms.min(Self::MAX_DURATION_MS);
        self.mongos_start_max_ms = self.mongos_start_max_ms.min(Self::MAX_DURATION_MS);
        self.balancer_interval_ms = self.balancer_interval_ms.min(Self::MAX_DURATION_MS);
        self.balancer_round_min_ms = self.balancer_round_min_ms.min(Self::MAX_DURATION_MS);
        self.balancer_round_max_ms = self.balancer_round_max_ms.min(Self::MAX_DURATION_MS);
        self.oplog_window_ms = self.oplog_window_ms.min(Self::MAX_DURATION_MS);
        self.initial_uptime_ms = self.initial_uptime_ms.min(Self::MAX_DURATION_MS);
        self.catch_up_rate_min_permille = self
            .catch_up_rate_min_permille
            .clamp(1, Self::MAX_RATE_PERMILLE);
        self.catch_up_rate_max_permille = self
            .catch_up_rate_max_permille
            .clamp(1, Self::MAX_RATE_PERMILLE);
        self.slow_apply_rate_permille = self
            .slow_apply_rate_permille
            .clamp(1, Self::MAX_RATE_PERMILLE);
        self.truth_log_limit = self.truth_log_limit.clamp(10, 10_000_000);
        self
    }
}

/// Why a snapshot could not be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot format {0} is not supported")]
    Format(u64),
    #[error("snapshot is not a simulated fleet: {0}")]
    Decode(String),
    #[error("snapshot is inconsistent: {0}")]
    Inconsistent(&'static str),
}

/// Version of [`SimFleet::to_snapshot`]'s JSON.
pub const SNAPSHOT_FORMAT: u64 = 1;

/// One instance's simulated deployment. See the module docs for the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SimFleet {
    inner: core::Fleet,
}

impl SimFleet {
    /// A running deployment: every process up on its topology kernel, one primary per replica set (the
    /// highest-priority electable member, first in `rs.conf()` order on ties), balancer `full`.
    pub fn new(topology: &Topology, params: SimParams, seed: u64, now_ms: Millis) -> SimFleet {
        SimFleet {
            inner: core::Fleet::new(topology, params, seed, now_ms, true),
        }
    }

    /// A deployment being created (`CreateDBInstance`): every process launched at `now_ms` in STARTUP; the
    /// replica sets elect their first primary once a majority is SECONDARY, mongos serve once started.
    pub fn provision(
        topology: &Topology,
        params: SimParams,
        seed: u64,
        now_ms: Millis,
    ) -> SimFleet {
        SimFleet {
            inner: core::Fleet::new(topology, params, seed, now_ms, false),
        }
    }

    /// Begins a clean shutdown of every process (`DeleteDBInstance`); see [`SimFleet::is_down`].
    pub fn teardown(&mut self) {
        self.inner.teardown();
    }

    /// Whether every process has exited.
    pub fn is_down(&self) -> bool {
        self.inner.is_down()
    }

    /// The deployment as `replSetGetStatus`, `buildInfo` and `balancerStatus` would show it now.
    pub fn observe(&self) -> DeploymentObservation {
        self.inner.observe()
    }

    /// Carries out a command at the current time; its effects unfold as time advances. Every command is
    /// recorded in [`Truth::commands`].
    pub fn apply(&mut self, cmd: &Command) -> Result<(), CommandError> {
        self.inner.apply(cmd)
    }

    /// Runs every internal event up to `now_ms` (time never goes backwards).
    pub fn advance_to(&mut self, now_ms: Millis) {
        self.inner.advance_to(now_ms);
    }

    /// The earliest pending internal event, for fast-forwarding virtual time. Includes the moments at which
    /// a change becomes visible through heartbeats.
    pub fn next_event_ms(&self) -> Option<Millis> {
        self.inner.next_event_ms()
    }

    pub fn now_ms(&self) -> Millis {
        self.inner.now_ms
    }

    /// Arms a fault; `NoSuchNode` when it names a node or replica set the deployment lacks (or a balancer
    /// fault on a replica-set instance).
    pub fn arm_fault(&mut self, fault: Fault) -> Result<(), CommandError> {
        self.inner.arm_fault(fault)
    }

    /// Disarms every standing fault (timed faults already scheduled still fire).
    pub fn clear_faults(&mut self) {
        self.inner.faults.clear();
    }

    /// Sets the balancer directly (test setup, F10/F11): `in_round_until_ms` makes a round last until then.
    /// No-op on a replica-set instance.
    pub fn set_balancer(&mut self, mode: BalancerMode, in_round_until_ms: Option<Millis>) {
        self.inner.set_balancer(mode, in_round_until_ms);
    }

    pub fn truth(&self) -> &Truth {
        &self.inner.truth
    }

    pub fn params(&self) -> &SimParams {
        &self.inner.params
    }

    /// The whole fleet as JSON: `{"format": 1, "fleet": {...}}`.
    pub fn to_snapshot(&self) -> serde_json::Value {
        serde_json::json!({
            "format": SNAPSHOT_FORMAT,
            "fleet": serde_json::to_value(&self.inner).unwrap_or(serde_json::Value::Null),
        })
    }

    /// Restores a fleet saved with [`SimFleet::to_snapshot`], checking its internal references.
    pub fn from_snapshot(snapshot: &serde_json::Value) -> Result<SimFleet, SnapshotError> {
        let format = snapshot
            .get("format")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| SnapshotError::Decode("missing format".into()))?;
        if format != SNAPSHOT_FORMAT {
            return Err(SnapshotError::Format(format));
        }
        let fleet = snapshot
            .get("fleet")
            .ok_or_else(|| SnapshotError::Decode("missing fleet".into()))?;
        let inner: core::Fleet = serde_json::from_value(fleet.clone())
            .map_err(|e| SnapshotError::Decode(e.to_string()))?;
        inner.check().map_err(SnapshotError::Inconsistent)?;
        Ok(SimFleet { inner })
    }
}
