//! `ddsd` (library half of the binary): a self-hosted control plane speaking the ApsaraDB for MongoDB (`Dds`, `2015-12-01`) API.
//!
//! Layout:
//! - `cli`: clap command line (`serve`, `call`, `upgrade`, `restart`, `plan`, `fault`, `kernel publish`,
//!   `instance create`, `bench`); `cli_ops`: the upgrade/restart/plan/fault subcommands; `watch`: their
//!   live progress display (bars on a terminal, plain lines otherwise); `profile`: where client
//!   subcommands find endpoint, AccessKey and signature;
//! - `client`: a signed RPC client (V3 or V1) for the CLI and the benchmark;
//! - `demo`: `serve --demo`, the ready demo fleet and its one upgrade command;
//! - `metrics`: `GET /metrics`, the Prometheus text format;
//! - `bench`: `ddsd bench`, API latency and memory with many instances loaded;
//! - `bench_api`, `loadgen`, `soak`: `ddsd bench api` (signed load: throughput, latency percentiles,
//!   error codes, RSS) and `ddsd bench soak` (minutes of load with kills and restarts, end-state checks);
//! - `config`: defaults < TOML < `DDSD_*` env < flags;
//! - `logging`: tracing to stderr, text or JSON;
//! - `limits`: every bound on client input and load (settings + the in-flight cap and per-key rate);
//! - `keys`: the admin AccessKey in the data dir (0600) and the key store the verifier reads;
//! - `server`: the axum endpoint — body limit, `acs_rpc::verify`, version check, action dispatch,
//!   envelopes, RequestId span, graceful shutdown;
//! - `actions`: the action table (`Action` name → handler) and one module per action family;
//! - `store`: durable state (instances, operations, idempotency, data-plane snapshots) behind a trait,
//!   with the embedded SQLite implementation;
//! - `plane`: the data plane the runtime drives (observe, execute, provision), by default a simulated
//!   fleet per instance on scaled real time;
//! - `runtime`: the task that claims unfinished operations and drives them to the end, resuming after
//!   a crash.
//!
//! The binary (`src/main.rs`) only calls [`cli::run`]; the modules are a library so integration
//! tests and tools can build the router in-process.

pub mod actions;
pub mod bench;
pub mod bench_api;
pub mod cli;
pub mod cli_ops;
pub mod client;
pub mod config;
pub mod demo;
pub mod keys;
pub mod limits;
pub mod loadgen;
pub mod logging;
pub mod metrics;
pub mod plane;
pub mod profile;
pub mod runtime;
pub mod server;
pub mod soak;
pub mod store;
pub mod tls;
pub mod watch;
pub mod wire;
