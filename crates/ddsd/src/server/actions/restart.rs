//! `RestartDBInstance`: a rolling restart on the upgrade's machinery — every process in scope restarted
//! exactly once on its current kernel, one member per replica set at a time, the primary last through a
//! non-forced stepdown, mongos one at a time (at least one always serving), the balancer stopped and
//! restored around it.
//!
//! Scope (`NodeId`):
//! - absent: the whole instance; status `Rebooting`;
//! - a shard's or the config server's node id (or replica-set name) of a sharded cluster: that replica set
//!   only; status `NodeRestarting` (the vendor's state for a node-level restart);
//! - a mongos node id of a sharded cluster: that mongos only; status `NodeRestarting`;
//! - on a replica-set instance, its own `DBInstanceId` (or its replica set's node id) means the whole
//!   instance, as there is no smaller unit to restart.
//!
//! An unknown `NodeId` is `InvalidParameter` (400) naming `NodeId`. `ParallelRestartMongos=true` restarts
//! the mongos in batches that still leave one serving. `NodeType` is accepted and checked for length only
//! (its values are undocumented). A standalone is refused with `OperationDenied.DBInstanceType`: ddsd only
//! restarts online, and a standalone has nobody to hand its work to. The other refusals and the acceptance
//! are those of `UpgradeDBInstanceKernelVersion` (see `upgrade.rs`); request and scope are read in `rolling.rs`.

use std::sync::Arc;

use super::errors::ApiError;
use super::rolling::{accept, RestartRequest};
use super::{Call, Context, Empty};

/// `RestartDBInstance`.
pub async fn restart_db_instance(
    ctx: Arc<Context>,
    req: RestartRequest,
    _call: Call,
) -> Result<Empty, ApiError> {
    let (planned, _scope) = req.plan(&ctx).await?;
    accept(&ctx, planned, req.deferred).await
}

#[cfg(test)]
mod tests {
    /// Request parameters, expected code and HTTP status.
    type Refusal<'a> = (Vec<(&'a str, &'a str)>, &'a str, u16);

    use super::*;
    use crate::server::actions::upgrade::test_support::{env, kernels, req, Env};
    use crate::server::store::Store;
    use dds_engine::build::fixtures;
    use dds_engine::model::DbInstanceStatus;
    use serde_json::json;
    use serde_json::Value;

    async fn call(t: &Env, params: &[(&str, &str)]) -> Result<Value, ApiError> {
        crate::server::actions::call(t.ctx.clone(), req("RestartDBInstance", params)).await
    }

    /// Restarts per process over the last operation, from the simulation's ground truth.
    async fn restarts(t: &Env, id: &str) -> Vec<(String, u64)> {
        let v = crate::server::actions::call(
            t.ctx.clone(),
            req(
                "DdsdDescribeOperations",
                &[("DBInstanceId", id), ("MaxRecords", "1")],
            ),
        )
        .await
        .unwrap();
        let op = &v["Operations"]["Operation"][0];
        assert_eq!(op["Action"], "RestartDBInstance");
        assert_eq!(op["Status"], "Succeeded", "{op}");
        op["Simulation"]["Processes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["NodeId"].as_str().unwrap().to_string(),
                    p["Restarts"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn whole_instance_then_one_shard_then_one_mongos() {
        let t = env(200.0).await;
        let (_, older) = kernels(&t, "4.2");
        let id = t
            .running_instance("dds-rs1", fixtures::sharded(2, 2, &older), "4.2")
            .await;

        assert_eq!(call(&t, &[("DBInstanceId", &id)]).await.unwrap(), json!({}));
        assert_eq!(t.status(&id).await, DbInstanceStatus::Rebooting);
        let e = call(&t, &[("DBInstanceId", &id)]).await.unwrap_err();
        assert_eq!(e.code(), "OperationDenied.DBInstanceStatus");
        t.settled(&id, 30_000).await;
        let all = restarts(&t, &id).await;
        assert_eq!(all.len(), 3 * 3 + 2);
        assert!(all.iter().all(|(_, n)| *n == 1), "{all:?}");
        let inst = t.store.get_instance(&id).await.unwrap().unwrap();
        assert!(
            inst.topology.kernel_versions().all(|k| k == older),
            "a restart keeps the kernel"
        );

        call(&t, &[("DBInstanceId", &id), ("NodeId", "shard1")])
            .await
            .unwrap();
        assert_eq!(t.status(&id).await, DbInstanceStatus::NodeRestarting);
        t.settled(&id, 30_000).await;
        for (node, n) in restarts(&t, &id).await {
            assert_eq!(n, u64::from(node.starts_with("shard1")), "{node}");
        }

        call(
            &t,
            &[
                ("DBInstanceId", &id),
                ("NodeId", "mongos1"),
                ("NodeType", "mongos"),
            ],
        )
        .await
        .unwrap();
        assert_eq!(t.status(&id).await, DbInstanceStatus::NodeRestarting);
        t.settled(&id, 30_000).await;
        for (node, n) in restarts(&t, &id).await {
            assert_eq!(n, u64::from(node == "mongos1"), "{node}");
        }
    }

    #[tokio::test]
    async fn refusals_change_nothing() {
        let t = env(200.0).await;
        let (_, older) = kernels(&t, "4.2");
        let sharded = t
            .running_instance("dds-rs2", fixtures::sharded(1, 2, &older), "4.2")
            .await;
        let standalone = t
            .running_instance("dds-rs3", fixtures::standalone("sa-0", &older), "4.2")
            .await;
        let long = "x".repeat(65);
        let cases: Vec<Refusal> = vec![
            (vec![], "MissingDBInstanceId", 400),
            (
                vec![("DBInstanceId", "dds-nope")],
                "InvalidDBInstanceId.NotFound",
                404,
            ),
            (
                vec![("DBInstanceId", &sharded), ("NodeId", "shard9")],
                "InvalidParameter",
                400,
            ),
            (
                vec![("DBInstanceId", &sharded), ("NodeId", &long)],
                "InvalidParameter",
                400,
            ),
            (
                vec![("DBInstanceId", &sharded), ("SwitchMode", "3")],
                "InvalidParameter",
                400,
            ),
            (
                vec![("DBInstanceId", &sharded), ("ParallelRestartMongos", "yes")],
                "InvalidParameter",
                400,
            ),
            (
                vec![("DBInstanceId", &standalone)],
                "OperationDenied.DBInstanceType",
                403,
            ),
        ];
        for (params, code, status) in cases {
            let e = call(&t, &params).await.unwrap_err();
            assert_eq!((e.code(), e.status()), (code, status), "{params:?}");
        }
        for id in [&sharded, &standalone] {
            assert_eq!(t.status(id).await, DbInstanceStatus::Running);
            assert_eq!(t.store.list_operations(id, 10).await.unwrap().len(), 1);
        }
    }

    #[tokio::test]
    async fn a_replica_set_named_by_its_own_id_restarts_whole_in_its_open_window() {
        let t = env(200.0).await;
        let (_, older) = kernels(&t, "4.2");
        let id = t
            .running_instance(
                "dds-rs4",
                fixtures::replica_set(fixtures::psh("rs", &older)),
                "4.2",
            )
            .await;
        // Plane time is just past 12:00Z: a 12:00Z-14:00Z window is open, SwitchMode=1 starts at once.
        let start = dds_engine::model::UtcTimeOfDay::from_minutes(12 * 60).unwrap();
        let end = dds_engine::model::UtcTimeOfDay::from_minutes(14 * 60).unwrap();
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
        call(
            &t,
            &[("DBInstanceId", &id), ("NodeId", &id), ("SwitchMode", "1")],
        )
        .await
        .unwrap();
        t.wait_for("Rebooting", 5_000, || async {
            t.status(&id).await == DbInstanceStatus::Rebooting
        })
        .await;
        t.settled(&id, 30_000).await;
        let all = restarts(&t, &id).await;
        assert_eq!(all.len(), 3);
        assert!(all.iter().all(|(_, n)| *n == 1), "{all:?}");
    }
}
