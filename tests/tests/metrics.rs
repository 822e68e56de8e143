//! A live node's /metrics moves with the work it does.

use std::collections::BTreeMap;
use std::time::Duration;

use raftq_proto::v1::QueueOptions;
use raftq_tests::client::{self, payloads, publish_retrying};
use raftq_tests::cluster::Cluster;
use raftq_tests::consumer::drain;
use raftq_tests::scrape::scrape;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_of_a_live_node_move_with_publish_and_consume() {
    let cluster = Cluster::start(3).await;
    let addrs: Vec<String> = cluster
        .ids()
        .into_iter()
        .map(|id| cluster.addr(id))
        .collect();
    let leader = cluster
        .create_queue("m", QueueOptions::default())
        .await
        .leader_id;
    let metrics_addr = cluster.node(leader).metrics_addr.clone();
    let before = scrape(&metrics_addr).await;

    for b in 0..10u64 {
        publish_retrying(
            &addrs,
            "m",
            "p",
            1 + b * 50,
            payloads("m", b * 50..(b + 1) * 50),
            Duration::from_secs(10),
        )
        .await
        .expect("publish");
    }
    let mid = scrape(&metrics_addr).await;
    let get = |m: &BTreeMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(0.0);
    assert_eq!(
        get(&mid, "raftq_published_messages_total")
            - get(&before, "raftq_published_messages_total"),
        500.0
    );
    assert!(
        get(&mid, "raftq_fsync_total") > get(&before, "raftq_fsync_total"),
        "fsyncs counted"
    );
    assert!(
        get(&mid, "raftq_publish_commit_seconds_count") >= 10.0,
        "commit latency histogram filled"
    );
    assert_eq!(get(&mid, "raftq_queue_depth{queue=\"m\"}"), 500.0);
    assert_eq!(
        get(&mid, "raftq_queue_published_total{queue=\"m\"}"),
        500.0,
        "per-queue publish counter (the source of the publish rate)"
    );
    assert_eq!(get(&mid, "raftq_queue_is_leader{queue=\"m\"}"), 1.0);
    assert_eq!(
        get(&mid, "raftq_queue_leader_id{queue=\"m\"}"),
        leader as f64
    );
    assert!(get(&mid, "raftq_groups_led") >= 1.0);

    let drained = drain(&addrs, "m", 500, Duration::from_secs(30)).await;
    assert_eq!(drained.acked.len(), 500);
    let after = scrape(&metrics_addr).await;
    assert_eq!(get(&after, "raftq_queue_depth{queue=\"m\"}"), 0.0);
    assert!(
        get(&after, "raftq_delivered_messages_total") >= 500.0,
        "deliveries counted on the leader"
    );
    assert!(
        get(&after, "raftq_settled_messages_total") >= 500.0,
        "acks counted on the leader"
    );
    // Per-queue rates: the consumer may have been served by any node (sessions
    // live on the leader), so sum over nodes.
    let mut delivered = 0.0;
    let mut acked = 0.0;
    for id in cluster.ids() {
        let m = scrape(&cluster.node(id).metrics_addr).await;
        delivered += get(&m, "raftq_queue_delivered_total{queue=\"m\"}");
        acked += get(&m, "raftq_queue_acked_total{queue=\"m\"}");
    }
    assert!(delivered >= 500.0, "per-queue deliveries: {delivered}");
    assert_eq!(acked, 500.0, "per-queue acks");

    // A follower reports the same queue from its replica.
    let follower = cluster
        .ids()
        .into_iter()
        .find(|id| *id != leader)
        .expect("follower");
    let f = scrape(&cluster.node(follower).metrics_addr).await;
    assert_eq!(get(&f, "raftq_queue_is_leader{queue=\"m\"}"), 0.0);
    assert_eq!(get(&f, "raftq_queue_leader_id{queue=\"m\"}"), leader as f64);
}

/// Every metric the Grafana dashboard plots is one a node really exports, so
/// the dashboard cannot silently rot when a metric is renamed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_dashboard_plots_only_exported_metrics() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/grafana/raftq-dashboard.json"
    );
    let dashboard = std::fs::read_to_string(path).expect("dashboard file");
    let mut wanted: Vec<String> = Vec::new();
    let mut rest = dashboard.as_str();
    while let Some(i) = rest.find("raftq_") {
        let name: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[i + name.len()..];
        if !wanted.contains(&name) {
            wanted.push(name);
        }
    }
    assert!(wanted.len() > 10, "dashboard metrics found: {wanted:?}");

    let cluster = Cluster::start(3).await;
    let leader = cluster
        .create_queue("g", QueueOptions::default())
        .await
        .leader_id;
    let exported: Vec<String> = scrape(&cluster.node(leader).metrics_addr)
        .await
        .into_keys()
        .map(|k| k.split('{').next().unwrap_or_default().to_string())
        .collect();
    for name in wanted.iter().filter(|n| *n != "raftq_") {
        assert!(
            exported.iter().any(|e| e == name),
            "dashboard plots {name}, which no node exports"
        );
    }
}

/// Reads show up where they are served. A linearizable read on a
/// follower counts a local read, a read-index request and a read-index wait;
/// a read through a node without a replica counts as forwarded there; an open
/// stream read is a local stream reader on the follower serving it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_metrics_move_where_reads_are_served() {
    use raftq_proto::v1::{
        stream_start, Consistency, QueueKind, ReadRequest, ReadStreamRequest, StreamStart,
    };
    let cluster = Cluster::start(3).await;
    let info = cluster
        .create_queue(
            "reads",
            QueueOptions {
                kind: QueueKind::Stream as i32,
                replicas: 2,
                ..Default::default()
            },
        )
        .await;
    let follower = *info
        .replicas
        .iter()
        .find(|r| **r != info.leader_id)
        .expect("a follower");
    let outsider = cluster.others(&info.replicas)[0];
    cluster
        .publish_all(info.leader_id, "reads", &[bytes::Bytes::from_static(b"x")])
        .await;
    let get = |m: &BTreeMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(0.0);
    let follower_metrics = cluster.node(follower).metrics_addr.clone();
    let outsider_metrics = cluster.node(outsider).metrics_addr.clone();
    let (f0, o0) = (
        scrape(&follower_metrics).await,
        scrape(&outsider_metrics).await,
    );

    let read = |id: u64| {
        let addr = cluster.addr(id);
        async move {
            client::queue(&addr)
                .await
                .expect("client")
                .read(ReadRequest {
                    queue: "reads".into(),
                    from_offset: 0,
                    count: 10,
                    consistency: Consistency::Linearizable as i32,
                    max_lag: 0,
                })
                .await
                .expect("read")
                .into_inner()
        }
    };
    assert_eq!(read(follower).await.node_id, follower);
    let forwarded_to = read(outsider).await.node_id;
    assert!(
        info.replicas.contains(&forwarded_to),
        "answered by a replica"
    );
    let mut stream = client::queue(&cluster.addr(follower))
        .await
        .expect("client")
        .read_stream(ReadStreamRequest {
            queue: "reads".into(),
            start: Some(StreamStart {
                position: Some(stream_start::Position::First(true)),
            }),
            ..Default::default()
        })
        .await
        .expect("read stream")
        .into_inner();
    let first = stream.message().await.expect("stream").expect("a response");
    assert_eq!(first.messages.len(), 1);

    let (f1, o1) = (
        scrape(&follower_metrics).await,
        scrape(&outsider_metrics).await,
    );
    let delta =
        |a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>, k: &str| get(b, k) - get(a, k);
    // The follower served its own read and the stream's linearizable start
    // (and the outsider's read if that went to it), each after a read index.
    let served_here = if forwarded_to == follower { 3.0 } else { 2.0 };
    assert_eq!(delta(&f0, &f1, "raftq_reads_local_total"), served_here);
    assert_eq!(
        delta(&f0, &f1, "raftq_read_index_requests_total"),
        served_here
    );
    assert_eq!(
        delta(&f0, &f1, "raftq_read_index_wait_seconds_count"),
        served_here
    );
    assert_eq!(get(&f1, "raftq_stream_readers{served=\"local\"}"), 1.0);
    assert!(delta(&f0, &f1, "raftq_stream_messages_served_total") >= 1.0);
    assert_eq!(delta(&o0, &o1, "raftq_reads_forwarded_total"), 1.0);
    assert_eq!(delta(&o0, &o1, "raftq_reads_local_total"), 0.0);
    drop(stream);
}
