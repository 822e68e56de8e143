//! One module per command family.

pub mod bench;
pub mod consume;
pub mod publish;
pub mod queue;
pub mod read;
pub mod status;

use raftq_client::QueueInfo;
use serde_json::{json, Value};

/// The JSON shape of a queue everywhere in the CLI.
pub fn queue_json(q: &QueueInfo) -> Value {
    let o = q.options.clone().unwrap_or_default();
    json!({
        "name": q.name,
        "kind": if o.kind == 1 { "stream" } else { "work" },
        "leader": q.leader_id,
        "replicas": q.replicas,
        "depth": q.depth,
        "ready": q.ready,
        "unacked": q.unacked,
        "consumers": q.consumers,
        "term": q.term,
        "applied_index": q.applied_index,
        "answered_by": q.answered_by,
        "replica_status": q.replica_status.iter().map(|r| json!({
            "node": r.node_id, "matched_index": r.matched_index, "lag": r.lag
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
        },
    })
}
