//! Create and delete: their state machines are pure and live in `dds_engine::workflow::provision` (the
//! phases, the deadlines and retry policy, [`deployment_ready`]). What the runtime adds is the I/O, and that
//! is shared with every other kind: [`super::operation`] wraps the two machines into an `OperationState`, and
//! the driver loop in [`super`] persists every transition and executes the plane effects
//! (`provision` / `deprovision` on the `DataPlane`), feeding each result back.
//!
//! Kept as a module so the readiness check stays reachable at its old path for the plane's tests.

pub use dds_engine::workflow::provision::deployment_ready;
