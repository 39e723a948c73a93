//! The load generator behind `ddsd bench api` and `ddsd bench soak`: `connections` HTTP/1.1
//! keep-alive connections to one loopback endpoint, each sending signed requests back to back (or
//! paced to a total rate) until a deadline, recording every latency in an HDR histogram and every
//! answer's code.
//!
//! Every request is signed afresh, as an SDK would: a new random nonce and the current time, V3
//! (`ACS3-HMAC-SHA256`) or V1 (`HMAC-SHA1`) — the server's nonce guard, timestamp check and
//! signature verification are all on the measured path. Requests are `POST /` with the parameters
//! in the query and an empty body, like the official SDKs.
//!
//! The operations (`Op`) come from a weighted mix over a pool of instance ids. A connection that
//! fails (server killed, reset) records a `transport` outcome, waits a little and reconnects, so
//! the soak can kill the server under load.
//!
//! Only loopback endpoints are accepted: this is a tool for measuring a local ddsd, not for
//! loading anything else.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use acs_rpc::{sign_v1_request, sign_v3_request, Credentials as SignCredentials, V3Request};
use anyhow::{bail, Context as _};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng as _};

use ddsd_client::{Credentials, API_VERSION};

/// One kind of request in the mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    /// `DescribeDBInstanceAttribute` of a random pool instance.
    Attribute,
    /// `DescribeDBInstances`, a random page of 30.
    List,
    /// `UpgradeDBInstanceKernelVersion` of a random pool instance.
    Upgrade,
    /// `RestartDBInstance` of a random pool instance.
    Restart,
}

impl Op {
    pub const ALL: [Op; 4] = [Op::Attribute, Op::List, Op::Upgrade, Op::Restart];

    pub fn action(self) -> &'static str {
        match self {
            Op::Attribute => "DescribeDBInstanceAttribute",
            Op::List => "DescribeDBInstances",
            Op::Upgrade => "UpgradeDBInstanceKernelVersion",
            Op::Restart => "RestartDBInstance",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Op::Attribute => "attr",
            Op::List => "list",
            Op::Upgrade => "upgrade",
            Op::Restart => "restart",
        }
    }
}

/// Weights of the operations, e.g. `attr=90,list=5,upgrade=3,restart=2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix(Vec<(Op, u32)>);

impl Mix {
    pub fn only(op: Op) -> Mix {
        Mix(vec![(op, 1)])
    }

    pub fn weights(&self) -> &[(Op, u32)] {
        &self.0
    }

    fn total(&self) -> u32 {
        self.0.iter().map(|(_, w)| w).sum()
    }

    fn pick(&self, rng: &mut SmallRng) -> Op {
        let mut x = rng.gen_range(0..self.total());
        for &(op, w) in &self.0 {
            if x < w {
                return op;
            }
            x -= w;
        }
        self.0[0].0
    }

    pub fn has_writes(&self) -> bool {
        self.0
            .iter()
            .any(|(op, w)| *w > 0 && matches!(op, Op::Upgrade | Op::Restart))
    }
}

impl std::str::FromStr for Mix {
    type Err = String;
    fn from_str(s: &str) -> Result<Mix, String> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part.split_once('=').unwrap_or((part, "1"));
            let op = Op::ALL
                .into_iter()
                .find(|op| op.short() == name || op.action() == name)
                .ok_or_else(|| {
                    format!("unknown operation {name:?} (attr, list, upgrade, restart)")
                })?;
            let weight: u32 = weight
                .parse()
                .map_err(|_| format!("weight of {name} must be a whole number"))?;
            if weight > 0 {
                out.push((op, weight));
            }
        }
        if out.is_empty() {
            return Err("the mix needs at least one operation with a positive weight".into());
        }
        if out.iter().map(|(_, w)| u64::from(*w)).sum::<u64>() > u64::from(u32::MAX) {
            return Err("weights are too large".into());
        }
        Ok(Mix(out))
    }
}

impl std::fmt::Display for Mix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(op, w)| format!("{}={w}", op.short()))
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// Signature scheme of the generated requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SignMode {
    V3,
    V1,
    /// Half and half, chosen per request.
    Mixed,
}

/// Refuses anything but a loopback `http://IP:PORT` endpoint.
pub fn loopback_addr(endpoint: &str) -> anyhow::Result<SocketAddr> {
    let rest = endpoint.strip_prefix("http://").unwrap_or(endpoint);
    let rest = rest.trim_end_matches('/');
    let rest = rest.replace("localhost", "127.0.0.1");
    let addr: SocketAddr = rest
        .parse()
        .with_context(|| format!("endpoint {endpoint} must be http://IP:PORT"))?;
    let loopback = match addr.ip() {
        IpAddr::V4(ip) => ip.is_loopback(),
        IpAddr::V6(ip) => ip.is_loopback(),
    };
    if !loopback {
        bail!("the load generator only targets loopback endpoints, not {endpoint}");
    }
    Ok(addr)
}

/// What one run of the generator is asked to do.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    pub addr: SocketAddr,
    pub credentials: Credentials,
    pub connections: usize,
    pub duration: Duration,
    /// Total requests per second over all connections; `None` = as fast as answers come back.
    pub rate: Option<f64>,
    pub mix: Mix,
    pub sign: SignMode,
    /// Instance ids the per-instance operations pick from.
    pub pool: Arc<Vec<String>>,
    /// Total instances, for the page range of `DescribeDBInstances`.
    pub list_pages: u32,
}

/// A 5xx answer or a connection failure, with when it happened (seconds since the run started).
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub at_secs: f64,
    pub op: Op,
    /// HTTP status, 0 for a transport failure.
    pub status: u16,
    pub code: String,
}

/// Latencies and outcomes of a run.
pub struct LoadReport {
    pub elapsed: Duration,
    /// All requests (µs).
    pub latency: Histogram<u64>,
    pub per_op: BTreeMap<Op, Histogram<u64>>,
    /// (operation, HTTP status, code) → count; `OK` for 2xx, `transport` for connection failures.
    pub outcomes: BTreeMap<(Op, u16, String), u64>,
    /// Every 5xx answer and connection failure (capped), in time order.
    pub failures: Vec<Failure>,
    /// Instances an upgrade or restart was accepted for (2xx), with when (seconds since start).
    pub accepted_writes: Vec<(f64, Op, String)>,
}

impl LoadReport {
    pub fn completed(&self) -> u64 {
        self.latency.len()
    }

    pub fn throughput(&self) -> f64 {
        self.completed() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Successful (2xx) answers per second.
    pub fn ok_throughput(&self) -> f64 {
        self.count_where(|status, _| (200..300).contains(&status)) as f64
            / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn count_where(&self, f: impl Fn(u16, &str) -> bool) -> u64 {
        self.outcomes
            .iter()
            .filter(|((_, status, code), _)| f(*status, code))
            .map(|(_, n)| n)
            .sum()
    }
}

/// Failures kept per run for the timeline (the counts are always complete).
const MAX_FAILURES_KEPT: usize = 100_000;

fn new_histogram() -> Histogram<u64> {
    // 1 µs .. 60 s at 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

struct Shared {
    plan: LoadPlan,
    started: Instant,
    deadline: Instant,
    stop: Arc<AtomicBool>,
    failures: Mutex<Vec<Failure>>,
}

struct WorkerResult {
    latency: Histogram<u64>,
    per_op: BTreeMap<Op, Histogram<u64>>,
    outcomes: BTreeMap<(Op, u16, String), u64>,
    accepted_writes: Vec<(f64, Op, String)>,
}

/// Runs the plan to its deadline (or until `stop` is set) and merges what every connection saw.
pub async fn run(plan: LoadPlan, stop: Arc<AtomicBool>) -> anyhow::Result<LoadReport> {
    run_since(plan, stop, Instant::now()).await
}

/// [`run`] with its clock (failure and write times, the deadline) started at `started`, so a caller
/// that times its own events from the same instant can compare them: the task may be polled
/// milliseconds after it was spawned on a busy machine.
pub async fn run_since(
    plan: LoadPlan,
    stop: Arc<AtomicBool>,
    started: Instant,
) -> anyhow::Result<LoadReport> {
    if plan.connections == 0 {
        bail!("at least one connection is needed");
    }
    if plan.pool.is_empty() && plan.mix.0.iter().any(|(op, _)| *op != Op::List) {
        bail!("the instance pool is empty");
    }
    let shared = Arc::new(Shared {
        deadline: started + plan.duration,
        started,
        stop,
        failures: Mutex::new(Vec::new()),
        plan,
    });
    let mut tasks = Vec::new();
    for i in 0..shared.plan.connections {
        let shared = shared.clone();
        tasks.push(tokio::spawn(worker(shared, i)));
    }
    let mut latency = new_histogram();
    let mut per_op: BTreeMap<Op, Histogram<u64>> = BTreeMap::new();
    let mut outcomes = BTreeMap::new();
    let mut accepted_writes = Vec::new();
    for t in tasks {
        let r = t.await.context("a load connection panicked")?;
        latency.add(&r.latency).expect("same bounds");
        for (op, h) in r.per_op {
            per_op
                .entry(op)
                .or_insert_with(new_histogram)
                .add(&h)
                .expect("same bounds");
        }
        for (k, n) in r.outcomes {
            *outcomes.entry(k).or_insert(0) += n;
        }
        accepted_writes.extend(r.accepted_writes);
    }
    accepted_writes.sort_by(|a, b| a.0.total_cmp(&b.0));
    let elapsed = started.elapsed();
    let mut failures =
        std::mem::take(&mut *shared.failures.lock().unwrap_or_else(|p| p.into_inner()));
    failures.sort_by(|a, b| a.at_secs.total_cmp(&b.at_secs));
    Ok(LoadReport {
        elapsed,
        latency,
        per_op,
        outcomes,
        failures,
        accepted_writes,
    })
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn connect(addr: SocketAddr) -> anyhow::Result<Sender> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn worker(shared: Arc<Shared>, index: usize) -> WorkerResult {
    let plan = &shared.plan;
    let mut rng = SmallRng::from_entropy();
    let mut result = WorkerResult {
        latency: new_histogram(),
        per_op: BTreeMap::new(),
        outcomes: BTreeMap::new(),
        accepted_writes: Vec::new(),
    };
    // Pacing: each connection sends every `connections / rate` seconds, starting staggered.
    let interval = plan
        .rate
        .filter(|r| *r > 0.0)
        .map(|r| Duration::from_secs_f64(plan.connections as f64 / r));
    let mut next_send = shared.started
        + interval.map_or(Duration::ZERO, |i| {
            i.mul_f64(index as f64 / plan.connections as f64)
        });
    let host = plan.addr.to_string();
    let mut sender: Option<Sender> = None;
    loop {
        if let Some(i) = interval {
            let now = Instant::now();
            if next_send > now {
                tokio::time::sleep_until(next_send.into()).await;
            }
            next_send += i;
        }
        if Instant::now() >= shared.deadline || shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let op = plan.mix.pick(&mut rng);
        let s = match &mut sender {
            Some(s) if !s.is_closed() => s,
            _ => match connect(plan.addr).await {
                Ok(s) => sender.insert(s),
                Err(_) => {
                    record_failure(&shared, &mut result, op, 0, "transport");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (request, id) = build_request(plan, op, &host, &mut rng);
        let sent = Instant::now();
        let outcome = match s.ready().await {
            Ok(()) => match s.send_request(request).await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    match resp.into_body().collect().await {
                        Ok(body) => Ok((status, body.to_bytes())),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        let micros = (sent.elapsed().as_micros() as u64).clamp(1, 60_000_000);
        match outcome {
            Ok((status, body)) => {
                result.latency.record(micros).expect("in bounds");
                result
                    .per_op
                    .entry(op)
                    .or_insert_with(new_histogram)
                    .record(micros)
                    .expect("in bounds");
                if (200..300).contains(&status) {
                    if matches!(op, Op::Upgrade | Op::Restart) {
                        let at = shared.started.elapsed().as_secs_f64();
                        result.accepted_writes.push((at, op, id));
                    }
                    *result
                        .outcomes
                        .entry((op, status, "OK".to_string()))
                        .or_insert(0) += 1;
                } else {
                    let code = serde_json::from_slice::<serde_json::Value>(&body)
                        .ok()
                        .and_then(|v| v["Code"].as_str().map(str::to_string))
                        .unwrap_or_else(|| "unreadable".into());
                    record_failure(&shared, &mut result, op, status, &code);
                }
            }
            Err(_) => {
                sender = None;
                record_failure(&shared, &mut result, op, 0, "transport");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    result
}

fn record_failure(shared: &Shared, result: &mut WorkerResult, op: Op, status: u16, code: &str) {
    *result
        .outcomes
        .entry((op, status, code.to_string()))
        .or_insert(0) += 1;
    // The timeline is for server-side failures; a refusal (4xx) is only counted.
    if status != 0 && status < 500 {
        return;
    }
    let mut f = shared.failures.lock().unwrap_or_else(|p| p.into_inner());
    if f.len() < MAX_FAILURES_KEPT {
        f.push(Failure {
            at_secs: shared.started.elapsed().as_secs_f64(),
            op,
            status,
            code: code.to_string(),
        });
    }
}

fn build_request(
    plan: &LoadPlan,
    op: Op,
    host: &str,
    rng: &mut SmallRng,
) -> (hyper::Request<Empty<Bytes>>, String) {
    let id = if plan.pool.is_empty() {
        String::new()
    } else {
        plan.pool[rng.gen_range(0..plan.pool.len())].clone()
    };
    let page = rng.gen_range(1..=plan.list_pages.max(1)).to_string();
    let params: Vec<(&str, &str)> = match op {
        Op::Attribute | Op::Restart => vec![("DBInstanceId", &id)],
        Op::Upgrade => vec![("DBInstanceId", &id), ("SwitchMode", "0")],
        Op::List => vec![("PageSize", "30"), ("PageNumber", &page)],
    };
    // 128 random bits in hex, like the Tea SDKs' nonces.
    let nonce = format!("{:032x}", rng.gen::<u128>());
    let creds = SignCredentials {
        access_key_id: &plan.credentials.access_key_id,
        secret: &plan.credentials.secret,
        nonce: &nonce,
        timestamp: time::OffsetDateTime::now_utc(),
    };
    let v1 = match plan.sign {
        SignMode::V1 => true,
        SignMode::V3 => false,
        SignMode::Mixed => rng.gen(),
    };
    let builder = hyper::Request::post("/").header("host", host);
    let builder = if v1 {
        let mut all = vec![
            ("Action", op.action()),
            ("Version", API_VERSION),
            ("Format", "JSON"),
        ];
        all.extend_from_slice(&params);
        let query = sign_v1_request("POST", &all, &creds);
        builder.uri(format!("/?{query}"))
    } else {
        let signed = sign_v3_request(
            &V3Request {
                method: "POST",
                host,
                query: &params,
                headers: &[("accept", "application/json")],
                body: b"",
                action: op.action(),
                version: API_VERSION,
            },
            &creds,
        );
        let mut b = builder.uri(format!("/?{}", signed.query));
        for (k, v) in &signed.headers {
            if k != "host" {
                b = b.header(k.as_str(), v.as_str());
            }
        }
        b
    };
    let request = builder
        .body(Empty::new())
        .expect("a request built from valid parts");
    (request, id)
}

/// `VmRSS` of a process in KiB.
pub fn resident_kib(pid: u32) -> anyhow::Result<u64> {
    crate::tools::bench::resident_kib(pid)
}

/// CPU time a process has used so far, all threads (`/proc/<pid>/task/*/schedstat`, ns), or
/// `None` when it cannot be read. Threads that already exited are not counted, so take both
/// readings while the process runs steadily.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let mut ns: u64 = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let text = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
        ns += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(ns))
}

/// The process listening on `addr`'s TCP port: the socket's inode from `/proc/net/tcp{,6}`, then
/// the process holding a descriptor on it.
pub fn listener_pid(addr: SocketAddr) -> anyhow::Result<u32> {
    let port = format!(":{:04X}", addr.port());
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // local_address, state 0A = LISTEN, inode in column 9.
            if cols.len() > 9 && cols[1].ends_with(&port) && cols[3] == "0A" {
                inodes.push(format!("socket:[{}]", cols[9]));
            }
        }
    }
    if inodes.is_empty() {
        bail!("nothing listens on port {}", addr.port());
    }
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                if inodes.iter().any(|i| target.as_os_str() == i.as_str()) {
                    return Ok(pid);
                }
            }
        }
    }
    bail!(
        "no visible process holds the listener on port {}; pass --pid",
        addr.port()
    )
}

/// Milliseconds of a histogram quantile (the histogram holds µs).
pub fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_parse_and_pick_by_weight() {
        let m: Mix = "attr=90, list=5,upgrade=3,RestartDBInstance=2"
            .parse()
            .unwrap();
        assert_eq!(m.to_string(), "attr=90,list=5,upgrade=3,restart=2");
        assert!(m.has_writes());
        let mut rng = SmallRng::seed_from_u64(7);
        let mut counts = BTreeMap::new();
        for _ in 0..100_000 {
            *counts.entry(m.pick(&mut rng)).or_insert(0u32) += 1;
        }
        let attr = counts[&Op::Attribute];
        assert!((89_000..91_000).contains(&attr), "{counts:?}");
        assert!((1_700..2_300).contains(&counts[&Op::Restart]), "{counts:?}");
        let only: Mix = "attr".parse().unwrap();
        assert!(!only.has_writes());
        for (bad, why) in [
            ("", "needs at least one operation"),
            ("attr=0", "needs at least one operation"),
            ("nope=1", "unknown operation \"nope\""),
            ("attr=x", "must be a whole number"),
            ("attr=-1", "must be a whole number"),
        ] {
            let e = bad.parse::<Mix>().unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn only_loopback_endpoints() {
        assert_eq!(
            loopback_addr("http://127.0.0.1:8080/").unwrap(),
            "127.0.0.1:8080".parse().unwrap()
        );
        assert!(loopback_addr("localhost:9").is_ok());
        assert!(loopback_addr("http://[::1]:9").is_ok());
        for (bad, why) in [
            ("http://10.0.0.1:80", "only targets loopback"),
            ("http://example.com:80", "must be http://IP:PORT"),
            ("http://0.0.0.0:80", "only targets loopback"),
        ] {
            let e = format!("{:#}", loopback_addr(bad).unwrap_err());
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn finds_the_process_listening_on_a_port() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let pid = listener_pid(l.local_addr().unwrap()).unwrap();
        assert_eq!(pid, std::process::id());
        drop(l);
    }
}
