//! Reading by offset from the node the caller chose.

use raftq_proto::v1::{Consistency, ReadRequest, ReadResponse};

use super::{request, with_timeout};
use crate::{Client, Error};

impl Client {
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
