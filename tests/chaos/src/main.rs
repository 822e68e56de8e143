//! `raftq-chaos`: a cluster of real raftqd processes (each in its own network
//! namespace when run as root), a workload of producers and consumers, a
//! seeded nemesis, a complete history, and the checker's verdict. The last
//! line of output is one JSON object; the exit status is 1 on any anomaly.

mod cluster;
mod membership_faults;
mod nemesis;
mod net;
mod power;
mod report;
mod storage_faults;
mod stream_workload;
mod tls;
mod workload;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use raftq_chaos::checker;
use raftq_chaos::history::Event;
use raftq_client::{Client, ClientOptions, Error, QueueKind, QueueOptions};
use tokio::sync::watch;

#[derive(Parser, Debug)]
#[command(about = "Chaos run against a local raftq cluster")]
struct Args {
    /// How long faults are made (the drain afterwards comes on top).
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    duration: Duration,
    /// Nodes: 3 or 5.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Seed of the fault schedule and the consumers' choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Work queues under load.
    #[arg(long, default_value_t = 3)]
    queues: usize,
    /// Stream queues under load (an idempotent producer each, read on every
    /// node during the run and compared across nodes after it).
    #[arg(long, default_value_t = 1)]
    streams: usize,
    /// Messages per second of each idempotent producer (one per queue).
    #[arg(long, default_value_t = 100)]
    rate: u32,
    /// Where the history, report and plot go (default: a new temp dir).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The raftqd binary.
    #[arg(long, default_value = "target/release/raftqd")]
    raftqd: PathBuf,
    /// Fail instead of running without partitions when namespaces cannot be made.
    /// Also from RAFTQ_CHAOS_REQUIRE_NETNS (1/0, true/false, yes/no).
    #[arg(
        long,
        env = "RAFTQ_CHAOS_REQUIRE_NETNS",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    require_netns: bool,
    /// Also make membership faults: replace a node whose disk died (new id,
    /// same address), let a node join and another leave, move replicas and
    /// leaders. Nodes run with --heal-after-secs 30.
    #[arg(long)]
    membership: bool,
    /// Also make storage faults: a node stopped, bits flipped in its
    /// database or a snapshot file or its database file cut short, then
    /// restarted; it must rebuild the damage or refuse to start (then it is
    /// replaced under a new id).
    #[arg(long)]
    storage_faults: bool,
    /// Also cut the power: every node's data dir on a file system that
    /// drops whatever was not fsynced (tests/lazyfs), and a node, the leader
    /// or the whole cluster SIGKILLed with its unsynced writes dropped, then
    /// restarted. Needs root and FUSE, else skipped with one line.
    #[arg(long)]
    power_faults: bool,
    /// Only power cuts: a third each to a minority, to a queue's leader and
    /// to the whole cluster (implies --power-faults).
    #[arg(long)]
    power_only: bool,
    /// The long-run mix at a faster pace (shorter holds and recoveries):
    /// about 1,000 leader kills, 240 pauses, 260 partitions and 90
    /// whole-cluster restarts per 1,900 faults, with the membership, storage
    /// and power faults asked for.
    #[arg(long)]
    soak: bool,
    /// End the faults early, once the soak's counts are reached (1,000
    /// leader kills, 200 pauses, 200 partitions, 50 whole-cluster restarts,
    /// and each storage or power fault asked for); --duration stays the cap.
    #[arg(long)]
    until_soak_minimum: bool,
    /// The raftq-lazyfs binary (power faults).
    #[arg(long, default_value = "target/release/raftq-lazyfs")]
    lazyfs: PathBuf,
    /// Nodes serve plaintext (with --insecure) and authenticate nobody,
    /// instead of TLS with a CA made for the run and an auth file.
    #[arg(long)]
    plaintext: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, "s"), |i| (&s[..i], &s[i..]));
    let n: u64 = num.parse().map_err(|_| format!("bad duration '{s}'"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("bad duration unit in '{s}' (ms, s, m, h)")),
    }
}

async fn create_queues(addrs: &[String], queues: &[String], kind: QueueKind) -> anyhow::Result<()> {
    let client = Client::lazy(
        addrs.to_vec(),
        tls::client_options(ClientOptions {
            retry_deadline: Duration::from_secs(60),
            ..Default::default()
        }),
    )?;
    for q in queues {
        let options = QueueOptions {
            kind: kind as i32,
            ..Default::default()
        };
        match client.create_queue(q, options).await {
            Ok(_) | Err(Error::AlreadyExists(_)) => {}
            Err(e) => return Err(e).with_context(|| format!("create queue {q}")),
        }
    }
    Ok(())
}

/// SIGINT or SIGTERM. Dropping the run then drops its cluster and network,
/// whose `Drop`s kill the nodes and remove the namespaces and links.
async fn interrupted() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let outcome = tokio::select! {
        outcome = run(args) => outcome,
        _ = interrupted() => {
            eprintln!("raftq-chaos: interrupted; nodes and namespaces removed");
            return ExitCode::from(130);
        }
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("raftq-chaos: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> anyhow::Result<bool> {
    anyhow::ensure!(args.nodes == 3 || args.nodes == 5, "--nodes is 3 or 5");
    anyhow::ensure!(
        args.raftqd.exists(),
        "{} not found (cargo build --release --bins)",
        args.raftqd.display()
    );
    let tmp = tempfile::Builder::new().prefix("raftq-chaos-").tempdir()?;
    let out = match &args.out {
        Some(o) => o.clone(),
        None => tmp.path().join("out"),
    };
    std::fs::create_dir_all(&out)?;
    // One free slot for a node joining before another leaves.
    let spare = usize::from(args.membership);
    let net = match net::unavailable() {
        None => Some(net::Net::setup(args.nodes + spare).context("network namespaces")?),
        Some(why) if args.require_netns => anyhow::bail!("partitions required but {why}"),
        Some(why) => {
            println!("SKIPPED: partitions ({why}); running process faults on 127.0.0.1 only");
            None
        }
    };
    let base_port = 20000 + (std::process::id() % 20000) as u16;
    let mut node_args: Vec<String> = if args.membership {
        vec!["--heal-after-secs".into(), "30".into()]
    } else {
        Vec::new()
    };
    let pki = if args.plaintext {
        node_args.push("--insecure".into());
        None
    } else {
        Some(tls::RunPki::create(&tmp.path().join("certs"))?)
    };
    let power_wanted = args.power_faults || args.power_only;
    let power = match (power_wanted, power::unavailable(&args.lazyfs)) {
        (false, _) => None,
        (true, None) => Some(power::PowerDisk::mount(&args.lazyfs, tmp.path())?),
        (true, Some(why)) if args.require_netns => {
            anyhow::bail!("power faults required but {why}")
        }
        (true, Some(why)) => {
            println!("SKIPPED: power faults ({why})");
            None
        }
    };
    let mut cluster = cluster::Cluster::new(
        args.nodes,
        spare,
        net.as_ref(),
        base_port,
        tmp.path(),
        cluster::Launch {
            raftqd: args.raftqd.clone(),
            extra_args: node_args,
            pki,
            data_root: power.as_ref().map(|p| p.root().to_path_buf()),
        },
    );
    cluster.start_all()?;
    let addrs = cluster.slot_addrs();
    let queues: Vec<String> = (0..args.queues).map(|i| format!("chaos-{i}")).collect();
    create_queues(&addrs, &queues, QueueKind::Work).await?;
    let streams: Vec<String> = (0..args.streams)
        .map(|i| format!("chaos-stream-{i}"))
        .collect();
    create_queues(&addrs, &streams, QueueKind::Stream).await?;

    let started = Instant::now();
    let (rec, mut rx) = workload::Recorder::new(started);
    let (stop_tx, stop_rx) = watch::channel(false);
    let client = Client::lazy(addrs.clone(), tls::client_options(ClientOptions::default()))?;
    let drain_idle = Duration::from_secs(5);
    let hard_stop = started + args.duration + Duration::from_secs(180);
    let mut tasks = Vec::new();
    for (i, q) in queues.iter().enumerate() {
        let i = i as u32;
        tasks.push(tokio::spawn(workload::idempotent_producer(
            client.clone(),
            q.clone(),
            2 * i + 1,
            args.rate,
            rec.clone(),
            stop_rx.clone(),
        )));
        tasks.push(tokio::spawn(workload::plain_producer(
            client.clone(),
            q.clone(),
            2 * i + 2,
            (args.rate / 5).max(1),
            rec.clone(),
            stop_rx.clone(),
        )));
        for c in 0..2u64 {
            let id = u64::from(i) * 10 + c + 1;
            tasks.push(tokio::spawn(workload::consumer(
                client.clone(),
                q.clone(),
                id,
                args.seed ^ id,
                rec.clone(),
                stop_rx.clone(),
                drain_idle,
                hard_stop,
            )));
        }
    }
    for (i, q) in streams.iter().enumerate() {
        tasks.push(tokio::spawn(workload::idempotent_producer(
            client.clone(),
            q.clone(),
            1000 + i as u32,
            args.rate,
            rec.clone(),
            stop_rx.clone(),
        )));
        tasks.push(tokio::spawn(stream_workload::follow(
            cluster.roster.clone(),
            addrs.clone(),
            q.clone(),
            rec.clone(),
            stop_rx.clone(),
        )));
    }
    let observer = tokio::spawn(workload::observe_leaders(
        cluster.roster.clone(),
        addrs.clone(),
        queues.iter().chain(&streams).cloned().collect(),
        rec.clone(),
        stop_rx.clone(),
    ));

    let mut events: Vec<Event> = Vec::new();
    let kinds = nemesis::Kinds {
        partitions: false,
        membership: args.membership,
        storage: args.storage_faults,
        power: power_wanted,
        power_only: args.power_only,
        soak: args.soak,
    };
    let mut nemesis = nemesis::Nemesis::new(args.seed, queues.clone(), kinds);
    // Load first, then faults until the deadline, each followed by recovery.
    tokio::time::sleep(Duration::from_secs(3)).await;
    while started.elapsed() < args.duration {
        if args.until_soak_minimum && nemesis.soak_minimum_met() {
            eprintln!(
                "soak minimum reached after {:?}: stopping faults",
                started.elapsed()
            );
            break;
        }
        if let Err(e) = nemesis
            .strike(&mut cluster, net.as_ref(), power.as_ref(), &rec)
            .await
        {
            eprintln!("fault failed: {e:#}");
            cluster.heal()?;
            if let Some(n) = &net {
                n.heal()?;
            }
        }
        while let Ok(e) = rx.try_recv() {
            events.push(e);
        }
        let recover = Duration::from_millis(nemesis_recovery(&mut nemesis));
        tokio::time::sleep(recover).await;
    }
    let faults_for = started.elapsed();
    // Heal everything, stop producing, let consumers drain every queue.
    if let Some(n) = &net {
        n.heal()?;
    }
    cluster.heal()?;
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    let _ = observer.await;
    let members = cluster.roster.members();
    for q in &streams {
        stream_workload::read_every_replica(&members, q, &rec, Duration::from_secs(60)).await;
    }
    drop(rec);
    while let Some(e) = rx.recv().await {
        events.push(e);
    }

    let report = checker::check(&events);
    let mut history = std::fs::File::create(out.join("history.jsonl"))?;
    for e in &events {
        writeln!(history, "{}", serde_json::to_string(e)?)?;
    }
    let title = format!(
        "raftq chaos: {} nodes, seed {}, {:?}",
        args.nodes, args.seed, args.duration
    );
    std::fs::write(out.join("plot.html"), report::html(&events, &title))?;
    let kills = nemesis.counts.get("kill-leader").copied().unwrap_or(0);
    let partitions: u32 = ["isolate-leader", "split", "bridge"]
        .iter()
        .map(|k| nemesis.counts.get(k).copied().unwrap_or(0))
        .sum();
    let membership: u32 = ["replace-node", "cycle-node", "move-replica", "move-leader"]
        .iter()
        .map(|k| nemesis.counts.get(k).copied().unwrap_or(0))
        .sum();
    let storage = nemesis.counts.get("corrupt-node").copied().unwrap_or(0);
    let power_cuts: u32 = ["power-cut-node", "power-cut-leader", "power-cut-all"]
        .iter()
        .map(|k| nemesis.counts.get(k).copied().unwrap_or(0))
        .sum();
    let refusals = nemesis.power_refusals.len();
    let summary = serde_json::json!({
        "nodes": args.nodes, "seed": args.seed, "duration_s": args.duration.as_secs(),
        "faults_for_s": faults_for.as_secs(),
        "faults": report.faults, "leader_kills": kills, "partitions": partitions,
        "membership_changes": membership, "storage_faults": storage,
        "power_cuts": power_cuts, "refused_after_power_cut": refusals,
        "fault_kinds": nemesis.counts,
        "confirmed": report.confirmed, "failed_publishes": report.failed_publishes,
        "delivered": report.delivered, "acked": report.acked,
        "lost": report.lost, "unexpected": report.unexpected, "resurrected": report.resurrected,
        "duplicates": report.duplicates, "fifo_violations": report.fifo_violations,
        "split_brain": report.split_brain,
        "offset_conflicts": report.offset_conflicts, "replica_divergence": report.replica_divergence,
        "streams": streams.len(), "stream_reads": report.stream_reads,
        "failover_median_ms": report.failover_median_ms, "failover_max_ms": report.failover_max_ms,
        "partitions_enabled": net.is_some(), "tls": !args.plaintext, "auth": !args.plaintext,
    });
    std::fs::write(
        out.join("report.json"),
        serde_json::to_string_pretty(
            &serde_json::json!({"summary": summary, "examples": report.examples}),
        )?,
    )?;
    for refusal in &nemesis.power_refusals {
        println!("  refused to start after a power cut: {refusal}");
    }
    println!(
        "chaos: {} faults ({kills} leader kills, {partitions} partitions, {membership} membership changes, {storage} storage faults, {power_cuts} power cuts, {refusals} refusals after one), {} confirmed, {} delivered, {} acked; \
         {} stream reads; lost {}, unexpected {}, resurrected {}, duplicates {} (allowed), FIFO violations {}, \
         split brain {}, offset conflicts {}, divergent replicas {}; failover median {} ms, max {} ms",
        report.faults, report.confirmed, report.delivered, report.acked, report.stream_reads, report.lost,
        report.unexpected, report.resurrected, report.duplicates, report.fifo_violations, report.split_brain,
        report.offset_conflicts, report.replica_divergence, report.failover_median_ms, report.failover_max_ms
    );
    for ex in &report.examples {
        println!("  {ex}");
    }
    if args.out.is_some() {
        println!("history, report.json and plot.html in {}", out.display());
    }
    println!("{summary}");
    Ok(report.anomalies() == 0 && refusals == 0)
}

fn nemesis_recovery(n: &mut nemesis::Nemesis) -> u64 {
    use rand::Rng;
    if n.kinds.soak {
        n.rng.gen_range(300..800)
    } else {
        n.rng.gen_range(2000..4000)
    }
}
