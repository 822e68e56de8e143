//! The metadata group's state: the cluster's identity and its nodes' data
//! dirs, queue definitions and where their replicas live.
//!
//! Pure and deterministic (no I/O, no clocks): every node applies the same log and
//! computes the same placement, so the catalog never needs a coordinator.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::ids::{GroupId, NodeId};

pub const MAX_QUEUE_NAME_LEN: usize = 200;
pub const DEFAULT_REPLICAS: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum QueueKind {
    #[default]
    Work,
    Stream,
}

/// How many replicas a queue asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplicaCount {
    Count(u32),
    All,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueSpec {
    pub kind: QueueKind,
    pub replicas: ReplicaCount,
    pub options: raftq_queue::QueueOptions,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueDef {
    pub name: String,
    pub group: GroupId,
    pub spec: QueueSpec,
    /// Node ids that should hold a replica. The group's leader moves its Raft
    /// membership towards this set, learner first.
    pub replicas: Vec<NodeId>,
    /// The replicas the group was created with: only they initialize it; a
    /// replica added later waits to be added by the leader.
    pub initial_replicas: Vec<NodeId>,
    /// Where the first leader should be (min-leaders placement).
    pub preferred_leader: NodeId,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum CatalogCommand {
    CreateQueue {
        name: String,
        spec: QueueSpec,
    },
    DeleteQueue {
        name: String,
    },
    /// Names the cluster, once: the first metadata leader proposes it, and
    /// every data dir of the cluster records it.
    InitCluster {
        cluster_id: String,
    },
    /// The incarnation of a node's data dir, as the node reported it.
    RegisterNode {
        node: NodeId,
        incarnation: u64,
    },
    /// Takes a node out of the cluster for good: its replicas move to other
    /// nodes where there are any, and its id is never accepted again.
    RemoveNode {
        node: NodeId,
    },
    AddReplica {
        name: String,
        node: NodeId,
    },
    RemoveReplica {
        name: String,
        node: NodeId,
    },
    /// Grows or shrinks a queue to this many replicas, placed min-leaders.
    ResizeQueue {
        name: String,
        replicas: u32,
    },
    /// Brings a queue back to its replica count on live nodes: replicas on
    /// the `down` nodes move to others, and missing ones are added (see
    /// [`crate::meta::heal`]).
    HealQueue {
        name: String,
        down: Vec<NodeId>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum CatalogOutcome {
    Created(QueueDef),
    AlreadyExists(QueueDef),
    Deleted(QueueDef),
    NotFound,
    Invalid(String),
    /// The cluster's id (the one just set, or the one it already had).
    ClusterId(String),
    Registered,
    /// A queue's replica set as it is now.
    Replicas(QueueDef),
    /// A node removed: the queues whose replicas moved off it.
    NodeRemoved(Vec<QueueDef>),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    queues: BTreeMap<String, QueueDef>,
    next_group: GroupId,
    cluster_id: Option<String>,
    /// Each node's data dir incarnation: a node starting with a data dir of
    /// another incarnation lost its votes and is refused under that id.
    incarnations: BTreeMap<NodeId, u64>,
    /// Removed nodes: their ids are never accepted again.
    removed: BTreeSet<NodeId>,
}

/// Why a queue name is refused, or `None` when it is fine.
pub fn invalid_queue_name(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("queue name must not be empty".into());
    }
    if name.len() > MAX_QUEUE_NAME_LEN {
        return Some(format!(
            "queue name is longer than {MAX_QUEUE_NAME_LEN} bytes"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Some(format!(
            "queue name {name:?} may only contain ASCII letters, digits, '.', '-' and '_'"
        ));
    }
    None
}

impl Catalog {
    pub fn queue(&self, name: &str) -> Option<&QueueDef> {
        self.queues.get(name)
    }

    pub fn queues(&self) -> impl Iterator<Item = &QueueDef> {
        self.queues.values()
    }

    pub fn cluster_id(&self) -> Option<&str> {
        self.cluster_id.as_deref()
    }

    pub fn incarnation(&self, node: NodeId) -> Option<u64> {
        self.incarnations.get(&node).copied()
    }

    pub fn is_removed(&self, node: NodeId) -> bool {
        self.removed.contains(&node)
    }

    /// True once this catalog has applied the creation of `group` (group ids
    /// are never reused, so a seen group without a queue was deleted).
    pub fn has_seen_group(&self, group: GroupId) -> bool {
        group <= self.next_group
    }

    pub fn by_group(&self, group: GroupId) -> Option<&QueueDef> {
        self.queues.values().find(|q| q.group == group)
    }

    /// `nodes` are the voters of the metadata group, which come from the same log,
    /// so placement stays a deterministic function of the log.
    pub fn apply(&mut self, cmd: CatalogCommand, nodes: &[NodeId]) -> CatalogOutcome {
        match cmd {
            CatalogCommand::CreateQueue { name, spec } => self.create(name, spec, nodes),
            CatalogCommand::DeleteQueue { name } => match self.queues.remove(&name) {
                Some(def) => CatalogOutcome::Deleted(def),
                None => CatalogOutcome::NotFound,
            },
            CatalogCommand::InitCluster { cluster_id } => {
                CatalogOutcome::ClusterId(self.cluster_id.get_or_insert(cluster_id).clone())
            }
            CatalogCommand::RegisterNode { node, incarnation } => self.register(node, incarnation),
            CatalogCommand::RemoveNode { node } => self.remove_node(node, nodes),
            CatalogCommand::AddReplica { name, node } => {
                self.change_replicas(&name, |def, catalog| {
                    if def.replicas.contains(&node) {
                        return Ok(());
                    }
                    if !nodes.contains(&node) || catalog.removed.contains(&node) {
                        return Err(format!("node {node} is not a member of the cluster"));
                    }
                    def.replicas.push(node);
                    if def.replicas.len() > catalog.wanted_replicas(&def.spec, nodes) {
                        def.spec.replicas = ReplicaCount::Count(def.replicas.len() as u32);
                    }
                    Ok(())
                })
            }
            CatalogCommand::RemoveReplica { name, node } => {
                self.change_replicas(&name, |def, _| {
                    if !def.replicas.contains(&node) {
                        return Ok(());
                    }
                    if def.replicas.len() == 1 {
                        return Err(format!(
                            "node {node} holds the only replica of queue '{}'",
                            def.name
                        ));
                    }
                    def.replicas.retain(|r| *r != node);
                    // The operator asked for one fewer: healing must not add
                    // it back elsewhere.
                    def.spec.replicas = ReplicaCount::Count(def.replicas.len() as u32);
                    Ok(())
                })
            }
            CatalogCommand::HealQueue { name, down } => {
                crate::meta::heal::apply(self, &name, &down, nodes)
            }
            CatalogCommand::ResizeQueue { name, replicas } => {
                let candidates = self.live_nodes(nodes);
                self.change_replicas(&name, |def, catalog| {
                    if replicas == 0 {
                        return Err("a queue needs at least one replica".into());
                    }
                    let wanted = replicas as usize;
                    if wanted > candidates.len() {
                        return Err(format!(
                            "queue '{}' cannot have {wanted} replicas: the cluster has {} nodes",
                            def.name,
                            candidates.len()
                        ));
                    }
                    while def.replicas.len() < wanted {
                        let Some(n) = catalog.least_loaded(&candidates, &def.replicas) else {
                            break;
                        };
                        def.replicas.push(n);
                    }
                    while def.replicas.len() > wanted {
                        let Some(n) = catalog.most_loaded(&def.replicas) else {
                            break;
                        };
                        def.replicas.retain(|r| *r != n);
                    }
                    def.spec.replicas = ReplicaCount::Count(replicas);
                    Ok(())
                })
            }
        }
    }

    /// How many replicas `spec` asks for in a cluster of `nodes`.
    pub(super) fn wanted_replicas(&self, spec: &QueueSpec, nodes: &[NodeId]) -> usize {
        let members = self.live_nodes(nodes).len();
        match spec.replicas {
            ReplicaCount::All => members,
            ReplicaCount::Count(0) => DEFAULT_REPLICAS as usize,
            ReplicaCount::Count(n) => n as usize,
        }
        .min(members)
    }

    /// Voters of the metadata group that were not removed.
    pub(super) fn live_nodes(&self, nodes: &[NodeId]) -> Vec<NodeId> {
        nodes
            .iter()
            .copied()
            .filter(|n| !self.removed.contains(n))
            .collect()
    }

    fn hosted(&self) -> BTreeMap<NodeId, usize> {
        let mut hosted = BTreeMap::new();
        for q in self.queues.values() {
            for r in &q.replicas {
                *hosted.entry(*r).or_insert(0) += 1;
            }
        }
        hosted
    }

    /// The candidate not in `taken` hosting the fewest replicas (lowest id first).
    pub(super) fn least_loaded(&self, candidates: &[NodeId], taken: &[NodeId]) -> Option<NodeId> {
        let hosted = self.hosted();
        candidates
            .iter()
            .copied()
            .filter(|n| !taken.contains(n))
            .min_by_key(|n| (hosted.get(n).copied().unwrap_or(0), *n))
    }

    /// Of `replicas`, the one on the node hosting the most (highest id first).
    fn most_loaded(&self, replicas: &[NodeId]) -> Option<NodeId> {
        let hosted = self.hosted();
        replicas
            .iter()
            .copied()
            .max_by_key(|n| (hosted.get(n).copied().unwrap_or(0), *n))
    }

    pub(super) fn change_replicas(
        &mut self,
        name: &str,
        change: impl FnOnce(&mut QueueDef, &Catalog) -> Result<(), String>,
    ) -> CatalogOutcome {
        let Some(mut def) = self.queues.get(name).cloned() else {
            return CatalogOutcome::NotFound;
        };
        if let Err(why) = change(&mut def, self) {
            return CatalogOutcome::Invalid(why);
        }
        def.replicas.sort_unstable();
        if !def.replicas.contains(&def.preferred_leader) {
            if let Some(first) = def.replicas.first() {
                def.preferred_leader = *first;
            }
        }
        self.queues.insert(def.name.clone(), def.clone());
        CatalogOutcome::Replicas(def)
    }

    fn remove_node(&mut self, node: NodeId, nodes: &[NodeId]) -> CatalogOutcome {
        if let Some(only) = self.queues.values().find(|q| q.replicas == [node]) {
            return CatalogOutcome::Invalid(format!(
                "node {node} holds the only replica of queue '{}': delete the queue or add a \
                 replica elsewhere first",
                only.name
            ));
        }
        self.removed.insert(node);
        let candidates = self.live_nodes(nodes);
        let affected: Vec<String> = self
            .queues
            .values()
            .filter(|q| q.replicas.contains(&node))
            .map(|q| q.name.clone())
            .collect();
        let mut moved = Vec::new();
        for name in affected {
            let outcome = self.change_replicas(&name, |def, catalog| {
                def.replicas.retain(|r| *r != node);
                if let Some(n) = catalog.least_loaded(&candidates, &def.replicas) {
                    def.replicas.push(n);
                }
                Ok(())
            });
            if let CatalogOutcome::Replicas(def) = outcome {
                moved.push(def);
            }
        }
        CatalogOutcome::NodeRemoved(moved)
    }

    fn register(&mut self, node: NodeId, incarnation: u64) -> CatalogOutcome {
        if self.removed.contains(&node) {
            return CatalogOutcome::Invalid(format!("node {node} was removed from the cluster"));
        }
        match self.incarnations.get(&node) {
            Some(known) if *known != incarnation => CatalogOutcome::Invalid(format!(
                "node {node} is registered with another data dir (incarnation {known})"
            )),
            Some(_) => CatalogOutcome::Registered,
            None => {
                self.incarnations.insert(node, incarnation);
                CatalogOutcome::Registered
            }
        }
    }

    fn create(&mut self, name: String, spec: QueueSpec, nodes: &[NodeId]) -> CatalogOutcome {
        if let Some(reason) = invalid_queue_name(&name) {
            return CatalogOutcome::Invalid(reason);
        }
        if let Some(existing) = self.queues.get(&name) {
            return CatalogOutcome::AlreadyExists(existing.clone());
        }
        if nodes.is_empty() {
            return CatalogOutcome::Invalid("the cluster has no nodes".into());
        }
        let wanted = match spec.replicas {
            ReplicaCount::All => nodes.len(),
            ReplicaCount::Count(0) => DEFAULT_REPLICAS as usize,
            ReplicaCount::Count(n) => n as usize,
        }
        .min(nodes.len());
        let (replicas, preferred_leader) = self.place(nodes, wanted);
        self.next_group += 1;
        let def = QueueDef {
            name: name.clone(),
            group: self.next_group,
            spec,
            initial_replicas: replicas.clone(),
            replicas,
            preferred_leader,
        };
        self.queues.insert(name, def.clone());
        CatalogOutcome::Created(def)
    }

    /// min-leaders placement: replicas on the nodes hosting the fewest replicas,
    /// the first leader on the chosen node leading the fewest queues.
    fn place(&self, nodes: &[NodeId], wanted: usize) -> (Vec<NodeId>, NodeId) {
        let mut hosted: BTreeMap<NodeId, usize> = nodes.iter().map(|n| (*n, 0)).collect();
        let mut leading: BTreeMap<NodeId, usize> = hosted.clone();
        for q in self.queues.values() {
            for r in &q.replicas {
                if let Some(c) = hosted.get_mut(r) {
                    *c += 1;
                }
            }
            if let Some(c) = leading.get_mut(&q.preferred_leader) {
                *c += 1;
            }
        }
        let mut candidates: Vec<NodeId> = nodes.to_vec();
        // Rotating the tie-break by group number spreads equal-load choices.
        let rotation = self.next_group as usize % nodes.len().max(1);
        candidates.rotate_left(rotation);
        candidates.sort_by_key(|n| hosted.get(n).copied().unwrap_or(0));
        candidates.truncate(wanted);
        let leader = candidates
            .iter()
            .copied()
            .min_by_key(|n| (leading.get(n).copied().unwrap_or(0), *n))
            .unwrap_or_default();
        candidates.sort_unstable();
        (candidates, leader)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(replicas: ReplicaCount) -> QueueSpec {
        QueueSpec {
            kind: QueueKind::Work,
            replicas,
            options: raftq_queue::QueueOptions::default(),
        }
    }

    #[test]
    fn leaders_spread_evenly_over_nodes() {
        let mut c = Catalog::default();
        let nodes = [1, 2, 3];
        for i in 0..9 {
            let out = c.apply(
                CatalogCommand::CreateQueue {
                    name: format!("q{i}"),
                    spec: spec(ReplicaCount::Count(3)),
                },
                &nodes,
            );
            assert!(matches!(out, CatalogOutcome::Created(_)));
        }
        let mut leads = BTreeMap::new();
        for q in c.queues() {
            *leads.entry(q.preferred_leader).or_insert(0) += 1;
            assert_eq!(q.replicas, vec![1, 2, 3]);
        }
        assert_eq!(leads.values().copied().collect::<Vec<_>>(), vec![3, 3, 3]);
    }

    #[test]
    fn replicas_spread_when_fewer_than_nodes() {
        let mut c = Catalog::default();
        let nodes = [1, 2, 3, 4, 5];
        for i in 0..5 {
            c.apply(
                CatalogCommand::CreateQueue {
                    name: format!("q{i}"),
                    spec: spec(ReplicaCount::Count(3)),
                },
                &nodes,
            );
        }
        let mut hosted = BTreeMap::new();
        for q in c.queues() {
            assert_eq!(q.replicas.len(), 3);
            assert!(q.replicas.contains(&q.preferred_leader));
            for r in &q.replicas {
                *hosted.entry(*r).or_insert(0) += 1;
            }
        }
        assert_eq!(
            hosted.values().copied().collect::<Vec<_>>(),
            vec![3, 3, 3, 3, 3]
        );
    }

    #[test]
    fn duplicate_and_invalid_names_change_nothing() {
        let mut c = Catalog::default();
        let nodes = [1, 2, 3];
        c.apply(
            CatalogCommand::CreateQueue {
                name: "a".into(),
                spec: spec(ReplicaCount::All),
            },
            &nodes,
        );
        let before = c.clone();
        assert!(matches!(
            c.apply(
                CatalogCommand::CreateQueue {
                    name: "a".into(),
                    spec: spec(ReplicaCount::Count(1))
                },
                &nodes
            ),
            CatalogOutcome::AlreadyExists(_)
        ));
        assert!(matches!(
            c.apply(
                CatalogCommand::CreateQueue {
                    name: "bad name".into(),
                    spec: spec(ReplicaCount::All)
                },
                &nodes
            ),
            CatalogOutcome::Invalid(_)
        ));
        assert!(matches!(
            c.apply(
                CatalogCommand::CreateQueue {
                    name: String::new(),
                    spec: spec(ReplicaCount::All)
                },
                &nodes
            ),
            CatalogOutcome::Invalid(_)
        ));
        assert_eq!(c, before);
    }

    #[test]
    fn replica_count_is_capped_by_cluster_size() {
        let mut c = Catalog::default();
        let out = c.apply(
            CatalogCommand::CreateQueue {
                name: "a".into(),
                spec: spec(ReplicaCount::Count(7)),
            },
            &[1, 2, 3],
        );
        match out {
            CatalogOutcome::Created(def) => assert_eq!(def.replicas, vec![1, 2, 3]),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn the_cluster_is_named_once_and_a_node_keeps_its_first_data_dir() {
        let mut c = Catalog::default();
        let init = |id: &str| CatalogCommand::InitCluster {
            cluster_id: id.into(),
        };
        assert!(matches!(c.apply(init("a"), &[1]), CatalogOutcome::ClusterId(id) if id == "a"));
        assert!(matches!(c.apply(init("b"), &[1]), CatalogOutcome::ClusterId(id) if id == "a"));
        let reg = |incarnation| CatalogCommand::RegisterNode {
            node: 2,
            incarnation,
        };
        assert!(matches!(c.apply(reg(7), &[1]), CatalogOutcome::Registered));
        assert!(matches!(c.apply(reg(7), &[1]), CatalogOutcome::Registered));
        assert!(matches!(c.apply(reg(8), &[1]), CatalogOutcome::Invalid(_)));
        assert_eq!(c.incarnation(2), Some(7));
    }

    fn created(c: &mut Catalog, name: &str, n: u32, nodes: &[NodeId]) -> QueueDef {
        let cmd = CatalogCommand::CreateQueue {
            name: name.into(),
            spec: spec(ReplicaCount::Count(n)),
        };
        match c.apply(cmd, nodes) {
            CatalogOutcome::Created(def) => def,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn removing_a_node_moves_its_replicas_to_the_least_loaded_others_for_good() {
        let mut c = Catalog::default();
        let nodes = [1, 2, 3, 4];
        let a = created(&mut c, "a", 3, &nodes);
        assert_eq!(a.replicas, vec![1, 2, 3]);
        let out = c.apply(CatalogCommand::RemoveNode { node: 2 }, &nodes);
        let CatalogOutcome::NodeRemoved(moved) = out else {
            panic!("{out:?}")
        };
        assert_eq!(moved[0].replicas, vec![1, 3, 4]);
        assert_eq!(moved[0].initial_replicas, vec![1, 2, 3]);
        assert!(c.is_removed(2));
        let back = c.apply(
            CatalogCommand::RegisterNode {
                node: 2,
                incarnation: 1,
            },
            &nodes,
        );
        assert!(matches!(back, CatalogOutcome::Invalid(_)), "{back:?}");
        let add = c.apply(
            CatalogCommand::AddReplica {
                name: "a".into(),
                node: 2,
            },
            &nodes,
        );
        assert!(matches!(add, CatalogOutcome::Invalid(_)), "{add:?}");
    }

    #[test]
    fn a_queue_grows_onto_the_least_loaded_nodes_and_shrinks_off_the_most_loaded() {
        let mut c = Catalog::default();
        let nodes = [1, 2, 3, 4, 5];
        created(&mut c, "a", 3, &[1, 2, 3]);
        created(&mut c, "b", 1, &[1, 2, 3]);
        let resize = |c: &mut Catalog, n| {
            c.apply(
                CatalogCommand::ResizeQueue {
                    name: "a".into(),
                    replicas: n,
                },
                &nodes,
            )
        };
        let CatalogOutcome::Replicas(grown) = resize(&mut c, 5) else {
            panic!()
        };
        assert_eq!(grown.replicas, vec![1, 2, 3, 4, 5]);
        let CatalogOutcome::Replicas(shrunk) = resize(&mut c, 3) else {
            panic!()
        };
        assert_eq!(shrunk.replicas.len(), 3);
        assert!(matches!(resize(&mut c, 0), CatalogOutcome::Invalid(_)));
        assert!(matches!(resize(&mut c, 6), CatalogOutcome::Invalid(_)));
    }

    #[test]
    fn the_only_replica_of_a_queue_is_never_removed() {
        let mut c = Catalog::default();
        created(&mut c, "solo", 1, &[1, 2]);
        let holder = c.queue("solo").map(|q| q.replicas[0]).unwrap_or_default();
        let out = c.apply(CatalogCommand::RemoveNode { node: holder }, &[1, 2]);
        assert!(matches!(out, CatalogOutcome::Invalid(_)), "{out:?}");
        assert!(!c.is_removed(holder));
    }
}
