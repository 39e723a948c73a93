//! Internals of the simulated fleet: its state, the event queue and the rules that move them.
//! (The model itself is described in the parent module's docs.)
//!
//! This module holds the state itself — every type here is part of a snapshot, so its serialised form is
//! defined in one place. The rules that move it are split by concern: `setup` (building a fleet, checking a
//! restored one), `queue` (randomness and virtual time), `replication` (optime arithmetic), `views` (what
//! heartbeats let the set see), `bookkeeping` (the ground truth), `faults`, `commands`, `balancer`,
//! `elections` and `events`.

mod balancer;
mod bookkeeping;
mod commands;
mod elections;
mod events;
mod faults;
mod fcv;
mod queue;
mod replication;
mod setup;
mod views;

use super::fault::Fault;
use super::truth::{ElectionCause, Truth};
use super::SimParams;
use crate::model::MemberKind;
use crate::plane::{BalancerMode, MemberState, Millis};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Latest time the fleet runs to; with durations bounded by `SimParams::MAX_DURATION_MS` no time
/// arithmetic can overflow.
pub(super) const MAX_TIME_MS: Millis = u64::MAX / 4;

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
    /// `featureCompatibilityVersion` of the set's data; `None` until first set (then the oldest major among
    /// the members' kernels stands for it, as after a fresh install).
    #[serde(default)]
    fcv: Option<String>,
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
