#!/usr/bin/env bash
# Every test of stocksync, from a fresh clone: formatting, lints, then all test binaries.
# Needs the Rust toolchain (cargo 1.95), Java 17, Node's npm and Python 3 (all on the machine);
# crates come from crates.io, and the binding tests install their own tools (Debian packages,
# npm, PyPI) through scripts/bindings-tools.sh.
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
# One closing line for the Rust tests (cargo prints one per test binary).
awk '/^test result:/ { p += $4; f += $6; s += $8 }
     END { printf "rust: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
if [[ "$status" != 0 ]]; then
    exit "$status"
fi

echo "== bindings (Python, Kotlin/JVM, Swift syntax)"
bash scripts/test-bindings.sh
