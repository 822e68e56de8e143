#!/usr/bin/env bash
# The Kubernetes replace-a-node runbook (deploy/k8s/README.md), run on Docker:
# no Kubernetes cluster is at hand, so each pod of deploy/k8s/statefulset.yaml is a
# container that runs the manifest's own wrapper script and environment (read from
# the YAML, $(POD_NAMESPACE) expanded as the kubelet does), with the pod's stable
# DNS name and the client Service's name as network aliases, a named volume as its
# PVC, directories as the optional raftq-node-ids ConfigMap and the raftq-tls and
# raftq-auth Secrets (TLS and authentication are on), a read-only root and uid
# 10001. The Secrets are made as deploy/k8s/README.md says: users.toml has the user
# `admin` (by client certificate: the CLI in the pods, probes included) and an
# application user `k8s-app` (by token, rights on k8s*).
#
#   0. a pod whose raftq-auth Secret has no users.toml is refused with a line saying so
#   1. pods raftq-0..2 bootstrap a cluster; the manifest's startup, readiness and
#      liveness probes pass in every pod; a client without credentials (the CA
#      only) and one with an unknown token are refused (not authenticated); k8s-app
#      may not rebalance (permission denied); the admin client, in another
#      container, sees the cluster through the client Service's name; k8s-app
#      creates a queue and publishes 300 messages. users.toml without `admin`:
#      readiness fails and says why, startup and liveness still pass (no
#      restarts); admin restored: readiness passes again
#   2. raftq-1's volume "dies": the pod restarts on an empty volume under id 2 and
#      must be refused with the line that says how to replace it
#   3. the runbook: remove-node 2 (the pod's CLI, as admin: the audit log names
#      it), ConfigMap entry raftq-1=101, new volume, pod restarted: node 101 joins
#      at raftq-1's name, the queue is back to 3 voters (1, 3, 101) and k8s-app
#      consumes all 300 messages
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
mkdir -p "$WORK/node-ids" "$WORK/ca" "$WORK/tls" "$WORK/auth" "$WORK/noauth"
chmod 755 "$WORK" "$WORK/node-ids" "$WORK/noauth"
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
assert mounts.get("auth") == "/etc/raftq/auth", mounts
assert all(m.get("readOnly") for m in c["volumeMounts"] if m["name"] in ("tls", "auth"))
secrets = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
assert secrets == {"tls": "raftq-tls", "auth": "raftq-auth"}, secrets
env = {e["name"]: e.get("value") for e in c["env"]}
assert env.get("RAFTQ_AUTH_FILE") == "/etc/raftq/auth/users.toml", env
assert env.get("RAFTQ_CERT") == "/etc/raftq/auth/client-admin.pem", env
assert env.get("RAFTQ_KEY") == "/etc/raftq/auth/client-admin-key.pem", env
assert pod["securityContext"]["runAsUser"] == 10001
# The probes' commands, each argument NUL-terminated.
for kind in ("startup", "readiness", "liveness"):
    argv = c[f"{kind}Probe"]["exec"]["command"]
    open(f"{work}/probe-{kind}", "w").write("".join(a + "\0" for a in argv))
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
    --host "raftq-$pod.raftq-headless.$NS.svc" --host "raftq-$pod.raftq-headless" \
    --host "raftq.$NS.svc" --host raftq >/dev/null
  cp "$WORK/ca/ca.pem" "$WORK/ca/node-$id.pem" "$WORK/ca/node-$id-key.pem" "$WORK/tls/"
  chown -R 10001:10001 "$WORK/tls" && chmod 0440 "$WORK/tls"/* && chmod 0550 "$WORK/tls"
}
for n in 0 1 2; do node_cert $((n + 1)) "$n"; done

# The raftq-auth Secret, made as deploy/k8s/README.md says: users.toml, and the
# client certificate of its user admin, which the CLI in the pods presents.
"$RAFTQ_CLI" cert create-client --dir "$WORK/ca" --user admin >/dev/null
cp "$WORK/ca/client-admin.pem" "$WORK/ca/client-admin-key.pem" "$WORK/auth/"
app=$("$RAFTQ_CLI" --json auth new-token --user k8s-app)
APP_TOKEN=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["token"])' "$app")
APP_DIGEST=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["token_sha256"])' "$app")
users_toml() {   # $1: 1 with the user admin, 0 without
  if [[ $1 == 1 ]]; then printf '[[user]]\nname = "admin"\nadmin = true\n\n'; fi
  printf '[[user]]\nname = "k8s-app"\ntoken_sha256 = "%s"\n' "$APP_DIGEST"
  printf '[[user.permission]]\nqueues = "k8s*"\nconfigure = true\nwrite = true\nread = true\n'
}
# Replaced whole, as the kubelet updates a Secret's volume; nodes look every 5 s.
write_users() {
  users_toml "$1" >"$WORK/users.toml.new"
  chown 10001:10001 "$WORK/users.toml.new" && chmod 0440 "$WORK/users.toml.new"
  mv -f "$WORK/users.toml.new" "$WORK/auth/users.toml"
}
write_users 1
chown -R 10001:10001 "$WORK/auth" && chmod 0440 "$WORK/auth"/* && chmod 0550 "$WORK/auth"

docker network create "$NET" >/dev/null
# $2: the directory that stands for the raftq-auth Secret (default: $WORK/auth).
start_pod() {
  local n=$1 auth=${2:-$WORK/auth}
  docker rm -f "$P-raftq-$n" >/dev/null 2>&1 || true
  docker run -d --name "$P-raftq-$n" --hostname "raftq-$n" --label "raftq-k8s-test=$P" \
    --network "$NET" --network-alias "raftq-$n.raftq-headless.$NS.svc" \
    --network-alias "raftq.$NS.svc" \
    --env-file "$WORK/pod.env" -e POD_NAME="raftq-$n" -e POD_NAMESPACE="$NS" \
    -v "$P-data-raftq-$n:/var/lib/raftq" -v "$WORK/node-ids:/etc/raftq/node-ids:ro" \
    -v "$WORK/tls:/etc/raftq/tls:ro" -v "$auth:/etc/raftq/auth:ro" \
    --read-only --tmpfs /tmp --user 10001:10001 --no-healthcheck \
    --entrypoint /bin/sh "$IMAGE" -c "$(cat "$WORK/wrapper.sh")" >/dev/null
}
# kubectl exec raftq-N -- raftq ...: the pod's environment, so the user admin.
on_pod() {
  local n=$1; shift
  timeout -k 5 60 docker exec "$P-raftq-$n" raftq --servers 127.0.0.1:7001 "$@"
}
# One of the manifest's probes ($2: startup, readiness or liveness) in pod $1, as
# the kubelet runs it; prints what the probe printed.
probe() {
  local argv=()
  mapfile -d '' -t argv <"$WORK/probe-$2"
  timeout -k 5 10 docker exec "$P-raftq-$1" "${argv[@]}" 2>&1
}
# A client in another pod of the namespace: it trusts the CA; its credentials are
# in the arguments (the admin's client certificate is under /etc/raftq/client).
client() {
  timeout -k 5 120 docker run --rm -i --label "raftq-k8s-test=$P" --network "$NET" \
    -v "$WORK/tls:/etc/raftq/tls:ro" -v "$WORK/auth:/etc/raftq/client:ro" \
    -e RAFTQ_CA=/etc/raftq/tls/ca.pem --entrypoint raftq "$IMAGE" "$@"
}
# The application: user k8s-app by its token (in Kubernetes, RAFTQ_TOKEN from a Secret).
cli() {
  timeout -k 5 120 docker run --rm -i --label "raftq-k8s-test=$P" --network "$NET" \
    -v "$WORK/tls:/etc/raftq/tls:ro" -e RAFTQ_CA=/etc/raftq/tls/ca.pem -e RAFTQ_TOKEN="$APP_TOKEN" \
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

# ---------------------------------------------------------------- 0. no users.toml
start_pod 0 "$WORK/noauth"
code=$(timeout 30 docker wait "$P-raftq-0") || fail "raftq-0 without users.toml is still running after 30 s"
refusal=$(docker logs "$P-raftq-0" 2>&1 | grep -m1 'raftq-auth' || true)
[[ "$code" != 0 && "$refusal" == *"raftq-auth has no users.toml"* ]] \
  || fail "raftq-0 without users.toml was not refused (exit $code): $(docker logs --tail 5 "$P-raftq-0" 2>&1)"
log "a pod whose raftq-auth has no users.toml: refused (exit $code): $refusal"
docker rm -f "$P-raftq-0" >/dev/null
docker volume rm "$P-data-raftq-0" >/dev/null

# ---------------------------------------------------------------- 1. bootstrap
for n in 0 1 2; do start_pod "$n"; done
wait_status 60 'sorted(nodes) == [1, 2, 3] and all(n["up"] and n["role"] == "voter" for n in d["nodes"])' \
  "three voters"
log "pods raftq-0..2 formed a cluster (nodes 1, 2, 3), seen by raftq-0's CLI as admin"
for n in 0 1 2; do
  for kind in startup readiness liveness; do
    out=$(probe "$n" "$kind") || fail "the $kind probe fails in raftq-$n: $out"
  done
done
log "the manifest's startup, readiness and liveness probes pass in raftq-0..2"

# No credentials, or unknown ones: refused, even cluster status.
for what in "queue create anon" "cluster status"; do
  # shellcheck disable=SC2086 # the words of a command
  out=$(client --servers "$SERVERS" --timeout 3s $what 2>&1) \
    && fail "a client without credentials ran '$what': $out"
  [[ "$out" == *"not authenticated"* ]] || fail "a client without credentials, '$what': unexpected answer: $out"
done
log "a client without credentials is refused: ${out:0:110}"
out=$(client --servers "$SERVERS" --timeout 3s --token rq_0000 queue create anon 2>&1) \
  && fail "a client with an unknown token created a queue: $out"
[[ "$out" == *"not authenticated"* ]] || fail "a client with an unknown token: unexpected answer: $out"
log "a client with an unknown token is refused: $out"
out=$(cli --timeout 3s cluster rebalance 2>&1) && fail "k8s-app (not an admin) rebalanced the cluster: $out"
[[ "$out" == *"permission denied"* ]] || fail "k8s-app rebalancing: unexpected answer: $out"
log "k8s-app may not rebalance: $out"
# The admin client in another pod, through the client Service's name.
st=$(client --servers "raftq.$NS.svc:7001" --cert /etc/raftq/client/client-admin.pem \
  --key /etc/raftq/client/client-admin-key.pem --timeout 10s --json cluster status | grep '^{' | tail -n 1) \
  || fail "the admin client through the Service raftq.$NS.svc failed"
python3 -c 'import json, sys; assert len(json.loads(sys.argv[1])["nodes"]) == 3' "$st" \
  || fail "the admin client through the Service: unexpected status: $st"
log "the admin client (client certificate) sees the cluster through the Service raftq.$NS.svc:7001"

cli queue create "$QUEUE" >/dev/null || fail "queue create (k8s-app, by token) failed"
cli publish "$QUEUE" --count 300 >/dev/null || fail "publishing 300 messages (k8s-app) failed"
log "k8s-app (token) created queue $QUEUE: 300 messages confirmed"

# users.toml loses the pods' user: readiness fails and says why; startup and
# liveness still pass, so no pod is restarted. Back when admin is restored.
write_users 0
deadline=$(($(date +%s) + 20))
until ! out=$(probe 0 readiness) && [[ "$out" == *"not authenticated"* ]]; do
  (($(date +%s) < deadline)) || fail "readiness still passes 20 s after users.toml lost admin: $out"
  sleep 1
done
log "users.toml without admin: readiness fails: ${out:0:120}"
for n in 0 1 2; do
  for kind in startup liveness; do
    out=$(probe "$n" "$kind") || fail "without admin in users.toml the $kind probe fails in raftq-$n: $out"
  done
done
log "startup and liveness still pass in raftq-0..2 (no restarts)"
write_users 1
# Each pod notices the changed file on its own poll, so each is waited for.
deadline=$(($(date +%s) + 20))
for n in 0 1 2; do
  until out=$(probe "$n" readiness); do
    (($(date +%s) < deadline)) || fail "readiness in raftq-$n still fails 20 s after admin was restored: $out"
    sleep 1
  done
done
log "admin restored: readiness passes again in raftq-0..2"

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
# The node where the request entered logs it on the raftq::audit target.
audit=$(for n in 0 2; do docker logs "$P-raftq-$n" 2>&1; done | grep '"raftq::audit"' | grep '"remove node"' | tail -n 1 || true)
[[ "$audit" == *'"who":"user admin"'* ]] || fail "no audit line naming user admin for remove-node 2: ${audit:-none}"
log "remove-node 2 by raftq-0's CLI as admin; audit: ${audit:0:200}"
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
log "all 300 messages delivered to k8s-app after the replacement"
RESULT="PASS: k8s-runbook-test ($(($(date +%s) - T0))s: authentication on: probes pass as admin, no or unknown credentials refused, admin and token users work; refused on an empty volume, replaced by node 101 at the same name, 300/300 messages delivered)"
