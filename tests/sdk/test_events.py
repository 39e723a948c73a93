"""Scheduled O&M events end to end, through the official Python SDKs (Tea, V3 signatures; legacy
aliyun-python-sdk-core + aliyun-python-sdk-dds, V1) against a real ddsd.

What a user relies on:
- publishing a kernel with `Rollout=Scheduled` creates one minor-version-upgrade event
  (`rds_apsaradb_upgrade`, status 3) for exactly the instances of that engine version on an older
  kernel, switching at the instance's next maintenance window — or at the account's O&M cycle when
  one is in effect;
- a moved event does not start before its new time, a cancelled one never starts, the others start
  their rolling upgrade at their switch time and end succeeded (5) with the instance on the kernel;
- a manual upgrade closes an instance's waiting event; events survive a restart of ddsd;
- refusals (`InvalidParameter` naming the parameter, `Missing*`) change nothing.
"""

from __future__ import annotations

import signal
import time
from datetime import datetime, timedelta, timezone

import pytest
from aliyunsdkdds.request.v20151201.CancelActiveOperationTasksRequest import CancelActiveOperationTasksRequest
from aliyunsdkdds.request.v20151201.DescribeActiveOperationMaintenanceConfigRequest import (
    DescribeActiveOperationMaintenanceConfigRequest,
)
from aliyunsdkdds.request.v20151201.DescribeActiveOperationTaskCountRequest import (
    DescribeActiveOperationTaskCountRequest,
)
from aliyunsdkdds.request.v20151201.DescribeActiveOperationTaskRegionRequest import (
    DescribeActiveOperationTaskRegionRequest,
)
from aliyunsdkdds.request.v20151201.DescribeActiveOperationTaskRequest import DescribeActiveOperationTaskRequest
from aliyunsdkdds.request.v20151201.DescribeActiveOperationTasksRequest import DescribeActiveOperationTasksRequest
from aliyunsdkdds.request.v20151201.DescribeActiveOperationTaskTypeRequest import (
    DescribeActiveOperationTaskTypeRequest,
)
from aliyunsdkdds.request.v20151201.ModifyActiveOperationMaintenanceConfigRequest import (
    ModifyActiveOperationMaintenanceConfigRequest,
)
from aliyunsdkdds.request.v20151201.ModifyActiveOperationTasksRequest import ModifyActiveOperationTasksRequest
from alibabacloud_dds20151201 import models as M

from test_instances import REGION, attribute, create_rs, legacy_json, load, start_fast, tea, tea_call, wait_status
from test_instances_errors import legacy_expect, tea_expect
from test_instances_extensions import cli
from test_upgrade import OLD_44, admin, check_last_operation, operations, pinned_rs, pinned_sharded, running

SPEED = "500"
NEW_44 = "mongodb_20261201_4.4.30"
NEW_50 = "5.0.30-20261201000000_0"
FMT = "%Y-%m-%dT%H:%M:%SZ"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    factory, d = start_fast(tmp_path_factory, "events", speed=SPEED)
    d.factory = factory
    yield d
    factory.stop_all()


def utc(s: str) -> datetime:
    return datetime.strptime(s, FMT).replace(tzinfo=timezone.utc)


def at(t: datetime) -> str:
    return t.strftime(FMT)


def events(d, **q) -> dict[str, M.DescribeActiveOperationTasksResponseBodyItems]:
    """Every event by instance, checked against the SDK model."""
    r = tea(d).describe_active_operation_tasks(M.DescribeActiveOperationTasksRequest(**q))
    body = load(M.DescribeActiveOperationTasksResponseBody, r.body.to_map())
    assert body.total_record_count == len(body.items)
    return {i.ins_name: i for i in body.items}


def all_events(d) -> list[M.DescribeActiveOperationTasksResponseBodyItems]:
    r = tea(d).describe_active_operation_tasks(M.DescribeActiveOperationTasksRequest(page_size=100))
    return load(M.DescribeActiveOperationTasksResponseBody, r.body.to_map()).items


def publish(d, engine: str, kernel: str, **extra) -> list[int]:
    body = tea_call(d, "DdsdPublishKernelVersion", {
        "EngineVersion": engine, "KernelVersion": kernel, "ReleaseNote": "scheduled rollout",
        "ReleaseDate": "2026-12-02", "Rollout": "Scheduled", **extra}, key=admin(d))
    return body["TaskIds"]


def wait_event(d, iid: str, status: int, timeout_s: float = 60) -> M.DescribeActiveOperationTasksResponseBodyItems:
    deadline = time.monotonic() + timeout_s
    seen = None
    while time.monotonic() < deadline:
        seen = events(d).get(iid)
        if seen and seen.status == status:
            return seen
        time.sleep(0.2)
    pytest.fail(f"event of {iid}: {seen and seen.to_map()}, expected status {status}")


def test_a_scheduled_rollout_upgrades_the_instances_at_their_switch_time(server):
    a, b, c = (pinned_rs(server) for _ in range(3))
    sh = pinned_sharded(server)
    other = create_rs(server, engine_version="5.0")
    running(server, a, b, c, sh, other)
    assert events(server) == {}

    # Far enough ahead for the listings, refusals, the move and the cancel below on a loaded machine.
    switch = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=30)
    ids = publish(server, "4.4", NEW_44, SwitchTime=at(switch))
    assert len(ids) == 4
    ev = events(server)
    # Exactly the 4.4 instances on an older kernel; the 5.0 instance has none.
    assert set(ev) == {a, b, c, sh}
    for iid, e in ev.items():
        assert (e.status, e.task_type, e.allow_cancel, e.allow_change) == (3, "rds_apsaradb_upgrade", "1", "1")
        assert e.switch_time == at(switch) and utc(e.deadline) == switch + timedelta(days=14)
        assert NEW_44 in e.task_params and e.db_version == "4.4" and e.region == REGION
    assert sorted(e.id for e in ev.values()) == sorted(ids)

    # The counts and the other listings.
    r = tea(server).describe_active_operation_task_count(M.DescribeActiveOperationTaskCountRequest())
    assert load(M.DescribeActiveOperationTaskCountResponseBody, r.body.to_map()).task_count == 4
    r = tea(server).describe_active_operation_task_type(M.DescribeActiveOperationTaskTypeRequest())
    types = load(M.DescribeActiveOperationTaskTypeResponseBody, r.body.to_map()).type_list
    assert [(t.task_type, t.count) for t in types] == [("rds_apsaradb_upgrade", 4)]
    r = tea(server).describe_active_operation_task(M.DescribeActiveOperationTaskRequest(region="all", task_type="all"))
    assert len(load(M.DescribeActiveOperationTaskResponseBody, r.body.to_map()).items) == 4
    assert events(server, ins_name=a).keys() == {a}
    r = tea(server).describe_active_operation_task_region(
        M.DescribeActiveOperationTaskRegionRequest(task_type="rds_apsaradb_upgrade"))
    regions = load(M.DescribeActiveOperationTaskRegionResponseBody, r.body.to_map()).region_list
    assert [(x.region, x.count) for x in regions] == [(REGION, 4)]
    tea_expect(lambda: tea(server).describe_active_operation_task_region(
        M.DescribeActiveOperationTaskRegionRequest()), "MissingTaskType", 400)
    assert events(server, status=5) == {}

    # Refusals change nothing.
    late = at(switch + timedelta(days=15))
    tea_expect(lambda: tea(server).modify_active_operation_tasks(M.ModifyActiveOperationTasksRequest(
        ids=str(ev[c].id), switch_time=late)), "InvalidParameter", 400)
    tea_expect(lambda: tea(server).modify_active_operation_tasks(M.ModifyActiveOperationTasksRequest(
        ids=str(ev[c].id), switch_time="2020-01-01T00:00:00Z")), "InvalidParameter", 400)
    tea_expect(lambda: tea(server).modify_active_operation_tasks(M.ModifyActiveOperationTasksRequest(
        ids=f"{ev[c].id},999999", switch_time=at(switch + timedelta(days=1)))), "InvalidParameter", 400)
    tea_expect(lambda: tea(server).modify_active_operation_tasks(M.ModifyActiveOperationTasksRequest(
        ids="one", switch_time=at(switch))), "InvalidParameter", 400)
    tea_expect(lambda: tea(server).modify_active_operation_tasks(M.ModifyActiveOperationTasksRequest(
        ids=str(ev[c].id))), "MissingSwitchTime", 400)
    tea_expect(lambda: tea(server).cancel_active_operation_tasks(M.CancelActiveOperationTasksRequest(
        ids=f"{ev[a].id},999999")), "InvalidParameter", 400)
    assert {i: (e.status, e.switch_time) for i, e in events(server).items()} == {
        i: (3, at(switch)) for i in (a, b, c, sh)}

    # Move one a day later, cancel one.
    later = switch + timedelta(days=1)
    r = tea(server).modify_active_operation_tasks(M.ModifyActiveOperationTasksRequest(
        ids=str(ev[c].id), switch_time=at(later)))
    assert load(M.ModifyActiveOperationTasksResponseBody, r.body.to_map()).ids == str(ev[c].id)
    r = tea(server).cancel_active_operation_tasks(M.CancelActiveOperationTasksRequest(ids=str(ev[a].id)))
    assert load(M.CancelActiveOperationTasksResponseBody, r.body.to_map()).ids == str(ev[a].id)
    assert datetime.now(timezone.utc) < switch, "the moves came after the switch time: the test is too slow"
    ev = events(server)
    assert (ev[c].status, ev[c].switch_time, ev[a].status, ev[a].allow_cancel) == (3, at(later), 7, "0")
    tea_expect(lambda: tea(server).cancel_active_operation_tasks(M.CancelActiveOperationTasksRequest(
        ids=str(ev[a].id))), "InvalidParameter", 400)

    # Nothing starts before the switch time.
    while datetime.now(timezone.utc) < switch - timedelta(seconds=2):
        assert all(e.status in (3, 7) for e in events(server).values())
        assert all(attribute(server, i).dbinstance_status == "Running" for i in (a, b, c, sh))
        time.sleep(0.5)
    # At it, b and the sharded cluster upgrade.
    for iid in (b, sh):
        e = wait_event(server, iid, 5, timeout_s=90)
        assert utc(e.start_time) >= switch and "operation" in e.result_info
        wait_status(server, iid, "Running")
        assert attribute(server, iid).current_kernel_version == NEW_44
        check_last_operation(server, iid, "UpgradeDBInstanceKernelVersion")
    # The moved and the cancelled ones did not.
    ev = events(server)
    assert (ev[c].status, ev[a].status) == (3, 7)
    for iid in (a, c):
        assert attribute(server, iid).current_kernel_version == OLD_44
        assert [o["Action"] for o in operations(server, iid)] == ["CreateDBInstance"]

    # A manual upgrade closes c's waiting event.
    tea(server).upgrade_dbinstance_kernel_version(M.UpgradeDBInstanceKernelVersionRequest(dbinstance_id=c))
    wait_status(server, c, "Running")
    e = wait_event(server, c, 5)
    assert NEW_44 in e.result_info
    r = tea(server).describe_active_operation_task(M.DescribeActiveOperationTaskRequest(
        region=REGION, task_type="rds_apsaradb_upgrade", is_history=1))
    hist = load(M.DescribeActiveOperationTaskResponseBody, r.body.to_map()).items
    assert sorted((i.ins_name, i.status) for i in hist) == sorted([(a, 7), (b, 5), (c, 5), (sh, 5)])


def test_a_standalone_gets_no_event(server):
    # ddsd does not upgrade a single-node instance in place (OperationDenied.DBInstanceType): an event
    # could only fail. Standalones exist on 4.0 only.
    solo = create_rs(server, engine_version="4.0", dbinstance_class="dds.sn2.standard.1", replication_factor="1")
    rs40 = tea_call(server, "DdsdCreateDBInstance", {
        "RegionId": REGION, "EngineVersion": "4.0", "DBInstanceClass": "dds.mongo.mid",
        "DBInstanceStorage": "20", "KernelVersion": "mongodb_20220518_4.0.21"}, key=admin(server))["DBInstanceId"]
    running(server, solo, rs40)
    ids = publish(server, "4.0", "mongodb_20261201_4.0.30")
    assert [e.ins_name for e in all_events(server) if e.id in ids] == [rs40]


def test_the_maintenance_window_and_the_accounts_cycle_set_the_switch_time(server):
    r = tea(server).describe_active_operation_maintenance_config(M.DescribeActiveOperationMaintenanceConfigRequest())
    assert load(M.DescribeActiveOperationMaintenanceConfigResponseBody, r.body.to_map()).has_config == 0
    five = create_rs(server, engine_version="5.0")
    running(server, five)
    tea(server).modify_dbinstance_maintain_time(M.ModifyDBInstanceMaintainTimeRequest(
        dbinstance_id=five, maintain_start_time="03:00Z", maintain_end_time="04:00Z"))

    # Refusals first.
    base = dict(cycle_type="Week", cycle_time="1,2,3,4,5,6,7", maintain_start_time="05:00Z",
                maintain_end_time="06:00Z", status=1)
    for bad, name in [(dict(cycle_type="Day"), "CycleType"), (dict(cycle_time="8"), "CycleTime"),
                      (dict(maintain_start_time="5:00"), "MaintainStartTime"),
                      (dict(maintain_end_time="04:00Z"), "MaintainEndTime"), (dict(status=3), "Status")]:
        e = tea_expect(lambda: tea(server).modify_active_operation_maintenance_config(
            M.ModifyActiveOperationMaintenanceConfigRequest(**{**base, **bad})), "InvalidParameter", 400)
        assert name in e.message
    r = tea(server).describe_active_operation_maintenance_config(M.DescribeActiveOperationMaintenanceConfigRequest())
    assert r.body.has_config == 0

    # No cycle in effect: the instance's window. Both 5.0 instances of this module (the other one
    # from the first test) are on an older kernel.
    now = datetime.now(timezone.utc)
    ids = publish(server, "5.0", NEW_50)
    assert len(ids) == 2
    first = {e.ins_name: e for e in all_events(server) if e.id in ids}
    want = now.replace(hour=3, minute=0, second=0, microsecond=0)
    if want <= now:
        want += timedelta(days=1)
    assert first[five].switch_time == at(want)

    # The account's cycle, every day at 05:00Z, decides from now on, for every instance.
    r = tea(server).modify_active_operation_maintenance_config(
        M.ModifyActiveOperationMaintenanceConfigRequest(**base))
    load(M.ModifyActiveOperationMaintenanceConfigResponseBody, r.body.to_map())
    r = tea(server).describe_active_operation_maintenance_config(M.DescribeActiveOperationMaintenanceConfigRequest())
    cfg = load(M.DescribeActiveOperationMaintenanceConfigResponseBody, r.body.to_map())
    assert cfg.has_config == 1
    assert (cfg.config.cycle_type, cfg.config.cycle_time, cfg.config.maintain_start_time,
            cfg.config.maintain_end_time, cfg.config.status) == ("Week", "1,2,3,4,5,6,7", "05:00:00Z", "06:00:00Z", 1)
    now = datetime.now(timezone.utc)
    ids = publish(server, "5.0", "5.0.31-20261202000000_0", ReleaseDate="2026-12-03")
    assert len(ids) == 2
    want = now.replace(hour=5, minute=0, second=0, microsecond=0)
    if want <= now:
        want += timedelta(days=1)
    assert {e.switch_time for e in all_events(server) if e.id in ids} == {at(want)}


def test_events_survive_a_restart_and_the_legacy_sdk_reads_and_moves_them(server):
    d2 = server.factory.start("events-restart", extra_args=["--sim-speed", SPEED])
    iid = pinned_rs(d2)
    running(d2, iid)
    switch = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=2)
    [eid] = publish(d2, "4.4", NEW_44, SwitchTime=at(switch))
    data_dir = d2.data_dir
    keys = (d2.admin_key_id, d2.admin_key_secret)
    d2.stop(signal.SIGKILL)
    d3 = server.factory.start("events-restart-2", data_dir=data_dir, extra_args=["--sim-speed", SPEED])
    d3.admin_key_id, d3.admin_key_secret = keys
    assert events(d3)[iid].id == eid and events(d3)[iid].status == 3

    # Legacy V1: every action once.
    body = legacy_json(d3, DescribeActiveOperationTasksRequest())
    assert [i["Id"] for i in body["Items"]] == [eid]
    req = DescribeActiveOperationTaskRequest()
    req.set_Region("all")
    req.set_TaskType("all")
    assert legacy_json(d3, req)["TotalRecordCount"] == 1
    assert legacy_json(d3, DescribeActiveOperationTaskCountRequest())["TaskCount"] == 1
    assert legacy_json(d3, DescribeActiveOperationTaskTypeRequest())["TypeList"][0]["Count"] == 1
    req = DescribeActiveOperationTaskRegionRequest()
    req.set_TaskType("rds_apsaradb_upgrade")
    assert legacy_json(d3, req)["RegionList"] == [{"Region": REGION, "Count": 1}]
    assert legacy_json(d3, DescribeActiveOperationMaintenanceConfigRequest())["HasConfig"] == 0
    req = ModifyActiveOperationMaintenanceConfigRequest()
    for k, v in dict(CycleType="Month", CycleTime="1,15", MaintainStartTime="01:00Z", MaintainEndTime="02:00Z",
                     Status="2").items():
        req.add_query_param(k, v)
    assert set(legacy_json(d3, req)) == {"RequestId"}
    req = ModifyActiveOperationTasksRequest()
    req.set_Ids(str(eid))
    req.add_query_param("SwitchTime", at(switch + timedelta(days=20)))
    legacy_expect(d3, req, "InvalidParameter", 400, "SwitchTime")
    # The CLI lists the event and moves it; the SDK sees the move.
    keys_env = {"ALIBABA_CLOUD_ACCESS_KEY_ID": d3.key_id, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": d3.key_secret}
    r = cli(d3, "events", env=keys_env)
    assert r.returncode == 0, r.stderr
    [line] = [ln for ln in r.stdout.splitlines() if iid in ln]
    assert line.split()[:3] == [str(eid), iid, "waiting"] and at(switch) in line
    moved = at(switch + timedelta(hours=1))
    r = cli(d3, "events", "--move-ids", str(eid), "--switch-time", moved, env=keys_env)
    assert r.returncode == 0 and f"moved {eid} to {moved}" in r.stdout, r.stderr
    assert events(d3)[iid].switch_time == moved
    r = cli(d3, "events", "--cancel", "999999", env=keys_env)
    assert r.returncode != 0 and "InvalidParameter" in r.stderr, (r.stdout, r.stderr)

    req = ModifyActiveOperationTasksRequest()
    req.set_Ids(str(eid))
    req.add_query_param("ImmediateStart", "1")
    assert legacy_json(d3, req)["Ids"] == str(eid)
    # Started at once: the upgrade runs and closes the event.
    e = wait_event(d3, iid, 5, timeout_s=90)
    assert e.result_info
    wait_status(d3, iid, "Running")
    assert attribute(d3, iid).current_kernel_version == NEW_44
    req = CancelActiveOperationTasksRequest()
    req.set_Ids(str(eid))
    legacy_expect(d3, req, "InvalidParameter", 400, "Ids")
