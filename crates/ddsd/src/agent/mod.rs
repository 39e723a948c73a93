//! The host agent wing: `ddsd agent`, the small process on every MongoDB host that does what the
//! wire protocol cannot — stop a `mongod`/`mongos` and start it on another binary.
//!
//! - `api`: the protocol (actions, answers, error codes, the [`api::HostBackend`] trait, the
//!   signed [`api::AgentClient`]); the server's `mongodb` data plane uses this module only.
//! - `service`: the signed RPC endpoint over any backend, with the command log and the
//!   per-process gate; `ddsd sim-fleet` serves it over simulated hosts.
//! - `child`, `systemd`: the two backends of a real host (child processes, systemd units), over
//!   what they share in `host` (processes, kernels, command lines, the `shutdown` command, the
//!   state file).
//! - `config`: `agent.toml`; [`run`]: `ddsd agent --config agent.toml`.
//! - `files`: the agent's small private state files.
//!
//! May use: `acs-rpc`, `ddsd-client` (the client half of the protocol), and within the crate only
//! `crate::agent`. Must not use the server, the client or the tools (checked by
//! `scripts/check-layering.sh`).

pub mod api;
pub mod child;
pub mod config;
mod files;
pub mod host;
pub mod service;
pub mod systemd;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use tracing::info;

use crate::agent::api::HostBackend;
use crate::agent::config::{AgentConfig, Supervisor};

/// `ddsd agent`: the host agent.
#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// The agent's configuration (TOML; see docs/agent.md).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

/// Runs the agent until SIGTERM/SIGINT. The managed processes keep running when it stops: an
/// agent restart must never restart MongoDB.
pub fn run(args: AgentArgs) -> ExitCode {
    init_logging();
    let config = match config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ddsd agent: {e:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ddsd agent: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ddsd agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

async fn serve(config: AgentConfig) -> anyhow::Result<()> {
    let shutdown = shutdown_signal()?;
    let host_name = config.host.host_name.clone();
    let backend: Arc<dyn HostBackend> = match config.supervisor {
        Supervisor::Child => Arc::new(child::ChildBackend::new(config.host)?),
        Supervisor::Systemd => Arc::new(systemd::SystemdBackend::new(config.host, config.systemd)?),
    };
    let service = service::AgentService::new(backend, config.keys, config.service)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let local = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "ddsd agent listening on http://{local}")?;
        out.flush()?;
    }
    if !local.ip().is_loopback() {
        info!(listen = %local, "listening beyond loopback, as configured");
    }
    info!(listen = %local, host = %host_name, supervisor = ?config.supervisor, "ddsd agent serving");
    service.serve(listener, shutdown).await;
    info!("ddsd agent stopped; the managed processes keep running");
    Ok(())
}

/// Installed before the listening line, so a SIGTERM right after it is a clean stop.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => info!("SIGTERM received, stopping"),
            _ = int.recv() => info!("SIGINT received, stopping"),
        }
    })
}
