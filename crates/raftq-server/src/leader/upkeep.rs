//! What the leader of a queue group does besides answering requests:
//! - on winning an election, commit `ResetConsumers` before accepting consumers,
//!   so every message the old leader had out is returned exactly once;
//! - stamp `Tick`s into the log when a TTL, ack timeout or stream max age falls due;
//! - hand dead letters to their target queue (idempotently) and confirm them;
//! - move the group's replicas to the catalog's set (see `replica_moves`);
//! - on losing leadership, end the consumer sessions hosted here.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use raftq_proto::v1::{PublishMessage, PublishRequest};
use raftq_queue::{Command, DeadLetter, Outcome};

use crate::error::ApiError;
use crate::leader::replica_moves::ReplicaMoves;

use crate::node::{now_ms, Group, Node};
use crate::raft::state_machine::GroupState;
use crate::raft::types::{GroupCommand, GroupResponse};

/// Retry pace of a leader's pending work (consumer reset, dead letters).
const IDLE_CHECK: Duration = Duration::from_millis(100);
/// A leader with nothing due still looks once in a while.
const MAX_IDLE: Duration = Duration::from_secs(1);

/// How long the loop may sleep when no event comes. Followers only react to
/// events (metrics changes: a new term or leader). A leader wakes for its next
/// TTL / ack deadline, and soon while work is pending. Waking every group on a
/// fixed short period would make 1,000 idle queues cost a good part of a core.
fn idle_wait(group: &Group, was_leader: bool) -> Option<Duration> {
    if !was_leader {
        return None;
    }
    if group.consumers_ready_term.load(Ordering::SeqCst) != group.current_term() {
        return Some(IDLE_CHECK);
    }
    let applied = group.shared.read();
    let deadline = match &applied.state {
        GroupState::Work(q) => {
            if q.pending_dead_letters().next().is_some() {
                return Some(IDLE_CHECK);
            }
            q.next_deadline()
        }
        GroupState::Stream(s) => s.next_deadline(),
        GroupState::Catalog(_) => None,
    };
    let due_in = deadline.map(|d| Duration::from_millis(d.saturating_sub(now_ms())));
    Some(
        due_in
            .unwrap_or(MAX_IDLE)
            .clamp(Duration::from_millis(10), MAX_IDLE),
    )
}

async fn sleep_or_forever(wait: Option<Duration>) {
    match wait {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

pub async fn run(node: Arc<Node>, group: Arc<Group>, queue: String) {
    let mut metrics = group.raft.metrics();
    let mut was_leader = false;
    let mut moves = ReplicaMoves::default();
    loop {
        let wait = idle_wait(&group, was_leader);
        tokio::select! {
            changed = metrics.changed() => if changed.is_err() { return },
            _ = sleep_or_forever(wait) => {}
            _ = group.shared.dead_letters.notified() => {}
        }
        if node.failover().draining() || group.transferring.load(Ordering::SeqCst) {
            // Shutting down: propose nothing, so followers' leases can expire.
            continue;
        }
        let is_leader = group.is_leader();
        if !is_leader {
            if was_leader {
                tracing::info!(%queue, "lost leadership: ending consumer sessions hosted here");
                group.consumers_ready_term.store(0, Ordering::SeqCst);
                node.sessions().close_group(group.id);
            }
            was_leader = false;
            moves = ReplicaMoves::default();
            continue;
        }
        was_leader = true;
        let term = group.current_term();
        if group.consumers_ready_term.load(Ordering::SeqCst) != term {
            // Consumers this group had anywhere are gone with the old leader (their
            // sessions lived there): return what they held, then open for attach.
            let reset = Command::ResetConsumers { now_ms: now_ms() };
            match group.raft.client_write(GroupCommand::Queue(reset)).await {
                Ok(_) => {
                    node.sessions().close_group(group.id);
                    group.consumers_ready_term.store(term, Ordering::SeqCst);
                    node.metrics().elections_won.inc();
                    tracing::info!(%queue, term, "leader ready: consumers reset");
                }
                Err(e) => tracing::debug!(%queue, "reset consumers not committed: {e}"),
            }
            continue;
        }
        tick_if_due(&group).await;
        forward_dead_letters(&node, &group, &queue).await;
        moves.step(&node, &group).await;
    }
}

async fn tick_if_due(group: &Group) {
    let now = now_ms();
    let due = {
        let applied = group.shared.read();
        match &applied.state {
            GroupState::Work(q) => q.next_deadline().is_some_and(|d| d <= now),
            GroupState::Stream(s) => s.next_deadline().is_some_and(|d| d <= now),
            GroupState::Catalog(_) => false,
        }
    };
    if due {
        let _ = group
            .raft
            .client_write(GroupCommand::Queue(Command::Tick { now_ms: now }))
            .await;
    }
}

/// At-least-once dead-lettering: publish each pending dead letter to its target
/// with producer id `raftq-dlx/<queue>` and sequence = dead-letter seq, so a
/// repeat after a failover is deduplicated by the target, then confirm them.
async fn forward_dead_letters(node: &Arc<Node>, group: &Group, queue: &str) {
    let pending: Vec<DeadLetter> = {
        let applied = group.shared.read();
        match &applied.state {
            GroupState::Work(q) => q.pending_dead_letters().take(256).cloned().collect(),
            GroupState::Stream(_) | GroupState::Catalog(_) => return,
        }
    };
    let mut confirmed_up_to = None;
    for dl in pending {
        let mut message = dl.message.clone();
        message
            .headers
            .insert("x-death-queue".to_string(), queue.to_string());
        let producer = format!("raftq-dlx/{queue}");
        match publish_internal(node, &dl.target, producer, dl.seq, vec![message]).await {
            Ok(()) => confirmed_up_to = Some(dl.seq),
            Err(e) => {
                tracing::warn!(%queue, target = %dl.target, "dead letter not delivered yet: {e}");
                break;
            }
        }
    }
    if let Some(up_to_seq) = confirmed_up_to {
        let cmd = Command::DeadLettered { up_to_seq };
        if let Ok(resp) = group.raft.client_write(GroupCommand::Queue(cmd)).await {
            if !matches!(resp.data, GroupResponse::Queue(Outcome::Done)) {
                tracing::debug!(%queue, "dead-letter confirm answered {:?}", resp.data);
            }
        }
    }
}

/// Publishes from inside the cluster (dead letters), through the same path as a
/// client's idempotent publish.
async fn publish_internal(
    node: &Arc<Node>,
    queue: &str,
    producer_id: String,
    sequence: u64,
    messages: Vec<raftq_queue::Message>,
) -> Result<(), ApiError> {
    let req = PublishRequest {
        key: None,
        queue: queue.to_string(),
        messages: messages
            .into_iter()
            .map(|m| PublishMessage {
                payload: m.payload,
                headers: m.headers.into_iter().collect(),
            })
            .collect(),
        producer_id,
        sequence,
    };
    crate::api::publish::publish(node, req, 0).await.map(|_| ())
}
