#!/usr/bin/env bash
# Installs the tools the uniffi binding tests need, on Debian 12, from package registries only
# (Debian apt, npm, PyPI; Maven Central is not reachable), and writes target/tools/env.sh:
#
#   bash scripts/bindings-tools.sh && . target/tools/env.sh
#
# - apt: JNA (+ its JNI stub) and JUnit 4 (+ hamcrest) for the Kotlin/JVM tests;
# - npm: the Kotlin compiler (the npm package ships the full JVM compiler and the coroutines jar);
# - PyPI: a venv with pytest, and py-tree-sitter + a Swift grammar to syntax-check the Swift code.
# Idempotent: every part is skipped when already in place, so a second run takes about a second.
set -euo pipefail
cd "$(dirname "$0")/.."

tools=$PWD/target/tools

# Pinned versions. Kotlin: newest 2.4.x on npm (`npm view kotlin-compiler versions`); the sha512 is
# the registry's integrity for that tarball, so a changed tarball fails instead of being used.
kotlin_version=2.4.20
kotlin_sha512=205e4854cecba4f840fe7b47410a5a56dd72c6969a428bed11560bcaa58cb9a2ebd177a52cf3e6effb0ce872e1b5c4638e3a12b0aec8ee53f693360990ccbbdf
# Python: the direct tools and their dependencies, so the venv is the same on every machine.
py_pins=(
  pytest==9.2.0 iniconfig==2.3.1 packaging==26.3 pluggy==1.7.0 pygments==2.21.0
  tree-sitter==0.26.1 tree-sitter-swift==0.7.4
)
# junit4 pulls libhamcrest-java; listed anyway because the tests put hamcrest on the classpath.
apt_pkgs=(libjna-java libjna-jni junit4 libhamcrest-java)

mkdir -p "$tools"
# Parallel CI jobs sharing the target dir must not install over each other.
exec 9>"$tools/.lock"
flock 9

for cmd in java javac npm python3; do
  command -v "$cmd" >/dev/null || { echo "bindings-tools: $cmd not found (expected on the machine)" >&2; exit 1; }
done

# --- 1. Debian packages (apt-get update only when something is missing: it is the slow part) ---
missing=()
for pkg in "${apt_pkgs[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)
  [ "${status:0:2}" = ii ] || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  as_root=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "bindings-tools: need root or sudo to install ${missing[*]}" >&2; exit 1; }
    as_root=(sudo)
  fi
  echo "bindings-tools: apt-get install ${missing[*]}" >&2
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- 2. Kotlin compiler from npm, unpacked (not `npm install`ed) into a versioned dir ---
kotlin_home=$tools/kotlin-$kotlin_version
if [ ! -f "$kotlin_home/.complete" ]; then
  echo "bindings-tools: kotlin-compiler@$kotlin_version from npm" >&2
  rm -rf "$kotlin_home"
  work=$(mktemp -d "$tools/.kotlin.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  npm pack --silent --pack-destination "$work" "kotlin-compiler@$kotlin_version" >/dev/null
  tgz=$work/kotlin-compiler-$kotlin_version.tgz
  echo "$kotlin_sha512  $tgz" | sha512sum -c --quiet -
  tar -xzf "$tgz" -C "$work"   # the tarball's root is package/
  # Smoke test before publishing the dir: kotlinc is a JVM program and needs a working java.
  "$work/package/bin/kotlinc" -version 2>&1 | grep -q "kotlinc-jvm $kotlin_version" \
    || { echo "bindings-tools: kotlinc -version failed" >&2; exit 1; }
  touch "$work/package/.complete"
  mv "$work/package" "$kotlin_home"   # atomic: a half-unpacked compiler is never used
  rm -rf "$work"
  trap - EXIT
fi

# --- 3. Python venv; a stamp holding the pins decides whether pip has to run ---
venv=$tools/venv
stamp="${py_pins[*]}"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.pins" 2>/dev/null)" != "$stamp" ]; then
  echo "bindings-tools: venv with ${py_pins[*]}" >&2
  rm -f "$venv/.pins"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${py_pins[@]}"
  # The grammar must load with this py-tree-sitter (ABI) and actually tell good Swift from bad.
  "$venv/bin/python" - <<'EOF'
import tree_sitter_swift
from tree_sitter import Language, Parser
parser = Parser(Language(tree_sitter_swift.language()))
good = parser.parse(b"import Foundation\nstruct A { let x: Int }\n").root_node
bad = parser.parse(b"struct A { let x: Int \nfunc (\n").root_node
assert good.type == "source_file" and not good.has_error, good
assert bad.has_error, bad
EOF
  echo "$stamp" >"$venv/.pins"
fi

# --- 4. env.sh: plain exports only, so sourcing it is harmless ---
jni_dir=$(dpkg -L libjna-jni | grep -m1 '/libjnidispatch[^/]*\.so$' || true)
jni_dir=${jni_dir%/*}
vars=(
  KOTLINC="$kotlin_home/bin/kotlinc"
  KOTLIN_LIB="$kotlin_home/lib"
  COROUTINES_JAR="$kotlin_home/lib/kotlinx-coroutines-core-jvm.jar"
  JNA_JAR=/usr/share/java/jna.jar
  JNA_JNI_DIR="$jni_dir"
  JUNIT_JAR=/usr/share/java/junit4.jar
  HAMCREST_JAR=/usr/share/java/hamcrest.jar
  TOOLS_PYTHON="$venv/bin/python"
)
{
  echo "# Written by scripts/bindings-tools.sh; paths of the binding test tools."
  for kv in "${vars[@]}"; do
    path=${kv#*=}
    [ -n "$path" ] && [ -e "$path" ] || { echo "bindings-tools: ${kv%%=*}: '$path' missing" >&2; exit 1; }
    printf 'export %s=%q\n' "${kv%%=*}" "$path"
  done
} >"$tools/env.sh.new"
# Rewritten only when it changes, so its mtime stays meaningful.
if cmp -s "$tools/env.sh.new" "$tools/env.sh"; then
  rm -f "$tools/env.sh.new"
else
  mv "$tools/env.sh.new" "$tools/env.sh"
fi
