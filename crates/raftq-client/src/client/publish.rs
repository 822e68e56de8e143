//! Publishing: a keyed batch retried by the retry loop, and the single
//! attempt the producer's pipeline makes (it keeps its own retries, in
//! order, under its producer id).

use std::sync::atomic::Ordering;

use raftq_proto::v1::{PublishKey, PublishMessage, PublishRequest, PublishResponse};

use super::not_found::SecondOpinion;
use super::{request, with_timeout, Target};
use crate::{Client, Error};

impl Client {
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
        let key = self.next_publish_key();
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

    fn next_publish_key(&self) -> PublishKey {
        PublishKey {
            source: self.inner.publish_key_source,
            counter: self
                .inner
                .publish_key_counter
                .fetch_add(1, Ordering::Relaxed),
        }
    }

    /// One publish attempt for the producer's own retry loop: at the leader
    /// when known, and at a second node only when the first answered
    /// NOT_FOUND (see [`SecondOpinion`]).
    pub(crate) async fn publish_once(&self, req: PublishRequest) -> Result<PublishResponse, Error> {
        let mut not_found = SecondOpinion::default();
        for addr in self.candidates(Target::Leader(&req.queue)).await {
            match self.publish_at(&addr, req.clone()).await {
                Ok(resp) => return Ok(resp),
                Err(e) => {
                    if let Some(e) = not_found.review(e) {
                        return Err(e);
                    }
                }
            }
        }
        Err(not_found
            .unanswered()
            .unwrap_or_else(|| Error::Unreachable(self.seeds().join(","))))
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
}
