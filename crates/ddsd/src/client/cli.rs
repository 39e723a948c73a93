//! Command line: `ddsd <subcommand>`. Each subcommand resolves its configuration, sets up
//! logging and runs; `main` only maps the outcome to an exit code.
//!
//! - `serve`: the server (`--demo`: with a ready demo fleet, see `demo.rs`);
//! - `call ACTION [Name=Value ...]`: any action through the signed client, pretty JSON (or
//!   `--format xml`) on stdout (`instances.rs`, with `kernel publish` and `instance create`);
//! - `upgrade`, `engine-upgrade`, `restart`, `switch-ha`, `modify-spec`, `plan`, `watch`, `operations`: the
//!   rolling operations
//!   (`cli_ops.rs`);
//!   `fault arm|list|clear`: faults on demand (`faults.rs`);
//! - `kernel publish`: the `DdsdPublishKernelVersion` extension (admin key);
//! - `instance create`: `CreateDBInstance` / `CreateShardingDBInstance`, or with `--kernel` the
//!   `DdsdCreate*` extensions (admin key); `--wait` polls until the instance is `Running`;
//! - `bench` (added by the binary): the tools' benchmarks (`tools/`, BENCHMARKS.md).
//!
//! Client subcommands find the endpoint, AccessKey and signature scheme as `profile.rs` says
//! (flags, `DDSD_ENDPOINT`, a profile file, `ALIBABA_CLOUD_ACCESS_KEY_ID`/`_SECRET`, a data dir's
//! admin key). An API error prints `Code: Message` and `RequestId: … (HTTP n)` on stderr and exits 1;
//! a usage, configuration or connection problem exits 2; a waited-for operation that failed exits 3,
//! and giving up waiting exits 4.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::client::instances::{self, InstanceCommand, KernelCommand};
use crate::server::config::{ConfigOverrides, LogFormat};

/// The command line without the tools' `bench` (the binary adds it: the client wing does not
/// depend on the tools).
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
    /// Call any action (signed), print the JSON response.
    Call(crate::client::instances::CallArgs),
    /// Kernel catalog administration (operator extensions).
    #[command(subcommand)]
    Kernel(crate::client::instances::KernelCommand),
    /// Instances.
    #[command(subcommand)]
    Instance(crate::client::instances::InstanceCommand),
    /// Upgrade an instance to the newest kernel of its engine version; --wait shows live progress.
    Upgrade(crate::client::cli_ops::UpgradeArgs),
    /// Major version upgrade (UpgradeDBInstanceEngineVersion) by one step, e.g. 4.2 -> 4.4: every
    /// process restarted once onto the new major, the feature compatibility version raised last;
    /// --wait shows live progress.
    EngineUpgrade(crate::client::cli_ops::EngineUpgradeArgs),
    /// Rolling restart of an instance (or one shard / config server / mongos); --wait shows progress.
    Restart(crate::client::cli_ops::RestartArgs),
    /// Planned primary switch (SwitchDBInstanceHA) of a replica set, or one shard / config server of
    /// a sharded cluster (--node-id); --wait shows progress and the new primary.
    SwitchHa(crate::client::cli_ops::SwitchHaArgs),
    /// Class and/or storage change (ModifyDBInstanceSpec, or ModifyNodeSpec with --node-id): a
    /// rolling restart onto the new class; --wait shows progress.
    ModifySpec(crate::client::cli_ops::ModifySpecArgs),
    /// Dry run of an upgrade (or --restart): ordered steps, expected elections, estimated duration.
    Plan(crate::client::cli_ops::PlanArgs),
    /// Follow an upgrade or restart already under way (default: the instance's newest operation).
    Watch(crate::client::cli_ops::WatchArgs),
    /// The instance's recent operations, newest first, with their outcomes.
    Operations(crate::client::cli_ops::OperationsArgs),
    /// Scheduled O&M events (minor-version rollouts): list them; move, start now or cancel some.
    Events(crate::client::events::EventsArgs),
    /// Faults on demand in the simulated data plane (admin key).
    #[command(subcommand)]
    Fault(crate::client::faults::FaultCommand),
}

/// Where and as whom a client subcommand calls (the order is in `profile.rs`).
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// ddsd endpoint, http://HOST:PORT [default: the profile's, else http://127.0.0.1:8080].
    #[arg(long, env = "DDSD_ENDPOINT")]
    pub endpoint: Option<String>,
    /// AccessKeyId (with --access-key-secret); else --data-dir's admin key, else the --profile,
    /// else ALIBABA_CLOUD_ACCESS_KEY_ID/SECRET, else ~/.ddsd/profile.toml, else ./data/admin-key.json.
    #[arg(long, value_name = "ID")]
    pub access_key_id: Option<String>,
    #[arg(long, value_name = "SECRET")]
    pub access_key_secret: Option<String>,
    /// Data dir of the ddsd to call; its admin-key.json signs the requests.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Profile file (TOML: endpoint, access_key_id, access_key_secret, signature)
    /// [default: ~/.ddsd/profile.toml when it exists].
    #[arg(long, env = "DDSD_PROFILE", value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// Signature scheme [default: the profile's, else v3].
    #[arg(long, value_enum)]
    pub signature: Option<ddsd_client::Signature>,
}

impl ClientArgs {
    pub fn resolve(&self) -> anyhow::Result<crate::client::profile::Resolved> {
        crate::client::profile::resolve(
            &crate::client::profile::Given {
                endpoint: self.endpoint.clone(),
                access_key_id: self.access_key_id.clone(),
                access_key_secret: self.access_key_secret.clone(),
                data_dir: self.data_dir.clone(),
                profile: self.profile.clone(),
                signature: self.signature,
            },
            &crate::client::profile::Env::process(),
        )
    }

    pub fn client(&self) -> anyhow::Result<ddsd_client::Client> {
        let r = self.resolve()?;
        ddsd_client::Client::with_signature(&r.endpoint, r.credentials, r.signature)
    }
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
    /// Speed of the simulated data plane (plane time per wall time). Default 1.
    #[arg(long, env = "DDSD_SIM_SPEED", value_name = "FACTOR")]
    pub sim_speed: Option<f64>,
    /// The data plane: the embedded simulation (default) or `mongodb`, deployments ddsd does not
    /// own, imported with DdsdImportDBInstance and driven through host agents.
    #[arg(long, env = "DDSD_PLANE", value_enum)]
    pub plane: Option<crate::server::config::PlaneKind>,
    /// Start with a ready demo fleet (data dir ./data-demo and sim speed 30 unless configured) and
    /// print the one command that upgrades it.
    #[arg(long)]
    pub demo: bool,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long, env = "DDSD_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "DDSD_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve HTTPS with a self-signed certificate for localhost, made once in <data dir>/tls/.
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    pub tls_self_signed: bool,
}

impl ServeArgs {
    /// The plain values the server's configuration is built from.
    pub fn overrides(&self) -> ConfigOverrides {
        ConfigOverrides {
            config: self.config.clone(),
            listen: self.listen.clone(),
            data_dir: self.data_dir.clone(),
            region: self.region.clone(),
            log_format: self.log_format,
            sim_speed: self.sim_speed,
            plane: self.plane,
            demo: self.demo,
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            tls_self_signed: self.tls_self_signed,
        }
    }
}

/// Runs a client subcommand (the binary hands `serve` to the server wing).
pub fn run(command: Command) -> ExitCode {
    match command {
        Command::Call(args) => client_command(|| instances::call(args)),
        Command::Kernel(KernelCommand::Publish(args)) => {
            client_command(|| instances::kernel_publish(args))
        }
        Command::Instance(InstanceCommand::Create(args)) => {
            client_command(|| instances::instance_create(args))
        }
        Command::Upgrade(args) => client_command(|| crate::client::cli_ops::upgrade(args)),
        Command::EngineUpgrade(args) => {
            client_command(|| crate::client::cli_ops::engine_upgrade(args))
        }
        Command::Restart(args) => client_command(|| crate::client::cli_ops::restart(args)),
        Command::SwitchHa(args) => client_command(|| crate::client::cli_ops::switch_ha(args)),
        Command::ModifySpec(args) => client_command(|| crate::client::cli_ops::modify_spec(args)),
        Command::Plan(args) => client_command(|| crate::client::cli_ops::plan(args)),
        Command::Watch(args) => client_command(|| crate::client::cli_ops::watch(args)),
        Command::Operations(args) => client_command(|| crate::client::cli_ops::operations(args)),
        Command::Events(args) => client_command(|| crate::client::events::events(args)),
        Command::Fault(cmd) => client_command(|| crate::client::faults::fault(cmd)),
        Command::Serve(_) => {
            eprintln!("ddsd: serve is not a client subcommand");
            ExitCode::from(2)
        }
    }
}

/// What a client subcommand ended with.
pub enum Failure {
    /// The server said no: exit 1.
    Api(ddsd_client::ClientError),
    /// Usage, configuration or connection: exit 2.
    Other(anyhow::Error),
    /// The operation ended failed, or not in the expected state: exit 3.
    Operation(String),
    /// Gave up waiting: exit 4.
    Timeout(String),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Other(e)
    }
}

impl From<ddsd_client::ClientError> for Failure {
    fn from(e: ddsd_client::ClientError) -> Self {
        match e {
            ddsd_client::ClientError::Api { .. } => Failure::Api(e),
            other => Failure::Other(other.into()),
        }
    }
}

pub type ClientFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Failure>>>>;

/// Runs one client future on its own runtime and maps its [`Failure`] to the exit status.
pub fn client_command(make: impl FnOnce() -> ClientFuture) -> ExitCode {
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
    match runtime.block_on(make()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Api(e)) => {
            print_api_error(&e);
            ExitCode::from(1)
        }
        Err(Failure::Other(e)) => {
            eprintln!("ddsd: {e:#}");
            ExitCode::from(2)
        }
        Err(Failure::Operation(why)) => {
            eprintln!("ddsd: {why}");
            ExitCode::from(3)
        }
        Err(Failure::Timeout(why)) => {
            eprintln!("ddsd: {why}");
            ExitCode::from(4)
        }
    }
}

/// `Code: Message`, then the RequestId and HTTP status, on stderr.
pub fn print_api_error(e: &ddsd_client::ClientError) {
    match e {
        ddsd_client::ClientError::Api {
            status,
            code,
            message,
            request_id,
        } => {
            eprintln!("{code}: {message}");
            eprintln!("RequestId: {request_id} (HTTP {status})");
        }
        other => eprintln!("ddsd: {other}"),
    }
}

/// Pretty JSON on stdout (compact if it cannot be pretty-printed).
pub(crate) fn print_json(v: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_takes_a_tls_cert_and_key_together_or_self_signed() {
        use clap::error::ErrorKind;
        let kind = |list: &[&str]| Cli::try_parse_from(list).map(|_| ()).map_err(|e| e.kind());
        assert_eq!(
            kind(&["ddsd", "serve", "--tls-cert", "c.pem"]),
            Err(ErrorKind::MissingRequiredArgument)
        );
        assert_eq!(
            kind(&["ddsd", "serve", "--tls-key", "k.pem"]),
            Err(ErrorKind::MissingRequiredArgument)
        );
        assert_eq!(
            kind(&[
                "ddsd",
                "serve",
                "--tls-self-signed",
                "--tls-cert",
                "c.pem",
                "--tls-key",
                "k.pem"
            ]),
            Err(ErrorKind::ArgumentConflict)
        );
        let Command::Serve(a) =
            Cli::try_parse_from(["ddsd", "serve", "--tls-self-signed", "--demo"])
                .unwrap()
                .command
        else {
            panic!("not serve")
        };
        let o = a.overrides();
        assert!(o.tls_self_signed && o.demo && o.tls_cert.is_none());
    }
}
