//! The fault schedule: seeded, so a run can be replayed. Each fault is made,
//! held for a while, healed, and then the cluster gets time to recover
//! before the next one.

use std::time::Duration;

use raftq_client::{Client, ClientOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::cluster::Cluster;
use crate::membership_faults;
use crate::net::Net;
use crate::power::PowerDisk;
use crate::storage_faults;
use crate::workload::Recorder;
use raftq_chaos::history::Event;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    KillLeader,
    KillNode,
    PauseLeader,
    IsolateLeader,
    Split,
    Bridge,
    RestartAll,
    ReplaceNode,
    CycleNode,
    MoveReplica,
    MoveLeader,
    CorruptNode,
    PowerCutNode,
    PowerCutLeader,
    PowerCutAll,
}

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::KillLeader => "kill-leader",
            Fault::KillNode => "kill-node",
            Fault::PauseLeader => "pause-leader",
            Fault::IsolateLeader => "isolate-leader",
            Fault::Split => "split",
            Fault::Bridge => "bridge",
            Fault::RestartAll => "restart-all",
            Fault::ReplaceNode => "replace-node",
            Fault::CycleNode => "cycle-node",
            Fault::MoveReplica => "move-replica",
            Fault::MoveLeader => "move-leader",
            Fault::CorruptNode => "corrupt-node",
            Fault::PowerCutNode => "power-cut-node",
            Fault::PowerCutLeader => "power-cut-leader",
            Fault::PowerCutAll => "power-cut-all",
        }
    }
}

/// The soak's mix: per 1,000 leader kills about 240 pauses, 260 partitions
/// and 90 whole-cluster restarts, so a run that stops at `SOAK_MINIMUM`
/// meets every count with room to spare.
fn soak_table(partitions: bool) -> Vec<(Fault, u32)> {
    if partitions {
        vec![
            (Fault::KillLeader, 45),
            (Fault::KillNode, 2),
            (Fault::PauseLeader, 11),
            (Fault::IsolateLeader, 5),
            (Fault::Split, 4),
            (Fault::Bridge, 3),
            (Fault::RestartAll, 4),
        ]
    } else {
        vec![
            (Fault::KillLeader, 45),
            (Fault::KillNode, 2),
            (Fault::PauseLeader, 11),
            (Fault::RestartAll, 4),
        ]
    }
}

/// What one soak must reach (issue 20): fault names and how many of each;
/// a partition is any of isolate-leader, split and bridge.
pub const SOAK_MINIMUM: &[(&[&str], u32)] = &[
    (&["kill-leader"], 1000),
    (&["pause-leader"], 200),
    (&["isolate-leader", "split", "bridge"], 200),
    (&["restart-all"], 50),
];

/// Which kinds of fault a run makes besides process faults.
#[derive(Clone, Copy, Debug, Default)]
pub struct Kinds {
    pub partitions: bool,
    pub membership: bool,
    pub storage: bool,
    /// Power cuts (data dirs on the power-loss file system).
    pub power: bool,
    /// Nothing but power cuts, a third each of one node, the leader and the
    /// whole cluster.
    pub power_only: bool,
    /// The long-run mix, at a faster pace: about five leader kills to each
    /// pause and each partition (see `soak_table`).
    pub soak: bool,
}

/// Weighted choice: leader kills most often; partitions only with
/// namespaces; membership and storage faults only when asked for.
pub fn choose(rng: &mut StdRng, kinds: Kinds) -> Fault {
    let Kinds {
        partitions,
        membership,
        storage,
        power,
        power_only,
        soak,
    } = kinds;
    if power_only {
        return match rng.gen_range(0..3) {
            0 => Fault::PowerCutNode,
            1 => Fault::PowerCutLeader,
            _ => Fault::PowerCutAll,
        };
    }
    let mut table: Vec<(Fault, u32)> = if soak {
        soak_table(partitions)
    } else if partitions {
        vec![
            (Fault::KillLeader, 40),
            (Fault::KillNode, 8),
            (Fault::PauseLeader, 12),
            (Fault::IsolateLeader, 15),
            (Fault::Split, 10),
            (Fault::Bridge, 10),
            (Fault::RestartAll, 5),
        ]
    } else {
        vec![
            (Fault::KillLeader, 60),
            (Fault::KillNode, 15),
            (Fault::PauseLeader, 20),
            (Fault::RestartAll, 5),
        ]
    };
    // The soak's leader kills outweigh everything else about 45 to 1; the
    // ordinary mix gives other faults far more room.
    let scale = if soak { 1 } else { 4 };
    if membership {
        table.extend([
            (Fault::ReplaceNode, 3 * scale / 2),
            (Fault::CycleNode, 3 * scale / 2),
            (Fault::MoveReplica, 2 * scale),
            (Fault::MoveLeader, 2 * scale),
        ]);
    }
    if storage {
        table.push((Fault::CorruptNode, 2 * scale + scale / 2));
    }
    if power {
        table.extend([
            (Fault::PowerCutNode, 3 * scale / 2),
            (Fault::PowerCutLeader, 3 * scale / 2),
            (Fault::PowerCutAll, scale - scale / 4),
        ]);
    }
    let total: u32 = table.iter().map(|(_, w)| w).sum();
    let mut roll = rng.gen_range(0..total);
    for (f, w) in &table {
        if roll < *w {
            return *f;
        }
        roll -= w;
    }
    Fault::KillLeader
}

async fn leader_of(addrs: &[String], queue: &str) -> Option<u64> {
    let client = Client::lazy(
        addrs.to_vec(),
        crate::tls::client_options(ClientOptions {
            request_timeout: Duration::from_millis(500),
            retry_deadline: Duration::from_secs(3),
            ..Default::default()
        }),
    )
    .ok()?;
    let info = client.get_queue(queue).await.ok()?;
    (info.leader_id != 0).then_some(info.leader_id)
}

pub struct Nemesis {
    pub rng: StdRng,
    pub queues: Vec<String>,
    pub kinds: Kinds,
    pub counts: std::collections::BTreeMap<&'static str, u32>,
    /// Nodes that would not start after a power cut: with every
    /// acknowledged write fsynced, there must be none.
    pub power_refusals: Vec<String>,
    /// Nodes given a corrupt-node fault, with where their log stood then:
    /// one may stop later on damage sled finds only when it reads it.
    pub damaged: std::collections::BTreeMap<u64, Damaged>,
}

/// A node a corrupt-node fault hit, until it is replaced or has run on
/// long enough that whatever was hit has been found.
#[derive(Clone, Copy, Debug)]
pub struct Damaged {
    /// Its log's length when it was hit: what it logged since is the damage's.
    pub log_from: u64,
    pub at: std::time::Instant,
}

/// How long a node hit by a corrupt-node fault may still stop of it: it
/// checks every replica at start and stops at once on damage to sled's own
/// pages, so by then it has.
const DAMAGE_SETTLES: Duration = Duration::from_secs(60);

impl Nemesis {
    /// `kinds.partitions` is decided per strike by whether a network is given.
    pub fn new(seed: u64, queues: Vec<String>, kinds: Kinds) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            queues,
            kinds,
            counts: Default::default(),
            power_refusals: Vec::new(),
            damaged: Default::default(),
        }
    }

    /// Whether the soak's counts are all reached, and each fault kind asked
    /// for (storage, power) has happened at least once.
    pub fn soak_minimum_met(&self) -> bool {
        let count = |names: &[&str]| -> u32 {
            names
                .iter()
                .map(|n| self.counts.get(n).copied().unwrap_or(0))
                .sum()
        };
        let mut wanted: Vec<(&[&str], u32)> = SOAK_MINIMUM.to_vec();
        if self.kinds.storage {
            wanted.push((&["corrupt-node"], 1));
        }
        if self.kinds.power {
            wanted.extend([
                (&["power-cut-all"][..], 1),
                (&["power-cut-node", "power-cut-leader"][..], 1),
            ]);
        }
        wanted.iter().all(|(names, min)| count(names) >= *min)
    }

    /// Makes one fault, holds it, heals it, and records it.
    pub async fn strike(
        &mut self,
        cluster: &mut Cluster,
        net: Option<&Net>,
        power: Option<&PowerDisk>,
        rec: &Recorder,
    ) -> anyhow::Result<()> {
        let kinds = Kinds {
            partitions: net.is_some(),
            power: power.is_some() && self.kinds.power,
            power_only: power.is_some() && self.kinds.power_only,
            ..self.kinds
        };
        self.replace_damaged_that_stopped(cluster, rec).await?;
        let mut fault = choose(&mut self.rng, kinds);
        // A node a corrupt-node fault hit may still stop for good: losing
        // another one meanwhile (a dead disk, more damage) could take a
        // majority of a group's replicas, which no Raft survives.
        while !self.damaged.is_empty() && matches!(fault, Fault::ReplaceNode | Fault::CorruptNode) {
            fault = choose(&mut self.rng, kinds);
        }
        let queue = self.queues[self.rng.gen_range(0..self.queues.len())].clone();
        let ids = cluster.ids();
        let n = ids.len();
        let hold = if self.kinds.soak {
            Duration::from_millis(self.rng.gen_range(400..1000))
        } else {
            Duration::from_millis(self.rng.gen_range(1500..3500))
        };
        let leader = leader_of(&cluster.addrs(), &queue).await;
        let t = rec.now();
        let target_queue = matches!(
            fault,
            Fault::KillLeader
                | Fault::PowerCutLeader
                | Fault::PauseLeader
                | Fault::IsolateLeader
                | Fault::MoveReplica
                | Fault::MoveLeader
        )
        .then(|| queue.clone());
        let detail = match (fault, leader) {
            (
                Fault::KillLeader
                | Fault::PowerCutLeader
                | Fault::PauseLeader
                | Fault::IsolateLeader,
                None,
            ) => {
                // No leader known right now: nothing to aim at; try later.
                tokio::time::sleep(Duration::from_millis(500)).await;
                return Ok(());
            }
            (Fault::KillLeader, Some(l)) => {
                cluster.kill(l)?;
                tokio::time::sleep(hold).await;
                cluster.start(l)?;
                format!("SIGKILL node {l} (leader of {queue}), restarted after {hold:?}")
            }
            (Fault::KillNode, _) => {
                let victim = ids[self.rng.gen_range(0..n)];
                cluster.kill(victim)?;
                tokio::time::sleep(hold).await;
                cluster.start(victim)?;
                format!("SIGKILL node {victim}, restarted after {hold:?}")
            }
            (Fault::PauseLeader, Some(l)) => {
                cluster.pause(l)?;
                tokio::time::sleep(hold).await;
                cluster.resume(l)?;
                format!("SIGSTOP node {l} (leader of {queue}) for {hold:?}")
            }
            (Fault::IsolateLeader, Some(l)) => {
                let net = net.ok_or_else(|| anyhow::anyhow!("partition without namespaces"))?;
                for other in ids.iter().filter(|i| **i != l) {
                    net.cut(cluster.slot_of(l)?, cluster.slot_of(*other)?)?;
                }
                tokio::time::sleep(hold).await;
                net.heal()?;
                format!("isolated node {l} (leader of {queue}) for {hold:?}")
            }
            (Fault::Split, _) => {
                let net = net.ok_or_else(|| anyhow::anyhow!("partition without namespaces"))?;
                let minority = (n - 1) / 2;
                let mut shuffled = ids.clone();
                for i in (1..shuffled.len()).rev() {
                    shuffled.swap(i, self.rng.gen_range(0..=i));
                }
                let (small, big) = shuffled.split_at(minority);
                for a in small {
                    for b in big {
                        net.cut(cluster.slot_of(*a)?, cluster.slot_of(*b)?)?;
                    }
                }
                tokio::time::sleep(hold).await;
                net.heal()?;
                format!("split {small:?} | {big:?} for {hold:?}")
            }
            (Fault::Bridge, _) => {
                let net = net.ok_or_else(|| anyhow::anyhow!("partition without namespaces"))?;
                // One node sees both sides; the sides do not see each other.
                let bridge = ids[self.rng.gen_range(0..n)];
                let rest: Vec<u64> = ids.iter().copied().filter(|i| *i != bridge).collect();
                let (left, right) = rest.split_at(rest.len() / 2);
                for a in left {
                    for b in right {
                        net.cut(cluster.slot_of(*a)?, cluster.slot_of(*b)?)?;
                    }
                }
                tokio::time::sleep(hold).await;
                net.heal()?;
                format!("bridge {bridge} between {left:?} and {right:?} for {hold:?}")
            }
            (Fault::RestartAll, _) => {
                for id in &ids {
                    cluster.kill(*id)?;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                cluster.start_all()?;
                "SIGKILL every node, then start them all".to_string()
            }
            (Fault::ReplaceNode | Fault::CycleNode | Fault::CorruptNode, _)
                if !membership_faults::settled(cluster).await? =>
            {
                anyhow::bail!("the queues' replicas did not settle: no node lost for good now")
            }
            (Fault::ReplaceNode, _) => {
                membership_faults::replace_node(cluster, &mut self.rng).await?
            }
            (Fault::CycleNode, _) => membership_faults::cycle_node(cluster, &mut self.rng).await?,
            (Fault::MoveReplica, _) => {
                membership_faults::move_replica(cluster, &queue, &mut self.rng).await?
            }
            (Fault::MoveLeader, _) => {
                membership_faults::move_leader(cluster, &queue, &mut self.rng).await?
            }
            (Fault::CorruptNode, _) => {
                let victim = ids[self.rng.gen_range(0..n)];
                self.damaged.insert(
                    victim,
                    Damaged {
                        log_from: cluster.log_len(victim)?,
                        at: std::time::Instant::now(),
                    },
                );
                storage_faults::corrupt_node(cluster, &mut self.rng, victim).await?
            }
            (Fault::PowerCutLeader, Some(l)) => {
                let disk =
                    power.ok_or_else(|| anyhow::anyhow!("power cut without the file system"))?;
                let lost = self.power_cut(cluster, disk, &[l], hold).await?;
                format!("power cut to node {l} (leader of {queue}): {lost}; back after {hold:?}")
            }
            (Fault::PowerCutNode, _) => {
                let disk =
                    power.ok_or_else(|| anyhow::anyhow!("power cut without the file system"))?;
                // A minority: one node of three, one or two of five.
                let count = self.rng.gen_range(1..=(n - 1) / 2);
                let mut victims = ids.clone();
                for i in (1..victims.len()).rev() {
                    victims.swap(i, self.rng.gen_range(0..=i));
                }
                victims.truncate(count);
                let lost = self.power_cut(cluster, disk, &victims, hold).await?;
                format!("power cut to nodes {victims:?}: {lost}; back after {hold:?}")
            }
            (Fault::PowerCutAll, _) => {
                let disk =
                    power.ok_or_else(|| anyhow::anyhow!("power cut without the file system"))?;
                let lost = self
                    .power_cut(cluster, disk, &ids, Duration::from_millis(500))
                    .await?;
                format!("power cut to every node: {lost}")
            }
        };
        let end = rec.now();
        *self.counts.entry(fault.name()).or_default() += 1;
        eprintln!("[{:>7.1}s] {}: {detail}", t as f64 / 1000.0, fault.name());
        rec.record(Event::Fault {
            t,
            end,
            kind: fault.name().into(),
            detail,
            queue: target_queue,
        });
        Ok(())
    }

    /// Replaces each node damaged by a corrupt-node fault that has since
    /// stopped with the replacement steps (recorded as a fault of its own).
    async fn replace_damaged_that_stopped(
        &mut self,
        cluster: &mut Cluster,
        rec: &Recorder,
    ) -> anyhow::Result<()> {
        let damaged: Vec<(u64, Damaged)> = self.damaged.iter().map(|(i, d)| (*i, *d)).collect();
        for (id, hit) in damaged {
            if !cluster.ids().contains(&id) {
                self.damaged.remove(&id);
                continue;
            }
            let t = rec.now();
            let replaced = storage_faults::replace_if_refused(cluster, id, hit.log_from).await?;
            if replaced.is_none() && hit.at.elapsed() > DAMAGE_SETTLES && !cluster.exited(id)? {
                self.damaged.remove(&id);
            }
            if let Some(detail) = replaced {
                self.damaged.remove(&id);
                *self.counts.entry("replace-damaged").or_default() += 1;
                eprintln!("[{:>7.1}s] replace-damaged: {detail}", t as f64 / 1000.0);
                rec.record(Event::Fault {
                    t,
                    end: rec.now(),
                    kind: "replace-damaged".into(),
                    detail,
                    queue: None,
                });
            }
        }
        Ok(())
    }

    /// SIGKILL `victims`, drop their unsynced writes, start them again after
    /// `hold`, and check that each comes back (a refusal is recorded).
    async fn power_cut(
        &mut self,
        cluster: &mut Cluster,
        disk: &PowerDisk,
        victims: &[u64],
        hold: Duration,
    ) -> anyhow::Result<String> {
        for id in victims {
            cluster.kill(*id)?;
        }
        let mut lost = Vec::new();
        if victims.len() == cluster.ids().len() {
            lost.push(disk.cut("")?);
        } else {
            for id in victims {
                let dir = cluster.data_dir(*id)?;
                let name = dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                lost.push(disk.cut(&name)?);
            }
        }
        tokio::time::sleep(hold).await;
        let seen: Vec<u64> = victims
            .iter()
            .map(|id| cluster.log_len(*id))
            .collect::<anyhow::Result<_>>()?;
        for id in victims {
            cluster.start(*id)?;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        for (id, from) in victims.iter().zip(seen) {
            if self.damaged.contains_key(id) && cluster.exited(*id)? {
                // Its refusal is the earlier corrupt-node fault's doing.
                let log = cluster.log_since(*id, from)?;
                if log.contains("cannot trust its data") {
                    let new = crate::membership_faults::replace_in_its_slot(cluster, *id).await?;
                    self.damaged.remove(id);
                    eprintln!(
                        "node {id}, damaged by an earlier corrupt-node fault, refused to start \
                         after the power cut: replaced by node {new}"
                    );
                    continue;
                }
                cluster.start(*id)?;
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            if cluster.exited(*id)? {
                let log = cluster.log_since(*id, from)?;
                let why = log
                    .lines()
                    .rev()
                    .find(|l| l.contains("raftqd:") || l.contains("ERROR"))
                    .unwrap_or("no reason logged")
                    .to_string();
                eprintln!("node {id} would not start after a power cut: {why}");
                self.power_refusals.push(format!("node {id}: {why}"));
                cluster.start(*id)?;
            }
        }
        Ok(lost.join(", "))
    }
}
