//! `raftq`: the command-line tool for a raftq cluster.

mod cmd;
mod duration;
mod ha;

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
    /// Machine-readable output (JSON).
    #[arg(long, global = true)]
    json: bool,
    /// How long to keep retrying while the cluster fails over, e.g. 30s.
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
    /// Consume messages, acking each after printing it.
    Consume(cmd::consume::ConsumeArgs),
    /// Read messages by offset without consuming them (from the first server).
    Read(cmd::read::ReadArgs),
    /// Cluster-wide views.
    #[command(subcommand)]
    Cluster(cmd::status::ClusterCommand),
    /// Benchmarks: publish (W1/W2) and e2e (W3).
    #[command(subcommand)]
    Bench(cmd::bench::BenchCommand),
}

async fn connect(cli: &Cli) -> Result<Client, raftq_client::Error> {
    let options = ClientOptions {
        retry_deadline: cli.timeout,
        ..Default::default()
    };
    Client::connect_with(cli.servers.split(','), options).await
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let client = connect(&cli).await?;
    match &cli.command {
        Command::Queue(c) => cmd::queue::run(&client, c, cli.json).await,
        Command::Publish(a) => cmd::publish::run(&client, a, cli.json).await,
        Command::Consume(a) => cmd::consume::run(&client, a, cli.json).await,
        Command::Read(a) => cmd::read::run(&client, a, cli.json).await,
        Command::Cluster(c) => cmd::status::run(&client, c, cli.json).await,
        Command::Bench(c) => cmd::bench::run(&client, c, cli.json).await,
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line for a person: no backtrace, no debug dump.
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
