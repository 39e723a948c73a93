//! The phase loop behind [`RollingOperation::step`]: preflight, balancer stop, the replica sets, mongos,
//! balancer restore. The order across replica sets (I5) lives here — config servers, the canary shard alone,
//! then the other shards up to `max_parallel_shards` — and so does the wind-down after a failure; what
//! happens inside one set is in `replica_set`.

use super::context::{env_of, failure, Cx};
use super::plan::check_live_from_tracks;
use super::replica_set::advance_rs;
use super::state::{
    Decision, FailureReason, Phase, RollingOperation, RsStatus, RsTrack, StartBlocked,
};
use crate::model::ReplicaSetKind;
use crate::plane::{DeploymentObservation, Millis};

/// How often a start blocked by a transient preflight failure looks again.
const START_RETRY_WAIT_MS: Millis = 1_000;

impl RollingOperation {
    fn needs_balancer(&self) -> bool {
        // A primary switch too (I6): a stepdown aborts a chunk migration in flight.
        self.sharded && self.replica_sets.iter().any(RsTrack::in_scope)
    }

    /// Advances the operation given a fresh observation taken at `now_ms`.
    pub fn step(&mut self, obs: &DeploymentObservation, now_ms: Millis) -> Decision {
        if let Some(o) = self.outcome() {
            return Decision::Done(o);
        }
        self.observe(obs, now_ms);
        let mut cx = Cx {
            now: now_ms,
            cmds: Vec::new(),
            wake: None,
            failures: Vec::new(),
        };
        // Phases can complete within one step (e.g. a replica-set instance has no balancer phase); a bounded
        // loop keeps a bug from spinning forever.
        for _ in 0..8 {
            let before = self.phase.clone();
            match self.phase.clone() {
                Phase::Preflight => self.step_preflight(obs, &mut cx),
                Phase::StoppingBalancer { since_ms } => {
                    self.step_stop_balancer(obs, since_ms, &mut cx)
                }
                Phase::ReplicaSets => self.step_replica_sets(obs, &mut cx),
                Phase::Mongos => self.step_mongos(obs, &mut cx),
                Phase::RestoringBalancer { since_ms } => {
                    self.step_restore_balancer(obs, since_ms, &mut cx)
                }
                Phase::SettingFcv { since_ms } => self.step_fcv(obs, since_ms, &mut cx),
                Phase::Finished => {}
            }
            self.absorb_failures(&mut cx);
            if self.phase == Phase::Finished {
                self.finish(now_ms);
                break;
            }
            if !cx.cmds.is_empty() || self.phase == before {
                break;
            }
        }
        if let Some(o) = self.outcome() {
            return Decision::Done(o);
        }
        if !cx.cmds.is_empty() {
            self.commands_issued += cx.cmds.len() as u64;
            return Decision::Issue(cx.cmds);
        }
        Decision::WaitUntil(cx.wake.unwrap_or(now_ms + 1_000))
    }

    pub(super) fn absorb_failures(&mut self, cx: &mut Cx) {
        for f in cx.failures.drain(..) {
            if self.failure.is_none() {
                self.failure = Some(f);
            } else {
                self.other_failures.push(f);
            }
        }
    }

    fn finish(&mut self, now: Millis) {
        self.finished_ms = Some(now);
        for rs in &mut self.replica_sets {
            if let Some(since) = rs.no_primary_since_ms.take() {
                rs.close_no_primary(since, now);
            }
        }
    }

    fn step_preflight(&mut self, obs: &DeploymentObservation, cx: &mut Cx) {
        if let Some(w) = self.window {
            if !w.contains(cx.now) {
                // A wait that outlived its window starts afresh in the next one.
                self.start_blocked = None;
                cx.wake_at(cx.now + w.ms_until_open(cx.now));
                return;
            }
        }
        if let Err(e) = check_live_from_tracks(self, obs) {
            let since_ms = self.start_blocked.as_ref().map_or(cx.now, |b| b.since_ms);
            if e.is_transient()
                && cx.now.saturating_sub(since_ms) < self.config.pre_stop_gate_deadline_ms
            {
                self.start_blocked = Some(StartBlocked {
                    since_ms,
                    reason: e,
                });
                cx.wake_at(cx.now + START_RETRY_WAIT_MS);
                return;
            }
            cx.failures
                .push(failure(None, None, FailureReason::Preflight(e), cx.now));
            self.phase = Phase::Finished;
            return;
        }
        self.start_blocked = None;
        self.started_ms = Some(cx.now);
        // The instance record can be stale; what runs now is what a failed member goes back to and what a
        // restart keeps.
        for rs in &mut self.replica_sets {
            if let Some(ro) = obs.replica_set(&rs.name) {
                for p in &mut rs.procs {
                    if let Some(k) = ro.member(&p.node_id).and_then(|m| m.kernel_version.clone()) {
                        p.from_kernel = k;
                    }
                }
            }
        }
        for ms in &mut self.mongos {
            if let Some(k) = obs
                .mongos
                .iter()
                .find(|m| m.node_id == ms.proc.node_id)
                .and_then(|m| m.kernel_version.clone())
            {
                ms.proc.from_kernel = k;
            }
        }
        for rs in &self.replica_sets {
            if rs.in_scope() && preflight_loses_write_majority(rs) {
                self.warnings.push(format!(
                    "{}: w:majority writes stall while its data-bearing secondary restarts (PSA-like set)",
                    rs.name
                ));
            }
        }
        let serving_mongos = self.mongos.len();
        if self.mongos.iter().any(|m| m.in_scope) && serving_mongos < 2 {
            self.warnings
                .push("only one mongos: clients have no router while it restarts".to_string());
        }
        self.phase = if self.needs_balancer() {
            Phase::StoppingBalancer { since_ms: cx.now }
        } else {
            Phase::ReplicaSets
        };
    }

    fn exclusive(&self, i: usize) -> bool {
        let rs = &self.replica_sets[i];
        match rs.kind {
            ReplicaSetKind::Instance | ReplicaSetKind::ConfigServer => true,
            ReplicaSetKind::Shard => {
                self.config.canary_shard
                    && self
                        .replica_sets
                        .iter()
                        .position(|r| r.kind == ReplicaSetKind::Shard && r.in_scope())
                        == Some(i)
            }
        }
    }

    fn window_open(&self, cx: &mut Cx) -> bool {
        match self.window {
            Some(w) if !w.contains(cx.now) => {
                cx.wake_at(cx.now + w.ms_until_open(cx.now));
                false
            }
            _ => true,
        }
    }

    /// Config servers first, then the canary shard alone, then the other shards up to `max_parallel_shards`
    /// at a time (I5).
    fn schedule(&mut self, cx: &mut Cx) {
        if self.failure.is_some() || !cx.failures.is_empty() {
            return;
        }
        let max_parallel = self.config.max_parallel_shards.max(1) as usize;
        let mut active = self
            .replica_sets
            .iter()
            .filter(|r| r.status == RsStatus::Active)
            .count();
        for i in 0..self.replica_sets.len() {
            match self.replica_sets[i].status {
                RsStatus::OutOfScope | RsStatus::Done => continue,
                RsStatus::Active => {
                    if self.exclusive(i) {
                        return;
                    }
                }
                RsStatus::Failed | RsStatus::Halted => return,
                RsStatus::Pending => {
                    let exclusive = self.exclusive(i);
                    let fits = if exclusive {
                        active == 0
                    } else {
                        active < max_parallel
                    };
                    if !fits || !self.window_open(cx) {
                        return;
                    }
                    let rs = &mut self.replica_sets[i];
                    rs.status = RsStatus::Active;
                    rs.started_ms = Some(cx.now);
                    active += 1;
                    if exclusive {
                        return;
                    }
                }
            }
        }
    }

    fn step_replica_sets(&mut self, obs: &DeploymentObservation, cx: &mut Cx) {
        self.schedule(cx);
        let mut seq = self.step_down_seq;
        for i in 0..self.replica_sets.len() {
            if self.replica_sets[i].status != RsStatus::Active {
                continue;
            }
            let halted = self.failure.is_some() || !cx.failures.is_empty();
            let env = env_of(&self.config, &self.kind, halted, self.started_ms);
            let rs = &mut self.replica_sets[i];
            advance_rs(&env, &mut seq, rs, obs, cx);
            // A set that just finished frees a slot for the next one within the same step.
            if rs.status == RsStatus::Done {
                self.schedule(cx);
            }
        }
        self.step_down_seq = seq;
        let halted = self.failure.is_some() || !cx.failures.is_empty();
        let busy = self
            .replica_sets
            .iter()
            .any(|r| r.status == RsStatus::Active);
        if busy {
            return;
        }
        if halted {
            for rs in &mut self.replica_sets {
                if rs.status == RsStatus::Pending {
                    rs.status = RsStatus::Halted;
                }
            }
            self.phase = self.wind_down_phase(cx.now);
        } else if self
            .replica_sets
            .iter()
            .all(|r| matches!(r.status, RsStatus::Done | RsStatus::OutOfScope))
            && self.window_open(cx)
        {
            self.phase = Phase::Mongos;
        }
    }

    pub(super) fn wind_down_phase(&self, now: Millis) -> Phase {
        if self.balancer.recorded.is_some() {
            Phase::RestoringBalancer { since_ms: now }
        } else {
            self.after_balancer(now)
        }
    }

    /// After the balancer is back: a major version upgrade raises the feature compatibility version last
    /// (the FCV phase ends at once after a failure); everything else is finished.
    pub(super) fn after_balancer(&self, now: Millis) -> Phase {
        if self.target_fcv().is_some() && self.failure.is_none() {
            Phase::SettingFcv { since_ms: now }
        } else {
            Phase::Finished
        }
    }
}

fn preflight_loses_write_majority(rs: &RsTrack) -> bool {
    let voters = rs.roles.iter().filter(|r| r.kind.votes()).count();
    let data_voters = rs
        .roles
        .iter()
        .filter(|r| r.kind.votes() && r.kind.data_bearing())
        .count();
    data_voters > 0 && data_voters - 1 < (voters / 2 + 1).min(data_voters)
}
