//! A raftqd node: its store, its Raft groups, and the shared peer plumbing.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use parking_lot::RwLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openraft::{BasicNode, ServerState};
use raftq_queue::{StreamLog, WorkQueue};
use raftq_store::NodeStore;
use tokio::task::JoinHandle;

use crate::catalog::{Catalog, QueueDef, QueueKind};
use crate::config::Config;
use crate::failover::supervisor::Settings;
use crate::failover::Failover;
use crate::metrics::NodeMetrics;
use crate::network::client::NetworkFactory;
use crate::network::pool::ChannelPool;
use crate::raft::state_machine::{GroupShared, GroupState, SnapshotRequests, StateMachine};
use crate::raft::types::{GroupId, NodeId, Raft, METADATA_GROUP};
use crate::sessions::Sessions;

/// One Raft group running on this node.
pub struct Group {
    pub id: GroupId,
    pub raft: Raft,
    pub shared: Arc<GroupShared>,
    /// Term in which this node, as leader, has committed `ResetConsumers`: consumers
    /// may attach only once it equals the current term, so the reset can never
    /// detach a consumer of the same term.
    pub consumers_ready_term: AtomicU64,
    pub counters: crate::metrics::QueueCounters,
    /// Puts an idempotent producer's pipelined publishes in sequence order.
    pub proposal_order: crate::proposal_order::ProposalOrder,
    duties: parking_lot::Mutex<Option<JoinHandle<()>>>,
}

impl Group {
    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().state == ServerState::Leader
    }

    pub fn current_term(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }

    pub fn current_leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    /// Voting members of this group, from its own membership.
    pub fn voter_ids(&self) -> Vec<NodeId> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        m.membership_config.membership().voter_ids().collect()
    }

    /// Address of a member of this group, from the group's own membership.
    pub fn member_addr(&self, node: NodeId) -> Option<String> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        m.membership_config
            .membership()
            .get_node(&node)
            .map(|n| n.addr.clone())
    }
}

pub struct Node {
    pub id: NodeId,
    pub config: Config,
    pub store: NodeStore,
    pub pool: Arc<ChannelPool>,
    /// Peer health, quiet groups and early elections (see `failover`).
    pub failover: Arc<Failover>,
    pub sessions: Arc<Sessions>,
    pub metrics: Arc<NodeMetrics>,
    /// Names the publish requests this node accepts without producer id.
    pub publish_keys: crate::api::publish_key::KeySource,
    /// This node's memory and disk alarms, and its peers' as heard.
    pub alarms: crate::alarms::Alarms,
    raft_config: Arc<openraft::Config>,
    snapshot_requests: SnapshotRequests,
    groups: RwLock<HashMap<GroupId, Arc<Group>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("storage: {0}")]
    Store(#[from] raftq_store::StoreError),
    #[error("raft: {0}")]
    Raft(String),
    #[error("this data dir was never bootstrapped: start it with --initial-cluster")]
    NotBootstrapped,
}

/// Leader wall-clock time for commands. Queue state machines never read a clock;
/// the leader stamps this into the log.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Node {
    pub async fn start(config: Config) -> Result<Arc<Self>, StartError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| StartError::Raft(e.to_string()))?;
        let store = NodeStore::open(&config.data_dir)?;
        let raft_config = Arc::new(config.raft_config()?);
        let (to_node, snapshot_requests) = tokio::sync::mpsc::unbounded_channel();
        let node = Arc::new(Node {
            id: config.id,
            store,
            pool: Arc::new(ChannelPool::default()),
            failover: Arc::new(Failover::new(Settings {
                me: config.id,
                lease: Duration::from_millis(config.election_timeout_max_ms),
            })),
            sessions: Arc::new(Sessions::default()),
            metrics: Arc::new(NodeMetrics::default()),
            publish_keys: Default::default(),
            alarms: Default::default(),
            raft_config,
            snapshot_requests: SnapshotRequests {
                trigger: config.snapshot_trigger,
                to_node,
            },
            groups: RwLock::new(HashMap::new()),
            config,
        });
        tokio::spawn(crate::snapshot_requests::run(
            node.clone(),
            snapshot_requests,
        ));
        let meta = node
            .start_group(METADATA_GROUP, GroupState::Catalog(Catalog::default()))
            .await?;
        let initialized = meta
            .raft
            .is_initialized()
            .await
            .map_err(|e| StartError::Raft(e.to_string()))?;
        if !initialized {
            if node.config.initial_cluster.is_empty() {
                return Err(StartError::NotBootstrapped);
            }
            let members: BTreeMap<NodeId, BasicNode> = node
                .config
                .initial_cluster
                .iter()
                .map(|(id, addr)| (*id, BasicNode::new(addr)))
                .collect();
            // Every initial node initializes with the same members, which openraft
            // documents as safe; whoever is already initialized refuses, harmlessly.
            if let Err(e) = meta.raft.initialize(members).await {
                tracing::info!("metadata group already initialized elsewhere: {e}");
            }
        }
        tokio::spawn(crate::reconcile::run(node.clone()));
        tokio::spawn(crate::failover::driver::run(node.clone()));
        tokio::spawn(crate::alarms::monitor::run(node.clone()));
        Ok(node)
    }

    pub fn group(&self, id: GroupId) -> Option<Arc<Group>> {
        self.groups.read().get(&id).cloned()
    }

    pub fn groups(&self) -> Vec<Arc<Group>> {
        self.groups.read().values().cloned().collect()
    }

    pub fn meta(&self) -> Option<Arc<Group>> {
        self.group(METADATA_GROUP)
    }

    /// Runs `f` over the catalog as this node has applied it.
    pub fn with_catalog<T>(&self, f: impl FnOnce(&Catalog) -> T) -> Option<T> {
        let meta = self.meta()?;
        let applied = meta.shared.read();
        match &applied.state {
            GroupState::Catalog(c) => Some(f(c)),
            GroupState::Work(_) | GroupState::Stream(_) => None,
        }
    }

    pub fn queue_def(&self, name: &str) -> Option<QueueDef> {
        self.with_catalog(|c| c.queue(name).cloned()).flatten()
    }

    /// Cluster members and their addresses (metadata group membership).
    pub fn members(&self) -> BTreeMap<NodeId, String> {
        let Some(meta) = self.meta() else {
            return BTreeMap::new();
        };
        let metrics = meta.raft.metrics();
        let m = metrics.borrow();
        m.membership_config
            .membership()
            .nodes()
            .map(|(id, n)| (*id, n.addr.clone()))
            .collect()
    }

    /// Every other member node, with its address.
    pub fn peers(&self) -> Vec<(NodeId, String)> {
        self.members()
            .into_iter()
            .filter(|(id, _)| *id != self.id)
            .collect()
    }

    pub fn node_addr(&self, node: NodeId) -> Option<String> {
        self.members().get(&node).cloned()
    }

    pub(crate) async fn start_group(
        &self,
        id: GroupId,
        initial: GroupState,
    ) -> Result<Arc<Group>, StartError> {
        if let Some(g) = self.group(id) {
            return Ok(g);
        }
        let shared = GroupShared::new(id, initial);
        let sm = StateMachine::open(
            shared.clone(),
            self.store.snapshot_store(id)?,
            self.sessions.clone(),
            self.snapshot_requests.clone(),
        )?;
        let log = self
            .store
            .log_store(id)?
            .with_entry_size(crate::raft::types::entry_bytes);
        let network = NetworkFactory {
            group: id,
            self_id: self.id,
            pool: self.pool.clone(),
            failover: self.failover.clone(),
            heartbeat: Duration::from_millis(self.config.heartbeat_ms),
        };
        let raft = Raft::new(self.id, self.raft_config.clone(), network, log, sm)
            .await
            .map_err(|e| StartError::Raft(e.to_string()))?;
        let group = Arc::new(Group {
            id,
            raft,
            shared,
            consumers_ready_term: AtomicU64::new(0),
            counters: Default::default(),
            proposal_order: Default::default(),
            duties: parking_lot::Mutex::new(None),
        });
        self.groups.write().insert(id, group.clone());
        Ok(group)
    }

    /// Starts (or resumes) a queue's group on this replica.
    pub(crate) async fn start_queue(self: &Arc<Self>, def: &QueueDef) -> Result<(), StartError> {
        if self.group(def.group).is_some() {
            return Ok(());
        }
        let options = def.spec.options.clone();
        let initial = match def.spec.kind {
            QueueKind::Work => GroupState::Work(Box::new(WorkQueue::new(options))),
            QueueKind::Stream => GroupState::Stream(Box::new(StreamLog::new(options))),
        };
        let group = self.start_group(def.group, initial).await?;
        let initialized = group
            .raft
            .is_initialized()
            .await
            .map_err(|e| StartError::Raft(e.to_string()))?;
        if !initialized {
            let members: BTreeMap<NodeId, BasicNode> = def
                .replicas
                .iter()
                .filter_map(|id| Some((*id, BasicNode::new(self.node_addr(*id)?))))
                .collect();
            if let Err(e) = group.raft.initialize(members).await {
                tracing::debug!(group = def.group, "queue group initialized elsewhere: {e}");
            } else if def.preferred_leader == self.id {
                // min-leaders placement: the preferred node campaigns at once, so it
                // normally wins before anyone's election timer fires.
                let _ = group.raft.trigger().elect().await;
            }
        }
        let duties = tokio::spawn(crate::duties::run(
            self.clone(),
            group.clone(),
            def.name.clone(),
        ));
        *group.duties.lock() = Some(duties);
        tracing::info!(queue = %def.name, group = def.group, "queue replica started");
        Ok(())
    }

    /// Stops a deleted queue's group and removes its data.
    pub(crate) async fn stop_group(&self, id: GroupId) {
        let group = self.groups.write().remove(&id);
        if let Some(group) = group {
            if let Some(duties) = group.duties.lock().take() {
                duties.abort();
            }
            self.sessions.close_group(id);
            let _ = group.raft.shutdown().await;
            if let Err(e) = self.store.remove_group(id) {
                tracing::warn!(group = id, "cannot remove data of deleted group: {e}");
            }
        }
    }

    /// Stops every Raft group (after [`crate::failover::driver::hand_off_leadership`]).
    pub async fn shutdown(&self) {
        for group in self.groups() {
            let _ = group.raft.shutdown().await;
        }
    }
}
