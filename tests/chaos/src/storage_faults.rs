//! Storage faults on one node while it is down: bits flipped in its
//! database file or in a snapshot file, or the database file cut short.
//! The node must find the damage: it rebuilds the damaged replicas from the
//! others by itself, or refuses to start with the replacement steps, which
//! this fault then carries out as an operator would (remove the node, start a
//! new id at its address).

use std::path::Path;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::Rng;

use crate::cluster::Cluster;
use crate::membership_faults::replace_in_its_slot;

/// How long a restarted node gets to say what it found.
const VERDICT_WITHIN: Duration = Duration::from_secs(20);

pub async fn corrupt_node(
    cluster: &mut Cluster,
    rng: &mut StdRng,
    victim: u64,
) -> anyhow::Result<String> {
    cluster.kill(victim)?;
    let dir = cluster.data_dir(victim)?;
    let what = damage(&dir, rng)?;
    let seen = cluster.log_len(victim)?;
    cluster.start(victim)?;
    let deadline = Instant::now() + VERDICT_WITHIN;
    loop {
        let log = cluster.log_since(victim, seen)?;
        anyhow::ensure!(
            !log.contains("panicked") && !log.contains("internal panic"),
            "node {victim} panicked on damaged data ({what})"
        );
        if cluster.exited(victim)? {
            anyhow::ensure!(
                log.contains("cannot trust its data"),
                "node {victim} exited on damaged data ({what}) without saying why"
            );
            let new = replace_in_its_slot(cluster, victim).await?;
            return Ok(format!(
                "node {victim}: {what}; it refused to start, was removed and replaced by node {new}"
            ));
        }
        if log.contains("damaged replica:") {
            let named = log.matches("damaged replica:").count();
            return Ok(format!(
                "node {victim}: {what}; {named} damaged replica(s) named, rebuilding from the others"
            ));
        }
        if Instant::now() > deadline {
            return Ok(format!(
                "node {victim}: {what}; nothing it relies on was hit"
            ));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Damages one file of a stopped node's data dir; says what it did.
fn damage(dir: &Path, rng: &mut StdRng) -> anyhow::Result<String> {
    let db = dir.join("db").join("db");
    let snapshots: Vec<_> = std::fs::read_dir(dir.join("snapshots"))
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "snap"))
                .collect()
        })
        .unwrap_or_default();
    match rng.gen_range(0..3) {
        0 if !snapshots.is_empty() => {
            let file = &snapshots[rng.gen_range(0..snapshots.len())];
            let at = flip(file, rng)?;
            Ok(format!(
                "4 bytes flipped at {at} in snapshot {}",
                name(file)
            ))
        }
        1 => {
            let len = std::fs::metadata(&db)?.len();
            let keep = (len as f64 * rng.gen_range(0.5..0.99)) as u64;
            std::fs::OpenOptions::new()
                .write(true)
                .open(&db)?
                .set_len(keep)?;
            Ok(format!("database file cut from {len} to {keep} bytes"))
        }
        _ => {
            let at = flip(&db, rng)?;
            Ok(format!("4 bytes flipped at {at} in the database file"))
        }
    }
}

fn flip(file: &Path, rng: &mut StdRng) -> anyhow::Result<usize> {
    let mut content = std::fs::read(file)?;
    anyhow::ensure!(!content.is_empty(), "{} is empty", file.display());
    let at = rng.gen_range(0..content.len());
    for i in 0..4 {
        let j = (at + i * 61) % content.len();
        content[j] ^= 1 << rng.gen_range(0..8);
    }
    std::fs::write(file, content)?;
    Ok(at)
}

fn name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A node damaged by a corrupt-node fault that stopped later on its own,
/// refusing with the replacement steps (sled finds some damage only when it
/// reads the page, long after the start): replaced in its slot, as an
/// operator would. Returns what was done.
pub async fn replace_if_refused(
    cluster: &mut Cluster,
    id: u64,
    log_from: u64,
) -> anyhow::Result<Option<String>> {
    if !cluster.ids().contains(&id) || !cluster.exited(id)? {
        return Ok(None);
    }
    let log = cluster.log_since(id, log_from)?;
    if !log.contains("cannot trust its data") {
        // Something else stopped it: start it again and let the run judge.
        cluster.start(id)?;
        return Ok(None);
    }
    let new = replace_in_its_slot(cluster, id).await?;
    Ok(Some(format!(
        "node {id}, damaged by an earlier corrupt-node fault, stopped and refused to start \
         again: replaced by node {new}"
    )))
}
