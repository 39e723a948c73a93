//! The service over a fake two-host backend, through real HTTP: signing, host isolation, parameter
//! checks, the command log and the per-process gate.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use acs_rpc::{sign_v1_request, sign_v3_request, Credentials, Secret, V3Request};
use serde_json::Value;
use time::OffsetDateTime;

use super::*;
use crate::agent::api::{
    AgentClient, AgentEndpoint, HostDescription, ProcessDescription, ProcessKind,
};

/// Hosts `host-a` (process `a1`) and `host-b` (process `b1`); starts and stops take `delay`.
struct FakeBackend {
    state: Mutex<HashMap<(String, String), ProcessDescription>>,
    calls: AtomicUsize,
    delay: Duration,
}

impl FakeBackend {
    fn new(delay: Duration) -> Arc<FakeBackend> {
        let mut state = HashMap::new();
        for (host, name, port) in [("host-a", "a1", 27017), ("host-b", "b1", 27018)] {
            state.insert(
                (host.to_string(), name.to_string()),
                ProcessDescription {
                    name: name.into(),
                    kind: ProcessKind::Mongod,
                    address: format!("{host}:{port}"),
                    port,
                    kernel_version: "7.0.1".into(),
                    running: true,
                    pid: Some(100),
                    generation: 1,
                    data_dir: None,
                    config_file: None,
                },
            );
        }
        Arc::new(FakeBackend {
            state: Mutex::new(state),
            calls: AtomicUsize::new(0),
            delay,
        })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn get(&self, host: &str, process: &str) -> Result<ProcessDescription, AgentError> {
        self.state
            .lock()
            .unwrap()
            .get(&(host.to_string(), process.to_string()))
            .cloned()
            .ok_or_else(|| AgentError::NoSuchProcess(process.to_string()))
    }

    fn set(&self, host: &str, p: ProcessDescription) {
        self.state
            .lock()
            .unwrap()
            .insert((host.to_string(), p.name.clone()), p);
    }
}

impl HostBackend for FakeBackend {
    fn describe(&self, host: &str) -> AgentFuture<'_, HostDescription> {
        let mut processes: Vec<ProcessDescription> = self
            .state
            .lock()
            .unwrap()
            .iter()
            .filter(|((h, _), _)| h == host)
            .map(|(_, p)| p.clone())
            .collect();
        processes.sort_by(|a, b| a.name.cmp(&b.name));
        let host = host.to_string();
        Box::pin(async move {
            Ok(HostDescription {
                host_name: host,
                kernels: vec!["7.0.1".into(), "8.0.4".into()],
                processes,
            })
        })
    }

    fn stop(&self, host: &str, process: &str) -> AgentFuture<'_, (bool, ProcessDescription)> {
        let (host, process) = (host.to_string(), process.to_string());
        Box::pin(async move {
            let mut p = self.get(&host, &process)?;
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            let changed = p.running;
            p.running = false;
            p.pid = None;
            self.set(&host, p.clone());
            Ok((changed, p))
        })
    }

    fn start(
        &self,
        host: &str,
        process: &str,
        kernel_version: &str,
    ) -> AgentFuture<'_, (bool, ProcessDescription)> {
        let (host, process, kernel) = (
            host.to_string(),
            process.to_string(),
            kernel_version.to_string(),
        );
        Box::pin(async move {
            let mut p = self.get(&host, &process)?;
            if kernel != "7.0.1" && kernel != "8.0.4" {
                return Err(AgentError::KernelNotInstalled { host, kernel });
            }
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            if p.running && p.kernel_version == kernel {
                return Ok((false, p));
            }
            p.running = true;
            p.kernel_version = kernel;
            p.generation += 1;
            p.pid = Some(100 + p.generation as u32);
            self.set(&host, p.clone());
            Ok((true, p))
        })
    }
}

const SECRET_A: &str = "secret-of-host-a";
const SECRET_B: &str = "secret-of-host-b";

fn keys() -> Vec<AgentKey> {
    vec![
        AgentKey {
            access_key_id: "key-a".into(),
            secret: Secret::new(SECRET_A),
            host: "host-a".into(),
        },
        AgentKey {
            access_key_id: "key-b".into(),
            secret: Secret::new(SECRET_B),
            host: "host-b".into(),
        },
    ]
}

struct Served {
    endpoint: String,
    addr: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn serve(service: Arc<AgentService>) -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(service.serve(listener, async move {
        let _ = rx.await;
    }));
    Served {
        endpoint: format!("http://{addr}"),
        addr,
        _stop: tx,
    }
}

fn client(served: &Served, key: &str, secret: &str) -> AgentClient {
    AgentClient::new(
        &AgentEndpoint {
            endpoint: served.endpoint.clone(),
            access_key_id: key.into(),
            access_key_secret: secret.into(),
        },
        Duration::from_secs(10),
    )
    .unwrap()
}

/// A V3 request signed by hand: `(status, body)`. Every part is an argument so each test can
/// break exactly one of them.
#[allow(clippy::too_many_arguments)]
async fn raw_v3(
    served: &Served,
    action: &str,
    version: &str,
    params: &[(&str, &str)],
    key: &str,
    secret: &str,
    nonce: &str,
    timestamp: OffsetDateTime,
) -> (u16, Value) {
    let secret = Secret::new(secret);
    let signed = sign_v3_request(
        &V3Request {
            method: "POST",
            host: &served.addr,
            query: params,
            headers: &[("accept", "application/json")],
            body: b"",
            action,
            version,
        },
        &Credentials {
            access_key_id: key,
            secret: &secret,
            nonce,
            timestamp,
        },
    );
    let mut req = reqwest::Client::new().post(format!("{}/?{}", served.endpoint, signed.query));
    for (k, v) in &signed.headers {
        if k != "host" {
            req = req.header(k, v);
        }
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

fn nonce() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn assert_refused(answer: &(u16, Value), status: u16, code: &str) {
    assert_eq!(
        (answer.0, answer.1["Code"].as_str().unwrap_or_default()),
        (status, code),
        "{}",
        answer.1
    );
    assert!(answer.1["RequestId"]
        .as_str()
        .is_some_and(|r| !r.is_empty()));
}

#[tokio::test]
async fn a_key_sees_and_acts_on_its_own_host_only() {
    let backend = FakeBackend::new(Duration::ZERO);
    let service = AgentService::new(backend.clone(), keys(), ServiceConfig::default()).unwrap();
    let served = serve(service).await;
    let a = client(&served, "key-a", SECRET_A);
    let b = client(&served, "key-b", SECRET_B);

    let host = a.describe_host().await.unwrap();
    assert_eq!(host.host_name, "host-a");
    let names: Vec<&str> = host.processes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["a1"]);
    assert_eq!(b.describe_host().await.unwrap().processes[0].name, "b1");

    // Host A's key names host B's process: not found, and B's process is untouched.
    let e = a.stop_process("b1", "cmd-1").await.unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.status),
        ("InvalidProcessName.NotFound", 404)
    );
    let e = a.start_process("b1", "8.0.4", "cmd-2").await.unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.status),
        ("InvalidProcessName.NotFound", 404)
    );
    assert_eq!(backend.calls(), 0);
    assert!(backend.get("host-b", "b1").unwrap().running);

    // The same CommandId on two hosts is two commands.
    a.stop_process("a1", "same").await.unwrap();
    let outcome = b.stop_process("b1", "same").await.unwrap();
    assert!(outcome.changed && !outcome.replayed);
    assert_eq!(backend.calls(), 2);
}

#[tokio::test]
async fn unsigned_wrongly_signed_replayed_and_expired_requests_are_refused() {
    let backend = FakeBackend::new(Duration::ZERO);
    let service = AgentService::new(backend.clone(), keys(), ServiceConfig::default()).unwrap();
    let served = serve(service).await;
    let http = reqwest::Client::new();
    let now = OffsetDateTime::now_utc();

    // Unsigned: no signature at all.
    let resp = http
        .post(format!(
            "{}/?Action=StopProcess&Version={AGENT_API_VERSION}&Format=JSON&ProcessName=a1&CommandId=x",
            served.endpoint
        ))
        .send()
        .await
        .unwrap();
    let unsigned = (resp.status().as_u16(), resp.json::<Value>().await.unwrap());
    assert_refused(&unsigned, 400, "MissingSignature");

    // A V1 request signed with the wrong secret.
    let secret = Secret::new("not-the-secret");
    let n = nonce();
    let query = sign_v1_request(
        "POST",
        &[
            ("Action", "StopProcess"),
            ("Version", AGENT_API_VERSION),
            ("Format", "JSON"),
            ("ProcessName", "a1"),
            ("CommandId", "x"),
        ],
        &Credentials {
            access_key_id: "key-a",
            secret: &secret,
            nonce: &n,
            timestamp: now,
        },
    );
    let resp = http
        .post(format!("{}/?{query}", served.endpoint))
        .send()
        .await
        .unwrap();
    let wrong = (resp.status().as_u16(), resp.json::<Value>().await.unwrap());
    assert_refused(&wrong, 400, "SignatureDoesNotMatch");

    // The same V1 request signed with the right secret is served (V1 answers in its Format).
    let n = nonce();
    let secret = Secret::new(SECRET_A);
    let query = sign_v1_request(
        "POST",
        &[
            ("Action", "DescribeHost"),
            ("Version", AGENT_API_VERSION),
            ("Format", "JSON"),
        ],
        &Credentials {
            access_key_id: "key-a",
            secret: &secret,
            nonce: &n,
            timestamp: now,
        },
    );
    let resp = http
        .post(format!("{}/?{query}", served.endpoint))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["HostName"], "host-a");

    // A body over the bound is refused before anything is verified.
    let resp = http
        .post(format!("{}/", served.endpoint))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![b'a'; ServiceConfig::default().max_body_bytes + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);

    // V3 with the wrong secret.
    let params = [("ProcessName", "a1"), ("CommandId", "y")];
    let wrong = raw_v3(
        &served,
        STOP_PROCESS,
        AGENT_API_VERSION,
        &params,
        "key-a",
        SECRET_B,
        &nonce(),
        now,
    )
    .await;
    assert_refused(&wrong, 400, "SignatureDoesNotMatch");

    // An unknown key.
    let unknown = raw_v3(
        &served,
        DESCRIBE_HOST,
        AGENT_API_VERSION,
        &[],
        "key-z",
        SECRET_A,
        &nonce(),
        now,
    )
    .await;
    assert_refused(&unknown, 404, "InvalidAccessKeyId.NotFound");

    // Replayed: the same signed request (same nonce) twice.
    let n = nonce();
    let first = raw_v3(
        &served,
        DESCRIBE_HOST,
        AGENT_API_VERSION,
        &[],
        "key-a",
        SECRET_A,
        &n,
        now,
    )
    .await;
    assert_eq!(first.0, 200, "{}", first.1);
    assert_eq!(first.1["HostName"], "host-a");
    let replay = raw_v3(
        &served,
        DESCRIBE_HOST,
        AGENT_API_VERSION,
        &[],
        "key-a",
        SECRET_A,
        &n,
        now,
    )
    .await;
    assert_refused(&replay, 400, "SignatureNonceUsed");

    // Expired: signed 20 minutes ago (the window is 15).
    let old = now - time::Duration::minutes(20);
    let expired = raw_v3(
        &served,
        DESCRIBE_HOST,
        AGENT_API_VERSION,
        &[],
        "key-a",
        SECRET_A,
        &nonce(),
        old,
    )
    .await;
    assert_refused(&expired, 400, "InvalidTimeStamp.Expired");

    // None of them reached the backend.
    assert_eq!(backend.calls(), 0);
}

#[tokio::test]
async fn version_action_and_parameters_are_checked() {
    let backend = FakeBackend::new(Duration::ZERO);
    let service = AgentService::new(backend.clone(), keys(), ServiceConfig::default()).unwrap();
    let served = serve(service).await;
    let now = OffsetDateTime::now_utc();
    let call =
        |action: &'static str, version: &'static str, params: Vec<(&'static str, &'static str)>| {
            let served = &served;
            async move {
                raw_v3(
                    served,
                    action,
                    version,
                    &params,
                    "key-a",
                    SECRET_A,
                    &nonce(),
                    now,
                )
                .await
            }
        };

    assert_refused(
        &call(DESCRIBE_HOST, "2015-12-01", vec![]).await,
        400,
        "InvalidVersion",
    );
    assert_refused(
        &call("RebootHost", AGENT_API_VERSION, vec![]).await,
        404,
        "InvalidAction.NotFound",
    );
    assert_refused(
        &call(STOP_PROCESS, AGENT_API_VERSION, vec![("CommandId", "c")]).await,
        400,
        "MissingParameter",
    );
    assert_refused(
        &call(
            START_PROCESS,
            AGENT_API_VERSION,
            vec![("ProcessName", "a1"), ("CommandId", "c")],
        )
        .await,
        400,
        "MissingParameter",
    );
    assert_refused(
        &call(STOP_PROCESS, AGENT_API_VERSION, vec![("ProcessName", "a1")]).await,
        400,
        "MissingParameter",
    );
    for bad in ["../../bin", "..", "with space", "tab\there", "é"] {
        let params = vec![
            ("ProcessName", "a1"),
            ("KernelVersion", bad),
            ("CommandId", "c"),
        ];
        let answer = raw_v3(
            &served,
            START_PROCESS,
            AGENT_API_VERSION,
            &params,
            "key-a",
            SECRET_A,
            &nonce(),
            now,
        )
        .await;
        assert_refused(&answer, 400, "InvalidParameter");
    }
    let long = "x".repeat(MAX_NAME_LEN + 1);
    let params = [("ProcessName", long.as_str()), ("CommandId", "c")];
    let answer = raw_v3(
        &served,
        STOP_PROCESS,
        AGENT_API_VERSION,
        &params,
        "key-a",
        SECRET_A,
        &nonce(),
        now,
    )
    .await;
    assert_refused(&answer, 400, "InvalidParameter");
    assert_eq!(backend.calls(), 0);

    // The kernel the backend does not have.
    let a = client(&served, "key-a", SECRET_A);
    let e = a.start_process("a1", "9.9.9", "c9").await.unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.status),
        ("InvalidKernelVersion.NotInstalled", 400)
    );
    assert!(
        e.message.contains("host-a") && e.message.contains("9.9.9"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn a_command_id_runs_once_and_replays_its_outcome() {
    let backend = FakeBackend::new(Duration::ZERO);
    let service = AgentService::new(backend.clone(), keys(), ServiceConfig::default()).unwrap();
    let served = serve(service).await;
    let a = client(&served, "key-a", SECRET_A);

    let first = a.stop_process("a1", "stop-1").await.unwrap();
    assert!(first.changed && !first.replayed && !first.process.running);
    let again = a.stop_process("a1", "stop-1").await.unwrap();
    assert!(again.changed && again.replayed, "{again:?}");
    assert_eq!(again.process, first.process);
    assert_eq!(backend.calls(), 1);

    // Stopping a stopped process under a new id changes nothing.
    let noop = a.stop_process("a1", "stop-2").await.unwrap();
    assert!(!noop.changed && !noop.replayed);

    // The id of a stop reused for a start.
    let e = a.start_process("a1", "8.0.4", "stop-1").await.unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.status),
        ("IdempotentParameterMismatch", 400)
    );

    let started = a.start_process("a1", "8.0.4", "start-1").await.unwrap();
    assert!(started.changed && started.process.running);
    assert_eq!(started.process.kernel_version, "8.0.4");
    // Same id, another kernel.
    let e = a.start_process("a1", "7.0.1", "start-1").await.unwrap_err();
    assert_eq!(e.code, "IdempotentParameterMismatch");
    let replayed = a.start_process("a1", "8.0.4", "start-1").await.unwrap();
    assert!(replayed.replayed && replayed.changed);
    assert_eq!(backend.calls(), 3);
}

#[tokio::test]
async fn one_command_at_a_time_per_process_and_a_retry_joins_the_running_one() {
    let backend = FakeBackend::new(Duration::from_millis(400));
    let service = AgentService::new(backend.clone(), keys(), ServiceConfig::default()).unwrap();
    let served = serve(service).await;
    let a = client(&served, "key-a", SECRET_A);
    let b = client(&served, "key-b", SECRET_B);

    let first = tokio::spawn({
        let a = a.clone();
        async move { a.stop_process("a1", "slow-stop").await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Another command on the same process: busy.
    let e = a.start_process("a1", "8.0.4", "other").await.unwrap_err();
    assert_eq!((e.code.as_str(), e.status), ("OperationConflict", 409));
    // Another process (another host) is not held up.
    b.stop_process("b1", "b-stop").await.unwrap();
    // The same command again (a caller that timed out): waits for the first and shares it.
    let joined = a.stop_process("a1", "slow-stop").await.unwrap();
    let first = first.await.unwrap().unwrap();
    assert!(first.changed && !first.replayed);
    assert!(joined.changed && joined.replayed);
    assert_eq!(joined.process, first.process);
    assert_eq!(backend.calls(), 2);

    // A caller that hangs up does not cancel the command.
    let short = AgentClient::new(
        &AgentEndpoint {
            endpoint: served.endpoint.clone(),
            access_key_id: "key-a".into(),
            access_key_secret: SECRET_A.into(),
        },
        Duration::from_millis(100),
    )
    .unwrap();
    let e = short
        .start_process("a1", "8.0.4", "hang-up")
        .await
        .unwrap_err();
    assert!(!e.answered(), "{e:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let p = backend.get("host-a", "a1").unwrap();
    assert!(p.running && p.kernel_version == "8.0.4");
    let replayed = a.start_process("a1", "8.0.4", "hang-up").await.unwrap();
    assert!(replayed.replayed && replayed.changed);
}

#[tokio::test]
async fn the_command_log_survives_a_restart_and_is_bounded() {
    let dir = std::env::temp_dir().join(format!("ddsd-agent-log-{}", uuid::Uuid::new_v4()));
    let path = dir.join("command-log.json");
    let config = ServiceConfig {
        command_log: Some(path.clone()),
        max_command_log: 2,
        ..ServiceConfig::default()
    };
    let backend = FakeBackend::new(Duration::ZERO);
    {
        let service = AgentService::new(backend.clone(), keys(), config.clone()).unwrap();
        let served = serve(service).await;
        let a = client(&served, "key-a", SECRET_A);
        a.stop_process("a1", "one").await.unwrap();
        a.start_process("a1", "8.0.4", "two").await.unwrap();
        a.stop_process("a1", "three").await.unwrap();
    }
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(backend.calls(), 3);

    let service = AgentService::new(backend.clone(), keys(), config).unwrap();
    let served = serve(service).await;
    let a = client(&served, "key-a", SECRET_A);
    // Remembered across the restart: no backend call.
    let two = a.start_process("a1", "8.0.4", "two").await.unwrap();
    assert!(two.replayed && two.process.running);
    let three = a.stop_process("a1", "three").await.unwrap();
    assert!(three.replayed && !three.process.running);
    assert_eq!(backend.calls(), 3);
    // The oldest was dropped: "one" runs again (and changes nothing, the process is stopped).
    let one = a.stop_process("a1", "one").await.unwrap();
    assert!(!one.replayed && !one.changed);
    assert_eq!(backend.calls(), 4);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn extra_actions_get_the_callers_host_and_are_signed_like_the_rest() {
    let backend = FakeBackend::new(Duration::ZERO);
    let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let extra: ExtraActions = {
        let seen = seen.clone();
        Arc::new(move |action, params: BTreeMap<String, String>, host| {
            if action != "SimCrashHost" {
                return None;
            }
            seen.lock().unwrap().push((
                host.to_string(),
                params.get("Mode").cloned().unwrap_or_default(),
            ));
            let host = host.to_string();
            Some(Box::pin(async move {
                Ok(serde_json::json!({ "Crashed": host }))
            }))
        })
    };
    let service = AgentService::new(backend, keys(), ServiceConfig::default())
        .unwrap()
        .with_extra_actions(extra);
    let served = serve(service).await;
    let now = OffsetDateTime::now_utc();
    let ok = raw_v3(
        &served,
        "SimCrashHost",
        AGENT_API_VERSION,
        &[("Mode", "hard")],
        "key-b",
        SECRET_B,
        &nonce(),
        now,
    )
    .await;
    assert_eq!(ok.0, 200, "{}", ok.1);
    assert_eq!(ok.1["Crashed"], "host-b");
    assert_eq!(
        *seen.lock().unwrap(),
        [("host-b".to_string(), "hard".to_string())]
    );
    let unsigned = reqwest::Client::new()
        .post(format!(
            "{}/?Action=SimCrashHost&Version={AGENT_API_VERSION}&Format=JSON",
            served.endpoint
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status().as_u16(), 400);
    assert_eq!(seen.lock().unwrap().len(), 1);
    let unknown = raw_v3(
        &served,
        "SimOther",
        AGENT_API_VERSION,
        &[],
        "key-b",
        SECRET_B,
        &nonce(),
        now,
    )
    .await;
    assert_refused(&unknown, 404, "InvalidAction.NotFound");
}
