//! `total`: every peer delivers every message in the same order, using
//! Lamport clocks (the algorithm of the seed, after Lamport 1978).
//!
//! # The algorithm
//!
//! 1. Every record carries its sender's Lamport stamp (see [`crate::clock`]).
//!    The pair `(stamp, sender)` is unique and orders all records totally.
//! 2. A receiver puts each record into a *hold-back queue* sorted by that
//!    pair.
//! 3. The record at the head of the queue is delivered once no record with a
//!    smaller pair can still arrive.
//!
//! When is that? The textbook answer: once every other member has
//! *acknowledged* the head, each acknowledgement carrying the acknowledger's
//! clock, which (rule 2 of Lamport clocks) is above the head's stamp. We use
//! the equivalent *implicit* form: we deliver once every other member `k` has
//! sent us *anything* — a data record or an ACK frame — that shows its clock
//! has reached the head's stamp. We call the largest such value `bound[k]`.
//!
//! # Why implicit acknowledgements suffice — and why the links must be FIFO
//!
//! Suppose `bound[k] >= s` for the head's stamp `s`. Member `k`'s clock only
//! grows, and every record `k` sends is stamped with a fresh tick, so every
//! record `k` sends *after* reporting `bound[k]` is stamped above `s`. If the
//! link from `k` delivers in order, every record `k` sent *before* that report
//! has already reached us and is in the queue, sorted where it belongs. So no
//! record from `k` with a smaller pair can still arrive — exactly the
//! guarantee an explicit acknowledgement gives, without sending one.
//!
//! The argument leans on "in order" twice. Over a link that reorders, a
//! record stamped below `s` could arrive after the report, and we would
//! already have delivered past it. This is why Lamport's algorithm assumes
//! FIFO channels, and why mpcomm only takes a bound from `k` once the
//! reliable link has released, in sequence, every record `k` had sent when
//! it made the report ([`crate::link::RecvStream::bound_from_ack`]). A
//! record's own stamp counts as a report too, at the moment the link releases
//! it in order.
//!
//! Our own future records need no such care: our clock already passed every
//! stamp we received, so anything we send later sorts after the head.
//!
//! # Cost
//!
//! Each member must hear from every other after each message, so at light
//! load every record triggers an ACK to every member. Under load these ride
//! for free on data datagrams (every datagram carries an ACK frame), which is
//! why the protocol gets faster per message as the load grows.

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;

use super::{LinkGaps, OrderKind, Ordering};
use crate::trace::{MsgRef, WaitCause, WaitReason};
use crate::wire::{MemberId, Record, RecordKind};

/// A record in the hold-back queue, ordered so that `BinaryHeap` (a max-heap)
/// pops the smallest `(stamp, sender)` first.
#[derive(Debug)]
struct Held(Record);

impl Held {
    fn key(&self) -> (u64, MemberId) {
        (self.0.stamp, self.0.sender)
    }
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        other.key().cmp(&self.key())
    }
}

/// Lamport total-order engine.
#[derive(Debug)]
pub struct TotalOrder {
    me: MemberId,
    /// `bound[k]`: no record from `k` stamped at or below this can still come.
    bound: Vec<u64>,
    /// Smallest bound among the other members, recomputed when stale.
    min_bound: u64,
    min_stale: bool,
    queue: BinaryHeap<Held>,
    /// The view is closing: the held set is final, deliver it all.
    closing: bool,
}

impl TotalOrder {
    /// The engine for member `me` of a group of `members`.
    pub fn new(me: MemberId, members: usize) -> TotalOrder {
        TotalOrder {
            me,
            bound: vec![0; members],
            min_bound: 0,
            min_stale: true,
            queue: BinaryHeap::new(),
            closing: false,
        }
    }

    fn raise(&mut self, member: MemberId, clock: u64) {
        if member == self.me {
            return; // our own future stamps exceed everything we hold
        }
        if let Some(b) = self.bound.get_mut(usize::from(member))
            && clock > *b
        {
            // Only raising the current minimum can raise the minimum.
            if *b == self.min_bound {
                self.min_stale = true;
            }
            *b = clock;
        }
    }

    fn min_other_bound(&mut self) -> u64 {
        if self.min_stale {
            let me = usize::from(self.me);
            self.min_bound = self
                .bound
                .iter()
                .enumerate()
                .filter(|(k, _)| *k != me)
                .map(|(_, b)| *b)
                .min()
                .unwrap_or(u64::MAX);
            self.min_stale = false;
        }
        self.min_bound
    }

    /// The stamp of the head of the hold-back queue.
    pub fn head_stamp(&self) -> Option<u64> {
        self.queue.peek().map(|h| h.0.stamp)
    }
}

impl Ordering for TotalOrder {
    fn kind(&self) -> OrderKind {
        OrderKind::Total
    }

    fn on_fifo(&mut self, rec: Record) {
        self.raise(rec.sender, rec.stamp);
        if !matches!(rec.kind, RecordKind::Control) {
            self.queue.push(Held(rec));
        }
    }

    fn on_bound(&mut self, from: MemberId, clock: u64) {
        self.raise(from, clock);
    }

    fn poll_deliver(&mut self) -> Option<Record> {
        let head = self.queue.peek()?.0.stamp;
        if self.closing || head <= self.min_other_bound() {
            self.queue.pop().map(|h| h.0)
        } else {
            None
        }
    }

    fn pending(&self) -> usize {
        self.queue.len()
    }

    fn blocked_on(&self, member: MemberId) -> bool {
        match self.queue.peek() {
            Some(head) => {
                member != self.me
                    && self
                        .bound
                        .get(usize::from(member))
                        .is_some_and(|b| *b < head.0.stamp)
            }
            None => false,
        }
    }

    fn acks_to_all(&self) -> bool {
        true
    }

    fn exclude(&mut self, member: MemberId) {
        if let Some(b) = self.bound.get_mut(usize::from(member)) {
            *b = u64::MAX;
            self.min_stale = true;
        }
    }

    /// Every record of the closing view is in the queue: none can still
    /// arrive to sort before the head, so the whole queue goes out in key
    /// order — the order every survivor uses, since they hold the same set.
    fn close_view(&mut self) {
        self.closing = true;
    }

    /// The head waits for exactly the members whose bound is below its
    /// stamp: those that have neither acknowledged it nor sent anything
    /// stamped later (in their FIFO order), any of which could still send a
    /// record that sorts first.
    fn wait_reason(&self, _links: &dyn LinkGaps) -> Option<WaitReason> {
        let head = &self.queue.peek()?.0;
        let waiting_for: Vec<MemberId> = (0..self.bound.len())
            .map(|k| k as MemberId)
            .filter(|&k| self.blocked_on(k))
            .collect();
        if waiting_for.is_empty() {
            return None;
        }
        Some(WaitReason {
            head: MsgRef::of(head),
            waiting_for,
            cause: WaitCause::Acknowledgements,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn data(sender: MemberId, seq: u64, stamp: u64) -> Record {
        Record {
            sender,
            link_seq: seq,
            kind: RecordKind::Data { seq },
            stamp,
            ext: Bytes::new(),
            payload: Bytes::new(),
        }
    }

    #[test]
    fn holds_back_until_every_other_member_has_passed_the_stamp() {
        // Member 0 of three.
        let mut t = TotalOrder::new(0, 3);
        t.on_fifo(data(1, 0, 5));
        assert!(
            t.poll_deliver().is_none(),
            "member 2 might still send something stamped below 5"
        );
        assert!(t.blocked_on(2) && !t.blocked_on(1));
        t.on_fifo(data(2, 0, 3)); // member 2's message, stamped 3, sorts first
        // (3, 2) may go: member 1 is past 5 and member 2 sent it. (5, 1) must
        // wait, since member 2 has only shown a clock of 3.
        assert_eq!(t.poll_deliver().map(|r| (r.stamp, r.sender)), Some((3, 2)));
        assert!(t.poll_deliver().is_none());
        t.on_bound(2, 6);
        assert_eq!(t.poll_deliver().map(|r| (r.stamp, r.sender)), Some((5, 1)));
    }

    #[test]
    fn ties_break_by_sender() {
        let mut t = TotalOrder::new(0, 3);
        t.on_fifo(data(2, 0, 4));
        t.on_fifo(data(1, 0, 4));
        t.on_fifo(data(0, 0, 4));
        t.on_bound(1, 9);
        t.on_bound(2, 9);
        let order: Vec<_> = std::iter::from_fn(|| t.poll_deliver())
            .map(|r| r.sender)
            .collect();
        assert_eq!(order, vec![0, 1, 2]);
    }

    #[test]
    fn the_wait_names_the_members_below_the_head() {
        use crate::order::NoGaps;
        let mut t = TotalOrder::new(0, 4);
        assert_eq!(t.wait_reason(&NoGaps), None);
        t.on_fifo(data(1, 0, 5));
        t.on_bound(3, 7);
        let w = t.wait_reason(&NoGaps).unwrap();
        assert_eq!((w.head.sender, w.head.stamp), (1, 5));
        assert_eq!(w.waiting_for, vec![2], "1 sent it, 3 is past 5, 0 is us");
        t.on_bound(2, 5);
        assert_eq!(t.wait_reason(&NoGaps), None);
        assert!(t.poll_deliver().is_some());
    }

    #[test]
    fn alone_delivers_at_once() {
        let mut t = TotalOrder::new(0, 1);
        t.on_fifo(data(0, 0, 1));
        assert!(t.poll_deliver().is_some());
    }
}
