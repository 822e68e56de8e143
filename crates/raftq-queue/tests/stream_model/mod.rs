//! A deliberately naive reference model of the stream: one vector entry per
//! message ever published, retention recomputed by scanning from the start.
//! Written from the semantics contract (lib.rs docs), not the implementation.

use std::collections::BTreeMap;

use raftq_queue::{
    Command, Message, Offset, Outcome, ProducerSeq, PublishError, QueueOptions, StoredView,
    BATCHES_PER_PRODUCER, MAX_STREAM_CONSUMERS,
};

#[derive(Clone, Debug)]
pub struct Msg {
    pub message: Message,
    pub publish_time: u64,
}

#[derive(Clone, Debug)]
struct ModelProducer {
    id: String,
    last_seq: u64,
    /// (first_seq, len, first_offset), oldest first.
    batches: Vec<(u64, u64, u64)>,
    last_use: u64,
}

#[derive(Clone, Debug)]
pub struct Model {
    pub opts: QueueOptions,
    pub clock: u64,
    /// Every message ever published; offset = index.
    pub msgs: Vec<Msg>,
    /// Messages below this offset were removed by retention.
    pub first: u64,
    producers: Vec<ModelProducer>,
    uses: u64,
    pub committed: BTreeMap<String, Offset>,
}

/// Outcome with the reason of `Invalid` blanked: the model only says *that* a
/// command is invalid, the wording is the implementation's.
pub fn kind(outcome: &Outcome) -> Outcome {
    match outcome {
        Outcome::Invalid(_) => Outcome::Invalid(String::new()),
        other => other.clone(),
    }
}

impl Model {
    pub fn new(opts: QueueOptions) -> Self {
        Self {
            opts,
            clock: 0,
            msgs: Vec::new(),
            first: 0,
            producers: Vec::new(),
            uses: 0,
            committed: BTreeMap::new(),
        }
    }

    /// Answers with `Invalid("")` where the stream must answer `Invalid(_)`.
    pub fn apply(&mut self, cmd: Command) -> Outcome {
        if let Some(now) = cmd.now_ms() {
            self.clock = self.clock.max(now);
        }
        let outcome = match cmd {
            Command::Publish {
                producer, messages, ..
            } => self.publish(producer, messages),
            Command::CommitOffset {
                consumer, offset, ..
            } => {
                let valid = !consumer.is_empty()
                    && consumer.len() <= 255
                    && offset <= self.next()
                    && (self.committed.contains_key(&consumer)
                        || self.committed.len() < MAX_STREAM_CONSUMERS);
                if valid {
                    self.committed.insert(consumer, offset);
                    Outcome::Done
                } else {
                    Outcome::Invalid(String::new())
                }
            }
            Command::Attach { .. } | Command::Detach { .. } | Command::Settle { .. } => {
                Outcome::Invalid(String::new())
            }
            Command::Tick { .. }
            | Command::ResetConsumers { .. }
            | Command::DeadLettered { .. } => Outcome::Done,
        };
        self.retain();
        outcome
    }

    pub fn next(&self) -> u64 {
        self.msgs.len() as u64
    }

    pub fn retained(&self) -> &[Msg] {
        &self.msgs[self.first as usize..]
    }

    pub fn bytes(&self) -> u64 {
        self.retained().iter().map(|m| m.message.size()).sum()
    }

    pub fn remembered_producers(&self) -> usize {
        self.producers.len()
    }

    pub fn read(&self, from: Offset, count: usize) -> Vec<StoredView> {
        (0..self.next())
            .filter(|&o| o >= self.first && o >= from)
            .take(count)
            .map(|o| StoredView {
                offset: o,
                message: self.msgs[o as usize].message.clone(),
                delivery_count: 0,
                publish_time_ms: self.msgs[o as usize].publish_time,
            })
            .collect()
    }

    pub fn offset_at_time(&self, time: u64) -> Offset {
        (self.first..self.next())
            .find(|&o| self.msgs[o as usize].publish_time >= time)
            .unwrap_or(self.next())
    }

    pub fn next_deadline(&self) -> Option<u64> {
        let age = self.opts.max_age_ms?;
        self.retained()
            .iter()
            .map(|m| m.publish_time.saturating_add(age))
            .min()
    }

    /// The smallest start, at or after the current one, whose suffix is within
    /// every limit.
    fn retain(&mut self) {
        let within = |start: u64| {
            let kept = &self.msgs[start as usize..];
            let len = kept.len() as u64;
            let bytes: u64 = kept.iter().map(|m| m.message.size()).sum();
            self.opts.max_length.is_none_or(|max| len <= max)
                && self.opts.max_bytes.is_none_or(|max| bytes <= max)
                && self.opts.max_age_ms.is_none_or(|age| {
                    kept.iter()
                        .all(|m| m.publish_time.saturating_add(age) > self.clock)
                })
        };
        self.first = (self.first..=self.next())
            .find(|&s| within(s))
            .expect("the empty suffix is within every limit");
    }

    fn publish(&mut self, producer: Option<ProducerSeq>, messages: Vec<Message>) -> Outcome {
        if messages.is_empty() {
            return Outcome::PublishRejected(PublishError::EmptyBatch);
        }
        for m in &messages {
            if m.size() > self.opts.max_message_bytes {
                return Outcome::PublishRejected(PublishError::MessageTooLarge {
                    size: m.size(),
                    max: self.opts.max_message_bytes,
                });
            }
        }
        let n = messages.len() as u64;
        if let Some(p) = &producer {
            if let Some(i) = self.producers.iter().position(|q| q.id == p.producer_id) {
                let last_seq = self.producers[i].last_seq;
                let gap = Outcome::PublishRejected(PublishError::SequenceGap {
                    producer_id: p.producer_id.clone(),
                    expected: last_seq + 1,
                    got: p.sequence,
                });
                if p.sequence as u128 + n as u128 - 1 <= last_seq as u128 {
                    let remembered = self.producers[i]
                        .batches
                        .iter()
                        .find(|b| b.0 == p.sequence && b.1 == n)
                        .map(|b| (b.2..b.2 + n).collect());
                    let Some(offsets) = remembered else {
                        return gap;
                    };
                    self.touch(&p.producer_id);
                    return Outcome::Published {
                        offsets,
                        duplicate: true,
                    };
                }
                if p.sequence != last_seq + 1 {
                    return gap;
                }
            }
        }
        let first = self.next();
        for message in messages {
            self.msgs.push(Msg {
                message,
                publish_time: self.clock,
            });
        }
        if let Some(p) = &producer {
            let batch = (p.sequence, n, first);
            match self.producers.iter_mut().find(|q| q.id == p.producer_id) {
                Some(q) => {
                    q.last_seq = p.sequence + n - 1;
                    q.batches.push(batch);
                    if q.batches.len() > BATCHES_PER_PRODUCER {
                        q.batches.remove(0);
                    }
                }
                None => self.producers.push(ModelProducer {
                    id: p.producer_id.clone(),
                    last_seq: p.sequence + n - 1,
                    batches: vec![batch],
                    last_use: 0,
                }),
            }
            self.touch(&p.producer_id);
        }
        Outcome::Published {
            offsets: (first..first + n).collect(),
            duplicate: false,
        }
    }

    fn touch(&mut self, id: &str) {
        self.uses += 1;
        if let Some(q) = self.producers.iter_mut().find(|q| q.id == id) {
            q.last_use = self.uses;
        }
        while self.producers.len() > self.opts.dedup_window as usize {
            let lru = (0..self.producers.len())
                .min_by_key(|&i| self.producers[i].last_use)
                .unwrap();
            self.producers.remove(lru);
        }
    }
}
