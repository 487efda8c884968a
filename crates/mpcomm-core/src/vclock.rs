//! Vector clocks: which messages a member had seen when it sent one.
//!
//! # What a Lamport clock cannot say
//!
//! A Lamport clock ([`crate::clock`]) gives every message a number that grows
//! along every chain of cause and effect: if `a` could have influenced `b`,
//! then `stamp(a) < stamp(b)`. The converse does not hold. Two members that
//! never heard of each other's messages may stamp them 3 and 7: the smaller
//! stamp does not mean that the message *caused* anything. For a causal
//! order that matters: a reply must wait for the question it answers, but
//! there is no reason to hold a message back behind an unrelated one.
//!
//! # One counter per member
//!
//! A *vector clock* keeps one counter per member instead of one in all. In
//! mpcomm, entry `k` of a member's vector counts **how many of member `k`'s
//! messages it has delivered**. When it multicasts a message, it attaches
//! its vector: "I sent this after delivering these". Comparing two vectors
//! entry by entry then tells exactly how two messages relate:
//!
//! * `v ≤ w` in every entry (and `v ≠ w`): everything the sender of `v` had
//!   delivered, the sender of `w` had delivered too — the message stamped
//!   `v` may have influenced the one stamped `w` (it *happened before*);
//! * `v` larger in one entry and `w` larger in another: neither sender knew
//!   everything the other knew: the messages are *concurrent*, and members
//!   may deliver them in either order.
//!
//! ```text
//!   member 0 delivers 0:0 ─────────────── vector [1, 0, 0]
//!   member 1 delivers 0:0, then sends 1:0  1:0 carries [1, 0, 0]
//!   member 2 sends 2:0 (has delivered nothing)   2:0 carries [0, 0, 0]
//!
//!   1:0 must wait for 0:0 at every member: its vector says member 1 had
//!   delivered one message of member 0 first. 2:0 and 1:0 are concurrent.
//! ```
//!
//! The price is the size: N counters per message instead of one. The
//! `causal` ordering engine ([`crate::order::causal`]) sends only the
//! entries that changed since the sender's previous message.
//!
//! This is the vector clock of Fidge and Mattern (1988), counting
//! deliveries rather than all events, as the causal multicast of Birman,
//! Schiper and Stephenson (1991) does.

use std::cmp::Ordering;

use crate::wire::MemberId;

/// How two vector clocks relate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Causality {
    /// Equal in every entry.
    Same,
    /// The first is smaller or equal in every entry: it happened before.
    Before,
    /// The first is larger or equal in every entry: it happened after.
    After,
    /// Each is larger somewhere: neither knew all the other knew.
    Concurrent,
}

/// A vector clock over the members `0..N`: entry `k` counts member `k`'s
/// messages delivered. See the [module documentation](self).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct VectorClock {
    counts: Vec<u64>,
}

impl VectorClock {
    /// A clock for a group of `members`, every entry zero.
    pub fn new(members: usize) -> VectorClock {
        VectorClock {
            counts: vec![0; members],
        }
    }

    /// Group size.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    /// Whether the group is empty (a clock of no members).
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Entry `member` (zero for a member outside the group).
    pub fn get(&self, member: MemberId) -> u64 {
        self.counts.get(usize::from(member)).copied().unwrap_or(0)
    }

    /// The entries, in member order.
    pub fn as_slice(&self) -> &[u64] {
        &self.counts
    }

    /// One more of `member`'s messages delivered. Ignores members outside
    /// the group.
    pub fn increment(&mut self, member: MemberId) {
        self.add(member, 1);
    }

    /// `by` more of `member`'s messages delivered (saturating). Ignores
    /// members outside the group.
    pub fn add(&mut self, member: MemberId, by: u64) {
        if let Some(c) = self.counts.get_mut(usize::from(member)) {
            *c = c.saturating_add(by);
        }
    }

    /// Whether every entry is at least `other`'s: this member has delivered
    /// everything `other` counts (the test a causal order makes before it
    /// delivers a message stamped `other`).
    pub fn covers(&self, other: &VectorClock) -> bool {
        (0..self.len().max(other.len())).all(|k| {
            let k = k as MemberId;
            self.get(k) >= other.get(k)
        })
    }

    /// How this clock relates to `other`.
    pub fn compare(&self, other: &VectorClock) -> Causality {
        let mut less = false;
        let mut greater = false;
        for k in 0..self.len().max(other.len()) {
            let k = k as MemberId;
            match self.get(k).cmp(&other.get(k)) {
                Ordering::Less => less = true,
                Ordering::Greater => greater = true,
                Ordering::Equal => {}
            }
        }
        match (less, greater) {
            (false, false) => Causality::Same,
            (true, false) => Causality::Before,
            (false, true) => Causality::After,
            (true, true) => Causality::Concurrent,
        }
    }

    /// Raises every entry to at least `other`'s (the entry-wise maximum).
    pub fn merge(&mut self, other: &VectorClock) {
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a = (*a).max(*b);
        }
    }
}

impl From<Vec<u64>> for VectorClock {
    fn from(counts: Vec<u64>) -> VectorClock {
        VectorClock { counts }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(c: &[u64]) -> VectorClock {
        VectorClock::from(c.to_vec())
    }

    #[test]
    fn the_module_example() {
        // Member 1 delivered 0:0 and then sent 1:0; member 2 sent 2:0 having
        // delivered nothing.
        let one = v(&[1, 0, 0]);
        let two = v(&[0, 0, 0]);
        assert_eq!(two.compare(&one), Causality::Before);
        // A member that delivered 2:0 only has not delivered what 1:0 needs.
        assert!(!v(&[0, 0, 1]).covers(&one));
        assert!(v(&[1, 0, 1]).covers(&one));
        assert_eq!(v(&[1, 0, 0]).compare(&v(&[0, 0, 1])), Causality::Concurrent);
        assert_eq!(v(&[2, 1, 0]).compare(&v(&[2, 1, 0])), Causality::Same);
        assert_eq!(v(&[2, 1, 0]).compare(&v(&[2, 0, 0])), Causality::After);
    }

    #[test]
    fn increment_add_and_merge() {
        let mut a = VectorClock::new(3);
        a.increment(1);
        a.add(2, 5);
        a.add(9, 1); // not a member: ignored
        assert_eq!(a.as_slice(), &[0, 1, 5]);
        a.merge(&v(&[4, 0, 1]));
        assert_eq!(a.as_slice(), &[4, 1, 5]);
        a.add(0, u64::MAX);
        assert_eq!(a.get(0), u64::MAX, "saturates");
        assert_eq!(a.get(7), 0);
    }

    proptest! {
        /// `covers` is `compare` saying Same or After, and the merge of two
        /// clocks covers both.
        #[test]
        fn covers_agrees_with_compare(a in proptest::collection::vec(0u64..4, 4), b in proptest::collection::vec(0u64..4, 4)) {
            let (a, b) = (v(&a), v(&b));
            prop_assert_eq!(a.covers(&b), matches!(a.compare(&b), Causality::Same | Causality::After));
            let mut m = a.clone();
            m.merge(&b);
            prop_assert!(m.covers(&a) && m.covers(&b));
        }
    }
}
