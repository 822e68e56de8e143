//! The stream side of a run: readers that follow a stream on every node while
//! faults happen, and the read of the whole stream on every node afterwards
//! that the checker compares (`raftq_chaos::stream_check`).

use std::time::{Duration, Instant};

use raftq_chaos::history::{msg_of, Event};
use raftq_client::Consistency;
use tokio::sync::watch;

use crate::cluster::Roster;
use crate::workload::{node_clients, slot_clients, Recorder};

/// Most messages asked for in one read.
const PAGE: u32 = 500;

fn record_read(
    rec: &Recorder,
    queue: &str,
    node: u64,
    m: &raftq_client::StoredMessage,
    final_read: bool,
) {
    rec.record(Event::StreamRead {
        t: rec.now(),
        queue: queue.to_string(),
        node,
        offset: m.offset,
        msg: msg_of(&m.payload).unwrap_or(u64::MAX),
        final_read,
    });
}

/// Follows `queue` on every node in turn (stale reads, which a partitioned
/// or lagging replica still answers) until `stop`: whatever a replica
/// returns during faults must agree with every other view of that offset.
pub async fn follow(
    roster: Roster,
    slots: Vec<String>,
    queue: String,
    rec: Recorder,
    stop: watch::Receiver<bool>,
) {
    let clients = slot_clients(&slots, Duration::from_millis(500));
    // Per address: the node id read from, and the next offset to read.
    let mut next: Vec<(u64, u64)> = vec![(0, 0); clients.len()];
    let mut turn = 0usize;
    while !*stop.borrow() && !clients.is_empty() {
        let i = turn % clients.len();
        turn += 1;
        let (addr, client) = &clients[i];
        let Some(node) = roster.id_at(addr) else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        if next[i].0 != node {
            // Another node took the slot: its replica is read from the start.
            next[i] = (node, 0);
        }
        if let Ok(resp) = client
            .read(&queue, next[i].1, PAGE, Consistency::StaleOk)
            .await
        {
            for m in &resp.messages {
                record_read(&rec, &queue, node, m, false);
                next[i].1 = next[i].1.max(m.offset + 1);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// After the run (healed, producers stopped): reads the whole stream from
/// each node's own replica with linearizable reads, so each node has caught
/// up with everything committed before it answers. Bounded by `limit` per node.
pub async fn read_every_replica(
    addrs: &[(u64, String)],
    queue: &str,
    rec: &Recorder,
    limit: Duration,
) {
    for (node, client) in node_clients(addrs, Duration::from_secs(5)) {
        let deadline = Instant::now() + limit;
        let mut next = 0u64;
        let outcome = loop {
            match client
                .read(queue, next, PAGE, Consistency::Linearizable)
                .await
            {
                Ok(resp) if resp.messages.is_empty() => break Ok(()),
                Ok(resp) => {
                    for m in &resp.messages {
                        record_read(rec, queue, node, m, true);
                        next = next.max(m.offset + 1);
                    }
                }
                Err(e) if Instant::now() >= deadline => break Err(e.to_string()),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        rec.record(Event::StreamReplicaRead {
            t: rec.now(),
            queue: queue.to_string(),
            node,
            ok: outcome.is_ok(),
            detail: outcome.err().unwrap_or_default(),
        });
    }
}
