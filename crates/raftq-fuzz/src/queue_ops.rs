//! Arbitrary command sequences against both queue state machines, checking
//! after every command what `raftq_queue`'s semantics promise: no panic, a
//! refused command changes nothing observable but time, offsets are dense,
//! counts add up, limits hold, and a bincode round trip (the snapshot
//! encoding) gives back an equal state.

use std::collections::BTreeMap;

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use raftq_queue::{
    Command, Effect, Message, Outcome, Overflow, ProducerSeq, PublishKey, QueueOptions, Settlement,
    StreamLog, WorkQueue,
};

/// Small limits, so that sequences of a few dozen commands reach them.
#[derive(Arbitrary, Debug)]
struct Options {
    max_deliveries: Option<u8>,
    dead_letter_queue: bool,
    message_ttl_ms: Option<u16>,
    max_length: Option<u8>,
    max_bytes: Option<u16>,
    drop_head: bool,
    ack_timeout_ms: Option<u16>,
    max_message_bytes: u16,
    dedup_window: u8,
    single_active_consumer: bool,
    max_age_ms: Option<u16>,
}

impl Options {
    fn build(&self) -> QueueOptions {
        QueueOptions {
            max_deliveries: self.max_deliveries.map(u32::from),
            dead_letter_queue: self.dead_letter_queue.then(|| "dlq".to_string()),
            message_ttl_ms: self.message_ttl_ms.map(u64::from),
            max_length: self.max_length.map(u64::from),
            max_bytes: self.max_bytes.map(u64::from),
            overflow: if self.drop_head {
                Overflow::DropHead
            } else {
                Overflow::RejectPublish
            },
            ack_timeout_ms: self.ack_timeout_ms.map(u64::from),
            max_message_bytes: u64::from(self.max_message_bytes),
            dedup_window: u32::from(self.dedup_window),
            single_active_consumer: self.single_active_consumer,
            max_age_ms: self.max_age_ms.map(u64::from),
        }
    }
}

/// One command, in terms that make collisions likely: few producers, few
/// consumers, small offsets, time that mostly moves forward a little.
#[derive(Arbitrary, Debug)]
enum Op {
    Publish {
        dt: i16,
        producer: Option<(u8, u8)>,
        /// A publish key (source, counter), ignored when a producer is set.
        key: Option<(u8, u8)>,
        /// Payload size and header count per message.
        messages: Vec<(u8, u8)>,
    },
    Attach {
        dt: i16,
        consumer: u8,
        prefetch: u8,
    },
    Detach {
        dt: i16,
        consumer: u8,
    },
    Settle {
        dt: i16,
        consumer: u8,
        offsets: Vec<u8>,
        outcome: u8,
    },
    Tick {
        dt: i16,
    },
    ResetConsumers {
        dt: i16,
    },
    DeadLettered {
        up_to_seq: u8,
    },
    CommitOffset {
        dt: i16,
        consumer: String,
        offset: u16,
    },
    /// Snapshot and restore: replace the state by its round trip.
    RoundTrip,
}

/// The one place a publish command is built.
pub fn publish_command(
    now_ms: u64,
    producer: Option<ProducerSeq>,
    key: Option<PublishKey>,
    messages: Vec<Message>,
) -> Command {
    Command::Publish {
        now_ms,
        producer,
        key,
        messages,
    }
}

struct Clock(u64);

impl Clock {
    /// Leader time; a negative step is a new leader whose clock is behind.
    fn step(&mut self, dt: i16) -> u64 {
        self.0 = self.0.saturating_add_signed(i64::from(dt));
        self.0
    }
}

fn message(size: u8, headers: u8, n: usize) -> Message {
    let mut m = Message::new(Bytes::from(vec![n as u8; usize::from(size)]));
    for h in 0..headers % 4 {
        m = m.with_header(format!("h{h}"), format!("{n}"));
    }
    m
}

/// The command `op` stands for, or `None` for a round trip.
fn command(op: &Op, clock: &mut Clock, published: &mut usize) -> Option<Command> {
    Some(match op {
        Op::Publish {
            dt,
            producer,
            key,
            messages,
        } => {
            let msgs = messages
                .iter()
                .take(16)
                .map(|(size, headers)| {
                    *published += 1;
                    message(*size, *headers, *published)
                })
                .collect();
            let producer = producer.map(|(id, seq)| ProducerSeq {
                producer_id: format!("p{}", id % 4),
                sequence: u64::from(seq),
            });
            let key = key.map(|(source, counter)| PublishKey {
                source: u64::from(source % 3),
                counter: u64::from(counter % 16),
            });
            publish_command(clock.step(*dt), producer, key, msgs)
        }
        Op::Attach {
            dt,
            consumer,
            prefetch,
        } => Command::Attach {
            now_ms: clock.step(*dt),
            consumer: u64::from(consumer % 4),
            prefetch: u32::from(*prefetch % 8),
        },
        Op::Detach { dt, consumer } => Command::Detach {
            now_ms: clock.step(*dt),
            consumer: u64::from(consumer % 4),
        },
        Op::Settle {
            dt,
            consumer,
            offsets,
            outcome,
        } => Command::Settle {
            now_ms: clock.step(*dt),
            consumer: u64::from(consumer % 4),
            offsets: offsets.iter().take(16).map(|o| u64::from(*o)).collect(),
            outcome: match outcome % 3 {
                0 => Settlement::Ack,
                1 => Settlement::Requeue,
                _ => Settlement::Reject,
            },
        },
        Op::Tick { dt } => Command::Tick {
            now_ms: clock.step(*dt),
        },
        Op::ResetConsumers { dt } => Command::ResetConsumers {
            now_ms: clock.step(*dt),
        },
        Op::DeadLettered { up_to_seq } => Command::DeadLettered {
            up_to_seq: u64::from(*up_to_seq),
        },
        Op::CommitOffset {
            dt,
            consumer,
            offset,
        } => Command::CommitOffset {
            now_ms: clock.step(*dt),
            consumer: consumer.chars().take(300).collect(),
            offset: u64::from(*offset),
        },
        Op::RoundTrip => return None,
    })
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

fn round_trip<T>(value: &T) -> T
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let bytes = bincode::serde::encode_to_vec(value, config()).expect("a state encodes");
    let (back, read): (T, usize) =
        bincode::serde::decode_from_slice(&bytes, config()).expect("an encoded state decodes");
    assert_eq!(read, bytes.len(), "the decoder reads the whole encoding");
    assert_eq!(
        &back, value,
        "a round trip through bincode changes the state"
    );
    back
}

fn refused(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::PublishRejected(_) | Outcome::Invalid(_))
}

/// Checks a Published outcome against the next offset before and after.
fn check_offsets(outcome: &Outcome, n: usize, before: u64, after: u64) {
    if let Outcome::Published { offsets, duplicate } = outcome {
        if *duplicate {
            assert_eq!(after, before, "a duplicate stores nothing");
            if !offsets.is_empty() {
                assert_eq!(offsets.len(), n, "a duplicate answers every offset");
            }
        } else {
            let expected: Vec<u64> = (before..before + n as u64).collect();
            assert_eq!(offsets, &expected, "offsets are dense from the next offset");
            assert_eq!(after, before + n as u64);
        }
        assert!(
            offsets.windows(2).all(|w| w[1] == w[0] + 1),
            "batch offsets contiguous"
        );
    }
}

/// What a client can see of a work queue.
#[derive(Debug, PartialEq, Eq)]
struct WorkView {
    depth: u64,
    ready: u64,
    unacked: u64,
    bytes: u64,
    next_offset: u64,
    consumers: Vec<u64>,
    stored: Vec<(u64, Bytes, u32)>,
    held: BTreeMap<u64, Vec<u64>>,
    dead_letters: usize,
}

fn work_view(q: &WorkQueue) -> WorkView {
    let consumers = q.consumer_ids();
    WorkView {
        depth: q.depth(),
        ready: q.ready(),
        unacked: q.unacked(),
        bytes: q.bytes(),
        next_offset: q.next_offset(),
        held: consumers.iter().map(|c| (*c, q.held_by(*c))).collect(),
        consumers,
        stored: q
            .browse(0, usize::MAX)
            .into_iter()
            .map(|v| (v.offset, v.message.payload, v.delivery_count))
            .collect(),
        dead_letters: q.pending_dead_letters().count(),
    }
}

fn check_work(q: &WorkQueue, view: &WorkView) {
    assert_eq!(
        view.depth,
        view.ready + view.unacked,
        "depth = ready + unacked"
    );
    assert_eq!(
        view.stored.len() as u64,
        view.depth,
        "browse sees every stored message"
    );
    assert!(
        view.stored.windows(2).all(|w| w[0].0 < w[1].0),
        "browse ascends"
    );
    assert!(view.stored.iter().all(|s| s.0 < view.next_offset));
    let bytes: u64 = view.stored.iter().map(|s| s.1.len() as u64).sum();
    assert_eq!(bytes, view.bytes, "bytes = sum of stored payloads");
    let held: u64 = view.held.values().map(|h| h.len() as u64).sum();
    assert_eq!(held, view.unacked, "unacked = what consumers hold");
    for offsets in view.held.values() {
        for o in offsets {
            assert!(view.stored.iter().any(|s| s.0 == *o), "held {o} is stored");
        }
    }
    let options = q.options();
    if options.overflow == Overflow::RejectPublish {
        if let Some(max) = options.max_length {
            assert!(view.depth <= max, "max_length with reject-publish");
        }
        if let Some(max) = options.max_bytes {
            assert!(view.bytes <= max, "max_bytes with reject-publish");
        }
    }
}

/// What a reader can see of a stream.
#[derive(Debug, PartialEq, Eq)]
struct StreamView {
    first_offset: u64,
    next_offset: u64,
    len: u64,
    bytes: u64,
    stored: Vec<(u64, Bytes)>,
    committed: Vec<(String, u64)>,
}

fn stream_view(s: &StreamLog) -> StreamView {
    StreamView {
        first_offset: s.first_offset(),
        next_offset: s.next_offset(),
        len: s.len(),
        bytes: s.bytes(),
        stored: s
            .read(0, usize::MAX)
            .into_iter()
            .map(|v| (v.offset, v.message.payload))
            .collect(),
        committed: s
            .committed_offsets()
            .map(|(n, o)| (n.to_string(), o))
            .collect(),
    }
}

fn check_stream(s: &StreamLog, view: &StreamView) {
    assert!(view.first_offset <= view.next_offset);
    assert_eq!(
        view.len,
        view.next_offset - view.first_offset,
        "retained range is dense"
    );
    let offsets: Vec<u64> = view.stored.iter().map(|m| m.0).collect();
    let expected: Vec<u64> = (view.first_offset..view.next_offset).collect();
    assert_eq!(offsets, expected, "retained offsets are first..next");
    let bytes: u64 = view.stored.iter().map(|m| m.1.len() as u64).sum();
    assert_eq!(bytes, view.bytes, "bytes = sum of retained payloads");
    for (name, offset) in &view.committed {
        assert!(*offset <= view.next_offset, "{name} committed past the end");
    }
    if let Some(max) = s.options().max_length {
        assert!(view.len <= max, "max_length retention");
    }
    if let Some(max) = s.options().max_bytes {
        assert!(view.bytes <= max, "max_bytes retention");
    }
}

/// Runs one fuzz input: options, then a command sequence applied to a work
/// queue and to a stream side by side.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(options) = Options::arbitrary(&mut u) else {
        return;
    };
    let Ok(ops) = Vec::<Op>::arbitrary(&mut u) else {
        return;
    };
    let options = options.build();
    let mut work = WorkQueue::new(options.clone());
    let mut stream = StreamLog::new(options);
    let mut clock = Clock(1_000);
    let mut published = 0usize;
    for op in ops.iter().take(200) {
        let Some(cmd) = command(op, &mut clock, &mut published) else {
            work = round_trip(&work);
            stream = round_trip(&stream);
            continue;
        };
        let encoded = bincode::serde::encode_to_vec(&cmd, config()).expect("a command encodes");
        let (decoded, _): (Command, usize) =
            bincode::serde::decode_from_slice(&encoded, config()).expect("a command decodes");
        assert_eq!(decoded, cmd, "a command survives the log encoding");
        let batch = match &cmd {
            Command::Publish { messages, .. } => messages.len(),
            _ => 0,
        };
        let time_only = cmd.now_ms().map(|now_ms| Command::Tick { now_ms });

        let before = work.next_offset();
        let mut just_time = work.clone();
        let mut ignored = Vec::new();
        if let Some(tick) = time_only.clone() {
            just_time.apply(tick, &mut ignored);
        }
        let mut effects: Vec<Effect> = Vec::new();
        let outcome = work.apply(cmd.clone(), &mut effects);
        let view = work_view(&work);
        if refused(&outcome) {
            assert_eq!(
                view,
                work_view(&just_time),
                "work queue: refused {cmd:?} ({outcome:?}) changed more than time"
            );
        }
        check_offsets(&outcome, batch, before, work.next_offset());
        check_work(&work, &view);

        let before = stream.next_offset();
        let mut just_time = stream.clone();
        if let Some(tick) = time_only {
            just_time.apply(tick);
        }
        let outcome = stream.apply(cmd.clone());
        let view = stream_view(&stream);
        if refused(&outcome) {
            assert_eq!(
                view,
                stream_view(&just_time),
                "stream: refused {cmd:?} ({outcome:?}) changed more than time"
            );
        }
        check_offsets(&outcome, batch, before, stream.next_offset());
        check_stream(&stream, &view);
    }
    round_trip(&work);
    round_trip(&stream);
}
