//! Storage faults on one node while it is down, with a producer running
//! (issue 20): a damaged snapshot, a log that lost entries it had flushed
//! (what sled recovers to after a truncated file or a flipped bit: the tail
//! after the damage silently gone), bits flipped in the database file, and a
//! database that is gone. The node names the damage in one line and never
//! panics; a damaged replica stays out of its group's votes until its leader
//! has let it go, is then rebuilt from the other replicas and votes again;
//! no confirmed message is lost and no acked one comes back.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use raftq_client::QueueOptions;
use raftq_tests::cluster::Cluster;
use raftq_tests::load::{
    ack_some, assert_all_delivered, assert_none_redelivered, BackgroundProducer,
};
use raftq_tests::wait::{wait_status, wait_voters};

const DAMAGED: u64 = 3;

async fn wait_for_log(cluster: &Cluster, id: u64, needle: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let log = cluster.node(id).log();
        if log.contains(needle) {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "node {id} never logged {needle:?}: {}",
            cluster.node(id).log_tail(4000)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// No node panicked, the damaged one or another (a leader meeting a
/// follower that silently lost entries it had acknowledged panics in
/// openraft's debug assertions).
fn assert_no_panic(cluster: &Cluster, _damaged: u64) {
    for id in cluster.running_ids() {
        let log = cluster.node(id).log();
        assert!(
            !log.contains("panicked")
                && !log.contains("internal panic")
                && !log.contains("stack backtrace"),
            "node {id} panicked, or saw a peer panic: {}",
            cluster.node(id).log_tail(4000)
        );
    }
}

/// The line naming the damage of `group` on node 3, once it is logged: one
/// line, the node, the queue, the group, the file.
async fn wait_for_damage_line(cluster: &Cluster, group: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = cluster.node(DAMAGED).log();
        let found = log
            .lines()
            .find(|l| l.contains("damaged replica:") && l.contains(&format!("group={group}")));
        if let Some(line) = found {
            assert!(line.contains(&format!("node={DAMAGED}")), "{line}");
            return line.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no damage line for group {group}: {}",
            cluster.node(DAMAGED).log_tail(4000)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The damaged replica is taken out of the votes before it is discarded,
/// then rebuilt: the queue ends with all three voters again and node 3
/// reports nothing damaged.
async fn assert_rebuilt(cluster: &Cluster, queue: &str) {
    let log = wait_for_log(
        cluster,
        DAMAGED,
        "no longer counts this damaged replica",
        Duration::from_secs(60),
    )
    .await;
    let named = log.find("damaged replica:").expect("named first");
    let released = log
        .find("no longer counts this damaged replica")
        .expect("released");
    assert!(named < released, "discarded before being found damaged?");
    let leader_let_go = cluster.ids().into_iter().any(|id| {
        cluster
            .node(id)
            .log()
            .contains("taking a damaged replica out of the group's voters")
    });
    assert!(
        leader_let_go,
        "no leader took the damaged replica out of the voters"
    );
    wait_voters(cluster, 1, queue, &[1, 2, 3], Duration::from_secs(90)).await;
    wait_status(
        cluster,
        1,
        "no damaged replica left",
        Duration::from_secs(60),
        |s| s.nodes.iter().all(|n| n.damaged.is_empty()),
    )
    .await;
    cluster
        .wait_caught_up(DAMAGED, queue, Duration::from_secs(60))
        .await;
    assert_no_panic(cluster, DAMAGED);
}

/// Publishes in the background, acks some; returns what must survive.
struct Load {
    producer: BackgroundProducer,
    acked: BTreeSet<Bytes>,
}

async fn start_load(cluster: &Cluster, queue: &str) -> (u64, Load) {
    let client = cluster.connect(&[1, 2, 3]).await;
    let info = client
        .create_queue(queue, QueueOptions::default())
        .await
        .expect("create");
    let producer = BackgroundProducer::start(&client, queue, queue);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let acked = ack_some(&cluster.addr(1), queue, 50).await;
    (info.group_id, Load { producer, acked })
}

async fn finish_load(cluster: &Cluster, queue: &str, load: Load) {
    let (confirmed, _) = load.producer.stop().await;
    let unacked: BTreeSet<Bytes> = confirmed.difference(&load.acked).cloned().collect();
    let drained = assert_all_delivered(&cluster.addrs(&[1, 2, 3]), queue, &unacked).await;
    assert_none_redelivered(queue, &drained, &load.acked);
    eprintln!(
        "{queue}: {} confirmed, {} acked before the fault, 0 lost, 0 back",
        confirmed.len(),
        load.acked.len()
    );
}

async fn wait_for_snapshot(data_dir: &Path, group: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while snapshot_files(data_dir, group).is_empty() {
        assert!(Instant::now() < deadline, "node {DAMAGED} took no snapshot");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn copy_tree(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(
        status.success(),
        "cp -a {} {}",
        from.display(),
        to.display()
    );
}

fn snapshot_files(data_dir: &Path, group: u64) -> Vec<PathBuf> {
    std::fs::read_dir(data_dir.join("snapshots"))
        .map(|dir| {
            dir.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                        n.starts_with(&format!("g{group}-")) && n.ends_with(".snap")
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

fn flip_bytes(path: &Path, at: usize, count: usize) {
    let mut content = std::fs::read(path).expect("read file to damage");
    for i in 0..count {
        let at = (at + i * 97) % content.len();
        content[at] ^= 0x20;
    }
    std::fs::write(path, content).expect("write damaged file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_snapshot_is_rebuilt_from_the_other_replicas() {
    let mut cluster = Cluster::start_with(3, &["--snapshot-every", "40"]).await;
    let (group, load) = start_load(&cluster, "snapped").await;
    let data_dir = cluster.node(DAMAGED).data_dir.clone();
    wait_for_snapshot(&data_dir, group).await;
    cluster.kill(DAMAGED);
    for file in snapshot_files(&data_dir, group) {
        let len = std::fs::metadata(&file).expect("snapshot").len() as usize;
        flip_bytes(&file, len / 2, 3);
    }
    cluster.restart(DAMAGED);
    let line = wait_for_damage_line(&cluster, group).await;
    assert!(line.contains("snapped") && line.contains(".snap"), "{line}");
    assert_rebuilt(&cluster, "snapped").await;
    finish_load(&cluster, "snapped", load).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_that_lost_flushed_entries_is_rebuilt_from_the_other_replicas() {
    let mut cluster = Cluster::start(3).await;
    let (group, load) = start_load(&cluster, "rolled").await;
    let data_dir = cluster.node(DAMAGED).data_dir.clone();
    let kept = tempfile::tempdir().expect("tempdir");
    // The database as it is now, frozen for a moment to copy it whole: what
    // sled recovers to when it drops everything after a damaged record.
    cluster.stop(DAMAGED);
    copy_tree(&data_dir.join("db"), &kept.path().join("db"));
    cluster.cont(DAMAGED);
    // Node 3 acknowledges more of the queue's entries, then loses them.
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.kill(DAMAGED);
    std::fs::remove_dir_all(data_dir.join("db")).expect("rm db");
    copy_tree(&kept.path().join("db"), &data_dir.join("db"));
    cluster.restart(DAMAGED);
    let line = wait_for_damage_line(&cluster, group).await;
    assert!(
        line.contains("rolled") && line.contains("had made index") && line.contains("/db"),
        "{line}"
    );
    assert_rebuilt(&cluster, "rolled").await;
    finish_load(&cluster, "rolled", load).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_database_is_gone_refuses_to_start_and_says_how_to_replace_it() {
    let mut cluster = Cluster::start(3).await;
    let (_, load) = start_load(&cluster, "kept").await;
    cluster.kill(DAMAGED);
    std::fs::remove_dir_all(cluster.node(DAMAGED).data_dir.join("db")).expect("rm db");
    cluster.restart(DAMAGED);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = cluster.nodes[(DAMAGED - 1) as usize].exited() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "node {DAMAGED} kept running on a lost database"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!status.success());
    let log = cluster.node(DAMAGED).log();
    let refusal: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("cannot trust its data"))
        .collect();
    assert_eq!(refusal.len(), 1, "one line: {log}");
    for needle in ["lost everything", "remove-node 3", "new --id", "--join"] {
        assert!(
            refusal[0].contains(needle),
            "{needle:?} missing: {}",
            refusal[0]
        );
    }
    assert_no_panic(&cluster, DAMAGED);
    // The two others carry the queue meanwhile.
    let (confirmed, _) = load.producer.stop().await;
    let unacked: BTreeSet<Bytes> = confirmed.difference(&load.acked).cloned().collect();
    let drained = assert_all_delivered(&cluster.addrs(&[1, 2]), "kept", &unacked).await;
    assert_none_redelivered("kept", &drained, &load.acked);
}

/// What became of a node restarted on a database with flipped bits.
enum AfterFlip {
    /// It found a damaged replica, named it, and rebuilt it.
    Repaired,
    /// It refused to start, or stopped once it found sled's own pages
    /// damaged, saying how to replace it.
    Refused,
    /// Nothing it relies on was hit (the bits fell in free space).
    Unharmed,
}

/// Stops node 3, applies `damage` to sled's file, starts it, and sees what
/// it makes of it (on queue `queue`).
async fn restart_damaged(
    cluster: &mut Cluster,
    queue: &str,
    damage: impl FnOnce(&Path, u64),
) -> AfterFlip {
    cluster.kill(DAMAGED);
    let file = cluster.node(DAMAGED).data_dir.join("db/db");
    let len = std::fs::metadata(&file).expect("sled's file").len();
    damage(&file, len);
    let seen = cluster.node(DAMAGED).log().len();
    cluster.restart(DAMAGED);
    let mut deadline = Instant::now() + Duration::from_secs(20);
    let mut named = false;
    loop {
        let log = cluster.node(DAMAGED).log();
        let since = &log[seen.min(log.len())..];
        // Named, then rebuilt from the others; or, when the damage is in
        // sled's own pages (found again as the replica's data is dropped),
        // the whole database is damaged and the node stops.
        if since.contains("rebuilt replica caught up") {
            assert_rebuilt(cluster, queue).await;
            return AfterFlip::Repaired;
        }
        if !named && since.contains("damaged replica:") {
            named = true;
            deadline = Instant::now() + Duration::from_secs(90);
        }
        if cluster.nodes[(DAMAGED - 1) as usize].exited().is_some() {
            let line = since
                .lines()
                .find(|l| l.contains("cannot trust its data"))
                .unwrap_or_else(|| panic!("exited without saying why: {since}"));
            assert!(
                line.contains("remove-node 3") && line.contains("--join"),
                "{line}"
            );
            return AfterFlip::Refused;
        }
        if Instant::now() > deadline {
            assert!(
                !named,
                "named damage, but neither rebuilt nor stopped: {since}"
            );
            return AfterFlip::Unharmed;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Damages node 3's database file, one way after another, until something
/// it relies on is hit; then checks nothing confirmed was lost.
async fn damage_until_hit(queue: &str, attempts: &[f64], damage: fn(&Path, u64, f64)) {
    let mut cluster = Cluster::start(3).await;
    let (_, load) = start_load(&cluster, queue).await;
    let mut outcomes = Vec::new();
    for &fraction in attempts {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let outcome =
            restart_damaged(&mut cluster, queue, |file, len| damage(file, len, fraction)).await;
        assert_no_panic(&cluster, DAMAGED);
        match outcome {
            AfterFlip::Unharmed => outcomes.push(format!("{fraction}: unharmed")),
            AfterFlip::Repaired => {
                outcomes.push(format!("{fraction}: damaged replica named and rebuilt"));
                break;
            }
            AfterFlip::Refused => {
                outcomes.push(format!("{fraction}: refused to start or stopped"));
                // The runbook the refusal gives: remove node 3, start a new
                // node; the queue grows back onto it.
                let client = cluster.connect(&[1, 2]).await;
                client.remove_node(DAMAGED).await.expect("remove node 3");
                let four = cluster.add_node(&[1, 2]);
                wait_voters(&cluster, 1, queue, &[1, 2, four], Duration::from_secs(90)).await;
                break;
            }
        }
    }
    eprintln!("{queue}: {outcomes:?}");
    let (confirmed, _) = load.producer.stop().await;
    let unacked: BTreeSet<Bytes> = confirmed.difference(&load.acked).cloned().collect();
    let live = cluster.running_ids();
    let drained = assert_all_delivered(&cluster.addrs(&live), queue, &unacked).await;
    assert_none_redelivered(queue, &drained, &load.acked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bits_flipped_in_the_database_file_are_found_never_served() {
    // From the newest records (near the end of a young file) backwards.
    damage_until_hit("flipped", &[0.97, 0.9, 0.75, 0.5, 0.25], |file, len, at| {
        flip_bytes(file, (len as f64 * at) as usize, 4)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_file_cut_short_is_found_never_served() {
    damage_until_hit("cut", &[0.97, 0.9, 0.75, 0.5], |file, len, keep| {
        std::fs::OpenOptions::new()
            .write(true)
            .open(file)
            .expect("sled's file")
            .set_len((len as f64 * keep) as u64)
            .expect("cut it short");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_replica_is_listed_and_kept_out_until_a_leader_can_let_it_go() {
    let mut cluster = Cluster::start_with(3, &["--snapshot-every", "40"]).await;
    let client = cluster.connect(&[1, 2, 3]).await;
    let info = client
        .create_queue("waits", QueueOptions::default())
        .await
        .expect("create");
    client
        .create_queue("healthy", QueueOptions::default())
        .await
        .expect("create");
    let producer = BackgroundProducer::start(&client, "waits", "w");
    let data_dir = cluster.node(DAMAGED).data_dir.clone();
    wait_for_snapshot(&data_dir, info.group_id).await;
    let (confirmed, _) = producer.stop().await;
    let healthy: Vec<Bytes> = (0..20).map(|i| Bytes::from(format!("h{i}"))).collect();
    client
        .producer("healthy")
        .send_batch(healthy.clone())
        .await
        .expect("publish to the healthy queue");
    drop(client);

    // The whole cluster down; node 3's snapshot of "waits" damaged; node 3
    // alone back: nobody can let its damaged replica go.
    cluster.kill_all();
    for file in snapshot_files(&data_dir, info.group_id) {
        let len = std::fs::metadata(&file).expect("snapshot").len() as usize;
        flip_bytes(&file, len / 3, 3);
    }
    cluster.start_all_but(&[1, 2]);
    wait_for_log(
        &cluster,
        DAMAGED,
        "damaged replica:",
        Duration::from_secs(30),
    )
    .await;
    let status = wait_status(
        &cluster,
        DAMAGED,
        "node 3 lists its damaged replica",
        Duration::from_secs(20),
        |s| {
            s.nodes
                .iter()
                .any(|n| n.id == DAMAGED && n.damaged.iter().any(|d| d.queue == "waits"))
        },
    )
    .await;
    let listed = status
        .nodes
        .iter()
        .find(|n| n.id == DAMAGED)
        .and_then(|n| n.damaged.first())
        .cloned()
        .expect("listed");
    assert_eq!(listed.state, "damaged");
    assert!(listed.reason.contains(".snap"), "{listed:?}");
    let metrics = raftq_tests::scrape::scrape(&cluster.node(DAMAGED).metrics_addr).await;
    assert_eq!(
        metrics.get("raftq_damaged_replicas"),
        Some(&1.0),
        "{metrics:?}"
    );
    assert!(metrics
        .get("raftq_damaged_replicas_found_total")
        .is_some_and(|v| *v >= 1.0));
    // Still out a while later: no leader to let it go, so it never runs.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!cluster
        .node(DAMAGED)
        .log()
        .contains("no longer counts this damaged replica"));

    cluster.start_all();
    assert_rebuilt(&cluster, "waits").await;
    let log = cluster.node(DAMAGED).log();
    assert!(
        !log.lines()
            .any(|l| l.contains("damaged replica:") && l.contains("queue=healthy")),
        "only the damaged queue is touched"
    );
    let unacked: BTreeSet<Bytes> = confirmed.iter().cloned().collect();
    let drained = assert_all_delivered(&cluster.addrs(&[1, 2, 3]), "waits", &unacked).await;
    assert_none_redelivered("waits", &drained, &BTreeSet::new());
    let healthy: BTreeSet<Bytes> = healthy.into_iter().collect();
    assert_all_delivered(&cluster.addrs(&[DAMAGED]), "healthy", &healthy).await;
}

// The type configuration for opening a stopped node's log store: truncating
// never decodes an entry, so any payload type will do.
openraft::declare_raft_types!(
    Tc:
        D = String,
        R = (),
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<Tc>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A replica whose log ends below its own commit point (what a discard cut
/// short by a crash used to leave): every check of its data passes, but
/// openraft cannot read back the entries it must apply at start. That is the
/// replica's damage, named and rebuilt; the node keeps running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_openraft_cannot_read_back_at_start_is_rebuilt() {
    use openraft::storage::RaftLogStorage;

    let mut cluster = Cluster::start(3).await;
    let (group, load) = start_load(&cluster, "unread").await;
    let data_dir = cluster.node(DAMAGED).data_dir.clone();
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.kill(DAMAGED);
    {
        let mut opened = raftq_store::NodeStore::open(&data_dir);
        for _ in 0..100 {
            if opened.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            opened = raftq_store::NodeStore::open(&data_dir);
        }
        let store = opened.expect("node 3's store opens");
        let mut log = store.log_store::<Tc>(group).expect("log store");
        assert!(
            log.read_committed().await.expect("commit point").is_some(),
            "node 3 committed nothing of the queue"
        );
        // The whole log goes, as a truncation would (the ledger follows),
        // and the commit point stays.
        log.truncate(openraft::testing::log_id(0, 0, 0))
            .await
            .expect("truncate");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.restart(DAMAGED);
    let line = wait_for_damage_line(&cluster, group).await;
    assert!(
        line.contains("unread") && line.contains("reading it back at start"),
        "{line}"
    );
    assert_rebuilt(&cluster, "unread").await;
    finish_load(&cluster, "unread", load).await;
}
