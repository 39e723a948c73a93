"""UpgradeDBInstanceEngineVersion end to end, through the official Python SDKs (Tea, V3 signatures;
legacy aliyun-python-sdk-core + aliyun-python-sdk-dds, V1) against a real ddsd on the simulated plane.

What a user relies on:
- a sharded cluster created on 4.2 goes 4.2 -> 4.4 -> 5.0, one major per call; right after the call the
  instance reads `EngineVersionUpgrading` and a second call is `OperationDenied.DBInstanceStatus`;
- each step restarts every process exactly once (the simulated fleet's ground truth, `DdsdDescribeOperations`
  `Simulation`), with at most one election per replica set and the balancer as it was;
- the feature compatibility version is raised last: pymongo's `getParameter featureCompatibilityVersion`
  on every replica set's primary shows the old FCV while the upgrade runs and the new one at the end, and
  the fleet raised it after the last process launch;
- `DescribeDBInstanceAttribute` follows (`EngineVersion`, every node's kernel) and
  `DescribeAvailableEngineVersion` offers exactly the next major;
- refusals come with the vendor's codes and change nothing: `EngineVersion.ERROR` (skipped major,
  downgrade, same version), `InvalidDBInstanceId.NotFound`, `MissingEngineVersion`.
"""

from __future__ import annotations

import contextlib
import time
from urllib.parse import quote_plus

import pymongo
import pymongo.common
import pytest
from aliyunsdkdds.request.v20151201.UpgradeDBInstanceEngineVersionRequest import (
    UpgradeDBInstanceEngineVersionRequest as LegacyEngineUpgrade,
)
from alibabacloud_dds20151201 import models as M

from conftest import DdsdFactory
from fleet import MONGODB_FLEET_SPEED, PASSWORD as FLEET_PASSWORD, Fleet, import_deployment, start_mongodb_plane
from test_instances import REGION, attribute, legacy_json, load, start_fast, tea, tea_call, wait_status
from test_instances_errors import legacy_expect, tea_expect
from test_upgrade import OLD_44, admin, check_last_operation, kernels, operations

SPEED = "500"
OLD_42 = "mongodb_20220830_4.2.12"  # an older catalogued 4.2 kernel
PASSWORD = "Str0ng!pass"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    factory, d = start_fast(tmp_path_factory, "engine-upgrade", speed=SPEED)
    d.fleet = None
    yield d
    factory.stop_all()


def create_sharded_42(d) -> str:
    q = {"RegionId": REGION, "Engine": "MongoDB", "EngineVersion": "4.2", "KernelVersion": OLD_42,
         "AccountPassword": PASSWORD,
         "ConfigServer.1.Class": "dds.cs.mid", "ConfigServer.1.Storage": "20",
         "Mongos.1.Class": "dds.mongos.mid", "Mongos.2.Class": "dds.mongos.mid",
         "ReplicaSet.1.Class": "dds.shard.mid", "ReplicaSet.1.Storage": "20",
         "ReplicaSet.2.Class": "dds.shard.mid", "ReplicaSet.2.Storage": "20"}
    iid = tea_call(d, "DdsdCreateShardingDBInstance", q, key=admin(d))["DBInstanceId"]
    wait_status(d, iid, "Running")
    return iid


def describe(d, iid: str) -> dict:
    return tea_call(d, "DescribeDBInstanceAttribute", {"DBInstanceId": iid})["DBInstances"]["DBInstance"][0]


def available(d, iid: str) -> list[str]:
    r = tea(d).describe_available_engine_version(M.DescribeAvailableEngineVersionRequest(dbinstance_id=iid))
    return load(M.DescribeAvailableEngineVersionResponseBody, r.body.to_map()).engine_versions.engine_version


@contextlib.contextmanager
def wire_42():
    """PyMongo 4.x refuses servers older than MongoDB 4.4 (wire version 8) before sending anything; the
    commands read here (`listShards`, `serverStatus`, `getParameter`) are the same OP_MSG on 4.2, so the
    driver's floor is lowered for these reads only."""
    floor = pymongo.common.MIN_SUPPORTED_WIRE_VERSION
    pymongo.common.MIN_SUPPORTED_WIRE_VERSION = 8
    try:
        yield
    finally:
        pymongo.common.MIN_SUPPORTED_WIRE_VERSION = floor


def set_uris(d, iid: str) -> list[str]:
    """A replica-set URI per shard and for the config servers, from the mongos's `listShards` and
    `serverStatus.sharding` (what an operator reads)."""
    a = describe(d, iid)
    hosts = ",".join(f'{m["ConnectSting"]}:{m["Port"]}' for m in a["MongosList"]["MongosAttribute"])
    uri = f"mongodb://root:{quote_plus(PASSWORD)}@{hosts}/?authSource=admin"
    with wire_42(), pymongo.MongoClient(uri, serverSelectionTimeoutMS=30_000) as c:
        sets = [s["host"] for s in c.admin.command("listShards")["shards"]]
        sets.append(c.admin.command("serverStatus")["sharding"]["configsvrConnectionString"])
    out = []
    for s in sets:
        name, members = s.split("/", 1)
        out.append(f"mongodb://root:{quote_plus(PASSWORD)}@{members}/?authSource=admin&replicaSet={name}")
    return out


def fcvs(uris: list[str]) -> set[str]:
    """`getParameter featureCompatibilityVersion` on each replica set's primary."""
    seen = set()
    for uri in uris:
        with wire_42(), pymongo.MongoClient(uri, serverSelectionTimeoutMS=30_000, heartbeatFrequencyMS=500) as c:
            r = c.admin.command({"getParameter": 1, "featureCompatibilityVersion": 1})
            seen.add(r["featureCompatibilityVersion"]["version"])
    return seen


def check_step(d, iid: str, engine: str, old_fcv: str) -> dict:
    """The newest operation is a succeeded major upgrade to `engine`: every process restarted exactly
    once, the FCV raised after the last launch on every replica set, the attribute on the new major."""
    op = check_last_operation(d, iid, "UpgradeDBInstanceEngineVersion")
    assert op["TargetEngineVersion"] == engine
    fcv = op["FeatureCompatibilityVersion"]
    assert fcv["From"] == old_fcv and fcv["RaisedMs"] is not None, fcv
    sim = op["Simulation"]
    last_launch = max(p["LastLaunchMs"] for p in sim["Processes"])
    changes = sim["FcvChanges"]
    assert {c["ReplicaSet"] for c in changes} == {rs["Name"] for rs in sim["ReplicaSets"]}, changes
    assert all(c["Version"] == engine and c["AtMs"] > last_launch for c in changes), (changes, last_launch)
    assert fcv["FirstIssuedMs"] > last_launch
    a = attribute(d, iid)
    assert a.engine_version == engine
    assert set(kernels(a).values()) == {op["TargetKernelVersion"]}, kernels(a)
    return op


def test_a_sharded_cluster_goes_42_to_44_to_50_one_rolling_restart_per_step_fcv_last(server):
    d = server
    iid = create_sharded_42(d)
    uris = set_uris(d, iid)
    assert fcvs(uris) == {"4.2"}
    assert available(d, iid) == ["4.4"]

    # Refusals first: nothing changes.
    up = tea(d).upgrade_dbinstance_engine_version
    tea_expect(lambda: up(M.UpgradeDBInstanceEngineVersionRequest(dbinstance_id=iid, engine_version="5.0")),
               "EngineVersion.ERROR", 400)
    tea_expect(lambda: up(M.UpgradeDBInstanceEngineVersionRequest(dbinstance_id=iid, engine_version="4.0")),
               "EngineVersion.ERROR", 400)
    tea_expect(lambda: up(M.UpgradeDBInstanceEngineVersionRequest(dbinstance_id=iid, engine_version="4.2")),
               "EngineVersion.ERROR", 400)
    tea_expect(lambda: up(M.UpgradeDBInstanceEngineVersionRequest(dbinstance_id=iid)),
               "MissingEngineVersion", 400)
    tea_expect(lambda: up(M.UpgradeDBInstanceEngineVersionRequest(dbinstance_id="dds-bpnothere0000000",
                                                                  engine_version="4.4")),
               "InvalidDBInstanceId.NotFound", 404)
    assert attribute(d, iid).dbinstance_status == "Running"
    assert [o["Action"] for o in operations(d, iid)] == ["CreateDBInstance"]  # create operations read as their kind

    # Step 1, Tea V3: 4.2 -> 4.4.
    r = up(M.UpgradeDBInstanceEngineVersionRequest(dbinstance_id=iid, engine_version="4.4", switch_mode=0))
    assert r.status_code == 200
    load(M.UpgradeDBInstanceEngineVersionResponseBody, r.body.to_map())
    assert attribute(d, iid).dbinstance_status == "EngineVersionUpgrading"
    tea_expect(lambda: up(M.UpgradeDBInstanceEngineVersionRequest(dbinstance_id=iid, engine_version="4.4")),
               "OperationDenied.DBInstanceStatus", 403)
    # While the binaries change, the data stays on the old FCV.
    seen_old = False
    while attribute(d, iid).dbinstance_status == "EngineVersionUpgrading":
        # setFeatureCompatibilityVersion not issued before nor after the sample: the old FCV.
        before = operations(d, iid)[0]["FeatureCompatibilityVersion"]["FirstIssuedMs"]
        seen = fcvs(uris)
        after = operations(d, iid)[0]["FeatureCompatibilityVersion"]["FirstIssuedMs"]
        if before is None and after is None:
            assert seen == {"4.2"}, seen
            seen_old = True
        time.sleep(0.1)
    assert seen_old
    wait_status(d, iid, "Running")
    check_step(d, iid, "4.4", "4.2")
    assert fcvs(uris) == {"4.4"}
    assert available(d, iid) == ["5.0"]
    tea_expect(lambda: up(M.UpgradeDBInstanceEngineVersionRequest(dbinstance_id=iid, engine_version="4.4")),
               "EngineVersion.ERROR", 400)

    # Step 2, legacy core V1: 4.4 -> 5.0.
    req = LegacyEngineUpgrade()
    req.set_DBInstanceId(iid)
    req.set_EngineVersion("6.0")
    legacy_expect(d, req, "EngineVersion.ERROR", 400, "one major version at a time")
    req.set_EngineVersion("5.0")
    body = legacy_json(d, req)
    assert set(body) == {"RequestId"}
    assert attribute(d, iid).dbinstance_status == "EngineVersionUpgrading"
    legacy_expect(d, req, "OperationDenied.DBInstanceStatus", 403)
    wait_status(d, iid, "Running")
    op = check_step(d, iid, "5.0", "4.4")
    assert op["TargetKernelVersion"].startswith("5.0.")
    assert fcvs(uris) == {"5.0"}
    assert available(d, iid) == ["6.0"]
    assert [o["Action"] for o in operations(d, iid)][:2] == ["UpgradeDBInstanceEngineVersion"] * 2


def test_the_mongodb_plane_reads_and_raises_the_fcv_through_the_driver(tmp_path_factory):
    """The same step on the `mongodb` data plane against a `ddsd sim-fleet` process, for a replica set and
    a sharded cluster: ddsd observes the FCV with `getParameter` on the primaries and raises it with
    `setFeatureCompatibilityVersion` (on the primary, or through a mongos) with the official Rust driver;
    the fleet's ground truth judges the restarts."""
    base = tmp_path_factory.mktemp("engine-upgrade-mongodb")
    fleet = Fleet(base / "fleet", base / "fleet" / "data", MONGODB_FLEET_SPEED).start()
    factory = DdsdFactory(base)
    try:
        d = start_mongodb_plane(factory)
        d.fleet = fleet
        # The official drivers (Rust and Python alike) talk to MongoDB 4.4 and later only: the step
        # here is 4.4 -> 5.0.
        for kind in ("replicate", "sharding"):
            m = fleet.create(kind, OLD_44)
            iid = import_deployment(d, fleet, m)
            wait_status(d, iid, "Running")
            assert attribute(d, iid).engine_version == "4.4"
            assert available(d, iid) == ["5.0"]
            tea_expect(lambda: tea(d).upgrade_dbinstance_engine_version(
                M.UpgradeDBInstanceEngineVersionRequest(dbinstance_id=iid, engine_version="6.0")),
                "EngineVersion.ERROR", 400)
            r = tea(d).upgrade_dbinstance_engine_version(
                M.UpgradeDBInstanceEngineVersionRequest(dbinstance_id=iid, engine_version="5.0"))
            load(M.UpgradeDBInstanceEngineVersionResponseBody, r.body.to_map())
            wait_status(d, iid, "Running")
            # Every process restarted exactly once (the fleet's truth), the FCV read before and raised.
            op = check_last_operation(d, iid, "UpgradeDBInstanceEngineVersion")
            assert op["FeatureCompatibilityVersion"]["From"] == "4.4", op["FeatureCompatibilityVersion"]
            assert op["FeatureCompatibilityVersion"]["RaisedMs"] is not None
            a = attribute(d, iid)
            assert a.engine_version == "5.0"
            assert set(kernels(a).values()) == {op["TargetKernelVersion"]}
            # A replica set's primary, or for a sharded cluster (raised through a mongos) each shard's
            # and the config servers' primaries, report the new FCV.
            cred = f"{m['Username']}:{quote_plus(FLEET_PASSWORD)}"
            uri = f"mongodb://{cred}@{m['SeedList']}/?authSource={m['AuthSource']}"
            uris = [uri]
            if kind == "sharding":
                with pymongo.MongoClient(uri, serverSelectionTimeoutMS=30_000) as c:
                    sets = [x["host"] for x in c.admin.command("listShards")["shards"]]
                    sets.append(c.admin.command("serverStatus")["sharding"]["configsvrConnectionString"])
                uris = [f"mongodb://{cred}@{x.split('/', 1)[1]}/?authSource={m['AuthSource']}&replicaSet={x.split('/', 1)[0]}"
                        for x in sets]
            assert fcvs(uris) == {"5.0"}
    finally:
        factory.stop_all()
        fleet.stop()
