#!/usr/bin/env bash
# Chaos run: a local raftq cluster of real raftqd processes (each in its own
# network namespace when run as root, so partitions are real), producers and
# consumers under load, and a seeded nemesis killing leaders, pausing nodes,
# cutting the network, restarting the cluster and (--membership) replacing
# nodes and moving replicas and leaders, and (--storage-faults) damaging one
# stopped node's files; then a checker over the
# complete history.
#
#   scripts/chaos.sh [--duration 150s] [--nodes 3|5] [--seed N] [--membership] [--storage-faults] [--out DIR]
#
# Ends with one JSON line (faults, confirmed, lost, unexpected, resurrected,
# fifo_violations, split_brain, offset_conflicts, replica_divergence,
# failover_median_ms, failover_max_ms, ...);
# exit status 1 when the checker found an anomaly.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bins -q
exec "${CARGO_TARGET_DIR:-target}/release/raftq-chaos" \
  --raftqd "${CARGO_TARGET_DIR:-target}/release/raftqd" \
  --lazyfs "${CARGO_TARGET_DIR:-target}/release/raftq-lazyfs" "$@"
