//! Publish keys: however often a keyed batch is re-sent, and in whatever
//! interleaving with other keyed batches, it is stored once and every re-send
//! is answered with the offsets it was stored at.

use std::collections::BTreeMap;

use proptest::prelude::*;
use raftq_queue::{
    Command, Message, Offset, Outcome, PublishError, PublishKey, QueueOptions, StreamLog,
    WorkQueue, KEY_MEMORY_MS,
};

#[derive(Debug, Clone)]
struct Send {
    source: u64,
    counter: u64,
    len: usize,
    advance_ms: u64,
}

fn sends() -> impl Strategy<Value = Vec<Send>> {
    let send = (0..3u64, 0..12u64, 1..4usize, 0..1_000u64).prop_map(
        |(source, counter, len, advance_ms)| Send {
            source,
            counter,
            len,
            advance_ms,
        },
    );
    // 50 sends of at most 1 s each stay inside the time keys are remembered.
    prop::collection::vec(send, 1..50)
}

fn command(send: &Send, now_ms: u64) -> Command {
    Command::Publish {
        now_ms,
        producer: None,
        key: Some(PublishKey {
            source: send.source,
            counter: send.counter,
        }),
        messages: (0..send.len)
            .map(|i| Message::new(format!("{}-{}-{i}", send.source, send.counter)))
            .collect(),
    }
}

/// Runs `sends` through `apply` and checks every answer against what the first
/// send of each key got; returns how many messages were stored.
fn check(sends: &[Send], mut apply: impl FnMut(Command) -> Outcome) -> u64 {
    assert!(sends.len() as u64 * 1_000 < KEY_MEMORY_MS);
    let mut first: BTreeMap<(u64, u64), (usize, Vec<Offset>)> = BTreeMap::new();
    let mut stored = 0u64;
    let mut now = 1u64;
    for send in sends {
        now += send.advance_ms;
        let outcome = apply(command(send, now));
        match first.get(&(send.source, send.counter)) {
            None => {
                let Outcome::Published {
                    offsets,
                    duplicate: false,
                } = outcome
                else {
                    panic!("first send of {send:?} answered {outcome:?}");
                };
                assert_eq!(offsets.len(), send.len);
                stored += send.len as u64;
                first.insert((send.source, send.counter), (send.len, offsets));
            }
            Some((len, offsets)) if *len == send.len => assert_eq!(
                outcome,
                Outcome::Published {
                    offsets: offsets.clone(),
                    duplicate: true
                },
                "re-send of {send:?}"
            ),
            Some(_) => assert_eq!(
                outcome,
                Outcome::PublishRejected(PublishError::KeyConflict),
                "re-send of {send:?} with another length"
            ),
        }
    }
    stored
}

proptest! {
    #[test]
    fn a_keyed_batch_is_stored_once_in_a_work_queue(sends in sends()) {
        let mut q = WorkQueue::new(QueueOptions::default());
        let stored = check(&sends, |cmd| q.apply(cmd, &mut Vec::new()));
        prop_assert_eq!(q.depth(), stored);
        prop_assert_eq!(q.remembered_producers(), 0);
    }

    #[test]
    fn a_keyed_batch_is_stored_once_in_a_stream(sends in sends()) {
        let mut s = StreamLog::new(QueueOptions::default());
        let stored = check(&sends, |cmd| s.apply(cmd));
        prop_assert_eq!(s.len(), stored);
    }
}

#[test]
fn keys_survive_a_snapshot_and_are_forgotten_with_time() {
    let mut q = WorkQueue::new(QueueOptions::default());
    let send = Send {
        source: 9,
        counter: 0,
        len: 2,
        advance_ms: 0,
    };
    let first = q.apply(command(&send, 10), &mut Vec::new());
    let bytes = bincode::serde::encode_to_vec(&q, bincode::config::standard()).unwrap();
    let (mut restored, _): (WorkQueue, _) =
        bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
    let Outcome::Published { offsets, .. } = first else {
        panic!("{first:?}");
    };
    assert_eq!(
        restored.apply(command(&send, 20), &mut Vec::new()),
        Outcome::Published {
            offsets,
            duplicate: true
        }
    );
    restored.apply(
        Command::Tick {
            now_ms: 20 + KEY_MEMORY_MS,
        },
        &mut Vec::new(),
    );
    assert_eq!(restored.remembered_publish_keys(), 0);
}
