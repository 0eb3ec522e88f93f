#!/usr/bin/env bash
# Heavy runs kept out of the normal test command: 200 SIGKILLs of a writing node, then 200 of a
# hub taking pushes.
# STOCKSYNC_CRASH_KILLS, STOCKSYNC_HUB_CRASH_KILLS and STOCKSYNC_CRASH_SEED may be set to change
# or replay a run.
set -euo pipefail
cd "$(dirname "$0")/.."
STOCKSYNC_CRASH_KILLS="${STOCKSYNC_CRASH_KILLS:-200}" \
  cargo test --locked -p stocksync-tests --test crash -- --nocapture
STOCKSYNC_HUB_CRASH_KILLS="${STOCKSYNC_HUB_CRASH_KILLS:-200}" \
  cargo test --locked -p stocksync-tests --test hub_crash -- --nocapture
