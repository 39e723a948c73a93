//! The HTTP endpoint. Every request, whatever its method or path, goes through one fallback handler:
//!
//! 1. a RequestId (upper-case UUID v4) and a tracing span carrying it;
//! 2. the in-flight cap (`Throttling` when full), method and path (`GET`/`POST` on `/`), then the
//!    body, read up to `max_body_bytes`;
//! 3. `acs_rpc::verify` (signature, timestamp, nonce, parameters, Format), then the AccessKey's
//!    request rate (`Throttling.User`);
//! 4. `Version` must be `2015-12-01`, then the action table picks the handler;
//! 5. the handler runs as its own task (a panic in it becomes `InternalError`, not a dropped
//!    connection); its value or error is encoded in the request's Format.
//!
//! Every answer — including a refused method, an unknown path or an oversized body — is an
//! Alibaba-style envelope with `x-acs-request-id`; nothing a client sends produces a 5xx.
//! Throttling answers also carry `x-acs-retry-after` (milliseconds, as the Tea SDKs read it).
//! The accept loop holds at most `max_connections` connections; see `crate::server::limits` for the map
//! of every limit.

use std::future::Future;
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use acs_rpc::{
    encode_error, encode_success, guess_format, verify, BoundedNonceGuard, Encoded, Format,
    Gateway, KeyStore, Limits, RequestParts, RpcError,
};
use anyhow::Context as _;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Router;
use http_body_util::BodyExt as _;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tower::ServiceExt as _;
use tracing::{field, info, info_span, warn, Instrument as _, Span};

use crate::server::actions::errors::ApiError;
use crate::server::actions::{
    self, kernels::KernelCatalog, regions::RegionCatalog, Context, API_VERSION,
};
use crate::server::config::Config;
use crate::server::keys;
use crate::server::limits::Limiter;
use crate::server::metrics::MetricsAccess;
use crate::server::plane::mongodb::MongoPlane;
use crate::server::plane::sim::{SimPlane, SimPlaneConfig};
use crate::server::plane::DataPlane;
use crate::server::runtime::{Runtime, RuntimeConfig};
use crate::server::store::{SqliteOptions, SqliteStore, Store};

/// Shared state of the endpoint.
pub struct App {
    pub keys: Arc<dyn KeyStore>,
    pub nonces: BoundedNonceGuard,
    pub limits: Limits,
    pub ctx: Arc<Context>,
    pub max_body_bytes: usize,
    pub body_read_timeout: Duration,
    /// `HostId` for requests without a `Host` header.
    pub endpoint: String,
    /// Who may read `GET /metrics`.
    pub metrics_access: MetricsAccess,
    /// The in-flight cap and the per-AccessKey request rate.
    pub limiter: Limiter,
    /// The web console's sessions and live streams (`/console`).
    pub console: crate::server::console::Console,
}

/// The TCP peer of a connection, attached to each of its requests (for the `/metrics` access rule).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// Set on a response by the request path once the request named an action of the table: the
/// `action` label of its metrics.
#[derive(Debug, Clone, Copy)]
struct ActionLabel(&'static str);

/// Set on every response by [`finish`]: OK or the error code, the `code` label of its metrics.
#[derive(Debug, Clone)]
struct CodeLabel(String);

pub fn router(app: Arc<App>) -> Router {
    Router::new().fallback(rpc).with_state(app)
}

/// What a started server hands to a co-located client such as the demo fleet: the store and
/// kernel catalog it shares the process with, where it listens and the admin key to sign with.
pub struct Listening {
    pub store: Arc<dyn Store>,
    pub kernels: Arc<KernelCatalog>,
    /// `http://IP:PORT` the process listens on (a wildcard address replaced by loopback).
    pub endpoint: String,
    pub access_key_id: String,
    pub secret: acs_rpc::Secret,
    pub data_dir: std::path::PathBuf,
    pub region: String,
    pub sim_speed: f64,
}

/// Called once the listener is bound and the startup lines are printed (it must not block).
pub type OnListening = Box<dyn FnOnce(Listening) + Send>;

/// Binds, prints the startup lines, serves until SIGINT/SIGTERM, then drains in-flight requests.
pub async fn serve(config: Config, on_listening: Option<OnListening>) -> anyhow::Result<()> {
    let regions = match &config.regions_file {
        Some(path) => RegionCatalog::from_file(path)?,
        None => RegionCatalog::embedded(),
    };
    if !regions.contains(&config.region) {
        warn!(region = %config.region, "the configured region is not in the region catalog");
    }
    let shutdown = shutdown_signal()?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let local = listener.local_addr()?;
    let admin = keys::load_or_create_admin_key(&config.data_dir)?;
    let tls = match &config.tls {
        Some(source) => {
            let (cert, key) =
                crate::server::tls::resolve_files(source, &config.data_dir, config.listen.ip())?;
            Some((crate::server::tls::acceptor(&cert, &key)?, cert))
        }
        None => None,
    };
    let key_store = keys::key_store(&admin, &config.access_keys)?;
    let data_dir = config.data_dir.clone();
    let store: Arc<dyn Store> = Arc::new(
        tokio::task::spawn_blocking(move || {
            SqliteStore::open_in(&data_dir, SqliteOptions::default())
        })
        .await?
        .context("opening the store")?,
    );
    let kernels = Arc::new(KernelCatalog::load(&*store).await?);
    let (plane, sim, mongo, wire_handle) = match config.plane {
        crate::server::config::PlaneKind::Sim => {
            let (sim, wire_handle) = open_sim_plane(&config, &store).await?;
            (
                sim.clone() as Arc<dyn DataPlane>,
                Some(sim),
                None,
                wire_handle,
            )
        }
        crate::server::config::PlaneKind::Mongodb => {
            info!("data plane: mongodb (deployments imported with DdsdImportDBInstance, driven through host agents)");
            let mongo = Arc::new(MongoPlane::new(store.clone(), config.mongodb.clone()));
            (mongo.clone() as Arc<dyn DataPlane>, None, Some(mongo), None)
        }
    };
    // Resumes every operation a previous run left unfinished (a crash, kill -9, power loss).
    let runtime = Runtime::start(
        store.clone(),
        plane.clone(),
        RuntimeConfig {
            max_concurrent_operations: config.limits.max_concurrent_operations,
            ..RuntimeConfig::default()
        },
    );
    let mut admin_keys: std::collections::BTreeSet<String> =
        config.admin_access_keys.iter().cloned().collect();
    admin_keys.insert(admin.access_key_id.clone());
    let ctx = Arc::new(Context {
        region: config.region.clone(),
        regions,
        store,
        kernels,
        admin_keys,
        runtime: Some(runtime.handle()),
        plane: Some(plane.clone()),
        sim,
        mongo,
        rolling: config.rolling.clone(),
        api_faults: Default::default(),
    });
    // Starts the scheduled O&M events that are due (minor-version rollouts).
    let events = crate::server::actions::events::Scheduler::spawn(
        ctx.clone(),
        crate::server::actions::events::TICK,
    );
    let limits = &config.limits;
    let app = Arc::new(App {
        keys: Arc::new(key_store),
        nonces: BoundedNonceGuard::new(limits.nonce_capacity),
        limits: limits.rpc_limits(),
        ctx,
        max_body_bytes: limits.max_body_bytes,
        body_read_timeout: Duration::from_millis(limits.body_read_timeout_ms),
        endpoint: config.endpoint.clone().unwrap_or_else(|| local.to_string()),
        metrics_access: config.metrics,
        limiter: Limiter::new(limits),
        console: crate::server::console::Console::new(tls.is_some()),
    });

    {
        let mut out = std::io::stdout().lock();
        if admin.created {
            writeln!(out, "AccessKeyId: {}", admin.access_key_id)?;
            writeln!(out, "AccessKeySecret: {}", admin.secret.expose())?;
        }
        match &tls {
            Some((_, cert)) => {
                writeln!(out, "TLS certificate: {}", cert.display())?;
                writeln!(out, "ddsd listening on https://{local}")?;
            }
            None => writeln!(out, "ddsd listening on http://{local}")?,
        }
        out.flush()?;
    }
    if admin.created {
        info!(access_key_id = %admin.access_key_id, data_dir = %config.data_dir.display(), "created the admin access key");
    }
    info!(listen = %local, region = %config.region, data_dir = %config.data_dir.display(), "ddsd serving");

    if let Some(hook) = on_listening {
        let ip = if local.ip().is_unspecified() {
            std::net::IpAddr::from([127, 0, 0, 1])
        } else {
            local.ip()
        };
        hook(Listening {
            store: app.ctx.store.clone(),
            kernels: app.ctx.kernels.clone(),
            endpoint: format!("http://{}", std::net::SocketAddr::new(ip, local.port())),
            access_key_id: admin.access_key_id.clone(),
            secret: admin.secret.clone(),
            data_dir: config.data_dir.clone(),
            region: config.region.clone(),
            sim_speed: config.sim_speed,
        });
    }

    // hyper has no header read limit without a timer, and axum::serve sets none: a client
    // trickling its request head would hold a connection forever.
    let header_timeout = Duration::from_millis(limits.header_read_timeout_ms);
    let max_connections = limits.max_connections;
    serve_connections(
        listener,
        router(app),
        tls.map(|(acceptor, _)| acceptor),
        header_timeout,
        max_connections,
        shutdown,
    )
    .await;
    events.shutdown();
    // Operations stop between steps; what they persisted resumes on the next start.
    runtime.shutdown().await;
    if let Some(w) = wire_handle {
        w.shutdown().await;
    }
    info!("ddsd stopped");
    Ok(())
}

/// The embedded simulated fleet and, when `[wire]` is on, its processes' MongoDB listeners.
async fn open_sim_plane(
    config: &Config,
    store: &Arc<dyn Store>,
) -> anyhow::Result<(
    Arc<SimPlane>,
    Option<crate::server::wire::supervisor::WireHandle>,
)> {
    let wire = &config.wire;
    let ports = if wire.enabled {
        Some(Arc::new(match wire.port_range {
            Some((first, last)) => crate::server::plane::ports::PortBook::new(first, last)
                .map_err(anyhow::Error::msg)?,
            None => crate::server::plane::ports::PortBook::auto(wire.bind),
        }))
    } else {
        None
    };
    let plane = Arc::new(
        SimPlane::open(
            store.clone(),
            SimPlaneConfig {
                speed: config.sim_speed,
                ports,
                advertised_host: wire.advertised_host.clone(),
                ..SimPlaneConfig::default()
            },
        )
        .await
        .context("opening the simulated data plane")?,
    );
    let wire_handle = wire.enabled.then(|| {
        info!(bind = %wire.bind, advertised_host = %wire.advertised_host, "simulated processes speak MongoDB's wire protocol");
        crate::server::wire::supervisor::Supervisor::spawn(
            plane.clone(),
            store.clone(),
            crate::server::wire::supervisor::WireSettings {
                bind: wire.bind,
                max_listeners: wire.max_listeners,
                limits: mongo_wire::WireLimits {
                    max_connections: wire.max_connections_per_member,
                    ..mongo_wire::WireLimits::default()
                },
                ..Default::default()
            },
        )
    });
    Ok((plane, wire_handle))
}

/// How long shutdown waits for in-flight requests before exiting anyway.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The accept loop: HTTP/1.1 (what every SDK speaks), over TLS when `tls` is given, with a header
/// read timeout (which also bounds the TLS handshake) and at most `max_connections` open
/// connections; on `shutdown` it stops accepting, lets in-flight requests finish (closing idle
/// keep-alive connections), then returns.
///
/// At the connection cap the loop stops calling `accept`: further clients wait in the kernel's
/// listen backlog (and their connect or first request times out on their side) rather than each
/// costing a task and buffers here.
pub async fn serve_connections(
    listener: TcpListener,
    router: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    header_timeout: Duration,
    max_connections: usize,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections.max(1)));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
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
                    // EMFILE and friends: back off instead of spinning.
                    warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(router.clone().map_request(
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(PeerAddr(peer));
                req
            },
        ));
        let watcher = graceful.watcher();
        match &tls {
            None => {
                let connection = builder.serve_connection(TokioIo::new(stream), service);
                let watched = watcher.watch(connection);
                tokio::spawn(async move {
                    if let Err(e) = watched.await {
                        tracing::debug!(%peer, "connection ended: {e}");
                    }
                    drop(slot);
                });
            }
            Some(acceptor) => {
                let handshake = acceptor.accept(stream);
                let builder = builder.clone();
                tokio::spawn(async move {
                    // A client that stalls its handshake holds a connection slot like one that
                    // trickles its request head: the same bound applies.
                    let stream = match tokio::time::timeout(header_timeout, handshake).await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, "TLS handshake failed: {e}");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    if let Err(e) = watcher.watch(connection).await {
                        tracing::debug!(%peer, "connection ended: {e}");
                    }
                    drop(slot);
                });
            }
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN_TIMEOUT) => warn!("in-flight requests did not finish in time"),
    }
}

/// Installs the SIGTERM/SIGINT handlers now and returns a future that completes on either.
///
/// Installing eagerly matters: a handler registered lazily on first poll would leave a window
/// after the listening line in which SIGTERM still kills the process with the default action.
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => info!("SIGTERM received, shutting down"),
            _ = int.recv() => info!("SIGINT received, shutting down"),
        }
    })
}

async fn rpc(State(app): State<Arc<App>>, req: Request) -> Response {
    if crate::server::console::owns(req.uri().path()) {
        return crate::server::console::handle(app, req).await;
    }
    if req.uri().path() == "/metrics" && req.method() == axum::http::Method::GET {
        let peer = req.extensions().get::<PeerAddr>().map(|p| p.0.ip());
        if app.metrics_access.allows(peer) {
            return metrics_response(&app);
        }
    }
    let started = Instant::now();
    // A v4 UUID from the thread-local CSPRNG: `Uuid::new_v4` asks the kernel for 16 bytes on
    // every request.
    let request_id = uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .hyphenated()
        .encode_upper(&mut uuid::Uuid::encode_buffer())
        .to_owned();
    let span = info_span!("request", request_id = %request_id, action = field::Empty);
    let response = handle(app, req, request_id).instrument(span).await;
    let action = response
        .extensions()
        .get::<ActionLabel>()
        .map_or(crate::server::metrics::NO_ACTION, |a| a.0);
    let code = response
        .extensions()
        .get::<CodeLabel>()
        .map_or("", |c| c.0.as_str());
    crate::server::metrics::global().request(action, code, started.elapsed());
    response
}

/// `GET /metrics`: the Prometheus text format, not an RPC envelope.
fn metrics_response(app: &App) -> Response {
    let text = crate::server::metrics::global().render(app.nonces.len());
    let mut response = Response::new(Body::from(text));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

async fn handle(app: Arc<App>, req: Request, request_id: String) -> Response {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let mut headers = parts.headers;
    // An absolute-form request target carries the authority in the URI; V3 signs it as `host`.
    if !headers.contains_key(HOST) {
        if let Some(value) = parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            headers.insert(HOST, value);
        }
    }
    let host_id = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map_or_else(|| app.endpoint.clone(), str::to_owned);
    let method = parts.method.as_str();
    let path = parts.uri.path();
    let query = parts.uri.query().unwrap_or("");
    let reply = |encoded: Encoded, code: &str, retry_after_ms: Option<u64>| {
        finish(encoded, &request_id, code, started, retry_after_ms)
    };
    let fail = |error: RpcError, format: Format| {
        log_refusal(&error);
        reply(
            encode_error(&error, &request_id, &host_id, format),
            error.code(),
            error.retry_after_ms(),
        )
    };
    let head_only = RequestParts {
        method,
        path,
        query,
        headers: &headers,
        body: &[],
    };

    let _slot = match app.limiter.admit() {
        Ok(slot) => slot,
        Err(e) => return fail(e, guess_format(&head_only)),
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
    let read = tokio::time::timeout(
        app.body_read_timeout,
        read_body(body, &headers, app.max_body_bytes),
    );
    let body = match read.await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => return fail(e, guess_format(&head_only)),
        Err(_) => {
            let error = ApiError::RequestTimeout {
                timeout_ms: app.body_read_timeout.as_millis(),
            };
            return fail(error.into(), guess_format(&head_only));
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
        &*app.keys,
        &app.nonces,
        OffsetDateTime::now_utc(),
        &app.limits,
    ) {
        Ok(v) => v,
        Err(rejection) => return fail(rejection.error, rejection.format),
    };
    Span::current().record("action", verified.action.as_str());
    let format = verified.format;
    let action = verified.action.clone();
    let outcome = run_action(&app, verified).await;
    let mut response = match outcome.result {
        Ok(value) => reply(
            encode_success(&action, &request_id, &value, format),
            "OK",
            None,
        ),
        Err(error) => fail(error, format),
    };
    if let Some(name) = outcome.action {
        response.extensions_mut().insert(ActionLabel(name));
    }
    response
}

/// What running one action for an authenticated caller gave: the table's name of the action (when
/// it is in the table) and its value or error.
pub struct ActionOutcome {
    pub action: Option<&'static str>,
    pub result: Result<serde_json::Value, RpcError>,
}

impl ActionOutcome {
    fn refused(error: RpcError) -> Self {
        Self {
            action: None,
            result: Err(error),
        }
    }
}

/// Everything after the signature: the AccessKey's request rate, the API version, the action
/// table's row (who may call it, which plane), armed API faults, then the handler as its own task.
/// The RPC path runs every verified request through here, and so does the console
/// ([`call_action`]): one path to the handlers.
pub async fn run_action(app: &App, verified: acs_rpc::Verified) -> ActionOutcome {
    if let Err(e) = app.limiter.check_key(&verified.access_key_id) {
        return ActionOutcome::refused(e);
    }
    if verified.version != API_VERSION {
        return ActionOutcome::refused(RpcError::gateway_with_detail(
            Gateway::InvalidVersion,
            format!("This endpoint serves {API_VERSION}."),
        ));
    }
    let Some(spec) = actions::lookup(&verified.action) else {
        return ActionOutcome::refused(Gateway::InvalidActionNotFound.into());
    };
    let action = Some(spec.name);
    if let Some(injected) = app.ctx.api_faults.fire(spec.name, &verified) {
        if let Some(delay) = injected.delay {
            tokio::time::sleep(delay).await;
        }
        if let Some(error) = injected.error {
            return ActionOutcome {
                action,
                result: Err(error),
            };
        }
    }
    let ctx = app.ctx.clone();
    let span = Span::current();
    let outcome = tokio::spawn(spec.run(ctx, verified).instrument(span)).await;
    let result = match outcome {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(error.into()),
        Err(join) => {
            tracing::error!("handler failed: {join}");
            Err(Gateway::InternalError.into())
        }
    };
    ActionOutcome { action, result }
}

/// Runs `action` with `params` for `access_key_id` exactly as a verified RPC request from that key
/// would run (the caller has authenticated the key another way: the console's session). The
/// request-level limits apply as on the RPC path: the in-flight cap and the parameter bounds
/// (count, name and value lengths), then [`run_action`]. Protocol parameters (`Action`,
/// `Signature`, ...) among `params` are dropped, as verification drops them. Each call is counted in
/// the metrics like an RPC request.
pub async fn call_action(
    app: &App,
    action: &str,
    params: actions::Params,
    access_key_id: &str,
) -> ActionOutcome {
    let started = Instant::now();
    let outcome = call_action_inner(app, action, params, access_key_id).await;
    let code = match &outcome.result {
        Ok(_) => "OK",
        Err(e) => {
            log_refusal(e);
            e.code()
        }
    };
    crate::server::metrics::global().request(
        outcome.action.unwrap_or(crate::server::metrics::NO_ACTION),
        code,
        started.elapsed(),
    );
    outcome
}

async fn call_action_inner(
    app: &App,
    action: &str,
    mut params: actions::Params,
    access_key_id: &str,
) -> ActionOutcome {
    let _slot = match app.limiter.admit() {
        Ok(slot) => slot,
        Err(e) => return ActionOutcome::refused(e),
    };
    params.retain(|name, _| !acs_rpc::PROTOCOL_PARAMS.contains(&name.as_str()));
    if params.len() > app.limits.max_params {
        return ActionOutcome::refused(RpcError::malformed_request(format!(
            "More than {} parameters.",
            app.limits.max_params
        )));
    }
    for (name, value) in &params {
        if name.len() > app.limits.max_name_bytes {
            return ActionOutcome::refused(RpcError::malformed_request(format!(
                "A parameter name is longer than {} bytes.",
                app.limits.max_name_bytes
            )));
        }
        if value.len() > app.limits.max_value_bytes {
            return ActionOutcome::refused(RpcError::invalid_parameter(
                name,
                format!(
                    "Its value is longer than {} bytes.",
                    app.limits.max_value_bytes
                ),
            ));
        }
    }
    let verified = acs_rpc::Verified {
        action: action.to_string(),
        version: API_VERSION.to_string(),
        params,
        format: Format::Json,
        access_key_id: access_key_id.to_string(),
        scheme: acs_rpc::Scheme::V3,
        nonce: uuid::Builder::from_random_bytes(rand::random())
            .into_uuid()
            .to_string(),
        timestamp: OffsetDateTime::now_utc(),
    };
    run_action(app, verified).await
}

fn log_refusal(error: &RpcError) {
    // A V1 SignatureDoesNotMatch message quotes every parameter (passwords included): log the code only.
    if error.code() == Gateway::SignatureDoesNotMatch.code() {
        info!(
            code = error.code(),
            status = error.status(),
            "request refused"
        );
    } else if error.status() >= 500 {
        tracing::error!(
            code = error.code(),
            status = error.status(),
            message = error.message(),
            "request failed"
        );
    } else {
        info!(
            code = error.code(),
            status = error.status(),
            message = error.message(),
            "request refused"
        );
    }
}

fn too_large(limit: usize) -> RpcError {
    ApiError::RequestEntityTooLarge { limit_bytes: limit }.into()
}

/// Reads the body up to `limit` bytes. An oversized body is still read and discarded up to
/// [`DRAIN_CAP_BYTES`] before answering: closing the socket on a client that is still writing
/// makes it fail with a broken pipe instead of reading the 413 envelope.
async fn read_body(mut body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, RpcError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared.filter(|&n| n > limit as u64) {
        if n <= DRAIN_CAP_BYTES as u64 {
            drain(body, 0).await;
        }
        return Err(too_large(limit));
    }
    let mut buf: Vec<u8> = Vec::with_capacity(declared.map_or(0, |n| n as usize));
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|_| RpcError::malformed_request("The request body could not be read."))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if buf.len() + data.len() > limit {
            drain(body, buf.len() + data.len()).await;
            return Err(too_large(limit));
        }
        buf.extend_from_slice(&data);
    }
    Ok(Bytes::from(buf))
}

/// Most an oversized request may make the server read (and discard) before it answers.
const DRAIN_CAP_BYTES: usize = 8 * 1024 * 1024;

async fn drain(mut body: Body, mut seen: usize) {
    while seen <= DRAIN_CAP_BYTES {
        match body.frame().await {
            Some(Ok(frame)) => seen += frame.data_ref().map_or(0, |d| d.len()),
            _ => return,
        }
    }
}

fn finish(
    encoded: Encoded,
    request_id: &str,
    code: &str,
    started: Instant,
    retry_after_ms: Option<u64>,
) -> Response {
    let status = StatusCode::from_u16(encoded.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    info!(
        status = status.as_u16(),
        code,
        elapsed_us = started.elapsed().as_micros() as u64,
        "request done"
    );
    let mut response = Response::new(Body::from(encoded.body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(encoded.content_type));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-acs-request-id", id);
    }
    if let Some(ms) = retry_after_ms {
        headers.insert("x-acs-retry-after", HeaderValue::from(ms));
    }
    response
        .extensions_mut()
        .insert(CodeLabel(code.to_string()));
    response
}
