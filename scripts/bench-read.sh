#!/usr/bin/env bash
# Stream read throughput: readers spread over a 3-replica stream's replicas
# versus all readers on its leader (issue 4).
#
#   scripts/bench-read.sh [--runs N] [--cpu-per-node CORES] [--duration D] [--out FILE]
#
# Starts a fresh local 3-node release cluster, loads a stream (20,000 x 256 B),
# then runs `raftq-bench read --spread leader` and `--spread replicas`
# alternately, N times each (default 3), and writes medians (min-max) and their
# ratio to bench/results/read.md (or --out), the raw JSON lines beside it.
#
# All three nodes share this machine's cores, which hides what spreading reads
# buys on real, separate machines. --cpu-per-node (default 0.5; 0 = off) gives
# each raftqd its own CPU quota through a cgroup (root and a cgroup cpu
# controller needed; otherwise the run says so and goes on uncapped), so each
# node is a small machine of its own and the leader's share is what
# leader-only reads can use.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=3
CPU=0.5
DURATION=15s
OUT=bench/results/read.md
while (($#)); do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --cpu-per-node) CPU=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "usage: scripts/bench-read.sh [--runs N] [--cpu-per-node CORES] [--duration D] [--out FILE]" >&2; exit 2 ;;
  esac
done

export RAFTQ_CLUSTER_DIR="${RAFTQ_CLUSTER_DIR:-.bench-read-cluster}"
export RAFTQ_BASE_PORT="${RAFTQ_BASE_PORT:-7501}"
RAFTQ_BENCH="${CARGO_TARGET_DIR:-target}/release/raftq-bench"
SERVERS="127.0.0.1:$RAFTQ_BASE_PORT,127.0.0.1:$((RAFTQ_BASE_PORT + 1)),127.0.0.1:$((RAFTQ_BASE_PORT + 2))"
RAW="${OUT%.md}.jsonl"
mkdir -p "$(dirname "$OUT")"
: >"$RAW"

# cgroup directories made here (v2 or v1 cpu controller), removed on exit.
CGROUPS=()
cgroup_root() {
  if [[ -f /sys/fs/cgroup/cgroup.controllers ]] && grep -qw cpu /sys/fs/cgroup/cgroup.controllers; then
    echo "v2 /sys/fs/cgroup"
  elif [[ -d /sys/fs/cgroup/cpu && -w /sys/fs/cgroup/cpu ]]; then
    echo "v1 /sys/fs/cgroup/cpu"
  fi
}

# Puts the pid of node $1 into a cgroup of its own with a quota of $CPU cores.
cap_node() {
  local id=$1 pid kind root dir quota
  pid=$(<"$RAFTQ_CLUSTER_DIR/pids/node$id")
  read -r kind root <<<"$(cgroup_root)"
  dir="$root/raftq-bench-read-node$id"
  mkdir -p "$dir"
  CGROUPS+=("$dir")
  quota=$(python3 -c "print(int($CPU * 100000))")
  if [[ $kind == v2 ]]; then
    echo "$quota 100000" >"$dir/cpu.max"
  else
    echo 100000 >"$dir/cpu.cfs_period_us"
    echo "$quota" >"$dir/cpu.cfs_quota_us"
  fi
  echo "$pid" >"$dir/cgroup.procs"
}

cleanup() {
  scripts/cluster.sh down >/dev/null 2>&1 || true
  local dir
  for dir in "${CGROUPS[@]}"; do rmdir "$dir" 2>/dev/null || true; done
}
trap cleanup EXIT

scripts/cluster.sh down >/dev/null 2>&1 || true
rm -rf "${RAFTQ_CLUSTER_DIR:?}"
scripts/cluster.sh up 3 >/dev/null

CAPPED="no (all nodes share the machine's cores)"
if [[ $CPU != 0 ]]; then
  if ((EUID == 0)) && [[ -n "$(cgroup_root)" ]]; then
    for id in 1 2 3; do cap_node "$id"; done
    CAPPED="$CPU core per node (cgroup quota)"
  else
    echo "SKIPPED: per-node CPU caps (need root and a cgroup cpu controller); running uncapped"
  fi
fi
echo "CPU per node: $CAPPED"

raftq_bench() { "$RAFTQ_BENCH" --servers "$SERVERS" "$@"; }
for ((run = 1; run <= RUNS; run++)); do
  for spread in leader replicas; do
    line=$(raftq_bench --json read --spread "$spread" --duration "$DURATION" | tail -1)
    echo "{\"spread\":\"$spread\",\"run\":$run,\"result\":$line}" >>"$RAW"
    echo "  run $run $spread: $line"
  done
done

python3 - "$RAW" "$OUT" "$CAPPED" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" <<'EOF'
import json, statistics, sys, platform, os
raw, out, capped, commit = sys.argv[1:5]
rows = [json.loads(l) for l in open(raw) if l.strip()]
def runs(spread, key):
    return [r["result"][key] for r in rows if r["spread"] == spread]
def fmt(v):
    return f"{statistics.median(v):,.0f} ({min(v):,.0f}-{max(v):,.0f})"
lead, repl = runs("leader", "msgs_per_sec"), runs("replicas", "msgs_per_sec")
ratio = statistics.median(repl) / statistics.median(lead) if lead and statistics.median(lead) else float("nan")
per_node = [r["result"].get("per_node", {}) for r in rows if r["spread"] == "replicas"]
with open(out, "w") as f:
    f.write("# Stream reads: spread over replicas vs leader only\n\n")
    f.write(f"commit {commit}, {platform.machine()}, {os.cpu_count()} cores; "
            f"3 nodes on 127.0.0.1; CPU per node: {capped}; "
            f"stream of 20,000 x 256 B, 3 replicas; 6 readers, each making full passes "
            f"(ReadStream from the first offset); {len(lead)} runs each, median (min-max).\n\n")
    f.write("| readers on | msgs/s | pass p50 ms | pass p99 ms |\n|---|---|---|---|\n")
    for name, spread in (("leader only", "leader"), ("all 3 replicas", "replicas")):
        f.write(f"| {name} | {fmt(runs(spread, 'msgs_per_sec'))} | "
                f"{fmt(runs(spread, 'p50_ms'))} | {fmt(runs(spread, 'p99_ms'))} |\n")
    f.write(f"\nSpread / leader-only throughput: **{ratio:.2f}x**.\n")
    if per_node:
        f.write(f"\nMessages served per node in the last spread run: {per_node[-1]}\n")
print(f"spread/leader = {ratio:.2f}x; wrote {out}")
EOF
