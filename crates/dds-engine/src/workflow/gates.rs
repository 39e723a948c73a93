//! The health gates, as pure predicates over one replica set's observation.
//!
//! - [`pre_stop`]: I1/I2 — before a member is stopped (or a primary stepped down) every *other* voting member is
//!   up, healthy as seen from the primary and in a steady state, a primary other than the member exists, and the
//!   voters left healthy after the stop still form a majority.
//! - [`post_start`]: I8 — a restarted member runs the expected kernel (and is a new process), is
//!   SECONDARY/ARBITER (PRIMARY after a priority takeover), healthy from the primary, and caught up.
//!   The stability window (I8e) is applied by the caller, which owns the clock.
//! - [`step_down_ready`]: before `replSetStepDown`, an electable, caught-up secondary exists, so the stepdown
//!   can hand off instead of being refused.

use crate::model::MemberKind;
use crate::plane::{MemberObservation, MemberState, Millis, ReplicaSetObservation};
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a member is, as far as the gates care (from `rs.conf()`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRole {
    pub node_id: String,
    pub kind: MemberKind,
    pub priority: u8,
    pub delay_secs: u32,
}

impl MemberRole {
    /// The lag this member may have at its gate: delayed members trail by design.
    pub fn lag_allowance_ms(&self, max_lag_ms: u64) -> u64 {
        max_lag_ms.saturating_add(u64::from(self.delay_secs) * 1_000)
    }
}

/// Why a stop (or stepdown) may not happen yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GateBlock {
    /// The replica set has no primary right now.
    NoPrimary,
    /// The member to stop is the primary (I2: step it down first).
    IsPrimary,
    /// A member in the configuration is missing from the observation.
    NotObserved { node_id: String },
    /// The member to stop is not itself serving (crashed or still recovering): not ours to restart now.
    NotServing {
        node_id: String,
        state: MemberState,
        healthy: bool,
    },
    /// Another voting member is down, unhealthy or not steady.
    OtherUnhealthy {
        node_id: String,
        state: MemberState,
        healthy: bool,
    },
    /// Stopping the member would leave fewer healthy voters than `majorityVoteCount`.
    MajorityLost {
        healthy_voters_after: usize,
        majority: usize,
    },
    /// No electable secondary is caught up, so a non-forced stepdown would be refused.
    NoCaughtUpElectable,
    /// Every mongos other than the ones being restarted is down.
    NoOtherMongosServing,
}

impl fmt::Display for GateBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GateBlock::NoPrimary => write!(f, "no primary"),
            GateBlock::IsPrimary => write!(f, "member is primary"),
            GateBlock::NotObserved { node_id } => write!(f, "{node_id} not observed"),
            GateBlock::NotServing {
                node_id,
                state,
                healthy,
            } => {
                write!(
                    f,
                    "{node_id} itself not serving ({state:?}, healthy={healthy})"
                )
            }
            GateBlock::OtherUnhealthy {
                node_id,
                state,
                healthy,
            } => {
                write!(f, "{node_id} is {state:?}, healthy={healthy}")
            }
            GateBlock::MajorityLost {
                healthy_voters_after,
                majority,
            } => write!(
                f,
                "{healthy_voters_after} healthy voters would remain, majority is {majority}"
            ),
            GateBlock::NoCaughtUpElectable => write!(f, "no electable secondary caught up"),
            GateBlock::NoOtherMongosServing => write!(f, "no other mongos serving"),
        }
    }
}

/// Why a restarted member has not passed its gate yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GateUnmet {
    NotObserved,
    ProcessDown,
    /// Up, but on another kernel than the one it was started on.
    WrongKernel {
        observed: Option<String>,
    },
    /// Up, but the same process as before the stop (the restart did not happen).
    NotRestarted,
    /// STARTUP, STARTUP2, RECOVERING, ROLLBACK ...
    NotSteady {
        state: MemberState,
    },
    /// The reported state predates the running process: heartbeats have not caught up with the restart yet
    /// (`replSetGetStatus` can show the old process's SECONDARY for up to a heartbeat interval).
    StateFromBeforeStart,
    Unhealthy,
    /// Lag cannot be judged without a primary.
    NoPrimary,
    Lagging {
        lag_ms: u64,
        allowed_ms: u64,
    },
}

impl GateUnmet {
    /// Whether the process itself has not come up serving on the new kernel: past the start deadline this
    /// means the binary does not start, as opposed to a slow catch-up.
    pub fn is_start_problem(&self) -> bool {
        matches!(
            self,
            GateUnmet::NotObserved
                | GateUnmet::ProcessDown
                | GateUnmet::WrongKernel { .. }
                | GateUnmet::NotRestarted
                | GateUnmet::NotSteady { .. }
                | GateUnmet::StateFromBeforeStart
        )
    }
}

impl fmt::Display for GateUnmet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GateUnmet::NotObserved => write!(f, "not observed"),
            GateUnmet::ProcessDown => write!(f, "process down"),
            GateUnmet::WrongKernel { observed } => write!(f, "running kernel {observed:?}"),
            GateUnmet::NotRestarted => write!(f, "process not restarted"),
            GateUnmet::NotSteady { state } => write!(f, "state {state:?}"),
            GateUnmet::StateFromBeforeStart => {
                write!(f, "state not yet reported since the restart")
            }
            GateUnmet::Unhealthy => write!(f, "unhealthy from the primary"),
            GateUnmet::NoPrimary => write!(f, "no primary to measure lag against"),
            GateUnmet::Lagging { lag_ms, allowed_ms } => {
                write!(f, "lag {lag_ms} ms > {allowed_ms} ms")
            }
        }
    }
}

fn serving(m: &MemberObservation) -> bool {
    m.process_up && m.healthy && m.state.is_steady()
}

/// Lag of a member behind the primary, ms (0 for arbiters, which hold no data).
pub fn lag_ms(role: &MemberRole, rs: &ReplicaSetObservation, m: &MemberObservation) -> u64 {
    if !role.kind.data_bearing() {
        return 0;
    }
    rs.primary_optime_ms.saturating_sub(m.optime_ms)
}

/// I1 + I2: may `node_id` be stopped now? `require_self_serving` is false only when putting a failed member
/// back on its previous kernel, which is already out of service.
pub fn pre_stop(
    roles: &[MemberRole],
    rs: &ReplicaSetObservation,
    node_id: &str,
    require_self_serving: bool,
) -> Result<(), GateBlock> {
    let primary = rs.primary.as_deref().ok_or(GateBlock::NoPrimary)?;
    if primary == node_id {
        return Err(GateBlock::IsPrimary);
    }
    let me = rs.member(node_id).ok_or_else(|| GateBlock::NotObserved {
        node_id: node_id.to_string(),
    })?;
    if require_self_serving && !serving(me) {
        return Err(GateBlock::NotServing {
            node_id: node_id.to_string(),
            state: me.state,
            healthy: me.healthy,
        });
    }
    let mut healthy_voters_after = 0usize;
    let mut voters = 0usize;
    for role in roles {
        if !role.kind.votes() {
            continue;
        }
        voters += 1;
        if role.node_id == node_id {
            continue;
        }
        let other = rs
            .member(&role.node_id)
            .ok_or_else(|| GateBlock::NotObserved {
                node_id: role.node_id.clone(),
            })?;
        if !serving(other) {
            return Err(GateBlock::OtherUnhealthy {
                node_id: role.node_id.clone(),
                state: other.state,
                healthy: other.healthy,
            });
        }
        healthy_voters_after += 1;
    }
    let majority = voters / 2 + 1;
    if healthy_voters_after < majority {
        return Err(GateBlock::MajorityLost {
            healthy_voters_after,
            majority,
        });
    }
    Ok(())
}

/// Before a non-forced stepdown of `primary`: the same conditions as stopping it afterwards (minus "is
/// primary"), plus an electable secondary within `max_lag_ms`.
pub fn step_down_ready(
    roles: &[MemberRole],
    rs: &ReplicaSetObservation,
    primary: &str,
    max_lag_ms: u64,
) -> Result<(), GateBlock> {
    if rs.primary.as_deref() != Some(primary) {
        return Err(GateBlock::NoPrimary);
    }
    let mut voters = 0usize;
    let mut healthy_after = 0usize;
    let mut electable = false;
    for role in roles {
        let Some(m) = rs.member(&role.node_id) else {
            return Err(GateBlock::NotObserved {
                node_id: role.node_id.clone(),
            });
        };
        if role.kind.votes() {
            voters += 1;
        }
        if role.node_id == primary {
            continue;
        }
        if role.kind.votes() {
            if !serving(m) {
                return Err(GateBlock::OtherUnhealthy {
                    node_id: role.node_id.clone(),
                    state: m.state,
                    healthy: m.healthy,
                });
            }
            healthy_after += 1;
        }
        if role.kind.electable()
            && serving(m)
            && m.state == MemberState::Secondary
            && lag_ms(role, rs, m) <= max_lag_ms
        {
            electable = true;
        }
    }
    if healthy_after < voters / 2 + 1 {
        return Err(GateBlock::MajorityLost {
            healthy_voters_after: healthy_after,
            majority: voters / 2 + 1,
        });
    }
    if !electable {
        return Err(GateBlock::NoCaughtUpElectable);
    }
    Ok(())
}

/// What a restarted process must look like.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    pub kernel: &'a str,
    /// Start time of the process that was stopped, when known: the restarted one must differ.
    pub old_started_ms: Option<Millis>,
    pub max_lag_ms: u64,
}

/// I8 a–d for a restarted member. `Ok` carries since when the member has been in its current state (and
/// running this process), the earliest point its stability window can count from.
pub fn post_start(
    role: &MemberRole,
    rs: &ReplicaSetObservation,
    expect: Expect<'_>,
) -> Result<Millis, GateUnmet> {
    let m = rs.member(&role.node_id).ok_or(GateUnmet::NotObserved)?;
    if !m.process_up {
        return Err(GateUnmet::ProcessDown);
    }
    if m.kernel_version.as_deref() != Some(expect.kernel) {
        return Err(GateUnmet::WrongKernel {
            observed: m.kernel_version.clone(),
        });
    }
    if let (Some(old), Some(now)) = (expect.old_started_ms, m.started_ms) {
        if old == now {
            return Err(GateUnmet::NotRestarted);
        }
    }
    // PRIMARY is accepted: a restarted member that wins a priority takeover is serving by definition, and
    // refusing it would fail a healthy rollout (F8/F9 are counted as elections instead).
    if !m.state.is_steady() {
        return Err(GateUnmet::NotSteady { state: m.state });
    }
    // State and health come from heartbeats; what was reported before this process started says nothing
    // about it.
    let started = m.started_ms.unwrap_or(0);
    if m.state_since_ms < started {
        return Err(GateUnmet::StateFromBeforeStart);
    }
    if !m.healthy {
        return Err(GateUnmet::Unhealthy);
    }
    if rs.primary.is_none() {
        return Err(GateUnmet::NoPrimary);
    }
    let lag = lag_ms(role, rs, m);
    let allowed = role.lag_allowance_ms(expect.max_lag_ms);
    if lag > allowed {
        return Err(GateUnmet::Lagging {
            lag_ms: lag,
            allowed_ms: allowed,
        });
    }
    Ok(m.state_since_ms.max(started))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(id: &str, kind: MemberKind) -> MemberRole {
        MemberRole {
            node_id: id.into(),
            kind,
            priority: if kind.electable() { 1 } else { 0 },
            delay_secs: if kind == MemberKind::Delayed { 3600 } else { 0 },
        }
    }

    fn obs(id: &str, state: MemberState, optime_ms: Millis) -> MemberObservation {
        MemberObservation {
            node_id: id.into(),
            state,
            healthy: state != MemberState::Down,
            process_up: state != MemberState::Down,
            kernel_version: (state != MemberState::Down).then(|| "k2".to_string()),
            optime_ms,
            state_since_ms: 5,
            started_ms: Some(1),
        }
    }

    fn rs(members: Vec<MemberObservation>) -> ReplicaSetObservation {
        let primary = members
            .iter()
            .find(|m| m.state == MemberState::Primary)
            .map(|m| m.node_id.clone());
        ReplicaSetObservation {
            name: "rs".into(),
            term: 1,
            primary,
            primary_optime_ms: 100_000,
            members,
            oplog_window_ms: None,
            fcv: None,
        }
    }

    #[test]
    fn pre_stop_needs_every_other_voter_serving() {
        let roles = vec![
            role("a", MemberKind::Electable),
            role("b", MemberKind::Electable),
            role("c", MemberKind::Hidden),
        ];
        let ok = rs(vec![
            obs("a", MemberState::Primary, 100_000),
            obs("b", MemberState::Secondary, 99_000),
            obs("c", MemberState::Secondary, 99_000),
        ]);
        assert_eq!(pre_stop(&roles, &ok, "b", true), Ok(()));
        assert_eq!(pre_stop(&roles, &ok, "a", true), Err(GateBlock::IsPrimary));

        let c_down = rs(vec![
            obs("a", MemberState::Primary, 100_000),
            obs("b", MemberState::Secondary, 99_000),
            obs("c", MemberState::Down, 0),
        ]);
        assert!(matches!(
            pre_stop(&roles, &c_down, "b", true),
            Err(GateBlock::OtherUnhealthy { ref node_id, .. }) if node_id == "c"
        ));
        let c_recovering = rs(vec![
            obs("a", MemberState::Primary, 100_000),
            obs("b", MemberState::Secondary, 99_000),
            obs("c", MemberState::Recovering, 99_000),
        ]);
        assert!(pre_stop(&roles, &c_recovering, "b", true).is_err());
        // The member itself recovering: not ours to stop now, unless it is being put back.
        let b_recovering = rs(vec![
            obs("a", MemberState::Primary, 100_000),
            obs("b", MemberState::Startup2, 1_000),
            obs("c", MemberState::Secondary, 99_000),
        ]);
        assert!(matches!(
            pre_stop(&roles, &b_recovering, "b", true),
            Err(GateBlock::NotServing { .. })
        ));
        assert_eq!(pre_stop(&roles, &b_recovering, "b", false), Ok(()));
    }

    #[test]
    fn pre_stop_ignores_non_voters_but_counts_arbiters() {
        let roles = vec![
            role("a", MemberKind::Electable),
            role("b", MemberKind::Electable),
            role("r", MemberKind::ReadOnly),
            role("x", MemberKind::Arbiter),
        ];
        let r_down = rs(vec![
            obs("a", MemberState::Primary, 100_000),
            obs("b", MemberState::Secondary, 99_000),
            obs("r", MemberState::Down, 0),
            obs("x", MemberState::Arbiter, 0),
        ]);
        assert_eq!(pre_stop(&roles, &r_down, "b", true), Ok(()));
        let x_down = rs(vec![
            obs("a", MemberState::Primary, 100_000),
            obs("b", MemberState::Secondary, 99_000),
            obs("r", MemberState::Secondary, 99_000),
            obs("x", MemberState::Down, 0),
        ]);
        assert!(pre_stop(&roles, &x_down, "b", true).is_err());
    }

    #[test]
    fn step_down_needs_a_caught_up_electable_secondary() {
        let roles = vec![
            role("a", MemberKind::Electable),
            role("b", MemberKind::Electable),
            role("c", MemberKind::Hidden),
        ];
        let fresh = rs(vec![
            obs("a", MemberState::Primary, 100_000),
            obs("b", MemberState::Secondary, 95_000),
            obs("c", MemberState::Secondary, 1_000),
        ]);
        assert_eq!(step_down_ready(&roles, &fresh, "a", 10_000), Ok(()));
        let stale = rs(vec![
            obs("a", MemberState::Primary, 100_000),
            obs("b", MemberState::Secondary, 50_000),
            obs("c", MemberState::Secondary, 99_000),
        ]);
        // c is caught up but hidden (priority 0): it cannot take over.
        assert_eq!(
            step_down_ready(&roles, &stale, "a", 10_000),
            Err(GateBlock::NoCaughtUpElectable)
        );
    }

    #[test]
    fn post_start_checks_kernel_restart_state_health_and_lag() {
        let delayed = role("d", MemberKind::Delayed);
        let mut d = obs("d", MemberState::Secondary, 10_000_000 - 3_600_000 / 2);
        d.started_ms = Some(4);
        let mut set = rs(vec![obs("a", MemberState::Primary, 10_000_000), d.clone()]);
        set.primary_optime_ms = 10_000_000;
        let expect = Expect {
            kernel: "k2",
            old_started_ms: Some(1),
            max_lag_ms: 10_000,
        };
        assert_eq!(post_start(&delayed, &set, expect), Ok(5));
        assert_eq!(
            post_start(
                &delayed,
                &set,
                Expect {
                    kernel: "k3",
                    ..expect
                }
            ),
            Err(GateUnmet::WrongKernel {
                observed: Some("k2".into())
            })
        );
        assert_eq!(
            post_start(
                &delayed,
                &set,
                Expect {
                    old_started_ms: Some(4),
                    ..expect
                }
            ),
            Err(GateUnmet::NotRestarted)
        );
        let plain = role("d", MemberKind::Electable);
        assert!(matches!(
            post_start(&plain, &set, expect),
            Err(GateUnmet::Lagging { .. })
        ));
        // A state reported before the current process started is stale.
        set.members[1].started_ms = Some(6);
        assert_eq!(
            post_start(
                &delayed,
                &set,
                Expect {
                    old_started_ms: Some(1),
                    ..expect
                }
            ),
            Err(GateUnmet::StateFromBeforeStart)
        );
        set.members[1].started_ms = Some(5);
        assert_eq!(post_start(&delayed, &set, expect), Ok(5));
        set.members[1].state = MemberState::Startup2;
        assert_eq!(
            post_start(&delayed, &set, expect),
            Err(GateUnmet::NotSteady {
                state: MemberState::Startup2
            })
        );
        set.members[1].state = MemberState::Secondary;
        set.members[1].healthy = false;
        assert_eq!(
            post_start(&delayed, &set, expect),
            Err(GateUnmet::Unhealthy)
        );
        set.members[1].process_up = false;
        assert_eq!(
            post_start(&delayed, &set, expect),
            Err(GateUnmet::ProcessDown)
        );
    }
}
