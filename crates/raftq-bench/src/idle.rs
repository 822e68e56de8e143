//! `raftq-bench idle`: what many idle queues cost. Creates `--queues` queues,
//! waits until each has a leader, then measures every node's CPU (from /proc
//! by pid), resident memory and Raft RPCs per second (from its `/metrics`)
//! over `--measure` while nothing is published.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use futures::stream::{self, StreamExt};
use raftq_client::{Client, Error, QueueOptions};
use raftq_cmdline::outln;
use raftq_cmdline::output::progress;
use serde_json::json;

use crate::procstat::{cpu_time, pid_of, rss_bytes, scrape_sum};

#[derive(Debug, Args, Clone)]
pub struct IdleArgs {
    /// Queues to create (named PREFIX-0 .. PREFIX-N-1; existing ones are kept).
    #[arg(long, default_value_t = 1000)]
    pub queues: usize,
    /// Name prefix of the queues.
    #[arg(long, default_value = "idle")]
    pub prefix: String,
    /// Replicas per queue.
    #[arg(long, default_value_t = 3)]
    pub replicas: u32,
    /// How long to measure.
    #[arg(long, default_value = "30s", value_parser = raftq_cmdline::duration::parse)]
    pub measure: Duration,
    /// Directory of pid files named node<ID> (scripts/cluster.sh: .cluster/pids).
    #[arg(long)]
    pub pid_dir: PathBuf,
    /// A node's metrics port is its gRPC port plus this (scripts/cluster.sh: 100).
    #[arg(long, default_value_t = 100)]
    pub metrics_offset: u16,
}

fn metrics_addr(grpc: &str, offset: u16) -> Option<String> {
    let (host, port) = grpc.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    Some(format!("{host}:{}", port.checked_add(offset)?))
}

async fn create_all(client: &Client, args: &IdleArgs) -> anyhow::Result<()> {
    let bar = progress(args.queues as u64, "create");
    let results: Vec<Result<(), Error>> = stream::iter(0..args.queues)
        .map(|i| {
            let name = format!("{}-{i}", args.prefix);
            let options = QueueOptions {
                replicas: args.replicas,
                ..Default::default()
            };
            let bar = bar.clone();
            async move {
                let r = match client.create_queue(&name, options).await {
                    Ok(_) | Err(Error::AlreadyExists(_)) => Ok(()),
                    Err(e) => Err(e),
                };
                bar.inc(1);
                r
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    bar.finish_and_clear();
    results.into_iter().collect::<Result<(), Error>>()?;
    Ok(())
}

async fn wait_all_led(client: &Client, args: &IdleArgs) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let status = client.cluster_status().await?;
        let leaderless = status
            .queues
            .iter()
            .filter(|q| q.name.starts_with(&format!("{}-", args.prefix)) && q.leader_id == 0)
            .count();
        if leaderless == 0 {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{leaderless} queue(s) still without a leader after 5 minutes"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub async fn run(client: &Client, args: &IdleArgs, json_out: bool) -> anyhow::Result<()> {
    anyhow::ensure!(args.queues > 0, "--queues must be at least 1");
    create_all(client, args).await?;
    wait_all_led(client, args).await?;
    // Elections and catalog catch-up of the creation burst are not idle cost.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let nodes = client.cluster_status().await?.nodes;
    let mut before = Vec::new();
    for n in &nodes {
        let pid = pid_of(&args.pid_dir, n.id)?;
        let metrics = metrics_addr(&n.address, args.metrics_offset);
        let rpcs = match &metrics {
            Some(m) => scrape_sum(m, "raftq_peer_rpcs_sent_total").await.ok(),
            None => None,
        };
        before.push((n.id, pid, metrics, cpu_time(pid)?, rpcs));
    }
    let started = Instant::now();
    tokio::time::sleep(args.measure).await;
    let secs = started.elapsed().as_secs_f64();
    let mut rows = Vec::new();
    for (id, pid, metrics, cpu0, rpcs0) in before {
        let cpu = cpu_time(pid)?.saturating_sub(cpu0).as_secs_f64() / secs * 100.0;
        let rpcs = match (&metrics, rpcs0) {
            (Some(m), Some(r0)) => scrape_sum(m, "raftq_peer_rpcs_sent_total")
                .await
                .ok()
                .map(|r1| (r1 - r0) / secs),
            _ => None,
        };
        rows.push((id, cpu, rss_bytes(pid)?, rpcs));
    }
    let cpu_max = rows.iter().map(|r| r.1).fold(0.0, f64::max);
    if json_out {
        outln!(
            "{}",
            json!({
                "workload": "idle", "queues": args.queues, "measured_s": secs.round(),
                "cpu_pct_max": (cpu_max * 10.0).round() / 10.0,
                "cpu_pct": rows.iter().map(|r| (r.1 * 10.0).round() / 10.0).collect::<Vec<_>>(),
                "rss_mib": rows.iter().map(|r| r.2 / 1048576).collect::<Vec<_>>(),
                "rpcs_per_sec": rows.iter().map(|r| r.3.map(f64::round)).collect::<Vec<_>>(),
            })
        )?;
    } else {
        outln!(
            "{:<6} {:>12} {:>10} {:>14}",
            "NODE",
            "CPU % CORE",
            "RSS MIB",
            "RAFT RPCS/S"
        )?;
        for (id, cpu, rss, rpcs) in &rows {
            let rpcs = rpcs.map_or("-".to_string(), |r| format!("{r:.0}"));
            outln!("{id:<6} {cpu:>12.1} {:>10} {rpcs:>14}", rss / 1048576)?;
        }
        outln!(
            "{} idle queues, measured over {secs:.0} s; busiest node {cpu_max:.1}% of one core",
            args.queues
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_port_is_offset_from_the_grpc_port() {
        assert_eq!(
            metrics_addr("127.0.0.1:7001", 100).as_deref(),
            Some("127.0.0.1:7101")
        );
        assert_eq!(metrics_addr("no-port", 100), None);
        assert_eq!(metrics_addr("h:65500", 100), None);
    }
}
