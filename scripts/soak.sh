#!/usr/bin/env bash
# Heavy runs kept out of the normal test command: 200 SIGKILLs of a writing node, 200 of a hub
# taking pushes, 200 of a node in the middle of its sync (and 50 in its pull), 20 of a hub in the
# middle of a device's sync, and 30 seeds of four devices converging.
# STOCKSYNC_CRASH_KILLS, STOCKSYNC_HUB_CRASH_KILLS, SYNC_KILLS, SYNC_HUB_KILLS,
# SYNC_CONVERGENCE_SEEDS and the seeds (STOCKSYNC_CRASH_SEED, SYNC_CRASH_SEED,
# SYNC_CONVERGENCE_SEED) may be set to change or replay a run.
set -euo pipefail
cd "$(dirname "$0")/.."
STOCKSYNC_CRASH_KILLS="${STOCKSYNC_CRASH_KILLS:-200}" \
  cargo test --locked -p stocksync-tests --test crash -- --nocapture
STOCKSYNC_HUB_CRASH_KILLS="${STOCKSYNC_HUB_CRASH_KILLS:-200}" \
  cargo test --locked -p stocksync-tests --test hub_crash -- --nocapture
SYNC_KILLS="${SYNC_KILLS:-200}" SYNC_HUB_KILLS="${SYNC_HUB_KILLS:-20}" \
  cargo test --locked -p stocksync-tests --test sync_crash -- --nocapture
SYNC_CONVERGENCE_SEEDS="${SYNC_CONVERGENCE_SEEDS:-30}" \
  cargo test --locked -p stocksync-tests --test sync_convergence -- --nocapture
