//! `raftq-bench e2e`: producers and consumers at once; latency from the
//! producer's timestamp header to delivery (same machine clock).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use hdrhistogram::Histogram;
use indicatif::ProgressBar;
use raftq_client::{Client, Delivery, Error, Settlement};
use raftq_cmdline::output::progress;
use serde_json::json;

use crate::publish::{now_us, run_producers, RUN_HEADER, SENT_AT_HEADER};
use crate::report::{self, histogram, Measured};
use crate::workload::{ensure_queue, validate, E2eArgs};

/// After the producers finish, how long consumers wait for a message before
/// deciding the rest is not coming.
const DRAIN_IDLE: Duration = Duration::from_secs(10);

/// Shared between consumers.
struct Tally {
    received: AtomicU64,
    redelivered: AtomicU64,
    /// Messages left in the queue by earlier runs: acked, not counted.
    foreign: AtomicU64,
    latency: Mutex<Histogram<u64>>,
    /// Set once producers are done: how many were confirmed.
    target: AtomicU64,
    producers_done: AtomicBool,
}

impl Tally {
    fn done(&self) -> bool {
        self.producers_done.load(Ordering::SeqCst)
            && self.received.load(Ordering::SeqCst) >= self.target.load(Ordering::SeqCst)
    }

    fn take(&self, d: &Delivery, run_id: &str, now: u64, bar: &ProgressBar) {
        if d.headers.get(RUN_HEADER).map(String::as_str) != Some(run_id) {
            self.foreign.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if d.redelivered {
            self.redelivered.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if let Some(sent) = d
            .headers
            .get(SENT_AT_HEADER)
            .and_then(|v| v.parse::<u64>().ok())
        {
            if let Ok(mut h) = self.latency.lock() {
                report::record(&mut h, Duration::from_micros(now.saturating_sub(sent)));
            }
        }
        self.received.fetch_add(1, Ordering::SeqCst);
        bar.inc(1);
    }
}

async fn consume(
    client: Client,
    queue: String,
    prefetch: u32,
    run_id: String,
    tally: Arc<Tally>,
    deadline: Instant,
    bar: ProgressBar,
) -> Result<(), Error> {
    let mut consumer = client.consumer(&queue, prefetch).await?;
    // Acks are pipelined like an AMQP consumer's: the next deliveries are
    // taken while earlier acks commit. Waiting for each ack would split the
    // prefetch window into batches that commit one after another.
    let mut acks = FuturesUnordered::new();
    let mut idle_since = Instant::now();
    while !tally.done() && Instant::now() < deadline {
        let next = tokio::select! {
            biased;
            Some(result) = acks.next(), if !acks.is_empty() => {
                report_ack(result);
                continue;
            }
            next = consumer.next_timeout(Duration::from_millis(200)) => next?,
        };
        let Some(first) = next else {
            let producers_done = tally.producers_done.load(Ordering::SeqCst);
            if producers_done && idle_since.elapsed() >= DRAIN_IDLE {
                break;
            }
            continue;
        };
        idle_since = Instant::now();
        // Whatever already arrived is acked in one settle, like a batching consumer.
        let mut batch = vec![first];
        while batch.len() < prefetch.max(1) as usize {
            match consumer.next_timeout(Duration::ZERO).await? {
                Some(d) => batch.push(d),
                None => break,
            }
        }
        let now = now_us();
        for d in &batch {
            tally.take(d, &run_id, now, &bar);
        }
        let offsets: Vec<u64> = batch.iter().map(|d| d.offset).collect();
        acks.push(consumer.ack(offsets));
    }
    while let Some(result) = acks.next().await {
        report_ack(result);
    }
    Ok(())
}

fn report_ack(result: Result<Settlement, Error>) {
    if let Err(e) = result {
        // Those messages come again: at-least-once is what is measured.
        eprintln!("warning: ack not confirmed: {e}");
    }
}

/// Messages left by earlier runs would queue ahead of ours and show up as
/// latency: let the consumers (which ack and skip them) empty the queue first.
async fn drain_old_messages(
    client: &Client,
    queue: &str,
    tally: &Tally,
    deadline: Instant,
) -> anyhow::Result<()> {
    let depth = client.get_queue(queue).await?.depth;
    if depth == 0 {
        return Ok(());
    }
    eprintln!("queue '{queue}' holds {depth} message(s) from earlier runs: draining them first");
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if client.get_queue(queue).await?.depth == 0 {
            return Ok(());
        }
    }
    anyhow::bail!(
        "queue '{queue}' still not empty at the time limit ({} old messages drained)",
        tally.foreign.load(Ordering::Relaxed)
    )
}

pub async fn run(client: &Client, args: &E2eArgs, json_out: bool) -> anyhow::Result<()> {
    let p = &args.publish;
    validate(p)?;
    anyhow::ensure!(p.queues == 1, "bench e2e runs on one queue (--queues 1)");
    ensure_queue(client, p).await?;
    let run_id = format!("{:016x}", rand::random::<u64>());
    let tally = Arc::new(Tally {
        received: AtomicU64::new(0),
        redelivered: AtomicU64::new(0),
        foreign: AtomicU64::new(0),
        latency: Mutex::new(histogram()),
        target: AtomicU64::new(p.count),
        producers_done: AtomicBool::new(false),
    });
    // Consumers may drain a little past the publish budget.
    let deadline = Instant::now() + p.max_duration + DRAIN_IDLE;
    let bar = progress(p.count, "e2e");
    let consumers: Vec<_> = (0..args.consumers.max(1))
        .map(|_| {
            tokio::spawn(consume(
                client.clone(),
                p.queue.clone(),
                args.prefetch,
                run_id.clone(),
                tally.clone(),
                deadline,
                bar.clone(),
            ))
        })
        .collect();
    drain_old_messages(client, &p.queue, &tally, deadline).await?;
    let started = Instant::now();
    let published = run_producers(client, p, &ProgressBar::hidden(), Some(&run_id)).await;
    tally.target.store(published.confirmed, Ordering::SeqCst);
    tally.producers_done.store(true, Ordering::SeqCst);
    let mut consumer_error = None;
    for c in consumers {
        match c.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                consumer_error.get_or_insert(e.to_string());
            }
            Err(e) => {
                consumer_error.get_or_insert(format!("consumer task failed: {e}"));
            }
        }
    }
    bar.finish_and_clear();
    let received = tally.received.load(Ordering::SeqCst);
    let latency = tally
        .latency
        .lock()
        .map(|h| h.clone())
        .unwrap_or_else(|_| histogram());
    report::print(
        json_out,
        &Measured {
            workload: "e2e",
            queue: &p.queue,
            messages: received,
            failed: published.failed,
            elapsed: started.elapsed(),
            payload_bytes: p.size,
            latency: &latency,
            latency_of: "publish to delivery",
            extra: vec![
                ("producers", json!(p.producers)),
                ("consumers", json!(args.consumers)),
                ("inflight", json!(p.inflight)),
                ("prefetch", json!(args.prefetch)),
                ("confirmed", json!(published.confirmed)),
                // Where publish-to-delivery time goes: first the publish commit.
                ("confirm_p50_ms", json!(report::ms(&published.latency, 0.5))),
                (
                    "confirm_p99_ms",
                    json!(report::ms(&published.latency, 0.99)),
                ),
                (
                    "redelivered",
                    json!(tally.redelivered.load(Ordering::Relaxed)),
                ),
                ("foreign", json!(tally.foreign.load(Ordering::Relaxed))),
            ],
        },
    )?;
    if let Some(e) = consumer_error {
        anyhow::bail!("a consumer stopped: {e}");
    }
    if let Some(e) = published.first_error {
        anyhow::bail!("{} message(s) were not confirmed: {e}", published.failed);
    }
    if received < published.confirmed {
        anyhow::bail!(
            "received {received} of {} confirmed messages before the time limit",
            published.confirmed
        );
    }
    Ok(())
}
