//! Which leaders to move so that every node leads about as many queues as
//! the others (RabbitMQ's `rebalance quorum`). Pure: the plan comes from the
//! queues' current leaders and voters.

use std::collections::BTreeMap;

use crate::ids::NodeId;

/// A queue as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Led {
    pub queue: String,
    pub leader: NodeId,
    pub voters: Vec<NodeId>,
}

/// Moves (queue, from, to), one at a time, each taking a leader from a node
/// that leads the most to a voter of that queue that leads the fewest, until
/// no move narrows the spread. Nodes lead within one of each other when the
/// replica placement allows it.
pub fn plan(queues: &[Led], nodes: &[NodeId]) -> Vec<(String, NodeId, NodeId)> {
    let mut leads: BTreeMap<NodeId, usize> = nodes.iter().map(|n| (*n, 0)).collect();
    let mut leader: BTreeMap<&str, NodeId> = BTreeMap::new();
    for q in queues.iter().filter(|q| q.leader != 0) {
        *leads.entry(q.leader).or_insert(0) += 1;
        leader.insert(&q.queue, q.leader);
    }
    let mut moves = Vec::new();
    // Each move lowers the sum of squares of the counts: bounded.
    for _ in 0..queues.len() * nodes.len().max(1) {
        let best = queues
            .iter()
            .filter_map(|q| {
                let from = *leader.get(q.queue.as_str())?;
                let to = q
                    .voters
                    .iter()
                    .filter(|v| **v != from && leads.contains_key(v))
                    .min_by_key(|v| (leads[v], **v))?;
                let gain = leads[&from] as i64 - leads[to] as i64;
                (gain >= 2).then_some((gain, q, from, *to))
            })
            .max_by_key(|(gain, q, _, _)| (*gain, std::cmp::Reverse(q.queue.clone())));
        let Some((_, q, from, to)) = best else {
            break;
        };
        *leads.entry(from).or_insert(0) -= 1;
        *leads.entry(to).or_insert(0) += 1;
        leader.insert(&q.queue, to);
        moves.push((q.queue.clone(), from, to));
    }
    moves
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn led(queue: &str, leader: NodeId, voters: &[NodeId]) -> Led {
        Led {
            queue: queue.into(),
            leader,
            voters: voters.to_vec(),
        }
    }

    fn spread(queues: &[Led], moves: &[(String, NodeId, NodeId)], nodes: &[NodeId]) -> usize {
        let mut leader: BTreeMap<String, NodeId> =
            queues.iter().map(|q| (q.queue.clone(), q.leader)).collect();
        for (q, _, to) in moves {
            leader.insert(q.clone(), *to);
        }
        let mut count: BTreeMap<NodeId, usize> = nodes.iter().map(|n| (*n, 0)).collect();
        for l in leader.values() {
            *count.entry(*l).or_insert(0) += 1;
        }
        count.values().max().unwrap_or(&0) - count.values().min().unwrap_or(&0)
    }

    #[test]
    fn six_queues_all_led_by_one_node_end_two_each() {
        let nodes = [1, 2, 3];
        let queues: Vec<Led> = (0..6).map(|i| led(&format!("q{i}"), 1, &nodes)).collect();
        let moves = plan(&queues, &nodes);
        assert_eq!(moves.len(), 4);
        assert_eq!(spread(&queues, &moves, &nodes), 0);
    }

    #[test]
    fn a_balanced_cluster_moves_nothing() {
        let nodes = [1, 2, 3];
        let queues = [
            led("a", 1, &nodes),
            led("b", 2, &nodes),
            led("c", 3, &nodes),
        ];
        assert!(plan(&queues, &nodes).is_empty());
    }

    proptest! {
        /// With every queue on every node, leaders end within one of even,
        /// and every move goes to a voter of its queue.
        #[test]
        fn full_replication_always_ends_within_one(leaders in proptest::collection::vec(1u64..=4, 0..30)) {
            let nodes = [1, 2, 3, 4];
            let queues: Vec<Led> = leaders
                .iter()
                .enumerate()
                .map(|(i, l)| led(&format!("q{i}"), *l, &nodes))
                .collect();
            let moves = plan(&queues, &nodes);
            prop_assert!(spread(&queues, &moves, &nodes) <= 1);
            for (q, _, to) in &moves {
                let def = queues.iter().find(|x| &x.queue == q).expect("queue");
                prop_assert!(def.voters.contains(to));
            }
        }
    }
}
