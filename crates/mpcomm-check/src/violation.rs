//! Counter-examples: what exactly went wrong, as values and in words.
//!
//! Each property has its own type, so that a program can look at the
//! evidence (which peer, which message, which positions), and each renders
//! ([`fmt::Display`]) as one sentence a student can check by opening the
//! logs. Positions count from 0, like rounds; position `p` of a log read
//! from a file is its line `p + 1`.

use std::fmt;

use mpcomm_core::OrderKind;

use crate::Msg;

/// One of the five properties the checker decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Property {
    /// Any two peers delivered any two messages they both delivered in the
    /// same order.
    TotalOrder,
    /// Every peer delivered the same set of messages.
    Agreement,
    /// Nothing delivered twice, nothing invented, nothing lost.
    Integrity,
    /// Every peer delivered each sender's messages in the order they were
    /// sent.
    Fifo,
    /// No peer delivered a message before one that happened before it (its
    /// sender had delivered it, or sent it earlier).
    Causal,
}

impl Property {
    /// All five, in the order the checker reports them.
    pub const ALL: [Property; 5] = [
        Property::TotalOrder,
        Property::Agreement,
        Property::Integrity,
        Property::Fifo,
        Property::Causal,
    ];

    /// The property's key in [`crate::Findings`]' JSON (`total_order`,
    /// `agreement`, `integrity`, `fifo`, `causal`).
    pub fn key(self) -> &'static str {
        match self {
            Property::TotalOrder => "total_order",
            Property::Agreement => "agreement",
            Property::Integrity => "integrity",
            Property::Fifo => "fifo",
            Property::Causal => "causal",
        }
    }

    /// Whether a run of `order` promises this property.
    ///
    /// Every order runs over reliable links, so every order promises
    /// integrity and agreement; every order but `none` adds FIFO (each is
    /// built on the FIFO links; a total order that broke a sender's own
    /// order would be legal in theory but surprising, and mpcomm does not
    /// do that); `causal`, `sequencer` and `total` add causal order; `total`
    /// and `sequencer` add total order.
    ///
    /// `total` is causal in mpcomm's implementation, not by definition:
    /// a member that delivered `a` has received it, so its Lamport clock is
    /// past `a`'s stamp, so anything it sends afterwards is stamped higher,
    /// and delivery in stamp order puts `a` first. `sequencer` is causal
    /// because the sequencer decides `a` before anyone can deliver it, hence
    /// before any message sent after delivering it reaches the sequencer.
    pub fn promised_by(self, order: OrderKind) -> bool {
        match self {
            Property::Integrity | Property::Agreement => true,
            Property::Fifo => order != OrderKind::None,
            Property::Causal => matches!(
                order,
                OrderKind::Causal | OrderKind::Sequencer | OrderKind::Total
            ),
            Property::TotalOrder => matches!(order, OrderKind::Total | OrderKind::Sequencer),
        }
    }
}

impl fmt::Display for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Property::TotalOrder => "total order",
            Property::Agreement => "agreement",
            Property::Integrity => "integrity",
            Property::Fifo => "FIFO",
            Property::Causal => "causal order",
        })
    }
}

/// Two peers delivered the same two messages in opposite orders.
///
/// Renders as `peer 2 delivered 4:17 before 1:9; peer 0 delivered them the
/// other way round`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TotalOrderViolation {
    /// The peer whose order is told first (the higher of the two in peer
    /// order).
    pub peer: u16,
    /// Delivered first by `peer`, second by `other`.
    pub first: Msg,
    /// Delivered second by `peer`, first by `other`.
    pub second: Msg,
    /// The peer that delivered them the other way round.
    pub other: u16,
}

impl fmt::Display for TotalOrderViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let TotalOrderViolation {
            peer,
            first,
            second,
            other,
        } = self;
        write!(
            f,
            "peer {peer} delivered {first} before {second}; peer {other} delivered them the other way round"
        )
    }
}

/// A peer delivered a message that another peer never delivered.
///
/// Renders as `peer 0 delivered 3:5 but peer 2 never did`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgreementViolation {
    /// The peer that delivered it.
    pub peer: u16,
    /// The message.
    pub msg: Msg,
    /// A peer that did not.
    pub other: u16,
}

impl fmt::Display for AgreementViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let AgreementViolation { peer, msg, other } = self;
        write!(f, "peer {peer} delivered {msg} but peer {other} never did")
    }
}

/// What is wrong with a log's contents (integrity).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IntegrityViolation {
    /// A log belongs to a peer that is not a member of the group.
    NotAMember {
        /// The log's peer.
        peer: u16,
        /// Group size.
        members: usize,
    },
    /// Two logs claim the same peer.
    SecondLog {
        /// The peer.
        peer: u16,
    },
    /// An entry says it was delivered by another peer than the log's.
    WrongPeer {
        /// The log's peer.
        peer: u16,
        /// Position of the entry in the log.
        position: usize,
        /// The peer the entry names.
        found: u16,
    },
    /// An entry belongs to another run than the rest of the logs.
    WrongRun {
        /// The log's peer.
        peer: u16,
        /// Position of the entry in the log.
        position: usize,
        /// The entry's run.
        run: u64,
        /// The run of the other logs.
        expected: u64,
    },
    /// A peer delivered a message from a sender that is not a member.
    UnknownSender {
        /// The peer.
        peer: u16,
        /// The message.
        msg: Msg,
        /// Group size.
        members: usize,
    },
    /// A peer delivered a message its sender never sent (its sequence number
    /// is past the sender's last).
    NeverSent {
        /// The peer.
        peer: u16,
        /// The message.
        msg: Msg,
        /// How many messages the sender sent.
        sent: u64,
    },
    /// A peer delivered a message twice.
    Duplicate {
        /// The peer.
        peer: u16,
        /// The message.
        msg: Msg,
        /// Position of its first delivery.
        first: usize,
        /// Position of its second delivery.
        second: usize,
    },
    /// A peer never delivered a message that was sent.
    Missing {
        /// The peer.
        peer: u16,
        /// The message.
        msg: Msg,
    },
}

fn plural(n: u64, word: &str) -> String {
    match n {
        0 => format!("no {word}s"),
        1 => format!("only 1 {word}"),
        n => format!("only {n} {word}s"),
    }
}

fn group(members: usize) -> String {
    match members {
        0 => "the group is empty".to_string(),
        1 => "the only member is 0".to_string(),
        n => format!("the members are 0 to {}", n - 1),
    }
}

impl fmt::Display for IntegrityViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntegrityViolation::NotAMember { peer, members } => write!(
                f,
                "there is a log of peer {peer}, but there is no member {peer} ({})",
                group(*members)
            ),
            IntegrityViolation::SecondLog { peer } => {
                write!(f, "there are two logs of peer {peer}")
            }
            IntegrityViolation::WrongPeer {
                peer,
                position,
                found,
            } => write!(
                f,
                "entry {position} of peer {peer}'s log says it was delivered by peer {found}"
            ),
            IntegrityViolation::WrongRun {
                peer,
                position,
                run,
                expected,
            } => write!(
                f,
                "entry {position} of peer {peer}'s log belongs to run {run}, the others to run {expected}"
            ),
            IntegrityViolation::UnknownSender { peer, msg, members } => write!(
                f,
                "peer {peer} delivered {msg}, but there is no member {} ({})",
                msg.sender,
                group(*members)
            ),
            IntegrityViolation::NeverSent { peer, msg, sent } => write!(
                f,
                "peer {peer} delivered {msg}, but member {} sent {}",
                msg.sender,
                plural(*sent, "message")
            ),
            IntegrityViolation::Duplicate {
                peer,
                msg,
                first,
                second,
            } => write!(
                f,
                "peer {peer} delivered {msg} twice (positions {first} and {second})"
            ),
            IntegrityViolation::Missing { peer, msg } => {
                write!(f, "peer {peer} never delivered {msg}")
            }
        }
    }
}

/// A peer delivered two messages of one sender in the opposite order to the
/// one they were sent in.
///
/// Renders as `peer 1 delivered 2:5 before 2:4, though member 2 sent them the
/// other way round`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FifoViolation {
    /// The peer.
    pub peer: u16,
    /// Delivered first, sent later.
    pub first: Msg,
    /// Delivered second, sent earlier.
    pub second: Msg,
}

impl fmt::Display for FifoViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let FifoViolation {
            peer,
            first,
            second,
        } = self;
        write!(
            f,
            "peer {peer} delivered {first} before {second}, though member {} sent them the other way round",
            first.sender
        )
    }
}

/// Why one message had to come before another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CausalReason {
    /// The message is an answer to the other (`chat`).
    Answers,
    /// The other is an earlier message of the same sender.
    SentEarlier,
    /// The sender had delivered the other before sending the message.
    SenderHadDelivered,
}

/// A peer delivered a message before one that happened before it.
///
/// Renders as `peer 2 delivered 3:5, which answers 1:4, before 1:4`,
/// `peer 2 delivered 3:5 before 3:4, which member 3 sent earlier` or
/// `peer 2 delivered 3:5 before 1:4, which member 3 had delivered before
/// sending 3:5`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CausalViolation {
    /// The peer.
    pub peer: u16,
    /// The message it delivered too early.
    pub msg: Msg,
    /// The message that should have come first, delivered later.
    pub before: Msg,
    /// Why `before` should have come first.
    pub reason: CausalReason,
}

impl fmt::Display for CausalViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let CausalViolation {
            peer,
            msg,
            before,
            reason,
        } = self;
        match reason {
            CausalReason::Answers => {
                write!(
                    f,
                    "peer {peer} delivered {msg}, which answers {before}, before {before}"
                )
            }
            CausalReason::SentEarlier => write!(
                f,
                "peer {peer} delivered {msg} before {before}, which member {} sent earlier",
                msg.sender
            ),
            CausalReason::SenderHadDelivered => write!(
                f,
                "peer {peer} delivered {msg} before {before}, which member {} had delivered before sending {msg}",
                msg.sender
            ),
        }
    }
}

/// The first counter-example of one violated property.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// See [`TotalOrderViolation`].
    TotalOrder(TotalOrderViolation),
    /// See [`AgreementViolation`].
    Agreement(AgreementViolation),
    /// See [`IntegrityViolation`].
    Integrity(IntegrityViolation),
    /// See [`FifoViolation`].
    Fifo(FifoViolation),
    /// See [`CausalViolation`].
    Causal(CausalViolation),
}

impl Violation {
    /// The property this violates.
    pub fn property(&self) -> Property {
        match self {
            Violation::TotalOrder(_) => Property::TotalOrder,
            Violation::Agreement(_) => Property::Agreement,
            Violation::Integrity(_) => Property::Integrity,
            Violation::Fifo(_) => Property::Fifo,
            Violation::Causal(_) => Property::Causal,
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::TotalOrder(v) => v.fmt(f),
            Violation::Agreement(v) => v.fmt(f),
            Violation::Integrity(v) => v.fmt(f),
            Violation::Fifo(v) => v.fmt(f),
            Violation::Causal(v) => v.fmt(f),
        }
    }
}

impl From<TotalOrderViolation> for Violation {
    fn from(v: TotalOrderViolation) -> Violation {
        Violation::TotalOrder(v)
    }
}

impl From<AgreementViolation> for Violation {
    fn from(v: AgreementViolation) -> Violation {
        Violation::Agreement(v)
    }
}

impl From<IntegrityViolation> for Violation {
    fn from(v: IntegrityViolation) -> Violation {
        Violation::Integrity(v)
    }
}

impl From<FifoViolation> for Violation {
    fn from(v: FifoViolation) -> Violation {
        Violation::Fifo(v)
    }
}

impl From<CausalViolation> for Violation {
    fn from(v: CausalViolation) -> Violation {
        Violation::Causal(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(sender: u16, seq: u64) -> Msg {
        Msg { sender, seq }
    }

    #[test]
    fn counterexamples_read_as_sentences() {
        let cases: [(Violation, &str); 15] = [
            (
                TotalOrderViolation {
                    peer: 2,
                    first: m(4, 17),
                    second: m(1, 9),
                    other: 0,
                }
                .into(),
                "peer 2 delivered 4:17 before 1:9; peer 0 delivered them the other way round",
            ),
            (
                AgreementViolation {
                    peer: 0,
                    msg: m(3, 5),
                    other: 2,
                }
                .into(),
                "peer 0 delivered 3:5 but peer 2 never did",
            ),
            (
                IntegrityViolation::Duplicate {
                    peer: 1,
                    msg: m(0, 12),
                    first: 40,
                    second: 57,
                }
                .into(),
                "peer 1 delivered 0:12 twice (positions 40 and 57)",
            ),
            (
                IntegrityViolation::UnknownSender {
                    peer: 1,
                    msg: m(7, 0),
                    members: 4,
                }
                .into(),
                "peer 1 delivered 7:0, but there is no member 7 (the members are 0 to 3)",
            ),
            (
                IntegrityViolation::NeverSent {
                    peer: 1,
                    msg: m(2, 30),
                    sent: 20,
                }
                .into(),
                "peer 1 delivered 2:30, but member 2 sent only 20 messages",
            ),
            (
                IntegrityViolation::NeverSent {
                    peer: 1,
                    msg: m(2, 1),
                    sent: 1,
                }
                .into(),
                "peer 1 delivered 2:1, but member 2 sent only 1 message",
            ),
            (
                IntegrityViolation::NeverSent {
                    peer: 1,
                    msg: m(2, 0),
                    sent: 0,
                }
                .into(),
                "peer 1 delivered 2:0, but member 2 sent no messages",
            ),
            (
                IntegrityViolation::Missing {
                    peer: 1,
                    msg: m(2, 4),
                }
                .into(),
                "peer 1 never delivered 2:4",
            ),
            (
                IntegrityViolation::WrongPeer {
                    peer: 1,
                    position: 3,
                    found: 2,
                }
                .into(),
                "entry 3 of peer 1's log says it was delivered by peer 2",
            ),
            (
                IntegrityViolation::NotAMember {
                    peer: 5,
                    members: 1,
                }
                .into(),
                "there is a log of peer 5, but there is no member 5 (the only member is 0)",
            ),
            (
                IntegrityViolation::SecondLog { peer: 3 }.into(),
                "there are two logs of peer 3",
            ),
            (
                FifoViolation {
                    peer: 1,
                    first: m(2, 5),
                    second: m(2, 4),
                }
                .into(),
                "peer 1 delivered 2:5 before 2:4, though member 2 sent them the other way round",
            ),
            (
                CausalViolation {
                    peer: 2,
                    msg: m(3, 5),
                    before: m(1, 4),
                    reason: CausalReason::Answers,
                }
                .into(),
                "peer 2 delivered 3:5, which answers 1:4, before 1:4",
            ),
            (
                CausalViolation {
                    peer: 2,
                    msg: m(3, 5),
                    before: m(3, 4),
                    reason: CausalReason::SentEarlier,
                }
                .into(),
                "peer 2 delivered 3:5 before 3:4, which member 3 sent earlier",
            ),
            (
                CausalViolation {
                    peer: 2,
                    msg: m(3, 5),
                    before: m(1, 4),
                    reason: CausalReason::SenderHadDelivered,
                }
                .into(),
                "peer 2 delivered 3:5 before 1:4, which member 3 had delivered before sending 3:5",
            ),
        ];
        for (v, text) in cases {
            assert_eq!(v.to_string(), text);
        }
    }

    #[test]
    fn promises_per_order() {
        use Property::*;
        let promised = |order| {
            Property::ALL
                .into_iter()
                .filter(|p| p.promised_by(order))
                .collect::<Vec<_>>()
        };
        assert_eq!(promised(OrderKind::None), [Agreement, Integrity]);
        assert_eq!(promised(OrderKind::Fifo), [Agreement, Integrity, Fifo]);
        assert_eq!(
            promised(OrderKind::Causal),
            [Agreement, Integrity, Fifo, Causal]
        );
        for order in [OrderKind::Sequencer, OrderKind::Total] {
            assert_eq!(
                promised(order),
                [TotalOrder, Agreement, Integrity, Fifo, Causal]
            );
        }
        let keys: Vec<_> = Property::ALL.iter().map(|p| p.key()).collect();
        assert_eq!(
            keys,
            ["total_order", "agreement", "integrity", "fifo", "causal"]
        );
    }
}
