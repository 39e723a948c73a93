"""SwitchDBInstanceHA and RestartNode end to end, through the official Python SDKs (Tea, V3 signatures;
legacy aliyun-python-sdk-core + aliyun-python-sdk-dds, V1) against a real ddsd.

What a user relies on:
- right after `SwitchDBInstanceHA` the instance reads `HASwitching` (`NodeRestarting` after `RestartNode`)
  and a second call is refused with `OperationDenied.DBInstanceStatus`;
- at the end the instance is `Running`, `DescribeReplicaSetRole` and `DescribeRoleZoneInfo` name another
  primary (of the switched shard only, on a sharded cluster), and by the
  simulated fleet's ground truth (`DdsdDescribeOperations`) exactly one election happened and no process
  restarted; `RestartNode` restarted exactly the one member (a primary after handing over);
- refusals come with the vendor's codes and change nothing: `InvalidSwitchType` (bad `SwitchMode`),
  `HaStatusNotSupport` (no electable secondary among `RoleIds`), `MissingNodeId` (sharded cluster),
  `InvalidParameter` (a `NodeId` / `RoleId` that is not the instance's), `MissingRoleId`.
"""

from __future__ import annotations

import pytest
from aliyunsdkdds.request.v20151201.DescribeRoleZoneInfoRequest import DescribeRoleZoneInfoRequest as LegacyZones
from aliyunsdkdds.request.v20151201.RestartNodeRequest import RestartNodeRequest as LegacyRestartNode
from aliyunsdkdds.request.v20151201.SwitchDBInstanceHARequest import SwitchDBInstanceHARequest as LegacySwitch
from alibabacloud_dds20151201 import models as M

from test_instances import attribute, legacy_json, load, start_fast, tea, wait_status
from test_instances_errors import legacy_expect, tea_expect
from test_upgrade import check_last_operation, operations, pinned_rs, pinned_sharded, running

SPEED = "500"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    factory, d = start_fast(tmp_path_factory, "switch", speed=SPEED)
    yield d
    factory.stop_all()


def roles(d, iid: str) -> dict[str, str]:
    """`ReplicaSetRole` by `RoleId`, checked against the SDK model."""
    r = tea(d).describe_replica_set_role(M.DescribeReplicaSetRoleRequest(dbinstance_id=iid))
    load(M.DescribeReplicaSetRoleResponseBody, r.body.to_map())
    return {s.role_id: s.replica_set_role for s in r.body.replica_sets.replica_set}


def primary_of(d, iid: str) -> str:
    [p] = [k for k, v in roles(d, iid).items() if v == "Primary"]
    return p


def zone_primaries(d, iid: str, v1: bool = False) -> dict[str, str]:
    """`DescribeRoleZoneInfo`'s primary `RoleId` by `InsName` (mongos left out), the body loaded into
    the SDK model; through the legacy V1 SDK when `v1`."""
    if v1:
        req = LegacyZones()
        req.set_DBInstanceId(iid)
        body = legacy_json(d, req)
    else:
        r = tea(d).describe_role_zone_info(M.DescribeRoleZoneInfoRequest(dbinstance_id=iid))
        assert r.status_code == 200
        body = r.body.to_map()
    infos = load(M.DescribeRoleZoneInfoResponseBody, body).zone_infos.zone_info
    assert infos and all(i.zone_id and i.role_id for i in infos)
    out: dict[str, str] = {}
    for i in infos:
        if i.node_type != "mongos" and i.role_type == "Primary":
            assert i.ins_name not in out, f"two primaries in {i.ins_name}"
            out[i.ins_name] = i.role_id
    return out


def check_switch(d, iid: str) -> dict:
    """The newest operation is a succeeded switch: one election per replica set it touched, nobody
    restarted (ground truth)."""
    op = check_last_operation(d, iid, "SwitchDBInstanceHA", restarted=set())
    elections = sorted(rs["Elections"] for rs in op["Simulation"]["ReplicaSets"])
    assert elections[-1] == 1 and sum(elections) == 1, op["Simulation"]["ReplicaSets"]
    return op


def test_tea_v3_switches_a_replica_set_primary(server):
    rs = pinned_rs(server)
    running(server, rs)
    before = primary_of(server, rs)
    hidden_or_secondaries = [k for k, v in roles(server, rs).items() if v != "Primary"]
    assert hidden_or_secondaries

    # Refusals first: nothing changes.
    tea_expect(lambda: tea(server).switch_dbinstance_ha(M.SwitchDBInstanceHARequest(dbinstance_id=rs, switch_mode=2)),
               "InvalidSwitchType", 400)
    # Only the primary named: nobody to hand over to.
    tea_expect(lambda: tea(server).switch_dbinstance_ha(M.SwitchDBInstanceHARequest(dbinstance_id=rs, role_ids=before)),
               "HaStatusNotSupport", 400)
    tea_expect(lambda: tea(server).switch_dbinstance_ha(M.SwitchDBInstanceHARequest(dbinstance_id=rs, role_ids="nobody")),
               "InvalidParameter", 400)
    tea_expect(lambda: tea(server).switch_dbinstance_ha(M.SwitchDBInstanceHARequest(dbinstance_id="dds-bpnothere0000000")),
               "InvalidDBInstanceId.NotFound", 404)
    assert attribute(server, rs).dbinstance_status == "Running"
    assert [o["Action"] for o in operations(server, rs)] == ["CreateDBInstance"]
    assert zone_primaries(server, rs) == {rs: before}

    r = tea(server).switch_dbinstance_ha(M.SwitchDBInstanceHARequest(
        dbinstance_id=rs, role_ids=",".join([before] + hidden_or_secondaries), switch_mode=0))
    assert r.status_code == 200
    load(M.SwitchDBInstanceHAResponseBody, r.body.to_map())
    assert attribute(server, rs).dbinstance_status == "HASwitching"
    tea_expect(lambda: tea(server).switch_dbinstance_ha(M.SwitchDBInstanceHARequest(dbinstance_id=rs)),
               "OperationDenied.DBInstanceStatus", 403)
    wait_status(server, rs, "Running")
    after = primary_of(server, rs)
    assert after != before
    assert zone_primaries(server, rs) == {rs: after}
    op = check_switch(server, rs)
    assert op["RoleIds"].split(",")[0] == before

    # And back again, over V1 signatures from the Tea SDK.
    r = tea(server, v1=True).switch_dbinstance_ha(M.SwitchDBInstanceHARequest(dbinstance_id=rs))
    load(M.SwitchDBInstanceHAResponseBody, r.body.to_map())
    wait_status(server, rs, "Running")
    assert primary_of(server, rs) != after
    check_switch(server, rs)


def legacy_switch(iid: str, **params) -> LegacySwitch:
    req = LegacySwitch()
    req.set_DBInstanceId(iid)
    for k, v in params.items():
        req.add_query_param(k, v)
    return req


def test_legacy_core_v1_switches_one_shard_of_a_sharded_cluster(server):
    sh = pinned_sharded(server)
    running(server, sh)
    a = attribute(server, sh)
    shard = a.shard_list.shard_attribute[1].node_id
    other = a.shard_list.shard_attribute[0].node_id
    mongos = a.mongos_list.mongos_attribute[0].node_id
    legacy_expect(server, legacy_switch(sh), "MissingNodeId", 400)
    legacy_expect(server, legacy_switch(sh, NodeId=mongos), "InvalidParameter", 400, "NodeId")
    legacy_expect(server, legacy_switch(sh, NodeId=shard, SwitchMode="3"), "InvalidSwitchType", 400)
    assert attribute(server, sh).dbinstance_status == "Running"
    # Who is primary where: every shard and the config server, over V1 then V3.
    before = zone_primaries(server, sh, v1=True)
    assert before == zone_primaries(server, sh)
    assert {shard, other} <= set(before) and len(before) == len(a.shard_list.shard_attribute) + 1, before

    body = legacy_json(server, legacy_switch(sh, NodeId=shard, SwitchMode="0"))
    assert set(body) == {"RequestId"}
    assert attribute(server, sh).dbinstance_status == "HASwitching"
    legacy_expect(server, legacy_switch(sh, NodeId=other), "OperationDenied.DBInstanceStatus", 403)
    wait_status(server, sh, "Running")
    op = check_switch(server, sh)
    assert op["NodeId"] == shard
    by_set = {rs["Name"]: rs["Elections"] for rs in op["Simulation"]["ReplicaSets"]}
    assert sum(by_set.values()) == 1, by_set
    after = zone_primaries(server, sh, v1=True)
    assert after[shard] != before[shard]
    assert {k: v for k, v in after.items() if k != shard} == {k: v for k, v in before.items() if k != shard}


def test_restart_node_restarts_one_member_through_both_sdks(server):
    rs = pinned_rs(server)
    sh = pinned_sharded(server)
    running(server, rs, sh)
    p = primary_of(server, rs)
    secondary = next(k for k, v in roles(server, rs).items() if v == "Secondary")

    tea_expect(lambda: tea(server).restart_node(M.RestartNodeRequest(dbinstance_id=rs)), "MissingRoleId", 400)
    tea_expect(lambda: tea(server).restart_node(M.RestartNodeRequest(dbinstance_id=rs, role_id="nobody")),
               "InvalidParameter", 400)
    tea_expect(lambda: tea(server).restart_node(M.RestartNodeRequest(dbinstance_id=sh, role_id=secondary)),
               "MissingNodeId", 400)
    assert attribute(server, rs).dbinstance_status == "Running"

    r = tea(server).restart_node(M.RestartNodeRequest(dbinstance_id=rs, role_id=secondary))
    load(M.RestartNodeResponseBody, r.body.to_map())
    assert attribute(server, rs).dbinstance_status == "NodeRestarting"
    tea_expect(lambda: tea(server).restart_node(M.RestartNodeRequest(dbinstance_id=rs, role_id=p)),
               "OperationDenied.DBInstanceStatus", 403)
    wait_status(server, rs, "Running")
    op = check_last_operation(server, rs, "RestartNode", restarted={secondary})
    assert op["RoleId"] == secondary
    assert primary_of(server, rs) == p

    # The primary: handed over first (one election), then restarted.
    r = tea(server).restart_node(M.RestartNodeRequest(dbinstance_id=rs, node_id=rs, role_id=p, switch_mode="0"))
    load(M.RestartNodeResponseBody, r.body.to_map())
    wait_status(server, rs, "Running")
    op = check_last_operation(server, rs, "RestartNode", restarted={p})
    assert op["Simulation"]["ReplicaSets"][0]["Elections"] == 1
    assert primary_of(server, rs) != p

    # Legacy V1: one mongos of the sharded cluster (its RoleId is its own node id).
    mongos = attribute(server, sh).mongos_list.mongos_attribute[1].node_id
    req = LegacyRestartNode()
    req.set_DBInstanceId(sh)
    req.set_NodeId(mongos)
    req.set_RoleId("somebody-else")
    legacy_expect(server, req, "InvalidParameter", 400, "RoleId")
    req.set_RoleId(mongos)
    body = legacy_json(server, req)
    assert set(body) == {"RequestId"}
    assert attribute(server, sh).dbinstance_status == "NodeRestarting"
    wait_status(server, sh, "Running")
    op = check_last_operation(server, sh, "RestartNode", restarted={mongos})
    assert (op["NodeId"], op["RoleId"]) == (mongos, mongos)


def switch_log(d, iid: str, v1: bool = False, **kw) -> M.DescribeDBInstanceSwitchLogResponseBody:
    req = M.DescribeDBInstanceSwitchLogRequest(
        dbinstance_id=iid, start_time=kw.pop("start_time", "2000-01-01T00:00Z"),
        end_time=kw.pop("end_time", "2099-12-31T23:59Z"), **kw)
    r = tea(d, v1=v1).describe_dbinstance_switch_log(req)
    assert r.status_code == 200
    return load(M.DescribeDBInstanceSwitchLogResponseBody, r.body.to_map())


def test_switch_log_shows_every_switch_through_both_sdks(server):
    rs = pinned_rs(server)
    running(server, rs)
    empty = switch_log(server, rs)
    assert (empty.total_count, empty.log_items, empty.page_number, empty.page_size) == (0, [], 1, 30)

    tea(server).switch_dbinstance_ha(M.SwitchDBInstanceHARequest(dbinstance_id=rs))
    wait_status(server, rs, "Running")
    p = primary_of(server, rs)
    tea(server).restart_node(M.RestartNodeRequest(dbinstance_id=rs, role_id=p))
    wait_status(server, rs, "Running")

    body = switch_log(server, rs, page_size=50)
    assert body.dbinstance_id == rs and body.total_count == 2 and body.page_size == 50
    assert [i.switch_code for i in body.log_items] == ["OPERATION_AND_MAINTENANCE", "USER_CONSOLE_OPERATION"]
    for i in body.log_items:
        assert (i.node_id, i.switch_status) == (rs, "1")
        assert len(i.switch_time) == 20 and i.switch_time.endswith("Z"), i.switch_time
    assert body.log_items[0].switch_time >= body.log_items[1].switch_time
    page2 = switch_log(server, rs, page_number=2, v1=True)
    assert (page2.total_count, page2.log_items) == (2, [])
    assert switch_log(server, rs, end_time="2000-01-02T00:00Z").total_count == 0

    tea_expect(lambda: tea(server).describe_dbinstance_switch_log(M.DescribeDBInstanceSwitchLogRequest(
        dbinstance_id=rs, start_time="2026-01-01T00:00Z", end_time="2026-01-02T00:00Z", page_size=10)),
        "InvalidParameter", 400)
    tea_expect(lambda: tea(server).describe_dbinstance_switch_log(M.DescribeDBInstanceSwitchLogRequest(
        dbinstance_id=rs, end_time="2026-01-02T00:00Z")), "MissingStartTime", 400)

    from aliyunsdkdds.request.v20151201.DescribeDBInstanceSwitchLogRequest import (
        DescribeDBInstanceSwitchLogRequest as LegacySwitchLog,
    )

    req = LegacySwitchLog()
    req.set_DBInstanceId(rs)
    req.set_StartTime("2000-01-01T00:00Z")
    req.set_EndTime("2099-12-31T23:59Z")
    body = legacy_json(server, req)
    load(M.DescribeDBInstanceSwitchLogResponseBody, body)
    assert body["TotalCount"] == 2
    req.set_EndTime("1999-01-01T00:00Z")
    legacy_expect(server, req, "InvalidParameter", 400, "EndTime")
