//! The `ddsd` binary; everything lives in the library (see `lib.rs`).

fn main() -> std::process::ExitCode {
    ddsd::cli::run()
}
