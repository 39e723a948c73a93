//! Building a fleet from a topology — already running, or being provisioned — and the structural check of a
//! restored snapshot. Both establish what every other part of the fleet relies on without checking: member,
//! set and mongos indices in range, and the truth records parallel to the processes.

use super::{
    Apply, Balancer, Event, Fleet, Member, Mongos, Proc, ReplSet, Seen, WriteRef, MAX_TIME_MS,
};
use crate::model::{MemberKind, MemberSpec, MongosSpec, Topology};
use crate::plane::{BalancerMode, MemberState, Millis};
use crate::sim::truth::{Interval, ProcessTruth, ReplicaSetTruth, Truth};
use crate::sim::SimParams;
use std::collections::BTreeMap;

impl Fleet {
    // ----------------------------------------------------------------------------------------------
    // Construction

    pub(in crate::sim) fn new(
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
                fcv_changes: Vec::new(),
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
        // A fresh install's data is at the FCV of its oldest binary (one for the whole cluster).
        let fcv = f
            .members
            .iter()
            .map(|m| m.kernel.as_str())
            .chain(f.mongos.iter().map(|m| m.kernel.as_str()))
            .filter_map(crate::catalog::engine_of_kernel)
            .min_by_key(|e| crate::catalog::engine_rank(e).unwrap_or(usize::MAX));
        for s in &mut f.sets {
            s.fcv.clone_from(&fcv);
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
            fcv: None,
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
    pub(in crate::sim) fn check(&self) -> Result<(), &'static str> {
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
}
