#!/usr/bin/env bash
# The one test command (README quick start, and CI through .ci/run).
# Builds the binaries the cluster tests start, then runs every test of the
# workspace: unit and property tests of the pure crates, and cluster tests over
# real raftqd processes on 127.0.0.1. Extra arguments go to `cargo test`
# (e.g. `scripts/test.sh -p raftq-tests --test cluster_core`).
set -euo pipefail
cd "$(dirname "$0")/.."

# A test crate cannot make cargo build another crate's binary: build it here.
cargo build --bins
# Test exactly the raftqd just built, not a newer release build lying around.
export RAFTQD_BIN="${RAFTQD_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/debug/raftqd}"
[[ -x "$RAFTQD_BIN" ]] || {
  echo "test.sh: $RAFTQD_BIN missing after cargo build --bins" >&2
  exit 1
}
# Cluster tests each start 3-5 processes; two at a time is what 2 cores carry
# without starving Raft heartbeats.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-2}"
cargo test --workspace "$@"
