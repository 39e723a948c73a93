//! Random requests against every action of the action table, through the in-process router with a
//! real store: whatever the parameters, no handler panics, nothing a client sends yields a 5xx,
//! every answer is a well-formed envelope with its RequestId, and a refused request changes
//! nothing.
//!
//! The parameters mix the names handlers read (including the flattened `ReplicaSet.N.*`,
//! `ConfigServer.N.*`, `Mongos.N.*`, `Tag.N.*` lists) with random names, and values that are
//! plausible (real ids, classes, versions), at a boundary (0, 2^32, 24:00Z, empty) or hostile
//! (control characters, markup, very long text). Requests are signed V1 (JSON or XML, GET or POST
//! form) or V3, by the admin key or an ordinary one, so both the operator extensions' checks and
//! their `Forbidden.RAM` path run.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use acs_rpc::{
    sign_v1_request, sign_v3_request, BoundedNonceGuard, Credentials, Limits, MemoryKeyStore,
    Secret, V3Request,
};
use axum::body::Body;
use axum::http::Request;
use dds_engine::model::{DbInstanceStatus, DbInstanceType};
use ddsd::server::actions::kernels::KernelCatalog;
use ddsd::server::actions::regions::RegionCatalog;
use ddsd::server::actions::{Context, ACTIONS};
use ddsd::server::limits::Limiter;
use ddsd::server::store::{
    InstanceChange, InstanceFilter, InstanceUpdate, OperationFinish, OperationOutcome, Page,
    SqliteOptions, SqliteStore, Store,
};
use ddsd::server::{router, App};
use http_body_util::BodyExt as _;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use serde_json::Value;
use tower::ServiceExt as _;

const ADMIN: (&str, &str) = ("LTAIhostileadmin0000000", "adminsecret");
const USER: (&str, &str) = ("LTAIhostileuser00000000", "usersecret");

struct Harness {
    router: axum::Router,
    /// To disarm injected API faults (`DdsdArmApiFault`) before each request: a fault armed by one
    /// random request would otherwise answer the next one with the operator's chosen error
    /// (a 5xx, say), which is that extension's purpose, not a client's mistake.
    ctx: Arc<Context>,
    store: Arc<dyn Store>,
    /// Instances created up front, for parameters that name one.
    ids: Vec<String>,
    _dir: common::TempDir,
}

async fn harness() -> Harness {
    let dir = common::TempDir::new("hostile");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open_in(&dir, SqliteOptions::default()).unwrap());
    let kernels = Arc::new(KernelCatalog::load(&*store).await.unwrap());
    let mut keys = MemoryKeyStore::new();
    keys.insert(ADMIN.0, Secret::new(ADMIN.1));
    keys.insert(USER.0, Secret::new(USER.1));
    let ctx = Arc::new(Context {
        region: "cn-hangzhou".into(),
        regions: RegionCatalog::embedded(),
        store: store.clone(),
        kernels,
        admin_keys: [ADMIN.0.to_string()].into_iter().collect(),
        // Nothing moves operations: a refused request must leave the store exactly as it was,
        // and nothing else may change it between the two snapshots.
        runtime: None,
        plane: None,
        sim: None,
        mongo: None,
        rolling: dds_engine::workflow::UpgradeConfig::default(),
        api_faults: Default::default(),
    });
    let app = Arc::new(App {
        keys: Arc::new(keys),
        nonces: BoundedNonceGuard::new(1_000_000),
        limits: Limits::default(),
        ctx: ctx.clone(),
        max_body_bytes: 1 << 20,
        body_read_timeout: Duration::from_secs(10),
        endpoint: "127.0.0.1:1".into(),
        limiter: Limiter::unlimited(),
        metrics_access: ddsd::server::metrics::MetricsAccess::Off,
        console: Default::default(),
    });
    let router = router(app);
    let mut h = Harness {
        router,
        ctx,
        store,
        ids: Vec::new(),
        _dir: dir,
    };
    // A Running replica set, a Running sharded cluster, a standalone left Creating.
    let rs = [
        ("RegionId", "cn-hangzhou"),
        ("EngineVersion", "4.4"),
        ("DBInstanceClass", "dds.mongo.mid"),
        ("DBInstanceStorage", "20"),
    ];
    let sharded = [
        ("RegionId", "cn-hangzhou"),
        ("Engine", "MongoDB"),
        ("EngineVersion", "4.4"),
        ("ReplicaSet.1.Class", "dds.shard.mid"),
        ("ReplicaSet.1.Storage", "20"),
        ("ReplicaSet.2.Class", "dds.shard.mid"),
        ("ReplicaSet.2.Storage", "20"),
        ("ConfigServer.1.Class", "dds.cs.mid"),
        ("ConfigServer.1.Storage", "20"),
        ("Mongos.1.Class", "dds.mongos.mid"),
        ("Mongos.2.Class", "dds.mongos.mid"),
    ];
    let standalone = [
        ("RegionId", "cn-hangzhou"),
        ("EngineVersion", "4.0"),
        ("DBInstanceClass", "dds.sn2.standard.1"),
        ("DBInstanceStorage", "20"),
        ("ReplicationFactor", "1"),
    ];
    for (action, params, make_running) in [
        ("CreateDBInstance", &rs[..], true),
        ("CreateShardingDBInstance", &sharded[..], true),
        ("CreateDBInstance", &standalone[..], false),
    ] {
        let owned: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (status, body) = h.call(action, &owned, Scheme::V3, ADMIN).await;
        assert_eq!(status, 200, "{action}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        let id = v["DBInstanceId"].as_str().unwrap().to_string();
        if make_running {
            h.finish_create(&id).await;
        }
        h.ids.push(id);
    }
    h
}

#[derive(Debug, Clone, Copy)]
enum Scheme {
    V1Get,
    V1PostForm,
    V1Xml,
    V3,
}

impl Harness {
    /// Signs and sends one request; returns the status and the body.
    async fn call(
        &self,
        action: &str,
        params: &[(String, String)],
        scheme: Scheme,
        key: (&str, &str),
    ) -> (u16, String) {
        self.ctx.api_faults.clear(None);
        let secret = Secret::new(key.1);
        let nonce = uuid::Uuid::new_v4().to_string();
        let creds = Credentials {
            access_key_id: key.0,
            secret: &secret,
            nonce: &nonce,
            timestamp: time::OffsetDateTime::now_utc(),
        };
        let business: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let request = match scheme {
            Scheme::V1Get | Scheme::V1PostForm | Scheme::V1Xml => {
                let format = if matches!(scheme, Scheme::V1Xml) {
                    "XML"
                } else {
                    "JSON"
                };
                let mut all = vec![
                    ("Action", action),
                    ("Version", "2015-12-01"),
                    ("Format", format),
                ];
                all.extend_from_slice(&business);
                if matches!(scheme, Scheme::V1PostForm) {
                    let body = sign_v1_request("POST", &all, &creds);
                    Request::post("/")
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body(Body::from(body))
                        .unwrap()
                } else {
                    let query = sign_v1_request("GET", &all, &creds);
                    Request::get(format!("/?{query}"))
                        .body(Body::empty())
                        .unwrap()
                }
            }
            Scheme::V3 => {
                let signed = sign_v3_request(
                    &V3Request {
                        method: "POST",
                        host: "127.0.0.1:1",
                        query: &business,
                        headers: &[("accept", "application/json")],
                        body: b"",
                        action,
                        version: "2015-12-01",
                    },
                    &creds,
                );
                let mut b = Request::post(format!("/?{}", signed.query));
                for (k, v) in &signed.headers {
                    b = b.header(k.as_str(), v.as_str());
                }
                b.body(Body::empty()).unwrap()
            }
        };
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let request_id = response
            .headers()
            .get("x-acs-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8(body.to_vec()).expect("answers are UTF-8");
        let request_id = request_id.expect("every answer carries x-acs-request-id");
        assert!(
            body.contains(&request_id),
            "the envelope carries the RequestId: {body}"
        );
        match content_type.as_str() {
            "application/json;charset=utf-8" => {
                let v: Value = serde_json::from_str(&body).expect("JSON answers parse");
                assert_eq!(v["RequestId"], request_id.as_str(), "{body}");
                if status >= 400 {
                    assert!(v["Code"].is_string() && v["Message"].is_string(), "{body}");
                }
            }
            "text/xml;charset=utf-8" => {
                assert!(body.starts_with("<?xml"), "{body}");
            }
            other => panic!("unexpected content type {other:?}: {body}"),
        }
        (status, body)
    }

    async fn finish_create(&self, id: &str) {
        let ops = self.store.list_operations(id, 10).await.unwrap();
        let op = ops.iter().find(|o| !o.status.is_finished()).unwrap();
        let claimed = self
            .store
            .claim_operation(&op.id, "hostile", 60_000)
            .await
            .unwrap();
        self.store
            .finish_operation(
                &op.id,
                claimed.epoch,
                OperationFinish {
                    outcome: OperationOutcome::Succeeded,
                    state: serde_json::json!({}),
                    report: None,
                    instance: InstanceChange::Update(InstanceUpdate::status(
                        DbInstanceStatus::Running,
                    )),
                },
            )
            .await
            .unwrap();
    }

    /// Every instance with its full state, for "a refusal changes nothing".
    async fn snapshot(&self) -> Value {
        let mut all = Vec::new();
        for t in [DbInstanceType::Replicate, DbInstanceType::Sharding] {
            let filter = InstanceFilter {
                instance_type: t,
                ..InstanceFilter::default()
            };
            let page = self
                .store
                .list_instances(&filter, Page::new(1, 100).unwrap())
                .await
                .unwrap();
            all.push(serde_json::json!({
                "total": page.total,
                "instances": serde_json::to_value(&page.instances).unwrap(),
            }));
        }
        Value::Array(all)
    }
}

/// Parameter names handlers read, plus list entries and near-misses.
fn name() -> impl Strategy<Value = String> {
    let known = prop::sample::select(vec![
        "DBInstanceId",
        "RegionId",
        "ZoneId",
        "EngineVersion",
        "Engine",
        "DBInstanceClass",
        "DBInstanceStorage",
        "DBInstanceDescription",
        "DBInstanceStatus",
        "DBInstanceType",
        "ReplicationFactor",
        "ReadonlyReplicas",
        "StorageEngine",
        "StorageType",
        "NetworkType",
        "VpcId",
        "VSwitchId",
        "ChargeType",
        "Period",
        "AutoRenew",
        "PageSize",
        "PageNumber",
        "ClientToken",
        "SwitchMode",
        "KernelVersion",
        "ReleaseNote",
        "ReleaseDate",
        "MaintainStartTime",
        "MaintainEndTime",
        "AccountPassword",
        "ProtocolType",
        "ResourceGroupId",
        "Expired",
        "ExpireTime",
        "IsDelete",
        "Encrypted",
        "ProvisionedIops",
        "DBNodeType",
        "AcceptLanguage",
        "OwnerId",
        "Tag",
        "ReplicaSet",
        "Mongos",
        "ConfigServer",
        "TargetAction",
        "ErrorCode",
        "HttpStatus",
        "Message",
        "Count",
        "RetryAfterMs",
        "DelayMs",
        "FaultId",
    ])
    .prop_map(str::to_string);
    let list = (
        prop::sample::select(vec!["ReplicaSet", "ConfigServer", "Mongos", "Tag"]),
        prop_oneof![
            (1u32..4).prop_map(|n| n.to_string()),
            Just("0".to_string()),
            Just("01".to_string()),
            Just("33".to_string()),
            Just("99999".to_string()),
            Just(String::new()),
        ],
        prop::sample::select(vec![
            "Class",
            "Storage",
            "ReadonlyReplicas",
            "Key",
            "Value",
            "",
            "X",
        ]),
    )
        .prop_map(|(p, n, f)| {
            if f.is_empty() {
                format!("{p}.{n}")
            } else {
                format!("{p}.{n}.{f}")
            }
        });
    prop_oneof![4 => known, 3 => list, 1 => "[A-Za-z][A-Za-z0-9.]{0,20}"]
}

fn value(ids: Vec<String>) -> impl Strategy<Value = String> {
    let plausible = prop::sample::select(vec![
        "cn-hangzhou",
        "*",
        "DescribeRegions",
        "UpgradeDBInstanceKernelVersion",
        "ServiceUnavailable",
        "Throttling.User",
        "503",
        "cn-hangzhou-h",
        "cn-beijing",
        "4.4",
        "5.0",
        "6.0",
        "7.0",
        "4.0",
        "MongoDB",
        "dds.mongo.mid",
        "dds.mongo.standard",
        "dds.sn2.standard.1",
        "dds.shard.mid",
        "dds.cs.mid",
        "dds.mongos.mid",
        "20",
        "30",
        "50",
        "100",
        "1",
        "3",
        "5",
        "7",
        "true",
        "false",
        "replicate",
        "sharding",
        "Running",
        "Creating",
        "PrePaid",
        "PostPaid",
        "VPC",
        "cloud_essd1",
        "local_ssd",
        "WiredTiger",
        "00:00Z",
        "01:00Z",
        "23:59Z",
        "24:00Z",
        "2026-01-01",
        "mongodb_20250101_4.4.30",
        "mongodb_20991231_4.4.99",
        "5.0.30-20250101000000_0",
        "zh",
        "en",
    ])
    .prop_map(str::to_string);
    let boundary = prop::sample::select(vec![
        "",
        "0",
        "-1",
        "+1",
        " 1",
        "1.5",
        "4294967295",
        "4294967296",
        "99999999999999999999",
        "2147483648",
        "NaN",
        "0x10",
        "１",
    ])
    .prop_map(str::to_string);
    let id = prop::sample::select(ids);
    let hostile = prop_oneof![
        "\\PC{0,40}",
        "[\\x00-\\x1f<>&\"']{0,20}",
        (1usize..3000).prop_map(|n| "x".repeat(n)),
        Just("]]><script>".to_string()),
        Just("dds-bp1%00".to_string()),
    ];
    prop_oneof![4 => plausible, 2 => boundary, 2 => id, 2 => hostile]
}

fn params(ids: Vec<String>) -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::btree_map(name(), value(ids), 0..10)
        .prop_map(|m: BTreeMap<String, String>| m.into_iter().collect())
}

fn scheme() -> impl Strategy<Value = (Scheme, bool)> {
    (
        prop::sample::select(vec![
            Scheme::V1Get,
            Scheme::V1PostForm,
            Scheme::V1Xml,
            Scheme::V3,
        ]),
        any::<bool>(),
    )
}

#[test]
fn random_requests_to_every_action_never_panic_never_5xx_and_refusals_change_nothing() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let h = rt.block_on(harness());
    let cases = std::env::var("DDSD_HOSTILE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128);
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let strategy = (params(h.ids.clone()), scheme());
    let seen = std::sync::Mutex::new(BTreeMap::<(String, u16), usize>::new());
    runner
        .run(&strategy, |(params, (scheme, admin))| {
            rt.block_on(async {
                let key = if admin { ADMIN } else { USER };
                for spec in ACTIONS {
                    let action = &spec.name;
                    let before = h.snapshot().await;
                    let (status, body) = h.call(action, &params, scheme, key).await;
                    let code = match body.split_once("<Code>") {
                        Some((_, rest)) => rest.split('<').next().unwrap_or("").to_string(),
                        None => serde_json::from_str::<Value>(&body)
                            .ok()
                            .and_then(|v| v["Code"].as_str().map(str::to_string))
                            .unwrap_or_else(|| "OK".into()),
                    };
                    *seen.lock().unwrap().entry((code, status)).or_default() += 1;
                    prop_assert!(
                        status < 500,
                        "{action} {scheme:?} {params:?} -> {status} {body}"
                    );
                    if status >= 400 {
                        let after = h.snapshot().await;
                        prop_assert_eq!(
                            &before,
                            &after,
                            "{} refused with {} but changed the store: {}",
                            action,
                            status,
                            body
                        );
                    }
                }
                Ok(())
            })
        })
        .unwrap();
    // What the run reached, for whoever reads the output (`--nocapture`).
    for ((code, status), n) in seen.into_inner().unwrap() {
        eprintln!("{status} {code}: {n}");
    }
}
