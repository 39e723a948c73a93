"""UpgradeDBInstanceKernelVersion and RestartDBInstance end to end, through the official Python SDKs
(Tea, V3 signatures; legacy aliyun-python-sdk-core + aliyun-python-sdk-dds, V1) against a real ddsd.

Instances start on an older kernel through the operator extensions (`DdsdCreateDBInstance`,
`DdsdCreateShardingDBInstance`, admin key). What a user relies on:
- right after the call `DescribeDBInstanceAttribute` reads `MinorVersionUpgrading` (`Rebooting` /
  `NodeRestarting` for a restart), and a second call is refused with `OperationDenied.DBInstanceStatus`;
- a standalone is refused with `OperationDenied.DBInstanceType`, an instance already on the newest kernel
  with `InvalidMinorVersionAlreadyLatest`, a bad `SwitchMode` with `InvalidParameter` — and nothing changes;
- at the end the instance is `Running` and `CurrentKernelVersion` is the newest kernel of its engine
  version at the instance and on every shard, config server and mongos;
- `DdsdDescribeOperations` (docs/operations.md) reports the run, and the simulated fleet's ground truth
  shows every process restarted exactly once and one election per replica set.

The simulated data plane runs at `--sim-speed 500`, so a sharded upgrade takes a second or two.

Every scenario runs twice: on the embedded simulated plane, and on the `mongodb` plane against a
separate `ddsd sim-fleet` process — instances imported (`DdsdImportDBInstance`) and driven through
MongoDB's wire protocol and the hosts' agents, the ground truth read from the fleet. The standalone
scenario is the embedded plane's only: the `mongodb` plane imports deployments, it does not create them.
"""

from __future__ import annotations

import pytest
from aliyunsdkdds.request.v20151201.RestartDBInstanceRequest import RestartDBInstanceRequest as LegacyRestart
from aliyunsdkdds.request.v20151201.UpgradeDBInstanceKernelVersionRequest import (
    UpgradeDBInstanceKernelVersionRequest as LegacyUpgrade,
)
from alibabacloud_dds20151201 import models as M

from conftest import DdsdFactory
from fleet import MONGODB_FLEET_SPEED, Fleet, check_invariants, import_deployment, start_mongodb_plane
from test_instances import REGION, attribute, legacy, legacy_json, legacy_prepare, load, start_fast, tea, tea_call, wait_status
from test_instances_errors import legacy_expect, tea_expect

SPEED = "500"
OLD_44 = "mongodb_20211020_4.4.6"  # the oldest catalogued 4.4 kernel


@pytest.fixture(scope="module", params=["sim", "mongodb"])
def server(request, tmp_path_factory):
    if request.param == "sim":
        factory, d = start_fast(tmp_path_factory, "upgrade", speed=SPEED)
        d.fleet = None
        yield d
        factory.stop_all()
        return
    base = tmp_path_factory.mktemp("upgrade-mongodb")
    fleet = Fleet(base / "fleet", base / "fleet" / "data", MONGODB_FLEET_SPEED).start()
    factory = DdsdFactory(base)
    d = start_mongodb_plane(factory)
    d.fleet = fleet
    yield d
    factory.stop_all()
    fleet.stop()


def admin(d) -> tuple[str, str]:
    assert d.admin_key_id, "the harness read the admin key"
    return d.admin_key_id, d.admin_key_secret


def newest_44(d) -> str:
    r = tea(d).describe_kernel_release_notes(M.DescribeKernelReleaseNotesRequest(kernel_version=OLD_44))
    later = [n.kernel_version for n in r.body.release_notes.release_note]
    assert later, "the catalog has 4.4 kernels newer than the pinned one"
    return later[-1]


def pinned_rs(d) -> str:
    if d.fleet:
        return import_deployment(d, d.fleet, d.fleet.create("replicate", OLD_44))
    body = tea_call(d, "DdsdCreateDBInstance", {
        "RegionId": REGION, "EngineVersion": "4.4", "DBInstanceClass": "dds.mongo.mid",
        "DBInstanceStorage": "20", "KernelVersion": OLD_44}, key=admin(d))
    return body["DBInstanceId"]


def pinned_sharded(d, shards: int = 2) -> str:
    if d.fleet:
        return import_deployment(d, d.fleet, d.fleet.create("sharding", OLD_44, Shards=shards))
    q = {"RegionId": REGION, "Engine": "MongoDB", "EngineVersion": "4.4", "KernelVersion": OLD_44,
         "ConfigServer.1.Class": "dds.cs.mid", "ConfigServer.1.Storage": "20",
         "Mongos.1.Class": "dds.mongos.mid", "Mongos.2.Class": "dds.mongos.mid"}
    for i in range(1, shards + 1):
        q[f"ReplicaSet.{i}.Class"] = "dds.shard.mid"
        q[f"ReplicaSet.{i}.Storage"] = "20"
    return tea_call(d, "DdsdCreateShardingDBInstance", q, key=admin(d))["DBInstanceId"]


def running(d, *ids: str) -> None:
    for i in ids:
        wait_status(d, i, "Running")


def kernels(a) -> dict[str, str]:
    """Every CurrentKernelVersion the attribute shows: the instance's and each node's."""
    out = {"instance": a.current_kernel_version}
    for s in (a.shard_list.shard_attribute if a.shard_list else []):
        out[s.node_id] = s.current_kernel_version
    for c in (a.configserver_list.configserver_attribute if a.configserver_list else []):
        out[c.node_id] = c.current_kernel_version
    for m in (a.mongos_list.mongos_attribute if a.mongos_list else []):
        out[m.node_id] = m.current_kernel_version
    return out


def operations(d, instance_id: str) -> list[dict]:
    body = tea_call(d, "DdsdDescribeOperations", {"DBInstanceId": instance_id})
    assert body["DBInstanceId"] == instance_id
    return body["Operations"]["Operation"]


def check_last_operation(d, instance_id: str, action: str, restarted: set[str] | None = None) -> dict:
    """The newest operation succeeded; by the simulation's ground truth each process in `restarted`
    (all when None) restarted exactly once during it, the others not at all, with at most one election
    per replica set and the balancer as it was."""
    op = operations(d, instance_id)[0]
    assert (op["Action"], op["Status"]) == (action, "Succeeded"), op
    assert op["Report"]["Outcome"] == "Succeeded"
    if d.fleet:
        # The deployment's clock is the fleet's: the report's times are on it.
        report = op["Report"]
        truth = d.fleet.truth(d.fleet.deployments[instance_id]["DeploymentId"], report["StartedMs"],
                              report["FinishedMs"])
        check_invariants(truth, restarted)
        return op
    sim = op["Simulation"]
    for p in sim["Processes"]:
        want = 1 if restarted is None or p["NodeId"] in restarted else 0
        assert p["Restarts"] == want, p
    for rs in sim["ReplicaSets"]:
        assert rs["Elections"] <= 1, rs
    assert sim["BalancerModeBefore"] == sim["BalancerModeAfter"]
    assert sim["PrimaryStopAttempts"] == 0
    return op


def test_tea_v3_upgrades_a_replica_set_and_a_sharded_cluster(server):
    target = newest_44(server)
    rs, sh = pinned_rs(server), pinned_sharded(server)
    running(server, rs, sh)
    for iid in (rs, sh):
        before = kernels(attribute(server, iid))
        assert set(before.values()) == {OLD_44}, before

        r = tea(server).upgrade_dbinstance_kernel_version(M.UpgradeDBInstanceKernelVersionRequest(dbinstance_id=iid))
        assert r.status_code == 200
        load(M.UpgradeDBInstanceKernelVersionResponseBody, r.body.to_map())
        # Status and operation are written in one transaction: the very next read sees it.
        assert attribute(server, iid).dbinstance_status == "MinorVersionUpgrading"
        tea_expect(
            lambda: tea(server).upgrade_dbinstance_kernel_version(M.UpgradeDBInstanceKernelVersionRequest(dbinstance_id=iid)),
            "OperationDenied.DBInstanceStatus", 403,
        )
        progress = operations(server, iid)[0]
        assert progress["Action"] == "UpgradeDBInstanceKernelVersion"
        assert progress["TargetKernelVersion"] == target

    for iid in (rs, sh):
        wait_status(server, iid, "Running")
        a = attribute(server, iid)
        after = kernels(a)
        assert set(after.values()) == {target}, after
        op = check_last_operation(server, iid, "UpgradeDBInstanceKernelVersion")
        for rs_report in op["Report"]["ReplicaSets"]:
            assert rs_report["Elections"] == 1
            assert all(m["Restarted"] and m["DowntimeMs"] > 0 for m in rs_report["Members"]), rs_report
    a = attribute(server, sh)
    assert len(a.shard_list.shard_attribute) == 2
    assert len(a.mongos_list.mongos_attribute) == 2
    assert len(a.configserver_list.configserver_attribute) == 1

    # On the newest kernel now: nothing to do, and the refusal says so.
    tea_expect(
        lambda: tea(server, v1=True).upgrade_dbinstance_kernel_version(M.UpgradeDBInstanceKernelVersionRequest(dbinstance_id=rs)),
        "InvalidMinorVersionAlreadyLatest", 400,
    )


def legacy_upgrade(iid: str, switch_mode: str | None = None) -> LegacyUpgrade:
    req = LegacyUpgrade()
    req.set_DBInstanceId(iid)
    if switch_mode is not None:
        req.set_SwitchMode(switch_mode)
    return req


def legacy_attribute(d, iid: str) -> dict:
    from aliyunsdkdds.request.v20151201.DescribeDBInstanceAttributeRequest import DescribeDBInstanceAttributeRequest

    req = DescribeDBInstanceAttributeRequest()
    req.set_DBInstanceId(iid)
    return legacy_json(d, req)["DBInstances"]["DBInstance"][0]


def test_legacy_core_v1_upgrades_a_sharded_cluster_and_a_replica_set(server):
    target = newest_44(server)
    sh, rs = pinned_sharded(server, shards=3), pinned_rs(server)
    running(server, sh, rs)
    for iid in (sh, rs):
        legacy_expect(server, legacy_upgrade(iid, "2"), "InvalidParameter", 400, "SwitchMode")
        body = legacy_json(server, legacy_upgrade(iid, "0"))
        assert set(body) == {"RequestId"}
        assert legacy_attribute(server, iid)["DBInstanceStatus"] == "MinorVersionUpgrading"
        legacy_expect(server, legacy_upgrade(iid), "OperationDenied.DBInstanceStatus", 403)
    for iid in (sh, rs):
        wait_status(server, iid, "Running")
        a = legacy_attribute(server, iid)
        assert a["CurrentKernelVersion"] == target
        for s in a.get("ShardList", {}).get("ShardAttribute", []):
            assert s["CurrentKernelVersion"] == target, s
        for c in a.get("ConfigserverList", {}).get("ConfigserverAttribute", []):
            assert c["CurrentKernelVersion"] == target, c
        for m in a.get("MongosList", {}).get("MongosAttribute", []):
            assert m["CurrentKernelVersion"] == target, m
        check_last_operation(server, iid, "UpgradeDBInstanceKernelVersion")
    assert len(legacy_attribute(server, sh)["ShardList"]["ShardAttribute"]) == 3


def test_standalone_and_unknown_instances_are_refused_and_nothing_changes(server):
    if server.fleet:
        pytest.skip("the mongodb plane imports replica sets and sharded clusters; it creates nothing")
    body = tea(server).create_dbinstance(M.CreateDBInstanceRequest(
        region_id=REGION, engine="MongoDB", engine_version="4.0", dbinstance_class="dds.sn2.standard.1",
        dbinstance_storage=20, replication_factor="1"))
    standalone = body.body.dbinstance_id
    wait_status(server, standalone, "Running")
    before = attribute(server, standalone).to_map()
    tea_expect(
        lambda: tea(server).upgrade_dbinstance_kernel_version(M.UpgradeDBInstanceKernelVersionRequest(dbinstance_id=standalone)),
        "OperationDenied.DBInstanceType", 403,
    )
    legacy_expect(server, legacy_upgrade(standalone), "OperationDenied.DBInstanceType", 403)
    legacy_expect(server, legacy_upgrade("dds-bpnothere0000000"), "InvalidDBInstanceId.NotFound", 404)
    assert attribute(server, standalone).to_map() == before
    assert [o["Action"] for o in operations(server, standalone)] == ["CreateDBInstance"]


def test_restart_whole_instance_then_one_mongos_through_both_sdks(server):
    sh = pinned_sharded(server)
    running(server, sh)
    r = tea(server).restart_dbinstance(M.RestartDBInstanceRequest(dbinstance_id=sh))
    load(M.RestartDBInstanceResponseBody, r.body.to_map())
    assert attribute(server, sh).dbinstance_status == "Rebooting"
    tea_expect(lambda: tea(server).restart_dbinstance(M.RestartDBInstanceRequest(dbinstance_id=sh)),
               "OperationDenied.DBInstanceStatus", 403)
    wait_status(server, sh, "Running")
    check_last_operation(server, sh, "RestartDBInstance")
    assert set(kernels(attribute(server, sh)).values()) == {OLD_44}, "a restart keeps every kernel"

    mongos = attribute(server, sh).mongos_list.mongos_attribute[1].node_id
    req = LegacyRestart()
    req.set_DBInstanceId(sh)
    req.set_NodeId("nothere")
    legacy_expect(server, req, "InvalidParameter", 400, "NodeId")
    req.set_NodeId(mongos)
    legacy(server).do_action_with_exception(legacy_prepare(server, req))
    assert attribute(server, sh).dbinstance_status == "NodeRestarting"
    wait_status(server, sh, "Running")
    check_last_operation(server, sh, "RestartDBInstance", restarted={mongos})
