//! ReadStream: a stream queue read from a start position, following new
//! messages as this node's replica applies them. Any replica serves it, leader
//! or follower, so stream reads scale with the replicas; a node without a
//! replica relays the stream from one that has it.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use raftq_proto::v1::{
    stream_start, Consistency, ReadStreamRequest, ReadStreamResponse, StoredMessage,
};
use raftq_queue::{Offset, StreamLog};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::Status;

use crate::api::read::{make_consistent, stored_message};
use crate::error::ApiError;
use crate::meta::catalog::{QueueDef, QueueKind};
use crate::node::{Group, Node};
use crate::raft::state_machine::GroupState;
use crate::router;

pub type ReadStreamStream = Pin<Box<dyn Stream<Item = Result<ReadStreamResponse, Status>> + Send>>;

const DEFAULT_BATCH: u32 = 256;
const MAX_BATCH: u32 = 4096;
/// Responses queued per reader: a slow reader holds up only its own task.
const BUFFERED: usize = 4;
/// How often an idle reader checks that its queue still exists here.
const GONE_CHECK: Duration = Duration::from_secs(1);
/// Longest consumer name (the stream state machine refuses longer ones too).
pub const MAX_CONSUMER_NAME: usize = 255;

pub async fn read_stream(
    node: &Arc<Node>,
    req: ReadStreamRequest,
    hops: u32,
) -> Result<ReadStreamStream, ApiError> {
    let def = stream_def(node, &req.queue).await?;
    let consistency = Consistency::try_from(req.consistency).map_err(|_| {
        ApiError::InvalidArgument(format!("unknown consistency {}", req.consistency))
    })?;
    if req.consumer_name.len() > MAX_CONSUMER_NAME {
        return Err(ApiError::InvalidArgument(format!(
            "consumer_name is longer than {MAX_CONSUMER_NAME} bytes"
        )));
    }
    let Some(group) = node.group(def.group) else {
        return relay(node, &def, req, hops).await;
    };
    make_consistent(node, &group, consistency, 0, &def.name).await?;
    let start = {
        let applied = group.shared.read();
        let GroupState::Stream(s) = &applied.state else {
            return Err(ApiError::Internal(format!(
                "queue '{}' is a stream but its replica here is not",
                def.name
            )));
        };
        start_offset(s, &req)
    };
    let batch = match req.max_batch {
        0 => DEFAULT_BATCH,
        n => n.min(MAX_BATCH),
    } as usize;
    node.metrics().reads_local.inc();
    let (tx, rx) = mpsc::channel(BUFFERED);
    tokio::spawn(serve(node.clone(), group, start, batch, tx));
    Ok(Box::pin(ReceiverStream::new(rx)))
}

/// The queue's definition, refusing work queues (they are read with Read and
/// consumed with Consume).
pub(crate) async fn stream_def(node: &Node, name: &str) -> Result<QueueDef, ApiError> {
    let def = router::queue_def(node, name).await?;
    if def.spec.kind != QueueKind::Stream {
        return Err(ApiError::FailedPrecondition(format!(
            "queue '{name}' is a work queue, not a stream: browse it with Read, consume it with Consume"
        )));
    }
    Ok(def)
}

/// Where a read begins. A named consumer's committed offset wins over the
/// requested start, so a consumer that reconnects anywhere resumes.
fn start_offset(s: &StreamLog, req: &ReadStreamRequest) -> Offset {
    if !req.consumer_name.is_empty() {
        if let Some(committed) = s.committed(&req.consumer_name) {
            return committed;
        }
    }
    match req.start.as_ref().and_then(|s| s.position) {
        None | Some(stream_start::Position::First(_)) => s.first_offset(),
        Some(stream_start::Position::Offset(o)) => o,
        Some(stream_start::Position::TimestampMs(t)) => s.offset_at_time(t),
        Some(stream_start::Position::Last(_)) => {
            s.next_offset().saturating_sub(1).max(s.first_offset())
        }
        Some(stream_start::Position::Next(_)) => s.next_offset(),
    }
}

/// Counts a reader in a gauge for as long as it lives.
struct Gauge<'a>(&'a AtomicU64);

impl<'a> Gauge<'a> {
    fn enter(g: &'a AtomicU64) -> Self {
        g.fetch_add(1, Ordering::Relaxed);
        Gauge(g)
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Sends the stream from `next` on, then follows the replica's applies. Only
/// committed entries are ever applied, so a follower never serves anything a
/// leader could still lose.
async fn serve(
    node: Arc<Node>,
    group: Arc<Group>,
    mut next: Offset,
    batch: usize,
    tx: mpsc::Sender<Result<ReadStreamResponse, Status>>,
) {
    let _reader = Gauge::enter(&node.metrics().stream_readers_local);
    let mut applied_rx = group.shared.applied_index.subscribe();
    // The first response goes out at once, even empty: it tells the reader
    // which node serves it and where the stream stands.
    let mut first = true;
    loop {
        // Marked seen before reading, so an apply in between still wakes us.
        applied_rx.borrow_and_update();
        let response = {
            let applied = group.shared.read();
            let GroupState::Stream(s) = &applied.state else {
                return;
            };
            // Retention removed messages under this reader: continue at the oldest.
            next = next.max(s.first_offset());
            let messages: Vec<StoredMessage> = s
                .read(next, batch)
                .into_iter()
                .map(stored_message)
                .collect();
            if let Some(last) = messages.last() {
                next = last.offset + 1;
            }
            (first || !messages.is_empty()).then(|| ReadStreamResponse {
                node_id: node.id(),
                applied_index: applied.last_applied.map(|l| l.index).unwrap_or(0),
                first_offset: s.first_offset(),
                next_offset: s.next_offset(),
                position: next,
                messages,
            })
        };
        if let Some(response) = response {
            first = false;
            node.metrics()
                .stream_messages_served
                .add(response.messages.len() as u64);
            if tx.send(Ok(response)).await.is_err() {
                return;
            }
            continue;
        }
        tokio::select! {
            changed = applied_rx.changed() => if changed.is_err() {
                let _ = tx.send(Err(Status::unavailable("the replica stopped; resume from the next offset elsewhere"))).await;
                return;
            },
            _ = tokio::time::sleep(GONE_CHECK) => {
                if node.group(group.id).is_none() {
                    let _ = tx.send(Err(Status::not_found("the stream was deleted or moved off this node"))).await;
                    return;
                }
            }
            _ = tx.closed() => return,
        }
    }
}

/// Relays the stream from a node that holds a replica, trying them in read
/// preference order until one accepts.
async fn relay(
    node: &Arc<Node>,
    def: &QueueDef,
    req: ReadStreamRequest,
    hops: u32,
) -> Result<ReadStreamStream, ApiError> {
    if hops >= router::MAX_HOPS {
        return Err(ApiError::unavailable("stream read relayed too many times"));
    }
    node.metrics().reads_forwarded.inc();
    let mut last_err =
        ApiError::unavailable(format!("no replica of stream '{}' is reachable", def.name));
    for (_, addr) in router::replica_addrs(node, &def.replicas) {
        let mut client = router::queue_client(node, &addr)?;
        match client
            .read_stream(router::forwarded(req.clone(), hops))
            .await
        {
            Ok(upstream) => {
                let (tx, rx) = mpsc::channel(BUFFERED);
                let node = node.clone();
                tokio::spawn(async move {
                    let _reader = Gauge::enter(&node.metrics().stream_readers_relayed);
                    let mut upstream = upstream.into_inner();
                    loop {
                        tokio::select! {
                            item = upstream.next() => match item {
                                Some(item) => if tx.send(item).await.is_err() { return },
                                None => return,
                            },
                            _ = tx.closed() => return,
                        }
                    }
                });
                return Ok(Box::pin(ReceiverStream::new(rx)));
            }
            Err(s) => last_err = ApiError::from(s),
        }
    }
    Err(last_err)
}
