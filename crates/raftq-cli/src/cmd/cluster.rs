//! `raftq cluster status`: is my data safe right now? Nodes, leaders, replica
//! lag, HA score, and the queues that need attention.

use std::time::Duration;

use clap::Subcommand;
use raftq_client::{Client, ClusterStatusResponse, QueueInfo};
use raftq_cmdline::outln;
use serde_json::json;

use crate::ha;
use crate::queue_display::{kind_name, leader_text, queue_json};

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Nodes, queues, leaders, replica lag and HA score.
    Status {
        /// Refresh every SECS seconds until interrupted.
        #[arg(long, value_name = "SECS")]
        watch: Option<u64>,
    },
    /// Take node ID out of the cluster for good, alive or dead: its replicas
    /// move to other nodes first, and the id is never accepted again.
    RemoveNode { id: u64 },
    /// Move leaders until every node leads within one as many queues as the
    /// others (where the replicas allow it).
    Rebalance,
}

pub struct QueueHealth {
    pub in_sync: usize,
    pub score: f64,
}

pub struct Summary {
    pub per_queue: Vec<QueueHealth>,
    pub ha_score: f64,
    pub leaderless: usize,
    pub under_replicated: usize,
}

pub fn summarize(status: &ClusterStatusResponse) -> Summary {
    let n = status.nodes.len();
    let live: Vec<u64> = status.nodes.iter().filter(|s| s.up).map(|s| s.id).collect();
    let per_queue: Vec<QueueHealth> = status
        .queues
        .iter()
        .map(|q| {
            let in_sync = ha::in_sync(q, &live);
            QueueHealth {
                in_sync,
                score: ha::queue_score(n, in_sync, q.leader_id != 0),
            }
        })
        .collect();
    let scores: Vec<f64> = per_queue.iter().map(|h| h.score).collect();
    Summary {
        ha_score: ha::cluster_score(&scores),
        leaderless: status.queues.iter().filter(|q| q.leader_id == 0).count(),
        under_replicated: status
            .queues
            .iter()
            .zip(&per_queue)
            .filter(|(q, h)| h.in_sync < q.replicas.len())
            .count(),
        per_queue,
    }
}

fn last_seen(ms: u64) -> Option<u64> {
    // The server reports "never heard from" as u64::MAX.
    (ms != u64::MAX).then_some(ms)
}

fn print_json(status: &ClusterStatusResponse) -> std::io::Result<()> {
    let s = summarize(status);
    let queues: Vec<_> = status
        .queues
        .iter()
        .zip(&s.per_queue)
        .map(|(q, h)| {
            let mut v = queue_json(q);
            v["ha_score"] = json!(h.score);
            v["in_sync_replicas"] = json!(h.in_sync);
            v
        })
        .collect();
    let nodes: Vec<_> = status
        .nodes
        .iter()
        .map(|n| {
            json!({
                "id": n.id, "address": n.address, "up": n.up, "role": role_name(n.role),
                "incarnation": n.incarnation,
                "last_seen_ms": last_seen(n.last_seen_ms), "groups_led": n.groups_led,
                "alarms": n.alarms.iter().map(|a| json!({
                    "resource": a.resource, "reading": a.reading, "limit": a.limit,
                })).collect::<Vec<_>>(),
                "damaged": n.damaged.iter().map(|d| json!({
                    "group_id": d.group_id, "queue": d.queue, "state": d.state,
                    "reason": d.reason,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    outln!(
        "{}",
        json!({
            "answered_by": status.answered_by,
            "cluster_id": status.cluster_id,
            "metadata_leader": status.metadata_leader,
            "nodes": nodes,
            "queues": queues,
            "ha_score": s.ha_score,
            "leaderless_queues": s.leaderless,
            "under_replicated_queues": s.under_replicated,
        })
    )
}

/// A learner is a joining node still catching up: it does not vote yet.
fn role_name(role: i32) -> &'static str {
    match raftq_client::NodeRole::try_from(role) {
        Ok(raftq_client::NodeRole::Learner) => "learner",
        _ => "voter",
    }
}

/// `1,2(1500),3(down)`: replicas with their lag when behind.
fn replicas_text(q: &QueueInfo, live: &[u64]) -> String {
    q.replicas
        .iter()
        .map(|r| {
            if !live.contains(r) {
                return format!("{r}(down)");
            }
            match q.replica_status.iter().find(|st| st.node_id == *r) {
                Some(st) if st.snapshot_bytes_sent > 0 => format!(
                    "{r}({}, snapshot {} MiB sent)",
                    st.lag,
                    st.snapshot_bytes_sent >> 20
                ),
                Some(st) if st.lag > 0 => format!("{r}({})", st.lag),
                _ => r.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn print_table(status: &ClusterStatusResponse) -> std::io::Result<()> {
    let s = summarize(status);
    let live: Vec<u64> = status.nodes.iter().filter(|n| n.up).map(|n| n.id).collect();
    if !status.cluster_id.is_empty() {
        outln!("cluster {}", status.cluster_id)?;
    }
    outln!(
        "{:<5} {:<22} {:<5} {:<8} {:>10} {:>10}",
        "NODE",
        "ADDRESS",
        "STATE",
        "ROLE",
        "LAST SEEN",
        "GROUPS LED"
    )?;
    for n in &status.nodes {
        let seen = match last_seen(n.last_seen_ms) {
            None => "never".to_string(),
            Some(0) => "-".to_string(),
            Some(ms) => format!("{ms}ms ago"),
        };
        outln!(
            "{:<5} {:<22} {:<5} {:<8} {:>10} {:>10}",
            n.id,
            n.address,
            if n.up { "up" } else { "DOWN" },
            role_name(n.role),
            seen,
            n.groups_led
        )?;
    }
    outln!()?;
    outln!(
        "{:<20} {:<6} {:>6} {:<20} {:>9} {:>8} {:>5}",
        "QUEUE",
        "KIND",
        "LEADER",
        "REPLICAS (LAG)",
        "DEPTH",
        "UNACKED",
        "HA"
    )?;
    for (q, h) in status.queues.iter().zip(&s.per_queue) {
        outln!(
            "{:<20} {:<6} {:>6} {:<20} {:>9} {:>8} {:>5.2}",
            q.name,
            kind_name(q.options.as_ref().map_or(0, |o| o.kind)),
            leader_text(q.leader_id),
            replicas_text(q, &live),
            q.depth,
            q.unacked,
            h.score
        )?;
    }
    if status.queues.is_empty() {
        outln!("(no queues)")?;
    }
    outln!()?;
    for line in alarm_lines(status).into_iter().chain(damage_lines(status)) {
        outln!("{line}")?;
    }
    outln!(
        "nodes up {}/{}   metadata leader {}   HA score {:.2}   leaderless queues {}   under-replicated queues {}",
        live.len(),
        status.nodes.len(),
        leader_text(status.metadata_leader),
        s.ha_score,
        s.leaderless,
        s.under_replicated
    )
}

/// One line per damaged replica: which queue is short of a voter, and why.
fn damage_lines(status: &ClusterStatusResponse) -> Vec<String> {
    status
        .nodes
        .iter()
        .flat_map(|n| {
            n.damaged.iter().map(move |d| {
                let queue = if d.queue.is_empty() {
                    format!("group {}", d.group_id)
                } else {
                    format!("queue {} (group {})", d.queue, d.group_id)
                };
                let doing = if d.state == "rebuilding" {
                    "discarded, catching up from the leader"
                } else {
                    "not voting, waiting for its leader to let it go"
                };
                format!(
                    "DAMAGED node {}: replica of {queue}: {doing}: {}",
                    n.id, d.reason
                )
            })
        })
        .collect()
}

/// One line per raised alarm: why publishes are refused right now.
fn alarm_lines(status: &ClusterStatusResponse) -> Vec<String> {
    let mib = |b: u64| b / (1024 * 1024);
    status
        .nodes
        .iter()
        .flat_map(|n| {
            n.alarms.iter().map(move |a| {
                let reading = match a.resource.as_str() {
                    "disk" => format!("{} MiB free, limit {} MiB", mib(a.reading), mib(a.limit)),
                    _ => format!(
                        "{} MiB resident, limit {} MiB",
                        mib(a.reading),
                        mib(a.limit)
                    ),
                };
                format!(
                    "ALARM node {}: {} alarm ({reading}): publishes refused cluster-wide, consumers and acks keep working",
                    n.id, a.resource
                )
            })
        })
        .collect()
}

pub async fn run(client: &Client, cmd: &ClusterCommand, json: bool) -> anyhow::Result<()> {
    let watch = match cmd {
        ClusterCommand::Status { watch } => watch,
        ClusterCommand::RemoveNode { id } => {
            return crate::cmd::replicas::remove_node(client, *id, json).await
        }
        ClusterCommand::Rebalance => return rebalance(client, json).await,
    };
    loop {
        let status = client.cluster_status().await?;
        if json {
            print_json(&status)?;
        } else {
            if watch.is_some() {
                // Clear the screen, like `watch`.
                std::io::Write::write_all(&mut std::io::stdout(), b"\x1b[2J\x1b[H")?;
            }
            print_table(&status)?;
        }
        let Some(secs) = watch else {
            return Ok(());
        };
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs((*secs).max(1))) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

async fn rebalance(client: &Client, json: bool) -> anyhow::Result<()> {
    let done = client.rebalance().await?;
    let failed = done.moves.iter().filter(|m| !m.error.is_empty()).count();
    if json {
        let moves: Vec<_> = done
            .moves
            .iter()
            .map(|m| json!({"queue": m.queue, "from": m.from_node, "to": m.to_node, "error": m.error}))
            .collect();
        outln!("{}", json!({ "moves": moves, "failed": failed }))?;
    } else {
        for m in &done.moves {
            let outcome = if m.error.is_empty() {
                "moved".to_string()
            } else {
                format!("not moved: {}", m.error)
            };
            outln!(
                "{:<20} {} -> {}  {outcome}",
                m.queue,
                m.from_node,
                m.to_node
            )?;
        }
        if let Some(status) = &done.status {
            let mut leads: std::collections::BTreeMap<u64, usize> =
                status.nodes.iter().map(|n| (n.id, 0)).collect();
            for q in &status.queues {
                *leads.entry(q.leader_id).or_insert(0) += 1;
            }
            let text: Vec<String> = leads
                .iter()
                .filter(|(id, _)| **id != 0)
                .map(|(id, n)| format!("{id}:{n}"))
                .collect();
            outln!(
                "{} move(s), {failed} failed; queues led per node {}",
                done.moves.len(),
                text.join(" ")
            )?;
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} leader move(s) failed; run `raftq cluster rebalance` again");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use raftq_client::NodeStatus;

    fn node(id: u64, up: bool) -> NodeStatus {
        NodeStatus {
            id,
            address: format!("127.0.0.1:700{id}"),
            up,
            last_seen_ms: 0,
            groups_led: 0,
            alarms: vec![],
            role: raftq_client::NodeRole::Voter as i32,
            incarnation: 1,
            damaged: vec![],
        }
    }

    fn queue(name: &str, leader_id: u64) -> QueueInfo {
        QueueInfo {
            name: name.into(),
            leader_id,
            replicas: vec![1, 2, 3],
            ..Default::default()
        }
    }

    #[test]
    fn totals_flag_leaderless_and_under_replicated_queues() {
        let status = ClusterStatusResponse {
            nodes: vec![node(1, true), node(2, true), node(3, false)],
            queues: vec![queue("a", 1), queue("b", 0)],
            ..Default::default()
        };
        let s = summarize(&status);
        // a: 2 live replicas + leader over 3 nodes = 1.0; b: leaderless = 0.
        assert!((s.per_queue[0].score - 1.0).abs() < 1e-9);
        assert_eq!(s.per_queue[1].score, 0.0);
        assert!((s.ha_score - 0.5).abs() < 1e-9);
        assert_eq!(s.leaderless, 1);
        assert_eq!(s.under_replicated, 2);
    }

    #[test]
    fn every_raised_alarm_gets_a_line_naming_node_resource_and_reading() {
        let mut in_alarm = node(2, true);
        in_alarm.alarms = vec![raftq_client::NodeAlarm {
            resource: "disk".into(),
            reading: 10 << 20,
            limit: 256 << 20,
        }];
        let status = ClusterStatusResponse {
            nodes: vec![node(1, true), in_alarm],
            ..Default::default()
        };
        assert_eq!(
            alarm_lines(&status),
            vec!["ALARM node 2: disk alarm (10 MiB free, limit 256 MiB): publishes refused cluster-wide, consumers and acks keep working"]
        );
    }

    #[test]
    fn a_healthy_cluster_scores_four_thirds() {
        let status = ClusterStatusResponse {
            nodes: vec![node(1, true), node(2, true), node(3, true)],
            queues: vec![queue("a", 2)],
            ..Default::default()
        };
        let s = summarize(&status);
        assert!((s.ha_score - 4.0 / 3.0).abs() < 1e-9);
        assert_eq!((s.leaderless, s.under_replicated), (0, 0));
    }

    #[test]
    fn replica_column_shows_lag_and_down_nodes() {
        let mut q = queue("a", 1);
        q.replica_status = vec![raftq_client::ReplicaStatus {
            node_id: 2,
            matched_index: 10,
            lag: 1500,
            ..Default::default()
        }];
        assert_eq!(replicas_text(&q, &[1, 2]), "1,2(1500),3(down)");
        q.replica_status[0].snapshot_bytes_sent = 300 << 20;
        assert_eq!(
            replicas_text(&q, &[1, 2]),
            "1,2(1500, snapshot 300 MiB sent),3(down)"
        );
    }
}
