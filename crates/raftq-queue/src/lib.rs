//! raftq's queue state machines: commands in, state and effects out.
//!
//! A [`WorkQueue`] or a [`StreamLog`] is replicated by Raft: every replica
//! applies the same committed [`Command`]s and so holds the same state. Nothing here does I/O,
//! reads a clock or draws a random number; time is the `now_ms` the leader put
//! in each command. Deliveries and dead letters are [`Effect`]s that only the
//! leader executes.
//!
//! # Semantics
//!
//! - **Time** is the latest `now_ms` applied; a command with an older time does
//!   not move it back. Each timed command first returns held messages whose ack
//!   timeout passed (`delivered_at + ack_timeout_ms <= now`), then expires ready
//!   messages past their TTL (`publish_time_ms + message_ttl_ms <= now`). A
//!   message held by a consumer never expires; one returned past its TTL expires
//!   before it could be dispatched again.
//! - **Offsets** are dense from 0, contiguous per batch, never reused.
//! - **Dispatch** runs at the end of every command: while a message is ready and a
//!   consumer has credit (held < prefetch), the lowest ready offset goes to the
//!   next consumer with credit in attach order after the last one served
//!   (round robin), or only to the earliest-attached consumer under
//!   single-active-consumer. First deliveries are therefore in offset order.
//! - **`delivery_count`** counts deliveries that ended without an ack (requeue,
//!   reject, detach, reset, ack timeout). Reaching `max_deliveries` dead-letters the
//!   message instead of requeueing it; reject always dead-letters.
//! - **Dead letters** get a contiguous `seq` from 1 and `x-death-*` headers and
//!   stay pending until [`Command::DeadLettered`]; without a dead-letter queue the
//!   message is dropped. Returns of several messages at once (detach, reset,
//!   timeouts) are processed in ascending offset order.
//! - **Limits** (`max_length`, `max_bytes`) count ready + unacked messages and are
//!   checked after expiry: `RejectPublish` refuses the whole batch, `DropHead` stores
//!   it and then dead-letters the oldest *ready* messages (never held ones).
//! - **Idempotent producers**: a batch of n from [`ProducerSeq`] `{id, s}` covers
//!   `s..=s+n-1`. The next batch must start at `last + 1` (else `SequenceGap`); a
//!   batch wholly at or below `last` is a duplicate answered with its original
//!   offsets when it is among the producer's last [`BATCHES_PER_PRODUCER`]
//!   batches, and otherwise refused as `SequenceGap` (it may never have been
//!   stored, so it must not be confirmed); an unknown producer may start anywhere. At most
//!   `dedup_window` producers are remembered, least recently used evicted.
//! - **Publish keys**: a batch without producer id may carry a [`PublishKey`]
//!   `{source, counter}` given by the node that accepted it. A batch whose key
//!   is remembered is a duplicate answered with its original offsets (a key seen
//!   with another batch length is refused as `KeyConflict`); a key whose source
//!   is remembered but whose counter is below the source's forgotten keys is
//!   refused as `KeyForgotten` (it may have been stored). Keys are remembered
//!   for [`KEY_MEMORY_MS`] of queue time, at most [`REMEMBERED_KEYS`] of them
//!   and [`REMEMBERED_SOURCES`] sources, oldest forgotten first, apart from the
//!   producer table. A batch with a producer id ignores its key.
//! - **Publish validation order**: empty batch, oversize message, duplicate,
//!   sequence gap, queue full. A refused publish changes nothing (time aside).
//!
//! ## Streams
//!
//! - A [`StreamLog`] is append-only: readers read by offset and never consume;
//!   messages stay until retention removes the oldest. Time, offsets, publish
//!   validation (minus the queue-full check) and idempotent producers are as
//!   above.
//! - **Retention**: after every command the oldest messages are removed while
//!   `len > max_length`, `bytes > max_bytes` or
//!   `publish_time_ms + max_age_ms <= now`. A publish is never refused for size;
//!   a batch larger than `max_length` keeps only its newest messages (all its
//!   offsets are still assigned and answered). Retained offsets are always the
//!   dense range `first_offset..next_offset`.
//! - **Committed offsets**: [`Command::CommitOffset`] stores, per consumer name,
//!   the next offset it will read (at most `next_offset`; it may move back, and
//!   may be below `first_offset`). At most [`MAX_STREAM_CONSUMERS`] names.
//! - Attach, Detach and Settle are answered [`Outcome::Invalid`] (nothing
//!   changes but time); ResetConsumers and DeadLettered do nothing. A work queue
//!   answers `Invalid` to `CommitOffset`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod admit;
mod batch_codec;
mod command;
mod consumers;
mod dead_letter;
mod dedup;
mod message;
mod options;
mod publish_keys;
mod store;
mod stream;
mod work;

pub use command::{Command, Effect, Outcome, ProducerSeq, PublishError, Settlement};
pub use dead_letter::{
    DeadLetter, DeadLetterReason, HEADER_DEATH_COUNT, HEADER_DEATH_QUEUE, HEADER_DEATH_REASON,
    HEADER_DEATH_SOURCE_OFFSET,
};
pub use dedup::BATCHES_PER_PRODUCER;
pub use message::{ConsumerId, Delivery, Message, Offset, StoredView};
pub use options::{Overflow, QueueOptions, DEFAULT_DEDUP_WINDOW, DEFAULT_MAX_MESSAGE_BYTES};
pub use publish_keys::{PublishKey, KEY_MEMORY_MS, REMEMBERED_KEYS, REMEMBERED_SOURCES};
pub use stream::{StreamLog, MAX_STREAM_CONSUMERS};
pub use work::WorkQueue;
