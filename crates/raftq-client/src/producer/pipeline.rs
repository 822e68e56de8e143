//! The producer's pipeline as a pure state machine: messages in, publish
//! requests out, results in, confirmations out. No I/O, no clock of its own,
//! so every failover ordering can be tested.
//!
//! Rules that keep exactly-once and FIFO with several batches in flight:
//! - A batch keeps its `(producer_id, sequence, messages)` for life: the server
//!   answers a retried batch from its dedup table only if it is identical.
//! - Only the oldest unresolved batch (the head) is ever sent again. The
//!   server refuses a batch whose predecessor is missing (a gap,
//!   FAILED_PRECONDITION), so a later batch is resent only once every earlier
//!   one is confirmed. While any batch waits to be resent, no new batch goes
//!   out either.
//! - A batch that fails for good (refused, or out of time) leaves a hole in
//!   its producer id's sequence, so that id is retired ("broken"): later
//!   batches of it are resent as head; if the server answers with a gap, they
//!   provably were not stored and their messages go back to the queue of
//!   unsent ones, to be sent under a fresh producer id. No new batch is formed
//!   while batches of a broken id remain, which keeps publish order.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use raftq_proto::v1::{PublishMessage, PublishRequest, PublishResponse};

use crate::retry::Backoff;
use crate::Error;

/// A gap answered to the head batch of a live producer id is unexpected
/// (every earlier batch is confirmed); after this many, the batch is taken as
/// not stored and moved to a fresh id.
const GAPS_BEFORE_REKEY: u32 = 2;
/// A batch moved to a fresh producer id that still gets a gap is refused for
/// good: the server disagrees with any sequence we could send.
const MAX_REKEYS: u8 = 2;

#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub max_in_flight: usize,
    pub max_batch_messages: usize,
    pub max_batch_bytes: usize,
    pub linger: Duration,
    pub retry_deadline: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

/// One request to make.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub batch_id: u64,
    pub request: PublishRequest,
}

/// A message not yet confirmed, with the waiter to tell.
struct Item<W> {
    index: u64,
    message: PublishMessage,
    waiter: W,
    enqueued: Instant,
    bytes: usize,
    rekeys: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    InFlight,
    /// Failed, to be resent (as head, not before `not_before`).
    Waiting,
}

struct Batch<W> {
    id: u64,
    epoch: u64,
    producer_id: Arc<str>,
    sequence: u64,
    items: Vec<Item<W>>,
    state: State,
    deadline: Instant,
    not_before: Instant,
    backoff: Backoff,
    gaps_as_head: u32,
    last_error: Option<Error>,
}

/// A producer id and the next sequence under it.
struct Epoch {
    number: u64,
    producer_id: Arc<str>,
    next_sequence: u64,
    /// The server takes an unknown producer id at any sequence, so until the
    /// id's first batch is stored a later batch overtaking it (requests are
    /// handled concurrently) would be stored first and the first one refused.
    /// The first batch of an id therefore travels alone.
    first_stored: bool,
}

pub(crate) type Resolved<W> = Vec<(W, Result<u64, Error>)>;

pub(crate) struct Pipeline<W> {
    queue: String,
    settings: Settings,
    epoch: Epoch,
    broken: HashSet<u64>,
    pending: VecDeque<Item<W>>,
    pending_bytes: usize,
    /// Re-keyed messages sit at the front of `pending`, in order; the next one
    /// goes after them.
    rekeyed_front: usize,
    batches: VecDeque<Batch<W>>,
    next_index: u64,
    next_batch_id: u64,
    flush_upto: u64,
    closed: bool,
    new_producer_id: Box<dyn FnMut() -> String + Send>,
}

fn message_bytes(m: &PublishMessage) -> usize {
    m.payload.len()
        + m.headers
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
}

fn is_gap(e: &Error) -> bool {
    matches!(e, Error::FailedPrecondition(_))
}

impl<W> Pipeline<W> {
    pub(crate) fn new(
        queue: String,
        settings: Settings,
        mut new_producer_id: Box<dyn FnMut() -> String + Send>,
    ) -> Self {
        let epoch = Epoch {
            number: 0,
            producer_id: new_producer_id().into(),
            next_sequence: 1,
            first_stored: false,
        };
        Self {
            queue,
            settings,
            epoch,
            broken: HashSet::new(),
            pending: VecDeque::new(),
            pending_bytes: 0,
            rekeyed_front: 0,
            batches: VecDeque::new(),
            next_index: 0,
            next_batch_id: 0,
            flush_upto: 0,
            closed: false,
            new_producer_id,
        }
    }

    pub(crate) fn producer_id(&self) -> &str {
        &self.epoch.producer_id
    }

    pub(crate) fn push(&mut self, message: PublishMessage, waiter: W, now: Instant) {
        let bytes = message_bytes(&message);
        self.pending_bytes += bytes;
        self.pending.push_back(Item {
            index: self.next_index,
            message,
            waiter,
            enqueued: now,
            bytes,
            rekeys: 0,
        });
        self.next_index += 1;
    }

    /// Sends everything pushed so far without lingering. Returns the index
    /// every message before which must be resolved for the flush to be done.
    pub(crate) fn flush(&mut self) -> u64 {
        self.flush_upto = self.next_index;
        self.next_index
    }

    /// No more messages will come: stop lingering.
    pub(crate) fn close(&mut self) {
        self.closed = true;
    }

    pub(crate) fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.batches.is_empty()
    }

    /// Every message pushed before this index is resolved.
    pub(crate) fn resolved_below(&self) -> u64 {
        let in_batches = self
            .batches
            .iter()
            .filter_map(|b| b.items.first().map(|i| i.index));
        let pending = self
            .pending
            .iter()
            .map(|i| i.index)
            .take(self.rekeyed_front + 1);
        in_batches.chain(pending).min().unwrap_or(self.next_index)
    }

    fn blocked(&self) -> bool {
        let first_unstored =
            !self.epoch.first_stored && self.batches.iter().any(|b| b.epoch == self.epoch.number);
        first_unstored
            || self
                .batches
                .iter()
                .any(|b| b.state == State::Waiting || self.broken.contains(&b.epoch))
    }

    /// The next request to make now, if any.
    pub(crate) fn poll_send(&mut self, now: Instant) -> Option<Request> {
        if let Some(head) = self.batches.front_mut() {
            if head.state == State::Waiting {
                if now < head.not_before {
                    return None;
                }
                head.state = State::InFlight;
                return Some(self.request_for(0));
            }
        }
        if self.blocked() || self.batches.len() >= self.settings.max_in_flight.max(1) {
            return None;
        }
        let front = self.pending.front()?;
        let ready = self.closed
            || front.index < self.flush_upto
            || self.pending.len() >= self.settings.max_batch_messages
            || self.pending_bytes >= self.settings.max_batch_bytes
            || now >= front.enqueued + self.settings.linger;
        if !ready {
            return None;
        }
        let mut items = Vec::new();
        let mut bytes = 0usize;
        while let Some(next) = self.pending.front() {
            let full = items.len() >= self.settings.max_batch_messages.max(1)
                || (!items.is_empty() && bytes + next.bytes > self.settings.max_batch_bytes);
            if full {
                break;
            }
            let Some(item) = self.pending.pop_front() else {
                break;
            };
            bytes += item.bytes;
            self.pending_bytes = self.pending_bytes.saturating_sub(item.bytes);
            items.push(item);
        }
        self.rekeyed_front = 0;
        let oldest = items.iter().map(|i| i.enqueued).min().unwrap_or(now);
        let n = items.len() as u64;
        let batch = Batch {
            id: self.next_batch_id,
            epoch: self.epoch.number,
            producer_id: self.epoch.producer_id.clone(),
            sequence: self.epoch.next_sequence,
            items,
            state: State::InFlight,
            deadline: oldest + self.settings.retry_deadline,
            not_before: now,
            backoff: Backoff::new(self.settings.backoff_initial, self.settings.backoff_max),
            gaps_as_head: 0,
            last_error: None,
        };
        self.next_batch_id += 1;
        self.epoch.next_sequence += n;
        self.batches.push_back(batch);
        Some(self.request_for(self.batches.len() - 1))
    }

    fn request_for(&self, pos: usize) -> Request {
        let b = &self.batches[pos];
        Request {
            batch_id: b.id,
            request: PublishRequest {
                queue: self.queue.clone(),
                messages: b.items.iter().map(|i| i.message.clone()).collect(),
                producer_id: b.producer_id.to_string(),
                sequence: b.sequence,
                key: None,
            },
        }
    }

    /// When `poll_send` or `expire` may have something new to do.
    pub(crate) fn next_wakeup(&self) -> Option<Instant> {
        let head_retry = self
            .batches
            .front()
            .filter(|b| b.state == State::Waiting)
            .map(|b| b.not_before);
        // Only while a batch could go out: with the window full or a resend
        // pending, a past linger time would wake the task in a busy loop.
        let can_batch = !self.blocked() && self.batches.len() < self.settings.max_in_flight.max(1);
        let linger = self
            .pending
            .front()
            .filter(|_| can_batch)
            .map(|i| i.enqueued + self.settings.linger);
        let expiry = self
            .pending
            .front()
            .map(|i| i.enqueued + self.settings.retry_deadline);
        let batch_expiry = self
            .batches
            .iter()
            .filter(|b| b.state == State::Waiting)
            .map(|b| b.deadline)
            .min();
        [head_retry, linger, expiry, batch_expiry]
            .into_iter()
            .flatten()
            .min()
    }

    /// Fails what ran out of time without a request in flight: batches waiting
    /// to be resent, and messages never sent at all.
    pub(crate) fn expire(&mut self, now: Instant, out: &mut Resolved<W>) {
        while let Some(pos) = self
            .batches
            .iter()
            .position(|b| b.state == State::Waiting && now >= b.deadline)
        {
            let last = self.batches[pos]
                .last_error
                .clone()
                .unwrap_or_else(|| Error::unavailable("no answer"));
            self.fail(
                pos,
                Error::timeout(self.settings.retry_deadline, &last),
                out,
            );
        }
        while let Some(front) = self.pending.front() {
            if now < front.enqueued + self.settings.retry_deadline {
                break;
            }
            let Some(item) = self.pending.pop_front() else {
                break;
            };
            self.pending_bytes = self.pending_bytes.saturating_sub(item.bytes);
            self.rekeyed_front = self.rekeyed_front.saturating_sub(1);
            let why = Error::unavailable(
                "not sent: earlier messages of this producer were still being retried",
            );
            out.push((
                item.waiter,
                Err(Error::timeout(self.settings.retry_deadline, &why)),
            ));
        }
    }

    /// Takes the answer to the request for `batch_id`.
    pub(crate) fn on_result(
        &mut self,
        batch_id: u64,
        result: Result<PublishResponse, Error>,
        now: Instant,
        out: &mut Resolved<W>,
    ) {
        let Some(pos) = self.batches.iter().position(|b| b.id == batch_id) else {
            return;
        };
        let result = result.and_then(|resp| {
            if resp.offsets.len() == self.batches[pos].items.len() {
                Ok(resp.offsets)
            } else {
                Err(Error::Server(format!(
                    "publish of {} messages answered with {} offsets",
                    self.batches[pos].items.len(),
                    resp.offsets.len()
                )))
            }
        });
        let e = match result {
            Ok(offsets) => {
                if self.batches[pos].epoch == self.epoch.number {
                    self.epoch.first_stored = true;
                }
                if let Some(batch) = self.batches.remove(pos) {
                    for (item, offset) in batch.items.into_iter().zip(offsets) {
                        out.push((item.waiter, Ok(offset)));
                    }
                }
                return;
            }
            Err(e) => e,
        };
        let is_head = pos == 0;
        let broken = self.broken.contains(&self.batches[pos].epoch);
        let batch = &mut self.batches[pos];
        batch.last_error = Some(e.clone());
        if e.is_retryable() {
            if now >= batch.deadline {
                let e = Error::timeout(self.settings.retry_deadline, &e);
                self.fail(pos, e, out);
            } else {
                batch.state = State::Waiting;
                batch.not_before = now + batch.backoff.next_delay();
            }
        } else if is_gap(&e) && !is_head {
            // An earlier batch is not stored yet; resent once it is.
            batch.state = State::Waiting;
            batch.not_before = now;
        } else if is_gap(&e) && !broken && batch.gaps_as_head < GAPS_BEFORE_REKEY {
            batch.gaps_as_head += 1;
            batch.state = State::Waiting;
            batch.not_before = now + batch.backoff.next_delay();
        } else if is_gap(&e) {
            // The head got a gap: this batch is provably not stored.
            self.rekey(pos, e, out);
        } else {
            self.fail(pos, e, out);
        }
    }

    /// Retires the producer id of the batch at `pos` (its sequence now has a
    /// hole), starting a fresh one if it is the current id.
    fn break_epoch(&mut self, pos: usize) {
        let epoch = self.batches[pos].epoch;
        self.broken.insert(epoch);
        if epoch == self.epoch.number {
            self.epoch = Epoch {
                number: epoch + 1,
                producer_id: (self.new_producer_id)().into(),
                next_sequence: 1,
                first_stored: false,
            };
        }
    }

    /// Fails the batch at `pos` for good.
    fn fail(&mut self, pos: usize, e: Error, out: &mut Resolved<W>) {
        self.break_epoch(pos);
        if let Some(batch) = self.batches.remove(pos) {
            for item in batch.items {
                out.push((item.waiter, Err(e.clone())));
            }
        }
        self.forget_finished_epochs();
    }

    /// Puts the (provably unstored) batch at `pos` back among unsent messages,
    /// ahead of everything pushed after it.
    fn rekey(&mut self, pos: usize, e: Error, out: &mut Resolved<W>) {
        if self.batches[pos]
            .items
            .iter()
            .any(|i| i.rekeys >= MAX_REKEYS)
        {
            self.fail(pos, e, out);
            return;
        }
        self.break_epoch(pos);
        let Some(batch) = self.batches.remove(pos) else {
            return;
        };
        for mut item in batch.items {
            item.rekeys += 1;
            self.pending_bytes += item.bytes;
            self.pending.insert(self.rekeyed_front, item);
            self.rekeyed_front += 1;
        }
        self.forget_finished_epochs();
    }

    fn forget_finished_epochs(&mut self) {
        let live: HashSet<u64> = self.batches.iter().map(|b| b.epoch).collect();
        self.broken.retain(|e| live.contains(e));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn settings() -> Settings {
        Settings {
            max_in_flight: 3,
            max_batch_messages: 2,
            max_batch_bytes: 1 << 20,
            linger: Duration::ZERO,
            retry_deadline: Duration::from_secs(10),
            backoff_initial: 10 * MS,
            backoff_max: 100 * MS,
        }
    }

    fn pipeline(settings: Settings) -> Pipeline<u32> {
        let mut n = 0;
        Pipeline::new(
            "q".into(),
            settings,
            Box::new(move || {
                n += 1;
                format!("p{n}")
            }),
        )
    }

    fn msg(i: u32) -> PublishMessage {
        PublishMessage {
            payload: format!("m{i}").into(),
            headers: Default::default(),
        }
    }

    fn push(p: &mut Pipeline<u32>, range: std::ops::Range<u32>, now: Instant) {
        for i in range {
            p.push(msg(i), i, now);
        }
    }

    fn sends(p: &mut Pipeline<u32>, now: Instant) -> Vec<Request> {
        std::iter::from_fn(|| p.poll_send(now)).collect()
    }

    fn ok(offsets: &[u64]) -> Result<PublishResponse, Error> {
        Ok(PublishResponse {
            offsets: offsets.to_vec(),
            duplicate: false,
            leader_id: 1,
        })
    }

    fn key(s: &Request) -> (String, u64, usize) {
        (
            s.request.producer_id.clone(),
            s.request.sequence,
            s.request.messages.len(),
        )
    }

    fn payloads(s: &Request) -> Vec<String> {
        s.request
            .messages
            .iter()
            .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
            .collect()
    }

    /// A pipeline whose current producer id already has a stored batch, so
    /// batches pipeline freely (the case most tests are about).
    fn started(mut p: Pipeline<u32>) -> Pipeline<u32> {
        p.epoch.first_stored = true;
        p
    }

    #[test]
    fn the_first_batch_of_a_fresh_id_travels_alone() {
        let t = Instant::now();
        let mut p = pipeline(settings());
        push(&mut p, 0..6, t);
        let first: Vec<_> = sends(&mut p, t).iter().map(key).collect();
        assert_eq!(first, [("p1".into(), 1, 2)], "nothing may overtake it");
        assert!(p.poll_send(t + Duration::from_secs(1)).is_none());
        let mut out = Vec::new();
        p.on_result(0, ok(&[0, 1]), t, &mut out);
        let next: Vec<_> = sends(&mut p, t).iter().map(key).collect();
        assert_eq!(next, [("p1".into(), 3, 2), ("p1".into(), 5, 2)]);
    }

    #[test]
    fn batches_are_contiguous_and_bounded_by_the_window() {
        let t = Instant::now();
        let mut p = started(pipeline(settings()));
        push(&mut p, 0..9, t);
        let s = sends(&mut p, t);
        let keys: Vec<_> = s.iter().map(key).collect();
        assert_eq!(
            keys,
            [
                ("p1".into(), 1, 2),
                ("p1".into(), 3, 2),
                ("p1".into(), 5, 2)
            ],
            "three batches of two, sequences covering 1..=6"
        );
        let mut out = Vec::new();
        p.on_result(s[1].batch_id, ok(&[12, 13]), t, &mut out);
        assert_eq!(out, [(2, Ok(12)), (3, Ok(13))]);
        let next: Vec<_> = sends(&mut p, t).iter().map(key).collect();
        assert_eq!(next, [("p1".into(), 7, 2)]);
    }

    #[test]
    fn linger_waits_for_more_unless_flushed() {
        let t = Instant::now();
        let mut p = pipeline(Settings {
            linger: 5 * MS,
            max_batch_messages: 10,
            ..settings()
        });
        push(&mut p, 0..1, t);
        assert!(p.poll_send(t).is_none());
        assert_eq!(p.next_wakeup(), Some(t + 5 * MS));
        push(&mut p, 1..2, t + MS);
        assert_eq!(p.flush(), 2);
        let s = p.poll_send(t + MS).map(|s| key(&s));
        assert_eq!(s, Some(("p1".into(), 1, 2)));
        assert_eq!(p.resolved_below(), 0);
    }

    #[test]
    fn a_full_window_does_not_ask_to_be_woken() {
        let t = Instant::now();
        let mut p = started(pipeline(settings()));
        push(&mut p, 0..10, t);
        assert_eq!(sends(&mut p, t).len(), 3);
        let wake = p.next_wakeup();
        assert!(
            wake.is_some_and(|w| w >= t + Duration::from_secs(10)),
            "only the expiry of unsent messages: {wake:?}"
        );
    }

    #[test]
    fn a_failed_head_is_resent_identically_and_blocks_new_batches() {
        let t = Instant::now();
        let mut p = started(pipeline(settings()));
        push(&mut p, 0..4, t);
        let s = sends(&mut p, t);
        let mut out = Vec::new();
        p.on_result(
            s[0].batch_id,
            Err(Error::unavailable("leader died")),
            t,
            &mut out,
        );
        p.on_result(
            s[1].batch_id,
            Err(Error::Transport("reset".into())),
            t,
            &mut out,
        );
        assert!(out.is_empty());
        push(&mut p, 4..6, t);
        assert!(sends(&mut p, t).is_empty(), "backing off");
        let later = t + 100 * MS;
        let retry = sends(&mut p, later);
        assert_eq!(retry.len(), 1, "only the head goes again");
        assert_eq!(key(&retry[0]), key(&s[0]));
        assert_eq!(payloads(&retry[0]), payloads(&s[0]));
        p.on_result(retry[0].batch_id, ok(&[0, 1]), later, &mut out);
        // The second batch, now head, goes again; with it resent, new ones may
        // follow it.
        let retry = sends(&mut p, later + 100 * MS);
        let keys: Vec<_> = retry.iter().map(key).collect();
        assert_eq!(keys, [key(&s[1]), ("p1".into(), 5, 2)]);
        p.on_result(retry[0].batch_id, ok(&[2, 3]), later, &mut out);
        p.on_result(retry[1].batch_id, ok(&[4, 5]), later, &mut out);
        assert_eq!(out.len(), 6);
        assert!(p.is_idle());
    }

    #[test]
    fn a_gap_behind_an_inflight_head_waits_for_it() {
        let t = Instant::now();
        let mut p = started(pipeline(settings()));
        push(&mut p, 0..4, t);
        let s = sends(&mut p, t);
        let mut out = Vec::new();
        p.on_result(
            s[1].batch_id,
            Err(Error::FailedPrecondition("gap".into())),
            t,
            &mut out,
        );
        assert!(sends(&mut p, t).is_empty(), "head still in flight");
        p.on_result(s[0].batch_id, ok(&[0, 1]), t, &mut out);
        let resent = sends(&mut p, t);
        assert_eq!(resent.iter().map(key).collect::<Vec<_>>(), [key(&s[1])]);
        p.on_result(resent[0].batch_id, ok(&[2, 3]), t, &mut out);
        let order: Vec<_> = out.iter().map(|(w, r)| (*w, r.clone())).collect();
        assert_eq!(order, [(0, Ok(0)), (1, Ok(1)), (2, Ok(2)), (3, Ok(3))]);
        assert!(p.is_idle());
    }

    #[test]
    fn a_refused_batch_fails_and_later_ones_move_to_a_fresh_producer_id() {
        let t = Instant::now();
        let mut p = started(pipeline(settings()));
        push(&mut p, 0..6, t);
        let s = sends(&mut p, t);
        push(&mut p, 6..7, t);
        let mut out = Vec::new();
        let full = Error::ResourceExhausted("queue 'q' is full".into());
        p.on_result(s[0].batch_id, Err(full.clone()), t, &mut out);
        assert_eq!(out, [(0, Err(full.clone())), (1, Err(full))]);
        out.clear();
        // Batch 2 of the old id arrives after the hole: a gap.
        p.on_result(
            s[1].batch_id,
            Err(Error::FailedPrecondition("gap".into())),
            t,
            &mut out,
        );
        assert!(
            sends(&mut p, t).is_empty(),
            "batch 3 of the old id still in flight"
        );
        p.on_result(
            s[2].batch_id,
            Err(Error::FailedPrecondition("gap".into())),
            t,
            &mut out,
        );
        assert!(out.is_empty(), "unstored messages are not failed");
        let mut again = sends(&mut p, t);
        assert_eq!(again.len(), 1, "the fresh id's first batch travels alone");
        p.on_result(again[0].batch_id, ok(&[20, 21]), t, &mut out);
        again.extend(sends(&mut p, t));
        let keys: Vec<_> = again.iter().map(key).collect();
        assert_eq!(
            keys,
            [
                ("p2".into(), 1, 2),
                ("p2".into(), 3, 2),
                ("p2".into(), 5, 1)
            ]
        );
        let order: Vec<Vec<String>> = again.iter().map(payloads).collect();
        assert_eq!(order, [vec!["m2", "m3"], vec!["m4", "m5"], vec!["m6"]]);
    }

    #[test]
    fn an_inflight_batch_of_a_broken_id_may_still_be_stored() {
        let t = Instant::now();
        let mut p = started(pipeline(settings()));
        push(&mut p, 0..4, t);
        let s = sends(&mut p, t);
        let mut out = Vec::new();
        p.on_result(
            s[0].batch_id,
            Err(Error::Server("internal".into())),
            t,
            &mut out,
        );
        assert_eq!(out.len(), 2);
        out.clear();
        p.on_result(s[1].batch_id, ok(&[7, 8]), t, &mut out);
        assert_eq!(out, [(2, Ok(7)), (3, Ok(8))]);
    }

    #[test]
    fn retries_stop_at_the_deadline() {
        let t = Instant::now();
        let mut p = pipeline(settings());
        push(&mut p, 0..2, t);
        let s = sends(&mut p, t);
        let mut out = Vec::new();
        let late = t + Duration::from_secs(11);
        p.on_result(
            s[0].batch_id,
            Err(Error::unavailable("no leader")),
            late,
            &mut out,
        );
        assert_eq!(out.len(), 2);
        assert!(matches!(&out[0].1, Err(Error::Timeout { last, .. }) if last == "no leader"));
        assert!(p.is_idle());
    }

    #[test]
    fn waiting_batches_and_unsent_messages_expire() {
        let t = Instant::now();
        let mut p = pipeline(Settings {
            max_in_flight: 1,
            ..settings()
        });
        push(&mut p, 0..4, t);
        let s = sends(&mut p, t);
        let mut out = Vec::new();
        p.on_result(s[0].batch_id, Err(Error::unavailable("x")), t, &mut out);
        p.expire(t + Duration::from_secs(10), &mut out);
        assert_eq!(out.len(), 4, "the waiting batch and both unsent messages");
        assert!(out
            .iter()
            .all(|(_, r)| matches!(r, Err(Error::Timeout { .. }))));
        assert!(p.is_idle());
    }

    #[test]
    fn an_unexplained_gap_on_the_head_moves_it_to_a_fresh_id() {
        let t = Instant::now();
        let mut p = pipeline(settings());
        push(&mut p, 0..2, t);
        let mut out = Vec::new();
        let gap = || Err(Error::FailedPrecondition("gap".into()));
        let mut now = t;
        for _ in 0..=GAPS_BEFORE_REKEY {
            let s = sends(&mut p, now);
            assert_eq!(key(&s[0]), ("p1".into(), 1, 2));
            p.on_result(s[0].batch_id, gap(), now, &mut out);
            now += Duration::from_secs(1);
        }
        let s = sends(&mut p, now);
        assert_eq!(key(&s[0]), ("p2".into(), 1, 2));
        assert!(out.is_empty());
    }

    #[test]
    fn wrong_offset_counts_are_errors_not_confirms() {
        let t = Instant::now();
        let mut p = pipeline(settings());
        push(&mut p, 0..2, t);
        let s = sends(&mut p, t);
        let mut out = Vec::new();
        p.on_result(s[0].batch_id, ok(&[1]), t, &mut out);
        assert!(out.iter().all(|(_, r)| matches!(r, Err(Error::Server(_)))));
    }

    #[test]
    fn oversized_messages_go_alone() {
        let t = Instant::now();
        let mut p = started(pipeline(Settings {
            max_batch_bytes: 3,
            ..settings()
        }));
        push(&mut p, 0..3, t);
        let s = sends(&mut p, t);
        assert_eq!(
            s.iter()
                .map(|s| s.request.messages.len())
                .collect::<Vec<_>>(),
            [1, 1, 1]
        );
    }
}
