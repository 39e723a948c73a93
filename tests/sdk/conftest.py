"""pytest harness: runs the real `ddsd serve` binary and hands its endpoint and keys to the tests.

Nothing is built here (scripts/test.sh builds first). The binary is `$DDSD_BIN`, else
`$CARGO_TARGET_DIR/debug/ddsd`, else `<repo>/target/debug/ddsd`; a missing binary fails the run
rather than skipping it. Each server gets its own temp data dir and a TOML config that adds the
fixtures' key pair `testid` / `testsecret`, listens on `127.0.0.1:0`, and is found through the
`ddsd listening on http://IP:PORT` line the process contract promises on stdout. Its stderr (the
logs) goes to a file so tests can read what ddsd logged.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import acs_raw

REPO = Path(__file__).resolve().parents[2]
TEST_KEY_ID = "testid"
TEST_KEY_SECRET = "testsecret"
LISTENING = re.compile(r"^ddsd listening on https?://(127\.0\.0\.1):(\d+)$")
START_TIMEOUT_S = float(os.environ.get("DDSD_START_TIMEOUT", "30"))
STOP_TIMEOUT_S = 15.0


def ddsd_binary() -> Path:
    if os.environ.get("DDSD_BIN"):
        return Path(os.environ["DDSD_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    if not target.is_absolute():
        target = REPO / target
    return target / "debug" / "ddsd"


def write_config(path: Path, data_dir: Path) -> None:
    path.write_text(
        "\n".join(
            [
                'listen = "127.0.0.1:0"',
                f'data_dir = "{data_dir}"',
                'region = "cn-hangzhou"',
                "",
                "[[access_keys]]",
                f'id = "{TEST_KEY_ID}"',
                f'secret = "{TEST_KEY_SECRET}"',
                "",
            ]
        )
    )


@dataclass
class Ddsd:
    """One running `ddsd serve` process."""

    proc: subprocess.Popen
    host: str
    port: int
    data_dir: Path
    stderr_path: Path
    stdout_lines: list[str]  # everything printed on stdout so far, in order
    key_id: str = TEST_KEY_ID
    key_secret: str = TEST_KEY_SECRET
    admin_key_id: str = ""
    admin_key_secret: str = ""
    _stdout_q: "queue.Queue[str | None]" = field(default=None, repr=False)
    _stderr_file: object = field(default=None, repr=False)
    exit_code: int | None = None
    # The `ddsd sim-fleet` (tests/sdk/fleet.py) whose deployments this ddsd drives with
    # `--plane mongodb`; None for the embedded simulated plane.
    fleet: object | None = None

    @property
    def endpoint(self) -> str:
        """`IP:PORT`, the form every SDK's `endpoint` setting takes."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def drain_stdout(self) -> list[str]:
        while True:
            try:
                line = self._stdout_q.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.stdout_lines.append(line)
        return self.stdout_lines

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signals the process (graceful by contract), waits, and kills it if it hangs."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.exit_code = self.proc.returncode
        if self._stderr_file is not None:
            self._stderr_file.close()
            self._stderr_file = None
        # The reader thread ends at EOF; give it a moment so late stdout lines are kept.
        time.sleep(0.05)
        self.drain_stdout()
        return self.exit_code


def _child_env(extra: dict[str, str] | None) -> dict[str, str]:
    # The tests pin every setting through flags and the config file; a DDSD_* or RUST_LOG
    # variable left in the caller's shell must not change what is under test.
    env = {k: v for k, v in os.environ.items() if not k.startswith("DDSD_") and k != "RUST_LOG"}
    env.update(extra or {})
    return env


def start_ddsd(
    workdir: Path,
    data_dir: Path | None = None,
    extra_args: list[str] | None = None,
    env: dict[str, str] | None = None,
    extra_config: str = "",
) -> Ddsd:
    """`extra_config`: TOML tables appended to the generated file (e.g. `[mongodb]`)."""
    binary = ddsd_binary()
    if not binary.is_file():
        pytest.fail(f"ddsd binary not found at {binary}: run `cargo build -p ddsd` (or set DDSD_BIN)", pytrace=False)
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir = data_dir or workdir / "data"
    config = workdir / "ddsd.toml"
    write_config(config, data_dir)
    if extra_config:
        config.write_text(config.read_text() + "\n" + extra_config + "\n")
    n = len(list(workdir.glob("stderr-*.log")))
    stderr_path = workdir / f"stderr-{n}.log"
    stderr_file = open(stderr_path, "wb")
    cmd = [
        str(binary),
        "serve",
        "--config",
        str(config),
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        str(data_dir),
        *(extra_args or []),
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr_file,
        env=_child_env(env),
        text=True,
        bufsize=1,
    )
    lines: "queue.Queue[str | None]" = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()

    seen: list[str] = []
    deadline = time.monotonic() + START_TIMEOUT_S
    match = None
    while match is None:
        left = deadline - time.monotonic()
        line = None
        if left > 0:
            try:
                line = lines.get(timeout=left)
            except queue.Empty:
                line = None
        if line is None:  # timeout or EOF
            proc.kill()
            proc.wait()
            stderr_file.close()
            why = "exited with code %s" % proc.returncode if left > 0 else f"timed out after {START_TIMEOUT_S}s"
            pytest.fail(
                f"ddsd did not print its listening line ({why})\ncommand: {' '.join(cmd)}\n"
                f"stdout:\n" + "\n".join(seen) + "\nstderr:\n" + stderr_path.read_text(errors="replace")[-8000:],
                pytrace=False,
            )
        seen.append(line)
        match = LISTENING.match(line)

    d = Ddsd(
        proc=proc,
        host=match.group(1),
        port=int(match.group(2)),
        data_dir=data_dir,
        stderr_path=stderr_path,
        stdout_lines=seen,
        _stdout_q=lines,
        _stderr_file=stderr_file,
    )
    key_file = data_dir / "admin-key.json"
    if key_file.is_file():
        admin = json.loads(key_file.read_text())
        d.admin_key_id = admin["AccessKeyId"]
        d.admin_key_secret = admin["AccessKeySecret"]
    return d


class DdsdFactory:
    """Starts servers on demand (restart tests reuse a data dir) and stops them all at teardown."""

    def __init__(self, base: Path):
        self.base = base
        self.running: list[Ddsd] = []

    def start(
        self,
        name: str = "ddsd",
        data_dir: Path | None = None,
        extra_args: list[str] | None = None,
        env: dict[str, str] | None = None,
        extra_config: str = "",
    ) -> Ddsd:
        d = start_ddsd(self.base / name, data_dir=data_dir, extra_args=extra_args, env=env,
                       extra_config=extra_config)
        self.running.append(d)
        return d

    def stop_all(self) -> None:
        for d in self.running:
            d.stop()


@pytest.fixture(scope="session", autouse=True)
def _signer_is_correct():
    # Every raw test trusts acs_raw; prove it on the vendor's vectors once, first.
    acs_raw.self_check()


@pytest.fixture(scope="session")
def ddsd(tmp_path_factory) -> Ddsd:
    """One shared server for the whole session (tests use fresh nonces, so they don't interfere)."""
    factory = DdsdFactory(tmp_path_factory.mktemp("ddsd-shared"))
    d = factory.start()
    yield d
    factory.stop_all()


@pytest.fixture
def ddsd_factory(tmp_path) -> DdsdFactory:
    """For tests that need their own server: log inspection, restarts on the same data dir."""
    factory = DdsdFactory(tmp_path)
    yield factory
    factory.stop_all()
