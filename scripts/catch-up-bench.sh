#!/usr/bin/env bash
# Catch-up rates at size, outside CI: a follower down while its queue grows by
# MIB (default 1024), then restarted, once through the log and once through a
# snapshot, with release builds of raftqd. Runs each path RUNS times (default
# 3) and writes the medians to bench/results/catch-up.md.
#   scripts/catch-up-bench.sh [--mib N] [--runs N]
set -euo pipefail
cd "$(dirname "$0")/.."
mib=1024
runs=3
while (($#)); do
  case $1 in
  --mib) mib=$2; shift 2 ;;
  --runs) runs=$2; shift 2 ;;
  *) echo "usage: $0 [--mib N] [--runs N]" >&2; exit 2 ;;
  esac
done
cargo build --release --bin raftqd
export RAFTQD_BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/raftqd RAFTQ_CATCH_UP_MIB=$mib
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for ((i = 1; i <= runs; i++)); do
  for test in a_follower_catches_up_through_the_log a_follower_catches_up_through_a_snapshot; do
    echo "run $i/$runs: $test ($mib MiB)" >&2
    cargo test -q -p raftq-tests --test catch_up_bulk "$test" -- --exact --nocapture 2>&1 |
      tee -a "$log" | grep -E 'CATCH-UP|published' >&2
  done
done
out=bench/results/catch-up.md
python3 - "$log" "$mib" "$runs" >"$out" <<'PY'
import re, statistics, sys, datetime, subprocess, platform
log, mib, runs = sys.argv[1], sys.argv[2], sys.argv[3]
rows = {}
for line in open(log):
    m = re.search(r"CATCH-UP path=(\w+) mib=(\d+) secs=([\d.]+) mib_per_s=([\d.]+)", line)
    if m:
        rows.setdefault(m.group(1), []).append((float(m.group(3)), float(m.group(4))))
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
print("# Catch-up of a restarted follower\n")
print(f"`scripts/catch-up-bench.sh --mib {mib} --runs {runs}` at {commit}, {datetime.date.today()}, "
      f"{platform.machine()}, release raftqd, 3 nodes on one machine (2 cores).\n")
print("A follower is SIGKILLed, its queue grows by the size below (64 KiB messages, "
      "batches of 100), the follower is restarted, and the time until it has applied "
      "everything the leader has is measured (`tests/tests/catch_up_bulk.rs`). "
      "Log path: no snapshot while it was away. Snapshot path: a snapshot every "
      "16 MiB of log and nothing kept below it, so the follower installs the "
      "leader's snapshot (the whole backlog) and then the log after it.\n")
print("| path | MiB | runs | median s | median MiB/s | all MiB/s |")
print("|---|---|---|---|---|---|")
for path, vals in rows.items():
    secs = statistics.median(v[0] for v in vals)
    rate = statistics.median(v[1] for v in vals)
    print(f"| {path.lower()} | {mib} | {len(vals)} | {secs:.1f} | {rate:.0f} | {', '.join(f'{v[1]:.0f}' for v in vals)} |")
print()
print("Notes. The follower is back in sync when it has applied the leader's last index "
      "(a work queue holds its whole backlog in memory on every replica). A failed "
      "snapshot chunk is sent again from its own offset (openraft retries it, the "
      "follower seeks to it); a follower that restarts during a transfer starts the "
      "snapshot over. The log path resumes wherever the follower's log ends. With a "
      "snapshot every 16 MiB of a growing 1 GiB state, publishing the backlog takes "
      "about twice as long as without snapshots (each snapshot writes the whole "
      "state): snapshots are full, not incremental.")
PY
cat "$out"
