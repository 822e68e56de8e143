//! Where a request goes: what the client learns about nodes and leaders from
//! answers and typed failure metadata, finding a queue's leader when nothing
//! is cached, and the order in which nodes are tried.

use std::time::{Duration, Instant};

use raftq_proto::v1::{ClusterStatusRequest, ClusterStatusResponse, GetQueueRequest};

use super::{request, with_timeout};
use crate::{Client, Error};

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
    pub(super) fn queue(&self) -> Option<&str> {
        match self {
            Target::Any => None,
            Target::Leader(q) => Some(q),
        }
    }
}

impl Client {
    /// Asks the node at `addr` for the cluster's membership and learns it.
    pub(super) async fn cluster_status_at(
        &self,
        addr: &str,
        timeout: Duration,
    ) -> Result<ClusterStatusResponse, Error> {
        let req = request(ClusterStatusRequest {}, timeout);
        let fut = async { Ok(self.admin_at(addr)?.cluster_status(req).await?.into_inner()) };
        let status = with_timeout(addr, timeout, fut).await?;
        self.learn_nodes(&status);
        Ok(status)
    }

    pub(crate) fn learn_nodes(&self, status: &ClusterStatusResponse) {
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

    /// After a failed attempt at `addr`: take the leader the server named in
    /// the failure's metadata, else stop preferring `addr` as the leader. True
    /// when that named leader is new and elsewhere, so it is worth going to
    /// at once.
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

    /// Addresses to try, best first: the leader when `target` wants it and it
    /// is known, then every node in rotation.
    pub(crate) async fn candidates(&self, target: Target<'_>) -> Vec<String> {
        let mut out = self.inner.pool.rotation(self.inner.directory.node_addrs());
        if let Target::Leader(q) = target {
            if let Some(leader) = self.leader_addr(q).await {
                out.retain(|a| *a != leader);
                out.insert(0, leader);
            }
        }
        out
    }
}
