//! Golden response shapes: every instance action's success and error bodies, in JSON and XML, as
//! they leave the HTTP server, compared with the files in `tests/sdk/golden/` after normalising
//! what changes from run to run (RequestId, generated ids, OrderId, times).
//!
//! A shape change — a field renamed, retyped (`"3"` vs `3`), added, dropped or moved — fails
//! here. When the change is intended, regenerate with `DDSD_UPDATE_GOLDEN=1 cargo test -p ddsd
//! --test golden` and review the diff.
//!
//! The server runs in-process on a loopback port with a real SQLite store; no runtime drives
//! operations, so the test moves them to their end itself through the store, as the runtime would.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use acs_rpc::{BoundedNonceGuard, Format, Limits, MemoryKeyStore, Secret};
use dds_engine::model::DbInstanceStatus;
use ddsd::server::actions::kernels::KernelCatalog;
use ddsd::server::actions::regions::RegionCatalog;
use ddsd::server::actions::Context;
use ddsd::server::store::{
    InstanceChange, InstanceUpdate, OperationFinish, OperationOutcome, SqliteOptions, SqliteStore,
    Store,
};
use ddsd::server::{router, App};
use ddsd_client::{Client, Credentials, Signature};
use serde_json::Value;

const ADMIN_ID: &str = "LTAIgoldenadmin00000000";
const ADMIN_SECRET: &str = "goldensecret";

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/sdk/golden")
}

struct Harness {
    /// `IP:PORT` of the in-process server (the `HostId` of error envelopes).
    addr: String,
    store: Arc<dyn Store>,
    v1: Client,
    v3: Client,
    _dir: common::TempDir,
}

async fn harness() -> Harness {
    let dir = common::TempDir::new("golden");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open_in(&dir, SqliteOptions::default()).unwrap());
    let kernels = Arc::new(KernelCatalog::load(&*store).await.unwrap());
    let mut keys = MemoryKeyStore::new();
    keys.insert(ADMIN_ID, Secret::new(ADMIN_SECRET));
    let ctx = Arc::new(Context {
        region: "cn-hangzhou".into(),
        regions: RegionCatalog::embedded(),
        store: store.clone(),
        kernels,
        admin_keys: [ADMIN_ID.to_string()].into_iter().collect(),
        runtime: None,
        plane: None,
        sim: None,
        mongo: None,
        rolling: dds_engine::workflow::UpgradeConfig::default(),
        api_faults: Default::default(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Arc::new(App {
        keys: Arc::new(keys),
        nonces: BoundedNonceGuard::new(10_000),
        limits: Limits::default(),
        ctx,
        max_body_bytes: 1 << 20,
        body_read_timeout: Duration::from_secs(10),
        endpoint: "mongodb.aliyuncs.com".into(),
        metrics_access: ddsd::server::metrics::MetricsAccess::Off,
        limiter: ddsd::server::limits::Limiter::unlimited(),
        console: Default::default(),
    });
    tokio::spawn(async move { axum::serve(listener, router(app)).await });
    let creds = Credentials {
        access_key_id: ADMIN_ID.into(),
        secret: Secret::new(ADMIN_SECRET),
    };
    let endpoint = format!("http://{addr}");
    Harness {
        addr: addr.to_string(),
        store,
        v1: Client::with_signature(&endpoint, creds.clone(), Signature::V1).unwrap(),
        v3: Client::with_signature(&endpoint, creds, Signature::V3).unwrap(),
        _dir: dir,
    }
}

/// Replaces run-dependent values with stable placeholders: generated ids get `<prefix>{n}` in
/// order of first appearance; RequestIds, 15-digit OrderIds, `yyyy-MM-ddTHH:mm:ssZ` times,
/// `mgset-` numbers and the server's address get fixed markers; the newest catalogued kernel of an
/// engine becomes `{newest X.Y}` (so the files do not change when the catalog grows, and the
/// value is checked to be the newest).
struct Normaliser {
    ids: BTreeMap<String, String>,
    per_prefix: BTreeMap<&'static str, usize>,
    fixed: Vec<(String, String)>,
}

const ID_PREFIXES: [&str; 6] = ["dds-bp", "vpc-bp", "vsw-bp", "cs-bp", "d-bp", "s-bp"];

impl Normaliser {
    fn new() -> Self {
        let catalog = dds_engine::catalog::Catalog::embedded();
        let fixed = catalog
            .engine_versions()
            .filter_map(|e| {
                catalog
                    .newest(e)
                    .map(|k| (k.kernel_version.clone(), format!("{{newest {e}}}")))
            })
            .collect();
        Normaliser {
            ids: BTreeMap::new(),
            per_prefix: BTreeMap::new(),
            fixed,
        }
    }

    fn text(&mut self, s: &str) -> String {
        let mut s = s.to_string();
        for (from, to) in &self.fixed {
            s = s.replace(from.as_str(), to);
        }
        let s = s.as_str();
        let b = s.as_bytes();
        let mut out = String::with_capacity(s.len());
        let mut i = 0;
        let boundary = |i: usize| i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'-');
        'outer: while i < b.len() {
            if boundary(i) {
                for p in ID_PREFIXES {
                    if s[i..].starts_with(p) {
                        let start = i + p.len();
                        let len = b[start..]
                            .iter()
                            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                            .count();
                        if len >= 14 {
                            // Instance ids are 14 characters; endpoints append a digit or `-ro`.
                            let take = if p == "dds-bp" { 14 } else { len };
                            let id = &s[i..start + take];
                            let next = self.per_prefix.entry(p).or_insert(0);
                            let placeholder = self
                                .ids
                                .entry(id.to_string())
                                .or_insert_with(|| {
                                    *next += 1;
                                    format!("{p}{{{next}}}")
                                })
                                .clone();
                            out.push_str(&placeholder);
                            i = start + take;
                            continue 'outer;
                        }
                    }
                }
                if s[i..].starts_with("mgset-") {
                    out.push_str("mgset-{n}");
                    i += 6;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                    continue;
                }
                let digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
                if digits == 15 && b.get(i + 15).is_none_or(|c| !c.is_ascii_alphanumeric()) {
                    out.push_str("{OrderId}");
                    i += 15;
                    continue;
                }
                if is_timestamp(&b[i..]) {
                    out.push_str("{time}");
                    i += 20;
                    continue;
                }
            }
            let ch = s[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
        out
    }
}

/// `yyyy-MM-ddTHH:mm:ssZ`
fn is_timestamp(b: &[u8]) -> bool {
    const SHAPE: &[u8] = b"dddd-dd-ddTdd:dd:ddZ";
    b.len() >= SHAPE.len()
        && SHAPE.iter().zip(b).all(|(s, c)| match s {
            b'd' => c.is_ascii_digit(),
            other => other == c,
        })
}

fn normalise_request_id(text: &str, request_id: &str, addr: &str) -> String {
    text.replace(request_id, "{RequestId}")
        .replace(addr, "{host}")
}

/// Compares with (or, with DDSD_UPDATE_GOLDEN=1, writes) `tests/sdk/golden/<name>`.
fn check(name: &str, actual: &str, failures: &mut Vec<String>) {
    let path = golden_dir().join(name);
    if std::env::var_os("DDSD_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden_dir()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    match std::fs::read_to_string(&path) {
        Ok(expected) if expected == actual => {}
        Ok(expected) => failures.push(format!(
            "{name} differs\n--- expected\n{expected}\n--- actual\n{actual}"
        )),
        Err(e) => failures.push(format!(
            "{name}: {e} (regenerate with DDSD_UPDATE_GOLDEN=1)"
        )),
    }
}

struct Golden<'a> {
    h: &'a Harness,
    failures: Vec<String>,
}

impl Golden<'_> {
    /// Calls the action in JSON (V3) and XML (V1), checks the status, pins both bodies, and
    /// returns the JSON body.
    async fn pin(
        &mut self,
        name: &str,
        action: &str,
        params: &[(&str, &str)],
        status: u16,
    ) -> Value {
        let json = self
            .h
            .v3
            .call_raw(action, params, Format::Json)
            .await
            .unwrap();
        assert_eq!(
            json.status,
            status,
            "{name}: {}",
            String::from_utf8_lossy(&json.body)
        );
        assert_eq!(json.content_type, "application/json;charset=utf-8");
        let value: Value = serde_json::from_slice(&json.body).unwrap();
        let mut n = Normaliser::new();
        let rid = value["RequestId"].as_str().unwrap().to_string();
        let pretty = serde_json::to_string_pretty(&value).unwrap();
        let text = n.text(&normalise_request_id(&pretty, &rid, &self.h.addr)) + "\n";
        check(&format!("{name}.json"), &text, &mut self.failures);

        // The XML call may not repeat a create: pin XML of reads and errors, and of writes only
        // where the request is safe to send twice.
        if action.starts_with("Describe")
            || action == "ModifyDBInstanceMaintainTime"
            || status >= 400
        {
            let xml = self
                .h
                .v1
                .call_raw(action, params, Format::Xml)
                .await
                .unwrap();
            assert_eq!(xml.status, status, "{name} (XML)");
            assert_eq!(xml.content_type, "text/xml;charset=utf-8");
            let body = String::from_utf8(xml.body).unwrap();
            let rid = body
                .split("<RequestId>")
                .nth(1)
                .and_then(|r| r.split("</RequestId>").next())
                .unwrap()
                .to_string();
            let mut n = Normaliser::new();
            let text = n.text(&normalise_request_id(&body, &rid, &self.h.addr)) + "\n";
            check(&format!("{name}.xml"), &text, &mut self.failures);
        }
        value
    }

    /// Pins a write in XML on its own request (creates and deletes cannot be sent twice).
    async fn pin_xml(&mut self, name: &str, action: &str, params: &[(&str, &str)]) -> String {
        let xml = self
            .h
            .v1
            .call_raw(action, params, Format::Xml)
            .await
            .unwrap();
        assert_eq!(xml.status, 200, "{name} (XML)");
        let body = String::from_utf8(xml.body).unwrap();
        let rid = body
            .split("<RequestId>")
            .nth(1)
            .and_then(|r| r.split("</RequestId>").next())
            .unwrap()
            .to_string();
        let mut n = Normaliser::new();
        let text = n.text(&normalise_request_id(&body, &rid, &self.h.addr)) + "\n";
        check(&format!("{name}.xml"), &text, &mut self.failures);
        body
    }
}

async fn finish(store: &Arc<dyn Store>, id: &str, change: InstanceChange) {
    let ops = store.list_operations(id, 10).await.unwrap();
    let op = ops.iter().find(|o| !o.status.is_finished()).unwrap();
    let claimed = store
        .claim_operation(&op.id, "golden", 60_000)
        .await
        .unwrap();
    store
        .finish_operation(
            &op.id,
            claimed.epoch,
            OperationFinish {
                outcome: OperationOutcome::Succeeded,
                state: serde_json::json!({}),
                report: None,
                instance: change,
            },
        )
        .await
        .unwrap();
}

async fn running(store: &Arc<dyn Store>, id: &str) {
    finish(
        store,
        id,
        InstanceChange::Update(InstanceUpdate::status(DbInstanceStatus::Running)),
    )
    .await;
}

const RS: &[(&str, &str)] = &[
    ("RegionId", "cn-hangzhou"),
    ("ZoneId", "cn-hangzhou-h"),
    ("EngineVersion", "4.4"),
    ("DBInstanceClass", "dds.mongo.standard"),
    ("DBInstanceStorage", "30"),
    ("ReplicationFactor", "5"),
    ("ReadonlyReplicas", "1"),
    ("DBInstanceDescription", "golden replica set"),
    ("Tag.1.Key", "team"),
    ("Tag.1.Value", "storage"),
];

const STANDALONE: &[(&str, &str)] = &[
    ("RegionId", "cn-hangzhou"),
    ("ZoneId", "cn-hangzhou-h"),
    ("EngineVersion", "4.0"),
    ("DBInstanceClass", "dds.sn2.standard.1"),
    ("DBInstanceStorage", "20"),
    ("ReplicationFactor", "1"),
];

const SHARDED: &[(&str, &str)] = &[
    ("RegionId", "cn-hangzhou"),
    ("ZoneId", "cn-hangzhou-h"),
    ("Engine", "MongoDB"),
    ("EngineVersion", "5.0"),
    ("ReplicaSet.1.Class", "dds.shard.mid"),
    ("ReplicaSet.1.Storage", "20"),
    ("ReplicaSet.2.Class", "dds.shard.standard"),
    ("ReplicaSet.2.Storage", "40"),
    ("ReplicaSet.2.ReadonlyReplicas", "2"),
    ("ConfigServer.1.Class", "dds.cs.mid"),
    ("ConfigServer.1.Storage", "20"),
    ("Mongos.1.Class", "dds.mongos.mid"),
    ("Mongos.2.Class", "dds.mongos.standard"),
];

#[tokio::test]
async fn response_shapes_match_the_golden_files() {
    let h = harness().await;
    let mut g = Golden {
        h: &h,
        failures: Vec::new(),
    };
    let rs = g.pin("CreateDBInstance", "CreateDBInstance", RS, 200).await;
    let rs = rs["DBInstanceId"].as_str().unwrap().to_string();
    let xml = g
        .pin_xml("CreateDBInstance", "CreateDBInstance", STANDALONE)
        .await;
    let standalone = xml
        .split("<DBInstanceId>")
        .nth(1)
        .and_then(|r| r.split("</DBInstanceId>").next())
        .unwrap()
        .to_string();
    let sh = g
        .pin(
            "CreateShardingDBInstance",
            "CreateShardingDBInstance",
            SHARDED,
            200,
        )
        .await;
    let sh = sh["DBInstanceId"].as_str().unwrap().to_string();
    g.pin_xml(
        "CreateShardingDBInstance",
        "CreateShardingDBInstance",
        SHARDED,
    )
    .await;
    for id in [&rs, &standalone, &sh] {
        running(&h.store, id).await;
    }

    g.pin(
        "DescribeDBInstanceAttribute.replicaset",
        "DescribeDBInstanceAttribute",
        &[("DBInstanceId", &rs)],
        200,
    )
    .await;
    g.pin(
        "DescribeDBInstanceAttribute.standalone",
        "DescribeDBInstanceAttribute",
        &[("DBInstanceId", &standalone)],
        200,
    )
    .await;
    g.pin(
        "DescribeDBInstanceAttribute.sharding",
        "DescribeDBInstanceAttribute",
        &[("DBInstanceId", &sh)],
        200,
    )
    .await;
    g.pin(
        "DescribeDBInstances.replicate",
        "DescribeDBInstances",
        &[("DBInstanceId", &rs)],
        200,
    )
    .await;
    g.pin(
        "DescribeDBInstances.sharding",
        "DescribeDBInstances",
        &[("DBInstanceType", "sharding"), ("DBInstanceId", &sh)],
        200,
    )
    .await;
    g.pin(
        "DescribeDBInstances.empty",
        "DescribeDBInstances",
        &[
            ("DBInstanceStatus", "Deleting"),
            ("PageSize", "50"),
            ("PageNumber", "2"),
        ],
        200,
    )
    .await;
    g.pin(
        "DescribeAvailableEngineVersion",
        "DescribeAvailableEngineVersion",
        &[("DBInstanceId", &rs)],
        200,
    )
    .await;
    g.pin(
        "DescribeAvailableEngineVersion.none",
        "DescribeAvailableEngineVersion",
        &[("DBInstanceId", &standalone)],
        200,
    )
    .await;
    g.pin(
        "DescribeKernelReleaseNotes",
        "DescribeKernelReleaseNotes",
        &[("KernelVersion", "mongodb_20230310_4.4.14")],
        200,
    )
    .await;
    g.pin(
        "ModifyDBInstanceMaintainTime",
        "ModifyDBInstanceMaintainTime",
        &[
            ("DBInstanceId", &rs),
            ("MaintainStartTime", "02:00Z"),
            ("MaintainEndTime", "04:00Z"),
        ],
        200,
    )
    .await;
    g.pin(
        "DdsdPublishKernelVersion",
        "DdsdPublishKernelVersion",
        &[
            ("EngineVersion", "4.4"),
            ("KernelVersion", "mongodb_20990101_4.4.99"),
            ("ReleaseNote", "Golden."),
            ("ReleaseDate", "2099-01-02"),
        ],
        200,
    )
    .await;
    g.pin_xml(
        "DdsdPublishKernelVersion",
        "DdsdPublishKernelVersion",
        &[
            ("EngineVersion", "4.4"),
            ("KernelVersion", "mongodb_20990201_4.4.100"),
            ("ReleaseNote", "Golden."),
            ("ReleaseDate", "2099-02-02"),
        ],
    )
    .await;
    g.pin(
        "DeleteDBInstance",
        "DeleteDBInstance",
        &[("DBInstanceId", &rs)],
        200,
    )
    .await;
    g.pin_xml(
        "DeleteDBInstance",
        "DeleteDBInstance",
        &[("DBInstanceId", &standalone)],
    )
    .await;

    // Errors, in both formats.
    g.pin(
        "error.InvalidDBInstanceId.NotFound",
        "DescribeDBInstanceAttribute",
        &[("DBInstanceId", "dds-bpnothere00000000")],
        404,
    )
    .await;
    g.pin(
        "error.PageSize",
        "DescribeDBInstances",
        &[("PageSize", "7")],
        400,
    )
    .await;
    g.pin(
        "error.OperationDenied.DBInstanceStatus",
        "DeleteDBInstance",
        &[("DBInstanceId", &rs)],
        403,
    )
    .await;
    g.pin(
        "error.MaintainEndTime",
        "ModifyDBInstanceMaintainTime",
        &[
            ("DBInstanceId", &sh),
            ("MaintainStartTime", "04:00Z"),
            ("MaintainEndTime", "03:00Z"),
        ],
        400,
    )
    .await;
    g.pin(
        "error.ReplicaSetGap",
        "CreateShardingDBInstance",
        &[
            ("RegionId", "cn-hangzhou"),
            ("Engine", "MongoDB"),
            ("EngineVersion", "4.4"),
            ("ReplicaSet.1.Class", "dds.shard.mid"),
            ("ReplicaSet.3.Class", "dds.shard.mid"),
        ],
        400,
    )
    .await;
    g.pin(
        "error.InvalidDBInstanceClass.NotFound",
        "CreateDBInstance",
        &[
            ("RegionId", "cn-hangzhou"),
            ("EngineVersion", "4.4"),
            ("DBInstanceClass", "dds.mongo.huge"),
            ("DBInstanceStorage", "20"),
        ],
        404,
    )
    .await;
    g.pin(
        "error.InvalidKernelReleaseNotes",
        "DescribeKernelReleaseNotes",
        &[("KernelVersion", "4.4")],
        400,
    )
    .await;

    assert!(g.failures.is_empty(), "{}", g.failures.join("\n\n"));
}

#[test]
fn normaliser_numbers_ids_by_first_appearance() {
    let mut n = Normaliser::new();
    let s = "dds-bpabcdefghij0123 dds-bpabcdefghij01231.mongodb s-bpzzzzzzzzzzzzzz cs-bpyyyyyyyyyyyyyy \
             dds-bpqqqqqqqqqqqqqq 123456789012345 1234567890123456 2026-11-26T05:46:21Z mgset-12345678";
    assert_eq!(
        n.text(s),
        "dds-bp{1} dds-bp{1}1.mongodb s-bp{1} cs-bp{1} dds-bp{2} {OrderId} 1234567890123456 {time} mgset-{n}"
    );
}
