"""`GET /metrics` read with the reference Prometheus text-format parser (`prometheus_client.parser`):
after a known sequence of calls — successes, refusals before and after the action is known, a
create and an upgrade through the runtime — every counter moved by exactly the expected amount.
"""

from __future__ import annotations

import time
import urllib.request

import acs_raw
from prometheus_client.parser import text_string_to_metric_families

from test_instances import start_fast, tea_call

OLDER_44 = "mongodb_20230310_4.4.14"


def scrape(d) -> dict[tuple[str, frozenset], float]:
    with urllib.request.urlopen(f"{d.url}/metrics", timeout=10) as r:
        assert r.status == 200
        assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


class Calls:
    """Signed V1 calls that remember how many of each (action, code) were made."""

    def __init__(self, d):
        self.d = d
        self.made: dict[tuple[str, str], int] = {}

    def call(self, action: str, params: list[tuple[str, str]], secret: str | None = None, key=None) -> dict:
        key_id, key_secret = key or (self.d.key_id, self.d.key_secret)
        pairs = acs_raw.v1_common_params(key_id, action) + params
        r = acs_raw.v1_get(self.d.endpoint, acs_raw.sign_v1("GET", pairs, secret or key_secret))
        body = r.json()
        code = "OK" if r.status == 200 else body["Code"]
        self.made[(action, code)] = self.made.get((action, code), 0) + 1
        return body


def test_counters_move_by_what_was_done(tmp_path_factory):
    factory, d = start_fast(tmp_path_factory, "metrics")
    try:
        admin = (d.admin_key_id, d.admin_key_secret)
        before = scrape(d)
        calls = Calls(d)
        for _ in range(3):
            calls.call("DescribeRegions", [])
        for _ in range(2):
            calls.call("DescribeRegions", [], secret="wrong")
        calls.call("DescribeDBInstanceAttribute", [("DBInstanceId", "dds-nope")])
        calls.call("NoSuchAction", [])

        # A replica set on an older kernel, then its upgrade, both driven by the runtime.
        created = tea_call(
            d,
            "DdsdCreateDBInstance",
            {
                "RegionId": "cn-hangzhou", "Engine": "MongoDB", "EngineVersion": "4.4",
                "DBInstanceClass": "dds.mongo.mid", "DBInstanceStorage": "20", "KernelVersion": OLDER_44,
            },
            key=admin,
        )
        rs = created["DBInstanceId"]

        def wait_running() -> None:
            deadline = time.monotonic() + 60
            while True:
                a = calls.call("DescribeDBInstanceAttribute", [("DBInstanceId", rs)])
                ops = calls.call("DdsdDescribeOperations", [("DBInstanceId", rs), ("MaxRecords", "1")])
                last = ops["Operations"]["Operation"][0]
                if a["DBInstances"]["DBInstance"][0]["DBInstanceStatus"] == "Running" and last["Status"] in (
                    "Succeeded",
                    "Failed",
                ):
                    return last
                assert time.monotonic() < deadline, a
                time.sleep(0.1)

        wait_running()
        accepted = calls.call("UpgradeDBInstanceKernelVersion", [("DBInstanceId", rs)])
        assert "Code" not in accepted, accepted
        upgrade = wait_running()
        assert upgrade["Action"] == "UpgradeDBInstanceKernelVersion" and upgrade["Status"] == "Succeeded", upgrade
        after = scrape(d)
    finally:
        factory.stop_all()

    def delta(name: str, **labels) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # Requests by action and code. A refusal before the action is known (bad signature, unknown
    # action) is counted under action "-"; the generic call_api create is counted too.
    expected = dict(calls.made)
    expected[("DdsdCreateDBInstance", "OK")] = 1
    for (action, code), n in expected.items():
        label_action = "-" if code in ("SignatureDoesNotMatch", "InvalidAction.NotFound") else action
        assert delta("ddsd_requests_total", action=label_action, code=code) == n, (action, code)
    assert delta("ddsd_requests_total", action="-", code="SignatureDoesNotMatch") == 2
    assert delta("ddsd_requests_total", action="DescribeRegions", code="OK") == 3
    total = sum(v for (name, _), v in after.items() if name == "ddsd_requests_total") - sum(
        v for (name, _), v in before.items() if name == "ddsd_requests_total"
    )
    assert total == sum(expected.values()), "scrapes are not RPC requests; nothing else was counted"

    # Latency histogram: one observation per answered request, cumulative buckets.
    assert delta("ddsd_request_duration_seconds_count", action="DescribeRegions") == 3
    buckets = sorted(
        (float(dict(labels)["le"]), v)
        for (name, labels), v in after.items()
        if name == "ddsd_request_duration_seconds_bucket" and dict(labels)["action"] == "DescribeRegions"
    )
    counts = [v for _, v in buckets]
    assert counts == sorted(counts) and buckets[-1][0] == float("inf")
    assert buckets[-1][1] == value(after, "ddsd_request_duration_seconds_count", action="DescribeRegions")
    assert value(after, "ddsd_request_duration_seconds_sum", action="DescribeRegions") > 0

    # Operations by kind and outcome, and what the upgrade caused (its own report says how much).
    assert delta("ddsd_operations_finished_total", kind="create", outcome="succeeded") == 1
    assert delta("ddsd_operations_finished_total", kind="upgrade", outcome="succeeded") == 1
    report = upgrade["Report"]
    elections = sum(r["Elections"] for r in report["ReplicaSets"])
    restarts = sum(m["Restarted"] for r in report["ReplicaSets"] for m in r["Members"])
    assert (elections, restarts) == (1, 3), report
    assert delta("ddsd_elections_caused_total", kind="upgrade") == elections
    assert delta("ddsd_restarts_caused_total", kind="upgrade") == restarts

    # Every verified request left its nonce in the replay guard.
    verified = sum(n for (_, code), n in expected.items() if code != "SignatureDoesNotMatch")
    assert delta("ddsd_nonce_cache_entries") >= verified
    assert [v for (name, _), v in after.items() if name == "ddsd_build_info"] == [1.0]
