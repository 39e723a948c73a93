"""ModifyDBInstanceSpec and ModifyNodeSpec end to end, through the official Python SDKs (Tea, V3 signatures;
legacy aliyun-python-sdk-core + aliyun-python-sdk-dds, V1) against a real ddsd.

What a user relies on:
- right after the call the instance reads `DBInstanceClassChanging`, and a second change is refused with
  `OperationDenied.DBInstanceStatus`;
- the change is a rolling restart of exactly the processes in scope: by the simulated fleet's ground truth
  (`DdsdDescribeOperations`) each of them restarted exactly once, every other process not at all, at most
  one election per replica set;
- at the end the instance is `Running` and `DescribeDBInstanceAttribute` shows the new class and storage
  (of the instance, of the shard, of the mongos), every field checked against the SDK's models;
- refusals come with the vendor's codes and change nothing; a `ModifyNodeSpec` retried with its
  `ClientToken` answers the same `OrderId`.
"""

from __future__ import annotations

import pytest
from aliyunsdkdds.request.v20151201.DescribeAvailableResourceRequest import (
    DescribeAvailableResourceRequest as LegacyAvailable,
)
from aliyunsdkdds.request.v20151201.DescribeDBInstanceSpecInfoRequest import (
    DescribeDBInstanceSpecInfoRequest as LegacySpecInfo,
)
from aliyunsdkdds.request.v20151201.EvaluateResourceRequest import EvaluateResourceRequest as LegacyEvaluate
from aliyunsdkdds.request.v20151201.ModifyDBInstanceSpecRequest import (
    ModifyDBInstanceSpecRequest as LegacyInstanceSpec,
)
from aliyunsdkdds.request.v20151201.ModifyNodeSpecRequest import ModifyNodeSpecRequest as LegacyNodeSpec
from alibabacloud_dds20151201 import models as M

from conftest import DdsdFactory
from test_instances import REGION, attribute, create_rs, legacy_json, load, start_fast, tea, wait_status
from test_instances_errors import legacy_expect, tea_expect
from test_tasks import tasks
from test_upgrade import check_last_operation, operations, pinned_rs, pinned_sharded, running

SPEED = "500"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    factory, d = start_fast(tmp_path_factory, "spec", speed=SPEED)
    yield d
    factory.stop_all()


def order_id(body) -> str:
    assert body.order_id.isdigit() and len(body.order_id) == 15, body.order_id
    return body.order_id


def members_of(op: dict, replica_set: str) -> set[str]:
    return {p["NodeId"] for p in op["Simulation"]["Processes"] if p["ReplicaSet"] == replica_set}


def test_tea_v3_changes_a_replica_set_class_by_one_rolling_restart(server):
    rs = pinned_rs(server)
    running(server, rs)

    # Refusals first: nothing changes.
    spec = lambda **kw: tea(server).modify_dbinstance_spec(M.ModifyDBInstanceSpecRequest(**kw))  # noqa: E731
    tea_expect(lambda: spec(dbinstance_id=rs), "InvalidParameter", 400)
    tea_expect(lambda: spec(dbinstance_id=rs, dbinstance_class="dds.nope"), "InvalidDBInstanceClass.NotFound", 404)
    tea_expect(lambda: spec(dbinstance_id=rs, dbinstance_class="dds.mongos.mid"),
               "InvalidDBInstanceClass.NotFound", 404)
    tea_expect(lambda: spec(dbinstance_id=rs, dbinstance_class="dds.mongo.mid", dbinstance_storage="20"),
               "InvalidParameter", 400)
    tea_expect(lambda: spec(dbinstance_id=rs, dbinstance_storage="10"), "InvalidParameter", 400)
    tea_expect(lambda: spec(dbinstance_id=rs, dbinstance_storage="30", effective_time="Tomorrow"),
               "InvalidParameter", 400)
    tea_expect(lambda: spec(dbinstance_id="dds-bpnothere0000000", dbinstance_class="dds.mongo.large"),
               "InvalidDBInstanceId.NotFound", 404)
    tea_expect(lambda: tea(server).modify_node_spec(M.ModifyNodeSpecRequest(
        dbinstance_id=rs, node_id=rs, node_class="dds.shard.large")), "OperationDenied.DBInstanceType", 403)
    a = attribute(server, rs)
    assert (a.dbinstance_status, a.dbinstance_class, a.dbinstance_storage) == ("Running", "dds.mongo.mid", 20)
    assert [o["Action"] for o in operations(server, rs)] == ["CreateDBInstance"]

    r = tea(server).modify_dbinstance_spec(M.ModifyDBInstanceSpecRequest(
        dbinstance_id=rs, dbinstance_class="dds.mongo.standard", dbinstance_storage="30",
        effective_time="Immediately"))
    assert r.status_code == 200
    order_id(load(M.ModifyDBInstanceSpecResponseBody, r.body.to_map()))
    a = attribute(server, rs)
    assert a.dbinstance_status == "DBInstanceClassChanging"
    assert a.dbinstance_class == "dds.mongo.mid"  # not before it succeeded
    tea_expect(lambda: spec(dbinstance_id=rs, dbinstance_class="dds.mongo.large"),
               "OperationDenied.DBInstanceStatus", 403)
    wait_status(server, rs, "Running")
    op = check_last_operation(server, rs, "ModifyDBInstanceSpec")
    assert (op["TargetClass"], op["TargetStorage"]) == ("dds.mongo.standard", 30)
    assert len(op["Simulation"]["Processes"]) == 3
    a = attribute(server, rs)
    assert (a.dbinstance_class, a.dbinstance_storage) == ("dds.mongo.standard", 30)

    # Legacy V1: storage only, the class stays.
    req = LegacyInstanceSpec()
    req.set_DBInstanceId(rs)
    req.set_DBInstanceStorage("40")
    body = legacy_json(server, req)
    assert set(body) == {"RequestId", "OrderId"}
    load(M.ModifyDBInstanceSpecResponseBody, body)
    assert attribute(server, rs).dbinstance_status == "DBInstanceClassChanging"
    wait_status(server, rs, "Running")
    check_last_operation(server, rs, "ModifyDBInstanceSpec")
    a = attribute(server, rs)
    assert (a.dbinstance_class, a.dbinstance_storage) == ("dds.mongo.standard", 40)
    req.set_DBInstanceStorage("30")
    legacy_expect(server, req, "InvalidParameter", 400, "DBInstanceStorage")


def test_node_spec_changes_one_shard_then_one_mongos(server):
    sh = pinned_sharded(server)
    running(server, sh)
    a = attribute(server, sh)
    shard = a.shard_list.shard_attribute[1].node_id
    other = a.shard_list.shard_attribute[0].node_id
    mongos = a.mongos_list.mongos_attribute[0].node_id
    node = lambda **kw: tea(server).modify_node_spec(M.ModifyNodeSpecRequest(dbinstance_id=sh, **kw))  # noqa: E731
    tea_expect(lambda: node(node_class="dds.shard.large"), "MissingNodeId", 400)
    tea_expect(lambda: node(node_id="d-bpnothere0000000", node_class="dds.shard.large"), "InvalidParameter", 400)
    tea_expect(lambda: node(node_id=shard, node_class="dds.mongos.large"), "InvalidDBInstanceClass.NotFound", 404)
    tea_expect(lambda: node(node_id=mongos, node_storage=30), "InvalidParameter", 400)
    tea_expect(lambda: node(node_id=mongos, node_class="dds.mongos.mid"), "InvalidParameter", 400)
    tea_expect(lambda: tea(server).modify_dbinstance_spec(M.ModifyDBInstanceSpecRequest(
        dbinstance_id=sh, dbinstance_class="dds.mongo.large")), "OperationDenied.DBInstanceType", 403)
    assert attribute(server, sh).dbinstance_status == "Running"

    req = M.ModifyNodeSpecRequest(dbinstance_id=sh, node_id=shard, node_class="dds.shard.standard",
                                  node_storage=40, client_token="spec-shard-1")
    r = tea(server).modify_node_spec(req)
    first = order_id(load(M.ModifyNodeSpecResponseBody, r.body.to_map()))
    assert attribute(server, sh).dbinstance_status == "DBInstanceClassChanging"
    # A retry with the token answers the same order; another change is refused while this one runs.
    again = tea(server).modify_node_spec(req)
    assert again.body.order_id == first
    tea_expect(lambda: node(node_id=other, node_class="dds.shard.large"), "OperationDenied.DBInstanceStatus", 403)
    wait_status(server, sh, "Running")
    op = operations(server, sh)[0]
    in_scope = members_of(op, shard)
    assert len(in_scope) == 3
    op = check_last_operation(server, sh, "ModifyNodeSpec", restarted=in_scope)
    assert op["NodeId"] == shard
    assert [o["Action"] for o in operations(server, sh)].count("ModifyNodeSpec") == 1
    # The task center shows it as the vendor's ModifyInsSpec task.
    [task] = tasks(server, instance_id=sh, task_type="ModifyInsSpec").items
    assert (task.status, task.progress, task.task_id) == ("Succeed", 100.0, op["OperationId"])
    assert '"Action":"ModifyNodeSpec"' in task.task_detail.replace(" ", ""), task.task_detail
    a = load(M.DescribeDBInstanceAttributeResponseBody,
             tea(server).describe_dbinstance_attribute(
                 M.DescribeDBInstanceAttributeRequest(dbinstance_id=sh)).body.to_map()).dbinstances.dbinstance[0]
    shards = {s.node_id: s for s in a.shard_list.shard_attribute}
    assert (shards[shard].node_class, shards[shard].node_storage) == ("dds.shard.standard", 40)
    assert (shards[other].node_class, shards[other].node_storage) == ("dds.shard.mid", 20)
    assert a.dbinstance_storage == 60

    # Legacy V1: one mongos; only it restarts.
    lreq = LegacyNodeSpec()
    lreq.set_DBInstanceId(sh)
    lreq.set_NodeId(mongos)
    lreq.set_NodeClass("dds.shard.large")
    legacy_expect(server, lreq, "InvalidDBInstanceClass.NotFound", 404, "NodeClass")
    lreq.set_NodeClass("dds.mongos.standard")
    body = legacy_json(server, lreq)
    assert set(body) == {"RequestId", "OrderId"}
    load(M.ModifyNodeSpecResponseBody, body)
    assert attribute(server, sh).dbinstance_status == "DBInstanceClassChanging"
    wait_status(server, sh, "Running")
    op = check_last_operation(server, sh, "ModifyNodeSpec", restarted={mongos})
    assert (op["NodeId"], op["TargetClass"]) == (mongos, "dds.mongos.standard")
    assert all(rs["Elections"] == 0 for rs in op["Simulation"]["ReplicaSets"])
    classes = {m.node_id: m.node_class for m in attribute(server, sh).mongos_list.mongos_attribute}
    assert classes[mongos] == "dds.mongos.standard"
    assert sorted(classes.values()) == ["dds.mongos.mid", "dds.mongos.standard"]


def test_spec_info_describes_the_classes_a_change_picks_from(server):
    """`DescribeDBInstanceSpecInfo` of the class an instance has and of a dedicated class, through both
    SDKs (model-loaded); an unknown or missing class is refused with the vendor's codes."""
    rs = pinned_rs(server)
    running(server, rs)
    a = attribute(server, rs)
    r = tea(server).describe_dbinstance_spec_info(M.DescribeDBInstanceSpecInfoRequest(
        instance_class=a.dbinstance_class))
    assert r.status_code == 200
    info = load(M.DescribeDBInstanceSpecInfoResponseBody, r.body.to_map())
    assert int(info.cpu) >= 1 and int(info.memory) >= 1
    assert info.description == f"{info.cpu} cores, {info.memory} GB (general-purpose)"

    req = LegacySpecInfo()
    req.set_InstanceClass("mdb.shard.4x.large.d")
    body = legacy_json(server, req)
    legacy = load(M.DescribeDBInstanceSpecInfoResponseBody, body)
    assert (legacy.cpu, legacy.memory, legacy.description) == ("2", "8", "2 cores, 8 GB (dedicated)")

    tea_expect(lambda: tea(server).describe_dbinstance_spec_info(M.DescribeDBInstanceSpecInfoRequest(
        instance_class="dds.mongo.huge")), "InvalidDBInstanceClass.NotFound", 404)
    tea_expect(lambda: tea(server).describe_dbinstance_spec_info(M.DescribeDBInstanceSpecInfoRequest()),
               "MissingInstanceClass", 400)


def test_available_resource_lists_what_create_accepts(server):
    """`DescribeAvailableResource` through Tea V3 (model-loaded): a replica set created with a zone, class
    and the smallest storage picked from the tree runs with them; the legacy V1 SDK lists a sharded
    cluster's parts, a mongos without storage range; refusals carry the vendor's codes."""
    r = tea(server).describe_available_resource(M.DescribeAvailableResourceRequest(
        region_id=REGION, db_type="normal", engine_version="4.4", replication_factor="5"))
    assert r.status_code == 200
    body = load(M.DescribeAvailableResourceResponseBody, r.body.to_map())
    [normal] = body.supported_dbtypes.supported_dbtype
    assert normal.db_type == "normal"
    zone = normal.available_zones.available_zone[-1]
    [version] = zone.supported_engine_versions.supported_engine_version
    [engine] = version.supported_engines.supported_engine
    [node] = engine.supported_node_types.supported_node_type
    assert (version.version, engine.engine, node.node_type, node.network_types) == ("4.4", "WiredTiger", "5", "VPC")
    pick = node.available_resources.available_resource[-1]
    rng = pick.dbinstance_storage_range
    assert (rng.min, rng.max, rng.step) == (10, 16000, 10)

    iid = create_rs(server, zone_id=zone.zone_id, dbinstance_class=pick.instance_class,
                    dbinstance_storage=rng.min, replication_factor="5")
    wait_status(server, iid, "Running")
    a = attribute(server, iid)
    assert (a.zone_id, a.dbinstance_class, a.dbinstance_storage, a.replication_factor) == (
        zone.zone_id, pick.instance_class, rng.min, "5")

    req = LegacyAvailable()
    req.set_DbType("sharding")
    req.add_query_param("RegionId", REGION)
    legacy = load(M.DescribeAvailableResourceResponseBody, legacy_json(server, req))
    [sharding] = legacy.supported_dbtypes.supported_dbtype
    parts = {n.node_type: n for n in sharding.available_zones.available_zone[0].supported_engine_versions
             .supported_engine_version[0].supported_engines.supported_engine[0].supported_node_types
             .supported_node_type}
    assert set(parts) == {"shard", "configserver", "mongos"}
    assert all(x.dbinstance_storage_range is None for x in parts["mongos"].available_resources.available_resource)
    assert all(x.dbinstance_storage_range.min == 10 for x in parts["shard"].available_resources.available_resource)

    tea_expect(lambda: tea(server).describe_available_resource(M.DescribeAvailableResourceRequest(
        region_id="xx-nowhere-1")), "InvalidRegion.NotFound", 404)
    tea_expect(lambda: tea(server).describe_available_resource(M.DescribeAvailableResourceRequest(
        region_id=REGION, db_type="serverless")), "InvalidParameter", 400)


def free_port_range(n: int) -> int:
    """The first of `n` consecutive ports nothing listens on, below the kernel's ephemeral range."""
    import random
    import socket

    for _ in range(200):
        first = random.randrange(20000, 32000 - n)
        socks = []
        try:
            for p in range(first, first + n):
                s = socket.socket()
                s.bind(("127.0.0.1", p))
                socks.append(s)
            return first
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range")


def test_evaluate_resource_answers_from_the_wire_port_range(tmp_path_factory):
    """`EvaluateResource` (Tea V3 model-loaded, legacy V1) on a ddsd whose simulated processes have five
    wire ports: a 3-member replica set fits and a 7-member one does not; once a 3-member set holds three
    of the ports another does not fit, while a class change of the existing one (no new process) does;
    refusals carry the create actions' codes."""
    factory = DdsdFactory(tmp_path_factory.mktemp("evaluate"))
    first = free_port_range(5)
    d = factory.start(extra_args=["--sim-speed", "500"],
                      extra_config=f"[wire]\nfirst_port = {first}\nlast_port = {first + 4}")
    try:
        def evaluate(**kw) -> str:
            r = tea(d).evaluate_resource(M.EvaluateResourceRequest(
                region_id=REGION, zone_id="cn-hangzhou-h", engine="MongoDB", engine_version="4.4", **kw))
            body = load(M.EvaluateResourceResponseBody, r.body.to_map())
            assert (body.engine, body.engine_version) == ("MongoDB", "4.4")
            return body.dbinstance_available

        assert evaluate(dbinstance_class="dds.mongo.mid") == "1"
        assert evaluate(dbinstance_class="dds.mongo.mid", replication_factor="7") == "0"
        cluster = ('{"ConfigSvrs":[{"Storage":20,"DBInstanceClass":"dds.cs.mid"}],'
                   '"Mongos":[{"DBInstanceClass":"dds.mongos.mid"}],'
                   '"Shards":[{"Storage":20,"DBInstanceClass":"dds.shard.mid"}]}')
        assert evaluate(shards_info=cluster) == "0"

        iid = create_rs(d, zone_id="cn-hangzhou-h")
        wait_status(d, iid, "Running")
        assert evaluate(dbinstance_class="dds.mongo.mid") == "0"
        assert evaluate(dbinstance_class="dds.mongo.standard", dbinstance_id=iid) == "1"

        # A standalone (one process) still fits; as at creation, only on 4.0 and with a standalone class.
        req = LegacyEvaluate()
        for k, v in {"RegionId": REGION, "ZoneId": "cn-hangzhou-h", "EngineVersion": "4.0",
                     "DBInstanceClass": "dds.mongo.mid", "ReplicationFactor": "1"}.items():
            req.add_query_param(k, v)
        legacy_expect(d, req, "InvalidDBInstanceClass.NotFound", 404, "DBInstanceClass")
        req.add_query_param("DBInstanceClass", "dds.sn2.standard.1")
        body = load(M.EvaluateResourceResponseBody, legacy_json(d, req))
        assert (body.dbinstance_available, body.engine_version) == ("1", "4.0")
        req.add_query_param("EngineVersion", "4.4")
        legacy_expect(d, req, "InvalidParameter", 400, "ReplicationFactor")

        tea_expect(lambda: tea(d).evaluate_resource(M.EvaluateResourceRequest(
            region_id=REGION, zone_id="cn-hangzhou-h", engine_version="4.4")), "MissingDBInstanceClass", 400)
        tea_expect(lambda: tea(d).evaluate_resource(M.EvaluateResourceRequest(
            region_id=REGION, zone_id="cn-hangzhou-h", engine_version="4.4", shards_info="{")), "InvalidParameter", 400)
    finally:
        factory.stop_all()
