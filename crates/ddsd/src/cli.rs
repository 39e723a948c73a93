//! Command line: `ddsd <subcommand>`. Each subcommand resolves its configuration, sets up
//! logging and runs; `main` only maps the outcome to an exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, LogFormat};

#[derive(Debug, Parser)]
#[command(
    name = "ddsd",
    version,
    about = "A self-hosted control plane speaking the ApsaraDB for MongoDB (Dds 2015-12-01) API"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the Dds RPC API over HTTP.
    Serve(ServeArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "DDSD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on (IP:PORT; port 0 picks a free one). Default 127.0.0.1:8080.
    #[arg(long, env = "DDSD_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Directory for the admin key and state. Default ./data.
    #[arg(long, env = "DDSD_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Region this endpoint serves. Default cn-hangzhou.
    #[arg(long, env = "DDSD_REGION", value_name = "REGION")]
    pub region: Option<String>,
    /// Log line format on stderr. Default text.
    #[arg(long, env = "DDSD_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let config = match Config::resolve(&args) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("ddsd: {e:#}");
                    return ExitCode::from(2);
                }
            };
            crate::logging::init(config.log_format);
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
            match runtime.block_on(crate::server::serve(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("ddsd stopped: {e:#}");
                    eprintln!("ddsd: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
