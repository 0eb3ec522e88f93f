#!/usr/bin/env bash
# Fuzzes a real hub with schemathesis (from PyPI) against docs/openapi.json: generated and mutated
# requests on every operation; no answer may be a 5xx, and every answer must match the document
# (status, content type, headers, body). Heavier than the test command, so it runs on its own:
#
#   bash scripts/fuzz-hub.sh            # FUZZ_EXAMPLES=N per operation (default 100)
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/schemathesis-venv
if [ ! -x "$venv/bin/st" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'schemathesis==4.32.5'
fi
cargo build --quiet -p stocksync

data=$(mktemp -d)
target/debug/stocksync hub --dev --data-dir "$data" --bind 127.0.0.1:0 --rate-limit 0 \
  >"$data/hub.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 100); do
  [ -s "$data/dev-credentials.json" ] && break
  sleep 0.1
done
read -r url key < <(python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); print(c["base_url"], c["api_key"])' \
  "$data/dev-credentials.json")

"$venv/bin/st" run docs/openapi.json --url "$url" \
  -H "X-API-Key: $key" -H "X-Organization-ID: org_demo" \
  --max-examples "${FUZZ_EXAMPLES:-100}" \
  --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance,response_headers_conformance \
  --exclude-path-regex '/v1/ws'
