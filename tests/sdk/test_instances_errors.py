"""Bad input through the official SDKs: the vendor's error code and HTTP status, in the SDKs' own
exceptions, and nothing changes — every test compares the full state of the server's instances
(each one's DescribeDBInstanceAttribute) before and after.

Malformed parameter lists (`ReplicaSet.N` with gaps, N=0, a non-numeric N, a missing Class) are
sent with the legacy core SDK's `add_query_param`, which signs whatever it is given; typed
mistakes go through the Tea SDK's models.
"""

from __future__ import annotations

import json

import pytest
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkdds.request.v20151201.CreateDBInstanceRequest import CreateDBInstanceRequest as LegacyCreate
from aliyunsdkdds.request.v20151201.CreateShardingDBInstanceRequest import (
    CreateShardingDBInstanceRequest as LegacyCreateSharding,
)
from aliyunsdkdds.request.v20151201.DeleteDBInstanceRequest import DeleteDBInstanceRequest as LegacyDelete
from aliyunsdkdds.request.v20151201.DescribeDBInstanceAttributeRequest import (
    DescribeDBInstanceAttributeRequest as LegacyAttribute,
)
from aliyunsdkdds.request.v20151201.DescribeDBInstancesRequest import DescribeDBInstancesRequest as LegacyList
from aliyunsdkdds.request.v20151201.ModifyDBInstanceMaintainTimeRequest import (
    ModifyDBInstanceMaintainTimeRequest as LegacyMaintain,
)
from alibabacloud_dds20151201 import models as M
from alibabacloud_tea_openapi.exceptions import ClientException

from test_instances import (
    REGION,
    create_rs,
    create_sharded,
    legacy,
    legacy_json,
    legacy_prepare,
    start_fast,
    tea,
    wait_status,
)

UNKNOWN = "dds-bpnothere0000000"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    factory, d = start_fast(tmp_path_factory, "instance-errors")
    rs = create_rs(d)
    sh = create_sharded(d)
    for i in (rs, sh):
        wait_status(d, i, "Running")
    d.rs, d.sh = rs, sh
    yield d
    factory.stop_all()


def state(d) -> list[dict]:
    """Every instance's full attribute body (RequestId aside), both listings."""
    ids = []
    for kind in ("replicate", "sharding"):
        req = LegacyList()
        req.set_DBInstanceType(kind)
        req.set_PageSize(100)
        ids += [i["DBInstanceId"] for i in legacy_json(d, req)["DBInstances"]["DBInstance"]]
    out = []
    for i in sorted(ids):
        req = LegacyAttribute()
        req.set_DBInstanceId(i)
        body = legacy_json(d, req)
        body.pop("RequestId")
        out.append(body)
    return out


def legacy_error(d, req) -> ServerException:
    with pytest.raises(ServerException) as info:
        legacy(d).do_action_with_exception(legacy_prepare(d, req))
    e = info.value
    assert e.get_request_id()
    return e


def legacy_expect(d, req, code: str, status: int, mentions: str | None = None) -> None:
    e = legacy_error(d, req)
    assert (e.get_error_code(), e.get_http_status()) == (code, status), e.get_error_msg()
    if mentions:
        assert mentions in e.get_error_msg(), e.get_error_msg()


def tea_expect(call, code: str, status: int) -> ClientException:
    with pytest.raises(ClientException) as info:
        call()
    e = info.value
    assert (e.code, e.status_code) == (code, status), e.message
    assert e.data["RequestId"] == e.request_id
    return e


def rs_request(**params) -> LegacyCreate:
    req = LegacyCreate()
    base = {"EngineVersion": "4.4", "DBInstanceClass": "dds.mongo.mid", "DBInstanceStorage": "20"}
    base.update(params)
    for k, v in base.items():
        if v is not None:
            req.add_query_param(k, v)
    return req


SHARDED_BASE = {
    "Engine": "MongoDB",
    "EngineVersion": "4.4",
    "ReplicaSet.1.Class": "dds.shard.mid",
    "ReplicaSet.1.Storage": "20",
    "ReplicaSet.2.Class": "dds.shard.mid",
    "ReplicaSet.2.Storage": "20",
    "ConfigServer.1.Class": "dds.cs.mid",
    "ConfigServer.1.Storage": "20",
    "Mongos.1.Class": "dds.mongos.mid",
    "Mongos.2.Class": "dds.mongos.mid",
}


def sharded_request(params: dict) -> LegacyCreateSharding:
    req = LegacyCreateSharding()
    for k, v in params.items():
        if v is not None:
            req.add_query_param(k, v)
    return req


def with_(base: dict, drop_prefix: str | None = None, **extra) -> dict:
    out = {k: v for k, v in base.items() if not (drop_prefix and k.startswith(drop_prefix))}
    out.update({k.replace("__", "."): v for k, v in extra.items()})
    return out


def shards(n: int) -> dict:
    out = {}
    for i in range(1, n + 1):
        out[f"ReplicaSet.{i}.Class"] = "dds.shard.mid"
        out[f"ReplicaSet.{i}.Storage"] = "20"
    return out


def mongos(n: int) -> dict:
    return {f"Mongos.{i}.Class": "dds.mongos.mid" for i in range(1, n + 1)}


RS_CASES = [
    ({"DBInstanceClass": "dds.mongo.huge"}, "InvalidDBInstanceClass.NotFound", 404, None),
    ({"DBInstanceClass": "dds.mongos.mid"}, "InvalidDBInstanceClass.NotFound", 404, None),
    ({"DBInstanceClass": None}, "MissingDBInstanceClass", 400, None),
    ({"DBInstanceStorage": "5"}, "InvalidParameter", 400, "DBInstanceStorage"),
    ({"DBInstanceStorage": "25"}, "InvalidParameter", 400, "DBInstanceStorage"),
    ({"DBInstanceStorage": "lots"}, "InvalidParameter", 400, "DBInstanceStorage"),
    ({"EngineVersion": "3.4"}, "InvalidParameter", 400, "EngineVersion"),
    ({"EngineVersion": "9.9"}, "InvalidParameter", 400, "EngineVersion"),
    ({"Engine": "Redis"}, "InvalidParameter", 400, "Engine"),
    ({"ReplicationFactor": "4"}, "InvalidParameter", 400, "ReplicationFactor"),
    ({"ReplicationFactor": "1"}, "InvalidDBInstanceClass.NotFound", 404, None),
    ({"ReadonlyReplicas": "6"}, "InvalidParameter", 400, "ReadonlyReplicas"),
    ({"ZoneId": "cn-beijing-a"}, "InvalidZoneId.NotFound", 404, None),
]


@pytest.mark.parametrize("params,code,status,mentions", RS_CASES, ids=[json.dumps(c[0]) for c in RS_CASES])
def test_bad_replica_set_parameters(server, params, code, status, mentions):
    before = state(server)
    legacy_expect(server, rs_request(**params), code, status, mentions)
    assert state(server) == before


SHARDED_CASES = [
    ("one shard", with_(SHARDED_BASE, "ReplicaSet.2"), "InvalidParameter", 400, "ReplicaSet"),
    ("33 shards", with_(SHARDED_BASE, "ReplicaSet.", **{k.replace(".", "__"): v for k, v in shards(33).items()}),
     "InvalidParameter", 400, "ReplicaSet.33"),
    ("one mongos", with_(SHARDED_BASE, "Mongos.2"), "InvalidParameter", 400, "Mongos"),
    ("33 mongos", with_(SHARDED_BASE, "Mongos.", **{k.replace(".", "__"): v for k, v in mongos(33).items()}),
     "InvalidParameter", 400, "Mongos.33"),
    ("gap", with_(SHARDED_BASE, "ReplicaSet.2", ReplicaSet__3__Class="dds.shard.mid", ReplicaSet__3__Storage="20"),
     "InvalidParameter", 400, "ReplicaSet.2"),
    ("N=0", with_(SHARDED_BASE, ReplicaSet__0__Class="dds.shard.mid"), "InvalidParameter", 400, "ReplicaSet.0.Class"),
    ("non-numeric N", with_(SHARDED_BASE, ReplicaSet__two__Class="dds.shard.mid"), "InvalidParameter", 400,
     "ReplicaSet.two.Class"),
    ("missing Class", with_(SHARDED_BASE, "ReplicaSet.2.Class"), "InvalidParameter", 400, "ReplicaSet.2.Class"),
    ("missing Storage", with_(SHARDED_BASE, "ReplicaSet.1.Storage"), "InvalidParameter", 400, "ReplicaSet.1.Storage"),
    ("unknown field", with_(SHARDED_BASE, ReplicaSet__1__Size="3"), "InvalidParameter", 400, "ReplicaSet.1.Size"),
    ("shard class", with_(SHARDED_BASE, ReplicaSet__1__Class="dds.mongo.mid"), "InvalidDBInstanceClass.NotFound", 404,
     "ReplicaSet.1.Class"),
    ("no config server", with_(SHARDED_BASE, "ConfigServer"), "MissingConfigServer.1.Class", 400, None),
    ("two config servers", with_(SHARDED_BASE, ConfigServer__2__Class="dds.cs.mid", ConfigServer__2__Storage="20"),
     "InvalidParameter", 400, "ConfigServer"),
    ("engine version", with_(SHARDED_BASE, EngineVersion="3.0"), "InvalidParameter", 400, "EngineVersion"),
]


@pytest.mark.parametrize("name,params,code,status,mentions", SHARDED_CASES, ids=[c[0] for c in SHARDED_CASES])
def test_bad_sharded_parameters(server, name, params, code, status, mentions):
    before = state(server)
    legacy_expect(server, sharded_request(params), code, status, mentions)
    assert state(server) == before


def test_typed_mistakes_through_tea(server):
    before = state(server)
    c = tea(server)
    tea_expect(lambda: c.create_dbinstance(M.CreateDBInstanceRequest(
        region_id=REGION, engine_version="4.4", dbinstance_class="dds.mongo.mid", dbinstance_storage=25)),
        "InvalidParameter", 400)
    tea_expect(lambda: c.create_dbinstance(M.CreateDBInstanceRequest(
        region_id=REGION, engine_version="4.4", dbinstance_class="bogus", dbinstance_storage=20)),
        "InvalidDBInstanceClass.NotFound", 404)
    tea_expect(lambda: c.create_sharding_dbinstance(M.CreateShardingDBInstanceRequest(
        region_id=REGION, engine="MongoDB", engine_version="4.4",
        replica_set=[M.CreateShardingDBInstanceRequestReplicaSet(class_="dds.shard.mid", storage=20, readonly_replicas=6)] * 2,
        config_server=[M.CreateShardingDBInstanceRequestConfigServer(class_="dds.cs.mid", storage=20)],
        mongos=[M.CreateShardingDBInstanceRequestMongos(class_="dds.mongos.mid")] * 2)),
        "InvalidParameter", 400)
    assert state(server) == before


@pytest.mark.parametrize("v1", [False, True], ids=["tea-v3", "tea-v1"])
def test_unknown_instance_is_404(server, v1):
    before = state(server)
    c = tea(server, v1)
    for call in (
        lambda: c.describe_dbinstance_attribute(M.DescribeDBInstanceAttributeRequest(dbinstance_id=UNKNOWN)),
        lambda: c.delete_dbinstance(M.DeleteDBInstanceRequest(dbinstance_id=UNKNOWN)),
        lambda: c.describe_available_engine_version(M.DescribeAvailableEngineVersionRequest(dbinstance_id=UNKNOWN)),
        lambda: c.modify_dbinstance_maintain_time(M.ModifyDBInstanceMaintainTimeRequest(
            dbinstance_id=UNKNOWN, maintain_start_time="01:00Z", maintain_end_time="02:00Z")),
    ):
        e = tea_expect(call, "InvalidDBInstanceId.NotFound", 404)
        assert "does not exist" in e.message
    assert state(server) == before


def test_unknown_instance_is_404_legacy(server):
    before = state(server)
    for req in (LegacyAttribute(), LegacyDelete()):
        req.set_DBInstanceId(UNKNOWN)
        legacy_expect(server, req, "InvalidDBInstanceId.NotFound", 404)
    assert state(server) == before


@pytest.mark.parametrize(
    "start,end,bad",
    [
        ("1:00Z", "02:00Z", "MaintainStartTime"),
        ("01:00", "02:00Z", "MaintainStartTime"),
        ("25:00Z", "02:00Z", "MaintainStartTime"),
        ("01:00+08:00", "02:00Z", "MaintainStartTime"),
        ("01:00Z", "02:61Z", "MaintainEndTime"),
        ("03:00Z", "02:00Z", "MaintainEndTime"),
        ("03:00Z", "03:00Z", "MaintainEndTime"),
    ],
)
def test_maintain_window_must_be_hh_mm_z_and_end_after_start(server, start, end, bad):
    before = state(server)
    req = LegacyMaintain()
    req.set_DBInstanceId(server.rs)
    req.set_MaintainStartTime(start)
    req.set_MaintainEndTime(end)
    legacy_expect(server, req, "InvalidParameter", 400, bad)
    tea_expect(
        lambda: tea(server).modify_dbinstance_maintain_time(M.ModifyDBInstanceMaintainTimeRequest(
            dbinstance_id=server.rs, maintain_start_time=start, maintain_end_time=end)),
        "InvalidParameter", 400,
    )
    assert state(server) == before


def test_page_size_must_be_30_50_or_100(server):
    before = state(server)
    for size in (7, 0, 31, 1000):
        tea_expect(lambda: tea(server).describe_dbinstances(M.DescribeDBInstancesRequest(page_size=size)),
                   "InvalidParameter", 400)
        req = LegacyList()
        req.set_PageSize(size)
        legacy_expect(server, req, "InvalidParameter", 400, "PageSize")
    tea_expect(lambda: tea(server).describe_dbinstances(M.DescribeDBInstancesRequest(page_number=0)),
               "InvalidParameter", 400)
    tea_expect(lambda: tea(server).describe_dbinstances(M.DescribeDBInstancesRequest(dbinstance_status="Sleeping")),
               "InvalidStatus.NotFound", 404)
    assert state(server) == before


def test_client_token_reused_with_other_parameters(server):
    c = tea(server)
    token = "tok-errors-1"
    first = c.create_dbinstance(M.CreateDBInstanceRequest(
        region_id=REGION, engine_version="4.4", dbinstance_class="dds.mongo.mid", dbinstance_storage=20,
        client_token=token)).body.dbinstance_id
    wait_status(server, first, "Running")
    before = state(server)
    tea_expect(lambda: c.create_dbinstance(M.CreateDBInstanceRequest(
        region_id=REGION, engine_version="4.4", dbinstance_class="dds.mongo.mid", dbinstance_storage=30,
        client_token=token)), "IdempotentParameterMismatch", 400)
    again = c.create_dbinstance(M.CreateDBInstanceRequest(
        region_id=REGION, engine_version="4.4", dbinstance_class="dds.mongo.mid", dbinstance_storage=20,
        client_token=token)).body.dbinstance_id
    assert again == first
    assert state(server) == before


def test_delete_refused_unless_running(tmp_path_factory):
    # At real speed a creation takes at least several seconds: the instance is surely Creating.
    factory, slow = start_fast(tmp_path_factory, "instance-slow", speed="0.5")
    try:
        iid = create_rs(slow)
        before = state(slow)
        assert before[0]["DBInstances"]["DBInstance"][0]["DBInstanceStatus"] == "Creating"
        e = tea_expect(lambda: tea(slow).delete_dbinstance(M.DeleteDBInstanceRequest(dbinstance_id=iid)),
                       "OperationDenied.DBInstanceStatus", 403)
        assert e.message.startswith("code: 403, The operation is not permitted due to status of instance.")
        req = LegacyDelete()
        req.set_DBInstanceId(iid)
        legacy_expect(slow, req, "OperationDenied.DBInstanceStatus", 403)
        assert state(slow) == before
    finally:
        factory.stop_all()
