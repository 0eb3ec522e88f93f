"""Fixtures: real `stocksync hub --dev` child processes, and a listener that records events.

The package is imported from `bindings/python` (this file puts that directory first on
sys.path), so run `bash scripts/bindings.sh` first: it generates `stocksync/stocksync_ffi.py` and
copies `libstocksync_ffi` next to it. The hub binary is `$STOCKSYNC_BIN`, by default
`target/debug/stocksync` of the repository (`cargo build -p stocksync`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # bindings/python
REPO_ROOT = PACKAGE_ROOT.parents[1]
sys.path.insert(0, str(PACKAGE_ROOT))

try:
    import stocksync  # noqa: E402
except Exception as e:  # a SyntaxError in the generated module, the library missing, …
    raise ImportError(
        f"cannot import the stocksync package from {PACKAGE_ROOT}: {type(e).__name__}: {e}\n"
        "(`bash scripts/bindings.sh` generates stocksync/stocksync_ffi.py and copies "
        "libstocksync_ffi next to it)"
    ) from e

HUB_START_TIMEOUT = 20.0
HUB_STOP_TIMEOUT = 10.0
EVENT_TIMEOUT = 10.0


def hub_binary() -> Path:
    configured = os.environ.get("STOCKSYNC_BIN")
    path = Path(configured) if configured else REPO_ROOT / "target" / "debug" / "stocksync"
    if not path.is_absolute():
        path = REPO_ROOT / path
    if not path.is_file():
        pytest.fail(
            f"hub binary {path} not found: run `cargo build -p stocksync` in {REPO_ROOT} "
            "(or set STOCKSYNC_BIN)",
            pytrace=False,
        )
    return path


class Hub:
    """A `stocksync hub --dev --bind 127.0.0.1:0` child process on its own data dir."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.log_path = data_dir / "hub.log"
        self._log = open(self.log_path, "wb")
        env = dict(os.environ, STOCKSYNC_LOG=os.environ.get("STOCKSYNC_LOG", "warn"))
        self.process = subprocess.Popen(
            [str(hub_binary()), "hub", "--dev", "--bind", "127.0.0.1:0", "--data-dir", str(data_dir)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            creds = self._wait_for_credentials()
        except BaseException:
            self.stop()
            raise
        self.base_url: str = creds["base_url"]
        self.enrollment_key: str = creds["enrollment_key"]
        self.organization_id: str = creds["organization_id"]
        self.branch_id: str = creds["branch_id"]
        self.api_key: str = creds["api_key"]

    def _wait_for_credentials(self) -> dict:
        path = self.data_dir / "dev-credentials.json"
        deadline = time.monotonic() + HUB_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the hub exited with {self.process.returncode} before it was ready:\n"
                    + self.log()
                )
            try:
                creds = json.loads(path.read_text())
            except (OSError, ValueError):  # not there yet, or half written
                creds = None
            if isinstance(creds, dict) and creds.get("base_url"):
                return creds
            time.sleep(0.05)
        raise RuntimeError(
            f"no base_url in {path} after {HUB_START_TIMEOUT:.0f} s:\n" + self.log()
        )

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited in time. Idempotent."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(HUB_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@pytest.fixture(scope="session")
def start_hub():
    """Starts hubs (each on a fresh data dir); every one still running is stopped at the end."""
    hubs = []
    dirs = []

    def start() -> Hub:
        tmp = tempfile.TemporaryDirectory(prefix="stocksync-hub-")
        dirs.append(tmp)
        hub = Hub(Path(tmp.name))
        hubs.append(hub)
        return hub

    yield start
    for hub in hubs:
        hub.stop()
    for tmp in dirs:
        tmp.cleanup()


@pytest.fixture(scope="session")
def hub(start_hub) -> Hub:
    """The hub devices A and B share."""
    return start_hub()


class Recorder(stocksync.SyncListener):
    """A listener that keeps every event; tests wait on it with a deadline.

    `on_event` runs on a Rust thread: it only appends under a condition variable.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.events: list = []
        self._changed = threading.Condition()

    def on_event(self, event) -> None:
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def snapshot(self) -> list:
        with self._changed:
            return list(self.events)

    def mark(self) -> int:
        """A position: `wait_for(..., since=mark)` only looks at events after it."""
        with self._changed:
            return len(self.events)

    def wait_for(self, what: str, predicate, since: int = 0, timeout: float = EVENT_TIMEOUT):
        """The first event after `since` matching `predicate`; fails after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for event in self.events[since:]:
                    if predicate(event):
                        return event
                left = deadline - time.monotonic()
                if left <= 0:
                    got = "\n  ".join(str(e) for e in self.events[since:]) or "nothing"
                    pytest.fail(f"{self.name}'s listener: no {what} within {timeout:.0f} s; got:\n  {got}")
                self._changed.wait(left)
