//! What a queue group's leader does besides answering requests: the consumer
//! sessions it hosts, the order it proposes an idempotent producer's batches
//! in, and its upkeep (consumer reset, ticks, dead letters).

pub mod proposal_order;
pub mod sessions;
pub mod upkeep;
