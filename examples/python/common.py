"""Helpers shared by producer.py and consumer.py: stubs, server list, backoff.

The gRPC stubs are not committed: they are generated from the repository's
proto/ directory with grpc_tools.protoc, either beforehand (point RAFTQ_PY_STUBS
at the output directory) or here, at start-up, into a temporary directory.
"""

import atexit
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_PROTO_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "proto"))
PROTOS = ["raftq/v1/queue.proto", "raftq/v1/admin.proto"]

# Worth retrying, possibly on another node: no leader yet, leadership moving,
# node down or shutting down, or no answer in time.
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def log(msg):
    """Progress and errors go to stderr; stdout carries only the JSON summary."""
    print(f"[{os.path.basename(sys.argv[0])}] {msg}", file=sys.stderr, flush=True)


def generate_stubs(out_dir, proto_dir=DEFAULT_PROTO_DIR):
    """python -m grpc_tools.protoc -I proto --python_out=OUT --grpc_python_out=OUT ..."""
    os.makedirs(out_dir, exist_ok=True)
    cmd = [sys.executable, "-m", "grpc_tools.protoc", "-I", proto_dir,
           f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", *PROTOS]
    subprocess.run(cmd, check=True)


def load_stubs():
    """Returns (queue_pb2, queue_pb2_grpc, admin_pb2, admin_pb2_grpc)."""
    stubs = os.environ.get("RAFTQ_PY_STUBS")
    if not stubs or not os.path.exists(os.path.join(stubs, "raftq", "v1", "queue_pb2.py")):
        tmp = tempfile.mkdtemp(prefix="raftq-stubs-")
        atexit.register(shutil.rmtree, tmp, ignore_errors=True)
        generate_stubs(tmp, os.environ.get("RAFTQ_PROTO_DIR", DEFAULT_PROTO_DIR))
        stubs = tmp
    sys.path.insert(0, stubs)
    from raftq.v1 import admin_pb2, admin_pb2_grpc, queue_pb2, queue_pb2_grpc
    return queue_pb2, queue_pb2_grpc, admin_pb2, admin_pb2_grpc


def add_common_args(parser):
    parser.add_argument("--servers", default=os.environ.get("RAFTQ_SERVERS", "127.0.0.1:7001"),
                        help="comma-separated host:port list; any node serves any request "
                             "(env RAFTQ_SERVERS, default 127.0.0.1:7001)")
    parser.add_argument("--ca", default=os.environ.get("RAFTQ_CA"),
                        help="CA certificate (PEM) of a cluster that serves TLS (env RAFTQ_CA)")
    parser.add_argument("--cert", default=os.environ.get("RAFTQ_CERT"),
                        help="client certificate (PEM) for mutual TLS (env RAFTQ_CERT)")
    parser.add_argument("--key", default=os.environ.get("RAFTQ_KEY"),
                        help="the client certificate's key (PEM) (env RAFTQ_KEY)")
    parser.add_argument("--queue", required=True, help="queue name")
    parser.add_argument("--count", type=int, default=100, help="number of messages")


def credentials(ca=None, cert=None, key=None):
    """TLS credentials from PEM files, or None for plaintext (a local cluster on
    127.0.0.1). Nodes beyond loopback serve TLS only."""
    if not ca:
        if cert or key:
            raise SystemExit("--cert and --key need --ca")
        return None
    if bool(cert) != bool(key):
        raise SystemExit("a client certificate needs its key, and a key its certificate")

    def read(path):
        with open(path, "rb") as f:
            return f.read()

    return grpc.ssl_channel_credentials(
        root_certificates=read(ca),
        private_key=read(key) if key else None,
        certificate_chain=read(cert) if cert else None,
    )


def open_channel(addr, creds=None, options=()):
    if creds is None:
        return grpc.insecure_channel(addr, options=list(options))
    return grpc.secure_channel(addr, creds, options=list(options))


class Servers:
    """The seed list with one lazily opened channel per node. A retryable failure
    moves on to the next node: every node serves every request (followers forward
    to the queue's leader), so any one that is up will do."""

    def __init__(self, spec, creds=None):
        self.addrs = [s.strip() for s in spec.split(",") if s.strip()]
        if not self.addrs:
            raise SystemExit("no servers given (--servers / RAFTQ_SERVERS)")
        self.index = random.randrange(len(self.addrs))  # spread clients over nodes
        self.channels = {}
        self.creds = creds

    @property
    def current(self):
        return self.addrs[self.index]

    def channel(self):
        addr = self.current
        if addr not in self.channels:
            # Reconnect to a restarted node within seconds (gRPC's default
            # reconnect backoff grows to two minutes).
            self.channels[addr] = open_channel(addr, self.creds, options=[
                ("grpc.initial_reconnect_backoff_ms", 200),
                ("grpc.max_reconnect_backoff_ms", 2000),
            ])
        return self.channels[addr]

    def next(self):
        self.index = (self.index + 1) % len(self.addrs)

    def close(self):
        for ch in self.channels.values():
            ch.close()
        self.channels.clear()


class Backoff:
    """Exponential backoff with jitter: 50 ms doubling up to 2 s, each pause drawn
    from the upper half of its step so clients that failed together spread out."""

    def __init__(self, initial=0.05, maximum=2.0):
        self.initial, self.maximum, self.attempt = initial, maximum, 0

    def pause(self, deadline=None):
        step = min(self.maximum, self.initial * 2 ** min(self.attempt, 30))
        self.attempt += 1
        delay = step / 2 + random.random() * step / 2
        if deadline is not None:
            delay = max(0.0, min(delay, deadline - time.monotonic()))
        time.sleep(delay)

    def reset(self):
        self.attempt = 0


def describe(err):
    """One line for a grpc.RpcError."""
    if isinstance(err, grpc.RpcError) and hasattr(err, "code"):
        return f"{err.code().name}: {err.details()}"
    return repr(err)
