//! A raftqd node: its store, its Raft groups, and what they share (peer
//! channels, failover, sessions, metrics, alarms). Only data and lookups: the
//! tasks that run on a node are started by `boot`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openraft::ServerState;
use parking_lot::RwLock;
use raftq_store::{Identity, NodeStore};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::alarms::Alarms;
use crate::api::publish_key::KeySource;
use crate::auth::guard::Guard;
use crate::config::Config;
use crate::failover::handle::Failover;
use crate::failover::supervisor::Settings;
use crate::leader::proposal_order::ProposalOrder;
use crate::leader::sessions::Sessions;
use crate::meta::catalog::{Catalog, QueueDef};
use crate::metrics::{NodeMetrics, QueueCounters};
use crate::raft::state_machine::{GroupShared, GroupState, SnapshotRequests, StateMachine};
use crate::raft::transport::client::NetworkFactory;
use crate::raft::transport::pool::ChannelPool;
use crate::raft::types::{GroupId, NodeId, Raft, METADATA_GROUP};
use crate::repair::book::DamageBook;
use crate::tls::reload::Reloading;

/// One Raft group running on this node.
pub struct Group {
    pub id: GroupId,
    pub raft: Raft,
    pub shared: Arc<GroupShared>,
    /// Term in which this node, as leader, has committed `ResetConsumers`: consumers
    /// may attach only once it equals the current term, so the reset can never
    /// detach a consumer of the same term.
    pub consumers_ready_term: AtomicU64,
    pub counters: QueueCounters,
    /// Puts an idempotent producer's pipelined publishes in sequence order.
    pub proposal_order: ProposalOrder,
    /// Set while this node, as leader, hands the group to another node: it
    /// proposes nothing meanwhile, so the followers' leases can run out.
    pub transferring: std::sync::atomic::AtomicBool,
    /// The leader upkeep task of a queue group (see `leader::upkeep`).
    upkeep: parking_lot::Mutex<Option<JoinHandle<()>>>,
}

impl Group {
    /// Runs `task` as this group's upkeep until the group stops.
    pub(crate) fn set_upkeep(&self, task: JoinHandle<()>) {
        if let Some(old) = self.upkeep.lock().replace(task) {
            old.abort();
        }
    }

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
    id: NodeId,
    config: Config,
    store: NodeStore,
    pool: Arc<ChannelPool>,
    failover: Arc<Failover>,
    sessions: Arc<Sessions>,
    metrics: Arc<NodeMetrics>,
    publish_keys: KeySource,
    alarms: Alarms,
    /// Who this data dir belongs to (see `meta::identity`).
    identity: parking_lot::Mutex<Identity>,
    /// Data dir incarnations peers reported in their node heartbeats.
    peer_incarnations: parking_lot::Mutex<HashMap<NodeId, u64>>,
    raft_config: Arc<openraft::Config>,
    snapshot_requests: SnapshotRequests,
    groups: RwLock<HashMap<GroupId, Arc<Group>>>,
    /// `None`: plaintext.
    tls: Option<Arc<Reloading>>,
    /// `None`: no authentication.
    auth: Option<Arc<Guard>>,
    /// Replicas here (and on peers, as heard) whose data failed its checks.
    damage: DamageBook,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("storage: {0}")]
    Store(#[from] raftq_store::StoreError),
    #[error("raft: {0}")]
    Raft(String),
    #[error(
        "this data dir is empty: start it with --initial-cluster (a new cluster) or --join (a new node of a running cluster)"
    )]
    NotBootstrapped,
    #[error("refusing to start: {0}")]
    Refused(String),
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("the replica of group {group} on this node is damaged: {why}")]
    Damaged { group: GroupId, why: String },
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
    /// A node over its opened store; the groups start later (see `boot`).
    /// Snapshot requests of its state machines arrive on the returned receiver.
    pub(crate) fn new(
        config: Config,
        store: NodeStore,
        identity: Identity,
        tls: Option<Arc<Reloading>>,
        auth: Option<Arc<Guard>>,
    ) -> Result<(Self, mpsc::UnboundedReceiver<GroupId>), StartError> {
        let raft_config = Arc::new(config.raft_config()?);
        let (to_node, requests) = mpsc::unbounded_channel();
        let node = Node {
            id: config.id,
            store,
            pool: Arc::new(ChannelPool::new(tls.clone())),
            failover: Arc::new(Failover::new(Settings {
                me: config.id,
                lease: Duration::from_millis(config.election_timeout_max_ms),
            })),
            sessions: Arc::new(Sessions::default()),
            metrics: Arc::new(NodeMetrics::default()),
            publish_keys: KeySource::default(),
            alarms: Alarms::default(),
            identity: parking_lot::Mutex::new(identity),
            peer_incarnations: parking_lot::Mutex::default(),
            raft_config,
            snapshot_requests: SnapshotRequests {
                trigger: config.snapshot_trigger,
                to_node,
            },
            groups: RwLock::new(HashMap::new()),
            tls,
            auth,
            damage: DamageBook::default(),
            config,
        };
        Ok((node, requests))
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Users and rights, when an auth file is configured.
    pub fn auth(&self) -> Option<&Arc<Guard>> {
        self.auth.as_ref()
    }

    /// The node's TLS material, when TLS is on.
    pub fn tls(&self) -> Option<&Arc<Reloading>> {
        self.tls.as_ref()
    }

    pub fn store(&self) -> &NodeStore {
        &self.store
    }

    /// Channels to peers, for Raft traffic and forwarded requests.
    pub fn pool(&self) -> &Arc<ChannelPool> {
        &self.pool
    }

    /// Peer health, quiet groups and early elections (see `failover`).
    pub fn failover(&self) -> &Arc<Failover> {
        &self.failover
    }

    /// Consumer sessions hosted on this node.
    pub fn sessions(&self) -> &Arc<Sessions> {
        &self.sessions
    }

    pub fn metrics(&self) -> &Arc<NodeMetrics> {
        &self.metrics
    }

    /// Names the publish requests this node accepts without producer id.
    pub fn publish_keys(&self) -> &KeySource {
        &self.publish_keys
    }

    /// This node's memory and disk alarms, and its peers' as heard.
    pub fn alarms(&self) -> &Alarms {
        &self.alarms
    }

    /// Damaged replicas here and on the peers (see `repair`).
    pub fn damage(&self) -> &DamageBook {
        &self.damage
    }

    pub fn identity(&self) -> Identity {
        self.identity.lock().clone()
    }

    /// Records the cluster this data dir belongs to, durably, once known.
    pub(crate) fn record_cluster_id(&self, cluster_id: &str) -> Result<(), StartError> {
        let mut identity = self.identity.lock();
        if identity.cluster_id.as_deref() == Some(cluster_id) {
            return Ok(());
        }
        let mut recorded = identity.clone();
        recorded.cluster_id = Some(cluster_id.to_string());
        self.store.record_identity(&recorded)?;
        *identity = recorded;
        Ok(())
    }

    pub(crate) fn heard_incarnation(&self, peer: NodeId, incarnation: u64) {
        self.peer_incarnations.lock().insert(peer, incarnation);
    }

    /// Data dir incarnations of this node and of the peers heard from.
    pub(crate) fn incarnations(&self) -> Vec<(NodeId, u64)> {
        let mut known: Vec<(NodeId, u64)> = self
            .peer_incarnations
            .lock()
            .iter()
            .map(|(n, i)| (*n, *i))
            .collect();
        known.push((self.id, self.identity.lock().incarnation));
        known.sort_unstable();
        known
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
        if self.damage.is_damaged(id) {
            return Err(StartError::Damaged {
                group: id,
                why: "waiting to be rebuilt".into(),
            });
        }
        if let Err(damage) = self.store.inspect_group(id) {
            return Err(self.found_damage(id, damage.to_string()));
        }
        let damaged = |e: raftq_store::StoreError| {
            if e.is_damage() {
                self.found_damage(id, e.to_string())
            } else {
                StartError::Store(e)
            }
        };
        let shared = GroupShared::new(id, initial);
        let sm = StateMachine::open(
            shared.clone(),
            self.store.snapshot_store(id).map_err(damaged)?,
            self.sessions.clone(),
            self.snapshot_requests.clone(),
        )
        .map_err(damaged)?;
        let log = self
            .store
            .log_store(id)
            .map_err(damaged)?
            .with_entry_size(crate::raft::types::entry_bytes);
        let network = NetworkFactory {
            group: id,
            self_id: self.id,
            pool: self.pool.clone(),
            failover: self.failover.clone(),
            heartbeat: Duration::from_millis(self.config.heartbeat_ms),
        };
        // What openraft fails to read back at start (a commit point past the
        // log, say) is this replica's damage, not the node's.
        let raft = Raft::new(self.id, self.raft_config.clone(), network, log, sm)
            .await
            .map_err(|e| match e {
                openraft::error::Fatal::StorageError(e) => {
                    self.found_damage(id, format!("reading it back at start: {e}"))
                }
                e => StartError::Raft(e.to_string()),
            })?;
        let group = Arc::new(Group {
            id,
            raft,
            shared,
            consumers_ready_term: AtomicU64::new(0),
            counters: Default::default(),
            proposal_order: Default::default(),
            transferring: Default::default(),
            upkeep: parking_lot::Mutex::new(None),
        });
        self.groups.write().insert(id, group.clone());
        Ok(group)
    }

    /// Records damage found in group `id`'s replica here, naming it in one
    /// line the first time; the replica stays out of Raft until rebuilt.
    pub(crate) fn found_damage(&self, id: GroupId, why: String) -> StartError {
        if self.damage.found(id, why.clone()) {
            self.metrics.damage_found.inc();
            let queue = self
                .with_catalog(|c| c.by_group(id).map(|d| d.name.clone()))
                .flatten()
                .unwrap_or_default();
            tracing::error!(
                node = self.id,
                %queue,
                group = id,
                "damaged replica: {why}; it will not vote or acknowledge for this group until \
                 rebuilt from the other replicas"
            );
        }
        StartError::Damaged { group: id, why }
    }

    /// Stops a running group whose storage failed, keeping its data for the
    /// rebuild to discard once the group's leader has let it go.
    pub(crate) async fn take_out_damaged(&self, id: GroupId, why: String) {
        if self.halt_group(id).await {
            let _ = self.found_damage(id, why);
        }
    }

    /// Stops a deleted queue's group and removes its data.
    pub(crate) async fn stop_group(&self, id: GroupId) {
        if self.halt_group(id).await {
            if let Err(e) = self.store.remove_group(id) {
                tracing::warn!(group = id, "cannot remove data of deleted group: {e}");
            }
        }
    }

    /// Takes group `id` out of the node and stops its Raft, upkeep and
    /// consumer sessions; false when it was not running.
    async fn halt_group(&self, id: GroupId) -> bool {
        let Some(group) = self.groups.write().remove(&id) else {
            return false;
        };
        if let Some(upkeep) = group.upkeep.lock().take() {
            upkeep.abort();
        }
        self.sessions.close_group(id);
        let _ = group.raft.shutdown().await;
        true
    }

    /// Stops every Raft group (after [`crate::failover::driver::hand_off_leadership`]).
    pub async fn shutdown(&self) {
        for group in self.groups() {
            let _ = group.raft.shutdown().await;
        }
    }
}
