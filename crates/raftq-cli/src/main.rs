//! `raftq`: the command-line tool for a raftq cluster.

mod cmd;
mod duration;
mod ha;
mod output;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use raftq_client::{Client, ClientOptions};

#[derive(Debug, Parser)]
#[command(name = "raftq", version, about = "Use and operate a raftq cluster")]
pub struct Cli {
    /// Comma-separated node addresses (any node works; the others are fallbacks).
    #[arg(
        long,
        global = true,
        env = "RAFTQ_SERVERS",
        default_value = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"
    )]
    servers: String,
    /// Machine-readable output: JSON, one object per line.
    #[arg(long, global = true)]
    json: bool,
    /// How long to keep retrying while the cluster fails over or elects a
    /// leader (e.g. 30s, 500ms).
    #[arg(long, global = true, default_value = "30s", value_parser = duration::parse)]
    timeout: Duration,
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
    /// Benchmarks: confirmed publish, and publish-to-delivery.
    #[command(subcommand)]
    Bench(cmd::bench::BenchCommand),
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let options = ClientOptions {
        retry_deadline: cli.timeout,
        // One attempt never outlasts the whole budget.
        request_timeout: ClientOptions::default().request_timeout.min(cli.timeout),
        ..Default::default()
    };
    let client = Client::connect_with([cli.servers.as_str()], options).await?;
    match &cli.command {
        Command::Queue(c) => cmd::queue::run(&client, c, cli.json).await,
        Command::Publish(a) => cmd::publish::run(&client, a, cli.json).await,
        Command::Consume(a) => cmd::consume::run(&client, a, cli.json).await,
        Command::Read(a) => cmd::read::run(&client, a, cli.json).await,
        Command::Cluster(c) => cmd::cluster::run(&client, c, cli.json).await,
        Command::Bench(c) => cmd::bench::run(&client, c, cli.json).await,
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    output::quiet_panics();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        // `raftq consume | head`: the reader left, nothing to report.
        Err(e) if output::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", output::one_line(&e));
            ExitCode::FAILURE
        }
    }
}
