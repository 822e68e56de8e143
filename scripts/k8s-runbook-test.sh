#!/usr/bin/env bash
# The Kubernetes replace-a-node runbook (deploy/k8s/README.md), run on Docker:
# no Kubernetes cluster is at hand, so each pod of deploy/k8s/statefulset.yaml is a
# container that runs the manifest's own wrapper script and environment (read from
# the YAML, $(POD_NAMESPACE) expanded as the kubelet does), with the pod's stable
# DNS name as a network alias, a named volume as its PVC, directories as the
# optional raftq-node-ids ConfigMap and the raftq-tls Secret (TLS is on), a
# read-only root and uid 10001.
#
#   1. pods raftq-0..2 bootstrap a cluster; a queue gets 300 messages
#   2. raftq-1's volume "dies": the pod restarts on an empty volume under id 2 and
#      must be refused with the line that says how to replace it
#   3. the runbook: remove-node 2, ConfigMap entry raftq-1=101, new volume, pod
#      restarted: node 101 joins at raftq-1's name, the queue is back to 3 voters
#      (1, 3, 101) and all 300 messages are delivered
#
# Usage: scripts/k8s-runbook-test.sh [--no-build]
# Last line: "PASS: ..." (exit 0), "FAIL: ..." (exit 1) or "SKIPPED: ..." (exit 0;
# a failure when CI=true).
set -euo pipefail
cd "$(dirname "$0")/.."

skip_or_fail() {
  if [[ "${CI:-}" == true ]]; then
    echo "FAIL: $1 (CI=true: CI must run this test)"
    exit 1
  fi
  echo "SKIPPED: $1"
  exit 0
}
command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 \
  || skip_or_fail "k8s-runbook-test needs a Docker engine"
command -v python3 >/dev/null 2>&1 && python3 -c 'import yaml' 2>/dev/null \
  || { echo "FAIL: k8s-runbook-test needs python3 with PyYAML"; exit 1; }

IMAGE="${RAFTQ_IMAGE:-raftq:local}"
if [[ "${1:-}" != --no-build ]]; then
  RAFTQ_IMAGE="$IMAGE" scripts/image.sh >/dev/null
fi
P="raftqk8s$$"
NS=raftq
NET="$P-net"
QUEUE=k8s
WORK=$(mktemp -d "${TMPDIR:-/tmp}/raftq-k8s-test.XXXXXX")
mkdir -p "$WORK/node-ids" "$WORK/ca" "$WORK/tls"
chmod 755 "$WORK" "$WORK/node-ids"
name() { echo "raftq-$1.raftq-headless.$NS.svc:7001"; }
SERVERS="$(name 0),$(name 1),$(name 2)"
T0=$(date +%s)
log() { printf '[%3ds] %s\n' $(($(date +%s) - T0)) "$*" >&2; }
RESULT=""
fail() {
  RESULT="FAIL: k8s-runbook-test: $*"
  exit 1
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  if [[ $rc != 0 ]]; then
    for n in 0 1 2; do
      echo "----- raftq-$n -----" >&2
      docker logs --tail 30 "$P-raftq-$n" 2>&1 | sed 's/\x1b\[[0-9;]*m//g' >&2
    done
  fi
  ids=$(docker ps -aq --filter "label=raftq-k8s-test=$P")
  # shellcheck disable=SC2086 # one id per word
  [[ -z "$ids" ]] || docker rm -f $ids >/dev/null 2>&1
  for n in 0 1 2; do docker volume rm -f "$P-data-raftq-$n" >/dev/null 2>&1; done
  docker network rm "$NET" >/dev/null 2>&1
  rm -rf "$WORK"
  [[ -n "$RESULT" ]] || RESULT="FAIL: k8s-runbook-test: aborted (exit $rc)"
  [[ $rc == 0 ]] || rc=1
  echo "$RESULT"
  exit $rc
}
trap cleanup EXIT
trap 'RESULT="FAIL: k8s-runbook-test: interrupted"; exit 1' INT TERM

# The pod template as the kubelet would run it.
python3 - deploy/k8s/statefulset.yaml "$NS" "$WORK" <<'PY'
import sys, yaml
path, ns, work = sys.argv[1:4]
sts = next(d for d in yaml.safe_load_all(open(path)) if d and d.get("kind") == "StatefulSet")
pod = sts["spec"]["template"]["spec"]
c = pod["containers"][0]
assert c["command"] == ["/bin/sh", "-c"], c["command"]
open(f"{work}/wrapper.sh", "w").write(c["args"][0])
with open(f"{work}/pod.env", "w") as env:
    for e in c["env"]:
        if "value" in e:
            env.write(f"{e['name']}={e['value'].replace('$(POD_NAMESPACE)', ns)}\n")
mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
assert mounts.get("node-ids") == "/etc/raftq/node-ids", mounts
assert mounts.get("tls") == "/etc/raftq/tls", mounts
assert pod["securityContext"]["runAsUser"] == 10001
PY

# The raftq-tls Secret, made as deploy/k8s/README.md says: the CA (and its key)
# stay in ca/; the Secret holds ca.pem and the nodes' certificates and keys,
# readable by the pods' fsGroup 10001.
RAFTQ_CLI="${CARGO_TARGET_DIR:-target}/release/raftq"
[[ -x "$RAFTQ_CLI" ]] || fail "$RAFTQ_CLI missing (scripts/image.sh builds it)"
"$RAFTQ_CLI" cert create-ca --dir "$WORK/ca" >/dev/null
node_cert() {
  local id=$1 pod=$2
  "$RAFTQ_CLI" cert create-node --dir "$WORK/ca" --id "$id" \
    --host "raftq-$pod.raftq-headless.$NS.svc" --host "raftq-$pod.raftq-headless" >/dev/null
  cp "$WORK/ca/ca.pem" "$WORK/ca/node-$id.pem" "$WORK/ca/node-$id-key.pem" "$WORK/tls/"
  chown -R 10001:10001 "$WORK/tls" && chmod 0440 "$WORK/tls"/* && chmod 0550 "$WORK/tls"
}
for n in 0 1 2; do node_cert $((n + 1)) "$n"; done

docker network create "$NET" >/dev/null
start_pod() {
  local n=$1
  docker rm -f "$P-raftq-$n" >/dev/null 2>&1 || true
  docker run -d --name "$P-raftq-$n" --hostname "raftq-$n" --label "raftq-k8s-test=$P" \
    --network "$NET" --network-alias "raftq-$n.raftq-headless.$NS.svc" \
    --env-file "$WORK/pod.env" -e POD_NAME="raftq-$n" -e POD_NAMESPACE="$NS" \
    -v "$P-data-raftq-$n:/var/lib/raftq" -v "$WORK/node-ids:/etc/raftq/node-ids:ro" \
    -v "$WORK/tls:/etc/raftq/tls:ro" \
    --read-only --tmpfs /tmp --user 10001:10001 --no-healthcheck \
    --entrypoint /bin/sh "$IMAGE" -c "$(cat "$WORK/wrapper.sh")" >/dev/null
}
on_pod() {
  local n=$1; shift
  timeout -k 5 60 docker exec "$P-raftq-$n" raftq --servers 127.0.0.1:7001 "$@"
}
cli() {
  timeout -k 5 120 docker run --rm -i --label "raftq-k8s-test=$P" --network "$NET" \
    -v "$WORK/tls:/etc/raftq/tls:ro" -e RAFTQ_CA=/etc/raftq/tls/ca.pem \
    --entrypoint raftq "$IMAGE" --servers "$SERVERS" "$@"
}
# Waits (up to $1 s) until the cluster status JSON seen by pod 0 satisfies the
# Python expression $2 over d (status), nodes (by id) and q (the test queue or {}).
wait_status() {
  local limit=$1 expr=$2 what=$3 st deadline=$(($(date +%s) + $1))
  while :; do
    st=$(on_pod 0 --timeout 5s --json cluster status 2>/dev/null | grep '^{' | tail -n 1) || st=""
    if python3 -c '
import json, sys
d = json.loads(sys.argv[1]); nodes = {n["id"]: n for n in d["nodes"]}
q = next((x for x in d["queues"] if x["name"] == sys.argv[3]), {})
sys.exit(0 if eval(sys.argv[2]) else 1)' "$st" "$expr" "$QUEUE" 2>/dev/null; then
      return 0
    fi
    (($(date +%s) < deadline)) || fail "$what within ${limit}s: ${st:-no answer}"
    sleep 1
  done
}

# ---------------------------------------------------------------- 1. bootstrap
for n in 0 1 2; do start_pod "$n"; done
wait_status 60 'sorted(nodes) == [1, 2, 3] and all(n["up"] and n["role"] == "voter" for n in d["nodes"])' \
  "three voters"
log "pods raftq-0..2 formed a cluster (nodes 1, 2, 3)"
cli queue create "$QUEUE" >/dev/null || fail "queue create failed"
cli publish "$QUEUE" --count 300 >/dev/null || fail "publishing 300 messages failed"
log "queue $QUEUE: 300 messages confirmed"

# ---------------------------------------------------------------- 2. the volume dies
docker rm -f "$P-raftq-1" >/dev/null
docker volume rm "$P-data-raftq-1" >/dev/null
start_pod 1
code=$(timeout 60 docker wait "$P-raftq-1") || fail "raftq-1 on an empty volume is still running after 60 s"
refusal=$(docker logs "$P-raftq-1" 2>&1 | sed 's/\x1b\[[0-9;]*m//g' | grep -m1 'refusing to start' || true)
[[ "$code" != 0 && "$refusal" == *"must not rejoin under its old id"* ]] \
  || fail "raftq-1 on an empty volume was not refused (exit $code): $(docker logs --tail 5 "$P-raftq-1" 2>&1)"
log "raftq-1 on an empty volume under id 2: refused (exit $code): ${refusal:0:160}..."

# ---------------------------------------------------------------- 3. the runbook
on_pod 0 --timeout 150s cluster remove-node 2 >/dev/null || fail "raftq cluster remove-node 2 failed"
printf 101 >"$WORK/node-ids/raftq-1"    # kubectl create configmap raftq-node-ids --from-literal=raftq-1=101
node_cert 101 1                         # node 101's certificate into the raftq-tls Secret
chmod 644 "$WORK/node-ids/raftq-1"
docker rm -f "$P-raftq-1" >/dev/null
docker volume rm "$P-data-raftq-1" >/dev/null   # kubectl delete pvc data-raftq-1
start_pod 1                                     # kubectl delete pod raftq-1
wait_status 120 "2 not in nodes and nodes.get(101, {}).get('role') == 'voter' and nodes[101]['up'] \
and nodes[101]['address'] == '$(name 1)' and sorted(q.get('voters', [])) == [1, 3, 101] and not q['learners']" \
  "node 101 a voter at raftq-1's name and the queue back to voters 1, 3, 101"
log "node 101 joined at $(name 1); queue $QUEUE has voters 1, 3, 101"
got=$(cli --json consume "$QUEUE" --prefetch 500 --idle 4s | grep -c '"payload"' || true)
[[ "$got" == 300 ]] || fail "consumed $got of 300 messages after the replacement"
log "all 300 messages delivered after the replacement"
RESULT="PASS: k8s-runbook-test ($(($(date +%s) - T0))s: refused on an empty volume, replaced by node 101 at the same name, 300/300 messages delivered)"
