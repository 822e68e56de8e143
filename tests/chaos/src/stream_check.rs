//! The checks a history gets beyond consumption, part of [`crate::checker`]:
//!
//! - offset conflicts (every queue): an offset of a queue names one message
//!   for good. Two different messages confirmed, delivered or read at the same
//!   offset mean two leaders assigned it: divergent replicas;
//! - streams: after the run every node reads the whole stream from its own
//!   replica. Each must hold every confirmed message at its confirmed offset
//!   (else lost), all must hold the same messages at the same offsets (else
//!   divergent), and a replica that could not be read leaves the run
//!   unverified (counted as divergent).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::checker::{example, Report};
use crate::history::Event;

/// Messages of a payload that is not ours carry no id.
const UNKNOWN: u64 = u64::MAX;

pub fn offset_conflicts(events: &[Event], r: &mut Report) {
    let mut at: HashMap<(&str, u64), u64> = HashMap::new();
    let mut flagged: BTreeSet<(&str, u64)> = BTreeSet::new();
    for e in events {
        let (queue, offset, msg, how) = match e {
            Event::PublishOk {
                queue, offset, msg, ..
            } => (queue, offset, msg, "confirmed"),
            Event::Delivered {
                queue, offset, msg, ..
            } => (queue, offset, msg, "delivered"),
            Event::StreamRead {
                queue, offset, msg, ..
            } => (queue, offset, msg, "read"),
            _ => continue,
        };
        if *msg == UNKNOWN {
            continue;
        }
        let key = (queue.as_str(), *offset);
        let first = *at.entry(key).or_insert(*msg);
        if first != *msg && flagged.insert(key) {
            r.offset_conflicts += 1;
            example(
                r,
                format!("offset conflict: {queue} offset {offset} holds message {first} and {how} {msg}"),
            );
        }
    }
}

/// Queues whose replicas were read whole after the run.
pub fn stream_queues(events: &[Event]) -> BTreeSet<&str> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::StreamReplicaRead { queue, .. } => Some(queue.as_str()),
            _ => None,
        })
        .collect()
}

pub fn streams(events: &[Event], confirmed: &BTreeMap<(&str, u64), u64>, r: &mut Report) {
    for queue in stream_queues(events) {
        let mut replicas: BTreeMap<u64, BTreeMap<u64, u64>> = BTreeMap::new();
        for e in events {
            match e {
                Event::StreamReplicaRead {
                    queue: q,
                    node,
                    ok,
                    detail,
                    ..
                } if q == queue => {
                    if *ok {
                        replicas.entry(*node).or_default();
                    } else {
                        r.replica_divergence += 1;
                        example(
                            r,
                            format!("unverified: {queue} on node {node} could not be read whole: {detail}"),
                        );
                    }
                }
                _ => {}
            }
        }
        for e in events {
            if let Event::StreamRead {
                queue: q,
                node,
                offset,
                msg,
                final_read: true,
                ..
            } = e
            {
                if q == queue {
                    if let Some(replica) = replicas.get_mut(node) {
                        replica.insert(*offset, *msg);
                    }
                }
            }
        }
        for (node, replica) in &replicas {
            for ((_, msg), offset) in confirmed.range((queue, 0)..=(queue, u64::MAX)) {
                if replica.get(offset) != Some(msg) {
                    r.lost += 1;
                    example(
                        r,
                        format!("lost: {queue} message {msg} (confirmed at offset {offset}) not on node {node}"),
                    );
                }
            }
        }
        let mut nodes = replicas.iter();
        if let Some((first_node, first)) = nodes.next() {
            for (node, replica) in nodes {
                if replica != first {
                    r.replica_divergence += 1;
                    let differ = first
                        .iter()
                        .find(|(o, m)| replica.get(o) != Some(m))
                        .map(|(o, _)| *o)
                        .or_else(|| replica.keys().find(|o| !first.contains_key(o)).copied());
                    example(
                        r,
                        format!(
                            "divergent: {queue} on node {node} differs from node {first_node} \
                             ({} vs {} messages, first at offset {differ:?})",
                            replica.len(),
                            first.len()
                        ),
                    );
                }
            }
        }
    }
}
