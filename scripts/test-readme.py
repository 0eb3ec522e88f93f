#!/usr/bin/env python3
"""Runs the README's walkthrough and bindings/python/README.md's example exactly as printed.

    python3 scripts/test-readme.py                     # alone (after `bash scripts/bindings.sh`
                                                       # and `bash scripts/bindings-tools.sh`)
    python3 scripts/test-readme.py --after-test-build  # from scripts/test.sh

What runs, and what is compared:

- Every ```sh block of README.md, in order, in ONE bash session (`set -euo pipefail`), from the
  repository root, as a reader pasting them into a terminal would: variables and shell functions
  carry over from block to block. Each line runs verbatim; the test only adds lines of its own
  between them (markers, waits). Three kinds of line get special handling, and nothing else:
    * `bash scripts/test.sh` is skipped (it is the command running this test), counted as skipped;
    * the hub (`cargo run … -p stocksync -- hub …`), which the README starts "in one terminal", is
      started in the background (its own process group, output to a log) and waited for until
      127.0.0.1:8080 accepts connections; a second hub line first stops the earlier hub with
      SIGINT (the reader's Ctrl-C), which must exit 0, and so must the last one at the end;
    * a node's `… run` ("until Ctrl-C") runs in the background until it prints that it is `live`,
      then gets SIGINT and must exit 0; its output is shown.
- A bare ``` block right after a ```sh block is that block's last command's sample output: the
  command's stdout must equal it after normalising, on both sides, what differs on every run:
  ids (`conf_0123…` -> `conf_…`, likewise dev_, op_, prod_, loc_, txn_, alloc_, xfer_, req_) and
  durations (`in 24 ms` -> `in … ms`). A mismatch prints a unified diff.
- The ```python block under "## Example" in bindings/python/README.md runs verbatim in a fresh
  interpreter (the venv of scripts/bindings-tools.sh, PYTHONPATH=bindings/python) in an empty
  directory, against the hub the walkthrough left running; a bare ``` block after it is the tail
  of what it prints (same normalisation). It must exit 0.
- With --after-test-build: `cargo build -p stocksync` (what the README's `cargo run -p stocksync`
  does first) must compile nothing after the test build; features that differ between the two
  builds made it recompile ~80 crates (see desktop/Cargo.toml).

The README's paths (/tmp/stocksync-…) and port (8080) are fixed, so two runs on one machine would
collide: when `unshare` can make a mount and network namespace (root, or unprivileged user
namespaces), the session runs with a private /tmp (a tmpfs) and its own loopback; otherwise runs
are serialised with a lock file and port 8080 must be free.

Prints `readme: N passed, N failed, N skipped` last, and appends `readme P F S STATUS` to the file
named by $STOCKSYNC_TEST_COUNTS when set (scripts/test.sh's closing line). Exit status 0 only if
every check passed.
"""

from __future__ import annotations

import argparse
import difflib
import fcntl
import json
import os
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
PY_README = REPO / "bindings" / "python" / "README.md"
PORT = 8080
LOGS = REPO / "target" / "readme-test"  # the session script, its output, the hub's and run's logs
SESSION_TIMEOUT = 1200

SKIP_LINES = {re.compile(r"^bash scripts/test\.sh(\s+#.*)?$"): "the test command itself (it runs this test)"}
HUB_LINE = re.compile(r"^cargo run\b.*-p stocksync -- hub\b")
NODE_RUN_LINE = re.compile(r"^(?!cargo\b)[A-Za-z_][A-Za-z0-9_]* run(\s+#.*)?$")
ID = re.compile(r"\b(conf|dev|op|prod|loc|txn|alloc|xfer|req)_[0-9a-f]{32}\b")
DURATION = re.compile(r"\bin \d+ ms\b")
MARK = "@@readme-test@@"


def normalise(text: str) -> list[str]:
    text = ID.sub(lambda m: m.group(1) + "_…", text)
    text = DURATION.sub("in … ms", text)
    return [line.rstrip() for line in text.strip("\n").splitlines()]


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    body: list[str]
    sample: Block | None = None  # the bare block that shows this block's last command's output

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def fenced_blocks(path: Path) -> list[Block]:
    blocks, current = [], None
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if current is None:
            m = re.match(r"^```(\w*)\s*$", line)
            if m:
                current = Block(path, n, m.group(1), [])
        elif line.startswith("```"):
            blocks.append(current)
            current = None
        else:
            current.body.append(line)
    if current is not None:
        sys.exit(f"test-readme: {path}:{current.line}: unclosed ``` block")
    # A bare block right after an sh/python block shows its output.
    for prev, nxt in zip(blocks, blocks[1:]):
        if prev.lang in ("sh", "python") and nxt.lang == "":
            prev.sample = nxt
    return blocks


def command_starts(body: list[str]) -> list[int]:
    """Indexes of the lines that start a command (not a continuation, heredoc body or comment)."""
    starts, heredoc, continued = [], None, False
    for i, line in enumerate(body):
        if heredoc is not None:
            if line.strip() == heredoc:
                heredoc = None
            continue
        if not continued and line.strip() and not line.lstrip().startswith("#"):
            starts.append(i)
        m = re.search(r"<<-?\s*(['\"]?)([A-Za-z_]+)\1", line)
        if m:
            heredoc = m.group(2)
        continued = line.rstrip().endswith("\\")
    return starts


@dataclass
class Check:
    name: str
    where: str
    status: str = "not run"  # passed, failed, skipped, not run
    detail: str = ""


@dataclass
class Plan:
    script: list[str] = field(default_factory=list)
    line_map: dict[int, str] = field(default_factory=dict)  # script line -> README line
    checks: list[Check] = field(default_factory=list)
    samples: dict[int, tuple[Block, Check]] = field(default_factory=dict)

    def emit(self, text: str, where: str | None = None) -> None:
        for line in text.split("\n"):
            self.script.append(line)
            if where:
                self.line_map[len(self.script)] = where

    def check(self, name: str, where: str) -> Check:
        c = Check(name, where)
        self.checks.append(c)
        return c


PRELUDE = r"""
set -euo pipefail
set -m   # job control: the "other terminal" commands get their own process group, as in a terminal
cd "$__REPO"
__bg_hub_pid=
__mark() { printf '\n%s %s @%s\n' "$__MARK" "$*" "$SECONDS"; printf '%s %s @%s\n' "$__MARK" "$*" "$SECONDS" >&2; }
__port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$__PORT") 2>/dev/null; }
__stop_hub() {  # the reader's Ctrl-C in the hub's terminal
    [[ -n "$__bg_hub_pid" ]] || return 0
    local pid=$__bg_hub_pid rc=0
    __bg_hub_pid=
    kill -INT -- "-$pid" 2>/dev/null || true
    wait "$pid" || rc=$?
    if [[ "$rc" != 0 ]]; then
        echo "the hub exited $rc on Ctrl-C (SIGINT), expected 0; its log:" >&2
        cat "$__bg_hub_log" >&2
        return 1
    fi
    __mark "hub stopped"
}
__before_hub() {
    __stop_hub
    if __port_open; then
        echo "port $__PORT is in use by something else: the README's hub cannot start" >&2
        return 1
    fi
}
__hub_started() {  # $1 = pid of the background job running the README's hub line, $2 = its log
    __bg_hub_pid=$1
    __bg_hub_log=$2
    local waited=0
    until __port_open; do
        if ! kill -0 "$1" 2>/dev/null; then
            wait "$1" || true
            __bg_hub_pid=
            echo "the hub exited before listening; its log:" >&2
            cat "$2" >&2
            return 1
        fi
        if ((waited >= 3000)); then
            echo "the hub did not listen on port $__PORT within 300 s; its log:" >&2
            cat "$2" >&2
            return 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    __mark "hub listening"
}
__run_started() {  # $1 = pid of the background job running a node's `run`, $2 = its log
    local log=$2 waited=0 rc=0
    until grep -qw live "$log"; do
        if ! kill -0 "$1" 2>/dev/null || ((waited >= 600)); then
            kill -INT -- "-$1" 2>/dev/null || true
            wait "$1" || true
            echo "\`run\` did not report that it is live within 60 s; its output:" >&2
            cat "$log" >&2
            return 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    sleep 1
    kill -INT -- "-$1"
    wait "$1" || rc=$?
    cat "$log"
    if [[ "$rc" != 0 ]]; then
        echo "\`run\` exited $rc on Ctrl-C (SIGINT), expected 0" >&2
        return 1
    fi
}
__on_exit() {
    local rc=$? line=$__line
    [[ "$rc" == 0 ]] || echo "$__MARK failed-at $line" >&2
    if [[ -n "$__bg_hub_pid" ]]; then
        if [[ "$rc" == 0 ]]; then __stop_hub || rc=1; else kill -INT -- "-$__bg_hub_pid" 2>/dev/null || true; fi
    fi
    exit "$rc"
}
trap __on_exit EXIT
# The line of the session script that runs now (top level only: not inherited by functions).
__line=0
trap '[[ $BASH_COMMAND == __on_exit* ]] || __line=$LINENO' DEBUG
"""


def build_plan(readme: list[Block], example: Block, tools_python: str) -> Plan:
    plan = Plan()
    plan.emit(PRELUDE.strip("\n"))
    for b in readme:
        if b.lang != "sh":
            continue
        check = plan.check("block", b.where)
        plan.emit(f"__mark block {len(plan.checks) - 1}")
        starts = command_starts(b.body)
        sample_at = starts[-1] if b.sample and starts else None
        for i, line in enumerate(b.body):
            where = f"{b.path.relative_to(REPO)}:{b.line + 1 + i}"
            text = line.strip()
            if i == sample_at:
                sc = plan.check("sample output", f"{b.sample.where} (output of {where})")
                plan.samples[len(plan.checks) - 1] = (b.sample, sc)
                plan.emit(f"__mark sample {len(plan.checks) - 1}")
            skip = next((why for rx, why in SKIP_LINES.items() if rx.match(text)), None)
            if skip:
                sk = plan.check(f"skipped: {text.split('#')[0].strip()}", where)
                sk.status, sk.detail = "skipped", skip
                plan.emit(f"# skipped: {skip}")
            elif HUB_LINE.match(text):
                plan.emit("__before_hub")
                plan.emit("{", where)
                plan.emit(line, where)
                log = f'"$__LOGS/hub-{len(plan.script)}.log"'
                plan.emit(f"}} >{log} 2>&1 </dev/null &", where)
                plan.emit(f"__hub_started $! {log}", where)
            elif NODE_RUN_LINE.match(text):
                plan.emit("{", where)
                plan.emit(line, where)
                log = f'"$__LOGS/run-{len(plan.script)}.log"'
                plan.emit(f"}} >{log} 2>&1 </dev/null &", where)
                plan.emit(f"__run_started $! {log}", where)
            else:
                plan.emit(line, where)
        if sample_at is not None:
            plan.emit(f"__mark end {len(plan.checks) - 1}")
        check.detail = f"{len(starts)} commands"
    # The Python example, against the hub the walkthrough left running.
    check = plan.check("python example", example.where)
    check.detail = "1 program"
    idx = len(plan.checks) - 1
    if example.sample:
        sc = plan.check("python sample output", f"{example.sample.where} (output of {example.where})")
        plan.samples[len(plan.checks) - 1] = (example.sample, sc)
        plan.emit(f"__mark block {idx}")
        plan.emit(f"__mark sample {len(plan.checks) - 1}")
    else:
        plan.emit(f"__mark block {idx}")
    # One command per line: a failure in an `a && b` list would not stop the session.
    plan.emit('mkdir "$__LOGS/py"')
    plan.emit('cd "$__LOGS/py"')
    plan.emit(f'PYTHONPATH="$__REPO/bindings/python" timeout 300 {shlex.quote(tools_python)} '
              '"$__LOGS/example.py"', example.where)
    plan.emit('cd "$__REPO"')
    plan.emit(f"__mark end {idx}")
    plan.emit(f"__mark done {idx}")
    return plan


def tools_python() -> str:
    if os.environ.get("TOOLS_PYTHON"):
        return os.environ["TOOLS_PYTHON"]
    env_sh = REPO / "target" / "tools" / "env.sh"
    if not env_sh.exists():
        sys.exit("test-readme: target/tools/env.sh is missing: run `bash scripts/bindings-tools.sh`")
    out = subprocess.run(["bash", "-c", f'. {shlex.quote(str(env_sh))} && printf %s "$TOOLS_PYTHON"'],
                         capture_output=True, text=True, check=True)
    return out.stdout


def no_rebuild_check(check: Check) -> None:
    """`cargo run -p stocksync` right after the test build must not compile anything."""
    out = subprocess.run(["cargo", "build", "-p", "stocksync", "--locked", "--message-format=json"],
                         cwd=REPO, capture_output=True, text=True)
    if out.returncode != 0:
        check.status, check.detail = "failed", out.stderr[-3000:]
        return
    built = []
    for line in out.stdout.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and not msg.get("fresh", True):
            built.append(msg["package_id"].rsplit("#", 1)[-1] + " " + msg["target"]["name"])
    if built:
        check.status = "failed"
        check.detail = (f"`cargo build -p stocksync` compiled {len(built)} units after the test build "
                        f"(features or profiles differ; see desktop/Cargo.toml): " + ", ".join(built[:20]))
    else:
        check.status, check.detail = "passed", "nothing to compile"


# --- isolation -------------------------------------------------------------------------------

def loopback_up() -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    flags = struct.unpack("16sH", fcntl.ioctl(s, siocgifflags, struct.pack("16sH", b"lo", 0)))[1]
    fcntl.ioctl(s, siocsifflags, struct.pack("16sH", b"lo", flags | iff_up))
    s.close()


def in_namespace() -> bool:
    """Inside `unshare --mount --net`: a private /tmp and a loopback of our own."""
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=1777", "tmpfs", "/tmp"], check=True)
    loopback_up()
    return True


def unshare_prefix() -> list[str] | None:
    if not shutil.which("unshare") or not shutil.which("mount"):
        return None
    for extra in ([], ["--map-root-user"]):
        # --pid: everything the session started dies with it, whatever happens.
        cmd = ["unshare", *extra, "--mount", "--net", "--pid", "--fork", "--"]
        probe = subprocess.run([*cmd, "true"], capture_output=True)
        if probe.returncode == 0:
            return cmd
    return None


# --- main ------------------------------------------------------------------------------------

def run_session(plan: Plan, example: Block, isolated: bool) -> tuple[str, str, int]:
    logs = LOGS
    # Two runs in one checkout share target/readme-test/: one at a time.
    LOGS.parent.mkdir(parents=True, exist_ok=True)
    own = open(LOGS.parent / "readme-test.lock", "w")
    fcntl.flock(own, fcntl.LOCK_EX)
    if logs.exists():
        shutil.rmtree(logs)
    logs.mkdir()
    (logs / "example.py").write_text("\n".join(example.body) + "\n")
    (logs / "session.sh").write_text("\n".join(plan.script) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKSYNC_")}
    env.update(__REPO=str(REPO), __LOGS=str(logs), __MARK=MARK, __PORT=str(PORT))
    lock = None
    if not isolated:
        lock = open("/tmp/stocksync-readme-test.lock", "w")
        print("test-readme: no private namespace (--no-isolation, or unshare cannot make one): "
              "waiting for the machine-wide lock /tmp/stocksync-readme-test.lock", flush=True)
        fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        with open(logs / "session.out", "w+") as out, open(logs / "session.err", "w+") as err:
            p = subprocess.Popen(["bash", str(logs / "session.sh")], cwd=REPO, env=env,
                                 stdout=out, stderr=err, start_new_session=True)
            try:
                rc = p.wait(timeout=SESSION_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGTERM)  # its EXIT trap stops the hub
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
                err.write(f"\n{MARK} timeout: the session ran longer than {SESSION_TIMEOUT} s\n")
                rc = 124
            out.seek(0)
            err.seek(0)
            return out.read(), err.read(), rc
    finally:
        if lock:
            lock.close()


def split_marks(text: str) -> list[tuple[str, list[str]]]:
    """[(mark, lines after it until the next mark)], the first mark being '' for leading text."""
    parts: list[tuple[str, list[str]]] = [("", [])]
    for line in text.splitlines():
        if line.startswith(MARK + " "):
            parts.append((line[len(MARK) + 1:].rsplit(" @", 1)[0], []))
        else:
            parts[-1][1].append(line)
    return parts


def evaluate(plan: Plan, out: str, err: str, rc: int) -> None:
    parts = split_marks(out)
    marks = [m for m, _ in parts]
    # Sample outputs: the stdout of the block's last command, between "sample K" and the next mark
    # (an "end" mark when the command completed).
    for k, (sample, check) in plan.samples.items():
        if f"sample {k}" not in marks:
            continue
        i = marks.index(f"sample {k}")
        if i + 1 >= len(marks) or not marks[i + 1].startswith("end "):
            continue  # the command failed: the block's check says where
        want = normalise("\n".join(sample.body))
        got = normalise("\n".join(parts[i][1]))
        if sample.path == PY_README:
            got = got[-len(want):]  # the tail of what the example prints
        if got == want:
            check.status = "passed"
        else:
            check.status = "failed"
            check.detail = "\n".join(difflib.unified_diff(
                want, got, f"{sample.where} (normalised)", "what the command printed (normalised)",
                lineterm=""))
    # Blocks: passed if the session went past them; the one it stopped in failed.
    started = [int(m.split()[1]) for m in marks if m.startswith("block ")]
    times = {int(m.split()[1]): int(t) for m, t in re.findall(
        re.escape(MARK) + r" (block \d+) @(\d+)", out)}
    ends = sorted(times.items(), key=lambda kv: kv[1])
    end_time = max([int(t) for t in re.findall(re.escape(MARK) + r" .* @(\d+)", out)] or [0])
    for n, (i, t) in enumerate(ends):
        nxt = ends[n + 1][1] if n + 1 < len(ends) else end_time
        plan.checks[i].detail += f", {nxt - t} s"
    failed_line = None
    for m, _ in split_marks(err):
        if m.startswith("failed-at "):
            failed_line = plan.line_map.get(int(m.split()[1]), failed_line)
    last = max(started) if started else None
    for i in started:
        c = plan.checks[i]
        if i < last or rc == 0:
            c.status = "passed"
        else:
            c.status = "failed"
            tail = "\n".join([l for l in err.strip().splitlines() if not l.startswith(MARK)][-30:])
            c.detail = f"stopped at {failed_line or 'a line of the test'} (exit {rc}); stderr:\n{tail}"
    if rc != 0 and last is None:
        c = plan.checks[0]
        c.status, c.detail = "failed", f"the session failed (exit {rc}):\n{err[-3000:]}"
    for c in plan.checks:
        if c.status == "not run":
            c.detail = "not run: an earlier step failed"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--after-test-build", action="store_true",
                    help="also check that `cargo build -p stocksync` compiles nothing (test.sh)")
    ap.add_argument("--in-namespace", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--no-isolation", action="store_true",
                    help="do not use unshare (serialise with a lock file instead)")
    args = ap.parse_args()

    if not args.in_namespace and not args.no_isolation:
        prefix = unshare_prefix()
        if prefix:
            cmd = [*prefix, sys.executable, __file__, "--in-namespace"]
            if args.after_test_build:
                cmd.append("--after-test-build")
            return subprocess.run(cmd).returncode
    # Opened before a private /tmp hides the file (scripts/test.sh makes it with mktemp).
    counts = open(os.environ["STOCKSYNC_TEST_COUNTS"], "a") if os.environ.get("STOCKSYNC_TEST_COUNTS") else None
    isolated = args.in_namespace and in_namespace()

    readme = fenced_blocks(README)
    examples = [b for b in fenced_blocks(PY_README) if b.lang == "python"]
    text = PY_README.read_text().splitlines()
    example = next((b for b in examples
                    if any(l.startswith("## ") for l in text[:b.line - 1])
                    and [l for l in text[:b.line - 1] if l.startswith("## ")][-1] == "## Example"), None)
    if example is None:
        sys.exit("test-readme: no ```python block under '## Example' in bindings/python/README.md")
    py = tools_python()
    lib = REPO / "bindings" / "python" / "stocksync" / "libstocksync_ffi.so"
    if not lib.exists():
        sys.exit(f"test-readme: {lib.relative_to(REPO)} is missing: run `bash scripts/bindings.sh`")

    checks: list[Check] = []
    if args.after_test_build:
        c = Check("no rebuild: cargo run -p stocksync after the test build", "desktop/Cargo.toml")
        no_rebuild_check(c)
        checks.append(c)

    plan = build_plan(readme, example, py)
    started = time.monotonic()
    print(f"test-readme: {sum(1 for b in readme if b.lang == 'sh')} sh blocks of README.md and the "
          f"Python example, {'in a private /tmp and network namespace' if isolated else 'not isolated'}",
          flush=True)
    out, err, rc = run_session(plan, example, isolated)
    evaluate(plan, out, err, rc)
    checks += plan.checks

    for c in checks:
        line = f"{c.status:8} {c.name}  {c.where}" + (f"  ({c.detail})" if c.status == "passed" and c.detail else "")
        if c.status != "passed" and c.detail:
            line += "\n" + "\n".join("    " + d for d in c.detail.splitlines())
        print(line)
    if rc != 0:
        print("--- the session's stdout (last 40 lines) ---")
        print("\n".join(l for l in out.splitlines()[-40:]))
    print(f"test-readme: the session's script and output are in {LOGS.relative_to(REPO)}/")
    n = {s: sum(1 for c in checks if c.status == s) for s in ("passed", "failed", "skipped", "not run")}
    failed = n["failed"] + n["not run"]
    status = 0 if failed == 0 else 1
    print(f"test-readme: {time.monotonic() - started:.0f} s")
    print(f"readme: {n['passed']} passed, {failed} failed, {n['skipped']} skipped")
    if counts:
        counts.write(f"readme {n['passed']} {failed} {n['skipped']} {status}\n")
        counts.close()
    return status


if __name__ == "__main__":
    sys.exit(main())
