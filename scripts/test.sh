#!/usr/bin/env bash
# Every test of stocksync, from a fresh clone: formatting, lints, all test binaries, the bindings,
# then the README's walkthrough run as printed. Needs the Rust toolchain (cargo 1.95), Java 17,
# Node's npm and Python 3 (all on the machine); crates come from crates.io, and the binding tests
# install their own tools (Debian packages, npm, PyPI) through scripts/bindings-tools.sh.
#
# Each part prints `NAME: N passed, N failed, N skipped`; the last line of the output is always
# `all: N passed, N failed, N skipped` over Rust, Python, Kotlin, the Swift syntax check and the
# README (scripts/test-counts.sh), also when a part fails: then the command stops after that part
# and exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/test-counts.sh
. scripts/test-counts.sh

STOCKSYNC_TEST_COUNTS=$(mktemp)
export STOCKSYNC_TEST_COUNTS
finish() {
    local status=$?
    counts_summary
    rm -f "$STOCKSYNC_TEST_COUNTS"
    exit "$status"
}
trap finish EXIT

echo "== rustfmt"
cargo fmt --all -- --check || { counts_record rustfmt 0 0 0 $?; exit 1; }
counts_record rustfmt 0 0 0 0

echo "== clippy (-D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings || { counts_record clippy 0 0 0 $?; exit 1; }
counts_record clippy 0 0 0 0

echo "== tests"
# One count line for the Rust tests (cargo prints a `test result:` line per test binary).
counts_run rust cargo cargo test --workspace --locked

echo "== bindings (Python, Kotlin/JVM, Swift syntax)"
bash scripts/test-bindings.sh

echo "== README (its walkthrough and bindings/python/README.md's example, run as printed)"
status=0
python3 scripts/test-readme.py --after-test-build || status=$?
if [[ "$status" != 0 ]] && ! grep -q '^readme ' "$STOCKSYNC_TEST_COUNTS"; then
    counts_record readme 0 0 0 "$status" # it stopped before counting
fi
exit "$status"
