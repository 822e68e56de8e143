//! One test per promise the queue makes (README "Guarantees" and "Delivery guarantees"), named after it.

use raftq_queue::{
    Command, ConsumerId, DeadLetterReason, Effect, Message, Offset, Outcome, Overflow, ProducerSeq,
    PublishError, QueueOptions, Settlement, WorkQueue,
};

fn queue(edit: impl FnOnce(&mut QueueOptions)) -> WorkQueue {
    let mut options = QueueOptions::default();
    edit(&mut options);
    WorkQueue::new(options)
}

fn apply(q: &mut WorkQueue, cmd: Command) -> (Outcome, Vec<Effect>) {
    let mut effects = Vec::new();
    let outcome = q.apply(cmd, &mut effects);
    (outcome, effects)
}

fn publish(q: &mut WorkQueue, now_ms: u64, payloads: &[&str]) -> Outcome {
    let messages = payloads
        .iter()
        .map(|p| Message::new(p.to_string()))
        .collect();
    apply(
        q,
        Command::Publish {
            now_ms,
            producer: None,
            key: None,
            messages,
        },
    )
    .0
}

fn publish_as(q: &mut WorkQueue, producer: &str, sequence: u64, payloads: &[&str]) -> Outcome {
    let messages = payloads
        .iter()
        .map(|p| Message::new(p.to_string()))
        .collect();
    let producer = Some(ProducerSeq {
        producer_id: producer.into(),
        sequence,
    });
    apply(
        q,
        Command::Publish {
            now_ms: 0,
            producer,
            key: None,
            messages,
        },
    )
    .0
}

fn attach(q: &mut WorkQueue, now_ms: u64, consumer: ConsumerId, prefetch: u32) -> Vec<Effect> {
    apply(
        q,
        Command::Attach {
            now_ms,
            consumer,
            prefetch,
        },
    )
    .1
}

fn settle(
    q: &mut WorkQueue,
    now_ms: u64,
    consumer: ConsumerId,
    offsets: &[Offset],
    outcome: Settlement,
) -> (Outcome, Vec<Effect>) {
    apply(
        q,
        Command::Settle {
            now_ms,
            consumer,
            offsets: offsets.to_vec(),
            outcome,
        },
    )
}

fn delivered(effects: &[Effect]) -> Vec<(ConsumerId, Offset, u32)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Deliver { consumer, delivery } => {
                Some((*consumer, delivery.offset, delivery.delivery_count))
            }
            Effect::DeadLetter(_) => None,
        })
        .collect()
}

fn dead_lettered(effects: &[Effect]) -> Vec<(Offset, DeadLetterReason)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::DeadLetter(d) => Some((d.source_offset, d.reason)),
            Effect::Deliver { .. } => None,
        })
        .collect()
}

fn restore(q: &WorkQueue) -> WorkQueue {
    let config = bincode::config::standard();
    let bytes = bincode::serde::encode_to_vec(q, config).unwrap();
    bincode::serde::decode_from_slice(&bytes, config).unwrap().0
}

#[test]
fn acked_message_never_redelivered() {
    let mut q = queue(|o| o.ack_timeout_ms = Some(10));
    publish(&mut q, 0, &["a", "b"]);
    attach(&mut q, 0, 1, 2);
    settle(&mut q, 0, 1, &[0], Settlement::Ack);
    let mut q = restore(&q);
    let mut effects = apply(&mut q, Command::ResetConsumers { now_ms: 5 }).1;
    effects.extend(attach(&mut q, 5, 2, 10));
    effects.extend(
        apply(
            &mut q,
            Command::Detach {
                now_ms: 6,
                consumer: 2,
            },
        )
        .1,
    );
    effects.extend(attach(&mut q, 6, 3, 10));
    effects.extend(apply(&mut q, Command::Tick { now_ms: 100 }).1);
    assert!(delivered(&effects)
        .iter()
        .all(|(_, offset, _)| *offset != 0));
    assert_eq!(delivered(&effects).len(), 3, "b came back three times");
}

#[test]
fn poison_message_dead_lettered_after_exactly_max_deliveries() {
    let mut q = queue(|o| {
        o.max_deliveries = Some(5);
        o.dead_letter_queue = Some("dead".into());
    });
    publish(&mut q, 0, &["poison"]);
    let mut deliveries = delivered(&attach(&mut q, 0, 1, 1)).len();
    let mut letters = Vec::new();
    for _ in 0..10 {
        let (_, effects) = settle(&mut q, 0, 1, &[0], Settlement::Requeue);
        deliveries += delivered(&effects).len();
        letters.extend(dead_lettered(&effects));
    }
    assert_eq!(deliveries, 5);
    assert_eq!(letters, vec![(0, DeadLetterReason::DeliveryLimit)]);
    let letter = q.pending_dead_letters().next().unwrap();
    assert_eq!(letter.message.headers["x-death-count"], "5");
    assert_eq!(letter.message.headers["x-death-reason"], "delivery_limit");
    assert_eq!(q.depth(), 0);
}

#[test]
fn delivery_count_counts_every_delivery_ended_without_ack() {
    let mut q = queue(|o| o.ack_timeout_ms = Some(10));
    publish(&mut q, 0, &["m"]);
    attach(&mut q, 0, 1, 1);
    settle(&mut q, 0, 1, &[0], Settlement::Requeue); // nack
    apply(
        &mut q,
        Command::Detach {
            now_ms: 0,
            consumer: 1,
        },
    ); // consumer gone
    attach(&mut q, 0, 2, 1);
    apply(&mut q, Command::Tick { now_ms: 10 }); // ack timeout
    let effects = apply(&mut q, Command::ResetConsumers { now_ms: 10 }).1; // leader change
    assert!(effects.is_empty());
    let effects = attach(&mut q, 10, 3, 1);
    assert_eq!(delivered(&effects), vec![(3, 0, 4)]);
    assert_eq!(q.browse(0, 1)[0].delivery_count, 4);
}

#[test]
fn first_deliveries_follow_publish_order() {
    let mut q = queue(|_| {});
    for c in 1..=3 {
        attach(&mut q, 0, c, 2);
    }
    let mut firsts = Vec::new();
    for round in 0..20u64 {
        let payloads: Vec<String> = (0..3).map(|i| format!("m{round}-{i}")).collect();
        let refs: Vec<&str> = payloads.iter().map(String::as_str).collect();
        let messages = refs.iter().map(|p| Message::new(p.to_string())).collect();
        let (_, mut effects) = apply(
            &mut q,
            Command::Publish {
                now_ms: 0,
                producer: None,
                key: None,
                messages,
            },
        );
        // Consumers nack one and ack the rest of what they hold.
        for c in 1..=3 {
            let held = q.held_by(c);
            if let Some((&first, rest)) = held.split_first() {
                effects.extend(settle(&mut q, 0, c, rest, Settlement::Ack).1);
                effects.extend(settle(&mut q, 0, c, &[first], Settlement::Requeue).1);
            }
        }
        firsts.extend(
            delivered(&effects)
                .into_iter()
                .filter(|d| d.2 == 0)
                .map(|d| d.1),
        );
    }
    assert!(firsts.windows(2).all(|w| w[0] < w[1]), "{firsts:?}");
}

#[test]
fn prefetch_is_never_exceeded() {
    let mut q = queue(|_| {});
    attach(&mut q, 0, 1, 3);
    attach(&mut q, 0, 2, 0);
    publish(&mut q, 0, &["a"; 20]);
    assert_eq!(q.held_by(1).len(), 3);
    assert_eq!(q.held_by(2).len(), 1, "prefetch 0 counts as 1");
    settle(&mut q, 0, 1, &[0, 2], Settlement::Ack);
    assert_eq!(q.held_by(1).len(), 3);
    assert_eq!(q.unacked(), 4);
    assert_eq!(q.ready(), 14);
}

#[test]
fn retried_publish_is_stored_once_with_its_original_offsets() {
    let mut q = queue(|_| {});
    publish(&mut q, 0, &["x"]);
    let first = publish_as(&mut q, "p", 7, &["a", "b"]);
    assert_eq!(
        first,
        Outcome::Published {
            offsets: vec![1, 2],
            duplicate: false
        }
    );
    let restored = &mut restore(&q);
    for q in [&mut q, restored] {
        let retry = publish_as(q, "p", 7, &["a", "b"]);
        assert_eq!(
            retry,
            Outcome::Published {
                offsets: vec![1, 2],
                duplicate: true
            }
        );
        assert_eq!(q.depth(), 3);
    }
}

#[test]
fn sequence_gap_is_refused() {
    let mut q = queue(|_| {});
    publish_as(&mut q, "p", 0, &["a"]);
    let gap = publish_as(&mut q, "p", 2, &["c"]);
    let expected = PublishError::SequenceGap {
        producer_id: "p".into(),
        expected: 1,
        got: 2,
    };
    assert_eq!(gap, Outcome::PublishRejected(expected));
    assert_eq!(q.depth(), 1);
}

#[test]
fn rejected_publish_changes_nothing_but_the_time() {
    let mut q = queue(|o| {
        o.max_length = Some(2);
        o.max_message_bytes = 4;
    });
    publish_as(&mut q, "p", 0, &["a", "b"]);
    let rejected = [
        (vec![], None),
        (vec!["12345"], None),
        (vec!["c"], Some(("p", 5))),
        (vec!["c"], Some(("p", 2))),
        (vec!["c"], Some(("new", 0))),
    ];
    for (payloads, producer) in rejected {
        let mut ticked = q.clone();
        apply(&mut ticked, Command::Tick { now_ms: 9 });
        let messages = payloads
            .iter()
            .map(|p| Message::new(p.to_string()))
            .collect();
        let producer = producer.map(|(id, s)| ProducerSeq {
            producer_id: id.into(),
            sequence: s,
        });
        let (outcome, effects) = apply(
            &mut q,
            Command::Publish {
                now_ms: 9,
                producer,
                key: None,
                messages,
            },
        );
        assert!(
            matches!(outcome, Outcome::PublishRejected(_)),
            "{outcome:?}"
        );
        assert!(effects.is_empty());
        assert_eq!(q, ticked);
    }
    // The unknown producer refused for a full queue was not remembered.
    assert_eq!(q.remembered_producers(), 1);
}

#[test]
fn oversize_message_rejects_whole_batch() {
    let mut q = queue(|o| o.max_message_bytes = 3);
    let outcome = publish(&mut q, 0, &["abc", "abcd", "a"]);
    assert_eq!(
        outcome,
        Outcome::PublishRejected(PublishError::MessageTooLarge { size: 4, max: 3 })
    );
    assert_eq!(q.next_offset(), 0);
}

#[test]
fn held_messages_never_expire_nor_get_dropped() {
    let mut q = queue(|o| {
        o.message_ttl_ms = Some(100);
        o.max_length = Some(2);
        o.overflow = Overflow::DropHead;
    });
    publish(&mut q, 0, &["held"]);
    attach(&mut q, 0, 1, 1);
    let (_, effects) = apply(&mut q, Command::Tick { now_ms: 1_000 });
    assert!(effects.is_empty());
    publish(&mut q, 1_000, &["a", "b"]);
    assert_eq!(q.held_by(1), vec![0]);
    assert_eq!(q.depth(), 2, "only the oldest ready message was dropped");
    assert_eq!(
        q.browse(0, 10).iter().map(|v| v.offset).collect::<Vec<_>>(),
        vec![0, 2]
    );
}

#[test]
fn expired_message_is_never_delivered() {
    let mut q = queue(|o| {
        o.message_ttl_ms = Some(100);
        o.dead_letter_queue = Some("dead".into());
    });
    publish(&mut q, 0, &["a"]);
    let effects = attach(&mut q, 100, 1, 1);
    assert_eq!(
        dead_lettered(&effects),
        vec![(0, DeadLetterReason::Expired)]
    );
    assert!(delivered(&effects).is_empty());
}

#[test]
fn leader_clock_going_back_does_not_move_time_back() {
    let mut q = queue(|o| o.message_ttl_ms = Some(100));
    publish(&mut q, 1_000, &["a"]);
    publish(&mut q, 900, &["b"]);
    assert_eq!(q.clock_ms(), 1_000);
    assert_eq!(q.browse(1, 1)[0].publish_time_ms, 1_000);
    apply(&mut q, Command::Tick { now_ms: 1_100 });
    assert_eq!(q.depth(), 0);
}

#[test]
fn next_deadline_is_when_a_tick_changes_state() {
    let mut q = queue(|o| {
        o.message_ttl_ms = Some(300);
        o.ack_timeout_ms = Some(100);
    });
    assert_eq!(q.next_deadline(), None);
    publish(&mut q, 0, &["a", "b"]);
    attach(&mut q, 50, 1, 1);
    assert_eq!(q.next_deadline(), Some(150));
    let mut early = q.clone();
    apply(&mut early, Command::Tick { now_ms: 149 });
    assert_eq!((early.held_by(1), early.depth()), (vec![0], 2));
    let (_, effects) = apply(&mut q, Command::Tick { now_ms: 150 });
    assert_eq!(delivered(&effects), vec![(1, 0, 1)]);
    assert_eq!(q.next_deadline(), Some(250));
}

#[test]
fn dead_letters_stay_pending_until_confirmed_and_survive_snapshots() {
    let mut q = queue(|o| o.dead_letter_queue = Some("dead".into()));
    publish(&mut q, 0, &["a", "b", "c"]);
    attach(&mut q, 0, 1, 3);
    settle(&mut q, 0, 1, &[2, 0, 1], Settlement::Reject);
    let mut q = restore(&q);
    let seqs: Vec<(u64, Offset)> = q
        .pending_dead_letters()
        .map(|d| (d.seq, d.source_offset))
        .collect();
    assert_eq!(seqs, vec![(1, 2), (2, 0), (3, 1)]);
    apply(&mut q, Command::DeadLettered { up_to_seq: 2 });
    let seqs: Vec<u64> = q.pending_dead_letters().map(|d| d.seq).collect();
    assert_eq!(seqs, vec![3]);
    settle(&mut q, 0, 1, &[], Settlement::Ack);
    publish(&mut q, 0, &["d"]);
    let (_, effects) = settle(&mut q, 0, 1, &[3], Settlement::Reject);
    assert!(matches!(&effects[..], [Effect::DeadLetter(d)] if d.seq == 4));
}

#[test]
fn settle_by_unknown_consumer_settles_nothing() {
    let mut q = queue(|_| {});
    publish(&mut q, 0, &["a"]);
    attach(&mut q, 0, 1, 1);
    let (outcome, effects) = settle(&mut q, 0, 2, &[0, 9], Settlement::Ack);
    assert_eq!(
        outcome,
        Outcome::Settled {
            settled: vec![],
            unknown: vec![0, 9]
        }
    );
    assert!(effects.is_empty());
    assert_eq!(
        apply(
            &mut q,
            Command::Detach {
                now_ms: 0,
                consumer: 2
            }
        )
        .0,
        Outcome::Done
    );
    assert_eq!(q.held_by(1), vec![0]);
}

#[test]
fn snapshot_restores_an_identical_queue() {
    let mut q = queue(|o| {
        o.ack_timeout_ms = Some(10);
        o.dead_letter_queue = Some("dead".into());
        o.max_deliveries = Some(2);
    });
    publish_as(&mut q, "p", 0, &["a", "b", "c"]);
    attach(&mut q, 0, 1, 2);
    attach(&mut q, 0, 2, 1);
    settle(&mut q, 1, 1, &[0], Settlement::Requeue);
    let mut restored = restore(&q);
    assert_eq!(restored, q);
    let cmds = [
        Command::Tick { now_ms: 20 },
        Command::Publish {
            now_ms: 20,
            producer: None,
            key: None,
            messages: vec![Message::new("d")],
        },
        Command::Detach {
            now_ms: 21,
            consumer: 1,
        },
    ];
    for cmd in cmds {
        assert_eq!(apply(&mut q, cmd.clone()), apply(&mut restored, cmd));
    }
    assert_eq!(restored, q);
}

#[test]
fn replicas_applying_the_same_log_agree() {
    let log = vec![
        Command::Attach {
            now_ms: 1,
            consumer: 7,
            prefetch: 2,
        },
        Command::Publish {
            now_ms: 2,
            producer: None,
            key: None,
            messages: vec![Message::new("a"), Message::new("b").with_header("k", "v")],
        },
        Command::Settle {
            now_ms: 3,
            consumer: 7,
            offsets: vec![1],
            outcome: Settlement::Requeue,
        },
        Command::ResetConsumers { now_ms: 4 },
    ];
    let mut leader = queue(|_| {});
    let mut follower = queue(|_| {});
    for cmd in log {
        assert_eq!(apply(&mut leader, cmd.clone()), apply(&mut follower, cmd));
    }
    assert_eq!(leader, follower);
}
