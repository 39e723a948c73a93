"""ddsd's operator extensions (docs/extensions.md) through the Tea SDK's generic `call_api` and the
`ddsd` CLI: only the admin AccessKey may publish a kernel version or pin a new instance to an older
kernel; a published kernel makes existing instances upgradable and survives a restart.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from alibabacloud_dds20151201 import models as M
from alibabacloud_tea_openapi.exceptions import ClientException

from conftest import ddsd_binary
from test_instances import (
    attribute,
    create_rs,
    load,
    start_fast,
    tea,
    tea_call,
    wait_status,
)

OLD_44 = "mongodb_20211020_4.4.6"  # the oldest catalogued 4.4 kernel


@pytest.fixture
def server(tmp_path_factory):
    factory, d = start_fast(tmp_path_factory, "extensions")
    d.factory = factory
    yield d
    factory.stop_all()


def admin(d) -> tuple[str, str]:
    assert d.admin_key_id, "the harness read the admin key"
    return d.admin_key_id, d.admin_key_secret


def notes_after(d, kernel: str) -> list[str]:
    r = tea(d).describe_kernel_release_notes(M.DescribeKernelReleaseNotesRequest(kernel_version=kernel))
    return [n.kernel_version for n in load(M.DescribeKernelReleaseNotesResponseBody, r.body.to_map()).release_notes.release_note]


def cli(d, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DDSD_", "ALIBABA_CLOUD_"))}
    base.update(env or {})
    return subprocess.run(
        [str(ddsd_binary()), *args, "--endpoint", d.url], capture_output=True, text=True, env=base, timeout=120
    )


def test_only_the_admin_key_may_call_extensions(server):
    newest_before = notes_after(server, OLD_44)
    publish = {"EngineVersion": "4.4", "KernelVersion": "mongodb_20990101_4.4.99", "ReleaseNote": "x"}
    with pytest.raises(ClientException) as info:
        tea_call(server, "DdsdPublishKernelVersion", publish)
    assert (info.value.code, info.value.status_code) == ("Forbidden.RAM", 403)
    with pytest.raises(ClientException) as info:
        tea_call(server, "DdsdCreateDBInstance", {
            "RegionId": "cn-hangzhou", "EngineVersion": "4.4", "DBInstanceClass": "dds.mongo.mid",
            "DBInstanceStorage": "20", "KernelVersion": OLD_44})
    assert (info.value.code, info.value.status_code) == ("Forbidden.RAM", 403)
    assert notes_after(server, OLD_44) == newest_before
    assert tea(server).describe_dbinstances(M.DescribeDBInstancesRequest()).body.total_count == 0


def test_pinned_create_and_publish_make_an_instance_upgradable(server):
    # Pinned to the oldest 4.4 kernel through the generic API with the admin key.
    body = tea_call(server, "DdsdCreateDBInstance", {
        "RegionId": "cn-hangzhou", "EngineVersion": "4.4", "DBInstanceClass": "dds.mongo.mid",
        "DBInstanceStorage": "20", "KernelVersion": OLD_44}, key=admin(server))
    old = load(M.CreateDBInstanceResponseBody, body).dbinstance_id
    wait_status(server, old, "Running")
    assert attribute(server, old).current_kernel_version == OLD_44
    assert notes_after(server, OLD_44), "newer 4.4 kernels exist for the pinned instance"

    current = create_rs(server)
    wait_status(server, current, "Running")
    newest = attribute(server, current).current_kernel_version
    assert notes_after(server, newest) == []

    r = cli(server, "kernel", "publish", "--data-dir", str(server.data_dir), "--engine-version", "4.4",
            "--kernel-version", "mongodb_20990101_4.4.99", "--release-note", "Fixes everything.",
            "--release-date", "2099-01-05")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["KernelVersion"] == "mongodb_20990101_4.4.99"
    # The instance on the formerly newest kernel now has one to upgrade to.
    assert notes_after(server, newest) == ["mongodb_20990101_4.4.99"]
    assert attribute(server, current).current_kernel_version == newest

    # The CLI creates a pinned sharded cluster and waits for it.
    r = cli(server, "instance", "create", "--data-dir", str(server.data_dir), "--engine-version", "4.4",
            "--kernel", OLD_44, "--shard", "dds.shard.mid:20", "--shard", "dds.shard.mid:20:1",
            "--config-server", "dds.cs.mid:20", "--mongos", "dds.mongos.mid", "--mongos", "dds.mongos.mid", "--wait")
    assert r.returncode == 0, r.stderr
    sid = json.loads(r.stdout)["DBInstanceId"]
    a = attribute(server, sid)
    assert a.dbinstance_status == "Running" and a.current_kernel_version == OLD_44
    assert {s.current_kernel_version for s in a.shard_list.shard_attribute} == {OLD_44}

    # The published kernel survives a restart.
    server.stop()
    again = server.factory.start("extensions-again", data_dir=server.data_dir, extra_args=["--sim-speed", "200"])
    assert notes_after(again, newest) == ["mongodb_20990101_4.4.99"]
    assert attribute(again, old).current_kernel_version == OLD_44


def test_cli_refuses_without_the_admin_key(server):
    r = cli(server, "kernel", "publish", "--engine-version", "4.4", "--kernel-version", "mongodb_20990101_4.4.99",
            "--release-note", "x", env={"ALIBABA_CLOUD_ACCESS_KEY_ID": server.key_id,
                                         "ALIBABA_CLOUD_ACCESS_KEY_SECRET": server.key_secret})
    assert r.returncode == 1
    # `Code: Message`, then the RequestId and HTTP status.
    first, second = r.stderr.splitlines()[:2]
    assert first.startswith("Forbidden.RAM: "), r.stderr
    assert second.startswith("RequestId: ") and second.endswith("(HTTP 403)"), r.stderr
    r = cli(server, "kernel", "publish", "--access-key-id", server.key_id, "--access-key-secret", "wrong",
            "--engine-version", "4.4", "--kernel-version", "mongodb_20990101_4.4.99", "--release-note", "x")
    assert r.returncode == 1 and "SignatureDoesNotMatch" in r.stderr
    # A well-signed bad request is the server's verdict, exit 1, with the vendor-style code.
    r = cli(server, "kernel", "publish", "--data-dir", str(server.data_dir), "--engine-version", "4.4",
            "--kernel-version", "mongodb_2099_4.4.99", "--release-note", "x")
    assert r.returncode == 1 and "InvalidKernelVersion.Malformed" in r.stderr
