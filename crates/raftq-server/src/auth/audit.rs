//! The audit log: one line per admin action this node accepted from a user
//! (who, what, which queue or node), on the `raftq::audit` tracing target so
//! operators can route it apart (`RUST_LOG=raftq::audit=info`). Forwarded
//! requests are logged where they entered, once.

use crate::auth::guard::Caller;

pub fn record(caller: Option<&Caller>, action: &str, target: &str) {
    let who = caller.map_or_else(|| "anonymous (no auth file)".to_string(), Caller::name);
    if matches!(caller, Some(Caller::Node(_))) {
        return;
    }
    tracing::info!(target: "raftq::audit", who = %who, action, target, "admin action");
}
