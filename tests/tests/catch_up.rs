//! A follower that was down while the queue took many large batches catches
//! up after its restart, and the group keeps its quorum when another node
//! fails afterwards. openraft gives each AppendEntries one heartbeat interval
//! to complete: a catch-up request carrying a thousand entries of whole client
//! batches would never fit it, so large appends are sized and timed by their
//! bytes instead (see the transport's in-flight appends).

use std::time::Duration;

use bytes::Bytes;
use raftq_proto::v1::QueueOptions;
use raftq_tests::cluster::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_by_many_large_batches_catches_up() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster
        .create_queue("big", QueueOptions::default())
        .await
        .leader_id;
    let follower = cluster.others(&[leader])[0];
    cluster.kill(follower);

    // 300 entries of 100 messages x 512 B: ~15 MB the follower misses.
    let messages: Vec<Bytes> = (0..30_000u32)
        .map(|i| {
            let mut body = format!("m{i:08} ").into_bytes();
            body.resize(512, b'x');
            Bytes::from(body)
        })
        .collect();
    let stored = cluster.publish_all(leader, "big", &messages).await;
    assert_eq!(stored.len(), messages.len());

    cluster.restart(follower);
    let took = cluster
        .wait_caught_up(follower, "big", Duration::from_secs(60))
        .await;
    eprintln!("follower {follower} caught up on ~15 MB in {took:?}");

    // And it now carries the quorum: the other follower can go.
    let other = cluster.others(&[leader, follower])[0];
    cluster.kill(other);
    let more = cluster.publish_all(leader, "big", &messages[..100]).await;
    assert_eq!(more.len(), 100);
}
