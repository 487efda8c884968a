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

    /// A send event: advances the clock and returns the stamp for the message.
    pub fn tick(&mut self) -> u64 {
        self.value = self.value.saturating_add(1);
        self.value
    }

    /// A receive event for a message stamped `stamp`: the clock moves past
    /// both its own value and the stamp, so anything sent afterwards is
    /// stamped higher than the message just received.
    pub fn observe(&mut self, stamp: u64) {
        self.value = self.value.max(stamp).saturating_add(1);
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
        let s1 = a.tick();
        assert_eq!(s1, 1);
        b.tick();
        b.tick();
        b.tick(); // b is at 3
        b.observe(s1); // max(3, 1) + 1
        assert_eq!(b.value(), 4);
        let s2 = b.tick();
        a.observe(s2); // max(1, 5) + 1
        assert_eq!(a.value(), 6);
    }

    proptest! {
        /// Whatever happens, a message sent after receiving another is
        /// stamped strictly higher: the clock condition.
        #[test]
        fn stamps_grow_along_causal_chains(ops in proptest::collection::vec((any::<bool>(), 0u64..1_000), 1..100)) {
            let mut clock = LamportClock::new();
            let mut last = 0;
            for (is_send, stamp) in ops {
                if is_send {
                    let s = clock.tick();
                    prop_assert!(s > last);
                    last = s;
                } else {
                    clock.observe(stamp);
                    prop_assert!(clock.value() > stamp);
                    prop_assert!(clock.value() > last);
                    last = clock.value();
                }
            }
        }
    }
}
