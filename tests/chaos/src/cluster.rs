//! The raftqd processes of a run: started (inside their namespaces when there
//! are any), signalled only by their own pids, killed and reaped on drop.
//!
//! Nodes live in slots (a network namespace and an address each); a slot
//! keeps its address when membership faults replace the node in it by a new
//! node id, and spare slots take nodes that join. The [`Roster`] tells the
//! workload which node id answers at which address.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, RwLock};

use anyhow::Context as _;

use crate::net::Net;
use crate::tls::RunPki;

pub struct Node {
    pub id: u64,
    pub slot: usize,
    pub addr: String,
    ns: Option<String>,
    data_dir: PathBuf,
    log: PathBuf,
    /// `--join` addresses of a node that joined a running cluster; `None`
    /// for the nodes of the initial cluster.
    join: Option<String>,
    child: Option<Child>,
    paused: bool,
}

/// Which node id each address belongs to now.
#[derive(Clone, Default)]
pub struct Roster(Arc<RwLock<BTreeMap<String, u64>>>);

impl Roster {
    pub fn id_at(&self, addr: &str) -> Option<u64> {
        self.0.read().ok()?.get(addr).copied()
    }

    /// Member nodes and their addresses, by id.
    pub fn members(&self) -> Vec<(u64, String)> {
        let mut members: Vec<(u64, String)> = self
            .0
            .read()
            .map(|m| m.iter().map(|(a, id)| (*id, a.clone())).collect())
            .unwrap_or_default();
        members.sort();
        members
    }

    fn set(&self, addr: &str, id: Option<u64>) {
        if let Ok(mut m) = self.0.write() {
            match id {
                Some(id) => m.insert(addr.to_string(), id),
                None => m.remove(addr),
            };
        }
    }
}

/// How every node of the run is started.
pub struct Launch {
    pub raftqd: PathBuf,
    /// Flags given to every node.
    pub extra_args: Vec<String>,
    /// `None`: plaintext nodes.
    pub pki: Option<RunPki>,
    /// Where data dirs go (the power-loss file system), if not beside the logs.
    pub data_root: Option<PathBuf>,
}

pub struct Cluster {
    pub nodes: Vec<Node>,
    /// Address of every slot, members or free.
    slots: Vec<String>,
    namespaces: Vec<Option<String>>,
    dir: PathBuf,
    data_root: PathBuf,
    raftqd: PathBuf,
    initial: String,
    extra_args: Vec<String>,
    /// `None`: plaintext nodes.
    pki: Option<RunPki>,
    highest_id: u64,
    pub roster: Roster,
}

impl Cluster {
    /// `n` nodes in slots 1..=n, and `spare` free slots after them.
    /// Addresses: in namespaces `10.77.x.(10+slot):7000`; else 127.0.0.1
    /// ports `base + slot`.
    pub fn new(
        n: usize,
        spare: usize,
        net: Option<&Net>,
        base_port: u16,
        dir: &Path,
        launch: Launch,
    ) -> Self {
        let Launch {
            raftqd,
            extra_args,
            pki,
            data_root,
        } = launch;
        let (slots, namespaces): (Vec<String>, Vec<Option<String>>) = (1..=n + spare)
            .map(|i| match net {
                Some(net) => (format!("{}:7000", net.addr(i)), Some(net.node_ns(i))),
                None => (format!("127.0.0.1:{}", base_port + i as u16), None),
            })
            .unzip();
        let initial = (1..=n)
            .map(|i| format!("{i}={}", slots[i - 1]))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Self {
            nodes: Vec::new(),
            slots,
            namespaces,
            dir: dir.to_path_buf(),
            data_root: data_root.unwrap_or_else(|| dir.to_path_buf()),
            raftqd,
            initial,
            extra_args,
            pki,
            highest_id: 0,
            roster: Roster::default(),
        };
        for slot in 1..=n {
            cluster.place(slot as u64, slot, None);
        }
        cluster
    }

    fn place(&mut self, id: u64, slot: usize, join: Option<String>) {
        let addr = self.slots[slot - 1].clone();
        self.roster.set(&addr, Some(id));
        self.highest_id = self.highest_id.max(id);
        self.nodes.push(Node {
            id,
            slot,
            addr,
            ns: self.namespaces[slot - 1].clone(),
            data_dir: self.data_root.join(format!("node{id}")),
            log: self.dir.join(format!("node{id}.log")),
            join,
            child: None,
            paused: false,
        });
    }

    /// Member addresses.
    pub fn addrs(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.addr.clone()).collect()
    }

    /// Every slot's address: what clients are given, so that they reach
    /// nodes that join later too.
    pub fn slot_addrs(&self) -> Vec<String> {
        self.slots.clone()
    }

    pub fn slot_of(&self, id: u64) -> anyhow::Result<usize> {
        Ok(self.node(id)?.slot)
    }

    pub fn free_slot(&self) -> Option<usize> {
        (1..=self.slots.len()).find(|s| self.nodes.iter().all(|n| n.slot != *s))
    }

    fn node(&self, id: u64) -> anyhow::Result<&Node> {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .with_context(|| format!("no node {id}"))
    }

    fn node_mut(&mut self, id: u64) -> anyhow::Result<&mut Node> {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .with_context(|| format!("no node {id}"))
    }

    /// Starts a new node `id` with an empty data dir in `slot`, joining the
    /// running cluster through its members.
    pub fn join(&mut self, id: u64, slot: usize) -> anyhow::Result<()> {
        anyhow::ensure!(self.free_slot_is(slot), "slot {slot} is taken");
        let via = self.addrs().join(",");
        self.place(id, slot, Some(via));
        self.start(id)
    }

    fn free_slot_is(&self, slot: usize) -> bool {
        slot <= self.slots.len() && self.nodes.iter().all(|n| n.slot != slot)
    }

    /// Takes a node out for good: SIGKILL, its data dir deleted, its slot
    /// freed.
    pub fn retire(&mut self, id: u64) -> anyhow::Result<()> {
        self.kill(id)?;
        let node = self.node(id)?;
        let (addr, dir) = (node.addr.clone(), node.data_dir.clone());
        self.nodes.retain(|n| n.id != id);
        self.roster.set(&addr, None);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("wiping {}", dir.display())),
        }
    }

    /// A node id never used in this run: removed ids are never accepted again.
    pub fn next_id(&self) -> u64 {
        self.highest_id + 1
    }

    pub fn start(&mut self, id: u64) -> anyhow::Result<()> {
        let raftqd = self.raftqd.clone();
        let initial = self.initial.clone();
        let mut extra = self.extra_args.clone();
        if let Some(pki) = &self.pki {
            extra.extend(pki.node_args(id, &self.node(id)?.addr)?);
        }
        let node = self.node_mut(id)?;
        if node.child.is_some() {
            return Ok(());
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)?;
        let mut cmd = match &node.ns {
            Some(ns) => {
                // `ip netns exec` execs raftqd in place: the pid is raftqd's.
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&raftqd);
                c
            }
            None => Command::new(&raftqd),
        };
        cmd.arg("--id")
            .arg(id.to_string())
            .arg("--listen")
            .arg(&node.addr)
            .arg("--data-dir")
            .arg(&node.data_dir);
        match &node.join {
            Some(via) => cmd.arg("--join").arg(via),
            None => cmd.arg("--initial-cluster").arg(&initial),
        };
        cmd.args(&extra)
            .env("RUST_LOG", "info,openraft=off,sled=warn,h2=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        node.child = Some(cmd.spawn().context("cannot start raftqd")?);
        node.paused = false;
        Ok(())
    }

    pub fn start_all(&mut self) -> anyhow::Result<()> {
        for id in self.ids() {
            self.start(id)?;
        }
        Ok(())
    }

    pub fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    pub fn kill(&mut self, id: u64) -> anyhow::Result<()> {
        let node = self.node_mut(id)?;
        if let Some(mut child) = node.child.take() {
            let _ = child.kill(); // SIGKILL, by our own child's pid
            let _ = child.wait();
        }
        node.paused = false;
        Ok(())
    }

    fn signal(&mut self, id: u64, sig: libc::c_int) -> anyhow::Result<()> {
        let node = self.node_mut(id)?;
        let Some(child) = &node.child else {
            return Ok(());
        };
        let pid = child.id() as libc::pid_t;
        // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
        unsafe {
            libc::kill(pid, sig);
        }
        node.paused = sig == libc::SIGSTOP;
        Ok(())
    }

    pub fn data_dir(&self, id: u64) -> anyhow::Result<PathBuf> {
        Ok(self.node(id)?.data_dir.clone())
    }

    /// Whether node `id`'s process ended by itself (refused to start).
    pub fn exited(&mut self, id: u64) -> anyhow::Result<bool> {
        let node = self.node_mut(id)?;
        let Some(child) = node.child.as_mut() else {
            return Ok(false);
        };
        if child.try_wait()?.is_some() {
            node.child = None;
            return Ok(true);
        }
        Ok(false)
    }

    /// Bytes of node `id`'s log so far, to read what a later start writes.
    pub fn log_len(&self, id: u64) -> anyhow::Result<u64> {
        Ok(std::fs::metadata(&self.node(id)?.log).map_or(0, |m| m.len()))
    }

    pub fn log_since(&self, id: u64, from: u64) -> anyhow::Result<String> {
        let all = std::fs::read(&self.node(id)?.log).unwrap_or_default();
        let from = (from as usize).min(all.len());
        Ok(String::from_utf8_lossy(&all[from..]).into_owned())
    }

    pub fn pause(&mut self, id: u64) -> anyhow::Result<()> {
        self.signal(id, libc::SIGSTOP)
    }

    pub fn resume(&mut self, id: u64) -> anyhow::Result<()> {
        self.signal(id, libc::SIGCONT)
    }

    /// Every node running and not paused, as before any fault.
    pub fn heal(&mut self) -> anyhow::Result<()> {
        for id in self.ids() {
            if self.node_mut(id)?.paused {
                self.resume(id)?;
            }
            self.start(id)?;
        }
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let pid = child.id() as libc::pid_t;
                // SAFETY: our own child; SIGCONT first so a paused one can die.
                unsafe {
                    libc::kill(pid, libc::SIGCONT);
                }
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
