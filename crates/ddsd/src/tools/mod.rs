//! The tools wing: measurement and load, run as `ddsd bench …`.
//!
//! - `bench`: API latency and memory with many instances loaded;
//! - `bench_api`, `loadgen`: signed load against a server (throughput, latency percentiles,
//!   error codes, RSS);
//! - `bench_wire`: the simulated members through the Rust MongoDB driver (latency, footprint,
//!   failover windows);
//! - `bench_plane`: the `mongodb` data plane over `ddsd sim-fleet` against the in-process
//!   simulation (upgrade duration, cost of an observation);
//! - `soak`: minutes of load with kills and restarts, then end-state checks.
//!
//! May use: the signed RPC client, the MongoDB driver and the CLI's failure type. The server never depends on them.

pub mod bench;
pub mod bench_api;
pub mod bench_plane;
pub mod bench_wire;
pub mod loadgen;
pub mod soak;
