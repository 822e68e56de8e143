//! Consumer sessions. A session lives on the queue's leader: the state machine
//! there decides what each consumer holds, so credit, acks and redelivery are all
//! log commands. A client connected to another node is proxied to the leader.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use raftq_proto::v1::{
    consume_request, consume_response, ConsumeRequest, ConsumeResponse, Delivery as ProtoDelivery,
    SettleConfirm, SettleOutcome, Subscribed,
};
use raftq_queue::{Command, ConsumerId, Delivery, Outcome, Settlement};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use super::consume_window::{hold_limit, Window};
use crate::error::ApiError;
use crate::meta::catalog::QueueKind;
use crate::node::{now_ms, Group, Node};
use crate::raft::types::{GroupCommand, GroupResponse};
use crate::router::{self, Route};

pub type ConsumeStream = Pin<Box<dyn Stream<Item = Result<ConsumeResponse, Status>> + Send>>;

/// How long a new leader may take to reset consumers before we refuse attaches.
const READY_WAIT: Duration = Duration::from_secs(5);

/// `allowed` says whether the caller may consume the queue the stream's
/// first message names.
pub async fn consume(
    node: &Arc<Node>,
    mut inbound: Streaming<ConsumeRequest>,
    hops: u32,
    allowed: impl FnOnce(&str) -> Result<(), ApiError>,
) -> Result<ConsumeStream, ApiError> {
    let first = inbound
        .message()
        .await
        .map_err(|s| {
            ApiError::InvalidArgument(format!("consume stream failed before subscribe: {s}"))
        })?
        .ok_or_else(|| ApiError::InvalidArgument("consume stream ended before subscribe".into()))?;
    let Some(consume_request::Kind::Subscribe(sub)) = first.kind.clone() else {
        return Err(ApiError::InvalidArgument(
            "the first message of a consume stream must be a subscribe".into(),
        ));
    };
    allowed(&sub.queue)?;
    let def = router::queue_def(node, &sub.queue).await?;
    if def.spec.kind == QueueKind::Stream {
        return Err(ApiError::FailedPrecondition(format!(
            "queue '{}' is a stream: read it with ReadStream (stream reads do not consume)",
            def.name
        )));
    }
    let group = match router::route(node, def.group, &def.replicas, &def.name, hops)? {
        Route::Local(g) => g,
        Route::Remote { addr, .. } => return proxy(node, &addr, first, inbound, hops).await,
    };
    wait_until_ready(&group, &def.name).await?;
    // Capped: a consumer that asks for millions and never reads would make the
    // leader hold (and buffer) that many deliveries for it.
    let prefetch = if sub.prefetch == 0 {
        node.config().default_prefetch
    } else {
        sub.prefetch
    }
    .min(node.config().max_prefetch);
    let consumer: ConsumerId = rand::random();
    let deliveries = node.sessions().register(group.id, consumer);
    let attach = Command::Attach {
        now_ms: now_ms(),
        consumer,
        prefetch: hold_limit(prefetch),
    };
    if let Err(e) = router::propose(&group, GroupCommand::Queue(attach), &def.name).await {
        node.sessions().remove(consumer);
        return Err(e.into_api());
    }
    let (out_tx, out_rx) = mpsc::channel(prefetch as usize + 64);
    let subscribed = ConsumeResponse {
        kind: Some(consume_response::Kind::Subscribed(Subscribed {
            consumer_id: consumer,
            node_id: node.id(),
        })),
    };
    let _ = out_tx.send(Ok(subscribed)).await;
    tokio::spawn(session(
        node.clone(),
        group,
        consumer,
        Window::new(prefetch),
        deliveries,
        inbound,
        out_tx,
    ));
    Ok(Box::pin(ReceiverStream::new(out_rx)))
}

async fn wait_until_ready(group: &Group, queue: &str) -> Result<(), ApiError> {
    let deadline = tokio::time::Instant::now() + READY_WAIT;
    loop {
        if !group.is_leader() {
            return Err(ApiError::no_leader(queue));
        }
        if group.consumers_ready_term.load(Ordering::SeqCst) == group.current_term() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ApiError::unavailable(format!(
                "queue '{queue}': new leader is still taking over; retry"
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn session(
    node: Arc<Node>,
    group: Arc<Group>,
    consumer: ConsumerId,
    mut window: Window,
    mut deliveries: mpsc::UnboundedReceiver<Delivery>,
    mut inbound: Streaming<ConsumeRequest>,
    out: mpsc::Sender<Result<ConsumeResponse, Status>>,
) {
    loop {
        tokio::select! {
            delivery = deliveries.recv() => match delivery {
                Some(first) => {
                    // One apply often yields a burst of deliveries: take them
                    // all at once rather than one select round each.
                    let mut allowed = Vec::new();
                    let mut next = Some(first);
                    while let Some(d) = next {
                        allowed.extend(window.offer(d));
                        next = deliveries.try_recv().ok();
                    }
                    if !hand_out(&node, &group, &out, allowed).await {
                        break;
                    }
                }
                None => {
                    // The registry dropped us: this node lost the queue's leadership.
                    let _ = out.send(Err(Status::unavailable(
                        "queue leadership moved; resubscribe (unacked messages will be redelivered)",
                    ))).await;
                    break;
                }
            },
            request = inbound.message() => match request {
                Ok(Some(ConsumeRequest { kind: Some(consume_request::Kind::Settle(settle)) })) => {
                    let now_allowed = window.settled(&settle.offsets);
                    // Settles commit concurrently so one slow commit never stalls
                    // deliveries; confirms carry the client's tag.
                    tokio::spawn(settle_one(node.clone(), group.clone(), consumer, settle, out.clone()));
                    if !hand_out(&node, &group, &out, now_allowed).await {
                        break;
                    }
                }
                Ok(Some(_)) => {
                    let _ = out.send(Err(Status::invalid_argument("already subscribed: send settles only"))).await;
                    break;
                }
                Ok(None) | Err(_) => break,
            },
            _ = out.closed() => break,
        }
    }
    node.sessions().remove(consumer);
    if group.is_leader() {
        // Best effort: if this fails, the next leader's reset returns the
        // messages. Parked ones count a delivery like the rest: returned
        // uncounted, they would come back as first deliveries behind later
        // offsets that other consumers already got, breaking FIFO.
        let detach = Command::Detach {
            now_ms: now_ms(),
            consumer,
        };
        let _ = group.raft.client_write(GroupCommand::Queue(detach)).await;
    }
}

/// Sends deliveries to the client, in order; false once the client is gone.
async fn hand_out(
    node: &Node,
    group: &Group,
    out: &mpsc::Sender<Result<ConsumeResponse, Status>>,
    deliveries: Vec<Delivery>,
) -> bool {
    let mut deliveries = deliveries.into_iter();
    loop {
        let n = deliveries.len().min(out.max_capacity());
        if n == 0 {
            return true;
        }
        let Ok(permits) = out.reserve_many(n).await else {
            return false;
        };
        node.metrics().delivered_messages.add(n as u64);
        group.counters.delivered.add(n as u64);
        for (permit, delivery) in permits.zip(deliveries.by_ref()) {
            permit.send(Ok(to_proto(delivery)));
        }
    }
}

async fn settle_one(
    node: Arc<Node>,
    group: Arc<Group>,
    consumer: ConsumerId,
    settle: raftq_proto::v1::Settle,
    out: mpsc::Sender<Result<ConsumeResponse, Status>>,
) {
    let outcome = match SettleOutcome::try_from(settle.outcome) {
        Ok(SettleOutcome::Ack) => Settlement::Ack,
        Ok(SettleOutcome::Requeue) => Settlement::Requeue,
        Ok(SettleOutcome::Reject) => Settlement::Reject,
        Err(_) => {
            let _ = out
                .send(Err(Status::invalid_argument("unknown settle outcome")))
                .await;
            return;
        }
    };
    let cmd = Command::Settle {
        now_ms: now_ms(),
        consumer,
        offsets: settle.offsets,
        outcome,
    };
    let reply = match group.raft.client_write(GroupCommand::Queue(cmd)).await {
        Ok(resp) => match resp.data {
            GroupResponse::Queue(Outcome::Settled { settled, unknown }) => {
                node.metrics().settled_messages.add(settled.len() as u64);
                let counter = match outcome {
                    Settlement::Ack => &group.counters.acked,
                    Settlement::Requeue => &group.counters.requeued,
                    Settlement::Reject => &group.counters.rejected,
                };
                counter.add(settled.len() as u64);
                Ok(ConsumeResponse {
                    kind: Some(consume_response::Kind::Settled(SettleConfirm {
                        tag: settle.tag,
                        settled,
                        unknown,
                    })),
                })
            }
            other => Err(Status::internal(format!(
                "unexpected settle outcome {other:?}"
            ))),
        },
        // Outcome unknown: the entry may still commit under a later leader.
        // If it does not, the messages are redelivered.
        Err(e) => Err(Status::unavailable(format!(
            "settle outcome unknown ({e}): if it was not applied, the messages will be redelivered"
        ))),
    };
    let _ = out.send(reply).await;
}

fn to_proto(d: Delivery) -> ConsumeResponse {
    ConsumeResponse {
        kind: Some(consume_response::Kind::Delivery(ProtoDelivery {
            offset: d.offset,
            payload: d.message.payload,
            headers: d.message.headers.into_iter().collect(),
            delivery_count: d.delivery_count,
            redelivered: d.redelivered,
            publish_time_ms: d.publish_time_ms,
        })),
    }
}

/// Relays a consume session to the leader, both directions, until either side ends.
async fn proxy(
    node: &Node,
    addr: &str,
    first: ConsumeRequest,
    inbound: Streaming<ConsumeRequest>,
    hops: u32,
) -> Result<ConsumeStream, ApiError> {
    node.metrics().forwarded_requests.inc();
    let mut client = router::queue_client(node, addr)?;
    let upstream = futures::stream::once(async move { first }).chain(
        inbound
            .take_while(|r| futures::future::ready(r.is_ok()))
            .filter_map(|r| async move { r.ok() }),
    );
    let response = client
        .consume(router::forwarded(upstream, hops))
        .await
        .map_err(ApiError::from)?;
    Ok(Box::pin(response.into_inner()))
}
