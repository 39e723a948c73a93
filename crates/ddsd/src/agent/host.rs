//! What both supervisors of a real host share: the managed processes as configured, where a
//! kernel's binaries are, the command line a process runs with, MongoDB's `shutdown` command, and
//! the state file (kernel, generation, pid per process) that outlives an agent restart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::agent::api::{ProcessDescription, ProcessKind};
use crate::agent::files;

/// One managed `mongod`/`mongos`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedProcess {
    pub name: String,
    pub kind: ProcessKind,
    pub port: u16,
    /// `host:port` as the deployment knows it; the `shutdown` command goes there.
    pub address: String,
    pub data_dir: Option<PathBuf>,
    pub config_file: Option<PathBuf>,
    /// The kernel it runs until the agent first starts it.
    pub kernel_version: String,
    pub bind_ip: Option<String>,
    /// systemd only: the unit, when not the template instance `ddsd-mongo@<name>.service`.
    pub unit: Option<String>,
}

/// The credentials of MongoDB's `shutdown` command (a user with the `shutdown` action).
#[derive(Debug, Clone)]
pub struct MongoCredentials {
    pub username: String,
    pub password: acs_rpc::Secret,
}

/// One host as an agent supervises it.
#[derive(Debug, Clone)]
pub struct HostConfig {
    pub host_name: String,
    pub kernels_dir: PathBuf,
    pub state_dir: PathBuf,
    /// How long the `shutdown` command may take before SIGTERM.
    pub shutdown_timeout: Duration,
    /// How long SIGTERM may take before SIGKILL.
    pub term_timeout: Duration,
    /// How long a started process must stay up to count as started.
    pub start_check: Duration,
    pub processes: Vec<ManagedProcess>,
    pub credentials: Option<MongoCredentials>,
}

impl HostConfig {
    pub fn process(&self, name: &str) -> Option<&ManagedProcess> {
        self.processes.iter().find(|p| p.name == name)
    }

    /// `<kernels_dir>/<kernel>/bin/{mongod|mongos}`.
    pub fn binary(&self, kernel: &str, kind: ProcessKind) -> PathBuf {
        self.kernels_dir
            .join(kernel)
            .join("bin")
            .join(binary_name(kind))
    }

    /// Whether the kernel's binary for `kind` is there.
    pub fn has_kernel(&self, kernel: &str, kind: ProcessKind) -> bool {
        self.binary(kernel, kind).is_file()
    }

    /// The kernels installed: subdirectories of `kernels_dir` whose `bin/` holds `mongod` or
    /// `mongos`, sorted.
    pub fn installed_kernels(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.kernels_dir) else {
            return Vec::new();
        };
        let mut kernels: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|k| {
                self.has_kernel(k, ProcessKind::Mongod) || self.has_kernel(k, ProcessKind::Mongos)
            })
            .collect();
        kernels.sort();
        kernels
    }

    pub fn state_file(&self) -> PathBuf {
        self.state_dir.join("agent-state.json")
    }
}

pub fn binary_name(kind: ProcessKind) -> &'static str {
    match kind {
        ProcessKind::Mongod => "mongod",
        ProcessKind::Mongos => "mongos",
    }
}

/// The arguments after the binary: `--config <file>` when there is one, else `--port` (and
/// `--dbpath` for a mongod); then `--bind_ip` when configured.
pub fn mongo_args(p: &ManagedProcess) -> Vec<String> {
    let mut args = Vec::new();
    match &p.config_file {
        Some(file) => {
            args.push("--config".to_string());
            args.push(file.display().to_string());
        }
        None => {
            args.push("--port".to_string());
            args.push(p.port.to_string());
            if let (ProcessKind::Mongod, Some(dir)) = (p.kind, &p.data_dir) {
                args.push("--dbpath".to_string());
                args.push(dir.display().to_string());
            }
        }
    }
    if let Some(ip) = &p.bind_ip {
        args.push("--bind_ip".to_string());
        args.push(ip.clone());
    }
    args
}

/// A process's description from its configuration and what the supervisor knows.
pub fn describe(
    p: &ManagedProcess,
    kernel: &str,
    running: bool,
    pid: Option<u32>,
    generation: u64,
) -> ProcessDescription {
    ProcessDescription {
        name: p.name.clone(),
        kind: p.kind,
        address: p.address.clone(),
        port: p.port,
        kernel_version: kernel.to_string(),
        running,
        pid: pid.filter(|_| running),
        generation,
        data_dir: p.data_dir.as_ref().map(|d| d.display().to_string()),
        config_file: p.config_file.as_ref().map(|d| d.display().to_string()),
    }
}

/// How long the `shutdown` command may take to reach the process.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends MongoDB's `shutdown` command to `address` over a direct connection. `Ok` when the server
/// accepted it — including when it dropped the connection while going down, which is how a
/// successful shutdown usually answers.
pub async fn send_shutdown(
    address: &str,
    credentials: Option<&MongoCredentials>,
    timeout: Duration,
) -> Result<(), String> {
    use mongodb::error::ErrorKind;
    let ms = timeout.as_millis().max(1);
    // A process that does not accept connections (hung, still starting) is not going to run the
    // command: reach SIGTERM after at most this, not after the whole shutdown timeout.
    let connect_ms = timeout.min(CONNECT_TIMEOUT).as_millis().max(1);
    let uri = format!(
        "mongodb://{address}/?directConnection=true&serverSelectionTimeoutMS={connect_ms}&connectTimeoutMS={connect_ms}&appname=ddsd-agent"
    );
    let mut options = mongodb::options::ClientOptions::parse(&uri)
        .await
        .map_err(|e| format!("the address {address}: {e}"))?;
    if let Some(c) = credentials {
        let mut credential = mongodb::options::Credential::default();
        credential.username = Some(c.username.clone());
        credential.password = Some(c.password.expose().to_string());
        credential.source = Some("admin".to_string());
        options.credential = Some(credential);
    }
    let client = mongodb::Client::with_options(options).map_err(|e| e.to_string())?;
    let command =
        mongodb::bson::doc! { "shutdown": 1, "timeoutSecs": (timeout.as_secs().max(1)) as i64 };
    let answer = tokio::time::timeout(timeout, client.database("admin").run_command(command)).await;
    // Dropping the client would wait for nothing: the connection is gone or idle.
    match answer {
        Err(_) => Err(format!("no answer to shutdown within {ms} ms")),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => match *e.kind {
            ErrorKind::Io(_) | ErrorKind::ConnectionPoolCleared { .. } => Ok(()),
            _ => Err(e.to_string()),
        },
    }
}

/// Whether `pid` is a live process whose command line names `binary` (so a pid reused by
/// another program after a crash is not mistaken for ours).
pub fn process_runs(pid: u32, binary: &Path) -> bool {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let Ok(stat) = std::fs::read_to_string(proc_dir.join("stat")) else {
        return false;
    };
    // The state follows the parenthesised command name, which may itself contain ')'.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    if matches!(state, Some('Z') | Some('X') | None) {
        return false;
    }
    let Ok(cmdline) = std::fs::read(proc_dir.join("cmdline")) else {
        return false;
    };
    let binary = binary.as_os_str().as_encoded_bytes();
    cmdline.split(|&b| b == 0).any(|arg| arg == binary)
}

/// What survives an agent restart, per process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SavedProcess {
    pub kernel_version: String,
    pub generation: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StateFile {
    version: u32,
    processes: BTreeMap<String, SavedProcess>,
}

const STATE_VERSION: u32 = 1;

pub fn load_state(path: &Path) -> anyhow::Result<BTreeMap<String, SavedProcess>> {
    let Some(bytes) = files::read_if_exists(path)? else {
        return Ok(BTreeMap::new());
    };
    let file: StateFile = serde_json::from_slice(&bytes)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    anyhow::ensure!(
        file.version == STATE_VERSION,
        "{} has version {}, this agent reads {STATE_VERSION}",
        path.display(),
        file.version
    );
    Ok(file.processes)
}

pub fn save_state(path: &Path, processes: BTreeMap<String, SavedProcess>) -> anyhow::Result<()> {
    let file = StateFile {
        version: STATE_VERSION,
        processes,
    };
    files::write_private_atomic(path, &serde_json::to_vec_pretty(&file)?)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn process(kind: ProcessKind) -> ManagedProcess {
        ManagedProcess {
            name: "rs0-a".into(),
            kind,
            port: 27017,
            address: "db1:27017".into(),
            data_dir: Some("/data/rs0-a".into()),
            config_file: None,
            kernel_version: "7.0.1".into(),
            bind_ip: None,
            unit: None,
        }
    }

    #[test]
    fn command_lines() {
        assert_eq!(
            mongo_args(&process(ProcessKind::Mongod)),
            ["--port", "27017", "--dbpath", "/data/rs0-a"]
        );
        let mut s = process(ProcessKind::Mongos);
        s.bind_ip = Some("10.0.0.5,127.0.0.1".into());
        assert_eq!(
            mongo_args(&s),
            ["--port", "27017", "--bind_ip", "10.0.0.5,127.0.0.1"]
        );
        let mut c = process(ProcessKind::Mongod);
        c.config_file = Some("/etc/mongod-a.conf".into());
        assert_eq!(mongo_args(&c), ["--config", "/etc/mongod-a.conf"]);
    }

    #[test]
    fn a_pid_counts_only_while_it_runs_our_binary() {
        let me = std::process::id();
        let exe = std::fs::read_link(format!("/proc/{me}/exe")).unwrap();
        let argv0 = std::env::args().next().unwrap();
        assert!(process_runs(me, Path::new(&argv0)), "{exe:?}");
        assert!(!process_runs(
            me,
            Path::new("/opt/mongodb/7.0.1/bin/mongod")
        ));
        assert!(!process_runs(u32::MAX - 1, Path::new(&argv0)));
    }

    /// A mongod stand-in on the wire: `shutdown` records who sent it, then the listener stops
    /// (every connection dropped, as a mongod going down), or it answers `refuse` when set.
    struct Mongod {
        shutdowns: std::sync::Mutex<Vec<(String, Option<String>)>>,
        going_down: tokio::sync::mpsc::UnboundedSender<()>,
        refuse: bool,
    }

    impl mongo_wire::Service for Mongod {
        async fn handle(
            &self,
            conn: &mongo_wire::ConnCtx,
            cmd: mongo_wire::Command,
        ) -> mongo_wire::Reply {
            match cmd.name.as_str() {
                "hello" | "isMaster" | "ismaster" => mongo_wire::Reply::ok(bson::doc! {
                    "isWritablePrimary": true, "maxWireVersion": 21, "minWireVersion": 0,
                }),
                "ping" => mongo_wire::Reply::ok(bson::doc! {}),
                "shutdown" if self.refuse => mongo_wire::MongoError::new(
                    mongo_wire::ErrorCode::ExceededTimeLimit,
                    "No electable secondaries caught up",
                )
                .into(),
                "shutdown" => {
                    self.shutdowns
                        .lock()
                        .unwrap()
                        .push((cmd.db.clone(), conn.user().map(|u| u.username.clone())));
                    let _ = self.going_down.send(());
                    std::future::pending().await
                }
                other => mongo_wire::MongoError::command_not_found(other).into(),
            }
        }
    }

    async fn mongod(refuse: bool) -> (String, Arc<Mongod>) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let service = Arc::new(Mongod {
            shutdowns: Default::default(),
            going_down: tx,
            refuse,
        });
        let users = mongo_wire::MemoryCredentialStore::new();
        users
            .add_user(
                "admin",
                "agent",
                "agent-pw",
                &[mongo_wire::Mechanism::ScramSha256],
            )
            .unwrap();
        let config = mongo_wire::ServerConfig {
            credentials: Some(Arc::new(users)),
            ..Default::default()
        };
        let mut listener =
            mongo_wire::WireListener::new("127.0.0.1:0".parse().unwrap(), service.clone(), config);
        let addr = listener.start().await.unwrap();
        tokio::spawn(async move {
            if rx.recv().await.is_some() {
                listener.stop().await;
            }
        });
        (addr.to_string(), service)
    }

    fn agent_user(password: &str) -> MongoCredentials {
        MongoCredentials {
            username: "agent".into(),
            password: acs_rpc::Secret::new(password),
        }
    }

    #[tokio::test]
    async fn shutdown_is_sent_authenticated_and_the_dropped_connection_is_success() {
        let (addr, service) = mongod(false).await;
        send_shutdown(&addr, Some(&agent_user("agent-pw")), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(
            *service.shutdowns.lock().unwrap(),
            [("admin".to_string(), Some("agent".to_string()))]
        );
    }

    #[tokio::test]
    async fn a_refused_or_unauthorised_shutdown_is_an_error() {
        let (addr, _) = mongod(true).await;
        let e = send_shutdown(&addr, Some(&agent_user("agent-pw")), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(e.contains("No electable secondaries"), "{e}");
        let (addr, service) = mongod(false).await;
        let e = send_shutdown(&addr, None, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            e.contains("requires authentication") || e.contains("Unauthorized"),
            "{e}"
        );
        let e = send_shutdown(&addr, Some(&agent_user("wrong")), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(e.to_lowercase().contains("auth"), "{e}");
        assert!(service.shutdowns.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn shutdown_of_an_address_nobody_listens_on_fails_quickly() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        drop(listener);
        let started = std::time::Instant::now();
        let e = send_shutdown(&address, None, Duration::from_millis(500))
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(3), "{e}");
    }
}
