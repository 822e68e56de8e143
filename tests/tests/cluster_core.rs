//! The cluster core over real `raftqd` processes. Each test is named after
//! the guarantee of README "Guarantees" it proves, runs its own
//! cluster, and prints the durations it measures without asserting on them.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use raftq_proto::v1::{
    Consistency, DeleteQueueRequest, PublishMessage, PublishRequest, QueueOptions, ReadRequest,
    SettleOutcome,
};
use raftq_tests::client;
use raftq_tests::cluster::Cluster;
use raftq_tests::consumer::TestConsumer;
use raftq_tests::publish::{bodies, Producer};
use tonic::Code;

/// (offset, payload) pairs, the unit every check compares.
type Confirmed = BTreeSet<(u64, Vec<u8>)>;

fn as_set(pairs: &[(u64, Bytes)]) -> Confirmed {
    pairs.iter().map(|(o, p)| (*o, p.to_vec())).collect()
}

fn show(pairs: &[&(u64, Vec<u8>)]) -> Vec<String> {
    pairs
        .iter()
        .map(|(o, p)| format!("{o}:{}", String::from_utf8_lossy(p)))
        .collect()
}

/// Design guarantees 1 and 2: 10,000 messages confirmed through a follower, the
/// leader SIGKILLed, publishing resumed through the survivors, the killed node
/// restarted and caught up, then every confirmed message consumed exactly at the
/// offset it was confirmed with, and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_publish_survives_leader_kill_and_restarted_node_catches_up() {
    let mut cluster = Cluster::start(3).await;
    let info = cluster
        .create_queue(
            "orders",
            QueueOptions {
                replicas: 3,
                ..Default::default()
            },
        )
        .await;
    assert_eq!(info.replicas.len(), 3, "queue placed on 3 replicas");
    let leader = info.leader_id;
    let follower = cluster.others(&[leader])[0];

    // Writes through a follower are forwarded to the leader.
    let mut producer = Producer::new("orders");
    let started = Instant::now();
    let mut confirmed = producer
        .publish_all(&cluster.addr(follower), "orders", &bodies("m", 0..10_000))
        .await;
    eprintln!(
        "10,000 messages confirmed through follower {follower} in {:?}",
        started.elapsed()
    );

    cluster.kill(leader);
    let killed_at = Instant::now();
    let (new_leader, election) = cluster
        .wait_leader_except("orders", &[leader], Duration::from_secs(15))
        .await;
    eprintln!("new leader {new_leader} elected {election:?} after SIGKILL of leader {leader}");
    confirmed.extend(
        producer
            .publish_all(
                &cluster.addr(follower),
                "orders",
                &bodies("m", 10_000..10_100),
            )
            .await,
    );
    eprintln!(
        "first batch after the kill confirmed {:?} after it",
        killed_at.elapsed()
    );
    confirmed.extend(
        producer
            .publish_all(
                &cluster.addr(follower),
                "orders",
                &bodies("m", 10_100..12_000),
            )
            .await,
    );

    cluster.restart(leader);
    let took = cluster
        .wait_caught_up(leader, "orders", Duration::from_secs(60))
        .await;
    eprintln!("restarted node {leader} caught up in {took:?}");

    let expected = as_set(&confirmed);
    assert_eq!(
        expected.len(),
        12_000,
        "every confirmed message has an offset of its own"
    );
    let drained = cluster
        .consume_all(follower, "orders", expected.len(), Duration::from_secs(120))
        .await;
    let delivered = drained.delivered_set();
    let missing: Vec<_> = expected.difference(&delivered).collect();
    assert!(
        missing.is_empty(),
        "{} confirmed messages never delivered, e.g. {:?}",
        missing.len(),
        show(&missing[..missing.len().min(5)])
    );
    let unexpected = drained.unexpected(&expected);
    assert!(
        unexpected.is_empty(),
        "{} deliveries nobody confirmed (or at another offset), e.g. offset {} {:?}",
        unexpected.len(),
        unexpected[0].offset,
        String::from_utf8_lossy(&unexpected[0].payload)
    );
}

/// Design guarantees 1 and 3: after SIGKILL of every node and a restart, every
/// confirmed unacked message (including ones out to a consumer at the time) is
/// still there, and no acked one comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_cluster_restart_keeps_unacked_and_forgets_acked() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster
        .create_queue("jobs", QueueOptions::default())
        .await
        .leader_id;
    let confirmed = as_set(
        &Producer::new("jobs")
            .publish_all(&cluster.addr(1), "jobs", &bodies("j", 0..2_000))
            .await,
    );

    // Ack exactly 500 deliveries, then hold 100 more unacked across the restart.
    let mut consumer = TestConsumer::subscribe(&cluster.addr(leader), "jobs", 100)
        .await
        .expect("subscribe on the leader");
    let mut acked = Confirmed::new();
    let mut held = Confirmed::new();
    while acked.len() < 500 || held.len() < 100 {
        let d = consumer
            .next_delivery(Duration::from_secs(10))
            .await
            .expect("consume stream")
            .unwrap_or_else(|| {
                panic!(
                    "no delivery within 10 s ({} acked, {} held)",
                    acked.len(),
                    held.len()
                )
            });
        if acked.len() < 500 {
            let confirm = consumer
                .settle(vec![d.offset], SettleOutcome::Ack)
                .await
                .expect("ack");
            assert_eq!(
                confirm.settled,
                vec![d.offset],
                "ack of {} confirmed",
                d.offset
            );
            acked.insert((d.offset, d.payload.to_vec()));
        } else {
            held.insert((d.offset, d.payload.to_vec()));
        }
    }

    cluster.kill_all();
    drop(consumer);
    cluster.start_all();
    cluster.wait_ready(Duration::from_secs(30)).await;
    let leader = cluster.leader_of("jobs").await;

    let expected: Confirmed = confirmed.difference(&acked).cloned().collect();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let info = cluster.queue_info(leader, "jobs").await;
        match info {
            Ok(i) if i.depth == expected.len() as u64 => break,
            other if Instant::now() > deadline => panic!(
                "depth after restart: expected {} (2,000 confirmed - 500 acked), got {:?}",
                expected.len(),
                other.map(|i| i.depth)
            ),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }

    let drained = cluster
        .consume_all(leader, "jobs", expected.len(), Duration::from_secs(90))
        .await;
    let came_back: Vec<_> = drained
        .deliveries
        .iter()
        .filter(|d| acked.contains(&(d.offset, d.payload.to_vec())))
        .map(|d| d.offset)
        .collect();
    assert!(
        came_back.is_empty(),
        "acked messages delivered again after the restart: offsets {came_back:?}"
    );
    let got = drained.delivered_set();
    let missing: Vec<_> = expected.difference(&got).collect();
    assert!(
        missing.is_empty(),
        "{} confirmed unacked messages lost in the restart, e.g. {:?}",
        missing.len(),
        show(&missing[..missing.len().min(5)])
    );
    assert!(
        drained.unexpected(&confirmed).is_empty(),
        "a delivery that was never confirmed"
    );
    // Held messages were out to a consumer that is gone: they come back marked.
    let not_marked: Vec<u64> = drained
        .deliveries
        .iter()
        .filter(|d| held.contains(&(d.offset, d.payload.to_vec())) && !d.redelivered)
        .map(|d| d.offset)
        .collect();
    assert!(
        not_marked.is_empty(),
        "messages delivered before the restart came back without redelivered=true: {:?}",
        &not_marked[..not_marked.len().min(10)]
    );
}

/// Design guarantee 1 at 5 nodes: two nodes SIGKILLed at the same instant, one of
/// them the leader, and a queue replicated on all five stays writable and readable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_survive_two_killed_at_once() {
    let mut cluster = Cluster::start(5).await;
    let info = cluster
        .create_queue(
            "five",
            QueueOptions {
                replicas_all: true,
                ..Default::default()
            },
        )
        .await;
    assert_eq!(info.replicas.len(), 5, "replicas=all places on every node");
    let leader = info.leader_id;
    let other = cluster.others(&[leader])[0];
    let via = cluster.others(&[leader, other])[0];

    let mut producer = Producer::new("five");
    let mut confirmed = producer
        .publish_all(&cluster.addr(via), "five", &bodies("f", 0..1_000))
        .await;

    cluster.kill_many(&[leader, other]);
    let (new_leader, election) = cluster
        .wait_leader_except("five", &[leader, other], Duration::from_secs(15))
        .await;
    eprintln!("new leader {new_leader} {election:?} after SIGKILL of nodes {leader} and {other}");
    confirmed.extend(
        producer
            .publish_all(&cluster.addr(via), "five", &bodies("f", 1_000..2_000))
            .await,
    );

    let expected = as_set(&confirmed);
    let drained = cluster
        .consume_all(via, "five", expected.len(), Duration::from_secs(90))
        .await;
    let delivered = drained.delivered_set();
    let missing: Vec<_> = expected.difference(&delivered).collect();
    assert!(
        missing.is_empty(),
        "with 3 of 5 nodes up, {} confirmed messages were not consumable, e.g. {:?}",
        missing.len(),
        show(&missing[..missing.len().min(5)])
    );
    assert!(
        drained.unexpected(&expected).is_empty(),
        "a delivery that was never confirmed"
    );
}

/// openraft logs this line (info, pinned openraft 0.9.25) when a follower installs
/// a snapshot sent by its leader; the node's default filter hides it.
const SNAPSHOT_INSTALL_LINE: &str = "install_full_snapshot";
const SNAPSHOT_LOG_FILTER: &str = "info,openraft=error,\
    openraft::engine::handler::following_handler=info,sled=warn,h2=warn,tower=warn";

/// "ha-sync-mode = automatic": a replica down through many writes (enough for
/// several snapshots and a log purge) rejoins from a snapshot and then serves
/// STALE_OK reads identical to the leader's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_down_through_snapshots_rejoins_by_snapshot_install() {
    let mut cluster = Cluster::builder(3)
        .args(["--snapshot-every", "200", "--snapshot-keep-logs", "50"])
        .log_filter(SNAPSHOT_LOG_FILTER)
        .start()
        .await;
    let leader = cluster
        .create_queue("snap", QueueOptions::default())
        .await
        .leader_id;
    let lagger = cluster.others(&[leader])[0];
    let via = cluster.others(&[leader, lagger])[0];
    let mut producer = Producer::new("snap");
    producer
        .publish_all(&cluster.addr(via), "snap", &bodies("s", 0..50))
        .await;

    cluster.kill(lagger);
    let log_before = cluster.node(lagger).log().len();
    // 700 entries of 5 messages: three snapshots at every 200, and the log below
    // the last one purged far past anything the lagger has.
    let started = Instant::now();
    for b in 0..700u64 {
        let batch = bodies("s", 50 + b * 5..50 + (b + 1) * 5);
        producer
            .publish(&cluster.addr(via), "snap", &batch)
            .await
            .unwrap_or_else(|e| panic!("entry {b} while node {lagger} is down: {e}"));
    }
    eprintln!(
        "700 entries written with node {lagger} down in {:?}",
        started.elapsed()
    );

    cluster.restart(lagger);
    let took = cluster
        .wait_caught_up(lagger, "snap", Duration::from_secs(60))
        .await;
    eprintln!("node {lagger} caught up in {took:?}");
    let since_restart = cluster.node(lagger).log()[log_before..].to_string();
    assert!(
        since_restart.contains(SNAPSHOT_INSTALL_LINE),
        "node {lagger} caught up without installing a snapshot (no {SNAPSHOT_INSTALL_LINE:?} \
         in its log since the restart): the leader kept the log it was missing, so this test \
         did not exercise snapshot install"
    );

    let leader = cluster.leader_of("snap").await;
    let on_leader = cluster.read_all_stale(leader, "snap").await;
    let on_lagger = cluster.read_all_stale(lagger, "snap").await;
    assert_eq!(on_leader.len(), 3_550, "every message on the leader");
    assert_eq!(
        on_lagger.len(),
        on_leader.len(),
        "node {lagger} stores as many messages as leader {leader}"
    );
    if let Some((a, b)) = on_lagger.iter().zip(&on_leader).find(|(a, b)| a != b) {
        panic!("node {lagger} differs from leader {leader}: {a:?} vs {b:?}");
    }
}

/// Design guarantee 6: a SIGSTOPped leader (cut off from the majority, sockets
/// open) confirms nothing while stopped; the majority elects and keeps writing;
/// after SIGCONT the old leader follows and every replica holds the same messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minority_leader_cannot_confirm_and_majority_continues() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster
        .create_queue("split", QueueOptions::default())
        .await
        .leader_id;
    let majority = cluster.others(&[leader]);
    let mut producer = Producer::new("split");
    let mut confirmed = producer
        .publish_all(&cluster.addr(leader), "split", &bodies("a", 0..500))
        .await;

    // Connected while the leader is healthy, as a real client would be; the
    // request is sent only once it is stopped.
    let mut direct_client = {
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{}", cluster.addr(leader)))
                .expect("endpoint")
                .timeout(Duration::from_secs(60))
                .connect()
                .await
                .expect("connect to the leader");
        raftq_proto::v1::queue_service_client::QueueServiceClient::new(channel)
    };
    cluster.stop(leader);
    let stopped_at = Instant::now();
    let isolated = Bytes::from_static(b"sent-to-stopped-leader");
    let direct = tokio::spawn({
        let isolated = isolated.clone();
        async move {
            direct_client
                .publish(PublishRequest {
                    key: None,
                    queue: "split".into(),
                    messages: vec![PublishMessage {
                        payload: isolated,
                        headers: Default::default(),
                    }],
                    producer_id: "direct".into(),
                    sequence: 1,
                })
                .await
                .map(|r| r.into_inner())
        }
    });

    let (new_leader, election) = cluster
        .wait_leader_except("split", &[leader], Duration::from_secs(15))
        .await;
    eprintln!("majority elected {new_leader} {election:?} after SIGSTOP of leader {leader}");
    confirmed.extend(
        producer
            .publish_all(&cluster.addr(majority[0]), "split", &bodies("b", 0..500))
            .await,
    );
    eprintln!(
        "majority confirmed 500 more {:?} after the stop",
        stopped_at.elapsed()
    );
    assert!(
        !direct.is_finished(),
        "the stopped leader answered a publish: {:?}",
        direct.await
    );

    cluster.cont(leader);
    // After SIGCONT the request may be refused, or forwarded to the new leader
    // and confirmed there; either way a confirm must mean stored everywhere.
    let outcome = tokio::time::timeout(Duration::from_secs(60), direct)
        .await
        .expect("publish sent to the stopped leader answered within 60 s of SIGCONT")
        .expect("publish task");
    eprintln!(
        "publish sent to the stopped leader, after SIGCONT: {:?}",
        outcome.as_ref().map(|r| &r.offsets).map_err(|s| s.code())
    );
    if let Ok(resp) = &outcome {
        assert_eq!(resp.offsets.len(), 1);
        assert_ne!(
            resp.leader_id, leader,
            "confirmed by the stale leader itself"
        );
        confirmed.push((resp.offsets[0], isolated.clone()));
    }

    cluster
        .wait_caught_up(leader, "split", Duration::from_secs(30))
        .await;
    // The old leader must learn the new term and follow: every node, the old
    // leader included, names the same leader (bounded wait for a heartbeat).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut views = Vec::new();
        for id in cluster.ids() {
            views.push((
                id,
                cluster.queue_info(id, "split").await.map(|i| i.leader_id),
            ));
        }
        let agreed = views
            .iter()
            .all(|(_, v)| matches!(v, Ok(l) if *l != 0 && views[0].1.as_ref().ok() == Some(l)));
        if agreed {
            let now = *views[0].1.as_ref().expect("agreed leader");
            assert_ne!(
                now, leader,
                "old leader {leader} leads again right after SIGCONT (views {views:?})"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "nodes disagree on the leader 15 s after SIGCONT: {views:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let expected = as_set(&confirmed);
    let reference = cluster.read_all_stale(new_leader, "split").await;
    for id in cluster.ids() {
        let got = cluster.read_all_stale(id, "split").await;
        assert_eq!(
            got, reference,
            "replica on node {id} differs from node {new_leader}"
        );
    }
    let stored: Confirmed = reference
        .iter()
        .map(|m| (m.offset, m.payload.to_vec()))
        .collect();
    let missing: Vec<_> = expected.difference(&stored).collect();
    assert!(
        missing.is_empty(),
        "confirmed messages lost, e.g. {:?}",
        show(&missing[..missing.len().min(5)])
    );
    // Anything stored beyond the confirmed ones can only be the unanswered publish.
    let extra: Vec<_> = stored
        .difference(&expected)
        .filter(|(_, p)| p.as_slice() != isolated.as_ref())
        .collect();
    assert!(
        extra.is_empty(),
        "stored but never published: {:?}",
        show(&extra)
    );
}

/// Design guarantee 7: malformed requests, unknown queues, invalid names and
/// options, and oversize messages get a precise code and change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_requests_get_precise_codes_and_change_nothing() {
    let cluster = Cluster::start(3).await;
    let node = 2;
    let addr = cluster.addr(node);
    cluster.create_queue("valid", QueueOptions::default()).await;
    Producer::new("valid")
        .publish_all(&addr, "valid", &bodies("v", 0..3))
        .await;

    let code = |r: Result<raftq_proto::v1::QueueInfo, tonic::Status>| r.err().map(|s| s.code());
    let create = |name: &'static str, options: QueueOptions| {
        let addr = addr.clone();
        async move { code(client::create_queue(&addr, name, options).await) }
    };
    assert_eq!(
        create("valid", QueueOptions::default()).await,
        Some(Code::AlreadyExists),
        "duplicate create"
    );
    assert_eq!(
        create("", QueueOptions::default()).await,
        Some(Code::InvalidArgument),
        "empty name"
    );
    assert_eq!(
        create("bad name!", QueueOptions::default()).await,
        Some(Code::InvalidArgument),
        "name with a space and '!'"
    );
    assert_eq!(
        create(
            "x",
            QueueOptions {
                max_message_bytes: 1 << 30,
                ..Default::default()
            }
        )
        .await,
        Some(Code::InvalidArgument),
        "max_message_bytes of 1 GiB"
    );
    assert_eq!(
        code(client::get_queue(&addr, "missing").await),
        Some(Code::NotFound),
        "GetQueue of an unknown queue"
    );
    let err = cluster
        .admin(node)
        .await
        .delete_queue(DeleteQueueRequest {
            name: "missing".into(),
        })
        .await
        .expect_err("delete of an unknown queue");
    assert_eq!(
        err.code(),
        Code::NotFound,
        "DeleteQueue of an unknown queue"
    );

    let mut q = cluster.queue(node).await;
    let publish = |queue: &str, payloads: Vec<Vec<u8>>| PublishRequest {
        key: None,
        queue: queue.into(),
        messages: payloads
            .into_iter()
            .map(|p| PublishMessage {
                payload: p.into(),
                headers: Default::default(),
            })
            .collect(),
        producer_id: String::new(),
        sequence: 0,
    };
    let cases = [
        (
            "publish to an unknown queue",
            publish("missing", vec![b"x".to_vec()]),
            Code::NotFound,
        ),
        (
            "publish with an empty queue name",
            publish("", vec![b"x".to_vec()]),
            Code::InvalidArgument,
        ),
        // Default max_message_bytes is 1 MiB: one byte over it.
        (
            "message of 1 MiB + 1",
            publish("valid", vec![vec![0u8; (1 << 20) + 1]]),
            Code::InvalidArgument,
        ),
        (
            "batch with one oversize message",
            publish("valid", vec![b"ok".to_vec(), vec![0u8; (1 << 20) + 1]]),
            Code::InvalidArgument,
        ),
        (
            "empty batch",
            publish("valid", vec![]),
            Code::InvalidArgument,
        ),
    ];
    for (what, request, expected) in cases {
        let err = q.publish(request).await.expect_err(what);
        assert_eq!(err.code(), expected, "{what}: {}", err.message());
    }
    let err = q
        .read(ReadRequest {
            queue: "missing".into(),
            consistency: Consistency::StaleOk as i32,
            ..Default::default()
        })
        .await
        .expect_err("read of an unknown queue");
    assert_eq!(err.code(), Code::NotFound, "Read of an unknown queue");
    let err = q
        .read(ReadRequest {
            queue: "valid".into(),
            consistency: 7,
            ..Default::default()
        })
        .await
        .expect_err("bad consistency");
    assert_eq!(err.code(), Code::InvalidArgument, "Read with consistency 7");
    let err = TestConsumer::subscribe(&addr, "missing", 10)
        .await
        .err()
        .expect("subscribe to an unknown queue fails");
    assert_eq!(err.code(), Code::NotFound, "Subscribe to an unknown queue");

    let info = cluster.queue_info(node, "valid").await.expect("GetQueue");
    assert_eq!(info.depth, 3, "rejected requests changed nothing");
    let status = client::cluster_status(&addr).await.expect("ClusterStatus");
    let names: Vec<_> = status.queues.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, ["valid"], "no queue was created by invalid requests");
}
