use super::*;
use crate::build::fixtures;
use crate::model::ReplicaSetSpec;
use crate::plane::{MemberObservation, MemberState, ReplicaSetObservation};

const K1: &str = "mongodb_20220518_4.0.21";
const K2: &str = "mongodb_20230620_4.0.25";
const T0: Millis = 1_760_000_000_000;

fn fleet(rs: ReplicaSetSpec, seed: u64) -> SimFleet {
    SimFleet::new(&fixtures::replica_set(rs), SimParams::default(), seed, T0)
}

fn set<'a>(o: &'a DeploymentObservation, name: &str) -> &'a ReplicaSetObservation {
    o.replica_set(name).expect("replica set")
}

fn member(f: &SimFleet, rs: &str, node: &str) -> MemberObservation {
    set(&f.observe(), rs).member(node).expect("member").clone()
}

fn primary(f: &SimFleet, rs: &str) -> Option<String> {
    set(&f.observe(), rs).primary.clone()
}

fn term(f: &SimFleet, rs: &str) -> u64 {
    set(&f.observe(), rs).term
}

/// Advances in `step_ms` steps until `pred` holds (checked first at the current time); gives the time it
/// first held, or `None` after `limit_ms`.
fn wait_for(
    f: &mut SimFleet,
    limit_ms: Millis,
    step_ms: Millis,
    mut pred: impl FnMut(&DeploymentObservation) -> bool,
) -> Option<Millis> {
    let end = f.now_ms() + limit_ms;
    loop {
        if pred(&f.observe()) {
            return Some(f.now_ms());
        }
        if f.now_ms() >= end {
            return None;
        }
        let next = f.now_ms() + step_ms;
        f.advance_to(next);
    }
}

fn stop(rs: &str, node: &str) -> Command {
    Command::StopMember {
        replica_set: rs.into(),
        node_id: node.into(),
    }
}

fn start(rs: &str, node: &str, kernel: &str) -> Command {
    Command::StartMember {
        replica_set: rs.into(),
        node_id: node.into(),
        kernel_version: kernel.into(),
    }
}

fn step_down(rs: &str, node: &str, id: u64) -> Command {
    Command::StepDown {
        replica_set: rs.into(),
        node_id: node.into(),
        step_down_id: id,
        step_down_secs: 60,
        catch_up_secs: 10,
    }
}

fn state_of(o: &DeploymentObservation, rs: &str, node: &str) -> MemberState {
    set(o, rs).member(node).expect("member").state
}

fn lag_of(o: &DeploymentObservation, rs: &str, node: &str) -> Millis {
    let s = set(o, rs);
    s.primary_optime_ms
        .saturating_sub(s.member(node).expect("member").optime_ms)
}

/// SECONDARY observed since the running process started (right after a restart the heartbeat view may
/// still show the state from before it).
fn fresh_secondary(o: &DeploymentObservation, rs: &str, node: &str) -> bool {
    let m = set(o, rs).member(node).expect("member");
    m.state == MemberState::Secondary && m.started_ms.is_some_and(|s| m.state_since_ms >= s)
}

/// Restarts a non-primary member on `kernel` and waits until it is a caught-up SECONDARY.
fn restart(f: &mut SimFleet, rs: &str, node: &str, kernel: &str) {
    f.apply(&stop(rs, node)).unwrap();
    wait_for(f, 20_000, 100, |o| {
        !set(o, rs).member(node).unwrap().process_up
    })
    .expect("stops");
    f.apply(&start(rs, node, kernel)).unwrap();
    wait_for(f, 120_000, 100, |o| {
        fresh_secondary(o, rs, node) && lag_of(o, rs, node) <= 1_000
    })
    .expect("comes back");
}

#[test]
fn a_new_fleet_is_running_with_the_first_electable_member_primary() {
    let f = fleet(fixtures::psh("rs0", K1), 1);
    let o = f.observe();
    let rs = set(&o, "rs0");
    assert_eq!(rs.primary.as_deref(), Some("rs0-0"));
    assert_eq!(rs.term, 1);
    assert_eq!(
        rs.oplog_window_ms,
        Some(SimParams::default().oplog_window_ms)
    );
    assert!(o.balancer.is_none());
    for m in &rs.members {
        assert!(m.process_up && m.healthy, "{m:?}");
        assert_eq!(m.kernel_version.as_deref(), Some(K1));
        assert!(m.state_since_ms < T0 && m.started_ms.is_some());
        assert!(rs.primary_optime_ms - m.optime_ms <= 500, "{m:?}");
    }
    assert_eq!(state_of(&o, "rs0", "rs0-2"), MemberState::Secondary);
    assert_eq!(f.truth().replica_set("rs0").unwrap().initial_term, 1);
    assert!(f.truth().replica_set("rs0").unwrap().elections.is_empty());
}

#[test]
fn stepdown_hands_off_within_seconds_and_costs_one_term() {
    for seed in 0..40 {
        let mut f = fleet(fixtures::pss("rs0", K1), seed);
        f.advance_to(T0 + 5_000);
        let t = f.now_ms();
        f.apply(&step_down("rs0", "rs0-0", 7)).unwrap();
        // Writes stop at once.
        assert_eq!(primary(&f, "rs0"), None);
        let at = wait_for(&mut f, 30_000, 50, |o| set(o, "rs0").primary.is_some()).unwrap();
        assert!(
            (1_000..=3_600).contains(&(at - t)),
            "seed {seed}: {}",
            at - t
        );
        assert_eq!(term(&f, "rs0"), 2);
        let new_primary = primary(&f, "rs0").unwrap();
        assert_ne!(new_primary, "rs0-0");
        let truth = f.truth().replica_set("rs0").unwrap();
        assert_eq!(truth.elections.len(), 1);
        assert_eq!(truth.elections[0].cause, ElectionCause::Handoff);
        // A hand-off candidate has caught up with the last write: nothing to roll back.
        assert_eq!(truth.elections[0].winner_optime_ms, t, "seed {seed}");
        assert_eq!(truth.elections[0].step_down_id, Some(7));
        assert_eq!(truth.elections[0].winner, new_primary);
        assert_eq!(truth.no_primary.len(), 1);
        let gap = truth.no_primary[0].duration_ms(f.now_ms());
        assert!(gap <= at - t && gap + 50 > at - t, "{gap} vs {}", at - t);
        // A repeat of the same stepdown (after a control-plane crash) changes nothing.
        f.apply(&step_down("rs0", "rs0-0", 7)).unwrap();
        f.advance_to(f.now_ms() + 120_000);
        assert_eq!(term(&f, "rs0"), 2);
        assert_eq!(primary(&f, "rs0").unwrap(), new_primary);
        assert_eq!(
            state_of(&f.observe(), "rs0", "rs0-0"),
            MemberState::Secondary
        );
    }
}

#[test]
fn a_dead_primary_is_replaced_only_after_the_election_timeout() {
    for seed in 0..20 {
        let mut f = fleet(fixtures::pss("rs0", K1), seed);
        f.arm_fault(Fault::Crash {
            node_id: "rs0-0".into(),
            at_ms: T0 + 1_000,
            recover_after_ms: None,
        })
        .unwrap();
        f.advance_to(T0 + 1_000);
        assert_eq!(primary(&f, "rs0"), None);
        assert!(!member(&f, "rs0", "rs0-0").process_up);
        let at = wait_for(&mut f, 30_000, 50, |o| set(o, "rs0").primary.is_some()).unwrap();
        let gap = at - (T0 + 1_000);
        assert!((10_000..=11_550).contains(&gap), "seed {seed}: {gap}");
        let truth = f.truth().replica_set("rs0").unwrap();
        assert_eq!(truth.elections[0].cause, ElectionCause::Timeout);
        assert_eq!(truth.elections[0].step_down_id, None);
        // The winner had what it replicated before the crash: at most the crash time, less its lag.
        let winner_optime = truth.elections[0].winner_optime_ms;
        assert!(
            (T0 + 1_000 - 600..=T0 + 1_000).contains(&winner_optime),
            "seed {seed}: {winner_optime}"
        );
        assert_eq!(term(&f, "rs0"), 2);
        assert_eq!(f.truth().process("rs0-0").unwrap().crashes, 1);
    }
}

#[test]
fn stepdown_is_refused_without_a_caught_up_electable_secondary() {
    // PSH with the only electable secondary down: the hidden member cannot take over.
    let mut f = fleet(fixtures::psh("rs0", K1), 3);
    f.apply(&stop("rs0", "rs0-1")).unwrap();
    wait_for(&mut f, 20_000, 100, |o| {
        !set(o, "rs0").member("rs0-1").unwrap().process_up
    })
    .unwrap();
    assert_eq!(
        f.apply(&step_down("rs0", "rs0-0", 1)),
        Err(CommandError::NoElectableSecondary)
    );
    // A SECONDARY that lags too far behind to catch up within secondaryCatchUpPeriodSecs does not count.
    f.arm_fault(Fault::NeverCatchesUp {
        node_id: "rs0-1".into(),
    })
    .unwrap();
    f.advance_to(f.now_ms() + 120_000);
    f.apply(&start("rs0", "rs0-1", K1)).unwrap();
    wait_for(&mut f, 60_000, 100, |o| fresh_secondary(o, "rs0", "rs0-1")).unwrap();
    assert!(lag_of(&f.observe(), "rs0", "rs0-1") > 60_000);
    assert_eq!(
        f.apply(&step_down("rs0", "rs0-0", 2)),
        Err(CommandError::NoElectableSecondary)
    );
    assert_eq!(primary(&f, "rs0").as_deref(), Some("rs0-0"));
    assert_eq!(term(&f, "rs0"), 1);
    // Not primary, bad periods.
    assert_eq!(
        f.apply(&step_down("rs0", "rs0-2", 3)),
        Err(CommandError::NotPrimary("rs0-2".into()))
    );
    let mut bad = step_down("rs0", "rs0-0", 4);
    if let Command::StepDown { step_down_secs, .. } = &mut bad {
        *step_down_secs = 10;
    }
    assert!(matches!(f.apply(&bad), Err(CommandError::Other(_))));
    // Restarted without the fault it catches up, and then the stepdown is accepted.
    f.clear_faults();
    f.apply(&stop("rs0", "rs0-1")).unwrap();
    wait_for(&mut f, 20_000, 100, |o| {
        !set(o, "rs0").member("rs0-1").unwrap().process_up
    })
    .unwrap();
    f.apply(&start("rs0", "rs0-1", K1)).unwrap();
    wait_for(&mut f, 120_000, 100, |o| {
        fresh_secondary(o, "rs0", "rs0-1") && lag_of(o, "rs0", "rs0-1") < 1_000
    })
    .unwrap();
    f.apply(&step_down("rs0", "rs0-0", 5)).unwrap();
    wait_for(&mut f, 10_000, 100, |o| set(o, "rs0").primary.is_some()).unwrap();
    assert_eq!(primary(&f, "rs0").as_deref(), Some("rs0-1"));
}

#[test]
fn stopping_the_primary_is_refused_and_recorded() {
    let mut f = fleet(fixtures::pss("rs0", K1), 4);
    assert_eq!(
        f.apply(&stop("rs0", "rs0-0")),
        Err(CommandError::IsPrimary("rs0-0".into()))
    );
    f.advance_to(T0 + 30_000);
    assert!(member(&f, "rs0", "rs0-0").process_up);
    assert_eq!(primary(&f, "rs0").as_deref(), Some("rs0-0"));
    let attempts = &f.truth().primary_stop_attempts;
    assert_eq!(attempts.len(), 1);
    assert_eq!(
        (attempts[0].node_id.as_str(), attempts[0].at_ms),
        ("rs0-0", T0)
    );
    assert_eq!(f.truth().process("rs0-0").unwrap().stops_by_command, 0);
    assert_eq!(f.truth().commands.len(), 1);
    assert!(f.truth().commands[0].result.is_err());
    // Unknown nodes, and members addressed through the wrong replica set.
    assert!(matches!(
        f.apply(&stop("rs0", "nope")),
        Err(CommandError::NoSuchNode(_))
    ));
    assert!(matches!(
        f.apply(&stop("rs9", "rs0-1")),
        Err(CommandError::NoSuchNode(_))
    ));
}

#[test]
fn a_restarted_secondary_goes_through_startup_phases_and_catches_up() {
    let mut seen_startup2 = false;
    let mut seen_recovering = false;
    let mut lagging_secondary = false;
    for seed in 0..30 {
        let mut f = fleet(fixtures::pss("rs0", K1), seed);
        f.apply(&stop("rs0", "rs0-1")).unwrap();
        // The process keeps running through its shutdown (2–15 s).
        assert!(member(&f, "rs0", "rs0-1").process_up);
        assert_eq!(
            f.apply(&start("rs0", "rs0-1", K2)),
            Err(CommandError::NotStopped("rs0-1".into()))
        );
        let down = wait_for(&mut f, 20_000, 100, |o| {
            !set(o, "rs0").member("rs0-1").unwrap().process_up
        })
        .unwrap();
        assert!((2_000..=15_100).contains(&(down - T0)), "seed {seed}");
        let m = member(&f, "rs0", "rs0-1");
        assert_eq!((m.kernel_version, m.started_ms), (None, None));
        // Stopping again is a no-op.
        f.apply(&stop("rs0", "rs0-1")).unwrap();
        f.advance_to(f.now_ms() + 20_000);
        f.apply(&start("rs0", "rs0-1", K2)).unwrap();
        let started = f.now_ms();
        // Starting again with the same kernel is a no-op; another kernel is refused.
        f.apply(&start("rs0", "rs0-1", K2)).unwrap();
        assert!(f.apply(&start("rs0", "rs0-1", K1)).is_err());
        let m = member(&f, "rs0", "rs0-1");
        assert_eq!(m.kernel_version.as_deref(), Some(K2));
        assert_eq!(m.started_ms, Some(started));
        let mut states = vec![];
        let mut lag_at_secondary = None;
        wait_for(&mut f, 120_000, 100, |o| {
            let m = set(o, "rs0").member("rs0-1").unwrap();
            if states.last() != Some(&m.state) {
                states.push(m.state);
            }
            if m.state == MemberState::Secondary && lag_at_secondary.is_none() {
                lag_at_secondary = Some(lag_of(o, "rs0", "rs0-1"));
            }
            m.state == MemberState::Secondary && lag_of(o, "rs0", "rs0-1") <= 500
        })
        .unwrap_or_else(|| panic!("seed {seed}: never caught up: {states:?}"));
        // Heartbeats may hide a short phase, never reorder them.
        let order = [
            MemberState::Down,
            MemberState::Startup,
            MemberState::Startup2,
            MemberState::Recovering,
            MemberState::Secondary,
        ];
        let mut pos = 0;
        for s in &states {
            let p = order
                .iter()
                .position(|o| o == s)
                .unwrap_or_else(|| panic!("{s:?}"));
            assert!(p >= pos, "seed {seed}: {states:?}");
            pos = p;
        }
        assert_eq!(states.last(), Some(&MemberState::Secondary));
        seen_startup2 |= states.contains(&MemberState::Startup2);
        seen_recovering |= states.contains(&MemberState::Recovering);
        lagging_secondary |= lag_at_secondary.unwrap() > 2_000;
        let p = f.truth().process("rs0-1").unwrap();
        assert_eq!((p.stops_by_command, p.starts_by_command), (1, 1));
        assert_eq!(p.down.len(), 1);
        assert!(p.down[0].by_command);
        assert_eq!(p.down[0].until_ms, Some(started));
        let rs = f.truth().replica_set("rs0").unwrap();
        assert_eq!(rs.max_out_by_commands, 1);
        assert!(rs.stops[0].others_unavailable.is_empty());
        assert!(rs.elections.is_empty());
    }
    assert!(seen_startup2 && seen_recovering);
    // SECONDARY does not mean caught up: a gate on the state alone would move on too early.
    assert!(lagging_secondary);
}

#[test]
fn health_seen_from_the_primary_lags_by_up_to_a_heartbeat() {
    let mut lagged = 0;
    for seed in 0..20 {
        let mut f = fleet(fixtures::pss("rs0", K1), seed);
        f.arm_fault(Fault::Crash {
            node_id: "rs0-2".into(),
            at_ms: T0 + 3_333,
            recover_after_ms: None,
        })
        .unwrap();
        f.advance_to(T0 + 3_333);
        let m = member(&f, "rs0", "rs0-2");
        assert!(!m.process_up);
        let noticed = wait_for(&mut f, 5_000, 10, |o| {
            !set(o, "rs0").member("rs0-2").unwrap().healthy
        })
        .unwrap();
        assert!(noticed - (T0 + 3_333) <= 2_000, "seed {seed}");
        lagged += usize::from(noticed > T0 + 3_333);
        assert_eq!(state_of(&f.observe(), "rs0", "rs0-2"), MemberState::Down);
    }
    assert!(lagged > 10);
}

#[test]
fn a_higher_priority_member_takes_over_after_catching_up() {
    for seed in 0..10 {
        let mut f = fleet(fixtures::with_higher_priority("rs0", K1), seed);
        restart(&mut f, "rs0", "rs0-1", K2);
        restart(&mut f, "rs0", "rs0-2", K2);
        f.apply(&step_down("rs0", "rs0-0", 1)).unwrap();
        wait_for(&mut f, 10_000, 100, |o| set(o, "rs0").primary.is_some()).unwrap();
        assert_ne!(primary(&f, "rs0").as_deref(), Some("rs0-0"));
        restart(&mut f, "rs0", "rs0-0", K2);
        let back = f.now_ms();
        let at = wait_for(&mut f, 60_000, 100, |o| {
            set(o, "rs0").primary.as_deref() == Some("rs0-0")
        })
        .unwrap_or_else(|| panic!("seed {seed}: no takeover"));
        // The takeover waits for the delay after catch-up.
        assert!(at - back >= 7_000, "seed {seed}: {}", at - back);
        let truth = f.truth().replica_set("rs0").unwrap();
        let causes: Vec<_> = truth.elections.iter().map(|e| e.cause).collect();
        assert_eq!(
            causes,
            [ElectionCause::Handoff, ElectionCause::PriorityTakeover]
        );
        assert_eq!(term(&f, "rs0"), 3);
        // Stable afterwards.
        f.advance_to(f.now_ms() + 300_000);
        assert_eq!(term(&f, "rs0"), 3);
    }
}

#[test]
fn fault_start_fails_on_a_new_kernel_only() {
    let mut f = fleet(fixtures::pss("rs0", K1), 5);
    f.arm_fault(Fault::StartFails {
        node_id: "rs0-1".into(),
    })
    .unwrap();
    f.apply(&stop("rs0", "rs0-1")).unwrap();
    wait_for(&mut f, 20_000, 100, |o| {
        !set(o, "rs0").member("rs0-1").unwrap().process_up
    })
    .unwrap();
    for attempt in 1..=2 {
        f.apply(&start("rs0", "rs0-1", K2)).unwrap();
        assert!(member(&f, "rs0", "rs0-1").process_up);
        let died = wait_for(&mut f, 10_000, 100, |o| {
            !set(o, "rs0").member("rs0-1").unwrap().process_up
        })
        .unwrap();
        assert!(
            died - f
                .truth()
                .process("rs0-1")
                .unwrap()
                .launches
                .last()
                .unwrap()
                .0
                <= 3_000
        );
        assert_eq!(f.truth().process("rs0-1").unwrap().failed_starts, attempt);
        f.advance_to(f.now_ms() + 60_000);
        assert_eq!(member(&f, "rs0", "rs0-1").state, MemberState::Down);
    }
    // Reverting the member to the kernel it ran before works.
    f.apply(&start("rs0", "rs0-1", K1)).unwrap();
    wait_for(&mut f, 120_000, 100, |o| fresh_secondary(o, "rs0", "rs0-1")).unwrap();
    assert_eq!(f.truth().replica_set("rs0").unwrap().elections.len(), 0);
}

#[test]
fn fault_stuck_in_startup2_or_recovering() {
    for (node, stuck) in [
        ("rs0-1", MemberState::Startup2),
        ("rs0-2", MemberState::Recovering),
    ] {
        let mut f = fleet(fixtures::pss("rs0", K1), 6);
        f.arm_fault(Fault::StuckInState {
            node_id: node.into(),
            state: stuck,
        })
        .unwrap();
        f.apply(&stop("rs0", node)).unwrap();
        wait_for(&mut f, 20_000, 100, |o| {
            !set(o, "rs0").member(node).unwrap().process_up
        })
        .unwrap();
        f.apply(&start("rs0", node, K2)).unwrap();
        f.advance_to(f.now_ms() + 600_000);
        let m = member(&f, "rs0", node);
        assert_eq!(m.state, stuck);
        assert!(m.process_up && m.healthy);
    }
}

#[test]
fn fault_never_catches_up_and_slow_start() {
    let mut f = fleet(fixtures::pss("rs0", K1), 7);
    f.arm_fault(Fault::NeverCatchesUp {
        node_id: "rs0-1".into(),
    })
    .unwrap();
    f.arm_fault(Fault::SlowStart {
        node_id: "rs0-1".into(),
        extra_ms: 120_000,
    })
    .unwrap();
    f.apply(&stop("rs0", "rs0-1")).unwrap();
    wait_for(&mut f, 20_000, 100, |o| {
        !set(o, "rs0").member("rs0-1").unwrap().process_up
    })
    .unwrap();
    f.apply(&start("rs0", "rs0-1", K2)).unwrap();
    let started = f.now_ms();
    let secondary = wait_for(&mut f, 400_000, 500, |o| fresh_secondary(o, "rs0", "rs0-1")).unwrap();
    assert!(secondary - started >= 120_000);
    let lag1 = lag_of(&f.observe(), "rs0", "rs0-1");
    f.advance_to(f.now_ms() + 60_000);
    let lag2 = lag_of(&f.observe(), "rs0", "rs0-1");
    assert!(lag1 > 100_000 && lag2 > lag1, "{lag1} {lag2}");
}

#[test]
fn fault_step_down_refused_until_a_time() {
    let mut f = fleet(fixtures::pss("rs0", K1), 8);
    f.arm_fault(Fault::StepDownRefused {
        replica_set: "rs0".into(),
        until_ms: Some(T0 + 60_000),
    })
    .unwrap();
    f.advance_to(T0 + 59_000);
    assert_eq!(
        f.apply(&step_down("rs0", "rs0-0", 1)),
        Err(CommandError::NoElectableSecondary)
    );
    f.advance_to(T0 + 60_000);
    f.apply(&step_down("rs0", "rs0-0", 1)).unwrap();
}

#[test]
fn fault_no_new_primary_until_the_old_one_may_stand_again() {
    let mut f = fleet(fixtures::pss("rs0", K1), 9);
    f.arm_fault(Fault::NoNewPrimary {
        replica_set: "rs0".into(),
        until_ms: None,
    })
    .unwrap();
    f.apply(&step_down("rs0", "rs0-0", 1)).unwrap();
    f.advance_to(T0 + 55_000);
    assert_eq!(primary(&f, "rs0"), None);
    // stepDownSecs = 60: then the old primary is elected again, after an election timeout.
    let at = wait_for(&mut f, 60_000, 100, |o| set(o, "rs0").primary.is_some()).unwrap();
    assert!(at >= T0 + 60_000);
    assert_eq!(primary(&f, "rs0").as_deref(), Some("rs0-0"));
    let truth = f.truth().replica_set("rs0").unwrap();
    assert_eq!(truth.elections[0].cause, ElectionCause::Timeout);
    assert!(truth.longest_no_primary_ms(f.now_ms()) >= 60_000);
}

#[test]
fn fault_crash_with_recovery_and_spontaneous_primary_change() {
    let mut f = fleet(fixtures::pss("rs0", K1), 10);
    f.arm_fault(Fault::Crash {
        node_id: "rs0-2".into(),
        at_ms: T0 + 5_000,
        recover_after_ms: Some(20_000),
    })
    .unwrap();
    f.arm_fault(Fault::PrimaryChange {
        replica_set: "rs0".into(),
        at_ms: T0 + 120_000,
    })
    .unwrap();
    f.advance_to(T0 + 6_000);
    assert!(!member(&f, "rs0", "rs0-2").process_up);
    wait_for(&mut f, 100_000, 100, |o| {
        state_of(o, "rs0", "rs0-2") == MemberState::Secondary
    })
    .unwrap();
    let p = f.truth().process("rs0-2").unwrap();
    assert_eq!((p.crashes, p.starts_by_command, p.down.len()), (1, 0, 1));
    assert!(!p.down[0].by_command);
    assert_eq!(f.truth().replica_set("rs0").unwrap().max_out_by_commands, 0);
    f.advance_to(T0 + 130_000);
    assert_ne!(primary(&f, "rs0").as_deref(), Some("rs0-0"));
    let e = &f.truth().replica_set("rs0").unwrap().elections;
    assert_eq!(e.len(), 1);
    assert_eq!(
        (e[0].cause, e[0].step_down_id),
        (ElectionCause::Handoff, None)
    );
}

#[test]
fn oplog_window_is_observed_and_a_member_down_longer_comes_back_too_stale() {
    let mut f = fleet(fixtures::pss("rs0", K1), 11);
    f.arm_fault(Fault::OplogWindow {
        replica_set: "rs0".into(),
        window_ms: 30_000,
    })
    .unwrap();
    assert_eq!(set(&f.observe(), "rs0").oplog_window_ms, Some(30_000));
    f.apply(&stop("rs0", "rs0-1")).unwrap();
    wait_for(&mut f, 20_000, 100, |o| {
        !set(o, "rs0").member("rs0-1").unwrap().process_up
    })
    .unwrap();
    f.advance_to(f.now_ms() + 40_000);
    f.apply(&start("rs0", "rs0-1", K2)).unwrap();
    f.advance_to(f.now_ms() + 300_000);
    assert_eq!(member(&f, "rs0", "rs0-1").state, MemberState::Recovering);
    assert_eq!(
        f.truth().replica_set("rs0").unwrap().too_stale,
        ["rs0-1".to_string()]
    );
    assert!(f
        .arm_fault(Fault::OplogWindow {
            replica_set: "x".into(),
            window_ms: 1
        })
        .is_err());
    assert!(f
        .arm_fault(Fault::StartFails {
            node_id: "x".into()
        })
        .is_err());
    assert!(f.arm_fault(Fault::BalancerRound { until_ms: 1 }).is_err());
}

fn sharded(seed: u64) -> SimFleet {
    SimFleet::new(&fixtures::sharded(2, 2, K1), SimParams::default(), seed, T0)
}

#[test]
fn balancer_rounds_finish_after_balancer_stop() {
    let mut rounds_seen = 0;
    for seed in 0..10 {
        let mut f = sharded(seed);
        let in_round = |o: &DeploymentObservation| o.balancer.unwrap().in_balancer_round;
        wait_for(&mut f, 60_000, 50, in_round).unwrap();
        rounds_seen += 1;
        f.apply(&Command::StopBalancer).unwrap();
        let b = f.observe().balancer.unwrap();
        assert_eq!(b.mode, BalancerMode::Off);
        assert!(b.in_balancer_round, "the running round goes on");
        let ended = wait_for(&mut f, 10_000, 50, |o| !in_round(o)).unwrap();
        assert!(ended > f.truth().balancer_modes[1].0);
        // No new rounds while off.
        for _ in 0..600 {
            f.advance_to(f.now_ms() + 100);
            assert!(!in_round(&f.observe()));
        }
        f.apply(&Command::StopBalancer).unwrap();
        f.apply(&Command::StartBalancer).unwrap();
        let modes: Vec<_> = f.truth().balancer_modes.iter().map(|m| m.1).collect();
        assert_eq!(
            modes,
            [BalancerMode::Full, BalancerMode::Off, BalancerMode::Full]
        );
    }
    assert_eq!(rounds_seen, 10);
}

#[test]
fn fault_balancer_round_and_initially_off() {
    let mut f = sharded(1);
    f.set_balancer(BalancerMode::Off, None);
    f.arm_fault(Fault::BalancerRound {
        until_ms: T0 + 90_000,
    })
    .unwrap();
    f.apply(&Command::StopBalancer).unwrap();
    f.advance_to(T0 + 89_000);
    assert!(f.observe().balancer.unwrap().in_balancer_round);
    f.advance_to(T0 + 90_000);
    assert!(!f.observe().balancer.unwrap().in_balancer_round);
    assert_eq!(f.next_event_ms(), None);
    assert_eq!(f.observe().balancer.unwrap().mode, BalancerMode::Off);
    // Replica-set instances have no balancer.
    let mut rs = fleet(fixtures::pss("rs0", K1), 1);
    assert!(rs.apply(&Command::StopBalancer).is_err());
}

#[test]
fn mongos_restart_and_start_failure() {
    let mut f = sharded(2);
    f.arm_fault(Fault::MongosStartFails {
        node_id: "mongos1".into(),
    })
    .unwrap();
    for (node, ok) in [("mongos0", true), ("mongos1", false)] {
        f.apply(&Command::StopMongos {
            node_id: node.into(),
        })
        .unwrap();
        let o = f.observe();
        let m = o.mongos.iter().find(|m| m.node_id == node).unwrap();
        assert!(!m.up && m.kernel_version.is_none());
        f.advance_to(f.now_ms() + 5_000);
        f.apply(&Command::StartMongos {
            node_id: node.into(),
            kernel_version: K2.into(),
        })
        .unwrap();
        f.advance_to(f.now_ms() + 30_000);
        let o = f.observe();
        let m = o.mongos.iter().find(|m| m.node_id == node).unwrap();
        assert_eq!(m.up, ok, "{node}");
        assert_eq!(m.kernel_version.as_deref(), ok.then_some(K2));
    }
    assert_eq!(f.truth().process("mongos1").unwrap().failed_starts, 1);
    assert_eq!(f.truth().restarts("mongos0"), 1);
    assert!(f.truth().no_mongos.is_empty());
    // Stopping the last serving mongos leaves none: recorded.
    f.apply(&Command::StopMongos {
        node_id: "mongos0".into(),
    })
    .unwrap();
    assert_eq!(f.truth().no_mongos.len(), 1);
    assert!(
        f.apply(&Command::StartBalancer).is_err(),
        "balancer commands need a mongos"
    );
}

#[test]
fn a_primary_that_loses_its_majority_steps_down() {
    let mut f = fleet(fixtures::psa("rs0", K1), 12);
    f.apply(&stop("rs0", "rs0-1")).unwrap();
    f.apply(&stop("rs0", "rs0-2")).unwrap();
    let down = wait_for(&mut f, 20_000, 100, |o| {
        set(o, "rs0").members[1..].iter().all(|m| !m.process_up)
    })
    .unwrap();
    let lost = wait_for(&mut f, 20_000, 100, |o| set(o, "rs0").primary.is_none()).unwrap();
    assert!((9_900..=10_100).contains(&(lost - down)), "{}", lost - down);
    let truth = f.truth().replica_set("rs0").unwrap();
    assert_eq!(truth.max_out_by_commands, 2);
    assert_eq!(truth.stops[1].others_unavailable, ["rs0-1".to_string()]);
    // Bring them back: the set elects again.
    f.apply(&start("rs0", "rs0-1", K1)).unwrap();
    f.apply(&start("rs0", "rs0-2", K1)).unwrap();
    wait_for(&mut f, 120_000, 100, |o| set(o, "rs0").primary.is_some()).unwrap();
}

#[test]
fn delayed_and_readonly_members() {
    let f = fleet(fixtures::with_delayed("rs0", K1, 3_600), 13);
    let lag = lag_of(&f.observe(), "rs0", "rs0-3");
    assert!((3_600_000..=3_600_500).contains(&lag), "{lag}");
    let mut f = fleet(fixtures::with_readonly("rs0", K1, 2), 13);
    restart(&mut f, "rs0", "rs0-3", K2);
    assert_eq!(f.truth().replica_set("rs0").unwrap().elections.len(), 0);
    // Read-only members do not vote: stopping two of the five keeps the three voters' majority.
    f.apply(&stop("rs0", "rs0-3")).unwrap();
    f.apply(&stop("rs0", "rs0-4")).unwrap();
    f.advance_to(f.now_ms() + 60_000);
    assert_eq!(primary(&f, "rs0").as_deref(), Some("rs0-0"));
}

#[test]
fn standalone_restarts_without_elections() {
    let topo = fixtures::standalone("dds-s-0", K1);
    let mut f = SimFleet::new(&topo, SimParams::default(), 1, T0);
    let o = f.observe();
    assert_eq!(set(&o, "dds-s-0").primary.as_deref(), Some("dds-s-0"));
    assert_eq!(set(&o, "dds-s-0").oplog_window_ms, None);
    assert!(matches!(
        f.apply(&step_down("dds-s-0", "dds-s-0", 1)),
        Err(CommandError::Other(_))
    ));
    f.apply(&stop("dds-s-0", "dds-s-0")).unwrap();
    assert_eq!(primary(&f, "dds-s-0"), None);
    f.advance_to(T0 + 20_000);
    f.apply(&start("dds-s-0", "dds-s-0", K2)).unwrap();
    wait_for(&mut f, 60_000, 100, |o| set(o, "dds-s-0").primary.is_some()).unwrap();
    assert_eq!(term(&f, "dds-s-0"), 0);
    let truth = f.truth().replica_set("dds-s-0").unwrap();
    assert!(truth.elections.is_empty());
    assert_eq!(truth.no_primary.len(), 1);
    assert!(f.truth().primary_stop_attempts.is_empty());
}

#[test]
fn provisioning_elects_a_primary_and_teardown_stops_everything() {
    let topo = fixtures::sharded(2, 2, K1);
    let mut f = SimFleet::provision(&topo, SimParams::default(), 3, T0);
    let o = f.observe();
    assert!(o
        .replica_sets
        .iter()
        .all(|rs| rs.primary.is_none() && rs.term == 0));
    assert!(o
        .replica_sets
        .iter()
        .flat_map(|rs| &rs.members)
        .all(|m| { m.process_up && m.state == MemberState::Startup && m.started_ms == Some(T0) }));
    assert!(o.mongos.iter().all(|m| !m.up));
    let ready = wait_for(&mut f, 120_000, 100, |o| {
        o.replica_sets.iter().all(|rs| {
            rs.primary.is_some() && rs.members.iter().all(|m| m.state.is_steady() && m.healthy)
        }) && o.mongos.iter().all(|m| m.up)
    })
    .unwrap();
    assert!(ready - T0 <= 60_000, "{}", ready - T0);
    for rs in &f.truth().replica_sets {
        assert_eq!(rs.elections.len(), 1, "{}", rs.name);
        assert_eq!(rs.elections[0].cause, ElectionCause::Initiate);
        assert_eq!(rs.elections[0].term, 1);
    }
    f.teardown();
    wait_for(&mut f, 30_000, 100, |o| {
        o.replica_sets
            .iter()
            .flat_map(|rs| &rs.members)
            .all(|m| !m.process_up)
    })
    .unwrap();
    f.advance_to(f.now_ms() + 10_000);
    assert!(f.is_down());
    // Nothing is left to happen once everything is down.
    f.advance_to(f.now_ms() + 5_000);
    assert_eq!(f.next_event_ms(), None);
}

/// A scripted rolling restart, driven by observations, recording every observation along the way.
fn scripted_upgrade(f: &mut SimFleet, until: Millis, step: &mut u32) -> Vec<DeploymentObservation> {
    let mut log = Vec::new();
    while f.now_ms() < until {
        let o = f.observe();
        let shard = set(&o, "shard0");
        let m1 = shard.member("shard0-1").unwrap();
        match *step {
            0 => {
                f.apply(&Command::StopBalancer).unwrap();
                *step += 1;
            }
            1 if !o.balancer.unwrap().in_balancer_round => {
                f.apply(&stop("shard0", "shard0-1")).unwrap();
                *step += 1;
            }
            2 if !m1.process_up => {
                f.apply(&start("shard0", "shard0-1", K2)).unwrap();
                *step += 1;
            }
            3 if fresh_secondary(&o, "shard0", "shard0-1")
                && lag_of(&o, "shard0", "shard0-1") < 1_000 =>
            {
                f.apply(&step_down("shard0", "shard0-0", 1)).unwrap();
                *step += 1;
            }
            4 if shard.primary.as_deref() == Some("shard0-1") => {
                f.apply(&stop("shard0", "shard0-0")).unwrap();
                *step += 1;
            }
            _ => {}
        }
        log.push(o);
        let next = f.next_event_ms().unwrap_or(u64::MAX).min(f.now_ms() + 500);
        f.advance_to(next);
    }
    log
}

#[test]
fn same_seed_same_observations_different_seed_different_timings() {
    let run = |seed| {
        let mut f = sharded(seed);
        scripted_upgrade(&mut f, T0 + 180_000, &mut 0)
    };
    let a = run(42);
    assert_eq!(a, run(42));
    let b = run(43);
    assert_ne!(a, b);
    // The script got through the stepdown in both.
    for log in [&a, &b] {
        assert_eq!(
            set(log.last().unwrap(), "shard0").primary.as_deref(),
            Some("shard0-1")
        );
    }
}

#[test]
fn snapshot_restores_mid_restart_and_continues_identically() {
    let mut a = sharded(77);
    let mut step = 0;
    scripted_upgrade(&mut a, T0 + 20_000, &mut step);
    assert!(
        (1..5).contains(&step),
        "the snapshot is taken mid-upgrade ({step})"
    );
    let text = serde_json::to_string(&a.to_snapshot()).unwrap();
    let mut b = SimFleet::from_snapshot(&serde_json::from_str(&text).unwrap()).unwrap();
    assert_eq!(a, b);
    // The control plane was away for a while: in-flight work went on meanwhile.
    let later = a.now_ms() + 25_000;
    a.advance_to(later);
    b.advance_to(later);
    assert_eq!(a.observe(), b.observe());
    assert_eq!(
        scripted_upgrade(&mut a, T0 + 200_000, &mut step.clone()),
        scripted_upgrade(&mut b, T0 + 200_000, &mut step.clone())
    );
    assert_eq!(a.truth(), b.truth());

    assert!(matches!(
        SimFleet::from_snapshot(&serde_json::json!({"format": 2, "fleet": {}})),
        Err(SnapshotError::Format(2))
    ));
    assert!(matches!(
        SimFleet::from_snapshot(&serde_json::json!({"format": 1, "fleet": {"x": 1}})),
        Err(SnapshotError::Decode(_))
    ));
    let mut broken = a.to_snapshot();
    broken["fleet"]["sets"][0]["members"][0] = serde_json::json!(999);
    assert!(matches!(
        SimFleet::from_snapshot(&broken),
        Err(SnapshotError::Inconsistent(_))
    ));
}

/// A minimal but correct rolling upgrade, driven only by observations, that advances virtual time by
/// `next_event_ms` or a 1 s poll. Returns the number of observations it took.
fn careful_upgrade(f: &mut SimFleet, kernel: &str, delayed: Option<(&str, Millis)>) -> usize {
    let mut observations = 0;
    let give_up = f.now_ms() + 4 * 3_600_000;
    let mut poll = |f: &mut SimFleet| {
        assert!(
            f.now_ms() < give_up,
            "the upgrade is stuck: {:#?}",
            f.observe()
        );
        let next = f
            .next_event_ms()
            .unwrap_or(u64::MAX)
            .min(f.now_ms() + 1_000);
        f.advance_to(next);
        observations += 1;
        f.observe()
    };
    let ready = |o: &DeploymentObservation, rs: &str, node: &str| {
        let r = set(o, rs);
        let m = r.member(node).unwrap();
        m.healthy
            && m.started_ms.is_some_and(|s| m.state_since_ms >= s)
            && m.state.is_steady()
            && (m.state == MemberState::Arbiter
                || lag_of(o, rs, node)
                    <= 1_000 + delayed.filter(|d| d.0 == node).map_or(0, |d| d.1))
            && r.primary.is_some()
    };
    let mut o = f.observe();
    if o.balancer.is_some() {
        f.apply(&Command::StopBalancer).unwrap();
        while o.balancer.unwrap().in_balancer_round {
            o = poll(f);
        }
    }
    let names: Vec<String> = o.replica_sets.iter().map(|r| r.name.clone()).collect();
    let mut step_down_id = 0;
    for rs in &names {
        let nodes: Vec<String> = set(&o, rs)
            .members
            .iter()
            .map(|m| m.node_id.clone())
            .collect();
        loop {
            let r = set(&o, rs);
            let Some(target) = nodes.iter().find(|n| {
                r.member(n).unwrap().kernel_version.as_deref() != Some(kernel)
                    && r.primary.as_deref() != Some(n.as_str())
            }) else {
                break;
            };
            // I1: everyone else steady, healthy and observed so since their process started.
            if nodes.iter().all(|n| n == target || ready(&o, rs, n)) {
                f.apply(&stop(rs, target)).unwrap();
                while set(&o, rs).member(target).unwrap().process_up {
                    o = poll(f);
                }
                f.apply(&start(rs, target, kernel)).unwrap();
            }
            o = poll(f);
        }
        let old = set(&o, rs).primary.clone().unwrap();
        if set(&o, rs).member(&old).unwrap().kernel_version.as_deref() != Some(kernel) {
            step_down_id += 1;
            while nodes.iter().any(|n| !ready(&o, rs, n)) {
                o = poll(f);
            }
            while f.apply(&step_down(rs, &old, step_down_id)).is_err() {
                o = poll(f);
            }
            while set(&o, rs).primary.as_deref().is_none_or(|p| p == old) {
                o = poll(f);
            }
            f.apply(&stop(rs, &old)).unwrap();
            while set(&o, rs).member(&old).unwrap().process_up {
                o = poll(f);
            }
            f.apply(&start(rs, &old, kernel)).unwrap();
        }
        while nodes.iter().any(|n| !ready(&o, rs, n)) {
            o = poll(f);
        }
    }
    let mongos: Vec<String> = o.mongos.iter().map(|m| m.node_id.clone()).collect();
    for node in &mongos {
        f.apply(&Command::StopMongos {
            node_id: node.clone(),
        })
        .unwrap();
        while o
            .mongos
            .iter()
            .any(|m| &m.node_id == node && m.kernel_version.is_some())
        {
            o = poll(f);
        }
        // Wait for the process itself to exit before starting the new binary.
        while f
            .apply(&Command::StartMongos {
                node_id: node.clone(),
                kernel_version: kernel.into(),
            })
            .is_err()
        {
            o = poll(f);
        }
        while !o.mongos.iter().any(|m| &m.node_id == node && m.up) {
            o = poll(f);
        }
    }
    if o.balancer.is_some() {
        f.apply(&Command::StartBalancer).unwrap();
    }
    observations
}

#[test]
fn a_careful_rolling_upgrade_keeps_every_invariant_over_many_seeds() {
    let topologies = [
        fixtures::sharded(2, 2, K1),
        fixtures::replica_set(fixtures::psa("rs0", K1)),
        fixtures::replica_set(fixtures::five_members("rs0", K1)),
        fixtures::replica_set(fixtures::with_delayed("rs0", K1, 600)),
        fixtures::replica_set(fixtures::with_readonly("rs0", K1, 2)),
    ];
    for seed in 0..60 {
        for topo in &topologies {
            let mut f = SimFleet::new(topo, SimParams::default(), seed, T0);
            careful_upgrade(&mut f, K2, Some(("rs0-3", 600_000)));
            let t = f.truth();
            assert!(t.primary_stop_attempts.is_empty());
            for p in &t.processes {
                assert_eq!(
                    (p.stops_by_command, p.starts_by_command, p.failed_starts),
                    (1, 1, 0),
                    "seed {seed} {}",
                    p.node_id
                );
                assert_eq!(p.launches.last().unwrap().1, K2);
            }
            for rs in &t.replica_sets {
                assert_eq!(rs.elections.len(), 1, "seed {seed} {}", rs.name);
                assert_eq!(rs.elections[0].cause, ElectionCause::Handoff);
                assert_eq!(rs.max_out_by_commands, 1, "seed {seed} {}", rs.name);
                assert!(
                    rs.stops.iter().all(|s| s.others_unavailable.is_empty()),
                    "seed {seed}"
                );
                assert!(rs.longest_no_primary_ms(f.now_ms()) <= 3_600, "seed {seed}");
            }
            assert!(t.no_mongos.is_empty());
            if let Some(b) = f.observe().balancer {
                assert_eq!(b.mode, BalancerMode::Full);
            }
        }
    }
}

/// Cost probes, timed by the test harness's own "finished in" (the engine reads no clock):
/// `cargo test --release -p dds-engine --lib sim_cost_upgrades -- --ignored --nocapture --test-threads 1`.
#[test]
#[ignore]
fn sim_cost_upgrades() {
    let topo = fixtures::sharded(3, 3, K1);
    let seeds = 2_000u64;
    let mut observations = 0;
    let mut sim_ms = 0;
    for seed in 0..seeds {
        let mut f = SimFleet::new(&topo, SimParams::default(), seed, T0);
        observations += careful_upgrade(&mut f, K2, None);
        sim_ms += f.now_ms() - T0;
    }
    eprintln!(
        "{seeds} upgrades of cfg + 3 shards (PSH) + 3 mongos: {} observe/advance rounds and {} s of virtual time per upgrade",
        observations as u64 / seeds,
        sim_ms / seeds / 1_000
    );
}

/// `cargo test --release -p dds-engine --lib sim_cost_observe -- --ignored --test-threads 1`: one million
/// observations of that cluster.
#[test]
#[ignore]
fn sim_cost_observe() {
    let f = SimFleet::new(&fixtures::sharded(3, 3, K1), SimParams::default(), 1, T0);
    for _ in 0..1_000_000 {
        std::hint::black_box(f.observe());
    }
}

#[test]
fn extreme_times_and_parameters_do_not_break_the_fleet() {
    let params = SimParams {
        election_timeout_ms: u64::MAX,
        stop_min_ms: u64::MAX,
        stop_max_ms: 0,
        catch_up_rate_max_permille: u64::MAX,
        heartbeat_interval_ms: 0,
        ..SimParams::default()
    };
    let mut f = SimFleet::new(&fixtures::sharded(2, 2, K1), params, 1, u64::MAX - 5);
    assert!(f.params().election_timeout_ms <= SimParams::MAX_DURATION_MS);
    f.arm_fault(Fault::SlowStart {
        node_id: "shard0-1".into(),
        extra_ms: u64::MAX,
    })
    .unwrap();
    f.arm_fault(Fault::Crash {
        node_id: "shard1-1".into(),
        at_ms: u64::MAX,
        recover_after_ms: Some(u64::MAX),
    })
    .unwrap();
    f.apply(&stop("shard0", "shard0-1")).unwrap();
    f.apply(&step_down("shard1", "shard1-0", 1)).unwrap();
    f.advance_to(u64::MAX);
    // Time has ended: the shutdown never completes.
    assert!(f.apply(&start("shard0", "shard0-1", K2)).is_err());
    f.advance_to(u64::MAX);
    let o = f.observe();
    assert_eq!(o.replica_sets.len(), 3);
    assert!(SimFleet::from_snapshot(&f.to_snapshot()).is_ok());
    let mut bad = f.to_snapshot();
    bad["fleet"]["params"]["stop_max_ms"] = serde_json::json!(u64::MAX);
    assert!(matches!(
        SimFleet::from_snapshot(&bad),
        Err(SnapshotError::Inconsistent(_))
    ));
}

#[test]
fn the_fcv_is_kept_per_set_raised_one_major_at_a_time_and_gates_binaries() {
    const K42: &str = "mongodb_20230421_4.2.16";
    const K44: &str = "mongodb_20240119_4.4.19";
    const K50: &str = "5.0.22-20240110161145_1";
    let fcv = |f: &SimFleet| set(&f.observe(), "rs0").fcv.clone();
    let set_fcv = |v: &str| Command::SetFeatureCompatibilityVersion {
        replica_set: Some("rs0".into()),
        version: v.into(),
    };
    let mut f = fleet(fixtures::pss("rs0", K42), 7);
    wait_for(&mut f, 120_000, 100, |o| set(o, "rs0").primary.is_some()).unwrap();
    assert_eq!(fcv(&f).as_deref(), Some("4.2"));
    let p = primary(&f, "rs0").unwrap();
    let others: Vec<String> = set(&f.observe(), "rs0")
        .members
        .iter()
        .map(|m| m.node_id.clone())
        .filter(|n| *n != p)
        .collect();
    let (s1, s2) = (others[0].as_str(), others[1].as_str());
    // A binary two majors above the FCV starts, then fails (as mongod refuses the data files).
    f.apply(&stop("rs0", s1)).unwrap();
    wait_for(&mut f, 20_000, 100, |o| {
        !set(o, "rs0").member(s1).unwrap().process_up
    })
    .unwrap();
    f.apply(&start("rs0", s1, K50)).unwrap();
    wait_for(&mut f, 120_000, 100, |o| {
        !set(o, "rs0").member(s1).unwrap().process_up
    })
    .expect("a 5.0 binary on 4.2 data fails to start");
    assert_eq!(f.truth().process(s1).unwrap().failed_starts, 1);
    f.apply(&start("rs0", s1, K44)).unwrap();
    wait_for(&mut f, 120_000, 100, |o| fresh_secondary(o, "rs0", s1)).unwrap();
    // Not while a member still runs 4.2; never two majors at once; the same version is a no-op.
    assert!(f.apply(&set_fcv("4.4")).is_err());
    assert!(f.apply(&set_fcv("5.0")).is_err());
    f.apply(&set_fcv("4.2")).unwrap();
    assert!(f.truth().fcv_changes.is_empty());
    restart(&mut f, "rs0", s2, K44);
    f.apply(&step_down("rs0", &p, 1)).unwrap();
    wait_for(&mut f, 60_000, 100, |o| {
        set(o, "rs0").primary.as_deref().is_some_and(|q| q != p)
    })
    .unwrap();
    restart(&mut f, "rs0", &p, K44);
    f.apply(&set_fcv("4.4")).unwrap();
    assert_eq!(fcv(&f).as_deref(), Some("4.4"));
    assert_eq!(f.truth().fcv_changes.len(), 1);
    // On 4.4 data a 4.2 binary no longer starts.
    let now_primary = primary(&f, "rs0").unwrap();
    let s = [s1, s2, p.as_str()]
        .into_iter()
        .find(|n| *n != now_primary)
        .unwrap()
        .to_string();
    f.apply(&stop("rs0", &s)).unwrap();
    wait_for(&mut f, 20_000, 100, |o| {
        !set(o, "rs0").member(&s).unwrap().process_up
    })
    .unwrap();
    f.apply(&start("rs0", &s, K42)).unwrap();
    wait_for(&mut f, 120_000, 100, |o| {
        !set(o, "rs0").member(&s).unwrap().process_up
    })
    .expect("a 4.2 binary on 4.4 data fails to start");
    // The FCV survives a snapshot.
    let g = SimFleet::from_snapshot(&f.to_snapshot()).unwrap();
    assert_eq!(fcv(&g).as_deref(), Some("4.4"));
}
