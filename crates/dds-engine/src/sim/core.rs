//! Internals of the simulated fleet: its state, the event queue and the rules that move them.
//! (The model itself is described in the parent module's docs.)

use super::fault::Fault;
use super::truth::{
    push_bounded, CommandRecord, DownInterval, ElectionCause, ElectionRecord, Interval,
    PrimaryStopAttempt, ProcessTruth, ReplicaSetTruth, StopRecord, Truth,
};
use super::SimParams;
use crate::model::{MemberKind, MemberSpec, MongosSpec, Topology};
use crate::plane::{
    BalancerMode, BalancerObservation, Command, CommandError, DeploymentObservation,
    MemberObservation, MemberState, Millis, MongosObservation, ReplicaSetObservation,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Step-down ids remembered per replica set (enough to recognise any repeat of a recent stepdown).
const STEP_DOWN_IDS_KEPT: usize = 64;
/// Longest kernel version a start command may carry.
const MAX_KERNEL_LEN: usize = 64;
/// Latest time the fleet runs to; with durations bounded by `SimParams::MAX_DURATION_MS` no time
/// arithmetic can overflow.
pub(super) const MAX_TIME_MS: Millis = u64::MAX / 4;
/// How often a starting mongos retries reaching a config server primary.
const MONGOS_CONFIG_RETRY_MS: Millis = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Proc {
    Up,
    /// Shutting down: still running and reachable until the stop completes.
    Stopping,
    Down,
}

/// A member's state as the rest of the set last learnt it, for heartbeat-lagged views.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Seen {
    at_ms: Millis,
    state: MemberState,
    state_since_ms: Millis,
    reachable: bool,
}

/// Oplog application: while `applying`, the optime moves from `anchor_ms` (at `anchor_at_ms`) at
/// `rate_permille`/1000 of real time, capped by the primary's optime minus the steady lag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Apply {
    applying: bool,
    anchor_ms: Millis,
    anchor_at_ms: Millis,
    rate_permille: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Member {
    node_id: String,
    rs: usize,
    kind: MemberKind,
    priority: u8,
    delay_ms: Millis,
    /// Kernel of the running process, or of the last one.
    kernel: String,
    /// The last kernel the member reached a steady state on.
    good_kernel: String,
    proc: Proc,
    state: MemberState,
    state_since_ms: Millis,
    started_ms: Option<Millis>,
    seen: Vec<Seen>,
    hb_phase_ms: Millis,
    lag_ms: Millis,
    apply: Apply,
    /// Not electable before this (after a stepdown; reset by a restart, as in mongod).
    ineligible_until_ms: Millis,
    /// Stopped by our command and not yet back in a steady state.
    out_by_command: bool,
    too_stale: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum WriteRef {
    /// A writable primary: its optime is now.
    Live,
    /// No primary since then; nothing newer exists.
    Frozen(Millis),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ReplSet {
    name: String,
    standalone: bool,
    members: Vec<usize>,
    term: u64,
    primary: Option<usize>,
    last_primary: Option<usize>,
    write: WriteRef,
    oplog_window_ms: Millis,
    step_down_ids: Vec<u64>,
    ever_primary: bool,
    majority: usize,
    write_majority: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Mongos {
    node_id: String,
    kernel: String,
    good_kernel: String,
    proc: Proc,
    /// Accepting connections.
    ready: bool,
    started_ms: Option<Millis>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Balancer {
    mode: BalancerMode,
    full_since_ms: Millis,
    forced_round_until_ms: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Event {
    StopDone {
        m: usize,
    },
    Phase {
        m: usize,
    },
    StartFailed {
        m: usize,
    },
    Crash {
        m: usize,
        recover_after_ms: Option<Millis>,
    },
    Recover {
        m: usize,
    },
    Election {
        rs: usize,
    },
    Handoff {
        rs: usize,
        candidate: usize,
        cause: ElectionCause,
        step_down_id: Option<u64>,
        lost_at_ms: Millis,
    },
    Takeover {
        rs: usize,
        candidate: usize,
    },
    MajorityCheck {
        rs: usize,
    },
    PrimaryChange {
        rs: usize,
    },
    MongosStopDone {
        i: usize,
    },
    MongosReady {
        i: usize,
    },
    MongosStartFailed {
        i: usize,
    },
    /// Nothing changes; a change becomes visible through heartbeats (lets callers fast-forward to it).
    Visible,
}

impl Event {
    /// The member whose process lifecycle the event belongs to (cancelled when that lifecycle changes).
    fn lifecycle_member(&self) -> Option<usize> {
        match *self {
            Event::StopDone { m }
            | Event::Phase { m }
            | Event::StartFailed { m }
            | Event::Recover { m } => Some(m),
            _ => None,
        }
    }
    fn lifecycle_mongos(&self) -> Option<usize> {
        match *self {
            Event::MongosStopDone { i }
            | Event::MongosReady { i }
            | Event::MongosStartFailed { i } => Some(i),
            _ => None,
        }
    }
}

/// The queue serialises as a list (JSON maps need string keys).
mod queue_serde {
    use super::{Event, Millis};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer>(
        q: &BTreeMap<(Millis, u64), Event>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let v: Vec<(Millis, u64, &Event)> = q.iter().map(|(&(t, n), e)| (t, n, e)).collect();
        v.serialize(s)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<(Millis, u64), Event>, D::Error> {
        let v: Vec<(Millis, u64, Event)> = Vec::deserialize(d)?;
        Ok(v.into_iter().map(|(t, n, e)| ((t, n), e)).collect())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Fleet {
    pub(super) params: SimParams,
    seed: u64,
    draws: u64,
    pub(super) now_ms: Millis,
    seq: u64,
    #[serde(with = "queue_serde")]
    queue: BTreeMap<(Millis, u64), Event>,
    members: Vec<Member>,
    sets: Vec<ReplSet>,
    mongos: Vec<Mongos>,
    balancer: Option<Balancer>,
    config_rs: Option<usize>,
    pub(super) faults: Vec<Fault>,
    torn_down: bool,
    mongos_ever_ready: bool,
    pub(super) truth: Truth,
}

fn is_voting_state(s: MemberState) -> bool {
    matches!(
        s,
        MemberState::Primary
            | MemberState::Secondary
            | MemberState::Startup2
            | MemberState::Recovering
            | MemberState::Arbiter
            | MemberState::Rollback
    )
}

impl Fleet {
    // ----------------------------------------------------------------------------------------------
    // Construction

    pub(super) fn new(
        topology: &Topology,
        params: SimParams,
        seed: u64,
        now_ms: Millis,
        running: bool,
    ) -> Fleet {
        let params = params.sanitized();
        let now_ms = now_ms.min(MAX_TIME_MS);
        let mut f = Fleet {
            params,
            seed,
            draws: 0,
            now_ms,
            seq: 0,
            queue: BTreeMap::new(),
            members: Vec::new(),
            sets: Vec::new(),
            mongos: Vec::new(),
            balancer: None,
            config_rs: None,
            faults: Vec::new(),
            torn_down: false,
            mongos_ever_ready: false,
            truth: Truth {
                processes: Vec::new(),
                replica_sets: Vec::new(),
                primary_stop_attempts: Vec::new(),
                balancer_modes: Vec::new(),
                no_mongos: Vec::new(),
                commands: Vec::new(),
            },
        };
        match topology {
            Topology::Standalone { member } => {
                f.add_set(&member.node_id, std::slice::from_ref(member), true)
            }
            Topology::ReplicaSet { replica_set } => {
                f.add_set(&replica_set.name, &replica_set.members, false)
            }
            Topology::Sharded {
                config_server,
                shards,
                mongos,
            } => {
                f.config_rs = Some(0);
                f.add_set(&config_server.name, &config_server.members, false);
                for s in shards {
                    f.add_set(&s.name, &s.members, false);
                }
                for m in mongos {
                    f.add_mongos(m);
                }
                f.balancer = Some(Balancer {
                    mode: BalancerMode::Full,
                    full_since_ms: now_ms,
                    forced_round_until_ms: 0,
                });
                f.truth.balancer_modes.push((now_ms, BalancerMode::Full));
            }
        }
        if running {
            f.init_running();
        } else {
            f.init_provisioning();
        }
        f
    }

    fn add_set(&mut self, name: &str, specs: &[MemberSpec], standalone: bool) {
        let rs = self.sets.len();
        let mut idx = Vec::with_capacity(specs.len());
        for spec in specs {
            let hb = self.params.heartbeat_interval_ms.max(1);
            let hb_phase_ms = self.draw(0, hb - 1);
            let lag_ms = if spec.kind == MemberKind::Arbiter {
                0
            } else {
                self.draw(self.params.steady_lag_min_ms, self.params.steady_lag_max_ms)
            };
            let rate = self.draw_rate();
            idx.push(self.members.len());
            self.truth.processes.push(ProcessTruth {
                node_id: spec.node_id.clone(),
                replica_set: Some(name.to_string()),
                stops_by_command: 0,
                starts_by_command: 0,
                failed_starts: 0,
                crashes: 0,
                down: Vec::new(),
                launches: Vec::new(),
            });
            self.members.push(Member {
                node_id: spec.node_id.clone(),
                rs,
                kind: spec.kind,
                priority: if spec.kind.electable() {
                    spec.priority
                } else {
                    0
                },
                delay_ms: u64::from(spec.delay_secs) * 1000,
                kernel: spec.kernel_version.clone(),
                good_kernel: spec.kernel_version.clone(),
                proc: Proc::Down,
                state: MemberState::Down,
                state_since_ms: self.now_ms,
                started_ms: None,
                seen: Vec::new(),
                hb_phase_ms,
                lag_ms,
                apply: Apply {
                    applying: false,
                    anchor_ms: self.now_ms,
                    anchor_at_ms: self.now_ms,
                    rate_permille: rate,
                },
                ineligible_until_ms: 0,
                out_by_command: false,
                too_stale: false,
            });
        }
        let voters = specs.iter().filter(|s| s.kind.votes()).count();
        let data_voters = specs
            .iter()
            .filter(|s| s.kind.votes() && s.kind.data_bearing())
            .count();
        let majority = voters / 2 + 1;
        self.sets.push(ReplSet {
            name: name.to_string(),
            standalone,
            members: idx,
            term: 0,
            primary: None,
            last_primary: None,
            write: WriteRef::Frozen(self.now_ms),
            oplog_window_ms: self.params.oplog_window_ms,
            step_down_ids: Vec::new(),
            ever_primary: false,
            majority,
            write_majority: majority.min(data_voters),
        });
        self.truth.replica_sets.push(ReplicaSetTruth {
            name: name.to_string(),
            initial_term: 0,
            elections: Vec::new(),
            no_primary: Vec::new(),
            max_out_by_commands: 0,
            max_unavailable: 0,
            stops: Vec::new(),
            too_stale: Vec::new(),
        });
    }

    fn add_mongos(&mut self, spec: &MongosSpec) {
        self.truth.processes.push(ProcessTruth {
            node_id: spec.node_id.clone(),
            replica_set: None,
            stops_by_command: 0,
            starts_by_command: 0,
            failed_starts: 0,
            crashes: 0,
            down: Vec::new(),
            launches: Vec::new(),
        });
        self.mongos.push(Mongos {
            node_id: spec.node_id.clone(),
            kernel: spec.kernel_version.clone(),
            good_kernel: spec.kernel_version.clone(),
            proc: Proc::Down,
            ready: false,
            started_ms: None,
        });
    }

    fn init_running(&mut self) {
        let now = self.now_ms;
        let started = now.saturating_sub(self.params.initial_uptime_ms);
        for r in 0..self.sets.len() {
            let set = &self.sets[r];
            let primary = if set.standalone {
                set.members.first().copied()
            } else {
                // Highest priority first; on ties the earliest member, as rs.initiate() usually ends up.
                set.members
                    .iter()
                    .copied()
                    .filter(|&m| self.members[m].kind.electable() && self.members[m].priority > 0)
                    .min_by_key(|&m| (std::cmp::Reverse(self.members[m].priority), m))
            };
            for &m in &self.sets[r].members {
                let mem = &mut self.members[m];
                mem.proc = Proc::Up;
                mem.started_ms = Some(started);
                mem.state = if Some(m) == primary {
                    MemberState::Primary
                } else if mem.kind == MemberKind::Arbiter {
                    MemberState::Arbiter
                } else {
                    MemberState::Secondary
                };
                mem.state_since_ms = started;
                mem.seen = vec![Seen {
                    at_ms: started,
                    state: mem.state,
                    state_since_ms: started,
                    reachable: true,
                }];
                mem.apply = Apply {
                    applying: true,
                    anchor_ms: now.saturating_sub(mem.lag_ms + mem.delay_ms),
                    anchor_at_ms: now,
                    rate_permille: mem.apply.rate_permille,
                };
                self.truth.processes[m]
                    .launches
                    .push((started, mem.kernel.clone()));
            }
            let set = &mut self.sets[r];
            set.primary = primary;
            set.ever_primary = primary.is_some();
            if primary.is_some() {
                set.write = WriteRef::Live;
                set.term = u64::from(!set.standalone);
            } else {
                self.truth.replica_sets[r].no_primary.push(Interval {
                    from_ms: now,
                    until_ms: None,
                });
            }
            self.truth.replica_sets[r].initial_term = self.sets[r].term;
        }
        for i in 0..self.mongos.len() {
            let pi = self.members.len() + i;
            let ms = &mut self.mongos[i];
            ms.proc = Proc::Up;
            ms.ready = true;
            ms.started_ms = Some(started);
            self.truth.processes[pi]
                .launches
                .push((started, ms.kernel.clone()));
        }
        self.mongos_ever_ready = !self.mongos.is_empty();
    }

    fn init_provisioning(&mut self) {
        let now = self.now_ms;
        for r in 0..self.sets.len() {
            self.truth.replica_sets[r].no_primary.push(Interval {
                from_ms: now,
                until_ms: None,
            });
        }
        for m in 0..self.members.len() {
            let kernel = self.members[m].kernel.clone();
            self.launch_member(m, &kernel);
        }
        for i in 0..self.mongos.len() {
            let kernel = self.mongos[i].kernel.clone();
            self.launch_mongos(i, &kernel);
        }
    }

    /// Structural consistency of a restored snapshot (indices in range), so a corrupt file cannot make
    /// later operations index out of bounds.
    pub(super) fn check(&self) -> Result<(), &'static str> {
        if self.now_ms > MAX_TIME_MS || self.params != self.params.clone().sanitized() {
            return Err("time or parameters out of range");
        }
        let nm = self.members.len();
        let ns = self.sets.len();
        if self.truth.processes.len() != nm + self.mongos.len()
            || self.truth.replica_sets.len() != ns
        {
            return Err("truth does not match the processes");
        }
        if self.config_rs.is_some_and(|c| c >= ns) {
            return Err("config server index out of range");
        }
        for s in &self.sets {
            if s.members.iter().any(|&m| m >= nm)
                || s.primary.is_some_and(|p| p >= nm)
                || s.last_primary.is_some_and(|p| p >= nm)
            {
                return Err("replica set member index out of range");
            }
        }
        for m in &self.members {
            if m.rs >= ns || m.seen.is_empty() && m.proc != Proc::Down {
                return Err("member state out of range");
            }
        }
        for e in self.queue.values() {
            let ok = match *e {
                Event::StopDone { m }
                | Event::Phase { m }
                | Event::StartFailed { m }
                | Event::Crash { m, .. }
                | Event::Recover { m } => m < nm,
                Event::Election { rs }
                | Event::MajorityCheck { rs }
                | Event::PrimaryChange { rs } => rs < ns,
                Event::Handoff { rs, candidate, .. } | Event::Takeover { rs, candidate } => {
                    rs < ns && candidate < nm
                }
                Event::MongosStopDone { i }
                | Event::MongosReady { i }
                | Event::MongosStartFailed { i } => i < self.mongos.len(),
                Event::Visible => true,
            };
            if !ok {
                return Err("queued event out of range");
            }
        }
        Ok(())
    }

    // ----------------------------------------------------------------------------------------------
    // Randomness and the queue

    /// A uniform draw from `lo..=hi`; each draw seeds a fresh `SmallRng` from the seed and a counter, so
    /// the generator state is just the counter (and snapshots need no RNG serialisation).
    fn draw(&mut self, lo: u64, hi: u64) -> u64 {
        let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
        let mut rng = SmallRng::seed_from_u64(
            self.seed
                .wrapping_add(self.draws.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        );
        self.draws += 1;
        rng.gen_range(lo..=hi)
    }

    fn draw_rate(&mut self) -> u64 {
        self.draw(
            self.params.catch_up_rate_min_permille,
            self.params.catch_up_rate_max_permille,
        )
        .max(1)
    }

    fn jitter(&mut self) -> Millis {
        self.draw(0, self.params.election_jitter_max_ms)
    }

    /// Election timeout plus jitter; never zero, so retries always move time forward.
    fn election_delay(&mut self) -> Millis {
        self.params.election_timeout_ms.max(1) + self.jitter()
    }

    fn schedule(&mut self, at_ms: Millis, e: Event) {
        self.seq += 1;
        // Time ends at MAX_TIME_MS: later events never happen (clamping them would loop forever).
        if at_ms <= MAX_TIME_MS {
            self.queue.insert((at_ms.max(self.now_ms), self.seq), e);
        }
    }

    fn cancel(&mut self, f: impl Fn(&Event) -> bool) {
        self.queue.retain(|_, e| !f(e));
    }

    pub(super) fn next_event_ms(&self) -> Option<Millis> {
        self.queue.keys().next().map(|&(t, _)| t)
    }

    pub(super) fn advance_to(&mut self, t: Millis) {
        let t = t.min(MAX_TIME_MS);
        while self.queue.keys().next().is_some_and(|&(at, _)| at <= t) {
            let Some(((at, _), e)) = self.queue.pop_first() else {
                break;
            };
            self.now_ms = self.now_ms.max(at);
            self.handle(e);
        }
        self.now_ms = self.now_ms.max(t);
    }

    // ----------------------------------------------------------------------------------------------
    // Replication arithmetic

    fn write_ref(&self, rs: usize) -> Millis {
        match self.sets[rs].write {
            WriteRef::Live => self.now_ms,
            WriteRef::Frozen(t) => t,
        }
    }

    fn optime_at(&self, m: usize, t: Millis) -> Millis {
        let mem = &self.members[m];
        if mem.kind == MemberKind::Arbiter {
            return 0;
        }
        if self.sets[mem.rs].primary == Some(m) {
            return self.write_ref(mem.rs);
        }
        let a = mem.apply;
        if !a.applying {
            return a.anchor_ms;
        }
        let by_rate = a.anchor_ms.saturating_add(
            t.saturating_sub(a.anchor_at_ms)
                .saturating_mul(a.rate_permille)
                / 1000,
        );
        let cap = self
            .write_ref(mem.rs)
            .min(t.saturating_sub(mem.lag_ms + mem.delay_ms));
        by_rate.min(cap).max(a.anchor_ms)
    }

    fn optime(&self, m: usize) -> Millis {
        self.optime_at(m, self.now_ms)
    }

    /// When member `m`'s optime reaches `target`, assuming writes stopped at `target` (a stepdown).
    fn time_reaching(&self, m: usize, target: Millis) -> Option<Millis> {
        if self.optime(m) >= target {
            return Some(self.now_ms);
        }
        let mem = &self.members[m];
        let a = mem.apply;
        if !a.applying {
            return None;
        }
        let by_lag = target + mem.lag_ms + mem.delay_ms;
        let need = target.saturating_sub(a.anchor_ms);
        let by_rate = a
            .anchor_at_ms
            .saturating_add(need.saturating_mul(1000).div_ceil(a.rate_permille.max(1)));
        Some(self.now_ms.max(by_lag).max(by_rate))
    }

    /// When member `m` comes within the takeover freshness window of a live primary's optime.
    fn time_fresh(&self, m: usize) -> Option<Millis> {
        let window = self.params.priority_takeover_freshness_ms;
        let now = self.now_ms;
        if self.optime(m) + window >= now {
            return Some(now);
        }
        let mem = &self.members[m];
        let a = mem.apply;
        if !a.applying || mem.lag_ms + mem.delay_ms > window || a.rate_permille <= 1000 {
            return None;
        }
        // anchor + (t - at)·r/1000 ≥ t − window  ⇔  t·(r − 1000) ≥ at·r − anchor·1000 − window·1000
        let r = i128::from(a.rate_permille);
        let num = i128::from(a.anchor_at_ms) * r
            - i128::from(a.anchor_ms) * 1000
            - i128::from(window) * 1000;
        let den = r - 1000;
        let t = (num + den - 1).div_euclid(den);
        Some(now.max(u64::try_from(t.max(0)).unwrap_or(u64::MAX)))
    }

    // ----------------------------------------------------------------------------------------------
    // Views

    fn last_heartbeat(&self, m: usize, t: Millis) -> Millis {
        let hb = self.params.heartbeat_interval_ms.max(1);
        let p = self.members[m].hb_phase_ms % hb;
        if t < p {
            0
        } else {
            t - (t - p) % hb
        }
    }

    fn seen_at(&self, m: usize, t: Millis) -> Option<&Seen> {
        let hb_t = self.last_heartbeat(m, t);
        let seen = &self.members[m].seen;
        seen.iter()
            .rev()
            .find(|s| s.at_ms <= hb_t)
            .or_else(|| seen.first())
    }

    fn record_seen(&mut self, m: usize) {
        let now = self.now_ms;
        let hb = self.params.heartbeat_interval_ms.max(1);
        let mem = &mut self.members[m];
        let entry = Seen {
            at_ms: now,
            state: mem.state,
            state_since_ms: mem.state_since_ms,
            reachable: mem.proc != Proc::Down,
        };
        if mem.seen.last().is_some_and(|s| {
            s.state == entry.state
                && s.reachable == entry.reachable
                && s.state_since_ms == entry.state_since_ms
        }) {
            return;
        }
        mem.seen.push(entry);
        // Entries older than one that every future heartbeat view will see are never needed again.
        while mem.seen.len() > 1 && mem.seen[1].at_ms + hb <= now {
            mem.seen.remove(0);
        }
        let p = mem.hb_phase_ms % hb;
        let next_tick = if now < p {
            p
        } else {
            now + (hb - (now - p) % hb) % hb
        };
        if next_tick > now {
            self.schedule(next_tick, Event::Visible);
        }
    }

    pub(super) fn observe(&self) -> DeploymentObservation {
        let now = self.now_ms;
        let replica_sets = self
            .sets
            .iter()
            .enumerate()
            .map(|(r, s)| ReplicaSetObservation {
                name: s.name.clone(),
                term: s.term,
                primary: s.primary.map(|p| self.members[p].node_id.clone()),
                primary_optime_ms: if s.primary.is_some() {
                    self.write_ref(r)
                } else {
                    0
                },
                members: s.members.iter().map(|&m| self.observe_member(m)).collect(),
                oplog_window_ms: (!s.standalone).then_some(s.oplog_window_ms),
            })
            .collect();
        let mongos = self
            .mongos
            .iter()
            .map(|ms| MongosObservation {
                node_id: ms.node_id.clone(),
                up: ms.ready,
                kernel_version: ms.ready.then(|| ms.kernel.clone()),
                started_ms: if ms.ready { ms.started_ms } else { None },
            })
            .collect();
        DeploymentObservation {
            now_ms: now,
            replica_sets,
            mongos,
            balancer: self.balancer.map(|b| BalancerObservation {
                mode: b.mode,
                in_balancer_round: self.in_round(),
            }),
        }
    }

    fn observe_member(&self, m: usize) -> MemberObservation {
        let mem = &self.members[m];
        let running = mem.proc != Proc::Down;
        // Who is primary is known at once (the new primary says so itself); everything else comes from
        // heartbeats.
        let (state, since, healthy) = match self.seen_at(m, self.now_ms) {
            Some(s) if mem.state != MemberState::Primary && s.state != MemberState::Primary => {
                (s.state, s.state_since_ms, s.reachable)
            }
            _ => (mem.state, mem.state_since_ms, running),
        };
        MemberObservation {
            node_id: mem.node_id.clone(),
            state,
            healthy,
            process_up: running,
            kernel_version: running.then(|| mem.kernel.clone()),
            optime_ms: self.optime(m),
            state_since_ms: since,
            started_ms: if running { mem.started_ms } else { None },
        }
    }

    fn natural_round_end(&self, t: Millis) -> Option<Millis> {
        let b = self.balancer?;
        if b.mode != BalancerMode::Full || t < b.full_since_ms {
            return None;
        }
        let cs = self.config_rs?;
        self.sets[cs].primary?;
        let interval = self.params.balancer_interval_ms.max(1);
        let d = t - b.full_since_ms;
        let k = d / interval;
        if k == 0 {
            return None;
        }
        let lo = self.params.balancer_round_min_ms;
        let hi = self.params.balancer_round_max_ms.max(lo);
        // Lazily computed, so a round's length is a pure function of (seed, round number).
        let dur = (lo + splitmix64(self.seed ^ 0xBA1A_4CE5 ^ k) % (hi - lo + 1)).min(interval);
        (d % interval < dur).then_some(b.full_since_ms + k * interval + dur)
    }

    fn in_round(&self) -> bool {
        self.balancer
            .is_some_and(|b| self.now_ms < b.forced_round_until_ms)
            || self.natural_round_end(self.now_ms).is_some()
    }

    // ----------------------------------------------------------------------------------------------
    // Truth bookkeeping

    fn note_availability(&mut self, rs: usize) {
        let mut unavailable = 0;
        let mut out = 0;
        for &m in &self.sets[rs].members {
            let mem = &mut self.members[m];
            if mem.proc == Proc::Up && mem.state.is_steady() {
                mem.out_by_command = false;
            } else {
                unavailable += 1;
                out += usize::from(mem.out_by_command);
            }
        }
        let t = &mut self.truth.replica_sets[rs];
        t.max_unavailable = t.max_unavailable.max(unavailable);
        t.max_out_by_commands = t.max_out_by_commands.max(out);
    }

    fn note_mongos(&mut self) {
        if self.mongos.is_empty() {
            return;
        }
        let any = self.mongos.iter().any(|m| m.ready);
        let now = self.now_ms;
        let windows = &mut self.truth.no_mongos;
        let open = windows.last().is_some_and(|w| w.until_ms.is_none());
        if any {
            self.mongos_ever_ready = true;
            if open {
                if let Some(w) = windows.last_mut() {
                    w.until_ms = Some(now);
                }
            }
        } else if self.mongos_ever_ready && !open {
            push_bounded(
                windows,
                Interval {
                    from_ms: now,
                    until_ms: None,
                },
                self.params.truth_log_limit,
            );
        }
    }

    fn process_down(&mut self, p: usize, by_command: bool) {
        let now = self.now_ms;
        let limit = self.params.truth_log_limit;
        let down = &mut self.truth.processes[p].down;
        if down.last().is_some_and(|d| d.until_ms.is_none()) {
            return;
        }
        push_bounded(
            down,
            DownInterval {
                from_ms: now,
                until_ms: None,
                by_command,
            },
            limit,
        );
    }

    fn process_launched(&mut self, p: usize, kernel: &str) {
        let now = self.now_ms;
        let limit = self.params.truth_log_limit;
        let t = &mut self.truth.processes[p];
        if let Some(d) = t.down.last_mut().filter(|d| d.until_ms.is_none()) {
            d.until_ms = Some(now);
        }
        push_bounded(&mut t.launches, (now, kernel.to_string()), limit);
    }

    fn open_no_primary(&mut self, rs: usize) {
        let now = self.now_ms;
        let limit = self.params.truth_log_limit;
        let w = &mut self.truth.replica_sets[rs].no_primary;
        if w.last().is_none_or(|i| i.until_ms.is_some()) {
            push_bounded(
                w,
                Interval {
                    from_ms: now,
                    until_ms: None,
                },
                limit,
            );
        }
    }

    fn close_no_primary(&mut self, rs: usize) {
        let now = self.now_ms;
        if let Some(i) = self.truth.replica_sets[rs]
            .no_primary
            .last_mut()
            .filter(|i| i.until_ms.is_none())
        {
            i.until_ms = Some(now);
        }
    }

    fn set_state(&mut self, m: usize, state: MemberState) {
        let now = self.now_ms;
        let mem = &mut self.members[m];
        if mem.state != state {
            mem.state = state;
            mem.state_since_ms = now;
        }
        self.record_seen(m);
        self.note_availability(self.members[m].rs);
    }

    // ----------------------------------------------------------------------------------------------
    // Faults

    fn fault_start_fails(&self, m: usize) -> bool {
        let id = &self.members[m].node_id;
        self.faults
            .iter()
            .any(|f| matches!(f, Fault::StartFails { node_id } if node_id == id))
    }
    fn fault_stuck(&self, m: usize) -> Option<MemberState> {
        let id = &self.members[m].node_id;
        self.faults.iter().find_map(|f| match f {
            Fault::StuckInState { node_id, state } if node_id == id => Some(*state),
            _ => None,
        })
    }
    fn fault_slow_apply(&self, m: usize) -> bool {
        let id = &self.members[m].node_id;
        self.faults
            .iter()
            .any(|f| matches!(f, Fault::NeverCatchesUp { node_id } if node_id == id))
    }
    fn fault_slow_start_ms(&self, m: usize) -> Millis {
        let id = &self.members[m].node_id;
        self.faults
            .iter()
            .filter_map(|f| match f {
                Fault::SlowStart { node_id, extra_ms } if node_id == id => Some(*extra_ms),
                _ => None,
            })
            .fold(0, Millis::saturating_add)
            .min(SimParams::MAX_DURATION_MS)
    }
    fn fault_step_down_refused(&self, rs: usize) -> bool {
        let name = &self.sets[rs].name;
        self.faults.iter().any(|f| {
            matches!(f, Fault::StepDownRefused { replica_set, until_ms }
            if replica_set == name && until_ms.is_none_or(|u| self.now_ms < u))
        })
    }
    fn fault_no_new_primary(&self, rs: usize) -> bool {
        let name = &self.sets[rs].name;
        self.faults.iter().any(|f| {
            matches!(f, Fault::NoNewPrimary { replica_set, until_ms }
            if replica_set == name && until_ms.is_none_or(|u| self.now_ms < u))
        })
    }
    fn fault_mongos_start_fails(&self, i: usize) -> bool {
        let id = &self.mongos[i].node_id;
        self.faults
            .iter()
            .any(|f| matches!(f, Fault::MongosStartFails { node_id } if node_id == id))
    }

    fn member_index(&self, node_id: &str) -> Option<usize> {
        self.members.iter().position(|m| m.node_id == node_id)
    }
    fn set_index(&self, name: &str) -> Option<usize> {
        self.sets.iter().position(|s| s.name == name)
    }

    pub(super) fn arm_fault(&mut self, fault: Fault) -> Result<(), CommandError> {
        let no_node = |id: &str| CommandError::NoSuchNode(id.chars().take(128).collect());
        match &fault {
            Fault::StartFails { node_id }
            | Fault::StuckInState { node_id, .. }
            | Fault::NeverCatchesUp { node_id }
            | Fault::SlowStart { node_id, .. } => {
                self.member_index(node_id).ok_or_else(|| no_node(node_id))?;
            }
            Fault::MongosStartFails { node_id } => {
                if !self.mongos.iter().any(|m| &m.node_id == node_id) {
                    return Err(no_node(node_id));
                }
            }
            Fault::StepDownRefused { replica_set, .. }
            | Fault::NoNewPrimary { replica_set, .. } => {
                self.set_index(replica_set)
                    .ok_or_else(|| no_node(replica_set))?;
            }
            Fault::Crash {
                node_id,
                at_ms,
                recover_after_ms,
            } => {
                let m = self.member_index(node_id).ok_or_else(|| no_node(node_id))?;
                let e = Event::Crash {
                    m,
                    recover_after_ms: *recover_after_ms,
                };
                self.schedule(*at_ms, e);
                return Ok(());
            }
            Fault::PrimaryChange { replica_set, at_ms } => {
                let rs = self
                    .set_index(replica_set)
                    .ok_or_else(|| no_node(replica_set))?;
                self.schedule(*at_ms, Event::PrimaryChange { rs });
                return Ok(());
            }
            Fault::BalancerRound { until_ms } => {
                let until = *until_ms;
                let b = self.balancer.as_mut().ok_or_else(|| no_node("balancer"))?;
                b.forced_round_until_ms = b.forced_round_until_ms.max(until);
                self.schedule(until, Event::Visible);
                return Ok(());
            }
            Fault::OplogWindow {
                replica_set,
                window_ms,
            } => {
                let rs = self
                    .set_index(replica_set)
                    .ok_or_else(|| no_node(replica_set))?;
                self.sets[rs].oplog_window_ms = *window_ms;
                return Ok(());
            }
        }
        self.faults.push(fault);
        Ok(())
    }

    pub(super) fn set_balancer(&mut self, mode: BalancerMode, in_round_until_ms: Option<Millis>) {
        let now = self.now_ms;
        let Some(b) = self.balancer.as_mut() else {
            return;
        };
        if b.mode != mode {
            b.mode = mode;
            if mode == BalancerMode::Full {
                b.full_since_ms = now;
            }
            push_bounded(
                &mut self.truth.balancer_modes,
                (now, mode),
                self.params.truth_log_limit,
            );
        }
        b.forced_round_until_ms = in_round_until_ms.unwrap_or(0);
        if let Some(until) = in_round_until_ms {
            self.schedule(until, Event::Visible);
        }
    }

    // ----------------------------------------------------------------------------------------------
    // Commands

    pub(super) fn apply(&mut self, cmd: &Command) -> Result<(), CommandError> {
        let result = match cmd {
            Command::StopMember {
                replica_set,
                node_id,
            } => self
                .member_in(replica_set, node_id)
                .and_then(|m| self.stop_member(m)),
            Command::StartMember {
                replica_set,
                node_id,
                kernel_version,
            } => self
                .member_in(replica_set, node_id)
                .and_then(|m| self.start_member(m, kernel_version)),
            Command::StepDown {
                replica_set,
                node_id,
                step_down_id,
                step_down_secs,
                catch_up_secs,
            } => self
                .member_in(replica_set, node_id)
                .and_then(|m| self.step_down(m, *step_down_id, *step_down_secs, *catch_up_secs)),
            Command::StopBalancer => self.balancer_command(BalancerMode::Off),
            Command::StartBalancer => self.balancer_command(BalancerMode::Full),
            Command::StopMongos { node_id } => {
                self.mongos_index(node_id).and_then(|i| self.stop_mongos(i))
            }
            Command::StartMongos {
                node_id,
                kernel_version,
            } => self
                .mongos_index(node_id)
                .and_then(|i| self.start_mongos(i, kernel_version)),
        };
        let record = CommandRecord {
            at_ms: self.now_ms,
            command: cmd.clone(),
            result: result.clone(),
        };
        push_bounded(
            &mut self.truth.commands,
            record,
            self.params.truth_log_limit,
        );
        result
    }

    fn member_in(&self, replica_set: &str, node_id: &str) -> Result<usize, CommandError> {
        self.set_index(replica_set)
            .and_then(|rs| {
                self.sets[rs]
                    .members
                    .iter()
                    .copied()
                    .find(|&m| self.members[m].node_id == node_id)
            })
            .ok_or_else(|| CommandError::NoSuchNode(node_id.chars().take(128).collect()))
    }

    fn mongos_index(&self, node_id: &str) -> Result<usize, CommandError> {
        self.mongos
            .iter()
            .position(|m| m.node_id == node_id)
            .ok_or_else(|| CommandError::NoSuchNode(node_id.chars().take(128).collect()))
    }

    fn check_kernel(kernel: &str) -> Result<(), CommandError> {
        if kernel.is_empty()
            || kernel.len() > MAX_KERNEL_LEN
            || kernel.chars().any(char::is_control)
        {
            return Err(CommandError::Other("invalid kernel version".into()));
        }
        Ok(())
    }

    fn stop_member(&mut self, m: usize) -> Result<(), CommandError> {
        let rs = self.members[m].rs;
        let standalone = self.sets[rs].standalone;
        if self.sets[rs].primary == Some(m) && !standalone {
            let attempt = PrimaryStopAttempt {
                at_ms: self.now_ms,
                replica_set: self.sets[rs].name.clone(),
                node_id: self.members[m].node_id.clone(),
            };
            push_bounded(
                &mut self.truth.primary_stop_attempts,
                attempt,
                self.params.truth_log_limit,
            );
            return Err(CommandError::IsPrimary(self.members[m].node_id.clone()));
        }
        if self.members[m].proc != Proc::Up {
            return Ok(());
        }
        let others_unavailable = self.sets[rs]
            .members
            .iter()
            .filter(|&&o| o != m)
            .filter(|&&o| {
                let mem = &self.members[o];
                !(mem.proc == Proc::Up && mem.state.is_steady())
            })
            .map(|&o| self.members[o].node_id.clone())
            .collect();
        let record = StopRecord {
            at_ms: self.now_ms,
            node_id: self.members[m].node_id.clone(),
            others_unavailable,
        };
        push_bounded(
            &mut self.truth.replica_sets[rs].stops,
            record,
            self.params.truth_log_limit,
        );
        self.truth.processes[m].stops_by_command += 1;
        self.members[m].out_by_command = true;
        self.begin_stop(m);
        Ok(())
    }

    fn begin_stop(&mut self, m: usize) {
        let rs = self.members[m].rs;
        self.cancel(|e| e.lifecycle_member() == Some(m));
        self.members[m].proc = Proc::Stopping;
        if self.sets[rs].primary == Some(m) {
            // Only a standalone (or a teardown) stops a primary: writes end with the shutdown.
            self.lose_primary(rs, false);
        }
        let d = self.draw(self.params.stop_min_ms, self.params.stop_max_ms);
        self.schedule(self.now_ms + d, Event::StopDone { m });
        self.record_seen(m);
        self.note_availability(rs);
    }

    fn start_member(&mut self, m: usize, kernel: &str) -> Result<(), CommandError> {
        Self::check_kernel(kernel)?;
        match self.members[m].proc {
            Proc::Up if self.members[m].kernel == kernel => Ok(()),
            Proc::Up | Proc::Stopping => {
                Err(CommandError::NotStopped(self.members[m].node_id.clone()))
            }
            Proc::Down => {
                self.truth.processes[m].starts_by_command += 1;
                self.launch_member(m, kernel);
                Ok(())
            }
        }
    }

    /// Launches a stopped mongod on `kernel`: STARTUP, then either a crash (`Fault::StartFails`) or the
    /// start-up phases.
    fn launch_member(&mut self, m: usize, kernel: &str) {
        self.cancel(|e| e.lifecycle_member() == Some(m));
        let now = self.now_ms;
        {
            let mem = &mut self.members[m];
            mem.proc = Proc::Up;
            mem.kernel = kernel.to_string();
            mem.started_ms = Some(now);
            mem.ineligible_until_ms = 0;
            mem.too_stale = false;
        }
        self.process_launched(m, kernel);
        self.set_state(m, MemberState::Startup);
        if self.fault_start_fails(m) && kernel != self.members[m].good_kernel {
            let d = self.draw(
                self.params.failed_start_min_ms,
                self.params.failed_start_max_ms,
            );
            self.schedule(now + d, Event::StartFailed { m });
        } else {
            let d = self
                .draw(self.params.startup_min_ms, self.params.startup_max_ms)
                .saturating_add(self.fault_slow_start_ms(m));
            self.schedule(now + d, Event::Phase { m });
        }
        self.check_majority(self.members[m].rs);
    }

    fn step_down(
        &mut self,
        m: usize,
        step_down_id: u64,
        step_down_secs: u32,
        catch_up_secs: u32,
    ) -> Result<(), CommandError> {
        let rs = self.members[m].rs;
        if self.sets[rs].step_down_ids.contains(&step_down_id) {
            return Ok(());
        }
        if self.sets[rs].standalone {
            return Err(CommandError::Other("not running with --replSet".into()));
        }
        if self.sets[rs].primary != Some(m) {
            return Err(CommandError::NotPrimary(self.members[m].node_id.clone()));
        }
        if step_down_secs <= catch_up_secs {
            return Err(CommandError::Other(
                "stepdown period must be longer than secondaryCatchUpPeriodSecs".into(),
            ));
        }
        if self.fault_step_down_refused(rs) {
            return Err(CommandError::NoElectableSecondary);
        }
        let now = self.now_ms;
        let deadline = now + u64::from(catch_up_secs) * 1000;
        let mut best: Option<(u8, Millis, usize)> = None;
        let mut caught_up_voters = 1; // the primary itself
        for &c in &self.sets[rs].members {
            if c == m {
                continue;
            }
            let mem = &self.members[c];
            if mem.proc != Proc::Up || mem.state != MemberState::Secondary {
                continue;
            }
            let Some(at) = self.time_reaching(c, now).filter(|&t| t <= deadline) else {
                continue;
            };
            if mem.kind.votes() && mem.kind.data_bearing() {
                caught_up_voters += 1;
            }
            if mem.kind.electable() && mem.priority > 0 && now >= mem.ineligible_until_ms {
                let better =
                    best.is_none_or(|(p, t, _)| mem.priority > p || (mem.priority == p && at < t));
                if better {
                    best = Some((mem.priority, at, c));
                }
            }
        }
        let Some((_, caught_up_at, candidate)) = best else {
            return Err(CommandError::NoElectableSecondary);
        };
        if caught_up_voters < self.sets[rs].write_majority {
            return Err(CommandError::NoElectableSecondary);
        }
        let ids = &mut self.sets[rs].step_down_ids;
        ids.push(step_down_id);
        if ids.len() > STEP_DOWN_IDS_KEPT {
            ids.remove(0);
        }
        self.demote(m, now + u64::from(step_down_secs) * 1000);
        let d = self.draw(self.params.handoff_min_ms, self.params.handoff_max_ms);
        self.schedule(
            caught_up_at + d,
            Event::Handoff {
                rs,
                candidate,
                cause: ElectionCause::Handoff,
                step_down_id: Some(step_down_id),
                lost_at_ms: now,
            },
        );
        Ok(())
    }

    /// The primary `m` stops being primary but keeps running as a secondary.
    fn demote(&mut self, m: usize, ineligible_until_ms: Millis) {
        let rs = self.members[m].rs;
        let now = self.now_ms;
        self.lose_primary(rs, false);
        let mem = &mut self.members[m];
        mem.apply.applying = true;
        mem.apply.anchor_ms = now;
        mem.apply.anchor_at_ms = now;
        mem.ineligible_until_ms = ineligible_until_ms;
        self.set_state(m, MemberState::Secondary);
    }

    fn balancer_command(&mut self, mode: BalancerMode) -> Result<(), CommandError> {
        if self.balancer.is_none() {
            return Err(CommandError::Other("not a sharded cluster".into()));
        }
        if !self.mongos.iter().any(|m| m.ready) {
            return Err(CommandError::Other("no mongos available".into()));
        }
        if self
            .config_rs
            .is_none_or(|c| self.sets[c].primary.is_none())
        {
            return Err(CommandError::Other(
                "config server replica set has no primary".into(),
            ));
        }
        let now = self.now_ms;
        let natural_end = self.natural_round_end(now);
        if self.balancer.is_some_and(|b| b.mode == mode) {
            return Ok(());
        }
        if mode == BalancerMode::Off {
            // balancerStop lets the running round finish.
            if let Some(end) = natural_end {
                if let Some(b) = self.balancer.as_mut() {
                    b.forced_round_until_ms = b.forced_round_until_ms.max(end);
                }
                self.schedule(end, Event::Visible);
            }
        }
        let Some(b) = self.balancer.as_mut() else {
            return Ok(());
        };
        b.mode = mode;
        if mode == BalancerMode::Full {
            b.full_since_ms = now;
        }
        push_bounded(
            &mut self.truth.balancer_modes,
            (now, mode),
            self.params.truth_log_limit,
        );
        Ok(())
    }

    fn stop_mongos(&mut self, i: usize) -> Result<(), CommandError> {
        if self.mongos[i].proc != Proc::Up {
            return Ok(());
        }
        self.truth.processes[self.members.len() + i].stops_by_command += 1;
        self.cancel(|e| e.lifecycle_mongos() == Some(i));
        self.mongos[i].proc = Proc::Stopping;
        // A mongos in its shutdown quiesce period takes no new connections.
        self.mongos[i].ready = false;
        self.note_mongos();
        let d = self.draw(
            self.params.mongos_stop_min_ms,
            self.params.mongos_stop_max_ms,
        );
        self.schedule(self.now_ms + d, Event::MongosStopDone { i });
        Ok(())
    }

    fn start_mongos(&mut self, i: usize, kernel: &str) -> Result<(), CommandError> {
        Self::check_kernel(kernel)?;
        match self.mongos[i].proc {
            Proc::Up if self.mongos[i].kernel == kernel => Ok(()),
            Proc::Up | Proc::Stopping => {
                Err(CommandError::NotStopped(self.mongos[i].node_id.clone()))
            }
            Proc::Down => {
                self.truth.processes[self.members.len() + i].starts_by_command += 1;
                self.launch_mongos(i, kernel);
                Ok(())
            }
        }
    }

    fn launch_mongos(&mut self, i: usize, kernel: &str) {
        self.cancel(|e| e.lifecycle_mongos() == Some(i));
        let now = self.now_ms;
        let ms = &mut self.mongos[i];
        ms.proc = Proc::Up;
        ms.ready = false;
        ms.kernel = kernel.to_string();
        ms.started_ms = Some(now);
        self.process_launched(self.members.len() + i, kernel);
        if self.fault_mongos_start_fails(i) && kernel != self.mongos[i].good_kernel {
            let d = self.draw(
                self.params.failed_start_min_ms,
                self.params.failed_start_max_ms,
            );
            self.schedule(now + d, Event::MongosStartFailed { i });
        } else {
            let d = self.draw(
                self.params.mongos_start_min_ms,
                self.params.mongos_start_max_ms,
            );
            self.schedule(now + d, Event::MongosReady { i });
        }
    }

    pub(super) fn teardown(&mut self) {
        self.torn_down = true;
        // Shutdowns already under way still complete; nothing else is due any more.
        self.cancel(|e| {
            !matches!(
                e,
                Event::Visible | Event::StopDone { .. } | Event::MongosStopDone { .. }
            )
        });
        for m in 0..self.members.len() {
            if self.members[m].proc == Proc::Up {
                self.begin_stop(m);
            }
        }
        for i in 0..self.mongos.len() {
            if self.mongos[i].proc == Proc::Up {
                self.mongos[i].proc = Proc::Stopping;
                self.mongos[i].ready = false;
                let d = self.draw(
                    self.params.mongos_stop_min_ms,
                    self.params.mongos_stop_max_ms,
                );
                self.schedule(self.now_ms + d, Event::MongosStopDone { i });
            }
        }
        self.note_mongos();
    }

    pub(super) fn is_down(&self) -> bool {
        self.members.iter().all(|m| m.proc == Proc::Down)
            && self.mongos.iter().all(|m| m.proc == Proc::Down)
    }

    // ----------------------------------------------------------------------------------------------
    // Elections

    fn lose_primary(&mut self, rs: usize, elect: bool) {
        let Some(p) = self.sets[rs].primary.take() else {
            return;
        };
        let now = self.now_ms;
        let set = &mut self.sets[rs];
        set.last_primary = Some(p);
        set.write = WriteRef::Frozen(now);
        self.open_no_primary(rs);
        self.cancel(
            |e| matches!(*e, Event::Takeover { rs: r, .. } | Event::MajorityCheck { rs: r } if r == rs),
        );
        if elect && !self.sets[rs].standalone {
            let at = now + self.election_delay();
            self.schedule_election(rs, at);
        }
    }

    fn schedule_election(&mut self, rs: usize, at_ms: Millis) {
        if self.torn_down {
            return;
        }
        let pending = self
            .queue
            .iter()
            .find(|(_, e)| matches!(**e, Event::Election { rs: r } if r == rs))
            .map(|(&k, _)| k);
        if let Some(k) = pending {
            if k.0 <= at_ms {
                return;
            }
            self.queue.remove(&k);
        }
        self.schedule(at_ms, Event::Election { rs });
    }

    /// Whether member `c` may stand for election now.
    fn can_stand(&self, rs: usize, c: usize) -> bool {
        let mem = &self.members[c];
        mem.proc == Proc::Up
            && mem.state == MemberState::Secondary
            && mem.kind.electable()
            && mem.priority > 0
            && self.now_ms >= mem.ineligible_until_ms
            && !(self.fault_no_new_primary(rs) && self.sets[rs].last_primary != Some(c))
    }

    /// Whether `c` gets a majority: voters vote for a candidate at least as fresh as themselves.
    fn wins(&self, rs: usize, c: usize) -> bool {
        let oc = self.optime(c);
        let votes = self.sets[rs]
            .members
            .iter()
            .filter(|&&v| {
                let mem = &self.members[v];
                mem.kind.votes()
                    && mem.proc != Proc::Down
                    && is_voting_state(mem.state)
                    && (v == c || mem.kind == MemberKind::Arbiter || self.optime(v) <= oc)
            })
            .count();
        votes >= self.sets[rs].majority
    }

    fn pick_winner(&self, rs: usize) -> Option<usize> {
        let mut candidates: Vec<usize> = self.sets[rs]
            .members
            .iter()
            .copied()
            .filter(|&c| self.can_stand(rs, c))
            .collect();
        candidates.sort_by_key(|&c| {
            (
                std::cmp::Reverse(self.members[c].priority),
                std::cmp::Reverse(self.optime(c)),
                c,
            )
        });
        candidates.into_iter().find(|&c| self.wins(rs, c))
    }

    fn become_primary(
        &mut self,
        rs: usize,
        w: usize,
        cause: ElectionCause,
        step_down_id: Option<u64>,
    ) {
        let now = self.now_ms;
        self.cancel(
            |e| matches!(*e, Event::Election { rs: r } | Event::Handoff { rs: r, .. } if r == rs),
        );
        // Taken before `w` is primary (a primary's optime is "now"): what the winner had applied, the
        // point after which the old primary's writes are rolled back.
        let winner_optime_ms = self.optime(w);
        let set = &mut self.sets[rs];
        set.primary = Some(w);
        set.term += 1;
        set.write = WriteRef::Live;
        set.ever_primary = true;
        let term = set.term;
        self.close_no_primary(rs);
        let record = ElectionRecord {
            term,
            at_ms: now,
            winner: self.members[w].node_id.clone(),
            cause,
            step_down_id,
            winner_optime_ms,
        };
        push_bounded(
            &mut self.truth.replica_sets[rs].elections,
            record,
            self.params.truth_log_limit,
        );
        self.set_state(w, MemberState::Primary);
        self.reconsider_takeover(rs);
        self.check_majority(rs);
    }

    /// After a member became able to take part: call an election if there is no primary, or look for a
    /// priority takeover if there is one.
    fn reconsider(&mut self, rs: usize) {
        if self.sets[rs].standalone || self.torn_down {
            return;
        }
        if self.sets[rs].primary.is_some() {
            self.reconsider_takeover(rs);
            return;
        }
        let handoff_pending = self
            .queue
            .values()
            .any(|e| matches!(*e, Event::Handoff { rs: r, .. } if r == rs));
        if handoff_pending {
            return;
        }
        let delay = if self.sets[rs].ever_primary {
            self.election_delay()
        } else {
            self.draw(self.params.initiate_min_ms, self.params.initiate_max_ms)
        };
        self.schedule_election(rs, self.now_ms + delay);
    }

    fn reconsider_takeover(&mut self, rs: usize) {
        self.cancel(|e| matches!(*e, Event::Takeover { rs: r, .. } if r == rs));
        let Some(p) = self.sets[rs].primary else {
            return;
        };
        if self.torn_down {
            return;
        }
        let pp = self.members[p].priority;
        let candidate = self.sets[rs]
            .members
            .iter()
            .copied()
            .filter(|&c| {
                let mem = &self.members[c];
                c != p
                    && mem.priority > pp
                    && mem.kind.electable()
                    && mem.proc == Proc::Up
                    && mem.state == MemberState::Secondary
                    && !self.fault_no_new_primary(rs)
            })
            .min_by_key(|&c| (std::cmp::Reverse(self.members[c].priority), c));
        let Some(c) = candidate else {
            return;
        };
        let Some(fresh_at) = self.time_fresh(c) else {
            return;
        };
        let at = fresh_at.max(self.members[c].ineligible_until_ms)
            + self.params.priority_takeover_delay_ms.max(1)
            + self.jitter();
        self.schedule(at, Event::Takeover { rs, candidate: c });
    }

    /// A primary that cannot see a majority of voters steps down after the election timeout.
    fn check_majority(&mut self, rs: usize) {
        let set = &self.sets[rs];
        if set.standalone || set.primary.is_none() {
            return;
        }
        let able = set
            .members
            .iter()
            .filter(|&&v| {
                let mem = &self.members[v];
                mem.kind.votes() && mem.proc != Proc::Down && is_voting_state(mem.state)
            })
            .count();
        let pending = self
            .queue
            .values()
            .any(|e| matches!(*e, Event::MajorityCheck { rs: r } if r == rs));
        if able < set.majority && !pending {
            let at = self.now_ms + self.params.election_timeout_ms.max(1);
            self.schedule(at, Event::MajorityCheck { rs });
        }
    }

    fn voters_able(&self, rs: usize) -> usize {
        self.sets[rs]
            .members
            .iter()
            .filter(|&&v| {
                let mem = &self.members[v];
                mem.kind.votes() && mem.proc != Proc::Down && is_voting_state(mem.state)
            })
            .count()
    }

    // ----------------------------------------------------------------------------------------------
    // Events

    fn handle(&mut self, e: Event) {
        match e {
            Event::Visible => {}
            Event::StopDone { m } => self.on_stop_done(m),
            Event::Phase { m } => self.on_phase(m),
            Event::StartFailed { m } => {
                self.truth.processes[m].failed_starts += 1;
                self.process_exit(m, false);
            }
            Event::Crash {
                m,
                recover_after_ms,
            } => {
                if self.members[m].proc == Proc::Down {
                    return;
                }
                self.truth.processes[m].crashes += 1;
                self.process_exit(m, false);
                if let Some(after) = recover_after_ms {
                    self.schedule(self.now_ms.saturating_add(after), Event::Recover { m });
                }
            }
            Event::Recover { m } => {
                if self.members[m].proc == Proc::Down && !self.torn_down {
                    let kernel = self.members[m].good_kernel.clone();
                    self.launch_member(m, &kernel);
                }
            }
            Event::Election { rs } => self.on_election(rs),
            Event::Handoff {
                rs,
                candidate,
                cause,
                step_down_id,
                lost_at_ms,
            } => {
                if self.sets[rs].primary.is_some() {
                    return;
                }
                let caught_up = self.optime(candidate) >= self.write_ref(rs);
                if caught_up && self.can_stand(rs, candidate) && self.wins(rs, candidate) {
                    self.become_primary(rs, candidate, cause, step_down_id);
                } else {
                    let at = (lost_at_ms + self.election_delay()).max(self.now_ms);
                    self.schedule_election(rs, at);
                }
            }
            Event::Takeover { rs, candidate } => self.on_takeover(rs, candidate),
            Event::MajorityCheck { rs } => {
                if let Some(p) = self.sets[rs].primary {
                    if self.voters_able(rs) < self.sets[rs].majority {
                        self.demote(p, 0);
                        let at = self.now_ms + self.election_delay();
                        self.schedule_election(rs, at);
                    }
                }
            }
            Event::PrimaryChange { rs } => self.on_primary_change(rs),
            Event::MongosStopDone { i } => {
                self.mongos[i].proc = Proc::Down;
                self.mongos[i].ready = false;
                self.process_down(self.members.len() + i, true);
                self.note_mongos();
            }
            Event::MongosReady { i } => {
                let config_ok = self
                    .config_rs
                    .is_none_or(|c| self.sets[c].primary.is_some());
                if self.mongos[i].proc != Proc::Up {
                    return;
                }
                if !config_ok {
                    // mongos needs the config servers to come up.
                    self.schedule(
                        self.now_ms + MONGOS_CONFIG_RETRY_MS,
                        Event::MongosReady { i },
                    );
                    return;
                }
                let ms = &mut self.mongos[i];
                ms.ready = true;
                ms.good_kernel = ms.kernel.clone();
                self.note_mongos();
            }
            Event::MongosStartFailed { i } => {
                self.truth.processes[self.members.len() + i].failed_starts += 1;
                self.mongos[i].proc = Proc::Down;
                self.mongos[i].ready = false;
                self.process_down(self.members.len() + i, false);
                self.note_mongos();
            }
        }
    }

    fn on_stop_done(&mut self, m: usize) {
        let by_command = self.members[m].out_by_command;
        self.process_exit(m, by_command);
    }

    /// The process of member `m` is gone (clean stop, crash or failed start).
    fn process_exit(&mut self, m: usize, by_command: bool) {
        self.cancel(|e| e.lifecycle_member() == Some(m));
        let rs = self.members[m].rs;
        let was_primary = self.sets[rs].primary == Some(m);
        let optime = self.optime(m);
        if was_primary {
            self.lose_primary(rs, true);
        }
        {
            let mem = &mut self.members[m];
            mem.proc = Proc::Down;
            mem.started_ms = None;
            mem.apply.applying = false;
            mem.apply.anchor_ms = optime;
            mem.apply.anchor_at_ms = self.now_ms;
        }
        self.process_down(m, by_command);
        self.set_state(m, MemberState::Down);
        self.check_majority(rs);
    }

    fn on_phase(&mut self, m: usize) {
        let rs = self.members[m].rs;
        let now = self.now_ms;
        match self.members[m].state {
            MemberState::Startup if self.sets[rs].standalone => {
                self.members[m].good_kernel = self.members[m].kernel.clone();
                let set = &mut self.sets[rs];
                set.primary = Some(m);
                set.write = WriteRef::Live;
                set.ever_primary = true;
                self.close_no_primary(rs);
                self.set_state(m, MemberState::Primary);
            }
            MemberState::Startup if self.members[m].kind == MemberKind::Arbiter => {
                self.members[m].good_kernel = self.members[m].kernel.clone();
                self.set_state(m, MemberState::Arbiter);
                self.reconsider(rs);
            }
            MemberState::Startup => {
                let rate = if self.fault_slow_apply(m) {
                    self.params.slow_apply_rate_permille.max(1)
                } else {
                    self.draw_rate()
                };
                let behind = self
                    .write_ref(rs)
                    .saturating_sub(self.members[m].apply.anchor_ms);
                let stale = behind > self.sets[rs].oplog_window_ms;
                {
                    let mem = &mut self.members[m];
                    mem.apply.applying = !stale;
                    mem.apply.anchor_at_ms = now;
                    mem.apply.rate_permille = rate;
                    mem.too_stale = stale;
                }
                if stale {
                    let id = self.members[m].node_id.clone();
                    push_bounded(
                        &mut self.truth.replica_sets[rs].too_stale,
                        id,
                        self.params.truth_log_limit,
                    );
                }
                self.set_state(m, MemberState::Startup2);
                if self.fault_stuck(m) != Some(MemberState::Startup2) {
                    let d = self.draw(self.params.startup2_min_ms, self.params.startup2_max_ms);
                    self.schedule(now + d, Event::Phase { m });
                }
                // A member in STARTUP2 votes again.
                self.check_majority(rs);
                self.reconsider_if_leaderless(rs);
            }
            MemberState::Startup2 => {
                self.set_state(m, MemberState::Recovering);
                let stuck = self.fault_stuck(m) == Some(MemberState::Recovering);
                if !stuck && !self.members[m].too_stale {
                    let d = self.draw(self.params.recovering_min_ms, self.params.recovering_max_ms);
                    self.schedule(now + d, Event::Phase { m });
                }
            }
            MemberState::Recovering => {
                self.members[m].good_kernel = self.members[m].kernel.clone();
                self.set_state(m, MemberState::Secondary);
                self.reconsider(rs);
            }
            _ => {}
        }
    }

    /// Voters coming back may restore the majority a leaderless set needs; make sure an election is due.
    fn reconsider_if_leaderless(&mut self, rs: usize) {
        if self.sets[rs].primary.is_none()
            && self.sets[rs].ever_primary
            && !self
                .queue
                .values()
                .any(|e| matches!(*e, Event::Election { rs: r } | Event::Handoff { rs: r, .. } if r == rs))
            && self.sets[rs]
                .members
                .iter()
                .any(|&c| self.can_stand(rs, c))
        {
            self.reconsider(rs);
        }
    }

    fn on_election(&mut self, rs: usize) {
        if self.sets[rs].primary.is_some() || self.sets[rs].standalone || self.torn_down {
            return;
        }
        let cause = if self.sets[rs].ever_primary {
            ElectionCause::Timeout
        } else {
            ElectionCause::Initiate
        };
        if let Some(w) = self.pick_winner(rs) {
            self.become_primary(rs, w, cause, None);
            return;
        }
        // Keep calling elections while anyone could eventually stand.
        let someone_up = self.sets[rs].members.iter().any(|&c| {
            let mem = &self.members[c];
            mem.proc == Proc::Up && mem.kind.electable() && mem.priority > 0
        });
        if someone_up {
            let at = self.now_ms + self.election_delay();
            self.schedule_election(rs, at);
        }
    }

    fn on_takeover(&mut self, rs: usize, c: usize) {
        let Some(p) = self.sets[rs].primary else {
            return;
        };
        let window = self.params.priority_takeover_freshness_ms;
        let fresh = self.optime(c) + window >= self.now_ms;
        // With writes flowing the candidate is always a little behind the primary, so it cannot win a
        // freshness vote against it outright: the primary steps down first (writes stop), and the candidate
        // is elected once it has applied the last write, as after a handoff.
        if self.members[c].priority > self.members[p].priority
            && fresh
            && self.can_stand(rs, c)
            && self.voters_able(rs) >= self.sets[rs].majority
        {
            let now = self.now_ms;
            self.demote(p, 0);
            let d = self.draw(self.params.handoff_min_ms, self.params.handoff_max_ms);
            self.schedule(
                now + d,
                Event::Handoff {
                    rs,
                    candidate: c,
                    cause: ElectionCause::PriorityTakeover,
                    step_down_id: None,
                    lost_at_ms: now,
                },
            );
        } else {
            self.reconsider_takeover(rs);
        }
    }

    fn on_primary_change(&mut self, rs: usize) {
        let Some(p) = self.sets[rs].primary else {
            return;
        };
        let now = self.now_ms;
        let horizon = now + self.params.election_timeout_ms;
        let candidate = self.sets[rs]
            .members
            .iter()
            .copied()
            .filter(|&c| c != p && self.can_stand(rs, c))
            .filter_map(|c| {
                self.time_reaching(c, now)
                    .filter(|&t| t <= horizon)
                    .map(|t| (c, t))
            })
            .min_by_key(|&(c, t)| (std::cmp::Reverse(self.members[c].priority), t, c));
        let Some((c, caught_up_at)) = candidate else {
            return;
        };
        self.demote(p, now + self.params.election_timeout_ms);
        let d = self.draw(self.params.handoff_min_ms, self.params.handoff_max_ms);
        self.schedule(
            caught_up_at + d,
            Event::Handoff {
                rs,
                candidate: c,
                cause: ElectionCause::Handoff,
                step_down_id: None,
                lost_at_ms: now,
            },
        );
    }
}

/// SplitMix64: a stateless hash for lazily computed random quantities.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
