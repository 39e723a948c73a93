//! `dds-engine`: ddsd's domain and workflows, with no I/O.
//!
//! - [`model`]: instances, topologies, members and the vendor's enumerations, as plain serde data.
//! - [`catalog`]: the kernel versions of each engine version, their order and release notes.
//! - [`build`]: instances and topologies from create parameters, vendor-style ids, test topologies.
//! - [`plane`]: the data-plane contract — observations of a deployment and the commands the orchestrator issues.
//! - [`sim`]: the simulated MongoDB deployment (virtual time, faults, ground truth), the default data plane.
//! - [`workflow`]: the rolling upgrade / restart state machine, its gates, invariant audit and seeded
//!   simulation harness; the create / delete state machines.
//!
//! Nothing here reads a clock or an unseeded random source: time (`now_ms`) and seeds are inputs, which is what
//! makes a seeded simulation replay exactly.
//!
//! The `testkit` feature adds the test support (`build::fixtures`, `workflow::check`, `workflow::harness`);
//! it is on for this crate's own tests and for the test suites that enable it as a dev-dependency, off in a
//! normal build.

pub mod build;
pub mod catalog;
pub mod model;
pub mod plane;
pub mod sim;
pub mod workflow;
