//! Noticing, while a publish to the leader hangs, that the queue has a new
//! leader elsewhere. A leader that stops without closing its connections
//! (SIGSTOP, a VM pause, a cut cable) would otherwise hold every request
//! until its timeout, seconds after the rest of the cluster elected a new one.

use std::time::Duration;

use raftq_proto::v1::GetQueueRequest;

use crate::client::{request, with_timeout, Client};

/// An answer within this time is normal: no other node is asked.
pub(crate) const SUSPECT_AFTER: Duration = Duration::from_millis(300);
/// Between questions to the other nodes while the answer is overdue.
const ASK_EVERY: Duration = Duration::from_millis(100);
const ASK_TIMEOUT: Duration = Duration::from_millis(250);

impl Client {
    /// Resolves with the new leader's address once another node names a
    /// leader of `queue` other than `asked` (which we sent to as the leader);
    /// never resolves otherwise, so it is meant to be raced with the request.
    pub(crate) async fn leader_moved_from(&self, queue: &str, asked: &str) -> String {
        tokio::time::sleep(SUSPECT_AFTER).await;
        let mut turn = 0usize;
        loop {
            let others: Vec<String> = self
                .inner
                .directory
                .node_addrs()
                .into_iter()
                .filter(|a| a != asked)
                .collect();
            if let Some(other) = others.get(turn % others.len().max(1)) {
                turn += 1;
                if let Some(addr) = self.leader_seen_by(other, queue).await {
                    if addr != asked {
                        return addr;
                    }
                }
            }
            tokio::time::sleep(ASK_EVERY).await;
        }
    }

    /// The leader of `queue` as node `at` sees it, learnt into the directory.
    async fn leader_seen_by(&self, at: &str, queue: &str) -> Option<String> {
        let req = request(
            GetQueueRequest {
                name: queue.to_string(),
                consistency: None,
            },
            ASK_TIMEOUT,
        );
        let fut = async { Ok(self.admin_at(at)?.get_queue(req).await?.into_inner()) };
        let info = with_timeout(at, ASK_TIMEOUT, fut).await.ok()?;
        if info.leader_id == 0 {
            return None;
        }
        let addr = self.inner.directory.node_addr(info.leader_id)?;
        self.inner.directory.set_leader_id(queue, info.leader_id);
        Some(addr)
    }
}
