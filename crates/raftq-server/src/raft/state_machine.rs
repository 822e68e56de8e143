//! openraft state machine of one group: the catalog (group 0), a work queue or
//! a stream.
//!
//! The state lives in memory behind a lock that readers share. Durability comes
//! from the log plus the latest snapshot: on restart we load the snapshot and
//! openraft re-applies the log after it, so applying never fsyncs on its own.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, BasicNode, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend,
    RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError, StorageIOError, StoredMembership,
};
use raftq_queue::{Effect, StreamLog, WorkQueue};
use raftq_store::{decode_value, encode_value, read_value, PendingSnapshot, SnapshotStore};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch, Notify};

use crate::leader::sessions::Sessions;
use crate::meta::catalog::Catalog;
use crate::raft::snapshot_trigger::{SnapshotTrigger, STATE_BYTES_PER_MESSAGE};
use crate::raft::types::{GroupCommand, GroupId, GroupResponse, TypeConfig};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum GroupState {
    Catalog(Catalog),
    Work(Box<WorkQueue>),
    Stream(Box<StreamLog>),
}

impl GroupState {
    /// About how large a snapshot of this state is, without encoding it.
    pub fn approx_bytes(&self) -> u64 {
        match self {
            // A few hundred bytes per queue definition.
            GroupState::Catalog(c) => 512 * c.queues().count() as u64,
            GroupState::Work(q) => q.bytes() + STATE_BYTES_PER_MESSAGE * (q.ready() + q.unacked()),
            GroupState::Stream(s) => s.bytes() + STATE_BYTES_PER_MESSAGE * s.len(),
        }
    }
}

fn approx_log_bytes(payload: &EntryPayload<TypeConfig>) -> u64 {
    match payload {
        EntryPayload::Normal(GroupCommand::Queue(c)) => c.approx_log_bytes(),
        EntryPayload::Normal(GroupCommand::Catalog(_)) => 512,
        EntryPayload::Blank | EntryPayload::Membership(_) => 64,
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Applied {
    pub state: GroupState,
    pub last_applied: Option<LogId<u64>>,
    pub last_membership: StoredMembership<u64, BasicNode>,
}

impl Applied {
    pub fn voters(&self) -> Vec<u64> {
        self.last_membership.membership().voter_ids().collect()
    }
}

/// What the state machine shares with the rest of the node.
pub struct GroupShared {
    pub group: GroupId,
    applied: RwLock<Applied>,
    /// Last applied log index; waiters use it for read-index reads and to notice
    /// catalog changes.
    pub applied_index: watch::Sender<u64>,
    /// Woken when there are dead letters to hand to their target queue.
    pub dead_letters: Notify,
    /// Log applied since the state the last snapshot holds (estimated bytes).
    /// Changed only under the state lock, so a snapshot's clone and its reset
    /// see the same point of the log.
    log_bytes_since_snapshot: AtomicU64,
    /// A request for a snapshot is on its way to the node's snapshot task:
    /// no second one until that task has passed it to openraft (which ignores
    /// it while a snapshot is being built; the next apply asks again).
    snapshot_requested: AtomicBool,
}

impl GroupShared {
    pub fn new(group: GroupId, state: GroupState) -> Arc<Self> {
        Arc::new(Self {
            group,
            applied: RwLock::new(Applied {
                state,
                last_applied: None,
                last_membership: StoredMembership::default(),
            }),
            applied_index: watch::channel(0).0,
            dead_letters: Notify::new(),
            log_bytes_since_snapshot: AtomicU64::new(0),
            snapshot_requested: AtomicBool::new(false),
        })
    }

    /// The state now in memory is what a snapshot holds: count the log from here.
    fn snapshot_taken(&self) {
        self.log_bytes_since_snapshot.store(0, Ordering::Relaxed);
    }

    /// Log bytes (about) applied since the last snapshot.
    pub fn log_bytes_since_snapshot(&self) -> u64 {
        self.log_bytes_since_snapshot.load(Ordering::Relaxed)
    }

    /// Called by the node's snapshot task once it has asked openraft.
    pub fn snapshot_request_handled(&self) {
        self.snapshot_requested.store(false, Ordering::Relaxed);
    }

    pub fn read(&self) -> RwLockReadGuard<'_, Applied> {
        self.applied.read()
    }

    fn write(&self) -> RwLockWriteGuard<'_, Applied> {
        self.applied.write()
    }

    pub fn last_applied_index(&self) -> u64 {
        *self.applied_index.borrow()
    }
}

/// How state machines ask their node to snapshot a group (openraft builds a
/// snapshot only when its `Raft` handle is asked, which the state machine has
/// not got).
#[derive(Clone)]
pub struct SnapshotRequests {
    pub trigger: SnapshotTrigger,
    pub to_node: mpsc::UnboundedSender<GroupId>,
}

pub struct StateMachine {
    shared: Arc<GroupShared>,
    snapshots: SnapshotStore,
    sessions: Arc<Sessions>,
    snapshot_requests: SnapshotRequests,
    /// The file a snapshot from the leader is being streamed into.
    receiving: Option<PendingSnapshot>,
}

fn snap_err(verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError<u64> {
    StorageIOError::new(ErrorSubject::Snapshot(None), verb, AnyError::error(e)).into()
}

impl StateMachine {
    /// Restores the latest persisted snapshot, if any, into `shared`.
    pub fn open(
        shared: Arc<GroupShared>,
        snapshots: SnapshotStore,
        sessions: Arc<Sessions>,
        snapshot_requests: SnapshotRequests,
    ) -> Result<Self, raftq_store::StoreError> {
        if let Some(stored) = snapshots.load()? {
            let applied: Applied = read_value(&stored.path)?;
            let index = applied.last_applied.map(|l| l.index).unwrap_or(0);
            *shared.write() = applied;
            shared.applied_index.send_replace(index);
        }
        Ok(Self {
            shared,
            snapshots,
            sessions,
            snapshot_requests,
            receiving: None,
        })
    }

    fn request_snapshot_if_due(&self, log_bytes: u64, state_bytes: u64) {
        let requests = &self.snapshot_requests;
        if requests.trigger.is_due(log_bytes, state_bytes)
            && !self.shared.snapshot_requested.swap(true, Ordering::Relaxed)
            && requests.to_node.send(self.shared.group).is_err()
        {
            // The node is shutting down; openraft's entry count still applies.
            self.shared
                .snapshot_requested
                .store(false, Ordering::Relaxed);
        }
    }

    fn dispatch(&self, effects: Vec<Effect>) {
        let mut dead_letters = false;
        for effect in effects {
            match effect {
                Effect::Deliver { consumer, delivery } => self.sessions.deliver(consumer, delivery),
                Effect::DeadLetter(_) => dead_letters = true,
            }
        }
        if dead_letters {
            self.shared.dead_letters.notify_one();
        }
    }
}

fn apply_command(
    applied: &mut Applied,
    cmd: GroupCommand,
    effects: &mut Vec<Effect>,
) -> GroupResponse {
    let voters = applied.voters();
    match (&mut applied.state, cmd) {
        (GroupState::Catalog(catalog), GroupCommand::Catalog(c)) => {
            GroupResponse::Catalog(catalog.apply(c, &voters))
        }
        (GroupState::Work(queue), GroupCommand::Queue(c)) => {
            GroupResponse::Queue(queue.apply(c, effects))
        }
        // A stream has no effects: readers pull from the applied state.
        (GroupState::Stream(stream), GroupCommand::Queue(c)) => {
            GroupResponse::Queue(stream.apply(c))
        }
        _ => GroupResponse::None,
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), StorageError<u64>> {
        let applied = self.shared.read();
        Ok((applied.last_applied, applied.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<GroupResponse>, StorageError<u64>>
    where
        I: IntoIterator<Item = openraft::Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut responses = Vec::new();
        let mut effects = Vec::new();
        let last_index;
        let (log_bytes, state_bytes);
        {
            let mut applied = self.shared.write();
            let mut entry_bytes = 0;
            for entry in entries {
                applied.last_applied = Some(entry.log_id);
                entry_bytes += approx_log_bytes(&entry.payload);
                let response = match entry.payload {
                    EntryPayload::Blank => GroupResponse::None,
                    EntryPayload::Normal(cmd) => apply_command(&mut applied, cmd, &mut effects),
                    EntryPayload::Membership(m) => {
                        applied.last_membership = StoredMembership::new(Some(entry.log_id), m);
                        GroupResponse::None
                    }
                };
                responses.push(response);
            }
            last_index = applied.last_applied.map(|l| l.index).unwrap_or(0);
            log_bytes = self
                .shared
                .log_bytes_since_snapshot
                .fetch_add(entry_bytes, Ordering::Relaxed)
                + entry_bytes;
            state_bytes = applied.state.approx_bytes();
        }
        self.request_snapshot_if_due(log_bytes, state_bytes);
        // Effects go out after the lock is released so a slow consumer channel can
        // never hold up readers.
        self.dispatch(effects);
        self.shared.applied_index.send_replace(last_index);
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            shared: self.shared.clone(),
            snapshots: self.snapshots.clone(),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<tokio::fs::File>, StorageError<u64>> {
        if let Some(superseded) = self.receiving.take() {
            self.snapshots.discard(superseded);
        }
        let (pending, file) = self
            .snapshots
            .create()
            .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        self.receiving = Some(pending);
        Ok(Box::new(tokio::fs::File::from_std(file)))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError<u64>> {
        let mut file = *snapshot;
        // tokio's File buffers writes: what openraft wrote is in the file only
        // after a flush.
        file.flush()
            .await
            .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        drop(file);
        let pending = self.receiving.take().ok_or_else(|| {
            snap_err(
                ErrorVerb::Write,
                "install_snapshot without begin_receiving_snapshot",
            )
        })?;
        let path = pending.path.clone();
        let decoded =
            crate::raft::background::run("raftq-snapshot-in", move || read_value::<Applied>(&path))
                .await
                .map_err(|e| snap_err(ErrorVerb::Read, e))?;
        let applied = match decoded {
            Ok(applied) => applied,
            Err(e) => {
                self.snapshots.discard(pending);
                return Err(snap_err(ErrorVerb::Read, e));
            }
        };
        let meta_bytes = encode_value(meta).map_err(|e| snap_err(ErrorVerb::Write, e))?;
        self.snapshots
            .commit(pending, meta_bytes)
            .await
            .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        let index = applied.last_applied.map(|l| l.index).unwrap_or(0);
        {
            let mut state = self.shared.write();
            *state = applied;
            self.shared.snapshot_taken();
        }
        self.shared.applied_index.send_replace(index);
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        // A snapshot being built concurrently may replace (and delete) the file
        // between reading which one is current and opening it: look again.
        let mut attempts = 0;
        let (stored, file) = loop {
            let Some(stored) = self
                .snapshots
                .load()
                .map_err(|e| snap_err(ErrorVerb::Read, e))?
            else {
                return Ok(None);
            };
            match tokio::fs::File::open(&stored.path).await {
                Ok(file) => break (stored, file),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempts < 3 => {
                    attempts += 1;
                }
                Err(e) => return Err(snap_err(ErrorVerb::Read, e)),
            }
        };
        let meta: SnapshotMeta<u64, BasicNode> =
            decode_value(&stored.meta).map_err(|e| snap_err(ErrorVerb::Read, e))?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(file),
        }))
    }
}

pub struct SnapshotBuilder {
    shared: Arc<GroupShared>,
    snapshots: SnapshotStore,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let started = std::time::Instant::now();
        let shared = self.shared.clone();
        let snapshots = self.snapshots.clone();
        // Encoding a large backlog takes a while (about a second per 250 MB):
        // under the read lock it would stall apply, and so every publish, for
        // that long. A clone is cheap (payloads are reference-counted), so the
        // lock is held only for the clone, and the encoding runs on a
        // low-priority thread, off the node's async workers.
        let (pending, last_applied, last_membership) =
            crate::raft::background::run("raftq-snapshot-out", move || {
                let applied = {
                    let state = shared.read();
                    shared.snapshot_taken();
                    state.clone()
                };
                let pending = snapshots.write_value(&applied)?;
                let (last_applied, last_membership) =
                    (applied.last_applied, applied.last_membership);
                // The clone is a million small blocks freed at once: without
                // this, resident memory grew by its size with every snapshot.
                drop(applied.state);
                crate::alarms::release_freed_memory();
                Ok::<_, raftq_store::StoreError>((pending, last_applied, last_membership))
            })
            .await
            .map_err(|e| snap_err(ErrorVerb::Write, e))?
            .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        let path = pending.path.clone();
        let snapshot_id = match last_applied {
            Some(l) => format!("{}-{}", l.leader_id.term, l.index),
            None => "empty".to_string(),
        };
        let meta = SnapshotMeta {
            last_log_id: last_applied,
            last_membership,
            snapshot_id,
        };
        let meta_bytes = encode_value(&meta).map_err(|e| snap_err(ErrorVerb::Write, e))?;
        // Opened before the commit renames it: the handle follows the file.
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| snap_err(ErrorVerb::Read, e))?;
        // Durable before openraft may purge the log below it.
        self.snapshots
            .commit(pending, meta_bytes)
            .await
            .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        // Operators size the snapshot settings by these (README, configuration).
        let bytes = file.metadata().await.map(|m| m.len()).unwrap_or(0);
        tracing::info!(
            group = self.shared.group,
            index = last_applied.map(|l| l.index).unwrap_or(0),
            bytes,
            ms = started.elapsed().as_millis() as u64,
            "snapshot built"
        );
        Ok(Snapshot {
            meta,
            snapshot: Box::new(file),
        })
    }
}
