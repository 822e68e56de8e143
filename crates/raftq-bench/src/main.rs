//! `raftq-bench`: the standard workloads against a running cluster.
//!
//! - `publish`: confirmed publishing by `--producers` pipelined idempotent
//!   producers, each keeping `--inflight` messages unconfirmed. `--inflight 1`
//!   is the latency workload (one message at a time); large values measure
//!   throughput. Latency = send to confirm (commit on a majority).
//! - `sync`: one message at a time (W2): the confirm latency of a lone publish.
//! - `e2e`: producers and consumers together (manual acks); latency = publish
//!   to delivery, from a timestamp header.
//! - `failover`: fixed-rate publishing while the leader is killed or paused
//!   (W5/W5p); the longest time without a confirm.
//! - `idle`, `backlog`: what many idle queues and a large backlog cost a node.
//! - `read`: stream read throughput, readers spread over the replicas or all
//!   on the leader.
//!
//! Every loop is bounded by `--count` and `--max-duration`. A tool of its
//! own, not part of the `raftq` CLI: `failover`, `idle` and `backlog` signal
//! node processes (SIGKILL, SIGSTOP) and read their /proc, which is for
//! whoever runs the cluster, not for its users.

mod backlog;
mod e2e;
mod failover;
mod idle;
mod pace;
mod procstat;
mod publish;
mod read;
mod report;
mod workload;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use raftq_client::Client;
use raftq_cmdline::GlobalArgs;

use crate::workload::{BenchArgs, E2eArgs, SyncArgs};

#[derive(Debug, Parser)]
#[command(
    name = "raftq-bench",
    version,
    about = "Benchmark a raftq cluster: confirmed publish, publish-to-delivery, failover, idle cost, backlog, stream reads"
)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Confirmed publish throughput and commit latency.
    Publish(BenchArgs),
    /// One message in flight at a time: the latency of a lone confirmed publish.
    Sync(SyncArgs),
    /// Producers and consumers together: publish-to-delivery latency.
    E2e(E2eArgs),
    /// Publish at a fixed rate while the queue's leader is killed or paused:
    /// the longest confirm gap.
    Failover(failover::FailoverArgs),
    /// The idle cost of many queues: CPU, memory and Raft RPCs per node.
    Idle(idle::IdleArgs),
    /// Memory with a large backlog, and how fast a restarted node serves again.
    Backlog(backlog::BacklogArgs),
    /// Stream read throughput, readers spread over replicas or on the leader.
    Read(read::ReadArgs),
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let client = cli.global.connect().await?;
    dispatch(&client, &cli.command, cli.global.json).await
}

async fn dispatch(client: &Client, cmd: &BenchCommand, json_out: bool) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Publish(args) => publish::run(client, args, json_out).await,
        BenchCommand::Sync(args) => {
            publish::run_named(client, &args.as_publish(), json_out, "sync").await
        }
        BenchCommand::E2e(args) => e2e::run(client, args, json_out).await,
        BenchCommand::Failover(args) => failover::run(client, args, json_out).await,
        BenchCommand::Idle(args) => idle::run(client, args, json_out).await,
        BenchCommand::Backlog(args) => backlog::run(client, args, json_out).await,
        BenchCommand::Read(args) => read::run(client, args, json_out).await,
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    raftq_cmdline::output::quiet_panics();
    let cli = Cli::parse();
    raftq_cmdline::output::exit_code(run(cli).await)
}
