//! What a queue group's leader does besides answering requests: the consumer
//! sessions it hosts, the order it proposes an idempotent producer's batches
//! in, its upkeep (consumer reset, ticks, dead letters) and moving the group's
//! replicas to where the catalog wants them.

pub mod proposal_order;
pub mod replica_moves;
pub mod sessions;
pub mod transfer;
pub mod upkeep;
