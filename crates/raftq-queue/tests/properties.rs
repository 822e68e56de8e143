//! Random command sequences against the naive reference model in `model/`.
//!
//! After every step the real queue must agree with the model on the outcome,
//! the effects and all observable state, and the guarantees hold: no message
//! lost or duplicated, first deliveries in offset order, prefetch respected,
//! acked messages never delivered again, snapshots round-trip exactly.

mod model;

use std::collections::{BTreeMap, BTreeSet};

use model::{Model, Place};
use proptest::prelude::*;
use raftq_queue::{
    Command, ConsumerId, Effect, Message, Offset, Outcome, Overflow, ProducerSeq, QueueOptions,
    Settlement, WorkQueue,
};

#[derive(Clone, Debug)]
enum Pick {
    /// The n-th offset the consumer holds (or offset n if it holds nothing).
    Held(usize),
    /// Any offset, possibly never published.
    Any(u64),
}

#[derive(Clone, Debug)]
enum Op {
    Publish {
        advance: u64,
        producer: Option<(usize, i64)>,
        sizes: Vec<usize>,
    },
    /// Resends an earlier producer publish unchanged, as a client retry would.
    Retry {
        advance: u64,
        which: usize,
    },
    Attach {
        advance: u64,
        consumer: ConsumerId,
        prefetch: u32,
    },
    Detach {
        advance: u64,
        consumer: ConsumerId,
    },
    Settle {
        advance: u64,
        /// Mostly a consumer that holds something, so that settles do something.
        busy: bool,
        consumer: ConsumerId,
        picks: Vec<Pick>,
        outcome: Settlement,
    },
    Tick {
        advance: u64,
    },
    /// A leader whose clock is behind.
    TickBack {
        back: u64,
    },
    Reset {
        advance: u64,
    },
    DeadLettered {
        which: usize,
    },
    /// A stream command: refused as invalid, only time passes.
    CommitOffset {
        advance: u64,
        offset: u64,
    },
    Snapshot,
}

fn options() -> impl Strategy<Value = QueueOptions> {
    (
        proptest::option::weighted(0.6, 1u32..5),
        proptest::option::weighted(0.7, Just("dlq".to_string())),
        proptest::option::weighted(0.4, 20u64..400),
        proptest::option::weighted(0.4, 1u64..10),
        proptest::option::weighted(0.3, 4u64..40),
        prop_oneof![Just(Overflow::RejectPublish), Just(Overflow::DropHead)],
        proptest::option::weighted(0.4, 20u64..400),
        prop_oneof![2 => 4u64..16, 1 => Just(1024u64)],
        prop_oneof![1 => Just(0u32), 4 => 1u32..3, 1 => Just(1024)],
        proptest::bool::weighted(0.3),
    )
        .prop_map(
            |(md, dlq, ttl, len, bytes, overflow, ack, mmb, window, sac)| QueueOptions {
                max_deliveries: md,
                dead_letter_queue: dlq,
                message_ttl_ms: ttl,
                max_length: len,
                max_bytes: bytes,
                overflow,
                ack_timeout_ms: ack,
                max_message_bytes: mmb,
                dedup_window: window,
                single_active_consumer: sac,
                max_age_ms: None,
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    let advance = prop_oneof![3 => Just(0u64), 3 => 1u64..50, 1 => 50u64..500];
    let consumer = 1u64..4;
    let pick =
        prop_oneof![3 => (0usize..8).prop_map(Pick::Held), 1 => (0u64..40).prop_map(Pick::Any)];
    let settlement = prop_oneof![
        4 => Just(Settlement::Ack),
        2 => Just(Settlement::Requeue),
        1 => Just(Settlement::Reject)
    ];
    prop_oneof![
        6 => (
            advance.clone(),
            proptest::option::weighted(0.5, (0usize..3, prop_oneof![4 => Just(0i64), 1 => -3i64..0, 1 => 1i64..3])),
            prop_oneof![
                1 => Just(vec![]),
                12 => proptest::collection::vec(prop_oneof![8 => 0usize..6, 1 => 6usize..18], 1..4)
            ]
        )
            .prop_map(|(advance, producer, sizes)| Op::Publish { advance, producer, sizes }),
        3 => (advance.clone(), any::<usize>()).prop_map(|(advance, which)| Op::Retry { advance, which }),
        4 => (advance.clone(), consumer.clone(), 0u32..4)
            .prop_map(|(advance, consumer, prefetch)| Op::Attach { advance, consumer, prefetch }),
        1 => (advance.clone(), consumer.clone()).prop_map(|(advance, consumer)| Op::Detach { advance, consumer }),
        6 => (advance.clone(), proptest::bool::weighted(0.75), consumer, proptest::collection::vec(pick, 0..4), settlement)
            .prop_map(|(advance, busy, consumer, picks, outcome)| Op::Settle { advance, busy, consumer, picks, outcome }),
        2 => advance.clone().prop_map(|advance| Op::Tick { advance }),
        1 => (1u64..100).prop_map(|back| Op::TickBack { back }),
        1 => advance.clone().prop_map(|advance| Op::Reset { advance }),
        1 => any::<usize>().prop_map(|which| Op::DeadLettered { which }),
        1 => (advance.clone(), 0u64..10).prop_map(|(advance, offset)| Op::CommitOffset { advance, offset }),
        1 => Just(Op::Snapshot),
    ]
}

fn snapshot(q: &WorkQueue) -> WorkQueue {
    let config = bincode::config::standard();
    let bytes = bincode::serde::encode_to_vec(q, config).expect("encode");
    let (restored, read): (WorkQueue, usize) =
        bincode::serde::decode_from_slice(&bytes, config).expect("decode");
    assert_eq!(read, bytes.len());
    assert_eq!(&restored, q, "snapshot round trip changed the queue");
    let again = bincode::serde::encode_to_vec(&restored, config).expect("encode");
    assert_eq!(
        again, bytes,
        "re-encoding a restored queue gave other bytes"
    );
    restored
}

struct Harness {
    queue: WorkQueue,
    /// The queue as it was before the last snapshot; it must keep behaving
    /// exactly like the restored copy.
    original: Option<WorkQueue>,
    model: Model,
    now: u64,
    next_payload: u64,
    producer_next: BTreeMap<usize, u64>,
    producer_publishes: Vec<Command>,
    acked: BTreeSet<Offset>,
    dead_lettered: BTreeSet<Offset>,
    last_first_delivery: Option<Offset>,
    last_dead_letter_seq: u64,
}

impl Harness {
    fn new(opts: QueueOptions) -> Self {
        Self {
            queue: WorkQueue::new(opts.clone()),
            original: None,
            model: Model::new(opts),
            now: 1_000,
            next_payload: 0,
            producer_next: BTreeMap::new(),
            producer_publishes: Vec::new(),
            acked: BTreeSet::new(),
            dead_lettered: BTreeSet::new(),
            last_first_delivery: None,
            last_dead_letter_seq: 0,
        }
    }

    fn command(&mut self, op: Op) -> Option<Command> {
        let mut at = |advance: u64| {
            self.now += advance;
            self.now
        };
        Some(match op {
            Op::Publish {
                advance,
                producer,
                sizes,
            } => {
                let now_ms = at(advance);
                let messages: Vec<Message> = sizes
                    .iter()
                    .map(|&size| {
                        self.next_payload += 1;
                        let mut body = format!("m{}", self.next_payload).into_bytes();
                        body.resize(size, b'.');
                        Message::new(body).with_header("n", self.next_payload.to_string())
                    })
                    .collect();
                let producer = producer.map(|(p, delta)| {
                    let next = *self.producer_next.get(&p).unwrap_or(&0);
                    ProducerSeq {
                        producer_id: format!("p{p}"),
                        sequence: next.saturating_add_signed(delta),
                    }
                });
                let cmd = Command::Publish {
                    now_ms,
                    producer,
                    key: None,
                    messages,
                };
                self.producer_publishes.push(cmd.clone());
                cmd
            }
            Op::Retry { advance, which } => {
                if self.producer_publishes.is_empty() {
                    return None;
                }
                let now = at(advance);
                let mut cmd =
                    self.producer_publishes[which % self.producer_publishes.len()].clone();
                if let Command::Publish { now_ms, .. } = &mut cmd {
                    *now_ms = now;
                }
                cmd
            }
            Op::Attach {
                advance,
                consumer,
                prefetch,
            } => Command::Attach {
                now_ms: at(advance),
                consumer,
                prefetch,
            },
            Op::Detach { advance, consumer } => Command::Detach {
                now_ms: at(advance),
                consumer,
            },
            Op::Settle {
                advance,
                busy,
                consumer,
                picks,
                outcome,
            } => {
                let busy_ones: Vec<ConsumerId> = self
                    .queue
                    .consumer_ids()
                    .into_iter()
                    .filter(|&c| !self.queue.held_by(c).is_empty())
                    .collect();
                let consumer = match busy_ones.len() {
                    n if busy && n > 0 => busy_ones[consumer as usize % n],
                    _ => consumer,
                };
                let held = self.queue.held_by(consumer);
                let offsets = picks
                    .into_iter()
                    .map(|p| match p {
                        Pick::Held(i) if !held.is_empty() => held[i % held.len()],
                        Pick::Held(i) => i as u64,
                        Pick::Any(o) => o,
                    })
                    .collect();
                Command::Settle {
                    now_ms: at(advance),
                    consumer,
                    offsets,
                    outcome,
                }
            }
            Op::Tick { advance } => Command::Tick {
                now_ms: at(advance),
            },
            Op::TickBack { back } => Command::Tick {
                now_ms: self.now.saturating_sub(back),
            },
            Op::Reset { advance } => Command::ResetConsumers {
                now_ms: at(advance),
            },
            Op::DeadLettered { which } => {
                let pending: Vec<u64> = self.queue.pending_dead_letters().map(|d| d.seq).collect();
                let up_to_seq = if pending.is_empty() {
                    which as u64 % 3
                } else {
                    pending[which % pending.len()]
                };
                Command::DeadLettered { up_to_seq }
            }
            Op::CommitOffset { advance, offset } => Command::CommitOffset {
                now_ms: at(advance),
                consumer: "c".to_string(),
                offset,
            },
            Op::Snapshot => {
                let restored = snapshot(&self.queue);
                self.original = Some(std::mem::replace(&mut self.queue, restored));
                return None;
            }
        })
    }

    fn step(&mut self, op: Op) {
        let Some(cmd) = self.command(op) else {
            return;
        };
        let mut effects = Vec::new();
        let outcome = self.queue.apply(cmd.clone(), &mut effects);
        if let Some(original) = &mut self.original {
            let mut original_effects = Vec::new();
            let original_outcome = original.apply(cmd.clone(), &mut original_effects);
            assert_eq!(
                original_outcome, outcome,
                "restored copy answered differently"
            );
            assert_eq!(original_effects, effects, "restored copy had other effects");
            assert_eq!(original, &self.queue, "restored copy diverged");
        }
        let (model_outcome, model_effects) = self.model.apply(cmd.clone());
        assert_eq!(outcome, model_outcome, "outcome of {cmd:?}");
        assert_eq!(effects, model_effects, "effects of {cmd:?}");
        self.observe(&cmd, &outcome, &effects);
        self.check_state();
    }

    fn observe(&mut self, cmd: &Command, outcome: &Outcome, effects: &[Effect]) {
        if let (
            Command::Publish {
                producer: Some(p),
                messages,
                ..
            },
            Outcome::Published {
                duplicate: false, ..
            },
        ) = (cmd, outcome)
        {
            let index: usize = p.producer_id[1..].parse().unwrap();
            self.producer_next
                .insert(index, p.sequence + messages.len() as u64);
        }
        if let (
            Command::Settle {
                outcome: Settlement::Ack,
                ..
            },
            Outcome::Settled { settled, .. },
        ) = (cmd, outcome)
        {
            for &o in settled {
                assert!(self.acked.insert(o), "offset {o} acked twice");
            }
        }
        for effect in effects {
            match effect {
                Effect::Deliver { consumer, delivery } => {
                    let o = delivery.offset;
                    assert!(!self.acked.contains(&o), "acked offset {o} delivered again");
                    assert!(
                        !self.dead_lettered.contains(&o),
                        "dead-lettered {o} delivered"
                    );
                    assert_eq!(delivery.redelivered, delivery.delivery_count > 0);
                    if !delivery.redelivered {
                        assert!(
                            self.last_first_delivery.is_none_or(|last| o > last),
                            "first delivery of {o} after {:?}",
                            self.last_first_delivery
                        );
                        self.last_first_delivery = Some(o);
                    }
                    let prefetch = self.model.consumers.iter().find(|c| c.id == *consumer);
                    let prefetch = prefetch.expect("delivery to a detached consumer").prefetch;
                    assert!(
                        self.queue.held_by(*consumer).len() <= prefetch as usize,
                        "consumer {consumer} over its prefetch {prefetch}"
                    );
                    if let Some(ttl) = self.queue.options().message_ttl_ms {
                        assert!(delivery.publish_time_ms + ttl > self.queue.clock_ms());
                    }
                }
                Effect::DeadLetter(letter) => {
                    assert!(self.dead_lettered.insert(letter.source_offset));
                    assert_eq!(
                        letter.seq,
                        self.last_dead_letter_seq + 1,
                        "dead-letter seq gap"
                    );
                    self.last_dead_letter_seq = letter.seq;
                }
            }
        }
    }

    fn check_state(&self) {
        let q = &self.queue;
        let m = &self.model;
        assert_eq!(q.clock_ms(), m.clock);
        assert_eq!(q.next_offset(), m.msgs.len() as u64);
        assert_eq!(q.depth(), m.stored().len() as u64);
        assert_eq!(q.ready(), m.ready());
        assert_eq!(q.unacked(), q.depth() - q.ready());
        assert_eq!(q.bytes(), m.bytes());
        assert_eq!(q.consumers(), m.consumers.len());
        let ids: Vec<ConsumerId> = m.consumers.iter().map(|c| c.id).collect();
        assert_eq!(q.consumer_ids(), ids);
        assert_eq!(q.next_deadline(), m.next_deadline());
        let pending: Vec<_> = q.pending_dead_letters().cloned().collect();
        assert_eq!(pending, m.pending);

        let browsed = q.browse(0, usize::MAX);
        let offsets: Vec<Offset> = browsed.iter().map(|v| v.offset).collect();
        assert_eq!(offsets, m.stored());
        for v in &browsed {
            let mm = &m.msgs[v.offset as usize];
            assert_eq!(v.message, mm.message);
            assert_eq!(v.delivery_count, mm.count, "delivery_count of {}", v.offset);
            assert_eq!(v.publish_time_ms, mm.publish_time);
        }
        if let Some(from) = offsets.get(offsets.len() / 2) {
            let tail = q.browse(*from, 2);
            assert_eq!(tail.as_slice(), &browsed[offsets.len() / 2..][..tail.len()]);
        }

        // Every published offset is in exactly one place.
        let mut holders: BTreeMap<Offset, ConsumerId> = BTreeMap::new();
        for c in &m.consumers {
            let held = q.held_by(c.id);
            assert_eq!(held, m.held_offsets(Some(c.id)), "held by {}", c.id);
            for o in held {
                assert!(holders.insert(o, c.id).is_none(), "{o} held twice");
            }
        }
        assert_eq!(holders.len() as u64, q.unacked());
        let stored: BTreeSet<Offset> = offsets.into_iter().collect();
        for o in 0..q.next_offset() {
            let places = [
                stored.contains(&o),
                self.acked.contains(&o),
                self.dead_lettered.contains(&o),
                m.msgs[o as usize].place == Place::Dropped,
            ];
            assert_eq!(
                places.iter().filter(|p| **p).count(),
                1,
                "offset {o}: {places:?}"
            );
            if holders.contains_key(&o) {
                assert!(stored.contains(&o));
            }
        }

        // Dispatch left nothing undone, and no ready message is expired.
        if q.ready() > 0 {
            assert!(m.eligible().is_empty(), "ready messages and idle credit");
        }
        if let Some(ttl) = q.options().message_ttl_ms {
            for v in &browsed {
                if !holders.contains_key(&v.offset) {
                    assert!(
                        v.publish_time_ms + ttl > q.clock_ms(),
                        "{} expired",
                        v.offset
                    );
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1024),
        ..ProptestConfig::default()
    })]

    #[test]
    fn queue_matches_reference_model(opts in options(), ops in proptest::collection::vec(op(), 1..120)) {
        let mut h = Harness::new(opts);
        for op in ops {
            h.step(op);
        }
        // The final state must also survive a snapshot.
        snapshot(&h.queue);
    }
}
