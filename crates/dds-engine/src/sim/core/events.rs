//! Handling the queued events: process lifecycles (stop done, start-up phases, failed start, crash,
//! recovery), elections and handoffs, takeovers, majority checks and mongos readiness. An event may be
//! overtaken after it was queued: lifecycle events are cancelled when their process's lifecycle changes, and
//! the others re-check the state they act on.

use super::{Event, Fleet, Proc, WriteRef};
use crate::model::MemberKind;
use crate::plane::{MemberState, Millis};
use crate::sim::truth::{push_bounded, ElectionCause};

/// How often a starting mongos retries reaching a config server primary.
const MONGOS_CONFIG_RETRY_MS: Millis = 1_000;

impl Fleet {
    // ----------------------------------------------------------------------------------------------
    // Events

    pub(super) fn handle(&mut self, e: Event) {
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
