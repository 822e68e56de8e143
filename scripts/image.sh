#!/usr/bin/env bash
# Builds the raftq container image from local files only: no registry, no base
# image, no `docker build`. It is the same image as deploy/Dockerfile (same paths,
# user, environment, entrypoint, ports, volume and healthcheck), assembled by hand:
#
#   1. cargo build --release --bins
#   2. a rootfs: raftqd + raftq (debug info stripped), the shared libraries `ldd`
#      lists + the dynamic loader, /bin/sh (dash, for wrappers such as the k8s one),
#      /etc/passwd + /etc/group with the `raftq` user (uid/gid 10001),
#      /etc/nsswitch.conf, /tmp (1777), and /var/lib/raftq and /etc/raftq/certs
#      owned by raftq
#   3. tar (reproducible: sorted, mtime 0, numeric owners) | docker import with
#      --change for ENV, USER, WORKDIR, ENTRYPOINT, EXPOSE, VOLUME, LABEL and
#      HEALTHCHECK (this engine accepts HEALTHCHECK in `docker import --change`;
#      STOPSIGNAL is not accepted, SIGTERM is Docker's default anyway).
#
# Usage: scripts/image.sh [--no-cargo]
#   --no-cargo   use target/release/{raftqd,raftq} as they are (no cargo build)
# Env:   RAFTQ_IMAGE   tag to produce (default raftq:local)
#
# Idempotent: the image carries a label with the sha256 of the rootfs tar and of
# the --change list; when the tag already has that label nothing is imported. The
# last line of stdout is the image id. Any failure exits non-zero with a message.
set -euo pipefail
cd "$(dirname "$0")/.."

TAG="${RAFTQ_IMAGE:-raftq:local}"
RAFTQ_UID=10001
RAFTQ_GID=10001
CARGO=1

die() { echo "image.sh: ERROR: $*" >&2; exit 1; }
log() { echo "image.sh: $*" >&2; }

for arg in "$@"; do
  case "$arg" in
    --no-cargo) CARGO=0 ;;
    -h | --help) sed -n '2,26p' "$0"; exit 0 ;;
    *) die "unknown argument '$arg' (try --help)" ;;
  esac
done

command -v docker >/dev/null 2>&1 || die "docker CLI not found"
docker info >/dev/null 2>&1 || die "cannot reach the Docker engine (docker info failed)"
for tool in ldd tar sha256sum; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' is required"
done

if [[ "$CARGO" == 1 ]]; then
  log "cargo build --release --bins"
  cargo build --release --bins >&2 || die "cargo build failed"
fi
BINS=("${CARGO_TARGET_DIR:-target}/release/raftqd" "${CARGO_TARGET_DIR:-target}/release/raftq")
for b in "${BINS[@]}"; do
  [[ -x "$b" ]] || die "$b is missing (run cargo build --release --bins)"
done
SH=$(command -v dash || true)
[[ -n "$SH" ]] || SH=/bin/sh

WORK=$(mktemp -d "${TMPDIR:-/tmp}/raftq-image.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
ROOT="$WORK/rootfs"
mkdir -p "$ROOT"/{bin,etc/raftq/certs,tmp,usr/local/bin,var/lib/raftq}
chmod 1777 "$ROOT/tmp"
chmod 0750 "$ROOT/var/lib/raftq" "$ROOT/etc/raftq/certs"

# Binaries: strip debug info (the release profile keeps it) but keep symbols.
for b in "${BINS[@]}"; do
  dest="$ROOT/usr/local/bin/$(basename "$b")"
  if command -v objcopy >/dev/null 2>&1; then
    objcopy --strip-debug "$b" "$dest" || die "objcopy --strip-debug $b failed"
  else
    cp "$b" "$dest"
  fi
  chmod 0755 "$dest"
done
cp -L "$SH" "$ROOT/bin/sh"
chmod 0755 "$ROOT/bin/sh"

# Shared libraries and the loader, at the paths the binaries ask for.
copy_libs() {
  local bin=$1 out lib
  out=$(ldd "$bin" 2>&1) || die "ldd $bin failed: $out"
  if grep -q 'not a dynamic executable\|statically linked' <<<"$out"; then return 0; fi
  if grep -q 'not found' <<<"$out"; then die "ldd $bin: missing libraries:"$'\n'"$out"; fi
  # "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" and "/lib64/ld-linux-x86-64.so.2 (0x...)"
  while read -r lib; do
    [[ -n "$lib" ]] || continue
    [[ -e "$lib" ]] || die "ldd $bin names $lib, which does not exist"
    mkdir -p "$ROOT$(dirname "$lib")"
    cp -L "$lib" "$ROOT$lib"
  done < <(awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$out")
}
for b in "$ROOT"/usr/local/bin/* "$ROOT/bin/sh"; do copy_libs "$b"; done

cat >"$ROOT/etc/passwd" <<EOF
root:x:0:0:root:/root:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
raftq:x:$RAFTQ_UID:$RAFTQ_GID:raftq:/var/lib/raftq:/usr/sbin/nologin
EOF
cat >"$ROOT/etc/group" <<EOF
root:x:0:
nogroup:x:65534:
raftq:x:$RAFTQ_GID:
EOF
printf 'hosts: files dns\n' >"$ROOT/etc/nsswitch.conf"
chmod 0644 "$ROOT"/etc/{passwd,group,nsswitch.conf}

# Smoke test of the rootfs on the host: the loader finds every library.
if command -v chroot >/dev/null 2>&1 && [[ $EUID == 0 ]]; then
  chroot "$ROOT" /usr/local/bin/raftqd --version >/dev/null 2>&1 \
    || die "raftqd does not start inside the assembled rootfs (chroot test)"
  chroot "$ROOT" /usr/local/bin/raftq --version >/dev/null 2>&1 \
    || die "raftq does not start inside the assembled rootfs (chroot test)"
fi

# Reproducible tar: root-owned files, then the data dir owned by raftq.
TARBALL="$WORK/rootfs.tar"
TAR_OPTS=(--sort=name --mtime=@0 --numeric-owner --format=gnu)
# The certificate dir is raftq's too: a volume mounted there starts owned by
# raftq, so `raftq cert` run as raftq can write into it (compose's certs service).
tar -C "$ROOT" "${TAR_OPTS[@]}" --owner=0 --group=0 --exclude=./var/lib/raftq \
  --exclude=./etc/raftq/certs -cf "$TARBALL" . || die "tar of the rootfs failed"
tar -C "$ROOT" "${TAR_OPTS[@]}" --owner="$RAFTQ_UID" --group="$RAFTQ_GID" --no-recursion \
  -rf "$TARBALL" ./var/lib/raftq ./etc/raftq/certs || die "tar of the data dir failed"

# Keep in step with deploy/Dockerfile.
CHANGES=(
  'ENV PATH=/usr/local/bin:/usr/bin:/bin'
  'ENV RAFTQ_DATA_DIR=/var/lib/raftq'
  'ENV RAFTQ_LISTEN=0.0.0.0:7001'
  'ENV RAFTQ_METRICS_LISTEN=0.0.0.0:9100'
  'ENV RAFTQ_LOG_FORMAT=text'
  'ENV RAFTQ_SERVERS=127.0.0.1:7001'
  "USER $RAFTQ_UID:$RAFTQ_GID"
  'WORKDIR /var/lib/raftq'
  'VOLUME /var/lib/raftq'
  'EXPOSE 7001 9100'
  'HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["raftq", "--servers", "127.0.0.1:7001", "--timeout", "3s", "cluster", "status"]'
  'ENTRYPOINT ["/usr/local/bin/raftqd"]'
)
DIGEST=$( { sha256sum <"$TARBALL"; printf '%s\n' "${CHANGES[@]}"; } | sha256sum | cut -c1-64)

existing=$(docker image inspect -f '{{index .Config.Labels "org.raftq.rootfs-sha256"}}' "$TAG" 2>/dev/null || true)
if [[ "$existing" == "$DIGEST" ]]; then
  log "$TAG is up to date (rootfs sha256 $DIGEST)"
  docker image inspect -f '{{.Id}}' "$TAG"
  exit 0
fi
old_id=$(docker image inspect -f '{{.Id}}' "$TAG" 2>/dev/null || true)

args=()
for c in "${CHANGES[@]}"; do args+=(--change "$c"); done
args+=(--change "LABEL org.raftq.rootfs-sha256=$DIGEST org.opencontainers.image.title=raftq")
log "importing $(du -h "$TARBALL" | cut -f1) rootfs as $TAG"
id=$(docker import --message "raftq rootfs (scripts/image.sh)" "${args[@]}" "$TARBALL" "$TAG") \
  || die "docker import failed"

# Check the result: the entrypoint runs as the raftq user and the CLI is there.
docker run --rm "$TAG" --version >/dev/null || die "the new image does not run raftqd --version"
docker run --rm --entrypoint raftq "$TAG" --version >/dev/null || die "the new image does not run raftq --version"
[[ "$(docker image inspect -f '{{.Config.User}}' "$TAG")" == "$RAFTQ_UID:$RAFTQ_GID" ]] \
  || die "the new image does not run as $RAFTQ_UID:$RAFTQ_GID"

# The image this one replaced is now untagged: remove it unless something uses it.
if [[ -n "$old_id" && "$old_id" != "$id" ]]; then
  docker rmi "$old_id" >/dev/null 2>&1 || true
fi
log "built $TAG"
echo "$id"
