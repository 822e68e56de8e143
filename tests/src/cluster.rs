//! A cluster of real `raftqd` processes on 127.0.0.1: start, faults by pid,
//! readiness, cleanup that also runs when a test panics, and the RPC-level
//! helpers (leader, create, publish, consume, catch-up) every cluster test needs.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use raftq_client::{Client, ClientOptions};
use raftq_proto::v1::admin_service_client::AdminServiceClient;
use raftq_proto::v1::queue_service_client::QueueServiceClient;
use raftq_proto::v1::{ClusterStatusResponse, QueueInfo, QueueOptions, StoredMessage};
use tonic::transport::Channel;
use tonic::Code;

use crate::client;
use crate::consumer::{drain, Drained};
use crate::node::{raftqd_bin, NodeProc};
use crate::pki::TestPki;
use crate::ports::free_port;
use crate::proxy::Proxy;
use crate::publish::Producer;

/// How long helpers wait for an election before giving up: generous, because
/// two test clusters may share two cores, but bounded.
pub const ELECTION_WAIT: Duration = Duration::from_secs(15);

/// Extra flags and logging for a cluster; `Cluster::start(n)` is the default.
pub struct ClusterBuilder {
    n: usize,
    extra_args: Vec<String>,
    log_filter: Option<String>,
    proxied: bool,
    data_dirs: Vec<(u64, PathBuf)>,
    tls: bool,
    token: Option<String>,
}

impl ClusterBuilder {
    /// Every node behind a [`Proxy`]: the address peers and clients use is
    /// the proxy's (`--advertise`, `--initial-cluster`), so a test can lose
    /// what one node answers while its requests still arrive.
    /// Node `id` keeps its data in `dir` (e.g. on a small filesystem the
    /// test made) instead of the cluster's temp dir.
    pub fn data_dir(mut self, id: u64, dir: PathBuf) -> Self {
        self.data_dirs.push((id, dir));
        self
    }

    /// Every node serves TLS with a certificate of the cluster's test CA
    /// ([`Cluster::pki`]); clients then need [`Cluster::client_options`].
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// The bearer token the harness's own clients send (an admin's, for a
    /// cluster started with `--auth-file`).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    pub fn behind_proxies(mut self) -> Self {
        self.proxied = true;
        self
    }

    /// A flag passed to every node, on every start (e.g. `--snapshot-every`).
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.extra_args.extend(args.into_iter().map(Into::into));
        self
    }

    /// `RUST_LOG` for the nodes, for tests that look for a log line. Otherwise
    /// `RAFTQ_TEST_LOG` if set, else the server's own default.
    pub fn log_filter(mut self, filter: impl Into<String>) -> Self {
        self.log_filter = Some(filter.into());
        self
    }

    /// Starts every node and waits until the metadata group has a leader.
    pub async fn start(self) -> Cluster {
        let root = tempfile::Builder::new()
            .prefix("raftq-test-")
            .tempdir()
            .expect("temp dir for the cluster");
        let ports: Vec<u16> = (0..self.n).map(|_| free_port()).collect();
        let initial_cluster = ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{}=127.0.0.1:{p}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes: Vec<NodeProc> = ports
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let id = i as u64 + 1;
                let own_dir = self
                    .data_dirs
                    .iter()
                    .find(|(n, _)| *n == id)
                    .map(|(_, d)| d.clone());
                let dir = own_dir
                    .clone()
                    .unwrap_or_else(|| root.path().join(format!("node{id}")));
                let mut node = NodeProc::new(
                    id,
                    format!("127.0.0.1:{p}"),
                    format!("127.0.0.1:{}", free_port()),
                    dir,
                );
                // A data dir of the test's own (a small filesystem it fills)
                // must not also have to hold the log that tells what happened.
                if own_dir.is_some() {
                    node.log_path = root.path().join(format!("node{id}.log"));
                }
                node
            })
            .collect();
        let mut proxies = Vec::new();
        if self.proxied {
            for node in &mut nodes {
                node.listen = format!("127.0.0.1:{}", free_port());
                proxies.push(Proxy::start(node.addr.clone(), node.listen.clone()).await);
            }
        }
        let pki = self
            .tls
            .then(|| TestPki::create(&root.path().join("certs"), "raftq test CA"));
        let mut cluster = Cluster {
            pki,
            token: self.token,
            nodes,
            bin: raftqd_bin(),
            initial_cluster,
            extra_args: self.extra_args,
            log_filter: self
                .log_filter
                .or_else(|| std::env::var("RAFTQ_TEST_LOG").ok()),
            root: Some(root),
            proxies,
        };
        for id in cluster.ids() {
            cluster.spawn(id);
        }
        cluster.wait_ready(Duration::from_secs(30)).await;
        cluster
    }
}

pub struct Cluster {
    /// The test CA, when the nodes serve TLS.
    pub pki: Option<TestPki>,
    /// What the harness's clients authenticate with, if anything.
    pub token: Option<String>,
    pub nodes: Vec<NodeProc>,
    bin: PathBuf,
    initial_cluster: String,
    extra_args: Vec<String>,
    log_filter: Option<String>,
    root: Option<tempfile::TempDir>,
    proxies: Vec<Proxy>,
}

impl Cluster {
    pub fn builder(n: usize) -> ClusterBuilder {
        ClusterBuilder {
            n,
            extra_args: Vec::new(),
            log_filter: None,
            proxied: false,
            data_dirs: Vec::new(),
            tls: false,
            token: None,
        }
    }

    /// Starts `n` nodes and waits until the metadata group has a leader.
    pub async fn start(n: usize) -> Cluster {
        Self::builder(n).start().await
    }

    /// Like `start`, with extra flags for every node.
    pub async fn start_with(n: usize, extra_args: &[&str]) -> Cluster {
        Self::builder(n)
            .args(extra_args.iter().copied())
            .start()
            .await
    }

    pub fn node(&self, id: u64) -> &NodeProc {
        self.nodes
            .get((id as usize).wrapping_sub(1))
            .unwrap_or_else(|| panic!("no node {id} in a {}-node cluster", self.nodes.len()))
    }

    fn node_mut(&mut self, id: u64) -> &mut NodeProc {
        let n = self.nodes.len();
        self.nodes
            .get_mut((id as usize).wrapping_sub(1))
            .unwrap_or_else(|| panic!("no node {id} in a {n}-node cluster"))
    }

    /// The proxy in front of node `id` (clusters built `behind_proxies`).
    pub fn proxy(&self, id: u64) -> &Proxy {
        self.proxies
            .get((id as usize).wrapping_sub(1))
            .unwrap_or_else(|| panic!("node {id} has no proxy: build with behind_proxies()"))
    }

    pub fn addr(&self, id: u64) -> String {
        self.node(id).addr.clone()
    }

    pub fn addrs(&self, ids: &[u64]) -> Vec<String> {
        ids.iter().map(|id| self.addr(*id)).collect()
    }

    pub fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// Nodes whose process runs and is not stopped.
    pub fn running_ids(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|n| n.is_live())
            .map(|n| n.id)
            .collect()
    }

    /// Every node but `excluded`.
    pub fn others(&self, excluded: &[u64]) -> Vec<u64> {
        self.ids()
            .into_iter()
            .filter(|id| !excluded.contains(id))
            .collect()
    }

    fn spawn(&mut self, id: u64) {
        let bin = self.bin.clone();
        let filter = self.log_filter.clone();
        let node = self.node(id);
        let mut args = vec![
            "--id".to_string(),
            id.to_string(),
            "--data-dir".into(),
            node.data_dir.display().to_string(),
            "--listen".into(),
            node.listen.clone(),
            "--advertise".into(),
            node.addr.clone(),
        ];
        match &node.join {
            Some(join) => args.extend(["--join".to_string(), join.clone()]),
            None => args.extend([
                "--initial-cluster".to_string(),
                self.initial_cluster.clone(),
            ]),
        }
        args.extend(["--metrics-listen".into(), node.metrics_addr.clone()]);
        if let Some(pki) = &self.pki {
            let files = pki.node(id);
            for (flag, path) in [
                ("--tls-cert", files.cert),
                ("--tls-key", files.key),
                ("--tls-ca", files.ca),
            ] {
                args.extend([flag.to_string(), path.display().to_string()]);
            }
        }
        args.extend(self.extra_args.iter().cloned());
        self.node_mut(id).spawn(&bin, &args, filter.as_deref());
    }

    /// Starts a new node (the next id, an empty data dir) that joins the
    /// running cluster through the nodes `via`; returns its id.
    pub fn add_node(&mut self, via: &[u64]) -> u64 {
        self.add_node_at(format!("127.0.0.1:{}", free_port()), via)
    }

    /// Like [`Cluster::add_node`], listening on `addr` (for example the
    /// address of a node it replaces, as a StatefulSet pod keeps its name).
    pub fn add_node_at(&mut self, addr: String, via: &[u64]) -> u64 {
        let id = self.ids().into_iter().max().unwrap_or(0) + 1;
        let root = self.root.as_ref().expect("cluster root dir").path();
        let mut node = NodeProc::new(
            id,
            addr,
            format!("127.0.0.1:{}", free_port()),
            root.join(format!("node{id}")),
        );
        node.join = Some(self.addrs(via).join(","));
        self.nodes.push(node);
        self.spawn(id);
        id
    }

    /// SIGKILL: the process dies at once, its disk state stays.
    pub fn kill(&mut self, id: u64) {
        self.node_mut(id).kill();
    }

    /// SIGKILL several nodes at the same instant, then reap them.
    pub fn kill_many(&mut self, ids: &[u64]) {
        for id in ids {
            self.node_mut(*id).send_kill();
        }
        for id in ids {
            self.node_mut(*id).reap();
        }
    }

    /// SIGTERM (graceful shutdown), SIGKILL after `timeout`. Returns the time the
    /// node took to exit.
    pub fn terminate(&mut self, id: u64, timeout: Duration) -> Duration {
        self.node_mut(id).terminate(timeout)
    }

    /// SIGSTOP: the node hangs with its sockets open.
    pub fn stop(&mut self, id: u64) {
        self.node_mut(id).stop();
    }

    /// SIGCONT a stopped node.
    pub fn cont(&mut self, id: u64) {
        self.node_mut(id).cont();
    }

    /// Starts a node again on the same data dir and port (SIGKILLing it first if
    /// it still runs).
    pub fn restart(&mut self, id: u64) {
        self.kill(id);
        self.spawn(id);
    }

    /// SIGKILLs every node; all are dead before this returns.
    pub fn kill_all(&mut self) {
        self.kill_many(&self.ids());
    }

    /// Starts every node that is not running.
    /// Starts every node not running, except `excluded`.
    pub fn start_all_but(&mut self, excluded: &[u64]) {
        for id in self.ids() {
            if !excluded.contains(&id) && !self.node(id).is_running() {
                self.spawn(id);
            }
        }
    }

    pub fn start_all(&mut self) {
        for id in self.ids() {
            if !self.node(id).is_running() {
                self.spawn(id);
            }
        }
    }

    /// Client options for this cluster: TLS trusting its CA when it has one.
    pub fn client_options(&self) -> ClientOptions {
        ClientOptions {
            retry_deadline: Duration::from_secs(60),
            tls: self.pki.as_ref().map(|p| p.client_tls(None)),
            token: self.token.clone(),
            ..Default::default()
        }
    }

    /// A client for nodes `ids`, with [`Cluster::client_options`].
    pub async fn connect(&self, ids: &[u64]) -> Client {
        Client::connect_with(self.addrs(ids), self.client_options())
            .await
            .unwrap_or_else(|e| panic!("connect to nodes {ids:?}: {e}"))
    }

    async fn status_of(&self, id: u64) -> Result<ClusterStatusResponse, String> {
        if self.pki.is_none() && self.token.is_none() {
            return client::cluster_status(&self.addr(id))
                .await
                .map_err(|e| e.to_string());
        }
        let options = ClientOptions {
            retry_deadline: Duration::from_millis(500),
            request_timeout: Duration::from_millis(500),
            ..self.client_options()
        };
        let client = Client::lazy([self.addr(id)], options).map_err(|e| e.to_string())?;
        client.cluster_status().await.map_err(|e| e.to_string())
    }

    /// Waits until some live node reports a metadata leader.
    pub async fn wait_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut last_error = String::from("no live node");
        loop {
            for id in self.running_ids() {
                match self.status_of(id).await {
                    Ok(s) if s.metadata_leader != 0 => return,
                    Ok(_) => last_error = format!("node {id}: no metadata leader yet"),
                    Err(e) => last_error = format!("node {id}: {e}"),
                }
            }
            assert!(
                Instant::now() < deadline,
                "cluster not ready after {timeout:?} (last: {last_error})"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn admin(&self, id: u64) -> AdminServiceClient<Channel> {
        client::admin(&self.addr(id))
            .await
            .unwrap_or_else(|e| panic!("admin client for node {id}: {e}"))
    }

    pub async fn queue(&self, id: u64) -> QueueServiceClient<Channel> {
        client::queue(&self.addr(id))
            .await
            .unwrap_or_else(|e| panic!("queue client for node {id}: {e}"))
    }

    /// GetQueue answered by node `id` from its own replica.
    pub async fn queue_info(&self, id: u64, queue: &str) -> Result<QueueInfo, tonic::Status> {
        client::get_queue(&self.addr(id), queue).await
    }

    /// The queue's leader as some live node reports it, waiting (bounded) while
    /// there is none. The leader reported must itself be live.
    pub async fn leader_of(&self, queue: &str) -> u64 {
        self.wait_leader_except(queue, &[], ELECTION_WAIT).await.0
    }

    /// Waits until a live node reports a live leader for `queue` that is not in
    /// `not`; returns it and how long that took.
    pub async fn wait_leader_except(
        &self,
        queue: &str,
        not: &[u64],
        timeout: Duration,
    ) -> (u64, Duration) {
        let started = Instant::now();
        let mut seen = Vec::new();
        loop {
            let live = self.running_ids();
            for id in &live {
                if let Ok(info) = self.queue_info(*id, queue).await {
                    let l = info.leader_id;
                    if l != 0 && !not.contains(&l) && live.contains(&l) {
                        return (l, started.elapsed());
                    }
                    seen.push((*id, l));
                }
            }
            if started.elapsed() > timeout {
                seen.dedup();
                panic!(
                    "queue {queue}: no live leader other than {not:?} after {timeout:?}; \
                     (node, leader it reported): {:?}",
                    &seen[seen.len().saturating_sub(10)..]
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Creates a queue through a live node and waits until it has a leader.
    /// Retries while the metadata group elects; a retry answered ALREADY_EXISTS
    /// after an earlier attempt may have gone through counts as success.
    pub async fn create_queue(&self, name: &str, options: QueueOptions) -> QueueInfo {
        let deadline = Instant::now() + ELECTION_WAIT;
        let mut retried = false;
        loop {
            let live = self.running_ids();
            let via = *live
                .first()
                .expect("no live node to create a queue through");
            match client::create_queue(&self.addr(via), name, options.clone()).await {
                Ok(_) => break,
                Err(s) if retried && s.code() == Code::AlreadyExists => break,
                Err(s) if client::retryable(&s) && Instant::now() < deadline => {
                    retried = true;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(s) => panic!("create queue {name}: {s}"),
            }
        }
        let leader = self.leader_of(name).await;
        self.queue_info(leader, name)
            .await
            .unwrap_or_else(|e| panic!("GetQueue {name} on its leader {leader}: {e}"))
    }

    /// Publishes `messages` through node `via` only, in batches of 100, each
    /// retried with the same idempotent (producer, sequence) until confirmed, so
    /// a retry never stores a message twice. Returns (offset, payload) of every
    /// confirmed message, in publish order; panics (with the last error) when a
    /// batch is not confirmed within 30 s.
    pub async fn publish_all(
        &self,
        via: u64,
        queue: &str,
        messages: &[Bytes],
    ) -> Vec<(u64, Bytes)> {
        let mut producer = Producer::new("publish-all");
        producer.publish_all(&self.addr(via), queue, messages).await
    }

    /// Consumes from `queue` (through `via` first, then the other live nodes when
    /// a session ends), acking everything, until `expected` messages are acked and
    /// no more arrive, or `timeout`.
    pub async fn consume_all(
        &self,
        via: u64,
        queue: &str,
        expected: usize,
        timeout: Duration,
    ) -> Drained {
        let mut order = vec![via];
        order.extend(self.running_ids().into_iter().filter(|id| *id != via));
        drain(&self.addrs(&order), queue, expected, timeout).await
    }

    /// Waits until node `id`'s own replica of `queue` has applied at least as far
    /// as the leader's. Returns how long it took.
    pub async fn wait_caught_up(&self, id: u64, queue: &str, timeout: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let leader = self.leader_of(queue).await;
            let target = self.queue_info(leader, queue).await;
            let mine = self.queue_info(id, queue).await;
            let last = match (target, mine) {
                (Ok(t), Ok(m)) if m.answered_by == id && m.applied_index >= t.applied_index => {
                    return started.elapsed()
                }
                (t, m) => format!(
                    "leader {leader} applied {:?}, node {id} applied {:?}",
                    t.map(|i| i.applied_index),
                    m.map(|i| i.applied_index)
                ),
            };
            assert!(
                started.elapsed() < timeout,
                "node {id} did not catch up on {queue} within {timeout:?}: {last}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every message node `id` stores for `queue`, read STALE_OK from its own
    /// replica, page by page.
    pub async fn read_all_stale(&self, id: u64, queue: &str) -> Vec<StoredMessage> {
        let mut out: Vec<StoredMessage> = Vec::new();
        // Bounded: 1,000 pages of 1,000 is far beyond any test's queue.
        for _ in 0..1_000 {
            let from = out.last().map(|m| m.offset + 1).unwrap_or(0);
            let page = client::read_stale(&self.addr(id), queue, from, 1_000)
                .await
                .unwrap_or_else(|e| panic!("STALE_OK read of {queue} on node {id}: {e}"));
            assert_eq!(page.node_id, id, "node {id} answered from its own replica");
            if page.messages.is_empty() {
                return out;
            }
            out.extend(page.messages);
        }
        panic!("read_all_stale: {queue} on node {id} has more than 1,000 pages");
    }

    /// Prints the end of every node's log (used when a test fails).
    pub fn dump_logs(&self) {
        for node in &self.nodes {
            eprintln!(
                "----- node {} log, last 8 KiB ({}) -----\n{}",
                node.id,
                node.log_path.display(),
                node.log_tail(8 << 10)
            );
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let failed = std::thread::panicking();
        if failed {
            self.dump_logs();
        }
        // Kill everything first, then reap: a stopped node gets SIGCONT in
        // send_kill, so nothing can be left hanging.
        let ids = self.ids();
        self.kill_many(&ids);
        if let Some(root) = self.root.take() {
            if std::env::var_os("RAFTQ_TEST_KEEP").is_some() {
                eprintln!(
                    "RAFTQ_TEST_KEEP: cluster data kept in {}",
                    root.keep().display()
                );
            } else if failed {
                eprintln!("(set RAFTQ_TEST_KEEP=1 to keep the data dirs and full logs)");
            }
        }
    }
}
