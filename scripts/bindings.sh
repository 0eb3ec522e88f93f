#!/usr/bin/env bash
# Builds the shared library (bindings/ffi) and generates its Kotlin, Swift and Python bindings.
#
#   bash scripts/bindings.sh            build, then write the generated files into the packages
#   bash scripts/bindings.sh --check    build, then fail if the committed generated files differ
#   STOCKSYNC_FFI_PROFILE=release bash scripts/bindings.sh    an optimised library
#
# The generated sources are committed (android/, ios/ and bindings/python/ read as complete
# projects, and a change to the API shows up in review); `--check` in the test command keeps
# them true to the Rust code. The library itself is copied, never committed.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-write}
profile=${STOCKSYNC_FFI_PROFILE:-debug}
case "$profile" in
# Debug builds what `cargo test --workspace` builds (and so is free right after it): built alone,
# `-p stocksync-ffi` (or plain `--workspace`) resolves other features for shared crates than the
# test build and recompiles up to ~80 of them. It also builds the hub binary the scenarios use.
debug) cargo_args=(--workspace --lib --bins --tests) ;;
release) cargo_args=(-p stocksync-ffi --release) ;;
*) echo "STOCKSYNC_FFI_PROFILE must be debug or release" >&2 && exit 2 ;;
esac
case "$(uname -s)" in
Darwin) ext=dylib ;;
*) ext=so ;;
esac

cargo build --locked "${cargo_args[@]}"
# Its own workspace (see its Cargo.toml); the shared target dir keeps one build cache.
cargo build --manifest-path bindings/uniffi-bindgen/Cargo.toml --target-dir target --locked

lib="target/$profile/libstocksync_ffi.$ext"
out=target/bindings
rm -rf "$out"
for language in python kotlin swift; do
    target/debug/uniffi-bindgen generate "$lib" --language "$language" \
        --out-dir "$out/$language" --no-format >/dev/null
done

# generated file -> its place in the repo
pairs=(
    "$out/python/stocksync_ffi.py" bindings/python/stocksync/stocksync_ffi.py
    "$out/kotlin/dev/stocksync/ffi/stocksync_ffi.kt" android/stocksync/src/main/kotlin/dev/stocksync/ffi/stocksync_ffi.kt
    "$out/swift/Stocksync.swift" ios/Sources/Stocksync/Generated/Stocksync.swift
    "$out/swift/StocksyncFFI.h" ios/Generated/StocksyncFFI.h
    "$out/swift/StocksyncFFI.modulemap" ios/Generated/StocksyncFFI.modulemap
)

stale=0
for ((i = 0; i < ${#pairs[@]}; i += 2)); do
    generated=${pairs[i]} committed=${pairs[i + 1]}
    if [[ "$mode" == --check ]]; then
        if ! cmp -s "$generated" "$committed"; then
            echo "stale: $committed differs from what the Rust code generates" >&2
            stale=1
        fi
    else
        mkdir -p "$(dirname "$committed")"
        cp "$generated" "$committed"
    fi
done
if ((stale)); then
    echo "run: bash scripts/bindings.sh   (then commit the generated files)" >&2
    exit 1
fi

# The Python package loads the library from its own directory.
cp "$lib" "bindings/python/stocksync/libstocksync_ffi.$ext"
echo "bindings: $lib -> $out (python, kotlin, swift)"
