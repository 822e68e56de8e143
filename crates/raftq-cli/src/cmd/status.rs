//! `raftq cluster status`: is my data safe right now? Nodes, leaders, lag, HA.

use std::time::Duration;

use clap::Subcommand;
use raftq_client::{Client, ClusterStatusResponse};
use serde_json::json;

use crate::cmd::queue::leader_text;
use crate::ha;

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Nodes, queues, leaders, replica lag and HA score.
    Status {
        /// Refresh every SECS seconds until interrupted.
        #[arg(long, value_name = "SECS")]
        watch: Option<u64>,
    },
}

struct Summary {
    ha_score: f64,
    leaderless: usize,
    under_replicated: usize,
    per_queue: Vec<(f64, usize)>,
}

fn summarize(status: &ClusterStatusResponse) -> Summary {
    let n = status.nodes.len();
    let live: Vec<u64> = status.nodes.iter().filter(|s| s.up).map(|s| s.id).collect();
    let per_queue: Vec<(f64, usize)> = status
        .queues
        .iter()
        .map(|q| {
            let in_sync = ha::in_sync(q, &live);
            (ha::queue_score(n, in_sync, q.leader_id != 0), in_sync)
        })
        .collect();
    let ha_score = if per_queue.is_empty() {
        0.0
    } else {
        per_queue.iter().map(|(s, _)| s).sum::<f64>() / per_queue.len() as f64
    };
    Summary {
        ha_score,
        leaderless: status.queues.iter().filter(|q| q.leader_id == 0).count(),
        under_replicated: status
            .queues
            .iter()
            .zip(&per_queue)
            .filter(|(q, (_, in_sync))| *in_sync < q.replicas.len())
            .count(),
        per_queue,
    }
}

fn print_json(status: &ClusterStatusResponse) {
    let s = summarize(status);
    let queues: Vec<_> = status
        .queues
        .iter()
        .zip(&s.per_queue)
        .map(|(q, (score, in_sync))| {
            let mut v = crate::cmd::queue_json(q);
            v["ha_score"] = json!(score);
            v["in_sync_replicas"] = json!(in_sync);
            v
        })
        .collect();
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "answered_by": status.answered_by,
            "metadata_leader": status.metadata_leader,
            "nodes": status.nodes.iter().map(|n| json!({
                "id": n.id, "address": n.address, "up": n.up,
                "last_seen_ms": (n.last_seen_ms != u64::MAX).then_some(n.last_seen_ms),
                "groups_led": n.groups_led,
            })).collect::<Vec<_>>(),
            "queues": queues,
            "ha_score": s.ha_score,
            "leaderless_queues": s.leaderless,
            "under_replicated_queues": s.under_replicated,
        }))
        .unwrap_or_default()
    );
}

fn print_table(status: &ClusterStatusResponse) {
    let s = summarize(status);
    println!(
        "{:<5} {:<22} {:<5} {:>10} {:>10}",
        "NODE", "ADDRESS", "UP", "LAST SEEN", "GROUPS LED"
    );
    for n in &status.nodes {
        let seen = if n.last_seen_ms == u64::MAX {
            "never".to_string()
        } else {
            format!("{}ms", n.last_seen_ms)
        };
        println!(
            "{:<5} {:<22} {:<5} {:>10} {:>10}",
            n.id,
            n.address,
            if n.up { "up" } else { "DOWN" },
            seen,
            n.groups_led
        );
    }
    println!();
    println!(
        "{:<20} {:<6} {:>6} {:<16} {:>9} {:>8} {:>6}",
        "QUEUE", "KIND", "LEADER", "REPLICAS (LAG)", "DEPTH", "UNACKED", "HA"
    );
    for (q, (score, _)) in status.queues.iter().zip(&s.per_queue) {
        let replicas: Vec<String> = q
            .replicas
            .iter()
            .map(
                |r| match q.replica_status.iter().find(|st| st.node_id == *r) {
                    Some(st) if st.lag > 0 => format!("{r}({})", st.lag),
                    _ => r.to_string(),
                },
            )
            .collect();
        let kind = if q.options.as_ref().is_some_and(|o| o.kind == 1) {
            "stream"
        } else {
            "work"
        };
        println!(
            "{:<20} {:<6} {:>6} {:<16} {:>9} {:>8} {:>6.2}",
            q.name,
            kind,
            leader_text(q.leader_id),
            replicas.join(","),
            q.depth,
            q.unacked,
            score
        );
    }
    println!();
    println!(
        "metadata leader: {}   HA score: {:.2}   leaderless queues: {}   under-replicated queues: {}",
        leader_text(status.metadata_leader),
        s.ha_score,
        s.leaderless,
        s.under_replicated
    );
}

pub async fn run(client: &Client, cmd: &ClusterCommand, json: bool) -> anyhow::Result<()> {
    let ClusterCommand::Status { watch } = cmd;
    loop {
        let status = client.cluster_status().await?;
        if json {
            print_json(&status);
        } else {
            if watch.is_some() {
                print!("\x1b[2J\x1b[H");
            }
            print_table(&status);
        }
        match watch {
            Some(secs) => tokio::time::sleep(Duration::from_secs((*secs).max(1))).await,
            None => return Ok(()),
        }
    }
}
