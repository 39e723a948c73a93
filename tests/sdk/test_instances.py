"""Instances through the official Python SDKs, unchanged, against a real ddsd.

- alibabacloud_dds20151201 (Tea, V3 by default; V1 with `signature_algorithm='v2'`) and
  aliyun-python-sdk-core + aliyun-python-sdk-dds (legacy, V1, JSON and XML) create, describe, list,
  page through and delete replica sets, sharded clusters and standalones.
- Every response body is loaded into the Tea SDK's own response model
  (`XxxResponseBody().from_map(body)`), every loaded field is checked against the type the model
  declares (`str` / `int` / `bool` / nested model / list), and the model must give the body back
  unchanged (`to_map() == body`), so ddsd sends no field the SDK does not know.
- XML bodies are checked element by element against the JSON body of the same request.

The server runs its simulated data plane at `--sim-speed 200`, so a creation takes well under a
second. The helpers here are shared with test_instances_errors.py and test_instances_extensions.py.
"""

from __future__ import annotations

import json
import time
import typing
import uuid
import warnings
import xml.etree.ElementTree as ET

import pytest
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.client import AcsClient
from aliyunsdkdds.request.v20151201.CreateDBInstanceRequest import CreateDBInstanceRequest as LegacyCreate
from aliyunsdkdds.request.v20151201.CreateShardingDBInstanceRequest import (
    CreateShardingDBInstanceRequest as LegacyCreateSharding,
)
from aliyunsdkdds.request.v20151201.DeleteDBInstanceRequest import DeleteDBInstanceRequest as LegacyDelete
from aliyunsdkdds.request.v20151201.DescribeDBInstanceAttributeRequest import (
    DescribeDBInstanceAttributeRequest as LegacyAttribute,
)
from aliyunsdkdds.request.v20151201.DescribeDBInstancesRequest import DescribeDBInstancesRequest as LegacyList
from alibabacloud_dds20151201 import models as M
from alibabacloud_dds20151201.client import Client as TeaDdsClient
from alibabacloud_tea_openapi import utils_models as open_api_models
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_tea_openapi.utils_models import Config as TeaConfig
from darabonba.model import DaraModel
from darabonba.runtime import RuntimeOptions

from conftest import DdsdFactory

REGION = "cn-hangzhou"
SIM_SPEED = "200"
WAIT_S = 60.0


# ----------------------------------------------------------------------------------- helpers


def start_fast(tmp_path_factory, name: str, speed: str = SIM_SPEED):
    factory = DdsdFactory(tmp_path_factory.mktemp(name))
    return factory, factory.start(extra_args=["--sim-speed", speed])


def tea(d, v1: bool = False, key: tuple[str, str] | None = None) -> TeaDdsClient:
    key_id, secret = key or (d.key_id, d.key_secret)
    cfg = TeaConfig(
        access_key_id=key_id, access_key_secret=secret, endpoint=d.endpoint, protocol="http", region_id=REGION
    )
    if v1:
        cfg.signature_algorithm = "v2"
    return TeaDdsClient(cfg)


def tea_call(d, action: str, query: dict, key: tuple[str, str] | None = None) -> dict:
    """Any action (ddsd's extensions too) through the Tea SDK's generic `call_api` (V3)."""
    params = open_api_models.Params(
        action=action,
        version="2015-12-01",
        protocol="HTTP",
        pathname="/",
        method="POST",
        auth_type="AK",
        style="RPC",
        req_body_type="formData",
        body_type="json",
    )
    req = open_api_models.OpenApiRequest(query={k: str(v) for k, v in query.items()})
    return tea(d, key=key).call_api(params, req, RuntimeOptions())["body"]


def legacy(d) -> AcsClient:
    return AcsClient(d.key_id, d.key_secret, REGION, auto_retry=False)


def legacy_prepare(d, req, fmt: str = "JSON"):
    req.set_endpoint(d.endpoint)
    req.set_protocol_type("http")
    req.set_accept_format(fmt)
    return req


def legacy_json(d, req) -> dict:
    return json.loads(legacy(d).do_action_with_exception(legacy_prepare(d, req)))


def legacy_xml(d, req) -> ET.Element:
    # do_action_with_exception forces JSON; get_response keeps the requested format.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        status, headers, body = legacy(d).get_response(legacy_prepare(d, req, "XML"))
    assert status == 200, body
    assert headers.get("Content-Type", headers.get("content-type")) == "text/xml;charset=utf-8"
    return ET.fromstring(body)


def check_types(model: DaraModel, path: str) -> None:
    """Every loaded field has the type the SDK model declares."""
    hints = typing.get_type_hints(type(model).__init__)
    for name, hint in hints.items():
        if name == "return":
            continue
        value = getattr(model, name, None)
        if value is not None:
            check_value(value, hint, f"{path}.{name}")


def check_value(value, hint, path: str) -> None:
    origin = typing.get_origin(hint)
    if origin in (list, typing.List):
        assert isinstance(value, list), f"{path}: {value!r} is not a list"
        (item,) = typing.get_args(hint)
        for i, v in enumerate(value):
            check_value(v, item, f"{path}[{i}]")
    elif origin is dict or hint is dict:
        assert isinstance(value, dict), f"{path}: {value!r} is not an object"
    elif isinstance(hint, type) and issubclass(hint, DaraModel):
        assert isinstance(value, hint), f"{path}: {value!r}"
        check_types(value, path)
    elif hint is bool:
        assert type(value) is bool, f"{path}: {value!r} is not a bool"
    elif hint is int:
        assert type(value) is int, f"{path}: {value!r} is not an int"
    elif hint is float:
        assert type(value) in (int, float), f"{path}: {value!r} is not a number"
    elif hint is str:
        assert type(value) is str, f"{path}: {value!r} is not a string"


def load(body_cls, body: dict):
    """The SDK's own model loads the body, with the declared types, and gives it back whole."""
    model = body_cls().from_map(body)
    check_types(model, body_cls.__name__)
    assert model.to_map() == body, f"{body_cls.__name__} does not round-trip: ddsd sent a field the SDK lacks"
    assert isinstance(model.request_id, str) and model.request_id
    return model


def xml_matches(elem: ET.Element, value, path: str) -> None:
    """An XML element against the JSON value of the same response: objects by child tags, a list
    under key K as repeated <K> elements, scalars as text (booleans lower case)."""
    if isinstance(value, dict):
        children = list(elem)
        i = 0
        for key, v in value.items():
            items = v if isinstance(v, list) else [v]
            for item in items:
                assert i < len(children) and children[i].tag == key, (
                    f"{path}: expected <{key}>, got {[c.tag for c in children[i:i + 3]]}"
                )
                xml_matches(children[i], item, f"{path}.{key}")
                i += 1
        assert i == len(children), f"{path}: extra XML elements {[c.tag for c in children[i:]]}"
    else:
        text = elem.text or ""
        expect = ("true" if value else "false") if isinstance(value, bool) else str(value)
        assert text == expect, f"{path}: XML {text!r} != JSON {expect!r}"


def xml_equals_json(root: ET.Element, action: str, body: dict) -> None:
    assert root.tag == f"{action}Response"
    body = dict(body)
    xml_rid = root.findtext("RequestId")
    assert xml_rid
    body["RequestId"] = xml_rid
    xml_matches(root, body, action)


def attribute(d, instance_id: str, v1: bool = False):
    r = tea(d, v1).describe_dbinstance_attribute(M.DescribeDBInstanceAttributeRequest(dbinstance_id=instance_id))
    assert r.status_code == 200
    load(M.DescribeDBInstanceAttributeResponseBody, r.body.to_map())
    assert len(r.body.dbinstances.dbinstance) == 1
    return r.body.dbinstances.dbinstance[0]


def status_of(d, instance_id: str) -> str | None:
    try:
        return attribute(d, instance_id).dbinstance_status
    except ClientException as e:
        if e.code == "InvalidDBInstanceId.NotFound":
            return None
        raise


def wait_status(d, instance_id: str, want: str | None) -> None:
    deadline = time.monotonic() + WAIT_S
    seen = None
    while time.monotonic() < deadline:
        seen = status_of(d, instance_id)
        if seen == want:
            return
        time.sleep(0.05)
    pytest.fail(f"{instance_id} stayed {seen!r}, expected {want!r}")


def newest_kernel_check(d, kernel: str) -> None:
    """`kernel` is the newest of its engine: no release is later."""
    r = tea(d).describe_kernel_release_notes(M.DescribeKernelReleaseNotesRequest(kernel_version=kernel))
    load(M.DescribeKernelReleaseNotesResponseBody, r.body.to_map())
    assert r.body.release_notes.release_note == [], kernel


def create_rs(d, **kw) -> str:
    args = dict(
        region_id=REGION,
        engine="MongoDB",
        engine_version="4.4",
        dbinstance_class="dds.mongo.mid",
        dbinstance_storage=20,
    )
    args.update(kw)
    r = tea(d).create_dbinstance(M.CreateDBInstanceRequest(**args))
    body = load(M.CreateDBInstanceResponseBody, r.body.to_map())
    assert body.dbinstance_id.startswith("dds-") and body.order_id.isdigit()
    return body.dbinstance_id


SHARDS = [
    M.CreateShardingDBInstanceRequestReplicaSet(class_="dds.shard.mid", storage=20, readonly_replicas=0),
    M.CreateShardingDBInstanceRequestReplicaSet(class_="dds.shard.standard", storage=40, readonly_replicas=2),
    M.CreateShardingDBInstanceRequestReplicaSet(class_="dds.shard.mid", storage=30),
]


def create_sharded(d, **kw) -> str:
    args = dict(
        region_id=REGION,
        engine="MongoDB",
        engine_version="5.0",
        replica_set=SHARDS,
        config_server=[M.CreateShardingDBInstanceRequestConfigServer(class_="dds.cs.mid", storage=20)],
        mongos=[
            M.CreateShardingDBInstanceRequestMongos(class_="dds.mongos.mid"),
            M.CreateShardingDBInstanceRequestMongos(class_="dds.mongos.standard"),
        ],
    )
    args.update(kw)
    r = tea(d).create_sharding_dbinstance(M.CreateShardingDBInstanceRequest(**args))
    return load(M.CreateShardingDBInstanceResponseBody, r.body.to_map()).dbinstance_id


def delete(d, instance_id: str) -> None:
    r = tea(d).delete_dbinstance(M.DeleteDBInstanceRequest(dbinstance_id=instance_id))
    load(M.DeleteDBInstanceResponseBody, r.body.to_map())
    assert status_of(d, instance_id) in ("Deleting", None)
    wait_status(d, instance_id, None)


def list_page(d, v1: bool = False, **kw):
    r = tea(d, v1).describe_dbinstances(M.DescribeDBInstancesRequest(**kw))
    return load(M.DescribeDBInstancesResponseBody, r.body.to_map())


@pytest.fixture(scope="module")
def fast(tmp_path_factory):
    factory, d = start_fast(tmp_path_factory, "instances")
    yield d
    factory.stop_all()


# ------------------------------------------------------------------------------- Tea, V3


def test_tea_replica_set_create_describe_list_modify_delete(fast):
    token = uuid.uuid4().hex
    tag = [M.CreateDBInstanceRequestTag(key="suite", value="lifecycle")]
    iid = create_rs(
        fast, replication_factor="5", readonly_replicas="1", dbinstance_description="orders db", tag=tag,
        client_token=token,
    )
    # The same ClientToken and parameters: the same instance, nothing new.
    assert create_rs(
        fast, replication_factor="5", readonly_replicas="1", dbinstance_description="orders db", tag=tag,
        client_token=token,
    ) == iid
    assert status_of(fast, iid) in ("Creating", "Running")
    wait_status(fast, iid, "Running")

    a = attribute(fast, iid)
    assert a.dbinstance_id == iid
    assert (a.dbinstance_type, a.engine, a.engine_version) == ("replicate", "MongoDB", "4.4")
    assert (a.replication_factor, a.readonly_replicas) == ("5", "1")  # strings in this call
    assert a.kind_code == "18"
    assert a.dbinstance_class == "dds.mongo.mid" and a.dbinstance_storage == 20
    assert a.dbinstance_description == "orders db"
    assert (a.maintain_start_time, a.maintain_end_time) == ("18:00Z", "22:00Z")
    assert a.lock_mode == "Unlock" and a.charge_type == "PostPaid"
    assert a.replica_set_name.startswith("mgset-")
    assert [t.to_map() for t in a.tags.tag] == [{"Key": "suite", "Value": "lifecycle"}]
    # One entry per member a client may connect to (the hidden one is not listed), with its role
    # now and the port it really listens on (docs/wire.md).
    roles = sorted(r.replica_set_role for r in a.replica_sets.replica_set)
    assert roles == ["Primary", "ReadOnly", "Secondary", "Secondary", "Secondary"], roles
    ports = [r.connection_port for r in a.replica_sets.replica_set]
    assert len(set(ports)) == len(ports) and all(p.isdigit() and int(p) > 0 for p in ports), ports
    assert all(r.connection_domain == "127.0.0.1" for r in a.replica_sets.replica_set)
    newest_kernel_check(fast, a.current_kernel_version)
    assert a.shard_list is None and a.mongos_list is None

    page = list_page(fast, dbinstance_id=iid)
    assert (page.total_count, page.page_number, page.page_size) == (1, 1, 30)
    item = page.dbinstances.dbinstance[0]
    assert (item.dbinstance_id, item.dbinstance_status, item.replication_factor) == (iid, "Running", "5")
    assert item.dbinstance_storage == 20

    r = tea(fast).modify_dbinstance_maintain_time(
        M.ModifyDBInstanceMaintainTimeRequest(dbinstance_id=iid, maintain_start_time="01:00Z", maintain_end_time="03:30Z")
    )
    load(M.ModifyDBInstanceMaintainTimeResponseBody, r.body.to_map())
    a = attribute(fast, iid)
    assert (a.maintain_start_time, a.maintain_end_time) == ("01:00Z", "03:30Z")

    r = tea(fast).describe_available_engine_version(M.DescribeAvailableEngineVersionRequest(dbinstance_id=iid))
    versions = load(M.DescribeAvailableEngineVersionResponseBody, r.body.to_map()).engine_versions.engine_version
    assert versions and all(float(v) > 4.4 for v in versions), versions

    delete(fast, iid)
    assert list_page(fast, dbinstance_id=iid).total_count == 0


def test_tea_sharded_cluster_create_describe_list_delete(fast):
    iid = create_sharded(fast)
    wait_status(fast, iid, "Running")
    a = attribute(fast, iid)
    assert a.dbinstance_type == "sharding" and a.engine_version == "5.0"
    assert a.dbinstance_storage == 90
    assert a.replication_factor is None and a.replica_sets is None
    kernel = a.current_kernel_version
    newest_kernel_check(fast, kernel)
    shards = a.shard_list.shard_attribute
    assert [(s.node_class, s.node_storage, s.readonly_replicas) for s in shards] == [
        ("dds.shard.mid", 20, 0), ("dds.shard.standard", 40, 2), ("dds.shard.mid", 30, 0)
    ]
    for s in shards:
        assert s.node_id.startswith("d-") and s.status == "Running" and s.current_kernel_version == kernel
        assert s.port > 0 and s.replica_set_name  # the port of the shard's primary (docs/wire.md)
    mongos = a.mongos_list.mongos_attribute
    assert [m.node_class for m in mongos] == ["dds.mongos.mid", "dds.mongos.standard"]
    assert all(m.node_id.startswith("s-") and m.status == "Running" and m.current_kernel_version == kernel for m in mongos)
    (cs,) = a.configserver_list.configserver_attribute
    assert cs.node_id.startswith("cs-") and cs.status == "Running" and cs.node_storage == 20
    assert cs.current_kernel_version == kernel

    # Listed only with DBInstanceType=sharding.
    assert iid not in [i.dbinstance_id for i in list_page(fast, page_size=100).dbinstances.dbinstance]
    page = list_page(fast, dbinstance_type="sharding", dbinstance_id=iid)
    (item,) = page.dbinstances.dbinstance
    assert item.dbinstance_type == "sharding"
    assert [s.readonly_replicas for s in item.shard_list.shard_attribute] == [0, 2, 0]
    assert len(item.mongos_list.mongos_attribute) == 2
    delete(fast, iid)


def test_tea_standalone(fast):
    iid = create_rs(fast, engine_version="4.0", dbinstance_class="dds.sn2.standard.1", replication_factor="1")
    wait_status(fast, iid, "Running")
    a = attribute(fast, iid)
    assert (a.kind_code, a.replication_factor, a.readonly_replicas, a.dbinstance_type) == ("3", "1", "0", "replicate")
    newest_kernel_check(fast, a.current_kernel_version)
    r = tea(fast).describe_available_engine_version(M.DescribeAvailableEngineVersionRequest(dbinstance_id=iid))
    assert load(M.DescribeAvailableEngineVersionResponseBody, r.body.to_map()).engine_versions.engine_version == []
    page = list_page(fast, replication_factor="1", dbinstance_id=iid)
    assert page.total_count == 1 and page.dbinstances.dbinstance[0].replication_factor == "1"
    delete(fast, iid)


def test_tea_v1_signature_mode(fast):
    r = tea(fast, v1=True).create_dbinstance(
        M.CreateDBInstanceRequest(region_id=REGION, engine_version="4.2", dbinstance_class="dds.mongo.standard", dbinstance_storage=30)
    )
    iid = load(M.CreateDBInstanceResponseBody, r.body.to_map()).dbinstance_id
    wait_status(fast, iid, "Running")
    a = attribute(fast, iid, v1=True)
    assert a.engine_version == "4.2" and a.replication_factor == "3"
    assert list_page(fast, v1=True, dbinstance_id=iid).total_count == 1
    delete(fast, iid)


# --------------------------------------------------------------------- legacy core, V1


def test_legacy_core_json_lifecycle(fast):
    req = LegacyCreate()
    req.set_EngineVersion("4.4")
    req.set_DBInstanceClass("dds.mongo.mid")
    req.set_DBInstanceStorage(20)
    req.set_ReplicationFactor("3")
    body = legacy_json(fast, req)
    iid = load(M.CreateDBInstanceResponseBody, body).dbinstance_id
    # The legacy SDK really sent V1 with its region.
    assert "RegionId%3Dcn-hangzhou" in req.string_to_sign

    sreq = LegacyCreateSharding()
    sreq.set_Engine("MongoDB")
    sreq.set_EngineVersion("4.4")
    sreq.set_ReplicaSets([{"Class": "dds.shard.mid", "Storage": 20}, {"Class": "dds.shard.mid", "Storage": 20, "ReadonlyReplicas": 1}])
    sreq.set_ConfigServers([{"Class": "dds.cs.mid", "Storage": 20}])
    sreq.set_Mongoss([{"Class": "dds.mongos.mid"}, {"Class": "dds.mongos.mid"}])
    sid = load(M.CreateShardingDBInstanceResponseBody, legacy_json(fast, sreq)).dbinstance_id
    assert "ReplicaSet.2.ReadonlyReplicas" in sreq.get_query_params()

    for i in (iid, sid):
        wait_status(fast, i, "Running")
        areq = LegacyAttribute()
        areq.set_DBInstanceId(i)
        a = load(M.DescribeDBInstanceAttributeResponseBody, legacy_json(fast, areq)).dbinstances.dbinstance[0]
        assert a.dbinstance_id == i and a.dbinstance_status == "Running"
    lreq = LegacyList()
    lreq.set_DBInstanceType("sharding")
    lreq.set_DBInstanceId(sid)
    page = load(M.DescribeDBInstancesResponseBody, legacy_json(fast, lreq))
    assert [x.dbinstance_id for x in page.dbinstances.dbinstance] == [sid]

    for i in (iid, sid):
        dreq = LegacyDelete()
        dreq.set_DBInstanceId(i)
        load(M.DeleteDBInstanceResponseBody, legacy_json(fast, dreq))
        wait_status(fast, i, None)


def test_legacy_core_xml_bodies_match_json(fast):
    req = LegacyCreate()
    req.set_EngineVersion("5.0")
    req.set_DBInstanceClass("dds.mongo.mid")
    req.set_DBInstanceStorage(20)
    req.set_ReadonlyReplicas("2")
    root = legacy_xml(fast, req)
    assert root.tag == "CreateDBInstanceResponse"
    iid = root.findtext("DBInstanceId")
    assert iid and iid.startswith("dds-") and root.findtext("OrderId").isdigit()
    sid = create_sharded(fast)
    for i in (iid, sid):
        wait_status(fast, i, "Running")
        areq = LegacyAttribute()
        areq.set_DBInstanceId(i)
        body = legacy_json(fast, areq)
        xml_equals_json(legacy_xml(fast, areq), "DescribeDBInstanceAttribute", body)
    for kind in ("replicate", "sharding"):
        lreq = LegacyList()
        lreq.set_DBInstanceType(kind)
        lreq.set_PageSize(50)
        body = legacy_json(fast, lreq)
        assert body["DBInstances"]["DBInstance"], kind
        xml_equals_json(legacy_xml(fast, lreq), "DescribeDBInstances", body)
    for i in (iid, sid):
        dreq = LegacyDelete()
        dreq.set_DBInstanceId(i)
        root = legacy_xml(fast, dreq)
        assert root.tag == "DeleteDBInstanceResponse" and root.findtext("RequestId")
        wait_status(fast, i, None)


# --------------------------------------------------------------------------------- paging


def test_paging_through_both_sdks(fast):
    marker = uuid.uuid4().hex[:12]
    created = set()
    for n in range(65):
        created.add(create_rs(fast, tag=[M.CreateDBInstanceRequestTag(key="page", value=marker)]))
    sharded = create_sharded(fast, tag=[M.CreateShardingDBInstanceRequestTag(key="page", value=marker)])
    tag = [M.DescribeDBInstancesRequestTag(key="page", value=marker)]

    seen = []
    for number, expect in ((1, 30), (2, 30), (3, 5), (4, 0)):
        page = list_page(fast, tag=tag, page_number=number)
        assert (page.page_number, page.page_size, page.total_count) == (number, 30, 65)
        assert len(page.dbinstances.dbinstance) == expect
        seen += [i.dbinstance_id for i in page.dbinstances.dbinstance]
    assert len(seen) == 65 and set(seen) == created, "30-pages list every instance exactly once"

    seen = []
    for number, expect in ((1, 50), (2, 15)):
        lreq = LegacyList()
        lreq.set_Tags([{"Key": "page", "Value": marker}])
        lreq.set_PageSize(50)
        lreq.set_PageNumber(number)
        page = load(M.DescribeDBInstancesResponseBody, legacy_json(fast, lreq))
        assert (page.page_size, page.total_count) == (50, 65)
        assert len(page.dbinstances.dbinstance) == expect
        seen += [i.dbinstance_id for i in page.dbinstances.dbinstance]
    assert set(seen) == created

    page = list_page(fast, tag=tag, page_size=100)
    assert len(page.dbinstances.dbinstance) == 65
    page = list_page(fast, tag=tag, dbinstance_type="sharding")
    assert [i.dbinstance_id for i in page.dbinstances.dbinstance] == [sharded]


def test_release_notes(fast):
    r = tea(fast).describe_kernel_release_notes(M.DescribeKernelReleaseNotesRequest(kernel_version="mongodb_20180522_0.4.8"))
    notes = load(M.DescribeKernelReleaseNotesResponseBody, r.body.to_map()).release_notes.release_note
    assert len(notes) > 5
    for n in notes:
        assert n.kernel_version.startswith("mongodb_") and len(n.release_note) > 20
    first = notes[0].kernel_version
    r = tea(fast).describe_kernel_release_notes(M.DescribeKernelReleaseNotesRequest(kernel_version=first))
    after = [n.kernel_version for n in r.body.release_notes.release_note]
    # Later kernels of the same engine, oldest first.
    assert after and after == sorted(after, key=lambda k: k.split("_")[1])
    assert all(k.split("_")[1] > first.split("_")[1] for k in after)
