//! `raftq consume`: print each message, then ack it (the safe order: a crash
//! in between means a redelivery, never a loss).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use clap::Args;
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use raftq_client::{Client, Consumer, Delivery, Error, QueueKind, Settlement, StreamStart};
use raftq_cmdline::outln;
use serde_json::json;

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    pub(crate) queue: String,
    /// Stop after this many messages.
    #[arg(long)]
    pub(crate) count: Option<u64>,
    /// Unacked deliveries the server may push ahead.
    #[arg(long, default_value_t = 100)]
    prefetch: u32,
    /// Stop when nothing arrives for this long; 0 waits forever.
    #[arg(
        long = "timeout-idle",
        visible_alias = "idle",
        default_value = "2s",
        value_parser = raftq_cmdline::duration::parse
    )]
    pub(crate) timeout_idle: Duration,
    /// Streams: where to start: first, last, next, an offset, or @UNIX_MS (the
    /// first message published at or after that time). Implies a stream.
    #[arg(long, value_parser = crate::cmd::consume_stream::parse_start)]
    pub(crate) from: Option<StreamStart>,
    /// Streams: a named consumer resumes from its committed offset on any
    /// node, and commits as it goes. Implies a stream.
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Streams: commit the named consumer's offset every this many messages
    /// (and always at the end).
    #[arg(long, default_value_t = 100)]
    pub(crate) commit_every: u64,
}

/// Credit to ask for: never more than the messages still wanted, so a
/// `--count` run does not pull (and then return, counting a failed delivery
/// against each) messages it will not print.
pub fn effective_prefetch(prefetch: u32, count: Option<u64>) -> u32 {
    match count {
        Some(c) => prefetch
            .max(1)
            .min(u32::try_from(c).unwrap_or(u32::MAX).max(1)),
        None => prefetch,
    }
}

/// Whether the ack of message number `received` (1-based) must wait until the
/// last wanted message arrived: the server refills credit as acks come, so
/// acking the last `prefetch` ones early would pull messages past `count`.
pub fn defer_ack(received: u64, count: Option<u64>, prefetch: u32) -> bool {
    count.is_some_and(|c| received + u64::from(prefetch) > c)
}

struct Acks {
    inflight: FuturesUnordered<Pending>,
    deferred: VecDeque<u64>,
    acked: u64,
    /// Acks that may not have taken effect (session lost, timeout).
    unconfirmed: u64,
    /// Acks of messages this consumer no longer held (returned after a failover).
    not_held: u64,
    first_error: Option<Error>,
}

type Pending = futures::future::BoxFuture<'static, (u64, Result<Settlement, Error>)>;

impl Acks {
    fn send(&mut self, consumer: &Consumer, offset: u64) {
        let ack = consumer.ack(offset);
        self.inflight
            .push(Box::pin(async move { (offset, ack.await) }));
    }

    /// Failures are counted, not printed one by one: a failover can leave
    /// hundreds of acks unconfirmed at once.
    fn take(&mut self, (offset, result): (u64, Result<Settlement, Error>)) {
        match result {
            Ok(s) if s.settled.contains(&offset) => self.acked += 1,
            Ok(_) => self.not_held += 1,
            Err(e) => {
                self.unconfirmed += 1;
                self.first_error.get_or_insert(e);
            }
        }
    }

    fn warn(&self) {
        if self.unconfirmed > 0 {
            let why = self
                .first_error
                .as_ref()
                .map(|e| e.to_string())
                .unwrap_or_default();
            eprintln!(
                "warning: {} ack(s) not confirmed, those messages may be delivered again: {why}",
                self.unconfirmed
            );
        }
        if self.not_held > 0 {
            eprintln!(
                "warning: {} message(s) were taken back by the cluster before their ack (consumer session ended): they will be delivered again",
                self.not_held
            );
        }
    }

    async fn finish(&mut self, consumer: &Consumer) {
        while let Some(offset) = self.deferred.pop_front() {
            self.send(consumer, offset);
        }
        while let Some(done) = self.inflight.next().await {
            self.take(done);
        }
    }
}

fn print(delivery: &Delivery, json_out: bool) -> std::io::Result<()> {
    let payload = String::from_utf8_lossy(&delivery.payload);
    if json_out {
        outln!(
            "{}",
            json!({
                "offset": delivery.offset,
                "payload": payload,
                "headers": delivery.headers,
                "delivery_count": delivery.delivery_count,
                "redelivered": delivery.redelivered,
                "publish_time_ms": delivery.publish_time_ms,
            })
        )
    } else if delivery.redelivered {
        outln!(
            "{:>8}  {payload}  (redelivered, {} earlier)",
            delivery.offset,
            delivery.delivery_count
        )
    } else {
        outln!("{:>8}  {payload}", delivery.offset)
    }
}

pub async fn run(client: &Client, args: &ConsumeArgs, json_out: bool) -> anyhow::Result<()> {
    let stream = args.from.is_some()
        || args.name.is_some()
        || client.get_queue(&args.queue).await?.options.map(|o| o.kind)
            == Some(QueueKind::Stream as i32);
    if stream {
        return crate::cmd::consume_stream::run(client, args, json_out).await;
    }
    let prefetch = effective_prefetch(args.prefetch, args.count);
    let mut consumer = client.consumer(&args.queue, prefetch).await?;
    let mut acks = Acks {
        inflight: FuturesUnordered::new(),
        deferred: VecDeque::new(),
        acked: 0,
        unconfirmed: 0,
        not_held: 0,
        first_error: None,
    };
    let started = Instant::now();
    let mut received = 0u64;
    let mut failure = None;
    while args.count.is_none_or(|c| received < c) {
        let next = if args.timeout_idle.is_zero() {
            consumer.next().await.transpose()
        } else {
            consumer.next_timeout(args.timeout_idle).await
        };
        let delivery = match next {
            Ok(Some(d)) => d,
            Ok(None) => break,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        received += 1;
        if let Err(e) = print(&delivery, json_out) {
            // Not printed, so not acked: it will be delivered again.
            acks.finish(&consumer).await;
            return Err(e.into());
        }
        if defer_ack(received, args.count, prefetch) {
            acks.deferred.push_back(delivery.offset);
        } else {
            acks.send(&consumer, delivery.offset);
        }
        // Collect finished acks without waiting, so the set stays small.
        while let Some(Some(done)) = acks.inflight.next().now_or_never() {
            acks.take(done);
        }
    }
    acks.finish(&consumer).await;
    drop(consumer);
    acks.warn();
    let elapsed_ms = started.elapsed().as_millis() as u64;
    if json_out {
        outln!(
            "{}",
            json!({
                "queue": args.queue,
                "received": received,
                "acked": acks.acked,
                "unconfirmed_acks": acks.unconfirmed,
                "not_held": acks.not_held,
                "elapsed_ms": elapsed_ms,
            })
        )?;
    } else {
        eprintln!("received {received}, acked {}", acks.acked);
    }
    match failure {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetch_never_exceeds_what_is_wanted() {
        assert_eq!(effective_prefetch(100, Some(10)), 10);
        assert_eq!(effective_prefetch(100, Some(1000)), 100);
        assert_eq!(effective_prefetch(100, None), 100);
        assert_eq!(effective_prefetch(0, Some(5)), 1);
        assert_eq!(effective_prefetch(100, Some(0)), 1);
    }

    #[test]
    fn only_the_last_prefetch_acks_wait() {
        // count 10, prefetch 4: acks 1..=6 go at once, 7..=10 wait.
        let deferred: Vec<u64> = (1..=10).filter(|&r| defer_ack(r, Some(10), 4)).collect();
        assert_eq!(deferred, [7, 8, 9, 10]);
        assert!(!defer_ack(1_000_000, None, 4));
    }
}
