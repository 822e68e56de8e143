//! Judges a history against the guarantees of README "Guarantees".
//!
//! - lost: a confirmed publish never delivered (the run drains every queue at
//!   the end, so everything confirmed must show up);
//! - unexpected: a delivery of a message nobody tried to publish;
//! - resurrected: a delivery of a stored message (queue, offset) after its ack
//!   was confirmed;
//! - duplicates (allowed, counted): a message stored at more than one offset
//!   (a non-idempotent publish retried after an unclear failure);
//! - FIFO: what can honestly be observed with concurrent producers and
//!   consumers is (a) each producer's confirmed messages, which it sends one
//!   after the other, get ascending offsets, and (b) within one consumer
//!   session, first deliveries (not redelivered) come in ascending offsets;
//! - split brain: two different leaders reported for one queue and term;
//! - offset conflicts and stream replicas: see [`crate::stream_check`] (for a
//!   stream, "lost" means missing from a node's replica after the run);
//! - availability: for each fault, the time from the last confirm before it to
//!   the first confirm after it (on the queue it targeted, else on any).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use crate::history::Event;

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    pub faults: usize,
    pub confirmed: usize,
    pub failed_publishes: usize,
    pub delivered: usize,
    pub acked: usize,
    pub lost: usize,
    pub unexpected: usize,
    pub resurrected: usize,
    pub duplicates: usize,
    pub fifo_violations: usize,
    pub split_brain: usize,
    pub offset_conflicts: usize,
    pub replica_divergence: usize,
    pub stream_reads: usize,
    pub failover_median_ms: u64,
    pub failover_max_ms: u64,
    /// A few examples of each anomaly, for the human summary.
    pub examples: Vec<String>,
}

impl Report {
    pub fn anomalies(&self) -> usize {
        self.lost
            + self.unexpected
            + self.resurrected
            + self.fifo_violations
            + self.split_brain
            + self.offset_conflicts
            + self.replica_divergence
    }
}

const MAX_EXAMPLES: usize = 20;

/// A confirmed publish of one producer: (sequence, offset, message).
type Sent = (u64, u64, u64);

pub(crate) fn example(report: &mut Report, text: String) {
    if report.examples.len() < MAX_EXAMPLES {
        report.examples.push(text);
    }
}

pub fn check(events: &[Event]) -> Report {
    let mut r = Report::default();
    // (queue, msg) keys: message ids are unique per run, queues keep them apart.
    let mut attempted: BTreeSet<(&str, u64)> = BTreeSet::new();
    let mut confirmed: BTreeMap<(&str, u64), u64> = BTreeMap::new();
    let mut offsets_of: HashMap<(&str, u64), BTreeSet<u64>> = HashMap::new();
    let mut delivered: BTreeSet<(&str, u64)> = BTreeSet::new();
    let mut acked_at: HashMap<(&str, u64), u64> = HashMap::new();
    let mut by_producer: BTreeMap<(&str, u32), Vec<Sent>> = BTreeMap::new();
    let mut leaders: HashMap<(&str, u64), BTreeSet<u64>> = HashMap::new();
    let mut confirms: Vec<(u64, &str)> = Vec::new();

    for e in events {
        match e {
            Event::PublishOk {
                t,
                queue,
                msg,
                producer,
                seq,
                offset,
                ..
            } => {
                attempted.insert((queue, *msg));
                confirmed.insert((queue, *msg), *offset);
                offsets_of.entry((queue, *msg)).or_default().insert(*offset);
                by_producer
                    .entry((queue, *producer))
                    .or_default()
                    .push((*seq, *offset, *msg));
                confirms.push((*t, queue));
            }
            Event::PublishFailed { queue, msg, .. } => {
                attempted.insert((queue, *msg));
                r.failed_publishes += 1;
            }
            Event::AckOk {
                t, queue, offset, ..
            } => {
                r.acked += 1;
                // By offset: a duplicate stored elsewhere is another message.
                acked_at.entry((queue, *offset)).or_insert(*t);
            }
            Event::Fault { .. } => r.faults += 1,
            Event::Leader {
                queue,
                term,
                leader,
                ..
            } => {
                if *leader != 0 {
                    leaders.entry((queue, *term)).or_default().insert(*leader);
                }
            }
            Event::StreamRead { .. } => r.stream_reads += 1,
            Event::Delivered { .. } | Event::StreamReplicaRead { .. } => {}
        }
    }
    r.confirmed = confirmed.len();
    let streams = crate::stream_check::stream_queues(events);
    // After every attempt is known: a reader may see a message before its
    // producer has recorded the confirm.
    for e in events {
        if let Event::StreamRead { queue, msg, .. } = e {
            if *msg != u64::MAX && !attempted.contains(&(queue.as_str(), *msg)) {
                r.unexpected += 1;
                example(&mut r, format!("unexpected: {queue} message {msg} read"));
            }
        }
    }

    let mut sessions: HashMap<u64, u64> = HashMap::new();
    for e in events {
        let Event::Delivered {
            t,
            queue,
            msg,
            offset,
            redelivered,
            session,
        } = e
        else {
            continue;
        };
        r.delivered += 1;
        let key = (queue.as_str(), *msg);
        if !attempted.contains(&key) {
            r.unexpected += 1;
            example(
                &mut r,
                format!("unexpected: {queue} message {msg} at offset {offset}"),
            );
        }
        offsets_of.entry(key).or_default().insert(*offset);
        delivered.insert(key);
        if let Some(acked) = acked_at.get(&(queue.as_str(), *offset)) {
            if t > acked {
                r.resurrected += 1;
                example(
                    &mut r,
                    format!("resurrected: {queue} message {msg} delivered at {t} ms, acked at {acked} ms"),
                );
            }
        }
        if !redelivered {
            let last = sessions.entry(*session).or_insert(0);
            if *offset < *last {
                r.fifo_violations += 1;
                example(
                    &mut r,
                    format!("FIFO: session {session} got {queue} offset {offset} after {last}"),
                );
            }
            *last = (*last).max(*offset);
        }
    }

    // A stream is not consumed: its messages are checked on every replica.
    for (key, _) in confirmed.iter().filter(|(k, _)| !streams.contains(k.0)) {
        if !delivered.contains(key) {
            r.lost += 1;
            example(
                &mut r,
                format!("lost: {} message {} (confirmed)", key.0, key.1),
            );
        }
    }
    r.duplicates = offsets_of.values().filter(|o| o.len() > 1).count();

    for ((queue, producer), mut sent) in by_producer {
        sent.sort_unstable();
        for pair in sent.windows(2) {
            if pair[1].1 <= pair[0].1 {
                r.fifo_violations += 1;
                example(
                    &mut r,
                    format!(
                        "FIFO: {queue} producer {producer} seq {} at offset {} after seq {} at {}",
                        pair[1].0, pair[1].1, pair[0].0, pair[0].1
                    ),
                );
            }
        }
    }

    for ((queue, term), who) in &leaders {
        if who.len() > 1 {
            r.split_brain += 1;
            example(
                &mut r,
                format!("split brain: {queue} term {term} leaders {who:?}"),
            );
        }
    }

    crate::stream_check::streams(events, &confirmed, &mut r);
    crate::stream_check::offset_conflicts(events, &mut r);

    confirms.sort_unstable();
    let mut gaps: Vec<u64> = Vec::new();
    for e in events {
        let Event::Fault { t, queue, .. } = e else {
            continue;
        };
        let relevant = |q: &str| queue.as_deref().is_none_or(|fq| fq == q);
        let before = confirms
            .iter()
            .rev()
            .find(|(ct, q)| ct <= t && relevant(q))
            .map(|(ct, _)| *ct);
        let after = confirms
            .iter()
            .find(|(ct, q)| ct > t && relevant(q))
            .map(|(ct, _)| *ct);
        if let (Some(b), Some(a)) = (before, after) {
            gaps.push(a - b);
        }
    }
    gaps.sort_unstable();
    r.failover_median_ms = gaps.get(gaps.len() / 2).copied().unwrap_or(0);
    r.failover_max_ms = gaps.last().copied().unwrap_or(0);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(t: u64, msg: u64, seq: u64, offset: u64) -> Event {
        Event::PublishOk {
            t,
            queue: "q".into(),
            msg,
            producer: 1,
            seq,
            offset,
            lat_ms: 1,
        }
    }

    fn got(t: u64, msg: u64, offset: u64, redelivered: bool, session: u64) -> Event {
        Event::Delivered {
            t,
            queue: "q".into(),
            msg,
            offset,
            redelivered,
            session,
        }
    }

    fn ack(t: u64, msg: u64, offset: u64) -> Event {
        Event::AckOk {
            t,
            queue: "q".into(),
            msg,
            offset,
        }
    }

    fn leader(term: u64, leader: u64, reporter: u64) -> Event {
        Event::Leader {
            t: 0,
            queue: "q".into(),
            term,
            leader,
            reporter,
        }
    }

    fn clean() -> Vec<Event> {
        vec![
            leader(1, 1, 1),
            leader(1, 1, 2),
            ok(10, 1, 1, 0),
            ok(20, 2, 2, 1),
            got(30, 1, 0, false, 7),
            got(31, 2, 1, false, 7),
            ack(40, 1, 0),
            ack(41, 2, 1),
            leader(2, 3, 2),
        ]
    }

    #[test]
    fn a_clean_history_passes() {
        let r = check(&clean());
        assert_eq!(r.anomalies(), 0, "{r:?}");
        assert_eq!((r.confirmed, r.delivered, r.acked), (2, 2, 2));
    }

    #[test]
    fn a_lost_message_is_flagged() {
        let mut h = clean();
        h.push(ok(50, 3, 3, 2));
        let r = check(&h);
        assert_eq!(r.lost, 1);
    }

    #[test]
    fn a_failed_publish_need_not_arrive() {
        let mut h = clean();
        h.push(Event::PublishFailed {
            t: 50,
            queue: "q".into(),
            msg: 3,
            producer: 1,
            seq: 3,
        });
        assert_eq!(check(&h).anomalies(), 0);
    }

    #[test]
    fn an_unexpected_message_is_flagged() {
        let mut h = clean();
        h.push(got(60, 99, 5, false, 8));
        assert_eq!(check(&h).unexpected, 1);
    }

    #[test]
    fn a_duplicate_is_counted_not_failed() {
        let mut h = clean();
        h.push(got(60, 2, 4, false, 8));
        let r = check(&h);
        assert_eq!(r.duplicates, 1);
        assert_eq!(r.anomalies(), 0);
    }

    #[test]
    fn a_resurrected_ack_is_flagged() {
        let mut h = clean();
        h.push(got(70, 1, 0, true, 9));
        assert_eq!(check(&h).resurrected, 1);
    }

    #[test]
    fn a_redelivery_before_the_ack_is_fine() {
        let h = vec![
            ok(10, 1, 1, 0),
            got(20, 1, 0, false, 1),
            got(30, 1, 0, true, 2),
            ack(40, 1, 0),
        ];
        assert_eq!(check(&h).anomalies(), 0);
    }

    #[test]
    fn fifo_breaks_are_flagged_on_publish_and_on_delivery() {
        let publish_break = vec![
            ok(10, 1, 1, 5),
            ok(20, 2, 2, 3),
            got(30, 1, 5, false, 1),
            got(31, 2, 3, true, 2),
        ];
        assert_eq!(check(&publish_break).fifo_violations, 1);
        let delivery_break = vec![
            ok(10, 1, 1, 0),
            ok(20, 2, 2, 1),
            got(30, 2, 1, false, 1),
            got(31, 1, 0, false, 1),
        ];
        assert_eq!(check(&delivery_break).fifo_violations, 1);
        let redelivered_is_exempt = vec![
            ok(10, 1, 1, 0),
            ok(20, 2, 2, 1),
            got(30, 2, 1, false, 1),
            got(31, 1, 0, true, 1),
        ];
        assert_eq!(check(&redelivered_is_exempt).fifo_violations, 0);
    }

    fn read(node: u64, msg: u64, offset: u64, final_read: bool) -> Event {
        Event::StreamRead {
            t: 50,
            queue: "s".into(),
            node,
            offset,
            msg,
            final_read,
        }
    }

    fn replica(node: u64, ok: bool) -> Event {
        Event::StreamReplicaRead {
            t: 60,
            queue: "s".into(),
            node,
            ok,
            detail: if ok { String::new() } else { "timeout".into() },
        }
    }

    fn on_stream(e: Event) -> Event {
        match e {
            Event::PublishOk {
                t,
                msg,
                producer,
                seq,
                offset,
                lat_ms,
                ..
            } => Event::PublishOk {
                t,
                queue: "s".into(),
                msg,
                producer,
                seq,
                offset,
                lat_ms,
            },
            other => other,
        }
    }

    /// Two confirmed messages on stream "s", both nodes hold both.
    fn clean_stream() -> Vec<Event> {
        vec![
            on_stream(ok(10, 101, 1, 0)),
            on_stream(ok(11, 102, 2, 1)),
            read(2, 101, 0, false),
            read(1, 101, 0, true),
            read(1, 102, 1, true),
            replica(1, true),
            read(2, 101, 0, true),
            read(2, 102, 1, true),
            replica(2, true),
        ]
    }

    #[test]
    fn a_stream_held_whole_by_every_replica_passes() {
        let r = check(&clean_stream());
        assert_eq!(r.anomalies(), 0, "{r:?}");
        assert_eq!(r.stream_reads, 5);
    }

    #[test]
    fn a_confirmed_stream_message_missing_on_one_replica_is_lost() {
        let mut h = clean_stream();
        h.retain(|e| *e != read(2, 102, 1, true));
        let r = check(&h);
        assert_eq!(r.lost, 1, "{r:?}");
        assert_eq!(r.replica_divergence, 1, "{r:?}");
    }

    #[test]
    fn a_stream_read_before_its_confirm_is_recorded_is_expected() {
        let mut h = clean_stream();
        h.insert(0, read(3, 102, 1, false));
        assert_eq!(check(&h).anomalies(), 0);
        h.push(read(3, 999, 2, false));
        assert_eq!(check(&h).unexpected, 1);
    }

    #[test]
    fn an_unreadable_replica_leaves_the_run_unverified() {
        let mut h = clean_stream();
        h.push(replica(3, false));
        assert_eq!(check(&h).replica_divergence, 1);
    }

    #[test]
    fn two_messages_at_one_offset_are_a_conflict_on_streams_and_queues() {
        let mut h = clean_stream();
        h.push(read(3, 103, 1, false));
        assert_eq!(check(&h).offset_conflicts, 1);
        let mut q = clean();
        q.push(got(50, 9, 1, false, 8));
        q.push(ok(49, 9, 3, 1));
        let r = check(&q);
        assert_eq!(r.offset_conflicts, 1, "{r:?}");
    }

    #[test]
    fn two_leaders_in_one_term_are_split_brain() {
        let mut h = clean();
        h.push(leader(2, 1, 1));
        assert_eq!(check(&h).split_brain, 1);
    }

    #[test]
    fn failover_is_the_confirm_gap_around_each_fault() {
        let h = vec![
            ok(100, 1, 1, 0),
            Event::Fault {
                t: 150,
                end: 900,
                kind: "kill-leader".into(),
                detail: "node 1".into(),
                queue: Some("q".into()),
            },
            ok(400, 2, 2, 1),
            got(500, 1, 0, false, 1),
            got(501, 2, 1, false, 1),
        ];
        let r = check(&h);
        assert_eq!(
            (r.faults, r.failover_median_ms, r.failover_max_ms),
            (1, 300, 300)
        );
    }
}
