//! The harness itself: faults hit only our own children, a restarted node gets
//! its port and data back, and dropping a cluster leaves no process behind, even
//! a SIGSTOPped one, nor any temp dir.

use std::time::Duration;

use raftq_proto::v1::QueueOptions;
use raftq_tests::cluster::Cluster;
use raftq_tests::publish::bodies;

fn exists(pid: u32) -> bool {
    // SAFETY: kill(pid, 0) only checks for existence.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_port_and_data_and_drop_reaps_every_node() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster
        .create_queue("h", QueueOptions::default())
        .await
        .leader_id;
    let confirmed = cluster.publish_all(leader, "h", &bodies("h", 0..10)).await;
    assert_eq!(confirmed.len(), 10);

    let follower = cluster.others(&[leader])[0];
    let old_pid = cluster.node(follower).pid().expect("follower runs");
    cluster.restart(follower);
    assert!(!exists(old_pid), "the killed process is gone and reaped");
    cluster
        .wait_caught_up(follower, "h", Duration::from_secs(30))
        .await;
    let info = cluster.queue_info(follower, "h").await.expect("GetQueue");
    assert_eq!(info.depth, 10, "the restarted node kept its data");
    assert!(
        !cluster.node(follower).log().is_empty(),
        "node output goes to its log file"
    );

    cluster.stop(leader);
    let pids: Vec<u32> = cluster
        .ids()
        .into_iter()
        .filter_map(|id| cluster.node(id).pid())
        .collect();
    assert_eq!(pids.len(), 3);
    let data_dir = cluster.node(1).data_dir.clone();
    drop(cluster);
    assert!(
        std::env::var_os("RAFTQ_TEST_KEEP").is_some() || !data_dir.exists(),
        "temp dirs removed"
    );
    for pid in pids {
        assert!(
            !exists(pid),
            "pid {pid} still exists after the cluster was dropped"
        );
    }
}
