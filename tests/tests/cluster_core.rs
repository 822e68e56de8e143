//! Issue 2 acceptance: the cluster core over real `raftqd` processes.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use raftq_proto::v1::{QueueOptions, ReadRequest};
use raftq_tests::client::{self, payloads, publish_retrying, wait_leader};
use raftq_tests::cluster::Cluster;
use raftq_tests::consumer::drain;
use tonic::Code;

const BATCH: u64 = 100;

fn addrs(cluster: &Cluster, ids: &[u64]) -> Vec<String> {
    ids.iter().map(|id| cluster.addr(*id)).collect()
}

/// Publishes `batches` idempotent batches of BATCH messages; returns confirmed payloads.
async fn publish_batches(
    via: &[String],
    queue: &str,
    producer: &str,
    first_batch: u64,
    batches: u64,
) -> BTreeSet<Vec<u8>> {
    let mut confirmed = BTreeSet::new();
    for b in first_batch..first_batch + batches {
        let msgs = payloads(&format!("{producer}-"), b * BATCH..(b + 1) * BATCH);
        let seq = 1 + b * BATCH;
        publish_retrying(
            via,
            queue,
            producer,
            seq,
            msgs.clone(),
            Duration::from_secs(30),
        )
        .await
        .unwrap_or_else(|e| panic!("batch {b} not confirmed: {e}"));
        confirmed.extend(msgs.into_iter().map(|m| m.payload.to_vec()));
    }
    confirmed
}

async fn applied_index(addr: &str, queue: &str) -> Option<(u64, u64)> {
    let info = client::get_queue(addr, queue).await.ok()?;
    Some((info.answered_by, info.applied_index))
}

/// Waits until node `id`'s own replica has applied as far as the leader's.
async fn wait_caught_up(
    cluster: &Cluster,
    id: u64,
    leader: u64,
    queue: &str,
    timeout: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let target = applied_index(&cluster.addr(leader), queue).await;
        let mine = applied_index(&cluster.addr(id), queue).await;
        if let (Some((_, target)), Some((answered_by, mine))) = (target, mine) {
            if answered_by == id && mine >= target {
                return started.elapsed();
            }
        }
        assert!(
            started.elapsed() < timeout,
            "node {id} did not catch up within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_publish_survives_leader_kill_and_rejoining_node_catches_up() {
    let mut cluster = Cluster::start(3).await;
    client::create_queue(
        &cluster.addr(1),
        "orders",
        QueueOptions {
            replicas: 3,
            ..Default::default()
        },
    )
    .await
    .expect("create queue");
    let leader = wait_leader(
        &addrs(&cluster, &cluster.ids()),
        "orders",
        Duration::from_secs(10),
    )
    .await;
    let follower = cluster
        .ids()
        .into_iter()
        .find(|id| *id != leader)
        .expect("a follower");

    let mut confirmed =
        publish_batches(&addrs(&cluster, &[follower]), "orders", "p1", 0, 100).await;
    assert_eq!(confirmed.len(), 10_000);

    cluster.kill(leader);
    let killed_at = Instant::now();
    let survivors: Vec<u64> = cluster
        .ids()
        .into_iter()
        .filter(|id| *id != leader)
        .collect();
    confirmed.extend(publish_batches(&addrs(&cluster, &survivors), "orders", "p1", 100, 1).await);
    eprintln!(
        "publishing resumed {:?} after SIGKILL of leader {leader}",
        killed_at.elapsed()
    );
    confirmed.extend(publish_batches(&addrs(&cluster, &survivors), "orders", "p1", 101, 19).await);
    let new_leader = wait_leader(
        &addrs(&cluster, &survivors),
        "orders",
        Duration::from_secs(10),
    )
    .await;
    assert_ne!(new_leader, leader);

    cluster.restart(leader);
    let took = wait_caught_up(
        &cluster,
        leader,
        new_leader,
        "orders",
        Duration::from_secs(60),
    )
    .await;
    eprintln!("restarted node {leader} caught up in {took:?}");

    let drained = drain(
        &addrs(&cluster, &cluster.ids()),
        "orders",
        confirmed.len(),
        Duration::from_secs(120),
    )
    .await;
    let acked: BTreeSet<Vec<u8>> = drained.acked.values().cloned().collect();
    let missing: Vec<_> = confirmed.difference(&acked).take(5).collect();
    assert!(
        missing.is_empty(),
        "confirmed messages lost, e.g. {missing:?}"
    );
    for d in &drained.deliveries {
        assert!(
            confirmed.contains(d.payload.as_ref()),
            "unexpected message {:?}",
            d.payload
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_cluster_restart_keeps_unacked_and_forgets_acked() {
    let mut cluster = Cluster::start(3).await;
    let all = addrs(&cluster, &cluster.ids());
    client::create_queue(&all[0], "jobs", QueueOptions::default())
        .await
        .expect("create");
    let confirmed = publish_batches(&all, "jobs", "p", 0, 20).await;

    // Ack the first 500, leave the rest unacked.
    let first = drain(&all, "jobs", 500, Duration::from_secs(60)).await;
    let acked_before: BTreeSet<Vec<u8>> = first.acked.values().cloned().collect();
    assert!(acked_before.len() >= 500);

    cluster.kill_all();
    cluster.start_all();
    cluster.wait_ready(Duration::from_secs(30)).await;
    wait_leader(&all, "jobs", Duration::from_secs(20)).await;

    let rest: BTreeSet<Vec<u8>> = confirmed.difference(&acked_before).cloned().collect();
    let second = drain(&all, "jobs", rest.len(), Duration::from_secs(90)).await;
    let acked_after: BTreeSet<Vec<u8>> = second.acked.values().cloned().collect();
    for d in &second.deliveries {
        assert!(
            !acked_before.contains(d.payload.as_ref()),
            "acked message {:?} came back after restart",
            String::from_utf8_lossy(&d.payload)
        );
    }
    let missing: Vec<_> = rest.difference(&acked_after).take(5).collect();
    assert!(
        missing.is_empty(),
        "unacked confirmed messages lost in restart, e.g. {missing:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_survive_two_killed_at_once() {
    let mut cluster = Cluster::start(5).await;
    let all = addrs(&cluster, &cluster.ids());
    client::create_queue(
        &all[0],
        "five",
        QueueOptions {
            replicas_all: true,
            ..Default::default()
        },
    )
    .await
    .expect("create");
    let leader = wait_leader(&all, "five", Duration::from_secs(10)).await;
    let mut confirmed = publish_batches(&all, "five", "p", 0, 10).await;

    let other = cluster
        .ids()
        .into_iter()
        .find(|id| *id != leader)
        .expect("another node");
    cluster.kill(leader);
    cluster.kill(other);
    let survivors: Vec<u64> = cluster
        .ids()
        .into_iter()
        .filter(|id| *id != leader && *id != other)
        .collect();
    let live = addrs(&cluster, &survivors);
    confirmed.extend(publish_batches(&live, "five", "p", 10, 10).await);

    let drained = drain(&live, "five", confirmed.len(), Duration::from_secs(90)).await;
    let acked: BTreeSet<Vec<u8>> = drained.acked.values().cloned().collect();
    assert_eq!(
        acked, confirmed,
        "with 3 of 5 nodes up every confirmed message is consumable"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_down_through_snapshots_rejoins_by_snapshot_install() {
    let mut cluster = Cluster::start_with(
        3,
        &["--snapshot-every", "100", "--snapshot-keep-logs", "20"],
    )
    .await;
    let all = addrs(&cluster, &cluster.ids());
    client::create_queue(&all[0], "snap", QueueOptions::default())
        .await
        .expect("create");
    let leader = wait_leader(&all, "snap", Duration::from_secs(10)).await;
    let lagger = cluster
        .ids()
        .into_iter()
        .find(|id| *id != leader)
        .expect("a follower");

    cluster.kill(lagger);
    let live: Vec<String> = cluster
        .ids()
        .into_iter()
        .filter(|id| *id != lagger)
        .map(|id| cluster.addr(id))
        .collect();
    // 300 entries: three snapshots, and the log below the last one purged.
    for b in 0..300u64 {
        let msgs = payloads("s-", b * 5..(b + 1) * 5);
        publish_retrying(&live, "snap", "p", 1 + b * 5, msgs, Duration::from_secs(30))
            .await
            .expect("publish while a follower is down");
    }
    cluster.restart(lagger);
    let leader = wait_leader(&live, "snap", Duration::from_secs(10)).await;
    let took = wait_caught_up(&cluster, lagger, leader, "snap", Duration::from_secs(60)).await;
    eprintln!("node {lagger} caught up via snapshot in {took:?}");

    let on_leader = client::read_stale(&cluster.addr(leader), "snap", 0, 10_000)
        .await
        .expect("read leader");
    let on_lagger = client::read_stale(&cluster.addr(lagger), "snap", 0, 10_000)
        .await
        .expect("read lagger");
    assert_eq!(
        on_lagger.node_id, lagger,
        "the rejoined node answered from its own replica"
    );
    assert_eq!(on_leader.messages.len(), 1500);
    assert_eq!(on_lagger.messages, on_leader.messages);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minority_leader_cannot_confirm_and_majority_continues() {
    let mut cluster = Cluster::start(3).await;
    let all = addrs(&cluster, &cluster.ids());
    client::create_queue(&all[0], "split", QueueOptions::default())
        .await
        .expect("create");
    let leader = wait_leader(&all, "split", Duration::from_secs(10)).await;
    publish_batches(&all, "split", "p", 0, 5).await;

    cluster.pause(leader);
    // Straight to the paused leader, no retries: it must not confirm.
    let direct = tokio::time::timeout(Duration::from_secs(4), async {
        let mut c = client::queue(&cluster.addr(leader)).await?;
        c.publish(raftq_proto::v1::PublishRequest {
            queue: "split".into(),
            messages: payloads("isolated-", 0..1),
            producer_id: String::new(),
            sequence: 0,
        })
        .await
    })
    .await;
    assert!(
        !matches!(direct, Ok(Ok(_))),
        "a paused (minority) leader confirmed a publish"
    );

    let majority: Vec<u64> = cluster
        .ids()
        .into_iter()
        .filter(|id| *id != leader)
        .collect();
    let live = addrs(&cluster, &majority);
    let started = Instant::now();
    publish_batches(&live, "split", "p", 5, 5).await;
    eprintln!(
        "majority took writes {:?} after the leader was paused",
        started.elapsed()
    );
    let new_leader = wait_leader(&live, "split", Duration::from_secs(10)).await;
    assert_ne!(new_leader, leader);

    cluster.resume(leader);
    wait_caught_up(
        &cluster,
        leader,
        new_leader,
        "split",
        Duration::from_secs(30),
    )
    .await;
    let info = client::get_queue(&cluster.addr(leader), "split")
        .await
        .expect("info from old leader");
    assert_eq!(
        info.leader_id, new_leader,
        "the old leader follows the new one after SIGCONT"
    );
    let reference = client::read_stale(&cluster.addr(new_leader), "split", 0, 10_000)
        .await
        .expect("read");
    for id in cluster.ids() {
        let got = client::read_stale(&cluster.addr(id), "split", 0, 10_000)
            .await
            .expect("read");
        assert_eq!(
            got.messages, reference.messages,
            "replica on node {id} diverged"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_requests_get_precise_codes_and_change_nothing() {
    let cluster = Cluster::start(3).await;
    let addr = cluster.addr(2);
    client::create_queue(&addr, "valid", QueueOptions::default())
        .await
        .expect("create");
    wait_leader(
        std::slice::from_ref(&addr),
        "valid",
        Duration::from_secs(10),
    )
    .await;
    publish_retrying(
        std::slice::from_ref(&addr),
        "valid",
        "",
        0,
        payloads("v", 0..3),
        Duration::from_secs(10),
    )
    .await
    .expect("publish");

    let code = |r: Result<raftq_proto::v1::QueueInfo, tonic::Status>| r.err().map(|s| s.code());
    assert_eq!(
        code(client::create_queue(&addr, "valid", QueueOptions::default()).await),
        Some(Code::AlreadyExists)
    );
    assert_eq!(
        code(client::create_queue(&addr, "", QueueOptions::default()).await),
        Some(Code::InvalidArgument)
    );
    assert_eq!(
        code(client::create_queue(&addr, "bad name!", QueueOptions::default()).await),
        Some(Code::InvalidArgument)
    );
    assert_eq!(
        code(
            client::create_queue(
                &addr,
                "x",
                QueueOptions {
                    max_message_bytes: 1 << 30,
                    ..Default::default()
                }
            )
            .await
        ),
        Some(Code::InvalidArgument)
    );
    assert_eq!(
        code(client::get_queue(&addr, "missing").await),
        Some(Code::NotFound)
    );

    let mut q = client::queue(&addr).await.expect("client");
    let publish = |queue: &str, payload: Vec<u8>| raftq_proto::v1::PublishRequest {
        queue: queue.into(),
        messages: vec![raftq_proto::v1::PublishMessage {
            payload: payload.into(),
            headers: Default::default(),
        }],
        producer_id: String::new(),
        sequence: 0,
    };
    let err = q
        .publish(publish("missing", b"x".to_vec()))
        .await
        .expect_err("unknown queue");
    assert_eq!(err.code(), Code::NotFound);
    let err = q
        .publish(publish("valid", vec![0u8; 2 << 20]))
        .await
        .expect_err("oversized");
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = q
        .publish(raftq_proto::v1::PublishRequest {
            queue: "valid".into(),
            ..Default::default()
        })
        .await
        .expect_err("empty batch");
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = q
        .read(ReadRequest {
            queue: "valid".into(),
            consistency: 7,
            ..Default::default()
        })
        .await
        .expect_err("bad consistency");
    assert_eq!(err.code(), Code::InvalidArgument);

    let info = client::get_queue(&addr, "valid").await.expect("info");
    assert_eq!(info.depth, 3, "rejected requests changed nothing");
    let status = client::cluster_status(&addr).await.expect("status");
    assert_eq!(
        status.queues.len(),
        1,
        "no queue was created by invalid requests"
    );
}
