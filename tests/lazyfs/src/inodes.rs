//! FUSE inode numbers and the backing paths they stand for.
//!
//! Numbers are ours, not the backing file system's, because FUSE reserves 1
//! for the root; each backing inode (device, inode) gets one number for as
//! long as the kernel remembers it, so every path to a file reaches the same
//! unsynced data.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A backing inode: what unsynced data belongs to.
pub type Key = (u64, u64);

pub const ROOT: u64 = 1;

#[derive(Debug)]
struct Node {
    /// Relative to the backing root; empty for the root.
    path: PathBuf,
    key: Key,
    /// Lookups the kernel has not forgotten yet.
    lookups: u64,
}

#[derive(Debug)]
pub struct Inodes {
    nodes: HashMap<u64, Node>,
    by_key: HashMap<Key, u64>,
    next: u64,
}

impl Inodes {
    pub fn new(root_key: Key) -> Inodes {
        let mut inodes = Inodes {
            nodes: HashMap::new(),
            by_key: HashMap::new(),
            next: ROOT + 1,
        };
        inodes.nodes.insert(
            ROOT,
            Node {
                path: PathBuf::new(),
                key: root_key,
                lookups: 1,
            },
        );
        inodes.by_key.insert(root_key, ROOT);
        inodes
    }

    pub fn path(&self, ino: u64) -> Option<&Path> {
        self.nodes.get(&ino).map(|n| n.path.as_path())
    }

    pub fn key(&self, ino: u64) -> Option<Key> {
        self.nodes.get(&ino).map(|n| n.key)
    }

    /// Records one kernel lookup of `key` found at `path`; returns its number.
    pub fn looked_up(&mut self, key: Key, path: PathBuf) -> u64 {
        if let Some(&ino) = self.by_key.get(&key) {
            if let Some(node) = self.nodes.get_mut(&ino) {
                node.lookups += 1;
                // The latest path wins: a hard link or a rename done behind
                // our back leaves the old one stale.
                node.path = path;
                return ino;
            }
        }
        let ino = self.next;
        self.next += 1;
        self.nodes.insert(
            ino,
            Node {
                path,
                key,
                lookups: 1,
            },
        );
        self.by_key.insert(key, ino);
        ino
    }

    pub fn forget(&mut self, ino: u64, n: u64) {
        if ino == ROOT {
            return;
        }
        let Some(node) = self.nodes.get_mut(&ino) else {
            return;
        };
        node.lookups = node.lookups.saturating_sub(n);
        if node.lookups == 0 {
            let key = node.key;
            self.nodes.remove(&ino);
            if self.by_key.get(&key) == Some(&ino) {
                self.by_key.remove(&key);
            }
        }
    }

    /// Moves `from` and everything below it to `to`.
    pub fn renamed(&mut self, from: &Path, to: &Path) {
        for node in self.nodes.values_mut() {
            if let Some(moved) = moved_path(&node.path, from, to) {
                node.path = moved;
            }
        }
    }

    /// `from` and `to` traded places (RENAME_EXCHANGE).
    pub fn exchanged(&mut self, a: &Path, b: &Path) {
        for node in self.nodes.values_mut() {
            if let Some(moved) =
                moved_path(&node.path, a, b).or_else(|| moved_path(&node.path, b, a))
            {
                node.path = moved;
            }
        }
    }
}

/// Where `path` is after `from` moved to `to`, if it was at or below `from`.
pub fn moved_path(path: &Path, from: &Path, to: &Path) -> Option<PathBuf> {
    let rest = path.strip_prefix(from).ok()?;
    Some(if rest.as_os_str().is_empty() {
        to.to_path_buf()
    } else {
        to.join(rest)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rename_moves_descendants_by_whole_components() {
        let mut inodes = Inodes::new((1, 2));
        let a = inodes.looked_up((1, 10), "a".into());
        let ab = inodes.looked_up((1, 11), "a/b".into());
        let ax = inodes.looked_up((1, 12), "ax".into());
        inodes.renamed(Path::new("a"), Path::new("z/a"));
        assert_eq!(inodes.path(a), Some(Path::new("z/a")));
        assert_eq!(inodes.path(ab), Some(Path::new("z/a/b")));
        assert_eq!(inodes.path(ax), Some(Path::new("ax")));
    }

    #[test]
    fn forget_drops_a_node_after_its_last_lookup() {
        let mut inodes = Inodes::new((1, 2));
        let a = inodes.looked_up((1, 10), "a".into());
        assert_eq!(inodes.looked_up((1, 10), "a".into()), a);
        inodes.forget(a, 1);
        assert!(inodes.path(a).is_some());
        inodes.forget(a, 1);
        assert!(inodes.path(a).is_none());
        assert_ne!(inodes.looked_up((1, 10), "a".into()), a);
        inodes.forget(ROOT, 5);
        assert!(inodes.path(ROOT).is_some());
    }
}
