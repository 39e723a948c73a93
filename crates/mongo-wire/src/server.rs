//! The tokio server loop: [`WireListener`] accepts connections on one address and runs each as a
//! sequence of request → reply turns against a [`Service`]. Authentication, the handshake
//! extensions and every limit are enforced here, so a service only sees well-formed commands from
//! clients allowed to run them.
//!
//! Failure handling: a frame that cannot be trusted (bad length, truncated, bad BSON, unknown or
//! compressed op code, bad checksum) closes that connection only; a well-formed message carrying
//! a bad command gets an error reply. A connection over `max_connections` is accepted and closed.
//! [`WireListener::stop`] closes the port (new connects are refused) and every open connection,
//! including ones whose service is still answering (an awaitable `hello`).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::Arc;

use bson::Document;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::auth::{allowed_unauthenticated, AuthSession, AuthenticatedUser, CredentialStore};
use crate::command::{Command, Reply, Transport};
use crate::error::{ErrorCode, MongoError};
use crate::frame::{
    decode_body, encode_op_msg, encode_op_reply, FrameError, Message, MsgHeader, OpMsg, HEADER_LEN,
};
use crate::limits::WireLimits;

/// What one connection is, as a service sees it.
#[derive(Debug, Clone)]
pub struct ConnCtx {
    /// Unique per listener start, increasing.
    pub id: u64,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    user: Option<AuthenticatedUser>,
}

impl ConnCtx {
    /// The user this connection authenticated as, if any.
    pub fn user(&self) -> Option<&AuthenticatedUser> {
        self.user.as_ref()
    }
}

/// A MongoDB server's command handling. One value serves every connection of a listener.
///
/// `handle` sees every command except `saslStart`, `saslContinue` and `logout`, which the
/// server loop answers. Its `hello`/`isMaster` reply is completed by the server loop with the
/// advertised limits and the authentication extensions. A service may take as long as it likes
/// (an awaitable `hello` waits for a topology change or `maxAwaitTimeMS`): stopping the listener
/// drops the pending future.
pub trait Service: Send + Sync + 'static {
    fn handle(&self, conn: &ConnCtx, cmd: Command) -> impl Future<Output = Reply> + Send;

    /// Whether `name` is a command this service has. mongod looks a command up before it checks
    /// authorization, so an unknown command is `CommandNotFound` (59) even before login; the
    /// default (every name) makes it `Unauthorized` (13) instead.
    fn has_command(&self, _name: &str) -> bool {
        true
    }

    /// Whether a client at `peer` may connect at all (an IP whitelist). A refused client's
    /// connection is closed at once, before a byte is read; the default admits everyone.
    fn admits(&self, _peer: &SocketAddr) -> bool {
        true
    }

    /// A connection was accepted (and fit under the connection limit).
    fn on_open(&self, _conn: &ConnCtx) {}

    /// A connection ended, for whatever reason.
    fn on_close(&self, _conn: &ConnCtx) {}
}

/// How a listener serves.
#[derive(Clone, Default)]
pub struct ServerConfig {
    pub limits: WireLimits,
    /// `None` turns authentication off: every command runs unauthenticated, as on a mongod
    /// started without `--auth`. `saslStart` then fails with `AuthenticationFailed`.
    pub credentials: Option<Arc<dyn CredentialStore>>,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("limits", &self.limits)
            .field("auth", &self.credentials.is_some())
            .finish()
    }
}

struct Running {
    local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    accept_task: tokio::task::JoinHandle<()>,
    open: Arc<Semaphore>,
}

/// A listener that can be started and stopped any number of times on the same address.
pub struct WireListener<S: Service> {
    addr: SocketAddr,
    service: Arc<S>,
    config: Arc<ServerConfig>,
    running: Option<Running>,
}

impl<S: Service> WireListener<S> {
    /// A stopped listener for `addr`. Port 0 picks a free port at the first start and keeps it
    /// for later starts.
    pub fn new(addr: SocketAddr, service: Arc<S>, config: ServerConfig) -> Self {
        WireListener {
            addr,
            service,
            config: Arc::new(config),
            running: None,
        }
    }

    /// Binds and starts accepting. Starting a running listener is a no-op.
    pub async fn start(&mut self) -> std::io::Result<SocketAddr> {
        if let Some(running) = &self.running {
            return Ok(running.local_addr);
        }
        let listener = TcpListener::bind(self.addr).await?;
        let local_addr = listener.local_addr()?;
        self.addr = local_addr;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let open = Arc::new(Semaphore::new(self.config.limits.max_connections));
        let shared = Arc::new(Shared {
            service: Arc::clone(&self.service),
            config: Arc::clone(&self.config),
            in_flight: Semaphore::new(self.config.limits.max_in_flight_requests),
            next_conn_id: AtomicU64::new(1),
            next_request_id: AtomicI32::new(1),
        });
        let accept_task = tokio::spawn(accept_loop(
            listener,
            shared,
            Arc::clone(&open),
            shutdown_rx,
        ));
        self.running = Some(Running {
            local_addr,
            shutdown,
            accept_task,
            open,
        });
        Ok(local_addr)
    }

    /// Closes the port and every connection, and waits until all of them are gone.
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.shutdown.send(true);
            let _ = running.accept_task.await;
        }
    }

    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// The bound address while running.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.running.as_ref().map(|r| r.local_addr)
    }

    /// Established connections right now.
    pub fn open_connections(&self) -> usize {
        self.running.as_ref().map_or(0, |r| {
            self.config.limits.max_connections - r.open.available_permits()
        })
    }

    pub fn limits(&self) -> &WireLimits {
        &self.config.limits
    }
}

impl<S: Service> Drop for WireListener<S> {
    fn drop(&mut self) {
        // Without an await the tasks cannot be joined, but they must not outlive the listener.
        if let Some(running) = self.running.take() {
            let _ = running.shutdown.send(true);
        }
    }
}

struct Shared<S> {
    service: Arc<S>,
    config: Arc<ServerConfig>,
    in_flight: Semaphore,
    next_conn_id: AtomicU64,
    next_request_id: AtomicI32,
}

async fn accept_loop<S: Service>(
    listener: TcpListener,
    shared: Arc<Shared<S>>,
    open: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    // The connections get their own signal, sent once the port is closed: a client that sees its
    // connection close and reconnects at once is refused, not accepted and reset.
    let (close_all, connection_shutdown) = watch::channel(false);
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else {
                    // Out of descriptors and the like: back off instead of spinning.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                };
                if !shared.service.admits(&peer) {
                    tracing::debug!(%peer, "wire connection refused: not in the whitelist");
                    drop(stream);
                    continue;
                }
                let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
                    tracing::debug!(%peer, "wire connection refused: connection limit");
                    drop(stream);
                    continue;
                };
                let shared = Arc::clone(&shared);
                let shutdown = connection_shutdown.clone();
                connections.spawn(async move {
                    serve_connection(stream, peer, shared, shutdown).await;
                    drop(permit);
                });
            }
        }
    }
    // Closing the port first: from here on connects are refused.
    drop(listener);
    let _ = close_all.send(true);
    while connections.join_next().await.is_some() {}
}

/// Calls `on_close` however the connection task ends (including a panicking service).
struct CloseGuard<'a, S: Service> {
    service: &'a S,
    ctx: ConnCtx,
}

impl<S: Service> Drop for CloseGuard<'_, S> {
    fn drop(&mut self) {
        self.service.on_close(&self.ctx);
    }
}

/// Why a connection loop ends.
enum End {
    Shutdown,
    Closed,
}

async fn serve_connection<S: Service>(
    mut stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared<S>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let ctx = ConnCtx {
        id: shared.next_conn_id.fetch_add(1, Ordering::Relaxed),
        peer,
        local,
        user: None,
    };
    shared.service.on_open(&ctx);
    let mut guard = CloseGuard {
        service: &*shared.service,
        ctx,
    };
    let mut session = AuthSession::default();
    loop {
        let turn = tokio::select! {
            _ = shutdown.changed() => Err(End::Shutdown),
            turn = one_turn(&mut stream, &shared, &mut guard.ctx, &mut session) => turn,
        };
        match turn {
            Ok(()) => {}
            Err(End::Shutdown) | Err(End::Closed) => break,
        }
    }
}

/// Reads one request, answers it (unless `moreToCome`), writes the reply.
async fn one_turn<S: Service>(
    stream: &mut TcpStream,
    shared: &Shared<S>,
    ctx: &mut ConnCtx,
    session: &mut AuthSession,
) -> Result<(), End> {
    let limits = &shared.config.limits;
    let (header, message) = match read_message(stream, limits).await {
        Ok(Some(read)) => read,
        Ok(None) => return Err(End::Closed),
        Err(err) => {
            tracing::debug!(conn = ctx.id, error = %err, "wire connection closed: bad frame");
            return Err(End::Closed);
        }
    };
    let parsed = Command::from_message(&header, message);
    let (transport, more_to_come) = match &parsed {
        Ok(cmd) => (cmd.transport, cmd.more_to_come),
        Err(_) => (transport_of(header.op_code), false),
    };
    let reply = match parsed {
        Ok(cmd) => dispatch(shared, ctx, session, cmd).await,
        Err(err) => Reply::error(&err),
    };
    if more_to_come {
        // The client will not read a reply; a write that failed for lack of a primary must still
        // reach it, and closing the connection is the only way left (the OP_MSG spec's rule).
        return match reply_code(&reply) {
            Some(code) if is_not_primary(code) => Err(End::Closed),
            _ => Ok(()),
        };
    }
    let request_id = shared.next_request_id.fetch_add(1, Ordering::Relaxed);
    let bytes = encode_reply(
        request_id,
        header.request_id,
        transport,
        &reply.body,
        limits,
    );
    stream.write_all(&bytes).await.map_err(|_| End::Closed)
}

fn transport_of(op_code: i32) -> Transport {
    if op_code == crate::frame::op_code::OP_QUERY {
        Transport::OpQuery
    } else {
        Transport::OpMsg
    }
}

fn reply_code(reply: &Reply) -> Option<i32> {
    reply.body.get_i32("code").ok().filter(|_| !reply.is_ok())
}

fn is_not_primary(code: i32) -> bool {
    [
        ErrorCode::NotWritablePrimary,
        ErrorCode::NotPrimaryNoSecondaryOk,
        ErrorCode::NotPrimaryOrSecondary,
    ]
    .iter()
    .any(|c| c.code() == code)
}

/// Encodes a reply; one the limits would refuse from a client becomes a `BSONObjectTooLarge`
/// error, so a service bug cannot push an oversize frame at a driver.
fn encode_reply(
    request_id: i32,
    response_to: i32,
    transport: Transport,
    body: &Document,
    limits: &WireLimits,
) -> Vec<u8> {
    let encode = |body: &Document| -> Result<Vec<u8>, FrameError> {
        match transport {
            Transport::OpMsg => encode_op_msg(
                request_id,
                response_to,
                &OpMsg {
                    flags: 0,
                    body: body.clone(),
                    sequences: Vec::new(),
                },
            ),
            Transport::OpQuery => encode_op_reply(request_id, response_to, 0, body),
        }
    };
    match encode(body) {
        Ok(bytes) if bytes.len() <= limits.max_message_size_bytes => bytes,
        _ => {
            let err = MongoError::new(
                ErrorCode::BSONObjectTooLarge,
                "reply exceeds the maximum message size",
            );
            encode(&err.to_document()).unwrap_or_default()
        }
    }
}

async fn dispatch<S: Service>(
    shared: &Shared<S>,
    ctx: &mut ConnCtx,
    session: &mut AuthSession,
    cmd: Command,
) -> Reply {
    let store = shared.config.credentials.as_deref();
    if cmd.transport == Transport::OpQuery && !cmd.is_hello() {
        return Reply::error(&MongoError::new(
            ErrorCode::UnsupportedOpQueryCommand,
            format!(
                "Unsupported OP_QUERY command: {}. The client driver may require an upgrade.",
                cmd.name
            ),
        ));
    }
    let answered = match cmd.name.as_str() {
        "saslStart" => Some(session.sasl_start(store, &cmd.db, &cmd.body)),
        "saslContinue" => Some(session.sasl_continue(&cmd.body)),
        "logout" => Some(Ok(session.logout())),
        _ => None,
    };
    if let Some(result) = answered {
        ctx.user = session.user().cloned();
        return Reply::from(result);
    }
    if store.is_some() && session.user().is_none() && !allowed_unauthenticated(&cmd.name) {
        if !shared.service.has_command(&cmd.name) {
            return Reply::error(&MongoError::command_not_found(&cmd.name));
        }
        return Reply::error(&MongoError::requires_authentication(&cmd.name));
    }
    let Ok(_permit) = shared.in_flight.acquire().await else {
        return Reply::error(&MongoError::new(
            ErrorCode::ShutdownInProgress,
            "The server is shutting down",
        ));
    };
    let is_hello = cmd.is_hello();
    let request = is_hello.then(|| cmd.body.clone());
    let mut reply = shared.service.handle(ctx, cmd).await;
    if let Some(request) = request {
        if reply.is_ok() {
            shared.config.limits.advertise(&mut reply.body);
            session.extend_hello(store, &request, &mut reply.body);
        }
    }
    reply
}

/// Reads one whole message. `Ok(None)` is a clean end of stream between messages.
async fn read_message<R: AsyncRead + Unpin>(
    stream: &mut R,
    limits: &WireLimits,
) -> Result<Option<(MsgHeader, Message)>, FrameError> {
    let mut header_bytes = [0u8; HEADER_LEN];
    let first = match limits.idle_timeout {
        Some(idle) => tokio::time::timeout(idle, stream.read(&mut header_bytes))
            .await
            .map_err(|_| FrameError::TimedOut)?,
        None => stream.read(&mut header_bytes).await,
    };
    let got = match first {
        Ok(0) => return Ok(None),
        Ok(n) => n,
        Err(_) => return Err(FrameError::Truncated),
    };
    let rest = async {
        stream
            .read_exact(&mut header_bytes[got..])
            .await
            .map_err(|_| FrameError::Truncated)?;
        let header = MsgHeader::parse(&header_bytes);
        let body_len = header.body_len(limits)?;
        // Grows as bytes arrive, so a declared length costs memory only once it is sent.
        let mut body = Vec::with_capacity(body_len.min(64 * 1024));
        (&mut *stream)
            .take(body_len as u64)
            .read_to_end(&mut body)
            .await
            .map_err(|_| FrameError::Truncated)?;
        if body.len() != body_len {
            return Err(FrameError::Truncated);
        }
        Ok::<_, FrameError>((header, body))
    };
    let (header, body) = tokio::time::timeout(limits.frame_read_timeout, rest)
        .await
        .map_err(|_| FrameError::TimedOut)??;
    decode_body(&header, &body, limits).map(|message| Some((header, message)))
}
