//! The node's metrics in Prometheus text format, served over HTTP at
//! `/metrics`: each scrape registers the live counters and reads the rest
//! from the node.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use openraft::ServerState;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::{self, ConstCounter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::{Metric, Registry};

use crate::node::Node;
use crate::raft::state_machine::GroupState;

/// A label set of one fixed label.
type Label = [(&'static str, &'static str); 1];
type QueueLabel = [(&'static str, String); 1];
/// prometheus_client's default gauge is an i64; these read u64 counts.
type UGauge = Gauge<u64, AtomicU64>;

/// The registry one scrape encodes. Names and help texts are passed as they
/// are exposed, so that the names scraped by tests, dashboards and
/// `raftq bench` can be found here as they are.
#[derive(Default)]
struct Exposition(Registry);

impl Exposition {
    fn register(&mut self, name: &str, help: &str, metric: impl Metric) {
        // prometheus_client ends every help text with a full stop itself.
        self.0
            .register(name, help.strip_suffix('.').unwrap_or(help), metric);
    }

    fn counter(&mut self, name: &str, help: &str, metric: impl Metric) {
        // ... and a counter's name with `_total`.
        let name = name.strip_suffix("_total").unwrap_or(name);
        self.register(name, help, metric);
    }
}

/// This node's alarms and the readings they judge; a reading or limit that is
/// unknown or off is left out rather than shown as 0.
fn register_alarms(e: &mut Exposition, node: &Node) {
    use crate::alarms::Resource;
    let raised = node.alarms().own();
    let alarm = Family::<Label, UGauge>::default();
    for resource in [Resource::Memory, Resource::Disk] {
        let on = raised.iter().any(|a| a.resource == resource);
        alarm
            .get_or_create(&[("resource", resource.as_str())])
            .set(u64::from(on));
    }
    e.register(
        "raftq_alarm",
        "1 while this node's memory or disk alarm is raised (publishes refused cluster-wide).",
        alarm,
    );
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
            e.register(name, help, ConstGauge::new(value));
        }
    }
}

/// Renders every metric of the node.
pub fn render(node: &Node) -> Result<String, std::fmt::Error> {
    let m = &node.metrics();
    let mut e = Exposition::default();
    for (name, help, metric) in [
        (
            "raftq_published_messages_total",
            "Messages confirmed by publishes led here.",
            &m.published_messages,
        ),
        (
            "raftq_published_batches_total",
            "Publish requests handled as leader.",
            &m.published_batches,
        ),
        (
            "raftq_delivered_messages_total",
            "Deliveries sent to consumers hosted here.",
            &m.delivered_messages,
        ),
        (
            "raftq_settled_messages_total",
            "Acks, nacks and rejects committed for consumers hosted here.",
            &m.settled_messages,
        ),
        (
            "raftq_forwarded_requests_total",
            "Requests forwarded to another node.",
            &m.forwarded_requests,
        ),
        (
            "raftq_publishes_held_for_order_total",
            "Idempotent publishes that arrived ahead of an earlier batch of their producer and waited for it.",
            &m.publishes_held_for_order,
        ),
        (
            "raftq_publish_order_timeouts_total",
            "Held publishes whose earlier batch did not arrive within the wait (then refused with a gap).",
            &m.publish_order_timeouts,
        ),
        (
            "raftq_publish_sequence_gaps_total",
            "Idempotent publishes refused because the producer's sequence has a gap.",
            &m.publish_sequence_gaps,
        ),
        (
            "raftq_reads_local_total",
            "Reads answered from the local replica.",
            &m.reads_local,
        ),
        (
            "raftq_reads_forwarded_total",
            "Reads forwarded to a node holding a replica.",
            &m.reads_forwarded,
        ),
        (
            "raftq_read_index_requests_total",
            "Read indexes fetched from a leader for linearizable reads.",
            &m.read_index_requests,
        ),
        (
            "raftq_elections_won_total",
            "Times this node became leader of a group.",
            &m.elections_won,
        ),
        (
            "raftq_shorter_log_elections_total",
            "Elections this node started at once after refusing a candidate with a shorter log while the leader was silent.",
            &m.shorter_log_elections,
        ),
        (
            "raftq_healed_queues_total",
            "Queues whose replicas this node, as metadata leader, re-placed by itself: onto nodes that joined, or off nodes down longer than heal_after_secs.",
            &m.healed_queues,
        ),
        (
            "raftq_tls_handshake_failures_total",
            "Connections dropped because their TLS handshake failed or did not finish within 10 s.",
            &m.tls_handshake_failures,
        ),
        (
            "raftq_alarms_raised_total",
            "Memory and disk alarms this node raised.",
            &m.alarms_raised,
        ),
        (
            "raftq_publishes_refused_by_alarm_total",
            "Publishes this node refused because a node of the cluster was in a memory or disk alarm.",
            &m.publishes_refused_by_alarm,
        ),
        (
            "raftq_damaged_replicas_found_total",
            "Replicas on this node whose data failed its checks (checksum, a log or vote shorter than the durability ledger saw flushed, an unreadable snapshot, a storage error while running).",
            &m.damage_found,
        ),
        (
            "raftq_replicas_rebuilt_total",
            "Damaged replicas here that their group's leader let go, discarded to be caught up afresh as learners.",
            &m.replicas_rebuilt,
        ),
    ] {
        e.counter(name, help, metric.0.clone());
    }
    register_alarms(&mut e, node);
    e.register(
        "raftq_damaged_replicas",
        "Replicas on this node now damaged or being rebuilt: they neither vote nor acknowledge.",
        ConstGauge::new(node.damage().own().len() as f64),
    );
    e.register(
        "raftq_publish_commit_seconds",
        "Time from proposing a publish to its commit.",
        m.publish_commit_latency.0.clone(),
    );
    e.register(
        "raftq_read_index_wait_seconds",
        "Time a linearizable read waited for the read index and the local apply.",
        m.read_index_wait.0.clone(),
    );
    let readers = Family::<Label, UGauge>::default();
    for (place, n) in [
        ("local", &m.stream_readers_local),
        ("relayed", &m.stream_readers_relayed),
    ] {
        readers
            .get_or_create(&[("served", place)])
            .set(n.load(Ordering::Relaxed));
    }
    e.register(
        "raftq_stream_readers",
        "Stream reads open on this node (local: served from its replica; relayed: from another node's).",
        readers,
    );
    e.counter(
        "raftq_stream_messages_served_total",
        "Messages sent to stream readers from this node's replicas.",
        m.stream_messages_served.0.clone(),
    );
    e.counter(
        "raftq_offsets_committed_total",
        "Stream consumer offset commits applied as leader here.",
        m.offsets_committed.0.clone(),
    );

    let sent = &node.pool().sent;
    let rpcs = Family::<Label, counter::Counter>::default();
    for (kind, n) in [
        ("append_entries", &sent.append_entries),
        ("vote", &sent.votes),
        ("install_snapshot", &sent.snapshots),
        ("keepalive", &sent.keepalives),
    ] {
        rpcs.get_or_create(&[("rpc", kind)])
            .inc_by(n.load(Ordering::Relaxed));
    }
    e.counter(
        "raftq_peer_rpcs_sent_total",
        "Raft RPCs sent to peers (AppendEntries includes heartbeats).",
        rpcs,
    );

    let flush = node.store().committer().stats();
    e.counter(
        "raftq_fsync_total",
        "Flushes (fsync) of the node's database.",
        ConstCounter::new(flush.flushes.load(Ordering::Relaxed)),
    );
    e.counter(
        "raftq_fsync_writes_total",
        "Writes made durable by those flushes (group commit).",
        ConstCounter::new(flush.flushed_writes.load(Ordering::Relaxed)),
    );
    e.counter(
        "raftq_fsync_seconds_total",
        "Time spent flushing.",
        ConstCounter::new(flush.flush_micros_total.load(Ordering::Relaxed) as f64 / 1e6),
    );
    e.register(
        "raftq_fsync_seconds_max",
        "Longest flush so far.",
        ConstGauge::new(flush.flush_micros_max.load(Ordering::Relaxed) as f64 / 1e6),
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
    e.register(
        "raftq_groups_led",
        "Raft groups (including metadata) this node leads.",
        ConstGauge::new(led),
    );
    e.register(
        "raftq_groups_quiesced",
        "Groups whose Raft timers are off because they are idle (led or followed here).",
        ConstGauge::new(node.failover().quiesced_count()),
    );
    if let Some((_, fields)) = rows.first() {
        for (i, (field, _)) in fields.iter().enumerate() {
            let family = Family::<QueueLabel, UGauge>::default();
            for (name, fields) in &rows {
                family
                    .get_or_create(&[("queue", name.clone())])
                    .set(fields[i].1);
            }
            e.register(
                &format!("raftq_queue_{field}"),
                &format!("Per-queue {field} as seen by this replica."),
                family,
            );
        }
    }
    if let Some((_, fields)) = counted.first() {
        for (i, (field, _)) in fields.iter().enumerate() {
            let family = Family::<QueueLabel, counter::Counter>::default();
            for (name, fields) in &counted {
                family
                    .get_or_create(&[("queue", name.clone())])
                    .inc_by(fields[i].1);
            }
            e.counter(
                &format!("raftq_queue_{field}_total"),
                &format!("Messages {field} by this node for the queue."),
                family,
            );
        }
    }
    let mut out = String::with_capacity(8192);
    prometheus_text::encode(&mut out, &e.0)?;
    Ok(out)
}

/// Serves `/metrics` until the process exits.
pub async fn serve(node: Arc<Node>, addr: SocketAddr) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let node = node.clone();
            async move {
                match render(&node) {
                    Ok(text) => (
                        axum::http::StatusCode::OK,
                        [(
                            axum::http::header::CONTENT_TYPE,
                            prometheus_text::CONTENT_TYPE,
                        )],
                        text,
                    ),
                    Err(e) => {
                        tracing::error!("cannot encode metrics: {e}");
                        (
                            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                            [(axum::http::header::CONTENT_TYPE, "text/plain")],
                            String::new(),
                        )
                    }
                }
            }
        }),
    );
    axum::serve(listener, app).await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::metrics::{Counter, Histogram};

    fn encode(e: &Exposition) -> String {
        let mut out = String::new();
        prometheus_text::encode(&mut out, &e.0).expect("encode");
        out
    }

    #[test]
    fn names_and_help_are_exposed_as_written() {
        let counted = Counter::default();
        counted.add(3);
        let mut e = Exposition::default();
        e.counter("raftq_x_total", "Things counted.", counted.0.clone());
        e.register("raftq_y", "A reading.", ConstGauge::new(7u64));
        assert_eq!(
            encode(&e),
            "# HELP raftq_x_total Things counted.\n# TYPE raftq_x_total counter\nraftq_x_total 3\n\
             # HELP raftq_y A reading.\n# TYPE raftq_y gauge\nraftq_y 7\n"
        );
    }

    #[test]
    fn latency_buckets_are_cumulative_and_whole_bounds_have_no_decimal_point() {
        let latency = Histogram::default();
        latency.observe(Duration::from_millis(1));
        latency.observe(Duration::from_secs(9));
        let mut e = Exposition::default();
        e.register("raftq_z_seconds", "Latency.", latency.0.clone());
        let out = encode(&e);
        for line in [
            "# TYPE raftq_z_seconds histogram\n",
            "raftq_z_seconds_bucket{le=\"0.0005\"} 0\n",
            "raftq_z_seconds_bucket{le=\"0.001\"} 1\n",
            "raftq_z_seconds_bucket{le=\"1\"} 1\n",
            "raftq_z_seconds_bucket{le=\"5\"} 1\n",
            "raftq_z_seconds_bucket{le=\"+Inf\"} 2\n",
            "raftq_z_seconds_count 2\n",
        ] {
            assert!(out.contains(line), "{line:?} missing from\n{out}");
        }
    }
}
