//! ddsd: a self-hosted control plane speaking the ApsaraDB for MongoDB (`Dds`, 2015-12-01) API.
//!
//! - [`store`]: durable state (instances, operations, idempotency, data-plane snapshots) behind a trait, with the
//!   embedded SQLite implementation.
pub mod store;
