//! `raftq publish`: idempotent, pipelined, confirmed publishing.

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal};
use std::time::Instant;

use bytes::Bytes;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use raftq_client::{Client, PublishMessage};
use serde_json::json;

#[derive(Debug, Args)]
pub struct PublishArgs {
    queue: String,
    /// Message payloads; without them (and without --count) stdin lines are sent.
    messages: Vec<String>,
    /// Generate this many messages instead.
    #[arg(long)]
    count: Option<u64>,
    /// Payload size of generated messages, in bytes.
    #[arg(long, default_value_t = 256)]
    size: usize,
    /// Header `key=value`, repeatable.
    #[arg(long = "header", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// Messages per publish request.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Publish requests in flight at once (one per producer).
    #[arg(long, default_value_t = 4)]
    inflight: usize,
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("header {s:?} must look like key=value"))
}

fn payloads(args: &PublishArgs) -> anyhow::Result<Box<dyn Iterator<Item = Bytes>>> {
    if let Some(count) = args.count {
        let size = args.size;
        return Ok(Box::new((0..count).map(move |i| {
            let mut p = format!("msg-{i:010}-").into_bytes();
            p.resize(size.max(p.len()), b'x');
            Bytes::from(p)
        })));
    }
    if !args.messages.is_empty() {
        let msgs: Vec<Bytes> = args
            .messages
            .iter()
            .map(|m| Bytes::from(m.clone()))
            .collect();
        return Ok(Box::new(msgs.into_iter()));
    }
    if std::io::stdin().is_terminal() {
        eprintln!("reading messages from stdin, one per line (Ctrl-D to finish)");
    }
    let lines: Vec<Bytes> = std::io::stdin()
        .lock()
        .lines()
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .map(Bytes::from)
        .collect();
    Ok(Box::new(lines.into_iter()))
}

pub async fn run(client: &Client, args: &PublishArgs, json_out: bool) -> anyhow::Result<()> {
    if args.batch == 0 || args.inflight == 0 {
        anyhow::bail!("--batch and --inflight must be at least 1");
    }
    let headers: HashMap<String, String> = args.headers.iter().cloned().collect();
    let mut source = payloads(args)?.peekable();
    let progress = match args.count {
        Some(n) => {
            let bar = ProgressBar::new(n);
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} msgs {per_sec} eta {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        }
        None => ProgressBar::hidden(),
    };
    let started = Instant::now();
    let batches = std::iter::from_fn(|| {
        let batch: Vec<PublishMessage> = source
            .by_ref()
            .take(args.batch)
            .map(|payload| PublishMessage {
                payload,
                headers: headers.clone(),
            })
            .collect();
        (!batch.is_empty()).then_some(batch)
    });
    // --inflight independent idempotent producers, each with one batch in flight:
    // per-producer order is what makes retries exactly-once.
    let source = std::sync::Mutex::new(batches);
    let next_batch = || source.lock().unwrap_or_else(|e| e.into_inner()).next();
    let workers = (0..args.inflight).map(|_| {
        let mut producer = client.producer(&args.queue);
        let progress = progress.clone();
        let next_batch = &next_batch;
        async move {
            let (mut confirmed, mut failed, mut error, mut last) = (0u64, 0u64, None, None);
            while let Some(batch) = next_batch() {
                let n = batch.len() as u64;
                match producer.send(batch).await {
                    Ok(offsets) => {
                        confirmed += n;
                        last = offsets.last().copied().max(last);
                    }
                    Err(e) => {
                        failed += n;
                        error.get_or_insert(e);
                    }
                }
                progress.inc(n);
            }
            (confirmed, failed, error, last)
        }
    });
    let results = futures::future::join_all(workers).await;
    let confirmed: u64 = results.iter().map(|r| r.0).sum();
    let failed: u64 = results.iter().map(|r| r.1).sum();
    let last_offset = results.iter().filter_map(|r| r.3).max();
    let first_error = results.into_iter().find_map(|r| r.2);
    progress.finish_and_clear();
    let elapsed = started.elapsed();
    let rate = confirmed as f64 / elapsed.as_secs_f64().max(1e-9);
    if json_out {
        println!(
            "{}",
            json!({
                "queue": args.queue,
                "confirmed": confirmed,
                "failed": failed,
                "elapsed_ms": elapsed.as_millis() as u64,
                "msgs_per_sec": rate.round(),
                "error": first_error.as_ref().map(|e| e.to_string()),
            })
        );
    } else {
        println!(
            "confirmed {confirmed} message(s) to '{}' in {:.2?} ({rate:.0} msgs/s){}",
            args.queue,
            elapsed,
            match last_offset {
                Some(o) => format!(", last offset {o}"),
                None => String::new(),
            }
        );
    }
    match first_error {
        Some(e) => Err(anyhow::anyhow!("{failed} message(s) not confirmed: {e}")),
        None => Ok(()),
    }
}
