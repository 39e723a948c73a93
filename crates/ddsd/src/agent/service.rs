//! The agent's RPC endpoint over any [`HostBackend`]: `ddsd agent` serves it over child processes
//! or systemd units, `ddsd sim-fleet` over simulated hosts (adding its control actions through
//! [`ExtraActions`]).
//!
//! Per request: the connection cap (accept loop), `GET`/`POST` on `/`, the body bound,
//! `acs_rpc::verify` (V3 or V1, timestamp window, nonce replay guard, constant-time compare),
//! `Version` = [`AGENT_API_VERSION`], then the action with the calling key's host. Commands go
//! through the command log (replay by `CommandId`) and a per-process gate (one command at a time
//! per process); the backend call runs as its own task so a caller that hangs up mid-command does
//! not cancel a half-done restart.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use acs_rpc::{
    encode_error, encode_success, guess_format, verify, BoundedNonceGuard, Encoded, Format,
    Gateway, Limits, MemoryKeyStore, RequestParts, RpcError,
};
use anyhow::Context as _;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use axum::Router;
use http_body_util::BodyExt as _;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::watch;
use tracing::{info, info_span, warn, Instrument as _};

use crate::agent::api::{
    AgentError, AgentFuture, CommandOutcome, HostBackend, AGENT_API_VERSION, DESCRIBE_HOST,
    MAX_NAME_LEN, START_PROCESS, STOP_PROCESS,
};
use crate::agent::files;

/// An agent AccessKey and the host it belongs to.
#[derive(Debug, Clone)]
pub struct AgentKey {
    pub access_key_id: String,
    pub secret: acs_rpc::Secret,
    pub host: String,
}

/// Bounds and persistence of one service.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Where the command log is persisted (JSON, mode 0600); `None` keeps it in memory only.
    pub command_log: Option<PathBuf>,
    /// Outcomes remembered; the oldest are forgotten first.
    pub max_command_log: usize,
    /// Open connections; further clients wait in the listen backlog.
    pub max_connections: usize,
    pub max_body_bytes: usize,
    /// Live nonces remembered (at the cap, requests are refused with `Throttling.User`).
    pub nonce_capacity: usize,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            command_log: None,
            max_command_log: 10_000,
            max_connections: 256,
            max_body_bytes: 64 * 1024,
            nonce_capacity: 100_000,
        }
    }
}

/// Extra actions a deployment of the service adds (the sim-fleet's control actions): called with
/// the action name, the verified business params and the calling key's host; `None` = not an
/// extra action. They run after the built-in actions are ruled out, behind the same signature and
/// `Version` checks, and bypass the command log.
pub type ExtraActions = Arc<
    dyn Fn(&str, BTreeMap<String, String>, &str) -> Option<AgentFuture<'static, serde_json::Value>>
        + Send
        + Sync,
>;

/// The parameters as they may be logged: a password or a secret (a deployment's own actions may
/// take one) shows as `***`.
fn loggable(params: &BTreeMap<String, String>) -> BTreeMap<&str, &str> {
    params
        .iter()
        .map(|(k, v)| {
            let lower = k.to_ascii_lowercase();
            let secret = lower.contains("password") || lower.contains("secret");
            (k.as_str(), if secret { "***" } else { v.as_str() })
        })
        .collect()
}

/// How long a client may take to send its request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for in-flight requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Version of the persisted command log file.
const LOG_FILE_VERSION: u32 = 1;

/// What a command asked: a `CommandId` replays only for exactly the same request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CommandRequest {
    action: String,
    process: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kernel_version: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LogEntry {
    host: String,
    command_id: String,
    request: CommandRequest,
    outcome: CommandOutcome,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LogFile {
    version: u32,
    /// Oldest first.
    entries: Vec<LogEntry>,
}

type Finished = Option<Result<CommandOutcome, AgentError>>;

struct InFlight {
    command_id: String,
    request: CommandRequest,
    done: watch::Receiver<Finished>,
}

/// (host, CommandId) → outcome, in arrival order; (host, process) → the running command.
#[derive(Default)]
struct Commands {
    log: HashMap<(String, String), LogEntry>,
    order: VecDeque<(String, String)>,
    running: HashMap<(String, String), InFlight>,
}

impl Commands {
    fn record(&mut self, entry: LogEntry, max: usize) {
        let key = (entry.host.clone(), entry.command_id.clone());
        if self.log.insert(key.clone(), entry).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > max.max(1) {
            if let Some(old) = self.order.pop_front() {
                self.log.remove(&old);
            }
        }
    }

    fn snapshot(&self) -> LogFile {
        LogFile {
            version: LOG_FILE_VERSION,
            entries: self
                .order
                .iter()
                .filter_map(|k| self.log.get(k).cloned())
                .collect(),
        }
    }
}

/// The agent RPC service. Build it with [`AgentService::new`], optionally add
/// [`AgentService::with_extra_actions`], then [`AgentService::serve`].
pub struct AgentService {
    backend: Arc<dyn HostBackend>,
    keys: MemoryKeyStore,
    key_hosts: HashMap<String, String>,
    nonces: BoundedNonceGuard,
    limits: Limits,
    config: ServiceConfig,
    extra: RwLock<Option<ExtraActions>>,
    commands: Mutex<Commands>,
    /// Serialises writes of the log file so an older snapshot never lands after a newer one.
    persist: tokio::sync::Mutex<()>,
}

impl AgentService {
    /// Loads the persisted command log (a log that cannot be read is an error: forgetting it could
    /// run a command twice).
    pub fn new(
        backend: Arc<dyn HostBackend>,
        keys: Vec<AgentKey>,
        config: ServiceConfig,
    ) -> anyhow::Result<Arc<AgentService>> {
        anyhow::ensure!(!keys.is_empty(), "the agent needs at least one access key");
        let mut store = MemoryKeyStore::new();
        let mut key_hosts = HashMap::new();
        for key in keys {
            anyhow::ensure!(
                !key.access_key_id.is_empty() && !key.secret.expose().is_empty(),
                "an agent key needs an id and a secret"
            );
            anyhow::ensure!(
                !key_hosts.contains_key(&key.access_key_id),
                "the access key {} is configured twice",
                key.access_key_id
            );
            store.insert(key.access_key_id.clone(), key.secret);
            key_hosts.insert(key.access_key_id, key.host);
        }
        let mut commands = Commands::default();
        if let Some(path) = &config.command_log {
            if let Some(bytes) = files::read_if_exists(path)? {
                let file: LogFile = serde_json::from_slice(&bytes)
                    .with_context(|| format!("reading the command log {}", path.display()))?;
                anyhow::ensure!(
                    file.version == LOG_FILE_VERSION,
                    "the command log {} has version {}, this agent reads {LOG_FILE_VERSION}",
                    path.display(),
                    file.version
                );
                for entry in file.entries {
                    commands.record(entry, config.max_command_log);
                }
            }
        }
        Ok(Arc::new(AgentService {
            backend,
            keys: store,
            key_hosts,
            nonces: BoundedNonceGuard::new(config.nonce_capacity.max(1)),
            limits: Limits::default(),
            config,
            extra: RwLock::new(None),
            commands: Mutex::new(commands),
            persist: tokio::sync::Mutex::new(()),
        }))
    }

    /// Adds (or replaces) the deployment's extra actions; returns the same service.
    pub fn with_extra_actions(self: Arc<Self>, extra: ExtraActions) -> Arc<Self> {
        *self.extra.write().unwrap_or_else(|e| e.into_inner()) = Some(extra);
        self
    }

    /// Serves until `shutdown` completes, then lets in-flight requests and commands already
    /// handed to the backend finish (at most 30 s in all).
    pub async fn serve(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) {
        let router = Router::new().fallback(rpc).with_state(self.clone());
        let slots = Arc::new(tokio::sync::Semaphore::new(
            self.config.max_connections.max(1),
        ));
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT);
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            let slot = tokio::select! {
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => break,
                },
                () = &mut shutdown => break,
            };
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let service = TowerToHyperService::new(router.clone());
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            let watched = graceful.watch(connection);
            tokio::spawn(async move {
                if let Err(e) = watched.await {
                    tracing::debug!(%peer, "connection ended: {e}");
                }
                drop(slot);
            });
        }
        drop(listener);
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        tokio::select! {
            () = graceful.shutdown() => {}
            () = tokio::time::sleep(DRAIN_TIMEOUT) => warn!("in-flight requests did not finish in time"),
        }
        // A command whose caller hung up has no request left to drain, but stopping the runtime
        // under it would leave a process half-restarted until ddsd retries.
        while self.commands_running() > 0 {
            if Instant::now() >= deadline {
                warn!(
                    running = self.commands_running(),
                    "commands still running at shutdown"
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn commands_running(&self) -> usize {
        self.commands
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .running
            .len()
    }

    /// Runs (or replays, or joins) one command of `host`.
    async fn command(
        self: &Arc<Self>,
        host: &str,
        command_id: &str,
        request: CommandRequest,
    ) -> Result<CommandOutcome, AgentError> {
        let (mut done, joined) = {
            let mut commands = self.commands.lock().unwrap_or_else(|e| e.into_inner());
            let key = (host.to_string(), command_id.to_string());
            if let Some(entry) = commands.log.get(&key) {
                if entry.request != request {
                    return Err(AgentError::CommandIdMismatch(command_id.to_string()));
                }
                let mut outcome = entry.outcome.clone();
                outcome.replayed = true;
                return Ok(outcome);
            }
            let same_id = commands
                .running
                .iter()
                .find(|((h, _), f)| h == host && f.command_id == command_id)
                .map(|(_, f)| (f.request.clone(), f.done.clone()));
            let process_key = (host.to_string(), request.process.clone());
            match same_id {
                Some((running, _)) if running != request => {
                    return Err(AgentError::CommandIdMismatch(command_id.to_string()));
                }
                // A caller that timed out and retried: it gets the first attempt's outcome.
                Some((_, done)) => (done, true),
                None if commands.running.contains_key(&process_key) => {
                    return Err(AgentError::Busy(request.process.clone()));
                }
                None => {
                    let (tx, rx) = watch::channel(None);
                    commands.running.insert(
                        process_key,
                        InFlight {
                            command_id: command_id.to_string(),
                            request: request.clone(),
                            done: rx.clone(),
                        },
                    );
                    let service = self.clone();
                    let (host, command_id) = (host.to_string(), command_id.to_string());
                    tokio::spawn(
                        async move { service.run_command(host, command_id, request, tx).await }
                            .in_current_span(),
                    );
                    (rx, false)
                }
            }
        };
        let finished = done
            .wait_for(Option::is_some)
            .await
            .map(|v| v.clone())
            .ok()
            .flatten()
            .unwrap_or_else(|| Err(AgentError::Failed("the command was interrupted".into())));
        finished.map(|mut outcome| {
            outcome.replayed |= joined;
            outcome
        })
    }

    async fn run_command(
        self: Arc<Self>,
        host: String,
        command_id: String,
        request: CommandRequest,
        done: watch::Sender<Finished>,
    ) {
        let started = Instant::now();
        let backend = self.backend.clone();
        let (h, r) = (host.clone(), request.clone());
        // Its own task: a panicking backend fails this command instead of leaving the process
        // gated forever.
        let call = tokio::spawn(
            async move {
                match r.kernel_version.as_deref() {
                    Some(kernel) => backend.start(&h, &r.process, kernel).await,
                    None => backend.stop(&h, &r.process).await,
                }
            }
            .in_current_span(),
        );
        let result = match call.await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("the backend failed: {e}");
                Err(AgentError::Failed(format!(
                    "{} of {} failed inside the agent",
                    request.action, request.process
                )))
            }
        };
        let result = result.map(|(changed, process)| CommandOutcome {
            command_id: command_id.clone(),
            changed,
            replayed: false,
            process,
        });
        match &result {
            Ok(outcome) => info!(
                action = %request.action,
                process = %request.process,
                command_id = %command_id,
                changed = outcome.changed,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "command done"
            ),
            Err(e) => warn!(
                action = %request.action,
                process = %request.process,
                command_id = %command_id,
                code = e.code(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "command failed: {e}"
            ),
        }
        {
            // One lock for both: a retry sees the command either running or logged.
            let mut commands = self.commands.lock().unwrap_or_else(|e| e.into_inner());
            commands
                .running
                .remove(&(host.clone(), request.process.clone()));
            // Only outcomes are remembered: a refused or failed command may be retried as is.
            if let Ok(outcome) = &result {
                commands.record(
                    LogEntry {
                        host,
                        command_id,
                        request,
                        outcome: outcome.clone(),
                    },
                    self.config.max_command_log,
                );
            }
        }
        if result.is_ok() {
            self.persist_log().await;
        }
        let _ = done.send(Some(result));
    }

    async fn persist_log(&self) {
        let Some(path) = self.config.command_log.clone() else {
            return;
        };
        let _turn = self.persist.lock().await;
        let snapshot = self
            .commands
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .snapshot();
        let written = tokio::task::spawn_blocking(move || {
            let bytes = serde_json::to_vec(&snapshot)?;
            files::write_private_atomic(&path, &bytes)
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("could not persist the command log: {e:#}"),
            Err(e) => tracing::error!("could not persist the command log: {e}"),
        }
    }

    /// A verified request of `host`: the action's JSON answer.
    async fn dispatch(
        self: &Arc<Self>,
        action: &str,
        params: BTreeMap<String, String>,
        host: &str,
    ) -> Result<serde_json::Value, RpcError> {
        let to_json = |v: Result<serde_json::Value, serde_json::Error>| {
            v.map_err(|e| {
                tracing::error!("encoding the answer: {e}");
                RpcError::from(Gateway::InternalError)
            })
        };
        match action {
            DESCRIBE_HOST => {
                let description = self.backend.describe(host).await.map_err(rpc_error)?;
                to_json(serde_json::to_value(description))
            }
            STOP_PROCESS | START_PROCESS => {
                let process = name_param(&params, "ProcessName")?;
                let kernel_version = if action == START_PROCESS {
                    Some(name_param(&params, "KernelVersion")?)
                } else {
                    None
                };
                let command_id = name_param(&params, "CommandId")?;
                let request = CommandRequest {
                    action: action.to_string(),
                    process,
                    kernel_version,
                };
                let outcome = self
                    .command(host, &command_id, request)
                    .await
                    .map_err(rpc_error)?;
                to_json(serde_json::to_value(outcome))
            }
            _ => {
                let extra = self.extra.read().unwrap_or_else(|e| e.into_inner()).clone();
                match extra.and_then(|extra| extra(action, params, host)) {
                    Some(fut) => fut.await.map_err(rpc_error),
                    None => Err(Gateway::InvalidActionNotFound.into()),
                }
            }
        }
    }
}

fn rpc_error(e: AgentError) -> RpcError {
    RpcError::new(e.code(), e.status(), e.to_string())
}

/// A required name-like parameter: 1..=[`MAX_NAME_LEN`] printable ASCII characters without
/// spaces or `/`, and not `.` or `..` (kernel versions and process names become path components).
fn name_param(params: &BTreeMap<String, String>, name: &'static str) -> Result<String, RpcError> {
    let Some(value) = params.get(name).filter(|v| !v.is_empty()) else {
        return Err(RpcError::gateway_with_detail(
            Gateway::MissingParameter,
            format!("{name} is mandatory for this action."),
        ));
    };
    let invalid = |reason: String| {
        rpc_error(AgentError::InvalidParameter {
            name,
            reason: reason.clone(),
        })
    };
    if value.len() > MAX_NAME_LEN {
        return Err(invalid(format!("at most {MAX_NAME_LEN} characters")));
    }
    if !value.bytes().all(|b| b.is_ascii_graphic() && b != b'/') || value == "." || value == ".." {
        return Err(invalid(
            "printable ASCII without spaces or '/', and not '.' or '..'".into(),
        ));
    }
    Ok(value.clone())
}

async fn rpc(State(service): State<Arc<AgentService>>, req: Request) -> Response {
    let request_id = uuid::Uuid::new_v4()
        .hyphenated()
        .encode_upper(&mut uuid::Uuid::encode_buffer())
        .to_owned();
    let span = info_span!("agent_request", request_id = %request_id);
    handle(service, req, request_id).instrument(span).await
}

async fn handle(service: Arc<AgentService>, req: Request, request_id: String) -> Response {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let headers = parts.headers;
    let host_id = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("ddsd-agent")
        .to_string();
    let method = parts.method.as_str();
    let path = parts.uri.path();
    let query = parts.uri.query().unwrap_or("");
    let fail = |error: RpcError, format: Format| {
        // A V1 SignatureDoesNotMatch message quotes the string to sign: log the code only.
        let message = if error.code() == Gateway::SignatureDoesNotMatch.code() {
            ""
        } else {
            error.message()
        };
        info!(
            code = error.code(),
            status = error.status(),
            message,
            elapsed_us = started.elapsed().as_micros() as u64,
            "request refused"
        );
        finish(
            encode_error(&error, &request_id, &host_id, format),
            &request_id,
        )
    };
    let head_only = RequestParts {
        method,
        path,
        query,
        headers: &headers,
        body: &[],
    };
    if method != "GET" && method != "POST" {
        return fail(
            Gateway::UnsupportedHttpMethod.into(),
            guess_format(&head_only),
        );
    }
    if path != "/" {
        return fail(
            Gateway::InvalidActionNotFound.into(),
            guess_format(&head_only),
        );
    }
    let body = match tokio::time::timeout(
        HEADER_TIMEOUT,
        read_body(body, &headers, service.config.max_body_bytes),
    )
    .await
    {
        Ok(Ok(body)) => body,
        Ok(Err(e)) => return fail(e, guess_format(&head_only)),
        Err(_) => {
            return fail(
                RpcError::malformed_request("The request body was not sent in time."),
                guess_format(&head_only),
            )
        }
    };
    let parts = RequestParts {
        method,
        path,
        query,
        headers: &headers,
        body: &body,
    };
    let verified = match verify(
        &parts,
        &service.keys,
        &service.nonces,
        OffsetDateTime::now_utc(),
        &service.limits,
    ) {
        Ok(v) => v,
        Err(rejection) => return fail(rejection.error, rejection.format),
    };
    let format = verified.format;
    if verified.version != AGENT_API_VERSION {
        return fail(
            RpcError::gateway_with_detail(
                Gateway::InvalidVersion,
                format!("This agent serves {AGENT_API_VERSION}."),
            ),
            format,
        );
    }
    let Some(host) = service.key_hosts.get(&verified.access_key_id).cloned() else {
        return fail(Gateway::InvalidAccessKeyIdNotFound.into(), format);
    };
    let action = verified.action.clone();
    info!(
        action = %action,
        access_key_id = %verified.access_key_id,
        host = %host,
        params = ?loggable(&verified.params),
        "request"
    );
    match service.dispatch(&action, verified.params, &host).await {
        Ok(value) => {
            info!(
                action = %action,
                elapsed_us = started.elapsed().as_micros() as u64,
                "request done"
            );
            finish(
                encode_success(&action, &request_id, &value, format),
                &request_id,
            )
        }
        Err(e) => fail(e, format),
    }
}

fn finish(encoded: Encoded, request_id: &str) -> Response {
    let mut response = Response::new(Body::from(encoded.body));
    *response.status_mut() =
        StatusCode::from_u16(encoded.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(encoded.content_type));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-acs-request-id", id);
    }
    response
}

fn too_large(limit: usize) -> RpcError {
    RpcError::malformed_request(format!("The request body is larger than {limit} bytes."))
}

async fn read_body(
    mut body: Body,
    headers: &axum::http::HeaderMap,
    limit: usize,
) -> Result<Bytes, RpcError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit));
    }
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|_| RpcError::malformed_request("The request body could not be read."))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(too_large(limit));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(buf))
}

#[cfg(test)]
mod tests;
