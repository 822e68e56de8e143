//! Memory and disk alarms (README "Hostile input"): past a node's limit,
//! publishes anywhere in the cluster are refused with RESOURCE_EXHAUSTED naming
//! the node and the resource, consumers and acks keep working so the backlog
//! drains, publishes resume once the pressure is gone, and no confirmed
//! message is lost.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use raftq_proto::metadata;
use raftq_proto::v1::{PublishMessage, PublishRequest, QueueOptions};
use raftq_tests::cluster::Cluster;
use raftq_tests::consumer::drain;
use raftq_tests::scrape::scrape;
use tonic::Code;

const MIB: usize = 1 << 20;

fn batch(queue: &str, tag: &str, count: usize, size: usize) -> PublishRequest {
    PublishRequest {
        queue: queue.into(),
        messages: (0..count)
            .map(|i| {
                let mut body = format!("{tag}-{i} ").into_bytes();
                body.resize(size.max(body.len()), b'x');
                PublishMessage {
                    payload: Bytes::from(body),
                    headers: Default::default(),
                }
            })
            .collect(),
        producer_id: String::new(),
        sequence: 0,
        // Every batch keyed, so that riding out an election stores it once.
        key: Some(raftq_proto::v1::PublishKey {
            source: u64::from(std::process::id()),
            counter: NEXT_KEY.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }),
    }
}

static NEXT_KEY: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// One publish through node `via`: the payloads confirmed, or the refusal.
async fn publish(
    cluster: &Cluster,
    via: u64,
    req: PublishRequest,
) -> Result<Vec<(u64, Vec<u8>)>, tonic::Status> {
    let payloads: Vec<Vec<u8>> = req.messages.iter().map(|m| m.payload.to_vec()).collect();
    let mut client = cluster.queue(via).await;
    let mut request = tonic::Request::new(req);
    request.set_timeout(Duration::from_secs(20));
    let offsets = client.publish(request).await?.into_inner().offsets;
    Ok(offsets.into_iter().zip(payloads).collect())
}

/// `publish`, sent again while the answer is UNAVAILABLE (an election:
/// debug builds on two cores can lose one under 4 MiB batches).
async fn publish_riding_out_elections(
    cluster: &Cluster,
    via: u64,
    req: PublishRequest,
) -> Result<Vec<(u64, Vec<u8>)>, tonic::Status> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match publish(cluster, via, req.clone()).await {
            Err(s) if s.code() == Code::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            answer => return answer,
        }
    }
}

fn assert_alarm_refusal(status: &tonic::Status, resource: &str, node: Option<u64>) {
    assert_eq!(status.code(), Code::ResourceExhausted, "{status}");
    let meta = status.metadata();
    let got = meta.get(metadata::ALARM).and_then(|v| v.to_str().ok());
    assert_eq!(got, Some(resource), "typed alarm resource: {status:?}");
    let at: Option<u64> = meta
        .get(metadata::ALARM_NODE)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    assert!(at.is_some(), "typed alarm node: {status:?}");
    if let Some(node) = node {
        assert_eq!(at, Some(node), "{status}");
    }
    assert!(
        status.message().contains(&format!("{resource} alarm")),
        "the reason is given: {status}"
    );
}

/// Waits until cluster status, as node `via` sees it, shows alarms exactly on
/// `expected` nodes.
async fn wait_alarmed_nodes(
    cluster: &Cluster,
    via: u64,
    expected: &BTreeSet<u64>,
    within: Duration,
) {
    let deadline = Instant::now() + within;
    loop {
        let status = raftq_tests::client::cluster_status(&cluster.addr(via))
            .await
            .expect("cluster status");
        let alarmed: BTreeSet<u64> = status
            .nodes
            .iter()
            .filter(|n| !n.alarms.is_empty())
            .map(|n| n.id)
            .collect();
        if &alarmed == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "alarms on {alarmed:?}, expected {expected:?}: {:?}",
            status.nodes
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the queue's leader holds nothing more: every ack committed.
/// A consumer whose settle failed leaves its messages to be redelivered, so
/// drain again then.
async fn wait_drained(cluster: &Cluster, queue: &str) {
    for _ in 0..5 {
        let leader = cluster.leader_of(queue).await;
        let info = cluster.queue_info(leader, queue).await.expect("queue info");
        if info.depth == 0 {
            return;
        }
        let left = info.depth as usize;
        drain(
            &cluster.addrs(&cluster.ids()),
            queue,
            left,
            Duration::from_secs(30),
        )
        .await;
    }
    panic!("{queue} did not drain");
}

/// Consumes `queue` through `via`, acking, and checks that exactly the
/// `confirmed` messages were delivered: nothing lost, nothing unexpected.
async fn assert_drains(
    cluster: &Cluster,
    via: &[u64],
    queue: &str,
    confirmed: &[(u64, Vec<u8>)],
    within: Duration,
) {
    let drained = drain(&cluster.addrs(via), queue, confirmed.len(), within).await;
    let expected: BTreeSet<(u64, Vec<u8>)> = confirmed.iter().cloned().collect();
    assert_eq!(
        drained.delivered_set(),
        expected,
        "{queue}: every confirmed message, nothing else"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_alarm_refuses_publishes_lets_consumers_drain_and_clears() {
    const LIMIT_MIB: usize = 192;
    let limit = LIMIT_MIB.to_string();
    let cluster = Cluster::start_with(3, &["--memory-limit-mib", &limit]).await;
    let info = cluster.create_queue("mem", QueueOptions::default()).await;
    let follower = cluster.others(&[info.leader_id])[0];
    for id in cluster.ids() {
        let m = scrape(&cluster.node(id).metrics_addr).await;
        let resident = m.get("raftq_resident_memory_bytes").copied().unwrap_or(0.0);
        eprintln!(
            "node {id}: {:.0} MiB resident before publishing",
            resident / MIB as f64
        );
    }

    let mut confirmed = Vec::new();
    let mut refusal = None;
    // Bounded: the replicas hold the backlog in memory, so at most about
    // twice the limit is published before some node's alarm must refuse.
    for round in 0..(2 * LIMIT_MIB / 4) {
        let request = batch("mem", &format!("b{round}"), 4, MIB);
        match publish_riding_out_elections(&cluster, follower, request).await {
            Ok(stored) => confirmed.extend(stored),
            Err(status) => {
                refusal = Some(status);
                break;
            }
        }
    }
    let refusal = refusal.unwrap_or_else(|| {
        cluster.dump_logs();
        panic!(
            "{} MiB published, above a {LIMIT_MIB} MiB memory limit, and no alarm",
            confirmed.len()
        )
    });
    eprintln!(
        "refused after {} MiB confirmed: {}",
        confirmed.len(),
        refusal.message()
    );
    assert_alarm_refusal(&refusal, "memory", None);
    for via in cluster.ids() {
        // A node refuses once it has heard of the alarm (node heartbeats, a
        // few a second, later under this load): wait for that, then publish.
        heard_of_an_alarm(&cluster, via).await;
        let status = publish_riding_out_elections(&cluster, via, batch("mem", "again", 1, 10))
            .await
            .expect_err("every node refuses publishes while a node is in alarm");
        assert_alarm_refusal(&status, "memory", None);
    }
    let mut in_alarm = BTreeSet::new();
    for id in cluster.ids() {
        let m = scrape(&cluster.node(id).metrics_addr).await;
        if m.get("raftq_alarm{resource=\"memory\"}") == Some(&1.0) {
            in_alarm.insert(id);
            assert!(m["raftq_resident_memory_bytes"] > m["raftq_memory_limit_bytes"] * 0.9);
        }
    }
    assert!(
        !in_alarm.is_empty(),
        "some node shows the alarm in its metrics"
    );
    eprintln!("memory alarm on nodes {in_alarm:?}");

    // Consumers and acks keep working: the backlog drains ...
    assert_drains(
        &cluster,
        &cluster.ids(),
        "mem",
        &confirmed,
        Duration::from_secs(120),
    )
    .await;
    wait_drained(&cluster, "mem").await;
    for id in cluster.ids() {
        let m = scrape(&cluster.node(id).metrics_addr).await;
        let resident = m.get("raftq_resident_memory_bytes").copied().unwrap_or(0.0);
        eprintln!(
            "node {id}: {:.0} MiB resident after the drain",
            resident / MIB as f64
        );
    }
    // ... and with it the pressure, so the alarm clears and publishes resume.
    wait_alarmed_nodes(
        &cluster,
        follower,
        &BTreeSet::new(),
        Duration::from_secs(60),
    )
    .await;
    let after = publish_riding_out_elections(&cluster, follower, batch("mem", "after", 2, 10))
        .await
        .expect("publishes resume once the alarm cleared");
    assert_drains(
        &cluster,
        &cluster.ids(),
        "mem",
        &after,
        Duration::from_secs(30),
    )
    .await;
}

/// A tmpfs mounted for the test, unmounted (and its mount point removed) even
/// when the test panics.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size_mib: usize) -> Tmpfs {
        let dir = tempfile::Builder::new()
            .prefix("raftq-tmpfs-")
            .tempdir()
            .expect("mount point");
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "mount a {size_mib} MiB tmpfs at {}",
            dir.path().display()
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn free_bytes(dir: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).expect("path");
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: a NUL-terminated path; `stat` is read only after statvfs filled it.
    unsafe {
        assert_eq!(
            libc::statvfs(path.as_ptr(), stat.as_mut_ptr()),
            0,
            "statvfs"
        );
        let stat = stat.assume_init();
        // fsblkcnt_t and c_ulong are 32 bits on some targets.
        #[allow(clippy::unnecessary_cast)]
        let free = stat.f_bavail as u64 * stat.f_frsize as u64;
        free
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_alarm_on_one_node_refuses_publishes_everywhere_until_space_returns() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: the disk alarm test mounts a tmpfs, which needs root");
        return;
    }
    const LIMIT_MIB: u64 = 64;
    let disk = Tmpfs::mount(256);
    let node1_dir: PathBuf = disk.path().join("node1");
    let limit = LIMIT_MIB.to_string();
    let cluster = Cluster::builder(3)
        .data_dir(1, node1_dir)
        .args(["--disk-free-limit-mib", &limit])
        .start()
        .await;
    cluster.create_queue("disk", QueueOptions::default()).await;
    let via = 2;
    let mut confirmed =
        publish_riding_out_elections(&cluster, via, batch("disk", "before", 50, 1000))
            .await
            .expect("publish with room on every disk");

    // Another tenant of node 1's disk takes all but 16 MiB of it.
    let ballast = disk.path().join("ballast");
    let take = free_bytes(disk.path()).saturating_sub(16 * MIB as u64);
    std::fs::write(&ballast, vec![0u8; take as usize]).expect("write ballast");
    wait_alarmed_nodes(&cluster, via, &BTreeSet::from([1]), Duration::from_secs(10)).await;
    for id in cluster.ids() {
        let status = publish_riding_out_elections(&cluster, id, batch("disk", "refused", 1, 10))
            .await
            .expect_err("node 1's disk alarm refuses publishes on every node");
        assert_alarm_refusal(&status, "disk", Some(1));
    }
    let m = scrape(&cluster.node(1).metrics_addr).await;
    assert_eq!(m.get("raftq_alarm{resource=\"disk\"}"), Some(&1.0));

    assert_drains(
        &cluster,
        &[via],
        "disk",
        &confirmed,
        Duration::from_secs(60),
    )
    .await;

    std::fs::remove_file(&ballast).expect("remove ballast");
    wait_alarmed_nodes(&cluster, via, &BTreeSet::new(), Duration::from_secs(10)).await;
    confirmed = publish_riding_out_elections(&cluster, via, batch("disk", "after", 5, 1000))
        .await
        .expect("publishes resume once space returned");
    assert_drains(
        &cluster,
        &[via],
        "disk",
        &confirmed,
        Duration::from_secs(60),
    )
    .await;
    drop(cluster);
}

/// Waits until node `via` knows some node of the cluster is in alarm.
async fn heard_of_an_alarm(cluster: &Cluster, via: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(status) = raftq_tests::client::cluster_status(&cluster.addr(via)).await {
            if status.nodes.iter().any(|n| !n.alarms.is_empty()) {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "node {via} never heard of the alarm"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Fills a filesystem to the last byte: a file written in 1 MiB pieces
/// until the write fails.
fn fill_up(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("ballast");
    let mut file = std::fs::File::create(&path).expect("ballast");
    let chunk = vec![0u8; MIB];
    for _ in 0..100_000 {
        if file.write_all(&chunk).is_err() {
            break;
        }
    }
    // The last partial chunk too: byte by byte would take long, 4 KiB will do.
    for _ in 0..MIB / 4096 {
        if file.write_all(&chunk[..4096]).is_err() {
            break;
        }
    }
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_node_with_its_log_intact_and_it_resumes_once_space_returns() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: the full-disk test mounts a tmpfs, which needs root");
        return;
    }
    let disk = Tmpfs::mount(128);
    let cluster_dir = disk.path().join("node1");
    // The alarm off: the disk is to fill for real, past any margin.
    let mut cluster = Cluster::builder(3)
        .data_dir(1, cluster_dir)
        .args(["--disk-free-limit-mib", "0"])
        .start()
        .await;
    cluster.create_queue("full", QueueOptions::default()).await;
    let via = 2;
    let mut confirmed =
        publish_riding_out_elections(&cluster, via, batch("full", "before", 20, 1000))
            .await
            .expect("publish with room");
    let ballast = fill_up(disk.path());
    // Nodes 2 and 3 still make a majority: publishing goes on, and node 1
    // fails its next write.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = cluster.nodes[0].exited() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "node 1 kept running on a full disk"
        );
        confirmed.extend(
            publish_riding_out_elections(&cluster, via, batch("full", "during", 20, 1000))
                .await
                .expect("the majority with room confirms"),
        );
    };
    assert_eq!(
        status.code(),
        Some(74),
        "{}",
        cluster.node(1).log_tail(3000)
    );
    let log = cluster.node(1).log();
    assert!(
        log.lines()
            .any(|l| l.contains("stopping:") && l.contains("free space")),
        "no clear line: {}",
        cluster.node(1).log_tail(3000)
    );
    assert!(
        !log.contains("panicked") && !log.contains("internal panic"),
        "{log}"
    );

    std::fs::remove_file(&ballast).expect("remove ballast");
    let seen = log.len();
    cluster.restart(1);
    cluster
        .wait_caught_up(1, "full", Duration::from_secs(60))
        .await;
    let after = cluster.node(1).log();
    let after = &after[seen.min(after.len())..];
    assert!(
        !after.contains("damaged replica"),
        "a full disk is no damage: {after}"
    );
    confirmed.extend(
        publish_riding_out_elections(&cluster, 1, batch("full", "after", 20, 1000))
            .await
            .expect("writes resume through node 1"),
    );
    assert_drains(&cluster, &[1], "full", &confirmed, Duration::from_secs(60)).await;
    eprintln!(
        "full disk: node 1 stopped cleanly, {} confirmed, none lost",
        confirmed.len()
    );
}
