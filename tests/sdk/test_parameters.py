"""DescribeParameterTemplates, DescribeParameters, ModifyParameters and
DescribeParameterModificationHistory end to end through the official Python SDKs (Tea, V3 signatures;
legacy aliyun-python-sdk-core + aliyun-python-sdk-dds, V1) against a real ddsd.

What a user relies on:
- the templates and the instance's parameters load into the SDK's models, with the documented set
  (docs/parameters.md) per engine and role;
- a change that needs no restart applies at once (configured and running), with no operation;
- a change that needs a restart runs one rolling restart (status `Rebooting`, or `NodeRestarting` for
  one node of a sharded cluster) with the restart's gates: by the simulated fleet's ground truth every
  process of the scope restarted exactly once; the new value runs once it finished;
- unknown names, values out of range and the other refusals carry the vendor's codes and change
  nothing; the history lists every change with its old and new value.
"""

from __future__ import annotations

import json

import pytest
from aliyunsdkdds.request.v20151201.DescribeParameterModificationHistoryRequest import (
    DescribeParameterModificationHistoryRequest as LegacyHistory,
)
from aliyunsdkdds.request.v20151201.DescribeParameterTemplatesRequest import (
    DescribeParameterTemplatesRequest as LegacyTemplates,
)
from aliyunsdkdds.request.v20151201.DescribeParametersRequest import DescribeParametersRequest as LegacyDescribe
from aliyunsdkdds.request.v20151201.ModifyParametersRequest import ModifyParametersRequest as LegacyModify
from alibabacloud_dds20151201 import models as M

from test_instances import attribute, legacy_json, load, start_fast, tea, wait_status
from test_instances_errors import legacy_expect, tea_expect
from test_upgrade import check_last_operation, operations, pinned_rs, pinned_sharded, running

ALL_TIME = {"start_time": "2000-01-01T00:00Z", "end_time": "2099-12-31T23:59Z"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    factory, d = start_fast(tmp_path_factory, "parameters", speed="500")
    d.fleet = None
    yield d
    factory.stop_all()


def templates(d, v1: bool = False, **kw) -> M.DescribeParameterTemplatesResponseBody:
    r = tea(d, v1=v1).describe_parameter_templates(M.DescribeParameterTemplatesRequest(engine="mongodb", **kw))
    assert r.status_code == 200
    return load(M.DescribeParameterTemplatesResponseBody, r.body.to_map())


def described(d, iid: str, **kw) -> M.DescribeParametersResponseBody:
    r = tea(d).describe_parameters(M.DescribeParametersRequest(dbinstance_id=iid, **kw))
    return load(M.DescribeParametersResponseBody, r.body.to_map())


def value(d, iid: str, name: str, **kw) -> tuple[str, str]:
    """(configured, running) value of one parameter."""
    b = described(d, iid, **kw)
    [c] = [p.parameter_value for p in b.config_parameters.parameter if p.parameter_name == name]
    [r] = [p.parameter_value for p in b.running_parameters.parameter if p.parameter_name == name]
    return c, r


def modify(d, iid: str, params: dict, **kw):
    r = tea(d).modify_parameters(M.ModifyParametersRequest(dbinstance_id=iid, parameters=json.dumps(params), **kw))
    assert r.status_code == 200
    return load(M.ModifyParametersResponseBody, r.body.to_map())


def history(d, iid: str, **kw) -> list[tuple[str, str, str]]:
    r = tea(d).describe_parameter_modification_history(
        M.DescribeParameterModificationHistoryRequest(dbinstance_id=iid, **{**ALL_TIME, **kw}))
    body = load(M.DescribeParameterModificationHistoryResponseBody, r.body.to_map())
    items = body.historical_parameters.historical_parameter
    assert all(i.modify_time.endswith("Z") for i in items)
    return [(i.parameter_name, i.old_parameter_value, i.new_parameter_value) for i in items]


def test_templates_per_engine_and_role(server):
    t = templates(server, engine_version="4.4")
    names = [p.parameter_name for p in t.parameters.template_record]
    assert t.parameter_count == str(len(names)) == "10"
    assert (t.engine, t.engine_version) == ("mongodb", "4.4")
    [conn] = [p for p in t.parameters.template_record if p.parameter_name == "net.maxIncomingConnections"]
    assert (conn.checking_code, conn.parameter_value, conn.force_restart, conn.force_modify) == (
        "[100-65536]", "65536", True, True)
    mongos = templates(server, v1=True, engine_version="4.4", role="mongos")
    assert "replication.oplogSizeMB" not in [p.parameter_name for p in mongos.parameters.template_record]
    older = templates(server, engine_version="4.2", role="normal")
    assert int(older.parameter_count) <= 10
    tea_expect(lambda: tea(server).describe_parameter_templates(
        M.DescribeParameterTemplatesRequest(engine="mongodb", engine_version="9.9")), "InvalidParameter", 400)
    tea_expect(lambda: tea(server).describe_parameter_templates(
        M.DescribeParameterTemplatesRequest(engine="mongodb")), "MissingEngineVersion", 400)

    req = LegacyTemplates()
    req.set_Engine("mongodb")
    req.set_EngineVersion("4.4")
    req.set_Role("db")
    body = legacy_json(server, req)
    assert body["ParameterCount"] == str(len(body["Parameters"]["TemplateRecord"]))


def test_replica_set_changes_at_once_then_through_one_rolling_restart(server):
    rs = pinned_rs(server)
    running(server, rs)
    b = described(server, rs)
    assert (b.engine, b.engine_version) == ("mongodb", "4.4")
    assert {p.character_type for p in b.running_parameters.parameter} == {"normal"}
    assert value(server, rs, "operationProfiling.mode") == ("off", "off")

    # Refusals: nothing changes.
    bad = [
        ({"no.such.parameter": "1"}, "InvalidParameter", 400),
        ({"operationProfiling.mode": "all", "net.maxIncomingConnections": "99"}, "InvalidParameter", 400),
        ({"operationProfiling.slowOpThresholdMs": "-5"}, "InvalidParameter", 400),
        ({}, "InvalidParameter", 400),
    ]
    for params, code, status in bad:
        tea_expect(lambda: tea(server).modify_parameters(M.ModifyParametersRequest(
            dbinstance_id=rs, parameters=json.dumps(params))), code, status)
    tea_expect(lambda: tea(server).modify_parameters(M.ModifyParametersRequest(dbinstance_id=rs)),
               "MissingParameters", 400)
    tea_expect(lambda: tea(server).modify_parameters(M.ModifyParametersRequest(
        dbinstance_id="dds-bpnothere0000000", parameters='{"operationProfiling.mode":"all"}')),
        "InvalidDBInstanceId.NotFound", 404)
    assert value(server, rs, "operationProfiling.mode") == ("off", "off")
    assert history(server, rs) == []
    assert [o["Action"] for o in operations(server, rs)] == ["CreateDBInstance"]

    # No restart needed: at once, no operation.
    modify(server, rs, {"operationProfiling.mode": "slowOp", "operationProfiling.slowOpThresholdMs": "250"})
    assert attribute(server, rs).dbinstance_status == "Running"
    assert value(server, rs, "operationProfiling.slowOpThresholdMs") == ("250", "250")
    assert [o["Action"] for o in operations(server, rs)] == ["CreateDBInstance"]

    # A restart needed: one rolling restart, every member restarted exactly once.
    modify(server, rs, {"net.maxIncomingConnections": "20000"})
    assert attribute(server, rs).dbinstance_status == "Rebooting"
    assert value(server, rs, "net.maxIncomingConnections") == ("20000", "65536")
    tea_expect(lambda: tea(server).modify_parameters(M.ModifyParametersRequest(
        dbinstance_id=rs, parameters='{"operationProfiling.mode":"all"}')), "OperationDenied.DBInstanceStatus", 403)
    wait_status(server, rs, "Running")
    check_last_operation(server, rs, "RestartDBInstance")
    assert value(server, rs, "net.maxIncomingConnections") == ("20000", "20000")

    assert history(server, rs) == [
        ("net.maxIncomingConnections", "65536", "20000"),
        ("operationProfiling.mode", "off", "slowOp"),
        ("operationProfiling.slowOpThresholdMs", "100", "250"),
    ]
    assert history(server, rs, start_time="2000-01-01T00:00Z", end_time="2000-01-02T00:00Z") == []
    tea_expect(lambda: tea(server).describe_parameter_modification_history(
        M.DescribeParameterModificationHistoryRequest(dbinstance_id=rs, start_time="2001-01-01T00:00Z",
                                                      end_time="2000-01-01T00:00Z")), "InvalidParameter", 400)


def test_sharded_cluster_per_node_through_the_legacy_sdk(server):
    sh = pinned_sharded(server)
    running(server, sh)
    a = attribute(server, sh)
    mongos = a.mongos_list.mongos_attribute[0].node_id
    other = a.mongos_list.mongos_attribute[1].node_id
    shard = a.shard_list.shard_attribute[0].node_id

    req = LegacyModify()
    req.set_DBInstanceId(sh)
    req.set_Parameters('{"net.maxIncomingConnections":"5000"}')
    legacy_expect(server, req, "MissingNodeId", 400)
    req.set_NodeId(mongos)
    req.set_CharacterType("db")
    legacy_expect(server, req, "InvalidParameter", 400, "CharacterType")
    req.set_CharacterType("mongos")
    req.set_Parameters('{"replication.oplogSizeMB":"2048"}')
    legacy_expect(server, req, "InvalidParameter", 400, "Parameters")
    assert attribute(server, sh).dbinstance_status == "Running"

    req.set_Parameters('{"net.maxIncomingConnections":"5000"}')
    body = legacy_json(server, req)
    assert set(body) == {"RequestId"}
    assert attribute(server, sh).dbinstance_status == "NodeRestarting"
    wait_status(server, sh, "Running")
    check_last_operation(server, sh, "RestartDBInstance", restarted={mongos})
    assert value(server, sh, "net.maxIncomingConnections", node_id=mongos) == ("5000", "5000")
    assert value(server, sh, "net.maxIncomingConnections", node_id=other) == ("65536", "65536")

    # A shard's parameter that needs no restart: at once, nothing restarted.
    modify(server, sh, {"replication.oplogSizeMB": "20480"}, node_id=shard, character_type="db")
    assert attribute(server, sh).dbinstance_status == "Running"
    assert value(server, sh, "replication.oplogSizeMB", node_id=shard) == ("20480", "20480")

    d = LegacyDescribe()
    d.set_DBInstanceId(sh)
    d.set_NodeId(mongos)
    body = legacy_json(server, d)
    load(M.DescribeParametersResponseBody, body)
    assert {p["CharacterType"] for p in body["RunningParameters"]["Parameter"]} == {"mongos"}

    h = LegacyHistory()
    h.set_DBInstanceId(sh)
    h.set_NodeId(shard)
    h.set_StartTime("2000-01-01T00:00Z")
    h.set_EndTime("2099-12-31T23:59Z")
    body = legacy_json(server, h)
    load(M.DescribeParameterModificationHistoryResponseBody, body)
    assert [(p["ParameterName"], p["OldParameterValue"], p["NewParameterValue"])
            for p in body["HistoricalParameters"]["HistoricalParameter"]] == [
        ("replication.oplogSizeMB", "10240", "20480")]
