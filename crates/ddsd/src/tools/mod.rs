//! The tools wing: measurement and load, run as `ddsd bench …`.
//!
//! - `bench`: API latency and memory with many instances loaded;
//! - `bench_api`, `loadgen`: signed load against a server (throughput, latency percentiles,
//!   error codes, RSS);
//! - `soak`: minutes of load with kills and restarts, then end-state checks.
//!
//! May use: the signed RPC client and the CLI's failure type. The server never depends on them.

pub mod bench;
pub mod bench_api;
pub mod loadgen;
pub mod soak;
