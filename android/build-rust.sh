#!/usr/bin/env bash
# Builds the Rust core (bindings/ffi, crate stocksync-ffi) for Android with cargo-ndk into
# stocksync/src/main/jniLibs/<abi>/libstocksync_ffi.so, after regenerating the Kotlin bindings
# (scripts/bindings.sh), so the Kotlin in stocksync/src/main/kotlin and the libraries come from
# the same Rust code.
#
#   bash android/build-rust.sh
#
# Needs: rustup with the Android targets, cargo-ndk (`cargo install cargo-ndk`), and an Android
# NDK with ANDROID_NDK_HOME pointing at it (Android Studio: SDK Manager > SDK Tools > NDK; it
# lands in $ANDROID_HOME/ndk/<version>). Then build the app in Android Studio or with Gradle.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
    echo "build-rust: $*" >&2
    exit 1
}

# --- what is needed, checked before anything is built ---------------------------------------
command -v cargo >/dev/null || fail "cargo not found: install Rust with rustup (https://rustup.rs)"
command -v cargo-ndk >/dev/null || cargo ndk --help >/dev/null 2>&1 ||
    fail "cargo-ndk not found: cargo install cargo-ndk"
[[ -n "${ANDROID_NDK_HOME:-}" ]] ||
    fail "ANDROID_NDK_HOME is not set: point it at an NDK, e.g.
  export ANDROID_NDK_HOME=\$ANDROID_HOME/ndk/<version>   (SDK Manager > SDK Tools > NDK)"
[[ -d "$ANDROID_NDK_HOME/toolchains/llvm/prebuilt" ]] ||
    fail "ANDROID_NDK_HOME=$ANDROID_NDK_HOME does not look like an NDK (no toolchains/llvm/prebuilt)"

abis=(arm64-v8a armeabi-v7a x86_64)
rust_targets=(aarch64-linux-android armv7-linux-androideabi x86_64-linux-android)
if command -v rustup >/dev/null; then
    installed=$(rustup target list --installed)
    missing=()
    for t in "${rust_targets[@]}"; do
        grep -qx "$t" <<<"$installed" || missing+=("$t")
    done
    ((${#missing[@]} == 0)) || fail "Rust targets missing for this toolchain; install them with:
  rustup target add ${missing[*]}"
fi

# --- build ---------------------------------------------------------------------------------------
# The Kotlin bindings (a host build of the library + uniffi-bindgen).
bash scripts/bindings.sh

jni_libs=$PWD/android/stocksync/src/main/jniLibs
targets=()
for abi in "${abis[@]}"; do targets+=(-t "$abi"); done
# --platform 26 = the library's minSdk.
cargo ndk "${targets[@]}" --platform 26 -o "$jni_libs" build --release --locked -p stocksync-ffi

for abi in "${abis[@]}"; do
    so=$jni_libs/$abi/libstocksync_ffi.so
    [[ -f "$so" ]] || fail "expected $so after the build"
    echo "build-rust: $so ($(du -h "$so" | cut -f1))"
done
