//! What the metadata leader does by itself to keep the cluster whole:
//! - queues short of their replica count (after `remove-node` found no spare
//!   node, or created while the cluster was smaller) get replicas on nodes
//!   that join later: always on, it is what the catalog asks for;
//! - with `--heal-after-secs`, replicas on a node down that long move to live
//!   nodes (`meta::heal` decides where);
//! - with `--rebalance-on-return`, leaders are spread again once a node that
//!   was down has been back for [`SETTLE`].
//!
//! - a membership change an earlier leader left joint is finished first.
//!
//! Only the metadata leader acts, and it only proposes catalog commands and
//! leader transfers: the queue leaders carry out the moves learner first.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::ids::NodeId;
use crate::meta::heal;
use crate::node::Node;
use crate::raft::types::{GroupCommand, GroupResponse};

const EVERY: Duration = Duration::from_secs(1);
/// A returning node first catches its replicas up; leaders moved to it
/// before then would wait for it.
const SETTLE: Duration = Duration::from_secs(10);
/// Shorter outages (a pause, a quick restart) do not call for a rebalance.
const OUTAGE_WORTH_REBALANCING: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Watch {
    /// Since when each member has been down, as this leader saw it.
    down_since: BTreeMap<NodeId, Instant>,
    /// When a node came back from an outage worth a rebalance.
    returned_at: Option<Instant>,
}

pub async fn run(node: Arc<Node>) {
    let mut ticks = tokio::time::interval(EVERY);
    let mut watch = Watch::default();
    loop {
        ticks.tick().await;
        let Some(meta) = node.meta() else { return };
        if !meta.is_leader() {
            // A new leader starts counting afresh: it did not see the outage.
            watch = Watch::default();
            continue;
        }
        if crate::leader::joint::finish_joint_config(&meta, "metadata").await {
            continue;
        }
        let now = Instant::now();
        let members = meta.voter_ids();
        let down = watch.observe(&node, &members, now);
        heal_placement(&node, &members, &down).await;
        if node.config().rebalance_on_return && watch.returned_at.is_some_and(|t| now - t >= SETTLE)
        {
            watch.returned_at = None;
            if !watch.down_since.is_empty() {
                continue;
            }
            match crate::api::membership::rebalance(&node, 0).await {
                Ok(r) => tracing::info!(
                    moves = r.moves.len(),
                    "rebalanced leaders after a node returned"
                ),
                Err(e) => tracing::warn!("rebalancing after a node returned: {e}"),
            }
        }
    }
}

impl Watch {
    /// Updates who is down; returns the members down for longer than
    /// `--heal-after-secs` (none when healing is off).
    fn observe(&mut self, node: &Node, members: &[NodeId], now: Instant) -> BTreeSet<NodeId> {
        for &id in members.iter().filter(|id| **id != node.id()) {
            if node.failover().is_down(id) {
                self.down_since.entry(id).or_insert(now);
            } else if let Some(since) = self.down_since.remove(&id) {
                if now - since >= OUTAGE_WORTH_REBALANCING {
                    tracing::info!(node = id, down_for = ?(now - since), "node is back");
                    self.returned_at = Some(now);
                }
            }
        }
        self.down_since.retain(|id, _| members.contains(id));
        let Some(heal_after) = node.config().heal_after else {
            return BTreeSet::new();
        };
        self.down_since
            .iter()
            .filter(|(_, since)| now - **since >= heal_after)
            .map(|(id, _)| *id)
            .collect()
    }
}

async fn heal_placement(node: &Node, members: &[NodeId], down: &BTreeSet<NodeId>) {
    let Some(commands) = node.with_catalog(|c| heal::plan(c, members, down)) else {
        return;
    };
    let Some(meta) = node.meta() else { return };
    for cmd in commands {
        match meta.raft.client_write(GroupCommand::Catalog(cmd)).await {
            Ok(resp) => {
                if let GroupResponse::Catalog(crate::meta::catalog::CatalogOutcome::Replicas(def)) =
                    resp.data
                {
                    node.metrics().healed_queues.inc();
                    tracing::info!(queue = %def.name, replicas = ?def.replicas, ?down, "re-placed a queue's replicas");
                }
            }
            Err(e) => {
                tracing::debug!("healing write failed: {e}");
                return;
            }
        }
    }
}
