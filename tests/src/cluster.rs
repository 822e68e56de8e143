//! Starting, faulting and cleaning up a cluster of real `raftqd` processes.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Path of the `raftqd` binary: `RAFTQD_BIN`, else the newest of the workspace's
/// debug and release builds. Tests do not build it: `scripts/test.sh` does.
pub fn raftqd_bin() -> PathBuf {
    if let Ok(p) = std::env::var("RAFTQD_BIN") {
        return PathBuf::from(p);
    }
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    let candidates = [target.join("debug/raftqd"), target.join("release/raftqd")];
    candidates
        .iter()
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p.clone())))
        .max()
        .map(|(_, p)| p)
        .unwrap_or_else(|| {
            panic!("raftqd is not built: run `cargo build --bins` (scripts/test.sh does) or set RAFTQD_BIN")
        })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port on 127.0.0.1")
}

pub struct NodeProc {
    pub id: u64,
    pub addr: String,
    /// Prometheus endpoint (`--metrics-listen`).
    pub metrics_addr: String,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    child: Option<Child>,
    stopped: bool,
}

impl NodeProc {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

pub struct Cluster {
    pub nodes: Vec<NodeProc>,
    initial_cluster: String,
    extra_args: Vec<String>,
    _root: tempfile::TempDir,
}

/// Signals one of our own children by pid (never by name).
fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
    if rc != 0 {
        eprintln!(
            "kill({pid}, {sig}) failed: {}",
            std::io::Error::last_os_error()
        );
    }
}

impl Cluster {
    /// Starts `n` nodes and waits until the metadata group has a leader.
    pub async fn start(n: usize) -> Cluster {
        Self::start_with(n, &[]).await
    }

    pub async fn start_with(n: usize, extra_args: &[&str]) -> Cluster {
        let root = tempfile::Builder::new()
            .prefix("raftq-test-")
            .tempdir()
            .expect("temp dir for the cluster");
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let initial_cluster = ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{}=127.0.0.1:{p}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let nodes = ports
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let id = i as u64 + 1;
                let data_dir = root.path().join(format!("node{id}"));
                NodeProc {
                    id,
                    addr: format!("127.0.0.1:{p}"),
                    metrics_addr: format!("127.0.0.1:{}", free_port()),
                    log_path: root.path().join(format!("node{id}.log")),
                    data_dir,
                    child: None,
                    stopped: false,
                }
            })
            .collect();
        let mut cluster = Cluster {
            nodes,
            initial_cluster,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            _root: root,
        };
        for id in 1..=n as u64 {
            cluster.spawn(id);
        }
        cluster.wait_ready(Duration::from_secs(30)).await;
        cluster
    }

    pub fn node(&self, id: u64) -> &NodeProc {
        &self.nodes[(id - 1) as usize]
    }

    pub fn addr(&self, id: u64) -> String {
        self.node(id).addr.clone()
    }

    pub fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    pub fn running_ids(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|n| n.is_running() && !n.stopped)
            .map(|n| n.id)
            .collect()
    }

    fn spawn(&mut self, id: u64) {
        let bin = raftqd_bin();
        let initial = self.initial_cluster.clone();
        let extra = self.extra_args.clone();
        let node = &mut self.nodes[(id - 1) as usize];
        assert!(node.child.is_none(), "node {id} is already running");
        let log = File::options()
            .create(true)
            .append(true)
            .open(&node.log_path)
            .expect("open node log");
        let child = Command::new(&bin)
            .arg("--id")
            .arg(id.to_string())
            .arg("--data-dir")
            .arg(&node.data_dir)
            .arg("--listen")
            .arg(&node.addr)
            .arg("--initial-cluster")
            .arg(&initial)
            .arg("--metrics-listen")
            .arg(&node.metrics_addr)
            .args(&extra)
            .env(
                "RUST_LOG",
                std::env::var("RAFTQ_TEST_LOG").unwrap_or_else(|_| "info,openraft=error".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        node.child = Some(child);
        node.stopped = false;
    }

    /// SIGKILL: the process dies at once, its disk state stays.
    pub fn kill(&mut self, id: u64) {
        let node = &mut self.nodes[(id - 1) as usize];
        if let Some(mut child) = node.child.take() {
            signal(child.id(), libc::SIGKILL);
            let _ = child.wait();
        }
        node.stopped = false;
    }

    /// SIGTERM (graceful shutdown), waiting up to `timeout` for the exit before
    /// falling back to SIGKILL. Returns how long the node took to exit.
    pub fn terminate(&mut self, id: u64, timeout: Duration) -> Duration {
        let started = Instant::now();
        let node = &mut self.nodes[(id - 1) as usize];
        if let Some(mut child) = node.child.take() {
            signal(child.id(), libc::SIGTERM);
            while started.elapsed() < timeout {
                if let Ok(Some(_)) = child.try_wait() {
                    return started.elapsed();
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            eprintln!("node {id} ignored SIGTERM for {timeout:?}: SIGKILL");
            signal(child.id(), libc::SIGKILL);
            let _ = child.wait();
        }
        started.elapsed()
    }

    /// SIGSTOP: the process hangs with its sockets open (no FIN, no RST).
    pub fn pause(&mut self, id: u64) {
        let node = &mut self.nodes[(id - 1) as usize];
        if let Some(pid) = node.pid() {
            signal(pid, libc::SIGSTOP);
            node.stopped = true;
        }
    }

    pub fn resume(&mut self, id: u64) {
        let node = &mut self.nodes[(id - 1) as usize];
        if let Some(pid) = node.pid() {
            signal(pid, libc::SIGCONT);
            node.stopped = false;
        }
    }

    /// Starts a killed node again on the same data dir and port.
    pub fn restart(&mut self, id: u64) {
        self.kill(id);
        self.spawn(id);
    }

    pub fn kill_all(&mut self) {
        for id in self.ids() {
            self.kill(id);
        }
    }

    pub fn start_all(&mut self) {
        for id in self.ids() {
            if !self.node(id).is_running() {
                self.spawn(id);
            }
        }
    }

    /// Waits until some running node reports a metadata leader.
    pub async fn wait_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            for id in self.running_ids() {
                if let Ok(status) = crate::client::cluster_status(&self.addr(id)).await {
                    if status.metadata_leader != 0 {
                        return;
                    }
                }
            }
            if Instant::now() > deadline {
                self.dump_logs();
                panic!("cluster not ready after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Prints the end of every node's log (used when a test fails).
    pub fn dump_logs(&self) {
        for node in &self.nodes {
            eprintln!(
                "----- node {} log ({}) -----",
                node.id,
                node.log_path.display()
            );
            eprintln!("{}", tail(&node.log_path, 6000));
        }
    }
}

fn tail(path: &Path, bytes: u64) -> String {
    let Ok(mut f) = File::open(path) else {
        return "(no log)".into();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(bytes)));
    let mut s = String::new();
    let _ = f.read_to_string(&mut s);
    s
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs();
        }
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                // A stopped process cannot die until continued.
                signal(child.id(), libc::SIGCONT);
                signal(child.id(), libc::SIGKILL);
                let _ = child.wait();
            }
        }
    }
}
