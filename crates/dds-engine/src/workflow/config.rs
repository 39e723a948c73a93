//! Tuning of the rolling workflows. Every limit is named with its unit last; the defaults follow the
//! measured or documented MongoDB behaviour cited in `spec/upgrade-orchestration.md`.

use serde::{Deserialize, Serialize};

/// Limits and timeouts of a rolling upgrade or restart. Persisted with the operation, so a resumed operation
/// keeps the limits it started with even if the server's configuration changed meanwhile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UpgradeConfig {
    /// How long a restarted member must keep passing its gate before the next member is touched (I8e). A member
    /// that reports SECONDARY while still replaying its oplog is the classic way rolling restarts go wrong.
    pub gate_stability_ms: u64,
    /// Lag, primary optime minus member optime, a member may have to pass its gate (I8d) and at preflight.
    /// Delayed members get their `secondaryDelaySecs` on top. 10 s is Atlas's failover precondition.
    pub max_lag_ms: u64,
    /// From `StopMember` (its latest issue: one the plane could not deliver is issued again) until the
    /// process is observed down. mongod's own shutdown quiesce is ≤ 15 s.
    pub member_stop_deadline_ms: u64,
    /// From `StartMember` (its latest issue: one the plane could not deliver is issued again) until the
    /// process is up on the expected kernel in SECONDARY/ARBITER (or PRIMARY after a
    /// takeover). Missing it means the binary does not start: the member is put back on its previous kernel.
    pub member_start_deadline_ms: u64,
    /// From `StartMember` until the whole post-start gate holds (caught up and stable).
    pub member_catch_up_deadline_ms: u64,
    /// How long the gate before a stop (I1: every other voter healthy and steady) may stay closed — e.g. an
    /// unrelated member is down (F7) — before the operation fails without touching anything more.
    pub pre_stop_gate_deadline_ms: u64,
    /// `replSetStepDown` argument: how long the old primary stays ineligible.
    pub step_down_secs: u32,
    /// `replSetStepDown` argument `secondaryCatchUpPeriodSecs`.
    pub step_down_catch_up_secs: u32,
    /// From the first stepdown attempt until a refused stepdown ("no electable secondaries caught up") stops
    /// being retried and the operation fails. A stepdown is never forced (I7).
    pub stepdown_deadline_ms: u64,
    /// First retry delay after a refused stepdown; doubles up to `stepdown_retry_max_ms`.
    pub stepdown_retry_initial_ms: u64,
    pub stepdown_retry_max_ms: u64,
    /// From an accepted stepdown until another member is observed PRIMARY. Past it the old primary is left
    /// running (never stopped without a successor) and the operation fails (F4).
    pub new_primary_deadline_ms: u64,
    /// Accepted stepdowns per replica set before the operation gives up: a primary that keeps getting
    /// re-elected before it can be restarted would otherwise cost an election per attempt.
    pub max_stepdowns_per_replica_set: u32,
    /// When a restarted member outranks the primary at the end of a replica set, how long to wait for its
    /// priority takeover (catch-up plus `catchUpTakeoverDelay`-like delay) before moving on anyway.
    pub priority_takeover_wait_ms: u64,
    /// How long a replica set may be observed without any primary while the workflow needs one (e.g. after
    /// an unrelated primary crash) before the operation fails.
    pub primary_wait_deadline_ms: u64,
    /// Shards restarted at the same time after the canary (members of one replica set never are): a sliding
    /// window, the next shard in order starts as soon as one finishes. 1 = strictly sequential, the MongoDB
    /// documentation's reading. The default 8 keeps a 16-shard cluster at about 2× the time of a 1-shard one
    /// (sequential: 7.9×; BENCHMARKS.md `## Upgrade`), while a bad kernel still stops at the canary and a
    /// failure never starts another shard.
    pub max_parallel_shards: u32,
    /// Upgrade the first shard alone before any other shard starts, so a bad kernel fails on one shard.
    pub canary_shard: bool,
    /// mongos restarted at once; always capped so that at least one mongos keeps serving.
    pub mongos_batch: u32,
    /// From `StartMongos` (its latest issue: one the plane could not deliver is issued again) until the
    /// mongos is up on the expected kernel and stable.
    pub mongos_start_deadline_ms: u64,
    /// How long a restarted mongos must stay up before the next batch.
    pub mongos_stability_ms: u64,
    /// From `StopBalancer` until `mode: off` and no round in progress (`balancerStop` waits for the round).
    pub balancer_stop_deadline_ms: u64,
    /// From the start of the restore until the recorded mode is observed again (a refused `balancerStart`, e.g.
    /// while the config servers elect a primary, is retried); past it the operation ends with a warning.
    pub balancer_restore_deadline_ms: u64,
    /// How long a member put back on its previous kernel may take to serve again; past it the revert is
    /// reported as failed (it is tried once).
    pub revert_deadline_ms: u64,
    /// Expected time one member is out of the replica set during its restart, for the oplog-window check (F17).
    pub expected_member_downtime_ms: u64,
    /// The oplog window must cover this many expected downtimes (≫ per-node downtime, I9).
    pub oplog_window_factor: u32,
    /// PSA-like sets lose w:majority write availability while their data-bearing secondary restarts. `true`
    /// proceeds with a warning in the report; `false` refuses at preflight.
    pub allow_write_majority_loss: bool,
}

impl Default for UpgradeConfig {
    fn default() -> Self {
        Self {
            gate_stability_ms: 10_000,
            max_lag_ms: 10_000,
            member_stop_deadline_ms: 120_000,
            member_start_deadline_ms: 180_000,
            member_catch_up_deadline_ms: 600_000,
            pre_stop_gate_deadline_ms: 300_000,
            step_down_secs: 60,
            step_down_catch_up_secs: 10,
            stepdown_deadline_ms: 300_000,
            stepdown_retry_initial_ms: 2_000,
            stepdown_retry_max_ms: 30_000,
            new_primary_deadline_ms: 30_000,
            max_stepdowns_per_replica_set: 3,
            priority_takeover_wait_ms: 90_000,
            primary_wait_deadline_ms: 60_000,
            max_parallel_shards: 8,
            canary_shard: true,
            mongos_batch: 1,
            mongos_start_deadline_ms: 120_000,
            mongos_stability_ms: 5_000,
            balancer_stop_deadline_ms: 300_000,
            balancer_restore_deadline_ms: 300_000,
            revert_deadline_ms: 300_000,
            expected_member_downtime_ms: 60_000,
            oplog_window_factor: 10,
            allow_write_majority_loss: true,
        }
    }
}

impl UpgradeConfig {
    /// Rejects settings under which the workflow could not make progress or could break an invariant.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_parallel_shards == 0 {
            return Err("max_parallel_shards must be at least 1".into());
        }
        if self.max_stepdowns_per_replica_set == 0 {
            return Err("max_stepdowns_per_replica_set must be at least 1".into());
        }
        if self.mongos_batch == 0 {
            return Err("mongos_batch must be at least 1".into());
        }
        if self.step_down_secs <= self.step_down_catch_up_secs {
            // replSetStepDown itself refuses this combination.
            return Err("step_down_secs must exceed step_down_catch_up_secs".into());
        }
        if self.member_catch_up_deadline_ms < self.member_start_deadline_ms {
            return Err("member_catch_up_deadline_ms must be >= member_start_deadline_ms".into());
        }
        if self.stepdown_retry_initial_ms == 0
            || self.stepdown_retry_max_ms < self.stepdown_retry_initial_ms
        {
            return Err("stepdown retry delays must be positive and max >= initial".into());
        }
        Ok(())
    }

    /// Minimum oplog window accepted at preflight.
    pub fn required_oplog_window_ms(&self) -> u64 {
        self.expected_member_downtime_ms
            .saturating_mul(u64::from(self.oplog_window_factor))
    }

    /// Delay before stepdown attempt `attempt` (1-based) is retried.
    pub fn stepdown_backoff_ms(&self, attempt: u32) -> u64 {
        let shift = attempt.saturating_sub(1).min(20);
        self.stepdown_retry_initial_ms
            .saturating_mul(1u64 << shift)
            .min(self.stepdown_retry_max_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_backoff_is_capped() {
        let c = UpgradeConfig::default();
        c.validate().unwrap();
        assert_eq!(c.stepdown_backoff_ms(1), 2_000);
        assert_eq!(c.stepdown_backoff_ms(2), 4_000);
        assert_eq!(c.stepdown_backoff_ms(5), 30_000);
        assert_eq!(c.stepdown_backoff_ms(60), 30_000);
        assert_eq!(c.required_oplog_window_ms(), 600_000);
    }

    #[test]
    fn rejects_settings_that_cannot_progress() {
        for bad in [
            UpgradeConfig {
                max_parallel_shards: 0,
                ..Default::default()
            },
            UpgradeConfig {
                mongos_batch: 0,
                ..Default::default()
            },
            UpgradeConfig {
                step_down_secs: 10,
                step_down_catch_up_secs: 10,
                ..Default::default()
            },
            UpgradeConfig {
                member_catch_up_deadline_ms: 1,
                ..Default::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn missing_fields_take_defaults_when_deserialised() {
        let c: UpgradeConfig = serde_json::from_str(r#"{"max_parallel_shards": 2}"#).unwrap();
        assert_eq!(c.max_parallel_shards, 2);
        assert_eq!(
            c.gate_stability_ms,
            UpgradeConfig::default().gate_stability_ms
        );
    }
}
