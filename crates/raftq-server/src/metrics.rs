//! Node metrics in Prometheus text format, served over HTTP at `/metrics`.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openraft::ServerState;

use crate::node::Node;
use crate::raft::state_machine::GroupState;

#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds (seconds) of the commit latency histogram buckets.
const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0,
];

/// A fixed-bucket histogram: lock-free, cheap enough for the publish path.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
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
    /// while the leader was silent (`outrun`).
    pub outrun_elections: Counter,
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
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
    );
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    gauge_header(out, name, help);
    let _ = writeln!(out, "{name} {value}");
}

/// This node's alarms and the readings they judge; a reading or limit that is
/// unknown or off is left out rather than shown as 0.
fn render_alarms(out: &mut String, node: &Node) {
    use crate::alarms::Resource;
    let raised = node.alarms().own();
    gauge_header(
        out,
        "raftq_alarm",
        "1 while this node's memory or disk alarm is raised (publishes refused cluster-wide).",
    );
    for resource in [Resource::Memory, Resource::Disk] {
        let on = raised.iter().any(|a| a.resource == resource);
        let _ = writeln!(
            out,
            "raftq_alarm{{resource=\"{}\"}} {}",
            resource.as_str(),
            u8::from(on)
        );
    }
    let (sample, limits) = node.alarms().last_sample();
    let readings = [
        (
            "raftq_resident_memory_bytes",
            "Resident memory of this node at the last alarm check.",
            sample.resident_bytes,
        ),
        (
            "raftq_memory_limit_bytes",
            "Resident memory past which the memory alarm is raised.",
            limits.and_then(|l| l.memory_bytes),
        ),
        (
            "raftq_disk_free_bytes",
            "Free space on the data dir's filesystem at the last alarm check.",
            sample.disk_free_bytes,
        ),
        (
            "raftq_disk_free_limit_bytes",
            "Free space below which the disk alarm is raised.",
            limits.and_then(|l| l.disk_free_bytes),
        ),
    ];
    for (name, help, value) in readings {
        if let Some(value) = value {
            gauge(out, name, help, value);
        }
    }
}

fn gauge_header(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
}

/// Renders every metric of the node.
pub fn render(node: &Node) -> String {
    let m = &node.metrics();
    let mut out = String::with_capacity(8192);
    counter(
        &mut out,
        "raftq_published_messages_total",
        "Messages confirmed by publishes led here.",
        m.published_messages.get(),
    );
    counter(
        &mut out,
        "raftq_published_batches_total",
        "Publish requests handled as leader.",
        m.published_batches.get(),
    );
    counter(
        &mut out,
        "raftq_delivered_messages_total",
        "Deliveries sent to consumers hosted here.",
        m.delivered_messages.get(),
    );
    counter(
        &mut out,
        "raftq_settled_messages_total",
        "Acks, nacks and rejects committed for consumers hosted here.",
        m.settled_messages.get(),
    );
    counter(
        &mut out,
        "raftq_forwarded_requests_total",
        "Requests forwarded to another node.",
        m.forwarded_requests.get(),
    );
    counter(
        &mut out,
        "raftq_publishes_held_for_order_total",
        "Idempotent publishes that arrived ahead of an earlier batch of their producer and waited for it.",
        m.publishes_held_for_order.get(),
    );
    counter(
        &mut out,
        "raftq_publish_order_timeouts_total",
        "Held publishes whose earlier batch did not arrive within the wait (then refused with a gap).",
        m.publish_order_timeouts.get(),
    );
    counter(
        &mut out,
        "raftq_publish_sequence_gaps_total",
        "Idempotent publishes refused because the producer's sequence has a gap.",
        m.publish_sequence_gaps.get(),
    );
    counter(
        &mut out,
        "raftq_reads_local_total",
        "Reads answered from the local replica.",
        m.reads_local.get(),
    );
    counter(
        &mut out,
        "raftq_reads_forwarded_total",
        "Reads forwarded to a node holding a replica.",
        m.reads_forwarded.get(),
    );
    counter(
        &mut out,
        "raftq_read_index_requests_total",
        "Read indexes fetched from a leader for linearizable reads.",
        m.read_index_requests.get(),
    );
    counter(
        &mut out,
        "raftq_elections_won_total",
        "Times this node became leader of a group.",
        m.elections_won.get(),
    );
    counter(
        &mut out,
        "raftq_outrun_elections_total",
        "Elections this node started at once after refusing a candidate with a shorter log while the leader was silent.",
        m.outrun_elections.get(),
    );
    counter(
        &mut out,
        "raftq_alarms_raised_total",
        "Memory and disk alarms this node raised.",
        m.alarms_raised.get(),
    );
    counter(
        &mut out,
        "raftq_publishes_refused_by_alarm_total",
        "Publishes this node refused because a node of the cluster was in a memory or disk alarm.",
        m.publishes_refused_by_alarm.get(),
    );
    render_alarms(&mut out, node);
    m.publish_commit_latency.render(
        &mut out,
        "raftq_publish_commit_seconds",
        "Time from proposing a publish to its commit.",
    );
    m.read_index_wait.render(
        &mut out,
        "raftq_read_index_wait_seconds",
        "Time a linearizable read waited for the read index and the local apply.",
    );
    gauge_header(
        &mut out,
        "raftq_stream_readers",
        "Stream reads open on this node (local: served from its replica; relayed: from another node's).",
    );
    for (place, n) in [
        ("local", &m.stream_readers_local),
        ("relayed", &m.stream_readers_relayed),
    ] {
        let _ = writeln!(
            out,
            "raftq_stream_readers{{served=\"{place}\"}} {}",
            n.load(Ordering::Relaxed)
        );
    }
    counter(
        &mut out,
        "raftq_stream_messages_served_total",
        "Messages sent to stream readers from this node's replicas.",
        m.stream_messages_served.get(),
    );
    counter(
        &mut out,
        "raftq_offsets_committed_total",
        "Stream consumer offset commits applied as leader here.",
        m.offsets_committed.get(),
    );

    let sent = &node.pool().sent;
    let _ = writeln!(
        out,
        "# HELP raftq_peer_rpcs_sent_total Raft RPCs sent to peers (AppendEntries includes heartbeats).\n# TYPE raftq_peer_rpcs_sent_total counter"
    );
    for (kind, n) in [
        ("append_entries", &sent.append_entries),
        ("vote", &sent.votes),
        ("install_snapshot", &sent.snapshots),
        ("keepalive", &sent.keepalives),
    ] {
        let _ = writeln!(
            out,
            "raftq_peer_rpcs_sent_total{{rpc=\"{kind}\"}} {}",
            n.load(Ordering::Relaxed)
        );
    }

    let flush = node.store().committer().stats();
    counter(
        &mut out,
        "raftq_fsync_total",
        "Flushes (fsync) of the node's database.",
        flush.flushes.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "raftq_fsync_writes_total",
        "Writes made durable by those flushes (group commit).",
        flush.flushed_writes.load(Ordering::Relaxed),
    );
    let _ = writeln!(
        out,
        "# HELP raftq_fsync_seconds_total Time spent flushing.\n# TYPE raftq_fsync_seconds_total counter\nraftq_fsync_seconds_total {}",
        flush.flush_micros_total.load(Ordering::Relaxed) as f64 / 1e6
    );
    gauge_header(&mut out, "raftq_fsync_seconds_max", "Longest flush so far.");
    let _ = writeln!(
        out,
        "raftq_fsync_seconds_max {}",
        flush.flush_micros_max.load(Ordering::Relaxed) as f64 / 1e6
    );

    let names: std::collections::HashMap<u64, String> = node
        .with_catalog(|c| c.queues().map(|q| (q.group, q.name.clone())).collect())
        .unwrap_or_default();
    let mut led = 0;
    let mut rows = Vec::new();
    let mut counted = Vec::new();
    for group in node.groups() {
        let metrics = group.raft.metrics().borrow().clone();
        let is_leader = metrics.state == ServerState::Leader;
        led += u64::from(is_leader);
        let Some(name) = names.get(&group.id) else {
            continue;
        };
        counted.push((name.clone(), group.counters.fields()));
        let applied = group.shared.read();
        let (depth, ready, unacked, consumers) = match &applied.state {
            GroupState::Work(q) => (q.depth(), q.ready(), q.unacked(), q.consumers() as u64),
            // Stream readers are not attached consumers: nothing is unacked.
            GroupState::Stream(s) => (s.len(), s.len(), 0, 0),
            GroupState::Catalog(_) => continue,
        };
        let max_lag = if is_leader {
            let last = metrics.last_log_index.unwrap_or(0);
            metrics
                .replication
                .as_ref()
                .map(|r| {
                    r.values()
                        .map(|m| last.saturating_sub(m.map(|l| l.index).unwrap_or(0)))
                        .max()
                        .unwrap_or(0)
                })
                .unwrap_or(0)
        } else {
            0
        };
        rows.push((
            name.clone(),
            [
                ("depth", depth),
                ("ready", ready),
                ("unacked", unacked),
                ("consumers", consumers),
                ("leader_id", metrics.current_leader.unwrap_or(0)),
                ("term", metrics.current_term),
                (
                    "applied_index",
                    applied.last_applied.map(|l| l.index).unwrap_or(0),
                ),
                ("is_leader", u64::from(is_leader)),
                ("replica_lag_max", max_lag),
            ],
        ));
    }
    gauge_header(
        &mut out,
        "raftq_groups_led",
        "Raft groups (including metadata) this node leads.",
    );
    let _ = writeln!(out, "raftq_groups_led {led}");
    gauge_header(
        &mut out,
        "raftq_groups_quiesced",
        "Groups whose Raft timers are off because they are idle (led or followed here).",
    );
    let _ = writeln!(
        out,
        "raftq_groups_quiesced {}",
        node.failover().quiesced_count()
    );
    if let Some((_, fields)) = rows.first() {
        for (i, (field, _)) in fields.iter().enumerate() {
            let metric = format!("raftq_queue_{field}");
            gauge_header(
                &mut out,
                &metric,
                &format!("Per-queue {field} as seen by this replica."),
            );
            for (name, fields) in &rows {
                let _ = writeln!(out, "{metric}{{queue=\"{name}\"}} {}", fields[i].1);
            }
        }
    }
    if let Some((_, fields)) = counted.first() {
        for (i, (field, _)) in fields.iter().enumerate() {
            let metric = format!("raftq_queue_{field}_total");
            let _ = writeln!(
                out,
                "# HELP {metric} Messages {field} by this node for the queue.\n# TYPE {metric} counter"
            );
            for (name, fields) in &counted {
                let _ = writeln!(out, "{metric}{{queue=\"{name}\"}} {}", fields[i].1);
            }
        }
    }
    out
}

/// Serves `/metrics` until the process exits.
pub async fn serve(node: Arc<Node>, addr: SocketAddr) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let node = node.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4",
                    )],
                    render(&node),
                )
            }
        }),
    );
    axum::serve(listener, app).await
}
