//! The plane's commands as a real deployment answers them (the balancer's two are in `balancer`): a stop of
//! a primary refused, a stepdown without a caught-up electable secondary refused, a start of a running
//! process refused, repeats accepted; and the teardown. Every command is recorded in the truth together
//! with its result.

use super::{Event, Fleet, Proc};
use crate::plane::{BalancerMode, Command, CommandError, MemberState, Millis};
use crate::sim::truth::{
    push_bounded, CommandRecord, ElectionCause, PrimaryStopAttempt, StopRecord,
};

/// Step-down ids remembered per replica set (enough to recognise any repeat of a recent stepdown).
const STEP_DOWN_IDS_KEPT: usize = 64;
/// Longest kernel version a start command may carry.
const MAX_KERNEL_LEN: usize = 64;

impl Fleet {
    // ----------------------------------------------------------------------------------------------
    // Commands

    pub(in crate::sim) fn apply(&mut self, cmd: &Command) -> Result<(), CommandError> {
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
            Command::SetFeatureCompatibilityVersion {
                replica_set,
                version,
            } => self.set_fcv(replica_set.as_deref(), version),
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
    pub(super) fn launch_member(&mut self, m: usize, kernel: &str) {
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
        let refused = self.fcv_refuses(self.members[m].rs, kernel);
        if refused || (self.fault_start_fails(m) && kernel != self.members[m].good_kernel) {
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
    pub(super) fn demote(&mut self, m: usize, ineligible_until_ms: Millis) {
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

    pub(super) fn launch_mongos(&mut self, i: usize, kernel: &str) {
        self.cancel(|e| e.lifecycle_mongos() == Some(i));
        let now = self.now_ms;
        let ms = &mut self.mongos[i];
        ms.proc = Proc::Up;
        ms.ready = false;
        ms.kernel = kernel.to_string();
        ms.started_ms = Some(now);
        self.process_launched(self.members.len() + i, kernel);
        let refused = self
            .config_rs
            .is_some_and(|rs| self.fcv_refuses(rs, kernel));
        if refused || (self.fault_mongos_start_fails(i) && kernel != self.mongos[i].good_kernel) {
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

    pub(in crate::sim) fn teardown(&mut self) {
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

    pub(in crate::sim) fn is_down(&self) -> bool {
        self.members.iter().all(|m| m.proc == Proc::Down)
            && self.mongos.iter().all(|m| m.proc == Proc::Down)
    }
}
