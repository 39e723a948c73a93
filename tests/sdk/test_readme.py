"""The README's walkthrough as a newcomer runs it: `ddsd serve --demo` in a fresh directory, then the
README's Python SDK snippet, unchanged, upgrades the demo's replica set and sees it back `Running` on
the newest kernel; then the README's "When something goes wrong" commands, in order, end in an upgrade
that fails at the armed member with exit status 3.
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
import time

from conftest import REPO, ddsd_binary

BANNER_TIMEOUT_S = 120


def readme_block(lang: str, marker: str) -> str:
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(rf"```{lang}\n(.*?)```", readme, flags=re.S)
    matching = [b for b in blocks if marker in b]
    assert len(matching) == 1, f"expected one {lang} block with {marker!r} in the README"
    return matching[0]


def readme_python_snippet(marker: str) -> str:
    return readme_block("python", marker)


def readme_commands(marker: str) -> list[list[str]]:
    """The `./target/release/ddsd …` commands of a README shell block, continuation lines joined and
    trailing comments dropped, each as an argument list for the binary under test."""
    text = readme_block("sh", marker).replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("./target/release/ddsd "):
            commands.append([str(ddsd_binary()), *line.split()[1:]])
    return commands


def readme_failure_walkthrough(cwd, env: dict[str, str]) -> None:
    create, arm, upgrade, clear = readme_commands("fault arm")
    assert create[1:3] == ["instance", "create"], create
    out = subprocess.run(create, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    instance = json.loads(out.stdout)["DBInstanceId"]

    def run(cmd: list[str]) -> subprocess.CompletedProcess:
        cmd = [a.replace("dds-bp1…", instance) for a in cmd]
        return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)

    armed = run(arm)
    assert armed.returncode == 0, armed.stderr
    failed = run(upgrade)
    assert failed.returncode == 3, (failed.returncode, failed.stderr)
    assert f"FAILED at member {instance}-1 " in failed.stderr, failed.stderr
    cleared = run(clear)
    assert cleared.returncode == 0, cleared.stderr


def test_the_readme_walkthrough_upgrades_the_demo_replica_set_then_fails_on_a_fault(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DDSD_", "ALIBABA_CLOUD_")) and k != "RUST_LOG"}
    # Only the port differs from the README's command: 8080 may be taken on a test machine.
    env["DDSD_LISTEN"] = "127.0.0.1:0"
    stderr = open(tmp_path / "serve.err", "wb")
    proc = subprocess.Popen(
        [str(ddsd_binary()), "serve", "--demo"],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr,
        env=env,
        text=True,
    )
    lines: "queue.Queue[str | None]" = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    try:
        seen: list[str] = []
        deadline = time.monotonic() + BANNER_TIMEOUT_S
        while not (seen and seen[-1].endswith("by running:")):
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, "ddsd exited:\n" + "\n".join(seen) + (tmp_path / "serve.err").read_text()
            seen.append(line)
        newest = re.search(r" to (\S+), with live progress", seen[-1]).group(1)

        snippet = readme_python_snippet("tomllib")
        out = subprocess.run(
            [sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr
        printed = out.stdout.strip().splitlines()
        assert printed[0].startswith("MinorVersionUpgrading "), printed
        assert printed[-1] == f"Running {newest}", printed

        readme_failure_walkthrough(tmp_path, env)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        stderr.close()
