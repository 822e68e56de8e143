#!/usr/bin/env python3
"""raftq producer: the recommended publishing pattern.

* Idempotent: a random producer id, and message i of a batch carries sequence
  `sequence + i`; the next batch continues after the last one.
* One batch in flight at a time (what lets the server recognise a retry).
* On UNAVAILABLE / DEADLINE_EXCEEDED the SAME batch is resent with the SAME
  sequence, on the next node, with backoff, until a per-batch deadline: a retry
  of a batch that was in fact stored is not stored again and answers with the
  original offsets (duplicate=true).
* A batch that still fails is counted as failed and the producer continues under
  a fresh producer id (the old one's sequence state is unknown).

Prints one JSON line at the end: {"confirmed": N, "failed": M, ...}.

    python producer.py --servers 127.0.0.1:7001,127.0.0.1:7002 --queue orders --count 500
"""

import argparse
import json
import sys
import time
import uuid

import grpc

from common import (RETRYABLE, Backoff, Servers, add_common_args, credentials, describe,
                    load_stubs, log)

queue_pb2, queue_pb2_grpc, admin_pb2, admin_pb2_grpc = load_stubs()


class BatchFailed(Exception):
    pass


class Producer:
    def __init__(self, servers, queue, timeout, deadline, create):
        self.servers, self.queue = servers, queue
        self.timeout, self.deadline, self.create = timeout, deadline, create
        self.new_identity()
        self.retries = self.duplicates = 0
        # Set once the queue is known to exist. A node whose copy of the catalog
        # lags a moment behind may still say NOT_FOUND: then try another node.
        self.queue_exists = False

    def new_identity(self):
        self.producer_id = f"py-{uuid.uuid4()}"
        self.sequence = 0  # sequence of the next batch's first message

    def create_queue(self):
        """CreateQueue with the same retry loop; ALREADY_EXISTS is success."""
        req = admin_pb2.CreateQueueRequest(name=self.queue)
        try:
            self.call(lambda ch, t: admin_pb2_grpc.AdminServiceStub(ch).CreateQueue(req, timeout=t))
            log(f"created queue {self.queue!r}")
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise
            log(f"queue {self.queue!r} already exists")
        self.queue_exists = True

    def call(self, rpc):
        """Runs rpc(channel, timeout) until it succeeds, fails for good, or the
        per-operation deadline passes. Retryable failures move to the next node;
        RESOURCE_EXHAUSTED (queue full) waits for consumers on the same node."""
        deadline = time.monotonic() + self.deadline
        backoff = Backoff()
        while True:
            attempt_timeout = max(0.1, min(self.timeout, deadline - time.monotonic()))
            try:
                return rpc(self.servers.channel(), attempt_timeout)
            except grpc.RpcError as e:
                code = e.code()
                elsewhere = code in RETRYABLE or (
                    code == grpc.StatusCode.NOT_FOUND and self.queue_exists)
                if not elsewhere and code != grpc.StatusCode.RESOURCE_EXHAUSTED:
                    raise
                if time.monotonic() >= deadline:
                    raise
                self.retries += 1
                log(f"{self.servers.current}: {describe(e)}; retrying")
                if elsewhere:
                    self.servers.next()
                backoff.pause(deadline)

    def publish(self, payloads):
        """Publishes one batch; returns its offsets or raises BatchFailed."""
        req = queue_pb2.PublishRequest(
            queue=self.queue,
            producer_id=self.producer_id,
            sequence=self.sequence,  # the same on every retry of this batch
            messages=[queue_pb2.PublishMessage(payload=p, headers={"content-type": "text/plain"})
                      for p in payloads],
        )
        while True:
            try:
                resp = self.call(lambda ch, t: queue_pb2_grpc.QueueServiceStub(ch).Publish(req, timeout=t))
                self.queue_exists = True
                break
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.NOT_FOUND and self.create and not self.queue_exists:
                    self.create_queue()
                    continue
                # Unknown whether the batch was stored (retries ran out), or it
                # was refused: either way start over under a new identity so the
                # next batch is not judged against this one's sequence.
                self.new_identity()
                raise BatchFailed(describe(e)) from e
        if len(resp.offsets) != len(payloads):
            self.new_identity()
            raise BatchFailed(f"expected {len(payloads)} offsets, got {len(resp.offsets)}")
        if resp.duplicate:
            self.duplicates += 1
        self.sequence += len(payloads)
        return list(resp.offsets)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(parser)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per attempt")
    parser.add_argument("--deadline", type=float, default=30.0,
                        help="seconds of retrying one batch before giving up on it")
    parser.add_argument("--create", action="store_true",
                        help="create the queue (defaults) if it does not exist")
    args = parser.parse_args()

    servers = Servers(args.servers, credentials(args.ca, args.cert, args.key))
    producer = Producer(servers, args.queue, args.timeout, args.deadline, args.create)
    confirmed = failed = 0
    started = time.monotonic()
    try:
        if args.create:
            producer.create_queue()
        n = 0
        while n < args.count:
            size = min(args.batch_size, args.count - n)
            payloads = [f"message {i} of {args.count}".encode() for i in range(n, n + size)]
            try:
                offsets = producer.publish(payloads)
                confirmed += len(offsets)
            except BatchFailed as e:
                failed += size
                log(f"batch of {size} from message {n} failed: {e}")
            n += size
    except grpc.RpcError as e:  # CreateQueue failed for good
        log(f"create queue failed: {describe(e)}")
        failed = args.count - confirmed
    finally:
        servers.close()
    print(json.dumps({
        "confirmed": confirmed,
        "failed": failed,
        "retries": producer.retries,
        "duplicate_batches": producer.duplicates,
        "seconds": round(time.monotonic() - started, 2),
    }), flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
