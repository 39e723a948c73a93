//! The console's HTTP surface through the real router: sign-in, the cookie's flags, the per-IP
//! limit, CSRF, sign-out, and that `/console/api/call` runs actions through the same table, checks
//! and limits as the RPC API.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use acs_rpc::{BoundedNonceGuard, Limits, MemoryKeyStore, Secret};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt as _;

use crate::server::actions::testing::{self, TestCtx};
use crate::server::http::{router, App, PeerAddr};
use crate::server::limits::{LimitSettings, Limiter};

const USER: &str = "user";
const USER_SECRET: &str = "user-secret";
const ADMIN_SECRET: &str = "admin-secret";

struct Harness {
    app: Arc<App>,
    _ctx: TestCtx,
}

fn harness_with(secure: bool, limiter: Limiter) -> Harness {
    let ctx = testing::ctx();
    let mut keys = MemoryKeyStore::new();
    keys.insert(USER, Secret::new(USER_SECRET));
    keys.insert(testing::ADMIN, Secret::new(ADMIN_SECRET));
    let app = Arc::new(App {
        keys: Arc::new(keys),
        nonces: BoundedNonceGuard::new(1000),
        limits: Limits::default(),
        ctx: ctx.ctx.clone(),
        max_body_bytes: 1 << 20,
        body_read_timeout: Duration::from_secs(5),
        endpoint: "127.0.0.1:1".into(),
        metrics_access: crate::server::metrics::MetricsAccess::Off,
        limiter,
        console: super::Console::new(secure),
    });
    Harness { app, _ctx: ctx }
}

fn harness() -> Harness {
    harness_with(false, Limiter::unlimited())
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
    text: String,
}

impl Harness {
    async fn send(&self, req: Request<Body>, ip: [u8; 4]) -> Answer {
        let mut req = req;
        req.extensions_mut()
            .insert(PeerAddr(SocketAddr::from((ip, 40000))));
        let r = router(self.app.clone()).oneshot(req).await.unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Answer {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }

    async fn sign_in_from(&self, id: &str, secret: &str, ip: [u8; 4]) -> Answer {
        let req = Request::post("/console/api/signin")
            .header("content-type", "application/json")
            .body(Body::from(
                json!({"AccessKeyId": id, "AccessKeySecret": secret}).to_string(),
            ))
            .unwrap();
        self.send(req, ip).await
    }

    /// Signs in and answers the cookie header value and the CSRF token.
    async fn session(&self, id: &str, secret: &str) -> (String, String) {
        let a = self.sign_in_from(id, secret, [127, 0, 0, 1]).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        let cookie = a.headers["set-cookie"].to_str().unwrap();
        let pair = cookie.split(';').next().unwrap().to_string();
        (pair, a.body["CsrfToken"].as_str().unwrap().to_string())
    }

    async fn call(&self, cookie: &str, csrf: Option<&str>, action: &str, params: Value) -> Answer {
        let mut b = Request::post("/console/api/call")
            .header("content-type", "application/json")
            .header("cookie", cookie);
        if let Some(t) = csrf {
            b = b.header("x-csrf-token", t);
        }
        let req = b
            .body(Body::from(
                json!({"Action": action, "Params": params}).to_string(),
            ))
            .unwrap();
        self.send(req, [127, 0, 0, 1]).await
    }
}

#[tokio::test]
async fn sign_in_sets_a_hardened_session_cookie_and_never_echoes_the_secret() {
    let h = harness();
    let a = h.sign_in_from(USER, USER_SECRET, [127, 0, 0, 1]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["SignedIn"], true);
    assert_eq!(a.body["AccessKeyId"], USER);
    assert_eq!(a.body["Admin"], false);
    assert!(!a.text.contains(USER_SECRET));
    let cookie = a.headers["set-cookie"].to_str().unwrap();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/console", "Max-Age="] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: no Secure flag");
    assert!(a.headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("script-src 'self'"));
    assert_eq!(a.headers["cache-control"], "no-store");

    // Over TLS the cookie is Secure.
    let tls = harness_with(true, Limiter::unlimited());
    let a = tls.sign_in_from(USER, USER_SECRET, [127, 0, 0, 1]).await;
    assert!(a.headers["set-cookie"]
        .to_str()
        .unwrap()
        .ends_with("; Secure"));

    // The admin key is told it is one.
    let a = h
        .sign_in_from(testing::ADMIN, ADMIN_SECRET, [127, 0, 0, 1])
        .await;
    assert_eq!(a.body["Admin"], true);
}

#[tokio::test]
async fn a_wrong_or_unknown_key_is_refused_alike_and_gets_no_session() {
    let h = harness();
    for (id, secret) in [(USER, "wrong"), ("nobody", USER_SECRET), (USER, "")] {
        let a = h.sign_in_from(id, secret, [127, 0, 0, 1]).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.body["SignedIn"], false);
        assert_eq!(a.body["HttpStatus"], 401);
        assert_eq!(a.body["Response"]["Code"], "Console.SignInFailed");
        assert!(a.headers.get("set-cookie").is_none());
    }
    assert!(h.app.console.sessions.is_empty());
}

#[tokio::test]
async fn failed_sign_ins_are_throttled_per_ip() {
    let h = harness();
    let max = h.app.console.sessions.config().max_failures;
    for _ in 0..max {
        let a = h.sign_in_from(USER, "wrong", [10, 0, 0, 7]).await;
        assert_eq!(a.body["SignedIn"], false);
    }
    // Now even the right key is refused from that address, with a wait to honour.
    let a = h.sign_in_from(USER, USER_SECRET, [10, 0, 0, 7]).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.text);
    assert_eq!(a.body["Code"], "Throttling");
    assert!(a.headers.contains_key("x-acs-retry-after"));
    // Another address is not affected.
    let a = h.sign_in_from(USER, USER_SECRET, [10, 0, 0, 8]).await;
    assert_eq!(a.body["SignedIn"], true);
}

#[tokio::test]
async fn state_changing_requests_need_the_session_and_its_csrf_token() {
    let h = harness();
    let (cookie, csrf) = h.session(USER, USER_SECRET).await;
    // No token, a wrong token, another session's token: 403.
    let (_, other_csrf) = h.session(USER, USER_SECRET).await;
    for token in [
        None,
        Some("0".repeat(64).as_str()),
        Some(other_csrf.as_str()),
    ] {
        let a = h.call(&cookie, token, "DescribeRegions", json!({})).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);
        assert_eq!(a.body["Code"], "Console.CsrfTokenInvalid");
    }
    // No session at all: 401.
    let a = h
        .call(
            "ddsd_console=nothing",
            Some(&csrf),
            "DescribeRegions",
            json!({}),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.body["Code"], "Console.SessionRequired");
    // The right token: the action's own answer.
    let a = h
        .call(&cookie, Some(&csrf), "DescribeRegions", json!({}))
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["HttpStatus"], 200);
    assert!(a.body["Response"]["Regions"].is_object(), "{}", a.text);
    assert!(a.body["Response"]["RequestId"].is_string());

    // Not JSON (what a cross-site form sends), or from another origin: refused.
    let req = Request::post("/console/api/call")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .body(Body::from("Action=DescribeRegions"))
        .unwrap();
    assert_eq!(
        h.send(req, [127, 0, 0, 1]).await.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    let req = Request::post("/console/api/call")
        .header("content-type", "application/json")
        .header("host", "127.0.0.1:8080")
        .header("origin", "http://evil.example")
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .body(Body::from(json!({"Action": "DescribeRegions"}).to_string()))
        .unwrap();
    let a = h.send(req, [127, 0, 0, 1]).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.body["Code"], "Console.CrossOrigin");
}

#[tokio::test]
async fn sign_out_ends_the_session() {
    let h = harness();
    let (cookie, csrf) = h.session(USER, USER_SECRET).await;
    let req = Request::post("/console/api/signout")
        .header("content-type", "application/json")
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .body(Body::from("{}"))
        .unwrap();
    let a = h.send(req, [127, 0, 0, 1]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.headers["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let a = h
        .call(&cookie, Some(&csrf), "DescribeRegions", json!({}))
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let req = Request::get("/console/api/session")
        .header("cookie", &cookie)
        .body(Body::empty())
        .unwrap();
    assert_eq!(h.send(req, [127, 0, 0, 1]).await.body["SignedIn"], false);
}

#[tokio::test]
async fn console_calls_go_through_the_action_table_checks_and_limits() {
    let h = harness();
    let (user, user_csrf) = h.session(USER, USER_SECRET).await;
    let (admin, admin_csrf) = h.session(testing::ADMIN, ADMIN_SECRET).await;
    // Who may call: an admin extension refused for a plain key, as over RPC.
    let a = h
        .call(&user, Some(&user_csrf), "DdsdDescribeApiFaults", json!({}))
        .await;
    assert_eq!(a.body["HttpStatus"], 403);
    assert_eq!(a.body["Response"]["Code"], "Forbidden.RAM");
    // Unknown actions and the handlers' own refusals, with the vendor's codes.
    let a = h
        .call(&user, Some(&user_csrf), "NoSuchAction", json!({}))
        .await;
    assert_eq!(a.body["Response"]["Code"], "InvalidAction.NotFound");
    let a = h
        .call(
            &user,
            Some(&user_csrf),
            "DescribeDBInstanceAttribute",
            json!({"DBInstanceId": "dds-nothere"}),
        )
        .await;
    assert_eq!(a.body["HttpStatus"], 404);
    assert_eq!(a.body["Response"]["Code"], "InvalidDBInstanceId.NotFound");
    // Armed API faults answer console calls too.
    let a = h
        .call(
            &admin,
            Some(&admin_csrf),
            "DdsdArmApiFault",
            json!({"TargetAction": "DescribeRegions", "ErrorCode": "ServiceUnavailable", "Count": "1"}),
        )
        .await;
    assert_eq!(a.body["HttpStatus"], 200, "{}", a.text);
    let a = h
        .call(&user, Some(&user_csrf), "DescribeRegions", json!({}))
        .await;
    assert_eq!(a.body["HttpStatus"], 503);
    assert_eq!(a.body["Response"]["Code"], "ServiceUnavailable");
    // Parameter bounds of the RPC path.
    let long = "x".repeat(Limits::default().max_value_bytes + 1);
    let a = h
        .call(
            &user,
            Some(&user_csrf),
            "DescribeDBInstanceAttribute",
            json!({"DBInstanceId": long}),
        )
        .await;
    assert_eq!(a.body["Response"]["Code"], "InvalidParameter");
}

#[tokio::test]
async fn the_per_key_rate_limit_applies_to_console_calls() {
    let h = harness_with(
        false,
        Limiter::new(&LimitSettings {
            key_rate_per_sec: 0.001,
            key_rate_burst: 2,
            ..LimitSettings::default()
        }),
    );
    let (cookie, csrf) = h.session(USER, USER_SECRET).await;
    let mut codes = Vec::new();
    for _ in 0..3 {
        let a = h
            .call(&cookie, Some(&csrf), "DescribeRegions", json!({}))
            .await;
        codes.push(
            a.body["Response"]["Code"]
                .as_str()
                .unwrap_or("OK")
                .to_string(),
        );
    }
    assert_eq!(codes, ["OK", "OK", "Throttling.User"]);
}

#[tokio::test]
async fn the_page_and_its_assets_are_served_with_a_strict_policy() {
    let h = harness();
    let req = Request::get("/console").body(Body::empty()).unwrap();
    let a = h.send(req, [127, 0, 0, 1]).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.text.contains("<form id=\"signin-form\""));
    assert!(a.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(a.headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    let req = Request::get("/console/assets/app.js")
        .body(Body::empty())
        .unwrap();
    let a = h.send(req, [127, 0, 0, 1]).await;
    assert!(a.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    let req = Request::get("/console/nothing")
        .body(Body::empty())
        .unwrap();
    let a = h.send(req, [127, 0, 0, 1]).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    // The event stream needs a session.
    let req = Request::get("/console/api/events?DBInstanceId=dds-x")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        h.send(req, [127, 0, 0, 1]).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn an_event_stream_answers_a_refusal_as_an_event_and_streams_are_bounded() {
    let h = harness();
    let (cookie, _) = h.session(USER, USER_SECRET).await;
    let open = || {
        let mut req = Request::get("/console/api/events?DBInstanceId=dds-nothere")
            .header("cookie", &cookie)
            .body(Body::empty())
            .unwrap();
        req.extensions_mut()
            .insert(PeerAddr(SocketAddr::from(([127, 0, 0, 1], 40000))));
        router(h.app.clone()).oneshot(req)
    };
    // The call is refused by the handler: the stream says so, then ends.
    let r = open().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("event: refused\n"), "{text}");
    assert!(text.contains("InvalidDBInstanceId.NotFound"), "{text}");
    assert!(text.contains("\"HttpStatus\":404"), "{text}");
    // Each open stream holds a slot until its body is dropped: the next one past the bound is refused.
    let mut held = Vec::new();
    for _ in 0..super::MAX_STREAMS {
        let r = open().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        held.push(r);
    }
    let r = open().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    drop(held);
    let r = open().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}
