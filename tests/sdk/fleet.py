"""The simulated fleet as its own process (`ddsd sim-fleet`), and ddsd with `--plane mongodb` in front
of it: what ddsd faces on real hosts (members on wire ports, an agent per host).

`Fleet` starts the binary, reads its admin key and control endpoint from stdout, and signs the control
actions (`CreateDeployment`, `DescribeTruth`, `ArmFault`, `RemoveKernel`, `ArmAgentFault`) and the
agents' own actions with the independent signer in `acs_raw` (V3, `Version` 2026-12-01).
`import_deployment` registers a deployment in a ddsd through `DdsdImportDBInstance` (admin key).
"""

from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import acs_raw
from conftest import _child_env, ddsd_binary

AGENT_VERSION = "2026-12-01"
LISTENING = re.compile(r"^ddsd sim-fleet listening on http://(127\.0\.0\.1:\d+)$")
PASSWORD = "Fleet#Passw0rd"


class FleetError(Exception):
    def __init__(self, status: int, body: dict):
        super().__init__(f"{status}: {body.get('Code')}: {body.get('Message')}")
        self.status = status
        self.code = body.get("Code")
        self.message = body.get("Message", "")


def signed(endpoint: str, key_id: str, secret: str, action: str, params: dict) -> dict:
    r = acs_raw.v3_post(endpoint, key_id, secret, action, [(k, str(v)) for k, v in params.items()],
                        version=AGENT_VERSION)
    body = json.loads(r.body)
    if r.status != 200:
        raise FleetError(r.status, body)
    return body


@dataclass
class Fleet:
    workdir: Path
    data_dir: Path
    speed: str
    proc: subprocess.Popen | None = None
    endpoint: str = ""
    key_id: str = ""
    secret: str = ""
    deployments: dict[str, dict] = field(default_factory=dict)  # DBInstanceId -> manifest

    def start(self) -> "Fleet":
        self.workdir.mkdir(parents=True, exist_ok=True)
        n = len(list(self.workdir.glob("fleet-stderr-*.log")))
        err = open(self.workdir / f"fleet-stderr-{n}.log", "wb")
        self.proc = subprocess.Popen(
            [str(ddsd_binary()), "sim-fleet", "--data-dir", str(self.data_dir), "--listen", "127.0.0.1:0",
             "--sim-speed", self.speed],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, env=_child_env(None), text=True,
        )
        lines: "queue.Queue[str | None]" = queue.Queue()

        def pump() -> None:
            for line in self.proc.stdout:
                lines.put(line.rstrip("\n"))
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + 30
        while True:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, "sim-fleet exited: " + (self.workdir / f"fleet-stderr-{n}.log").read_text()[-3000:]
            m = LISTENING.match(line)
            if m:
                self.endpoint = m.group(1)
                break
        key = json.loads((self.data_dir / "fleet-admin-key.json").read_text())
        self.key_id, self.secret = key["AccessKeyId"], key["AccessKeySecret"]
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def call(self, action: str, **params) -> dict:
        return signed(self.endpoint, self.key_id, self.secret, action, params)

    def create(self, kind: str, kernel: str, **extra) -> dict:
        return self.call("CreateDeployment", Kind=kind, KernelVersion=kernel, AccountPassword=PASSWORD, **extra)

    def truth(self, deployment_id: str, from_ms: int, until_ms: int) -> dict:
        return self.call("DescribeTruth", DeploymentId=deployment_id, FromMs=from_ms, UntilMs=until_ms)


# The fleets of these tests run faster than wall time, so the engine's default 180 s start deadline is
# seconds of wall time or less — at 500x under half a second, less than one observation of a busy CI
# machine through the driver (a connect, hello and serverStatus per process) may take. The deadlines a
# `mongodb`-plane ddsd gets here are the widest the workflow accepts (the catch-up deadline bounds the
# start deadline); the gates themselves are unchanged.
MONGODB_PLANE_CONFIG = "[upgrade]\nmember_start_deadline_ms = 600000\nmongos_start_deadline_ms = 600000\n"

# The speed of a fleet that a `mongodb`-plane ddsd drives in the SDK scenarios: with the deadlines above,
# 600 s of plane time is 6 s of wall time, more than any stall of a loaded two-core machine seen so far
# (at 500x it was 1.2 s, and a run where the machine stalled that long failed a start it had seen).
MONGODB_FLEET_SPEED = "100"


def start_mongodb_plane(factory, *args, extra_config: str = "", **kw):
    """A `ddsd serve --plane mongodb` from the test factory, with the deadlines above."""
    return factory.start(*args, extra_args=["--plane", "mongodb"],
                         extra_config=MONGODB_PLANE_CONFIG + extra_config, **kw)


def import_params(manifest: dict) -> dict:
    q = {"SeedList": manifest["SeedList"], "Username": manifest["Username"], "Password": PASSWORD,
         "AuthSource": manifest["AuthSource"]}
    for i, a in enumerate(manifest["Agents"], 1):
        q[f"Agent.{i}.Endpoint"] = a["Endpoint"]
        q[f"Agent.{i}.AccessKeyId"] = a["AccessKeyId"]
        q[f"Agent.{i}.AccessKeySecret"] = a["AccessKeySecret"]
    return q


def import_deployment(d, fleet: Fleet, manifest: dict) -> str:
    """Imports `manifest` into ddsd `d` (admin key, V3 through the independent signer)."""
    r = acs_raw.v3_post(d.endpoint, d.admin_key_id, d.admin_key_secret, "DdsdImportDBInstance",
                        list(import_params(manifest).items()))
    body = json.loads(r.body)
    assert r.status == 200, body
    fleet.deployments[body["DBInstanceId"]] = manifest
    return body["DBInstanceId"]


def check_invariants(truth: dict, restarted: set[str] | None = None) -> None:
    """The engine's invariants from the fleet's ground truth: each process in `restarted` (all when
    None) restarted exactly once and the others not at all, at most one election per replica set, each
    a caught-up hand-off after a stepdown (never forced), no stop of a primary, a mongos always
    serving, the balancer as it was."""
    for p in truth["Processes"]:
        want = 1 if restarted is None or p["NodeId"] in restarted else 0
        assert p["Restarts"] == want, p
    for rs in truth["ReplicaSets"]:
        assert rs["Elections"] <= 1, rs
        assert all(e["Cause"] == "Handoff" for e in rs["ElectionLog"]), rs
    assert truth["PrimaryStopAttempts"] == 0, truth
    assert truth["NoMongosMs"] == 0, truth
    assert truth["BalancerModeBefore"] == truth["BalancerModeAfter"], truth
