//! The host agent wing: `ddsd agent`, the small process on every MongoDB host that does what the
//! wire protocol cannot — stop a `mongod`/`mongos` and start it on another binary.
//!
//! - `api`: the protocol (actions, answers, error codes, the [`api::HostBackend`] trait, the
//!   signed [`api::AgentClient`]); the server's `mongodb` data plane uses this module only.
//! - `service`: the signed RPC endpoint over any backend, with the command log and the
//!   per-process gate; `ddsd sim-fleet` serves it over simulated hosts.
//! - `files`: the agent's small private state files.
//!
//! May use: `acs-rpc`, `ddsd-client` (the client half of the protocol). Must not use the server,
//! the client, the tools or the fleet.

pub mod api;
pub mod child;
mod files;
pub mod host;
pub mod service;
