#!/usr/bin/env bash
# Local raftq cluster on 127.0.0.1 for trying raftq out.
#
#   scripts/cluster.sh up [3|5]         build release binaries, start N nodes, wait until ready
#   scripts/cluster.sh down             stop every node (SIGTERM, then SIGKILL)
#   scripts/cluster.sh status           cluster status (nodes, queues, leaders, HA score)
#   scripts/cluster.sh kill-leader Q    SIGKILL the node leading queue Q
#   scripts/cluster.sh restart N        start node N again on its data
#
# Ports: RAFTQ_BASE_PORT (default 7001) + node index; metrics on base+100+index.
# State: ./.cluster/ (data dirs, logs, pids). Processes are only ever signalled by
# the pids this script recorded.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_PORT="${RAFTQ_BASE_PORT:-7001}"
DIR="${RAFTQ_CLUSTER_DIR:-.cluster}"
RAFTQD=target/release/raftqd
RAFTQ=target/release/raftq

die() { echo "cluster.sh: $*" >&2; exit 1; }

node_count() { cat "$DIR/size" 2>/dev/null || echo 0; }
port_of() { echo $((BASE_PORT + $1 - 1)); }
pid_file() { echo "$DIR/node$1.pid"; }
alive() { [[ -f "$(pid_file "$1")" ]] && kill -0 "$(cat "$(pid_file "$1")")" 2>/dev/null; }
servers() {
  local n; n=$(node_count); local s=""
  for ((i = 1; i <= n; i++)); do s+="${s:+,}127.0.0.1:$(port_of "$i")"; done
  echo "$s"
}
initial_cluster() {
  local n=$1; local s=""
  for ((i = 1; i <= n; i++)); do s+="${s:+,}$i=127.0.0.1:$(port_of "$i")"; done
  echo "$s"
}

start_node() {
  local id=$1 n; n=$(node_count)
  alive "$id" && die "node $id is already running (pid $(cat "$(pid_file "$id")"))"
  "$RAFTQD" --id "$id" --data-dir "$DIR/node$id" --listen "127.0.0.1:$(port_of "$id")" \
    --initial-cluster "$(initial_cluster "$n")" \
    --metrics-listen "127.0.0.1:$((BASE_PORT + 100 + id - 1))" \
    >>"$DIR/node$id.log" 2>&1 &
  echo $! >"$(pid_file "$id")"
}

wait_ready() {
  for _ in $(seq 1 150); do
    if "$RAFTQ" --servers "$(servers)" cluster status --json 2>/dev/null | grep -q '"metadata_leader": *[1-9]'; then
      return 0
    fi
    sleep 0.2
  done
  die "cluster did not become ready in 30 s; see $DIR/node*.log"
}

cmd_up() {
  local n=${1:-3}
  [[ "$n" == 3 || "$n" == 5 ]] || die "up takes 3 or 5 nodes, not '$n'"
  if [[ -f "$DIR/size" ]]; then
    for ((i = 1; i <= $(node_count); i++)); do alive "$i" && die "a cluster is already running: scripts/cluster.sh down first"; done
  fi
  echo "building release binaries (cargo build --release --bins)..."
  cargo build --release --bins
  mkdir -p "$DIR"
  if [[ "$(node_count)" != "$n" ]]; then rm -rf "${DIR:?}"/node*; fi
  echo "$n" >"$DIR/size"
  for ((i = 1; i <= n; i++)); do start_node "$i"; done
  wait_ready
  cat <<MSG
raftq: $n nodes up on $(servers) (data and logs in $DIR/)
  export RAFTQ_SERVERS=$(servers)
  $RAFTQ queue create demo
  $RAFTQ publish demo hello world
  $RAFTQ consume demo --count 2
  $RAFTQ cluster status
  scripts/cluster.sh kill-leader demo
  scripts/cluster.sh down
MSG
}

cmd_down() {
  local n; n=$(node_count)
  for ((i = 1; i <= n; i++)); do
    if alive "$i"; then
      local pid; pid=$(cat "$(pid_file "$i")")
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$(pid_file "$i")"
  done
  echo "raftq: cluster stopped (data kept in $DIR/; remove it to start fresh)"
}

cmd_status() {
  local n; n=$(node_count)
  for ((i = 1; i <= n; i++)); do
    if alive "$i"; then echo "node $i: running (pid $(cat "$(pid_file "$i")"), 127.0.0.1:$(port_of "$i"))"
    else echo "node $i: not running"; fi
  done
  "$RAFTQ" --servers "$(servers)" cluster status
}

cmd_kill_leader() {
  local queue=${1:?usage: cluster.sh kill-leader QUEUE}
  local leader
  leader=$("$RAFTQ" --servers "$(servers)" queue info "$queue" --json | sed -n 's/.*"leader": *\([0-9]*\).*/\1/p' | head -1)
  [[ -n "$leader" && "$leader" != 0 ]] || die "queue '$queue' has no leader right now"
  alive "$leader" || die "node $leader is not running"
  kill -KILL "$(cat "$(pid_file "$leader")")"
  rm -f "$(pid_file "$leader")"
  echo "killed node $leader (leader of '$queue') with SIGKILL; restart it with: scripts/cluster.sh restart $leader"
}

cmd_restart() {
  local id=${1:?usage: cluster.sh restart NODE}
  [[ "$id" =~ ^[0-9]+$ && "$id" -ge 1 && "$id" -le "$(node_count)" ]] || die "no node $id"
  if alive "$id"; then
    local pid; pid=$(cat "$(pid_file "$id")")
    kill -KILL "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  start_node "$id"
  echo "node $id restarted (pid $(cat "$(pid_file "$id")"))"
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) cmd_down ;;
  status) cmd_status ;;
  kill-leader) shift; cmd_kill_leader "$@" ;;
  restart) shift; cmd_restart "$@" ;;
  *) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
