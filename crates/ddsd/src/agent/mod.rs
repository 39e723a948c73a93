//! The host agent wing: `ddsd agent`, the small process on every MongoDB host that does what the
//! wire protocol cannot — stop a `mongod`/`mongos` and start it on another binary.
//!
//! - `api`: the protocol (actions, answers, error codes, the [`api::HostBackend`] trait, the
//!   signed [`api::AgentClient`]); the server's `mongodb` data plane uses this module only.
//!
//! May use: `acs-rpc`, `ddsd-client` (the client half of the protocol). Must not use the server,
//! the client, the tools or the fleet.

pub mod api;
