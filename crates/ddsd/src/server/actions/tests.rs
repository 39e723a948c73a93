//! Handler tests through the action table, on a real SQLite store: what each action answers, the
//! vendor's error for every kind of bad input, and that a refused request leaves the store exactly
//! as it was.

use std::sync::Arc;

use crate::server::actions::errors::ApiError;
use dds_engine::catalog::Catalog;
use dds_engine::model::{DbInstanceStatus, DbInstanceType, Instance};
use serde_json::Value;

use super::params::tests::req_as;
use super::testing::{self, TestCtx, ADMIN};
use super::{kernels, lookup, Context};
use crate::server::store::{
    InstanceChange, InstanceFilter, InstanceUpdate, OperationFinish, OperationKind,
    OperationOutcome, Page,
};

async fn call_as(
    ctx: &Arc<Context>,
    key: &str,
    action: &str,
    params: &[(&str, &str)],
) -> Result<Value, ApiError> {
    assert!(lookup(action).is_some(), "{action} is in the table");
    super::call(ctx.clone(), req_as(action, key, params)).await
}

async fn call(t: &TestCtx, action: &str, params: &[(&str, &str)]) -> Result<Value, ApiError> {
    call_as(&t.ctx, "testid", action, params).await
}

async fn ok(t: &TestCtx, action: &str, params: &[(&str, &str)]) -> Value {
    call(t, action, params)
        .await
        .unwrap_or_else(|e| panic!("{action} {params:?}: {e}"))
}

fn assert_err(r: Result<Value, ApiError>, code: &str, status: u16, what: &str) -> ApiError {
    match r {
        Ok(v) => panic!("{what}: expected {code}, got {v}"),
        Err(e) => {
            assert_eq!((e.code(), e.status()), (code, status), "{what}: {e}");
            e
        }
    }
}

/// Everything a request could change: every instance (both listings) and the published kernels.
async fn store_state(t: &TestCtx) -> (Vec<Instance>, Option<String>) {
    let mut all = Vec::new();
    for ty in [DbInstanceType::Replicate, DbInstanceType::Sharding] {
        let filter = InstanceFilter {
            instance_type: ty,
            ..InstanceFilter::default()
        };
        let mut n = 1;
        loop {
            let page = t
                .store
                .list_instances(&filter, Page::new(n, 100).unwrap())
                .await
                .unwrap();
            let done = page.instances.len() < 100;
            all.extend(page.instances);
            if done {
                break;
            }
            n += 1;
        }
    }
    all.sort_by(|a, b| a.id.cmp(&b.id));
    let setting = t
        .store
        .get_setting(kernels::PUBLISHED_SETTING)
        .await
        .unwrap();
    (all, setting)
}

type Params<'a> = Vec<(&'a str, &'a str)>;

const RS: &[(&str, &str)] = &[
    ("RegionId", "cn-hangzhou"),
    ("EngineVersion", "4.4"),
    ("DBInstanceClass", "dds.mongo.mid"),
    ("DBInstanceStorage", "20"),
];

fn with<'a>(base: &[(&'a str, &'a str)], extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut v: Vec<(&str, &str)> = base
        .iter()
        .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
        .copied()
        .collect();
    v.extend(extra.iter().filter(|(_, v)| !v.is_empty()));
    v
}

fn without<'a>(base: &[(&'a str, &'a str)], name: &str) -> Vec<(&'a str, &'a str)> {
    base.iter().filter(|(k, _)| *k != name).copied().collect()
}

const SHARDED: &[(&str, &str)] = &[
    ("RegionId", "cn-hangzhou"),
    ("Engine", "MongoDB"),
    ("EngineVersion", "4.4"),
    ("ReplicaSet.1.Class", "dds.shard.mid"),
    ("ReplicaSet.1.Storage", "20"),
    ("ReplicaSet.2.Class", "dds.shard.standard"),
    ("ReplicaSet.2.Storage", "30"),
    ("ReplicaSet.2.ReadonlyReplicas", "1"),
    ("ConfigServer.1.Class", "dds.cs.mid"),
    ("ConfigServer.1.Storage", "20"),
    ("Mongos.1.Class", "dds.mongos.mid"),
    ("Mongos.2.Class", "dds.mongos.standard"),
];

async fn attribute(t: &TestCtx, id: &str) -> Value {
    let v = ok(t, "DescribeDBInstanceAttribute", &[("DBInstanceId", id)]).await;
    let list = v["DBInstances"]["DBInstance"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    list[0].clone()
}

/// Moves the instance's unfinished operation to its end as the runtime would.
async fn finish(t: &TestCtx, id: &str, change: InstanceChange) {
    let ops = t.store.list_operations(id, 10).await.unwrap();
    let op = ops
        .iter()
        .find(|o| !o.status.is_finished())
        .expect("an unfinished operation");
    let claimed = t
        .store
        .claim_operation(&op.id, "test", 60_000)
        .await
        .unwrap();
    t.store
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

async fn make_running(t: &TestCtx, id: &str) {
    finish(
        t,
        id,
        InstanceChange::Update(InstanceUpdate::status(DbInstanceStatus::Running)),
    )
    .await;
}

fn newest(engine: &str) -> String {
    Catalog::embedded()
        .newest(engine)
        .unwrap()
        .kernel_version
        .clone()
}

#[tokio::test]
async fn create_replica_set_records_creating_instance_and_operation() {
    let t = testing::ctx();
    let v = ok(&t, "CreateDBInstance", RS).await;
    let id = v["DBInstanceId"].as_str().unwrap().to_string();
    assert!(id.starts_with("dds-bp") && id.len() == 20, "{id}");
    let order = v["OrderId"].as_str().unwrap();
    assert!(
        order.len() == 15 && order.bytes().all(|b| b.is_ascii_digit()),
        "{order}"
    );

    let ops = t.store.list_operations(&id, 10).await.unwrap();
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0].kind, OperationKind::Create);
    // In the form the runtime starts it from.
    assert!(matches!(
        crate::server::runtime::OperationState::from_json(ops[0].kind, ops[0].state.clone()),
        Ok(crate::server::runtime::OperationState::Create(_))
    ));

    let a = attribute(&t, &id).await;
    assert_eq!(a["DBInstanceId"], id.as_str());
    assert_eq!(a["DBInstanceStatus"], "Creating");
    assert_eq!(a["DBInstanceType"], "replicate");
    assert_eq!(a["ReplicationFactor"], "3");
    assert_eq!(a["ReadonlyReplicas"], "0");
    assert_eq!(a["KindCode"], "18");
    assert_eq!(a["EngineVersion"], "4.4");
    assert_eq!(a["Engine"], "MongoDB");
    assert_eq!(a["DBInstanceStorage"], 20);
    assert_eq!(a["DBInstanceClass"], "dds.mongo.mid");
    assert_eq!(a["CurrentKernelVersion"], newest("4.4").as_str());
    assert_eq!(a["MaintainStartTime"], "18:00Z");
    assert_eq!(a["MaintainEndTime"], "22:00Z");
    assert_eq!(a["LockMode"], "Unlock");
    assert_eq!(a["MaxConnections"], 500);
    assert!(a["ZoneId"].as_str().unwrap().starts_with("cn-hangzhou-"));
    assert!(a["VPCId"].as_str().unwrap().starts_with("vpc-bp"));
    assert!(a["ReplicaSetName"].as_str().unwrap().starts_with("mgset-"));
    let sets = a["ReplicaSets"]["ReplicaSet"].as_array().unwrap();
    let roles: Vec<&str> = sets
        .iter()
        .map(|s| s["ReplicaSetRole"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["Primary", "Secondary"]);
    assert_eq!(sets[0]["ConnectionPort"], "3717");
    assert!(a.get("ShardList").is_none() && a.get("MongosList").is_none());
}

#[tokio::test]
async fn replication_factor_and_readonly_replicas_shape_the_set() {
    let t = testing::ctx();
    let v = ok(
        &t,
        "CreateDBInstance",
        &with(RS, &[("ReplicationFactor", "5"), ("ReadonlyReplicas", "2")]),
    )
    .await;
    let a = attribute(&t, v["DBInstanceId"].as_str().unwrap()).await;
    assert_eq!(
        (
            a["ReplicationFactor"].as_str(),
            a["ReadonlyReplicas"].as_str()
        ),
        (Some("5"), Some("2"))
    );
    assert_eq!(a["ReplicaSets"]["ReplicaSet"].as_array().unwrap().len(), 3);

    let v = ok(
        &t,
        "CreateDBInstance",
        &with(
            RS,
            &[
                ("ReplicationFactor", "1"),
                ("EngineVersion", "4.0"),
                ("DBInstanceClass", "dds.sn2.standard.1"),
            ],
        ),
    )
    .await;
    let a = attribute(&t, v["DBInstanceId"].as_str().unwrap()).await;
    assert_eq!(a["KindCode"], "3");
    assert_eq!(a["ReplicationFactor"], "1");
    assert_eq!(a["DBInstanceType"], "replicate");
    assert_eq!(a["CurrentKernelVersion"], newest("4.0").as_str());
}

#[tokio::test]
async fn bad_create_parameters_get_the_vendor_code_and_change_nothing() {
    let t = testing::ctx();
    ok(&t, "CreateDBInstance", RS).await;
    let before = store_state(&t).await;
    let long_token = "t".repeat(65);
    let cases: Vec<(Params, &str, u16)> = vec![
        (
            without(RS, "DBInstanceClass"),
            "MissingDBInstanceClass",
            400,
        ),
        (
            without(RS, "DBInstanceStorage"),
            "MissingDBInstanceStorage",
            400,
        ),
        (without(RS, "EngineVersion"), "MissingEngineVersion", 400),
        (without(RS, "RegionId"), "MissingRegionId", 400),
        (
            with(RS, &[("DBInstanceClass", "dds.mongo.huge")]),
            "InvalidDBInstanceClass.NotFound",
            404,
        ),
        (
            with(RS, &[("DBInstanceClass", "dds.shard.mid")]),
            "InvalidDBInstanceClass.NotFound",
            404,
        ),
        (
            with(RS, &[("ReplicationFactor", "1"), ("EngineVersion", "4.0")]),
            "InvalidDBInstanceClass.NotFound",
            404,
        ),
        (
            with(RS, &[("DBInstanceStorage", "5")]),
            "InvalidParameter",
            400,
        ),
        (
            with(RS, &[("DBInstanceStorage", "25")]),
            "InvalidParameter",
            400,
        ),
        (
            with(RS, &[("DBInstanceStorage", "20GB")]),
            "InvalidParameter",
            400,
        ),
        (
            with(RS, &[("DBInstanceStorage", "99999999999999")]),
            "InvalidParameter",
            400,
        ),
        (
            with(RS, &[("EngineVersion", "3.4")]),
            "InvalidParameter",
            400,
        ),
        (
            with(RS, &[("EngineVersion", "latest")]),
            "InvalidParameter",
            400,
        ),
        (with(RS, &[("Engine", "Redis")]), "InvalidParameter", 400),
        (
            with(RS, &[("ReplicationFactor", "4")]),
            "InvalidParameter",
            400,
        ),
        (
            with(RS, &[("ReplicationFactor", "1")]),
            "InvalidDBInstanceClass.NotFound",
            404,
        ),
        (
            with(
                RS,
                &[
                    ("ReplicationFactor", "1"),
                    ("DBInstanceClass", "dds.sn2.standard.1"),
                ],
            ),
            "InvalidParameter",
            400,
        ),
        (
            with(RS, &[("ReadonlyReplicas", "6")]),
            "InvalidParameter",
            400,
        ),
        (
            with(RS, &[("ReadonlyReplicas", "-1")]),
            "InvalidParameter",
            400,
        ),
        (
            with(RS, &[("RegionId", "mars-1")]),
            "InvalidRegion.NotFound",
            404,
        ),
        (
            with(RS, &[("ZoneId", "cn-shanghai-b")]),
            "InvalidZoneId.NotFound",
            404,
        ),
        (
            with(RS, &[("StorageEngine", "RocksDB")]),
            "InvalidParameter",
            400,
        ),
        (
            with(RS, &[("StorageType", "floppy")]),
            "InvalidParameter",
            400,
        ),
        (
            with(RS, &[("DBInstanceDescription", "x")]),
            "InvalidParameter",
            400,
        ),
        (
            with(RS, &[("Tag.1.Key", "a"), ("Tag.2.Key", "a")]),
            "InvalidParameter",
            400,
        ),
        (with(RS, &[("Tag.1.Value", "v")]), "InvalidParameter", 400),
        (
            with(RS, &[("Tag.1.Key", "aliyun-x")]),
            "InvalidParameter",
            400,
        ),
        (
            with(RS, &[("SrcDBInstanceId", "dds-bp1")]),
            "InvalidParameter",
            400,
        ),
        (with(RS, &[("Encrypted", "true")]), "InvalidParameter", 400),
        (
            with(RS, &[("AccountPassword", "password")]),
            "InvalidParameter",
            400,
        ),
        (with(RS, &[("ChargeType", "PrePaid")]), "MissingPeriod", 400),
        (
            with(RS, &[("ChargeType", "PrePaid"), ("Period", "10")]),
            "InvalidParameter",
            400,
        ),
        (with(RS, &[("ChargeType", "Free")]), "InvalidParameter", 400),
        (
            with(RS, &[("ClientToken", long_token.as_str())]),
            "InvalidParameter",
            400,
        ),
    ];
    for (params, code, status) in &cases {
        assert_err(
            call(&t, "CreateDBInstance", params).await,
            code,
            *status,
            &format!("{params:?}"),
        );
    }
    assert_eq!(store_state(&t).await, before);
    // A strong password and a subscription are fine.
    ok(
        &t,
        "CreateDBInstance",
        &with(
            RS,
            &[
                ("AccountPassword", "Str0ng!pass"),
                ("ChargeType", "PrePaid"),
                ("Period", "12"),
            ],
        ),
    )
    .await;
}

#[tokio::test]
async fn create_sharded_cluster_and_describe_its_nodes() {
    let t = testing::ctx();
    let v = ok(&t, "CreateShardingDBInstance", SHARDED).await;
    let id = v["DBInstanceId"].as_str().unwrap();
    let a = attribute(&t, id).await;
    assert_eq!(a["DBInstanceType"], "sharding");
    assert_eq!(a["DBInstanceStatus"], "Creating");
    assert_eq!(a["DBInstanceStorage"], 50);
    assert!(a.get("ReplicationFactor").is_none() && a.get("ReplicaSets").is_none());
    let kernel = newest("4.4");
    let shards = a["ShardList"]["ShardAttribute"].as_array().unwrap();
    assert_eq!(shards.len(), 2);
    assert_eq!(shards[1]["NodeClass"], "dds.shard.standard");
    assert_eq!(shards[1]["NodeStorage"], 30);
    assert_eq!(shards[1]["ReadonlyReplicas"], 1);
    assert_eq!(shards[0]["ReadonlyReplicas"], 0);
    for s in shards {
        assert!(s["NodeId"].as_str().unwrap().starts_with("d-bp"));
        assert_eq!(s["Status"], "Creating");
        assert_eq!(s["CurrentKernelVersion"], kernel.as_str());
        assert_eq!(s["Port"], 3717);
        assert!(s["MaxDiskMbps"].is_string());
    }
    let mongos = a["MongosList"]["MongosAttribute"].as_array().unwrap();
    assert_eq!(mongos.len(), 2);
    assert!(mongos
        .iter()
        .all(|m| m["NodeId"].as_str().unwrap().starts_with("s-bp")
            && m["CurrentKernelVersion"] == kernel.as_str()
            && m["ConnectSting"] == m["ConnectString"]));
    let cs = a["ConfigserverList"]["ConfigserverAttribute"]
        .as_array()
        .unwrap();
    assert_eq!(cs.len(), 1);
    assert!(cs[0]["NodeId"].as_str().unwrap().starts_with("cs-bp"));
    assert_eq!(cs[0]["NodeStorage"], 20);

    // Listed only with DBInstanceType=sharding.
    let l = ok(&t, "DescribeDBInstances", &[]).await;
    assert_eq!(l["TotalCount"], 0);
    let l = ok(&t, "DescribeDBInstances", &[("DBInstanceType", "sharding")]).await;
    assert_eq!(l["TotalCount"], 1);
    let item = &l["DBInstances"]["DBInstance"][0];
    assert_eq!(
        item["ShardList"]["ShardAttribute"][1]["ReadonlyReplicas"],
        1
    );
    assert_eq!(
        item["MongosList"]["MongosAttribute"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert!(item.get("CurrentKernelVersion").is_none());
}

#[tokio::test]
async fn malformed_sharded_parameters_are_clear_400s_and_change_nothing() {
    let t = testing::ctx();
    ok(&t, "CreateShardingDBInstance", SHARDED).await;
    let before = store_state(&t).await;
    let mut many_shards: Vec<(String, String)> = Vec::new();
    for n in 1..=33 {
        many_shards.push((format!("ReplicaSet.{n}.Class"), "dds.shard.mid".into()));
        many_shards.push((format!("ReplicaSet.{n}.Storage"), "20".into()));
    }
    let many: Vec<(&str, &str)> = SHARDED
        .iter()
        .filter(|(k, _)| !k.starts_with("ReplicaSet."))
        .copied()
        .chain(many_shards.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .collect();
    let one_shard: Vec<(&str, &str)> = SHARDED
        .iter()
        .filter(|(k, _)| !k.starts_with("ReplicaSet.2"))
        .copied()
        .collect();
    let one_mongos = without(SHARDED, "Mongos.2.Class");
    let no_config: Vec<(&str, &str)> = SHARDED
        .iter()
        .filter(|(k, _)| !k.starts_with("ConfigServer"))
        .copied()
        .collect();
    let gap: Vec<(&str, &str)> = SHARDED
        .iter()
        .map(|(k, v)| (k.replace("ReplicaSet.2.", "ReplicaSet.3."), *v))
        .map(|(k, v)| (Box::leak(k.into_boxed_str()) as &str, v))
        .collect();
    let cases: Vec<(Params, &str, u16, &str)> = vec![
        (one_shard, "InvalidParameter", 400, "ReplicaSet"),
        (many, "InvalidParameter", 400, "ReplicaSet.33"),
        (gap, "InvalidParameter", 400, "ReplicaSet.2"),
        (
            with(SHARDED, &[("ReplicaSet.0.Class", "dds.shard.mid")]),
            "InvalidParameter",
            400,
            "ReplicaSet.0.Class",
        ),
        (
            with(SHARDED, &[("ReplicaSet.x.Class", "dds.shard.mid")]),
            "InvalidParameter",
            400,
            "ReplicaSet.x.Class",
        ),
        (
            with(SHARDED, &[("ReplicaSet.1.Size", "1")]),
            "InvalidParameter",
            400,
            "ReplicaSet.1.Size",
        ),
        (
            without(SHARDED, "ReplicaSet.2.Class"),
            "InvalidParameter",
            400,
            "ReplicaSet.2.Class",
        ),
        (
            without(SHARDED, "ReplicaSet.1.Storage"),
            "InvalidParameter",
            400,
            "ReplicaSet.1.Storage",
        ),
        (
            with(SHARDED, &[("ReplicaSet.1.Storage", "big")]),
            "InvalidParameter",
            400,
            "ReplicaSet.1.Storage",
        ),
        (
            with(SHARDED, &[("ReplicaSet.2.ReadonlyReplicas", "6")]),
            "InvalidParameter",
            400,
            "ReplicaSet.2.ReadonlyReplicas",
        ),
        (
            with(SHARDED, &[("ReplicaSet.1.Class", "dds.mongos.mid")]),
            "InvalidDBInstanceClass.NotFound",
            404,
            "ReplicaSet.1.Class",
        ),
        (one_mongos, "InvalidParameter", 400, "Mongos"),
        (
            with(SHARDED, &[("Mongos.2.Class", "dds.shard.mid")]),
            "InvalidDBInstanceClass.NotFound",
            404,
            "Mongos.2.Class",
        ),
        (
            no_config,
            "MissingConfigServer.1.Class",
            400,
            "ConfigServer.1.Class",
        ),
        (
            with(
                SHARDED,
                &[
                    ("ConfigServer.2.Class", "dds.cs.mid"),
                    ("ConfigServer.2.Storage", "20"),
                ],
            ),
            "InvalidParameter",
            400,
            "ConfigServer",
        ),
        (without(SHARDED, "Engine"), "MissingEngine", 400, "Engine"),
        (
            with(SHARDED, &[("EngineVersion", "9.9")]),
            "InvalidParameter",
            400,
            "EngineVersion",
        ),
    ];
    for (params, code, status, names) in &cases {
        let e = assert_err(
            call(&t, "CreateShardingDBInstance", params).await,
            code,
            *status,
            names,
        );
        assert!(e.message().contains(names), "{names}: {}", e.message());
    }
    assert_eq!(store_state(&t).await, before);
}

#[tokio::test]
async fn client_token_makes_creates_idempotent() {
    let t = testing::ctx();
    let p = with(RS, &[("ClientToken", "tok-1")]);
    let first = ok(&t, "CreateDBInstance", &p).await;
    let again = ok(&t, "CreateDBInstance", &p).await;
    assert_eq!(first, again);
    let before = store_state(&t).await;
    assert_eq!(before.0.len(), 1);
    let e = call(
        &t,
        "CreateDBInstance",
        &with(&p, &[("DBInstanceStorage", "30")]),
    )
    .await;
    assert_err(e, "IdempotentParameterMismatch", 400, "other parameters");
    assert_eq!(store_state(&t).await, before);
    // Owner parameters do not change what the request means.
    let same = ok(&t, "CreateDBInstance", &with(&p, &[("OwnerId", "123")])).await;
    assert_eq!(same["DBInstanceId"], first["DBInstanceId"]);
    // Another key's token is its own.
    let other = call_as(&t.ctx, ADMIN, "CreateDBInstance", &p)
        .await
        .unwrap();
    assert_ne!(other["DBInstanceId"], first["DBInstanceId"]);
    // The same token on the sharded create is a different request space.
    let s = ok(
        &t,
        "CreateShardingDBInstance",
        &with(SHARDED, &[("ClientToken", "tok-1")]),
    )
    .await;
    assert_ne!(s["DBInstanceId"], first["DBInstanceId"]);
}

#[tokio::test]
async fn describe_instances_pages_and_filters() {
    let t = testing::ctx();
    let mut ids = Vec::new();
    for i in 0..35 {
        let extra: Vec<(&str, &str)> = if i % 5 == 0 {
            vec![
                ("Tag.1.Key", "team"),
                ("Tag.1.Value", "blue"),
                ("EngineVersion", "5.0"),
            ]
        } else {
            vec![]
        };
        let v = ok(&t, "CreateDBInstance", &with(RS, &extra)).await;
        ids.push(v["DBInstanceId"].as_str().unwrap().to_string());
    }
    ok(&t, "CreateShardingDBInstance", SHARDED).await;

    let p1 = ok(&t, "DescribeDBInstances", &[]).await;
    assert_eq!(
        (
            p1["PageNumber"].as_u64(),
            p1["PageSize"].as_u64(),
            p1["TotalCount"].as_u64()
        ),
        (Some(1), Some(30), Some(35))
    );
    let p2 = ok(&t, "DescribeDBInstances", &[("PageNumber", "2")]).await;
    let mut seen: Vec<String> = p1["DBInstances"]["DBInstance"]
        .as_array()
        .unwrap()
        .iter()
        .chain(p2["DBInstances"]["DBInstance"].as_array().unwrap())
        .map(|i| i["DBInstanceId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(p2["DBInstances"]["DBInstance"].as_array().unwrap().len(), 5);
    seen.sort();
    let mut expect = ids.clone();
    expect.sort();
    assert_eq!(
        seen, expect,
        "two pages list every replica set exactly once"
    );
    let p3 = ok(&t, "DescribeDBInstances", &[("PageNumber", "3")]).await;
    assert!(p3["DBInstances"]["DBInstance"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(p3["TotalCount"], 35);
    let big = ok(&t, "DescribeDBInstances", &[("PageSize", "50")]).await;
    assert_eq!(
        big["DBInstances"]["DBInstance"].as_array().unwrap().len(),
        35
    );
    let far = ok(&t, "DescribeDBInstances", &[("PageNumber", "2147483647")]).await;
    assert_eq!(far["TotalCount"], 35);

    let count = |v: &Value| v["TotalCount"].as_u64().unwrap();
    assert_eq!(
        count(&ok(&t, "DescribeDBInstances", &[("Tag.1.Key", "team")]).await),
        7
    );
    assert_eq!(
        count(
            &ok(
                &t,
                "DescribeDBInstances",
                &[("Tag.1.Key", "team"), ("Tag.1.Value", "red")]
            )
            .await
        ),
        0
    );
    assert_eq!(
        count(&ok(&t, "DescribeDBInstances", &[("EngineVersion", "5.0")]).await),
        7
    );
    assert_eq!(
        count(
            &ok(
                &t,
                "DescribeDBInstances",
                &[("DBInstanceStatus", "Creating")]
            )
            .await
        ),
        35
    );
    assert_eq!(
        count(
            &ok(
                &t,
                "DescribeDBInstances",
                &[("DBInstanceStatus", "Running")]
            )
            .await
        ),
        0
    );
    assert_eq!(
        count(&ok(&t, "DescribeDBInstances", &[("ReplicationFactor", "3")]).await),
        35
    );
    assert_eq!(
        count(&ok(&t, "DescribeDBInstances", &[("ReplicationFactor", "5")]).await),
        0
    );
    assert_eq!(
        count(&ok(&t, "DescribeDBInstances", &[("RegionId", "cn-shanghai")]).await),
        0
    );
    assert_eq!(
        count(&ok(&t, "DescribeDBInstances", &[("Expired", "true")]).await),
        0
    );
    assert_eq!(
        count(
            &ok(
                &t,
                "DescribeDBInstances",
                &[("DBInstanceType", "serverless")]
            )
            .await
        ),
        0
    );
    let two = format!("{},{}", ids[0], ids[1]);
    assert_eq!(
        count(&ok(&t, "DescribeDBInstances", &[("DBInstanceId", two.as_str())]).await),
        2
    );
    let domain = format!("{}1.mongodb.rds.aliyuncs.com", ids[3]);
    let by_domain = ok(
        &t,
        "DescribeDBInstances",
        &[("ConnectionDomain", domain.as_str())],
    )
    .await;
    assert_eq!(
        by_domain["DBInstances"]["DBInstance"][0]["DBInstanceId"],
        ids[3].as_str()
    );
    let item = &p1["DBInstances"]["DBInstance"][0];
    assert_eq!(item["ReplicationFactor"], "3");
    assert!(item["DBInstanceStorage"].is_u64());
    assert!(item.get("CurrentKernelVersion").is_none());

    for (params, code, status) in [
        (vec![("PageSize", "7")], "InvalidParameter", 400),
        (vec![("PageSize", "0")], "InvalidParameter", 400),
        (vec![("PageSize", "1000")], "InvalidParameter", 400),
        (vec![("PageNumber", "0")], "InvalidParameter", 400),
        (vec![("PageNumber", "-1")], "InvalidParameter", 400),
        (vec![("PageNumber", "2147483648")], "InvalidParameter", 400),
        (vec![("DBInstanceType", "cluster")], "InvalidParameter", 400),
        (
            vec![("DBInstanceStatus", "Bogus")],
            "InvalidStatus.NotFound",
            404,
        ),
        (vec![("ReplicationFactor", "4")], "InvalidParameter", 400),
        (vec![("RegionId", "mars-1")], "InvalidRegion.NotFound", 404),
        (vec![("ExpireTime", "tomorrow")], "InvalidParameter", 400),
        (vec![("Tag.0.Key", "a")], "InvalidParameter", 400),
    ] {
        assert_err(
            call(&t, "DescribeDBInstances", &params).await,
            code,
            status,
            &format!("{params:?}"),
        );
    }
}

#[tokio::test]
async fn unknown_ids_are_404_everywhere() {
    let t = testing::ctx();
    for action in [
        "DescribeDBInstanceAttribute",
        "DeleteDBInstance",
        "DescribeAvailableEngineVersion",
    ] {
        assert_err(
            call(&t, action, &[("DBInstanceId", "dds-bpnothere0000000")]).await,
            "InvalidDBInstanceId.NotFound",
            404,
            action,
        );
        assert_err(
            call(&t, action, &[]).await,
            "MissingDBInstanceId",
            400,
            action,
        );
    }
    assert_err(
        call(
            &t,
            "ModifyDBInstanceMaintainTime",
            &[
                ("DBInstanceId", "dds-bpnothere0000000"),
                ("MaintainStartTime", "01:00Z"),
                ("MaintainEndTime", "02:00Z"),
            ],
        )
        .await,
        "InvalidDBInstanceId.NotFound",
        404,
        "modify",
    );
    assert_err(
        call(
            &t,
            "DescribeDBInstanceAttribute",
            &[("DBInstanceId", "x"), ("IsDelete", "maybe")],
        )
        .await,
        "InvalidParameter",
        400,
        "IsDelete",
    );
}

#[tokio::test]
async fn delete_only_when_running() {
    let t = testing::ctx();
    let v = ok(&t, "CreateDBInstance", RS).await;
    let id = v["DBInstanceId"].as_str().unwrap().to_string();
    let before = store_state(&t).await;
    assert_err(
        call(&t, "DeleteDBInstance", &[("DBInstanceId", &id)]).await,
        "OperationDenied.DBInstanceStatus",
        403,
        "creating",
    );
    assert_eq!(store_state(&t).await, before);

    make_running(&t, &id).await;
    assert_eq!(attribute(&t, &id).await["DBInstanceStatus"], "Running");
    let v = ok(
        &t,
        "DeleteDBInstance",
        &[("DBInstanceId", &id), ("ClientToken", "del-1")],
    )
    .await;
    assert_eq!(v, serde_json::json!({}));
    assert_eq!(attribute(&t, &id).await["DBInstanceStatus"], "Deleting");
    let ops = t.store.list_operations(&id, 10).await.unwrap();
    assert_eq!(ops[0].kind, OperationKind::Delete);
    assert!(matches!(
        crate::server::runtime::OperationState::from_json(ops[0].kind, ops[0].state.clone()),
        Ok(crate::server::runtime::OperationState::Delete(_))
    ));
    // A retry with the same token is answered again; a new request is refused.
    ok(
        &t,
        "DeleteDBInstance",
        &[("DBInstanceId", &id), ("ClientToken", "del-1")],
    )
    .await;
    assert_err(
        call(&t, "DeleteDBInstance", &[("DBInstanceId", &id)]).await,
        "OperationDenied.DBInstanceStatus",
        403,
        "deleting",
    );
    // Once the runtime removed it, the same token still answers (the vendor's retry semantics),
    // while a plain request sees that it is gone.
    finish(&t, &id, InstanceChange::Remove).await;
    ok(
        &t,
        "DeleteDBInstance",
        &[("DBInstanceId", &id), ("ClientToken", "del-1")],
    )
    .await;
    assert_err(
        call(&t, "DeleteDBInstance", &[("DBInstanceId", &id)]).await,
        "InvalidDBInstanceId.NotFound",
        404,
        "gone",
    );

    let v = ok(
        &t,
        "CreateDBInstance",
        &with(RS, &[("ChargeType", "PrePaid"), ("Period", "1")]),
    )
    .await;
    let prepaid = v["DBInstanceId"].as_str().unwrap().to_string();
    make_running(&t, &prepaid).await;
    assert_err(
        call(&t, "DeleteDBInstance", &[("DBInstanceId", &prepaid)]).await,
        "ChargeTypeViolation",
        400,
        "prepaid",
    );
    assert_eq!(attribute(&t, &prepaid).await["DBInstanceStatus"], "Running");
}

#[tokio::test]
async fn release_protection_refuses_delete_until_turned_off() {
    let t = testing::ctx();
    let v = ok(&t, "CreateDBInstance", RS).await;
    let id = v["DBInstanceId"].as_str().unwrap().to_string();
    make_running(&t, &id).await;
    assert_eq!(
        attribute(&t, &id).await["DBInstanceReleaseProtection"],
        false
    );
    let on = [
        ("DBInstanceId", id.as_str()),
        ("DBInstanceReleaseProtection", "true"),
    ];
    assert_eq!(
        ok(&t, "ModifyDBInstanceAttribute", &on).await,
        serde_json::json!({})
    );
    assert_eq!(
        attribute(&t, &id).await["DBInstanceReleaseProtection"],
        true
    );
    let before = store_state(&t).await;
    assert_err(
        call(
            &t,
            "DeleteDBInstance",
            &[("DBInstanceId", &id), ("ClientToken", "d-1")],
        )
        .await,
        "InstanceReleaseProtection",
        403,
        "protected",
    );
    assert_eq!(store_state(&t).await, before);
    for (params, code, status) in [
        (
            vec![("DBInstanceId", id.as_str())],
            "MissingDBInstanceReleaseProtection",
            400,
        ),
        (
            vec![
                ("DBInstanceId", id.as_str()),
                ("DBInstanceReleaseProtection", "yes"),
            ],
            "InvalidParameter",
            400,
        ),
        (
            vec![
                ("DBInstanceId", "dds-bpnothere0000000"),
                ("DBInstanceReleaseProtection", "true"),
            ],
            "InvalidDBInstanceId.NotFound",
            404,
        ),
    ] {
        assert_err(
            call(&t, "ModifyDBInstanceAttribute", &params).await,
            code,
            status,
            "refused",
        );
    }
    assert_eq!(
        attribute(&t, &id).await["DBInstanceReleaseProtection"],
        true
    );
    let off = [
        ("DBInstanceId", id.as_str()),
        ("DBInstanceReleaseProtection", "false"),
    ];
    ok(&t, "ModifyDBInstanceAttribute", &off).await;
    ok(
        &t,
        "DeleteDBInstance",
        &[("DBInstanceId", &id), ("ClientToken", "d-1")],
    )
    .await;
    assert_eq!(attribute(&t, &id).await["DBInstanceStatus"], "Deleting");
    // The accepted delete's retry is answered even if protection is turned on meanwhile.
    ok(&t, "ModifyDBInstanceAttribute", &on).await;
    ok(
        &t,
        "DeleteDBInstance",
        &[("DBInstanceId", &id), ("ClientToken", "d-1")],
    )
    .await;

    let v = ok(
        &t,
        "CreateDBInstance",
        &with(RS, &[("ChargeType", "PrePaid"), ("Period", "1")]),
    )
    .await;
    let prepaid = v["DBInstanceId"].as_str().unwrap().to_string();
    assert_err(
        call(
            &t,
            "ModifyDBInstanceAttribute",
            &[
                ("DBInstanceId", &prepaid),
                ("DBInstanceReleaseProtection", "true"),
            ],
        )
        .await,
        "ChargeTypeViolation",
        400,
        "prepaid",
    );
}

#[tokio::test]
async fn resource_group_moves_and_is_filtered_on() {
    let t = testing::ctx();
    let v = ok(&t, "CreateDBInstance", RS).await;
    let id = v["DBInstanceId"].as_str().unwrap().to_string();
    let before = store_state(&t).await;
    for (params, code, status) in [
        (
            vec![("DBInstanceId", id.as_str())],
            "MissingResourceGroupId",
            400,
        ),
        (
            vec![("DBInstanceId", id.as_str()), ("ResourceGroupId", "rg x")],
            "InvalidParameter",
            400,
        ),
        (
            vec![
                ("DBInstanceId", "dds-bpnothere0000000"),
                ("ResourceGroupId", "rg-a"),
            ],
            "InvalidDBInstanceId.NotFound",
            404,
        ),
    ] {
        assert_err(
            call(&t, "ModifyResourceGroup", &params).await,
            code,
            status,
            "refused",
        );
    }
    assert_eq!(store_state(&t).await, before);
    // Any status: this one is still being created.
    let moved = [
        ("DBInstanceId", id.as_str()),
        ("ResourceGroupId", "rg-team2"),
    ];
    assert_eq!(
        ok(&t, "ModifyResourceGroup", &moved).await,
        serde_json::json!({})
    );
    assert_eq!(attribute(&t, &id).await["ResourceGroupId"], "rg-team2");
    let listed = ok(
        &t,
        "DescribeDBInstances",
        &[("ResourceGroupId", "rg-team2")],
    )
    .await;
    let ids: Vec<&str> = listed["DBInstances"]["DBInstance"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["DBInstanceId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![id.as_str()]);
}

#[tokio::test]
async fn maintain_window_is_hh_mm_z_with_end_after_start() {
    let t = testing::ctx();
    let v = ok(&t, "CreateDBInstance", RS).await;
    let id = v["DBInstanceId"].as_str().unwrap().to_string();
    let before = store_state(&t).await;
    for (start, end, bad) in [
        ("1:00Z", "02:00Z", "MaintainStartTime"),
        ("01:00", "02:00Z", "MaintainStartTime"),
        ("24:00Z", "02:00Z", "MaintainStartTime"),
        ("01:60Z", "02:00Z", "MaintainStartTime"),
        ("01:00+08:00", "02:00Z", "MaintainStartTime"),
        ("01:00Z", "2am", "MaintainEndTime"),
        ("03:00Z", "02:00Z", "MaintainEndTime"),
        ("03:00Z", "03:00Z", "MaintainEndTime"),
    ] {
        let e = assert_err(
            call(
                &t,
                "ModifyDBInstanceMaintainTime",
                &[
                    ("DBInstanceId", &id),
                    ("MaintainStartTime", start),
                    ("MaintainEndTime", end),
                ],
            )
            .await,
            "InvalidParameter",
            400,
            &format!("{start}-{end}"),
        );
        assert!(e.message().contains(bad), "{}", e.message());
    }
    assert_err(
        call(
            &t,
            "ModifyDBInstanceMaintainTime",
            &[("DBInstanceId", &id), ("MaintainStartTime", "01:00Z")],
        )
        .await,
        "MissingMaintainEndTime",
        400,
        "missing end",
    );
    assert_eq!(store_state(&t).await, before);
    ok(
        &t,
        "ModifyDBInstanceMaintainTime",
        &[
            ("DBInstanceId", &id),
            ("MaintainStartTime", "01:30Z"),
            ("MaintainEndTime", "03:00Z"),
        ],
    )
    .await;
    let a = attribute(&t, &id).await;
    assert_eq!(
        (
            a["MaintainStartTime"].as_str(),
            a["MaintainEndTime"].as_str()
        ),
        (Some("01:30Z"), Some("03:00Z"))
    );
}

#[tokio::test]
async fn engine_versions_and_release_notes() {
    let t = testing::ctx();
    let catalog = Catalog::embedded();
    let v = ok(&t, "CreateDBInstance", RS).await;
    let rs = v["DBInstanceId"].as_str().unwrap().to_string();
    let e = ok(
        &t,
        "DescribeAvailableEngineVersion",
        &[("DBInstanceId", &rs)],
    )
    .await;
    // Only the next major: a major version upgrade goes one step at a time.
    let later = vec!["5.0"];
    assert!(catalog.newest("5.0").is_some());
    assert_eq!(
        e["EngineVersions"]["EngineVersion"],
        serde_json::json!(later)
    );
    let newest_engine = catalog.engine_versions().last().unwrap().to_string();
    let v = ok(
        &t,
        "CreateDBInstance",
        &with(RS, &[("EngineVersion", &newest_engine)]),
    )
    .await;
    let e = ok(
        &t,
        "DescribeAvailableEngineVersion",
        &[("DBInstanceId", v["DBInstanceId"].as_str().unwrap())],
    )
    .await;
    assert_eq!(e["EngineVersions"]["EngineVersion"], serde_json::json!([]));
    let v = ok(
        &t,
        "CreateDBInstance",
        &with(
            RS,
            &[
                ("ReplicationFactor", "1"),
                ("EngineVersion", "4.0"),
                ("DBInstanceClass", "dds.sn2.standard.1"),
            ],
        ),
    )
    .await;
    let e = ok(
        &t,
        "DescribeAvailableEngineVersion",
        &[("DBInstanceId", v["DBInstanceId"].as_str().unwrap())],
    )
    .await;
    assert_eq!(e["EngineVersions"]["EngineVersion"], serde_json::json!([]));

    let k44 = catalog.kernels("4.4").unwrap();
    let notes = ok(
        &t,
        "DescribeKernelReleaseNotes",
        &[("KernelVersion", &k44[1].kernel_version)],
    )
    .await;
    let listed: Vec<&str> = notes["ReleaseNotes"]["ReleaseNote"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["KernelVersion"].as_str().unwrap())
        .collect();
    let expect: Vec<&str> = k44[2..].iter().map(|k| k.kernel_version.as_str()).collect();
    assert_eq!(listed, expect);
    assert_eq!(
        notes["ReleaseNotes"]["ReleaseNote"][0]["ReleaseNote"],
        k44[2].release_note.as_str()
    );
    let last = ok(
        &t,
        "DescribeKernelReleaseNotes",
        &[("KernelVersion", &k44.last().unwrap().kernel_version)],
    )
    .await;
    assert_eq!(last["ReleaseNotes"]["ReleaseNote"], serde_json::json!([]));
    for bad in ["4.4", "mongodb_2023_4.4.1", "latest", &"9".repeat(300)] {
        assert_err(
            call(&t, "DescribeKernelReleaseNotes", &[("KernelVersion", bad)]).await,
            "InvalidKernelReleaseNotes",
            400,
            bad,
        );
    }
    assert_err(
        call(&t, "DescribeKernelReleaseNotes", &[]).await,
        "MissingKernelVersion",
        400,
        "missing",
    );
}

const NEW_KERNEL: &str = "mongodb_20250101_4.4.25";

fn publish_params() -> Vec<(&'static str, &'static str)> {
    vec![
        ("EngineVersion", "4.4"),
        ("KernelVersion", NEW_KERNEL),
        ("ReleaseNote", "Fixes the thing."),
        ("ReleaseDate", "2025-01-10"),
    ]
}

#[tokio::test]
async fn publishing_a_kernel_needs_admin_persists_and_makes_instances_upgradable() {
    let t = testing::ctx();
    let v = ok(&t, "CreateDBInstance", RS).await;
    let id = v["DBInstanceId"].as_str().unwrap().to_string();
    let old = newest("4.4");

    let before = store_state(&t).await;
    assert_err(
        call(&t, "DdsdPublishKernelVersion", &publish_params()).await,
        "Forbidden.RAM",
        403,
        "non-admin",
    );
    assert_eq!(store_state(&t).await, before);

    for (params, code, status) in [
        (
            with(&publish_params(), &[("EngineVersion", "3.2")]),
            "InvalidEngineVersion.NotFound",
            404,
        ),
        (
            with(
                &publish_params(),
                &[("KernelVersion", "5.0.5-20250101000000_0")],
            ),
            "InvalidKernelVersion.Malformed",
            400,
        ),
        (
            with(
                &publish_params(),
                &[("KernelVersion", "mongodb_2025_4.4.25")],
            ),
            "InvalidKernelVersion.Malformed",
            400,
        ),
        (
            with(
                &publish_params(),
                &[
                    ("KernelVersion", "mongodb_20200101_4.4.1"),
                    ("ReleaseDate", "2020-01-02"),
                ],
            ),
            "InvalidKernelVersion.NotNewer",
            400,
        ),
        (
            with(&publish_params(), &[("KernelVersion", old.as_str())]),
            "InvalidKernelVersion.Duplicate",
            400,
        ),
        (
            with(&publish_params(), &[("ReleaseDate", "2024-12-01")]),
            "InvalidParameter",
            400,
        ),
        (
            with(&publish_params(), &[("ReleaseDate", "soon")]),
            "InvalidParameter",
            400,
        ),
        (
            without(&publish_params(), "ReleaseNote"),
            "MissingReleaseNote",
            400,
        ),
    ] {
        assert_err(
            call_as(&t.ctx, ADMIN, "DdsdPublishKernelVersion", &params).await,
            code,
            status,
            &format!("{params:?}"),
        );
    }
    assert_eq!(store_state(&t).await, before);

    let r = call_as(&t.ctx, ADMIN, "DdsdPublishKernelVersion", &publish_params())
        .await
        .unwrap();
    assert_eq!(r["KernelVersion"], NEW_KERNEL);
    assert_eq!(
        t.kernels.snapshot().newest("4.4").unwrap().kernel_version,
        NEW_KERNEL
    );
    // Existing instances stay on their kernel and now have a newer one to go to.
    assert_eq!(
        attribute(&t, &id).await["CurrentKernelVersion"],
        old.as_str()
    );
    let notes = ok(
        &t,
        "DescribeKernelReleaseNotes",
        &[("KernelVersion", old.as_str())],
    )
    .await;
    assert_eq!(
        notes["ReleaseNotes"]["ReleaseNote"][0]["KernelVersion"],
        NEW_KERNEL
    );
    // New instances start on it.
    let v = ok(&t, "CreateDBInstance", RS).await;
    assert_eq!(
        attribute(&t, v["DBInstanceId"].as_str().unwrap()).await["CurrentKernelVersion"],
        NEW_KERNEL
    );
    // The store has it: a restarted ddsd loads it.
    let reloaded = kernels::KernelCatalog::load(&*t.store).await.unwrap();
    assert_eq!(
        reloaded.snapshot().newest("4.4").unwrap().kernel_version,
        NEW_KERNEL
    );
    assert_eq!(*reloaded.snapshot(), *t.kernels.snapshot());
    assert_err(
        call_as(&t.ctx, ADMIN, "DdsdPublishKernelVersion", &publish_params()).await,
        "InvalidKernelVersion.Duplicate",
        400,
        "again",
    );
}

#[tokio::test]
async fn pinned_creates_start_on_an_older_catalogued_kernel() {
    let t = testing::ctx();
    let catalog = Catalog::embedded();
    let old = catalog.kernels("4.4").unwrap()[0].kernel_version.clone();
    let p = with(RS, &[("KernelVersion", old.as_str())]);
    let before = store_state(&t).await;
    assert_err(
        call(&t, "DdsdCreateDBInstance", &p).await,
        "Forbidden.RAM",
        403,
        "non-admin",
    );
    let other_engine = catalog.kernels("5.0").unwrap()[0].kernel_version.clone();
    for (params, code, status) in [
        (without(&p, "KernelVersion"), "MissingKernelVersion", 400),
        (
            with(&p, &[("KernelVersion", other_engine.as_str())]),
            "InvalidKernelVersion.NotFound",
            404,
        ),
        (
            with(&p, &[("KernelVersion", "mongodb_20200101_4.4.0")]),
            "InvalidKernelVersion.NotFound",
            404,
        ),
        (
            with(&p, &[("DBInstanceClass", "nope")]),
            "InvalidDBInstanceClass.NotFound",
            404,
        ),
    ] {
        assert_err(
            call_as(&t.ctx, ADMIN, "DdsdCreateDBInstance", &params).await,
            code,
            status,
            &format!("{params:?}"),
        );
    }
    assert_eq!(store_state(&t).await, before);

    let v = call_as(&t.ctx, ADMIN, "DdsdCreateDBInstance", &p)
        .await
        .unwrap();
    let a = attribute(&t, v["DBInstanceId"].as_str().unwrap()).await;
    assert_eq!(a["CurrentKernelVersion"], old.as_str());

    let sp = with(SHARDED, &[("KernelVersion", old.as_str())]);
    let v = call_as(&t.ctx, ADMIN, "DdsdCreateShardingDBInstance", &sp)
        .await
        .unwrap();
    let a = attribute(&t, v["DBInstanceId"].as_str().unwrap()).await;
    assert_eq!(a["CurrentKernelVersion"], old.as_str());
    for list in [
        &a["ShardList"]["ShardAttribute"],
        &a["MongosList"]["MongosAttribute"],
        &a["ConfigserverList"]["ConfigserverAttribute"],
    ] {
        assert!(
            list.as_array()
                .unwrap()
                .iter()
                .all(|n| n["CurrentKernelVersion"] == old.as_str()),
            "{list}"
        );
    }
}

#[test]
fn every_row_is_documented_with_who_may_call_it() {
    let doc = include_str!("../../../../../docs/actions.md");
    for spec in super::ACTIONS {
        let row = doc
            .lines()
            .find(|l| l.starts_with(&format!("| `{}` |", spec.name)))
            .unwrap_or_else(|| panic!("docs/actions.md has no row for {}", spec.name));
        let who = row.split('|').nth(2).unwrap_or_default();
        assert_eq!(
            who.contains("admin"),
            spec.access == super::Access::Admin,
            "{}: documented as {who:?}, the table says {:?}",
            spec.name,
            spec.access
        );
    }
}
