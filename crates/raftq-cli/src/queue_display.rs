//! How queues and leaders are shown: the JSON shape of a queue everywhere in
//! the CLI, and the words for a queue's kind and a missing leader.

use raftq_client::{QueueInfo, QueueKind};
use serde_json::{json, Value};

pub fn leader_text(id: u64) -> String {
    if id == 0 {
        "none".into()
    } else {
        id.to_string()
    }
}

pub fn kind_name(kind: i32) -> &'static str {
    if kind == QueueKind::Stream as i32 {
        "stream"
    } else {
        "work"
    }
}

/// The JSON shape of a queue everywhere in the CLI.
pub fn queue_json(q: &QueueInfo) -> Value {
    let o = q.options.clone().unwrap_or_default();
    json!({
        "name": q.name,
        "kind": kind_name(o.kind),
        "leader": q.leader_id,
        "replicas": q.replicas,
        "voters": q.voters,
        "learners": q.learners,
        "depth": q.depth,
        "ready": q.ready,
        "unacked": q.unacked,
        "consumers": q.consumers,
        "term": q.term,
        "applied_index": q.applied_index,
        "group_id": q.group_id,
        "answered_by": q.answered_by,
        "bytes": q.bytes,
        "first_offset": q.first_offset,
        "next_offset": q.next_offset,
        "consumer_offsets": q.consumer_offsets,
        "replica_status": q.replica_status.iter().map(|r| json!({
            "node": r.node_id, "matched_index": r.matched_index, "lag": r.lag,
            "lag_bytes": r.lag_bytes, "snapshot_bytes_sent": r.snapshot_bytes_sent
        })).collect::<Vec<_>>(),
        "options": {
            "replicas": if o.replicas_all { json!("all") } else { json!(o.replicas) },
            "max_deliveries": o.max_deliveries,
            "dead_letter_queue": o.dead_letter_queue,
            "message_ttl_ms": o.message_ttl_ms,
            "max_length": o.max_length,
            "max_bytes": o.max_bytes,
            "overflow": if o.overflow == 1 { "drop-head" } else { "reject-publish" },
            "ack_timeout_ms": o.ack_timeout_ms,
            "max_message_bytes": o.max_message_bytes,
            "dedup_window": o.dedup_window,
            "single_active_consumer": o.single_active_consumer,
            "max_age_ms": o.max_age_ms,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_json_has_what_scripts_read() {
        let q = QueueInfo {
            name: "q".into(),
            leader_id: 2,
            replicas: vec![1, 2, 3],
            depth: 5,
            ..Default::default()
        };
        let v = queue_json(&q);
        assert_eq!(v["leader"], 2);
        assert_eq!(v["replicas"], json!([1, 2, 3]));
        assert_eq!(v["depth"], 5);
        assert_eq!(v["kind"], "work");
    }
}
