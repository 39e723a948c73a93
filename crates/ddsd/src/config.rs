//! `ddsd serve` configuration: defaults < TOML file < environment < flags.
//!
//! clap already resolves each flag against its `DDSD_*` variable (a flag wins over the
//! variable), so here an argument that is still `None` falls back to the file, then to the default.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use acs_rpc::Secret;
use anyhow::{bail, Context as _};
use dds_engine::workflow::UpgradeConfig;
use serde::Deserialize;

use crate::cli::ServeArgs;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./data";
pub const DEFAULT_REGION: &str = "cn-hangzhou";
/// Far above any RPC form body an SDK sends (they put parameters in the query).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// A client that has not sent its whole body by then is cut off (slow-body connections).
pub const DEFAULT_BODY_READ_TIMEOUT_MS: u64 = 30_000;
/// A client that has not sent a whole request head by then is disconnected (slowloris).
pub const DEFAULT_HEADER_READ_TIMEOUT_MS: u64 = 30_000;

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
    max_body_bytes: Option<usize>,
    body_read_timeout_ms: Option<u64>,
    header_read_timeout_ms: Option<u64>,
    nonce_capacity: Option<usize>,
    /// Speed of the simulated data plane: plane time per wall time (1 = MongoDB-like durations,
    /// 100 = a 30 s member start takes 0.3 s). Tests and demos speed it up.
    sim_speed: Option<f64>,
    /// Operations the runtime drives at the same time.
    max_concurrent_operations: Option<usize>,
    #[serde(default)]
    access_keys: Vec<AccessKeyEntry>,
    /// `[upgrade]`: limits of new rolling upgrades and restarts, keyed by `UpgradeConfig`'s field names.
    /// Kept as a raw table so a misspelt key is refused instead of silently taking its default.
    upgrade: Option<toml::Table>,
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
    pub max_body_bytes: usize,
    pub body_read_timeout_ms: u64,
    pub header_read_timeout_ms: u64,
    pub nonce_capacity: usize,
    pub sim_speed: f64,
    pub max_concurrent_operations: usize,
    /// Extra access keys from the file, besides the admin key in the data dir.
    pub access_keys: Vec<(String, Secret)>,
    /// The configured keys marked `admin = true`.
    pub admin_access_keys: Vec<String>,
    /// Limits every new upgrade/restart starts with (an operation keeps its own copy once accepted).
    pub rolling: UpgradeConfig,
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
            .field("max_body_bytes", &self.max_body_bytes)
            .field("body_read_timeout_ms", &self.body_read_timeout_ms)
            .field("header_read_timeout_ms", &self.header_read_timeout_ms)
            .field("nonce_capacity", &self.nonce_capacity)
            .field("sim_speed", &self.sim_speed)
            .field("max_concurrent_operations", &self.max_concurrent_operations)
            .field("access_key_ids", &ids)
            .field("admin_access_keys", &self.admin_access_keys)
            .field("rolling", &self.rolling)
            .finish()
    }
}

impl Config {
    /// Resolves flags/env (already merged by clap) over the optional file over defaults.
    pub fn resolve(args: &ServeArgs) -> anyhow::Result<Config> {
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
        let max_body_bytes = file.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
        if max_body_bytes == 0 {
            bail!("max_body_bytes must be positive");
        }
        let sim_speed = args.sim_speed.or(file.sim_speed).unwrap_or(1.0);
        crate::plane::PlaneClock::check_speed(sim_speed).map_err(|e| anyhow::anyhow!("{e}"))?;
        let max_concurrent_operations = file
            .max_concurrent_operations
            .unwrap_or(crate::runtime::RuntimeConfig::default().max_concurrent_operations);
        if max_concurrent_operations == 0 {
            bail!("max_concurrent_operations must be positive");
        }
        let rolling = rolling_config(file.upgrade)?;
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
        Ok(Config {
            listen,
            data_dir: args
                .data_dir
                .clone()
                .or(file.data_dir)
                .unwrap_or_else(|| DEFAULT_DATA_DIR.into()),
            region,
            log_format: args
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Text),
            endpoint: file.endpoint,
            regions_file: file.regions_file,
            max_body_bytes,
            body_read_timeout_ms: file
                .body_read_timeout_ms
                .unwrap_or(DEFAULT_BODY_READ_TIMEOUT_MS)
                .max(1),
            header_read_timeout_ms: file
                .header_read_timeout_ms
                .unwrap_or(DEFAULT_HEADER_READ_TIMEOUT_MS)
                .max(1),
            nonce_capacity: file
                .nonce_capacity
                .unwrap_or(acs_rpc::BoundedNonceGuard::DEFAULT_CAPACITY),
            access_keys,
            admin_access_keys,
            sim_speed,
            max_concurrent_operations,
            rolling,
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
    use clap::Parser;

    fn args(list: &[&str]) -> ServeArgs {
        match crate::cli::Cli::try_parse_from(list).unwrap().command {
            crate::cli::Command::Serve(a) => a,
            other => panic!("not serve: {other:?}"),
        }
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
        assert_eq!((c.sim_speed, c.max_concurrent_operations), (50.0, 4));
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
}
