//! Queue and cluster administration: thin wrappers over `AdminService`, with
//! the client's failover and retries.

use std::sync::atomic::{AtomicBool, Ordering};

use raftq_proto::v1::{
    ChangeReplicasRequest, ClusterStatusRequest, ClusterStatusResponse, CreateQueueRequest,
    DeleteQueueRequest, GetQueueRequest, ListQueuesRequest, QueueInfo, QueueOptions,
    RebalanceRequest, RebalanceResponse, RemoveNodeRequest, TransferLeaderRequest,
};

use crate::client::{request, Target};
use crate::{Client, Error};

impl Client {
    /// Creates a queue and returns where it lives.
    ///
    /// When an earlier attempt may have created it (it timed out, or its
    /// connection dropped) and a retry finds the queue there, that counts as
    /// created and the queue's info is returned.
    pub async fn create_queue(
        &self,
        name: &str,
        options: QueueOptions,
    ) -> Result<QueueInfo, Error> {
        let maybe_done = AtomicBool::new(false);
        let created = self
            .call(Target::Any, |addr, timeout| {
                let req = request(
                    CreateQueueRequest {
                        name: name.to_string(),
                        options: Some(options.clone()),
                    },
                    timeout,
                );
                let maybe_done = &maybe_done;
                async move {
                    let earlier = maybe_done.swap(true, Ordering::Relaxed);
                    let result = self.admin_at(&addr)?.create_queue(req).await;
                    match result.map_err(Error::from) {
                        Ok(r) => r.into_inner().queue.map(Some).ok_or_else(|| {
                            Error::Server("CreateQueue answered without queue info".into())
                        }),
                        Err(Error::AlreadyExists(_)) if earlier => Ok(None),
                        Err(e) => {
                            settled(maybe_done, earlier, &e);
                            Err(e)
                        }
                    }
                }
            })
            .await?;
        let info = match created {
            Some(info) => info,
            None => self.get_queue(name).await?,
        };
        self.learn_leader(&info.name, info.leader_id);
        Ok(info)
    }

    /// Deletes a queue and its messages. As with `create_queue`, a retry that
    /// finds it gone after an ambiguous attempt counts as done.
    pub async fn delete_queue(&self, name: &str) -> Result<(), Error> {
        let maybe_done = AtomicBool::new(false);
        self.call(Target::Any, |addr, timeout| {
            let req = request(
                DeleteQueueRequest {
                    name: name.to_string(),
                },
                timeout,
            );
            let maybe_done = &maybe_done;
            async move {
                let earlier = maybe_done.swap(true, Ordering::Relaxed);
                let result = self.admin_at(&addr)?.delete_queue(req).await;
                match result.map_err(Error::from) {
                    Ok(_) => Ok(()),
                    Err(Error::NotFound(_)) if earlier => Ok(()),
                    Err(e) => {
                        settled(maybe_done, earlier, &e);
                        Err(e)
                    }
                }
            }
        })
        .await
    }

    pub async fn list_queues(&self) -> Result<Vec<QueueInfo>, Error> {
        let queues = self
            .call(Target::Any, |addr, timeout| {
                let req = request(ListQueuesRequest {}, timeout);
                async move {
                    Ok(self
                        .admin_at(&addr)?
                        .list_queues(req)
                        .await?
                        .into_inner()
                        .queues)
                }
            })
            .await?;
        for q in &queues {
            self.learn_leader(&q.name, q.leader_id);
        }
        Ok(queues)
    }

    /// One queue: leader, replicas, depth, replica lag (as seen by the node
    /// that answers).
    pub async fn get_queue(&self, name: &str) -> Result<QueueInfo, Error> {
        let info = self
            .call(Target::Any, |addr, timeout| {
                let req = request(
                    GetQueueRequest {
                        name: name.to_string(),
                        consistency: None,
                    },
                    timeout,
                );
                async move { Ok(self.admin_at(&addr)?.get_queue(req).await?.into_inner()) }
            })
            .await?;
        self.learn_leader(&info.name, info.leader_id);
        Ok(info)
    }

    /// Nodes (up/down, leaders held) and every queue, from one node's view.
    pub async fn cluster_status(&self) -> Result<ClusterStatusResponse, Error> {
        let status = self
            .call(Target::Any, |addr, timeout| {
                let req = request(ClusterStatusRequest {}, timeout);
                async move {
                    Ok(self
                        .admin_at(&addr)?
                        .cluster_status(req)
                        .await?
                        .into_inner())
                }
            })
            .await?;
        self.learn_nodes(&status);
        Ok(status)
    }
}

/// A change of where a queue's replicas live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaChange {
    /// One more replica, on this node.
    Add(u64),
    /// One replica fewer: the one on this node.
    Remove(u64),
    /// Grow or shrink to this many replicas, placed by the cluster.
    Count(u32),
}

impl Client {
    /// Changes a queue's replica set. Returns once the cluster has recorded
    /// it; the queue's leader then moves the group there, learner first
    /// (`QueueInfo::voters` and `learners` show the move).
    pub async fn change_replicas(
        &self,
        queue: &str,
        change: ReplicaChange,
    ) -> Result<QueueInfo, Error> {
        let (add_node, remove_node, replicas) = match change {
            ReplicaChange::Add(n) => (n, 0, 0),
            ReplicaChange::Remove(n) => (0, n, 0),
            ReplicaChange::Count(c) => (0, 0, c),
        };
        self.call(Target::Any, |addr, timeout| {
            let req = request(
                ChangeReplicasRequest {
                    queue: queue.to_string(),
                    add_node,
                    remove_node,
                    replicas,
                },
                timeout,
            );
            async move {
                Ok(self
                    .admin_at(&addr)?
                    .change_replicas(req)
                    .await?
                    .into_inner())
            }
        })
        .await
    }

    /// Moves the queue's leadership to `to` (or the follower with the most
    /// log). Writes pause for about one leader lease; the client's retries
    /// ride it out.
    pub async fn transfer_leader(&self, queue: &str, to: Option<u64>) -> Result<QueueInfo, Error> {
        let info = self
            .call(Target::Any, |addr, timeout| {
                let req = request(
                    TransferLeaderRequest {
                        queue: queue.to_string(),
                        to_node: to.unwrap_or(0),
                    },
                    timeout,
                );
                async move {
                    Ok(self
                        .admin_at(&addr)?
                        .transfer_leader(req)
                        .await?
                        .into_inner())
                }
            })
            .await?;
        self.learn_leader(&info.name, info.leader_id);
        Ok(info)
    }

    /// Moves leaders until every node leads about as many queues as the
    /// others.
    pub async fn rebalance(&self) -> Result<RebalanceResponse, Error> {
        self.call(Target::Any, |addr, timeout| {
            let req = request(RebalanceRequest {}, timeout);
            async move { Ok(self.admin_at(&addr)?.rebalance(req).await?.into_inner()) }
        })
        .await
    }

    /// Takes a node out of the cluster for good (alive or dead): its replicas
    /// move to other nodes, then it leaves. Safe to repeat: a repeat finishes
    /// what an interrupted one started.
    pub async fn remove_node(&self, node: u64) -> Result<ClusterStatusResponse, Error> {
        self.call(Target::Any, |addr, timeout| {
            let req = request(RemoveNodeRequest { node_id: node }, timeout);
            async move { Ok(self.admin_at(&addr)?.remove_node(req).await?.into_inner()) }
        })
        .await
    }
}

/// `maybe_done` is set before each attempt (an attempt cut off by the local
/// timeout may have taken effect); an answer proving this one did not restores
/// what earlier attempts left.
fn settled(maybe_done: &AtomicBool, earlier: bool, e: &Error) {
    if e.surely_not_applied() || !e.is_retryable() {
        maybe_done.store(earlier, Ordering::Relaxed);
    }
}
