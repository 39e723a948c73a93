//! Every limit of docs/limits.md against a real `ddsd serve`, configured through its TOML file or
//! its `DDSD_*` environment: the request exactly at a limit is served, the one just over it gets
//! the documented error (and, for throttling, the `x-acs-retry-after` header in milliseconds).
//!
//! Requests go over raw TCP so a test controls every byte: the exact query and body length, a
//! request head sent without its body (to hold a request in flight), idle connections.

mod common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use acs_rpc::{sign_v1_request, Credentials, Secret};
use serde_json::Value;
use time::OffsetDateTime;

/// A server over its own temp dir (dropped after the server, which is killed first).
struct Server {
    _running: common::Running,
    addr: String,
    _root: common::TempDir,
}

fn start(name: &str, toml: &str, env: &[(&str, &str)]) -> Server {
    let root = common::TempDir::new(&format!("limits-{name}"));
    let config = root.join("ddsd.toml");
    std::fs::write(
        &config,
        format!(
            "{toml}\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n[[access_keys]]\nid = \"testid\"\nsecret = \"testsecret\"\n",
            root.join("data").display()
        ),
    )
    .unwrap();
    let mut cmd = common::serve_command();
    cmd.arg("--config")
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let running = common::spawn(cmd);
    let addr = running
        .endpoint
        .strip_prefix("http://")
        .expect("plain HTTP")
        .to_string();
    Server {
        _running: running,
        addr,
        _root: root,
    }
}

/// A response read off the wire.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A top-level field of the envelope, JSON or XML (an oversized body is answered before its
    /// `Format` could be read, so in the vendor's default XML).
    fn field(&self, name: &str) -> String {
        if self.body.starts_with('<') {
            let open = format!("<{name}>");
            let Some(start) = self.body.find(&open).map(|i| i + open.len()) else {
                return String::new();
            };
            let end = self.body[start..].find('<').map_or(start, |i| start + i);
            return self.body[start..end].to_string();
        }
        let v: Value = serde_json::from_str(&self.body).unwrap_or(Value::Null);
        v[name].as_str().unwrap_or("").to_string()
    }

    fn code(&self) -> String {
        self.field("Code")
    }

    fn message(&self) -> String {
        self.field("Message")
    }

    fn expect_ok(&self) {
        assert_eq!(self.status, 200, "{self:?}");
        assert!(self.body.contains("\"Regions\""), "{self:?}");
    }

    fn expect_error(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status, self.code().as_str()),
            (status, code),
            "{self:?}"
        );
        assert!(self.header("x-acs-request-id").is_some(), "{self:?}");
    }
}

fn read_reply(stream: &mut TcpStream) -> Reply {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).unwrap();
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').unwrap();
        if k.eq_ignore_ascii_case("content-length") {
            length = v.trim().parse().unwrap();
        }
        headers.push((k.to_string(), v.trim().to_string()));
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    Reply {
        status,
        headers,
        body: String::from_utf8(body).unwrap(),
    }
}

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// Sends one request (`Connection: close`) and reads the reply.
fn send(addr: &str, method: &str, query: &str, form_body: Option<&str>) -> Reply {
    let mut s = connect(addr);
    let mut req = format!("{method} /?{query} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(body) = form_body {
        req.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    } else {
        req.push_str("\r\n");
    }
    s.write_all(req.as_bytes()).unwrap();
    read_reply(&mut s)
}

fn fresh_nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The signed V1 parameters of a DescribeRegions call (JSON) plus `extra`, as one canonical
/// string (also a valid form body), signed for `method`.
fn signed(method: &str, extra: &[(&str, &str)], nonce: &str) -> String {
    let secret = Secret::new("testsecret");
    let mut params = vec![
        ("Action", "DescribeRegions"),
        ("Version", "2015-12-01"),
        ("Format", "JSON"),
    ];
    params.extend_from_slice(extra);
    sign_v1_request(
        method,
        &params,
        &Credentials {
            access_key_id: "testid",
            secret: &secret,
            nonce,
            timestamp: OffsetDateTime::now_utc(),
        },
    )
}

fn refs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// A signed request string of exactly `len` bytes: pads a `Pad` parameter, retrying with new
/// nonces when the signature's percent-encoding changes the length.
fn signed_of_len(method: &str, len: usize) -> String {
    for _ in 0..1000 {
        let nonce = fresh_nonce();
        let base = signed(method, &[("Pad", "")], &nonce);
        let Some(pad) = len.checked_sub(base.len()) else {
            panic!(
                "{len} is shorter than a bare signed request ({})",
                base.len()
            );
        };
        let s = signed(method, &[("Pad", &"p".repeat(pad))], &nonce);
        if s.len() == len {
            return s;
        }
    }
    panic!("could not hit {len} bytes");
}

#[test]
fn body_size_at_the_limit_is_read_one_byte_more_is_413() {
    // Set through the environment, over a file value: env wins.
    let server = start(
        "body",
        "max_body_bytes = 100000",
        &[("DDSD_MAX_BODY_BYTES", "2000")],
    );
    let at = signed_of_len("POST", 2000);
    send(&server.addr, "POST", "", Some(&at)).expect_ok();
    let over = signed_of_len("POST", 2001);
    let r = send(&server.addr, "POST", "", Some(&over));
    r.expect_error(413, "RequestEntityTooLarge");
    assert!(r.message().contains("larger than 2000 bytes"), "{r:?}");
}

#[test]
fn query_bytes_at_the_limit_are_read_one_byte_more_is_400() {
    let server = start("query", "max_query_bytes = 1500", &[]);
    send(&server.addr, "GET", &signed_of_len("GET", 1500), None).expect_ok();
    let r = send(&server.addr, "GET", &signed_of_len("GET", 1501), None);
    r.expect_error(400, "InvalidParameter");
    assert!(r.message().contains("longer than 1500 bytes"), "{r:?}");
}

#[test]
fn parameter_count_name_value_and_nonce_lengths() {
    let server = start(
        "params",
        "max_params = 14\nmax_param_name_bytes = 24\nmax_param_value_bytes = 48\nmax_nonce_bytes = 40",
        &[],
    );
    let a = &server.addr;
    // Nine protocol parameters (Action, Version, Format, AccessKeyId, SignatureMethod,
    // SignatureVersion, SignatureNonce, Timestamp, Signature) + 5 = 14.
    let five: Vec<(String, String)> = (1..=5).map(|i| (format!("P{i}"), "v".into())).collect();
    let six: Vec<(String, String)> = (1..=6).map(|i| (format!("P{i}"), "v".into())).collect();
    send(a, "GET", &signed("GET", &refs(&five), &fresh_nonce()), None).expect_ok();
    let r = send(a, "GET", &signed("GET", &refs(&six), &fresh_nonce()), None);
    r.expect_error(400, "InvalidParameter");
    assert!(r.message().contains("more than 14 parameters"), "{r:?}");

    let name24 = "N".repeat(24);
    let name25 = "N".repeat(25);
    send(
        a,
        "GET",
        &signed("GET", &[(&name24, "v")], &fresh_nonce()),
        None,
    )
    .expect_ok();
    let r = send(
        a,
        "GET",
        &signed("GET", &[(&name25, "v")], &fresh_nonce()),
        None,
    );
    r.expect_error(400, "InvalidParameter");
    assert!(r.message().contains("longer than 24 bytes"), "{r:?}");

    let value48 = "v".repeat(48);
    let value49 = "v".repeat(49);
    send(
        a,
        "GET",
        &signed("GET", &[("V", &value48)], &fresh_nonce()),
        None,
    )
    .expect_ok();
    let r = send(
        a,
        "GET",
        &signed("GET", &[("V", &value49)], &fresh_nonce()),
        None,
    );
    r.expect_error(400, "InvalidParameter");
    assert!(r.message().contains("longer than 48 bytes"), "{r:?}");

    let nonce40 = format!("{}{}", fresh_nonce(), "n".repeat(8));
    assert_eq!(nonce40.len(), 40);
    send(a, "GET", &signed("GET", &[], &nonce40), None).expect_ok();
    let nonce41 = format!("{nonce40}x");
    let r = send(a, "GET", &signed("GET", &[], &nonce41), None);
    r.expect_error(400, "InvalidParameter");
    assert!(r.message().contains("SignatureNonce"), "{r:?}");
}

#[test]
fn nonce_cache_capacity_refuses_the_next_nonce_with_a_retry_hint() {
    let server = start("nonces", "", &[("DDSD_NONCE_CAPACITY", "3")]);
    for _ in 0..3 {
        send(
            &server.addr,
            "GET",
            &signed("GET", &[], &fresh_nonce()),
            None,
        )
        .expect_ok();
    }
    let r = send(
        &server.addr,
        "GET",
        &signed("GET", &[], &fresh_nonce()),
        None,
    );
    r.expect_error(400, "Throttling.User");
    // Room frees up when the oldest nonce leaves the 15-minute window.
    let wait: u64 = r.header("x-acs-retry-after").unwrap().parse().unwrap();
    assert!((880_000..=900_000).contains(&wait), "{wait}");
}

#[test]
fn per_key_rate_allows_the_burst_then_throttles_with_retry_after() {
    let server = start("rate", "key_rate_per_sec = 0.5\nkey_rate_burst = 3", &[]);
    for _ in 0..3 {
        send(
            &server.addr,
            "GET",
            &signed("GET", &[], &fresh_nonce()),
            None,
        )
        .expect_ok();
    }
    let r = send(
        &server.addr,
        "GET",
        &signed("GET", &[], &fresh_nonce()),
        None,
    );
    r.expect_error(400, "Throttling.User");
    assert_eq!(
        r.message(),
        "Request was denied due to user flow control. This AccessKey may send 0.5 requests per second (bursts of 3)."
    );
    // One token per 2 s: the hint is the time until the next one, in milliseconds.
    let wait: u64 = r.header("x-acs-retry-after").unwrap().parse().unwrap();
    assert!((1..=2000).contains(&wait), "{wait}");
    // Unsigned or wrongly signed requests are not counted against the key (and are not throttled).
    let bad = signed("GET", &[], &fresh_nonce()).replace("Signature=", "Signature=x");
    send(&server.addr, "GET", &bad, None).expect_error(400, "SignatureDoesNotMatch");
    // Non-throttling errors never carry the hint.
    assert!(send(&server.addr, "GET", &bad, None)
        .header("x-acs-retry-after")
        .is_none());
    std::thread::sleep(Duration::from_millis(wait + 50));
    send(
        &server.addr,
        "GET",
        &signed("GET", &[], &fresh_nonce()),
        None,
    )
    .expect_ok();
}

/// Opens a request whose body never comes: it stays in flight until the body read times out.
fn hold_in_flight(addr: &str) -> TcpStream {
    let mut s = connect(addr);
    s.write_all(
        format!("POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nAction=")
            .as_bytes(),
    )
    .unwrap();
    s
}

/// The reply a held request already got, if any (without waiting for one).
fn reply_if_any(s: &mut TcpStream) -> Option<Reply> {
    s.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let ready = matches!(s.peek(&mut byte), Ok(n) if n > 0);
    s.set_nonblocking(false).unwrap();
    ready.then(|| read_reply(s))
}

#[test]
fn in_flight_cap_serves_up_to_the_cap_and_throttles_beyond() {
    let server = start("inflight", "max_in_flight_requests = 2", &[]);
    let a = &server.addr;
    let _held1 = hold_in_flight(a);
    // With one request held, a second one (the cap is 2) is served. The held request may not have
    // reached the server yet; that only makes this easier.
    send(a, "GET", &signed("GET", &[], &fresh_nonce()), None).expect_ok();
    let mut held2 = hold_in_flight(a);
    // Two held: the third is refused once the server has seen both heads. On a loaded machine the
    // server may read a probe's head before the second held one's, and then it is the held
    // request that is refused (correctly: three at once): hold another in its place.
    let deadline = Instant::now() + Duration::from_secs(20);
    let refused = loop {
        let r = send(a, "GET", &signed("GET", &[], &fresh_nonce()), None);
        if r.status != 200 {
            break r;
        }
        if let Some(early) = reply_if_any(&mut held2) {
            early.expect_error(400, "Throttling");
            held2 = hold_in_flight(a);
        }
        assert!(Instant::now() < deadline, "never refused");
        std::thread::sleep(Duration::from_millis(50));
    };
    refused.expect_error(400, "Throttling");
    assert_eq!(refused.header("x-acs-retry-after"), Some("200"));
    assert!(
        refused.message().contains("maximum of 2 requests"),
        "{refused:?}"
    );
    drop(_held1);
    // The closed request frees its slot (the second is still held).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = send(a, "GET", &signed("GET", &[], &fresh_nonce()), None);
        if r.status == 200 {
            break;
        }
        r.expect_error(400, "Throttling");
        assert!(Instant::now() < deadline, "slot never freed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn connection_cap_makes_the_next_connection_wait_its_turn() {
    let server = start("conns", "", &[("DDSD_MAX_CONNECTIONS", "2")]);
    let a = &server.addr;
    // Two idle keep-alive connections take both slots; prove each was accepted by using it.
    let mut idle: Vec<TcpStream> = (0..2).map(|_| connect(a)).collect();
    for s in &mut idle {
        let q = signed("GET", &[], &fresh_nonce());
        s.write_all(format!("GET /?{q} HTTP/1.1\r\nHost: {a}\r\n\r\n").as_bytes())
            .unwrap();
        read_reply(s).expect_ok();
    }
    // A third connection completes its TCP handshake (kernel backlog) but is not served…
    let mut third = connect(a);
    third
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let q = signed("GET", &[], &fresh_nonce());
    third
        .write_all(
            format!("GET /?{q} HTTP/1.1\r\nHost: {a}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
    let mut byte = [0u8; 1];
    // The read timeout expiring (EAGAIN on Linux) is the only acceptable outcome.
    let waited = third.peek(&mut byte).map_err(|e| e.kind());
    assert!(
        matches!(
            waited,
            Err(std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
        ),
        "served beyond the connection cap: {waited:?}"
    );
    // …until a slot frees up.
    drop(idle.pop());
    third
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    read_reply(&mut third).expect_ok();
}

/// A signed V1 GET of any action (JSON) with `params`, through a fresh connection.
fn call(addr: &str, action: &str, params: &[(&str, &str)]) -> Reply {
    let secret = Secret::new("testsecret");
    let mut all = vec![
        ("Action", action),
        ("Version", "2015-12-01"),
        ("Format", "JSON"),
    ];
    all.extend_from_slice(params);
    let nonce = fresh_nonce();
    let query = sign_v1_request(
        "GET",
        &all,
        &Credentials {
            access_key_id: "testid",
            secret: &secret,
            nonce: &nonce,
            timestamp: OffsetDateTime::now_utc(),
        },
    );
    send(addr, "GET", &query, None)
}

#[test]
fn concurrent_operations_cap_runs_that_many_and_queues_the_next() {
    // Slow enough that a creation lasts seconds of wall time.
    let server = start("ops", "sim_speed = 5\nmax_concurrent_operations = 2", &[]);
    let a = &server.addr;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let r = call(
            a,
            "CreateDBInstance",
            &[
                ("RegionId", "cn-hangzhou"),
                ("EngineVersion", "4.4"),
                ("DBInstanceClass", "dds.mongo.mid"),
                ("DBInstanceStorage", "20"),
            ],
        );
        assert_eq!(r.status, 200, "{r:?}");
        let v: Value = serde_json::from_str(&r.body).unwrap();
        ids.push(v["DBInstanceId"].as_str().unwrap().to_string());
    }
    // Watch the three create operations until all finished.
    let status = |id: &str| {
        let r = call(a, "DdsdDescribeOperations", &[("DBInstanceId", id)]);
        assert_eq!(r.status, 200, "{r:?}");
        let v: Value = serde_json::from_str(&r.body).unwrap();
        v["Operations"]["Operation"][0]["Status"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let deadline = Instant::now() + Duration::from_secs(240);
    let (mut max_running, mut queued_while_full) = (0, false);
    loop {
        // One call per operation reads them at three instants: an operation finishing between two
        // reads and the queued one starting would look like three at once. A status only moves
        // forward, so two passes that agree saw every status hold over an instant between them:
        // only such a pass is counted.
        let statuses: Vec<String> = ids.iter().map(|id| status(id)).collect();
        let again: Vec<String> = ids.iter().map(|id| status(id)).collect();
        if statuses != again {
            assert!(
                Instant::now() < deadline,
                "operations did not finish: {again:?}"
            );
            continue;
        }
        let running = statuses.iter().filter(|s| *s == "Running").count();
        let pending = statuses.iter().filter(|s| *s == "Pending").count();
        max_running = max_running.max(running);
        queued_while_full |= running == 2 && pending == 1;
        if statuses.iter().all(|s| s == "Succeeded") {
            break;
        }
        assert!(
            statuses.iter().all(|s| s != "Failed"),
            "an operation failed: {statuses:?}"
        );
        assert!(
            Instant::now() < deadline,
            "operations did not finish: {statuses:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Two at a time (at the cap both run together), the third waited its turn, and it ran.
    assert_eq!(max_running, 2);
    assert!(queued_while_full, "never saw the third operation wait");
}

/// Writes `parts` with `pause` between them on one connection, then reads what comes back:
/// `Some(reply)`, or `None` when the server closed the connection without answering.
fn send_in_parts(addr: &str, parts: &[&[u8]], pause: Duration) -> Option<Reply> {
    let mut s = connect(addr);
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(pause);
        }
        // The server may already have given up on us: a failed write is its answer.
        if s.write_all(p).is_err() {
            break;
        }
    }
    let mut first = [0u8; 1];
    match s.peek(&mut first) {
        Ok(1) => Some(read_reply(&mut s)),
        _ => None,
    }
}

#[test]
fn read_timeouts_serve_a_slow_sender_inside_them_and_cut_one_outside() {
    let server = start(
        "timeouts",
        "header_read_timeout_ms = 1500\nbody_read_timeout_ms = 1500",
        &[],
    );
    let a = &server.addr;
    let pause = Duration::from_millis(300);

    // A request head that arrives in two parts, well inside the head timeout: served.
    let query = signed("GET", &[], &fresh_nonce());
    let head = format!("GET /?{query} HTTP/1.1\r\nHost: {a}\r\nConnection: close\r\n\r\n");
    let (h1, h2) = head.as_bytes().split_at(head.len() / 2);
    send_in_parts(a, &[h1, h2], pause)
        .expect("a slow head inside the timeout gets an answer")
        .expect_ok();

    // A body that arrives in two parts inside the body timeout: served.
    let body = signed("POST", &[], &fresh_nonce());
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {a}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let (b1, b2) = body.as_bytes().split_at(body.len() / 2);
    send_in_parts(a, &[head.as_bytes(), b1, b2], pause)
        .expect("a slow body inside the timeout gets an answer")
        .expect_ok();

    // The same body whose second half never comes: 408 RequestTimeout once the body timeout has
    // passed, in JSON (the query says so). (The late half is not sent: writing to a connection the
    // server has answered and closed would reset it before the answer is read.)
    let head_json = head.replace("POST / ", "POST /?Format=JSON ");
    let started = Instant::now();
    let r = send_in_parts(a, &[head_json.as_bytes(), b1], pause)
        .expect("a body past its timeout is answered");
    r.expect_error(408, "RequestTimeout");
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "answered before the timeout: {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    // A head still incomplete when the head timeout passes: the connection is closed, no answer.
    let query = signed("GET", &[], &fresh_nonce());
    let head = format!("GET /?{query} HTTP/1.1\r\nHost: {a}\r\nConnection: close\r\n\r\n");
    let (h1, _) = head.as_bytes().split_at(head.len() / 2);
    let started = Instant::now();
    assert!(
        send_in_parts(a, &[h1], pause).is_none(),
        "an incomplete head must not be served"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "closed before the timeout: {:?}",
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}
