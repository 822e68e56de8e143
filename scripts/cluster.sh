#!/usr/bin/env bash
# Local raftq cluster on 127.0.0.1 for trying raftq out.
#
#   scripts/cluster.sh up [3|5]         build release binaries, start N nodes, wait until ready
#   scripts/cluster.sh down             stop every node (SIGTERM, then SIGKILL after 5 s)
#   scripts/cluster.sh status           cluster status (or which nodes run, without the CLI)
#   scripts/cluster.sh kill-leader Q    SIGKILL the node leading queue Q
#   scripts/cluster.sh restart N        (re)start node N on its data
#
# Ports: RAFTQ_BASE_PORT (default 7001) + node index - 1; metrics on that + 100.
# State: ./.cluster/ (nodeN/ data, nodeN.log, pids/nodeN). Processes are only ever
# signalled by the pids this script recorded, and only after checking that the
# pid still runs raftqd on this cluster's data dir (pids get reused).
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_PORT="${RAFTQ_BASE_PORT:-7001}"
DIR="${RAFTQ_CLUSTER_DIR:-.cluster}"
RAFTQD="${CARGO_TARGET_DIR:-target}/release/raftqd"
RAFTQ="${CARGO_TARGET_DIR:-target}/release/raftq"

die() {
  echo "cluster.sh: $*" >&2
  exit 1
}

node_count() { cat "$DIR/size" 2>/dev/null || echo 0; }
port_of() { echo $((BASE_PORT + $1 - 1)); }
pid_file() { echo "$DIR/pids/node$1"; }

# The recorded pid of node $1, printed only if that process is still our raftqd.
our_pid() {
  local file pid
  file=$(pid_file "$1")
  [[ -f "$file" ]] || return 1
  pid=$(<"$file")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  # NUL-separated argv; the data dir identifies this node of this cluster.
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "--data-dir $DIR/node$1 " || return 1
  echo "$pid"
}
alive() { our_pid "$1" >/dev/null; }

servers() {
  local n i s=""
  n=$(node_count)
  for ((i = 1; i <= n; i++)); do s+="${s:+,}127.0.0.1:$(port_of "$i")"; done
  echo "$s"
}

initial_cluster() {
  local n=$1 i s=""
  for ((i = 1; i <= n; i++)); do s+="${s:+,}$i=127.0.0.1:$(port_of "$i")"; done
  echo "$s"
}

start_node() {
  local id=$1
  if alive "$id"; then die "node $id is already running (pid $(our_pid "$id"))"; fi
  [[ -x "$RAFTQD" ]] || die "$RAFTQD is not built: run scripts/cluster.sh up (or cargo build --release --bins)"
  mkdir -p "$DIR/pids"
  # nohup: the nodes outlive the terminal that started them. The same flags are
  # fine on restart: --initial-cluster only bootstraps an empty data dir.
  # The nodes share this machine's cores: one tokio worker per core per node
  # would only make them preempt each other (measured: W1 +25% on 2 cores).
  local nodes workers
  nodes=$(node_count)
  ((nodes >= 1)) || nodes=1
  workers=${RAFTQ_WORKER_THREADS:-$(($(nproc) / nodes))}
  ((workers >= 1)) || workers=1
  # RAFTQ_TLS_DIR (ca.pem, node-ID.pem, node-ID-key.pem): the nodes serve TLS;
  # the CLI then needs RAFTQ_CA (scripts/bench.sh --tls sets both).
  local tls=()
  if [[ -n "${RAFTQ_TLS_DIR:-}" ]]; then
    tls=(--tls-cert "$RAFTQ_TLS_DIR/node-$id.pem" --tls-key "$RAFTQ_TLS_DIR/node-$id-key.pem"
      --tls-ca "$RAFTQ_TLS_DIR/ca.pem")
  fi
  RAFTQ_WORKER_THREADS=$workers \
  nohup "$RAFTQD" --id "$id" --data-dir "$DIR/node$id" --listen "127.0.0.1:$(port_of "$id")" \
    --initial-cluster "$(initial_cluster "$(node_count)")" \
    --metrics-listen "127.0.0.1:$((BASE_PORT + 100 + id - 1))" "${tls[@]}" \
    >>"$DIR/node$id.log" 2>&1 </dev/null &
  echo $! >"$(pid_file "$id")"
}

# Ready = some node reports a metadata leader. Uses the CLI's JSON output.
wait_ready() {
  local deadline=$((SECONDS + 30))
  while ((SECONDS < deadline)); do
    if "$RAFTQ" --servers "$(servers)" --timeout 1s --json cluster status 2>/dev/null |
      grep -q '"metadata_leader": *[1-9]'; then
      return 0
    fi
    sleep 0.2
  done
  die "cluster did not become ready in 30 s; see $DIR/node*.log"
}

cmd_up() {
  local n=${1:-3} i
  [[ "$n" == 3 || "$n" == 5 ]] || die "up takes 3 or 5 nodes, not '$n'"
  for ((i = 1; i <= $(node_count); i++)); do
    if alive "$i"; then die "a cluster is already running: scripts/cluster.sh down first"; fi
  done
  echo "building release binaries (cargo build --release --bins)..."
  cargo build --release --bins
  mkdir -p "$DIR"
  # A cluster of another size cannot reuse the old data: its membership differs.
  if [[ "$(node_count)" != "$n" ]]; then rm -rf "${DIR:?}"/node* "${DIR:?}"/pids; fi
  echo "$n" >"$DIR/size"
  for ((i = 1; i <= n; i++)); do start_node "$i"; done
  wait_ready
  cat <<MSG
raftq: $n nodes up on $(servers) (data and logs in $DIR/)
  export RAFTQ_SERVERS=$(servers)
  $RAFTQ --servers $(servers) queue create demo
  $RAFTQ publish demo hello world
  $RAFTQ consume demo --count 2
  $RAFTQ cluster status
  scripts/cluster.sh kill-leader demo
  scripts/cluster.sh down
MSG
}

cmd_down() {
  local n i pid
  n=$(node_count)
  for ((i = 1; i <= n; i++)); do
    if pid=$(our_pid "$i"); then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$(pid_file "$i")"
  done
  echo "raftq: cluster stopped (data kept in $DIR/; remove it to start fresh)"
}

cmd_status() {
  local n i
  n=$(node_count)
  ((n > 0)) || die "no cluster here: scripts/cluster.sh up"
  for ((i = 1; i <= n; i++)); do
    if alive "$i"; then
      echo "node $i: running (pid $(our_pid "$i"), 127.0.0.1:$(port_of "$i"))"
    else
      echo "node $i: not running"
    fi
  done
  if [[ -x "$RAFTQ" ]]; then
    echo
    "$RAFTQ" --servers "$(servers)" cluster status
  fi
}

cmd_kill_leader() {
  local queue=${1:?usage: cluster.sh kill-leader QUEUE} leader pid
  [[ -x "$RAFTQ" ]] || die "$RAFTQ is not built: run scripts/cluster.sh up"
  # `queue info --json` prints one JSON object; its "leader" is 0 when none.
  leader=$("$RAFTQ" --servers "$(servers)" --json queue info "$queue" |
    grep -o '"leader": *[0-9]*' | head -1 | grep -o '[0-9]*$') ||
    die "could not read the leader of '$queue'"
  [[ -n "$leader" && "$leader" != 0 ]] || die "queue '$queue' has no leader right now"
  pid=$(our_pid "$leader") || die "node $leader (leader of '$queue') is not one of ours or not running"
  kill -KILL "$pid"
  rm -f "$(pid_file "$leader")"
  echo "killed node $leader (leader of '$queue', pid $pid) with SIGKILL; restart it with: scripts/cluster.sh restart $leader"
}

cmd_restart() {
  local id=${1:?usage: cluster.sh restart NODE} pid
  [[ "$id" =~ ^[0-9]+$ && "$id" -ge 1 && "$id" -le "$(node_count)" ]] || die "no node $id"
  if pid=$(our_pid "$id"); then
    kill -KILL "$pid"
    # The port is free only once the old process is gone.
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
  fi
  start_node "$id"
  echo "node $id started (pid $(<"$(pid_file "$id")"))"
}

case "${1:-}" in
  up)
    shift
    cmd_up "$@"
    ;;
  down) cmd_down ;;
  status) cmd_status ;;
  kill-leader)
    shift
    cmd_kill_leader "$@"
    ;;
  restart)
    shift
    cmd_restart "$@"
    ;;
  *)
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
