#!/usr/bin/env bash
# Every test of stocksync, from a fresh clone: formatting, lints, then all test binaries.
# Needs only the Rust toolchain (cargo 1.95); crates come from crates.io on first run.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== rustfmt"
cargo fmt --all -- --check

echo "== clippy (-D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== tests"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole run (cargo prints one per test binary).
awk '/^test result:/ { p += $4; f += $6; s += $8 }
     END { printf "all: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
