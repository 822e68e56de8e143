//! CommitOffset: a named stream consumer's position, replicated through the
//! stream's leader so a consumer that reconnects to any node resumes there.

use std::sync::Arc;

use raftq_proto::v1::{CommitOffsetRequest, CommitOffsetResponse};
use raftq_queue::{Command, Outcome};

use crate::api::stream::{stream_def, MAX_CONSUMER_NAME};
use crate::error::ApiError;
use crate::node::{now_ms, Node};
use crate::raft::types::{GroupCommand, GroupResponse};
use crate::router::{self, ProposeError, Route};

pub async fn commit_offset(
    node: &Arc<Node>,
    req: CommitOffsetRequest,
    hops: u32,
) -> Result<CommitOffsetResponse, ApiError> {
    let def = stream_def(node, &req.queue).await?;
    if req.consumer_name.is_empty() || req.consumer_name.len() > MAX_CONSUMER_NAME {
        return Err(ApiError::InvalidArgument(format!(
            "consumer_name must be 1 to {MAX_CONSUMER_NAME} bytes"
        )));
    }
    let group = match router::route(node, def.group, &def.replicas, &def.name, hops)? {
        Route::Local(g) => g,
        Route::Remote { addr, .. } => return forward(node, &addr, req, hops).await,
    };
    let cmd = GroupCommand::Queue(Command::CommitOffset {
        now_ms: now_ms(),
        consumer: req.consumer_name.clone(),
        offset: req.offset,
    });
    match router::propose(&group, cmd, &def.name).await {
        Ok(GroupResponse::Queue(Outcome::Done)) => {
            node.metrics().offsets_committed.inc();
            Ok(CommitOffsetResponse {
                leader_id: node.id(),
            })
        }
        Ok(GroupResponse::Queue(Outcome::Invalid(reason))) => Err(ApiError::InvalidArgument(
            format!("stream '{}': {reason}", def.name),
        )),
        Ok(other) => Err(ApiError::Internal(format!(
            "unexpected commit outcome {other:?}"
        ))),
        Err(ProposeError::Moved { addr, .. }) if hops < router::MAX_HOPS => {
            forward(node, &addr, req, hops).await
        }
        Err(e) => Err(e.into_api()),
    }
}

async fn forward(
    node: &Node,
    addr: &str,
    req: CommitOffsetRequest,
    hops: u32,
) -> Result<CommitOffsetResponse, ApiError> {
    node.metrics().forwarded_requests.inc();
    let mut client = router::queue_client(node, addr)?;
    client
        .commit_offset(router::forwarded(req, hops))
        .await
        .map(|r| r.into_inner())
        .map_err(ApiError::from)
}
