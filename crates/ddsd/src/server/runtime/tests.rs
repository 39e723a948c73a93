//! The runtime against the real pieces: the SQLite store in a temporary directory and the simulated plane on
//! sped-up wall time. "Crashes" drop the store, the plane and the runtime together and reopen them on the same
//! file, which is what a restarted process sees.

use super::*;
use crate::server::plane::sim::{SimPlane, SimPlaneConfig};
use crate::server::store::fixtures::{replica_set, sharded, TempDir};
use crate::server::store::{
    Accepted, Clock, InstanceFilter, OperationKind, OperationStatus, Page, SqliteOptions,
    SqliteStore,
};
use dds_engine::catalog::Catalog;
use dds_engine::model::{DbInstanceStatus, Instance};
use dds_engine::workflow::provision::deployment_ready;
use dds_engine::workflow::{RollingOperation, UpgradeConfig};
use std::future::Future;

fn fast() -> RuntimeConfig {
    RuntimeConfig {
        min_poll_wall_ms: 2,
        max_poll_wall_ms: 20,
        retry_initial_ms: 10,
        retry_max_ms: 200,
        rescan_interval_ms: 50,
        ..RuntimeConfig::default()
    }
}

/// One ddsd process's worth of state.
struct Node {
    store: Arc<SqliteStore>,
    plane: Arc<SimPlane>,
    runtime: Runtime,
}

async fn start(dir: &TempDir, speed: f64, config: RuntimeConfig) -> Node {
    start_with_store_clock(dir, speed, config, Clock::system()).await
}

async fn start_with_store_clock(
    dir: &TempDir,
    speed: f64,
    config: RuntimeConfig,
    clock: Clock,
) -> Node {
    // After an in-process "crash" the previous store goes away once its tasks are cancelled, a moment later.
    let deadline = Instant::now() + Duration::from_secs(10);
    let store = loop {
        let opened = SqliteStore::open_in(
            dir.path(),
            SqliteOptions {
                clock: clock.clone(),
                ..SqliteOptions::default()
            },
        );
        match opened {
            Ok(s) => break Arc::new(s),
            Err(crate::server::store::StoreError::Locked(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(5)).await
            }
            Err(e) => panic!("{e}"),
        }
    };
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
    let runtime = Runtime::start(store.clone(), plane.clone(), config);
    Node {
        store,
        plane,
        runtime,
    }
}

async fn wait_until<F, Fut>(what: &str, timeout_ms: u64, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_millis(timeout_ms);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn status(store: &SqliteStore, id: &str) -> Option<DbInstanceStatus> {
    store.get_instance(id).await.unwrap().map(|i| i.status)
}

/// Records a create as the CreateDBInstance handler does, and tells the runtime.
async fn request_create(node: &Node, mut instance: Instance) -> String {
    instance.status = DbInstanceStatus::Creating;
    let op = OperationState::create().new_operation(uuid::Uuid::new_v4().to_string());
    let id = op.id.clone();
    let accepted = node
        .store
        .create_instance_with_operation(instance, op, None)
        .await
        .unwrap();
    assert!(matches!(accepted, Accepted::New { .. }));
    node.runtime.handle().notify();
    id
}

async fn request(
    node: &Node,
    instance_id: &str,
    new_status: DbInstanceStatus,
    state: OperationState,
) -> String {
    let op = state.new_operation(uuid::Uuid::new_v4().to_string());
    let id = op.id.clone();
    node.store
        .begin_operation(
            instance_id,
            &[DbInstanceStatus::Running],
            new_status,
            op,
            None,
        )
        .await
        .unwrap();
    node.runtime.handle().notify();
    id
}

async fn running(node: &Node, id: &str, timeout_ms: u64) {
    wait_until(&format!("{id} Running"), timeout_ms, || async {
        status(&node.store, id).await == Some(DbInstanceStatus::Running)
    })
    .await;
}

fn target_kernel() -> String {
    Catalog::embedded()
        .newest("4.0")
        .expect("the catalog knows 4.0")
        .kernel_version
        .clone()
}

async fn plan_upgrade(node: &Node, id: &str) -> OperationState {
    let instance = node.store.get_instance(id).await.unwrap().unwrap();
    OperationState::rolling(
        RollingOperation::plan_upgrade(&instance, &target_kernel(), UpgradeConfig::default())
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_shows_creating_then_running_and_delete_removes_everything() {
    let dir = TempDir::new("rt");
    let node = start(&dir, 200.0, fast()).await;
    let inst = replica_set("dds-rt1", "2026-01-01T00:00:00Z");
    let op = request_create(&node, inst.clone()).await;
    // The status a client reads right after the call.
    assert_eq!(
        status(&node.store, "dds-rt1").await,
        Some(DbInstanceStatus::Creating)
    );
    running(&node, "dds-rt1", 20_000).await;
    let done = node.store.get_operation(&op).await.unwrap().unwrap();
    assert_eq!(done.status, OperationStatus::Succeeded);
    assert!(done.epoch >= 1);
    let obs = node.plane.observe("dds-rt1").await.unwrap().unwrap();
    assert_eq!(
        deployment_ready(&inst, &obs),
        Ok(()),
        "Running only once the deployment serves"
    );

    request(
        &node,
        "dds-rt1",
        DbInstanceStatus::Deleting,
        OperationState::delete(),
    )
    .await;
    assert_eq!(
        status(&node.store, "dds-rt1").await,
        Some(DbInstanceStatus::Deleting)
    );
    wait_until("the instance to disappear", 20_000, || async {
        status(&node.store, "dds-rt1").await.is_none()
    })
    .await;
    assert_eq!(node.plane.observe("dds-rt1").await.unwrap(), None);
    assert_eq!(
        node.store.load_plane_snapshot("dds-rt1").await.unwrap(),
        None
    );
    node.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_restarts_every_member_once_and_ends_running_on_the_target() {
    let dir = TempDir::new("rt");
    let node = start(&dir, 500.0, fast()).await;
    request_create(&node, replica_set("dds-up", "2026-01-01T00:00:00Z")).await;
    running(&node, "dds-up", 20_000).await;
    let state = plan_upgrade(&node, "dds-up").await;
    let started_ms = node.plane.now_ms();
    let op = request(
        &node,
        "dds-up",
        DbInstanceStatus::MinorVersionUpgrading,
        state,
    )
    .await;
    assert_eq!(
        status(&node.store, "dds-up").await,
        Some(DbInstanceStatus::MinorVersionUpgrading)
    );
    running(&node, "dds-up", 60_000).await;

    let done = node.store.get_operation(&op).await.unwrap().unwrap();
    assert_eq!(done.status, OperationStatus::Succeeded, "{:?}", done.report);
    let inst = node.store.get_instance("dds-up").await.unwrap().unwrap();
    let target = target_kernel();
    assert!(
        inst.topology.kernel_versions().all(|k| k == target),
        "{inst:?}"
    );
    let truth = node.plane.truth("dds-up").await.unwrap().unwrap();
    for rs in inst.topology.replica_sets() {
        for m in &rs.members {
            assert_eq!(truth.restarts(&m.node_id), 1, "{}", m.node_id);
        }
        let rs_truth = truth.replica_set(&rs.name).unwrap();
        assert_eq!(
            rs_truth.elections_since(started_ms).count(),
            1,
            "one election per replica set"
        );
        assert!(rs_truth.max_out_by_commands <= 1);
    }
    assert!(truth.primary_stop_attempts.is_empty());
    node.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_interrupted_by_a_crash_resumes() {
    let dir = TempDir::new("rt");
    let node = start(&dir, 100.0, fast()).await;
    request_create(&node, replica_set("dds-cr", "2026-01-01T00:00:00Z")).await;
    // Wait until the provision is durable, then "crash".
    wait_until("the deployment to exist", 10_000, || async {
        node.store
            .load_plane_snapshot("dds-cr")
            .await
            .unwrap()
            .is_some()
    })
    .await;
    assert_eq!(
        status(&node.store, "dds-cr").await,
        Some(DbInstanceStatus::Creating)
    );
    drop(node);

    let node = start(&dir, 100.0, fast()).await;
    running(&node, "dds-cr", 20_000).await;
    let ops = node.store.list_operations("dds-cr", 10).await.unwrap();
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0].status, OperationStatus::Succeeded);
    assert!(ops[0].epoch >= 2, "claimed again after the restart");
    node.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_interrupted_by_crashes_resumes_without_a_second_restart() {
    let dir = TempDir::new("rt");
    let speed = 300.0;
    let mut node = start(&dir, speed, fast()).await;
    request_create(&node, replica_set("dds-kr", "2026-01-01T00:00:00Z")).await;
    running(&node, "dds-kr", 20_000).await;
    let state = plan_upgrade(&node, "dds-kr").await;
    let started_ms = node.plane.now_ms();
    let op = request(
        &node,
        "dds-kr",
        DbInstanceStatus::MinorVersionUpgrading,
        state,
    )
    .await;

    // Crash after each of the first restarts is under way, and once more a little later.
    let members = ["dds-kr-0", "dds-kr-1", "dds-kr-2"];
    let mut crashes = 0;
    for restarted in 1..=2u32 {
        wait_until(&format!("{restarted} restart(s)"), 30_000, || async {
            let truth = node.plane.truth("dds-kr").await.unwrap().unwrap();
            members
                .iter()
                .map(|m| {
                    truth
                        .processes
                        .iter()
                        .find(|p| p.node_id == *m)
                        .map_or(0, |p| p.stops_by_command)
                })
                .sum::<u32>()
                >= restarted
        })
        .await;
        if status(&node.store, "dds-kr").await == Some(DbInstanceStatus::Running) {
            break;
        }
        drop(node);
        crashes += 1;
        node = start(&dir, speed, fast()).await;
    }
    assert!(crashes >= 1, "the upgrade finished before the first crash");
    running(&node, "dds-kr", 60_000).await;

    let done = node.store.get_operation(&op).await.unwrap().unwrap();
    assert_eq!(done.status, OperationStatus::Succeeded, "{:?}", done.report);
    let truth = node.plane.truth("dds-kr").await.unwrap().unwrap();
    for m in members {
        let p = truth.process(m).unwrap();
        assert_eq!(
            (p.stops_by_command, p.starts_by_command),
            (1, 1),
            "{m}: {p:?}"
        );
    }
    let rs = truth.replica_set("mgset-dds-kr").unwrap();
    assert_eq!(rs.elections_since(started_ms).count(), 1);
    let inst = node.store.get_instance("dds-kr").await.unwrap().unwrap();
    assert!(inst
        .topology
        .kernel_versions()
        .all(|k| k == target_kernel()));
    node.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takeover_fences_the_previous_driver_in_the_store_and_at_the_plane() {
    // Mid-upgrade another holder claims the operation (as a second replica would once this one's lease
    // lapsed) and announces itself to the plane, then goes quiet. The runtime's driver must stop at its next
    // write or command, wait out the other lease, re-claim, and finish without a second restart; the other
    // holder's epoch must no longer reach the deployment.
    let dir = TempDir::new("rt");
    let skew = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let node = start_with_store_clock(&dir, 300.0, fast(), Clock::skewed(skew.clone())).await;
    request_create(&node, replica_set("dds-zz", "2026-01-01T00:00:00Z")).await;
    running(&node, "dds-zz", 30_000).await;
    let state = plan_upgrade(&node, "dds-zz").await;
    let op = request(
        &node,
        "dds-zz",
        DbInstanceStatus::MinorVersionUpgrading,
        state,
    )
    .await;
    wait_until("the first stop", 30_000, || async {
        let truth = node.plane.truth("dds-zz").await.unwrap().unwrap();
        truth.processes.iter().any(|p| p.stops_by_command > 0)
    })
    .await;
    // The runtime's lease lapses (as if its process had stalled for two minutes). The driver may renew it
    // in the same instant (its writes see the jump too), so the other holder tries until it gets in.
    let mut other = None;
    for _ in 0..50 {
        skew.fetch_add(120_000, std::sync::atomic::Ordering::SeqCst);
        match node.store.claim_operation(&op, "other-replica", 300).await {
            Ok(c) => {
                other = Some(c);
                break;
            }
            Err(crate::server::store::StoreError::LeaseHeld { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    let other = other.expect("the lease never lapsed");
    node.plane.fence("dds-zz", other.epoch).await.unwrap();

    running(&node, "dds-zz", 120_000).await;
    let done = node.store.get_operation(&op).await.unwrap().unwrap();
    assert_eq!(done.status, OperationStatus::Succeeded, "{:?}", done.report);
    assert!(
        done.epoch > other.epoch,
        "re-claimed after the other lease expired"
    );
    let truth = node.plane.truth("dds-zz").await.unwrap().unwrap();
    for p in &truth.processes {
        assert_eq!(p.starts_by_command, 1, "{p:?}");
    }
    assert!(truth.primary_stop_attempts.is_empty());
    let stale = node
        .plane
        .execute(
            "dds-zz",
            other.epoch,
            "op",
            &dds_engine::plane::Command::StopMember {
                replica_set: "mgset-dds-zz".into(),
                node_id: "dds-zz-1".into(),
            },
        )
        .await;
    assert!(
        matches!(stale, Err(crate::server::plane::PlaneError::Fenced { .. })),
        "{stale:?}"
    );
    node.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_is_bounded() {
    let dir = TempDir::new("rt");
    let node = start(
        &dir,
        200.0,
        RuntimeConfig {
            max_concurrent_operations: 1,
            ..fast()
        },
    )
    .await;
    let ids = ["dds-b1", "dds-b2", "dds-b3"];
    for id in ids {
        request_create(&node, replica_set(id, "2026-01-01T00:00:00Z")).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let unfinished = node.store.unfinished_operations(100).await.unwrap();
        let claimed = unfinished
            .iter()
            .filter(|o| o.status == OperationStatus::Running)
            .count();
        assert!(claimed <= 1, "{claimed} operations driven at once");
        if unfinished.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let page = node
        .store
        .list_instances(&InstanceFilter::default(), Page::new(1, 10).unwrap())
        .await
        .unwrap();
    assert_eq!(page.total, 3);
    assert!(page
        .instances
        .iter()
        .all(|i| i.status == DbInstanceStatus::Running));
    let kinds: Vec<OperationKind> = node
        .store
        .list_operations("dds-b2", 10)
        .await
        .unwrap()
        .iter()
        .map(|o| o.kind)
        .collect();
    assert_eq!(kinds, vec![OperationKind::Create]);
    node.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharded_cluster_is_created_with_its_mongos_and_deleted() {
    let dir = TempDir::new("rt");
    let node = start(&dir, 200.0, fast()).await;
    let inst = sharded("dds-sc", "2026-01-01T00:00:00Z");
    request_create(&node, inst.clone()).await;
    running(&node, "dds-sc", 30_000).await;
    let obs = node.plane.observe("dds-sc").await.unwrap().unwrap();
    assert_eq!(deployment_ready(&inst, &obs), Ok(()));
    assert!(obs.mongos.iter().all(|m| m.up));
    request(
        &node,
        "dds-sc",
        DbInstanceStatus::Deleting,
        OperationState::delete(),
    )
    .await;
    wait_until("the cluster to disappear", 30_000, || async {
        status(&node.store, "dds-sc").await.is_none()
    })
    .await;
    assert_eq!(node.plane.observe("dds-sc").await.unwrap(), None);
    node.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_restarts_every_member_once_on_its_own_kernel() {
    let dir = TempDir::new("rt");
    let node = start(&dir, 500.0, fast()).await;
    request_create(&node, replica_set("dds-rs", "2026-01-01T00:00:00Z")).await;
    running(&node, "dds-rs", 20_000).await;
    let instance = node.store.get_instance("dds-rs").await.unwrap().unwrap();
    let state = OperationState::rolling(
        RollingOperation::plan_restart(
            &instance,
            dds_engine::workflow::RestartScope::Instance,
            UpgradeConfig::default(),
        )
        .unwrap(),
    );
    assert_eq!(state.kind(), OperationKind::Restart);
    let op = request(&node, "dds-rs", DbInstanceStatus::Rebooting, state).await;
    assert_eq!(
        status(&node.store, "dds-rs").await,
        Some(DbInstanceStatus::Rebooting)
    );
    running(&node, "dds-rs", 60_000).await;
    let done = node.store.get_operation(&op).await.unwrap().unwrap();
    assert_eq!(done.status, OperationStatus::Succeeded, "{:?}", done.report);
    let truth = node.plane.truth("dds-rs").await.unwrap().unwrap();
    for m in ["dds-rs-0", "dds-rs-1", "dds-rs-2"] {
        let p = truth.process(m).unwrap();
        assert_eq!(p.starts_by_command, 1, "{m}");
        assert!(p
            .launches
            .iter()
            .all(|(_, k)| k == crate::server::store::fixtures::KERNEL));
    }
    let after = node.store.get_instance("dds-rs").await.unwrap().unwrap();
    assert_eq!(after.topology, instance.topology, "kernels unchanged");
    node.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharded_upgrade_restarts_every_process_once_and_restores_the_balancer() {
    let dir = TempDir::new("rt");
    let node = start(&dir, 300.0, fast()).await;
    request_create(&node, sharded("dds-su", "2026-01-01T00:00:00Z")).await;
    running(&node, "dds-su", 30_000).await;
    let state = plan_upgrade(&node, "dds-su").await;
    let started_ms = node.plane.now_ms();
    let op = request(
        &node,
        "dds-su",
        DbInstanceStatus::MinorVersionUpgrading,
        state,
    )
    .await;
    running(&node, "dds-su", 120_000).await;
    let done = node.store.get_operation(&op).await.unwrap().unwrap();
    assert_eq!(done.status, OperationStatus::Succeeded, "{:?}", done.report);
    let truth = node.plane.truth("dds-su").await.unwrap().unwrap();
    for p in &truth.processes {
        assert_eq!((p.stops_by_command, p.starts_by_command), (1, 1), "{p:?}");
    }
    for rs in &truth.replica_sets {
        assert_eq!(rs.elections_since(started_ms).count(), 1, "{}", rs.name);
    }
    assert_eq!(
        truth.balancer_modes.last().map(|(_, m)| *m),
        Some(dds_engine::plane::BalancerMode::Full),
        "balancer back to its recorded mode"
    );
    let inst = node.store.get_instance("dds-su").await.unwrap().unwrap();
    assert!(inst
        .topology
        .kernel_versions()
        .all(|k| k == target_kernel()));
    node.runtime.shutdown().await;
}
