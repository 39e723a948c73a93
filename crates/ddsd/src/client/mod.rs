//! The client wing: the operator CLI.
//!
//! - `cli`: the clap definitions, `serve`'s flags and the dispatch of client subcommands;
//! - `instances`: `call`, `kernel publish`, `instance create`;
//! - `cli_ops`: the rolling operations — `upgrade`, `restart`, `plan`, `watch`, `operations`;
//! - `events`: `events`, the scheduled O&M events (list, move, start now, cancel);
//! - `faults`: `fault arm|list|clear` on the simulated data plane;
//! - `profile`: where client subcommands find endpoint, AccessKey and signature;
//! - `watch`: live progress of an operation (bars on a terminal, plain lines otherwise);
//! - `demo`: `serve --demo`, a client of its own server that sets up a ready fleet;
//! - the signed RPC client is the `ddsd-client` crate.
//!
//! May use: the signed RPC client and the server's plain configuration types. Must not be used
//! by `crate::server`.

pub mod cli;
pub mod cli_ops;
pub mod demo;
pub mod events;
pub mod faults;
pub mod instances;
pub mod profile;
pub mod watch;
