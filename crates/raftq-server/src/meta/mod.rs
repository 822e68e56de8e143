//! The metadata group: the catalog of queues and their placement, the
//! reconciliation that starts and stops this node's replicas to match it, and
//! the cluster's membership (which nodes, which data dirs).

pub mod catalog;
pub mod departure;
pub mod heal;
pub mod identity;
pub mod membership;
pub mod rebalance;
pub mod reconcile;
