#!/usr/bin/env python3
"""raftq consumer: the recommended consuming pattern.

* Subscribe first (ConsumeRequest.subscribe), wait for `subscribed`, then take
  deliveries; the server never has more than `prefetch` unsettled out to us.
* Process, THEN ack (at-least-once). Acks are batched: sent when --ack-batch
  offsets are ready or when no more deliveries are waiting, and counted only
  once the server's SettleConfirm lists them as settled.
* A processing error is a nack with requeue (delivered again later with
  redelivered=true and delivery_count + 1); after --max-attempts deliveries the
  message is rejected instead (dead-lettered, or dropped without a DLQ).
* When the stream ends (UNAVAILABLE when the queue's leader changes, or a node
  going away) resubscribe, on the next node, with backoff: unacked messages come
  back with redelivered=true, so process them again.
* Stops after --count acked messages, or after --idle-timeout seconds without a
  delivery.

Prints one JSON line at the end: {"received": N, "acked": M, ...}.

    python consumer.py --servers 127.0.0.1:7001,127.0.0.1:7002 --queue orders --count 500
"""

import argparse
import itertools
import json
import queue as queues
import random
import sys
import threading
import time

import grpc

from common import (RETRYABLE, Backoff, Servers, add_common_args, credentials, describe,
                    load_stubs, log)

queue_pb2, queue_pb2_grpc, admin_pb2, admin_pb2_grpc = load_stubs()

ACK = queue_pb2.SETTLE_OUTCOME_ACK
REQUEUE = queue_pb2.SETTLE_OUTCOME_REQUEUE
REJECT = queue_pb2.SETTLE_OUTCOME_REJECT


class StreamEnded(Exception):
    def __init__(self, error=None):
        super().__init__(describe(error) if error is not None else "stream ended")
        self.error = error


class Session:
    """One Consume stream. Requests go through a queue feeding the request
    iterator; a thread moves responses into `inbox` so the main loop can wait on
    them with a timeout."""

    def __init__(self, channel, queue_name, prefetch):
        self.requests = queues.Queue()
        self.inbox = queues.Queue()
        self.send(queue_pb2.ConsumeRequest(
            subscribe=queue_pb2.Subscribe(queue=queue_name, prefetch=prefetch)))
        self.call = queue_pb2_grpc.QueueServiceStub(channel).Consume(self._requests())
        threading.Thread(target=self._read, daemon=True).start()

    def _requests(self):
        while True:
            req = self.requests.get()
            if req is None:
                return
            yield req

    def _read(self):
        try:
            for resp in self.call:
                self.inbox.put(resp)
            self.inbox.put(StreamEnded())
        except grpc.RpcError as e:
            self.inbox.put(StreamEnded(e))

    def send(self, req):
        self.requests.put(req)

    def next(self, timeout):
        """The next response; None on timeout; raises StreamEnded."""
        try:
            item = self.inbox.get(timeout=timeout) if timeout > 0 else self.inbox.get_nowait()
        except queues.Empty:
            return None
        if isinstance(item, StreamEnded):
            raise item
        return item

    def close(self):
        self.requests.put(None)  # half-close: ends the request iterator
        self.call.cancel()       # unsettled deliveries go back to the queue


class Consumer:
    def __init__(self, args):
        self.args = args
        self.servers = Servers(args.servers, credentials(args.ca, args.cert, args.key))
        self.tags = itertools.count(1)
        self.received = set()  # distinct offsets processed successfully
        self.acked = set()     # offsets whose ack the server confirmed
        self.to_ack = []       # processed, ack not sent yet
        self.acking = {}       # tag -> offsets of acks sent, not yet confirmed
        self.unconfirmed = set()  # ack sent, but the stream ended before its confirm
        self.deliveries = self.redeliveries = self.requeued = self.rejected = 0
        self.last_delivery = time.monotonic()
        self.ack_sent = 0.0  # when the oldest unconfirmed settle was sent

    # -- bookkeeping ---------------------------------------------------------

    def done(self):
        """Enough processed: acked, or being acked, or acked on a stream that
        then ended (if such an ack was lost the message comes back and is
        processed again; if we stop first it stays in the queue, never lost)."""
        pending = set(self.to_ack).union(*self.acking.values())
        return len(self.acked | pending | self.unconfirmed) >= self.args.count

    def idle(self):
        return time.monotonic() - self.last_delivery >= self.args.idle_timeout

    def process(self, delivery):
        """The application's work. Raising means "could not process it now"."""
        if delivery.delivery_count == 0 and random.random() < self.args.fail_rate:
            raise RuntimeError("simulated transient failure")
        _ = delivery.payload.decode()

    # -- one stream ----------------------------------------------------------

    def flush_acks(self, session):
        if self.to_ack:
            tag = next(self.tags)
            if not self.acking:
                self.ack_sent = time.monotonic()
            self.acking[tag] = set(self.to_ack)
            session.send(queue_pb2.ConsumeRequest(settle=queue_pb2.Settle(
                offsets=self.to_ack, outcome=ACK, tag=tag)))
            self.to_ack = []

    def nack(self, session, delivery, err):
        # A message that keeps failing is rejected rather than requeued forever.
        outcome = REJECT if delivery.delivery_count + 1 >= self.args.max_attempts else REQUEUE
        log(f"offset {delivery.offset}: {err}; "
            f"{'rejecting' if outcome == REJECT else 'requeueing'} it")
        tag = next(self.tags)
        session.send(queue_pb2.ConsumeRequest(settle=queue_pb2.Settle(
            offsets=[delivery.offset], outcome=outcome, tag=tag)))
        if outcome == REJECT:
            self.rejected += 1
        else:
            self.requeued += 1

    def on_delivery(self, session, d):
        self.deliveries += 1
        self.last_delivery = time.monotonic()
        if d.redelivered:
            self.redeliveries += 1
        if self.done():
            return  # not ours to process: left unsettled, returned when we close
        self.unconfirmed.discard(d.offset)  # it came back: that ack did not happen
        try:
            self.process(d)
        except Exception as e:  # noqa: BLE001 - any processing failure is a nack
            self.nack(session, d, e)
            return
        self.received.add(d.offset)
        self.to_ack.append(d.offset)
        if len(self.to_ack) >= self.args.ack_batch:
            self.flush_acks(session)

    def on_confirm(self, c):
        offsets = self.acking.pop(c.tag, None)
        if offsets is None:
            return  # a requeue / reject confirm
        self.acked.update(c.settled)
        self.ack_sent = time.monotonic()
        if c.unknown:
            # No longer ours (returned to the queue after a leader change): it
            # will be delivered again, to us or to another consumer.
            log(f"ack of {len(c.unknown)} offsets had no effect (no longer held)")

    def run_session(self, session):
        """Consumes until done (and every ack confirmed) or idle; raises StreamEnded."""
        first = session.next(timeout=self.args.timeout)
        if first is None:
            raise StreamEnded(None)
        if first.WhichOneof("kind") != "subscribed":
            raise RuntimeError(f"expected subscribed, got {first.WhichOneof('kind')}")
        log(f"subscribed via {self.servers.current} "
            f"(session on node {first.subscribed.node_id}, consumer {first.subscribed.consumer_id})")
        self.last_delivery = time.monotonic()
        while True:
            if self.done():
                self.flush_acks(session)
                if not self.acking:
                    return
            elif self.idle():
                self.flush_acks(session)
                if not self.acking:
                    return
            # Take what is waiting; when nothing is, send the acks we hold.
            resp = session.next(timeout=0)
            if resp is None:
                self.flush_acks(session)
                resp = session.next(timeout=0.2)
                if resp is None:
                    if self.acking and time.monotonic() - self.ack_sent > self.args.timeout:
                        raise StreamEnded(None)  # confirms stopped coming
                    continue
            kind = resp.WhichOneof("kind")
            if kind == "delivery":
                self.on_delivery(session, resp.delivery)
            elif kind == "settled":
                self.on_confirm(resp.settled)

    # -- across streams ------------------------------------------------------

    def run(self):
        backoff = Backoff()
        while not (self.done() and not self.acking and not self.to_ack) and not self.idle():
            session = Session(self.servers.channel(), self.args.queue, self.args.prefetch)
            try:
                self.run_session(session)
                backoff.reset()
            except StreamEnded as e:
                # Acks sent on this stream without a confirm: maybe applied, maybe not.
                for offsets in self.acking.values():
                    self.unconfirmed.update(offsets)
                self.acking.clear()
                self.to_ack.clear()  # unsettled on a dead stream: they come back
                err = e.error
                if err is not None and err.code() not in RETRYABLE:
                    raise err
                log(f"stream via {self.servers.current} ended ({e}); resubscribing")
                self.servers.next()
                backoff.pause(self.last_delivery + self.args.idle_timeout)
            finally:
                session.close()
            if self.done() and not self.acking:
                break

    def summary(self):
        return {
            "received": len(self.received),
            "acked": len(self.acked),
            "deliveries": self.deliveries,
            "redeliveries": self.redeliveries,
            "requeued": self.requeued,
            "rejected": self.rejected,
            "unconfirmed": len(self.unconfirmed - self.acked),
        }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(parser)
    parser.add_argument("--prefetch", type=int, default=64)
    parser.add_argument("--ack-batch", type=int, default=16, help="offsets per ack")
    parser.add_argument("--idle-timeout", type=float, default=10.0,
                        help="stop after this many seconds without a delivery")
    parser.add_argument("--timeout", type=float, default=5.0,
                        help="seconds to wait for `subscribed` and for ack confirms")
    parser.add_argument("--fail-rate", type=float, default=0.0,
                        help="fraction of first deliveries whose processing fails "
                             "(simulated), to show nack-with-requeue")
    parser.add_argument("--max-attempts", type=int, default=5,
                        help="deliveries before a failing message is rejected")
    args = parser.parse_args()

    consumer = Consumer(args)
    code = 0
    try:
        consumer.run()
    except (grpc.RpcError, RuntimeError) as e:
        log(f"giving up: {describe(e)}")
        code = 1
    finally:
        consumer.servers.close()
    summary = consumer.summary()
    print(json.dumps(summary), flush=True)
    if summary["acked"] < args.count:
        code = 1
    return code


if __name__ == "__main__":
    sys.exit(main())
