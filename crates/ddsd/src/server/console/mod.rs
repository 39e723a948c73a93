//! The web console at `/console`, served by `ddsd serve` on the API's own listener.
//!
//! `http::rpc` hands every request whose path is `/console` or under `/console/` to [`handle`],
//! before the RPC pipeline (as it does for `/metrics`). What it serves:
//!
//! | Method and path | What |
//! |---|---|
//! | `GET /console` | the page: a server-rendered HTML shell (sign-in form included) |
//! | `GET /console/assets/app.js`, `app.css` | the hand-written script and style, embedded with `include_str!` |
//! | `GET /console/api/session` | who is signed in: `SignedIn`, `AccessKeyId`, `Admin`, `CsrfToken` |
//! | `POST /console/api/signin` | `{"AccessKeyId", "AccessKeySecret"}` → a session cookie and the session, or `SignedIn: false` |
//! | `POST /console/api/signout` | ends the session (CSRF token required) |
//! | `POST /console/api/call` | `{"Action", "Params"}`: one action of the API (CSRF token required) |
//! | `GET /console/api/events?DBInstanceId=…[&OperationId=…]` | server-sent events: each change of the operation |
//!
//! The page is a client of ddsd's own actions: `/console/api/call` runs the action through
//! [`crate::server::http::call_action`], the same action table, access check, API faults, limits
//! and handlers as a signed RPC request from the session's AccessKey, and answers
//! `{"HttpStatus": <the RPC's status>, "Response": <the RPC's JSON envelope>}` (so a refusal shows
//! the vendor's `Code`, `Message` and status). A request the console understood and carried out
//! answers 200 with its outcome in the body — an action's refusal and a wrong key at sign-in
//! (`{"SignedIn": false, "HttpStatus": 401, "Response": …}`) are outcomes to show, not transport
//! failures; the HTTP status is an error only when the console itself refuses the request: no
//! session (401), no valid CSRF token or another origin (403), too many attempts or streams (429),
//! a body it cannot read (400/415), an unknown path (404). The event
//! stream polls `DdsdDescribeOperations` the same way every [`POLL_INTERVAL`] and sends only changes;
//! at most [`MAX_STREAMS`] streams are open at once.
//!
//! Sign-in, sessions, CSRF and the failed-sign-in limit are in [`session`]. The secret is checked
//! against the server's `KeyStore` in constant time and kept nowhere; it is never logged. Every
//! state-changing request (`POST`) needs the session's CSRF token in `X-CSRF-Token`, a JSON body
//! (`Content-Type: application/json`, which a cross-site form cannot send) and, when the browser
//! sends an `Origin`, one naming this host. Every answer carries a strict Content-Security-Policy
//! (scripts and styles from this origin only), `X-Content-Type-Options: nosniff`,
//! `Referrer-Policy: no-referrer`, and the API's answers `Cache-Control: no-store`.

pub mod session;

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use acs_rpc::{encode_error, encode_success, Format, RpcError};
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, HOST, ORIGIN, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use crate::server::http::{call_action, App, PeerAddr};
use session::{Refusal, Session, Sessions};

/// How often an event stream asks for the operation's state.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Event streams open at once, all sessions together (`Throttling`, 429, beyond).
pub const MAX_STREAMS: usize = 32;
/// A stream ends after this long even if the operation has not (the page reconnects).
pub const MAX_STREAM_AGE: Duration = Duration::from_secs(3600);
/// The CSRF header.
pub const CSRF_HEADER: &str = "x-csrf-token";

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The console's state in the server: sessions and the stream bound.
#[derive(Debug)]
pub struct Console {
    pub sessions: Sessions,
    /// Whether ddsd serves HTTPS (the cookie gets `Secure`).
    secure: bool,
    streams: Arc<Semaphore>,
}

impl Default for Console {
    fn default() -> Self {
        Self::new(false)
    }
}

impl Console {
    pub fn new(secure: bool) -> Self {
        Self {
            sessions: Sessions::default(),
            secure,
            streams: Arc::new(Semaphore::new(MAX_STREAMS)),
        }
    }
}

/// Whether the console answers this path.
pub fn owns(path: &str) -> bool {
    path == "/console" || path.starts_with("/console/")
}

fn request_id() -> String {
    uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .hyphenated()
        .encode_upper(&mut uuid::Uuid::encode_buffer())
        .to_owned()
}

fn with_common_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    response
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = Response::new(Body::from(body));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// A JSON answer of the console's API.
fn json_response(status: u16, body: impl Into<Body>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let h = response.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// An error in the API's JSON envelope (`RequestId`, `HostId`, `Code`, `Message`).
fn error_response(error: &RpcError, host: &str) -> Response {
    let request_id = request_id();
    let encoded = encode_error(error, &request_id, host, Format::Json);
    let mut response = json_response(encoded.status, encoded.body);
    if let Ok(id) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-acs-request-id", id);
    }
    if let Some(ms) = error.retry_after_ms() {
        response
            .headers_mut()
            .insert("x-acs-retry-after", HeaderValue::from(ms));
    }
    response
}

fn session_required() -> RpcError {
    RpcError::new(
        "Console.SessionRequired",
        401,
        "Sign in to the console first (the session is missing or has expired).",
    )
}

fn csrf_refused() -> RpcError {
    RpcError::new(
        "Console.CsrfTokenInvalid",
        403,
        "The request has no valid X-CSRF-Token header for this session.",
    )
}

fn sign_in_failed() -> RpcError {
    RpcError::new(
        "Console.SignInFailed",
        401,
        "The AccessKeyId and AccessKeySecret are not a key pair of this server.",
    )
}

fn throttled(wait: Duration, why: &str) -> RpcError {
    RpcError::new(
        "Throttling",
        429,
        format!("Request was denied due to request throttling. {why}"),
    )
    .with_retry_after_ms(wait.as_millis() as u64)
}

fn not_found() -> RpcError {
    RpcError::new(
        "Console.NotFound",
        404,
        "The console has no such page or endpoint.",
    )
}

/// The console's handler for every path [`owns`] accepts.
pub async fn handle(app: Arc<App>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let host = parts
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map_or_else(|| app.endpoint.clone(), str::to_owned);
    let peer = parts
        .extensions
        .get::<PeerAddr>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |p| p.0.ip());
    let path = parts.uri.path();
    let method = &parts.method;
    let response = match (method, path) {
        (&Method::GET, "/console" | "/console/") => {
            let mut r = asset(INDEX_HTML, "text/html; charset=utf-8");
            r.headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        (&Method::GET, "/console/assets/app.js") => asset(APP_JS, "text/javascript; charset=utf-8"),
        (&Method::GET, "/console/assets/app.css") => asset(APP_CSS, "text/css; charset=utf-8"),
        // 200 either way: a page that is not signed in yet is not an error.
        (&Method::GET, "/console/api/session") => match current(&app, &parts.headers) {
            Some((_, s)) => json_response(200, session_json(&s).to_string()),
            None => json_response(200, json!({"SignedIn": false}).to_string()),
        },
        (&Method::GET, "/console/api/events") => match current(&app, &parts.headers) {
            Some((id, s)) => events(&app, id, s, parts.uri.query().unwrap_or(""), &host),
            None => error_response(&session_required(), &host),
        },
        (&Method::POST, "/console/api/signin") => {
            match post_body(&parts.headers, &host, body, app.max_body_bytes).await {
                Ok(v) => sign_in(&app, peer, &v, &host),
                Err(e) => error_response(&e, &host),
            }
        }
        (&Method::POST, "/console/api/signout" | "/console/api/call") => {
            match checked_post(&app, &parts.headers, &host, body).await {
                Ok((id, s, v)) => {
                    if path == "/console/api/signout" {
                        app.console.sessions.remove(&id);
                        let mut r = json_response(200, "{}");
                        if let Ok(c) =
                            HeaderValue::from_str(&session::cleared_cookie(app.console.secure))
                        {
                            r.headers_mut().insert(SET_COOKIE, c);
                        }
                        r
                    } else {
                        call(&app, &s, &v, &host).await
                    }
                }
                Err(e) => error_response(&e, &host),
            }
        }
        _ => error_response(&not_found(), &host),
    };
    with_common_headers(response)
}

fn session_json(s: &Session) -> Value {
    json!({"SignedIn": true, "AccessKeyId": s.access_key_id, "Admin": s.admin, "CsrfToken": s.csrf_token})
}

/// The session the request's cookie names, if it is alive.
fn current(app: &App, headers: &HeaderMap) -> Option<(String, Session)> {
    let id = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(session::session_id_from_cookie)?;
    let s = app.console.sessions.get(id, Instant::now())?;
    Some((id.to_string(), s))
}

/// A POST's JSON body (at most the API's `max_body_bytes`), after the checks every console POST gets: `Content-Type: application/json`
/// and, when the browser says where the page came from, an `Origin` naming this host.
async fn post_body(
    headers: &HeaderMap,
    host: &str,
    body: Body,
    limit: usize,
) -> Result<Value, RpcError> {
    let json_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if !json_type {
        return Err(RpcError::new(
            "Console.UnsupportedMediaType",
            415,
            "Console requests send JSON (Content-Type: application/json).",
        ));
    }
    if let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) {
        let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
        if origin_host != host {
            return Err(RpcError::new(
                "Console.CrossOrigin",
                403,
                "The request comes from a page of another origin.",
            ));
        }
    }
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| RpcError::malformed_request("The body is too large or could not be read."))?;
    serde_json::from_slice(&bytes)
        .map_err(|_| RpcError::malformed_request("The body is not a JSON object."))
}

/// A state-changing request: a live session, its CSRF token, then the JSON body.
async fn checked_post(
    app: &App,
    headers: &HeaderMap,
    host: &str,
    body: Body,
) -> Result<(String, Session, Value), RpcError> {
    let (id, s) = current(app, headers).ok_or_else(session_required)?;
    let token = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !session::ct_eq(token, &s.csrf_token) {
        tracing::info!(access_key_id = %s.access_key_id, "console request without a valid CSRF token refused");
        return Err(csrf_refused());
    }
    let v = post_body(headers, host, body, app.max_body_bytes).await?;
    Ok((id, s, v))
}

fn sign_in(app: &App, peer: IpAddr, body: &Value, host: &str) -> Response {
    let now = Instant::now();
    let sessions = &app.console.sessions;
    if let Err(Refusal::RateLimited(wait)) = sessions.may_sign_in(peer, now) {
        tracing::info!(%peer, "console sign-in refused: too many failures");
        return error_response(
            &throttled(wait, "Too many failed sign-ins from this address."),
            host,
        );
    }
    let id = body["AccessKeyId"].as_str().unwrap_or("");
    let secret = body["AccessKeySecret"].as_str().unwrap_or("");
    // Compare against a stand-in when the id is unknown, so both failures take the same work.
    let known = app.keys.secret(id);
    let expected = known
        .as_ref()
        .map_or("\u{0}no such key\u{0}", |s| s.expose());
    let matches = session::ct_eq(secret, expected) && known.is_some() && !secret.is_empty();
    if !matches {
        sessions.failed(peer, now);
        tracing::info!(%peer, "console sign-in failed");
        let error = sign_in_failed();
        let envelope: Value =
            serde_json::from_slice(&encode_error(&error, &request_id(), host, Format::Json).body)
                .unwrap_or(Value::Null);
        return json_response(
            200,
            json!({"SignedIn": false, "HttpStatus": error.status(), "Response": envelope})
                .to_string(),
        );
    }
    let admin = app.ctx.admin_keys.contains(id);
    match sessions.create(peer, id, admin, now) {
        Ok((sid, s)) => {
            tracing::info!(access_key_id = %id, admin, "console sign-in");
            let mut r = json_response(200, session_json(&s).to_string());
            let cookie =
                session::session_cookie(&sid, app.console.secure, sessions.config().absolute);
            if let Ok(c) = HeaderValue::from_str(&cookie) {
                r.headers_mut().insert(SET_COOKIE, c);
            }
            r
        }
        Err(_) => error_response(
            &throttled(
                Duration::from_secs(60),
                "Too many console sessions are open.",
            ),
            host,
        ),
    }
}

/// `{"Action": "...", "Params": {"Name": "value", ...}}` → the action's own envelope and status.
async fn call(app: &App, s: &Session, body: &Value, host: &str) -> Response {
    let Some(action) = body["Action"].as_str() else {
        return error_response(&RpcError::missing("Action"), host);
    };
    let mut params = crate::server::actions::Params::new();
    if let Some(map) = body["Params"].as_object() {
        for (k, v) in map {
            let text = match v {
                Value::String(t) => t.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => {
                    return error_response(
                        &RpcError::invalid_parameter(k, "Console parameters are strings."),
                        host,
                    )
                }
            };
            params.insert(k.clone(), text);
        }
    }
    let outcome = call_action(app, action, params, &s.access_key_id).await;
    let request_id = request_id();
    let encoded = match &outcome.result {
        Ok(value) => encode_success(action, &request_id, value, Format::Json),
        Err(e) => encode_error(e, &request_id, host, Format::Json),
    };
    let envelope: Value = serde_json::from_slice(&encoded.body).unwrap_or(Value::Null);
    let mut r = json_response(
        200,
        json!({"HttpStatus": encoded.status, "Response": envelope}).to_string(),
    );
    if let Ok(id) = HeaderValue::from_str(&request_id) {
        r.headers_mut().insert("x-acs-request-id", id);
    }
    if let Some(ms) = outcome
        .result
        .as_ref()
        .err()
        .and_then(RpcError::retry_after_ms)
    {
        r.headers_mut()
            .insert("x-acs-retry-after", HeaderValue::from(ms));
    }
    r
}

/// One query parameter's decoded value.
fn query_param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| {
            percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
}

/// The body of an event stream: frames from a channel, holding a stream slot while open.
struct EventBody {
    rx: mpsc::Receiver<Bytes>,
    _slot: OwnedSemaphorePermit,
}

impl axum::body::HttpBody for EventBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        self.rx
            .poll_recv(cx)
            .map(|frame| frame.map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

fn sse_frame(event: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What of an operation counts as a change worth sending (not `UpdateTime`, not the simulation's
/// running totals).
fn change_key(op: &Value) -> String {
    json!([op["Status"], op["Progress"], op["Report"]]).to_string()
}

fn finished(op: &Value) -> bool {
    matches!(op["Status"].as_str(), Some("Succeeded" | "Failed"))
}

/// `GET /console/api/events`: `event: operation` with `{"ServerMs", "Operation"}` for the first
/// state and each change, until the operation finishes (its last state is sent, then the stream
/// ends); `event: refused` with the API's envelope if the call is refused; `event: none` if the
/// instance has no operation.
fn events(app: &Arc<App>, session_id: String, s: Session, query: &str, host: &str) -> Response {
    let Some(instance) = query_param(query, "DBInstanceId").filter(|v| !v.is_empty()) else {
        return error_response(&RpcError::missing("DBInstanceId"), host);
    };
    let operation = query_param(query, "OperationId").filter(|v| !v.is_empty());
    let Ok(slot) = app.console.streams.clone().try_acquire_owned() else {
        return error_response(
            &throttled(Duration::from_secs(1), "Too many live streams are open."),
            host,
        );
    };
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let app = app.clone();
    let host = host.to_string();
    tokio::spawn(async move {
        let started = Instant::now();
        let mut pinned = operation;
        let mut last = String::new();
        let mut last_sent = Instant::now();
        let _ = tx.send(Bytes::from_static(b"retry: 1000\n\n")).await;
        while started.elapsed() < MAX_STREAM_AGE {
            // The stream lives only as long as its session.
            if app
                .console
                .sessions
                .get(&session_id, Instant::now())
                .is_none()
            {
                break;
            }
            let mut params = crate::server::actions::Params::new();
            params.insert("DBInstanceId".into(), instance.clone());
            params.insert("MaxRecords".into(), "1".into());
            if let Some(id) = &pinned {
                params.insert("OperationId".into(), id.clone());
            }
            let outcome =
                call_action(&app, "DdsdDescribeOperations", params, &s.access_key_id).await;
            let value = match outcome.result {
                Ok(v) => v,
                Err(e) if e.retry_after_ms().is_some() => {
                    // Throttled: try again later, like an SDK would.
                    tokio::time::sleep(Duration::from_millis(e.retry_after_ms().unwrap_or(200)))
                        .await;
                    continue;
                }
                Err(e) => {
                    let mut envelope: Value = serde_json::from_slice(
                        &encode_error(&e, &request_id(), &host, Format::Json).body,
                    )
                    .unwrap_or_else(|_| json!({}));
                    envelope["HttpStatus"] = json!(e.status());
                    let _ = tx.send(sse_frame("refused", &envelope)).await;
                    break;
                }
            };
            let op = value["Operations"]["Operation"][0].clone();
            if op.is_null() {
                let _ = tx
                    .send(sse_frame("none", &json!({"DBInstanceId": instance})))
                    .await;
                break;
            }
            if pinned.is_none() {
                pinned = op["OperationId"].as_str().map(str::to_owned);
            }
            let key = change_key(&op);
            let done = finished(&op);
            if key != last {
                last = key;
                last_sent = Instant::now();
                let frame = sse_frame("operation", &json!({"ServerMs": now_ms(), "Operation": op}));
                if tx.send(frame).await.is_err() {
                    break;
                }
            } else if last_sent.elapsed() > Duration::from_secs(15) {
                last_sent = Instant::now();
                if tx
                    .send(Bytes::from_static(b": keep-alive\n\n"))
                    .await
                    .is_err()
                {
                    break;
                }
            }
            if done {
                break;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    });
    let mut r = Response::new(Body::new(EventBody { rx, _slot: slot }));
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_owns_its_paths_only() {
        assert!(owns("/console"));
        assert!(owns("/console/"));
        assert!(owns("/console/api/call"));
        assert!(!owns("/consoles"));
        assert!(!owns("/"));
        assert!(!owns("/metrics"));
    }

    #[test]
    fn query_parameters_are_decoded() {
        assert_eq!(
            query_param("DBInstanceId=dds-1&OperationId=a%2Db", "OperationId").as_deref(),
            Some("a-b")
        );
        assert_eq!(query_param("x=1", "DBInstanceId"), None);
    }

    #[test]
    fn a_change_ignores_the_update_time_and_the_simulation_totals() {
        let a = json!({"Status": "Running", "Progress": {"Phase": "ReplicaSets"}, "UpdateTime": "1", "Simulation": {"UntilMs": 1}});
        let mut b = a.clone();
        b["UpdateTime"] = json!("2");
        b["Simulation"]["UntilMs"] = json!(2);
        assert_eq!(change_key(&a), change_key(&b));
        b["Progress"]["Phase"] = json!("Mongos");
        assert_ne!(change_key(&a), change_key(&b));
        assert!(!finished(&a));
        assert!(finished(&json!({"Status": "Failed"})));
    }
}

#[cfg(test)]
mod http_tests;
