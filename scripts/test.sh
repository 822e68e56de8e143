#!/usr/bin/env bash
# The one test command (README quick start, and CI through .ci/run).
# Builds the binaries the cluster tests start, then runs every test of the
# workspace: unit and property tests of the pure crates, and cluster tests over
# real raftqd processes on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --bins
# Cluster tests each start 3-5 processes; two at a time is what 2 cores carry
# without starving Raft heartbeats.
RUST_TEST_THREADS="${RUST_TEST_THREADS:-2}" cargo test --workspace "$@"
