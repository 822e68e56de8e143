//! `raftq queue create|list|info|delete`.

use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use raftq_client::{Client, QueueOptions};

use crate::cmd::queue_json;

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Create a queue.
    Create(CreateArgs),
    /// List queues with leader and depth.
    List,
    /// Show one queue: leader, replicas, depth, options.
    Info { name: String },
    /// Delete a queue and all its messages.
    Delete { name: String },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Kind {
    Work,
    Stream,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Overflow {
    RejectPublish,
    DropHead,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    name: String,
    /// Replica count (default 3, capped by cluster size) or `all`.
    #[arg(long, default_value = "3")]
    replicas: String,
    #[arg(long, value_enum, default_value = "work")]
    kind: Kind,
    /// Deliveries ending without an ack before a message is dead-lettered.
    #[arg(long)]
    max_deliveries: Option<u32>,
    /// Queue receiving rejected, expired, over-limit and over-delivered messages.
    #[arg(long = "dead-letter")]
    dead_letter: Option<String>,
    /// Time a ready message may wait, e.g. 30s.
    #[arg(long, value_parser = crate::duration::parse)]
    message_ttl: Option<Duration>,
    #[arg(long)]
    max_length: Option<u64>,
    #[arg(long)]
    max_bytes: Option<u64>,
    #[arg(long, value_enum, default_value = "reject-publish")]
    overflow: Overflow,
    /// Time a consumer may hold a message unacked, e.g. 5m.
    #[arg(long, value_parser = crate::duration::parse)]
    ack_timeout: Option<Duration>,
    #[arg(long)]
    max_message_bytes: Option<u64>,
    /// Producer ids remembered for deduplication.
    #[arg(long)]
    dedup_window: Option<u32>,
    /// One consumer gets everything; the next takes over when it leaves.
    #[arg(long)]
    single_active_consumer: bool,
}

impl CreateArgs {
    fn options(&self) -> anyhow::Result<QueueOptions> {
        let (replicas, replicas_all) = match self.replicas.as_str() {
            "all" => (0, true),
            n => (
                n.parse().map_err(|_| {
                    anyhow::anyhow!("--replicas must be a number or 'all', not {n:?}")
                })?,
                false,
            ),
        };
        Ok(QueueOptions {
            kind: match self.kind {
                Kind::Work => 0,
                Kind::Stream => 1,
            },
            replicas,
            replicas_all,
            max_deliveries: self.max_deliveries.unwrap_or(0),
            dead_letter_queue: self.dead_letter.clone().unwrap_or_default(),
            message_ttl_ms: self.message_ttl.map(|d| d.as_millis() as u64).unwrap_or(0),
            max_length: self.max_length.unwrap_or(0),
            max_bytes: self.max_bytes.unwrap_or(0),
            overflow: match self.overflow {
                Overflow::RejectPublish => 0,
                Overflow::DropHead => 1,
            },
            ack_timeout_ms: self.ack_timeout.map(|d| d.as_millis() as u64).unwrap_or(0),
            max_message_bytes: self.max_message_bytes.unwrap_or(0),
            dedup_window: self.dedup_window.unwrap_or(0),
            single_active_consumer: self.single_active_consumer,
        })
    }
}

pub async fn run(client: &Client, cmd: &QueueCommand, json: bool) -> anyhow::Result<()> {
    match cmd {
        QueueCommand::Create(args) => {
            let info = client.create_queue(&args.name, args.options()?).await?;
            if json {
                println!("{}", queue_json(&info));
            } else {
                println!(
                    "created queue '{}' on replicas {:?}, leader {}",
                    info.name,
                    info.replicas,
                    leader_text(info.leader_id)
                );
            }
        }
        QueueCommand::List => {
            let queues = client.list_queues().await?;
            if json {
                let all: Vec<_> = queues.iter().map(queue_json).collect();
                println!("{}", serde_json::Value::Array(all));
            } else if queues.is_empty() {
                println!("no queues");
            } else {
                println!(
                    "{:<24} {:>7} {:<12} {:>10} {:>8}",
                    "QUEUE", "LEADER", "REPLICAS", "DEPTH", "UNACKED"
                );
                for q in &queues {
                    println!(
                        "{:<24} {:>7} {:<12} {:>10} {:>8}",
                        q.name,
                        leader_text(q.leader_id),
                        format!("{:?}", q.replicas),
                        q.depth,
                        q.unacked
                    );
                }
            }
        }
        QueueCommand::Info { name } => {
            let info = client.get_queue(name).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&queue_json(&info))?);
            } else {
                println!("queue      {}", info.name);
                println!("leader     {}", leader_text(info.leader_id));
                println!("replicas   {:?}", info.replicas);
                println!(
                    "depth      {} ({} ready, {} unacked)",
                    info.depth, info.ready, info.unacked
                );
                println!("consumers  {}", info.consumers);
                println!(
                    "term       {}  applied index {}  (answered by node {})",
                    info.term, info.applied_index, info.answered_by
                );
                for r in &info.replica_status {
                    println!(
                        "  replica {}: matched {} lag {}",
                        r.node_id, r.matched_index, r.lag
                    );
                }
            }
        }
        QueueCommand::Delete { name } => {
            client.delete_queue(name).await?;
            if json {
                println!("{}", serde_json::json!({ "deleted": name }));
            } else {
                println!("deleted queue '{name}'");
            }
        }
    }
    Ok(())
}

pub fn leader_text(id: u64) -> String {
    if id == 0 {
        "none".into()
    } else {
        id.to_string()
    }
}
