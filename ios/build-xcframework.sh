#!/usr/bin/env bash
# Builds ios/StocksyncFFI.xcframework: the Rust core (bindings/ffi, crate stocksync-ffi) as a
# static library per Apple platform, with the C header and module map uniffi generates. The Swift
# package (ios/Package.swift) uses it as its `StocksyncFFI` binary target.
#
#   bash ios/build-xcframework.sh           iOS devices + iOS simulator (arm64 and x86_64)
#   bash ios/build-xcframework.sh --macos   also macOS (arm64 and x86_64)
#
# Needs a Mac with Xcode (xcodebuild, lipo, the iOS SDKs) and rustup with the Apple targets.
# Regenerates the bindings first (scripts/bindings.sh), so the Swift in Sources/ and the header
# in the xcframework come from the same Rust code as the libraries.
set -euo pipefail
cd "$(dirname "$0")/.."

with_macos=0
for arg in "$@"; do
    case "$arg" in
    --macos) with_macos=1 ;;
    -h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' && exit 0 ;;
    *) echo "build-xcframework: unknown argument $arg (see --help)" >&2 && exit 2 ;;
    esac
done

fail() {
    echo "build-xcframework: $*" >&2
    exit 1
}

# --- what is needed, checked before anything is built ---------------------------------------
[[ "$(uname -s)" == Darwin ]] ||
    fail "needs macOS with Xcode (xcodebuild, lipo, the iOS SDKs); this is $(uname -s).
  The Swift sources can still be syntax-checked here: \$TOOLS_PYTHON ios/check_swift_syntax.py"
command -v xcodebuild >/dev/null || fail "xcodebuild not found: install Xcode"
xcodebuild -version >/dev/null 2>&1 ||
    fail "xcodebuild does not run (only the Command Line Tools selected?):
  sudo xcode-select --switch /Applications/Xcode.app/Contents/Developer"
command -v lipo >/dev/null || fail "lipo not found: install Xcode"
command -v cargo >/dev/null || fail "cargo not found: install Rust with rustup (https://rustup.rs)"
command -v rustup >/dev/null ||
    fail "rustup not found: the Apple targets are installed with rustup (https://rustup.rs)"

device=aarch64-apple-ios
simulators=(aarch64-apple-ios-sim x86_64-apple-ios)
macs=(aarch64-apple-darwin x86_64-apple-darwin)
targets=("$device" "${simulators[@]}")
if ((with_macos)); then targets+=("${macs[@]}"); fi

installed=$(rustup target list --installed)
missing=()
for t in "${targets[@]}"; do
    grep -qx "$t" <<<"$installed" || missing+=("$t")
done
((${#missing[@]} == 0)) || fail "Rust targets missing for this toolchain; install them with:
  rustup target add ${missing[*]}"

# --- build ---------------------------------------------------------------------------------------
# The Swift bindings, header and module map (host build + uniffi-bindgen). The release profile
# also sidesteps macOS's bash 3.2, where bindings.sh's empty option array for the default debug
# profile trips `set -u` ("cargo_profile[@]: unbound variable").
STOCKSYNC_FFI_PROFILE=release bash scripts/bindings.sh

# The minimum OS versions of Package.swift, for rustc and for the C code (SQLite, aws-lc).
export IPHONEOS_DEPLOYMENT_TARGET=15.0
export MACOSX_DEPLOYMENT_TARGET=12.0
for t in "${targets[@]}"; do
    echo "build-xcframework: cargo build --release --target $t" >&2
    cargo build --release --locked -p stocksync-ffi --target "$t"
done

lib=libstocksync_ffi.a
work=target/xcframework
rm -rf "$work"
mkdir -p "$work/headers" "$work/ios-simulator" "$work/macos"

# One headers dir for every slice: the header and the module map under the name clang looks for.
cp ios/Generated/StocksyncFFI.h "$work/headers/StocksyncFFI.h"
cp ios/Generated/StocksyncFFI.modulemap "$work/headers/module.modulemap"

# A platform has one slice in an xcframework: the two simulator architectures become one file.
sim_libs=()
for t in "${simulators[@]}"; do sim_libs+=("target/$t/release/$lib"); done
lipo -create "${sim_libs[@]}" -output "$work/ios-simulator/$lib"

args=(
    -library "target/$device/release/$lib" -headers "$work/headers"
    -library "$work/ios-simulator/$lib" -headers "$work/headers"
)
if ((with_macos)); then
    mac_libs=()
    for t in "${macs[@]}"; do mac_libs+=("target/$t/release/$lib"); done
    lipo -create "${mac_libs[@]}" -output "$work/macos/$lib"
    args+=(-library "$work/macos/$lib" -headers "$work/headers")
fi

out=ios/StocksyncFFI.xcframework
rm -rf "$out"
xcodebuild -create-xcframework "${args[@]}" -output "$out"
echo "build-xcframework: $out (${targets[*]})"
echo "build-xcframework: add the package in Xcode: File > Add Package Dependencies… > Add Local… > ios/" >&2
