//! Random command sequences against the naive stream model in `stream_model/`.
//!
//! After every step the stream must agree with the model on the outcome and all
//! observable state, retained offsets are dense, a published offset always reads
//! the same message until removed, offsets are never reused, and a snapshot
//! taken before the step restores to an equal value that behaves identically.

mod stream_model;

use std::collections::BTreeMap;

use proptest::prelude::*;
use raftq_queue::{
    Command, Message, Offset, Outcome, ProducerSeq, QueueOptions, Settlement, StreamLog,
};
use stream_model::{kind, Model};

#[derive(Clone, Debug)]
enum Name {
    Known(usize),
    Empty,
    TooLong,
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
    Tick {
        advance: u64,
    },
    /// A leader whose clock is behind.
    TickBack {
        back: u64,
    },
    Commit {
        advance: u64,
        name: Name,
        /// Offset relative to `next_offset()`: <= 0 is valid, > 0 is not.
        delta: i64,
    },
    /// Work-queue commands: Attach, Detach, Settle, ResetConsumers, DeadLettered.
    Foreign {
        advance: u64,
        which: u8,
    },
}

/// Reads to compare after a step: (from, count).
type Probe = (u64, usize);

fn options() -> impl Strategy<Value = QueueOptions> {
    (
        proptest::option::weighted(0.4, 1u64..8),
        proptest::option::weighted(0.3, 4u64..40),
        proptest::option::weighted(0.4, prop_oneof![1 => Just(0u64), 6 => 1u64..300]),
        prop_oneof![2 => 4u64..16, 1 => Just(1024u64)],
        prop_oneof![1 => Just(0u32), 4 => 1u32..3, 1 => Just(1024)],
    )
        .prop_map(|(len, bytes, age, mmb, window)| QueueOptions {
            max_length: len,
            max_bytes: bytes,
            max_age_ms: age,
            max_message_bytes: mmb,
            dedup_window: window,
            ..QueueOptions::default()
        })
}

fn op() -> impl Strategy<Value = Op> {
    let advance = prop_oneof![3 => Just(0u64), 3 => 1u64..50, 1 => 50u64..500];
    let name = prop_oneof![
        8 => (0usize..4).prop_map(Name::Known),
        1 => Just(Name::Empty),
        1 => Just(Name::TooLong)
    ];
    prop_oneof![
        8 => (
            advance.clone(),
            proptest::option::weighted(0.5, (0usize..3, prop_oneof![4 => Just(0i64), 1 => -3i64..0, 1 => 1i64..3])),
            prop_oneof![
                1 => Just(vec![]),
                12 => proptest::collection::vec(prop_oneof![8 => 0usize..6, 1 => 6usize..18], 1..5),
                1 => proptest::collection::vec(0usize..4, 5..12)
            ]
        )
            .prop_map(|(advance, producer, sizes)| Op::Publish { advance, producer, sizes }),
        3 => (advance.clone(), any::<usize>()).prop_map(|(advance, which)| Op::Retry { advance, which }),
        3 => advance.clone().prop_map(|advance| Op::Tick { advance }),
        1 => (1u64..100).prop_map(|back| Op::TickBack { back }),
        4 => (advance.clone(), name, prop_oneof![4 => -12i64..=0, 1 => 1i64..4])
            .prop_map(|(advance, name, delta)| Op::Commit { advance, name, delta }),
        2 => (advance, 0u8..5).prop_map(|(advance, which)| Op::Foreign { advance, which }),
    ]
}

fn probes() -> impl Strategy<Value = Vec<Probe>> {
    proptest::collection::vec(
        (
            0u64..80,
            prop_oneof![Just(0usize), 1usize..4, Just(usize::MAX)],
        ),
        3,
    )
}

fn snapshot(log: &StreamLog) -> StreamLog {
    let config = bincode::config::standard();
    let bytes = bincode::serde::encode_to_vec(log, config).expect("encode");
    let (restored, read): (StreamLog, usize) =
        bincode::serde::decode_from_slice(&bytes, config).expect("decode");
    assert_eq!(read, bytes.len());
    assert_eq!(&restored, log, "snapshot round trip changed the stream");
    let again = bincode::serde::encode_to_vec(&restored, config).expect("encode");
    assert_eq!(
        again, bytes,
        "re-encoding a restored stream gave other bytes"
    );
    restored
}

struct Harness {
    log: StreamLog,
    model: Model,
    now: u64,
    next_payload: u64,
    producer_next: BTreeMap<usize, u64>,
    producer_publishes: Vec<Command>,
    /// Every message ever stored, by offset: what that offset must read as.
    stored: BTreeMap<Offset, Message>,
}

impl Harness {
    fn new(opts: QueueOptions) -> Self {
        Self {
            log: StreamLog::new(opts.clone()),
            model: Model::new(opts),
            now: 1_000,
            next_payload: 0,
            producer_next: BTreeMap::new(),
            producer_publishes: Vec::new(),
            stored: BTreeMap::new(),
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
                let producer = producer.map(|(p, delta)| ProducerSeq {
                    producer_id: format!("p{p}"),
                    sequence: self
                        .producer_next
                        .get(&p)
                        .copied()
                        .unwrap_or(0)
                        .saturating_add_signed(delta),
                });
                let cmd = Command::Publish {
                    now_ms,
                    producer,
                    key: None,
                    messages,
                };
                if matches!(
                    &cmd,
                    Command::Publish {
                        producer: Some(_),
                        ..
                    }
                ) {
                    self.producer_publishes.push(cmd.clone());
                }
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
            Op::Tick { advance } => Command::Tick {
                now_ms: at(advance),
            },
            Op::TickBack { back } => Command::Tick {
                now_ms: self.now.saturating_sub(back),
            },
            Op::Commit {
                advance,
                name,
                delta,
            } => Command::CommitOffset {
                now_ms: at(advance),
                consumer: match name {
                    Name::Known(i) => format!("c{i}"),
                    Name::Empty => String::new(),
                    Name::TooLong => "n".repeat(256),
                },
                offset: self.log.next_offset().saturating_add_signed(delta),
            },
            Op::Foreign { advance, which } => {
                let now_ms = at(advance);
                match which {
                    0 => Command::Attach {
                        now_ms,
                        consumer: 1,
                        prefetch: 4,
                    },
                    1 => Command::Detach {
                        now_ms,
                        consumer: 1,
                    },
                    2 => Command::Settle {
                        now_ms,
                        consumer: 1,
                        offsets: vec![0, 1],
                        outcome: Settlement::Ack,
                    },
                    3 => Command::ResetConsumers { now_ms },
                    _ => Command::DeadLettered { up_to_seq: 1 },
                }
            }
        })
    }

    fn step(&mut self, op: Op, probes: &[Probe]) {
        let Some(cmd) = self.command(op) else {
            return;
        };
        let before_next = self.log.next_offset();
        let mut restored = snapshot(&self.log);
        let outcome = self.log.apply(cmd.clone());
        let restored_outcome = restored.apply(cmd.clone());
        assert_eq!(
            restored_outcome, outcome,
            "restored copy answered differently"
        );
        assert_eq!(restored, self.log, "restored copy diverged");

        let model_outcome = self.model.apply(cmd.clone());
        assert_eq!(kind(&outcome), model_outcome, "outcome of {cmd:?}");
        self.observe(&cmd, &outcome, before_next);
        self.check_state(probes);
    }

    fn observe(&mut self, cmd: &Command, outcome: &Outcome, before_next: Offset) {
        let Command::Publish {
            producer, messages, ..
        } = cmd
        else {
            return;
        };
        let Outcome::Published { offsets, duplicate } = outcome else {
            assert_eq!(
                self.log.next_offset(),
                before_next,
                "refused publish stored"
            );
            return;
        };
        if *duplicate {
            assert_eq!(self.log.next_offset(), before_next, "duplicate stored");
            // Judged by sequence only: the offsets of an earlier batch (a new
            // publish reusing old sequences gets them too, as in work queues).
            assert_eq!(offsets.len(), messages.len());
            for o in offsets {
                assert!(
                    self.stored.contains_key(o),
                    "duplicate answered unknown {o}"
                );
            }
            return;
        }
        let expected: Vec<Offset> = (before_next..before_next + messages.len() as u64).collect();
        assert_eq!(offsets, &expected, "offsets not dense from the next offset");
        for (&o, m) in offsets.iter().zip(messages) {
            assert!(
                self.stored.insert(o, m.clone()).is_none(),
                "offset {o} reused"
            );
        }
        if let Some(p) = producer {
            let index: usize = p.producer_id[1..].parse().unwrap();
            self.producer_next
                .insert(index, p.sequence + messages.len() as u64);
        }
    }

    fn check_state(&self, probes: &[Probe]) {
        let s = &self.log;
        let m = &self.model;
        assert_eq!(s.clock_ms(), m.clock);
        assert_eq!(s.first_offset(), m.first);
        assert_eq!(s.next_offset(), m.next());
        assert_eq!(s.len(), m.retained().len() as u64);
        assert_eq!(s.is_empty(), m.retained().is_empty());
        assert_eq!(s.bytes(), m.bytes());
        assert_eq!(s.remembered_producers(), m.remembered_producers());
        assert_eq!(s.next_deadline(), m.next_deadline());
        let committed: Vec<(String, Offset)> = s
            .committed_offsets()
            .map(|(n, o)| (n.to_string(), o))
            .collect();
        let model_committed: Vec<(String, Offset)> =
            m.committed.iter().map(|(n, &o)| (n.clone(), o)).collect();
        assert_eq!(committed, model_committed);
        for (name, offset) in &m.committed {
            assert_eq!(s.committed(name), Some(*offset));
        }
        assert_eq!(s.committed("never"), None);

        // Retained offsets are dense and each reads as it was published.
        let all = s.read(0, usize::MAX);
        let offsets: Vec<Offset> = all.iter().map(|v| v.offset).collect();
        assert_eq!(
            offsets,
            (s.first_offset()..s.next_offset()).collect::<Vec<_>>()
        );
        for v in &all {
            assert_eq!(
                Some(&v.message),
                self.stored.get(&v.offset),
                "{} changed",
                v.offset
            );
            assert_eq!(v.delivery_count, 0);
        }
        assert_eq!(all, m.read(0, usize::MAX));
        let times: Vec<u64> = all.iter().map(|v| v.publish_time_ms).collect();
        assert!(
            times.windows(2).all(|w| w[0] <= w[1]),
            "times not ascending"
        );

        let edges = [
            (s.first_offset().saturating_sub(1), 2),
            (s.next_offset().saturating_sub(1), 3),
            (s.next_offset(), 3),
            (u64::MAX, 1),
        ];
        for &(from, count) in probes.iter().chain(&edges) {
            assert_eq!(
                s.read(from, count),
                m.read(from, count),
                "read({from}, {count})"
            );
        }
        for time in times
            .iter()
            .flat_map(|&t| [t.saturating_sub(1), t, t + 1])
            .chain([0, s.clock_ms(), u64::MAX])
        {
            assert_eq!(
                s.offset_at_time(time),
                m.offset_at_time(time),
                "offset_at_time({time})"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512),
        ..ProptestConfig::default()
    })]

    #[test]
    fn stream_matches_reference_model(
        opts in options(),
        ops in proptest::collection::vec((op(), probes()), 1..120),
    ) {
        let mut h = Harness::new(opts);
        for (op, probes) in ops {
            h.step(op, &probes);
        }
        snapshot(&h.log);
    }
}
