use super::fixtures::{self, new_op, open_store, replica_set, sharded, standalone, TempDir};
use super::schema::{self, Migration, MIGRATIONS};
use super::*;
use dds_engine::model::DbInstanceStatus::{
    Creating, Deleting, MinorVersionUpgrading, Rebooting, Running,
};
use dds_engine::model::Tag;
use serde_json::json;
use std::sync::atomic::AtomicU64;

fn idem(token: &str, fingerprint: &str, response: Value) -> Idempotency {
    Idempotency {
        scope: "testid/CreateDBInstance".into(),
        client_token: token.into(),
        fingerprint: fingerprint.into(),
        response,
    }
}

async fn create(store: &SqliteStore, instance: Instance) -> String {
    match store
        .create_instance_with_operation(instance, new_op(OperationKind::Create), None)
        .await
        .expect("create")
    {
        Accepted::New { operation_id, .. } => operation_id,
        other => panic!("unexpected {other:?}"),
    }
}

/// Creates an instance whose create operation has already finished, leaving it `Running`.
async fn create_running(store: &SqliteStore, instance: Instance) {
    let op = create(store, instance).await;
    let claimed = store.claim_operation(&op, "t", 60_000).await.unwrap();
    store
        .finish_operation(
            &op,
            claimed.epoch,
            OperationFinish {
                outcome: OperationOutcome::Succeeded,
                state: json!({"done": true}),
                report: None,
                instance: InstanceChange::Update(InstanceUpdate::status(Running)),
            },
        )
        .await
        .unwrap();
}

fn manual_clock(start: u64) -> (Arc<AtomicU64>, SqliteOptions) {
    let now = Arc::new(AtomicU64::new(start));
    let opts = SqliteOptions {
        clock: Clock::manual(now.clone()),
        ..SqliteOptions::default()
    };
    (now, opts)
}

#[tokio::test]
async fn open_sets_wal_full_sync_foreign_keys_and_latest_schema() {
    let dir = TempDir::new("store");
    let store = open_store(&dir);
    assert_eq!(store.schema_version_found(), 0);
    drop(store);
    let c = rusqlite::Connection::open(dir.path().join(sqlite::DB_FILE_NAME)).unwrap();
    let mode: String = c
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(
        schema::user_version(&c).unwrap(),
        SqliteStore::schema_version()
    );
    // synchronous / foreign_keys / busy_timeout are per connection: check the writer's settings directly.
    let w = schema::open_writer(
        &dir.path().join(sqlite::DB_FILE_NAME),
        std::time::Duration::from_millis(1234),
    )
    .unwrap();
    let sync: i64 = w.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
    assert_eq!(sync, 2, "synchronous=FULL");
    let fk: i64 = w
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(fk, 1);
    let busy: i64 = w
        .query_row("PRAGMA busy_timeout", [], |r| r.get(0))
        .unwrap();
    assert_eq!(busy, 1234);
}

#[test]
fn migrations_are_numbered_from_one_without_gaps() {
    for (i, m) in MIGRATIONS.iter().enumerate() {
        assert_eq!(m.version as usize, i + 1, "{}", m.name);
    }
}

#[tokio::test]
async fn an_old_database_is_migrated_and_keeps_its_data() {
    let dir = TempDir::new("store");
    let path = dir.path().join(sqlite::DB_FILE_NAME);
    // A database written by a ddsd that knew only the first migration, with an instance in it.
    {
        let old =
            SqliteStore::open_with_migrations(&path, SqliteOptions::default(), &MIGRATIONS[..1])
                .unwrap();
        let mut inst = replica_set("dds-old", "2026-01-01T00:00:00Z");
        inst.status = Creating;
        create(&old, inst).await;
    }
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        assert_eq!(schema::user_version(&c).unwrap(), 1);
        let has_snapshots: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'plane_snapshots'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(has_snapshots, 0);
    }
    let store = open_store(&dir);
    assert_eq!(store.schema_version_found(), 1);
    let got = store.get_instance("dds-old").await.unwrap().unwrap();
    assert_eq!(got.status, Creating);
    // Migration 3 rebuilt the operations table: the old row is there, still unfinished, and the
    // one-unfinished-operation index still holds.
    let ops = store.list_operations("dds-old", 10).await.unwrap();
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0].kind, OperationKind::Create);
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        let indexes: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'operations' \
                 AND name IN ('operations_one_unfinished', 'operations_by_instance', \
                 'operations_unfinished')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(indexes, 3);
        let check: String = c
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name = 'operations'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(check.contains("'switch'"), "{check}");
        assert!(check.contains("'engine_upgrade'"), "{check}");
    }
    store
        .save_plane_snapshot("dds-old", json!({"fleet": 1}))
        .await
        .unwrap();
    assert_eq!(
        store.load_plane_snapshot("dds-old").await.unwrap(),
        Some(json!({"fleet": 1}))
    );
}

#[tokio::test]
async fn a_failing_migration_leaves_the_previous_version() {
    let dir = TempDir::new("store");
    let path = dir.path().join(sqlite::DB_FILE_NAME);
    drop(
        SqliteStore::open_with_migrations(&path, SqliteOptions::default(), &MIGRATIONS[..1])
            .unwrap(),
    );
    let broken = [
        Migration {
            version: 1,
            name: MIGRATIONS[0].name,
            sql: MIGRATIONS[0].sql,
        },
        Migration {
            version: 2,
            name: "half applied",
            sql: "CREATE TABLE half (x INTEGER); INSERT INTO no_such_table VALUES (1);",
        },
    ];
    let err = SqliteStore::open_with_migrations(&path, SqliteOptions::default(), &broken)
        .err()
        .expect("must fail");
    assert!(
        matches!(err, StoreError::Backend(ref m) if m.contains("migration 2")),
        "{err}"
    );
    let c = rusqlite::Connection::open(&path).unwrap();
    assert_eq!(schema::user_version(&c).unwrap(), 1);
    let half: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'half'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(half, 0, "the failed step's DDL was rolled back");
}

#[tokio::test]
async fn a_database_from_a_newer_ddsd_is_refused() {
    let dir = TempDir::new("store");
    drop(open_store(&dir));
    let c = rusqlite::Connection::open(dir.path().join(sqlite::DB_FILE_NAME)).unwrap();
    c.pragma_update(None, "user_version", 99).unwrap();
    drop(c);
    let err = SqliteStore::open_in(dir.path(), SqliteOptions::default())
        .err()
        .expect("must refuse");
    assert_eq!(
        err,
        StoreError::SchemaTooNew {
            found: 99,
            supported: SqliteStore::schema_version()
        }
    );
}

#[tokio::test]
async fn create_stores_instance_and_pending_operation() {
    let dir = TempDir::new("store");
    let store = open_store(&dir);
    let mut inst = replica_set("dds-a", "2026-01-01T00:00:00Z");
    inst.status = Creating;
    let op = create(&store, inst.clone()).await;
    assert_eq!(store.get_instance("dds-a").await.unwrap(), Some(inst));
    let got = store.get_operation(&op).await.unwrap().unwrap();
    assert_eq!(got.instance_id, "dds-a");
    assert_eq!(got.kind, OperationKind::Create);
    assert_eq!(got.status, OperationStatus::Pending);
    assert_eq!(got.epoch, 0);
    assert_eq!(got.state, json!({"phase": "start"}));
    assert!(store.get_instance("dds-none").await.unwrap().is_none());

    let again = store
        .create_instance_with_operation(
            replica_set("dds-a", "2026-01-02T00:00:00Z"),
            new_op(OperationKind::Create),
            None,
        )
        .await;
    assert_eq!(again, Err(StoreError::InstanceExists("dds-a".into())));
    let dup_op = store
        .create_instance_with_operation(
            replica_set("dds-b", "2026-01-02T00:00:00Z"),
            NewOperation {
                id: op.clone(),
                kind: OperationKind::Create,
                state: json!(null),
            },
            None,
        )
        .await;
    assert_eq!(dup_op, Err(StoreError::OperationExists(op)));
    assert!(
        store.get_instance("dds-b").await.unwrap().is_none(),
        "a refused request changes nothing"
    );
}

#[tokio::test]
async fn client_token_replays_the_first_answer_and_refuses_other_parameters() {
    let dir = TempDir::new("store");
    let store = open_store(&dir);
    let first = store
        .create_instance_with_operation(
            replica_set("dds-tok1", "2026-01-01T00:00:00Z"),
            new_op(OperationKind::Create),
            Some(idem("tok", "fp-1", json!({"DBInstanceId": "dds-tok1"}))),
        )
        .await
        .unwrap();
    assert!(matches!(first, Accepted::New { .. }));
    // The retried request: the handler generated a new id, but the token maps to the first answer.
    let retry = store
        .create_instance_with_operation(
            replica_set("dds-tok2", "2026-01-01T00:00:01Z"),
            new_op(OperationKind::Create),
            Some(idem("tok", "fp-1", json!({"DBInstanceId": "dds-tok2"}))),
        )
        .await
        .unwrap();
    assert_eq!(
        retry,
        Accepted::Replayed {
            response: json!({"DBInstanceId": "dds-tok1"})
        }
    );
    assert!(store.get_instance("dds-tok2").await.unwrap().is_none());
    let mismatch = store
        .create_instance_with_operation(
            replica_set("dds-tok3", "2026-01-01T00:00:02Z"),
            new_op(OperationKind::Create),
            Some(idem("tok", "fp-2", json!({}))),
        )
        .await;
    assert_eq!(mismatch, Err(StoreError::IdempotentParameterMismatch));
    // Another scope may use the same token.
    let other_scope = store
        .create_instance_with_operation(
            replica_set("dds-tok4", "2026-01-01T00:00:03Z"),
            new_op(OperationKind::Create),
            Some(Idempotency {
                scope: "otherkey/CreateDBInstance".into(),
                ..idem("tok", "fp-2", json!({"DBInstanceId": "dds-tok4"}))
            }),
        )
        .await
        .unwrap();
    assert!(matches!(other_scope, Accepted::New { .. }));
}

#[tokio::test]
async fn client_tokens_expire() {
    let dir = TempDir::new("store");
    let (now, opts) = manual_clock(1_000_000);
    let store = SqliteStore::open_in(
        dir.path(),
        SqliteOptions {
            idempotency_ttl_ms: 10_000,
            ..opts
        },
    )
    .unwrap();
    let a = store
        .create_instance_with_operation(
            replica_set("dds-e1", "2026-01-01T00:00:00Z"),
            new_op(OperationKind::Create),
            Some(idem("tok", "fp-1", json!(1))),
        )
        .await
        .unwrap();
    assert!(matches!(a, Accepted::New { .. }));
    now.store(1_000_000 + 10_001, Ordering::SeqCst);
    let b = store
        .create_instance_with_operation(
            replica_set("dds-e2", "2026-01-01T00:00:00Z"),
            new_op(OperationKind::Create),
            Some(idem("tok", "fp-other", json!(2))),
        )
        .await
        .unwrap();
    assert!(
        matches!(b, Accepted::New { .. }),
        "an expired token is a new token"
    );
}

#[tokio::test]
async fn begin_operation_checks_status_and_exclusivity_atomically() {
    let dir = TempDir::new("store");
    let store = open_store(&dir);
    // Still creating: the create operation is unfinished and the status is not Running.
    let mut creating = replica_set("dds-c", "2026-01-01T00:00:00Z");
    creating.status = Creating;
    create(&store, creating).await;
    let err = store
        .begin_operation(
            "dds-c",
            &[Running],
            MinorVersionUpgrading,
            new_op(OperationKind::Upgrade),
            None,
        )
        .await;
    assert_eq!(
        err,
        Err(StoreError::StatusMismatch {
            instance_id: "dds-c".into(),
            actual: Creating
        })
    );
    let err = store
        .begin_operation(
            "dds-nope",
            &[Running],
            MinorVersionUpgrading,
            new_op(OperationKind::Upgrade),
            None,
        )
        .await;
    assert_eq!(err, Err(StoreError::InstanceNotFound("dds-nope".into())));

    create_running(&store, replica_set("dds-r", "2026-01-01T00:00:00Z")).await;
    let op = new_op(OperationKind::Upgrade);
    let accepted = store
        .begin_operation("dds-r", &[Running], MinorVersionUpgrading, op.clone(), None)
        .await
        .unwrap();
    match accepted {
        Accepted::New {
            instance,
            operation_id,
        } => {
            assert_eq!(instance.status, MinorVersionUpgrading);
            assert_eq!(operation_id, op.id);
        }
        other => panic!("{other:?}"),
    }
    // The status a client reads changed in the same transaction.
    assert_eq!(
        store.get_instance("dds-r").await.unwrap().unwrap().status,
        MinorVersionUpgrading
    );
    // A second request is refused while the first is unfinished, even one that accepts the current status.
    let err = store
        .begin_operation(
            "dds-r",
            &[Running, MinorVersionUpgrading],
            Deleting,
            new_op(OperationKind::Delete),
            None,
        )
        .await;
    assert_eq!(
        err,
        Err(StoreError::OperationInProgress {
            instance_id: "dds-r".into(),
            operation_id: op.id.clone()
        })
    );
}

#[tokio::test]
async fn an_operation_may_keep_the_status_while_it_waits() {
    // SwitchMode=1: the upgrade is recorded but the instance stays Running until its maintenance window; a
    // second operation is still refused.
    let dir = TempDir::new("store");
    let store = open_store(&dir);
    create_running(&store, replica_set("dds-w", "2026-01-01T00:00:00Z")).await;
    store
        .begin_operation(
            "dds-w",
            &[Running],
            Running,
            new_op(OperationKind::Upgrade),
            None,
        )
        .await
        .unwrap();
    let err = store
        .begin_operation(
            "dds-w",
            &[Running],
            Rebooting,
            new_op(OperationKind::Restart),
            None,
        )
        .await;
    assert!(
        matches!(err, Err(StoreError::OperationInProgress { .. })),
        "{err:?}"
    );
}

#[tokio::test]
async fn begin_operation_replays_client_tokens() {
    let dir = TempDir::new("store");
    let store = open_store(&dir);
    create_running(&store, replica_set("dds-d", "2026-01-01T00:00:00Z")).await;
    let token = || Idempotency {
        scope: "testid/DeleteDBInstance".into(),
        client_token: "del-1".into(),
        fingerprint: "dds-d".into(),
        response: json!({}),
    };
    let first = store
        .begin_operation(
            "dds-d",
            &[Running],
            Deleting,
            new_op(OperationKind::Delete),
            Some(token()),
        )
        .await
        .unwrap();
    assert!(matches!(first, Accepted::New { .. }));
    // The retry would fail the status check, but the token answers first.
    let retry = store
        .begin_operation(
            "dds-d",
            &[Running],
            Deleting,
            new_op(OperationKind::Delete),
            Some(token()),
        )
        .await
        .unwrap();
    assert_eq!(
        retry,
        Accepted::Replayed {
            response: json!({})
        }
    );
    assert_eq!(store.list_operations("dds-d", 10).await.unwrap().len(), 2);
}

#[tokio::test]
async fn claims_fence_earlier_holders() {
    let dir = TempDir::new("store");
    let (now, opts) = manual_clock(1_000_000);
    let store = SqliteStore::open_in(dir.path(), opts).unwrap();
    let op = create(&store, replica_set("dds-f", "2026-01-01T00:00:00Z")).await;

    // Never claimed: nothing can be saved.
    let err = store
        .save_operation(&op, 0, json!(1), InstanceUpdate::default())
        .await;
    assert!(matches!(err, Err(StoreError::StaleEpoch { .. })), "{err:?}");

    let a = store.claim_operation(&op, "node-a", 30_000).await.unwrap();
    assert_eq!(a.epoch, 1);
    assert_eq!(a.status, OperationStatus::Running);
    assert_eq!(a.lease_holder.as_deref(), Some("node-a"));
    assert_eq!(a.lease_until_ms, Some(1_030_000));

    // Another holder must wait for the lease.
    let err = store.claim_operation(&op, "node-b", 30_000).await;
    assert_eq!(
        err,
        Err(StoreError::LeaseHeld {
            operation_id: op.clone(),
            holder: "node-a".into(),
            until_ms: 1_030_000
        })
    );
    // Saving extends the lease.
    now.store(1_020_000, Ordering::SeqCst);
    store
        .save_operation(&op, 1, json!({"step": 1}), InstanceUpdate::default())
        .await
        .unwrap();
    now.store(1_040_000, Ordering::SeqCst);
    assert!(matches!(
        store.claim_operation(&op, "node-b", 30_000).await,
        Err(StoreError::LeaseHeld {
            until_ms: 1_050_000,
            ..
        })
    ));
    // So does renewing it, without touching the state.
    store.renew_lease(&op, 1).await.unwrap();
    let renewed = store.get_operation(&op).await.unwrap().unwrap();
    assert_eq!(renewed.lease_until_ms, Some(1_070_000));
    assert_eq!(renewed.state, json!({"step": 1}));
    now.store(1_069_999, Ordering::SeqCst);
    assert!(matches!(
        store.claim_operation(&op, "node-b", 30_000).await,
        Err(StoreError::LeaseHeld { .. })
    ));
    now.store(1_070_001, Ordering::SeqCst);
    let b = store.claim_operation(&op, "node-b", 30_000).await.unwrap();
    assert_eq!(b.epoch, 2);
    assert_eq!(b.state, json!({"step": 1}));

    // node-a is fenced from now on, whatever it tries.
    let stale = Err(StoreError::StaleEpoch {
        operation_id: op.clone(),
        presented: 1,
        current: 2,
    });
    assert_eq!(
        store
            .save_operation(&op, 1, json!({"step": 99}), InstanceUpdate::default())
            .await,
        stale
    );
    assert_eq!(store.renew_lease(&op, 1).await, stale);
    let fin = OperationFinish {
        outcome: OperationOutcome::Failed,
        state: json!({}),
        report: None,
        instance: InstanceChange::Remove,
    };
    assert_eq!(store.finish_operation(&op, 1, fin.clone()).await, stale);
    assert!(store.get_instance("dds-f").await.unwrap().is_some());
    assert_eq!(
        store.get_operation(&op).await.unwrap().unwrap().state,
        json!({"step": 1})
    );

    // The same holder may re-claim at once (a restarted single-node ddsd), fencing its previous self.
    let b2 = store.claim_operation(&op, "node-b", 30_000).await.unwrap();
    assert_eq!(b2.epoch, 3);
    assert!(matches!(
        store
            .save_operation(&op, 2, json!(0), InstanceUpdate::default())
            .await,
        Err(StoreError::StaleEpoch { .. })
    ));
}

#[tokio::test]
async fn save_and_finish_update_the_instance_in_the_same_transaction() {
    let dir = TempDir::new("store");
    let store = open_store(&dir);
    create_running(&store, replica_set("dds-u", "2026-01-01T00:00:00Z")).await;
    let Accepted::New {
        instance,
        operation_id: op,
    } = store
        .begin_operation(
            "dds-u",
            &[Running],
            MinorVersionUpgrading,
            new_op(OperationKind::Upgrade),
            None,
        )
        .await
        .unwrap()
    else {
        panic!()
    };
    let claimed = store.claim_operation(&op, "t", 60_000).await.unwrap();
    // Meanwhile a handler changes the description; the runtime's updates must not undo it.
    store
        .modify_instance(
            "dds-u",
            InstancePatch {
                description: Some("renamed during the upgrade".into()),
                maintain_window: None,
                tags: None,
                resource_group_id: None,
            },
        )
        .await
        .unwrap();
    let mut progressed = *instance;
    progressed.description = "renamed during the upgrade".into();
    assert!(progressed
        .topology
        .set_kernel_version("dds-u-1", "mongodb_20240101_4.0.30"));
    store
        .save_operation(
            &op,
            claimed.epoch,
            json!({"member": 1}),
            InstanceUpdate {
                status: None,
                kernel_versions: vec![("dds-u-1".into(), "mongodb_20240101_4.0.30".into())],
                spec: None,
                engine_version: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        store.get_instance("dds-u").await.unwrap().unwrap(),
        progressed
    );

    // An update naming a process the instance does not have changes nothing.
    let err = store
        .save_operation(
            &op,
            claimed.epoch,
            json!({"member": 2}),
            InstanceUpdate {
                status: Some(Running),
                kernel_versions: vec![("no-such-node".into(), "k".into())],
                spec: None,
                engine_version: None,
            },
        )
        .await;
    assert!(matches!(err, Err(StoreError::Invalid(_))), "{err:?}");
    assert_eq!(
        store.get_operation(&op).await.unwrap().unwrap().state,
        json!({"member": 1})
    );

    let mut done = progressed.clone();
    done.status = Running;
    store
        .finish_operation(
            &op,
            claimed.epoch,
            OperationFinish {
                outcome: OperationOutcome::Succeeded,
                state: json!({"done": true}),
                report: Some(json!({"elections": 1})),
                instance: InstanceChange::Update(InstanceUpdate::status(Running)),
            },
        )
        .await
        .unwrap();
    assert_eq!(store.get_instance("dds-u").await.unwrap().unwrap(), done);
    let fin = store.get_operation(&op).await.unwrap().unwrap();
    assert_eq!(fin.status, OperationStatus::Succeeded);
    assert_eq!(fin.report, Some(json!({"elections": 1})));
    assert!(fin.finished_ms.is_some());
    assert_eq!(fin.lease_holder, None);
    // Finished is final.
    assert_eq!(
        store
            .save_operation(&op, claimed.epoch, json!({}), InstanceUpdate::default())
            .await,
        Err(StoreError::OperationFinished(op.clone()))
    );
    assert_eq!(
        store.claim_operation(&op, "t", 1000).await,
        Err(StoreError::OperationFinished(op.clone()))
    );
    // And the instance accepts the next operation.
    store
        .begin_operation(
            "dds-u",
            &[Running],
            Rebooting,
            new_op(OperationKind::Restart),
            None,
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn finishing_a_delete_removes_the_instance_and_its_snapshot() {
    let dir = TempDir::new("store");
    let store = open_store(&dir);
    create_running(&store, replica_set("dds-x", "2026-01-01T00:00:00Z")).await;
    store
        .save_plane_snapshot("dds-x", json!({"members": 3}))
        .await
        .unwrap();
    let Accepted::New {
        operation_id: op, ..
    } = store
        .begin_operation(
            "dds-x",
            &[Running],
            Deleting,
            new_op(OperationKind::Delete),
            None,
        )
        .await
        .unwrap()
    else {
        panic!()
    };
    // Refused while the delete operation is unfinished.
    assert!(matches!(
        store.delete_instance("dds-x").await,
        Err(StoreError::OperationInProgress { .. })
    ));
    let c = store.claim_operation(&op, "t", 60_000).await.unwrap();
    store
        .finish_operation(
            &op,
            c.epoch,
            OperationFinish {
                outcome: OperationOutcome::Succeeded,
                state: json!({}),
                report: None,
                instance: InstanceChange::Remove,
            },
        )
        .await
        .unwrap();
    assert_eq!(store.get_instance("dds-x").await.unwrap(), None);
    assert_eq!(store.load_plane_snapshot("dds-x").await.unwrap(), None);
    assert_eq!(store.list_operations("dds-x", 10).await.unwrap(), vec![]);
    assert!(!store.delete_instance("dds-x").await.unwrap());
}

#[tokio::test]
async fn delete_instance_removes_rows() {
    let dir = TempDir::new("store");
    let store = open_store(&dir);
    create_running(&store, replica_set("dds-del", "2026-01-01T00:00:00Z")).await;
    store
        .save_plane_snapshot("dds-del", json!(1))
        .await
        .unwrap();
    let own = format!("{}root_account", instance_setting_prefix("dds-del"));
    let other = format!("{}root_account", instance_setting_prefix("dds-delx"));
    store.put_setting(&own, "a").await.unwrap();
    store.put_setting(&other, "b").await.unwrap();
    assert!(store.delete_instance("dds-del").await.unwrap());
    assert_eq!(store.get_instance("dds-del").await.unwrap(), None);
    assert_eq!(store.load_plane_snapshot("dds-del").await.unwrap(), None);
    assert_eq!(
        store.get_setting(&own).await.unwrap(),
        None,
        "its settings go with it"
    );
    assert_eq!(
        store.get_setting(&other).await.unwrap().as_deref(),
        Some("b")
    );
    let page = store
        .list_instances(
            &InstanceFilter {
                tags: vec![TagFilter {
                    key: "env".into(),
                    value: None,
                }],
                ..InstanceFilter::default()
            },
            Page::new(1, 10).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(page.total, 0, "tags went with the instance");
}

#[tokio::test]
async fn finished_history_is_bounded_per_instance() {
    let dir = TempDir::new("store");
    let store = SqliteStore::open_in(
        dir.path(),
        SqliteOptions {
            finished_operations_kept: 3,
            ..SqliteOptions::default()
        },
    )
    .unwrap();
    create_running(&store, replica_set("dds-h", "2026-01-01T00:00:00Z")).await;
    for _ in 0..5 {
        let Accepted::New {
            operation_id: op, ..
        } = store
            .begin_operation(
                "dds-h",
                &[Running],
                Rebooting,
                new_op(OperationKind::Restart),
                None,
            )
            .await
            .unwrap()
        else {
            panic!()
        };
        let c = store.claim_operation(&op, "t", 60_000).await.unwrap();
        store
            .finish_operation(
                &op,
                c.epoch,
                OperationFinish {
                    outcome: OperationOutcome::Succeeded,
                    state: json!({}),
                    report: None,
                    instance: InstanceChange::Update(InstanceUpdate::status(Running)),
                },
            )
            .await
            .unwrap();
    }
    let ops = store.list_operations("dds-h", 100).await.unwrap();
    assert_eq!(ops.len(), 3);
    assert!(ops.iter().all(|o| o.kind == OperationKind::Restart));
}

#[tokio::test]
async fn unfinished_operations_are_listed_oldest_first() {
    let dir = TempDir::new("store");
    let (now, opts) = manual_clock(5_000);
    let store = SqliteStore::open_in(dir.path(), opts).unwrap();
    let mut ids = Vec::new();
    for n in 0..4 {
        now.store(5_000 + n * 10, Ordering::SeqCst);
        ids.push(
            create(
                &store,
                replica_set(&format!("dds-o{n}"), "2026-01-01T00:00:00Z"),
            )
            .await,
        );
    }
    // Finish one; claim another (running is still unfinished).
    let c = store.claim_operation(&ids[1], "t", 1_000).await.unwrap();
    store
        .finish_operation(
            &ids[1],
            c.epoch,
            OperationFinish {
                outcome: OperationOutcome::Failed,
                state: json!({}),
                report: Some(json!({"error": "x"})),
                instance: InstanceChange::Update(InstanceUpdate::default()),
            },
        )
        .await
        .unwrap();
    store.claim_operation(&ids[2], "t", 1_000).await.unwrap();
    let unfinished: Vec<String> = store
        .unfinished_operations(100)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.id)
        .collect();
    assert_eq!(
        unfinished,
        vec![ids[0].clone(), ids[2].clone(), ids[3].clone()]
    );
    assert_eq!(store.unfinished_operations(2).await.unwrap().len(), 2);
    assert!(matches!(
        store.unfinished_operations(0).await,
        Err(StoreError::Invalid(_))
    ));
}

#[tokio::test]
async fn list_filters_sorts_and_pages() {
    let dir = TempDir::new("store");
    let store = open_store(&dir);
    let mut a = replica_set("dds-a1", "2026-01-01T00:00:03Z");
    a.description = "orders primary".into();
    a.tags.push(Tag {
        key: "team".into(),
        value: "pay".into(),
    });
    let mut b = replica_set("dds-b1", "2026-01-01T00:00:03Z");
    b.zone_id = "cn-hangzhou-i".into();
    b.charge_type = ChargeType::PrePaid;
    let mut c = standalone("dds-c1", "2026-01-01T00:00:01Z");
    c.region_id = "cn-beijing".into();
    c.engine_version = "4.4".into();
    let d = sharded("dds-d1", "2026-01-01T00:00:05Z");
    let mut e = replica_set("dds-e1", "2026-01-01T00:00:02Z");
    e.status = Creating;
    for i in [&a, &b, &c, &d, &e] {
        create(&store, i.clone()).await;
    }
    let page = |f: InstanceFilter, n: u32, size: u32| {
        let store = &store;
        async move {
            let p = store
                .list_instances(&f, Page::new(n, size).unwrap())
                .await
                .unwrap();
            (
                p.instances.into_iter().map(|i| i.id).collect::<Vec<_>>(),
                p.total,
            )
        }
    };
    let all = InstanceFilter::default();
    // Replica sets and standalones by default, newest first, ties by id; no sharded cluster.
    assert_eq!(
        page(all.clone(), 1, 100).await,
        (
            vec![
                "dds-a1".into(),
                "dds-b1".into(),
                "dds-e1".into(),
                "dds-c1".into()
            ],
            4
        )
    );
    assert_eq!(page(all.clone(), 2, 3).await, (vec!["dds-c1".into()], 4));
    assert_eq!(page(all.clone(), 3, 3).await, (vec![], 4));
    let sharding = InstanceFilter {
        instance_type: DbInstanceType::Sharding,
        ..InstanceFilter::default()
    };
    assert_eq!(page(sharding, 1, 30).await, (vec!["dds-d1".into()], 1));

    let one = |f: InstanceFilter| page(f, 1, 100);
    let f = |patch: fn(&mut InstanceFilter)| {
        let mut f = InstanceFilter::default();
        patch(&mut f);
        f
    };
    assert_eq!(
        one(f(|f| f.region_id = Some("cn-beijing".into()))).await.1,
        1
    );
    assert_eq!(
        one(f(|f| f.status = Some(Creating))).await.0,
        vec!["dds-e1".to_string()]
    );
    assert_eq!(
        one(f(|f| f.engine_version = Some("4.4".into()))).await.0,
        vec!["dds-c1".to_string()]
    );
    assert_eq!(
        one(f(|f| f.charge_type = Some(ChargeType::PrePaid)))
            .await
            .0,
        vec!["dds-b1".to_string()]
    );
    assert_eq!(
        one(f(|f| f.zone_id = Some("cn-hangzhou-i".into()))).await.0,
        vec!["dds-b1".to_string()]
    );
    assert_eq!(
        one(f(|f| f.description = Some("orders".into()))).await.0,
        vec!["dds-a1".to_string()]
    );
    assert_eq!(
        one(f(|f| f.description = Some("%".into()))).await.1,
        0,
        "no LIKE wildcards"
    );
    assert_eq!(
        one(f(|f| f.replication_factor = Some(1))).await.0,
        vec!["dds-c1".to_string()]
    );
    assert_eq!(one(f(|f| f.replication_factor = Some(3))).await.1, 3);
    assert_eq!(
        one(f(|f| f.class = Some("dds.mongo.mid".into()))).await.1,
        4
    );
    assert_eq!(one(f(|f| f.vpc_id = Some("vpc-none".into()))).await.1, 0);
    assert_eq!(
        one(f(
            |f| f.ids = vec!["dds-a1".into(), "dds-c1".into(), "dds-d1".into()]
        ))
        .await
        .0,
        vec!["dds-a1".to_string(), "dds-c1".to_string()]
    );
    assert_eq!(
        one(f(|f| f.tags = vec![TagFilter {
            key: "team".into(),
            value: Some("pay".into())
        }]))
        .await
        .0,
        vec!["dds-a1".to_string()]
    );
    assert_eq!(
        one(f(|f| f.tags = vec![
            TagFilter {
                key: "env".into(),
                value: Some("test".into())
            },
            TagFilter {
                key: "team".into(),
                value: None
            },
        ]))
        .await
        .0,
        vec!["dds-a1".to_string()]
    );
    assert_eq!(
        one(f(|f| f.tags = vec![TagFilter {
            key: "team".into(),
            value: Some("other".into())
        }]))
        .await
        .1,
        0
    );
}

#[tokio::test]
async fn bounds_are_enforced_without_changes() {
    let dir = TempDir::new("store");
    let store = open_store(&dir);
    for (number, size, why) in [
        (0, 10, "page number"),
        (1, 0, "page size"),
        (1, 101, "page size"),
    ] {
        match Page::new(number, size) {
            Err(StoreError::Invalid(m)) => assert!(m.starts_with(why), "{m}"),
            other => panic!("Page::new({number}, {size}): {other:?}"),
        }
    }
    assert!(Page::new(1, 100).is_ok());
    let bad_page = Page {
        number: 1,
        size: 1000,
    };
    assert!(matches!(
        store
            .list_instances(&InstanceFilter::default(), bad_page)
            .await,
        Err(StoreError::Invalid(_))
    ));
    let too_many_ids = InstanceFilter {
        ids: (0..101).map(|n| format!("dds-{n}")).collect(),
        ..InstanceFilter::default()
    };
    assert!(matches!(
        store
            .list_instances(&too_many_ids, Page::new(1, 10).unwrap())
            .await,
        Err(StoreError::Invalid(_))
    ));

    let mut many_tags = replica_set("dds-t", "2026-01-01T00:00:00Z");
    many_tags.tags = (0..21)
        .map(|n| Tag {
            key: format!("k{n}"),
            value: "v".into(),
        })
        .collect();
    let mut dup_tags = replica_set("dds-t", "2026-01-01T00:00:00Z");
    dup_tags.tags.push(dup_tags.tags[0].clone());
    let mut long_desc = replica_set("dds-t", "2026-01-01T00:00:00Z");
    long_desc.description = "x".repeat(257);
    let long_id = replica_set(&"d".repeat(65), "2026-01-01T00:00:00Z");
    let ctl_id = replica_set("dds-\u{7}", "2026-01-01T00:00:00Z");
    for bad in [many_tags, dup_tags, long_desc, long_id, ctl_id] {
        let r = store
            .create_instance_with_operation(bad, new_op(OperationKind::Create), None)
            .await;
        assert!(matches!(r, Err(StoreError::Invalid(_))), "{r:?}");
    }
    let huge_state = NewOperation {
        id: "op-huge".into(),
        kind: OperationKind::Create,
        state: json!("x".repeat(limits::MAX_STATE_BYTES)),
    };
    assert!(matches!(
        store
            .create_instance_with_operation(
                replica_set("dds-t", "2026-01-01T00:00:00Z"),
                huge_state,
                None
            )
            .await,
        Err(StoreError::Invalid(_))
    ));
    let long_token = Idempotency {
        client_token: "t".repeat(65),
        ..idem("x", "fp", json!({}))
    };
    assert!(matches!(
        store
            .create_instance_with_operation(
                replica_set("dds-t", "2026-01-01T00:00:00Z"),
                new_op(OperationKind::Create),
                Some(long_token)
            )
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.claim_operation("op", "holder", 0).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.put_setting("", "v").await,
        Err(StoreError::Invalid(_))
    ));
    let page = store
        .list_instances(&InstanceFilter::default(), Page::new(1, 10).unwrap())
        .await
        .unwrap();
    assert_eq!(page.total, 0, "nothing was stored");
}

#[tokio::test]
async fn modify_instance_patches_attributes() {
    let dir = TempDir::new("store");
    let store = open_store(&dir);
    create_running(&store, replica_set("dds-m", "2026-01-01T00:00:00Z")).await;
    let window = MaintainWindow::new("01:00Z".parse().unwrap(), "02:30Z".parse().unwrap()).unwrap();
    let got = store
        .modify_instance(
            "dds-m",
            InstancePatch {
                description: Some("renamed".into()),
                maintain_window: Some(window),
                tags: None,
                resource_group_id: Some("rg-moved".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(got.description, "renamed");
    assert_eq!(got.resource_group_id, "rg-moved");
    assert_eq!(store.get_instance("dds-m").await.unwrap().unwrap(), got);
    let found = store
        .list_instances(
            &InstanceFilter {
                description: Some("renamed".into()),
                ..InstanceFilter::default()
            },
            Page::new(1, 10).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(found.total, 1, "indexed column follows the body");
    assert_eq!(
        store
            .modify_instance("dds-zz", InstancePatch::default())
            .await,
        Err(StoreError::InstanceNotFound("dds-zz".into()))
    );
}

#[tokio::test]
async fn snapshots_and_settings_round_trip() {
    let dir = TempDir::new("store");
    let store = open_store(&dir);
    assert_eq!(store.load_plane_snapshot("dds-s").await.unwrap(), None);
    store
        .save_plane_snapshot("dds-s", json!({"v": 1}))
        .await
        .unwrap();
    store
        .save_plane_snapshot("dds-s", json!({"v": 2}))
        .await
        .unwrap();
    assert_eq!(
        store.load_plane_snapshot("dds-s").await.unwrap(),
        Some(json!({"v": 2}))
    );
    assert!(store.delete_plane_snapshot("dds-s").await.unwrap());
    assert!(!store.delete_plane_snapshot("dds-s").await.unwrap());

    assert_eq!(store.get_setting("plane.clock").await.unwrap(), None);
    store.put_setting("plane.clock", "a").await.unwrap();
    store.put_setting("plane.clock", "b").await.unwrap();
    assert_eq!(
        store.get_setting("plane.clock").await.unwrap().as_deref(),
        Some("b")
    );
}

#[tokio::test]
async fn committed_state_survives_reopen() {
    let dir = TempDir::new("store");
    let op;
    {
        let store = open_store(&dir);
        create_running(&store, replica_set("dds-p", "2026-01-01T00:00:00Z")).await;
        let Accepted::New { operation_id, .. } = store
            .begin_operation(
                "dds-p",
                &[Running],
                MinorVersionUpgrading,
                new_op(OperationKind::Upgrade),
                None,
            )
            .await
            .unwrap()
        else {
            panic!()
        };
        op = operation_id;
        let c = store.claim_operation(&op, "ddsd", 60_000).await.unwrap();
        store
            .save_operation(&op, c.epoch, json!({"step": 7}), InstanceUpdate::default())
            .await
            .unwrap();
        store.put_setting("k", "v").await.unwrap();
        store
            .save_plane_snapshot("dds-p", json!([1, 2]))
            .await
            .unwrap();
    }
    let store = open_store(&dir);
    assert_eq!(store.schema_version_found(), SqliteStore::schema_version());
    let i = store.get_instance("dds-p").await.unwrap().unwrap();
    assert_eq!(i.status, MinorVersionUpgrading);
    let unfinished = store.unfinished_operations(10).await.unwrap();
    assert_eq!(unfinished.len(), 1);
    assert_eq!(unfinished[0].id, op);
    assert_eq!(unfinished[0].state, json!({"step": 7}));
    let before = unfinished[0].epoch;
    assert!(before >= 1);
    assert_eq!(store.get_setting("k").await.unwrap().as_deref(), Some("v"));
    assert_eq!(
        store.load_plane_snapshot("dds-p").await.unwrap(),
        Some(json!([1, 2]))
    );
    // The restarted holder takes over at once and fences its previous incarnation.
    let c = store.claim_operation(&op, "ddsd", 60_000).await.unwrap();
    assert_eq!(c.epoch, before + 1);
}

#[tokio::test]
async fn epochs_grow_across_operations_and_survive_deletions() {
    let dir = TempDir::new("store");
    let store = open_store(&dir);
    let mut last = 0;
    for n in 0..3 {
        let id = format!("dds-ep{n}");
        let op = create(&store, replica_set(&id, "2026-01-01T00:00:00Z")).await;
        for _ in 0..2 {
            let c = store.claim_operation(&op, "t", 60_000).await.unwrap();
            assert!(c.epoch > last, "{} after {last}", c.epoch);
            last = c.epoch;
        }
        store
            .finish_operation(
                &op,
                last,
                OperationFinish {
                    outcome: OperationOutcome::Failed,
                    state: json!({}),
                    report: None,
                    instance: InstanceChange::Remove,
                },
            )
            .await
            .unwrap();
    }
    drop(store);
    let store = open_store(&dir);
    let op = create(&store, replica_set("dds-ep9", "2026-01-01T00:00:00Z")).await;
    assert_eq!(
        store.claim_operation(&op, "t", 60_000).await.unwrap().epoch,
        last + 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_begin_operations_have_exactly_one_winner() {
    let dir = TempDir::new("store");
    let store = Arc::new(open_store(&dir));
    for round in 0..20 {
        let id = format!("dds-race{round}");
        create_running(&store, replica_set(&id, "2026-01-01T00:00:00Z")).await;
        let tasks: Vec<_> = (0..8)
            .map(|n| {
                let store = store.clone();
                let id = id.clone();
                tokio::spawn(async move {
                    let (kind, status) = if n % 2 == 0 {
                        (OperationKind::Upgrade, MinorVersionUpgrading)
                    } else {
                        (OperationKind::Delete, Deleting)
                    };
                    store
                        .begin_operation(&id, &[Running], status, new_op(kind), None)
                        .await
                })
            })
            .collect();
        let mut wins = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(Accepted::New { .. }) => wins += 1,
                Err(StoreError::StatusMismatch { .. } | StoreError::OperationInProgress { .. }) => {
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(wins, 1, "round {round}");
        assert_eq!(store.list_operations(&id, 100).await.unwrap().len(), 2);
    }
}

#[tokio::test]
async fn a_second_store_on_the_same_file_is_refused_until_the_first_closes() {
    let dir = TempDir::new("store");
    let first = open_store(&dir);
    let second = SqliteStore::open_in(dir.path(), SqliteOptions::default());
    assert!(
        matches!(second, Err(StoreError::Locked(_))),
        "{:?}",
        second.err()
    );
    drop(first);
    let again = open_store(&dir);
    assert!(again.get_instance("x").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_on_one_file_still_have_exactly_one_winner() {
    // Separate connections writing one file, kept apart only by SQLite's own locking: what a store shared by
    // several writers (the PostgreSQL case) must get right. ddsd itself never does this with SQLite.
    let dir = TempDir::new("store");
    let shared = || {
        SqliteStore::open_in(
            dir.path(),
            SqliteOptions {
                exclusive: false,
                ..SqliteOptions::default()
            },
        )
        .unwrap()
    };
    let a = Arc::new(shared());
    let b = Arc::new(shared());
    for round in 0..10 {
        let id = format!("dds-two{round}");
        create_running(&a, replica_set(&id, "2026-01-01T00:00:00Z")).await;
        let run = |s: Arc<SqliteStore>, id: String| {
            tokio::spawn(async move {
                s.begin_operation(
                    &id,
                    &[Running],
                    MinorVersionUpgrading,
                    new_op(OperationKind::Upgrade),
                    None,
                )
                .await
            })
        };
        let (ra, rb) = (run(a.clone(), id.clone()), run(b.clone(), id.clone()));
        let results = [ra.await.unwrap(), rb.await.unwrap()];
        assert_eq!(
            results
                .iter()
                .filter(|r| matches!(r, Ok(Accepted::New { .. })))
                .count(),
            1,
            "round {round}: {results:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_request_in_a_commit_batch_does_not_affect_the_others() {
    let dir = TempDir::new("store");
    let store = Arc::new(open_store(&dir));
    create_running(&store, replica_set("dds-dup", "2026-01-01T00:00:00Z")).await;
    let tasks: Vec<_> = (0..64)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                // Every 8th request collides with an existing instance.
                let id = if n % 8 == 0 {
                    "dds-dup".to_string()
                } else {
                    format!("dds-g{n}")
                };
                store
                    .create_instance_with_operation(
                        replica_set(&id, "2026-01-01T00:00:00Z"),
                        new_op(OperationKind::Create),
                        None,
                    )
                    .await
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::InstanceExists(id)) => assert_eq!(id, "dds-dup"),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(ok, 56);
    let page = store
        .list_instances(&InstanceFilter::default(), Page::new(1, 100).unwrap())
        .await
        .unwrap();
    assert_eq!(page.total, 57);
}

#[test]
fn replication_factor_counts_nodes_but_not_read_only_replicas() {
    let mut rs = fixtures::replica_set("dds-rf", "2026-01-01T00:00:00Z");
    assert_eq!(sql::replication_factor(&rs.topology), Some(3));
    if let dds_engine::model::Topology::ReplicaSet { replica_set } = &mut rs.topology {
        let mut ro = replica_set.members[2].clone();
        ro.node_id = "ro".into();
        ro.kind = dds_engine::model::MemberKind::ReadOnly;
        replica_set.members.push(ro);
    }
    assert_eq!(sql::replication_factor(&rs.topology), Some(3));
    assert_eq!(
        sql::replication_factor(&fixtures::standalone("s", "t").topology),
        Some(1)
    );
    assert_eq!(
        sql::replication_factor(&fixtures::sharded("s", "t").topology),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synchronous_handlers_can_wait_for_the_store() {
    let dir = TempDir::new("store");
    let store = Arc::new(open_store(&dir));
    let s = store.clone();
    let got = tokio::task::spawn_blocking(move || {
        wait(s.put_setting("from", "handler"))?;
        wait(s.get_setting("from"))
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(got.as_deref(), Some("handler"));
    assert!(matches!(
        std::thread::spawn(move || wait(store.get_setting("from")))
            .join()
            .unwrap(),
        Err(StoreError::Backend(_))
    ));
}

#[tokio::test]
async fn events_change_all_or_none_and_go_with_their_instance() {
    use super::events::*;
    let dir = TempDir::new("store");
    let store = open_store(&dir);
    create_running(&store, replica_set("dds-ev1", "2026-01-01T00:00:00Z")).await;
    create_running(&store, replica_set("dds-ev2", "2026-01-01T00:00:00Z")).await;
    let new = |id: &str, at: u64| NewActiveTask {
        instance_id: id.into(),
        task_type: "rds_apsaradb_upgrade".into(),
        switch_time_ms: at,
        deadline_ms: at + 1_000,
        params: "{}".into(),
    };
    let ids = store
        .add_active_tasks(vec![new("dds-ev1", 10), new("dds-ev2", 20)])
        .await
        .unwrap();
    assert_eq!(ids.len(), 2);
    // An instance gone meanwhile gets no event; the others do.
    let more = store
        .add_active_tasks(vec![new("dds-none", 1), new("dds-ev1", 30)])
        .await
        .unwrap();
    assert_eq!(more.len(), 1);
    store
        .modify_active_tasks(
            more.clone(),
            vec![TASK_WAITING],
            ActiveTaskPatch {
                status: Some(TASK_SUCCEEDED),
                ..ActiveTaskPatch::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store
            .list_active_tasks(ActiveTaskFilter::default(), 100)
            .await
            .unwrap()
            .len(),
        3
    );
    let due = store
        .list_active_tasks(
            ActiveTaskFilter {
                due_by_ms: Some(15),
                statuses: vec![TASK_WAITING],
                ..ActiveTaskFilter::default()
            },
            100,
        )
        .await
        .unwrap();
    assert_eq!(due.iter().map(|t| t.id).collect::<Vec<_>>(), vec![ids[0]]);
    // One of two not waiting: nothing changes.
    let cancel = ActiveTaskPatch {
        status: Some(TASK_CANCELLED),
        ..ActiveTaskPatch::default()
    };
    store
        .modify_active_tasks(vec![ids[0]], vec![TASK_WAITING], cancel.clone())
        .await
        .unwrap()
        .unwrap();
    let moved = ActiveTaskPatch {
        switch_time_ms: Some(500),
        ..ActiveTaskPatch::default()
    };
    assert_eq!(
        store
            .modify_active_tasks(ids.clone(), vec![TASK_WAITING], moved.clone())
            .await
            .unwrap(),
        Err(TaskRefusal::Status {
            id: ids[0],
            status: TASK_CANCELLED
        })
    );
    assert_eq!(
        store
            .modify_active_tasks(vec![ids[1], 999], vec![TASK_WAITING], moved.clone())
            .await
            .unwrap(),
        Err(TaskRefusal::NotFound(999))
    );
    let now = store
        .list_active_tasks(ActiveTaskFilter::default(), 100)
        .await
        .unwrap();
    assert_eq!(
        now.iter()
            .map(|t| (t.status, t.switch_time_ms))
            .collect::<Vec<_>>(),
        vec![
            (TASK_CANCELLED, 10),
            (TASK_WAITING, 20),
            (TASK_SUCCEEDED, 30)
        ]
    );
    let changed = store
        .modify_active_tasks(vec![ids[1]], vec![TASK_WAITING], moved)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(changed[0].switch_time_ms, 500);
    assert!(store.delete_instance("dds-ev2").await.unwrap());
    assert_eq!(
        store
            .list_active_tasks(ActiveTaskFilter::default(), 100)
            .await
            .unwrap()
            .iter()
            .map(|t| t.id)
            .collect::<Vec<_>>(),
        vec![ids[0], more[0]]
    );
}
