//! `raftq-bench publish`, and the producer side of `e2e`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use hdrhistogram::Histogram;
use indicatif::ProgressBar;
use raftq_client::{Client, Error, ProducerOptions, PublishMessage};
use raftq_cmdline::output::progress;
use serde_json::json;

use crate::pace::Pace;
use crate::report::{self, histogram, Measured};
use crate::workload::{ensure_queue, queue_of, validate, BenchArgs};

/// Headers of e2e messages: when sent, and by which run.
pub const SENT_AT_HEADER: &str = "x-bench-sent-us";
pub const RUN_HEADER: &str = "x-bench-run";

pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

pub struct Published {
    pub confirmed: u64,
    pub failed: u64,
    pub elapsed: Duration,
    pub latency: Histogram<u64>,
    pub first_error: Option<Error>,
}

/// The wall-clock time (µs since the epoch) of an earlier instant.
fn wall_clock_us(at: Instant) -> u64 {
    let ago = u64::try_from(at.elapsed().as_micros()).unwrap_or(u64::MAX);
    now_us().saturating_sub(ago)
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at.into()).await;
    }
}

/// Takes one message off the shared budget; false once it is spent.
fn claim(remaining: &AtomicU64) -> bool {
    remaining
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| r.checked_sub(1))
        .is_ok()
}

/// Runs `args.producers` producers until `args.count` messages are sent or
/// `args.max_duration` passes, each keeping at most `args.inflight`
/// unconfirmed and, with `--rate`, sending its share of the rate.
/// With `run_id`, messages carry the e2e timestamp headers.
pub async fn run_producers(
    client: &Client,
    args: &BenchArgs,
    bar: &ProgressBar,
    run_id: Option<&str>,
) -> Published {
    let remaining = Arc::new(AtomicU64::new(args.count));
    let payload = Bytes::from(vec![b'x'; args.size]);
    let started = Instant::now();
    let deadline = started + args.max_duration;
    let producers = (0..args.producers).map(|i| {
        let options = ProducerOptions {
            max_batch_messages: args.batch,
            ..Default::default()
        };
        let producer = client.producer_with(&queue_of(args, i), options);
        let (remaining, payload, bar) = (remaining.clone(), payload.clone(), bar.clone());
        let run_id = run_id.map(str::to_string);
        let inflight = args.inflight;
        let pace = Pace::new(started, args.rate.map(|r| r / args.producers as f64));
        async move {
            let mut latency = histogram();
            let (mut confirmed, mut failed, mut first_error) = (0u64, 0u64, None);
            let mut outstanding = FuturesUnordered::new();
            let mut sent = 0u64;
            loop {
                let now = Instant::now();
                while outstanding.len() < inflight
                    && now < deadline
                    && first_error.is_none()
                    && pace.is_due(sent, now)
                    && claim(&remaining)
                {
                    // Paced messages count from when they were due, so a
                    // full window shows as latency.
                    let due = pace.due(sent).unwrap_or_else(Instant::now);
                    sent += 1;
                    let headers: HashMap<String, String> = match &run_id {
                        Some(run) => HashMap::from([
                            (SENT_AT_HEADER.to_string(), wall_clock_us(due).to_string()),
                            (RUN_HEADER.to_string(), run.clone()),
                        ]),
                        None => HashMap::new(),
                    };
                    let confirm = producer.send(PublishMessage {
                        payload: payload.clone(),
                        headers,
                    });
                    outstanding.push(confirm.map(move |r| (due, r)));
                }
                let more = now < deadline
                    && first_error.is_none()
                    && remaining.load(Ordering::Relaxed) > 0;
                let next_due = pace
                    .due(sent)
                    .filter(|_| more && outstanding.len() < inflight);
                if outstanding.is_empty() && next_due.is_none() {
                    break;
                }
                tokio::select! {
                    Some((due, result)) = outstanding.next(), if !outstanding.is_empty() => {
                        match result {
                            Ok(_) => {
                                confirmed += 1;
                                report::record(&mut latency, due.elapsed());
                            }
                            Err(e) => {
                                failed += 1;
                                first_error.get_or_insert(e);
                            }
                        }
                        bar.inc(1);
                    }
                    _ = sleep_until(next_due), if next_due.is_some() => {}
                }
            }
            (confirmed, failed, latency, first_error)
        }
    });
    let results = futures::future::join_all(producers).await;
    let mut out = Published {
        confirmed: 0,
        failed: 0,
        elapsed: started.elapsed(),
        latency: histogram(),
        first_error: None,
    };
    for (confirmed, failed, latency, error) in results {
        out.confirmed += confirmed;
        out.failed += failed;
        // Same bounds everywhere: adding cannot fail.
        let _ = out.latency.add(&latency);
        if out.first_error.is_none() {
            out.first_error = error;
        }
    }
    out
}

pub async fn run(client: &Client, args: &BenchArgs, json_out: bool) -> anyhow::Result<()> {
    run_named(client, args, json_out, "publish").await
}

pub async fn run_named(
    client: &Client,
    args: &BenchArgs,
    json_out: bool,
    workload: &str,
) -> anyhow::Result<()> {
    validate(args)?;
    ensure_queue(client, args).await?;
    let bar = progress(args.count, workload);
    let r = run_producers(client, args, &bar, None).await;
    bar.finish_and_clear();
    report::print(
        json_out,
        &Measured {
            workload,
            queue: &args.queue,
            messages: r.confirmed,
            failed: r.failed,
            elapsed: r.elapsed,
            payload_bytes: args.size,
            latency: &r.latency,
            latency_of: "send to confirm",
            extra: vec![
                ("producers", json!(args.producers)),
                ("inflight", json!(args.inflight)),
                ("batch", json!(args.batch)),
                ("queues", json!(args.queues)),
                ("rate", json!(args.rate)),
            ],
        },
    )?;
    if let Some(e) = r.first_error {
        anyhow::bail!("{} message(s) were not confirmed: {e}", r.failed);
    }
    if r.confirmed < args.count {
        eprintln!(
            "note: stopped at --max-duration after {} of {} messages",
            r.confirmed, args.count
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_never_overspent() {
        let r = AtomicU64::new(2);
        assert!(claim(&r));
        assert!(claim(&r));
        assert!(!claim(&r));
        assert_eq!(r.load(Ordering::Relaxed), 0);
    }
}
