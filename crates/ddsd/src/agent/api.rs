//! The host agent's protocol: what ddsd's `mongodb` data plane asks the agent on a host, and what
//! the agent answers. One definition for the three parties: `ddsd agent` on a real host (child
//! processes or systemd units), `ddsd sim-fleet` (simulated hosts) and the plane's [`AgentClient`].
//!
//! The transport is the Dds API's own: `POST /` with the action and its parameters in the query,
//! signed `ACS3-HMAC-SHA256` (or V1) with an agent AccessKey, checked by `acs-rpc` (timestamp
//! window, nonce replay guard, constant-time signature compare), answered as JSON with
//! `RequestId`, and refused as `Code`/`Message`/`RequestId` with an HTTP status. The `Version` is
//! [`AGENT_API_VERSION`]. An agent key belongs to one host: it sees and acts on that host's
//! processes only.
//!
//! Every state-changing action takes a `CommandId`: the agent remembers the outcome of each id (a
//! bounded, persisted log), so a caller that crashed after sending a command and sends it again
//! gets the first outcome back instead of a second restart. A `CommandId` reused for a different
//! request is refused with `IdempotentParameterMismatch`. Apart from the log, stop and start are
//! idempotent by state: stopping a stopped process or starting a process already running on the
//! asked kernel changes nothing (`Changed: false`).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The `Version` of every agent request.
pub const AGENT_API_VERSION: &str = "2026-12-01";

/// `DescribeHost`: no parameters; answers [`HostDescription`].
pub const DESCRIBE_HOST: &str = "DescribeHost";
/// `StopProcess`: `ProcessName`, `CommandId`; answers [`CommandOutcome`]. A clean stop: MongoDB's
/// `shutdown` command where the agent can send it, then SIGTERM, then SIGKILL after the agent's
/// configured timeouts. Answers once the process is gone.
pub const STOP_PROCESS: &str = "StopProcess";
/// `StartProcess`: `ProcessName`, `KernelVersion`, `CommandId`; answers [`CommandOutcome`] once the
/// process is running on `<kernels_dir>/<KernelVersion>/bin/{mongod,mongos}` (running, not yet
/// serving: the caller watches it come up over the wire). The kernel must be installed on the host.
pub const START_PROCESS: &str = "StartProcess";

/// Longest `ProcessName`, `KernelVersion` and `CommandId` accepted.
pub const MAX_NAME_LEN: usize = 128;

/// `mongod` or `mongos`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProcessKind {
    #[serde(rename = "mongod")]
    Mongod,
    #[serde(rename = "mongos")]
    Mongos,
}

/// One managed process as its agent sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProcessDescription {
    /// Unique on the host; ddsd uses it as the member's `NodeId` when it imports a deployment.
    pub name: String,
    pub kind: ProcessKind,
    /// `host:port` as the deployment knows the process (its replica set member name, or the
    /// address in the mongos list).
    pub address: String,
    pub port: u16,
    /// The kernel it runs, or (stopped) the kernel it last ran.
    pub kernel_version: String,
    pub running: bool,
    /// The OS process id, when the supervisor knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// How many times the agent started this process (each start, one more).
    pub generation: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_file: Option<String>,
}

/// `DescribeHost`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostDescription {
    pub host_name: String,
    /// Kernels installed on the host (a `<kernels_dir>/<KernelVersion>/bin` that holds the binary).
    pub kernels: Vec<String>,
    pub processes: Vec<ProcessDescription>,
}

/// `StopProcess`'s and `StartProcess`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CommandOutcome {
    pub command_id: String,
    /// Whether this command changed anything (false: the process was already in the asked state).
    pub changed: bool,
    /// True when the answer comes from the command log (the id was seen before).
    pub replayed: bool,
    /// The process right after the command.
    pub process: ProcessDescription,
}

/// Why an agent refused or failed a command: `Code`, HTTP status, `Message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    /// The process is not managed on this host (or not by this key's host).
    #[error("process {0} is not managed on this host")]
    NoSuchProcess(String),
    #[error("kernel {kernel} is not installed on host {host}")]
    KernelNotInstalled { host: String, kernel: String },
    #[error("CommandId {0} was already used for a different request")]
    CommandIdMismatch(String),
    /// Another command is running on the same process.
    #[error("another command is in progress on process {0}")]
    Busy(String),
    /// The agent tried and the process did not do as asked (a binary that exits at once, a stop
    /// that SIGKILL did not end, systemctl failing).
    #[error("{0}")]
    Failed(String),
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter { name: &'static str, reason: String },
}

impl AgentError {
    pub fn code(&self) -> &'static str {
        match self {
            AgentError::NoSuchProcess(_) => "InvalidProcessName.NotFound",
            AgentError::KernelNotInstalled { .. } => "InvalidKernelVersion.NotInstalled",
            AgentError::CommandIdMismatch(_) => "IdempotentParameterMismatch",
            AgentError::Busy(_) => "OperationConflict",
            AgentError::Failed(_) => "ProcessCommandFailed",
            AgentError::InvalidParameter { .. } => "InvalidParameter",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            AgentError::NoSuchProcess(_) => 404,
            AgentError::KernelNotInstalled { .. }
            | AgentError::CommandIdMismatch(_)
            | AgentError::InvalidParameter { .. } => 400,
            AgentError::Busy(_) => 409,
            AgentError::Failed(_) => 500,
        }
    }
}

pub type AgentFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, AgentError>> + Send + 'a>>;

/// What runs the processes of the hosts an agent endpoint serves. `host` is the host the calling
/// key belongs to; an implementation answers only for that host's processes. The command log and
/// the per-process serialisation are the service's, not the backend's.
pub trait HostBackend: Send + Sync + 'static {
    fn describe(&self, host: &str) -> AgentFuture<'_, HostDescription>;
    /// Returns whether anything changed and the process afterwards.
    fn stop(&self, host: &str, process: &str) -> AgentFuture<'_, (bool, ProcessDescription)>;
    fn start(
        &self,
        host: &str,
        process: &str,
        kernel_version: &str,
    ) -> AgentFuture<'_, (bool, ProcessDescription)>;
}

/// One agent endpoint as ddsd knows it (stored with an imported instance; the secret is never
/// returned nor logged).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AgentEndpoint {
    /// `http://HOST:PORT`.
    pub endpoint: String,
    pub access_key_id: String,
    pub access_key_secret: String,
}

impl std::fmt::Debug for AgentEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentEndpoint")
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// A refusal as the client reads it: the agent's `Code` and `Message`, or a transport failure
/// (`code` empty: unknown outcome, the caller re-observes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct AgentCallError {
    pub code: String,
    pub status: u16,
    pub message: String,
}

impl AgentCallError {
    /// Whether the agent answered (as opposed to a timeout or a connection failure).
    pub fn answered(&self) -> bool {
        !self.code.is_empty()
    }
}

/// A signed client of one agent endpoint.
#[derive(Clone)]
pub struct AgentClient {
    inner: ddsd_client::Client,
}

impl AgentClient {
    pub fn new(endpoint: &AgentEndpoint, timeout: Duration) -> anyhow::Result<AgentClient> {
        let credentials = ddsd_client::Credentials {
            access_key_id: endpoint.access_key_id.clone(),
            secret: acs_rpc::Secret::new(endpoint.access_key_secret.clone()),
        };
        Ok(AgentClient {
            inner: ddsd_client::Client::for_version(
                &endpoint.endpoint,
                credentials,
                AGENT_API_VERSION,
                timeout,
            )?,
        })
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        action: &str,
        params: &[(&str, &str)],
    ) -> Result<T, AgentCallError> {
        match self.inner.call(action, params).await {
            Ok(body) => serde_json::from_value(body).map_err(|e| AgentCallError {
                code: String::new(),
                status: 0,
                message: format!("{action}: the agent's answer does not decode: {e}"),
            }),
            Err(ddsd_client::ClientError::Api {
                status,
                code,
                message,
                ..
            }) => Err(AgentCallError {
                code,
                status,
                message,
            }),
            Err(other) => Err(AgentCallError {
                code: String::new(),
                status: 0,
                message: other.to_string(),
            }),
        }
    }

    pub async fn describe_host(&self) -> Result<HostDescription, AgentCallError> {
        self.call(DESCRIBE_HOST, &[]).await
    }

    pub async fn stop_process(
        &self,
        process: &str,
        command_id: &str,
    ) -> Result<CommandOutcome, AgentCallError> {
        self.call(
            STOP_PROCESS,
            &[("ProcessName", process), ("CommandId", command_id)],
        )
        .await
    }

    pub async fn start_process(
        &self,
        process: &str,
        kernel_version: &str,
        command_id: &str,
    ) -> Result<CommandOutcome, AgentCallError> {
        self.call(
            START_PROCESS,
            &[
                ("ProcessName", process),
                ("KernelVersion", kernel_version),
                ("CommandId", command_id),
            ],
        )
        .await
    }
}
