//! The HA score of design.md section 8:
//! `Σ_{i=1..n} (ReplicaCount / n) + MasterCount / n`, n = nodes in the cluster,
//! ReplicaCount = replicas in sync (within the lag bound), MasterCount = 1 if the
//! queue has a leader. So a queue with 3 in-sync replicas and a leader on a
//! 3-node cluster scores 4/3; leaderless with 2 in sync scores 2/3.

/// Replicas further behind than this are not counted as in sync.
pub const LAG_BOUND: u64 = 1000;

pub fn queue_score(cluster_nodes: usize, in_sync_replicas: usize, has_leader: bool) -> f64 {
    if cluster_nodes == 0 {
        return 0.0;
    }
    let n = cluster_nodes as f64;
    in_sync_replicas as f64 / n + if has_leader { 1.0 / n } else { 0.0 }
}

/// In-sync replicas of a queue: on a live node and, when the leader reports
/// replication progress, within [`LAG_BOUND`] of it (a dead node's replica can
/// look current until writes move on, so liveness is checked too).
pub fn in_sync(info: &raftq_client::QueueInfo, live_nodes: &[u64]) -> usize {
    if info.leader_id != 0 && !info.replica_status.is_empty() {
        return info
            .replica_status
            .iter()
            .filter(|r| live_nodes.contains(&r.node_id))
            .filter(|r| r.node_id == info.leader_id || r.lag <= LAG_BOUND)
            .count();
    }
    info.replicas
        .iter()
        .filter(|r| live_nodes.contains(r))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_matches_the_article_formula() {
        assert!((queue_score(3, 3, true) - 4.0 / 3.0).abs() < 1e-9);
        assert!((queue_score(3, 2, false) - 2.0 / 3.0).abs() < 1e-9);
        assert!((queue_score(5, 3, true) - 0.8).abs() < 1e-9);
        assert_eq!(queue_score(0, 0, false), 0.0);
    }

    #[test]
    fn lagging_replicas_are_not_in_sync() {
        let info = raftq_client::QueueInfo {
            leader_id: 1,
            replicas: vec![1, 2, 3],
            replica_status: vec![
                raftq_proto::v1::ReplicaStatus {
                    node_id: 1,
                    matched_index: 5000,
                    lag: 0,
                },
                raftq_proto::v1::ReplicaStatus {
                    node_id: 2,
                    matched_index: 4990,
                    lag: 10,
                },
                raftq_proto::v1::ReplicaStatus {
                    node_id: 3,
                    matched_index: 10,
                    lag: 4990,
                },
            ],
            ..Default::default()
        };
        assert_eq!(in_sync(&info, &[1, 2, 3]), 2);
        assert_eq!(
            in_sync(&info, &[1, 3]),
            1,
            "a replica on a down node is not in sync"
        );
    }
}
