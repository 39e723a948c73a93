//! The rolling workflows, as pure state machines: `state + observation + now → effects`.
//!
//! - [`config`]: [`UpgradeConfig`], every timeout and limit of a rolling operation.
//! - [`preflight`]: I9, what must hold before anything is touched, as typed [`PreflightError`]s that map to
//!   vendor error codes.
//! - [`gates`]: the per-member health gates (I1 before a stop, I8 after a start, stepdown readiness).
//! - [`operation`]: [`RollingOperation`], the upgrade (`UpgradeDBInstanceKernelVersion`) and restart
//!   (`RestartDBInstance`) state machine — balancer handling (I6), order (I5), one member at a time per
//!   replica set (I1), primary last via a non-forced stepdown (I2, I3, I7), exactly one restart per process
//!   (I4), resume from a fresh observation (I11), and the failure policy (§4.2).
//! - `check`: `check::DecisionAudit`, I1–I12 re-derived independently and held against every step.
//! - `harness`: the seeded simulation — a scenario per seed (topology, operation, fault of F1–F17, crash
//!   points), driven against `sim::SimFleet` on virtual time with every step audited.
//!
//!   `check` and `harness` exist for tests: they are compiled only for this crate's tests and under the
//!   `testkit` feature, which the test suites that drive them enable as a dev-dependency.
//! - [`report`]: live [`Progress`], the final [`Report`], and the [`plan_steps`] dry run.
//! - [`provision`]: create (`CreateDBInstance`) and delete (`DeleteDBInstance`) of a whole deployment, the
//!   same kind of state machine on a smaller scale, and [`provision::deployment_ready`], when a deployment
//!   serves.
//!
//! Nothing here reads a clock: `now_ms` comes in with every call, which is what lets the simulation tests run
//! thousands of upgrades on virtual time and replay any of them from its seed.

#[cfg(any(test, feature = "testkit"))]
pub mod check;
pub mod config;
pub mod gates;
#[cfg(any(test, feature = "testkit"))]
pub mod harness;
pub mod operation;
pub mod preflight;
pub mod provision;
pub mod report;

pub use config::UpgradeConfig;
pub use operation::{
    Decision, ElectionCause, Failure, FailureReason, MemberStep, Outcome, Phase, RestartScope,
    RollingKind, RollingOperation, UpgradeOperation,
};
pub use preflight::PreflightError;
pub use report::{
    plan_restart_steps, plan_restart_steps_observed, plan_steps, plan_steps_observed, PlannedStep,
    Progress, Report, StepPlan,
};

#[cfg(test)]
mod tests;
