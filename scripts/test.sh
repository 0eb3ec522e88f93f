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
cargo test --workspace --locked
