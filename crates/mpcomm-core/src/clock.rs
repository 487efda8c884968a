//! Lamport logical clocks.
//!
//! # Why a logical clock?
//!
//! Peers on different machines cannot agree on *when* something happened:
//! their wall clocks drift apart, and a message's transit time is unknown.
//! In 1978 Leslie Lamport observed that for ordering messages we do not need
//! real time at all, only a way to respect *cause and effect*: if event `a`
//! could have influenced event `b` (it happened before `b` in the same
//! process, or `a` is the sending of a message that `b` receives), then `a`
//! must get a smaller number than `b`.
//!
//! A Lamport clock is just a counter per process with two rules:
//!
//! 1. **Send**: before sending a message, add one to the counter and stamp the
//!    message with the new value ([`LamportClock::tick`]).
//! 2. **Receive**: on receiving a message stamped `s`, set the counter to
//!    `max(counter, s) + 1` ([`LamportClock::observe`]).
//!
//! Rule 2 is what makes stamps grow along every chain of messages: whatever
//! I send after hearing of your message carries a larger stamp than yours.
//!
//! Stamps alone can tie (two peers may both stamp a message 7). Breaking ties
//! by the sender's id gives every message a unique key `(stamp, sender)`, and
//! sorting by that key is a *total* order that all peers can compute alike —
//! the basis of the `total` ordering engine (see [`crate::order::total`]).
//!
//! A Lamport clock cannot tell whether two messages were *concurrent* (neither
//! caused the other): a smaller stamp does not imply a cause. Vector clocks
//! can ([`crate::vclock`]); the `causal` ordering engine carries one in a
//! record's extension field ([`crate::wire::Record::ext`]).

/// The largest stamp a record or an acknowledgement may carry.
///
/// A clock jumps to whatever it hears, so one member that stamped a record
/// 2⁶⁴−1 would pin every clock at the top of `u64`, where it can no longer
/// advance — and stamps that no longer grow break the total order. Stamps
/// above this bound are protocol violations: the peer drops them before they
/// touch its clock. Half of `u64` leaves 2⁶³ ticks of headroom above any
/// accepted stamp, more than any run can use, so the clock's arithmetic never
/// overflows (and is checked all the same).
pub const MAX_STAMP: u64 = u64::MAX >> 1;

/// A stamp above [`MAX_STAMP`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StampTooLarge(pub u64);

/// A Lamport logical clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LamportClock {
    value: u64,
}

impl LamportClock {
    /// A clock that starts at zero (no event has happened yet).
    pub const fn new() -> LamportClock {
        LamportClock { value: 0 }
    }

    /// The current value: the stamp of the latest local event.
    pub const fn value(&self) -> u64 {
        self.value
    }

    /// A send event: advances the clock and returns the stamp for the message,
    /// or `None` if the clock cannot advance any more (never in practice: see
    /// [`MAX_STAMP`]). A clock that stopped advancing must not stamp: equal
    /// stamps from one sender would break the order.
    pub fn tick(&mut self) -> Option<u64> {
        self.value = self.value.checked_add(1)?;
        Some(self.value)
    }

    /// A receive event for a message stamped `stamp`: the clock moves past
    /// both its own value and the stamp, so anything sent afterwards is
    /// stamped higher than the message just received. A stamp above
    /// [`MAX_STAMP`] is refused and leaves the clock as it was.
    pub fn observe(&mut self, stamp: u64) -> Result<(), StampTooLarge> {
        if stamp > MAX_STAMP {
            return Err(StampTooLarge(stamp));
        }
        // Both are at most MAX_STAMP + (ticks since), far below u64::MAX.
        self.value = self
            .value
            .max(stamp)
            .checked_add(1)
            .ok_or(StampTooLarge(stamp))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn send_and_receive_rules() {
        let mut a = LamportClock::new();
        let mut b = LamportClock::new();
        let s1 = a.tick().unwrap();
        assert_eq!(s1, 1);
        b.tick();
        b.tick();
        b.tick(); // b is at 3
        b.observe(s1).unwrap(); // max(3, 1) + 1
        assert_eq!(b.value(), 4);
        let s2 = b.tick().unwrap();
        a.observe(s2).unwrap(); // max(1, 5) + 1
        assert_eq!(a.value(), 6);
    }

    #[test]
    fn extreme_stamps_are_refused_and_the_clock_keeps_growing() {
        let mut c = LamportClock::new();
        for bad in [u64::MAX, u64::MAX - 1, MAX_STAMP + 1] {
            assert_eq!(c.observe(bad), Err(StampTooLarge(bad)));
            assert_eq!(c.value(), 0, "a refused stamp leaves the clock alone");
        }
        c.observe(MAX_STAMP).unwrap();
        assert_eq!(c.value(), MAX_STAMP + 1);
        let s = c.tick().unwrap();
        assert!(s > MAX_STAMP + 1, "still strictly growing");
        let mut top = LamportClock { value: u64::MAX };
        assert_eq!(
            top.tick(),
            None,
            "an exhausted clock does not repeat a stamp"
        );
    }

    proptest! {
        /// Whatever happens, a message sent after receiving another is
        /// stamped strictly higher: the clock condition.
        #[test]
        fn stamps_grow_along_causal_chains(ops in proptest::collection::vec((any::<bool>(), prop_oneof![0u64..1_000, (MAX_STAMP - 3)..=u64::MAX]), 1..100)) {
            let mut clock = LamportClock::new();
            let mut last = 0;
            for (is_send, stamp) in ops {
                if is_send {
                    let s = clock.tick().unwrap();
                    prop_assert!(s > last);
                    last = s;
                } else if stamp > MAX_STAMP {
                    prop_assert!(clock.observe(stamp).is_err());
                } else {
                    clock.observe(stamp).unwrap();
                    prop_assert!(clock.value() > stamp);
                    prop_assert!(clock.value() > last);
                    last = clock.value();
                }
            }
        }
    }
}
