//! Publish: validate at the edge, propose on the leader (or forward), answer with
//! offsets only after commit.

use std::collections::BTreeMap;
use std::sync::Arc;

use raftq_proto::v1::{PublishRequest, PublishResponse};
use raftq_queue::{Command, Message, Outcome, ProducerSeq, PublishError};

use crate::error::ApiError;
use crate::leader::proposal_order::{Turn, ORDER_WAIT};
use crate::node::{now_ms, Group, Node};
use crate::raft::types::{GroupCommand, GroupResponse};
use crate::router::{self, ProposeError, Route};

pub async fn publish(
    node: &Arc<Node>,
    mut req: PublishRequest,
    hops: u32,
) -> Result<PublishResponse, ApiError> {
    crate::api::limits::check_batch(&req, node.config().max_batch_bytes)?;
    refuse_in_alarm(node, &req.queue)?;
    // Every attempt below, local or forwarded, carries the same key: a batch
    // the old leader committed before its answer was lost is then answered as
    // a duplicate by the new one instead of being stored again.
    if req.producer_id.is_empty() && req.key.is_none() {
        req.key = Some(node.publish_keys().next_key());
    }
    let first = publish_once(node, &req, hops).await;
    // The node a client called rides out an election for it: answering "no
    // leader" would send the client into backoff, past the moment the new
    // leader is there. Forwarded requests (hops > 0) answer at once.
    if hops > 0 || !awaits_election(&first) {
        return first;
    }
    let Some(group) = node.group(router::queue_def(node, &req.queue).await?.group) else {
        return first;
    };
    let until = tokio::time::Instant::now()
        + std::time::Duration::from_millis(3 * node.config().election_timeout_max_ms);
    let mut result = first;
    // Bounded by the deadline and by a few rounds: each round follows a real
    // leader change, of which one election makes one or two.
    for _ in 0..4 {
        if !awaits_election(&result) || tokio::time::Instant::now() >= until {
            break;
        }
        let stale = group.current_leader().filter(|l| *l != node.id());
        if !router::leader_change(&group, stale, until).await {
            return result;
        }
        result = publish_once(node, &req, hops).await;
    }
    result
}

/// While any node of the cluster is in a memory or disk alarm, publishes are
/// refused before anything is proposed; consumers and acks go on, so the
/// backlog that caused the alarm can drain.
fn refuse_in_alarm(node: &Node, queue: &str) -> Result<(), ApiError> {
    let Some((in_alarm, alarm)) = node.alarms().blocking(node.id(), std::time::Instant::now())
    else {
        return Ok(());
    };
    node.metrics().publishes_refused_by_alarm.inc();
    Err(ApiError::Alarm {
        message: format!(
            "publish to queue '{queue}' refused: node {in_alarm} {alarm}; publishes resume when it clears, consumers and acks keep working"
        ),
        resource: alarm.resource.as_str().to_string(),
        node: in_alarm,
    })
}

/// No leader, or the leader we forwarded to did not answer at all: an
/// election is (or is about to be) under way.
fn awaits_election(result: &Result<PublishResponse, ApiError>) -> bool {
    matches!(result, Err(ApiError::Unavailable { leader: None, .. }))
}

async fn publish_once(
    node: &Arc<Node>,
    req: &PublishRequest,
    hops: u32,
) -> Result<PublishResponse, ApiError> {
    let def = router::queue_def(node, &req.queue).await?;
    if req.messages.is_empty() {
        return Err(ApiError::InvalidArgument(
            "publish needs at least one message".into(),
        ));
    }
    let max = def.spec.options.max_message_bytes;
    if let Some(big) = req.messages.iter().find(|m| m.payload.len() as u64 > max) {
        return Err(ApiError::InvalidArgument(format!(
            "message of {} bytes exceeds queue '{}' max_message_bytes {max}",
            big.payload.len(),
            def.name
        )));
    }
    let route = router::route(node, def.group, &def.replicas, &def.name, hops)?;
    let group = match route {
        Route::Local(g) => g,
        Route::Remote { addr, .. } => return forward(node, &addr, req, hops).await,
    };
    let producer = (!req.producer_id.is_empty()).then(|| ProducerSeq {
        producer_id: req.producer_id.clone(),
        sequence: req.sequence,
    });
    let messages: Vec<Message> = req
        .messages
        .iter()
        .map(|m| Message {
            payload: m.payload.clone(),
            headers: m
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<BTreeMap<_, _>>(),
        })
        .collect();
    let key = req.key.as_ref().map(|k| raftq_queue::PublishKey {
        source: k.source,
        counter: k.counter,
    });
    let cmd = GroupCommand::Queue(Command::Publish {
        now_ms: now_ms(),
        producer,
        key,
        messages,
    });
    node.metrics().published_batches.inc();
    let started = std::time::Instant::now();
    let outcome = propose_in_order(node, &group, cmd, req, &def.name).await;
    node.metrics()
        .publish_commit_latency
        .observe(started.elapsed());
    match outcome {
        Ok(GroupResponse::Queue(Outcome::Published { offsets, duplicate })) => {
            node.metrics().published_messages.add(offsets.len() as u64);
            if !duplicate {
                group.counters.published.add(offsets.len() as u64);
            }
            Ok(PublishResponse {
                offsets,
                duplicate,
                leader_id: node.id(),
            })
        }
        Ok(GroupResponse::Queue(Outcome::PublishRejected(e))) => {
            if matches!(e, PublishError::SequenceGap { .. }) {
                node.metrics().publish_sequence_gaps.inc();
            }
            Err(publish_error(&def.name, e))
        }
        Ok(other) => Err(ApiError::Internal(format!(
            "unexpected publish outcome {other:?}"
        ))),
        Err(ProposeError::Moved { addr, .. }) if hops < router::MAX_HOPS => {
            forward(node, &addr, req, hops).await
        }
        Err(e) => Err(e.into_api()),
    }
}

/// Proposes `cmd`; an idempotent producer's batch that arrived ahead of its
/// predecessors first waits (briefly) for them to be proposed, see
/// `proposal_order`.
async fn propose_in_order(
    node: &Node,
    group: &Group,
    cmd: GroupCommand,
    req: &PublishRequest,
    queue: &str,
) -> Result<GroupResponse, ProposeError> {
    if req.producer_id.is_empty() {
        return router::propose(group, cmd, queue).await;
    }
    let order = &group.proposal_order;
    let turn = order.enter(
        group.current_term(),
        &req.producer_id,
        req.sequence,
        std::time::Instant::now(),
    );
    if let Turn::Wait(predecessors) = turn {
        node.metrics().publishes_held_for_order.inc();
        if tokio::time::timeout(ORDER_WAIT, predecessors)
            .await
            .is_err()
        {
            node.metrics().publish_order_timeouts.inc();
        }
    }
    let submitted = router::submit(group, cmd, queue).await;
    order.proposed(&req.producer_id, req.sequence, req.messages.len() as u64);
    router::outcome(submitted?, queue).await
}

fn publish_error(queue: &str, e: PublishError) -> ApiError {
    match e {
        PublishError::QueueFull { .. } => ApiError::ResourceExhausted(format!(
            "queue '{queue}' is full (overflow = reject-publish): {e}"
        )),
        PublishError::SequenceGap { .. } => {
            ApiError::FailedPrecondition(format!("queue '{queue}': {e}"))
        }
        PublishError::MessageTooLarge { .. } | PublishError::EmptyBatch => {
            ApiError::InvalidArgument(format!("queue '{queue}': {e}"))
        }
        PublishError::KeyConflict => ApiError::FailedPrecondition(format!("queue '{queue}': {e}")),
        PublishError::KeyForgotten => ApiError::FailedPrecondition(format!("queue '{queue}': {e}")),
    }
}

async fn forward(
    node: &Node,
    addr: &str,
    req: &PublishRequest,
    hops: u32,
) -> Result<PublishResponse, ApiError> {
    node.metrics().forwarded_requests.inc();
    let mut client = router::queue_client(node, addr)?;
    client
        .publish(router::forwarded(req.clone(), hops))
        .await
        .map(|r| r.into_inner())
        .map_err(ApiError::from)
}
