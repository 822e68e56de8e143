//! `raftq-bench failover` (W5 / W5p): publish at a fixed rate, take the queue's
//! leader down (SIGKILL, or SIGSTOP for a silent failure), and measure the
//! longest time without a confirm. Each round brings the node back (restart
//! command, or SIGCONT) and waits for it before the next.
//!
//! The leader's process is found from `--pid-dir` (one file per node holding
//! its pid, as `scripts/cluster.sh` writes: `DIR/node<ID>`), or the fault is
//! made by `--kill-cmd` / `--restart-cmd` with `{id}` replaced by the node id.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use clap::{Args, ValueEnum};
use raftq_client::{Client, PublishMessage};
use raftq_cmdline::outln;
use serde_json::json;
use tokio::sync::Mutex;

use crate::procstat::{pid_of, signal};
use crate::workload::{ensure_queue, BenchArgs};

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL: the process dies and its connections are reset (W5).
    Kill,
    /// SIGSTOP: the process hangs silently, no TCP reset (W5p).
    Pause,
}

#[derive(Debug, Args, Clone)]
pub struct FailoverArgs {
    /// Queue to use (created if missing).
    #[arg(long, default_value = "bench-failover")]
    pub queue: String,
    /// Replicas of the queue when the bench creates it.
    #[arg(long, default_value_t = 3)]
    pub replicas: u32,
    /// Messages per second to publish.
    #[arg(long, default_value_t = 1000)]
    pub rate: u32,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 256)]
    pub size: usize,
    /// What happens to the leader.
    #[arg(long, value_enum, default_value_t = Fault::Kill)]
    pub fault: Fault,
    /// Faults to make, one after another.
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    /// Directory of pid files named node<ID> (scripts/cluster.sh: .cluster/pids).
    #[arg(long)]
    pub pid_dir: Option<PathBuf>,
    /// Shell command that makes the fault, `{id}` = the leader's node id
    /// (instead of signalling a pid from --pid-dir).
    #[arg(long)]
    pub kill_cmd: Option<String>,
    /// Shell command that brings the node back after a kill, `{id}` = node id.
    #[arg(long)]
    pub restart_cmd: Option<String>,
    /// How long a paused leader stays paused.
    #[arg(long, default_value = "5s", value_parser = raftq_cmdline::duration::parse)]
    pub pause_for: Duration,
    /// Steady publishing before each fault.
    #[arg(long, default_value = "2s", value_parser = raftq_cmdline::duration::parse)]
    pub warmup: Duration,
    /// Publishing after confirms resume, before the node is brought back.
    #[arg(long, default_value = "1s", value_parser = raftq_cmdline::duration::parse)]
    pub settle: Duration,
    /// Give up on a round when no confirm comes for this long.
    #[arg(long, default_value = "30s", value_parser = raftq_cmdline::duration::parse)]
    pub give_up: Duration,
}

/// Confirm times of one round, for the gap measurement.
#[derive(Default)]
struct Confirms {
    last: Option<Instant>,
    longest_gap: Duration,
    count: u64,
    failed: u64,
}

impl Confirms {
    fn record(&mut self, at: Instant) {
        if let Some(last) = self.last {
            self.longest_gap = self.longest_gap.max(at.saturating_duration_since(last));
        }
        self.last = Some(at.max(self.last.unwrap_or(at)));
        self.count += 1;
    }
}

fn expand(template: &str, id: u64) -> String {
    template.replace("{id}", &id.to_string())
}

pub async fn shell(cmd: &str) -> anyhow::Result<()> {
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .status()
        .await
        .with_context(|| format!("cannot run `{cmd}`"))?;
    anyhow::ensure!(status.success(), "`{cmd}` failed: {status}");
    Ok(())
}

/// The queue's leader as the cluster reports it, once it has one.
async fn leader_of(client: &Client, queue: &str) -> anyhow::Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(info) = client.get_queue(queue).await {
            if info.leader_id != 0 {
                return Ok(info.leader_id);
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "queue '{queue}' has no leader after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Publishes `rate` messages/s until `stop`, recording every confirm.
fn start_publisher(
    client: &Client,
    args: &FailoverArgs,
    confirms: Arc<Mutex<Confirms>>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let producer = client.producer(&args.queue);
    let payload = Bytes::from(vec![b'x'; args.size]);
    let period = Duration::from_secs_f64(1.0 / f64::from(args.rate.max(1)));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut pending = futures::stream::FuturesUnordered::new();
        use futures::StreamExt as _;
        loop {
            tokio::select! {
                _ = tick.tick(), if !*stop.borrow() => {
                    let message = PublishMessage { payload: payload.clone(), headers: Default::default() };
                    pending.push(producer.send(message));
                }
                Some(result) = pending.next() => {
                    let mut c = confirms.lock().await;
                    match result {
                        Ok(_) => c.record(Instant::now()),
                        Err(_) => c.failed += 1,
                    }
                }
                else => break,
            }
            if *stop.borrow() && pending.is_empty() {
                break;
            }
        }
    })
}

async fn wait_for_confirm_after(
    confirms: &Mutex<Confirms>,
    after: Instant,
    give_up: Duration,
) -> bool {
    let deadline = after + give_up;
    while Instant::now() < deadline {
        if confirms.lock().await.last.is_some_and(|t| t > after) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    false
}

pub async fn run(client: &Client, args: &FailoverArgs, json_out: bool) -> anyhow::Result<()> {
    anyhow::ensure!(args.rate > 0, "--rate must be at least 1");
    anyhow::ensure!(
        args.pid_dir.is_some() || args.kill_cmd.is_some(),
        "give --pid-dir (signal the leader's pid) or --kill-cmd (make the fault yourself)"
    );
    anyhow::ensure!(
        !(args.fault == Fault::Kill && args.kill_cmd.is_some() && args.restart_cmd.is_none()),
        "--kill-cmd needs --restart-cmd to bring the node back between rounds"
    );
    ensure_queue(
        client,
        &BenchArgs {
            queue: args.queue.clone(),
            replicas: args.replicas,
            ..crate::workload::default_bench_args()
        },
    )
    .await?;
    let mut gaps = Vec::new();
    for round in 1..=args.rounds {
        let leader = leader_of(client, &args.queue).await?;
        let confirms = Arc::new(Mutex::new(Confirms::default()));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let publisher = start_publisher(client, args, confirms.clone(), stop_rx);
        tokio::time::sleep(args.warmup).await;
        let pid = args
            .pid_dir
            .as_deref()
            .map(|d| pid_of(d, leader))
            .transpose()?;
        let fault_at = Instant::now();
        match (&args.kill_cmd, pid, args.fault) {
            (Some(cmd), _, _) => shell(&expand(cmd, leader)).await?,
            (None, Some(pid), Fault::Kill) => signal(pid, libc::SIGKILL)?,
            (None, Some(pid), Fault::Pause) => signal(pid, libc::SIGSTOP)?,
            (None, None, _) => anyhow::bail!("no way to make the fault"),
        }
        let resumed = wait_for_confirm_after(&confirms, fault_at, args.give_up).await;
        if resumed {
            tokio::time::sleep(args.settle).await;
        }
        // Bring the node back whatever happened, so the cluster is whole again.
        match (args.fault, pid, &args.restart_cmd) {
            (Fault::Pause, Some(pid), _) => {
                let paused = fault_at.elapsed();
                if paused < args.pause_for {
                    tokio::time::sleep(args.pause_for - paused).await;
                }
                signal(pid, libc::SIGCONT)?;
            }
            (_, _, Some(cmd)) => shell(&expand(cmd, leader)).await?,
            (Fault::Kill, _, None) => {}
            (Fault::Pause, None, None) => {}
        }
        let _ = stop_tx.send(true);
        let _ = publisher.await;
        let c = confirms.lock().await;
        anyhow::ensure!(
            resumed,
            "round {round}: no confirm within {:?} after the fault on node {leader}",
            args.give_up
        );
        if json_out {
            outln!(
                "{}",
                json!({"round": round, "leader": leader, "gap_ms": c.longest_gap.as_millis() as u64,
                       "confirmed": c.count, "failed": c.failed})
            )?;
        } else {
            outln!(
                "round {round}: node {leader} {} -> longest confirm gap {} ms ({} confirmed, {} failed)",
                if args.fault == Fault::Kill { "killed" } else { "paused" },
                c.longest_gap.as_millis(),
                c.count,
                c.failed
            )?;
        }
        gaps.push(c.longest_gap);
        // Let the node rejoin and catch up before the next fault.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    gaps.sort();
    let median = gaps.get(gaps.len() / 2).copied().unwrap_or_default();
    let max = gaps.last().copied().unwrap_or_default();
    let workload = match args.fault {
        Fault::Kill => "failover-kill",
        Fault::Pause => "failover-pause",
    };
    if json_out {
        outln!(
            "{}",
            json!({"workload": workload, "rounds": gaps.len(), "rate": args.rate,
                   "gap_median_ms": median.as_millis() as u64, "gap_max_ms": max.as_millis() as u64,
                   "gaps_ms": gaps.iter().map(|g| g.as_millis() as u64).collect::<Vec<_>>()})
        )?;
    } else {
        outln!(
            "{workload}: {} rounds at {}/s, longest confirm gap median {} ms, max {} ms",
            gaps.len(),
            args.rate,
            median.as_millis(),
            max.as_millis()
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_gap_between_confirms_is_kept() {
        let t = Instant::now();
        let mut c = Confirms::default();
        for ms in [0u64, 1, 2, 400, 401] {
            c.record(t + Duration::from_millis(ms));
        }
        assert_eq!(c.longest_gap, Duration::from_millis(398));
        assert_eq!(c.count, 5);
    }

    #[test]
    fn templates_take_the_node_id() {
        assert_eq!(
            expand("scripts/cluster.sh restart {id}", 3),
            "scripts/cluster.sh restart 3"
        );
    }
}
