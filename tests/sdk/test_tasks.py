"""The task center end to end: DescribeHistoryTasks and DescribeHistoryTasksStat through the official
Python SDKs (Tea, V3 signatures; legacy aliyun-python-sdk-core + aliyun-python-sdk-dds, V1).

What a user relies on: every operation ddsd runs is a task with the vendor's `TaskType`, `Status`, a
`Progress` percentage that moves while a rolling upgrade runs and reads 100 at the end, start and end
times; the filters (instance, task id, type, status, time range) and paging work; the statistics count
the same tasks; refusals come with the vendor's codes. Every response is loaded into the SDK's model.
"""

from __future__ import annotations

import json
import time

import pytest
from aliyunsdkdds.request.v20151201.DescribeHistoryTasksRequest import DescribeHistoryTasksRequest as LegacyTasks
from aliyunsdkdds.request.v20151201.DescribeHistoryTasksStatRequest import (
    DescribeHistoryTasksStatRequest as LegacyTasksStat,
)
from alibabacloud_dds20151201 import models as M

from test_instances import legacy_json, load, start_fast, tea, wait_status
from test_instances_errors import legacy_expect, tea_expect
from test_upgrade import pinned_rs, pinned_sharded, running

# Slow enough that an upgrade's progress can be watched between polls.
SPEED = "100"
FROM, TO = "2000-01-01T00:00:00Z", "2099-12-31T23:59:59Z"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    factory, d = start_fast(tmp_path_factory, "tasks", speed=SPEED)
    yield d
    factory.stop_all()


def tasks(d, v1: bool = False, **kw) -> M.DescribeHistoryTasksResponseBody:
    req = M.DescribeHistoryTasksRequest(from_start_time=kw.pop("from_start_time", FROM),
                                        to_start_time=kw.pop("to_start_time", TO), **kw)
    r = tea(d, v1=v1).describe_history_tasks(req)
    assert r.status_code == 200
    return load(M.DescribeHistoryTasksResponseBody, r.body.to_map())


def stat(d, **kw) -> dict[str, int]:
    r = tea(d).describe_history_tasks_stat(M.DescribeHistoryTasksStatRequest(from_start_time=FROM, to_start_time=TO, **kw))
    body = load(M.DescribeHistoryTasksStatResponseBody, r.body.to_map())
    return {i.status: i.total_count for i in body.items}


def test_an_upgrade_is_a_task_whose_progress_moves(server):
    sh = pinned_sharded(server)
    running(server, sh)
    [create] = tasks(server, instance_id=sh).items
    assert (create.task_type, create.status, create.progress, create.remain_time) == ("CreateIns", "Succeed", 100.0, 0)
    assert (create.instance_id, create.product, create.db_type, create.instance_type) == (sh, "dds", "mongodb", "Instance")
    assert create.start_time <= create.end_time

    tea(server).upgrade_dbinstance_kernel_version(M.UpgradeDBInstanceKernelVersionRequest(dbinstance_id=sh))
    seen: list[float] = []
    deadline = time.monotonic() + 60
    while True:
        [t] = tasks(server, instance_id=sh, task_type="KernelVersionUpgrade").items
        if not seen or seen[-1] != t.progress:
            seen.append(t.progress)
        if t.status == "Succeed":
            break
        assert t.status in ("Scheduled", "Running"), t.to_map()
        assert t.end_time is None
        assert time.monotonic() < deadline, seen
        time.sleep(0.02)
    assert seen[-1] == 100.0 and seen == sorted(seen), seen
    assert len([p for p in seen if 0 < p < 100]) >= 2, f"progress moves: {seen}"
    assert t.remain_time == 0 and t.end_time >= t.start_time
    assert json.loads(t.task_detail)["Action"] == "UpgradeDBInstanceKernelVersion"
    wait_status(server, sh, "Running")

    # Filters and paging.
    both = tasks(server, instance_id=sh, status="Succeed")
    assert both.total_count == 2 and [i.task_type for i in both.items] == ["KernelVersionUpgrade", "CreateIns"]
    assert tasks(server, task_id=t.task_id).items[0].task_id == t.task_id
    assert tasks(server, instance_id=sh, status="Failed,Running").total_count == 0
    assert tasks(server, instance_id=sh, to_start_time="2000-01-02T00:00:00Z").total_count == 0
    page = tasks(server, instance_id=sh, page_size=10, page_number=2)
    assert (page.total_count, page.items, page.page_number, page.page_size) == (2, [], 2, 10)
    assert stat(server, instance_id=sh) == {"Succeed": 2}


def test_switch_restart_and_legacy_v1(server):
    rs = pinned_rs(server)
    running(server, rs)
    tea(server).switch_dbinstance_ha(M.SwitchDBInstanceHARequest(dbinstance_id=rs))
    wait_status(server, rs, "Running")
    tea(server).restart_dbinstance(M.RestartDBInstanceRequest(dbinstance_id=rs))
    wait_status(server, rs, "Running")

    types = [i.task_type for i in tasks(server, v1=True, instance_id=rs).items]
    assert types == ["RestartIns", "HaSwitch", "CreateIns"]

    req = LegacyTasks()
    req.set_FromStartTime(FROM)
    req.set_ToStartTime(TO)
    req.set_InstanceId(rs)
    req.set_TaskType("HaSwitch")
    body = legacy_json(server, req)
    load(M.DescribeHistoryTasksResponseBody, body)
    assert body["TotalCount"] == 1 and body["Items"][0]["Status"] == "Succeed"
    assert json.loads(body["Items"][0]["TaskDetail"])["Action"] == "SwitchDBInstanceHA"

    req = LegacyTasksStat()
    req.set_FromStartTime(FROM)
    req.set_ToStartTime(TO)
    req.set_InstanceId(rs)
    body = legacy_json(server, req)
    load(M.DescribeHistoryTasksStatResponseBody, body)
    assert body["Items"] == [{"Status": "Succeed", "TotalCount": 3}]

    req.set_Status("Done")
    legacy_expect(server, req, "InvalidParameter", 400, "Status")


def test_refusals(server):
    tea_expect(lambda: tea(server).describe_history_tasks(M.DescribeHistoryTasksRequest(to_start_time=TO)),
               "MissingFromStartTime", 400)
    tea_expect(lambda: tea(server).describe_history_tasks(M.DescribeHistoryTasksRequest(
        from_start_time=FROM, to_start_time=TO, page_size=5)), "InvalidParameter", 400)
    tea_expect(lambda: tea(server).describe_history_tasks(M.DescribeHistoryTasksRequest(
        from_start_time=TO, to_start_time=FROM)), "InvalidParameter", 400)
    tea_expect(lambda: tea(server).describe_history_tasks_stat(M.DescribeHistoryTasksStatRequest(
        from_start_time=FROM, to_start_time=TO, task_type="Upgrade")), "InvalidParameter", 400)
