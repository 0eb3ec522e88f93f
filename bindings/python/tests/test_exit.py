"""Python exits cleanly after using the library (issue 11, point 4).

Each run is a fresh interpreter that opens a device database, syncs with a real hub and exits;
the interpreter's exit code is the check. Before the fix 13 of these 36 aborted at exit ("FATAL:
exception not rethrown", code 134; half of the `stop` runs, nearly every `background` one): Python
ended a library thread that was still inside a callback (see `_ExitGuard` in
stocksync/__init__.py). Every run must exit 0.

One device is enrolled once (the hub allows 30 sign-ins a minute per address) and each run
syncs its own copy of that database, a few at a time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from conftest import PACKAGE_ROOT

CHILD = Path(__file__).with_name("exit_child.py")
MODES = ("sync", "stop", "background")  # sync_now then exit; then stop(); start() and no stop()
RUNS = 36
PARALLEL = 4
RUN_TIMEOUT = 60.0


def child(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(PACKAGE_ROOT), PYTHONFAULTHANDLER="1")
    return subprocess.run(
        [sys.executable, str(CHILD), *args],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env=env,
    )


def test_fresh_interpreters_exit_cleanly_after_sync(start_hub, tmp_path):
    hub = start_hub()  # its own: the background runs push writes the scenario must not see
    enrolled = tmp_path / "enrolled.db"
    done = child("enroll", str(enrolled), hub.base_url, hub.enrollment_key)
    assert (done.returncode, done.stdout.strip()) == (0, "enrolled"), done.stderr

    def run(i: int) -> tuple:
        db = tmp_path / f"run{i}.db"
        for suffix in ("", "-wal"):  # SQLite's write-ahead log, if the process left one
            if Path(f"{enrolled}{suffix}").exists():
                shutil.copyfile(f"{enrolled}{suffix}", f"{db}{suffix}")
        mode = MODES[i % len(MODES)]
        done = child(mode, str(db))
        return mode, done.returncode, done.stdout.strip(), done.stderr.strip()

    with ThreadPoolExecutor(PARALLEL) as pool:
        results = list(pool.map(run, range(RUNS)))

    failed = [r for r in results if r[1:3] != (0, "synced")]
    assert not failed, f"{len(failed)} of {RUNS} runs did not exit cleanly:\n" + "\n".join(
        f"  {mode}: exit {code}, stdout {out!r}, stderr: {err[-400:]}"
        for mode, code, out, err in failed
    )
