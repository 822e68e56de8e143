//! Waiting for the cluster to reach a state: membership changes, replica
//! moves and leader moves take effect in the background.

use std::time::{Duration, Instant};

use raftq_proto::v1::ClusterStatusResponse;

use crate::client::{cluster_status, get_queue};
use crate::cluster::Cluster;

/// Polls node `via`'s cluster status until `ok` holds.
pub async fn wait_status(
    cluster: &Cluster,
    via: u64,
    what: &str,
    timeout: Duration,
    ok: impl Fn(&ClusterStatusResponse) -> bool,
) -> ClusterStatusResponse {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(s) = cluster_status(&cluster.addr(via)).await {
            if ok(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{what} within {timeout:?}: {s:#?}"
            );
        }
        assert!(
            Instant::now() < deadline,
            "{what}: node {via} does not answer"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls queue `name` (through node `via`) until its group's voters are
/// exactly `want` and no learner is left.
pub async fn wait_voters(cluster: &Cluster, via: u64, name: &str, want: &[u64], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let mut last = None;
    while Instant::now() < deadline {
        if let Ok(info) = get_queue(&cluster.addr(via), name).await {
            if info.voters == want && info.learners.is_empty() && info.replicas == want {
                return;
            }
            last = Some(info);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("queue {name}: voters not {want:?} within {timeout:?}: {last:#?}");
}
