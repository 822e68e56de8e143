//! Moving replicas: `raftq queue add-replica | remove-replica | grow | shrink`
//! and `raftq cluster remove-node`. The cluster records the change at once;
//! the move itself (a learner catching up, then the voter change) takes as
//! long as the catch-up, so these commands wait for it with a spinner.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use indicatif::ProgressBar;
use raftq_client::{Client, QueueInfo, ReplicaChange};
use raftq_cmdline::outln;
use serde_json::json;

/// Longest wait for a move: catching a replica up on a large backlog.
const MOVE_WAIT: Duration = Duration::from_secs(600);

fn ids(list: &[u64]) -> String {
    list.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn settled(info: &QueueInfo) -> bool {
    info.learners.is_empty() && info.voters == info.replicas && info.leader_id != 0
}

fn spinner(message: String) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(120));
    bar.set_message(message);
    bar
}

/// Records `change` for `queue`, then (unless `no_wait`) waits until the
/// queue's group has moved there.
pub async fn change(
    client: &Client,
    queue: &str,
    change: ReplicaChange,
    no_wait: bool,
    json: bool,
) -> anyhow::Result<()> {
    let info = client
        .change_replicas(queue, change)
        .await
        .with_context(|| format!("changing the replicas of queue '{queue}'"))?;
    let info = if no_wait {
        info
    } else {
        wait_moved(client, queue).await?
    };
    if json {
        outln!(
            "{}",
            json!({
                "queue": queue, "replicas": info.replicas, "voters": info.voters,
                "learners": info.learners, "leader": info.leader_id,
            })
        )?;
    } else {
        let state = if settled(&info) { "" } else { " (moving)" };
        outln!(
            "queue '{queue}': replicas {}{state}, leader {}",
            ids(&info.replicas),
            info.leader_id
        )?;
    }
    Ok(())
}

async fn wait_moved(client: &Client, queue: &str) -> anyhow::Result<QueueInfo> {
    let bar = spinner(format!("moving the replicas of '{queue}'"));
    let deadline = Instant::now() + MOVE_WAIT;
    loop {
        if let Ok(info) = client.get_queue(queue).await {
            if settled(&info) {
                bar.finish_and_clear();
                return Ok(info);
            }
            bar.set_message(format!(
                "moving the replicas of '{queue}': voters {} -> {}, catching up {}",
                ids(&info.voters),
                ids(&info.replicas),
                if info.learners.is_empty() {
                    "-".into()
                } else {
                    ids(&info.learners)
                }
            ));
        }
        if Instant::now() >= deadline {
            bar.finish_and_clear();
            bail!("queue '{queue}' is still moving after {MOVE_WAIT:?}; see `raftq queue info {queue}`");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Takes a node out of the cluster, retrying until its replicas have moved
/// (the server finishes what an interrupted attempt started).
pub async fn remove_node(client: &Client, node: u64, json: bool) -> anyhow::Result<()> {
    let bar = spinner(format!("moving replicas off node {node}"));
    let deadline = Instant::now() + MOVE_WAIT;
    let status = loop {
        match client.remove_node(node).await {
            Ok(status) => break status,
            Err(e) if e.is_retryable() && Instant::now() < deadline => {
                bar.set_message(format!("moving replicas off node {node}: {e}"));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => {
                bar.finish_and_clear();
                return Err(e).with_context(|| format!("removing node {node}"));
            }
        }
    };
    bar.finish_and_clear();
    if json {
        outln!(
            "{}",
            json!({ "removed": node, "nodes": status.nodes.iter().map(|n| n.id).collect::<Vec<_>>() })
        )?;
    } else {
        outln!(
            "node {node} removed; the cluster is now nodes {}",
            ids(&status.nodes.iter().map(|n| n.id).collect::<Vec<_>>())
        )?;
    }
    Ok(())
}
