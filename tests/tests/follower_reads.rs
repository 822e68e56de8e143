//! Follower reads: any replica answers reads, at the consistency the
//! client asks for, and says who answered at which applied index.

use std::time::{Duration, Instant};

use bytes::Bytes;
use raftq_proto::v1::{
    Consistency, PublishMessage, PublishRequest, QueueKind, QueueOptions, ReadRequest, ReadResponse,
};
use raftq_tests::client;
use raftq_tests::cluster::Cluster;

fn bodies(prefix: &str, range: std::ops::Range<u64>) -> Vec<Bytes> {
    range.map(|i| Bytes::from(format!("{prefix}{i}"))).collect()
}

async fn read(
    cluster: &Cluster,
    id: u64,
    queue: &str,
    from: u64,
    consistency: Consistency,
) -> Result<ReadResponse, tonic::Status> {
    cluster
        .queue(id)
        .await
        .read(ReadRequest {
            queue: queue.into(),
            from_offset: from,
            count: 10_000,
            consistency: consistency as i32,
            max_lag: 0,
        })
        .await
        .map(|r| r.into_inner())
}

fn payloads(r: &ReadResponse) -> Vec<Bytes> {
    r.messages.iter().map(|m| m.payload.clone()).collect()
}

/// A message confirmed by the leader is in a LINEARIZABLE read on every
/// follower at once, including a follower that was paused while it was
/// published: the read waits for that replica to apply the leader's read index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linearizable_read_on_each_follower_sees_what_was_just_confirmed() {
    let mut cluster = Cluster::start(3).await;
    for (queue, kind) in [
        ("lin-work", QueueKind::Work),
        ("lin-stream", QueueKind::Stream),
    ] {
        let leader = cluster
            .create_queue(
                queue,
                QueueOptions {
                    kind: kind as i32,
                    ..Default::default()
                },
            )
            .await
            .leader_id;
        let followers = cluster.others(&[leader]);
        for i in 0..30u64 {
            let body = Bytes::from(format!("{queue}-{i}"));
            let confirmed = cluster
                .publish_all(leader, queue, std::slice::from_ref(&body))
                .await;
            let offset = confirmed[0].0;
            for f in &followers {
                let r = read(&cluster, *f, queue, offset, Consistency::Linearizable)
                    .await
                    .unwrap_or_else(|e| panic!("linearizable read on follower {f}: {e}"));
                assert_eq!(r.node_id, *f, "the follower called answers itself");
                assert_eq!(
                    payloads(&r).first(),
                    Some(&body),
                    "{queue}: follower {f} (applied index {}) misses offset {offset} confirmed before the read",
                    r.applied_index
                );
            }
        }

        // A follower paused while more is confirmed, then read the moment it resumes.
        let paused = followers[0];
        cluster.stop(paused);
        let more = cluster
            .publish_all(leader, queue, &bodies("while-paused-", 0..50))
            .await;
        cluster.cont(paused);
        let r = read(&cluster, paused, queue, 0, Consistency::Linearizable)
            .await
            .unwrap_or_else(|e| panic!("linearizable read on resumed follower {paused}: {e}"));
        let got = payloads(&r);
        for (offset, body) in &more {
            assert!(
                got.contains(body),
                "{queue}: resumed follower {paused} answered at applied index {} without offset {offset} confirmed before the read",
                r.applied_index
            );
        }
        eprintln!(
            "{queue}: resumed follower {paused} answered linearizably at applied index {}",
            r.applied_index
        );
    }
}

/// STALE_OK answers from the local replica at once and says at which applied
/// index. Nothing uncommitted is ever served: not by a leader holding an entry
/// it cannot commit, not by a follower that missed the latest commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_read_reports_its_applied_index_and_never_serves_uncommitted_data() {
    let mut cluster = Cluster::start(3).await;
    let queue = "stale";
    let leader = cluster
        .create_queue(
            queue,
            QueueOptions {
                kind: QueueKind::Stream as i32,
                ..Default::default()
            },
        )
        .await
        .leader_id;
    let [paused, other] = cluster.others(&[leader])[..] else {
        panic!("3 nodes");
    };
    let a: Vec<Bytes> = cluster
        .publish_all(leader, queue, &bodies("a", 0..100))
        .await
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    cluster
        .wait_caught_up(paused, queue, Duration::from_secs(20))
        .await;
    let before = read(&cluster, paused, queue, 0, Consistency::StaleOk)
        .await
        .expect("stale read");
    assert_eq!(payloads(&before), a);

    // B commits on the leader and the other follower while `paused` sleeps.
    cluster.stop(paused);
    let b: Vec<Bytes> = cluster
        .publish_all(leader, queue, &bodies("b", 0..100))
        .await
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    let committed_ab: Vec<Bytes> = a.iter().chain(&b).cloned().collect();
    let leader_after_b = read(&cluster, leader, queue, 0, Consistency::StaleOk)
        .await
        .expect("stale read on the leader");

    // C reaches only the leader: with both followers paused it cannot commit.
    cluster.stop(other);
    let mut queue_client = cluster.queue(leader).await;
    let mut unclear = tonic::Request::new(PublishRequest {
        key: None,
        queue: queue.into(),
        messages: vec![PublishMessage {
            payload: Bytes::from_static(b"c-uncommitted"),
            headers: Default::default(),
        }],
        producer_id: String::new(),
        sequence: 0,
    });
    unclear.set_timeout(Duration::from_millis(800));
    let outcome = queue_client.publish(unclear).await;
    assert!(
        outcome.is_err(),
        "a publish with both followers paused was confirmed: {outcome:?}"
    );
    let on_leader = read(&cluster, leader, queue, 0, Consistency::StaleOk)
        .await
        .expect("stale read on the leader holding an uncommitted entry");
    assert_eq!(
        payloads(&on_leader),
        committed_ab,
        "the leader served its uncommitted entry"
    );

    // The paused follower resumes while nobody can tell it more.
    cluster.stop(leader);
    cluster.cont(paused);
    let resumed = read(&cluster, paused, queue, 0, Consistency::StaleOk)
        .await
        .expect("stale read on the resumed follower");
    assert_eq!(resumed.node_id, paused);
    let got = payloads(&resumed);
    assert!(
        got == a || got == committed_ab,
        "resumed follower served something other than a committed prefix: {} messages",
        got.len()
    );
    assert!(
        resumed.applied_index <= on_leader.applied_index,
        "a follower cannot be ahead of the leader"
    );
    eprintln!(
        "resumed follower {paused}: applied index {} ({} messages), leader applied {}",
        resumed.applied_index,
        got.len(),
        leader_after_b.applied_index
    );
    if got == a {
        assert!(
            resumed.applied_index < leader_after_b.applied_index,
            "older data must come with an older applied index"
        );
    }

    cluster.cont(leader);
    cluster.cont(other);
    // Once the group works again, a linearizable read there has A, B and
    // possibly C: its outcome was unclear, and a later leader may commit it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match read(&cluster, paused, queue, 0, Consistency::Linearizable).await {
            Ok(r) => {
                let got = payloads(&r);
                assert!(
                    got.starts_with(&committed_ab),
                    "confirmed messages missing or out of place"
                );
                assert!(
                    got.len() == committed_ab.len()
                        || got[committed_ab.len()..] == [Bytes::from_static(b"c-uncommitted")],
                    "unexpected messages after the confirmed ones"
                );
                break;
            }
            Err(e) if Instant::now() < deadline && client::retryable(&e) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("linearizable read after resuming everyone: {e}"),
        }
    }
}

/// A node holding no replica of a queue forwards reads to one that does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_a_replica_forwards_reads() {
    let cluster = Cluster::start(3).await;
    let info = cluster
        .create_queue(
            "single",
            QueueOptions {
                kind: QueueKind::Stream as i32,
                replicas: 1,
                ..Default::default()
            },
        )
        .await;
    assert_eq!(info.replicas.len(), 1);
    let holder = info.replicas[0];
    let outsider = cluster.others(&[holder])[0];
    let sent = cluster
        .publish_all(outsider, "single", &bodies("s", 0..20))
        .await;
    let r = read(&cluster, outsider, "single", 0, Consistency::Linearizable)
        .await
        .expect("read through a node without a replica");
    assert_eq!(r.node_id, holder, "answered by the replica");
    assert_eq!(
        payloads(&r),
        sent.iter().map(|(_, b)| b.clone()).collect::<Vec<_>>()
    );
    let info = cluster
        .queue_info(outsider, "single")
        .await
        .expect("info via outsider");
    assert_eq!(info.answered_by, holder);
    assert_eq!(info.next_offset, 20);
}
