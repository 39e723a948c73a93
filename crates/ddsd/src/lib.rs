//! ddsd: a self-hosted control plane speaking the ApsaraDB for MongoDB (`Dds`, 2015-12-01) API.
//!
//! - [`store`]: durable state (instances, operations, idempotency, data-plane snapshots) behind a trait, with the
//!   embedded SQLite implementation.
//! - [`plane`]: the data plane the runtime drives (observe, execute, provision), by default a simulated fleet per
//!   instance on scaled real time.
//! - [`runtime`]: the task that claims unfinished operations and drives them to the end, resuming after a crash.
pub mod plane;
pub mod runtime;
pub mod store;
