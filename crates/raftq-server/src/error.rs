//! Every failure a client can see, and its one mapping to a gRPC status.

use tonic::{Code, Status};

use crate::raft::types::NodeId;

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
    /// Retryable: no leader known, leader moved, node shutting down. Carries the
    /// leader when known so clients can go straight there.
    #[error("{message}")]
    Unavailable {
        message: String,
        leader: Option<(NodeId, String)>,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError::Unavailable {
            message: message.into(),
            leader: None,
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
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::InvalidArgument(m) => Status::new(Code::InvalidArgument, m),
            ApiError::NotFound(m) => Status::new(Code::NotFound, m),
            ApiError::AlreadyExists(m) => Status::new(Code::AlreadyExists, m),
            ApiError::FailedPrecondition(m) => Status::new(Code::FailedPrecondition, m),
            ApiError::ResourceExhausted(m) => Status::new(Code::ResourceExhausted, m),
            ApiError::Unavailable { message, leader } => {
                let message = match leader {
                    Some((id, addr)) => format!("{message} (leader={id}@{addr})"),
                    None => message,
                };
                Status::new(Code::Unavailable, message)
            }
            ApiError::Internal(m) => Status::new(Code::Internal, m),
        }
    }
}
