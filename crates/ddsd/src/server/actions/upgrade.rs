//! `UpgradeDBInstanceKernelVersion` (its request, target choice and acceptance path are in `rolling.rs`).
//!
//! The handler records intent; the runtime does the rolling upgrade (`dds_engine::workflow::RollingOperation`).
//! Refusals, checked in this order, each change nothing:
//!
//! | condition                                             | code                                   | HTTP |
//! |-------------------------------------------------------|----------------------------------------|------|
//! | `DBInstanceId` missing                                | `MissingDBInstanceId`                  | 400  |
//! | `SwitchMode` not `0`/`1`                              | `InvalidParameter`                     | 400  |
//! | unknown instance                                      | `InvalidDBInstanceId.NotFound`         | 404  |
//! | status not `Running`                                  | `OperationDenied.DBInstanceStatus`     | 403  |
//! | standalone (or a set with one electable member)       | `OperationDenied.DBInstanceType`       | 403  |
//! | every process already on the newest kernel            | `InvalidMinorVersionAlreadyLatest`     | 400  |
//! | another operation recorded and unfinished             | `OperationDenied.DBInstanceStatus`     | 403  |
//! | live preflight: a replica set without exactly one primary, a member down/unsteady/lagging, the oplog window too short, a mongos down, the balancer unobservable | `IncorrectDBInstanceState` | 403 |
//!
//! `InvalidMinorVersionAlreadyLatest` is the code (and message) the vendor's RDS API of the same name answers
//! in the same situation; the Dds API page lists no code of its own.
//!
//! Accepted: in ONE store transaction the instance turns `MinorVersionUpgrading` (stays `Running` with
//! `SwitchMode=1` until the maintenance window opens) and the planned operation is recorded; the answer is
//! `{RequestId}`. The store re-checks status and "no unfinished operation" inside that transaction, so two
//! concurrent calls cannot both be accepted.

use std::sync::Arc;

use super::errors::ApiError;
use super::rolling::{accept, UpgradeRequest};
use super::{Call, Context, Empty};

/// `UpgradeDBInstanceKernelVersion`.
pub async fn upgrade_db_instance_kernel_version(
    ctx: Arc<Context>,
    req: UpgradeRequest,
    _call: Call,
) -> Result<Empty, ApiError> {
    let (planned, _target) = req.plan(&ctx).await?;
    accept(&ctx, planned, req.deferred).await
}

/// A handler context over the real pieces: a SQLite store in a temporary directory, the simulated plane on
/// sped-up wall time and a runtime driving the operations the handlers record.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use crate::server::actions::{kernels::KernelCatalog, regions::RegionCatalog};
    use crate::server::plane::sim::{SimPlane, SimPlaneConfig};
    use crate::server::runtime::OperationState;
    use crate::server::runtime::{Runtime, RuntimeConfig};
    use crate::server::store::fixtures::TempDir;
    use crate::server::store::{SqliteOptions, SqliteStore, Store};
    use acs_rpc::Verified;
    use acs_rpc::{Format, Scheme};
    use dds_engine::build::fixtures;
    use dds_engine::model::DbInstanceStatus;
    use dds_engine::model::Topology;
    use dds_engine::workflow::UpgradeConfig;
    use std::collections::BTreeMap;
    use std::time::{Duration, Instant};

    pub const ADMIN: &str = "admin";

    pub struct Env {
        pub ctx: Arc<Context>,
        pub store: Arc<SqliteStore>,
        pub plane: Arc<SimPlane>,
        pub runtime: Runtime,
        _dir: TempDir,
    }

    /// Where plane time starts: 2026-01-01T12:00:00Z, so maintenance-window tests know the time of day.
    pub const PLANE_START_MS: u64 = 1_767_268_800_000;

    /// Plane time runs `speed` times faster than the wall clock, from [`PLANE_START_MS`].
    pub async fn env(speed: f64) -> Env {
        env_at(speed, PLANE_START_MS).await
    }

    /// Plane time runs `speed` times faster than the wall clock, from `plane_start_ms`.
    pub async fn env_at(speed: f64, plane_start_ms: u64) -> Env {
        let dir = TempDir::new("rolling");
        let store = Arc::new(SqliteStore::open_in(dir.path(), SqliteOptions::default()).unwrap());
        let wall_ms = crate::server::store::Clock::system().now_ms();
        store
            .put_setting(
                crate::server::plane::PlaneClock::SETTING,
                &serde_json::json!({"wall_ms": wall_ms, "plane_ms": plane_start_ms, "speed": speed})
                    .to_string(),
            )
            .await
            .unwrap();
        let plane = Arc::new(
            SimPlane::open(
                store.clone(),
                SimPlaneConfig {
                    speed,
                    ..SimPlaneConfig::default()
                },
            )
            .await
            .unwrap(),
        );
        let runtime = Runtime::start(
            store.clone(),
            plane.clone(),
            RuntimeConfig {
                min_poll_wall_ms: 2,
                max_poll_wall_ms: 20,
                retry_initial_ms: 10,
                retry_max_ms: 200,
                rescan_interval_ms: 50,
                ..RuntimeConfig::default()
            },
        );
        let ctx = Arc::new(Context {
            region: "cn-hangzhou".into(),
            regions: RegionCatalog::embedded(),
            store: store.clone(),
            kernels: Arc::new(KernelCatalog::embedded()),
            admin_keys: [ADMIN.to_string()].into_iter().collect(),
            runtime: Some(runtime.handle()),
            plane: Some(plane.clone()),
            sim: Some(plane.clone()),
            mongo: None,
            rolling: UpgradeConfig::default(),
            api_faults: Default::default(),
        });
        Env {
            ctx,
            store,
            plane,
            runtime,
            _dir: dir,
        }
    }

    /// A request signed by the test context's admin key.
    pub fn admin(action: &str, params: &[(&str, &str)]) -> Verified {
        let mut r = req(action, params);
        r.access_key_id = crate::server::actions::testing::ADMIN.into();
        r
    }

    pub fn req(action: &str, params: &[(&str, &str)]) -> Verified {
        Verified {
            action: action.into(),
            version: "2015-12-01".into(),
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            format: Format::Json,
            access_key_id: "testid".into(),
            scheme: Scheme::V1,
            nonce: "n".into(),
            timestamp: time::OffsetDateTime::UNIX_EPOCH,
        }
    }

    /// The newest and the one before it, of an engine version.
    pub fn kernels(env: &Env, engine: &str) -> (String, String) {
        let c = env.ctx.kernels.snapshot();
        let ks = c.kernels(engine).unwrap();
        (
            ks[ks.len() - 1].kernel_version.clone(),
            ks[ks.len() - 2].kernel_version.clone(),
        )
    }

    impl Env {
        pub async fn wait_for<F, Fut>(&self, what: &str, timeout_ms: u64, mut check: F)
        where
            F: FnMut() -> Fut,
            Fut: std::future::Future<Output = bool>,
        {
            let deadline = Instant::now() + Duration::from_millis(timeout_ms);
            while !check().await {
                assert!(Instant::now() < deadline, "timed out waiting for {what}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }

        pub async fn status(&self, id: &str) -> DbInstanceStatus {
            self.store.get_instance(id).await.unwrap().unwrap().status
        }

        /// Waits until the instance is `Running` with no unfinished operation.
        pub async fn settled(&self, id: &str, timeout_ms: u64) {
            self.wait_for(&format!("{id} settled"), timeout_ms, || async {
                let ops = self.store.list_operations(id, 1).await.unwrap();
                self.status(id).await == DbInstanceStatus::Running
                    && ops.first().is_none_or(|o| o.status.is_finished())
            })
            .await;
        }

        /// Creates an instance through the runtime (as CreateDBInstance does) and waits for `Running`.
        pub async fn running_instance(&self, id: &str, topology: Topology, engine: &str) -> String {
            let mut inst = fixtures::instance(id, engine, topology);
            inst.status = DbInstanceStatus::Creating;
            self.store
                .create_instance_with_operation(
                    inst,
                    OperationState::create().new_operation(uuid::Uuid::new_v4().to_string()),
                    None,
                )
                .await
                .unwrap();
            self.runtime.handle().notify();
            self.settled(id, 20_000).await;
            id.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    /// Request parameters, expected code and HTTP status.
    type Refusal<'a> = (Vec<(&'a str, &'a str)>, &'a str, u16);

    use super::test_support::{env, kernels, req};
    use super::*;
    use crate::server::plane::DataPlane;
    use crate::server::runtime::OperationState;
    use crate::server::store::{OperationKind, Store};
    use dds_engine::build::fixtures;
    use dds_engine::model::DbInstanceStatus;
    use dds_engine::model::Topology;
    use dds_engine::sim::Fault;
    use serde_json::{json, Value};

    const ACTION: &str = "UpgradeDBInstanceKernelVersion";

    /// A replica set on an older 4.4 kernel whose upgrade was accepted with `SwitchMode=1` for a 16:00Z-17:00Z
    /// window. Plane time starts at 12:00Z and runs 200x: the window opens only after 72 s of wall time.
    /// Returns the environment, the instance and the upgrade's target kernel.
    async fn deferred_upgrade(name: &str) -> (super::test_support::Env, String, String) {
        let t = env(200.0).await;
        let (newest, older) = kernels(&t, "4.4");
        let id = t
            .running_instance(
                name,
                fixtures::replica_set(fixtures::psh("rs", &older)),
                "4.4",
            )
            .await;
        set_window(&t.ctx, &id, "16:00Z", "17:00Z").await;
        call(&t.ctx, &[("DBInstanceId", &id), ("SwitchMode", "1")])
            .await
            .unwrap();
        (t, id, newest)
    }

    /// Crashes the second member of replica set `id` now (back after `recover_after_ms` of plane time, if
    /// given); returns its NodeId.
    async fn crash_a_secondary(
        t: &super::test_support::Env,
        id: &str,
        recover_after_ms: Option<u64>,
    ) -> String {
        let inst = t.store.get_instance(id).await.unwrap().unwrap();
        let Topology::ReplicaSet { replica_set } = &inst.topology else {
            unreachable!()
        };
        let secondary = replica_set.members[1].node_id.clone();
        t.plane
            .arm_fault(
                id,
                serde_json::to_value(Fault::Crash {
                    node_id: secondary.clone(),
                    at_ms: t.plane.now_ms(),
                    recover_after_ms,
                })
                .unwrap(),
            )
            .await
            .unwrap();
        secondary
    }

    /// `ModifyDBInstanceMaintainTime`, which must be accepted.
    async fn set_window(ctx: &Arc<Context>, id: &str, start: &str, end: &str) {
        crate::server::actions::call(
            ctx.clone(),
            req(
                "ModifyDBInstanceMaintainTime",
                &[
                    ("DBInstanceId", id),
                    ("MaintainStartTime", start),
                    ("MaintainEndTime", end),
                ],
            ),
        )
        .await
        .unwrap();
    }

    async fn call(ctx: &Arc<Context>, params: &[(&str, &str)]) -> Result<Value, ApiError> {
        crate::server::actions::call(ctx.clone(), req(ACTION, params)).await
    }

    #[tokio::test]
    async fn an_accepted_upgrade_reads_upgrading_at_once_and_ends_running_on_the_target() {
        let t = env(200.0).await;
        let (newest, older) = kernels(&t, "4.4");
        let id = t
            .running_instance("dds-up1", fixtures::sharded(2, 2, &older), "4.4")
            .await;
        assert_eq!(
            call(&t.ctx, &[("DBInstanceId", &id)]).await.unwrap(),
            json!({})
        );
        // Status and operation were written together: the very next read sees both.
        assert_eq!(t.status(&id).await, DbInstanceStatus::MinorVersionUpgrading);
        let ops = t.store.list_operations(&id, 10).await.unwrap();
        assert_eq!(ops[0].kind, OperationKind::Upgrade);
        let OperationState::Upgrade(op) =
            OperationState::from_json(ops[0].kind, ops[0].state.clone()).unwrap()
        else {
            panic!("not an upgrade state")
        };
        assert_eq!(op.target(), Some(newest.as_str()));
        assert!(op.window.is_none());

        // A second call is refused on the status and records nothing.
        let e = call(&t.ctx, &[("DBInstanceId", &id)]).await.unwrap_err();
        assert_eq!(
            (e.code(), e.status()),
            ("OperationDenied.DBInstanceStatus", 403)
        );
        assert_eq!(t.store.list_operations(&id, 10).await.unwrap().len(), 2);

        t.settled(&id, 30_000).await;
        let inst = t.store.get_instance(&id).await.unwrap().unwrap();
        assert!(
            inst.topology.kernel_versions().all(|k| k == newest),
            "{inst:?}"
        );

        let v = crate::server::actions::call(
            t.ctx.clone(),
            req("DdsdDescribeOperations", &[("DBInstanceId", &id)]),
        )
        .await
        .unwrap();
        let op = &v["Operations"]["Operation"][0];
        assert_eq!(op["Action"], ACTION);
        assert_eq!(op["Status"], "Succeeded");
        assert_eq!(op["TargetKernelVersion"], newest.as_str());
        assert_eq!(op["Report"]["Outcome"], "Succeeded");
        let sim = &op["Simulation"];
        let procs = sim["Processes"].as_array().unwrap();
        assert_eq!(procs.len(), 3 * 3 + 2);
        for p in procs {
            assert_eq!(p["Restarts"], 1, "{p}");
            assert_eq!(p["KernelVersion"], newest.as_str(), "{p}");
        }
        for rs in sim["ReplicaSets"].as_array().unwrap() {
            assert_eq!(rs["Elections"], 1, "{rs}");
        }
        assert_eq!(sim["BalancerModeBefore"], sim["BalancerModeAfter"]);
        assert_eq!(sim["PrimaryStopAttempts"], 0);
        for rs in op["Report"]["ReplicaSets"].as_array().unwrap() {
            assert_eq!(rs["Elections"], 1, "{rs}");
            for m in rs["Members"].as_array().unwrap() {
                assert!(m["DowntimeMs"].as_u64().unwrap() > 0, "{m}");
            }
        }
    }

    #[tokio::test]
    async fn switch_mode_one_waits_for_the_window_while_running() {
        let t = env(200.0).await;
        let (_, older) = kernels(&t, "4.4");
        let id = t
            .running_instance(
                "dds-up2",
                fixtures::replica_set(fixtures::psh("rs", &older)),
                "4.4",
            )
            .await;
        // Plane time is just past 12:00Z: a 16:00Z-17:00Z window is hours away.
        let start = dds_engine::model::UtcTimeOfDay::from_minutes(16 * 60).unwrap();
        let end = dds_engine::model::UtcTimeOfDay::from_minutes(17 * 60).unwrap();
        t.store
            .modify_instance(
                &id,
                crate::server::store::InstancePatch {
                    maintain_window: dds_engine::model::MaintainWindow::new(start, end),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        call(&t.ctx, &[("DBInstanceId", &id), ("SwitchMode", "1")])
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(t.status(&id).await, DbInstanceStatus::Running);
        let ops = t.store.list_operations(&id, 1).await.unwrap();
        assert!(!ops[0].status.is_finished());
        let OperationState::Upgrade(op) =
            OperationState::from_json(ops[0].kind, ops[0].state.clone()).unwrap()
        else {
            panic!("not an upgrade state")
        };
        assert!(op.window.is_some());
        assert!(op.started_ms.is_none(), "started outside the window");
        // Still refused while the deferred operation waits, although the status reads Running; the
        // message names the operation in the way, since the status does not explain the refusal.
        let names_the_operation = |e: ApiError| {
            assert_eq!(e.code(), "OperationDenied.DBInstanceStatus");
            assert!(e.message().contains(&ops[0].id), "{}", e.message());
        };
        for mode in ["0", "1"] {
            names_the_operation(
                call(&t.ctx, &[("DBInstanceId", &id), ("SwitchMode", mode)])
                    .await
                    .unwrap_err(),
            );
        }
        let only_id = [("DBInstanceId", id.as_str())];
        names_the_operation(
            crate::server::actions::call(t.ctx.clone(), req("RestartDBInstance", &only_id))
                .await
                .unwrap_err(),
        );
        names_the_operation(
            crate::server::actions::call(t.ctx.clone(), req("DeleteDBInstance", &only_id))
                .await
                .unwrap_err(),
        );
    }

    #[tokio::test]
    async fn a_waiting_switch_mode_one_upgrade_starts_in_the_window_set_after_it_was_accepted() {
        let (t, id, newest) = deferred_upgrade("dds-up9").await;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert_eq!(t.status(&id).await, DbInstanceStatus::Running);
        // The client moves the window to one that is open now: the waiting upgrade goes ahead in it.
        set_window(&t.ctx, &id, "11:00Z", "14:00Z").await;
        t.settled(&id, 15_000).await;
        let ops = t.store.list_operations(&id, 1).await.unwrap();
        assert_eq!(
            ops[0].status,
            crate::server::store::OperationStatus::Succeeded
        );
        let OperationState::Upgrade(op) =
            OperationState::from_json(ops[0].kind, ops[0].state.clone()).unwrap()
        else {
            panic!("not an upgrade state")
        };
        let started = op.started_ms.expect("started");
        let minute_of_day = (started / 60_000) % 1_440;
        assert!(
            (11 * 60..14 * 60).contains(&minute_of_day),
            "{minute_of_day}"
        );
        let inst = t.store.get_instance(&id).await.unwrap().unwrap();
        assert!(inst.topology.kernel_versions().all(|k| k == newest));
    }

    #[tokio::test]
    async fn a_replica_set_started_in_the_window_finishes_after_it_and_the_next_waits() {
        use super::test_support::{env_at, PLANE_START_MS};
        // Plane time starts at 11:50Z; the window is 12:00Z-12:01Z. The config servers start at 12:00 and
        // need well over a minute, so they finish after the window has closed; the shard must then wait
        // for the next window, with the instance still reading MinorVersionUpgrading.
        let t = env_at(400.0, PLANE_START_MS - 600_000).await;
        let (newest, older) = kernels(&t, "4.4");
        let id = t
            .running_instance("dds-up7", fixtures::sharded(1, 2, &older), "4.4")
            .await;
        let tod = |m| dds_engine::model::UtcTimeOfDay::from_minutes(m).unwrap();
        t.store
            .modify_instance(
                &id,
                crate::server::store::InstancePatch {
                    maintain_window: dds_engine::model::MaintainWindow::new(tod(720), tod(721)),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        call(&t.ctx, &[("DBInstanceId", &id), ("SwitchMode", "1")])
            .await
            .unwrap();
        assert_eq!(t.status(&id).await, DbInstanceStatus::Running);
        let state = || async {
            let ops = t.store.list_operations(&id, 1).await.unwrap();
            let OperationState::Upgrade(op) =
                OperationState::from_json(ops[0].kind, ops[0].state.clone()).unwrap()
            else {
                panic!("not an upgrade state")
            };
            op
        };
        t.wait_for("the config servers to finish", 20_000, || async {
            state().await.replica_sets[0].finished_ms.is_some()
        })
        .await;
        // Let the next window-closed stretch be observed for a while (10 minutes of plane time).
        tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
        let op = state().await;
        let window_end = PLANE_START_MS + 60_000;
        let cfg = &op.replica_sets[0];
        assert!(
            cfg.started_ms.unwrap() < window_end,
            "started inside the window"
        );
        assert!(
            cfg.finished_ms.unwrap() > window_end,
            "finished after it closed"
        );
        assert!(cfg.procs.iter().all(|p| p.restarted), "{cfg:?}");
        let shard = &op.replica_sets[1];
        assert!(shard.started_ms.is_none() && !shard.procs.iter().any(|p| p.restarted));
        assert!(!op.is_finished());
        assert_eq!(t.status(&id).await, DbInstanceStatus::MinorVersionUpgrading);
        let inst = t.store.get_instance(&id).await.unwrap().unwrap();
        let Topology::Sharded {
            config_server,
            shards,
            ..
        } = &inst.topology
        else {
            unreachable!()
        };
        assert!(config_server
            .members
            .iter()
            .all(|m| m.kernel_version == newest));
        assert!(shards[0].members.iter().all(|m| m.kernel_version == older));
    }

    #[tokio::test]
    async fn a_failed_upgrade_ends_running_on_the_truthful_kernels_with_the_failure_reported() {
        let t = env(200.0).await;
        let (newest, older) = kernels(&t, "4.4");
        let id = t
            .running_instance("dds-up8", fixtures::sharded(2, 2, &older), "4.4")
            .await;
        let inst = t.store.get_instance(&id).await.unwrap().unwrap();
        let Topology::Sharded { shards, .. } = &inst.topology else {
            unreachable!()
        };
        // The new binary crash-loops on one member of the second shard (F1/F12).
        let bad = shards[1].members[1].node_id.clone();
        t.plane
            .arm_fault(
                &id,
                serde_json::to_value(Fault::StartFails {
                    node_id: bad.clone(),
                })
                .unwrap(),
            )
            .await
            .unwrap();
        call(&t.ctx, &[("DBInstanceId", &id)]).await.unwrap();
        t.settled(&id, 30_000).await;

        let v = crate::server::actions::call(
            t.ctx.clone(),
            req(
                "DdsdDescribeOperations",
                &[("DBInstanceId", &id), ("MaxRecords", "1")],
            ),
        )
        .await
        .unwrap();
        let op = &v["Operations"]["Operation"][0];
        assert_eq!(op["Status"], "Failed", "{op}");
        let failed = &op["Report"]["Outcome"]["Failed"];
        assert_eq!(failed["NodeId"], bad.as_str(), "{op}");
        assert_eq!(failed["ReplicaSet"], shards[1].name.as_str());
        // Stopped at the failing node: the config servers and the first shard are on the target, the
        // failing member is back on its old kernel, nothing else of its shard and no mongos was touched.
        let inst = t.store.get_instance(&id).await.unwrap().unwrap();
        let Topology::Sharded {
            config_server,
            shards,
            mongos,
        } = &inst.topology
        else {
            unreachable!()
        };
        assert!(config_server
            .members
            .iter()
            .all(|m| m.kernel_version == newest));
        assert!(shards[0].members.iter().all(|m| m.kernel_version == newest));
        assert!(
            shards[1].members.iter().all(|m| m.kernel_version == older),
            "{shards:?}"
        );
        assert!(mongos.iter().all(|m| m.kernel_version == older));
        let sim = &op["Simulation"];
        for p in sim["Processes"].as_array().unwrap() {
            let node = p["NodeId"].as_str().unwrap();
            assert_eq!(
                p["KernelVersion"],
                if node.starts_with("cfg") || node.starts_with("shard0") {
                    newest.as_str()
                } else {
                    older.as_str()
                },
                "{p}"
            );
            if node == bad {
                assert!(p["FailedStarts"].as_u64().unwrap() >= 1, "{p}");
            } else if node.starts_with("shard1") || node.starts_with("mongos") {
                assert_eq!(p["Restarts"], 0, "{p}");
            }
        }
        assert_eq!(sim["BalancerModeBefore"], sim["BalancerModeAfter"]);
        assert_eq!(op["Report"]["Balancer"]["Restored"], true);
    }

    #[tokio::test]
    async fn refusals_change_nothing() {
        let t = env(200.0).await;
        let (newest, older) = kernels(&t, "4.4");
        let rs = t
            .running_instance(
                "dds-up3",
                fixtures::replica_set(fixtures::psh("rs", &older)),
                "4.4",
            )
            .await;
        let standalone = t
            .running_instance("dds-up4", fixtures::standalone("sa-0", &older), "4.4")
            .await;
        let latest = t
            .running_instance(
                "dds-up5",
                fixtures::replica_set(fixtures::psh("rs", &newest)),
                "4.4",
            )
            .await;
        let cases: Vec<Refusal> = vec![
            (vec![], "MissingDBInstanceId", 400),
            (
                vec![("DBInstanceId", "dds-nope")],
                "InvalidDBInstanceId.NotFound",
                404,
            ),
            (
                vec![("DBInstanceId", &rs), ("SwitchMode", "2")],
                "InvalidParameter",
                400,
            ),
            (
                vec![("DBInstanceId", &rs), ("SwitchMode", "now")],
                "InvalidParameter",
                400,
            ),
            (
                vec![("DBInstanceId", &standalone)],
                "OperationDenied.DBInstanceType",
                403,
            ),
            (
                vec![("DBInstanceId", &latest)],
                "InvalidMinorVersionAlreadyLatest",
                400,
            ),
        ];
        for (params, code, status) in cases {
            let e = call(&t.ctx, &params).await.unwrap_err();
            assert_eq!((e.code(), e.status()), (code, status), "{params:?}");
        }
        for id in [&rs, &standalone, &latest] {
            assert_eq!(t.status(id).await, DbInstanceStatus::Running);
            let ops = t.store.list_operations(id, 10).await.unwrap();
            assert_eq!(ops.len(), 1, "only the create");
        }
    }

    #[tokio::test]
    async fn a_window_that_opens_while_a_member_is_down_starts_the_upgrade_once_it_is_back() {
        // Accepted while healthy, for a window hours away.
        let (t, id, newest) = deferred_upgrade("dds-up10").await;
        // Then a secondary goes down for two minutes of plane time, and the window is moved to now.
        let secondary = crash_a_secondary(&t, &id, Some(120_000)).await;
        set_window(&t.ctx, &id, "00:00Z", "23:59Z").await;
        // The start waits for the member instead of failing the accepted upgrade, and says why.
        let op_id = t.store.list_operations(&id, 1).await.unwrap()[0].id.clone();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let blocked = loop {
            let v = crate::server::actions::call(
                t.ctx.clone(),
                req(
                    "DdsdDescribeOperations",
                    &[("DBInstanceId", &id), ("OperationId", &op_id)],
                ),
            )
            .await
            .unwrap();
            let progress = &v["Operations"]["Operation"][0]["Progress"];
            if !progress["StartBlocked"].is_null() {
                break progress["StartBlocked"].clone();
            }
            assert_eq!(progress["Phase"], "Preflight", "started with a member down");
            assert!(std::time::Instant::now() < deadline, "never blocked");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        assert!(
            blocked["Message"].as_str().unwrap().contains(&secondary),
            "{blocked}"
        );
        assert_eq!(t.status(&id).await, DbInstanceStatus::Running);
        t.settled(&id, 15_000).await;
        let ops = t.store.list_operations(&id, 1).await.unwrap();
        assert_eq!(
            ops[0].status,
            crate::server::store::OperationStatus::Succeeded
        );
        let inst = t.store.get_instance(&id).await.unwrap().unwrap();
        assert!(inst.topology.kernel_versions().all(|k| k == newest));
    }

    #[tokio::test]
    async fn an_unhealthy_replica_set_is_refused_against_a_fresh_observation() {
        let t = env(200.0).await;
        let (_, older) = kernels(&t, "4.4");
        let id = t
            .running_instance(
                "dds-up6",
                fixtures::replica_set(fixtures::psh("rs", &older)),
                "4.4",
            )
            .await;
        // A secondary crashes behind the control plane's back: the record still reads Running.
        let secondary = crash_a_secondary(&t, &id, None).await;
        let e = call(&t.ctx, &[("DBInstanceId", &id)]).await.unwrap_err();
        assert_eq!((e.code(), e.status()), ("IncorrectDBInstanceState", 403));
        assert!(e.message().contains(&secondary), "{}", e.message());
        assert_eq!(t.status(&id).await, DbInstanceStatus::Running);
        assert_eq!(t.store.list_operations(&id, 10).await.unwrap().len(), 1);
    }
}
