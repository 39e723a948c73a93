//! The `ddsd` binary: parses the command line and hands it to its wing (see `lib.rs`).

use std::process::ExitCode;

use clap::Parser as _;
use ddsd::client::cli::{client_command, Cli, Command};

/// mimalloc instead of glibc malloc: under concurrent load glibc's allocator (malloc, free and
/// `malloc_consolidate`) took about a quarter of the server's CPU time in a signed
/// `DescribeDBInstanceAttribute` benchmark (BENCHMARKS.md, "API load").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve(args) => {
            let demo = args
                .demo
                .then(|| Box::new(ddsd::client::demo::start) as ddsd::server::OnListening);
            ddsd::server::run(&args.overrides(), demo)
        }
        Command::Bench(args) => client_command(|| ddsd::tools::bench::run(args)),
        command => ddsd::client::cli::run(command),
    }
}
