//! A deliberately naive reference model of the work queue: one vector entry per
//! offset ever published, every question answered by scanning. It is written
//! from the semantics contract (lib.rs docs), not from the implementation, and
//! the property tests require both to agree on every outcome, effect and
//! observable state.

use raftq_queue::{
    Command, ConsumerId, DeadLetter, DeadLetterReason, Delivery, Effect, Message, Offset, Outcome,
    Overflow, ProducerSeq, PublishError, QueueOptions, Settlement, BATCHES_PER_PRODUCER,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    Ready,
    Held {
        consumer: ConsumerId,
        at: u64,
    },
    Acked,
    DeadLettered,
    /// Dead-lettered without a dead-letter queue.
    Dropped,
}

#[derive(Clone, Debug)]
pub struct Msg {
    pub message: Message,
    pub publish_time: u64,
    pub count: u32,
    pub place: Place,
}

#[derive(Clone, Debug)]
pub struct ModelConsumer {
    pub id: ConsumerId,
    pub prefetch: u32,
    attach_seq: u64,
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
    pub msgs: Vec<Msg>,
    pub consumers: Vec<ModelConsumer>,
    attaches: u64,
    last_served: u64,
    producers: Vec<ModelProducer>,
    uses: u64,
    dead_letters: u64,
    pub pending: Vec<DeadLetter>,
}

impl Model {
    pub fn new(opts: QueueOptions) -> Self {
        Self {
            opts,
            clock: 0,
            msgs: Vec::new(),
            consumers: Vec::new(),
            attaches: 0,
            last_served: 0,
            producers: Vec::new(),
            uses: 0,
            dead_letters: 0,
            pending: Vec::new(),
        }
    }

    pub fn apply(&mut self, cmd: Command) -> (Outcome, Vec<Effect>) {
        let mut fx = Vec::new();
        if let Some(now) = cmd.now_ms() {
            self.clock = self.clock.max(now);
            self.ack_timeouts(&mut fx);
            self.expire(&mut fx);
        }
        let outcome = match cmd {
            Command::Publish {
                producer, messages, ..
            } => self.publish(producer, messages, &mut fx),
            Command::Attach {
                consumer, prefetch, ..
            } => {
                let prefetch = prefetch.max(1);
                match self.consumers.iter_mut().find(|c| c.id == consumer) {
                    Some(c) => c.prefetch = prefetch,
                    None => {
                        self.attaches += 1;
                        self.consumers.push(ModelConsumer {
                            id: consumer,
                            prefetch,
                            attach_seq: self.attaches,
                        });
                    }
                }
                Outcome::Done
            }
            Command::Detach { consumer, .. } => {
                if self.consumers.iter().any(|c| c.id == consumer) {
                    self.consumers.retain(|c| c.id != consumer);
                    for offset in self.held_offsets(Some(consumer)) {
                        self.end_delivery(offset, false, &mut fx);
                    }
                }
                Outcome::Done
            }
            Command::Settle {
                consumer,
                offsets,
                outcome,
                ..
            } => {
                let (mut settled, mut unknown) = (vec![], vec![]);
                for offset in offsets {
                    let held = self.msgs.get(offset as usize).is_some_and(
                        |m| matches!(m.place, Place::Held { consumer: c, .. } if c == consumer),
                    );
                    if !held {
                        unknown.push(offset);
                        continue;
                    }
                    settled.push(offset);
                    match outcome {
                        Settlement::Ack => self.msgs[offset as usize].place = Place::Acked,
                        Settlement::Requeue => self.end_delivery(offset, false, &mut fx),
                        Settlement::Reject => self.end_delivery(offset, true, &mut fx),
                    }
                }
                Outcome::Settled { settled, unknown }
            }
            Command::Tick { .. } => Outcome::Done,
            Command::ResetConsumers { .. } => {
                self.consumers.clear();
                for offset in self.held_offsets(None) {
                    self.end_delivery(offset, false, &mut fx);
                }
                Outcome::Done
            }
            Command::DeadLettered { up_to_seq } => {
                self.pending.retain(|d| d.seq > up_to_seq);
                Outcome::Done
            }
            Command::CommitOffset { .. } => Outcome::Invalid(
                "queue is a work queue: CommitOffset is only for streams".to_string(),
            ),
        };
        self.expire(&mut fx);
        self.dispatch(&mut fx);
        (outcome, fx)
    }

    pub fn held_offsets(&self, consumer: Option<ConsumerId>) -> Vec<Offset> {
        (0..self.msgs.len())
            .filter(|&o| match self.msgs[o].place {
                Place::Held { consumer: c, .. } => consumer.is_none_or(|want| want == c),
                _ => false,
            })
            .map(|o| o as Offset)
            .collect()
    }

    pub fn stored(&self) -> Vec<Offset> {
        (0..self.msgs.len())
            .filter(|&o| matches!(self.msgs[o].place, Place::Ready | Place::Held { .. }))
            .map(|o| o as Offset)
            .collect()
    }

    pub fn ready(&self) -> u64 {
        self.msgs.iter().filter(|m| m.place == Place::Ready).count() as u64
    }

    pub fn bytes(&self) -> u64 {
        self.stored()
            .iter()
            .map(|&o| self.msgs[o as usize].message.payload.len() as u64)
            .sum()
    }

    pub fn next_deadline(&self) -> Option<u64> {
        let mut deadlines = vec![];
        for m in &self.msgs {
            match (m.place, self.opts.message_ttl_ms, self.opts.ack_timeout_ms) {
                (Place::Ready, Some(ttl), _) => deadlines.push(m.publish_time.saturating_add(ttl)),
                (Place::Held { at, .. }, _, Some(t)) => deadlines.push(at.saturating_add(t)),
                _ => {}
            }
        }
        deadlines.into_iter().min()
    }

    fn ack_timeouts(&mut self, fx: &mut Vec<Effect>) {
        let Some(timeout) = self.opts.ack_timeout_ms else {
            return;
        };
        let clock = self.clock as u128;
        for offset in 0..self.msgs.len() {
            if let Place::Held { at, .. } = self.msgs[offset].place {
                if at as u128 + timeout as u128 <= clock {
                    self.end_delivery(offset as Offset, false, fx);
                }
            }
        }
    }

    fn expire(&mut self, fx: &mut Vec<Effect>) {
        let Some(ttl) = self.opts.message_ttl_ms else {
            return;
        };
        for offset in 0..self.msgs.len() {
            let m = &self.msgs[offset];
            if m.place == Place::Ready && m.publish_time as u128 + ttl as u128 <= self.clock as u128
            {
                self.dead_letter(offset as Offset, DeadLetterReason::Expired, fx);
            }
        }
    }

    fn end_delivery(&mut self, offset: Offset, reject: bool, fx: &mut Vec<Effect>) {
        let m = &mut self.msgs[offset as usize];
        m.count += 1;
        if reject {
            self.dead_letter(offset, DeadLetterReason::Rejected, fx);
        } else if self.opts.max_deliveries.is_some_and(|max| m.count >= max) {
            self.dead_letter(offset, DeadLetterReason::DeliveryLimit, fx);
        } else {
            m.place = Place::Ready;
        }
    }

    fn dead_letter(&mut self, offset: Offset, reason: DeadLetterReason, fx: &mut Vec<Effect>) {
        let m = &mut self.msgs[offset as usize];
        let Some(target) = self.opts.dead_letter_queue.clone() else {
            m.place = Place::Dropped;
            return;
        };
        m.place = Place::DeadLettered;
        let message = m
            .message
            .clone()
            .with_header("x-death-reason", reason.as_str())
            .with_header("x-death-count", m.count.to_string())
            .with_header("x-death-source-offset", offset.to_string());
        self.dead_letters += 1;
        let letter = DeadLetter {
            seq: self.dead_letters,
            target,
            source_offset: offset,
            reason,
            message,
        };
        self.pending.push(letter.clone());
        fx.push(Effect::DeadLetter(letter));
    }

    fn publish(
        &mut self,
        producer: Option<ProducerSeq>,
        messages: Vec<Message>,
        fx: &mut Vec<Effect>,
    ) -> Outcome {
        if messages.is_empty() {
            return Outcome::PublishRejected(PublishError::EmptyBatch);
        }
        for m in &messages {
            let size = m.payload.len() as u64;
            if size > self.opts.max_message_bytes {
                return Outcome::PublishRejected(PublishError::MessageTooLarge {
                    size,
                    max: self.opts.max_message_bytes,
                });
            }
        }
        let n = messages.len() as u64;
        if let Some(p) = &producer {
            let known = self.producers.iter().position(|q| q.id == p.producer_id);
            let last = p.sequence as u128 + n as u128 - 1;
            if let Some(i) = known {
                let last_seq = self.producers[i].last_seq;
                if last <= last_seq as u128 {
                    // Only a batch we remember storing is a duplicate; anything
                    // else below last_seq may never have been stored.
                    let remembered = self.producers[i]
                        .batches
                        .iter()
                        .find(|b| b.0 == p.sequence && b.1 == n)
                        .map(|b| (b.2..b.2 + n).collect());
                    let Some(offsets) = remembered else {
                        return Outcome::PublishRejected(PublishError::SequenceGap {
                            producer_id: p.producer_id.clone(),
                            expected: last_seq + 1,
                            got: p.sequence,
                        });
                    };
                    self.touch(&p.producer_id);
                    return Outcome::Published {
                        offsets,
                        duplicate: true,
                    };
                }
                if p.sequence as u128 != last_seq as u128 + 1 {
                    return Outcome::PublishRejected(PublishError::SequenceGap {
                        producer_id: p.producer_id.clone(),
                        expected: last_seq + 1,
                        got: p.sequence,
                    });
                }
            }
        }
        let batch_bytes: u64 = messages.iter().map(|m| m.payload.len() as u64).sum();
        if self.opts.overflow == Overflow::RejectPublish && self.over(n, batch_bytes) {
            return Outcome::PublishRejected(PublishError::QueueFull {
                max_length: self.opts.max_length,
                max_bytes: self.opts.max_bytes,
            });
        }
        let first = self.msgs.len() as u64;
        for message in messages {
            self.msgs.push(Msg {
                message,
                publish_time: self.clock,
                count: 0,
                place: Place::Ready,
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
        if self.opts.overflow == Overflow::DropHead {
            while self.over(0, 0) {
                let Some(oldest) = self.msgs.iter().position(|m| m.place == Place::Ready) else {
                    break;
                };
                self.dead_letter(oldest as Offset, DeadLetterReason::MaxLength, fx);
            }
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

    fn over(&self, n: u64, bytes: u64) -> bool {
        let depth = self.stored().len() as u64;
        self.opts.max_length.is_some_and(|max| depth + n > max)
            || self
                .opts
                .max_bytes
                .is_some_and(|max| self.bytes() + bytes > max)
    }

    pub fn held_count(&self, consumer: ConsumerId) -> usize {
        self.held_offsets(Some(consumer)).len()
    }

    /// Whether a consumer could take a message now, per the dispatch rule.
    pub fn eligible(&self) -> Vec<ConsumerId> {
        let with_credit = |c: &ModelConsumer| self.held_count(c.id) < c.prefetch as usize;
        if self.opts.single_active_consumer {
            return self
                .consumers
                .first()
                .filter(|c| with_credit(c))
                .map(|c| vec![c.id])
                .unwrap_or_default();
        }
        let after = self
            .consumers
            .iter()
            .filter(|c| c.attach_seq > self.last_served);
        let before = self
            .consumers
            .iter()
            .filter(|c| c.attach_seq <= self.last_served);
        after
            .chain(before)
            .filter(|c| with_credit(c))
            .map(|c| c.id)
            .collect()
    }

    fn dispatch(&mut self, fx: &mut Vec<Effect>) {
        loop {
            let Some(offset) = self.msgs.iter().position(|m| m.place == Place::Ready) else {
                return;
            };
            let Some(&consumer) = self.eligible().first() else {
                return;
            };
            let seq = self
                .consumers
                .iter()
                .find(|c| c.id == consumer)
                .unwrap()
                .attach_seq;
            self.last_served = seq;
            let m = &mut self.msgs[offset];
            m.place = Place::Held {
                consumer,
                at: self.clock,
            };
            fx.push(Effect::Deliver {
                consumer,
                delivery: Delivery {
                    offset: offset as Offset,
                    message: m.message.clone(),
                    delivery_count: m.count,
                    redelivered: m.count > 0,
                    publish_time_ms: m.publish_time,
                },
            });
        }
    }
}
