//! The HA score (README "CLI, client and benchmarks"), per queue:
//! `Σ over in-sync replicas (1/n) + (has leader ? 1/n : 0)`, n = nodes in the
//! cluster. A queue with 3 in-sync replicas and a leader on a 3-node cluster
//! scores 4/3; leaderless with no replica known in sync scores 0. The cluster
//! score is the mean over queues.

use raftq_client::QueueInfo;

/// Replicas further behind the leader's log than this are not in sync.
pub const LAG_BOUND: u64 = 1000;

pub fn queue_score(cluster_nodes: usize, in_sync_replicas: usize, has_leader: bool) -> f64 {
    if cluster_nodes == 0 {
        return 0.0;
    }
    let n = cluster_nodes as f64;
    in_sync_replicas as f64 / n + if has_leader { 1.0 / n } else { 0.0 }
}

/// Replicas of `info` in sync: within [`LAG_BOUND`] of the leader by its own
/// report, or, when it reports none, every listed replica if there is a
/// leader (lag is measured against a leader; without one nothing is known in
/// sync). Replicas on nodes that are down never count: a dead node's replica
/// looks current until writes move on. Nor does a learner (a replica still
/// catching up during a move): it does not vote, so it adds no availability.
pub fn in_sync(info: &QueueInfo, live_nodes: &[u64]) -> usize {
    let voting = |id: &u64| info.voters.is_empty() || info.voters.contains(id);
    let live = |id: &u64| live_nodes.contains(id) && voting(id);
    if info.leader_id == 0 {
        return 0;
    }
    if info.replica_status.is_empty() {
        return info.replicas.iter().filter(|r| live(r)).count();
    }
    info.replica_status
        .iter()
        .filter(|r| live(&r.node_id))
        .filter(|r| r.node_id == info.leader_id || r.lag <= LAG_BOUND)
        .count()
}

/// Mean of the queue scores (0 with no queues).
pub fn cluster_score(scores: &[f64]) -> f64 {
    if scores.is_empty() {
        0.0
    } else {
        scores.iter().sum::<f64>() / scores.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raftq_client::ReplicaStatus;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    fn replica(node_id: u64, lag: u64) -> ReplicaStatus {
        ReplicaStatus {
            node_id,
            matched_index: 5000 - lag,
            lag,
            ..Default::default()
        }
    }

    #[test]
    fn score_matches_the_article_formula() {
        assert!(close(queue_score(3, 3, true), 4.0 / 3.0));
        assert!(close(queue_score(3, 2, false), 2.0 / 3.0));
        assert!(close(queue_score(5, 3, true), 0.8));
        assert!(close(queue_score(3, 0, false), 0.0));
        assert_eq!(queue_score(0, 0, false), 0.0);
    }

    #[test]
    fn lagging_replicas_are_not_in_sync() {
        let info = QueueInfo {
            leader_id: 1,
            replicas: vec![1, 2, 3],
            replica_status: vec![replica(1, 0), replica(2, 10), replica(3, 4990)],
            ..Default::default()
        };
        assert_eq!(in_sync(&info, &[1, 2, 3]), 2);
        let at_bound = QueueInfo {
            replica_status: vec![
                replica(1, 0),
                replica(2, LAG_BOUND),
                replica(3, LAG_BOUND + 1),
            ],
            ..info.clone()
        };
        assert_eq!(in_sync(&at_bound, &[1, 2, 3]), 2);
    }

    #[test]
    fn replicas_on_down_nodes_are_not_in_sync() {
        let info = QueueInfo {
            leader_id: 1,
            replicas: vec![1, 2, 3],
            replica_status: vec![replica(1, 0), replica(2, 0), replica(3, 0)],
            ..Default::default()
        };
        assert_eq!(in_sync(&info, &[1, 3]), 2);
    }

    #[test]
    fn without_replica_status_listed_replicas_count_only_with_a_leader() {
        let led = QueueInfo {
            leader_id: 2,
            replicas: vec![1, 2, 3],
            ..Default::default()
        };
        assert_eq!(in_sync(&led, &[1, 2, 3]), 3);
        let leaderless = QueueInfo {
            leader_id: 0,
            ..led
        };
        assert_eq!(in_sync(&leaderless, &[1, 2, 3]), 0);
    }

    #[test]
    fn cluster_score_is_the_mean() {
        assert!(close(cluster_score(&[4.0 / 3.0, 2.0 / 3.0]), 1.0));
        assert_eq!(cluster_score(&[]), 0.0);
    }

    #[test]
    fn a_learner_catching_up_does_not_count() {
        let info = QueueInfo {
            leader_id: 1,
            replicas: vec![1, 2, 4],
            voters: vec![1, 2, 3],
            learners: vec![4],
            replica_status: vec![replica(1, 0), replica(2, 0), replica(3, 0), replica(4, 0)],
            ..Default::default()
        };
        assert_eq!(in_sync(&info, &[1, 2, 3, 4]), 3);
        assert_eq!(in_sync(&info, &[1, 2, 4]), 2);
    }
}
