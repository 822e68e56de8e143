//! The raftqd processes of a run: started (inside their namespaces when there
//! are any), signalled only by their own pids, killed and reaped on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::Context as _;

use crate::net::Net;

pub struct Node {
    pub id: u64,
    pub addr: String,
    ns: Option<String>,
    data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    paused: bool,
}

pub struct Cluster {
    pub nodes: Vec<Node>,
    raftqd: PathBuf,
    initial: String,
}

impl Cluster {
    /// Addresses: in namespaces `10.77.x.(10+i):7000`; else 127.0.0.1 ports
    /// `base + i`.
    pub fn new(n: usize, net: Option<&Net>, base_port: u16, dir: &Path, raftqd: PathBuf) -> Self {
        let nodes: Vec<Node> = (1..=n)
            .map(|i| {
                let (addr, ns) = match net {
                    Some(net) => (format!("{}:7000", net.addr(i)), Some(net.node_ns(i))),
                    None => (format!("127.0.0.1:{}", base_port + i as u16), None),
                };
                Node {
                    id: i as u64,
                    addr,
                    ns,
                    data_dir: dir.join(format!("node{i}")),
                    log: dir.join(format!("node{i}.log")),
                    child: None,
                    paused: false,
                }
            })
            .collect();
        let initial = nodes
            .iter()
            .map(|n| format!("{}={}", n.id, n.addr))
            .collect::<Vec<_>>()
            .join(",");
        Self {
            nodes,
            raftqd,
            initial,
        }
    }

    pub fn addrs(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.addr.clone()).collect()
    }

    fn node_mut(&mut self, id: u64) -> anyhow::Result<&mut Node> {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .with_context(|| format!("no node {id}"))
    }

    pub fn start(&mut self, id: u64) -> anyhow::Result<()> {
        let raftqd = self.raftqd.clone();
        let initial = self.initial.clone();
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
            .arg(&node.data_dir)
            .arg("--initial-cluster")
            .arg(&initial)
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
