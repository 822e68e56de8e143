//! `raftq bench`: the standard workloads against a running cluster.
//!
//! - `publish`: confirmed publishing by `--producers` idempotent producers, each
//!   with one batch of `--batch` messages in flight (W1: `--batch 256`; W2, the
//!   latency workload: `--batch 1 --producers 1`). Latency = batch commit time.
//! - `e2e`: producers and consumers together (manual acks); latency = publish to
//!   delivery, from a timestamp header.
//!
//! Every loop is bounded by `--count` and `--max-duration`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::{Args, Subcommand};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use raftq_client::{Client, PublishMessage, QueueOptions};
use serde_json::json;

const SENT_AT_HEADER: &str = "x-bench-sent-us";

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Confirmed publish throughput and commit latency.
    Publish(BenchArgs),
    /// Producers and consumers together: publish-to-delivery latency.
    E2e(E2eArgs),
}

#[derive(Debug, Args, Clone)]
pub struct BenchArgs {
    /// Queue to use (created if missing; 3 replicas).
    #[arg(long, default_value = "bench")]
    queue: String,
    /// Messages to publish in total.
    #[arg(long, default_value_t = 100_000)]
    count: u64,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 256)]
    size: usize,
    /// Messages per publish request (= messages in flight per producer).
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Concurrent producers.
    #[arg(long, default_value_t = 1)]
    producers: usize,
    /// Stop after this long even if --count is not reached.
    #[arg(long, default_value = "5m", value_parser = crate::duration::parse)]
    max_duration: Duration,
}

#[derive(Debug, Args, Clone)]
pub struct E2eArgs {
    #[command(flatten)]
    publish: BenchArgs,
    /// Concurrent consumers.
    #[arg(long, default_value_t = 1)]
    consumers: usize,
    /// Consumer prefetch.
    #[arg(long, default_value_t = 256)]
    prefetch: u32,
}

fn histogram() -> Histogram<u64> {
    // Microseconds from 1 µs to 100 s, 3 significant digits: constant, valid bounds.
    Histogram::new_with_bounds(1, 100_000_000, 3).expect("valid histogram bounds")
}

fn progress(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    let template = format!("{what} {{bar:40}} {{pos}}/{{len}} {{per_sec}} eta {{eta}}");
    bar.set_style(
        ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

async fn ensure_queue(client: &Client, name: &str) -> anyhow::Result<()> {
    match client
        .create_queue(
            name,
            QueueOptions {
                replicas: 3,
                ..Default::default()
            },
        )
        .await
    {
        Ok(_) | Err(raftq_client::Error::AlreadyExists(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

struct PublishResult {
    confirmed: u64,
    failed: u64,
    elapsed: Duration,
    latency: Histogram<u64>,
}

/// Runs the producers; `sent_at` stamps each message for e2e latency.
async fn run_producers(
    client: &Client,
    args: &BenchArgs,
    bar: &ProgressBar,
    stamp: bool,
) -> PublishResult {
    let remaining = Arc::new(AtomicU64::new(args.count));
    let latency = Arc::new(Mutex::new(histogram()));
    let failed = Arc::new(AtomicU64::new(0));
    let payload = Bytes::from(vec![b'x'; args.size]);
    let started = Instant::now();
    let deadline = started + args.max_duration;
    let producers = (0..args.producers.max(1)).map(|_| {
        let (remaining, latency, failed, payload) = (
            remaining.clone(),
            latency.clone(),
            failed.clone(),
            payload.clone(),
        );
        let mut producer = client.producer(&args.queue);
        let bar = bar.clone();
        let batch = args.batch.max(1) as u64;
        async move {
            let mut confirmed = 0u64;
            while Instant::now() < deadline {
                let take = remaining
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |r| {
                        (r > 0).then(|| r - r.min(batch))
                    })
                    .map(|before| before.min(batch))
                    .unwrap_or(0);
                if take == 0 {
                    break;
                }
                let sent_at = now_us().to_string();
                let messages = (0..take)
                    .map(|_| PublishMessage {
                        payload: payload.clone(),
                        headers: if stamp {
                            [(SENT_AT_HEADER.to_string(), sent_at.clone())]
                                .into_iter()
                                .collect()
                        } else {
                            Default::default()
                        },
                    })
                    .collect();
                let t = Instant::now();
                match producer.send(messages).await {
                    Ok(_) => {
                        confirmed += take;
                        let us = t.elapsed().as_micros() as u64;
                        if let Ok(mut h) = latency.lock() {
                            let _ = h.record(us.max(1));
                        }
                    }
                    Err(_) => {
                        failed.fetch_add(take, Ordering::Relaxed);
                    }
                }
                bar.inc(take);
            }
            confirmed
        }
    });
    let confirmed: u64 = futures::future::join_all(producers).await.into_iter().sum();
    let latency = latency
        .lock()
        .map(|h| h.clone())
        .unwrap_or_else(|_| histogram());
    PublishResult {
        confirmed,
        failed: failed.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
        latency,
    }
}

/// What a workload measured, ready to print.
struct Measured<'a> {
    messages: u64,
    failed: u64,
    elapsed: Duration,
    latency: &'a Histogram<u64>,
    latency_of: &'a str,
}

fn report(json_out: bool, workload: &str, args: &BenchArgs, m: Measured<'_>) {
    let Measured {
        messages,
        failed,
        elapsed,
        latency: h,
        latency_of,
    } = m;
    let rate = messages as f64 / elapsed.as_secs_f64().max(1e-9);
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    if json_out {
        println!(
            "{}",
            json!({
                "workload": workload, "queue": args.queue, "messages": messages, "failed": failed,
                "size": args.size, "batch": args.batch, "producers": args.producers,
                "elapsed_ms": elapsed.as_millis() as u64, "msgs_per_sec": rate.round(),
                "latency": latency_of,
                "p50_ms": ms(0.5), "p90_ms": ms(0.9), "p99_ms": ms(0.99), "max_ms": h.max() as f64 / 1000.0,
            })
        );
    } else {
        println!(
            "workload   {workload} (batch {}, producers {}, {} B messages)",
            args.batch, args.producers, args.size
        );
        println!("messages   {messages} in {elapsed:.2?}, {failed} failed");
        println!("throughput {rate:.0} msgs/s");
        println!(
            "{latency_of} latency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}",
            ms(0.5),
            ms(0.9),
            ms(0.99),
            h.max() as f64 / 1000.0
        );
    }
}

pub async fn run(client: &Client, cmd: &BenchCommand, json_out: bool) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Publish(args) => {
            ensure_queue(client, &args.queue).await?;
            let bar = progress(args.count, "publish");
            let r = run_producers(client, args, &bar, false).await;
            bar.finish_and_clear();
            let m = Measured {
                messages: r.confirmed,
                failed: r.failed,
                elapsed: r.elapsed,
                latency: &r.latency,
                latency_of: "commit",
            };
            report(json_out, "publish", args, m);
            if r.failed > 0 {
                anyhow::bail!("{} message(s) were not confirmed", r.failed);
            }
            Ok(())
        }
        BenchCommand::E2e(args) => e2e(client, args, json_out).await,
    }
}

async fn e2e(client: &Client, args: &E2eArgs, json_out: bool) -> anyhow::Result<()> {
    let p = &args.publish;
    ensure_queue(client, &p.queue).await?;
    let received = Arc::new(AtomicU64::new(0));
    let latency = Arc::new(Mutex::new(histogram()));
    let deadline = Instant::now() + p.max_duration;
    let bar = progress(p.count, "e2e");
    let consumers: Vec<_> = (0..args.consumers.max(1))
        .map(|_| {
            let (client, received, latency, bar) = (
                client.clone(),
                received.clone(),
                latency.clone(),
                bar.clone(),
            );
            let (queue, prefetch, count) = (p.queue.clone(), args.prefetch, p.count);
            tokio::spawn(async move {
                let mut consumer = client.consumer(&queue, prefetch).await?;
                while received.load(Ordering::Relaxed) < count && Instant::now() < deadline {
                    let Some(first) = consumer.next_timeout(Duration::from_millis(500)).await?
                    else {
                        continue;
                    };
                    // Ack whatever already arrived in one settle, like a batching consumer.
                    let mut batch = vec![first];
                    while batch.len() < prefetch as usize {
                        match consumer.next_timeout(Duration::from_micros(200)).await? {
                            Some(d) => batch.push(d),
                            None => break,
                        }
                    }
                    let now = now_us();
                    if let Ok(mut h) = latency.lock() {
                        for d in &batch {
                            let sent: u64 = d
                                .headers
                                .get(SENT_AT_HEADER)
                                .and_then(|v| v.parse().ok())
                                .unwrap_or(now);
                            let _ = h.record(now.saturating_sub(sent).max(1));
                        }
                    }
                    let offsets: Vec<u64> = batch.iter().map(|d| d.offset).collect();
                    let n = offsets.len() as u64;
                    consumer.ack(offsets).await?;
                    received.fetch_add(n, Ordering::Relaxed);
                    bar.inc(n);
                }
                Ok::<(), raftq_client::Error>(())
            })
        })
        .collect();
    let started = Instant::now();
    let published = run_producers(client, p, &ProgressBar::hidden(), true).await;
    for c in consumers {
        match c.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("consumer stopped: {e}"),
            Err(e) => eprintln!("consumer task failed: {e}"),
        }
    }
    bar.finish_and_clear();
    let got = received.load(Ordering::Relaxed);
    let h = latency
        .lock()
        .map(|h| h.clone())
        .unwrap_or_else(|_| histogram());
    let m = Measured {
        messages: got,
        failed: published.failed,
        elapsed: started.elapsed(),
        latency: &h,
        latency_of: "publish-to-delivery",
    };
    report(json_out, "e2e", p, m);
    if got < published.confirmed {
        anyhow::bail!(
            "received {got} of {} confirmed messages before --max-duration",
            published.confirmed
        );
    }
    Ok(())
}
