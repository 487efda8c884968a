//! # mpcomm-check: what the delivery logs of a run say
//!
//! Every peer of a run writes a *delivery log*: the messages it delivered to
//! its application, in the order it delivered them. This crate reads those
//! logs and says which ordering properties the run had — each with the
//! first counter-example when it did not.
//!
//! A message is named `sender:seq`: `4:17` is member 4's message number 17
//! (numbers start at 0).
//!
//! ## The properties
//!
//! * **Unordered rounds** — the original MPComm's metric. Line the logs up
//!   side by side; *round* `j` is the `j`-th delivery of every peer. A round
//!   is *unordered* if not every peer delivered the same message in it (a
//!   peer with no `j`-th delivery counts as different). The original counted
//!   this wrongly: it compared every peer only with peer 0, skipped the last
//!   position and the last peer, so a disorder in the last round or only at
//!   the last peer went unseen. Here every round and every peer counts.
//! * **Total order** — any two peers that both delivered messages `a` and
//!   `b` delivered them in the same relative order. This is what the `total`
//!   order promises. Unordered rounds can stay above zero when total order
//!   holds only if peers delivered different *sets* of messages; with
//!   agreement, total order means identical logs.
//! * **Agreement** — every peer delivered the same set of messages.
//! * **Integrity** — no peer delivered a message twice, nobody delivered a
//!   message that was never sent (an unknown sender or a sequence number past
//!   what its sender sent), and every message sent was delivered by every
//!   peer.
//! * **FIFO** — every peer delivered each sender's messages in the order the
//!   sender sent them (`2:4` before `2:5`). Gaps are not FIFO violations
//!   (missing messages are integrity's business); going backwards is.
//!
//! Which of these a run must have depends on its order: `none` promises
//! integrity and agreement (reliable links lose nothing), `fifo` adds FIFO,
//! `total` adds total order. [`Findings::passed`] says whether the run kept
//! its order's promises.
//!
//! ## Example
//!
//! ```
//! use mpcomm_check::{check, LogEntry, PeerLog, RunSpec};
//! use mpcomm_core::OrderKind;
//!
//! let entry = |peer, sender, seq| LogEntry { run: 1, peer, sender, seq, stamp: None, sent_us: None, delivered_us: None };
//! let logs = vec![
//!     PeerLog { peer: 0, entries: vec![entry(0, 0, 0), entry(0, 1, 0)] },
//!     PeerLog { peer: 1, entries: vec![entry(1, 1, 0), entry(1, 0, 0)] },
//! ];
//! let f = check(&RunSpec { order: OrderKind::Total, members: 2, sent: vec![1, 1] }, &logs);
//! assert_eq!(f.unordered_rounds, 2);
//! assert!(!f.total_order && f.agreement && f.integrity && f.fifo && !f.passed);
//! assert_eq!(
//!     f.counterexamples.total_order.as_deref(),
//!     Some("peer 1 delivered 1:0 before 0:0; peer 0 delivered them the other way round")
//! );
//! ```

pub mod log;

use std::collections::HashMap;
use std::fmt;

use mpcomm_core::OrderKind;
use serde::{Deserialize, Serialize};

/// One delivered message: one line of a JSON-Lines delivery log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// The run id.
    pub run: u64,
    /// The member that delivered the message (the log's owner).
    pub peer: u16,
    /// The member that multicast it.
    pub sender: u16,
    /// The sender's sequence number for it, from 0.
    pub seq: u64,
    /// Its Lamport stamp, where the order has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stamp: Option<u64>,
    /// When it was sent, in microseconds (same clock as `delivered_us`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_us: Option<u64>,
    /// When it was delivered, in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_us: Option<u64>,
}

impl LogEntry {
    /// The message this entry is about.
    pub fn msg(&self) -> Msg {
        Msg {
            sender: self.sender,
            seq: self.seq,
        }
    }
}

/// All deliveries of one peer, in delivery order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerLog {
    /// The peer (member id).
    pub peer: u16,
    /// Its deliveries, in order.
    pub entries: Vec<LogEntry>,
}

/// What the checker must know about a run besides its logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunSpec {
    /// The run's delivery order (decides which properties must hold).
    pub order: OrderKind,
    /// Group size.
    pub members: usize,
    /// How many messages each member multicast (index = member id).
    pub sent: Vec<u64>,
}

/// A message: `sender:seq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Msg {
    /// Its sender.
    pub sender: u16,
    /// The sender's sequence number.
    pub seq: u64,
}

impl fmt::Display for Msg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.sender, self.seq)
    }
}

/// A property violation, with the evidence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// Peer `peer` delivered `first` before `second`; peer `other` did the
    /// opposite.
    TotalOrder {
        /// The peer whose order is reported first.
        peer: u16,
        /// Delivered first by `peer`.
        first: Msg,
        /// Delivered second by `peer`.
        second: Msg,
        /// The peer that delivered them the other way round.
        other: u16,
    },
    /// `peer` delivered `msg`, `other` never did.
    Agreement {
        /// The peer that delivered it.
        peer: u16,
        /// The message.
        msg: Msg,
        /// The peer that did not.
        other: u16,
    },
    /// `peer` delivered `msg` twice.
    Duplicate {
        /// The peer.
        peer: u16,
        /// The message.
        msg: Msg,
        /// Position of the first delivery (from 0).
        first: usize,
        /// Position of the second.
        second: usize,
    },
    /// `peer` delivered a message from a sender that is not a member.
    UnknownSender {
        /// The peer.
        peer: u16,
        /// The message.
        msg: Msg,
        /// Group size.
        members: usize,
    },
    /// `peer` delivered a message its sender never sent.
    NeverSent {
        /// The peer.
        peer: u16,
        /// The message.
        msg: Msg,
        /// How many messages the sender sent.
        sent: u64,
    },
    /// `peer` never delivered `msg`.
    Missing {
        /// The peer.
        peer: u16,
        /// The message.
        msg: Msg,
    },
    /// An entry of `peer`'s log claims to belong to another peer or run.
    Foreign {
        /// The log's peer.
        peer: u16,
        /// Position of the entry.
        position: usize,
        /// What is wrong.
        what: String,
    },
    /// `peer` delivered `later` (of one sender) after `earlier`, though it
    /// was sent before.
    Fifo {
        /// The peer.
        peer: u16,
        /// Delivered first, sent later.
        first: Msg,
        /// Delivered second, sent earlier.
        second: Msg,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::TotalOrder {
                peer,
                first,
                second,
                other,
            } => write!(
                f,
                "peer {peer} delivered {first} before {second}; peer {other} delivered them the other way round"
            ),
            Violation::Agreement { peer, msg, other } => {
                write!(f, "peer {peer} delivered {msg} but peer {other} never did")
            }
            Violation::Duplicate {
                peer,
                msg,
                first,
                second,
            } => {
                write!(
                    f,
                    "peer {peer} delivered {msg} twice (positions {first} and {second})"
                )
            }
            Violation::UnknownSender { peer, msg, members } => write!(
                f,
                "peer {peer} delivered {msg}, but there is no member {} (the group has {members})",
                msg.sender
            ),
            Violation::NeverSent { peer, msg, sent } => {
                write!(
                    f,
                    "peer {peer} delivered {msg}, but member {} sent only {sent} messages",
                    msg.sender
                )
            }
            Violation::Missing { peer, msg } => write!(f, "peer {peer} never delivered {msg}"),
            Violation::Foreign {
                peer,
                position,
                what,
            } => {
                write!(f, "entry {position} of peer {peer}'s log {what}")
            }
            Violation::Fifo {
                peer,
                first,
                second,
            } => write!(
                f,
                "peer {peer} delivered {first} before {second}, though member {} sent them the other way round",
                first.sender
            ),
        }
    }
}

/// The first counter-example of each violated property, in words.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counterexamples {
    /// Total order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_order: Option<String>,
    /// Agreement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement: Option<String>,
    /// Integrity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrity: Option<String>,
    /// FIFO.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fifo: Option<String>,
}

/// Delivery latency percentiles, in microseconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Number of samples.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
}

impl Latency {
    /// Percentiles of `samples` by the nearest-rank method: the p-th
    /// percentile is the smallest sample with at least p % of the samples at
    /// or below it. `None` without samples.
    pub fn from_samples(mut samples: Vec<u64>) -> Option<Latency> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let n = samples.len();
        let rank = |p: f64| samples[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
        Some(Latency {
            count: n as u64,
            mean: samples.iter().map(|s| *s as f64).sum::<f64>() / n as f64,
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            p999: rank(0.999),
            max: samples[n - 1],
        })
    }
}

/// What the checker found. Serialises with the keys every mpcomm command
/// prints (`order`, `peers`, `messages_per_peer`, `unordered_rounds`,
/// `rounds`, `total_order`, `agreement`, `integrity`, `fifo`, `delivered`,
/// `expected`, …).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Findings {
    /// The run's order.
    pub order: String,
    /// Number of peers (logs).
    pub peers: usize,
    /// Messages per peer (the most any member sent).
    pub messages_per_peer: u64,
    /// Rounds in which not every peer delivered the same message.
    pub unordered_rounds: u64,
    /// Rounds in all (the longest log).
    pub rounds: u64,
    /// The first unordered round, if any (from 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_unordered_round: Option<u64>,
    /// Total order holds.
    pub total_order: bool,
    /// Agreement holds.
    pub agreement: bool,
    /// Integrity holds.
    pub integrity: bool,
    /// FIFO holds.
    pub fifo: bool,
    /// Deliveries, summed over peers.
    pub delivered: u64,
    /// Deliveries there should be: members × messages sent in all.
    pub expected: u64,
    /// Every property the order promises holds.
    pub passed: bool,
    /// The first counter-example of each violated property.
    pub counterexamples: Counterexamples,
    /// Send-to-delivery latency, where both times are known.
    pub latency_us: Option<Latency>,
}

/// Checks a run's logs against its spec.
pub fn check(spec: &RunSpec, logs: &[PeerLog]) -> Findings {
    check_detailed(spec, logs).0
}

/// Like [`check`], also returning each violated property's first
/// counter-example as a typed value, in the order total order, agreement,
/// integrity, FIFO.
pub fn check_detailed(spec: &RunSpec, logs: &[PeerLog]) -> (Findings, Vec<Violation>) {
    let (unordered_rounds, rounds, first_unordered_round) = unordered_rounds(logs);
    let total = first_total_order_violation(logs);
    let agreement = first_agreement_violation(logs);
    let integrity = first_integrity_violation(spec, logs);
    let fifo = first_fifo_violation(logs);
    let delivered: u64 = logs.iter().map(|l| l.entries.len() as u64).sum();
    let expected = (spec.members as u64).saturating_mul(spec.sent.iter().sum::<u64>());
    let latency_us = Latency::from_samples(
        logs.iter()
            .flat_map(|l| &l.entries)
            .filter_map(|e| Some(e.delivered_us?.saturating_sub(e.sent_us?)))
            .collect(),
    );
    let passed = agreement.is_none()
        && integrity.is_none()
        && (spec.order == OrderKind::None || fifo.is_none())
        && (spec.order != OrderKind::Total || total.is_none());
    let text = |v: &Option<Violation>| v.as_ref().map(ToString::to_string);
    let findings = Findings {
        order: spec.order.to_string(),
        peers: logs.len(),
        messages_per_peer: spec.sent.iter().copied().max().unwrap_or(0),
        unordered_rounds,
        rounds,
        first_unordered_round,
        total_order: total.is_none(),
        agreement: agreement.is_none(),
        integrity: integrity.is_none(),
        fifo: fifo.is_none(),
        delivered,
        expected,
        passed,
        counterexamples: Counterexamples {
            total_order: text(&total),
            agreement: text(&agreement),
            integrity: text(&integrity),
            fifo: text(&fifo),
        },
        latency_us,
    };
    (
        findings,
        [total, agreement, integrity, fifo]
            .into_iter()
            .flatten()
            .collect(),
    )
}

/// `(unordered rounds, rounds, first unordered round)`.
fn unordered_rounds(logs: &[PeerLog]) -> (u64, u64, Option<u64>) {
    let rounds = logs.iter().map(|l| l.entries.len()).max().unwrap_or(0);
    let mut unordered = 0;
    let mut first = None;
    for j in 0..rounds {
        let mut at_j = logs.iter().map(|l| l.entries.get(j).map(LogEntry::msg));
        let head = at_j.next().flatten();
        let same = head.is_some() && at_j.all(|m| m == head);
        if !same {
            unordered += 1;
            first.get_or_insert(j as u64);
        }
    }
    (unordered, rounds as u64, first)
}

/// Each peer's deliveries with duplicates removed (first occurrence kept),
/// and the position of every message in that sequence.
struct Sequence {
    peer: u16,
    order: Vec<Msg>,
    position: HashMap<Msg, usize>,
}

fn sequences(logs: &[PeerLog]) -> Vec<Sequence> {
    logs.iter()
        .map(|l| {
            let mut position = HashMap::with_capacity(l.entries.len());
            let mut order = Vec::with_capacity(l.entries.len());
            for e in &l.entries {
                let m = e.msg();
                if let std::collections::hash_map::Entry::Vacant(slot) = position.entry(m) {
                    slot.insert(order.len());
                    order.push(m);
                }
            }
            Sequence {
                peer: l.peer,
                order,
                position,
            }
        })
        .collect()
}

/// Total order, checked for every pair of peers over the messages both
/// delivered: walking peer `a`'s order, the positions of the same messages
/// in peer `b`'s order must only increase. The first drop gives the
/// counter-example. O(peers² × log length).
fn first_total_order_violation(logs: &[PeerLog]) -> Option<Violation> {
    let seqs = sequences(logs);
    for (i, a) in seqs.iter().enumerate() {
        for b in &seqs[i + 1..] {
            // (position in b, message) of the latest-in-b message seen so far.
            let mut furthest: Option<(usize, Msg)> = None;
            for m in &a.order {
                let Some(&pb) = b.position.get(m) else {
                    continue;
                };
                match furthest {
                    Some((fb, fm)) if pb < fb => {
                        // a: fm before m. b: m (at pb) before fm (at fb).
                        return Some(Violation::TotalOrder {
                            peer: b.peer,
                            first: *m,
                            second: fm,
                            other: a.peer,
                        });
                    }
                    Some((fb, _)) if pb <= fb => {}
                    _ => furthest = Some((pb, *m)),
                }
            }
        }
    }
    None
}

/// Agreement: for every ordered pair of peers, the first message one
/// delivered and the other did not.
fn first_agreement_violation(logs: &[PeerLog]) -> Option<Violation> {
    let seqs = sequences(logs);
    for a in &seqs {
        for b in &seqs {
            if a.peer == b.peer {
                continue;
            }
            if let Some(m) = a.order.iter().find(|m| !b.position.contains_key(m)) {
                return Some(Violation::Agreement {
                    peer: a.peer,
                    msg: *m,
                    other: b.peer,
                });
            }
        }
    }
    None
}

fn first_integrity_violation(spec: &RunSpec, logs: &[PeerLog]) -> Option<Violation> {
    let run = logs
        .iter()
        .flat_map(|l| l.entries.first())
        .map(|e| e.run)
        .next();
    for l in logs {
        let mut seen: HashMap<Msg, usize> = HashMap::with_capacity(l.entries.len());
        for (pos, e) in l.entries.iter().enumerate() {
            let m = e.msg();
            if e.peer != l.peer {
                return Some(Violation::Foreign {
                    peer: l.peer,
                    position: pos,
                    what: format!("says it was delivered by peer {}", e.peer),
                });
            }
            if Some(e.run) != run {
                return Some(Violation::Foreign {
                    peer: l.peer,
                    position: pos,
                    what: format!(
                        "belongs to run {}, the others to run {}",
                        e.run,
                        run.unwrap_or_default()
                    ),
                });
            }
            if usize::from(m.sender) >= spec.members {
                return Some(Violation::UnknownSender {
                    peer: l.peer,
                    msg: m,
                    members: spec.members,
                });
            }
            let sent = spec.sent.get(usize::from(m.sender)).copied().unwrap_or(0);
            if m.seq >= sent {
                return Some(Violation::NeverSent {
                    peer: l.peer,
                    msg: m,
                    sent,
                });
            }
            if let Some(first) = seen.insert(m, pos) {
                return Some(Violation::Duplicate {
                    peer: l.peer,
                    msg: m,
                    first,
                    second: pos,
                });
            }
        }
        for (sender, &sent) in spec.sent.iter().enumerate() {
            for seq in 0..sent {
                let m = Msg {
                    sender: sender as u16,
                    seq,
                };
                if !seen.contains_key(&m) {
                    return Some(Violation::Missing {
                        peer: l.peer,
                        msg: m,
                    });
                }
            }
        }
    }
    None
}

fn first_fifo_violation(logs: &[PeerLog]) -> Option<Violation> {
    for l in logs {
        let mut last: HashMap<u16, u64> = HashMap::new();
        for e in &l.entries {
            match last.get(&e.sender) {
                Some(&prev) if e.seq < prev => {
                    return Some(Violation::Fifo {
                        peer: l.peer,
                        first: Msg {
                            sender: e.sender,
                            seq: prev,
                        },
                        second: e.msg(),
                    });
                }
                _ => {
                    last.insert(e.sender, e.seq);
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn log(peer: u16, msgs: &[(u16, u64)]) -> PeerLog {
        PeerLog {
            peer,
            entries: msgs
                .iter()
                .map(|&(sender, seq)| LogEntry {
                    run: 9,
                    peer,
                    sender,
                    seq,
                    stamp: None,
                    sent_us: Some(100),
                    delivered_us: Some(100 + seq * 10),
                })
                .collect(),
        }
    }

    fn spec(order: OrderKind, members: usize, each: u64) -> RunSpec {
        RunSpec {
            order,
            members,
            sent: vec![each; members],
        }
    }

    const ALL: [(u16, u64); 4] = [(0, 0), (1, 0), (0, 1), (1, 1)];

    #[test]
    fn a_perfect_run_passes_everything() {
        let logs: Vec<_> = (0..3).map(|p| log(p, &ALL)).collect();
        let f = check(
            &RunSpec {
                order: OrderKind::Total,
                members: 3,
                sent: vec![2, 2, 0],
            },
            &logs,
        );
        assert!(f.passed && f.total_order && f.agreement && f.integrity && f.fifo);
        assert_eq!(
            (f.unordered_rounds, f.rounds, f.delivered, f.expected),
            (0, 4, 12, 12)
        );
        assert_eq!(f.first_unordered_round, None);
        assert_eq!(f.counterexamples, Counterexamples::default());
        let l = f.latency_us.unwrap();
        assert_eq!((l.count, l.p50, l.max), (12, 0, 10));
    }

    #[test]
    fn the_originals_blind_spots_are_counted() {
        let s = spec(OrderKind::None, 3, 2);
        // Disorder only in the last round (the original skipped it).
        let swapped_last = [(0, 0), (1, 0), (1, 1), (0, 1)];
        let logs = vec![log(0, &ALL), log(1, &ALL), log(2, &swapped_last)];
        let f = check(&s, &logs);
        assert_eq!(f.unordered_rounds, 2);
        assert_eq!(f.first_unordered_round, Some(2));
        // Only the last peer differs (the original skipped the last peer).
        let f = check(
            &s,
            &[
                log(0, &ALL),
                log(1, &ALL),
                log(2, &[(1, 0), (0, 0), (0, 1), (1, 1)]),
            ],
        );
        assert_eq!(f.unordered_rounds, 2);
        // A shorter log: the rounds it lacks are unordered.
        let f = check(&s, &[log(0, &ALL), log(1, &ALL[..3])]);
        assert_eq!((f.unordered_rounds, f.rounds), (1, 4));
    }

    #[test]
    fn total_order_counterexample() {
        let logs = vec![
            log(0, &ALL),
            log(1, &ALL),
            log(2, &[(1, 0), (0, 0), (0, 1), (1, 1)]),
        ];
        let two_senders = |order| RunSpec {
            order,
            members: 3,
            sent: vec![2, 2, 0],
        };
        let f = check(&two_senders(OrderKind::Total), &logs);
        assert!(!f.total_order && !f.passed && f.agreement && f.integrity && f.fifo);
        assert_eq!(
            f.counterexamples.total_order.as_deref(),
            Some("peer 2 delivered 1:0 before 0:0; peer 0 delivered them the other way round")
        );
        // The same logs are fine for `none` and `fifo`, which promise no total order.
        assert!(check(&two_senders(OrderKind::Fifo), &logs).passed);
    }

    #[test]
    fn total_order_is_checked_between_every_pair_not_just_against_peer_0() {
        // Peer 0 lacks both messages; peers 1 and 2 disagree on them.
        let logs = vec![
            log(0, &[]),
            log(1, &[(0, 0), (1, 0)]),
            log(2, &[(1, 0), (0, 0)]),
        ];
        let f = check(&spec(OrderKind::Total, 3, 1), &logs);
        assert_eq!(
            f.counterexamples.total_order.as_deref(),
            Some("peer 2 delivered 1:0 before 0:0; peer 1 delivered them the other way round")
        );
    }

    #[test]
    fn agreement_and_integrity_counterexamples() {
        let s = spec(OrderKind::None, 2, 2);
        let f = check(&s, &[log(0, &ALL), log(1, &ALL[..3])]);
        assert_eq!(
            f.counterexamples.agreement.as_deref(),
            Some("peer 0 delivered 1:1 but peer 1 never did")
        );
        assert_eq!(
            f.counterexamples.integrity.as_deref(),
            Some("peer 1 never delivered 1:1")
        );
        let f = check(
            &s,
            &[
                log(0, &[(0, 0), (1, 0), (0, 0), (0, 1), (1, 1)]),
                log(1, &ALL),
            ],
        );
        assert_eq!(
            f.counterexamples.integrity.as_deref(),
            Some("peer 0 delivered 0:0 twice (positions 0 and 2)")
        );
        assert!(f.agreement, "same set, one duplicate");
        let f = check(&s, &[log(0, &[(7, 0)]), log(1, &ALL)]);
        assert_eq!(
            f.counterexamples.integrity.as_deref(),
            Some("peer 0 delivered 7:0, but there is no member 7 (the group has 2)")
        );
        let f = check(&s, &[log(0, &[(1, 30)]), log(1, &ALL)]);
        assert_eq!(
            f.counterexamples.integrity.as_deref(),
            Some("peer 0 delivered 1:30, but member 1 sent only 2 messages")
        );
        let mut foreign = log(1, &ALL);
        foreign.entries[2].run = 4;
        let f = check(&s, &[log(0, &ALL), foreign]);
        assert_eq!(
            f.counterexamples.integrity.as_deref(),
            Some("entry 2 of peer 1's log belongs to run 4, the others to run 9")
        );
    }

    #[test]
    fn fifo_counterexample() {
        let s = spec(OrderKind::Fifo, 2, 2);
        let bad = [(0, 1), (1, 0), (0, 0), (1, 1)];
        let f = check(&s, &[log(0, &ALL), log(1, &bad)]);
        assert!(!f.fifo && !f.passed);
        assert_eq!(
            f.counterexamples.fifo.as_deref(),
            Some("peer 1 delivered 0:1 before 0:0, though member 0 sent them the other way round")
        );
        // A gap alone is not a FIFO violation.
        let f = check(&s, &[log(0, &[(0, 1), (1, 0), (1, 1)]), log(1, &ALL)]);
        assert!(f.fifo && !f.integrity);
    }

    #[test]
    fn edge_cases() {
        let f = check(&spec(OrderKind::Total, 1, 2), &[log(0, &[(0, 0), (0, 1)])]);
        assert!(f.passed && f.unordered_rounds == 0);
        let f = check(&spec(OrderKind::Total, 2, 0), &[log(0, &[]), log(1, &[])]);
        assert!(f.passed && f.rounds == 0 && f.latency_us.is_none());
        let f = check(&spec(OrderKind::Total, 0, 0), &[]);
        assert_eq!(f.peers, 0);
    }

    #[test]
    fn findings_serialise_with_the_documented_keys() {
        let f = check(&spec(OrderKind::Total, 2, 2), &[log(0, &ALL), log(1, &ALL)]);
        let v = serde_json::to_value(&f).unwrap();
        for key in [
            "order",
            "peers",
            "messages_per_peer",
            "unordered_rounds",
            "rounds",
            "total_order",
            "agreement",
            "integrity",
            "fifo",
            "delivered",
            "expected",
            "passed",
            "counterexamples",
            "latency_us",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["order"], "total");
        assert_eq!(serde_json::from_value::<Findings>(v).unwrap(), f);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let l = Latency::from_samples((1..=100).collect()).unwrap();
        assert_eq!((l.p50, l.p90, l.p99, l.p999, l.max), (50, 90, 99, 100, 100));
        let l = Latency::from_samples(vec![7]).unwrap();
        assert_eq!((l.p50, l.p999), (7, 7));
    }

    fn shuffled(n: usize) -> impl Strategy<Value = Vec<(u16, u64)>> {
        Just(
            (0..n)
                .map(|i| ((i % 3) as u16, (i / 3) as u64))
                .collect::<Vec<_>>(),
        )
        .prop_shuffle()
    }

    proptest! {
        #[test]
        fn one_shared_sequence_is_totally_ordered(seq in shuffled(30)) {
            let logs: Vec<_> = (0..3).map(|p| log(p, &seq)).collect();
            let f = check(&spec(OrderKind::Total, 3, 10), &logs);
            prop_assert!(f.total_order && f.agreement && f.integrity);
            prop_assert_eq!(f.unordered_rounds, 0);
        }

        #[test]
        fn swapping_two_neighbours_of_different_senders_is_caught(seq in shuffled(30), at in 0usize..29) {
            prop_assume!(seq[at].0 != seq[at + 1].0);
            let mut other = seq.clone();
            other.swap(at, at + 1);
            let f = check(&spec(OrderKind::Total, 3, 10), &[log(0, &seq), log(1, &seq), log(2, &other)]);
            prop_assert!(!f.total_order);
            prop_assert!(f.unordered_rounds >= 1);
            prop_assert!(f.agreement && f.integrity);
        }

        #[test]
        fn never_panics_on_garbage(
            logs in proptest::collection::vec(proptest::collection::vec((any::<u16>(), any::<u64>()), 0..20), 0..5),
            members in 0usize..5,
            each in 0u64..5,
        ) {
            let logs: Vec<_> = logs.iter().enumerate().map(|(p, l)| log(p as u16, l)).collect();
            let _ = check(&spec(OrderKind::Total, members, each), &logs);
        }
    }
}
