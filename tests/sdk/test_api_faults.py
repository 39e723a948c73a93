"""Injected API errors (`DdsdArmApiFault`, docs/extensions.md) seen through the official SDKs: an
armed fault answers the next `Count` calls of its action with the chosen error, in the client's own
exception types; the Tea SDK's retry options ride it out, honouring `RetryAfterMs`; an injected
refusal changes nothing, and once spent the real action runs again.
"""

from __future__ import annotations

import time

import pytest
from aliyunsdkcore.acs_exception.exceptions import ServerException as LegacyServerException
from aliyunsdkdds.request.v20151201.UpgradeDBInstanceKernelVersionRequest import (
    UpgradeDBInstanceKernelVersionRequest as LegacyUpgrade,
)
from alibabacloud_dds20151201 import models as M
from alibabacloud_dds20151201.client import Client as TeaDdsClient
from alibabacloud_tea_openapi.exceptions import ClientException, ServerException, ThrottlingException
from alibabacloud_tea_openapi.utils_models import Config as TeaConfig
from darabonba.policy.retry import RetryOptions
from darabonba.runtime import RuntimeOptions

from test_instances import REGION, attribute, create_rs, legacy, legacy_prepare, start_fast, tea, tea_call, wait_status


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    factory, d = start_fast(tmp_path_factory, "api-faults")
    yield d
    factory.stop_all()


def admin(d) -> tuple[str, str]:
    assert d.admin_key_id, "the harness read the admin key"
    return d.admin_key_id, d.admin_key_secret


def arm(d, **params) -> dict:
    return tea_call(d, "DdsdArmApiFault", params, key=admin(d))["ApiFault"]


def listed(d) -> dict[str, dict]:
    faults = tea_call(d, "DdsdDescribeApiFaults", {}, key=admin(d))["ApiFaults"]["ApiFault"]
    return {f["FaultId"]: f for f in faults}


@pytest.fixture(autouse=True)
def _clear(server):
    yield
    tea_call(server, "DdsdClearApiFaults", {}, key=admin(server))


def test_an_injected_5xx_answers_count_calls_of_one_instance_then_the_action_runs(server):
    rs = create_rs(server)
    other = create_rs(server)
    wait_status(server, rs, "Running")
    wait_status(server, other, "Running")
    fault = arm(server, TargetAction="DescribeDBInstanceAttribute", DBInstanceId=rs, ErrorCode="ServiceUnavailable",
                Count=2)
    assert (fault["HttpStatus"], fault["Remaining"], fault["Fired"]) == (503, 2, 0)
    for _ in range(2):
        with pytest.raises(ServerException) as info:
            attribute(server, rs)
        assert (info.value.code, info.value.status_code) == ("ServiceUnavailable", 503)
        # Another instance, and another action on the same one, are untouched.
        assert attribute(server, other).dbinstance_status == "Running"
        tea(server).describe_dbinstances(M.DescribeDBInstancesRequest(dbinstance_id=rs))
    assert attribute(server, rs).dbinstance_status == "Running"
    assert (listed(server)[fault["FaultId"]]["Fired"], listed(server)[fault["FaultId"]]["Remaining"]) == (2, 0)


def test_tea_retry_options_ride_out_injected_throttling_waiting_retry_after(server):
    fault = arm(server, TargetAction="DescribeRegions", ErrorCode="Throttling.User", Count=2, RetryAfterMs=250)
    cfg = TeaConfig(access_key_id=server.key_id, access_key_secret=server.key_secret, endpoint=server.endpoint,
                    protocol="http", region_id=REGION,
                    retry_options=RetryOptions({"retryable": True, "retryCondition": [
                        {"errorCode": ["Throttling.User"], "maxAttempts": 3}]}))
    started = time.monotonic()
    r = TeaDdsClient(cfg).describe_regions(M.DescribeRegionsRequest())
    assert r.status_code == 200 and r.body.regions.dds_region
    # Two throttled attempts, each followed by the announced 250 ms wait, then the real answer.
    assert time.monotonic() - started >= 0.5
    assert listed(server)[fault["FaultId"]]["Fired"] == 2

    # Without retry options the SDK raises its throttling exception carrying the wait.
    arm(server, TargetAction="*", ErrorCode="Throttling.User", RetryAfterMs=250)
    with pytest.raises(ThrottlingException) as info:
        tea(server).describe_regions(M.DescribeRegionsRequest())
    assert (info.value.code, info.value.status_code, info.value.retry_after) == ("Throttling.User", 400, 250)


def test_an_injected_refusal_changes_nothing_and_a_custom_code_reaches_the_legacy_sdk(server):
    rs = create_rs(server)
    wait_status(server, rs, "Running")
    arm(server, TargetAction="UpgradeDBInstanceKernelVersion", ErrorCode="OperationDenied.DBInstanceStatus")
    arm(server, TargetAction="UpgradeDBInstanceKernelVersion", ErrorCode="Task.Conflict", HttpStatus=409,
        Message="Another task is running on the instance.")
    req = LegacyUpgrade()
    req.set_DBInstanceId(rs)
    seen = []
    for fmt in ("JSON", "XML"):
        with pytest.raises(LegacyServerException) as info:
            legacy(server).do_action_with_exception(legacy_prepare(server, req, fmt))
        seen.append((info.value.get_error_code(), info.value.get_http_status(), info.value.get_error_msg()))
        assert attribute(server, rs).dbinstance_status == "Running"
    assert seen == [
        ("OperationDenied.DBInstanceStatus", 403, "The operation is not permitted due to status of instance."),
        ("Task.Conflict", 409, "Another task is running on the instance."),
    ]
    ops = tea_call(server, "DdsdDescribeOperations", {"DBInstanceId": rs}, key=admin(server))
    assert [o["Action"] for o in ops["Operations"]["Operation"]] == ["CreateDBInstance"]
    # Both spent: the real handler answers (the instance already runs the newest kernel).
    with pytest.raises(LegacyServerException) as info:
        legacy(server).do_action_with_exception(legacy_prepare(server, req))
    assert info.value.get_error_code() == "InvalidMinorVersionAlreadyLatest"


def test_only_the_admin_key_arms_and_bad_arms_are_refused(server):
    with pytest.raises(ClientException) as info:
        tea_call(server, "DdsdArmApiFault", {"TargetAction": "*", "ErrorCode": "InternalError"})
    assert (info.value.code, info.value.status_code) == ("Forbidden.RAM", 403)
    for params in (
        {"TargetAction": "DdsdDescribeApiFaults", "ErrorCode": "InternalError"},
        {"TargetAction": "*", "ErrorCode": "No.Such.Code"},
        {"TargetAction": "*", "ErrorCode": "InternalError", "Count": "0"},
    ):
        with pytest.raises(ClientException) as info:
            tea_call(server, "DdsdArmApiFault", params, key=admin(server))
        assert (info.value.code, info.value.status_code) == ("InvalidParameter", 400), params
    assert listed(server) == {}
    assert tea(server).describe_regions(M.DescribeRegionsRequest()).status_code == 200


def test_an_injected_delay_trips_the_clients_read_timeout_or_just_slows_the_answer(server):
    arm(server, TargetAction="DescribeRegions", DelayMs=3000)
    started = time.monotonic()
    with pytest.raises(Exception) as info:
        tea(server).describe_regions_with_options(M.DescribeRegionsRequest(), RuntimeOptions(read_timeout=500))
    assert "timed out" in str(info.value).lower() or "timeout" in type(info.value).__name__.lower(), info.value
    assert time.monotonic() - started < 2.5

    # A delay without an error: the real answer, late.
    fault = arm(server, TargetAction="DescribeRegions", DelayMs=400)
    started = time.monotonic()
    r = tea(server).describe_regions(M.DescribeRegionsRequest())
    assert r.status_code == 200 and r.body.regions.dds_region
    assert time.monotonic() - started >= 0.4
    assert listed(server)[fault["FaultId"]]["Fired"] == 1
