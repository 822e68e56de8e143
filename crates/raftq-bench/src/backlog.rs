//! `raftq-bench backlog`: memory with a large backlog, and how fast a node
//! restarted on it serves again. Publishes `--count` messages into one queue,
//! reads every node's resident memory, restarts the queue's leader with
//! `--restart-cmd`, and times until that node answers a local (stale-ok) read
//! of the queue at an applied index at least the one before the restart.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use raftq_client::{Client, ClientOptions, Consistency};
use raftq_cmdline::outln;
use raftq_cmdline::output::progress;
use serde_json::json;

use crate::procstat::{pid_of, rss_bytes};
use crate::publish::run_producers;
use crate::workload::{ensure_queue, BenchArgs};

#[derive(Debug, Args, Clone)]
pub struct BacklogArgs {
    /// Queue to fill (created if missing).
    #[arg(long, default_value = "backlog")]
    pub queue: String,
    /// Messages to publish into it.
    #[arg(long, default_value_t = 1_000_000)]
    pub count: u64,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 256)]
    pub size: usize,
    /// Directory of pid files named node<ID> (scripts/cluster.sh: .cluster/pids).
    #[arg(long)]
    pub pid_dir: PathBuf,
    /// Shell command restarting a node, `{id}` = node id.
    #[arg(long)]
    pub restart_cmd: String,
}

async fn rss_of_all(client: &Client, args: &BacklogArgs) -> anyhow::Result<Vec<(u64, u64)>> {
    let mut out = Vec::new();
    for n in client.cluster_status().await?.nodes {
        out.push((n.id, rss_bytes(pid_of(&args.pid_dir, n.id)?)?));
    }
    Ok(out)
}

pub async fn run(client: &Client, args: &BacklogArgs, json_out: bool) -> anyhow::Result<()> {
    let publish = BenchArgs {
        queue: args.queue.clone(),
        count: args.count,
        size: args.size,
        inflight: 1024,
        batch: 256,
        producers: 2,
        ..crate::workload::default_bench_args()
    };
    ensure_queue(client, &publish).await?;
    let bar = progress(args.count, "fill");
    let filled = run_producers(client, &publish, &bar, None).await;
    bar.finish_and_clear();
    if let Some(e) = filled.first_error {
        anyhow::bail!("filling the queue failed: {e}");
    }
    // Followers apply a moment after the leader confirms.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let info = client.get_queue(&args.queue).await?;
    let rss = rss_of_all(client, args).await?;
    let payload = info.depth.saturating_mul(args.size as u64);

    let leader = info.leader_id;
    anyhow::ensure!(leader != 0, "queue '{}' has no leader", args.queue);
    let status = client.cluster_status().await?;
    let addr = status
        .nodes
        .iter()
        .find(|n| n.id == leader)
        .map(|n| n.address.clone())
        .ok_or_else(|| anyhow::anyhow!("node {leader} is not in the cluster status"))?;
    let only_that_node = Client::lazy(
        [addr.clone()],
        ClientOptions {
            request_timeout: Duration::from_secs(2),
            ..Default::default()
        },
    )?;
    let before = only_that_node
        .read(&args.queue, 0, 1, Consistency::StaleOk)
        .await?
        .applied_index;
    let restarted_at = Instant::now();
    crate::failover::shell(&args.restart_cmd.replace("{id}", &leader.to_string())).await?;
    let serving = loop {
        match only_that_node
            .read(&args.queue, 0, 1, Consistency::StaleOk)
            .await
        {
            Ok(r) if r.applied_index >= before && !r.messages.is_empty() => {
                break restarted_at.elapsed()
            }
            _ if restarted_at.elapsed() > Duration::from_secs(300) => {
                anyhow::bail!("node {leader} not serving 5 minutes after its restart")
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let rss_max = rss.iter().map(|r| r.1).max().unwrap_or(0);
    let ratio = rss_max as f64 / payload.max(1) as f64;
    if json_out {
        outln!(
            "{}",
            json!({
                "workload": "backlog", "queue": args.queue, "depth": info.depth, "size": args.size,
                "payload_mib": payload / 1048576,
                "rss_mib": rss.iter().map(|r| r.1 / 1048576).collect::<Vec<_>>(),
                "rss_to_payload_max": (ratio * 100.0).round() / 100.0,
                "restart_serving_ms": serving.as_millis() as u64,
                "restarted_node": leader,
            })
        )?;
    } else {
        for (id, bytes) in &rss {
            outln!("node {id}: resident {} MiB", bytes / 1048576)?;
        }
        outln!(
            "{} ready messages ({} MiB of payload): busiest node holds {ratio:.2}x the payload; node {leader} restarted and serving again after {} ms",
            info.depth,
            payload / 1048576,
            serving.as_millis()
        )?;
    }
    Ok(())
}
