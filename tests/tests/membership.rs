//! Membership (README "Guarantees": a confirmed message is never lost; a node
//! that lost its data never votes under its old id). A node whose data dir was
//! wiped is refused under its old id with instructions; new nodes join a
//! running cluster under load, learner first, and take new queues; replicas
//! and leaders move on request while a producer runs.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use raftq_client::{Client, ClientOptions, QueueOptions};
use raftq_proto::v1::{
    ChangeReplicasRequest, NodeRole, RebalanceRequest, RemoveNodeRequest, TransferLeaderRequest,
};
use raftq_tests::client::cluster_status;
use raftq_tests::cluster::Cluster;
use raftq_tests::load::{
    ack_some, assert_all_delivered, assert_none_redelivered, BackgroundProducer,
};
use raftq_tests::wait::{wait_status, wait_voters};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_on_a_blank_data_dir_is_refused_with_how_to_replace_it() {
    let mut cluster = Cluster::start(3).await;
    let status = wait_status(
        &cluster,
        1,
        "cluster named and every data dir registered",
        Duration::from_secs(20),
        |s| !s.cluster_id.is_empty() && s.nodes.iter().all(|n| n.incarnation != 0),
    )
    .await;
    let registered = status
        .nodes
        .iter()
        .find(|n| n.id == 2)
        .map(|n| n.incarnation);

    cluster.kill(2);
    let dir = cluster.node(2).data_dir.clone();
    std::fs::remove_dir_all(&dir).expect("wipe node 2's data dir");
    cluster.start_all();

    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        let node = cluster
            .nodes
            .iter_mut()
            .find(|n| n.id == 2)
            .expect("node 2");
        if let Some(status) = node.exited() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "node 2 with a wiped data dir is still running: {}",
            cluster.node(2).log_tail(2000)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let log = cluster.node(2).log();
    assert!(!exit.success(), "refused start must fail: {exit:?}\n{log}");
    for needed in [
        "refusing to start",
        "already has a node 2 with another data dir",
        "this data dir is empty",
        "must not rejoin under its old id",
        "raftq cluster remove-node 2",
        "a new --id and --join",
    ] {
        assert!(log.contains(needed), "missing {needed:?} in:\n{log}");
    }

    // The others keep serving, and still know node 2 by its old data dir.
    let status = cluster_status(&cluster.addr(1)).await.expect("status");
    let node2 = status
        .nodes
        .iter()
        .find(|n| n.id == 2)
        .expect("node 2 listed");
    assert_eq!(Some(node2.incarnation), registered);
    let client = Client::connect(vec![cluster.addr(1), cluster.addr(3)])
        .await
        .expect("connect");
    client
        .create_queue("still-here", QueueOptions::default())
        .await
        .expect("the two live nodes take writes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_join_under_load_and_new_queues_are_placed_on_them() {
    let mut cluster = Cluster::start(3).await;
    let original = cluster.addrs(&[1, 2, 3]);
    let options = ClientOptions {
        retry_deadline: Duration::from_secs(60),
        ..Default::default()
    };
    let client = Client::connect_with(original.clone(), options.clone())
        .await
        .expect("connect");
    client
        .create_queue("before", QueueOptions::default())
        .await
        .expect("create");

    let publisher = BackgroundProducer::start(&client, "before", "b");

    let four = cluster.add_node(&[1, 2, 3]);
    let five = cluster.add_node(&[3]);
    let status = wait_status(
        &cluster,
        1,
        "five voters, all up and registered",
        Duration::from_secs(60),
        |s| {
            s.nodes.len() == 5
                && s.nodes
                    .iter()
                    .all(|n| n.up && n.role == NodeRole::Voter as i32 && n.incarnation != 0)
        },
    )
    .await;
    assert!(status.nodes.iter().any(|n| n.id == four));

    // Queues created from now on are placed over all five nodes.
    let everywhere = QueueOptions {
        replicas: 5,
        ..Default::default()
    };
    let all = cluster.addrs(&[1, 2, 3, four, five]);
    let wide = Client::connect_with(vec![cluster.addr(five)], options)
        .await
        .expect("connect through a joined node");
    let info = wide
        .create_queue("after", everywhere)
        .await
        .expect("create");
    assert_eq!(info.replicas, vec![1, 2, 3, four, five], "{info:?}");
    let mut producer = wide.producer("after");
    let mut sent = BTreeSet::new();
    for n in 0..50u64 {
        let batch: Vec<Bytes> = (0..10)
            .map(|i| Bytes::from(format!("a{}", n * 10 + i)))
            .collect();
        producer.send_batch(batch.clone()).await.expect("confirmed");
        sent.extend(batch);
    }

    // The queue created on three nodes grows to all five, under its load.
    let mut admin = cluster.admin(2).await;
    let grown = admin
        .change_replicas(ChangeReplicasRequest {
            queue: "before".into(),
            replicas: 5,
            ..Default::default()
        })
        .await
        .expect("grow to 5")
        .into_inner();
    assert_eq!(grown.replicas, vec![1, 2, 3, four, five], "{grown:?}");
    wait_voters(
        &cluster,
        1,
        "before",
        &grown.replicas,
        Duration::from_secs(60),
    )
    .await;

    // A joined node restarts like any other: its data dir is its membership.
    cluster.restart(four);
    wait_status(
        &cluster,
        four,
        "node 4 back as a voter",
        Duration::from_secs(30),
        |s| {
            s.metadata_leader != 0
                && s.nodes
                    .iter()
                    .any(|n| n.id == four && n.role == NodeRole::Voter as i32)
        },
    )
    .await;

    let (confirmed, _) = publisher.stop().await;
    for (queue, expected) in [("before", &confirmed), ("after", &sent)] {
        assert_all_delivered(&all, queue, expected).await;
        eprintln!("{queue}: {} confirmed, all delivered", expected.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_is_replaced_and_a_queue_grows_and_shrinks_under_load() {
    let mut cluster = Cluster::start(3).await;
    let client = cluster.connect(&[1, 2, 3]).await;
    let info = client
        .create_queue("q", QueueOptions::default())
        .await
        .expect("create");
    assert_eq!(info.replicas, vec![1, 2, 3]);

    let publisher = BackgroundProducer::start(&client, "q", "q");

    // Acked before the moves: never delivered again after them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let acked = ack_some(&cluster.addr(1), "q", 50).await;

    // Node 2's disk dies: it is gone with its data.
    cluster.kill(2);
    std::fs::remove_dir_all(&cluster.node(2).data_dir).expect("wipe node 2");
    // Its replacement joins under a new id, and node 2 is removed: the queue's
    // replica moves from 2 to 4, learner first.
    let four = cluster.add_node(&[1, 3]);
    wait_status(
        &cluster,
        1,
        "node 4 a voter",
        Duration::from_secs(60),
        |s| {
            s.nodes
                .iter()
                .any(|n| n.id == four && n.role == NodeRole::Voter as i32)
        },
    )
    .await;
    let mut admin = cluster.admin(1).await;
    let status = admin
        .remove_node(RemoveNodeRequest { node_id: 2 })
        .await
        .expect("remove node 2")
        .into_inner();
    assert!(status.nodes.iter().all(|n| n.id != 2), "{status:#?}");
    wait_voters(&cluster, 1, "q", &[1, 3, four], Duration::from_secs(60)).await;

    // A removed id is never accepted again, whatever the data dir.
    cluster.start_all();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let node = cluster
            .nodes
            .iter_mut()
            .find(|n| n.id == 2)
            .expect("node 2");
        if node.exited().is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "removed node 2 still running");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = cluster.node(2).log();
    assert!(
        log.contains("node 2 was removed from cluster") && log.contains("never reused"),
        "{log}"
    );

    // Shrink to two replicas and grow back to three.
    for (replicas, want) in [(2u32, 2usize), (3, 3)] {
        let info = admin
            .change_replicas(ChangeReplicasRequest {
                queue: "q".into(),
                replicas,
                ..Default::default()
            })
            .await
            .expect("resize")
            .into_inner();
        assert_eq!(info.replicas.len(), want, "{info:?}");
        wait_voters(&cluster, 1, "q", &info.replicas, Duration::from_secs(60)).await;
    }

    let (confirmed, _) = publisher.stop().await;
    let all = cluster.addrs(&[1, 3, four]);
    let unacked: BTreeSet<Bytes> = confirmed.difference(&acked).cloned().collect();
    let drained = assert_all_delivered(&all, "q", &unacked).await;
    assert_none_redelivered("q", &drained, &acked);
    eprintln!(
        "replace/shrink/grow: {} confirmed, all delivered",
        confirmed.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaders_move_on_request_and_rebalance_evens_them_under_load() {
    let cluster = Cluster::start(3).await;
    let client = cluster.connect(&[1, 2, 3]).await;
    let names: Vec<String> = (0..6).map(|i| format!("lead-{i}")).collect();
    for name in &names {
        client
            .create_queue(name, QueueOptions::default())
            .await
            .expect("create");
    }
    let publisher = BackgroundProducer::start(&client, "lead-0", "l");

    // Acked before the moves: never delivered again after them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let acked = ack_some(&cluster.addr(3), "lead-0", 50).await;

    // Every leader onto node 1.
    let mut admin = cluster.admin(2).await;
    for name in &names {
        let info = admin
            .transfer_leader(TransferLeaderRequest {
                queue: name.clone(),
                to_node: 1,
            })
            .await
            .expect("transfer")
            .into_inner();
        assert_eq!(info.leader_id, 1, "{name}: {info:?}");
    }
    let done = admin
        .rebalance(RebalanceRequest {})
        .await
        .expect("rebalance")
        .into_inner();
    assert!(
        done.moves.iter().all(|m| m.error.is_empty()),
        "{:?}",
        done.moves
    );
    let status = cluster_status(&cluster.addr(3)).await.expect("status");
    let mut leads = std::collections::BTreeMap::from([(1u64, 0usize), (2, 0), (3, 0)]);
    for q in status.queues.iter().filter(|q| names.contains(&q.name)) {
        *leads.entry(q.leader_id).or_insert(0) += 1;
    }
    let (most, least) = (leads.values().max(), leads.values().min());
    assert!(
        most.zip(least).is_some_and(|(m, l)| m - l <= 1) && !leads.contains_key(&0),
        "leaders not within one of even: {leads:?}"
    );

    let (confirmed, _) = publisher.stop().await;
    let unacked: BTreeSet<Bytes> = confirmed.difference(&acked).cloned().collect();
    let drained = assert_all_delivered(&cluster.addrs(&[1, 2, 3]), "lead-0", &unacked).await;
    assert_none_redelivered("lead-0", &drained, &acked);
    eprintln!(
        "leader moves: {} confirmed, all delivered; leads {leads:?}",
        confirmed.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_five_node_cluster_shrinks_to_three_under_load() {
    let mut cluster = Cluster::start(5).await;
    let client = cluster.connect(&[1, 2, 3]).await;
    let wide = QueueOptions {
        replicas: 5,
        ..Default::default()
    };
    client.create_queue("wide", wide).await.expect("create");
    let mut narrow = Vec::new();
    for i in 0..3 {
        let name = format!("narrow-{i}");
        let info = client
            .create_queue(&name, QueueOptions::default())
            .await
            .expect("create");
        assert_eq!(info.replicas.len(), 3, "{info:?}");
        narrow.push(name);
    }
    let wide_load = BackgroundProducer::start(&client, "wide", "w");
    let narrow_load = BackgroundProducer::start(&client, &narrow[0], "n");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let acked = ack_some(&cluster.addr(1), "wide", 50).await;

    // Live nodes leave one at a time: their replicas move first.
    let mut admin = cluster.admin(1).await;
    for gone in [5u64, 4] {
        // Taking a node out can move the metadata leadership: an election
        // answers UNAVAILABLE for a moment, and the removal is asked again.
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            match admin.remove_node(RemoveNodeRequest { node_id: gone }).await {
                Ok(answer) => break answer.into_inner(),
                Err(e) if e.code() == tonic::Code::Unavailable && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("remove node {gone}: {e}"),
            }
        };
        assert!(status.nodes.iter().all(|n| n.id != gone), "{status:#?}");
        cluster.kill(gone);
    }
    wait_voters(&cluster, 1, "wide", &[1, 2, 3], Duration::from_secs(60)).await;
    for name in &narrow {
        wait_voters(&cluster, 2, name, &[1, 2, 3], Duration::from_secs(60)).await;
    }
    let status = wait_status(
        &cluster,
        3,
        "three voters left",
        Duration::from_secs(30),
        |s| s.nodes.len() == 3 && s.nodes.iter().all(|n| n.up),
    )
    .await;
    assert!(status.nodes.iter().all(|n| n.id <= 3), "{status:#?}");

    let (wide_confirmed, _) = wide_load.stop().await;
    let (narrow_confirmed, _) = narrow_load.stop().await;
    let all = cluster.addrs(&[1, 2, 3]);
    let unacked: BTreeSet<Bytes> = wide_confirmed.difference(&acked).cloned().collect();
    let drained = assert_all_delivered(&all, "wide", &unacked).await;
    assert_none_redelivered("wide", &drained, &acked);
    assert_all_delivered(&all, &narrow[0], &narrow_confirmed).await;
    eprintln!(
        "shrink 5 -> 3: {} + {} confirmed, all delivered",
        wide_confirmed.len(),
        narrow_confirmed.len()
    );
}

/// An address can pass to another node id (a replaced node keeps its name):
/// peer requests name the node they mean, and any other node refuses them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_request_meant_for_another_node_id_is_refused() {
    use raftq_proto::internal::raft_peer_client::RaftPeerClient;
    use raftq_proto::internal::RaftRequest;

    let cluster = Cluster::start(3).await;
    let channel = raftq_tests::client::channel(&cluster.addr(1))
        .await
        .expect("channel");
    let mut peer = RaftPeerClient::new(channel);
    let request = |to| RaftRequest {
        group: 0,
        from: 2,
        payload: Bytes::from_static(b"not a heartbeat"),
        data: Bytes::new(),
        to,
    };
    let refused = peer
        .node_heartbeat(request(2))
        .await
        .expect_err("node 1 must refuse a heartbeat meant for node 2");
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    assert!(
        refused
            .message()
            .contains("this address is node 1, not node 2"),
        "{refused:?}"
    );
    // Meant for node 1, the same request gets past the address check.
    let bad = peer
        .node_heartbeat(request(1))
        .await
        .expect_err("garbage payload");
    assert_eq!(bad.code(), tonic::Code::InvalidArgument, "{bad:?}");
}
