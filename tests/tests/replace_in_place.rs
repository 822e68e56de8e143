//! The replace-a-node runbook of Kubernetes and compose (README
//! "Membership"): a node's disk dies, and its replacement keeps the node's
//! address (a StatefulSet pod keeps its name) under a new id. The address
//! belongs to the old id until it is removed, so the replacement waits; once
//! it joins, the queues that were left with two replicas grow back onto it
//! by themselves. A producer runs throughout.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use raftq_client::QueueOptions;
use raftq_proto::v1::{NodeRole, RemoveNodeRequest};
use raftq_tests::cluster::Cluster;
use raftq_tests::load::{
    ack_some, assert_all_delivered, assert_none_redelivered, BackgroundProducer,
};
use raftq_tests::wait::{wait_status, wait_voters};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_replaced_at_its_own_address_under_a_new_id() {
    let mut cluster = Cluster::start(3).await;
    let client = cluster.connect(&[1, 2, 3]).await;
    client
        .create_queue("kept", QueueOptions::default())
        .await
        .expect("create");
    let publisher = BackgroundProducer::start(&client, "kept", "k");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let acked = ack_some(&cluster.addr(1), "kept", 50).await;

    cluster.kill(2);
    std::fs::remove_dir_all(&cluster.node(2).data_dir).expect("wipe node 2");
    let address = cluster.node(2).addr.clone();
    let four = cluster.add_node_at(address.clone(), &[1, 3]);

    // Node 2 still owns the address: the join is refused until it is removed.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cluster.node(four).log().contains("belongs to node 2") {
        assert!(
            Instant::now() < deadline,
            "no refusal of a join at node 2's address: {}",
            cluster.node(four).log_tail(3000)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut admin = cluster.admin(1).await;
    admin
        .remove_node(RemoveNodeRequest { node_id: 2 })
        .await
        .expect("remove node 2");
    wait_status(
        &cluster,
        1,
        "node 4 a voter at node 2's old address",
        Duration::from_secs(60),
        |s| {
            s.nodes
                .iter()
                .any(|n| n.id == four && n.role == NodeRole::Voter as i32 && n.address == address)
                && s.nodes.iter().all(|n| n.id != 2)
        },
    )
    .await;
    // Two replicas were left after node 2 went; the queue grows back to
    // three on the new node without being asked.
    wait_voters(&cluster, 1, "kept", &[1, 3, four], Duration::from_secs(60)).await;

    let (confirmed, _) = publisher.stop().await;
    let unacked: BTreeSet<Bytes> = confirmed.difference(&acked).cloned().collect();
    let drained = assert_all_delivered(&cluster.addrs(&[1, 3, four]), "kept", &unacked).await;
    assert_none_redelivered("kept", &drained, &acked);
    eprintln!(
        "replaced in place: {} confirmed, all delivered",
        confirmed.len()
    );
}
