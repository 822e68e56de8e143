use super::*;
use crate::command::{ProducerSeq, PublishError, Settlement};
use crate::message::Message;

fn opts() -> QueueOptions {
    QueueOptions::default()
}

fn publish(s: &mut StreamLog, now_ms: u64, payloads: &[&str]) -> Outcome {
    s.apply(Command::Publish {
        now_ms,
        producer: None,
        key: None,
        messages: payloads
            .iter()
            .map(|p| Message::new(p.to_string()))
            .collect(),
    })
}

fn published(offsets: std::ops::Range<u64>) -> Outcome {
    Outcome::Published {
        offsets: offsets.collect(),
        duplicate: false,
    }
}

fn payloads(s: &StreamLog) -> Vec<(Offset, String)> {
    s.read(0, usize::MAX)
        .into_iter()
        .map(|v| {
            (
                v.offset,
                String::from_utf8(v.message.payload.to_vec()).unwrap(),
            )
        })
        .collect()
}

fn commit(s: &mut StreamLog, consumer: &str, offset: Offset) -> Outcome {
    s.apply(Command::CommitOffset {
        now_ms: 0,
        consumer: consumer.to_string(),
        offset,
    })
}

fn tick(s: &mut StreamLog, now_ms: u64) -> Outcome {
    s.apply(Command::Tick { now_ms })
}

#[test]
fn publish_assigns_dense_offsets_and_reads_do_not_consume() {
    let mut s = StreamLog::new(opts());
    assert!(s.is_empty());
    assert_eq!((s.first_offset(), s.next_offset()), (0, 0));
    assert_eq!(publish(&mut s, 5, &["a", "bb"]), published(0..2));
    assert_eq!(publish(&mut s, 6, &["ccc"]), published(2..3));
    assert_eq!((s.first_offset(), s.next_offset(), s.len()), (0, 3, 3));
    assert_eq!(s.bytes(), 6);
    let all = s.read(0, 10);
    assert_eq!(all, s.read(0, 10), "reading consumed something");
    let times: Vec<u64> = all.iter().map(|v| v.publish_time_ms).collect();
    assert_eq!(times, [5, 5, 6]);
    assert!(all.iter().all(|v| v.delivery_count == 0));
}

#[test]
fn publish_validation_order_matches_work_queues() {
    let mut s = StreamLog::new(QueueOptions {
        max_message_bytes: 2,
        max_length: Some(1),
        ..opts()
    });
    assert_eq!(
        publish(&mut s, 1, &[]),
        Outcome::PublishRejected(PublishError::EmptyBatch)
    );
    assert_eq!(
        publish(&mut s, 1, &["ok", "big"]),
        Outcome::PublishRejected(PublishError::MessageTooLarge { size: 3, max: 2 })
    );
    assert_eq!(s.next_offset(), 0, "a refused batch stored something");
    // Never refused for size: max_length is retention, not a limit on publish.
    assert_eq!(publish(&mut s, 1, &["a", "b", "c"]), published(0..3));
}

#[test]
fn idempotent_producer_duplicates_and_gaps() {
    let mut s = StreamLog::new(QueueOptions {
        max_length: Some(1),
        ..opts()
    });
    let send = |s: &mut StreamLog, sequence: u64, n: usize| {
        s.apply(Command::Publish {
            now_ms: 1,
            producer: Some(ProducerSeq {
                producer_id: "p".into(),
                sequence,
            }),
            key: None,
            messages: vec![Message::new("x"); n],
        })
    };
    assert_eq!(send(&mut s, 0, 2), published(0..2));
    // The retry is answered with its original offsets, even though retention
    // already removed one of them.
    assert_eq!(
        send(&mut s, 0, 2),
        Outcome::Published {
            offsets: vec![0, 1],
            duplicate: true
        }
    );
    assert_eq!(s.next_offset(), 2);
    assert_eq!(
        send(&mut s, 5, 1),
        Outcome::PublishRejected(PublishError::SequenceGap {
            producer_id: "p".into(),
            expected: 2,
            got: 5
        })
    );
    assert_eq!(send(&mut s, 2, 1), published(2..3));
    assert_eq!(s.remembered_producers(), 1);
}

#[test]
fn dedup_window_bounds_remembered_producers() {
    let mut s = StreamLog::new(QueueOptions {
        dedup_window: 1,
        ..opts()
    });
    for id in ["a", "b"] {
        s.apply(Command::Publish {
            now_ms: 1,
            producer: Some(ProducerSeq {
                producer_id: id.into(),
                sequence: 0,
            }),
            key: None,
            messages: vec![Message::new("x")],
        });
    }
    assert_eq!(s.remembered_producers(), 1);
}

#[test]
fn retention_by_length_removes_the_oldest() {
    let mut s = StreamLog::new(QueueOptions {
        max_length: Some(2),
        ..opts()
    });
    publish(&mut s, 1, &["a", "b"]);
    publish(&mut s, 2, &["c"]);
    assert_eq!(payloads(&s), [(1, "b".into()), (2, "c".into())]);
    assert_eq!((s.first_offset(), s.next_offset(), s.bytes()), (1, 3, 2));
}

#[test]
fn batch_larger_than_max_length_keeps_its_newest() {
    let mut s = StreamLog::new(QueueOptions {
        max_length: Some(2),
        ..opts()
    });
    publish(&mut s, 1, &["old"]);
    assert_eq!(publish(&mut s, 1, &["a", "b", "c", "d"]), published(1..5));
    assert_eq!(payloads(&s), [(3, "c".into()), (4, "d".into())]);
}

#[test]
fn retention_by_bytes_removes_the_oldest() {
    let mut s = StreamLog::new(QueueOptions {
        max_bytes: Some(5),
        ..opts()
    });
    publish(&mut s, 1, &["aa", "bb"]);
    assert_eq!(s.len(), 2);
    publish(&mut s, 1, &["cc"]);
    assert_eq!(payloads(&s), [(1, "bb".into()), (2, "cc".into())]);
    assert_eq!(s.bytes(), 4);
    // A message bigger than max_bytes on its own leaves the stream empty.
    publish(&mut s, 1, &["123456"]);
    assert!(s.is_empty());
    assert_eq!((s.first_offset(), s.next_offset(), s.bytes()), (4, 4, 0));
}

#[test]
fn retention_by_age_on_tick_and_on_any_timed_command() {
    let mut s = StreamLog::new(QueueOptions {
        max_age_ms: Some(100),
        ..opts()
    });
    publish(&mut s, 1000, &["a"]);
    publish(&mut s, 1050, &["b"]);
    assert_eq!(s.next_deadline(), Some(1100));
    tick(&mut s, 1099);
    assert_eq!(s.len(), 2);
    tick(&mut s, 1100);
    assert_eq!(payloads(&s), [(1, "b".into())]);
    assert_eq!(s.next_deadline(), Some(1150));
    // A commit carries time too.
    s.apply(Command::CommitOffset {
        now_ms: 1150,
        consumer: "c".into(),
        offset: 0,
    });
    assert!(s.is_empty());
    assert_eq!(s.next_deadline(), None);
    assert_eq!((s.first_offset(), s.next_offset()), (2, 2));
}

#[test]
fn age_zero_removes_at_once_and_no_age_keeps_forever() {
    let mut s = StreamLog::new(QueueOptions {
        max_age_ms: Some(0),
        ..opts()
    });
    assert_eq!(publish(&mut s, 7, &["a"]), published(0..1));
    assert!(s.is_empty());
    let mut s = StreamLog::new(opts());
    publish(&mut s, 7, &["a"]);
    tick(&mut s, u64::MAX);
    assert_eq!(s.len(), 1);
    assert_eq!(s.next_deadline(), None);
}

#[test]
fn time_never_moves_back() {
    let mut s = StreamLog::new(QueueOptions {
        max_age_ms: Some(100),
        ..opts()
    });
    publish(&mut s, 500, &["a"]);
    publish(&mut s, 300, &["b"]);
    assert_eq!(s.clock_ms(), 500);
    let times: Vec<u64> = s.read(0, 9).iter().map(|v| v.publish_time_ms).collect();
    assert_eq!(times, [500, 500]);
    tick(&mut s, 10);
    assert_eq!(s.clock_ms(), 500);
    tick(&mut s, 600);
    assert!(s.is_empty());
}

#[test]
fn read_clamps_to_the_retained_range() {
    let mut s = StreamLog::new(QueueOptions {
        max_length: Some(3),
        ..opts()
    });
    publish(&mut s, 1, &["a", "b", "c", "d", "e"]);
    let offsets = |v: Vec<StoredView>| v.iter().map(|v| v.offset).collect::<Vec<_>>();
    assert_eq!(offsets(s.read(0, 2)), [2, 3]);
    assert_eq!(offsets(s.read(3, 10)), [3, 4]);
    assert_eq!(offsets(s.read(4, 0)), [] as [u64; 0]);
    assert!(s.read(5, 10).is_empty());
    assert!(s.read(u64::MAX, 10).is_empty());
    assert!(StreamLog::new(opts()).read(0, 10).is_empty());
}

#[test]
fn offset_at_time_edges() {
    let mut s = StreamLog::new(QueueOptions {
        max_length: Some(4),
        ..opts()
    });
    assert_eq!(s.offset_at_time(0), 0);
    publish(&mut s, 10, &["a"]);
    publish(&mut s, 20, &["b", "c"]);
    publish(&mut s, 30, &["d"]);
    publish(&mut s, 40, &["e"]);
    // Offset 0 (time 10) is gone; retained: 1,2 @20, 3 @30, 4 @40.
    assert_eq!(s.offset_at_time(0), 1);
    assert_eq!(s.offset_at_time(10), 1);
    assert_eq!(s.offset_at_time(20), 1);
    assert_eq!(s.offset_at_time(21), 3);
    assert_eq!(s.offset_at_time(30), 3);
    assert_eq!(s.offset_at_time(40), 4);
    assert_eq!(s.offset_at_time(41), 5);
    assert_eq!(s.offset_at_time(u64::MAX), s.next_offset());
}

#[test]
fn commit_offset_validation() {
    let mut s = StreamLog::new(QueueOptions {
        max_length: Some(1),
        ..opts()
    });
    publish(&mut s, 1, &["a", "b", "c"]);
    assert_eq!(commit(&mut s, "c1", 3), Outcome::Done);
    assert_eq!(s.committed("c1"), Some(3));
    // Backwards, and below first_offset, is accepted as is.
    assert_eq!(commit(&mut s, "c1", 0), Outcome::Done);
    assert_eq!(s.committed("c1"), Some(0));
    assert!(matches!(commit(&mut s, "c1", 4), Outcome::Invalid(_)));
    assert_eq!(s.committed("c1"), Some(0));
    assert!(matches!(commit(&mut s, "", 0), Outcome::Invalid(_)));
    assert!(matches!(
        commit(&mut s, &"x".repeat(256), 0),
        Outcome::Invalid(_)
    ));
    assert_eq!(commit(&mut s, &"x".repeat(255), 1), Outcome::Done);
    assert_eq!(s.committed("nobody"), None);
    let all: Vec<(&str, Offset)> = s.committed_offsets().collect();
    assert_eq!(all, [("c1", 0), (&*"x".repeat(255), 1)]);
}

#[test]
fn commit_offset_refuses_new_names_beyond_the_limit() {
    let mut s = StreamLog::new(opts());
    for i in 0..MAX_STREAM_CONSUMERS {
        assert_eq!(commit(&mut s, &format!("c{i}"), 0), Outcome::Done);
    }
    assert!(matches!(commit(&mut s, "new", 0), Outcome::Invalid(_)));
    assert_eq!(s.committed("new"), None);
    // An existing name may still move.
    publish(&mut s, 1, &["a"]);
    assert_eq!(commit(&mut s, "c7", 1), Outcome::Done);
    assert_eq!(s.committed_offsets().count(), MAX_STREAM_CONSUMERS);
}

#[test]
fn consumer_commands_are_invalid_and_change_only_time() {
    let mut s = StreamLog::new(opts());
    publish(&mut s, 1, &["a"]);
    let before = s.clone();
    for cmd in [
        Command::Attach {
            now_ms: 9,
            consumer: 1,
            prefetch: 1,
        },
        Command::Detach {
            now_ms: 9,
            consumer: 1,
        },
        Command::Settle {
            now_ms: 9,
            consumer: 1,
            offsets: vec![0],
            outcome: Settlement::Ack,
        },
    ] {
        match s.apply(cmd) {
            Outcome::Invalid(reason) => assert!(reason.contains("is a stream"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(s.clock_ms(), 9);
    let mut expected = before.clone();
    expected.clock_ms = 9;
    assert_eq!(s, expected);
    assert_eq!(
        s.apply(Command::ResetConsumers { now_ms: 9 }),
        Outcome::Done
    );
    assert_eq!(
        s.apply(Command::DeadLettered { up_to_seq: 3 }),
        Outcome::Done
    );
    assert_eq!(s, expected);
}

#[test]
fn work_queue_refuses_commit_offset() {
    let mut q = crate::WorkQueue::new(opts());
    let mut effects = Vec::new();
    let outcome = q.apply(
        Command::CommitOffset {
            now_ms: 4,
            consumer: "c".into(),
            offset: 0,
        },
        &mut effects,
    );
    assert!(matches!(outcome, Outcome::Invalid(r) if r.contains("work queue")));
    assert_eq!(q.clock_ms(), 4);
    assert!(effects.is_empty());
}

#[test]
fn snapshot_round_trips() {
    let mut s = StreamLog::new(QueueOptions {
        max_length: Some(2),
        max_age_ms: Some(50),
        ..opts()
    });
    publish(&mut s, 1, &["a", "b", "c"]);
    commit(&mut s, "c", 2);
    let config = bincode::config::standard();
    let bytes = bincode::serde::encode_to_vec(&s, config).unwrap();
    let (restored, _): (StreamLog, usize) =
        bincode::serde::decode_from_slice(&bytes, config).unwrap();
    assert_eq!(restored, s);
}
