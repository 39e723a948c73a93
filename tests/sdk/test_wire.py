"""pymongo (the official MongoDB driver for Python) against the simulated members, through a real
`ddsd serve` process (docs/wire.md).

What an application relies on:
- the URI built from `DescribeDBInstanceAttribute` (`ReplicaSets.ReplicaSet[]`, `ReplicaSetName`,
  `MongosList`) reaches the instance; `root` logs in with `CreateDBInstance`'s `AccountPassword`
  (SCRAM-SHA-256 and SCRAM-SHA-1), a wrong password is `AuthenticationFailed` (18), no login is
  `Unauthorized` (13);
- `replSetGetStatus` and `buildInfo` agree with `DescribeDBInstanceAttribute`;
- through a whole `UpgradeDBInstanceKernelVersion` a writer with retryable writes and
  `w: "majority"` and a reader keep working: afterwards every acknowledged write is there exactly
  once, the driver followed the new primary, every member's `buildInfo` shows the target, and the
  longest stretch the writer could not write agrees with the report's write-unavailable window;
- `RestartDBInstance` restarts every member under a writer that loses nothing;
- faults look from the driver as MongoDB would show them, and a failed upgrade loses nothing;
- ddsd killed with -9 mid-upgrade comes back on the same ports and loses no majority write.

The plane runs at `--sim-speed 20`: a member restart takes about a second of wall time.
"""

from __future__ import annotations

import json
import threading
import time
from urllib.parse import quote_plus

import bson
import pymongo
import pytest
from pymongo.errors import ConnectionFailure, NotPrimaryError, OperationFailure, PyMongoError

from conftest import DdsdFactory
from alibabacloud_dds20151201 import models as M

from aliyunsdkdds.request.v20151201.DescribeShardingNetworkAddressRequest import (
    DescribeShardingNetworkAddressRequest as LegacyShardingAddress,
)
from test_instances import REGION, legacy_json, load, tea, tea_call, wait_status
from test_instances_errors import tea_expect
from test_upgrade import OLD_44, admin, newest_44

SPEED = "20"
PASSWORD = "Str0ng!pass"
# A stepdown hand-off is 1-3 s of plane time (0.05-0.15 s wall at this speed); the driver notices
# a new primary within its 500 ms minimum heartbeat plus server selection.
WINDOW_TOLERANCE_S = 1.5


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    factory = DdsdFactory(tmp_path_factory.mktemp("wire"))
    d = factory.start(extra_args=["--sim-speed", SPEED])
    yield d
    factory.stop_all()


def describe(d, iid: str) -> dict:
    return tea_call(d, "DescribeDBInstanceAttribute", {"DBInstanceId": iid})["DBInstances"]["DBInstance"][0]


def roles(d, iid: str) -> list[dict]:
    """`DescribeReplicaSetRole`, checked against the SDK's model."""
    body = tea_call(d, "DescribeReplicaSetRole", {"DBInstanceId": iid})
    load(M.DescribeReplicaSetRoleResponseBody, body)
    assert body["DBInstanceId"] == iid
    return body["ReplicaSets"]["ReplicaSet"]


def release(kernel: str) -> str:
    return kernel.rsplit("_", 1)[-1]


def rs_uri(a: dict, password: str | None = PASSWORD, **opts) -> str:
    hosts = ",".join(f'{s["ConnectionDomain"]}:{s["ConnectionPort"]}' for s in a["ReplicaSets"]["ReplicaSet"])
    q = {"replicaSet": a["ReplicaSetName"], **opts}
    cred = ""
    if password is not None:
        cred = f"root:{quote_plus(password)}@"
        q["authSource"] = "admin"
    return f"mongodb://{cred}{hosts}/?" + "&".join(f"{k}={v}" for k, v in q.items())


def mongos_uri(a: dict, **opts) -> str:
    hosts = ",".join(f'{m["ConnectSting"]}:{m["Port"]}' for m in a["MongosList"]["MongosAttribute"])
    q = {"authSource": "admin", **opts}
    return f"mongodb://root:{quote_plus(PASSWORD)}@{hosts}/?" + "&".join(f"{k}={v}" for k, v in q.items())


def client(uri: str, **kw) -> pymongo.MongoClient:
    opts = {"serverSelectionTimeoutMS": 30_000, "heartbeatFrequencyMS": 500, **kw}
    return pymongo.MongoClient(uri, **opts)


def create_rs(d, kernel: str | None = None, password: str | None = PASSWORD) -> str:
    q = {"RegionId": REGION, "Engine": "MongoDB", "EngineVersion": "4.4", "DBInstanceClass": "dds.mongo.mid",
         "DBInstanceStorage": "20"}
    if password:
        q["AccountPassword"] = password
    if kernel:
        q["KernelVersion"] = kernel
        iid = tea_call(d, "DdsdCreateDBInstance", q, key=admin(d))["DBInstanceId"]
    else:
        iid = tea_call(d, "CreateDBInstance", q)["DBInstanceId"]
    wait_status(d, iid, "Running")
    return iid


def create_sharded(d) -> str:
    q = {"RegionId": REGION, "Engine": "MongoDB", "EngineVersion": "4.4", "KernelVersion": OLD_44,
         "AccountPassword": PASSWORD,
         "ConfigServer.1.Class": "dds.cs.mid", "ConfigServer.1.Storage": "20",
         "Mongos.1.Class": "dds.mongos.mid", "Mongos.2.Class": "dds.mongos.mid",
         "ReplicaSet.1.Class": "dds.shard.mid", "ReplicaSet.1.Storage": "20",
         "ReplicaSet.2.Class": "dds.shard.mid", "ReplicaSet.2.Storage": "20"}
    iid = tea_call(d, "DdsdCreateShardingDBInstance", q, key=admin(d))["DBInstanceId"]
    wait_status(d, iid, "Running")
    return iid


def wait_status_long(d, iid: str, want: str, timeout_s: float = 240.0) -> None:
    deadline = time.monotonic() + timeout_s
    seen = None
    while time.monotonic() < deadline:
        seen = describe(d, iid)["DBInstanceStatus"]
        if seen == want:
            return
        time.sleep(0.2)
    pytest.fail(f"{iid} stayed {seen!r}, expected {want!r}")


def last_operation(d, iid: str) -> dict:
    return tea_call(d, "DdsdDescribeOperations", {"DBInstanceId": iid})["Operations"]["Operation"][0]


class Writer(threading.Thread):
    """Inserts `{_id: n}` one after another with retryable writes and `w: "majority"`, recording what
    was acknowledged, what failed, and the longest wall-time stretch without an acknowledged write."""

    def __init__(self, coll, mongo: pymongo.MongoClient):
        super().__init__(daemon=True)
        self.coll = coll
        self.mongo = mongo
        self.stop = threading.Event()
        self.acked: list[int] = []
        self.unknown: list[int] = []
        self.errors: list[str] = []
        self.primaries: set[str] = set()
        self.longest_gap_s = 0.0

    def run(self) -> None:
        n = 0
        last_ok = time.monotonic()
        while not self.stop.is_set():
            n += 1
            try:
                self.coll.insert_one({"_id": n, "at": time.time()})
                now = time.monotonic()
                self.longest_gap_s = max(self.longest_gap_s, now - last_ok)
                last_ok = now
                self.acked.append(n)
                if self.mongo.primary:
                    self.primaries.add("%s:%d" % self.mongo.primary)
            except PyMongoError as e:  # the outcome of this insert is unknown
                self.unknown.append(n)
                self.errors.append(repr(e))
                time.sleep(0.05)
            time.sleep(0.005)


class Reader(threading.Thread):
    """Counts the documents over and over, preferring secondaries."""

    def __init__(self, coll):
        super().__init__(daemon=True)
        self.coll = coll
        self.stop = threading.Event()
        self.reads = 0
        self.errors: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.coll.count_documents({})
                self.reads += 1
            except PyMongoError as e:
                self.errors.append(repr(e))
                time.sleep(0.05)
            time.sleep(0.01)


def check_exactly_once(coll, w: Writer) -> None:
    ids = [doc["_id"] for doc in coll.find({}, {"_id": 1})]
    assert len(ids) == len(set(ids)), "no document twice"
    missing = set(w.acked) - set(ids)
    assert not missing, f"acknowledged writes lost: {sorted(missing)[:10]}"
    assert set(ids) <= set(w.acked) | set(w.unknown), "nothing written that the writer did not send"


def member_versions(a: dict) -> dict[str, str]:
    out = {}
    for s in a["ReplicaSets"]["ReplicaSet"]:
        addr = f'{s["ConnectionDomain"]}:{s["ConnectionPort"]}'
        with pymongo.MongoClient(f"mongodb://root:{quote_plus(PASSWORD)}@{addr}/?directConnection=true&authSource=admin",
                                 serverSelectionTimeoutMS=10_000) as c:
            out[addr] = c.admin.command("buildInfo")["version"]
    return out


def upgrade(d, iid: str) -> None:
    tea_call(d, "UpgradeDBInstanceKernelVersion", {"DBInstanceId": iid})
    wait_status_long(d, iid, "Running")


def report_windows_s(op: dict) -> list[float]:
    """The longest write-unavailable window of each replica set, wall seconds."""
    out = []
    for rs in op["Report"]["ReplicaSets"]:
        ws = [w["WallDurationMs"] for w in rs["WriteUnavailable"]]
        out.append(max(ws) / 1000 if ws else 0.0)
    return out


def test_connect_authenticate_write_read_and_agree_with_describe(server):
    d = server
    iid = create_rs(d)
    a = describe(d, iid)
    with client(rs_uri(a)) as c:
        coll = c.get_database("app", write_concern=pymongo.WriteConcern(w="majority")).orders
        coll.insert_many([{"_id": i, "n": i, "kind": "even" if i % 2 == 0 else "odd"} for i in range(10)])
        assert [x["n"] for x in coll.find({"n": {"$gte": 5}}).sort("n", -1)] == [9, 8, 7, 6, 5]
        assert coll.count_documents({"kind": "odd"}) == 5
        assert coll.update_one({"_id": 3}, {"$inc": {"n": 100}}).modified_count == 1
        assert coll.find_one({"_id": 3})["n"] == 103
        assert coll.delete_one({"_id": 4}).deleted_count == 1
        assert coll.count_documents({}) == 9
        assert sorted(c.app.list_collection_names()) == ["orders"]

        status = c.admin.command("replSetGetStatus")
        assert status["set"] == a["ReplicaSetName"]
        names = {m["name"] for m in status["members"]}
        listed = {f'{s["ConnectionDomain"]}:{s["ConnectionPort"]}' for s in a["ReplicaSets"]["ReplicaSet"]}
        assert listed <= names and len(names) == 3, (listed, names)  # the hidden member is not listed
        primary = [m["name"] for m in status["members"] if m["stateStr"] == "PRIMARY"]
        described = [f'{s["ConnectionDomain"]}:{s["ConnectionPort"]}' for s in a["ReplicaSets"]["ReplicaSet"]
                     if s["ReplicaSetRole"] == "Primary"]
        assert primary == described
        assert "%s:%d" % c.primary == primary[0]
        assert c.admin.command("buildInfo")["version"] == release(a["CurrentKernelVersion"])
        assert c.admin.command("connectionStatus")["authInfo"]["authenticatedUsers"] == [{"user": "root", "db": "admin"}]

    for mech in ("SCRAM-SHA-1", "SCRAM-SHA-256"):
        with client(rs_uri(a, authMechanism=mech)) as c:
            assert c.app.orders.count_documents({}) == 9

    with client(rs_uri(a, password="Wr0ng!pass"), serverSelectionTimeoutMS=5_000) as c:
        with pytest.raises(OperationFailure) as e:
            c.admin.command("ping")
        assert e.value.code == 18

    with client(rs_uri(a, password=None)) as c:
        with pytest.raises(OperationFailure) as e:
            c.app.orders.find_one()
        assert e.value.code == 13

    # A command mongod does not know is CommandNotFound; a secondary refuses writes.
    with client(rs_uri(a)) as c:
        with pytest.raises(OperationFailure) as e:
            c.admin.command("noSuchCommand")
        assert e.value.code == 59
        secondary = next(s for s in a["ReplicaSets"]["ReplicaSet"] if s["ReplicaSetRole"] == "Secondary")
    direct = (f'mongodb://root:{quote_plus(PASSWORD)}@{secondary["ConnectionDomain"]}:{secondary["ConnectionPort"]}'
              "/?directConnection=true&authSource=admin")
    with client(direct) as c:
        with pytest.raises(NotPrimaryError) as e:
            c.app.orders.insert_one({"_id": 100})
        assert e.value.details["code"] == 10107
        # A lagging secondary still shows what it has replicated.
        time.sleep(1.0)
        assert c.app.orders.with_options(read_preference=pymongo.ReadPreference.SECONDARY).count_documents({}) == 9


def test_instance_without_password_admits_nobody(server):
    d = server
    iid = create_rs(d, password=None)
    a = describe(d, iid)
    with client(rs_uri(a, password=None)) as c:
        assert c.admin.command("ping")["ok"] == 1.0
        with pytest.raises(OperationFailure) as e:
            c.app.x.insert_one({})
        assert e.value.code == 13
    with client(rs_uri(a, password="Any0ne!pass"), serverSelectionTimeoutMS=5_000) as c:
        with pytest.raises(OperationFailure) as e:
            c.admin.command("ping")
        assert e.value.code == 18


def test_every_member_runs_the_parameters_modify_parameters_set(server):
    """`getParameter` and `getCmdLineOpts` on each member show the values `DescribeParameters` reports
    as running: a change that needs no restart at once, one that needs a restart once it ran."""
    d = server
    iid = create_rs(d)
    a = describe(d, iid)
    directs = [f'mongodb://root:{quote_plus(PASSWORD)}@{s["ConnectionDomain"]}:{s["ConnectionPort"]}'
               "/?directConnection=true&authSource=admin" for s in a["ReplicaSets"]["ReplicaSet"]]
    assert len(directs) >= 2

    def on_every_member(command: dict) -> list[dict]:
        out = []
        for uri in directs:
            with client(uri) as c:
                out.append(c.admin.command(command))
        return out

    for r in on_every_member({"getParameter": 1, "cursorTimeoutMillis": 1, "transactionLifetimeLimitSeconds": 1}):
        # mongod's types: cursorTimeoutMillis is a long, transactionLifetimeLimitSeconds an int.
        assert r["cursorTimeoutMillis"] == bson.Int64(600000) and isinstance(r["cursorTimeoutMillis"], bson.Int64)
        assert r["transactionLifetimeLimitSeconds"] == 60 and type(r["transactionLifetimeLimitSeconds"]) is int
    with client(directs[0]) as c:
        with pytest.raises(OperationFailure) as e:
            c.admin.command({"getParameter": 1, "noSuchParameter": 1})
        assert (e.value.code, e.value.details["codeName"]) == (72, "InvalidOptions")
        every = c.admin.command({"getParameter": "*"})
        assert {"cursorTimeoutMillis", "featureCompatibilityVersion", "flowControlTargetLagSeconds"} <= set(every)
        detailed = c.admin.command({"getParameter": {"showDetails": True}, "cursorTimeoutMillis": 1})
        assert detailed["cursorTimeoutMillis"] == {"value": 600000, "settableAtRuntime": True,
                                                   "settableAtStartup": True}

    tea_call(d, "ModifyParameters", {"DBInstanceId": iid, "Parameters": json.dumps(
        {"setParameter.cursorTimeoutMillis": "300000", "operationProfiling.slowOpThresholdMs": "250"})})
    for r in on_every_member({"getParameter": 1, "cursorTimeoutMillis": 1}):
        assert r["cursorTimeoutMillis"] == 300000
    for r in on_every_member({"getCmdLineOpts": 1}):
        assert r["parsed"]["operationProfiling"]["slowOpThresholdMs"] == 250
        assert r["parsed"]["setParameter"]["cursorTimeoutMillis"] == "300000"
        assert r["parsed"]["replication"]["replSetName"] == a["ReplicaSetName"]
        assert r["parsed"]["net"]["maxIncomingConnections"] == 65536

    # Needs a restart: the old value runs until the rolling restart has run.
    tea_call(d, "ModifyParameters", {"DBInstanceId": iid, "Parameters": json.dumps(
        {"net.maxIncomingConnections": "20000"})})
    assert describe(d, iid)["DBInstanceStatus"] == "Rebooting"
    wait_status_long(d, iid, "Running")
    for r in on_every_member({"getCmdLineOpts": 1}):
        assert r["parsed"]["net"]["maxIncomingConnections"] == 20000
        assert r["parsed"]["setParameter"]["cursorTimeoutMillis"] == "300000"


def test_a_writer_and_a_reader_live_through_the_upgrade_of_a_replica_set(server):
    d = server
    iid = create_rs(d, kernel=OLD_44)
    target = newest_44(d)
    a = describe(d, iid)
    with client(rs_uri(a, retryWrites="true", w="majority")) as wc, \
            client(rs_uri(a, readPreference="secondaryPreferred")) as rc:
        w = Writer(wc.app.events, wc)
        r = Reader(rc.app.events)
        w.start()
        r.start()
        time.sleep(1.0)
        upgrade(d, iid)
        time.sleep(1.0)
        w.stop.set()
        r.stop.set()
        w.join(10)
        r.join(10)
        assert len(w.acked) > 50, (len(w.acked), w.errors[:5])
        assert r.reads > 20, r.errors[:5]
        check_exactly_once(wc.app.events, w)
        assert len(w.primaries) >= 2, f"the driver followed the new primary: {w.primaries}"
    a = describe(d, iid)
    assert a["CurrentKernelVersion"] == target
    assert set(member_versions(a).values()) == {release(target)}
    # Roles follow the election: the primary the driver writes to now.
    with client(rs_uri(a)) as c:
        c.admin.command("ping")
        now_primary = "%s:%d" % c.primary
    primaries = [f'{r["ConnectionDomain"]}:{r["ConnectionPort"]}' for r in roles(d, iid) if r["ReplicaSetRole"] == "Primary"]
    assert primaries == [now_primary]
    op = last_operation(d, iid)
    assert op["Status"] == "Succeeded"
    (window_s,) = report_windows_s(op)
    assert window_s > 0, "one stepdown hand-off"
    print(f"replica set: client longest gap {w.longest_gap_s:.3f} s, report window {window_s:.3f} s, acked {len(w.acked)}, unknown {len(w.unknown)}")
    assert abs(w.longest_gap_s - window_s) <= WINDOW_TOLERANCE_S, (w.longest_gap_s, window_s)


def test_a_writer_lives_through_restart_db_instance(server):
    d = server
    iid = create_rs(d)
    a = describe(d, iid)
    addrs = [f'{s["ConnectionDomain"]}:{s["ConnectionPort"]}' for s in a["ReplicaSets"]["ReplicaSet"]]

    def started() -> dict[str, float]:
        """When each member's process started: `localTime` minus `uptime` (plane time)."""
        out = {}
        for addr in addrs:
            with pymongo.MongoClient(f"mongodb://root:{quote_plus(PASSWORD)}@{addr}/?directConnection=true&authSource=admin",
                                     serverSelectionTimeoutMS=10_000) as c:
                st = c.admin.command("serverStatus")
                out[addr] = st["localTime"].timestamp() - st["uptime"]
        return out

    before = started()
    with client(rs_uri(a, retryWrites="true", w="majority")) as c:
        w = Writer(c.app.restarted, c)
        w.start()
        time.sleep(0.5)
        tea_call(d, "RestartDBInstance", {"DBInstanceId": iid})
        wait_status_long(d, iid, "Running")
        time.sleep(0.5)
        w.stop.set()
        w.join(10)
        assert len(w.acked) > 20, (len(w.acked), w.errors[:5])
        check_exactly_once(c.app.restarted, w)
        assert len(w.primaries) >= 2, f"the driver followed the new primary: {w.primaries}"
    after = started()
    # Every member listed restarted: its process started after the one before it.
    assert all(after[x] > before[x] + 1 for x in addrs), (before, after)
    assert last_operation(d, iid)["Status"] == "Succeeded"


def test_sharding_network_addresses_are_where_the_mongos_and_shard_members_answer(server):
    """`DescribeShardingNetworkAddress` (Tea V3 model-loaded, and legacy V1): every mongos address is one
    a driver reaches a mongos at; a shard's addresses are its members, the `Primary` one answering as
    the writable primary of that shard's replica set."""
    d = server
    iid = create_sharded(d)
    a = describe(d, iid)
    r = tea(d).describe_sharding_network_address(M.DescribeShardingNetworkAddressRequest(dbinstance_id=iid))
    body = load(M.DescribeShardingNetworkAddressResponseBody, r.body.to_map())
    listed = {(m["NodeId"], m["ConnectSting"], str(m["Port"])) for m in a["MongosList"]["MongosAttribute"]}
    got = {(n.node_id, n.network_address, n.port) for n in body.network_addresses.network_address}
    assert got == listed and all(n.node_type == "mongos" and n.network_type == "VPC"
                                 for n in body.network_addresses.network_address)
    for n in body.network_addresses.network_address:
        with client(f"mongodb://root:{quote_plus(PASSWORD)}@{n.network_address}:{n.port}/?authSource=admin") as c:
            assert c.admin.command("hello")["msg"] == "isdbgrid"

    shard = a["ShardList"]["ShardAttribute"][0]["NodeId"]
    req = LegacyShardingAddress()
    req.set_DBInstanceId(iid)
    req.set_NodeId(shard)
    members = legacy_json(d, req)["NetworkAddresses"]["NetworkAddress"]
    assert {m["NodeId"] for m in members} == {shard} and {m["NodeType"] for m in members} == {"shard"}
    [primary] = [m for m in members if m["Role"] == "Primary"]
    uri = (f'mongodb://root:{quote_plus(PASSWORD)}@{primary["NetworkAddress"]}:{primary["Port"]}'
           "/?directConnection=true&authSource=admin")
    with client(uri) as c:
        hello = c.admin.command("hello")
        assert hello["isWritablePrimary"] is True
        assert len({m["Port"] for m in members}) == len(members)

    tea_expect(lambda: tea(d).describe_sharding_network_address(M.DescribeShardingNetworkAddressRequest(
        dbinstance_id=iid, node_id="d-nothere0000")), "InvalidParameter", 400)


def test_a_writer_lives_through_the_upgrade_of_a_sharded_cluster_via_mongos(server):
    d = server
    iid = create_sharded(d)
    target = newest_44(d)
    a = describe(d, iid)
    mongos = a["MongosList"]["MongosAttribute"]
    assert len(mongos) == 2 and all(isinstance(m["Port"], int) for m in mongos)
    with client(mongos_uri(a, retryWrites="true", w="majority")) as c:
        assert c.admin.command("hello")["msg"] == "isdbgrid"
        shards = c.admin.command("listShards")["shards"]
        assert sorted(s["_id"] for s in shards) == sorted(s["ReplicaSetName"] for s in a["ShardList"]["ShardAttribute"])
        w = Writer(c.app.events, c)
        w.start()
        time.sleep(1.0)
        upgrade(d, iid)
        time.sleep(1.0)
        w.stop.set()
        w.join(10)
        assert len(w.acked) > 50, (len(w.acked), w.errors[:5])
        check_exactly_once(c.app.events, w)
        assert not w.errors, w.errors[:5]
    for m in mongos:
        with pymongo.MongoClient(f"mongodb://root:{quote_plus(PASSWORD)}@{m['ConnectSting']}:{m['Port']}"
                                 "/?directConnection=true&authSource=admin", serverSelectionTimeoutMS=10_000) as c:
            assert c.admin.command("buildInfo")["version"] == release(target)
    assert describe(d, iid)["CurrentKernelVersion"] == target


def port_refuses(addr: str) -> bool:
    """Whether connecting to `addr` is refused (within a few seconds)."""
    for _ in range(100):
        try:
            with pymongo.MongoClient(f"mongodb://{addr}/?directConnection=true", serverSelectionTimeoutMS=300) as m:
                m.admin.command("ping")
        except ConnectionFailure:
            return True
        time.sleep(0.05)
    return False


def test_a_failed_upgrade_loses_nothing_and_a_crashed_member_refuses_connections(server):
    d = server
    iid = create_rs(d, kernel=OLD_44)
    a = describe(d, iid)
    secondary = next(s for s in roles(d, iid) if s["ReplicaSetRole"] == "Secondary")
    addr = f'{secondary["ConnectionDomain"]}:{secondary["ConnectionPort"]}'
    tea_call(d, "DdsdArmFault", {"DBInstanceId": iid, "FaultType": "StartFails", "NodeId": secondary["RoleId"]},
             key=admin(d))
    with client(rs_uri(a, retryWrites="true", w="majority", wtimeoutMS="5000")) as c:
        coll = c.app.kept
        coll.insert_many([{"_id": i} for i in range(20)])
        tea_call(d, "UpgradeDBInstanceKernelVersion", {"DBInstanceId": iid})
        # While the new kernel crash-loops, the member is down: its port refuses connections.
        assert port_refuses(addr), "a process that is down refuses connections"
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and last_operation(d, iid)["Status"] not in ("Failed", "Succeeded"):
            time.sleep(0.2)
        op = last_operation(d, iid)
        assert op["Status"] == "Failed", op["Status"]
        # The primary was never touched; everything written is there, and more can be written.
        assert sorted(x["_id"] for x in coll.find()) == list(range(20))
        coll.insert_one({"_id": 20})
        tea_call(d, "DdsdClearFaults", {"DBInstanceId": iid}, key=admin(d))

        # A crash with no restart: the member never comes back and refuses connections, while a
        # majority (primary and hidden member) still acknowledges w:"majority" writes.
        wait_status_long(d, iid, "Running")
        tea_call(d, "DdsdArmFault", {"DBInstanceId": iid, "FaultType": "Crash", "NodeId": secondary["RoleId"]},
                 key=admin(d))
        assert port_refuses(addr)
        coll.insert_one({"_id": 21})
        assert coll.count_documents({}) == 22


def test_a_refused_stepdown_and_a_crash_as_the_driver_sees_them(server):
    d = server
    iid = create_rs(d)
    a = describe(d, iid)
    primary = next(s for s in roles(d, iid) if s["ReplicaSetRole"] == "Primary")
    tea_call(d, "DdsdArmFault", {"DBInstanceId": iid, "FaultType": "StepDownRefused", "NodeId": iid}, key=admin(d))
    with client(rs_uri(a, retryWrites="true")) as c:
        with pytest.raises(OperationFailure) as e:
            c.admin.command("replSetStepDown", 60)
        assert e.value.code == 262  # ExceededTimeLimit: no electable secondary caught up
        tea_call(d, "DdsdClearFaults", {"DBInstanceId": iid}, key=admin(d))
        before = c.primary
        c.admin.command("replSetStepDown", 60)
        c.app.after.insert_one({"_id": 1})  # a retryable write finds the new primary
        assert c.primary != before
        tea_call(d, "DdsdArmFault", {"DBInstanceId": iid, "FaultType": "Crash", "NodeId": primary["RoleId"],
                                     "RecoverAfterSeconds": "20"}, key=admin(d))
        c.app.after.insert_one({"_id": 2})
        assert sorted(x["_id"] for x in c.app.after.find()) == [1, 2]


def test_kill_9_mid_upgrade_keeps_the_ports_and_every_majority_write(tmp_path):
    factory = DdsdFactory(tmp_path)
    data = tmp_path / "data"
    d = factory.start("first", data_dir=data, extra_args=["--sim-speed", SPEED])
    iid = create_rs(d, kernel=OLD_44)
    a = describe(d, iid)
    ports = sorted(s["ConnectionPort"] for s in a["ReplicaSets"]["ReplicaSet"])
    acked = []
    with client(rs_uri(a, retryWrites="true", w="majority")) as c:
        for i in range(30):
            c.app.durable.insert_one({"_id": i})
            acked.append(i)
        tea_call(d, "UpgradeDBInstanceKernelVersion", {"DBInstanceId": iid})
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            try:
                c.app.durable.insert_one({"_id": len(acked)})
                acked.append(len(acked))
            except PyMongoError:
                break
    import signal
    d.stop(signal.SIGKILL)
    d2 = factory.start("second", data_dir=data, extra_args=["--sim-speed", SPEED])
    try:
        a2 = describe(d2, iid)
        assert sorted(s["ConnectionPort"] for s in a2["ReplicaSets"]["ReplicaSet"]) == ports
        wait_status_long(d2, iid, "Running")
        with client(rs_uri(describe(d2, iid))) as c:
            have = {x["_id"] for x in c.app.durable.find()}
        assert set(acked) <= have, sorted(set(acked) - have)[:10]
        assert last_operation(d2, iid)["Status"] == "Succeeded"
    finally:
        factory.stop_all()
