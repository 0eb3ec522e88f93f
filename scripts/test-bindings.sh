#!/usr/bin/env bash
# The binding tests (part of scripts/test.sh; runs alone too): the generated Kotlin/Swift/Python
# checked against the Rust code, then the real shared library loaded by a Python process and by
# a JVM, each running bindings/SCENARIO.md against a real hub, and the Swift syntax-checked
# (no Swift toolchain exists on Linux). Installs its own tools (scripts/bindings-tools.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

start=$SECONDS
timed() {
    local name=$1 t=$SECONDS
    shift
    echo "== bindings: $name"
    "$@"
    echo "   ($name: $((SECONDS - t)) s)"
}

timed tools bash scripts/bindings-tools.sh
# shellcheck source=/dev/null
. target/tools/env.sh
# Also builds target/debug/stocksync, the hub the scenarios run against.
timed "library + generated sources up to date" bash scripts/bindings.sh --check
export STOCKSYNC_BIN=$PWD/target/debug/stocksync

timed "python scenario" "$TOOLS_PYTHON" -m pytest bindings/python/tests -q -p no:cacheprovider
timed "kotlin scenario (JVM)" bash scripts/test-kotlin.sh
timed "swift syntax" "$TOOLS_PYTHON" ios/check_swift_syntax.py
echo "bindings: all passed in $((SECONDS - start)) s"
