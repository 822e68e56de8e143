//! Idle groups quiesce (Raft timers off, no per-group heartbeats), and a
//! quiesced group still fails over: when its leader is killed (connection
//! refused) or paused (silent: caught by node heartbeats), and a restarted
//! follower does not depose a quiesced leader.

use std::time::{Duration, Instant};

use raftq_proto::v1::QueueOptions;
use raftq_tests::cluster::Cluster;
use raftq_tests::publish::bodies;
use raftq_tests::scrape::scrape;

/// Waits until every running node reports `n` quiesced groups.
async fn wait_quiesced(cluster: &Cluster, n: f64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut all = true;
        for id in cluster.running_ids() {
            let m = scrape(&cluster.node(id).metrics_addr).await;
            all &= m.get("raftq_groups_quiesced").copied().unwrap_or(0.0) >= n;
        }
        if all {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "groups did not quiesce within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn rpcs_sent(cluster: &Cluster, id: u64) -> f64 {
    scrape(&cluster.node(id).metrics_addr)
        .await
        .iter()
        .filter(|(k, _)| k.starts_with("raftq_peer_rpcs_sent_total"))
        .map(|(_, v)| v)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiesced_groups_stay_silent_and_still_fail_over() {
    let mut cluster = Cluster::start(3).await;
    let names = ["qa", "qb", "qc"];
    for name in names {
        cluster.create_queue(name, QueueOptions::default()).await;
    }
    let leader = cluster.leader_of("qa").await;
    let stored = cluster
        .publish_all(leader, "qa", &bodies("qa", 0..50))
        .await;
    assert_eq!(stored.len(), 50);
    wait_quiesced(&cluster, 3.0).await;

    // Quiet means quiet: only the metadata group still heartbeats, so the
    // queues' leader sends (almost) nothing over a second.
    let before = rpcs_sent(&cluster, leader).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sent = rpcs_sent(&cluster, leader).await - before;
    assert!(
        sent <= 60.0,
        "node {leader} sent {sent} Raft RPCs in 1 s with its queues quiesced"
    );

    // A restarted follower does not depose the quiesced leader.
    let follower = cluster.others(&[leader])[0];
    cluster.restart(follower);
    cluster
        .wait_caught_up(follower, "qa", Duration::from_secs(30))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        cluster.leader_of("qa").await,
        leader,
        "a follower restart moved the leadership of a quiesced group"
    );

    // SIGKILL of the leader of a quiesced group: a new leader takes writes.
    cluster.kill(leader);
    let (new_leader, took) = cluster
        .wait_leader_except("qa", &[leader], Duration::from_secs(20))
        .await;
    eprintln!("quiesced group: leader {leader} killed, {new_leader} elected after {took:?}");
    let more = cluster
        .publish_all(new_leader, "qa", &bodies("qa", 50..60))
        .await;
    assert_eq!(more.len(), 10);
    cluster.restart(leader);
    cluster
        .wait_caught_up(leader, "qa", Duration::from_secs(30))
        .await;

    // SIGSTOP of the leader of a quiesced group (no connection reset): the
    // node heartbeats stop, followers turn their timers back on, and elect.
    wait_quiesced(&cluster, 3.0).await;
    let paused = cluster.leader_of("qb").await;
    cluster.stop(paused);
    let (after_pause, took) = cluster
        .wait_leader_except("qb", &[paused], Duration::from_secs(20))
        .await;
    eprintln!("quiesced group: leader {paused} paused, {after_pause} elected after {took:?}");
    let written = cluster
        .publish_all(after_pause, "qb", &bodies("qb", 0..10))
        .await;
    assert_eq!(written.len(), 10);
    cluster.cont(paused);
    cluster
        .wait_caught_up(paused, "qb", Duration::from_secs(30))
        .await;
    let all = cluster.read_all_stale(paused, "qa").await;
    assert_eq!(
        all.len(),
        60,
        "every confirmed message on the old leader too"
    );
}
