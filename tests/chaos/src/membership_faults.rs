//! Membership faults, made the way an operator would, under load: a node's
//! disk dies and the node is replaced under a new id at the same address; a
//! node joins and another leaves; a queue's replica moves; a leader moves.
//! Each waits until the cluster has carried the change out (bounded).

use std::time::{Duration, Instant};

use raftq_client::{Client, ClientOptions, ReplicaChange};
use raftq_proto::v1::NodeRole;
use rand::rngs::StdRng;
use rand::Rng;

use crate::cluster::Cluster;

/// Longest wait for a node to become a voter or a queue's move to finish.
const SETTLE: Duration = Duration::from_secs(120);

pub fn admin_client(cluster: &Cluster) -> anyhow::Result<Client> {
    Ok(Client::lazy(
        cluster.slot_addrs(),
        crate::tls::client_options(ClientOptions {
            // remove-node waits for the replicas to move off the node.
            request_timeout: Duration::from_secs(150),
            retry_deadline: Duration::from_secs(180),
            ..Default::default()
        }),
    )?)
}

/// SIGKILL a node, wipe its data dir, remove it, and start a new node id in
/// its slot (same address) with `--join`: the replace-a-node runbook.
pub async fn replace_node(cluster: &mut Cluster, rng: &mut StdRng) -> anyhow::Result<String> {
    let ids = cluster.ids();
    let victim = ids[rng.gen_range(0..ids.len())];
    let new = replace_in_its_slot(cluster, victim).await?;
    Ok(format!(
        "node {victim} lost its disk: removed, replaced by node {new} at its address"
    ))
}

/// The runbook for a node whose data is gone: stop and wipe it, remove it,
/// start a new id at its address; returns the new id once it votes.
pub async fn replace_in_its_slot(cluster: &mut Cluster, victim: u64) -> anyhow::Result<u64> {
    let slot = cluster.slot_of(victim)?;
    cluster.retire(victim)?;
    let admin = admin_client(cluster)?;
    remove_node(&admin, victim).await?;
    let new = cluster.next_id();
    cluster.join(new, slot)?;
    wait_voter(&admin, new).await?;
    Ok(new)
}

/// `remove-node`, asked again when it gives up with replicas still moving, as
/// its answer tells an operator to (three tries at the most).
async fn remove_node(admin: &Client, id: u64) -> anyhow::Result<()> {
    let mut tries = 0;
    loop {
        tries += 1;
        match admin.remove_node(id).await {
            Ok(_) => return Ok(()),
            // Already out: an earlier removal that gave up waiting (this
            // fault's or an earlier one's) finished on the server afterwards.
            Err(raftq_client::Error::NotFound(_)) => return Ok(()),
            Err(e) if tries < 3 => eprintln!("remove-node {id} (try {tries} of 3): {e}"),
            Err(e) => return Err(e.into()),
        }
    }
}

/// A new node joins in a free slot, then a live old node is removed (and
/// stopped once out): the cluster keeps its size, one node moved.
pub async fn cycle_node(cluster: &mut Cluster, rng: &mut StdRng) -> anyhow::Result<String> {
    let Some(slot) = cluster.free_slot() else {
        anyhow::bail!("no free slot for a joining node");
    };
    let admin = admin_client(cluster)?;
    let new = cluster.next_id();
    cluster.join(new, slot)?;
    wait_voter(&admin, new).await?;
    let old: Vec<u64> = cluster.ids().into_iter().filter(|i| *i != new).collect();
    let leaving = old[rng.gen_range(0..old.len())];
    remove_node(&admin, leaving).await?;
    cluster.retire(leaving)?;
    Ok(format!(
        "node {new} joined, then live node {leaving} was removed"
    ))
}

/// Moves one replica of `queue` to a node without one (or, when every node
/// has one, shrinks the queue by one and grows it back).
pub async fn move_replica(
    cluster: &Cluster,
    queue: &str,
    rng: &mut StdRng,
) -> anyhow::Result<String> {
    let admin = admin_client(cluster)?;
    let info = admin.get_queue(queue).await?;
    let spare: Vec<u64> = cluster
        .ids()
        .into_iter()
        .filter(|n| !info.replicas.contains(n))
        .collect();
    let from = info.replicas[rng.gen_range(0..info.replicas.len())];
    if spare.is_empty() {
        let n = info.replicas.len() as u32;
        admin
            .change_replicas(queue, ReplicaChange::Count(n - 1))
            .await?;
        wait_moved(&admin, queue).await?;
        admin
            .change_replicas(queue, ReplicaChange::Count(n))
            .await?;
        wait_moved(&admin, queue).await?;
        return Ok(format!(
            "{queue} shrunk to {} replicas and grown back",
            n - 1
        ));
    }
    let to = spare[rng.gen_range(0..spare.len())];
    admin.change_replicas(queue, ReplicaChange::Add(to)).await?;
    wait_moved(&admin, queue).await?;
    admin
        .change_replicas(queue, ReplicaChange::Remove(from))
        .await?;
    wait_moved(&admin, queue).await?;
    Ok(format!(
        "{queue}'s replica moved from node {from} to node {to}"
    ))
}

/// Moves `queue`'s leader to another voter, or rebalances every leader.
pub async fn move_leader(
    cluster: &Cluster,
    queue: &str,
    rng: &mut StdRng,
) -> anyhow::Result<String> {
    let admin = admin_client(cluster)?;
    if rng.gen_ratio(1, 4) {
        let done = admin.rebalance().await?;
        return Ok(format!("rebalance: {} leaders moved", done.moves.len()));
    }
    let info = admin.get_queue(queue).await?;
    let others: Vec<u64> = info
        .voters
        .iter()
        .copied()
        .filter(|v| *v != info.leader_id)
        .collect();
    anyhow::ensure!(!others.is_empty(), "{queue} has no other voter");
    let to = others[rng.gen_range(0..others.len())];
    let moved = admin.transfer_leader(queue, Some(to)).await?;
    Ok(format!(
        "{queue}'s leader moved from node {} to node {}",
        info.leader_id, moved.leader_id
    ))
}

async fn wait_voter(admin: &Client, id: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + SETTLE;
    while Instant::now() < deadline {
        if let Ok(status) = admin.cluster_status().await {
            let voter = status
                .nodes
                .iter()
                .any(|n| n.id == id && n.up && n.role == NodeRole::Voter as i32);
            if voter {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    anyhow::bail!("node {id} not a voter within {SETTLE:?}")
}

/// Whether every queue holds as many voting replicas as it asks for, with no
/// move under way: only then may a node be lost for good (a dead disk, a
/// removal) without a group dropping to a voter pair that one more loss
/// would leave without a majority.
pub async fn settled(cluster: &Cluster) -> anyhow::Result<bool> {
    let admin = admin_client(cluster)?;
    let nodes = cluster.ids().len();
    let deadline = Instant::now() + SETTLE;
    while Instant::now() < deadline {
        if let Ok(queues) = admin.list_queues().await {
            let whole = queues.iter().all(|info| {
                let asked = info.options.as_ref().map_or(0, |o| o.replicas) as usize;
                let wanted = if asked == 0 { 3 } else { asked }.min(nodes);
                info.voters.len() >= wanted && holds_its_replicas(info)
            });
            if whole {
                return Ok(true);
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(false)
}

/// The queue's group holds exactly the replicas the catalog names, as voters.
fn holds_its_replicas(info: &raftq_proto::v1::QueueInfo) -> bool {
    let mut voters = info.voters.clone();
    voters.sort_unstable();
    voters == info.replicas && info.learners.is_empty()
}

/// Until the queue's group holds exactly the replicas the catalog names.
async fn wait_moved(admin: &Client, queue: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + SETTLE;
    while Instant::now() < deadline {
        if let Ok(info) = admin.get_queue(queue).await {
            if holds_its_replicas(&info) {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    anyhow::bail!("{queue}'s replicas did not move within {SETTLE:?}")
}
