//! `ddsd serve` configuration: defaults < TOML file < environment < flags.
//!
//! Built from plain values ([`ConfigOverrides`]): the CLI converts its flags into them, and clap
//! already resolves each flag against its `DDSD_*` variable (a flag wins over the variable), so
//! here an override that is still `None` falls back to the file, then to the default.
//! The limits have no flags: each is a flat file key with a `DDSD_<KEY>` variable over it
//! (`crate::server::limits`).

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use acs_rpc::Secret;
use anyhow::{bail, Context as _};
use dds_engine::workflow::UpgradeConfig;
use serde::Deserialize;

use crate::server::limits::{LimitSettings, LimitsFile};
use crate::server::metrics::MetricsAccess;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./data";
pub const DEFAULT_REGION: &str = "cn-hangzhou";
/// The data dir of `serve --demo` unless configured.
pub const DEMO_DATA_DIR: &str = "./data-demo";
/// 30× real time: the demo's sharded cluster (11 processes) upgrades in about 15 s.
pub const DEMO_SIM_SPEED: f64 = 30.0;

/// What the operator gave for this start (flags, or their `DDSD_*` variables); `None` or `false`
/// means "not given", and the file or the default decides.
#[derive(Debug, Clone, Default)]
pub struct ConfigOverrides {
    pub config: Option<PathBuf>,
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub region: Option<String>,
    pub log_format: Option<LogFormat>,
    pub sim_speed: Option<f64>,
    pub plane: Option<PlaneKind>,
    pub demo: bool,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_self_signed: bool,
}

/// Which data plane drives the instances (docs/mongodb-plane.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PlaneKind {
    /// The embedded simulated fleet.
    #[default]
    Sim,
    /// Deployments ddsd does not own, through the official driver and host agents.
    Mongodb,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The TOML file as written by users; every field optional.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    region: Option<String>,
    log_format: Option<LogFormat>,
    /// Name used as `HostId` in error envelopes when a request has no `Host` header.
    endpoint: Option<String>,
    /// Replaces the region/zone catalog shipped with ddsd.
    regions_file: Option<PathBuf>,
    /// HTTPS: a PEM certificate chain and its key (both or neither), or a self-signed certificate.
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_self_signed: Option<bool>,
    // The limits (docs/limits.md); see `crate::server::limits::LimitsFile`.
    max_body_bytes: Option<usize>,
    body_read_timeout_ms: Option<u64>,
    header_read_timeout_ms: Option<u64>,
    max_query_bytes: Option<usize>,
    max_params: Option<usize>,
    max_param_name_bytes: Option<usize>,
    max_param_value_bytes: Option<usize>,
    max_nonce_bytes: Option<usize>,
    nonce_capacity: Option<usize>,
    max_in_flight_requests: Option<usize>,
    max_connections: Option<usize>,
    key_rate_per_sec: Option<f64>,
    key_rate_burst: Option<u32>,
    /// Operations the runtime drives at the same time (a limit: `crate::server::limits`).
    max_concurrent_operations: Option<usize>,
    /// Speed of the simulated data plane: plane time per wall time (1 = MongoDB-like durations,
    /// 100 = a 30 s member start takes 0.3 s). Tests and demos speed it up.
    sim_speed: Option<f64>,
    /// `sim` (default) or `mongodb`.
    plane: Option<PlaneKind>,
    /// `[mongodb]`: timeouts of the `mongodb` data plane.
    mongodb: Option<MongodbFile>,
    /// Who may read `GET /metrics`: `loopback` (default), `any`, `off`.
    metrics: Option<MetricsAccess>,
    #[serde(default)]
    access_keys: Vec<AccessKeyEntry>,
    /// `[upgrade]`: limits of new rolling upgrades and restarts, keyed by `UpgradeConfig`'s field names.
    /// Kept as a raw table so a misspelt key is refused instead of silently taking its default.
    upgrade: Option<toml::Table>,
    /// `[wire]`: the simulated processes' MongoDB listeners.
    wire: Option<WireFile>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MongodbFile {
    connect_timeout_ms: Option<u64>,
    command_timeout_ms: Option<u64>,
    agent_timeout_ms: Option<u64>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireFile {
    enabled: Option<bool>,
    bind: Option<String>,
    advertised_host: Option<String>,
    first_port: Option<u16>,
    last_port: Option<u16>,
    max_listeners: Option<usize>,
    max_connections_per_member: Option<usize>,
}

/// Where the simulated processes listen for MongoDB clients (docs/wire.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireConfig {
    pub enabled: bool,
    pub bind: std::net::IpAddr,
    /// The host written into `ConnectionDomain`, `hello.hosts` and the other addresses clients
    /// are given.
    pub advertised_host: String,
    /// `None`: ports chosen by the system (and recorded); else this inclusive range.
    pub port_range: Option<(u16, u16)>,
    pub max_listeners: usize,
    pub max_connections_per_member: usize,
}

impl Default for WireConfig {
    fn default() -> Self {
        WireConfig {
            enabled: true,
            bind: std::net::IpAddr::from([127, 0, 0, 1]),
            advertised_host: "127.0.0.1".into(),
            port_range: None,
            max_listeners: 4_096,
            max_connections_per_member: 256,
        }
    }
}

/// Bounds of `[wire]`.
const MAX_WIRE_LISTENERS: usize = 65_535;
const MAX_CONNECTIONS_PER_MEMBER: usize = 10_000;

fn wire_config(file: Option<WireFile>) -> anyhow::Result<WireConfig> {
    let f = file.unwrap_or_default();
    let d = WireConfig::default();
    let bind = match &f.bind {
        Some(b) => b
            .parse()
            .with_context(|| format!("[wire] bind {b:?} is not an IP address"))?,
        None => d.bind,
    };
    let advertised_host = match f.advertised_host {
        Some(h) if h.is_empty() || h.len() > 253 || h.contains([':', '/', ' ', ',']) => {
            bail!("[wire] advertised_host {h:?} is not a host name or IPv4 address")
        }
        Some(h) => h,
        None if bind_is_wildcard(bind) => "127.0.0.1".into(),
        None => bind.to_string(),
    };
    let port_range = match (f.first_port, f.last_port) {
        (None | Some(0), None) => None,
        (Some(first), Some(last)) if first > 0 && last >= first => Some((first, last)),
        _ => bail!("[wire] first_port and last_port go together, with 0 < first_port <= last_port (or neither: ports chosen by the system)"),
    };
    let max_listeners = f.max_listeners.unwrap_or(d.max_listeners);
    if max_listeners == 0 || max_listeners > MAX_WIRE_LISTENERS {
        bail!("[wire] max_listeners must be between 1 and {MAX_WIRE_LISTENERS}");
    }
    let max_connections_per_member = f
        .max_connections_per_member
        .unwrap_or(d.max_connections_per_member);
    if max_connections_per_member == 0 || max_connections_per_member > MAX_CONNECTIONS_PER_MEMBER {
        bail!(
            "[wire] max_connections_per_member must be between 1 and {MAX_CONNECTIONS_PER_MEMBER}"
        );
    }
    Ok(WireConfig {
        enabled: f.enabled.unwrap_or(d.enabled),
        bind,
        advertised_host,
        port_range,
        max_listeners,
        max_connections_per_member,
    })
}

fn bind_is_wildcard(ip: std::net::IpAddr) -> bool {
    ip.is_unspecified()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessKeyEntry {
    id: String,
    secret: String,
    /// May call the operator extensions (`Ddsd*` actions); the generated admin key always may.
    #[serde(default)]
    admin: bool,
}

/// The resolved configuration of one `ddsd serve` process.
#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub region: String,
    pub log_format: LogFormat,
    pub endpoint: Option<String>,
    pub regions_file: Option<PathBuf>,
    /// Every bound on client input and load (docs/limits.md).
    pub limits: LimitSettings,
    pub sim_speed: f64,
    pub plane: PlaneKind,
    /// `[mongodb]`, for `plane = "mongodb"`.
    pub mongodb: crate::server::plane::mongodb::MongoPlaneConfig,
    pub metrics: MetricsAccess,
    /// `serve --demo`: bring up the demo fleet (see `demo.rs`).
    pub demo: bool,
    /// Extra access keys from the file, besides the admin key in the data dir.
    pub access_keys: Vec<(String, Secret)>,
    /// The configured keys marked `admin = true`.
    pub admin_access_keys: Vec<String>,
    /// Limits every new upgrade/restart starts with (an operation keeps its own copy once accepted).
    pub rolling: UpgradeConfig,
    /// HTTPS instead of HTTP (`tls.rs`).
    pub tls: Option<crate::server::tls::TlsSource>,
    /// `[wire]`.
    pub wire: WireConfig,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.access_keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("region", &self.region)
            .field("log_format", &self.log_format)
            .field("endpoint", &self.endpoint)
            .field("regions_file", &self.regions_file)
            .field("limits", &self.limits)
            .field("sim_speed", &self.sim_speed)
            .field("plane", &self.plane)
            .field("mongodb", &self.mongodb)
            .field("metrics", &self.metrics)
            .field("demo", &self.demo)
            .field("access_key_ids", &ids)
            .field("admin_access_keys", &self.admin_access_keys)
            .field("rolling", &self.rolling)
            .field("tls", &self.tls)
            .field("wire", &self.wire)
            .finish()
    }
}

impl Config {
    /// Resolves flags/env (already merged by clap) over the optional file over defaults.
    pub fn resolve(args: &ConfigOverrides) -> anyhow::Result<Config> {
        Config::resolve_with_env(args, &|name| std::env::var(name).ok())
    }

    /// [`Config::resolve`] reading the limits' `DDSD_*` variables through `env`.
    pub fn resolve_with_env(
        args: &ConfigOverrides,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Config> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let listen_text = args
            .listen
            .clone()
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.into());
        let listen: SocketAddr = listen_text
            .parse()
            .with_context(|| format!("listen address {listen_text:?} is not IP:PORT"))?;
        let region = args
            .region
            .clone()
            .or(file.region)
            .unwrap_or_else(|| DEFAULT_REGION.into());
        if region.is_empty() {
            bail!("region must not be empty");
        }
        let sim_speed = args.sim_speed.or(file.sim_speed).unwrap_or(if args.demo {
            DEMO_SIM_SPEED
        } else {
            1.0
        });
        crate::server::plane::PlaneClock::check_speed(sim_speed)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let plane = args.plane.or(file.plane).unwrap_or_default();
        let mongodb = {
            let f = file.mongodb.unwrap_or_default();
            let d = crate::server::plane::mongodb::MongoPlaneConfig::default();
            let bounded = |name: &str, v: Option<u64>, default: u64| -> anyhow::Result<u64> {
                let v = v.unwrap_or(default);
                if !(1..=3_600_000).contains(&v) {
                    bail!("[mongodb] {name} must be 1 to 3600000 ms, got {v}");
                }
                Ok(v)
            };
            crate::server::plane::mongodb::MongoPlaneConfig {
                connect_timeout_ms: bounded(
                    "connect_timeout_ms",
                    f.connect_timeout_ms,
                    d.connect_timeout_ms,
                )?,
                command_timeout_ms: bounded(
                    "command_timeout_ms",
                    f.command_timeout_ms,
                    d.command_timeout_ms,
                )?,
                agent_timeout_ms: bounded(
                    "agent_timeout_ms",
                    f.agent_timeout_ms,
                    d.agent_timeout_ms,
                )?,
            }
        };
        let limits = LimitSettings::resolve(
            &LimitsFile {
                max_body_bytes: file.max_body_bytes,
                body_read_timeout_ms: file.body_read_timeout_ms,
                header_read_timeout_ms: file.header_read_timeout_ms,
                max_query_bytes: file.max_query_bytes,
                max_params: file.max_params,
                max_param_name_bytes: file.max_param_name_bytes,
                max_param_value_bytes: file.max_param_value_bytes,
                max_nonce_bytes: file.max_nonce_bytes,
                nonce_capacity: file.nonce_capacity,
                max_in_flight_requests: file.max_in_flight_requests,
                max_connections: file.max_connections,
                key_rate_per_sec: file.key_rate_per_sec,
                key_rate_burst: file.key_rate_burst,
                max_concurrent_operations: file.max_concurrent_operations,
            },
            env,
        )?;
        let rolling = rolling_config(file.upgrade)?;
        let wire = wire_config(file.wire)?;
        // Flags and env (merged by clap) win over the file, as a pair: a cert from one place and a
        // key from another would be a mistake, not a choice.
        let tls = if args.tls_self_signed {
            Some(crate::server::tls::TlsSource::SelfSigned)
        } else if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
            Some(crate::server::tls::TlsSource::Files {
                cert: cert.clone(),
                key: key.clone(),
            })
        } else {
            match (
                file.tls_cert,
                file.tls_key,
                file.tls_self_signed.unwrap_or(false),
            ) {
                (Some(_), Some(_), true) => {
                    bail!("tls_self_signed and tls_cert/tls_key are exclusive")
                }
                (Some(cert), Some(key), false) => {
                    Some(crate::server::tls::TlsSource::Files { cert, key })
                }
                (None, None, true) => Some(crate::server::tls::TlsSource::SelfSigned),
                (None, None, false) => None,
                _ => bail!("tls_cert and tls_key go together"),
            }
        };
        let mut access_keys: Vec<(String, Secret)> = Vec::new();
        let mut admin_access_keys: Vec<String> = Vec::new();
        for k in file.access_keys {
            if k.id.is_empty() || k.secret.is_empty() {
                bail!("access_keys entries need a non-empty id and secret");
            }
            if access_keys.iter().any(|(id, _)| *id == k.id) {
                bail!("access key {:?} is configured twice", k.id);
            }
            if k.admin {
                admin_access_keys.push(k.id.clone());
            }
            access_keys.push((k.id, Secret::new(k.secret)));
        }
        if let Some(crate::server::tls::TlsSource::Files { cert, key }) = &tls {
            // Checked now, so a wrong path or a mismatched key is a configuration error (exit 2).
            crate::server::tls::acceptor(cert, key)?;
        }
        if tls.is_some() && args.demo {
            bail!("--demo serves plain HTTP (its printed commands use the ddsd CLI, which speaks HTTP); drop the TLS settings");
        }
        Ok(Config {
            listen,
            data_dir: args.data_dir.clone().or(file.data_dir).unwrap_or_else(|| {
                if args.demo {
                    DEMO_DATA_DIR
                } else {
                    DEFAULT_DATA_DIR
                }
                .into()
            }),
            region,
            log_format: args
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Text),
            endpoint: file.endpoint,
            regions_file: file.regions_file,
            limits,
            access_keys,
            admin_access_keys,
            sim_speed,
            plane,
            mongodb,
            metrics: file.metrics.unwrap_or_default(),
            demo: args.demo,
            rolling,
            tls,
            wire,
        })
    }
}

/// The `[upgrade]` table over `UpgradeConfig::default()`. Refuses unknown keys, wrong types and settings
/// `UpgradeConfig::validate` rejects, so a bad limit stops `serve` at startup rather than a rollout later.
fn rolling_config(table: Option<toml::Table>) -> anyhow::Result<UpgradeConfig> {
    let Some(table) = table else {
        return Ok(UpgradeConfig::default());
    };
    let known = serde_json::to_value(UpgradeConfig::default())?;
    let known = known.as_object().context("UpgradeConfig is not a map")?;
    if let Some(key) = table.keys().find(|k| !known.contains_key(k.as_str())) {
        let names: Vec<&str> = known.keys().map(String::as_str).collect();
        bail!(
            "[upgrade]: unknown key {key:?}; known keys: {}",
            names.join(", ")
        );
    }
    let rolling: UpgradeConfig = table.try_into().context("[upgrade]")?;
    rolling
        .validate()
        .map_err(|e| anyhow::anyhow!("[upgrade]: {e}"))?;
    Ok(rolling)
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The overrides of `ddsd serve FLAGS…`, for the flags these tests use (`--flag value`,
    /// `--flag=value` or a switch); the CLI's own conversion is tested with the CLI.
    fn args(list: &[&str]) -> ConfigOverrides {
        let mut o = ConfigOverrides::default();
        let mut words = list.iter().skip(2).map(|w| w.to_string());
        while let Some(word) = words.next() {
            let (flag, inline) = match word.split_once('=') {
                Some((f, v)) => (f.to_string(), Some(v.to_string())),
                None => (word, None),
            };
            let mut value = || inline.clone().or_else(|| words.next()).expect("a value");
            match flag.as_str() {
                "--config" => o.config = Some(value().into()),
                "--listen" => o.listen = Some(value()),
                "--data-dir" => o.data_dir = Some(value().into()),
                "--region" => o.region = Some(value()),
                "--log-format" => {
                    o.log_format = Some(match value().as_str() {
                        "json" => LogFormat::Json,
                        _ => LogFormat::Text,
                    })
                }
                "--sim-speed" => o.sim_speed = Some(value().parse().expect("a number")),
                "--demo" => o.demo = true,
                "--tls-cert" => o.tls_cert = Some(value().into()),
                "--tls-key" => o.tls_key = Some(value().into()),
                "--tls-self-signed" => o.tls_self_signed = true,
                other => panic!("flag {other} is not known to these tests"),
            }
        }
        o
    }

    fn temp_file(name: &str, body: &str) -> PathBuf {
        let p =
            std::env::temp_dir().join(format!("ddsd-config-{}-{name}.toml", std::process::id()));
        std::fs::write(&p, body).unwrap();
        p
    }

    #[test]
    fn defaults() {
        let c = Config::resolve(&args(&["ddsd", "serve"])).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.region, "cn-hangzhou");
        assert_eq!(c.log_format, LogFormat::Text);
        assert!(c.access_keys.is_empty());
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let p = temp_file(
            "layering",
            "listen = \"127.0.0.1:0\"\ndata_dir = \"/tmp/x\"\nregion = \"cn-beijing\"\nlog_format = \"json\"\n\
             [[access_keys]]\nid = \"testid\"\nsecret = \"testsecret\"\n\
             [[access_keys]]\nid = \"ops\"\nsecret = \"opssecret\"\nadmin = true\n",
        );
        let path = p.to_str().unwrap();
        let c = Config::resolve(&args(&["ddsd", "serve", "--config", path])).unwrap();
        assert_eq!(c.listen.port(), 0);
        assert_eq!(c.region, "cn-beijing");
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.access_keys[0].0, "testid");
        assert_eq!(c.access_keys[0].1.expose(), "testsecret");
        assert_eq!(c.admin_access_keys, vec!["ops".to_string()]);
        assert!(!format!("{c:?}").contains("testsecret"));
        let c = Config::resolve(&args(&[
            "ddsd",
            "serve",
            "--config",
            path,
            "--region",
            "cn-shanghai",
            "--log-format",
            "text",
        ]))
        .unwrap();
        assert_eq!(
            (c.region.as_str(), c.log_format),
            ("cn-shanghai", LogFormat::Text)
        );
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        std::fs::remove_file(p).unwrap();
    }

    /// docs/config.md shows every key of the file with its default: the example must be a valid file
    /// that resolves to exactly the defaults (apart from its sample access key).
    #[test]
    fn the_documented_example_lists_every_key_with_its_default() {
        let doc = include_str!("../../../../docs/config.md");
        let example = doc
            .split("```toml\n")
            .nth(1)
            .and_then(|b| b.split("```").next())
            .expect("a toml block in docs/config.md");
        let keys: Vec<&str> = example
            .lines()
            .map(|l| l.trim_start_matches("# ").trim())
            .filter_map(|l| l.split_once(" = ").map(|(k, _)| k))
            .collect();
        let p = temp_file("documented", example);
        let documented = Config::resolve_with_env(
            &args(&["ddsd", "serve", "--config", p.to_str().unwrap()]),
            &|_| None,
        )
        .unwrap();
        std::fs::remove_file(p).unwrap();
        let default = Config::resolve_with_env(&args(&["ddsd", "serve"]), &|_| None).unwrap();
        assert_eq!(documented.limits, default.limits);
        assert_eq!(documented.wire, default.wire);
        assert_eq!(
            (
                documented.listen,
                &documented.data_dir,
                &documented.region,
                documented.log_format,
                documented.sim_speed,
                documented.metrics,
            ),
            (
                default.listen,
                &default.data_dir,
                &default.region,
                default.log_format,
                default.sim_speed,
                default.metrics,
            )
        );
        // Every key the file accepts appears in the example (commented out when it has no default).
        for key in [
            "listen",
            "data_dir",
            "region",
            "log_format",
            "endpoint",
            "regions_file",
            "tls_cert",
            "tls_key",
            "tls_self_signed",
            "sim_speed",
            "plane",
            "connect_timeout_ms",
            "command_timeout_ms",
            "agent_timeout_ms",
            "metrics",
            "max_body_bytes",
            "body_read_timeout_ms",
            "header_read_timeout_ms",
            "max_query_bytes",
            "max_params",
            "max_param_name_bytes",
            "max_param_value_bytes",
            "max_nonce_bytes",
            "nonce_capacity",
            "max_in_flight_requests",
            "max_connections",
            "key_rate_per_sec",
            "key_rate_burst",
            "max_concurrent_operations",
            "id",
            "secret",
            "admin",
        ] {
            assert!(keys.contains(&key), "docs/config.md lacks {key}");
        }
        // And no top-level key the file would refuse.
        let top = example.split("[[access_keys]]").next().unwrap_or_default();
        let top_keys = top
            .lines()
            .map(|l| l.trim_start_matches("# ").trim())
            .filter_map(|l| l.split_once(" = ").map(|(k, _)| k));
        for key in top_keys {
            let probe = temp_file("probe", &format!("{key} = 0\n"));
            let e = Config::resolve_with_env(
                &args(&["ddsd", "serve", "--config", probe.to_str().unwrap()]),
                &|_| None,
            );
            std::fs::remove_file(probe).unwrap();
            if let Err(e) = e {
                assert!(!format!("{e:#}").contains("unknown field"), "{key}: {e:#}");
            }
        }
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let p = temp_file("unknown", "listne = \"x\"\n");
        let e = Config::resolve(&args(&["ddsd", "serve", "--config", p.to_str().unwrap()]))
            .unwrap_err();
        assert!(format!("{e:#}").contains("listne"), "{e:#}");
        std::fs::remove_file(p).unwrap();
        let e = Config::resolve(&args(&["ddsd", "serve", "--listen", "localhost"])).unwrap_err();
        assert!(format!("{e:#}").contains("IP:PORT"), "{e:#}");
        for bad in ["0", "-1", "NaN", "1e9"] {
            let flag = format!("--sim-speed={bad}");
            let e = Config::resolve(&args(&["ddsd", "serve", &flag])).unwrap_err();
            assert!(format!("{e:#}").contains("sim_speed"), "{bad}: {e:#}");
        }
        let p = temp_file("speed", "sim_speed = 50.0\nmax_concurrent_operations = 4\n");
        let path = p.to_str().unwrap();
        let c = Config::resolve(&args(&["ddsd", "serve", "--config", path])).unwrap();
        assert_eq!((c.sim_speed, c.limits.max_concurrent_operations), (50.0, 4));
        let c = Config::resolve(&args(&[
            "ddsd",
            "serve",
            "--config",
            path,
            "--sim-speed",
            "7",
        ]))
        .unwrap();
        assert_eq!(c.sim_speed, 7.0);
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn the_wire_table_is_read_and_checked() {
        let resolve = |name: &str, body: &str| {
            let p = temp_file(name, body);
            let r = Config::resolve(&args(&["ddsd", "serve", "--config", p.to_str().unwrap()]));
            std::fs::remove_file(p).unwrap();
            r.map(|c| c.wire).map_err(|e| format!("{e:#}"))
        };
        let w = resolve(
            "wire-ok",
            "[wire]\nbind = \"0.0.0.0\"\nfirst_port = 28000\nlast_port = 28099\nmax_listeners = 90\n",
        )
        .unwrap();
        assert_eq!(w.port_range, Some((28000, 28099)));
        assert_eq!(
            w.advertised_host, "127.0.0.1",
            "a wildcard bind advertises loopback"
        );
        assert_eq!(w.max_listeners, 90);
        let w = resolve("wire-host", "[wire]\nadvertised_host = \"db.example\"\n").unwrap();
        assert_eq!(
            (w.advertised_host.as_str(), w.port_range),
            ("db.example", None)
        );
        for (name, body, needle) in [
            ("wire-bind", "[wire]\nbind = \"localhost\"\n", "bind"),
            ("wire-half", "[wire]\nfirst_port = 28000\n", "first_port"),
            (
                "wire-order",
                "[wire]\nfirst_port = 9\nlast_port = 8\n",
                "first_port",
            ),
            ("wire-zero", "[wire]\nmax_listeners = 0\n", "max_listeners"),
            (
                "wire-conns",
                "[wire]\nmax_connections_per_member = 20000\n",
                "max_connections_per_member",
            ),
            (
                "wire-host-bad",
                "[wire]\nadvertised_host = \"a:1\"\n",
                "advertised_host",
            ),
            ("wire-unknown", "[wire]\nport = 1\n", "port"),
        ] {
            let e = resolve(name, body).unwrap_err();
            assert!(e.contains(needle), "{name}: {e}");
        }
    }

    #[test]
    fn limits_come_from_flat_file_keys_with_env_over_them() {
        let p = temp_file(
            "limits",
            "max_body_bytes = 4096\nnonce_capacity = 10\nkey_rate_per_sec = 0\nmax_connections = 8\n",
        );
        let a = args(&["ddsd", "serve", "--config", p.to_str().unwrap()]);
        let env = |name: &str| (name == "DDSD_NONCE_CAPACITY").then(|| "20".to_string());
        let c = Config::resolve_with_env(&a, &env).unwrap();
        assert_eq!(c.limits.max_body_bytes, 4096);
        assert_eq!(c.limits.nonce_capacity, 20, "env wins over the file");
        assert_eq!(c.limits.key_rate_per_sec, 0.0);
        assert_eq!(c.limits.max_connections, 8);
        assert_eq!(
            c.limits.max_params,
            crate::server::limits::LimitSettings::default().max_params
        );
        std::fs::remove_file(p).unwrap();
        let p = temp_file("limits-bad", "max_in_flight_requests = 0\n");
        let a = args(&["ddsd", "serve", "--config", p.to_str().unwrap()]);
        let e = Config::resolve_with_env(&a, &|_| None).unwrap_err();
        assert!(format!("{e:#}").contains("max_in_flight_requests"), "{e:#}");
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn the_upgrade_table_sets_rolling_limits_and_bad_limits_refuse_to_start() {
        let c = Config::resolve(&args(&["ddsd", "serve"])).unwrap();
        assert_eq!(c.rolling, UpgradeConfig::default());

        let p = temp_file(
            "upgrade",
            "[upgrade]\nmax_parallel_shards = 3\nmongos_batch = 2\ngate_stability_ms = 2500\n\
             max_lag_ms = 4000\nmember_start_deadline_ms = 90000\nmember_catch_up_deadline_ms = 200000\n",
        );
        let c =
            Config::resolve(&args(&["ddsd", "serve", "--config", p.to_str().unwrap()])).unwrap();
        std::fs::remove_file(p).unwrap();
        let want = UpgradeConfig {
            max_parallel_shards: 3,
            mongos_batch: 2,
            gate_stability_ms: 2_500,
            max_lag_ms: 4_000,
            member_start_deadline_ms: 90_000,
            member_catch_up_deadline_ms: 200_000,
            ..UpgradeConfig::default()
        };
        assert_eq!(c.rolling, want);

        for (name, body, needle) in [
            ("zero", "max_parallel_shards = 0", "max_parallel_shards"),
            ("batch", "mongos_batch = 0", "mongos_batch"),
            (
                "catchup",
                "member_start_deadline_ms = 10\nmember_catch_up_deadline_ms = 5",
                "member_catch_up_deadline_ms",
            ),
            ("typo", "max_paralel_shards = 4", "max_paralel_shards"),
            ("type", "gate_stability_ms = \"10s\"", "gate_stability_ms"),
            ("negative", "max_lag_ms = -1", "max_lag_ms"),
        ] {
            let p = temp_file(name, &format!("[upgrade]\n{body}\n"));
            let e = Config::resolve(&args(&["ddsd", "serve", "--config", p.to_str().unwrap()]))
                .unwrap_err();
            std::fs::remove_file(p).unwrap();
            let e = format!("{e:#}");
            assert!(e.contains("[upgrade]") && e.contains(needle), "{name}: {e}");
        }
    }

    #[test]
    fn tls_is_a_cert_and_key_pair_or_self_signed_and_is_checked_at_startup() {
        use crate::server::tls::TlsSource;
        let c = Config::resolve_with_env(&args(&["ddsd", "serve", "--tls-self-signed"]), &|_| None)
            .unwrap();
        assert_eq!(c.tls, Some(TlsSource::SelfSigned));
        let c = Config::resolve_with_env(&args(&["ddsd", "serve"]), &|_| None).unwrap();
        assert_eq!(c.tls, None);
        for (name, body, needle) in [
            ("half", "tls_cert = \"c.pem\"\n", "go together"),
            (
                "both",
                "tls_cert = \"c.pem\"\ntls_key = \"k.pem\"\ntls_self_signed = true\n",
                "exclusive",
            ),
            (
                "missing",
                "tls_cert = \"/nonexistent/c.pem\"\ntls_key = \"/nonexistent/k.pem\"\n",
                "reading the TLS certificate",
            ),
        ] {
            let p = temp_file(name, body);
            let e = Config::resolve_with_env(
                &args(&["ddsd", "serve", "--config", p.to_str().unwrap()]),
                &|_| None,
            )
            .unwrap_err();
            std::fs::remove_file(p).unwrap();
            assert!(format!("{e:#}").contains(needle), "{name}: {e:#}");
        }
        let e = Config::resolve_with_env(
            &args(&["ddsd", "serve", "--demo", "--tls-self-signed"]),
            &|_| None,
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("--demo"), "{e:#}");
    }
}
