//! `raftq`: the command-line tool for a raftq cluster. The benchmarks are a
//! tool of their own, `raftq-bench`.

mod cmd;
mod ha;
mod queue_display;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use raftq_cmdline::GlobalArgs;

#[derive(Debug, Parser)]
#[command(name = "raftq", version, about = "Use and operate a raftq cluster")]
pub struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, list, inspect and delete queues.
    #[command(subcommand)]
    Queue(cmd::queue::QueueCommand),
    /// Publish messages (arguments, stdin lines, or generated with --count).
    Publish(cmd::publish::PublishArgs),
    /// Consume messages, acking each after printing it. On a stream: read
    /// from --from or a --name consumer's committed offset (nothing is consumed).
    Consume(cmd::consume::ConsumeArgs),
    /// Read messages by offset without consuming them (from the first server only).
    Read(cmd::read::ReadArgs),
    /// Cluster-wide views.
    #[command(subcommand)]
    Cluster(cmd::cluster::ClusterCommand),
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let client = cli.global.connect().await?;
    let json = cli.global.json;
    match &cli.command {
        Command::Queue(c) => cmd::queue::run(&client, c, json).await,
        Command::Publish(a) => cmd::publish::run(&client, a, json).await,
        Command::Consume(a) => cmd::consume::run(&client, a, json).await,
        Command::Read(a) => cmd::read::run(&client, a, json).await,
        Command::Cluster(c) => cmd::cluster::run(&client, c, json).await,
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    raftq_cmdline::output::quiet_panics();
    let cli = Cli::parse();
    raftq_cmdline::output::exit_code(run(cli).await)
}
