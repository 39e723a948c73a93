//! `DescribeDBInstanceSwitchLog`: every primary change ddsd caused or saw on an instance, in the SDK
//! model's shape (`LogItems[]` of `NodeId`, `SwitchCode`, `SwitchStatus`, `SwitchTime`).
//!
//! Where the entries come from:
//! - every rolling operation's own record of the elections it observed (`RsTrack::elections`: upgrades,
//!   restarts, `RestartNode`, `SwitchDBInstanceHA`), on any data plane. The election its stepdown caused
//!   is `USER_CONSOLE_OPERATION` for a switch and `OPERATION_AND_MAINTENANCE` for an upgrade or restart
//!   (so is a priority takeover); one it did not cause is `PRIMARY_UNHEALTHY`. A switch that ended
//!   without a new primary (stepdown refused, no new primary elected) is an entry with `SwitchStatus`
//!   `0`;
//! - with the simulated data plane, the fleet's ground truth for elections outside every operation's
//!   span (a fault, a client's `replSetStepDown`): a handoff after a stepdown is
//!   `USER_CONSOLE_OPERATION`, an election after the primary was lost is `PRIMARY_UNHEALTHY`, a priority
//!   takeover `OPERATION_AND_MAINTENANCE`. The first election of a new replica set is not a switch.
//!
//! `NodeId` is the `DBInstanceId` for a replica-set instance and the shard's or config server's node id
//! for a sharded cluster. Times are wall-clock UTC (`yyyy-MM-ddTHH:mm:ssZ`): the elections are recorded
//! in plane time, which the simulation runs `sim_speed` times faster, and are mapped back through the
//! plane clock. Entries are newest first; the model has no field for the members, which
//! `DdsdDescribeOperations` reports (`Report.ReplicaSets[].ElectionLog`).
//!
//! Request: `DBInstanceId`, `StartTime` and `EndTime` (required, `yyyy-MM-ddTHH:mmZ` or with seconds,
//! UTC, `EndTime` later than `StartTime`), `PageNumber` (≥ 1, default 1), `PageSize` (30, 50 or 100,
//! default 30). The log reads the newest [`MAX_OPERATIONS`] operations of the instance.

use std::sync::Arc;

use dds_engine::model::{Instance, Topology};
use dds_engine::plane::Millis;
use dds_engine::sim::ElectionCause as SimCause;
use dds_engine::workflow::{ElectionCause, FailureReason, RollingKind};
use serde::Serialize;
use time::OffsetDateTime;

use super::errors::{from_store, ApiError};
use super::operations::rolling;
use super::params::{clip, optional, parse_u32_in, required, time_range, wall_time};
use super::rolling::load_instance;
use super::{Call, Context, FromParams, Params};

/// Operations read per request (newest first).
pub const MAX_OPERATIONS: u32 = 1_000;
pub const PAGE_SIZES: [u32; 3] = [30, 50, 100];

const USER: &str = "USER_CONSOLE_OPERATION";
const MAINTENANCE: &str = "OPERATION_AND_MAINTENANCE";
const PRIMARY_UNHEALTHY: &str = "PRIMARY_UNHEALTHY";

/// `DescribeDBInstanceSwitchLog`'s request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchLogRequest {
    pub db_instance_id: String,
    /// Wall-clock milliseconds, inclusive.
    pub start_ms: u64,
    pub end_ms: u64,
    pub page_number: u32,
    pub page_size: u32,
}

impl FromParams for SwitchLogRequest {
    fn from_params(params: &Params) -> Result<Self, ApiError> {
        let db_instance_id = required(params, "DBInstanceId")?.to_string();
        let (start_ms, end_ms) = time_range(params, "StartTime", "EndTime")?;
        let page_number = optional(params, "PageNumber")
            .map(|v| parse_u32_in("PageNumber", v, 1, i32::MAX as u32))
            .transpose()?
            .unwrap_or(1);
        let page_size = match optional(params, "PageSize") {
            None => 30,
            Some(v) => match v.parse::<u32>() {
                Ok(n) if PAGE_SIZES.contains(&n) && v.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => {
                    return Err(ApiError::invalid_parameter(
                        "PageSize",
                        format!("Valid values are 30, 50 and 100, got \"{}\".", clip(v)),
                    ))
                }
            },
        };
        Ok(Self {
            db_instance_id,
            start_ms,
            end_ms: end_ms.saturating_add(999),
            page_number,
            page_size,
        })
    }
}

/// One `LogItems[]` entry, in the SDK model's fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LogItem {
    pub node_id: String,
    pub switch_code: String,
    pub switch_status: String,
    pub switch_time: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SwitchLogResponse {
    #[serde(rename = "DBInstanceId")]
    pub db_instance_id: String,
    #[serde(rename = "LogItems")]
    pub log_items: Vec<LogItem>,
    #[serde(rename = "PageNumber")]
    pub page_number: u32,
    #[serde(rename = "PageSize")]
    pub page_size: u32,
    #[serde(rename = "TotalCount")]
    pub total_count: u64,
}

/// A switch in plane time, before it is placed on the wall clock.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    at_plane_ms: Millis,
    replica_set: String,
    code: &'static str,
    ok: bool,
}

/// The `NodeId` a replica set is reported under.
fn node_of(instance: &Instance, replica_set: &str) -> String {
    match &instance.topology {
        Topology::Sharded { .. } => instance
            .topology
            .replica_sets()
            .into_iter()
            .find(|r| r.name == replica_set)
            .map_or_else(|| replica_set.to_string(), |r| r.node_id.clone()),
        _ => instance.id.clone(),
    }
}

/// Plane time → wall time, through the plane clock (plane time is wall time without a plane).
fn to_wall(ctx: &Context, wall_now_ms: u64, plane_ms: Millis) -> u64 {
    match &ctx.plane {
        Some(p) => {
            let plane_now = p.now_ms();
            let behind = p
                .wall_duration(plane_now.saturating_sub(plane_ms))
                .as_millis();
            let ahead = p
                .wall_duration(plane_ms.saturating_sub(plane_now))
                .as_millis();
            (wall_now_ms.saturating_sub(u64::try_from(behind).unwrap_or(u64::MAX)))
                .saturating_add(u64::try_from(ahead).unwrap_or(u64::MAX))
        }
        None => plane_ms,
    }
}

/// Every switch of the instance, in plane time, unsorted.
async fn entries(ctx: &Context, instance: &Instance) -> Result<Vec<Entry>, ApiError> {
    let ops = ctx
        .store
        .list_operations(&instance.id, MAX_OPERATIONS)
        .await
        .map_err(from_store)?;
    let plane_now = ctx.plane.as_ref().map(|p| p.now_ms());
    let mut out = Vec::new();
    // Plane-time spans the operations observed themselves.
    let mut spans: Vec<(Millis, Millis)> = Vec::new();
    for op in &ops {
        let Some(r) = rolling(op) else { continue };
        let Some(started) = r.started_ms else {
            continue;
        };
        spans.push((started, r.finished_ms.or(plane_now).unwrap_or(Millis::MAX)));
        let switch = matches!(r.kind, RollingKind::Switch { .. });
        for rs in &r.replica_sets {
            for e in &rs.elections {
                let code = match e.cause {
                    ElectionCause::StepDown if switch => USER,
                    ElectionCause::StepDown | ElectionCause::PriorityTakeover => MAINTENANCE,
                    ElectionCause::Unplanned => PRIMARY_UNHEALTHY,
                };
                out.push(Entry {
                    at_plane_ms: e.at_ms,
                    replica_set: rs.name.clone(),
                    code,
                    ok: true,
                });
            }
        }
        if let (true, Some(f)) = (switch, &r.failure) {
            let no_handover = matches!(
                f.reason,
                FailureReason::StepDownRefused { .. }
                    | FailureReason::NoNewPrimary
                    | FailureReason::TooManyStepDowns { .. }
                    | FailureReason::PreStopGateTimeout { .. }
                    | FailureReason::Preflight(_)
            );
            if no_handover {
                let rs = f.replica_set.clone().or_else(|| {
                    r.replica_sets
                        .iter()
                        .find(|t| t.status != dds_engine::workflow::operation::RsStatus::OutOfScope)
                        .map(|t| t.name.clone())
                });
                if let Some(rs) = rs {
                    out.push(Entry {
                        at_plane_ms: f.at_ms,
                        replica_set: rs,
                        code: USER,
                        ok: false,
                    });
                }
            }
        }
    }
    if let Some(sim) = &ctx.sim {
        match sim.truth(&instance.id).await {
            Ok(Some(truth)) => {
                for rs in &truth.replica_sets {
                    for e in &rs.elections {
                        let covered = spans.iter().any(|(a, b)| e.at_ms >= *a && e.at_ms <= *b);
                        let code = match e.cause {
                            SimCause::Initiate => continue,
                            _ if covered => continue,
                            SimCause::Handoff => USER,
                            SimCause::Timeout => PRIMARY_UNHEALTHY,
                            SimCause::PriorityTakeover => MAINTENANCE,
                        };
                        out.push(Entry {
                            at_plane_ms: e.at_ms,
                            replica_set: rs.name.clone(),
                            code,
                            ok: true,
                        });
                    }
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(instance_id = %instance.id, error = %e, "ground truth unavailable")
            }
        }
    }
    Ok(out)
}

/// `DescribeDBInstanceSwitchLog`.
pub async fn describe_db_instance_switch_log(
    ctx: Arc<Context>,
    req: SwitchLogRequest,
    _call: Call,
) -> Result<SwitchLogResponse, ApiError> {
    let instance = load_instance(&ctx, &req.db_instance_id).await?;
    let wall_now =
        u64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    let mut items: Vec<(u64, LogItem)> = entries(&ctx, &instance)
        .await?
        .into_iter()
        .map(|e| {
            let at = to_wall(&ctx, wall_now, e.at_plane_ms);
            (
                at,
                LogItem {
                    node_id: node_of(&instance, &e.replica_set),
                    switch_code: e.code.to_string(),
                    switch_status: if e.ok { "1" } else { "0" }.to_string(),
                    switch_time: wall_time(at),
                },
            )
        })
        .filter(|(at, _)| *at >= req.start_ms && *at <= req.end_ms)
        .collect();
    items.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.node_id.cmp(&b.1.node_id)));
    let total_count = items.len() as u64;
    let skip = (u64::from(req.page_number) - 1).saturating_mul(u64::from(req.page_size));
    let log_items = items
        .into_iter()
        .skip(usize::try_from(skip).unwrap_or(usize::MAX))
        .take(req.page_size as usize)
        .map(|(_, i)| i)
        .collect();
    Ok(SwitchLogResponse {
        db_instance_id: instance.id,
        log_items,
        page_number: req.page_number,
        page_size: req.page_size,
        total_count,
    })
}

#[cfg(test)]
mod tests {
    /// Request parameters, expected code and HTTP status.
    type Refusal<'a> = (Vec<(&'a str, &'a str)>, &'a str, u16);

    use super::*;
    use crate::server::actions::upgrade::test_support::{env, kernels, req, Env};
    use crate::server::plane::DataPlane;
    use dds_engine::build::fixtures;
    use dds_engine::sim::Fault;
    use serde_json::Value;

    const WIDE: [(&str, &str); 2] = [
        ("StartTime", "2000-01-01T00:00Z"),
        ("EndTime", "2099-12-31T23:59Z"),
    ];

    async fn log(t: &Env, params: &[(&str, &str)]) -> Result<Value, ApiError> {
        crate::server::actions::call(t.ctx.clone(), req("DescribeDBInstanceSwitchLog", params))
            .await
    }

    async fn primary(t: &Env, id: &str) -> Option<String> {
        let obs = t.plane.observe(id).await.unwrap().unwrap();
        obs.replica_sets[0].primary.clone()
    }

    #[tokio::test]
    async fn switches_restarts_and_faults_are_logged_newest_first() {
        let t = env(200.0).await;
        let (_, older) = kernels(&t, "4.4");
        let id = t
            .running_instance(
                "dds-sl1",
                fixtures::replica_set(fixtures::psh("rs", &older)),
                "4.4",
            )
            .await;
        let mut params = vec![("DBInstanceId", id.as_str())];
        params.extend(WIDE);
        let v = log(&t, &params).await.unwrap();
        assert_eq!(
            v["TotalCount"], 0,
            "the first election is not a switch: {v}"
        );

        for action in ["SwitchDBInstanceHA", "RestartDBInstance"] {
            crate::server::actions::call(t.ctx.clone(), req(action, &[("DBInstanceId", &id)]))
                .await
                .unwrap();
            t.settled(&id, 30_000).await;
        }
        // The primary crashes behind ddsd's back: an election after the timeout.
        let p = primary(&t, &id).await.unwrap();
        t.plane
            .arm_fault(
                &id,
                serde_json::to_value(Fault::Crash {
                    node_id: p.clone(),
                    at_ms: t.plane.now_ms(),
                    recover_after_ms: None,
                })
                .unwrap(),
            )
            .await
            .unwrap();
        t.wait_for("a new primary", 20_000, || async {
            primary(&t, &id).await.is_some_and(|n| n != p)
        })
        .await;

        let v = log(&t, &params).await.unwrap();
        assert_eq!(v["DBInstanceId"], id.as_str());
        assert_eq!(
            (v["PageNumber"].as_u64(), v["PageSize"].as_u64()),
            (Some(1), Some(30))
        );
        let items = v["LogItems"].as_array().unwrap();
        let codes: Vec<&str> = items
            .iter()
            .map(|i| i["SwitchCode"].as_str().unwrap())
            .collect();
        assert_eq!(
            codes,
            [PRIMARY_UNHEALTHY, MAINTENANCE, USER],
            "newest first: {v}"
        );
        assert_eq!(v["TotalCount"], 3);
        for i in items {
            assert_eq!(i["NodeId"], id.as_str());
            assert_eq!(i["SwitchStatus"], "1");
            let t = i["SwitchTime"].as_str().unwrap();
            assert!(acs_rpc::parse_timestamp(t).is_some(), "{t}");
        }
        let times: Vec<&str> = items
            .iter()
            .map(|i| i["SwitchTime"].as_str().unwrap())
            .collect();
        assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");

        // Paging and the time range.
        let mut page2 = params.clone();
        page2.push(("PageNumber", "2"));
        let v = log(&t, &page2).await.unwrap();
        assert_eq!(v["TotalCount"], 3);
        assert!(v["LogItems"].as_array().unwrap().is_empty());
        let v = log(
            &t,
            &[
                ("DBInstanceId", &id),
                ("StartTime", "2000-01-01T00:00Z"),
                ("EndTime", "2000-01-02T00:00Z"),
                ("PageSize", "100"),
            ],
        )
        .await
        .unwrap();
        assert_eq!(v["TotalCount"], 0);
        assert_eq!(v["PageSize"], 100);
    }

    #[tokio::test]
    async fn refusals_name_the_parameter() {
        let t = env(200.0).await;
        let (_, older) = kernels(&t, "4.4");
        let id = t
            .running_instance(
                "dds-sl2",
                fixtures::replica_set(fixtures::psh("rs", &older)),
                "4.4",
            )
            .await;
        let start = ("StartTime", "2026-01-01T00:00Z");
        let end = ("EndTime", "2026-01-02T00:00Z");
        let cases: Vec<Refusal> = vec![
            (vec![start, end], "MissingDBInstanceId", 400),
            (vec![("DBInstanceId", &id), end], "MissingStartTime", 400),
            (vec![("DBInstanceId", &id), start], "MissingEndTime", 400),
            (
                vec![("DBInstanceId", &id), ("StartTime", "yesterday"), end],
                "InvalidParameter",
                400,
            ),
            (
                vec![
                    ("DBInstanceId", &id),
                    ("StartTime", "2026-01-03T00:00Z"),
                    end,
                ],
                "InvalidParameter",
                400,
            ),
            (
                vec![("DBInstanceId", &id), start, end, ("PageSize", "10")],
                "InvalidParameter",
                400,
            ),
            (
                vec![("DBInstanceId", &id), start, end, ("PageNumber", "0")],
                "InvalidParameter",
                400,
            ),
            (
                vec![("DBInstanceId", "dds-nope"), start, end],
                "InvalidDBInstanceId.NotFound",
                404,
            ),
        ];
        for (params, code, status) in cases {
            let e = log(&t, &params).await.unwrap_err();
            assert_eq!((e.code(), e.status()), (code, status), "{params:?}");
        }
        let v = log(
            &t,
            &[
                ("DBInstanceId", &id),
                ("StartTime", "2026-01-01T00:00:00Z"),
                end,
            ],
        )
        .await
        .unwrap();
        assert_eq!(v["TotalCount"], 0);
    }
}
