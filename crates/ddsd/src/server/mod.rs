//! The server wing: everything `ddsd serve` runs.
//!
//! - `http`: serve wiring, the HTTP listener and the request pipeline;
//! - `console`: the web console at `/console` (sessions, CSRF, the page, live progress), a client
//!   of the same action table through `http::call_action`;
//! - `config`: defaults < TOML < `DDSD_*` env < overrides given as plain values;
//! - `keys`, `limits`, `tls`, `metrics`, `logging`: the admin key and key store, every bound on
//!   input and load, HTTPS, `GET /metrics`, tracing to stderr;
//! - `actions`: the action table and one module per action family;
//! - `runtime`: the task that drives unfinished operations to the end;
//! - `plane`: the data plane the runtime drives (the simulated fleet by default);
//! - `store`: durable state behind a trait, with the embedded SQLite implementation;
//! - `wire`: what a simulated member answers on MongoDB's wire protocol (built on `mongo-wire`
//!   and `mongo-docstore`).
//!
//! May use: `acs-rpc`, `dds-engine`, `mongo-wire`, `mongo-docstore`, its own modules. Must not use `crate::client` or
//! `crate::tools` (checked by `scripts/check-layering.sh`); the binary and the tests call it.

pub mod actions;
pub mod config;
pub mod console;
pub mod http;
pub mod keys;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod plane;
pub mod runtime;
pub mod store;
pub mod tls;
pub mod wire;

pub use http::*;

/// `ddsd serve`: resolves the configuration, starts logging and the runtime, serves until a signal.
/// `on_listening` (the demo fleet, when asked for) runs once the listener is bound.
pub fn run(
    overrides: &config::ConfigOverrides,
    on_listening: Option<OnListening>,
) -> std::process::ExitCode {
    use std::process::ExitCode;
    let config = match config::Config::resolve(overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ddsd: {e:#}");
            return ExitCode::from(2);
        }
    };
    logging::init(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ddsd: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config, on_listening)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("ddsd stopped: {e:#}");
            eprintln!("ddsd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
