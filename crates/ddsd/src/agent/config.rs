//! `agent.toml`: where the agent listens, which host it is, where kernels and its state live, its
//! keys, its processes and the supervisor. Read once at start; every mistake is reported with the
//! file's name before anything is bound or started.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, ensure, Context as _};
use serde::Deserialize;

use crate::agent::api::{ProcessKind, MAX_NAME_LEN};
use crate::agent::host::{HostConfig, ManagedProcess, MongoCredentials};
use crate::agent::service::{AgentKey, ServiceConfig};
use crate::agent::systemd::SystemdOptions;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9180";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Supervisor {
    #[default]
    Child,
    Systemd,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    listen: Option<SocketAddr>,
    host_name: String,
    kernels_dir: PathBuf,
    state_dir: PathBuf,
    #[serde(default)]
    supervisor: Supervisor,
    #[serde(default = "default_shutdown_ms")]
    shutdown_timeout_ms: u64,
    #[serde(default = "default_term_ms")]
    term_timeout_ms: u64,
    #[serde(default = "default_start_check_ms")]
    start_check_ms: u64,
    max_connections: Option<usize>,
    max_body_bytes: Option<usize>,
    max_command_log: Option<usize>,
    #[serde(default)]
    keys: Vec<KeyEntry>,
    #[serde(default)]
    processes: Vec<ProcessEntry>,
    mongodb: Option<MongoEntry>,
    systemd: Option<SystemdEntry>,
}

fn default_shutdown_ms() -> u64 {
    30_000
}
fn default_term_ms() -> u64 {
    30_000
}
fn default_start_check_ms() -> u64 {
    500
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    id: String,
    secret: Option<String>,
    secret_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProcessEntry {
    name: String,
    kind: ProcessKind,
    port: u16,
    address: Option<String>,
    data_dir: Option<PathBuf>,
    config_file: Option<PathBuf>,
    kernel_version: String,
    bind_ip: Option<String>,
    unit: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MongoEntry {
    username: String,
    password_file: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SystemdEntry {
    unit_dir: Option<PathBuf>,
    systemctl: Option<PathBuf>,
    user: Option<String>,
    group: Option<String>,
}

/// Everything `ddsd agent` needs, checked.
#[derive(Debug)]
pub struct AgentConfig {
    pub listen: SocketAddr,
    pub supervisor: Supervisor,
    pub host: HostConfig,
    pub keys: Vec<AgentKey>,
    pub service: ServiceConfig,
    pub systemd: SystemdOptions,
}

pub fn load(path: &Path) -> anyhow::Result<AgentConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&text).with_context(|| format!("in {}", path.display()))
}

/// A secret from a file: its first line (so a trailing newline is not part of it).
fn read_secret(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the secret file {}", path.display()))?;
    let secret = text.lines().next().unwrap_or("").trim().to_string();
    ensure!(
        !secret.is_empty(),
        "the secret file {} is empty",
        path.display()
    );
    Ok(secret)
}

fn check_name(what: &str, value: &str) -> anyhow::Result<()> {
    ensure!(
        !value.is_empty()
            && value.len() <= MAX_NAME_LEN
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-:+".contains(&b))
            && value != "."
            && value != "..",
        "{what} {value:?}: 1 to {MAX_NAME_LEN} characters of A-Z a-z 0-9 . _ - : +"
    );
    Ok(())
}

pub fn parse(text: &str) -> anyhow::Result<AgentConfig> {
    let file: File = toml::from_str(text)?;
    check_name("host_name", &file.host_name)?;
    let mut keys = Vec::new();
    for key in &file.keys {
        let secret = match (&key.secret, &key.secret_file) {
            (Some(s), None) => s.clone(),
            (None, Some(path)) => read_secret(path)?,
            _ => bail!("key {}: give exactly one of secret and secret_file", key.id),
        };
        ensure!(!secret.is_empty(), "key {}: the secret is empty", key.id);
        keys.push(AgentKey {
            access_key_id: key.id.clone(),
            secret: acs_rpc::Secret::new(secret),
            host: file.host_name.clone(),
        });
    }
    ensure!(!keys.is_empty(), "at least one [[keys]] entry is needed");

    let mut processes: Vec<ManagedProcess> = Vec::new();
    for p in file.processes {
        check_name("process name", &p.name)?;
        check_name(
            &format!("process {}: kernel_version", p.name),
            &p.kernel_version,
        )?;
        ensure!(
            !processes.iter().any(|q| q.name == p.name),
            "process {} is listed twice",
            p.name
        );
        ensure!(
            !processes.iter().any(|q| q.port == p.port),
            "process {}: port {} is already used by another process",
            p.name,
            p.port
        );
        ensure!(
            p.kind == ProcessKind::Mongos || p.data_dir.is_some() || p.config_file.is_some(),
            "process {}: a mongod needs data_dir or config_file",
            p.name
        );
        processes.push(ManagedProcess {
            address: p
                .address
                .unwrap_or_else(|| format!("{}:{}", file.host_name, p.port)),
            name: p.name,
            kind: p.kind,
            port: p.port,
            data_dir: p.data_dir,
            config_file: p.config_file,
            kernel_version: p.kernel_version,
            bind_ip: p.bind_ip,
            unit: p.unit,
        });
    }

    let credentials = match file.mongodb {
        Some(m) => Some(MongoCredentials {
            username: m.username,
            password: acs_rpc::Secret::new(read_secret(&m.password_file)?),
        }),
        None => None,
    };
    let systemd = match file.systemd {
        Some(s) => {
            let d = SystemdOptions::default();
            SystemdOptions {
                unit_dir: s.unit_dir.unwrap_or(d.unit_dir),
                systemctl: s.systemctl.unwrap_or(d.systemctl),
                user: s.user,
                group: s.group,
            }
        }
        None => SystemdOptions::default(),
    };
    let defaults = ServiceConfig::default();
    Ok(AgentConfig {
        listen: file
            .listen
            .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("a valid address")),
        supervisor: file.supervisor,
        service: ServiceConfig {
            command_log: Some(file.state_dir.join("command-log.json")),
            max_command_log: file.max_command_log.unwrap_or(defaults.max_command_log),
            max_connections: file.max_connections.unwrap_or(defaults.max_connections),
            max_body_bytes: file.max_body_bytes.unwrap_or(defaults.max_body_bytes),
            nonce_capacity: defaults.nonce_capacity,
        },
        host: HostConfig {
            host_name: file.host_name,
            kernels_dir: file.kernels_dir,
            state_dir: file.state_dir,
            shutdown_timeout: Duration::from_millis(file.shutdown_timeout_ms),
            term_timeout: Duration::from_millis(file.term_timeout_ms),
            start_check: Duration::from_millis(file.start_check_ms),
            processes,
            credentials,
        },
        keys,
        systemd,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
host_name = "db1"
kernels_dir = "/opt/mongodb"
state_dir = "/var/lib/ddsd-agent"
[[keys]]
id = "agent-db1"
secret = "s3cret"
[[processes]]
name = "rs0-a"
kind = "mongod"
port = 27017
data_dir = "/data/rs0-a"
kernel_version = "7.0.1"
"#;

    #[test]
    fn defaults() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.supervisor, Supervisor::Child);
        assert_eq!(c.host.shutdown_timeout, Duration::from_secs(30));
        assert_eq!(c.host.start_check, Duration::from_millis(500));
        assert_eq!(c.host.processes[0].address, "db1:27017");
        assert_eq!(c.keys[0].host, "db1");
        assert_eq!(
            c.service.command_log.as_deref(),
            Some(Path::new("/var/lib/ddsd-agent/command-log.json"))
        );
        assert_eq!(c.systemd.unit_dir, Path::new("/etc/systemd/system"));
        // The secret never shows in the configuration's debug form.
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn mistakes_are_refused() {
        for (bad, says) in [
            (MINIMAL.replace("secret = \"s3cret\"", ""), "exactly one of secret"),
            (MINIMAL.replace("kind = \"mongod\"", "kind = \"mongox\""), "mongox"),
            (MINIMAL.replace("data_dir = \"/data/rs0-a\"", ""), "needs data_dir"),
            (MINIMAL.replace("\"7.0.1\"", "\"../7.0.1\""), "kernel_version"),
            (MINIMAL.replace("port = 27017", "port = 27017\nfoo = 1"), "foo"),
            (format!("{MINIMAL}\n[[processes]]\nname = \"rs0-a\"\nkind = \"mongos\"\nport = 1\nkernel_version = \"7.0.1\"\n"), "twice"),
        ] {
            let e = format!("{:#}", parse(&bad).unwrap_err());
            assert!(e.contains(says), "{says}: {e}");
        }
    }
}
