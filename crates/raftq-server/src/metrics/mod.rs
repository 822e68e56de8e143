//! Node metrics: the counters and histograms the node updates as it works
//! ([`NodeMetrics`], [`QueueCounters`]), and their Prometheus exposition.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::metrics::counter;
use prometheus_client::metrics::histogram;

pub mod exposition;

#[derive(Debug, Default)]
pub struct Counter(counter::Counter);

impl Counter {
    pub fn inc(&self) {
        self.0.inc();
    }
    pub fn add(&self, n: u64) {
        self.0.inc_by(n);
    }
    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

/// Upper bounds (seconds) of the latency histogram buckets.
const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0,
];

/// A latency histogram over `LATENCY_BUCKETS`, observed in seconds.
#[derive(Debug)]
pub struct Histogram(histogram::Histogram);

impl Default for Histogram {
    fn default() -> Self {
        Histogram(histogram::Histogram::new(LATENCY_BUCKETS))
    }
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        self.0.observe(d.as_secs_f64());
    }
}

/// What this node did for one queue, as counters: Prometheus turns them into
/// per-queue publish/deliver/ack rates (summed over nodes: only the leader
/// counts publishes and settles, deliveries count where the consumer is).
#[derive(Debug, Default)]
pub struct QueueCounters {
    pub published: Counter,
    pub delivered: Counter,
    pub acked: Counter,
    pub requeued: Counter,
    pub rejected: Counter,
}

impl QueueCounters {
    fn fields(&self) -> [(&'static str, u64); 5] {
        [
            ("published", self.published.get()),
            ("delivered", self.delivered.get()),
            ("acked", self.acked.get()),
            ("requeued", self.requeued.get()),
            ("rejected", self.rejected.get()),
        ]
    }
}

#[derive(Debug, Default)]
pub struct NodeMetrics {
    pub published_batches: Counter,
    pub published_messages: Counter,
    pub delivered_messages: Counter,
    pub settled_messages: Counter,
    pub forwarded_requests: Counter,
    /// Idempotent publishes that reached the leader ahead of an earlier batch
    /// of their producer and waited for it (`proposal_order`).
    pub publishes_held_for_order: Counter,
    /// ... of which the earlier batch did not come within the wait.
    pub publish_order_timeouts: Counter,
    /// Idempotent publishes refused with a sequence gap.
    pub publish_sequence_gaps: Counter,
    pub reads_local: Counter,
    pub reads_forwarded: Counter,
    pub read_index_requests: Counter,
    pub elections_won: Counter,
    /// Elections started at once after refusing a shorter-log candidate
    /// while the leader was silent (see `failover::vote`).
    pub shorter_log_elections: Counter,
    /// Queues whose replicas the metadata leader re-placed by itself
    /// (`self_healing`).
    pub healed_queues: Counter,
    /// Connections dropped because their TLS handshake failed or stalled
    /// (plaintext clients, certificates of another CA, port scanners).
    pub tls_handshake_failures: Counter,
    pub publish_commit_latency: Histogram,
    /// Time a consistent read waited: read index from the leader, then the
    /// local replica applying up to it.
    pub read_index_wait: Histogram,
    /// Stream reads open on this node, served locally or relayed.
    pub stream_readers_local: AtomicU64,
    pub stream_readers_relayed: AtomicU64,
    /// Messages sent to stream readers from the local replica.
    pub stream_messages_served: Counter,
    pub offsets_committed: Counter,
    /// Memory and disk alarms this node raised.
    pub alarms_raised: Counter,
    /// Publishes refused here because a node was in alarm.
    pub publishes_refused_by_alarm: Counter,
    /// Replicas here found damaged (see `repair`).
    pub damage_found: Counter,
    /// Damaged replicas discarded to be caught up afresh.
    pub replicas_rebuilt: Counter,
}
