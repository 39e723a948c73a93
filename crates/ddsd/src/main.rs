//! The `ddsd` binary: parses the command line and hands it to its wing (see `lib.rs`): `serve` to
//! the server, `bench` to the tools, `agent` to the host agent, everything else to the client.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ddsd::client::cli::client_command;

/// mimalloc instead of glibc malloc: under concurrent load glibc's allocator (malloc, free and
/// `malloc_consolidate`) took about a quarter of the server's CPU time in a signed
/// `DescribeDBInstanceAttribute` benchmark (BENCHMARKS.md, "API load").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "ddsd",
    version,
    about = "A self-hosted control plane speaking the ApsaraDB for MongoDB (Dds 2015-12-01) API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    #[command(flatten)]
    Client(ddsd::client::cli::Command),
    /// Load instances into a fresh ddsd and measure API latency and memory.
    Bench(ddsd::tools::bench::BenchArgs),
    /// Simulated MongoDB deployments in a process of their own: members on wire ports, hosts
    /// behind the agent protocol (what `serve --plane mongodb` imports and drives).
    SimFleet(ddsd::fleet::FleetArgs),
    /// Run the host agent: stops and starts this host's mongod/mongos processes for ddsd.
    Agent(ddsd::agent::AgentArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Client(ddsd::client::cli::Command::Serve(args)) => {
            let demo = args
                .demo
                .then(|| Box::new(ddsd::client::demo::start) as ddsd::server::OnListening);
            ddsd::server::run(&args.overrides(), demo)
        }
        Command::Client(command) => ddsd::client::cli::run(command),
        Command::Bench(args) => client_command(|| ddsd::tools::bench::run(args)),
        Command::SimFleet(args) => ddsd::fleet::run(args),
        Command::Agent(args) => ddsd::agent::run(args),
    }
}
