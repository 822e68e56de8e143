//! The clients of a run: per queue an idempotent pipelined producer, a plain
//! (non-idempotent) producer, and consumers that mostly ack, sometimes nack
//! with requeue, sometimes disconnect; plus an observer asking every node who
//! leads each queue. Every loop stops when told, and every wait is bounded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use raftq_client::{Client, ClientOptions, PublishMessage};
use rand::{Rng, SeedableRng};
use tokio::sync::{mpsc, watch};

use raftq_chaos::history::{msg_of, payload, Event};

use crate::cluster::Roster;

#[derive(Clone)]
pub struct Recorder {
    started: Instant,
    tx: mpsc::UnboundedSender<Event>,
}

impl Recorder {
    pub fn new(started: Instant) -> (Recorder, mpsc::UnboundedReceiver<Event>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Recorder { started, tx }, rx)
    }

    pub fn now(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub fn record(&self, e: Event) {
        let _ = self.tx.send(e);
    }
}

static NEXT_MSG: AtomicU64 = AtomicU64::new(1);

fn next_msg() -> u64 {
    NEXT_MSG.fetch_add(1, Ordering::Relaxed)
}

/// Idempotent, pipelined: up to `window` unconfirmed messages.
pub async fn idempotent_producer(
    client: Client,
    queue: String,
    producer: u32,
    rate: u32,
    rec: Recorder,
    stop: watch::Receiver<bool>,
) {
    use futures::stream::{FuturesUnordered, StreamExt};
    let p = client.producer(&queue);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut pending = FuturesUnordered::new();
    let mut seq = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick(), if !*stop.borrow() && pending.len() < 2000 => {
                seq += 1;
                let msg = next_msg();
                let body = payload(&queue, msg, producer, seq);
                let sent = Instant::now();
                let confirm = p.send(PublishMessage { payload: body.into(), headers: Default::default() });
                pending.push(async move { (msg, seq, sent, confirm.await) });
            }
            Some((msg, seq, sent, result)) = pending.next() => {
                let t = rec.now();
                let queue = queue.clone();
                rec.record(match result {
                    Ok(offset) => Event::PublishOk { t, queue, msg, producer, seq, offset, lat_ms: sent.elapsed().as_millis() as u64 },
                    Err(_) => Event::PublishFailed { t, queue, msg, producer, seq },
                });
            }
            else => break,
        }
        if *stop.borrow() && pending.is_empty() {
            break;
        }
    }
}

/// Plain publishes, one at a time: a retry after an unclear failure may store
/// a message twice (counted as a duplicate, allowed).
pub async fn plain_producer(
    client: Client,
    queue: String,
    producer: u32,
    rate: u32,
    rec: Recorder,
    stop: watch::Receiver<bool>,
) {
    let mut seq = 0u64;
    let period = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    while !*stop.borrow() {
        seq += 1;
        let msg = next_msg();
        let body = payload(&queue, msg, producer, seq);
        let sent = Instant::now();
        let result = client
            .publish_batch(
                &queue,
                vec![PublishMessage {
                    payload: body.into(),
                    headers: Default::default(),
                }],
            )
            .await;
        let t = rec.now();
        rec.record(match result.as_deref() {
            Ok([offset]) => Event::PublishOk {
                t,
                queue: queue.clone(),
                msg,
                producer,
                seq,
                offset: *offset,
                lat_ms: sent.elapsed().as_millis() as u64,
            },
            _ => Event::PublishFailed {
                t,
                queue: queue.clone(),
                msg,
                producer,
                seq,
            },
        });
        tokio::time::sleep(period).await;
    }
}

/// Consumes until `stop` and then until the queue has been quiet for `idle`.
/// While not draining: 85 % ack, 10 % nack with requeue, 5 % disconnect.
#[allow(clippy::too_many_arguments)]
pub async fn consumer(
    client: Client,
    queue: String,
    id: u64,
    seed: u64,
    rec: Recorder,
    draining: watch::Receiver<bool>,
    idle: Duration,
    hard_stop: Instant,
) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut session = id * 1_000_000;
    'outer: while Instant::now() < hard_stop {
        let Ok(mut c) = client.consumer(&queue, 32).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        session += 1;
        loop {
            if Instant::now() >= hard_stop {
                break 'outer;
            }
            let wait = if *draining.borrow() {
                idle
            } else {
                Duration::from_secs(1)
            };
            let d = match c.next_timeout(wait).await {
                Ok(Some(d)) => d,
                Ok(None) if *draining.borrow() => break 'outer,
                Ok(None) => continue,
                Err(_) => continue 'outer,
            };
            let Some(msg) = msg_of(&d.payload) else {
                rec.record(Event::Delivered {
                    t: rec.now(),
                    queue: queue.clone(),
                    msg: u64::MAX,
                    offset: d.offset,
                    redelivered: d.redelivered,
                    session,
                });
                continue;
            };
            rec.record(Event::Delivered {
                t: rec.now(),
                queue: queue.clone(),
                msg,
                offset: d.offset,
                redelivered: d.redelivered,
                session,
            });
            let roll: u32 = if *draining.borrow() {
                0
            } else {
                rng.gen_range(0..100)
            };
            if roll < 85 {
                let fut = c.ack(d.offset);
                let (rec, queue, offset) = (rec.clone(), queue.clone(), d.offset);
                tokio::spawn(async move {
                    if let Ok(s) = fut.await {
                        if s.settled.contains(&offset) {
                            rec.record(Event::AckOk {
                                t: rec.now(),
                                queue,
                                msg,
                                offset,
                            });
                        }
                    }
                });
            } else if roll < 95 {
                // Sent at once; whether it took effect does not matter here.
                drop(c.nack(d.offset, true));
            } else {
                continue 'outer; // drop the consumer: its messages come back
            }
        }
    }
}

/// Asks every node, every 250 ms, who leads each queue; records changes.
pub async fn observe_leaders(
    roster: Roster,
    slots: Vec<String>,
    queues: Vec<String>,
    rec: Recorder,
    stop: watch::Receiver<bool>,
) {
    let clients = slot_clients(&slots, Duration::from_millis(500));
    let mut seen: HashMap<(u64, String), (u64, u64)> = HashMap::new();
    while !*stop.borrow() {
        for (addr, client) in &clients {
            for q in &queues {
                let Some(id) = roster.id_at(addr) else {
                    continue;
                };
                let Ok(Ok(info)) =
                    tokio::time::timeout(Duration::from_millis(600), client.get_queue(q)).await
                else {
                    continue;
                };
                // Only the node's own view counts: a forwarded answer is another node's.
                if info.answered_by != id || info.leader_id == 0 {
                    continue;
                }
                let now = (info.term, info.leader_id);
                if seen.insert((id, q.clone()), now) != Some(now) {
                    rec.record(Event::Leader {
                        t: rec.now(),
                        queue: q.clone(),
                        term: info.term,
                        leader: info.leader_id,
                        reporter: id,
                    });
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// One client per slot address, each reaching that address only.
pub fn slot_clients(slots: &[String], timeout: Duration) -> Vec<(String, Client)> {
    let ids: Vec<(u64, String)> = slots.iter().map(|a| (0, a.clone())).collect();
    node_clients(&ids, timeout)
        .into_iter()
        .zip(slots.iter().cloned())
        .map(|((_, c), a)| (a, c))
        .collect()
}

/// One client per node, each reaching that node only (a node's own view of
/// leaders, and follower reads, are answered by the node asked).
pub fn node_clients(addrs: &[(u64, String)], timeout: Duration) -> Vec<(u64, Client)> {
    let options = crate::tls::client_options(ClientOptions {
        request_timeout: timeout,
        retry_deadline: timeout,
        ..Default::default()
    });
    addrs
        .iter()
        .filter_map(|(id, a)| {
            Client::lazy([a.clone()], options.clone())
                .ok()
                .map(|c| (*id, c))
        })
        .collect()
}
