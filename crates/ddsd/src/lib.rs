//! `ddsd` (library half of the binary): a self-hosted control plane speaking the ApsaraDB for MongoDB (`Dds`, `2015-12-01`) API.
//!
//! Three wings, with one-way arrows (checked by `scripts/check-layering.sh`):
//! - `server/`: `ddsd serve` — serve wiring, config, the HTTP listener and request pipeline, keys,
//!   limits, TLS, metrics, logging; `server/actions` (the action table), `server/runtime` (drives
//!   operations), `server/plane` (the data plane), `server/store` (durable state);
//! - `client/`: the operator CLI — clap definitions, one module per subcommand family, profiles,
//!   the progress display, the demo fleet (a client of its own server);
//! - `tools/`: `ddsd bench …` — benchmarks, API load generator, soak.
//!
//! The server never uses the client or the tools. The binary (`src/main.rs`) only calls
//! [`client::cli::run`]; the modules are a library so integration tests and tools can build the
//! router in-process.

pub mod agent;
pub mod client;
pub mod fleet;
pub mod server;
pub mod tools;
