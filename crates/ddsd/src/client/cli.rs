//! Command line: `ddsd <subcommand>`. Each subcommand resolves its configuration, sets up
//! logging and runs; `main` only maps the outcome to an exit code.
//!
//! - `serve`: the server (`--demo`: with a ready demo fleet, see `demo.rs`);
//! - `call ACTION [Name=Value ...]`: any action through the signed client, pretty JSON (or
//!   `--format xml`) on stdout;
//! - `upgrade`, `restart`, `plan`, `fault arm|list|clear`: the operator's commands (`cli_ops.rs`);
//! - `kernel publish`: the `DdsdPublishKernelVersion` extension (admin key);
//! - `instance create`: `CreateDBInstance` / `CreateShardingDBInstance`, or with `--kernel` the
//!   `DdsdCreate*` extensions (admin key); `--wait` polls until the instance is `Running`;
//! - `bench`: the latency/memory benchmark (see `bench.rs` and BENCHMARKS.md).
//!
//! Client subcommands find the endpoint, AccessKey and signature scheme as `profile.rs` says
//! (flags, `DDSD_ENDPOINT`, a profile file, `ALIBABA_CLOUD_ACCESS_KEY_ID`/`_SECRET`, a data dir's
//! admin key). An API error prints `Code: Message` and `RequestId: … (HTTP n)` on stderr and exits 1;
//! a usage, configuration or connection problem exits 2; a waited-for operation that failed exits 3,
//! and giving up waiting exits 4.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

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
    Call(CallArgs),
    /// Kernel catalog administration (operator extensions).
    #[command(subcommand)]
    Kernel(KernelCommand),
    /// Instances.
    #[command(subcommand)]
    Instance(InstanceCommand),
    /// Upgrade an instance to the newest kernel of its engine version; --wait shows live progress.
    Upgrade(crate::client::cli_ops::UpgradeArgs),
    /// Rolling restart of an instance (or one shard / config server / mongos); --wait shows progress.
    Restart(crate::client::cli_ops::RestartArgs),
    /// Dry run of an upgrade (or --restart): ordered steps, expected elections, estimated duration.
    Plan(crate::client::cli_ops::PlanArgs),
    /// Follow an upgrade or restart already under way (default: the instance's newest operation).
    Watch(crate::client::cli_ops::WatchArgs),
    /// The instance's recent operations, newest first, with their outcomes.
    Operations(crate::client::cli_ops::OperationsArgs),
    /// Faults on demand in the simulated data plane (admin key).
    #[command(subcommand)]
    Fault(crate::client::cli_ops::FaultCommand),
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
pub struct CallArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Response format printed: JSON (pretty) or XML (as served).
    #[arg(long, value_enum, default_value = "json")]
    pub format: OutputFormat,
    /// Action name, e.g. DescribeDBInstances.
    pub action: String,
    /// Parameters as Name=Value.
    #[arg(value_name = "NAME=VALUE")]
    pub params: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Json,
    Xml,
}

#[derive(Debug, Subcommand)]
pub enum KernelCommand {
    /// Publish a new kernel version of an engine version (DdsdPublishKernelVersion).
    Publish(KernelPublishArgs),
}

#[derive(Debug, Clone, Args)]
pub struct KernelPublishArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Engine version, e.g. 4.4.
    #[arg(long)]
    pub engine_version: String,
    /// The new kernel, e.g. mongodb_20250101_4.4.25 or 5.0.30-20250101000000_0.
    #[arg(long = "kernel-version", alias = "kernel")]
    pub kernel_version: String,
    /// Release note text.
    #[arg(long)]
    pub release_note: String,
    /// YYYY-MM-DD; default today (UTC).
    #[arg(long)]
    pub release_date: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum InstanceCommand {
    /// Create a replica set, standalone (--replication-factor 1) or sharded cluster (--shard ...).
    Create(InstanceCreateArgs),
}

#[derive(Debug, Clone, Args)]
pub struct InstanceCreateArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[arg(long, default_value = "cn-hangzhou")]
    pub region: String,
    #[arg(long)]
    pub zone: Option<String>,
    /// Engine version, e.g. 4.4.
    #[arg(long)]
    pub engine_version: String,
    /// Start every process on this catalogued kernel (operator extension, admin key).
    #[arg(long)]
    pub kernel: Option<String>,
    /// DBInstanceClass of a replica set / standalone.
    #[arg(long)]
    pub class: Option<String>,
    /// DBInstanceStorage in GB.
    #[arg(long)]
    pub storage: Option<u32>,
    #[arg(long)]
    pub replication_factor: Option<u32>,
    #[arg(long)]
    pub readonly_replicas: Option<u32>,
    /// A shard, CLASS:STORAGE[:READONLY_REPLICAS]; repeat for each (makes a sharded cluster).
    #[arg(long = "shard", value_name = "CLASS:STORAGE[:RO]")]
    pub shards: Vec<String>,
    /// The config server, CLASS:STORAGE (sharded clusters).
    #[arg(long, value_name = "CLASS:STORAGE")]
    pub config_server: Option<String>,
    /// A mongos class; repeat for each (sharded clusters).
    #[arg(long = "mongos", value_name = "CLASS")]
    pub mongos: Vec<String>,
    #[arg(long)]
    pub description: Option<String>,
    #[arg(long)]
    pub client_token: Option<String>,
    /// Poll DescribeDBInstanceAttribute until the instance is Running.
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub wait_timeout_secs: u64,
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
        Command::Call(args) => client_command(|| call(args)),
        Command::Kernel(KernelCommand::Publish(args)) => client_command(|| kernel_publish(args)),
        Command::Instance(InstanceCommand::Create(args)) => {
            client_command(|| instance_create(args))
        }
        Command::Upgrade(args) => client_command(|| crate::client::cli_ops::upgrade(args)),
        Command::Restart(args) => client_command(|| crate::client::cli_ops::restart(args)),
        Command::Plan(args) => client_command(|| crate::client::cli_ops::plan(args)),
        Command::Watch(args) => client_command(|| crate::client::cli_ops::watch(args)),
        Command::Operations(args) => client_command(|| crate::client::cli_ops::operations(args)),
        Command::Fault(cmd) => client_command(|| crate::client::cli_ops::fault(cmd)),
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

fn print_json(v: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

fn call(args: CallArgs) -> ClientFuture {
    Box::pin(async move {
        let client = args.client.client()?;
        let mut params = Vec::with_capacity(args.params.len());
        for p in &args.params {
            let (k, v) = p
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("parameter {p:?} is not NAME=VALUE"))?;
            params.push((k, v));
        }
        if args.format == OutputFormat::Json {
            let v = client.call(&args.action, &params).await?;
            print_json(&v);
            return Ok(());
        }
        let raw = client
            .call_raw(&args.action, &params, acs_rpc::Format::Xml)
            .await?;
        let body = String::from_utf8_lossy(&raw.body);
        if (200..300).contains(&raw.status) {
            println!("{body}");
            return Ok(());
        }
        let field = |name: &str| xml_field(&body, name).unwrap_or_default();
        Err(Failure::Api(ddsd_client::ClientError::Api {
            status: raw.status,
            code: field("Code"),
            message: field("Message"),
            request_id: field("RequestId"),
        }))
    })
}

/// The text of the first `<name>…</name>` element of an error envelope, unescaped.
fn xml_field(body: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = body.find(&open)? + open.len();
    let end = start + body[start..].find(&format!("</{name}>"))?;
    Some(
        body[start..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

fn kernel_publish(args: KernelPublishArgs) -> ClientFuture {
    Box::pin(async move {
        let client = args.client.client()?;
        let mut params = vec![
            ("EngineVersion", args.engine_version.as_str()),
            ("KernelVersion", args.kernel_version.as_str()),
            ("ReleaseNote", args.release_note.as_str()),
        ];
        if let Some(d) = &args.release_date {
            params.push(("ReleaseDate", d.as_str()));
        }
        let v = client.call("DdsdPublishKernelVersion", &params).await?;
        print_json(&v);
        Ok(())
    })
}

/// `CLASS:STORAGE[:RO]` → (class, storage, readonly).
fn split_node(spec: &str, with_ro: bool) -> anyhow::Result<(String, String, Option<String>)> {
    let parts: Vec<&str> = spec.split(':').collect();
    match (parts.as_slice(), with_ro) {
        ([class, storage], _) => Ok((class.to_string(), storage.to_string(), None)),
        ([class, storage, ro], true) => {
            Ok((class.to_string(), storage.to_string(), Some(ro.to_string())))
        }
        _ => anyhow::bail!(
            "{spec:?} is not CLASS:STORAGE{}",
            if with_ro { "[:READONLY_REPLICAS]" } else { "" }
        ),
    }
}

/// The request parameters `instance create` sends, and the action.
fn instance_create_request(
    args: &InstanceCreateArgs,
) -> anyhow::Result<(&'static str, Vec<(String, String)>)> {
    let sharded = !args.shards.is_empty();
    let mut p: Vec<(String, String)> = vec![
        ("RegionId".into(), args.region.clone()),
        ("Engine".into(), "MongoDB".into()),
        ("EngineVersion".into(), args.engine_version.clone()),
    ];
    let mut opt = |name: &str, v: Option<String>| {
        if let Some(v) = v {
            p.push((name.to_string(), v));
        }
    };
    opt("ZoneId", args.zone.clone());
    opt("DBInstanceDescription", args.description.clone());
    opt("ClientToken", args.client_token.clone());
    opt("KernelVersion", args.kernel.clone());
    if sharded {
        if args.class.is_some() || args.storage.is_some() || args.replication_factor.is_some() {
            anyhow::bail!("--class/--storage/--replication-factor are for replica sets; a sharded cluster takes --shard, --config-server and --mongos");
        }
        for (i, s) in args.shards.iter().enumerate() {
            let (class, storage, ro) = split_node(s, true)?;
            p.push((format!("ReplicaSet.{}.Class", i + 1), class));
            p.push((format!("ReplicaSet.{}.Storage", i + 1), storage));
            if let Some(ro) = ro {
                p.push((format!("ReplicaSet.{}.ReadonlyReplicas", i + 1), ro));
            }
        }
        let cs = args.config_server.as_deref().ok_or_else(|| {
            anyhow::anyhow!("a sharded cluster needs --config-server CLASS:STORAGE")
        })?;
        let (class, storage, _) = split_node(cs, false)?;
        p.push(("ConfigServer.1.Class".into(), class));
        p.push(("ConfigServer.1.Storage".into(), storage));
        for (i, m) in args.mongos.iter().enumerate() {
            p.push((format!("Mongos.{}.Class", i + 1), m.clone()));
        }
    } else {
        let class = args.class.clone().ok_or_else(|| {
            anyhow::anyhow!("--class is required (or --shard for a sharded cluster)")
        })?;
        let storage = args
            .storage
            .ok_or_else(|| anyhow::anyhow!("--storage is required"))?;
        p.push(("DBInstanceClass".into(), class));
        p.push(("DBInstanceStorage".into(), storage.to_string()));
        let rf = args.replication_factor.map(|n| n.to_string());
        let ro = args.readonly_replicas.map(|n| n.to_string());
        let mut opt = |name: &str, v: Option<String>| {
            if let Some(v) = v {
                p.push((name.to_string(), v));
            }
        };
        opt("ReplicationFactor", rf);
        opt("ReadonlyReplicas", ro);
    }
    let action = match (sharded, args.kernel.is_some()) {
        (false, false) => "CreateDBInstance",
        (true, false) => "CreateShardingDBInstance",
        (false, true) => "DdsdCreateDBInstance",
        (true, true) => "DdsdCreateShardingDBInstance",
    };
    Ok((action, p))
}

fn instance_create(args: InstanceCreateArgs) -> ClientFuture {
    Box::pin(async move {
        let client = args.client.client()?;
        let (action, params) = instance_create_request(&args)?;
        let borrowed: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let v = client.call(action, &borrowed).await?;
        print_json(&v);
        if args.wait {
            let id = v["DBInstanceId"]
                .as_str()
                .ok_or_else(|| anyhow::anyhow!("the response has no DBInstanceId"))?
                .to_string();
            let deadline =
                std::time::Instant::now() + std::time::Duration::from_secs(args.wait_timeout_secs);
            loop {
                let a = client
                    .call("DescribeDBInstanceAttribute", &[("DBInstanceId", &id)])
                    .await?;
                let status = a["DBInstances"]["DBInstance"][0]["DBInstanceStatus"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if status == "Running" {
                    eprintln!("ddsd: {id} is Running");
                    break;
                }
                if std::time::Instant::now() > deadline {
                    return Err(anyhow::anyhow!(
                        "{id} is still {status} after {} s",
                        args.wait_timeout_secs
                    )
                    .into());
                }
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
        }
        Ok(())
    })
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

    fn create_args(list: &[&str]) -> InstanceCreateArgs {
        let mut argv = vec!["ddsd", "instance", "create"];
        argv.extend_from_slice(list);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Instance(InstanceCommand::Create(a)) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn instance_create_builds_the_vendor_parameters() {
        let a = create_args(&[
            "--engine-version",
            "4.4",
            "--class",
            "dds.mongo.mid",
            "--storage",
            "20",
            "--kernel",
            "k",
        ]);
        let (action, p) = instance_create_request(&a).unwrap();
        assert_eq!(action, "DdsdCreateDBInstance");
        assert!(p.contains(&("DBInstanceStorage".into(), "20".into())));
        assert!(p.contains(&("KernelVersion".into(), "k".into())));

        let a = create_args(&[
            "--engine-version",
            "4.4",
            "--shard",
            "dds.shard.mid:20",
            "--shard",
            "dds.shard.mid:30:1",
            "--config-server",
            "dds.cs.mid:20",
            "--mongos",
            "dds.mongos.mid",
            "--mongos",
            "dds.mongos.mid",
        ]);
        let (action, p) = instance_create_request(&a).unwrap();
        assert_eq!(action, "CreateShardingDBInstance");
        for (k, v) in [
            ("ReplicaSet.2.Storage", "30"),
            ("ReplicaSet.2.ReadonlyReplicas", "1"),
            ("ConfigServer.1.Class", "dds.cs.mid"),
            ("Mongos.2.Class", "dds.mongos.mid"),
        ] {
            assert!(p.contains(&(k.into(), v.into())), "{k}");
        }
        for (bad, why) in [
            (vec!["--engine-version", "4.4"], "--class is required"),
            (
                vec!["--engine-version", "4.4", "--shard", "a:1", "--mongos", "m"],
                "needs --config-server",
            ),
            (
                vec![
                    "--engine-version",
                    "4.4",
                    "--shard",
                    "a",
                    "--config-server",
                    "c:1",
                ],
                "\"a\" is not CLASS:STORAGE",
            ),
            (
                vec![
                    "--engine-version",
                    "4.4",
                    "--shard",
                    "a:1",
                    "--config-server",
                    "c:1",
                    "--class",
                    "x",
                ],
                "are for replica sets",
            ),
        ] {
            let e = instance_create_request(&create_args(&bad)).unwrap_err();
            assert!(e.to_string().contains(why), "{bad:?}: {e}");
        }
    }
}
