//! What the steppers share during one `step` or `on_result` call: `Cx`, the scratch that collects commands,
//! the next wake-up and failures, and `Env`, a read-only view of the operation. With these the replica-set,
//! member and mongos steppers are free functions that borrow one track mutably at a time instead of methods
//! borrowing the whole operation.

use super::state::{Failure, FailureReason, ProcessRecord, RollingKind};
use crate::plane::{Command, Millis};
use crate::workflow::config::UpgradeConfig;

/// Whether a (repeated) start may be sent now; otherwise schedules the wake-up.
pub(super) fn start_allowed(p: &mut ProcessRecord, cx: &mut Cx) -> bool {
    match p.start_retry_at_ms {
        Some(t) if cx.now < t => {
            cx.wake_at(t);
            false
        }
        _ => {
            p.start_retry_at_ms = None;
            true
        }
    }
}

/// Per-step scratch: commands to issue, the next wake-up, failures raised.
pub(super) struct Cx {
    pub(super) now: Millis,
    pub(super) cmds: Vec<Command>,
    pub(super) wake: Option<Millis>,
    pub(super) failures: Vec<Failure>,
}

impl Cx {
    pub(super) fn wake_at(&mut self, t: Millis) {
        let t = t.max(self.now + 1);
        self.wake = Some(self.wake.map_or(t, |w| w.min(t)));
    }
    pub(super) fn deadline(&mut self, since: Millis, limit_ms: u64) -> bool {
        let at = since.saturating_add(limit_ms);
        if self.now >= at {
            true
        } else {
            self.wake_at(at);
            false
        }
    }
}

pub(super) fn env_of<'a>(
    cfg: &'a UpgradeConfig,
    kind: &'a RollingKind,
    halted: bool,
    started_ms: Option<Millis>,
) -> Env<'a> {
    Env {
        cfg,
        target: match kind {
            RollingKind::Upgrade { target_kernel }
            | RollingKind::EngineUpgrade { target_kernel, .. } => Some(target_kernel.as_str()),
            RollingKind::Restart { .. }
            | RollingKind::Switch { .. }
            | RollingKind::ClassChange { .. } => None,
        },
        switch_only: matches!(kind, RollingKind::Switch { .. }),
        halted,
        step_down_base: started_ms.unwrap_or(0).saturating_mul(1_000),
    }
}

/// Read-only context shared by the replica-set and mongos steppers.
pub(super) struct Env<'a> {
    pub(super) cfg: &'a UpgradeConfig,
    pub(super) target: Option<&'a str>,
    /// A primary switch: the primary is stepped down and nothing is restarted.
    pub(super) switch_only: bool,
    pub(super) halted: bool,
    pub(super) step_down_base: u64,
}

impl Env<'_> {
    pub(super) fn expected_kernel<'k>(&'k self, p: &'k ProcessRecord) -> &'k str {
        self.target.unwrap_or(&p.from_kernel)
    }
    pub(super) fn on_target(&self, kernel: Option<&str>) -> bool {
        self.target.is_some() && kernel == self.target
    }
    /// Evidence that the process running now is not the one this record stopped.
    pub(super) fn already_restarted(
        &self,
        p: &ProcessRecord,
        kernel: Option<&str>,
        started: Option<Millis>,
    ) -> bool {
        if self.on_target(kernel) {
            return true;
        }
        matches!((p.pre_stop_started_ms, started), (Some(a), Some(b)) if a != b)
    }
}

pub(super) fn failure(
    rs: Option<&str>,
    node: Option<&str>,
    reason: FailureReason,
    now: Millis,
) -> Failure {
    Failure {
        replica_set: rs.map(str::to_string),
        node_id: node.map(str::to_string),
        reason,
        at_ms: now,
    }
}
