//! Exactly one copy of a batch without producer id, even when the node a client
//! called loses the leader's answer and sends the batch again: the leader
//! stored it and died before its answer arrived, the new leader is asked again,
//! and must answer with the stored offsets instead of storing it twice.

use std::time::{Duration, Instant};

use bytes::Bytes;
use raftq_proto::v1::{PublishMessage, PublishRequest, QueueOptions};
use raftq_tests::cluster::Cluster;

const MESSAGES: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_answer_was_lost_with_its_leader_is_stored_once() {
    let mut cluster = Cluster::builder(3).behind_proxies().start().await;
    let info = cluster.create_queue("once", QueueOptions::default()).await;
    let leader = info.leader_id;
    let via = cluster.others(&[leader])[0];

    // The leader's answers to everyone who calls it are lost from now on,
    // the forward of `via` among them; what it sends itself still arrives.
    cluster.proxy(leader).drop_replies(true);
    let mut client = cluster.queue(via).await;
    let publish = tokio::spawn(async move {
        let mut request = tonic::Request::new(PublishRequest {
            queue: "once".into(),
            messages: (0..MESSAGES)
                .map(|i| PublishMessage {
                    payload: Bytes::from(format!("m{i}")),
                    headers: Default::default(),
                })
                .collect(),
            producer_id: String::new(),
            sequence: 0,
            key: None,
        });
        request.set_timeout(Duration::from_secs(30));
        client.publish(request).await.map(|r| r.into_inner())
    });

    // Committed: the node that forwarded it holds it in its own replica.
    let deadline = Instant::now() + Duration::from_secs(15);
    while cluster.read_all_stale(via, "once").await.len() < MESSAGES {
        assert!(
            Instant::now() < deadline,
            "the batch never reached node {via}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !publish.is_finished(),
        "the answer was to be lost, yet the publish finished"
    );
    cluster.kill(leader);

    let answer = publish.await.expect("publish task").unwrap_or_else(|s| {
        cluster.dump_logs();
        panic!("the publish through node {via} failed: {s}")
    });
    assert!(
        answer.duplicate,
        "the re-send was answered as a duplicate: {answer:?}"
    );
    assert_eq!(answer.offsets, (0..MESSAGES as u64).collect::<Vec<_>>());
    let new_leader = cluster.leader_of("once").await;
    assert_ne!(new_leader, leader);
    for id in cluster.running_ids() {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let stored = cluster.read_all_stale(id, "once").await;
            let payloads: Vec<_> = stored.iter().map(|m| m.payload.clone()).collect();
            if stored.len() >= MESSAGES || Instant::now() > deadline {
                let expected: Vec<Bytes> = (0..MESSAGES)
                    .map(|i| Bytes::from(format!("m{i}")))
                    .collect();
                assert_eq!(payloads, expected, "node {id} holds the batch once");
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
