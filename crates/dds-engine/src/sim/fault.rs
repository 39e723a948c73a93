//! Faults the simulated fleet can inject, one or more per row of the test matrix (F1–F17).

use crate::plane::{MemberState, Millis};
use serde::{Deserialize, Serialize};

/// A fault armed with [`super::SimFleet::arm_fault`]. Faults without a time stay armed until
/// [`super::SimFleet::clear_faults`]; timed ones fire once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fault {
    /// F1, F12: every start of this mongod on a kernel other than the last one it ran healthily fails: the
    /// process comes up in STARTUP and crashes 1–3 s later (a crash-looping binary). Starting it on its
    /// previous kernel works.
    StartFails { node_id: String },
    /// F2: after its next start the member stays in `state` (`Startup2` or `Recovering`) indefinitely.
    StuckInState { node_id: String, state: MemberState },
    /// F2: after its next start the member reaches SECONDARY but applies the oplog at half the write rate,
    /// so its lag grows instead of shrinking. With writes stopped (a stepdown) it still catches up slowly.
    NeverCatchesUp { node_id: String },
    /// F2: every start of this member takes `extra_ms` longer in STARTUP (slow WiredTiger recovery).
    SlowStart { node_id: String, extra_ms: Millis },
    /// F3: `replSetStepDown` on this replica set is refused ("No electable secondaries caught up") until
    /// `until_ms` (`None` = until cleared).
    StepDownRefused {
        replica_set: String,
        until_ms: Option<Millis>,
    },
    /// F4: a stepdown succeeds but no member other than the one that stepped down can win an election until
    /// `until_ms` (`None` = until cleared); the old primary wins again once its `stepDownSecs` are over.
    NoNewPrimary {
        replica_set: String,
        until_ms: Option<Millis>,
    },
    /// F4, F7: the process crashes at `at_ms` (not by any command). The supervisor restarts it on the same
    /// kernel `recover_after_ms` later; `None` keeps it down.
    Crash {
        node_id: String,
        at_ms: Millis,
        recover_after_ms: Option<Millis>,
    },
    /// F8: at `at_ms` the primary steps down on its own (as after a network blip) and hands off to the
    /// best caught-up electable member; nothing happens when there is none.
    PrimaryChange { replica_set: String, at_ms: Millis },
    /// F11: a balancer round is in progress until `until_ms`; `balancerStop` does not cut it short.
    BalancerRound { until_ms: Millis },
    /// F17: the replica set's oplog window (newest minus oldest entry). A member down longer than this
    /// cannot catch up from the oplog and stays in RECOVERING ("too stale", RS102).
    OplogWindow {
        replica_set: String,
        window_ms: Millis,
    },
    /// F13: every start of this mongos on a kernel other than its last healthy one fails after 1–3 s.
    MongosStartFails { node_id: String },
}
