//! Who a request comes from and whether they may do what it asks, against the
//! auth file (re-read within seconds of a change; a file that does not parse
//! is logged and the previous one kept).
//!
//! Callers: a node (its certificate names a node of the cluster's CA: a
//! forwarded request, already authorized where it entered), a user by client
//! certificate, or a user by bearer token. Tokens are never logged.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::{Mutex, RwLock};
use rustls_pki_types::CertificateDer;
use tonic::metadata::MetadataMap;

use crate::auth::users::{Right, User, Users};
use crate::error::ApiError;

const LOOK_EVERY: Duration = Duration::from_secs(5);

pub enum Caller {
    Node(u64),
    User(User),
}

impl Caller {
    pub fn name(&self) -> String {
        match self {
            Caller::Node(id) => format!("node {id}"),
            Caller::User(u) => format!("user {}", u.name),
        }
    }
}

pub struct Guard {
    path: PathBuf,
    users: RwLock<Arc<Users>>,
    stamp: Mutex<Option<(SystemTime, u64)>>,
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

fn read(path: &Path) -> Result<Users, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read auth file {}: {e}", path.display()))?;
    Users::parse(&text).map_err(|e| format!("auth file {}: {e}", path.display()))
}

impl Guard {
    pub fn load(path: &Path) -> Result<Arc<Guard>, String> {
        let stamped = stamp(path);
        let users = read(path)?;
        Ok(Arc::new(Guard {
            path: path.to_path_buf(),
            users: RwLock::new(Arc::new(users)),
            stamp: Mutex::new(stamped),
        }))
    }

    pub fn reload_if_changed(&self) -> Result<bool, String> {
        let now = stamp(&self.path);
        if *self.stamp.lock() == now {
            return Ok(false);
        }
        *self.stamp.lock() = now;
        let users = read(&self.path)?;
        *self.users.write() = Arc::new(users);
        Ok(true)
    }

    /// Who sent a request with this metadata over a connection with these
    /// (already verified) certificates.
    pub fn caller(
        &self,
        metadata: &MetadataMap,
        certs: Option<Arc<Vec<CertificateDer<'static>>>>,
    ) -> Result<Caller, ApiError> {
        let users = self.users.read().clone();
        if let Some(leaf) = certs.as_ref().and_then(|c| c.first()) {
            if let Some(id) = raftq_certs::node_id_of(leaf.as_ref()) {
                return Ok(Caller::Node(id));
            }
            if let Some(name) = raftq_certs::user_of(leaf.as_ref()) {
                return match users.by_name(&name) {
                    Some(user) => Ok(Caller::User(user.clone())),
                    None => Err(ApiError::Unauthenticated(format!(
                        "the client certificate names user {name}, who is not in the auth file"
                    ))),
                };
            }
        }
        let bearer = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match bearer {
            Some(token) => users
                .by_token(token.trim())
                .map(|u| Caller::User(u.clone()))
                .ok_or_else(|| ApiError::Unauthenticated("unknown bearer token".into())),
            None => Err(ApiError::Unauthenticated(
                "this cluster needs credentials: a client certificate or a bearer token \
                 (raftq --token, RAFTQ_TOKEN)"
                    .into(),
            )),
        }
    }
}

/// Whether `caller` may exercise `right` on `queue` (`None`: the cluster).
pub fn authorize(caller: &Caller, right: Right, queue: Option<&str>) -> Result<(), ApiError> {
    match caller {
        Caller::Node(_) => Ok(()),
        Caller::User(user) if user.may(right, queue) => Ok(()),
        Caller::User(user) => Err(ApiError::PermissionDenied(match queue {
            Some(q) => format!(
                "user {} has no {} right on queue '{q}'",
                user.name,
                right.name()
            ),
            None => format!("user {} is not an admin of the cluster", user.name),
        })),
    }
}

/// Until exit: reloads the auth file when it changes.
pub async fn watch(guard: Arc<Guard>) {
    let mut ticks = tokio::time::interval(LOOK_EVERY);
    loop {
        ticks.tick().await;
        match guard.reload_if_changed() {
            Ok(true) => tracing::info!(file = %guard.path.display(), "auth file changed: reloaded"),
            Ok(false) => {}
            Err(e) => tracing::error!("{e}; keeping the previous users"),
        }
    }
}
