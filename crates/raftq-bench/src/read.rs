//! `raftq-bench read`: stream read throughput with readers spread over the
//! stream's replicas or all on its leader. Each reader makes full passes over
//! a preloaded stream (first offset to the end as loaded), each pass a new
//! ReadStream served by the node the reader is pinned to.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use raftq_client::{Client, Error, QueueKind, QueueOptions, StreamOptions, StreamStart};
use raftq_cmdline::output::progress;
use serde_json::json;

use crate::report::{self, histogram, Measured};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Spread {
    /// Reader i reads from replica i mod replicas (followers carry reads).
    Replicas,
    /// Every reader reads from the leader.
    Leader,
}

#[derive(Debug, Args, Clone)]
pub struct ReadArgs {
    /// Stream to read (created and loaded if it holds fewer than --messages).
    #[arg(long, default_value = "bench-stream")]
    pub queue: String,
    #[arg(long, default_value_t = 3)]
    pub replicas: u32,
    /// Messages in the stream; each pass reads them all.
    #[arg(long, default_value_t = 20_000)]
    pub messages: u64,
    /// Payload bytes per message when loading.
    #[arg(long, default_value_t = 256)]
    pub size: usize,
    /// Concurrent readers.
    #[arg(long, default_value_t = 6)]
    pub readers: usize,
    #[arg(long, value_enum, default_value = "replicas")]
    pub spread: Spread,
    /// Read for this long (passes in progress then finish).
    #[arg(long, default_value = "20s", value_parser = raftq_cmdline::duration::parse)]
    pub duration: Duration,
    /// Most messages per server response.
    #[arg(long, default_value_t = 1024)]
    pub max_batch: u32,
}

pub async fn run(client: &Client, args: &ReadArgs, json_out: bool) -> anyhow::Result<()> {
    if args.readers == 0 || args.messages == 0 {
        anyhow::bail!("--readers and --messages must be at least 1");
    }
    let (info, end) = load(client, args).await?;
    let first = info.first_offset;
    let nodes: BTreeMap<u64, String> = client
        .cluster_status()
        .await?
        .nodes
        .into_iter()
        .map(|n| (n.id, n.address))
        .collect();
    let targets: Vec<u64> = match args.spread {
        Spread::Leader if info.leader_id == 0 => anyhow::bail!("the stream has no leader now"),
        Spread::Leader => vec![info.leader_id],
        Spread::Replicas => info.replicas.clone(),
    };
    anyhow::ensure!(
        !targets.is_empty(),
        "the stream '{}' lists no replicas",
        args.queue
    );
    let total = Arc::new(AtomicU64::new(0));
    let per_node: Arc<Mutex<BTreeMap<u64, u64>>> = Arc::default();
    let passes = Arc::new(Mutex::new(histogram()));
    // Time-bounded workload: the bar shows seconds done.
    let bar = progress(args.duration.as_secs().max(1), "read (s)");
    let started = Instant::now();
    let stop_at = started + args.duration;
    let mut tasks = Vec::new();
    for i in 0..args.readers {
        let node = targets[i % targets.len()];
        let addr = nodes
            .get(&node)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("node {node} has no known address"))?;
        // Pinned to one node: the reader's client knows only that address.
        let reader_client = Client::lazy([addr], client.options().clone())?;
        let (queue, batch) = (args.queue.clone(), args.max_batch);
        let (total, per_node, passes, bar) =
            (total.clone(), per_node.clone(), passes.clone(), bar.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < stop_at {
                let pass = Instant::now();
                let options = StreamOptions {
                    start: StreamStart::Offset(first),
                    max_batch: batch,
                    ..Default::default()
                };
                let mut reader = reader_client.stream_reader(&queue, options).await?;
                let mut read = 0u64;
                while reader.position().is_none_or(|p| p < end) {
                    match reader.next().await {
                        Some(Ok(_)) => read += 1,
                        Some(Err(e)) => return Err(e),
                        None => break,
                    }
                    if read.is_multiple_of(1024) {
                        bar.set_position(started.elapsed().as_secs());
                    }
                }
                total.fetch_add(read, Ordering::Relaxed);
                if let Ok(mut m) = per_node.lock() {
                    *m.entry(reader.node_id()).or_default() += read;
                }
                if let Ok(mut h) = passes.lock() {
                    report::record(&mut h, pass.elapsed());
                }
            }
            Ok::<(), Error>(())
        }));
    }
    let mut failed = 0;
    for t in tasks {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                failed += 1;
                eprintln!("reader failed: {e}");
            }
            Err(e) => {
                failed += 1;
                eprintln!("reader task failed: {e}");
            }
        }
    }
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    let per_node: BTreeMap<String, u64> = per_node
        .lock()
        .map(|m| m.iter().map(|(k, v)| (k.to_string(), *v)).collect())
        .unwrap_or_default();
    let passes = passes
        .lock()
        .map(|h| h.clone())
        .unwrap_or_else(|_| histogram());
    report::print(
        json_out,
        &Measured {
            workload: "read",
            queue: &args.queue,
            messages: total.load(Ordering::Relaxed),
            failed,
            elapsed,
            payload_bytes: args.size,
            latency: &passes,
            latency_of: "one full pass over the stream",
            extra: vec![
                (
                    "spread",
                    json!(match args.spread {
                        Spread::Replicas => "replicas",
                        Spread::Leader => "leader",
                    }),
                ),
                ("readers", json!(args.readers)),
                ("stream_messages", json!(end - first)),
                ("per_node", json!(per_node)),
            ],
        },
    )?;
    if failed > 0 {
        anyhow::bail!("{failed} reader(s) failed");
    }
    Ok(())
}

/// Creates the stream if missing and publishes until it holds --messages.
async fn load(client: &Client, args: &ReadArgs) -> anyhow::Result<(raftq_client::QueueInfo, u64)> {
    let options = QueueOptions {
        kind: QueueKind::Stream as i32,
        replicas: args.replicas,
        ..Default::default()
    };
    match client.create_queue(&args.queue, options).await {
        Ok(_) | Err(Error::AlreadyExists(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let info = client.get_queue(&args.queue).await?;
    if info.options.as_ref().map(|o| o.kind) != Some(QueueKind::Stream as i32) {
        anyhow::bail!("queue '{}' exists and is not a stream", args.queue);
    }
    let have = info.next_offset - info.first_offset;
    let mut loaded_to = info.next_offset;
    if have < args.messages {
        let producer = client.producer(&args.queue);
        let payload = bytes::Bytes::from(vec![b'r'; args.size]);
        let confirms: Vec<_> = (have..args.messages)
            .map(|_| producer.send(payload.clone()))
            .collect();
        for c in confirms {
            loaded_to = loaded_to.max(c.await? + 1);
        }
    }
    // The replica that answered may not have applied the last load yet.
    Ok((info, loaded_to))
}
