//! What the publishing workloads share: their flags (`publish`'s, which
//! `sync`, `e2e`, `failover` and `backlog` build on), the queues a run
//! publishes to, and creating them.

use std::time::Duration;

use clap::Args;
use raftq_client::{Client, Error, QueueOptions};

#[derive(Debug, Args, Clone)]
pub struct SyncArgs {
    /// Queue to use (created if missing).
    #[arg(long, default_value = "bench-sync")]
    pub queue: String,
    /// Replicas of the queue when the bench creates it.
    #[arg(long, default_value_t = 3)]
    pub replicas: u32,
    /// Messages to publish, one after another.
    #[arg(long, default_value_t = 5_000)]
    pub count: u64,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 256)]
    pub size: usize,
    /// Stop sending after this long even if --count is not reached.
    #[arg(long, default_value = "5m", value_parser = raftq_cmdline::duration::parse)]
    pub max_duration: Duration,
}

impl SyncArgs {
    pub fn as_publish(&self) -> BenchArgs {
        BenchArgs {
            queue: self.queue.clone(),
            replicas: self.replicas,
            count: self.count,
            size: self.size,
            max_duration: self.max_duration,
            ..default_bench_args()
        }
    }
}

/// The publish workload's defaults, for workloads built on it.
pub fn default_bench_args() -> BenchArgs {
    BenchArgs {
        queue: "bench".into(),
        replicas: 3,
        count: 100_000,
        size: 256,
        inflight: 1,
        producers: 1,
        batch: 1,
        queues: 1,
        max_duration: Duration::from_secs(300),
        rate: None,
    }
}

#[derive(Debug, Args, Clone)]
pub struct BenchArgs {
    /// Queue to use (created if missing).
    #[arg(long, default_value = "bench")]
    pub queue: String,
    /// Replicas of the queue when the bench creates it.
    #[arg(long, default_value_t = 3)]
    pub replicas: u32,
    /// Messages to publish in total.
    #[arg(long, default_value_t = 100_000)]
    pub count: u64,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 256)]
    pub size: usize,
    /// Unconfirmed messages per producer (1 = one at a time: the latency workload).
    #[arg(long, default_value_t = 256)]
    pub inflight: usize,
    /// Concurrent producers.
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// Most messages per publish request.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Spread the producers over this many queues (QUEUE-0, QUEUE-1, ...;
    /// just QUEUE when 1), to load several Raft groups at once.
    #[arg(long, default_value_t = 1)]
    pub queues: usize,
    /// Stop sending after this long even if --count is not reached.
    #[arg(long, default_value = "5m", value_parser = raftq_cmdline::duration::parse)]
    pub max_duration: Duration,
    /// Offered load in messages per second over all producers (default: as
    /// fast as --inflight allows). Latency then counts from when each message
    /// was due, so falling behind the rate shows as latency.
    #[arg(long)]
    pub rate: Option<f64>,
}

#[derive(Debug, Args, Clone)]
pub struct E2eArgs {
    #[command(flatten)]
    pub publish: BenchArgs,
    /// Concurrent consumers.
    #[arg(long, default_value_t = 1)]
    pub consumers: usize,
    /// Consumer prefetch.
    #[arg(long, default_value_t = 256)]
    pub prefetch: u32,
}

/// The queue producer `i` of the run publishes to.
pub fn queue_of(args: &BenchArgs, i: usize) -> String {
    if args.queues <= 1 {
        args.queue.clone()
    } else {
        format!("{}-{}", args.queue, i % args.queues)
    }
}

pub async fn ensure_queue(client: &Client, args: &BenchArgs) -> anyhow::Result<()> {
    for i in 0..args.queues.max(1) {
        let options = QueueOptions {
            replicas: args.replicas,
            ..Default::default()
        };
        match client.create_queue(&queue_of(args, i), options).await {
            Ok(_) | Err(Error::AlreadyExists(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

pub fn validate(args: &BenchArgs) -> anyhow::Result<()> {
    if args.inflight == 0 || args.producers == 0 || args.batch == 0 || args.queues == 0 {
        anyhow::bail!("--inflight, --producers, --batch and --queues must be at least 1");
    }
    if args.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        anyhow::bail!("--rate must be a positive number of messages per second");
    }
    if args.queues > args.producers {
        anyhow::bail!(
            "--queues {} needs at least as many --producers",
            args.queues
        );
    }
    Ok(())
}
