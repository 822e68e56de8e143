//! A consumer's prefetch, enforced by its session on the leader.
//!
//! The state machine decides who holds what, and it frees a consumer's credit
//! only when the consumer's ack is applied, a full Raft round after the ack
//! left the client. If the state machine's limit were the client's prefetch,
//! every consumer would be paced by the commit latency of its own acks: with a
//! producer and a consumer at equal windows the consumer falls behind and the
//! backlog grows for as long as they run (`bench/results/w3.md`).
//!
//! So the state machine lets a consumer hold up to `2 * prefetch - 1`
//! messages ([`hold_limit`]), and this window hands the client at most
//! `prefetch` unsettled ones, counting a settle as soon as it arrives. What the
//! state machine assigned beyond that is parked here until the client settles
//! something. When the session ends, parked messages go back to the queue as
//! everything else the consumer held does, counting a delivery: uncounted,
//! they would come back as first deliveries after later offsets that other
//! consumers already had, and first deliveries follow publish order.
//! Prefetch 1 gets no slack: fair dispatch of long tasks must not park a
//! second message on a busy consumer while another one is idle.

use std::collections::{HashSet, VecDeque};

use raftq_queue::{Delivery, Offset};

/// How many messages the state machine may assign to a consumer whose client
/// asked for `prefetch`.
pub fn hold_limit(prefetch: u32) -> u32 {
    prefetch.max(1).saturating_mul(2) - 1
}

pub struct Window {
    prefetch: usize,
    /// Offsets handed to the client and not settled by it yet.
    in_hand: HashSet<Offset>,
    /// Assigned by the state machine, not handed out yet, oldest first.
    parked: VecDeque<Delivery>,
}

impl Window {
    pub fn new(prefetch: u32) -> Self {
        Self {
            prefetch: prefetch.max(1) as usize,
            in_hand: HashSet::new(),
            parked: VecDeque::new(),
        }
    }

    /// A delivery from the state machine: returned if the client may have it
    /// now, parked otherwise.
    pub fn offer(&mut self, delivery: Delivery) -> Option<Delivery> {
        if self.in_hand.len() < self.prefetch && self.parked.is_empty() {
            self.in_hand.insert(delivery.offset);
            return Some(delivery);
        }
        self.parked.push_back(delivery);
        None
    }

    /// The client settled `offsets` (the settle is on its way to the log):
    /// returns the parked deliveries it may have now, oldest first.
    pub fn settled(&mut self, offsets: &[Offset]) -> Vec<Delivery> {
        let mut unseen = HashSet::new();
        for offset in offsets {
            if !self.in_hand.remove(offset) {
                unseen.insert(*offset);
            }
        }
        // A client may settle an offset it guessed but was never handed; the
        // state machine settles it all the same, so it must not go out later.
        if !unseen.is_empty() {
            self.parked.retain(|d| !unseen.contains(&d.offset));
        }
        let mut ready = Vec::new();
        while self.in_hand.len() < self.prefetch {
            let Some(delivery) = self.parked.pop_front() else {
                break;
            };
            self.in_hand.insert(delivery.offset);
            ready.push(delivery);
        }
        ready
    }

    #[cfg(test)]
    fn parked_offsets(&self) -> Vec<Offset> {
        self.parked.iter().map(|d| d.offset).collect()
    }

    #[cfg(test)]
    fn in_hand(&self) -> usize {
        self.in_hand.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use raftq_queue::Message;

    fn delivery(offset: Offset) -> Delivery {
        Delivery {
            offset,
            message: Message::new(format!("m{offset}")),
            delivery_count: 0,
            redelivered: false,
            publish_time_ms: 0,
        }
    }

    fn offsets(deliveries: &[Delivery]) -> Vec<Offset> {
        deliveries.iter().map(|d| d.offset).collect()
    }

    #[test]
    fn the_state_machine_may_assign_up_to_twice_the_prefetch_less_one() {
        assert_eq!(hold_limit(0), 1);
        assert_eq!(hold_limit(1), 1);
        assert_eq!(hold_limit(2), 3);
        assert_eq!(hold_limit(256), 511);
        assert_eq!(hold_limit(u32::MAX), u32::MAX - 1);
    }

    #[test]
    fn a_settle_frees_credit_at_once_and_parked_deliveries_go_out_in_order() {
        let mut w = Window::new(2);
        assert!(w.offer(delivery(0)).is_some());
        assert!(w.offer(delivery(1)).is_some());
        assert!(w.offer(delivery(2)).is_none());
        assert!(w.offer(delivery(3)).is_none());
        assert_eq!(offsets(&w.settled(&[1])), vec![2]);
        assert_eq!(w.parked_offsets(), vec![3]);
        assert_eq!(offsets(&w.settled(&[0, 2])), vec![3]);
        assert!(w.parked_offsets().is_empty());
        assert_eq!(w.in_hand(), 1);
    }

    #[test]
    fn a_delivery_never_overtakes_a_parked_one() {
        let mut w = Window::new(1);
        assert!(w.offer(delivery(0)).is_some());
        assert!(w.offer(delivery(1)).is_none());
        assert_eq!(offsets(&w.settled(&[0])), vec![1]);
        assert!(w.offer(delivery(2)).is_none());
        assert_eq!(offsets(&w.settled(&[1])), vec![2]);
    }

    #[test]
    fn a_settle_of_a_parked_offset_drops_it_without_freeing_credit() {
        let mut w = Window::new(1);
        w.offer(delivery(0));
        w.offer(delivery(1));
        w.offer(delivery(2));
        assert!(w.settled(&[1]).is_empty());
        assert_eq!(w.parked_offsets(), vec![2]);
        assert_eq!(offsets(&w.settled(&[0])), vec![2]);
    }

    proptest! {
        /// Whatever the state machine offers and the client settles: the
        /// client never holds more than `prefetch`, every offer is handed out
        /// once or stays parked, and deliveries go out in the order offered.
        #[test]
        fn never_more_than_prefetch_in_hand_and_nothing_lost(
            prefetch in 1u32..5,
            steps in proptest::collection::vec((any::<bool>(), 0usize..4), 1..60),
        ) {
            let mut w = Window::new(prefetch);
            let mut next = 0;
            let mut handed: Vec<Offset> = Vec::new();
            let mut unsettled: Vec<Offset> = Vec::new();
            for (is_offer, n) in steps {
                let out = if is_offer {
                    next += 1;
                    w.offer(delivery(next - 1)).into_iter().collect()
                } else {
                    let settle: Vec<Offset> = unsettled.drain(..n.min(unsettled.len())).collect();
                    w.settled(&settle)
                };
                for d in out {
                    handed.push(d.offset);
                    unsettled.push(d.offset);
                }
                prop_assert!(unsettled.len() <= prefetch as usize);
                prop_assert_eq!(w.in_hand(), unsettled.len());
            }
            let mut all = handed.clone();
            all.extend(w.parked_offsets());
            prop_assert_eq!(all, (0..next).collect::<Vec<_>>());
        }
    }
}
