#!/usr/bin/env bash
# CI check of the Python example client (examples/python): against a real
# 3-node cluster of the debug raftqd serving TLS (the example presents a client
# certificate), producer.py publishes COUNT messages
# idempotently and consumer.py consumes and acks them all (with some simulated
# processing failures, i.e. nacks with requeue, on the way).
#
#   scripts/python-example.sh          prints "python example: PASS (...)" or "... FAIL (...)"
#
# Python: a venv in target/python-venv (RAFTQ_PY_VENV) with
# examples/python/requirements.txt; stubs are generated into a temp dir. Without
# python3-venv it prints SKIPPED and exits 0, or 1 when CI=true.
# Nodes run on free 127.0.0.1 ports with data in a temp dir; both are removed and
# the nodes killed (only by the pids started here) on exit, failure included.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
COUNT="${RAFTQ_PY_COUNT:-500}"
VENV="${RAFTQ_PY_VENV:-$ROOT/target/python-venv}"
RAFTQD="${RAFTQD_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/raftqd}"
RAFTQ_CLI="$(dirname "$RAFTQD")/raftq"
QUEUE="py-example"
started=$SECONDS
export PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1

TMP=""
PIDS=()
FAILED=1

skip() {
  echo "SKIPPED: python example needs $1"
  [[ "${CI:-}" == true ]] && exit 1
  exit 0
}

fail() {
  echo "python example: FAIL ($*)"
  exit 1
}

cleanup() {
  local pid i
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for ((i = 0; i < 50; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [[ -n "$TMP" && -d "$TMP" ]]; then
    if ((FAILED)); then
      for f in "$TMP"/*.err "$TMP"/node*.log; do
        [[ -s "$f" ]] || continue
        echo "--- last lines of $(basename "$f")" >&2
        tail -n 15 "$f" >&2
      done
    fi
    rm -rf "$TMP"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- python -------------------------------------------------------------------
command -v python3 >/dev/null 2>&1 || skip python3-venv
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || skip python3-venv
python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' || skip "python3 >= 3.10 (grpcio wheels)"
if [[ ! -x "$VENV/bin/python" || ! -x "$VENV/bin/pip" ]]; then
  rm -rf "$VENV"
  mkdir -p "$(dirname "$VENV")"
  timeout 120 python3 -m venv "$VENV" >/dev/null 2>&1 || {
    rm -rf "$VENV"
    skip python3-venv
  }
fi
PY="$VENV/bin/python"
timeout 600 "$PY" -m pip install -q --disable-pip-version-check -r examples/python/requirements.txt ||
  fail "pip install -r examples/python/requirements.txt failed"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/raftq-pyex.XXXXXX")
export RAFTQ_PY_STUBS="$TMP/stubs"
mkdir -p "$RAFTQ_PY_STUBS"
"$PY" -m grpc_tools.protoc -I proto --python_out="$RAFTQ_PY_STUBS" --grpc_python_out="$RAFTQ_PY_STUBS" \
  raftq/v1/queue.proto raftq/v1/admin.proto || fail "protoc failed"

# --- cluster ------------------------------------------------------------------
if [[ ! -x "$RAFTQD" || ! -x "$RAFTQ_CLI" ]]; then
  echo "building $RAFTQD and raftq (cargo build --bins)" >&2
  timeout 1800 cargo build --bins -q || fail "cargo build --bins failed"
  [[ -x "$RAFTQD" ]] || fail "$RAFTQD missing after cargo build --bins"
fi

# TLS with a client certificate, as a secure cluster runs (README "Security"):
# the examples take them from RAFTQ_CA / RAFTQ_CERT / RAFTQ_KEY.
CERTS="$TMP/certs"
"$RAFTQ_CLI" cert create-ca --dir "$CERTS" >/dev/null || fail "raftq cert create-ca failed"
for i in 1 2 3; do
  "$RAFTQ_CLI" cert create-node --dir "$CERTS" --id "$i" --host 127.0.0.1 >/dev/null ||
    fail "raftq cert create-node failed"
done
"$RAFTQ_CLI" cert create-client --dir "$CERTS" --user py-example >/dev/null ||
  fail "raftq cert create-client failed"
export RAFTQ_CA="$CERTS/ca.pem" RAFTQ_CERT="$CERTS/client-py-example.pem" \
  RAFTQ_KEY="$CERTS/client-py-example-key.pem"
# The checks below open their channels with this module (next to the stubs).
cat >"$RAFTQ_PY_STUBS/tls_channel.py" <<'EOF'
import os, grpc

def chan(target):
    def read(var):
        with open(os.environ[var], "rb") as f:
            return f.read()
    creds = grpc.ssl_channel_credentials(read("RAFTQ_CA"), read("RAFTQ_KEY"), read("RAFTQ_CERT"))
    return grpc.secure_channel(target, creds)
EOF

# Three free ports: bound together to port 0 so they differ, then released.
read -r -a PORTS < <("$PY" -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
')
((${#PORTS[@]} == 3)) || fail "could not pick free ports"
INITIAL="" SERVERS=""
for i in 1 2 3; do
  INITIAL+="${INITIAL:+,}$i=127.0.0.1:${PORTS[i - 1]}"
  SERVERS+="${SERVERS:+,}127.0.0.1:${PORTS[i - 1]}"
done
cluster_started=$SECONDS
for i in 1 2 3; do
  "$RAFTQD" --id "$i" --data-dir "$TMP/node$i" --listen "127.0.0.1:${PORTS[i - 1]}" \
    --initial-cluster "$INITIAL" --tls-cert "$CERTS/node-$i.pem" --tls-key "$CERTS/node-$i-key.pem" \
    --tls-ca "$CERTS/ca.pem" >"$TMP/node$i.log" 2>&1 </dev/null &
  PIDS+=($!)
done

# Ready = a node reports a metadata leader (at most 60 s; exit 2 if a node died).
rc=0
timeout 70 "$PY" - "$SERVERS" "${PIDS[@]}" <<'EOF' || rc=$?
import os, sys, time, grpc
sys.path.insert(0, os.environ["RAFTQ_PY_STUBS"])
from raftq.v1 import admin_pb2, admin_pb2_grpc
from tls_channel import chan

def running(pid):  # an exited child stays a zombie until reaped
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False

deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    if not all(running(pid) for pid in sys.argv[2:]):
        sys.exit(2)
    for addr in sys.argv[1].split(","):
        with chan(addr) as ch:
            try:
                st = admin_pb2_grpc.AdminServiceStub(ch).ClusterStatus(
                    admin_pb2.ClusterStatusRequest(), timeout=1)
                if st.metadata_leader != 0:
                    sys.exit(0)
            except grpc.RpcError:
                pass
    time.sleep(0.2)
sys.exit(1)
EOF
((rc != 2)) || fail "a raftqd node exited during start-up"
((rc == 0)) || fail "cluster not ready within 60s"
ready=$((SECONDS - cluster_started))

# --- the example ---------------------------------------------------------------
# Last stdout line of a run: its JSON summary. Field $2 of it, as an integer.
field() { "$PY" -c 'import json,sys; print(int(json.loads(sys.argv[1]).get(sys.argv[2], -1)))' "$1" "$2" 2>/dev/null || echo -1; }

timeout 300 "$PY" examples/python/producer.py --servers "$SERVERS" --queue "$QUEUE" --count "$COUNT" \
  --create >"$TMP/producer.out" 2>"$TMP/producer.err" || true
produced=$(tail -n 1 "$TMP/producer.out")
echo "producer: ${produced:-<no summary>}"
confirmed=$(field "$produced" confirmed)
pfailed=$(field "$produced" failed)

timeout 300 "$PY" examples/python/consumer.py --servers "$SERVERS" --queue "$QUEUE" --count "$COUNT" \
  --idle-timeout 15 --fail-rate 0.05 >"$TMP/consumer.out" 2>"$TMP/consumer.err" || true
consumed=$(tail -n 1 "$TMP/consumer.out")
echo "consumer: ${consumed:-<no summary>}"
received=$(field "$consumed" received)
acked=$(field "$consumed" acked)
requeued=$(field "$consumed" requeued)

# What grpcurl does without proto files: list the services over server
# reflection and resolve a method's request type from it.
reflected=$(timeout 30 "$PY" - "${SERVERS%%,*}" <<'EOF' || echo "reflection failed"
import os, sys, grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from google.protobuf.descriptor_pool import DescriptorPool
sys.path.insert(0, os.environ["RAFTQ_PY_STUBS"])
from tls_channel import chan
with chan(sys.argv[1]) as ch:
    db = ProtoReflectionDescriptorDatabase(ch)
    services = set(db.get_services())
    pool = DescriptorPool(db)
    publish = pool.FindServiceByName("raftq.v1.QueueService").FindMethodByName("Publish")
    need = {"raftq.v1.QueueService", "raftq.v1.AdminService", "grpc.health.v1.Health"}
    missing = need - services
    print("missing " + ",".join(sorted(missing)) if missing else publish.input_type.full_name)
EOF
)
echo "reflection: $reflected"

# The queue must be empty now (every message acked).
depth=$(timeout 30 "$PY" - "$SERVERS" "$QUEUE" <<'EOF' || echo -1
import os, sys, grpc
sys.path.insert(0, os.environ["RAFTQ_PY_STUBS"])
from raftq.v1 import admin_pb2, admin_pb2_grpc
from tls_channel import chan
for addr in sys.argv[1].split(","):
    with chan(addr) as ch:
        try:
            q = admin_pb2_grpc.AdminServiceStub(ch).GetQueue(
                admin_pb2.GetQueueRequest(name=sys.argv[2]), timeout=5)
            print(q.depth)
            sys.exit(0)
        except grpc.RpcError:
            pass
sys.exit(1)
EOF
)

problems=()
((confirmed == COUNT && pfailed == 0)) || problems+=("producer confirmed $confirmed/$COUNT, failed $pfailed")
((received == COUNT && acked == COUNT)) || problems+=("consumer received $received, acked $acked of $COUNT")
((depth == 0)) || problems+=("queue depth after consuming: $depth")
[[ "$reflected" == raftq.v1.PublishRequest ]] || problems+=("server reflection: $reflected")
((${#problems[@]} == 0)) || fail "$(IFS=';'; echo "${problems[*]}")"
FAILED=0
echo "python example: PASS ($COUNT published idempotently, $received consumed and acked," \
  "$requeued nacked with requeue, 3 nodes, cluster ready in ${ready}s, $((SECONDS - started))s total)"
