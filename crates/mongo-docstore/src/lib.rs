//! A replicated MongoDB document store for simulated members: databases, collections and documents,
//! MongoDB's query, update, projection and sort semantics, a subset of aggregation, cursors, and an
//! oplog with one view per member so that what a secondary reads lags as its replication does and an
//! election can roll back writes the new primary never received.
//!
//! Pure and synchronous: no I/O, no clock, no threads. The caller says what time it is and how far
//! each member has replicated (ddsd's simulation decides that). Product-agnostic: it knows nothing of
//! ddsd, the wire protocol, or the vendor API; the wire server and ddsd's simulated plane use it.
//! Every input is bounded ([`Limits`]); bad input is an error with mongod's code, never a panic.

pub mod aggregate;
pub mod args;
pub mod catalog;
pub mod compare;
pub mod cursor;
pub mod error;
pub mod filter;
pub mod path;
pub mod project;
pub mod read;
pub mod replica;
pub mod update;
pub mod write;

pub use catalog::{Catalog, Change, Limits};
pub use cursor::Cursors;
pub use error::{Code, StoreError};
pub use read::read_command;
pub use replica::{OpTime, ReplicaStore, WriteBatch};
pub use write::{is_write_command, write_command};
