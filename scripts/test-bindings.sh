#!/usr/bin/env bash
# The binding tests (part of scripts/test.sh; runs alone too): the generated Kotlin/Swift/Python
# checked against the Rust code, then the real shared library loaded by a Python process and by
# a JVM, each running bindings/SCENARIO.md against a real hub, and the Swift syntax-checked
# (no Swift toolchain exists on Linux). Installs its own tools (scripts/bindings-tools.sh).
# Prints `python: …`, `kotlin: …`, `swift: N passed, N failed, N skipped` (files, for the Swift
# check) and records them for scripts/test.sh's closing line (scripts/test-counts.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/test-counts.sh
. scripts/test-counts.sh

start=$SECONDS
# timed TITLE COUNT_NAME [PARSER] -- CMD…: a part with counts (PARSER) or a setup step (none).
timed() {
    local title=$1 name=$2 parser= t=$SECONDS status=0
    shift 2
    if [[ "$1" != -- ]]; then
        parser=$1
        shift
    fi
    shift
    echo "== bindings: $title"
    if [[ -n "$parser" ]]; then
        counts_run "$name" "$parser" "$@" || status=$?
    else
        "$@" || status=$?
        counts_record "$name" 0 0 0 "$status"
    fi
    echo "   ($title: $((SECONDS - t)) s)"
    return "$status"
}

timed tools bindings-tools -- bash scripts/bindings-tools.sh
# shellcheck source=/dev/null
. target/tools/env.sh
# Also builds target/debug/stocksync, the hub the scenarios run against.
timed "library + generated sources up to date" bindings-generated -- bash scripts/bindings.sh --check
export STOCKSYNC_BIN=$PWD/target/debug/stocksync

timed "python scenario" python pytest -- "$TOOLS_PYTHON" -m pytest bindings/python/tests -q -p no:cacheprovider
timed "kotlin scenario (JVM)" kotlin junit -- bash scripts/test-kotlin.sh
timed "swift syntax" swift swift -- "$TOOLS_PYTHON" ios/check_swift_syntax.py
echo "bindings: all passed in $((SECONDS - start)) s"
