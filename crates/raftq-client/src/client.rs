//! The cluster handle: options, connecting, and the one retry loop every
//! request goes through (failover across nodes, leader routing, backoff,
//! deadline).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use raftq_proto::v1::admin_service_client::AdminServiceClient;
use raftq_proto::v1::queue_service_client::QueueServiceClient;
use raftq_proto::v1::{
    ClusterStatusRequest, Consistency, GetQueueRequest, PublishKey, PublishMessage, PublishRequest,
    PublishResponse, ReadRequest, ReadResponse,
};
use tonic::transport::Channel;

use crate::connection::{normalize_address, ChannelSettings, Directory, Pool};
use crate::retry::{Backoff, Deadline};
use crate::Error;

/// Largest gRPC message the client sends or accepts (large read answers).
const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Timeouts and retry pacing of a [`Client`].
///
/// ```
/// use std::time::Duration;
/// let options = raftq_client::ClientOptions {
///     retry_deadline: Duration::from_secs(60),
///     ..Default::default()
/// };
/// # let _ = options;
/// ```
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Longest wait for the answer to one attempt.
    pub request_timeout: Duration,
    /// How long an operation keeps retrying (failover, no leader yet, node
    /// restarting) before it fails with [`Error::Timeout`].
    pub retry_deadline: Duration,
    /// Longest wait for a TCP connection to one node.
    pub connect_timeout: Duration,
    /// First pause between retries; doubles up to `backoff_max`, with jitter.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(5),
            retry_deadline: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(1),
            backoff_initial: Duration::from_millis(20),
            // Failover takes a few hundred ms: retries must keep polling at
            // about that pace, not drift to seconds apart.
            backoff_max: Duration::from_millis(250),
        }
    }
}

pub(crate) struct Inner {
    pub(crate) pool: Pool,
    pub(crate) directory: Directory,
    pub(crate) options: ClientOptions,
    /// Names this client's `publish_batch` calls; random per client, so two
    /// clients never share a key.
    publish_key_source: u64,
    publish_key_counter: std::sync::atomic::AtomicU64,
}

/// A handle to a raftq cluster. Cheap to clone; clones share connections and
/// what was learned about leaders.
///
/// ```no_run
/// # async fn demo() -> Result<(), raftq_client::Error> {
/// use raftq_client::{Client, ClientOptions, QueueOptions};
///
/// let client = Client::connect_with(
///     ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"],
///     ClientOptions::default(),
/// )
/// .await?;
/// let info = client.create_queue("orders", QueueOptions::default()).await?;
/// println!("leader {} replicas {:?}", info.leader_id, info.replicas);
/// for q in client.list_queues().await? {
///     println!("{}: {} messages", q.name, q.depth);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("seeds", &self.inner.pool.seeds())
            .field("options", &self.inner.options)
            .finish()
    }
}

/// Which nodes an operation should go to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target<'a> {
    /// Any node (reads, admin: every node serves them).
    Any,
    /// The queue's leader if known (writes, consumer sessions); any node
    /// forwards, so the others are fallbacks.
    Leader(&'a str),
}

impl Target<'_> {
    fn queue(&self) -> Option<&str> {
        match self {
            Target::Any => None,
            Target::Leader(q) => Some(q),
        }
    }
}

impl Client {
    /// Connects with default options. Fails with [`Error::Unreachable`] when
    /// no seed answers at all; after that, nodes may come and go.
    pub async fn connect<S: Into<String>>(
        seeds: impl IntoIterator<Item = S>,
    ) -> Result<Client, Error> {
        Self::connect_with(seeds, ClientOptions::default()).await
    }

    /// Connects, asking every seed at once for the cluster's membership.
    pub async fn connect_with<S: Into<String>>(
        seeds: impl IntoIterator<Item = S>,
        options: ClientOptions,
    ) -> Result<Client, Error> {
        let client = Self::lazy(seeds, options)?;
        if client.probe().await {
            Ok(client)
        } else {
            Err(Error::Unreachable(client.seeds().join(",")))
        }
    }

    /// Asks every seed at once for the cluster's membership; true as soon as
    /// one answers anything (an error status is still an answer).
    async fn probe(&self) -> bool {
        let timeout = self.inner.options.request_timeout;
        let mut probes: FuturesUnordered<_> = self
            .seeds()
            .iter()
            .map(|addr| self.cluster_status_at(addr, timeout))
            .collect();
        let mut answered = false;
        while let Some(result) = probes.next().await {
            match result {
                Ok(_) => return true,
                Err(Error::Connect(_) | Error::Transport(_) | Error::RequestTimeout(_)) => {}
                Err(_) => answered = true,
            }
        }
        answered
    }

    /// A client that has not contacted anything yet: the first request will.
    /// Only fails on malformed or missing addresses.
    pub fn lazy<S: Into<String>>(
        seeds: impl IntoIterator<Item = S>,
        options: ClientOptions,
    ) -> Result<Client, Error> {
        let mut list: Vec<String> = Vec::new();
        for seed in seeds {
            let seed: String = seed.into();
            // "a:1,b:2" in one string works too.
            for addr in seed.split(',').filter_map(normalize_address) {
                if !list.contains(&addr) {
                    list.push(addr);
                }
            }
        }
        if list.is_empty() {
            return Err(Error::InvalidArgument("no server addresses given".into()));
        }
        let settings = ChannelSettings {
            connect_timeout: options.connect_timeout,
        };
        let pool = Pool::new(list, settings);
        for addr in pool.seeds() {
            pool.channel(addr)?;
        }
        Ok(Client {
            inner: Arc::new(Inner {
                pool,
                directory: Directory::default(),
                options,
                publish_key_source: rand::random(),
                publish_key_counter: Default::default(),
            }),
        })
    }

    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    /// The addresses given at connect time, normalized.
    pub fn seeds(&self) -> &[String] {
        self.inner.pool.seeds()
    }

    pub(crate) fn backoff(&self) -> Backoff {
        Backoff::new(
            self.inner.options.backoff_initial,
            self.inner.options.backoff_max,
        )
    }

    pub(crate) fn admin_at(&self, addr: &str) -> Result<AdminServiceClient<Channel>, Error> {
        Ok(AdminServiceClient::new(self.inner.pool.channel(addr)?))
    }

    pub(crate) fn queue_at(&self, addr: &str) -> Result<QueueServiceClient<Channel>, Error> {
        Ok(QueueServiceClient::new(self.inner.pool.channel(addr)?)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }

    async fn cluster_status_at(
        &self,
        addr: &str,
        timeout: Duration,
    ) -> Result<raftq_proto::v1::ClusterStatusResponse, Error> {
        let req = request(ClusterStatusRequest {}, timeout);
        let fut = async { Ok(self.admin_at(addr)?.cluster_status(req).await?.into_inner()) };
        let status = with_timeout(addr, timeout, fut).await?;
        self.learn_nodes(&status);
        Ok(status)
    }

    pub(crate) fn learn_nodes(&self, status: &raftq_proto::v1::ClusterStatusResponse) {
        for n in &status.nodes {
            self.inner.directory.set_node(n.id, &n.address);
        }
        for q in &status.queues {
            self.learn_leader(&q.name, q.leader_id);
        }
    }

    /// Records `leader_id` (from an answer) as `queue`'s leader.
    pub(crate) fn learn_leader(&self, queue: &str, leader_id: u64) {
        self.inner.directory.set_leader_id(queue, leader_id);
    }

    /// After a failed attempt at `addr`: take a leader hint if the message has
    /// one, else stop preferring `addr` as the leader. True when a hint was new.
    pub(crate) fn learn_from_failure(&self, queue: Option<&str>, addr: &str, e: &Error) -> bool {
        let dir = &self.inner.directory;
        if let Some((id, leader_addr)) = e.leader_hint() {
            let before = queue.and_then(|q| dir.leader(q));
            if dir.learn_leader(queue, id, leader_addr) {
                let after = queue.and_then(|q| dir.leader(q));
                return after.is_some() && after != before && after.as_deref() != Some(addr);
            }
        }
        if let Some(q) = queue {
            if e.is_retryable() {
                dir.forget_leader(q, addr);
            }
        }
        false
    }

    /// The queue's leader address: cached, else asked of the cluster (at most
    /// every few hundred ms per queue), else `None`.
    async fn leader_addr(&self, queue: &str) -> Option<String> {
        let dir = &self.inner.directory;
        if let Some(addr) = dir.leader(queue) {
            return Some(addr);
        }
        if !dir.lookup_due(queue, Instant::now()) {
            return None;
        }
        // A hint, not a requirement: bounded as a whole so a round of retries
        // never waits long on it.
        let timeout = self
            .inner
            .options
            .request_timeout
            .min(Duration::from_secs(1));
        tokio::time::timeout(timeout, self.lookup_leader(queue, timeout))
            .await
            .ok()
            .flatten()
    }

    async fn lookup_leader(&self, queue: &str, timeout: Duration) -> Option<String> {
        let dir = &self.inner.directory;
        for addr in self.inner.pool.rotation(dir.node_addrs()) {
            let req = request(
                GetQueueRequest {
                    name: queue.to_string(),
                    consistency: None,
                },
                timeout,
            );
            let fut = async { Ok(self.admin_at(&addr)?.get_queue(req).await?.into_inner()) };
            match with_timeout(&addr, timeout, fut).await {
                Ok(info) if info.leader_id == 0 => return None,
                Ok(info) => {
                    if dir.node_addr(info.leader_id).is_none() {
                        // A node we have not heard of yet (new, or no probe).
                        let _ = self.cluster_status_at(&addr, timeout).await;
                    }
                    self.learn_leader(queue, info.leader_id);
                    return dir.leader(queue);
                }
                Err(e) if e.is_retryable() => continue,
                Err(_) => return None,
            }
        }
        None
    }

    /// Addresses to try, best first.
    async fn candidates(&self, target: Target<'_>) -> Vec<String> {
        let mut out = self.inner.pool.rotation(self.inner.directory.node_addrs());
        if let Target::Leader(q) = target {
            if let Some(leader) = self.leader_addr(q).await {
                out.retain(|a| *a != leader);
                out.insert(0, leader);
            }
        }
        out
    }

    /// Where the next single attempt for `target` goes: the leader when known,
    /// else the next node in rotation.
    pub(crate) async fn pick(&self, target: Target<'_>) -> Option<String> {
        self.candidates(target).await.into_iter().next()
    }

    /// Runs `op` against candidate nodes until it succeeds, fails for good, or
    /// the retry deadline passes. `op` gets a node address and the timeout its
    /// attempt should carry. Every operation sent this way is idempotent
    /// (publishes carry a publish key), so every transient failure is retried.
    pub(crate) async fn call<T, F, Fut>(&self, target: Target<'_>, mut op: F) -> Result<T, Error>
    where
        F: FnMut(String, Duration) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let deadline = Deadline::after(self.inner.options.retry_deadline);
        let mut backoff = self.backoff();
        let mut last = LastError::default();
        let mut not_found: Option<Error> = None;
        loop {
            let mut follow_hint = false;
            for addr in self.candidates(target).await {
                let timeout = deadline.attempt_timeout(self.inner.options.request_timeout);
                let e = match with_timeout(&addr, timeout, op(addr.clone(), timeout)).await {
                    Ok(v) => return Ok(v),
                    Err(e) => e,
                };
                if let Error::NotFound(_) = e {
                    // A node behind on cluster metadata does not know a queue
                    // created a moment ago: believe a second node, not the first.
                    if not_found.is_some() {
                        return Err(e);
                    }
                    not_found = Some(e);
                    continue;
                }
                if !e.is_retryable() {
                    return Err(e);
                }
                follow_hint = self.learn_from_failure(target.queue(), &addr, &e);
                last.record(e);
                if deadline.expired() || follow_hint {
                    break;
                }
            }
            if let Some(e) = not_found.take() {
                // No second node answered in this round: the one answer stands.
                return Err(e);
            }
            if deadline.expired() {
                let last = last
                    .best()
                    .unwrap_or_else(|| Error::Unreachable(self.seeds().join(",")));
                return Err(Error::timeout(deadline.budget(), &last));
            }
            // A fresh hint names the leader: go there at once, not after a pause.
            if !follow_hint {
                tokio::time::sleep(deadline.clamp(backoff.next_delay())).await;
            }
        }
    }

    /// Publishes a batch and returns its offsets.
    ///
    /// The batch carries a publish key new to this call, which the queue
    /// remembers for 60 s: a retry after a timeout or a dropped connection is
    /// answered with the first attempt's offsets instead of being stored
    /// again, so every retryable failure is retried within the call's
    /// deadline. For ordered, pipelined publishing use [`Client::producer`].
    pub async fn publish_batch(
        &self,
        queue: &str,
        messages: Vec<PublishMessage>,
    ) -> Result<Vec<u64>, Error> {
        let key = PublishKey {
            source: self.inner.publish_key_source,
            counter: self
                .inner
                .publish_key_counter
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        };
        let resp = self
            .call(Target::Leader(queue), |addr, timeout| {
                let req = request(
                    PublishRequest {
                        queue: queue.to_string(),
                        messages: messages.clone(),
                        producer_id: String::new(),
                        sequence: 0,
                        key: Some(key),
                    },
                    timeout,
                );
                async move { Ok(self.queue_at(&addr)?.publish(req).await?.into_inner()) }
            })
            .await?;
        self.learn_leader(queue, resp.leader_id);
        Ok(resp.offsets)
    }

    /// One publish attempt at one node, for the producer's own retry loop.
    pub(crate) async fn publish_once(&self, req: PublishRequest) -> Result<PublishResponse, Error> {
        let queue = req.queue.clone();
        let Some(addr) = self.pick(Target::Leader(&queue)).await else {
            return Err(Error::Unreachable(self.seeds().join(",")));
        };
        match self.publish_at(&addr, req.clone()).await {
            // As in `call`: one node's "no such queue" may be stale metadata.
            Err(Error::NotFound(m)) => {
                let others = self.candidates(Target::Any).await;
                match others.into_iter().find(|a| *a != addr) {
                    Some(other) => self.publish_at(&other, req).await,
                    None => Err(Error::NotFound(m)),
                }
            }
            other => other,
        }
    }

    async fn publish_at(&self, addr: &str, req: PublishRequest) -> Result<PublishResponse, Error> {
        let queue = req.queue.clone();
        let addr = addr.to_string();
        let timeout = self.inner.options.request_timeout;
        let fut = async {
            Ok(self
                .queue_at(&addr)?
                .publish(request(req, timeout))
                .await?
                .into_inner())
        };
        let sent_to_leader = self.inner.directory.leader(&queue).as_deref() == Some(addr.as_str());
        let attempt = async {
            if !sent_to_leader {
                // A follower forwards with its own deadline and leader knowledge.
                return with_timeout(&addr, timeout, fut).await;
            }
            tokio::select! {
                r = with_timeout(&addr, timeout, fut) => r,
                moved = self.leader_moved_from(&queue, &addr) => Err(Error::unavailable(format!(
                    "{addr} stopped answering and the queue '{queue}' has a new leader at {moved}; resending"
                ))),
            }
        };
        match attempt.await {
            Ok(resp) => {
                self.learn_leader(&queue, resp.leader_id);
                Ok(resp)
            }
            Err(e) => {
                self.learn_from_failure(Some(&queue), &addr, &e);
                Err(e)
            }
        }
    }

    /// Reads messages by offset without consuming them, from the FIRST seed
    /// only: follower reads are answered by the node you ask, so this is how
    /// you pick the replica. No failover.
    pub async fn read(
        &self,
        queue: &str,
        from_offset: u64,
        count: u32,
        consistency: Consistency,
    ) -> Result<ReadResponse, Error> {
        let addr = self
            .seeds()
            .first()
            .cloned()
            .ok_or_else(|| Error::InvalidArgument("no server addresses given".into()))?;
        let timeout = self.inner.options.request_timeout;
        let req = request(
            ReadRequest {
                queue: queue.to_string(),
                from_offset,
                count,
                consistency: consistency as i32,
                max_lag: 0,
            },
            timeout,
        );
        let fut = async { Ok(self.queue_at(&addr)?.read(req).await?.into_inner()) };
        match with_timeout(&addr, timeout, fut).await {
            Err(Error::Transport(m)) => Err(Error::Transport(format!(
                "{m} (reads go to the first seed only)"
            ))),
            other => other,
        }
    }
}

/// The failure worth reporting when retries run out: what a node said ("no
/// leader yet") explains more than a refused connection to a dead node.
#[derive(Default)]
struct LastError {
    answer: Option<Error>,
    other: Option<Error>,
}

impl LastError {
    fn record(&mut self, e: Error) {
        match e {
            Error::Connect(_)
            | Error::Transport(_)
            | Error::RequestTimeout(_)
            | Error::Unreachable(_) => self.other = Some(e),
            _ => self.answer = Some(e),
        }
    }

    fn best(self) -> Option<Error> {
        self.answer.or(self.other)
    }
}

/// A request carrying `timeout` as its gRPC deadline, so the server stops
/// working on it when the client stops waiting.
pub(crate) fn request<T>(msg: T, timeout: Duration) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.set_timeout(timeout);
    req
}

/// Bounds an attempt locally too: a half-open connection never answers.
pub(crate) async fn with_timeout<T>(
    addr: &str,
    timeout: Duration,
    fut: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    // A little slack so the server's own DEADLINE_EXCEEDED wins when it comes.
    match tokio::time::timeout(timeout + Duration::from_millis(50), fut).await {
        Ok(Err(Error::Transport(m))) => Err(Error::Transport(format!("{addr}: {m}"))),
        Ok(Err(Error::Connect(m))) => Err(Error::Connect(format!("{addr}: {m}"))),
        Ok(result) => result,
        Err(_) => Err(Error::RequestTimeout(format!(
            "{addr} did not answer within {timeout:?}"
        ))),
    }
}
