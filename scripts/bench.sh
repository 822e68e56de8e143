#!/usr/bin/env bash
# The standard benchmark of issue 8 on a fresh local 3-node cluster.
#
#   scripts/bench.sh [--runs N] [--quick] [--only W1,W5,...] [--tls] [--out FILE]
#
# Starts a fresh release cluster (own dir and ports, so a `scripts/cluster.sh`
# cluster is left alone), runs W1 (pipelined publish), W2 (one in flight), W3
# (producer + consumer, as fast as they go, then at 15,000 and 30,000
# messages per second offered), W5 (SIGKILL of the leader) and W5p (SIGSTOP of the
# leader) N times each (default 3), then throughput with 10 and 100 queues, the
# idle cost of 1,000 queues, and memory/restart with 1,000,000 messages.
# Each workload is a `raftq-bench` command; `raftq` deletes its queue after it.
# Writes a markdown table of medians (min-max) with the targets beside them to
# bench/results/latest.md (or --out), the raw JSON lines beside it.
# --quick: a few hundred messages per workload, 1 run, no scale/idle/memory
# parts (the CI smoke test: it proves the tool works, not how fast).
# --tls: the nodes serve TLS (mutual TLS between them) with certificates made
# for the run, and the clients trust its CA.
# --only: just these workloads (by the tags of the table), for a before/after
# comparison of the ones a change is about.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=3
QUICK=0
TLS=0
OUT=bench/results/latest.md
ONLY=""
while (($#)); do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --quick) QUICK=1; RUNS=1; shift ;;
    --only) ONLY=",$2,"; shift 2 ;;
    --tls) TLS=1; shift ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "usage: scripts/bench.sh [--runs N] [--quick] [--only W1,W5,...] [--tls] [--out FILE]" >&2; exit 2 ;;
  esac
done
wanted() { [[ -z "$ONLY" || "$ONLY" == *",$1,"* ]]; }

export RAFTQ_CLUSTER_DIR="${RAFTQ_CLUSTER_DIR:-.bench-cluster}"
export RAFTQ_BASE_PORT="${RAFTQ_BASE_PORT:-7401}"
RAFTQ="${CARGO_TARGET_DIR:-target}/release/raftq"
RAFTQ_BENCH="${CARGO_TARGET_DIR:-target}/release/raftq-bench"
SERVERS="127.0.0.1:$RAFTQ_BASE_PORT,127.0.0.1:$((RAFTQ_BASE_PORT + 1)),127.0.0.1:$((RAFTQ_BASE_PORT + 2))"
RAW="${OUT%.md}.jsonl"
mkdir -p "$(dirname "$OUT")"
: >"$RAW"

cleanup() { scripts/cluster.sh down >/dev/null 2>&1 || true; }
trap cleanup EXIT

if ((${TLS:-0})); then
  export RAFTQ_TLS_DIR="${RAFTQ_CLUSTER_DIR:?}-tls"
  rm -rf "$RAFTQ_TLS_DIR"
  "$RAFTQ" cert create-ca --dir "$RAFTQ_TLS_DIR" >/dev/null
  for id in 1 2 3; do
    "$RAFTQ" cert create-node --dir "$RAFTQ_TLS_DIR" --id "$id" --host 127.0.0.1 >/dev/null
  done
  export RAFTQ_CA="$RAFTQ_TLS_DIR/ca.pem"
fi

# A fresh cluster: no data of earlier workloads skews the next measurement.
fresh_cluster() {
  scripts/cluster.sh down >/dev/null 2>&1 || true
  rm -rf "${RAFTQ_CLUSTER_DIR:?}"
  scripts/cluster.sh up 3 >/dev/null
}
fresh_cluster
raftq() { "$RAFTQ" --servers "$SERVERS" "$@"; }
raftq_bench() { "$RAFTQ_BENCH" --servers "$SERVERS" "$@"; }

# One JSON result line per run, tagged with the workload name of the table.
record() {
  local tag=$1
  shift
  wanted "$tag" || return 0
  local line
  line=$(raftq_bench --json "$@" | tail -1)
  echo "{\"tag\":\"$tag\",\"result\":$line}" >>"$RAW"
  echo "  $tag: $line"
}

if ((QUICK)); then
  W1=(--count 500) W2=(--count 100) W3=(--count 500) W5=(--rounds 1 --warmup 1s)
  W3R15=(--count 500) W3R30=(--count 500)
else
  W1=(--count 200000) W2=(--count 5000) W3=(--count 100000) W5=(--rounds 3)
  # 5 s of open-loop load each: 15,000/s is NATS's W3 throughput, 30,000/s our target.
  W3R15=(--count 75000) W3R30=(--count 150000)
fi

# Each workload's queue is deleted after it: what W1 left (200,000 messages
# on every node) would otherwise weigh on the workloads after it.
done_with() { ! wanted "$1" || raftq queue delete "$2" >/dev/null; }

for ((run = 1; run <= RUNS; run++)); do
  echo "run $run/$RUNS"
  record W1 publish --queue "w1-$run" --inflight 256 --batch 256 "${W1[@]}"
  done_with W1 "w1-$run"
  record W2 sync --queue "w2-$run" "${W2[@]}"
  done_with W2 "w2-$run"
  record W3 e2e --queue "w3-$run" --inflight 256 --batch 256 --prefetch 256 "${W3[@]}"
  done_with W3 "w3-$run"
  record W3R15 e2e --queue "w3r15-$run" --inflight 256 --batch 256 --prefetch 256 --rate 15000 "${W3R15[@]}"
  done_with W3R15 "w3r15-$run"
  record W3R30 e2e --queue "w3r30-$run" --inflight 256 --batch 256 --prefetch 256 --rate 30000 "${W3R30[@]}"
  done_with W3R30 "w3r30-$run"
  record W5 failover --queue "w5-$run" --rate 1000 --fault kill "${W5[@]}" \
    --pid-dir "$RAFTQ_CLUSTER_DIR/pids" --restart-cmd "scripts/cluster.sh restart {id} >/dev/null"
  record W5p failover --queue "w5p-$run" --rate 1000 --fault pause "${W5[@]}" \
    --pid-dir "$RAFTQ_CLUSTER_DIR/pids"
done

if ((!QUICK)) && { wanted Q10 || wanted Q100 || wanted IDLE1000 || wanted MEM1M; }; then
  echo "scale"
  record Q10 publish --queue q10 --queues 10 --producers 10 --inflight 256 --count 200000
  record Q100 publish --queue q100 --queues 100 --producers 100 --inflight 64 --count 200000
  echo "idle cost of 1000 queues (fresh cluster)"
  fresh_cluster
  record IDLE1000 idle --queues 1000 --measure 30s --pid-dir "$RAFTQ_CLUSTER_DIR/pids"
  echo "memory and restart with 1,000,000 messages (fresh cluster)"
  fresh_cluster
  record MEM1M backlog --queue mem --count 1000000 --pid-dir "$RAFTQ_CLUSTER_DIR/pids" \
    --restart-cmd "scripts/cluster.sh restart {id} >/dev/null"
fi

python3 scripts/bench_table.py "$RAW" "$OUT" --runs "$RUNS"
echo "wrote $OUT"
