#!/usr/bin/env bash
# Coverage-guided fuzzing of raftq's pure code (crates/raftq-fuzz): queue
# state machines under arbitrary command sequences, and every decoder of
# bytes from peers or disk under arbitrary input. libFuzzer, on stable Rust:
# the sanitizer-coverage passes are asked for with codegen flags (what
# cargo-fuzz would pass), so neither nightly nor cargo-fuzz is needed.
#
#   scripts/fuzz.sh [--secs N]     # N seconds per target (default 30)
#
# Corpora grow in .fuzz/corpus/<target> (gitignored) across runs; past
# findings in crates/raftq-fuzz/regressions/<target> seed every run (and the
# unit tests replay them). A crash fails the run and prints its input's path;
# replay it with `cargo run -p raftq-fuzz --bin <target> -- <path>`.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=30
while (($#)); do
  case $1 in
    --secs) secs=$2; shift 2 ;;
    *) echo "usage: scripts/fuzz.sh [--secs N]" >&2; exit 2 ;;
  esac
done

targets=(fuzz_queue fuzz_decode)
export CARGO_TARGET_DIR="${RAFTQ_FUZZ_TARGET_DIR:-$PWD/target/fuzz}"
host=$(rustc -vV | sed -n 's/^host: //p')
# With an explicit --target, RUSTFLAGS reach the target's crates only, not
# build scripts and proc macros, which must not be instrumented.
RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares" \
  cargo build --profile fuzz --target "$host" -p raftq-fuzz --bins

failed=0
for t in "${targets[@]}"; do
  corpus=.fuzz/corpus/$t
  crashes=.fuzz/crashes/$t
  mkdir -p "$corpus" "$crashes"
  echo "=== $t: ${secs}s"
  rc=0
  "$CARGO_TARGET_DIR/$host/fuzz/$t" \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
    -print_final_stats=1 -artifact_prefix="$crashes/" \
    "$corpus" "crates/raftq-fuzz/regressions/$t" 2>&1 |
    grep -v '^#[0-9]' || true
  rc=${PIPESTATUS[0]}
  if ((rc != 0)); then
    failed=1
    echo "fuzz: $t FAILED (exit $rc); crash inputs:" >&2
    find "$crashes" -type f -newer "$corpus" -print >&2 || true
  fi
done
exit "$failed"
