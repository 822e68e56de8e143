//! Catch-up at size: a follower down while its queue grows by
//! `RAFTQ_CATCH_UP_MIB` (64 by default; `scripts/catch-up-bench.sh` runs
//! 1,024 with release builds) is back in sync after its restart, once through
//! the log (nothing purged while it was away) and once through a snapshot (the
//! log below several snapshots purged). Each run prints one `CATCH-UP` line
//! with the rate, which the bench script records in bench/results/catch-up.md.

use std::time::{Duration, Instant};

use bytes::Bytes;
use raftq_proto::v1::QueueOptions;
use raftq_tests::cluster::Cluster;
use raftq_tests::publish::Producer;

const MESSAGE: usize = 64 * 1024;
/// 100 messages: 6.4 MB per batch, one Raft entry each.
const PER_BATCH: usize = 100;

fn mib_to_grow() -> usize {
    std::env::var("RAFTQ_CATCH_UP_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

#[derive(Debug, Clone, Copy)]
enum Path {
    Log,
    Snapshot,
}

impl Path {
    fn flags(self) -> &'static [&'static str] {
        match self {
            // No snapshot while the follower is away: it catches up from the log.
            Path::Log => &[
                "--snapshot-min-log-mib",
                "1000000",
                "--snapshot-max-log-mib",
                "1000000",
                "--snapshot-every",
                "100000000",
            ],
            // A snapshot every 16 MiB of log at most, nothing kept below it.
            Path::Snapshot => &[
                "--snapshot-min-log-mib",
                "16",
                "--snapshot-max-log-mib",
                "16",
                "--snapshot-keep-logs",
                "0",
            ],
        }
    }
}

async fn grow_while_a_follower_is_down_then_catch_up(path: Path) {
    let mib = mib_to_grow();
    let mut cluster = Cluster::start_with(3, path.flags()).await;
    let info = cluster.create_queue("bulk", QueueOptions::default()).await;
    let leader = info.leader_id;
    let follower = cluster.others(&[leader])[0];
    cluster.kill(follower);

    let mut body = vec![b'x'; MESSAGE];
    let batches = (mib * 1024 * 1024).div_ceil(MESSAGE * PER_BATCH);
    let mut producer = Producer::new("bulk");
    let started = Instant::now();
    for b in 0..batches {
        body[..8].copy_from_slice(&(b as u64).to_be_bytes());
        let payload = Bytes::from(body.clone());
        let batch = vec![payload; PER_BATCH];
        producer
            .publish(&cluster.addr(leader), "bulk", &batch)
            .await
            .unwrap_or_else(|e| {
                cluster.dump_logs();
                panic!("batch {b} of {batches}: {e}")
            });
    }
    let bytes = (batches * PER_BATCH * MESSAGE) as f64;
    let published_in = started.elapsed();
    // Snapshots are built in the background: give the last one a moment.
    let mut on_leader = cluster
        .queue_info(leader, "bulk")
        .await
        .expect("leader info");
    let deadline = Instant::now() + Duration::from_secs(60);
    while matches!(path, Path::Snapshot) && on_leader.purged_index == 0 && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
        on_leader = cluster
            .queue_info(leader, "bulk")
            .await
            .expect("leader info");
    }
    eprintln!(
        "{path:?}: published {:.0} MiB in {published_in:.1?}; leader snapshot at index {}, log purged to {} of {}",
        bytes / (1 << 20) as f64,
        on_leader.snapshot_index,
        on_leader.purged_index,
        on_leader.applied_index
    );
    match path {
        Path::Log => assert_eq!(on_leader.purged_index, 0, "the log path purges nothing"),
        Path::Snapshot => assert!(
            on_leader.purged_index > 0,
            "the snapshot path must purge the log the follower missed"
        ),
    }

    cluster.restart(follower);
    let took = cluster
        .wait_caught_up(follower, "bulk", Duration::from_secs(600))
        .await;
    let mine = cluster
        .queue_info(follower, "bulk")
        .await
        .expect("follower info");
    assert_eq!(
        mine.depth, on_leader.depth,
        "the follower holds every message"
    );
    assert_eq!(mine.bytes, on_leader.bytes);
    let rate = bytes / (1 << 20) as f64 / took.as_secs_f64();
    eprintln!(
        "CATCH-UP path={path:?} mib={:.0} secs={:.2} mib_per_s={rate:.1} follower_snapshot_index={}",
        bytes / (1 << 20) as f64,
        took.as_secs_f64(),
        mine.snapshot_index
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_catches_up_through_the_log() {
    grow_while_a_follower_is_down_then_catch_up(Path::Log).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_catches_up_through_a_snapshot() {
    grow_while_a_follower_is_down_then_catch_up(Path::Snapshot).await;
}
