//! The consumer's background task: holds one consume stream at a time, and
//! when it ends (leader change, node death) opens another through any node.
//! The cluster redelivers what the old session held, marked `redelivered`.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use raftq_proto::v1::{
    consume_request, consume_response, ConsumeRequest, ConsumeResponse, Delivery, Settle,
    SettleOutcome, Subscribe,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::Streaming;

use super::Settlement;
use crate::client::Target;
use crate::{Client, Error};

pub(crate) enum Event {
    /// `session` tells deliveries of a lost session from current ones.
    Delivery {
        session: u64,
        delivery: Delivery,
    },
    Error(Error),
}

pub(crate) struct SettleCommand {
    pub offsets: Vec<u64>,
    pub outcome: SettleOutcome,
    pub reply: oneshot::Sender<Result<Settlement, Error>>,
}

pub(crate) struct Channels {
    pub events: mpsc::UnboundedSender<Event>,
    pub settles: mpsc::UnboundedReceiver<SettleCommand>,
    /// Number of the current session; the handle skips older deliveries.
    pub session: Arc<AtomicU64>,
    /// Whether a session is open (the handle's idle clock runs only then).
    pub connected: watch::Sender<bool>,
}

struct Session {
    addr: String,
    requests: mpsc::UnboundedSender<ConsumeRequest>,
    responses: Streaming<ConsumeResponse>,
}

enum Ended {
    /// The consumer was dropped.
    Stop,
    /// The stream ended; `Some` when it must not be reopened.
    Lost(Option<Error>),
}

/// A session that lasted this long was healthy: reconnect without a pause.
const HEALTHY_SESSION: Duration = Duration::from_secs(5);

pub(crate) async fn run(
    client: Client,
    queue: String,
    prefetch: u32,
    mut ch: Channels,
    first: oneshot::Sender<Result<(), Error>>,
) {
    let mut first = Some(first);
    let mut number = 0u64;
    let mut backoff = client.backoff();
    loop {
        let session = match connect(&client, &queue, prefetch, &mut ch).await {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(e) => {
                if let Some(first) = first.take() {
                    let _ = first.send(Err(e));
                    return;
                }
                let keep_trying = matches!(e, Error::Timeout { .. }) || e.is_retryable();
                if ch.events.send(Event::Error(e)).is_err() || !keep_trying {
                    return;
                }
                continue;
            }
        };
        number += 1;
        ch.session.store(number, Ordering::SeqCst);
        ch.connected.send_replace(true);
        if let Some(first) = first.take() {
            let _ = first.send(Ok(()));
        }
        let started = Instant::now();
        let addr = session.addr.clone();
        let ended = serve(&client, session, number, &mut ch).await;
        ch.connected.send_replace(false);
        match ended {
            Ended::Stop => return,
            Ended::Lost(Some(e)) => {
                let _ = ch.events.send(Event::Error(e));
                return;
            }
            Ended::Lost(None) => {
                tracing::debug!(queue = %queue, %addr, "consume session lost; resubscribing");
                let lost = Error::unavailable("consume session ended");
                client.learn_from_failure(Some(&queue), &addr, &lost);
                if started.elapsed() >= HEALTHY_SESSION {
                    backoff.reset();
                }
                // A session refused right after opening must not become a hot loop.
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
}

/// Opens a session (retrying across nodes until the deadline) while telling
/// settles that arrive meanwhile that their messages are no longer held.
async fn connect(
    client: &Client,
    queue: &str,
    prefetch: u32,
    ch: &mut Channels,
) -> Result<Option<Session>, Error> {
    let open = client.call(Target::Leader(queue), |addr, _| {
        open(client, addr, queue, prefetch)
    });
    tokio::pin!(open);
    loop {
        tokio::select! {
            result = &mut open => return result.map(Some),
            command = ch.settles.recv() => match command {
                Some(c) => not_held(c),
                None => return Ok(None),
            },
            _ = ch.events.closed() => return Ok(None),
        }
    }
}

/// The session that held these messages is gone: the cluster returned them to
/// the queue, so this settle cannot take effect.
fn not_held(c: SettleCommand) {
    let _ = c.reply.send(Ok(Settlement {
        settled: Vec::new(),
        unknown: c.offsets,
    }));
}

async fn open(client: &Client, addr: String, queue: &str, prefetch: u32) -> Result<Session, Error> {
    let (requests, rx) = mpsc::unbounded_channel();
    let subscribe = ConsumeRequest {
        kind: Some(consume_request::Kind::Subscribe(Subscribe {
            queue: queue.to_string(),
            prefetch,
        })),
    };
    requests
        .send(subscribe)
        .map_err(|_| Error::Closed("consume request channel closed".into()))?;
    // No gRPC deadline here: the stream lives as long as the consumer.
    let mut responses = client
        .queue_at(&addr)?
        .consume(UnboundedReceiverStream::new(rx))
        .await?
        .into_inner();
    match responses.message().await? {
        Some(ConsumeResponse {
            kind: Some(consume_response::Kind::Subscribed(s)),
        }) => {
            // The session lives on the queue's leader.
            client.learn_leader(queue, s.node_id);
            Ok(Session {
                addr,
                requests,
                responses,
            })
        }
        Some(_) => Err(Error::Server(
            "consume stream answered before confirming the subscription".into(),
        )),
        None => Err(Error::unavailable(
            "consume stream ended before it was subscribed",
        )),
    }
}

/// Settle requests in flight per session. Further settles wait and go out
/// together in one request when one completes: a consumer acking message by
/// message then costs a few log entries, not one per message.
const SETTLES_IN_FLIGHT: usize = 4;
/// Most offsets combined into one settle request.
const OFFSETS_PER_SETTLE: usize = 4096;

type Reply = oneshot::Sender<Result<Settlement, Error>>;

/// One settle request on the wire, answering several callers.
struct InFlight {
    parts: Vec<(Vec<u64>, Reply)>,
    deadline: Instant,
}

/// What each caller learns from a confirm covering several of them. An offset
/// the server did not mention is reported as unknown (no effect claimed).
fn split(confirm_settled: &[u64], parts: Vec<(Vec<u64>, Reply)>) {
    let settled: HashSet<u64> = confirm_settled.iter().copied().collect();
    for (offsets, reply) in parts {
        let (s, u): (Vec<u64>, Vec<u64>) = offsets.into_iter().partition(|o| settled.contains(o));
        let _ = reply.send(Ok(Settlement {
            settled: s,
            unknown: u,
        }));
    }
}

/// Takes the settle commands already queued behind `first` (up to a bound),
/// grouped by outcome in arrival order.
fn gather(
    first: SettleCommand,
    settles: &mut mpsc::UnboundedReceiver<SettleCommand>,
) -> Vec<(SettleOutcome, Vec<SettleCommand>)> {
    let mut groups: Vec<(SettleOutcome, Vec<SettleCommand>)> = Vec::new();
    let mut offsets = 0usize;
    let mut next = Some(first);
    while let Some(c) = next.take() {
        offsets += c.offsets.len();
        match groups.iter_mut().find(|(o, _)| *o == c.outcome) {
            Some((_, cs)) => cs.push(c),
            None => groups.push((c.outcome, vec![c])),
        }
        if offsets < OFFSETS_PER_SETTLE {
            next = settles.try_recv().ok();
        }
    }
    groups
}

async fn serve(client: &Client, mut s: Session, number: u64, ch: &mut Channels) -> Ended {
    let settle_timeout = client.options().request_timeout;
    // By tag; tags grow with time, so the first entry expires first.
    let mut waiting: BTreeMap<u64, InFlight> = BTreeMap::new();
    let mut next_tag = 1u64;
    let ended = loop {
        let expiry = waiting.first_key_value().map(|(_, f)| f.deadline);
        let room = waiting.len() < SETTLES_IN_FLIGHT;
        tokio::select! {
            response = s.responses.next() => {
                // Deliveries come in bursts (one commit on the leader frees
                // many): take what already arrived without a select round,
                // and its timers, per message.
                let mut response = Some(response);
                let mut taken = 0;
                let mut end = None;
                while let Some(r) = response {
                    end = on_response(r, number, ch, &mut waiting);
                    taken += 1;
                    if end.is_some() || taken >= BURST {
                        break;
                    }
                    response = s.responses.next().now_or_never();
                }
                if let Some(end) = end {
                    break end;
                }
            }
            command = ch.settles.recv(), if room => {
                let Some(first) = command else { break Ended::Stop };
                let mut lost = false;
                for (outcome, commands) in gather(first, &mut ch.settles) {
                    let mut offsets = Vec::new();
                    let mut parts = Vec::new();
                    for c in commands {
                        offsets.extend_from_slice(&c.offsets);
                        parts.push((c.offsets, c.reply));
                    }
                    if offsets.is_empty() || lost {
                        split(&[], parts);
                        continue;
                    }
                    let tag = next_tag;
                    next_tag += 1;
                    let request = ConsumeRequest {
                        kind: Some(consume_request::Kind::Settle(Settle {
                            offsets,
                            outcome: outcome as i32,
                            tag,
                        })),
                    };
                    if s.requests.send(request).is_err() {
                        // Never sent: no effect, the messages come back.
                        split(&[], parts);
                        lost = true;
                        continue;
                    }
                    let deadline = Instant::now() + settle_timeout;
                    waiting.insert(tag, InFlight { parts, deadline });
                }
                if lost {
                    break Ended::Lost(None);
                }
            }
            _ = ch.events.closed() => break Ended::Stop,
            _ = sleep_until(expiry), if expiry.is_some() => {
                let now = Instant::now();
                while let Some(entry) = waiting.first_entry() {
                    if entry.get().deadline > now {
                        break;
                    }
                    for (_, reply) in entry.remove().parts {
                        let _ = reply.send(Err(Error::RequestTimeout(format!(
                            "settle not confirmed within {settle_timeout:?}; it may or may not have taken effect"
                        ))));
                    }
                }
            }
        }
    };
    // Sent but unconfirmed: the session died with them in flight.
    for (_, f) in waiting {
        for (_, reply) in f.parts {
            let _ = reply.send(Err(Error::unavailable(
                "consume session lost before the settle was confirmed: it may or may not have taken effect (if not, the messages will be redelivered)",
            )));
        }
    }
    ended
}

/// Most responses handled in one go before settles and timers get a turn.
const BURST: usize = 256;

/// Handles one response of the stream; `Some` when the session is over.
fn on_response(
    response: Option<Result<ConsumeResponse, tonic::Status>>,
    number: u64,
    ch: &Channels,
    waiting: &mut BTreeMap<u64, InFlight>,
) -> Option<Ended> {
    match response {
        Some(Ok(ConsumeResponse { kind: Some(kind) })) => match kind {
            consume_response::Kind::Delivery(delivery) => {
                let event = Event::Delivery {
                    session: number,
                    delivery,
                };
                if ch.events.send(event).is_err() {
                    return Some(Ended::Stop);
                }
            }
            consume_response::Kind::Settled(c) => {
                if let Some(f) = waiting.remove(&c.tag) {
                    split(&c.settled, f.parts);
                }
            }
            consume_response::Kind::Subscribed(_) => {}
        },
        Some(Ok(ConsumeResponse { kind: None })) => {}
        Some(Err(status)) => {
            let e = Error::from_status(&status);
            let terminal = matches!(e, Error::NotFound(_) | Error::InvalidArgument(_));
            return Some(Ended::Lost(terminal.then_some(e)));
        }
        None => return Some(Ended::Lost(None)),
    }
    None
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at.into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(
        offsets: &[u64],
        outcome: SettleOutcome,
    ) -> (SettleCommand, oneshot::Receiver<Result<Settlement, Error>>) {
        let (reply, rx) = oneshot::channel();
        (
            SettleCommand {
                offsets: offsets.to_vec(),
                outcome,
                reply,
            },
            rx,
        )
    }

    #[test]
    fn queued_settles_are_combined_per_outcome() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (first, _r1) = command(&[1], SettleOutcome::Ack);
        let (c2, _r2) = command(&[2], SettleOutcome::Requeue);
        let (c3, _r3) = command(&[3, 4], SettleOutcome::Ack);
        let _ = tx.send(c2);
        let _ = tx.send(c3);
        let groups = gather(first, &mut rx);
        let shape: Vec<(SettleOutcome, Vec<Vec<u64>>)> = groups
            .into_iter()
            .map(|(o, cs)| (o, cs.into_iter().map(|c| c.offsets).collect()))
            .collect();
        assert_eq!(
            shape,
            [
                (SettleOutcome::Ack, vec![vec![1], vec![3, 4]]),
                (SettleOutcome::Requeue, vec![vec![2]]),
            ]
        );
    }

    #[tokio::test]
    async fn a_combined_confirm_is_split_per_caller() {
        let (a, ra) = oneshot::channel();
        let (b, rb) = oneshot::channel();
        split(&[1, 3], vec![(vec![1, 2], a), (vec![3], b)]);
        assert_eq!(
            ra.await.ok().and_then(Result::ok),
            Some(Settlement {
                settled: vec![1],
                unknown: vec![2]
            })
        );
        assert_eq!(
            rb.await.ok().and_then(Result::ok),
            Some(Settlement {
                settled: vec![3],
                unknown: vec![]
            })
        );
    }
}
