//! The metadata group: the catalog of queues and their placement, and the
//! reconciliation that starts and stops this node's replicas to match it.

pub mod catalog;
pub mod reconcile;
