#!/usr/bin/env bash
# The Kotlin scenario on the JVM (bindings/SCENARIO.md): the shipped Kotlin sources of the Android
# library (the generated bindings + the dev.stocksync layer) and its JUnit test, compiled by kotlinc
# in one call and run against the real target/debug/libstocksync_ffi.so and a real hub process.
#
#   bash scripts/bindings.sh      # first: builds the library and generates the Kotlin
#   bash scripts/test-kotlin.sh
#
# Compiling is skipped when no .kt source (nor the kotlinc in use) changed since the last
# successful compile. STOCKSYNC_BIN names the hub binary (default target/debug/stocksync, built
# when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

start=$SECONDS
bash scripts/bindings-tools.sh
# shellcheck source=/dev/null
. target/tools/env.sh

lib=target/debug/libstocksync_ffi.so
if [[ ! -f "$lib" ]]; then
    echo "test-kotlin: $lib is missing: run \`bash scripts/bindings.sh\` first" >&2
    exit 1
fi
export STOCKSYNC_BIN=${STOCKSYNC_BIN:-$PWD/target/debug/stocksync}
if [[ ! -x "$STOCKSYNC_BIN" ]]; then
    if [[ "$STOCKSYNC_BIN" == "$PWD/target/debug/stocksync" ]]; then
        cargo build -p stocksync --locked
    else
        echo "test-kotlin: STOCKSYNC_BIN=$STOCKSYNC_BIN is not an executable" >&2
        exit 1
    fi
fi

module=android/stocksync/src
generated=$module/main/kotlin/dev/stocksync/ffi/stocksync_ffi.kt
[[ -f "$generated" ]] || { echo "test-kotlin: $generated is missing: run \`bash scripts/bindings.sh\`" >&2; exit 1; }
mapfile -t sources < <(find "$module/main/kotlin" "$module/test/kotlin" -name '*.kt' | LC_ALL=C sort)

out=target/kotlin-test
classes=$out/classes
stamp=$out/.compiled
deps="$JNA_JAR:$COROUTINES_JAR:$JUNIT_JAR:$HAMCREST_JAR"
# What the classes were compiled from: the compiler and the file list (a deleted file counts too);
# the sources' contents are covered by their mtimes against the stamp.
fingerprint=$(printf '%s\n' "$KOTLINC" "$deps" "${sources[@]}")

compile_s=0
if [[ -f "$stamp" && "$(cat "$stamp")" == "$fingerprint" ]] &&
    [[ -z "$(find "${sources[@]}" -newer "$stamp" -print -quit)" ]]; then
    echo "test-kotlin: classes up to date (${#sources[@]} sources)"
else
    echo "test-kotlin: kotlinc ${#sources[@]} sources -> $classes"
    t=$SECONDS
    rm -rf "$classes" "$stamp"
    mkdir -p "$classes"
    # The stamp gets the time compiling began: a source saved meanwhile is newer, so recompiled.
    : >"$out/.compiling"
    if ! "$KOTLINC" -jvm-target 17 -cp "$deps" -d "$classes" "${sources[@]}"; then
        rm -f "$out/.compiling"
        echo "test-kotlin: kotlinc failed. Errors in $generated mean the generated bindings" \
            "do not compile: fix the Rust API (bindings/ffi), rerun \`bash scripts/bindings.sh\`;" \
            "never edit the generated file." >&2
        exit 1
    fi
    compile_s=$((SECONDS - t))
    printf '%s\n' "$fingerprint" >"$out/.compiling.new"
    touch -r "$out/.compiling" "$out/.compiling.new"
    mv "$out/.compiling.new" "$stamp"
    rm -f "$out/.compiling"
fi

t=$SECONDS
status=0
java -Djna.nosys=false \
    -Djava.library.path="$JNA_JNI_DIR" \
    -Djna.library.path="$PWD/target/debug" \
    -cp "$classes:$KOTLIN_LIB/kotlin-stdlib.jar:$deps" \
    org.junit.runner.JUnitCore dev.stocksync.ScenarioTest || status=$?
run_s=$((SECONDS - t))

echo "test-kotlin: compile ${compile_s} s, run ${run_s} s, total $((SECONDS - start)) s"
exit "$status"
