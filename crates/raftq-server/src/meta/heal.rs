//! Self-healing of replica placement: which queues are short of healthy
//! replicas, and where their new ones go. Pure: the metadata leader decides
//! which nodes count as down and proposes a [`CatalogCommand::HealQueue`] per
//! queue; applying it is deterministic, so every node places alike.
//!
//! A replica on a down node moves only while the queue's other replicas are
//! a majority of it: without a quorum the group cannot change its membership
//! anyway, and the move would only churn the catalog. New replicas go to the
//! least-loaded live nodes (the placement rule of `create`).

use std::collections::BTreeSet;

use crate::ids::NodeId;
use crate::meta::catalog::{Catalog, CatalogCommand, CatalogOutcome, QueueDef};

/// The commands that bring every queue back to its replica count on nodes
/// that are not `down`; empty when there is nothing to do or nowhere to go.
pub fn plan(catalog: &Catalog, nodes: &[NodeId], down: &BTreeSet<NodeId>) -> Vec<CatalogCommand> {
    let down_list: Vec<NodeId> = down.iter().copied().collect();
    catalog
        .queues()
        .filter(|q| !target(catalog, q, nodes, down).is_empty())
        .map(|q| CatalogCommand::HealQueue {
            name: q.name.clone(),
            down: down_list.clone(),
        })
        .collect()
}

/// Applies a [`CatalogCommand::HealQueue`].
pub(super) fn apply(
    catalog: &mut Catalog,
    name: &str,
    down: &[NodeId],
    nodes: &[NodeId],
) -> CatalogOutcome {
    let down: BTreeSet<NodeId> = down.iter().copied().collect();
    catalog.change_replicas(name, |def, catalog| {
        let changes = target(catalog, def, nodes, &down);
        for change in changes {
            match change {
                Change::Replace { from, to } => {
                    def.replicas.retain(|r| *r != from);
                    def.replicas.push(to);
                }
                Change::Add(to) => def.replicas.push(to),
            }
        }
        Ok(())
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Replace { from: NodeId, to: NodeId },
    Add(NodeId),
}

/// The changes that heal `def`, in order.
fn target(
    catalog: &Catalog,
    def: &QueueDef,
    nodes: &[NodeId],
    down: &BTreeSet<NodeId>,
) -> Vec<Change> {
    let candidates: Vec<NodeId> = catalog
        .live_nodes(nodes)
        .into_iter()
        .filter(|n| !down.contains(n))
        .collect();
    let mut replicas = def.replicas.clone();
    let mut changes = Vec::new();
    let healthy = replicas.iter().filter(|r| !down.contains(r)).count();
    if healthy * 2 > replicas.len() {
        let on_down: Vec<NodeId> = replicas
            .iter()
            .copied()
            .filter(|r| down.contains(r))
            .collect();
        for from in on_down {
            let Some(to) = catalog.least_loaded(&candidates, &replicas) else {
                break;
            };
            replicas.retain(|r| *r != from);
            replicas.push(to);
            changes.push(Change::Replace { from, to });
        }
    }
    let wanted = catalog.wanted_replicas(&def.spec, nodes);
    while replicas.len() < wanted {
        let Some(to) = catalog.least_loaded(&candidates, &replicas) else {
            break;
        };
        replicas.push(to);
        changes.push(Change::Add(to));
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::catalog::{QueueKind, QueueSpec, ReplicaCount};
    use proptest::prelude::*;

    fn create(c: &mut Catalog, name: &str, n: u32, nodes: &[NodeId]) {
        let spec = QueueSpec {
            kind: QueueKind::Work,
            replicas: ReplicaCount::Count(n),
            options: raftq_queue::QueueOptions::default(),
        };
        let out = c.apply(
            CatalogCommand::CreateQueue {
                name: name.into(),
                spec,
            },
            nodes,
        );
        assert!(matches!(out, CatalogOutcome::Created(_)), "{out:?}");
    }

    fn heal(c: &mut Catalog, nodes: &[NodeId], down: &[NodeId]) {
        let down: BTreeSet<NodeId> = down.iter().copied().collect();
        for cmd in plan(c, nodes, &down) {
            c.apply(cmd, nodes);
        }
    }

    fn replicas(c: &Catalog, name: &str) -> Vec<NodeId> {
        c.queue(name)
            .map(|q| q.replicas.clone())
            .unwrap_or_default()
    }

    #[test]
    fn a_down_nodes_replicas_move_to_the_spare_node() {
        let mut c = Catalog::default();
        create(&mut c, "a", 3, &[1, 2, 3]);
        let nodes = [1, 2, 3, 4];
        heal(&mut c, &nodes, &[2]);
        assert_eq!(replicas(&c, "a"), vec![1, 3, 4]);
        assert!(
            plan(&c, &nodes, &BTreeSet::from([2])).is_empty(),
            "healed once"
        );
    }

    #[test]
    fn nothing_moves_without_a_spare_node_or_without_a_majority() {
        let mut c = Catalog::default();
        create(&mut c, "a", 3, &[1, 2, 3]);
        assert!(plan(&c, &[1, 2, 3], &BTreeSet::from([3])).is_empty());
        let nodes = [1, 2, 3, 4, 5];
        assert!(
            plan(&c, &nodes, &BTreeSet::from([2, 3])).is_empty(),
            "one of three left: the group cannot change its membership"
        );
    }

    #[test]
    fn a_queue_short_of_replicas_grows_when_a_node_joins() {
        let mut c = Catalog::default();
        create(&mut c, "a", 3, &[1, 2]);
        assert_eq!(replicas(&c, "a"), vec![1, 2]);
        heal(&mut c, &[1, 2, 3], &[]);
        assert_eq!(replicas(&c, "a"), vec![1, 2, 3]);
    }

    #[test]
    fn a_replica_the_operator_removed_is_not_added_back() {
        let mut c = Catalog::default();
        let nodes = [1, 2, 3, 4];
        create(&mut c, "a", 3, &nodes);
        let victim = replicas(&c, "a")[0];
        c.apply(
            CatalogCommand::RemoveReplica {
                name: "a".into(),
                node: victim,
            },
            &nodes,
        );
        assert!(plan(&c, &nodes, &BTreeSet::new()).is_empty());
    }

    proptest! {
        /// Whatever is down, healing never places a replica on a down or
        /// removed node, never duplicates one, never exceeds the count, and
        /// never moves a queue that has lost its majority.
        #[test]
        fn healing_keeps_placement_sane(
            sizes in proptest::collection::vec(1u32..6, 1..8),
            down in proptest::collection::btree_set(1u64..8, 0..4),
            extra in 0usize..3,
        ) {
            let first: Vec<NodeId> = (1..=5).collect();
            let mut c = Catalog::default();
            for (i, n) in sizes.iter().enumerate() {
                create(&mut c, &format!("q{i}"), *n, &first);
            }
            let nodes: Vec<NodeId> = (1..=(5 + extra as u64)).collect();
            let before = c.clone();
            heal(&mut c, &nodes, &down.iter().copied().collect::<Vec<_>>());
            for q in c.queues() {
                let old = before.queue(&q.name).map(|d| d.replicas.clone()).unwrap_or_default();
                let set: BTreeSet<NodeId> = q.replicas.iter().copied().collect();
                prop_assert_eq!(set.len(), q.replicas.len(), "duplicate replica");
                prop_assert!(q.replicas.len() <= nodes.len());
                for r in &q.replicas {
                    prop_assert!(nodes.contains(r));
                    prop_assert!(old.contains(r) || !down.contains(r), "placed on a down node");
                }
                let healthy_before = old.iter().filter(|r| !down.contains(r)).count();
                if healthy_before * 2 <= old.len() {
                    for r in &old {
                        prop_assert!(q.replicas.contains(r), "moved without a majority");
                    }
                }
            }
        }
    }
}
