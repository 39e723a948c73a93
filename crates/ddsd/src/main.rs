//! The `ddsd` binary; everything lives in the library (see `lib.rs`).

/// mimalloc instead of glibc malloc: under concurrent load glibc's allocator (malloc, free and
/// `malloc_consolidate`) took about a quarter of the server's CPU time in a signed
/// `DescribeDBInstanceAttribute` benchmark (BENCHMARKS.md, "API load").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    ddsd::client::cli::run()
}
