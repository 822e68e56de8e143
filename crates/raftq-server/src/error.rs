//! Every failure a client can see, and its one mapping to a gRPC status.
//!
//! What a client acts on travels in response metadata, typed, beside the
//! message written for people (README "Error codes"):
//! - `raftq-retry`: on UNAVAILABLE, `not-applied` (nothing was proposed:
//!   any request may be sent again) or `maybe-applied` (it may have taken
//!   effect: only an idempotent request may be sent again).
//! - `raftq-leader-id` and `raftq-leader-addr`: the queue's leader, when
//!   known, so a client can go straight there.
//! - `raftq-alarm` and `raftq-alarm-node`: on RESOURCE_EXHAUSTED from a
//!   memory or disk alarm, the resource and the node in alarm.

use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Status};

use crate::raft::types::NodeId;

use raftq_proto::metadata::{
    ALARM as ALARM_KEY, ALARM_NODE as ALARM_NODE_KEY, LEADER_ADDR as LEADER_ADDR_KEY,
    LEADER_ID as LEADER_ID_KEY, MAYBE_APPLIED, NOT_APPLIED, RETRY as RETRY_KEY,
};

/// Whether a request that failed UNAVAILABLE may have taken effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Refused before anything was proposed.
    No,
    /// Proposed (or forwarded) and then lost track of.
    Maybe,
}

impl Applied {
    fn as_str(self) -> &'static str {
        match self {
            Applied::No => NOT_APPLIED,
            Applied::Maybe => MAYBE_APPLIED,
        }
    }

    fn parse(s: &str) -> Option<Applied> {
        match s {
            NOT_APPLIED => Some(Applied::No),
            MAYBE_APPLIED => Some(Applied::Maybe),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    ResourceExhausted(String),
    /// A publish refused, not applied, because a node is in a memory or disk
    /// alarm (`resource` is `memory` or `disk`).
    #[error("{message}")]
    Alarm {
        message: String,
        resource: String,
        node: NodeId,
    },
    /// Retryable: no leader known, leader moved, node shutting down. Carries the
    /// leader when known so clients can go straight there.
    #[error("{message}")]
    Unavailable {
        message: String,
        leader: Option<(NodeId, String)>,
        applied: Applied,
    },
    /// No credentials, or ones no user of the auth file has.
    #[error("{0}")]
    Unauthenticated(String),
    /// A known user without the right for what was asked.
    #[error("{0}")]
    PermissionDenied(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// Refused before anything was proposed.
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError::Unavailable {
            message: message.into(),
            leader: None,
            applied: Applied::No,
        }
    }

    /// Lost track of after it was proposed or forwarded.
    pub fn maybe_applied(message: impl Into<String>) -> Self {
        ApiError::Unavailable {
            message: message.into(),
            leader: None,
            applied: Applied::Maybe,
        }
    }

    pub fn no_leader(queue: &str) -> Self {
        ApiError::unavailable(format!(
            "queue '{queue}' has no leader yet (election in progress or a majority of its replicas unreachable); retry"
        ))
    }

    pub fn unknown_queue(queue: &str) -> Self {
        ApiError::NotFound(format!("queue '{queue}' does not exist"))
    }

    /// A peer's answer to a forwarded request, passed on unchanged: its code,
    /// message and typed details. A forward that got no answer from the peer
    /// may still have been applied there, unless it never connected.
    pub fn from_peer(status: &tonic::Status) -> Self {
        let m = status.message().to_string();
        match status.code() {
            Code::InvalidArgument => ApiError::InvalidArgument(m),
            Code::NotFound => ApiError::NotFound(m),
            Code::AlreadyExists => ApiError::AlreadyExists(m),
            Code::FailedPrecondition => ApiError::FailedPrecondition(m),
            Code::ResourceExhausted => match raftq_proto::metadata::alarm(status.metadata()) {
                Some((resource, node)) => ApiError::Alarm {
                    message: m,
                    resource,
                    node,
                },
                None => ApiError::ResourceExhausted(m),
            },
            Code::Internal => ApiError::Internal(m),
            Code::Unauthenticated => ApiError::Unauthenticated(m),
            Code::PermissionDenied => ApiError::PermissionDenied(m),
            code => {
                let meta = status.metadata();
                let answered = meta.get(RETRY_KEY).and_then(|v| v.to_str().ok());
                let applied = match answered.and_then(Applied::parse) {
                    Some(applied) => applied,
                    None if raftq_proto::transport::never_connected(status) => Applied::No,
                    None => Applied::Maybe,
                };
                let message = match answered {
                    Some(_) => m,
                    None => format!("forwarded request failed: {code}: {m}"),
                };
                ApiError::Unavailable {
                    message,
                    leader: raftq_proto::metadata::leader(meta),
                    applied,
                }
            }
        }
    }
}

/// A remote node's answer, passed through unchanged (its code, message and
/// typed details).
impl From<Status> for ApiError {
    fn from(status: Status) -> Self {
        ApiError::from_peer(&status)
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::InvalidArgument(m) => Status::new(Code::InvalidArgument, m),
            ApiError::NotFound(m) => Status::new(Code::NotFound, m),
            ApiError::AlreadyExists(m) => Status::new(Code::AlreadyExists, m),
            ApiError::FailedPrecondition(m) => Status::new(Code::FailedPrecondition, m),
            ApiError::ResourceExhausted(m) => Status::new(Code::ResourceExhausted, m),
            ApiError::Unauthenticated(m) => Status::new(Code::Unauthenticated, m),
            ApiError::PermissionDenied(m) => Status::new(Code::PermissionDenied, m),
            ApiError::Alarm {
                message,
                resource,
                node,
            } => {
                let mut meta = MetadataMap::new();
                if let Ok(v) = resource.parse() {
                    meta.insert(ALARM_KEY, v);
                }
                meta.insert(ALARM_NODE_KEY, MetadataValue::from(node));
                Status::with_metadata(Code::ResourceExhausted, message, meta)
            }
            ApiError::Unavailable {
                message,
                leader,
                applied,
            } => {
                let mut meta = MetadataMap::new();
                meta.insert(RETRY_KEY, MetadataValue::from_static(applied.as_str()));
                let message = match leader {
                    Some((id, addr)) => {
                        meta.insert(LEADER_ID_KEY, MetadataValue::from(id));
                        if let Ok(v) = addr.parse() {
                            meta.insert(LEADER_ADDR_KEY, v);
                        }
                        format!("{message} (leader {id} at {addr})")
                    }
                    None => message,
                };
                Status::with_metadata(Code::Unavailable, message, meta)
            }
            ApiError::Internal(m) => Status::new(Code::Internal, m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_client_acts_on_survives_a_forward() {
        let original = ApiError::Unavailable {
            message: "anything at all".into(),
            leader: Some((3, "10.0.0.3:7001".into())),
            applied: Applied::No,
        };
        let status = Status::from(original);
        assert_eq!(status.code(), Code::Unavailable);
        match ApiError::from_peer(&status) {
            ApiError::Unavailable {
                leader, applied, ..
            } => {
                assert_eq!(leader, Some((3, "10.0.0.3:7001".to_string())));
                assert_eq!(applied, Applied::No);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_alarm_survives_a_forward() {
        let status = Status::from(ApiError::Alarm {
            message: "any words".into(),
            resource: "disk".into(),
            node: 2,
        });
        assert_eq!(status.code(), Code::ResourceExhausted);
        match ApiError::from_peer(&status) {
            ApiError::Alarm { resource, node, .. } => {
                assert_eq!((resource.as_str(), node), ("disk", 2));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_forward_without_an_answer_may_have_been_applied() {
        let lost = Status::unavailable("h2 protocol error");
        assert!(matches!(
            ApiError::from_peer(&lost),
            ApiError::Unavailable {
                applied: Applied::Maybe,
                leader: None,
                ..
            }
        ));
        let cancelled = Status::cancelled("timeout");
        assert!(matches!(
            ApiError::from_peer(&cancelled),
            ApiError::Unavailable {
                applied: Applied::Maybe,
                ..
            }
        ));
    }
}
