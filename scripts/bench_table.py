#!/usr/bin/env python3
"""Turns the JSON lines of scripts/bench.sh into bench/results/latest.md:
medians (min-max) over runs, next to the issue-8 targets and the peers' figures.
Standard library only (a fresh machine has python3 and nothing else)."""

import json
import os
import platform
import statistics
import subprocess
import sys
from datetime import datetime, timezone


def load(path):
    by_tag = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            row = json.loads(line)
            by_tag.setdefault(row["tag"], []).append(row["result"])
    return by_tag


def spread(values, fmt):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    med = statistics.median(values)
    if len(values) == 1:
        return fmt(med)
    return f"{fmt(med)} ({fmt(min(values))}-{fmt(max(values))})"


def rate(v):
    return f"{v:,.0f}"


def ms(v):
    return f"{v:.2f} ms" if v < 10 else f"{v:.0f} ms"


def field(rows, key):
    return [r.get(key) for r in rows]


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Linux {platform.release()}"


def commit():
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return out + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main():
    raw, out = sys.argv[1], sys.argv[2]
    runs = sys.argv[sys.argv.index("--runs") + 1] if "--runs" in sys.argv else "?"
    t = load(raw)
    rows = []

    def add(name, target, figure, rabbit, nats):
        rows.append(f"| {name} | {figure} | {target} | {rabbit} | {nats} |")

    w1 = t.get("W1", [])
    add("W1 pipelined publish, 1 producer, 256 in flight: msgs/s", "≥ 50,000",
        spread(field(w1, "msgs_per_sec"), rate), "11,500", "33,000")
    add("W1 confirm p99", "≤ 10 ms", spread(field(w1, "p99_ms"), ms), "59 ms", "25 ms")
    w2 = t.get("W2", [])
    add("W2 one in flight: confirm p50", "≤ 0.4 ms", spread(field(w2, "p50_ms"), ms),
        "1.29 ms", "0.56 ms")
    w3 = t.get("W3", [])
    add("W3 producer + consumer: msgs/s", "≥ 30,000", spread(field(w3, "msgs_per_sec"), rate),
        "5,900", "15,300")
    add("W3 publish-to-delivery p50", "≤ 5 ms", spread(field(w3, "p50_ms"), ms), "0.9 s", "18 ms")
    # Open loop: latency at a given offered rate, counted from each message's due time.
    for tag, offered, nats in [("W3R15", "15,000", "18 ms (at 15,300/s)"), ("W3R30", "30,000", "-")]:
        if tag in t:
            add(f"W3 at {offered} msgs/s offered: publish-to-delivery p50", "-",
                spread(field(t[tag], "p50_ms"), ms), "-", nats)
            add(f"W3 at {offered} msgs/s offered: publish-to-delivery p99", "-",
                spread(field(t[tag], "p99_ms"), ms), "-", "-")
    for tag, label, target, rabbit, nats in [
        ("W5", "W5 SIGKILL of the leader at 1,000/s: longest confirm gap", "median ≤ 300 ms",
         "472 ms", "4.5 s"),
        ("W5p", "W5p SIGSTOP of the leader: longest confirm gap", "median ≤ 1 s", "> 15 s", "6 s"),
    ]:
        gaps = [g for r in t.get(tag, []) for g in r.get("gaps_ms", [])]
        add(label + f" ({len(gaps)} faults)", target, spread(gaps, ms), rabbit, nats)
    for tag, label in [("Q10", "10 queues, 10 producers: msgs/s"),
                       ("Q100", "100 queues, 100 producers: msgs/s")]:
        if tag in t:
            add(label, "-", spread(field(t[tag], "msgs_per_sec"), rate), "-", "-")
    if "IDLE1000" in t:
        idle = t["IDLE1000"]
        add("1,000 idle queues: CPU of the busiest node (% of one core)", "< 5 %",
            spread(field(idle, "cpu_pct_max"), lambda v: f"{v:.1f} %"), "-", "-")
        rss = [max(r.get("rss_mib", [0])) for r in idle]
        add("1,000 idle queues: resident memory of the busiest node", "-",
            spread(rss, lambda v: f"{v:.0f} MiB"), "-", "-")
        rpcs = [max((x or 0) for x in r.get("rpcs_per_sec", [0])) for r in idle]
        add("1,000 idle queues: Raft RPCs sent per second (busiest node)", "-",
            spread(rpcs, rate), "-", "-")
    if "MEM1M" in t:
        mem = t["MEM1M"]
        add("1,000,000 ready 256 B messages: resident memory / payload (busiest node)", "< 2x",
            spread(field(mem, "rss_to_payload_max"), lambda v: f"{v:.2f}x"), "-", "-")
        add("restart with that backlog: back and serving", "< 10 s",
            spread(field(mem, "restart_serving_ms"), ms), "-", "-")

    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = f"""# raftq benchmark results

Commit `{commit()}`, {now}; machine: {machine()}.
3 nodes and the client on one machine over loopback, 256-byte messages, replicas = 3,
every confirm after fsync on a majority. Figures are medians over {runs} run(s)
(min-max in brackets); for W5/W5p, over every fault of every run.
Produced by `scripts/bench.sh`; raw JSON lines in `{os.path.basename(raw)}`.

| workload | raftq | target | RabbitMQ 3.10 quorum | NATS 2.9 JetStream R3 |
|---|---|---|---|---|
""" + "\n".join(rows) + "\n"
    with open(out, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
