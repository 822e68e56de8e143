//! `raftq queue create|list|info|delete`.

use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use raftq_client::{Client, Overflow, QueueKind, QueueOptions, ReplicaChange};
use raftq_cmdline::outln;
use serde_json::json;

use crate::cmd::replicas;
use crate::queue_display::{kind_name, leader_text, queue_json};

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Create a queue.
    Create(CreateArgs),
    /// List queues with leader and depth.
    List,
    /// Show one queue: leader, replicas and their lag, depth, options.
    Info { name: String },
    /// Delete a queue and all its messages.
    Delete { name: String },
    /// Add a replica on NODE (it catches up before it votes).
    AddReplica {
        name: String,
        node: u64,
        /// Return once the change is recorded, without waiting for the move.
        #[arg(long)]
        no_wait: bool,
    },
    /// Remove the replica on NODE.
    RemoveReplica {
        name: String,
        node: u64,
        #[arg(long)]
        no_wait: bool,
    },
    /// Grow to REPLICAS replicas, on the nodes hosting the fewest.
    Grow {
        name: String,
        replicas: u32,
        #[arg(long)]
        no_wait: bool,
    },
    /// Move the queue's leadership to another replica.
    TransferLeader {
        name: String,
        /// The new leader [default: the follower with the most log].
        #[arg(long)]
        to: Option<u64>,
    },
    /// Shrink to REPLICAS replicas, off the nodes hosting the most.
    Shrink {
        name: String,
        replicas: u32,
        #[arg(long)]
        no_wait: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KindArg {
    Work,
    Stream,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OverflowArg {
    RejectPublish,
    DropHead,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    name: String,
    /// Replica count (default 3, capped by cluster size) or `all`.
    #[arg(long, value_parser = parse_replicas)]
    replicas: Option<Replicas>,
    #[arg(long, value_enum, default_value = "work")]
    kind: KindArg,
    /// Deliveries ending without an ack before a message is dead-lettered.
    #[arg(long)]
    max_deliveries: Option<u32>,
    /// Queue receiving rejected, expired, over-limit and over-delivered messages.
    #[arg(long = "dead-letter")]
    dead_letter: Option<String>,
    /// How long a ready message may wait, e.g. 30s.
    #[arg(long, value_parser = raftq_cmdline::duration::parse)]
    message_ttl: Option<Duration>,
    /// Most messages stored (work: ready + unacked; stream: retained, oldest
    /// removed first).
    #[arg(long)]
    max_length: Option<u64>,
    /// Most payload bytes stored (a stream removes its oldest past it).
    #[arg(long)]
    max_bytes: Option<u64>,
    /// Streams: remove messages older than this, e.g. 7d or 12h.
    #[arg(long, value_parser = raftq_cmdline::duration::parse)]
    max_age: Option<Duration>,
    /// What a publish past max-length / max-bytes does.
    #[arg(long, value_enum, default_value = "reject-publish")]
    overflow: OverflowArg,
    /// How long a consumer may hold a message unacked, e.g. 5m.
    #[arg(long, value_parser = raftq_cmdline::duration::parse)]
    ack_timeout: Option<Duration>,
    /// Largest message accepted, in bytes.
    #[arg(long)]
    max_message_bytes: Option<u64>,
    /// Producer ids remembered for deduplication.
    #[arg(long)]
    dedup_window: Option<u32>,
    /// One consumer gets everything; the next takes over when it leaves.
    #[arg(long)]
    single_active_consumer: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replicas {
    Count(u32),
    All,
}

fn parse_replicas(s: &str) -> Result<Replicas, String> {
    match s {
        "all" => Ok(Replicas::All),
        n => match n.parse::<u32>() {
            Ok(0) | Err(_) => Err(format!(
                "--replicas must be a positive number or 'all', not {n:?}"
            )),
            Ok(n) => Ok(Replicas::Count(n)),
        },
    }
}

fn millis(d: Option<Duration>) -> u64 {
    d.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl CreateArgs {
    /// 0 / empty means "server default" in the protocol.
    fn options(&self) -> QueueOptions {
        let (replicas, replicas_all) = match self.replicas {
            None => (0, false),
            Some(Replicas::Count(n)) => (n, false),
            Some(Replicas::All) => (0, true),
        };
        QueueOptions {
            kind: match self.kind {
                KindArg::Work => QueueKind::Work,
                KindArg::Stream => QueueKind::Stream,
            } as i32,
            replicas,
            replicas_all,
            max_deliveries: self.max_deliveries.unwrap_or(0),
            dead_letter_queue: self.dead_letter.clone().unwrap_or_default(),
            message_ttl_ms: millis(self.message_ttl),
            max_length: self.max_length.unwrap_or(0),
            max_bytes: self.max_bytes.unwrap_or(0),
            overflow: match self.overflow {
                OverflowArg::RejectPublish => Overflow::RejectPublish,
                OverflowArg::DropHead => Overflow::DropHead,
            } as i32,
            ack_timeout_ms: millis(self.ack_timeout),
            max_message_bytes: self.max_message_bytes.unwrap_or(0),
            dedup_window: self.dedup_window.unwrap_or(0),
            single_active_consumer: self.single_active_consumer,
            max_age_ms: millis(self.max_age),
        }
    }
}

pub async fn run(client: &Client, cmd: &QueueCommand, json: bool) -> anyhow::Result<()> {
    match cmd {
        QueueCommand::Create(args) => {
            let info = client.create_queue(&args.name, args.options()).await?;
            if json {
                outln!("{}", queue_json(&info))?;
            } else {
                outln!(
                    "created {} queue '{}' on replicas {:?}, leader {}",
                    kind_name(info.options.as_ref().map_or(0, |o| o.kind)),
                    info.name,
                    info.replicas,
                    leader_text(info.leader_id)
                )?;
            }
        }
        QueueCommand::List => {
            let queues = client.list_queues().await?;
            if json {
                let all: Vec<_> = queues.iter().map(queue_json).collect();
                outln!("{}", serde_json::Value::Array(all))?;
            } else if queues.is_empty() {
                outln!("no queues")?;
            } else {
                outln!(
                    "{:<24} {:<6} {:>6} {:<12} {:>10} {:>8} {:>9}",
                    "QUEUE",
                    "KIND",
                    "LEADER",
                    "REPLICAS",
                    "DEPTH",
                    "UNACKED",
                    "CONSUMERS"
                )?;
                for q in &queues {
                    outln!(
                        "{:<24} {:<6} {:>6} {:<12} {:>10} {:>8} {:>9}",
                        q.name,
                        kind_name(q.options.as_ref().map_or(0, |o| o.kind)),
                        leader_text(q.leader_id),
                        join(&q.replicas),
                        q.depth,
                        q.unacked,
                        q.consumers
                    )?;
                }
            }
        }
        QueueCommand::Info { name } => {
            let info = client.get_queue(name).await?;
            if json {
                outln!("{}", queue_json(&info))?;
            } else {
                print_info(&info)?;
            }
        }
        QueueCommand::AddReplica {
            name,
            node,
            no_wait,
        } => replicas::change(client, name, ReplicaChange::Add(*node), *no_wait, json).await?,
        QueueCommand::RemoveReplica {
            name,
            node,
            no_wait,
        } => replicas::change(client, name, ReplicaChange::Remove(*node), *no_wait, json).await?,
        QueueCommand::Grow {
            name,
            replicas: n,
            no_wait,
        }
        | QueueCommand::Shrink {
            name,
            replicas: n,
            no_wait,
        } => {
            let current = client.get_queue(name).await?.replicas.len() as u32;
            let growing = matches!(cmd, QueueCommand::Grow { .. });
            if growing && *n < current || !growing && *n > current {
                anyhow::bail!(
                    "queue '{name}' has {current} replicas: use {} to go to {n}",
                    if growing { "shrink" } else { "grow" }
                );
            }
            replicas::change(client, name, ReplicaChange::Count(*n), *no_wait, json).await?
        }
        QueueCommand::TransferLeader { name, to } => {
            let info = client.transfer_leader(name, *to).await?;
            if json {
                outln!("{}", json!({ "queue": name, "leader": info.leader_id }))?;
            } else {
                outln!("queue '{name}': leader {}", info.leader_id)?;
            }
        }
        QueueCommand::Delete { name } => {
            client.delete_queue(name).await?;
            if json {
                outln!("{}", json!({ "deleted": name }))?;
            } else {
                outln!("deleted queue '{name}'")?;
            }
        }
    }
    Ok(())
}

fn join(ids: &[u64]) -> String {
    ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

fn print_info(info: &raftq_client::QueueInfo) -> std::io::Result<()> {
    let o = info.options.clone().unwrap_or_default();
    outln!("queue      {} ({})", info.name, kind_name(o.kind))?;
    outln!("leader     {}", leader_text(info.leader_id))?;
    outln!("replicas   {}", join(&info.replicas))?;
    if !info.learners.is_empty() || (!info.voters.is_empty() && info.voters != info.replicas) {
        let learners = if info.learners.is_empty() {
            "-".to_string()
        } else {
            join(&info.learners)
        };
        outln!(
            "moving     voters {} -> {}, catching up {learners}",
            join(&info.voters),
            join(&info.replicas)
        )?;
    }
    for r in &info.replica_status {
        let snapshot = match r.snapshot_bytes_sent {
            0 => String::new(),
            sent => format!(", snapshot {} MiB sent", sent >> 20),
        };
        outln!(
            "  node {}: matched index {}, lag {} entries (about {} MiB){snapshot}",
            r.node_id,
            r.matched_index,
            r.lag,
            r.lag_bytes >> 20
        )?;
    }
    if o.kind == QueueKind::Stream as i32 {
        outln!(
            "messages   {} retained, offsets {}..{} ({} bytes)",
            info.depth,
            info.first_offset,
            info.next_offset,
            info.bytes
        )?;
        let mut names: Vec<_> = info.consumer_offsets.iter().collect();
        names.sort();
        for (name, offset) in names {
            outln!("  consumer {name}: committed offset {offset}")?;
        }
    } else {
        outln!(
            "depth      {} ({} ready, {} unacked)",
            info.depth,
            info.ready,
            info.unacked
        )?;
        outln!("consumers  {}", info.consumers)?;
    }
    outln!(
        "raft       group {}, term {}, applied index {} (answered by node {})",
        info.group_id,
        info.term,
        info.applied_index,
        info.answered_by
    )?;
    let mut opts = Vec::new();
    if o.max_deliveries > 0 {
        opts.push(format!("max-deliveries {}", o.max_deliveries));
    }
    if !o.dead_letter_queue.is_empty() {
        opts.push(format!("dead-letter {}", o.dead_letter_queue));
    }
    if o.message_ttl_ms > 0 {
        opts.push(format!("message-ttl {}ms", o.message_ttl_ms));
    }
    if o.max_length > 0 {
        opts.push(format!("max-length {}", o.max_length));
    }
    if o.max_bytes > 0 {
        opts.push(format!("max-bytes {}", o.max_bytes));
    }
    if o.max_age_ms > 0 {
        opts.push(format!("max-age {}ms", o.max_age_ms));
    }
    if o.kind != QueueKind::Stream as i32 && (o.max_length > 0 || o.max_bytes > 0) {
        let overflow = if o.overflow == 1 {
            "drop-head"
        } else {
            "reject-publish"
        };
        opts.push(format!("overflow {overflow}"));
    }
    if o.ack_timeout_ms > 0 {
        opts.push(format!("ack-timeout {}ms", o.ack_timeout_ms));
    }
    if o.max_message_bytes > 0 {
        opts.push(format!("max-message-bytes {}", o.max_message_bytes));
    }
    if o.dedup_window > 0 {
        opts.push(format!("dedup-window {}", o.dedup_window));
    }
    if o.single_active_consumer {
        opts.push("single-active-consumer".into());
    }
    if !opts.is_empty() {
        outln!("options    {}", opts.join(", "))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        args: CreateArgs,
    }

    fn parse(args: &[&str]) -> Result<QueueOptions, clap::Error> {
        let argv = std::iter::once("t").chain(args.iter().copied());
        T::try_parse_from(argv).map(|t| t.args.options())
    }

    #[test]
    fn flags_map_to_queue_options() {
        let o = parse(&[
            "q",
            "--replicas",
            "all",
            "--kind",
            "stream",
            "--message-ttl",
            "30s",
            "--ack-timeout",
            "500ms",
            "--overflow",
            "drop-head",
            "--max-length",
            "10",
            "--dead-letter",
            "dlq",
            "--single-active-consumer",
        ])
        .map_err(|e| e.to_string());
        let o = o.as_ref().map_err(String::as_str);
        assert_eq!(o.map(|o| o.replicas_all), Ok(true));
        assert_eq!(o.map(|o| o.kind), Ok(QueueKind::Stream as i32));
        assert_eq!(o.map(|o| o.message_ttl_ms), Ok(30_000));
        assert_eq!(o.map(|o| o.ack_timeout_ms), Ok(500));
        assert_eq!(o.map(|o| o.overflow), Ok(Overflow::DropHead as i32));
        assert_eq!(o.map(|o| o.max_length), Ok(10));
        assert_eq!(o.map(|o| o.dead_letter_queue.as_str()), Ok("dlq"));
        assert_eq!(o.map(|o| o.single_active_consumer), Ok(true));
    }

    #[test]
    fn unset_options_are_zero_for_server_defaults() {
        let o = parse(&["q"]).map_err(|e| e.to_string());
        assert_eq!(
            o.map(|o| (o.replicas, o.replicas_all, o.max_deliveries)),
            Ok((0, false, 0))
        );
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(parse(&["q", "--replicas", "0"]).is_err());
        assert!(parse(&["q", "--replicas", "some"]).is_err());
        assert!(parse(&["q", "--message-ttl", "30"]).is_err());
        assert!(parse(&["q", "--kind", "topic"]).is_err());
    }
}
