//! What a queue group's leader does besides answering requests: the consumer
//! sessions it hosts, the order it proposes an idempotent producer's batches
//! in, its upkeep (consumer reset, ticks, dead letters), moving the group's
//! replicas to where the catalog wants them, and finishing a membership change
//! an earlier leader left half done (any group's leader, metadata included).

pub mod joint;
pub mod proposal_order;
pub mod replica_moves;
pub mod sessions;
pub mod transfer;
pub mod upkeep;
