//! Whether one group's data on this node can still be trusted, checked before
//! the group's Raft starts: every stored value it starts from must pass its
//! checksum, and the log and vote must reach as far as the durability ledger
//! saw them flushed. A group that fails must not vote or acknowledge: it may
//! have lost entries a majority counted on.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use openraft::{LogId, Vote};

use crate::checksum::{decode_sealed, verify};
use crate::codec::key_index;
use crate::log_store::{PURGED_KEY, VOTE_KEY};
use crate::node_store::NodeStore;
use crate::trees::tree_name;

/// What is wrong with one group's replica on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub group: u64,
    /// What was found, in words an operator can act on.
    pub what: String,
    /// The file that holds the damaged data.
    pub file: PathBuf,
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "group {}: {} (in {})",
            self.group,
            self.what,
            self.file.display()
        )
    }
}

impl NodeStore {
    /// Checks `group`'s stored log, vote and snapshot record.
    pub fn inspect_group(&self, group: u64) -> Result<(), Damage> {
        let damage = |what: String| Damage {
            group,
            what,
            file: self.db_path(),
        };
        // sled panics on some damaged pages rather than returning an error.
        match catch_unwind(AssertUnwindSafe(|| self.inspect_unguarded(group))) {
            Ok(result) => result.map_err(damage),
            Err(panic) => Err(damage(format!(
                "the database failed reading it: {}",
                crate::node_store::panic_text(&panic)
            ))),
        }
    }

    fn inspect_unguarded(&self, group: u64) -> Result<(), String> {
        let meta = self.open_tree(&tree_name(group, "meta"))?;
        let log = self.open_tree(&tree_name(group, "log"))?;
        let snapshot = self.open_tree(&tree_name(group, "snapshot"))?;
        let vote: Option<Vote<u64>> = read_sealed(&meta, VOTE_KEY, "vote")?;
        let purged: Option<LogId<u64>> = read_sealed(&meta, PURGED_KEY, "purge point")?;
        // Every entry, not just the ends: sled can drop records from the
        // middle of its log too, and a hole reads as a shorter log.
        let mut last_in_log: Option<u64> = None;
        for item in log.iter() {
            let (key, bytes) = item.map_err(|e| format!("reading its log: {e}"))?;
            let index = key_index(&key).ok_or("its log has a malformed key")?;
            verify(&bytes).map_err(|e| format!("log entry {index} is unreadable: {e}"))?;
            if let Some(prev) = last_in_log {
                if index != prev + 1 {
                    return Err(format!(
                        "its log jumps from index {prev} to {index}: entries are missing"
                    ));
                }
            }
            last_in_log = Some(index);
        }
        if let Some(bytes) = snapshot
            .get(crate::snapshot_store::CURRENT_KEY)
            .map_err(|e| format!("reading its snapshot record: {e}"))?
        {
            verify(&bytes).map_err(|e| format!("its snapshot record is unreadable: {e}"))?;
        }
        let Some(mark) = self.ledger().found(group) else {
            return Ok(());
        };
        let reaches = last_in_log.unwrap_or(0).max(purged.map_or(0, |p| p.index));
        if reaches < mark.last_index {
            return Err(format!(
                "its log ends at index {reaches} but this node had made index {} durable: \
                 the database lost entries this replica may have acknowledged",
                mark.last_index
            ));
        }
        let term = vote.map_or(0, |v| v.leader_id().term);
        if term < mark.vote_term {
            return Err(format!(
                "its vote is for term {term} but this node had voted in term {}: \
                 the database lost a vote",
                mark.vote_term
            ));
        }
        Ok(())
    }
}

fn read_sealed<T: serde::de::DeserializeOwned>(
    tree: &sled::Tree,
    key: &[u8],
    what: &str,
) -> Result<Option<T>, String> {
    match tree
        .get(key)
        .map_err(|e| format!("reading its {what}: {e}"))?
    {
        None => Ok(None),
        Some(bytes) => decode_sealed(&bytes)
            .map(Some)
            .map_err(|e| format!("its {what} is unreadable: {e}")),
    }
}
