"""The `ddsd serve` process contract (notes/contract-serve.md): the admin key, logs, shutdown."""

from __future__ import annotations

import json
import re
import signal
import stat

import pytest

import acs_raw


def v1_get(d, key_id: str, secret: str, fmt: str = "JSON") -> acs_raw.Response:
    return acs_raw.v1_get(d.endpoint, acs_raw.sign_v1("GET", acs_raw.v1_common_params(key_id, fmt=fmt), secret))


def test_admin_key_created_once_printed_once(ddsd_factory):
    first = ddsd_factory.start("first")
    key_file = first.data_dir / "admin-key.json"
    assert key_file.is_file()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(first.data_dir.stat().st_mode) == 0o700
    admin = json.loads(key_file.read_text())
    assert set(admin) == {"AccessKeyId", "AccessKeySecret"}
    assert re.fullmatch(r"LTAI[A-Za-z0-9]{20}", admin["AccessKeyId"]), admin["AccessKeyId"]
    assert re.fullmatch(r"[A-Za-z0-9]{30}", admin["AccessKeySecret"])

    # Printed once, before the listening line, as exactly these two lines.
    out = first.stdout_lines
    assert out[-1].startswith("ddsd listening on http://127.0.0.1:")
    assert f"AccessKeyId: {admin['AccessKeyId']}" in out[:-1]
    assert f"AccessKeySecret: {admin['AccessKeySecret']}" in out[:-1]
    assert v1_get(first, admin["AccessKeyId"], admin["AccessKeySecret"]).status == 200
    assert first.stop() == 0
    assert sum(admin["AccessKeySecret"] in line for line in first.stdout_lines) == 1

    # Second start on the same data dir: same key loaded, the secret never printed again.
    second = ddsd_factory.start("second", data_dir=first.data_dir)
    assert json.loads(key_file.read_text()) == admin
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert v1_get(second, admin["AccessKeyId"], admin["AccessKeySecret"]).status == 200
    assert second.stop() == 0
    printed = "\n".join(second.stdout_lines)
    assert admin["AccessKeySecret"] not in printed
    assert "AccessKeySecret" not in printed
    assert admin["AccessKeySecret"] not in second.stderr_text()


@pytest.mark.parametrize(
    "log_args, rust_log",
    [([], None), (["--log-format", "json"], None), ([], "trace")],
    ids=["text-default-level", "json-default-level", "text-trace"],
)
def test_logs_never_contain_secrets(ddsd_factory, log_args, rust_log):
    # At trace level too: that is where a config dump or a raw request would leak first.
    d = ddsd_factory.start("logs", extra_args=log_args, env={"RUST_LOG": rust_log} if rust_log else None)
    assert d.admin_key_secret
    request_ids = []
    for key_id, secret, fmt in [
        (d.key_id, "not-the-secret", "JSON"),  # wrong secret: the server computes with testsecret
        (d.key_id, "not-the-secret", "XML"),
        (d.admin_key_id, "not-the-secret", "JSON"),  # ... and with the admin secret
        (d.key_id, d.key_secret, "JSON"),  # and successes with both keys
        (d.admin_key_id, d.admin_key_secret, "JSON"),
    ]:
        resp = v1_get(d, key_id, secret, fmt)
        assert resp.status == (200 if secret != "not-the-secret" else 400), resp
        request_ids.append(resp.headers["x-acs-request-id"])
    v3 = acs_raw.v3_post(d.endpoint, d.key_id, "not-the-secret", "DescribeRegions", [])
    assert v3.status == 400, v3
    request_ids.append(v3.headers["x-acs-request-id"])
    assert d.stop() == 0

    logs = d.stderr_text()
    # The logs are there and are about these requests, so their silence on secrets means something.
    for rid in request_ids:
        assert rid in logs, f"request {rid} left no log line"
    assert "testsecret" not in logs
    assert d.admin_key_secret not in logs


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_graceful_shutdown_exits_zero(ddsd_factory, sig):
    d = ddsd_factory.start("stop")
    assert v1_get(d, d.key_id, d.key_secret).status == 200
    assert d.stop(sig) == 0
