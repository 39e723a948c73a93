"""The `mongodb` data plane against a separate `ddsd sim-fleet` process: ddsd sees the deployments only
through MongoDB's wire protocol (the official Rust driver) and the hosts' agents, exactly as it would
real hosts, and the fleet's ground truth judges the result afterwards.

What a user relies on:
- the engine's invariants hold however ddsd, the fleet or an agent misbehaves: every process restarted
  exactly once, at most one election per replica set (a caught-up hand-off, never forced), no stop of a
  primary, a mongos always serving, the balancer as it was — after kill -9 of ddsd at random moments
  during 20 upgrades, after kill -9 of the fleet (hosts and agents) mid-upgrade, with agents that answer
  late or say they are busy;
- a host without the target kernel's binary is refused before anything happens, naming host and kernel;
- an application writing with retryable `w: majority` writes loses nothing through the upgrade;
- an agent key acts on its own host's process only, and unsigned or replayed agent requests are refused.
"""

from __future__ import annotations

import json
import random
import signal
import time
from urllib.parse import quote_plus

import pymongo
import pytest
from pymongo.errors import PyMongoError

import acs_raw
from conftest import DdsdFactory
from fleet import (
    AGENT_VERSION, MONGODB_FLEET_SPEED, PASSWORD, Fleet, FleetError, check_invariants, import_deployment, signed,
    start_mongodb_plane,
)
from test_instances import tea_call
from test_instances_errors import tea_expect
from test_instances import tea
from alibabacloud_dds20151201 import models as M

SPEED = MONGODB_FLEET_SPEED
OLD_44 = "mongodb_20211020_4.4.6"
TARGET_44 = "mongodb_20240119_4.4.19"
WAIT_S = 180.0


def status(d, iid: str) -> str:
    body = tea_call(d, "DescribeDBInstanceAttribute", {"DBInstanceId": iid})
    return body["DBInstances"]["DBInstance"][0]["DBInstanceStatus"]


def wait_running(d, iid: str, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    seen = None
    while time.monotonic() < deadline:
        try:
            seen = status(d, iid)
        except Exception as e:  # ddsd restarting
            seen = repr(e)
        if seen == "Running":
            return
        time.sleep(0.2)
    pytest.fail(f"{iid} stayed {seen}")


def last_operation(d, iid: str) -> dict:
    return tea_call(d, "DdsdDescribeOperations", {"DBInstanceId": iid})["Operations"]["Operation"][0]


def truth_of(d, fleet: Fleet, iid: str) -> dict:
    r = last_operation(d, iid)["Report"]
    return fleet.truth(fleet.deployments[iid]["DeploymentId"], r["StartedMs"], r["FinishedMs"])


def upgraded(d, fleet: Fleet, iid: str) -> None:
    op = last_operation(d, iid)
    assert (op["Action"], op["Status"]) == ("UpgradeDBInstanceKernelVersion", "Succeeded"), op
    a = tea_call(d, "DescribeDBInstanceAttribute", {"DBInstanceId": iid})["DBInstances"]["DBInstance"][0]
    assert a["CurrentKernelVersion"] == TARGET_44
    truth = truth_of(d, fleet, iid)
    check_invariants(truth)
    assert all(p["KernelVersion"] == TARGET_44 for p in truth["Processes"]), truth["Processes"]


@pytest.fixture
def world(tmp_path, request):
    # A test that makes ddsd wait on the wall clock (timeouts, retry backoff) runs the fleet slower,
    # so that its waits stay short in the deployment's time as they would be on real hosts.
    speed = getattr(request, "param", SPEED)
    fleet = Fleet(tmp_path / "fleet", tmp_path / "fleet" / "data", speed).start()
    factory = DdsdFactory(tmp_path)
    yield fleet, factory
    factory.stop_all()
    fleet.stop()


def test_twenty_upgrades_live_through_kill_9_of_ddsd_at_random_moments(world):
    fleet, factory = world
    data = factory.base / "ddsd-data"
    d = start_mongodb_plane(factory, "ddsd-0", data_dir=data)
    ids = [import_deployment(d, fleet, fleet.create("replicate", OLD_44)) for _ in range(16)]
    ids += [import_deployment(d, fleet, fleet.create("sharding", OLD_44)) for _ in range(4)]
    for iid in ids:
        tea_call(d, "UpgradeDBInstanceKernelVersion", {"DBInstanceId": iid})
    rng = random.Random(int(time.time()))
    for kill in range(1, 5):
        time.sleep(rng.uniform(0.2, 1.5))
        d.stop(signal.SIGKILL)
        d = start_mongodb_plane(factory, f"ddsd-{kill}", data_dir=data)
    for iid in ids:
        wait_running(d, iid)
    for iid in ids:
        upgraded(d, fleet, iid)


def test_the_fleet_killed_mid_upgrade_comes_back_and_the_upgrade_finishes(world):
    fleet, factory = world
    d = start_mongodb_plane(factory)
    iid = import_deployment(d, fleet, fleet.create("sharding", OLD_44))
    tea_call(d, "UpgradeDBInstanceKernelVersion", {"DBInstanceId": iid})
    # Hosts, agents and processes all gone at once, in the middle of a restart.
    time.sleep(0.8)
    assert status(d, iid) == "MinorVersionUpgrading"
    fleet.stop(signal.SIGKILL)
    time.sleep(1.0)
    assert status(d, iid) == "MinorVersionUpgrading", "nothing decided while the deployment is unreachable"
    fleet.start()
    wait_running(d, iid)
    upgraded(d, fleet, iid)


@pytest.mark.parametrize("world", ["20"], indirect=True)
def test_agents_that_answer_late_or_busy_slow_the_upgrade_but_break_nothing(world):
    fleet, factory = world
    # An agent call gives up after 1 s; one host's agent takes 3 s to answer its next call.
    d = start_mongodb_plane(factory, extra_config="[mongodb]\nagent_timeout_ms = 1000\n")
    m = fleet.create("replicate", OLD_44)
    iid = import_deployment(d, fleet, m)
    hosts = [a["Host"] for a in m["Agents"]]
    fleet.call("ArmAgentFault", Host=hosts[0], TargetAction="StopProcess", Kind="Delay", DelayMs=3000, Count=1)
    fleet.call("ArmAgentFault", Host=hosts[1], TargetAction="StartProcess", Kind="Busy", Count=3)
    tea_call(d, "UpgradeDBInstanceKernelVersion", {"DBInstanceId": iid})
    wait_running(d, iid)
    upgraded(d, fleet, iid)
    log = d.stderr_text()
    assert "OperationConflict" in log, "the busy agent was seen and retried"
    assert "timed out" in log or "operation timed out" in log or "error sending request" in log, \
        "the late agent was given up on and asked again"


def test_a_host_without_the_target_binary_is_refused_before_anything_restarts(world):
    fleet, factory = world
    d = start_mongodb_plane(factory)
    m = fleet.create("replicate", OLD_44)
    iid = import_deployment(d, fleet, m)
    host = m["Agents"][2]["Host"]
    assert fleet.call("RemoveKernel", Host=host, KernelVersion=TARGET_44)["Removed"] is True
    before = fleet.call("DescribeTruth", DeploymentId=m["DeploymentId"])
    e = tea_expect(
        lambda: tea(d).upgrade_dbinstance_kernel_version(M.UpgradeDBInstanceKernelVersionRequest(dbinstance_id=iid)),
        "IncorrectDBInstanceState", 403,
    )
    assert host in str(e) and TARGET_44 in str(e), e
    assert status(d, iid) == "Running"
    assert [o["Action"] for o in tea_call(d, "DdsdDescribeOperations", {"DBInstanceId": iid})["Operations"]["Operation"]] == []
    time.sleep(0.3)
    after = fleet.call("DescribeTruth", DeploymentId=m["DeploymentId"])
    assert [p["Restarts"] for p in after["Processes"]] == [p["Restarts"] for p in before["Processes"]] == [0, 0, 0]


def test_a_majority_writer_loses_nothing_through_a_mongodb_plane_upgrade(world):
    from test_wire import Writer, check_exactly_once

    fleet, factory = world
    d = start_mongodb_plane(factory)
    m = fleet.create("replicate", OLD_44)
    iid = import_deployment(d, fleet, m)
    uri = (f"mongodb://root:{quote_plus(PASSWORD)}@{m['SeedList']}/?authSource=admin"
           "&retryWrites=true&w=majority&heartbeatFrequencyMS=500&serverSelectionTimeoutMS=30000")
    with pymongo.MongoClient(uri) as mongo:
        coll = mongo.app.orders
        w = Writer(coll, mongo)
        w.start()
        time.sleep(0.5)
        tea_call(d, "UpgradeDBInstanceKernelVersion", {"DBInstanceId": iid})
        wait_running(d, iid)
        time.sleep(0.5)
        w.stop.set()
        w.join(10)
        assert len(w.acked) > 50, "the writer kept writing"
        assert len(w.primaries) >= 2, "it followed the stepdown to a new primary"
        check_exactly_once(coll, w)
    upgraded(d, fleet, iid)
    # The credentials the import was given are kept for the plane's use only.
    secrets = [PASSWORD] + [a["AccessKeySecret"] for a in m["Agents"]]
    shown = json.dumps(tea_call(d, "DescribeDBInstanceAttribute", {"DBInstanceId": iid}))
    shown += json.dumps(tea_call(d, "DdsdDescribeOperations", {"DBInstanceId": iid}))
    logs = d.stderr_text() + "".join(p.read_text() for p in fleet.workdir.glob("fleet-stderr-*.log"))
    for s in secrets:
        assert s not in shown and s not in logs


def test_an_agent_key_acts_on_its_own_host_only_and_requests_must_be_signed_once(world):
    fleet, _ = world
    m = fleet.create("replicate", OLD_44)
    a, b = m["Agents"][0], m["Agents"][1]
    endpoint = a["Endpoint"].removeprefix("http://")
    mine = signed(endpoint, a["AccessKeyId"], a["AccessKeySecret"], "DescribeHost", {})
    assert [p["Name"] for p in mine["Processes"]] == [a["Process"]]
    assert TARGET_44 in mine["Kernels"]
    with pytest.raises(FleetError) as e:
        signed(endpoint, a["AccessKeyId"], a["AccessKeySecret"], "StopProcess",
               {"ProcessName": b["Process"], "CommandId": "c-1"})
    assert (e.value.status, e.value.code) == (404, "InvalidProcessName.NotFound")
    # A wrong secret, then a replayed nonce.
    with pytest.raises(FleetError) as e:
        signed(endpoint, a["AccessKeyId"], "not-the-secret", "DescribeHost", {})
    assert e.value.code == "SignatureDoesNotMatch", e.value
    nonce = acs_raw.new_nonce()
    first = acs_raw.v3_post(endpoint, a["AccessKeyId"], a["AccessKeySecret"], "DescribeHost", [],
                            version=AGENT_VERSION, nonce=nonce)
    again = acs_raw.v3_post(endpoint, a["AccessKeyId"], a["AccessKeySecret"], "DescribeHost", [],
                            version=AGENT_VERSION, nonce=nonce)
    assert first.status == 200
    assert (again.status, json.loads(again.body)["Code"]) == (400, "SignatureNonceUsed"), again.body
    unsigned = acs_raw.send(endpoint, "POST", "/?Action=DescribeHost&Format=JSON&Version=" + AGENT_VERSION)
    assert unsigned.status == 400, unsigned.body
    assert json.loads(unsigned.body)["Code"] == "MissingSignature", unsigned.body
