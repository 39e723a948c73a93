//! The `call`, `kernel publish` and `instance create` subcommands: any action through the signed
//! client, the `DdsdPublishKernelVersion` extension, and `CreateDBInstance` /
//! `CreateShardingDBInstance` (or with `--kernel` the `DdsdCreate*` extensions; `--wait` polls until
//! the instance is `Running`).

use clap::{Args, Subcommand};

use crate::client::cli::{print_json, ClientArgs, ClientFuture, Failure};

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

pub fn call(args: CallArgs) -> ClientFuture {
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

pub fn kernel_publish(args: KernelPublishArgs) -> ClientFuture {
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

pub fn instance_create(args: InstanceCreateArgs) -> ClientFuture {
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
    use crate::client::cli::{Cli, Command};
    use clap::Parser as _;

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
