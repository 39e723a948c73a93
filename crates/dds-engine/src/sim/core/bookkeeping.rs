//! Truth bookkeeping: the ground-truth records (downtime, launches, windows without a primary or a mongos,
//! availability maxima) kept up to date as the state changes, so the audit judges the workflow by what
//! really happened rather than by what it observed. `set_state` lives here because every member state
//! change goes through it to be seen and recorded.

use super::{Fleet, Proc};
use crate::plane::MemberState;
use crate::sim::truth::{push_bounded, DownInterval, Interval};

impl Fleet {
    // ----------------------------------------------------------------------------------------------
    // Truth bookkeeping

    pub(super) fn note_availability(&mut self, rs: usize) {
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

    pub(super) fn note_mongos(&mut self) {
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

    pub(super) fn process_down(&mut self, p: usize, by_command: bool) {
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

    pub(super) fn process_launched(&mut self, p: usize, kernel: &str) {
        let now = self.now_ms;
        let limit = self.params.truth_log_limit;
        let t = &mut self.truth.processes[p];
        if let Some(d) = t.down.last_mut().filter(|d| d.until_ms.is_none()) {
            d.until_ms = Some(now);
        }
        push_bounded(&mut t.launches, (now, kernel.to_string()), limit);
    }

    pub(super) fn open_no_primary(&mut self, rs: usize) {
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

    pub(super) fn close_no_primary(&mut self, rs: usize) {
        let now = self.now_ms;
        if let Some(i) = self.truth.replica_sets[rs]
            .no_primary
            .last_mut()
            .filter(|i| i.until_ms.is_none())
        {
            i.until_ms = Some(now);
        }
    }

    pub(super) fn set_state(&mut self, m: usize, state: MemberState) {
        let now = self.now_ms;
        let mem = &mut self.members[m];
        if mem.state != state {
            mem.state = state;
            mem.state_since_ms = now;
        }
        self.record_seen(m);
        self.note_availability(self.members[m].rs);
    }
}
