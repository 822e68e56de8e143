//! Self-healing (README "Membership"): with `--heal-after-secs`, replicas on
//! a node down that long move to a live node, learner first, while a
//! producer runs; the returning node drops its stale copy. With
//! `--rebalance-on-return`, leaders spread again once a node is back.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use raftq_client::QueueOptions;
use raftq_tests::client::cluster_status;
use raftq_tests::cluster::Cluster;
use raftq_tests::load::{
    ack_some, assert_all_delivered, assert_none_redelivered, BackgroundProducer,
};
use raftq_tests::scrape::try_scrape;
use raftq_tests::wait::wait_voters;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_a_node_down_past_heal_after_move_to_a_live_node() {
    let mut cluster = Cluster::start_with(4, &["--heal-after-secs", "3"]).await;
    let client = cluster.connect(&[1, 2, 3, 4]).await;
    let info = client
        .create_queue("healed", QueueOptions::default())
        .await
        .expect("create");
    let spare = *[1u64, 2, 3, 4]
        .iter()
        .find(|n| !info.replicas.contains(n))
        .expect("a node without a replica");
    let lost = *info
        .replicas
        .iter()
        .find(|n| **n != 1)
        .expect("a replica other than node 1");
    let publisher = BackgroundProducer::start(&client, "healed", "h");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let acked = ack_some(&cluster.addr(1), "healed", 50).await;

    cluster.kill(lost);
    let mut want: Vec<u64> = info
        .replicas
        .iter()
        .copied()
        .filter(|n| *n != lost)
        .chain([spare])
        .collect();
    want.sort_unstable();
    wait_voters(&cluster, 1, "healed", &want, Duration::from_secs(60)).await;

    // The node comes back under its id: it is still a member of the cluster,
    // but the queue's group let it go, so it deletes its copy.
    cluster.start_all();
    let metrics = cluster.node(lost).metrics_addr.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = try_scrape(&metrics).await.unwrap_or_default();
        let holds_copy = rows.keys().any(|k| k.contains("queue=\"healed\""));
        let dropped = cluster
            .node(lost)
            .log()
            .contains("replica moved off this node: stopping it");
        if !rows.is_empty() && !holds_copy && dropped {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node {lost} still holds its stale replica: {}",
            cluster.node(lost).log_tail(3000)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let status = cluster_status(&cluster.addr(lost)).await.expect("status");
    assert!(
        status.nodes.iter().all(|n| n.up),
        "every node up again: {status:#?}"
    );

    let (confirmed, _) = publisher.stop().await;
    let unacked: BTreeSet<Bytes> = confirmed.difference(&acked).cloned().collect();
    let drained = assert_all_delivered(&cluster.addrs(&want), "healed", &unacked).await;
    assert_none_redelivered("healed", &drained, &acked);
    eprintln!(
        "healed {lost} -> {spare}: {} confirmed, all delivered",
        confirmed.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaders_spread_again_after_a_node_returns() {
    let mut cluster = Cluster::start_with(3, &["--rebalance-on-return"]).await;
    let client = cluster.connect(&[1, 2, 3]).await;
    let names: Vec<String> = (0..6).map(|i| format!("spread-{i}")).collect();
    for name in &names {
        client
            .create_queue(name, QueueOptions::default())
            .await
            .expect("create");
    }
    let publisher = BackgroundProducer::start(&client, &names[0], "s");

    // Node 3 is away long enough for its leaders to move to the others.
    cluster.kill(3);
    tokio::time::sleep(Duration::from_secs(8)).await;
    cluster.start_all();

    let deadline = Instant::now() + Duration::from_secs(60);
    let leads = loop {
        let mut leads = BTreeMap::from([(1u64, 0usize), (2, 0), (3, 0)]);
        if let Ok(status) = cluster_status(&cluster.addr(1)).await {
            for q in status.queues.iter().filter(|q| names.contains(&q.name)) {
                *leads.entry(q.leader_id).or_insert(0) += 1;
            }
        }
        let (most, least) = (leads.values().max(), leads.values().min());
        if most.zip(least).is_some_and(|(m, l)| m - l <= 1) && !leads.contains_key(&0) {
            break leads;
        }
        assert!(
            Instant::now() < deadline,
            "leaders not spread again after node 3 returned: {leads:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    let (confirmed, _) = publisher.stop().await;
    assert_all_delivered(&cluster.addrs(&[1, 2, 3]), &names[0], &confirmed).await;
    eprintln!(
        "rebalanced on return: leads {leads:?}, {} confirmed, all delivered",
        confirmed.len()
    );
}
