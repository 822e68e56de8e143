//! Guarantee 7 for size: the largest batch a node accepts replicates and is
//! confirmed whichever node it is sent to, and the small publishes after it
//! are too; a batch over the limit is refused at once with RESOURCE_EXHAUSTED
//! and changes nothing. The test prints how many terms passed: 0 with release
//! builds of raftqd; debug builds, three of them on two cores, can still lose
//! an election to the CPU the copies take, so it is not asserted here.

use std::time::{Duration, Instant};

use bytes::Bytes;
use raftq_proto::v1::queue_service_client::QueueServiceClient;
use raftq_proto::v1::{PublishMessage, PublishRequest, QueueOptions};
use raftq_tests::cluster::Cluster;
use tonic::Code;

/// The server's default `max_batch_bytes` (README "Hostile input").
const MAX_BATCH_BYTES: usize = 32 << 20;
/// The default `max_message_bytes` of a queue.
const MAX_MESSAGE_BYTES: usize = 1 << 20;

fn batch(total: usize, tag: &str) -> PublishRequest {
    let mut messages = Vec::new();
    let mut left = total;
    let mut i = 0;
    while left > 0 {
        let size = left.min(MAX_MESSAGE_BYTES);
        let mut body = format!("{tag}-{i:04} ").into_bytes();
        body.resize(size, b'x');
        messages.push(PublishMessage {
            payload: Bytes::from(body),
            headers: Default::default(),
        });
        left -= size;
        i += 1;
    }
    PublishRequest {
        key: None,
        queue: "big".into(),
        messages,
        producer_id: String::new(),
        sequence: 0,
    }
}

fn small(tag: &str) -> PublishRequest {
    PublishRequest {
        key: None,
        queue: "big".into(),
        messages: vec![PublishMessage {
            payload: Bytes::from(tag.to_string()),
            headers: Default::default(),
        }],
        producer_id: String::new(),
        sequence: 0,
    }
}

/// One publish with its own deadline: a hang shows as DEADLINE_EXCEEDED, not
/// as a test that never ends.
async fn publish(
    cluster: &Cluster,
    via: u64,
    req: PublishRequest,
    deadline: Duration,
) -> (Result<usize, tonic::Status>, Duration) {
    // No client-side size limit: the server's limits are under test.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", cluster.addr(via)))
        .expect("node address")
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connect to node {via}: {e}"));
    let mut client = QueueServiceClient::new(channel)
        .max_encoding_message_size(usize::MAX)
        .max_decoding_message_size(usize::MAX);
    let mut request = tonic::Request::new(req);
    request.set_timeout(deadline);
    let started = Instant::now();
    let result = client
        .publish(request)
        .await
        .map(|r| r.into_inner().offsets.len());
    (result, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_batch_is_confirmed_through_any_node_and_a_larger_one_is_refused() {
    let cluster = Cluster::start(3).await;
    let info = cluster.create_queue("big", QueueOptions::default()).await;
    let leader = info.leader_id;
    let term = info.term;
    let follower = cluster.others(&[leader])[0];
    // Room for the message framing inside the batch limit.
    let largest = MAX_BATCH_BYTES - 64 * 1024;

    let mut stored = 0u64;
    for round in 0..3 {
        for via in [follower, leader] {
            let tag = format!("r{round}n{via}");
            let (result, took) =
                publish(&cluster, via, batch(largest, &tag), Duration::from_secs(30)).await;
            let n = result.unwrap_or_else(|s| {
                cluster.dump_logs();
                panic!("round {round}: largest batch through node {via} failed after {took:?}: {s}")
            });
            eprintln!("round {round}: {n} messages ({largest} B) through node {via} in {took:?}");
            stored += n as u64;
            let (result, took) = publish(&cluster, via, small(&tag), Duration::from_secs(10)).await;
            result.unwrap_or_else(|s| {
                cluster.dump_logs();
                panic!("round {round}: small publish after it through node {via} failed after {took:?}: {s}")
            });
            eprintln!("round {round}: small publish through node {via} in {took:?}");
            stored += 1;
        }
    }

    let now_leader = cluster.leader_of("big").await;
    let after = cluster
        .queue_info(now_leader, "big")
        .await
        .expect("queue info from the leader");
    eprintln!(
        "terms passed during the run: {} (leader {leader} -> {now_leader})",
        after.term - term
    );
    assert_eq!(after.depth, stored);

    for via in [follower, leader] {
        let (result, took) = publish(
            &cluster,
            via,
            batch(MAX_BATCH_BYTES + 1, "over"),
            Duration::from_secs(10),
        )
        .await;
        let status = result.expect_err("a batch over max_batch_bytes must be refused");
        eprintln!("over-limit batch through node {via} refused in {took:?}: {status}");
        assert_eq!(status.code(), Code::ResourceExhausted, "{status}");
        assert!(
            status.message().contains("max_batch_bytes"),
            "the refusal names the limit: {status}"
        );
    }
    // A request larger than the node will even read is refused the same way.
    let (result, took) = publish(
        &cluster,
        follower,
        batch(3 * MAX_BATCH_BYTES, "huge"),
        Duration::from_secs(10),
    )
    .await;
    let status = result.expect_err("a request over max_request_bytes must be refused");
    eprintln!("over-size request refused in {took:?}: {status}");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status}");

    for id in cluster.ids() {
        cluster
            .wait_caught_up(id, "big", Duration::from_secs(30))
            .await;
        let info = cluster.queue_info(id, "big").await.expect("queue info");
        assert_eq!(
            info.depth, stored,
            "node {id}: refused batches changed the queue"
        );
    }
}
