//! The rolling operation: one state machine for `UpgradeDBInstanceKernelVersion` (every process onto a target
//! kernel) and `RestartDBInstance` (every process in scope restarted once on its own kernel).
//!
//! `step(observation, now)` → [`Decision`]; `on_result(command, result, now)` records what the plane answered.
//! The state is plain serde data: the runtime persists it after every `step` (before executing the commands)
//! and after every `on_result`. After a crash it reloads the state and calls `step` with a fresh observation;
//! every in-flight step is re-derived from what is observed (I11):
//!
//! | recorded step        | observed                          | action                                   |
//! |----------------------|-----------------------------------|------------------------------------------|
//! | `Stopping`           | process down                      | start it on the target                   |
//! | `Stopping`           | up, on target / new process       | gate it — never stop it again (I4)       |
//! | `Stopping`, unacked  | up, same process                  | re-check the pre-stop gate, stop again   |
//! | `Starting`           | up                                | gate it                                  |
//! | `Starting`, unacked  | down                              | start again (the plane answers repeats)  |
//! | `SteppingDown`       | another primary                   | the old primary is now an ordinary member|
//! | `SteppingDown`, unacked | still primary                  | repeat with the same `step_down_id`      |
//!
//! Why a rolling *restart* needs more than "observed kernel = target" as its idempotency key: the kernel does
//! not change. The key is the durable per-member step record plus the process start time the plane reports
//! (`started_ms`): the record is written before the stop is executed, together with the start time of the
//! process about to be stopped, so "a different process is running now" proves the restart happened even if
//! the acknowledgement was lost. Without a start time from the plane the record alone still suffices, because
//! nothing but this operation starts a member it recorded as `Stopping`.
//!
//! Order and pacing: balancer (record its mode once, before `balancerStop` runs; wait for no round) → config
//! servers → the first shard alone (canary) → the other shards in order, up to `max_parallel_shards` at a
//! time (default 8; the next starts when one finishes) → mongos in waves of `mongos_batch` (never all of
//! them) → balancer back to the recorded mode. Inside a set, one member at a time in configuration order,
//! the primary re-read before every choice and restarted last; a set whose restarted member outranks the
//! primary waits (bounded) for the priority takeover, so the election is counted here and the next set does
//! not start in the middle of it.
//!
//! Failure (§4.2): the first member that misses a deadline ends the rollout. Nothing new is started anywhere;
//! a member already out of service in another set (parallel shards) is brought back, never left down; a
//! failed member started on the new kernel is put back on its previous kernel once (only if stopping it keeps
//! I1); a stepdown in flight is abandoned with the old primary still running; the balancer is restored; the
//! operation ends `Failed` with the member and the reason.
//!
//! Layout: `state` holds the persisted records (the serialized format), `plan` builds an operation from
//! the instance record, `step` is the phase loop with the order across replica sets, `replica_set` and
//! `member` drive one set and one mongod, `mongos` and `balancer` their phases, `observe` the
//! bookkeeping from observations, `results` the plane's answers, and `context` the per-step scratch they
//! share.

mod balancer;
mod context;
mod fcv;
mod member;
mod mongos;
mod observe;
mod plan;
mod replica_set;
mod results;
mod state;
mod step;

pub(crate) use plan::{full_scope, resolve_scope};
pub use state::{
    BalancerTrack, Decision, ElectionCause, ElectionRecord, Failure, FailureReason, FcvTrack,
    MemberStep, MongosTrack, Outcome, Phase, PrimaryStage, ProcessRecord, RestartScope,
    RevertOutcome, RevertStage, RollingKind, RollingOperation, RsStatus, RsTrack, StartBlocked,
    UpgradeOperation,
};
