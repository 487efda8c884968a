//! # mpcomm-check: what the delivery logs of a run say
//!
//! In an mpcomm run a group of *members* (numbered 0, 1, 2, …) each
//! *multicast* some messages: a member sends each of its messages to every
//! member, itself included. When a message has arrived and it is its turn,
//! a member *delivers* it: hands it to the application, which in mpcomm
//! writes it to the member's *delivery log*. The member that writes a log is
//! called its *peer* below. This crate reads those logs ([`log`]) and says
//! what they show ([`check`]): which ordering properties the run had and,
//! for each one it did not have, the first counter-example, in words you can
//! verify by opening the logs.
//!
//! Apart from [`log`], which reads and writes log text, everything here is a
//! pure function of the logs: no clocks, no files, no randomness. The same
//! logs always give the same findings.
//!
//! ## Names
//!
//! A message is named `sender:seq`: `4:17` is member 4's message number 17.
//! Each member numbers its messages 0, 1, 2, … in the order it sends them.
//! A *position* is an index into one peer's log, from 0 (position `p` is line
//! `p + 1` of a log file).
//!
//! ## A worked example
//!
//! Three peers; members 0 and 1 each multicast two messages:
//!
//! ```text
//!   position:    0    1    2    3
//!   peer 0:     0:0  1:0  0:1  1:1
//!   peer 1:     0:0  1:0  0:1  1:1
//!   peer 2:     1:0  0:0  0:1  1:1
//! ```
//!
//! Everybody got everything exactly once (*integrity* and *agreement*
//! hold), and everybody got each sender's messages in the order they were
//! sent (*FIFO* holds: `0:0` before `0:1`, `1:0` before `1:1`). But peer 2
//! delivered `1:0` before `0:0` while peers 0 and 1 did the opposite:
//! *total order* is violated, and the counter-example reads "peer 2
//! delivered 1:0 before 0:0; peer 0 delivered them the other way round".
//! Positions 0 and 1 are *unordered rounds*: 2 of 4.
//!
//! ## The properties
//!
//! ### Integrity: nothing twice, nothing invented, nothing lost
//!
//! Every peer delivered every message that was sent, exactly once, and
//! nothing else. Concretely, integrity fails when a peer delivered a message
//! twice, delivered a message from a sender that is not a member or with a
//! sequence number its sender never reached, or never delivered a message
//! that was sent. It also fails when the logs themselves are not what they
//! claim: a log of a peer that is not a member, two logs of one peer, an
//! entry that names another peer than its log's, or an entry of another run
//! (logs of two runs mixed up).
//!
//! Losing a message is a failure of every order, because every order in
//! mpcomm runs over reliable links that retransmit what the network drops.
//! (The original demo used bare UDP and silently lost messages.)
//!
//! ### Agreement: everybody delivered the same messages
//!
//! The *set* of messages delivered is the same at every peer, whatever the
//! order. A message that some peer delivered and another did not is a
//! counter-example: "peer 0 delivered 3:5 but peer 2 never did". This
//! overlaps with integrity on purpose: a message lost at one peer breaks
//! both. They differ when every peer lost the same message (agreement holds,
//! integrity fails) and in what they report: agreement names a message that
//! one peer has and another lacks.
//!
//! ### FIFO: each sender's messages in the order they were sent
//!
//! Every peer delivered the messages of any one sender in increasing
//! sequence number: `2:4` before `2:5`. A gap is not a FIFO violation (a
//! missing message is integrity's business); going backwards is: "peer 1
//! delivered 2:5 before 2:4, though member 2 sent them the other way round".
//! FIFO says nothing about messages of *different* senders.
//!
//! ### Total order: everybody agrees on the order
//!
//! For any two peers and any two messages both of them delivered, they
//! delivered the two in the same order. This is what a replicated service
//! needs: if every replica applies the same updates in the same order, every
//! replica ends in the same state (a deposit followed by a 10 % interest is
//! not the interest followed by the deposit). Network delays differ between
//! peers, so messages *arrive* in different orders; mpcomm's `total` order
//! holds each message back until it knows that no message that should come
//! before it can still arrive (Lamport clocks and acknowledgements), and
//! then delivers in the same order everywhere.
//!
//! Total order does not imply FIFO by definition, and FIFO does not imply
//! total order: above, the logs are FIFO but not totally ordered. With
//! agreement, total order means every log is the same sequence. Without
//! agreement, it only constrains the messages each pair of peers shares:
//! peers that delivered `a b`, `b c` and `c a` form a cycle, but no two of
//! them delivered the same two messages, so no pair disagrees and total
//! order (as defined) holds; agreement fails instead.
//!
//! For the order properties, a message a peer delivered twice counts at its
//! first delivery; the second one is an integrity failure only.
//!
//! ### Causal order: nothing before its causes
//!
//! A message *happened before* another if its sender sent it earlier, or
//! if the other's sender had delivered it before sending: an answer after
//! its question, a withdrawal after the deposit its sender saw. Causal
//! order holds when no peer delivered a message before one that happened
//! before it: "peer 2 delivered 3:5, which answers 1:4, before 1:4".
//! Concurrent messages (neither sender knew of the other's) may come in any
//! order, so causal order is weaker than total order — and, unlike total
//! order, it does not keep replicas alike.
//!
//! The logs say what happened before what: each delivery line carries
//! `after`, how many messages the sender had delivered when it sent the
//! message (the first `after` lines of the sender's own log), and a `chat`
//! answer names its question in its `op` (see [`workload`]). When no line
//! carries `after`, only a sender's own order can show a violation, and
//! without one the verdict is unknown: `causal` is `null`.
//! `causal_violations` counts the deliveries that came before one of
//! their predecessors; `answers_before_questions` counts, in `chat` runs,
//! answers delivered before their question.
//!
//! ### States agree: do the replicas end alike?
//!
//! In the `bank` and `kv` workloads each message is an operation on a
//! replicated account or store, and each peer applies them in its delivery
//! order. The checker replays every log and compares the final states:
//! `states_agree`, each peer's final state in `states`, and, when they
//! differ, the first position after which two peers' states differ. Total
//! order makes states agree; causal order does not. For `seq` and `chat`
//! there is no state and both are `null`.
//!
//! ### Unordered rounds: the original metric
//!
//! The original MPComm comparison server printed one number: the *unordered
//! rounds*. Round `j` is every peer's `j`-th delivery; it is unordered if
//! not every peer delivered the same message in it (a peer whose log is too
//! short counts as different). Above, rounds 0 and 1 are unordered.
//!
//! The original counted them wrongly: it looked only at the first
//! *messages-per-peer − 1* positions, although each peer delivers
//! *peers × messages-per-peer* messages, and it compared peer 0 with every
//! peer but the last. A disorder late in the logs, or at the last peer
//! only, went unseen; with two peers it always printed 0. mpcomm counts
//! every round of every peer ([`unordered_rounds`]), and can reproduce the
//! original count for comparison ([`original_unordered_rounds`]).
//!
//! The metric is kept because it is what students compare, but it is crude:
//! one message lost at one peer shifts all its later deliveries by one
//! place and makes every later round unordered, although nobody delivered
//! two messages in opposite orders. The properties say what actually went
//! wrong.
//!
//! ### Which order promises what
//!
//! | order       | integrity | agreement | FIFO | causal | total order |
//! |-------------|-----------|-----------|------|--------|-------------|
//! | `none`      | yes       | yes       |      |        |             |
//! | `fifo`      | yes       | yes       | yes  |        |             |
//! | `causal`    | yes       | yes       | yes  | yes    |             |
//! | `sequencer` | yes       | yes       | yes  | yes    | yes         |
//! | `total`     | yes       | yes       | yes  | yes    | yes         |
//!
//! `total` keeps causal order because of how mpcomm implements it (see
//! [`Property::promised_by`]); states agreeing is not a promise of its
//! own but what total order and agreement give a replicated state.
//!
//! Every property is checked and reported whatever the order; a run
//! *passes* ([`Findings::passed`]) when it is complete (below) and every
//! property its order promises holds ([`Property::promised_by`]). A `none`
//! run with unordered rounds passes: disorder is what `none` is there to
//! show.
//!
//! ## Runs cut short
//!
//! A run can stop before its end: a member is killed, another stops
//! answering, the others give up. Its logs then say less than a complete
//! run's, and the checker says so instead of misreading them:
//!
//! * a member with no log at all is *missing* ([`Findings::missing_logs`]);
//! * a log without its end line is *partial* (its writer was killed;
//!   [`Findings::partial_logs`]), one whose end line says the run failed is
//!   *failed* ([`Findings::failed_logs`]) — both are *cut short*
//!   ([`log::LogStatus::cut_short`]).
//!
//! A run with any of these is not *complete* ([`Findings::complete`]), and
//! an incomplete run never passes. What was delivered before the stop is
//! still judged, for what it is worth:
//!
//! * the safety properties — total order, FIFO, and the part of integrity
//!   that says nothing was delivered twice or invented — hold or fail as in
//!   any run;
//! * the liveness ones are judged only where they apply: a log cut short
//!   is not blamed for the messages it never got to (integrity's "never
//!   delivered"), and agreement compares the logs that claim to be
//!   complete;
//! * and one more verdict, [`Findings::consistent`], says whether what was
//!   delivered is a beginning of what a correct run delivers: for an order
//!   that promises total order, every log is a *prefix of one sequence*
//!   (the longest log); for one that promises FIFO, every log holds each
//!   sender's messages `0, 1, 2, …` without a gap; for every order,
//!   integrity as just described. A killed member's partial log and the
//!   survivors' failed ones are consistent when the protocol did its job up
//!   to the stop.
//!
//! Logs of version 1 (without meta and end lines) say nothing about
//! themselves; they are judged as complete logs.
//!
//! ## Which counter-example is "first"
//!
//! Each property reports one counter-example, chosen deterministically:
//! logs are taken in order of peer id (two logs of the same peer in the
//! order given), and within a log, by position. Precisely:
//!
//! * total order: the first pair of peers `(p, q)`, `p` before `q`, that
//!   disagree; walking `p`'s log, the first message `m` that `q` delivered
//!   before some message `p` delivered earlier; of those earlier messages,
//!   the one `q` delivered last. Reported as "peer q delivered m before …;
//!   peer p delivered them the other way round".
//! * agreement: the earliest message in the first log that holds a message
//!   some peer lacks; the first peer that lacks it.
//! * integrity: the first log with a problem; in it, first a problem with
//!   the log itself, then the earliest entry with a problem, then the lowest
//!   message (by sender, then seq) it never delivered.
//! * FIFO: the first log, and in it the earliest message delivered after a
//!   higher-numbered message of the same sender; reported against the
//!   highest such message.
//! * causal: the first log, and in it the earliest message delivered before
//!   one of its predecessors; reported against its question if that came
//!   later, else against the sender's latest earlier message that came
//!   later, else against the first entry of the sender's log (up to
//!   `after`) that came later.
//! * states: the first log, against the first log that ends in another
//!   state; the first position after which their states differ.
//!
//! ## What the checker cannot see
//!
//! It judges the logs it is given against the spec: a member of the spec
//! whose log is not among them is reported missing, and the run does not
//! pass. A log that ends early without saying so (a version-1 log whose
//! writer was killed) looks complete, and is judged as such: it is found
//! out by the messages it lacks.
//!
//! ## Cost
//!
//! Logs of millions of entries are checked in time roughly linear in their
//! total size. Total order would naively compare every pair of peers on
//! every message; the checker first finds the messages that can be part of
//! a disagreement at all (see the source of the `total_order` module) and
//! compares pairs of peers on those only — none, in a correct run. Causal
//! order costs peers × total log size (each peer against every sender's
//! log).
//!
//! ## Example
//!
//! ```
//! use mpcomm_check::{check, LogEntry, PeerLog, RunSpec};
//! use mpcomm_core::OrderKind;
//!
//! let log = |peer, msgs: &[(u16, u64)]| {
//!     let entries = msgs
//!         .iter()
//!         .map(|&(sender, seq)| LogEntry {
//!             run: 1, peer, sender, seq, stamp: None, sent_us: None, delivered_us: None,
//!             after: None, op: None,
//!         })
//!         .collect();
//!     PeerLog::new(peer, entries)
//! };
//! let logs = [
//!     log(0, &[(0, 0), (1, 0), (0, 1), (1, 1)]),
//!     log(1, &[(0, 0), (1, 0), (0, 1), (1, 1)]),
//!     log(2, &[(1, 0), (0, 0), (0, 1), (1, 1)]),
//! ];
//! let spec = RunSpec { order: OrderKind::Total, members: 3, sent: vec![2, 2, 0] };
//! let f = check(&spec, &logs);
//! assert_eq!((f.unordered_rounds, f.rounds), (2, 4));
//! assert!(f.integrity && f.agreement && f.fifo);
//! assert!(!f.total_order && !f.passed);
//! assert_eq!(
//!     f.counterexamples.total_order.as_deref(),
//!     Some("peer 2 delivered 1:0 before 0:0; peer 0 delivered them the other way round")
//! );
//! // The same logs keep every promise of the `fifo` order.
//! assert!(check(&RunSpec { order: OrderKind::Fifo, ..spec }, &logs).passed);
//! ```

mod causal;
mod consistency;
mod index;
mod latency;
pub mod log;
mod properties;
mod rounds;
mod states;
mod total_order;
pub mod views;
mod violation;
pub mod workload;

/// Log builders shared by the unit tests of several modules.
#[cfg(test)]
mod testing {
    use crate::{LogEntry, PeerLog};

    /// The log of `peer` delivering `msgs` (sender, seq) in that order,
    /// without stamps or times.
    pub(crate) fn log(peer: u16, msgs: &[(u16, u64)]) -> PeerLog {
        PeerLog::new(
            peer,
            msgs.iter()
                .map(|&(sender, seq)| LogEntry {
                    run: 1,
                    peer,
                    sender,
                    seq,
                    stamp: None,
                    sent_us: None,
                    delivered_us: None,
                    after: None,
                    op: None,
                })
                .collect(),
        )
    }
}

use std::fmt;

use mpcomm_core::{MemberId, OrderKind};
use serde::{Deserialize, Serialize};

pub use latency::Latency;
pub use log::{EndStatus, LogEnd, LogMeta, LogStatus, Messages};
pub use rounds::{Rounds, original_unordered_rounds, unordered_rounds};
pub use states::{PeerState, StatesViolation, Step};
pub use views::{
    LeftMember, RunView, ViewFindings, ViewLog, ViewMark, VirtualSynchrony,
    check_virtual_synchrony, check_with_views,
};
pub use violation::{
    AgreementViolation, CausalReason, CausalViolation, FifoViolation, IntegrityViolation, Property,
    TotalOrderViolation, Violation,
};

/// One delivered message: one line of a JSON-Lines delivery log.
///
/// Serialises with its keys in declaration order (`run`, `peer`, `sender`,
/// `seq`, `stamp`, `sent_us`, `delivered_us`, `after`, `op`); the optional
/// ones are left out when absent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// The run id: every entry of every log of one run has the same.
    pub run: u64,
    /// The member that delivered the message (the log's owner).
    pub peer: MemberId,
    /// The member that multicast it.
    pub sender: MemberId,
    /// The sender's sequence number for it, from 0.
    pub seq: u64,
    /// Its Lamport stamp, where the order uses one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stamp: Option<u64>,
    /// When it was sent, in microseconds (same clock as `delivered_us`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_us: Option<u64>,
    /// When it was delivered, in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_us: Option<u64>,
    /// How many messages the sender had delivered when it sent this one:
    /// they are the first `after` entries of the sender's own log, and
    /// they happened before this message (see [`workload`]). Absent in logs
    /// of writers that do not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
    /// The message's operation in the run's workload (`deposit 5.00`,
    /// `answer 1:4`, `put k2 1:4`, …); absent for `seq`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<workload::Op>,
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

/// All deliveries of one peer, in delivery order, and what its log file
/// says about itself (see [`log`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerLog {
    /// The peer (member id).
    pub peer: MemberId,
    /// Its deliveries, in order.
    pub entries: Vec<LogEntry>,
    /// The log's meta line (version 2), if it has one.
    pub meta: Option<log::LogMeta>,
    /// The log's end line (version 2), if it has one: a log with a meta
    /// line and no end line is partial.
    pub end: Option<log::LogEnd>,
    /// The views the member installed, from the log's view lines, in order;
    /// each mark's `at` is the number of deliveries before it. Empty in a
    /// log without view lines (older logs, and logs held in memory).
    pub views: Vec<views::ViewMark>,
}

impl PeerLog {
    /// The log of `peer` delivering `entries`, with no meta or end line
    /// (as a version-1 log, or one held in memory).
    pub fn new(peer: MemberId, entries: Vec<LogEntry>) -> PeerLog {
        PeerLog {
            peer,
            entries,
            meta: None,
            end: None,
            views: Vec::new(),
        }
    }

    /// What the log says about itself: completed, failed, partial (a meta
    /// line without an end line: its writer was interrupted), or nothing.
    pub fn status(&self) -> log::LogStatus {
        use log::{EndStatus, LogStatus};
        match (&self.meta, &self.end) {
            (_, Some(end)) => match end.status {
                EndStatus::Completed => LogStatus::Completed,
                EndStatus::Failed => LogStatus::Failed,
            },
            (Some(_), None) => LogStatus::Partial,
            (None, None) => LogStatus::Unstated,
        }
    }
}

/// What the checker must know about a run besides its logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunSpec {
    /// The run's delivery order: decides which properties must hold.
    pub order: OrderKind,
    /// Group size: the members are `0..members`.
    pub members: usize,
    /// How many messages each member multicast (index = member id; a member
    /// beyond the end of the vector sent none).
    pub sent: Vec<u64>,
}

impl RunSpec {
    /// A run in which each of `members` members multicast `messages`
    /// messages.
    pub fn uniform(order: OrderKind, members: usize, messages: u64) -> RunSpec {
        RunSpec {
            order,
            members,
            sent: vec![messages; members],
        }
    }
}

/// A message: `sender:seq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Msg {
    /// Its sender.
    pub sender: MemberId,
    /// The sender's sequence number.
    pub seq: u64,
}

impl fmt::Display for Msg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.sender, self.seq)
    }
}

/// Text that is not a message name `sender:seq`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a message name (sender:seq, e.g. 1:4)")]
pub struct BadMsg(pub String);

impl std::str::FromStr for Msg {
    type Err = BadMsg;

    /// Reads `1:4`.
    fn from_str(s: &str) -> Result<Msg, BadMsg> {
        let bad = || BadMsg(s.to_string());
        let (sender, seq) = s.split_once(':').ok_or_else(bad)?;
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(sender) || !digits(seq) {
            return Err(bad());
        }
        Ok(Msg {
            sender: sender.parse().map_err(|_| bad())?,
            seq: seq.parse().map_err(|_| bad())?,
        })
    }
}

/// The first counter-example of each violated property, in words. A field
/// is present exactly when its property failed.
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
    /// Consistency of what a run cut short delivered
    /// ([`Findings::consistent`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency: Option<String>,
    /// Causal order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causal: Option<String>,
    /// States that do not agree (not a property of its own: see
    /// [`Findings::states_agree`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub states: Option<String>,
}

/// What the checker found. Every mpcomm command that prints findings
/// serialises this, so the keys are part of mpcomm's interface:
///
/// ```json
/// {"order":"total","workload":"seq","peers":3,"messages_per_peer":2,"unordered_rounds":2,
///  "rounds":4,"first_unordered_round":0,"total_order":false,"agreement":true,
///  "integrity":true,"fifo":true,"causal":null,"causal_violations":null,
///  "answers_before_questions":null,"states_agree":null,"delivered":12,"expected":12,
///  "passed":false,"complete":true,"consistent":false,
///  "counterexamples":{"total_order":"peer 2 delivered 1:0 before 0:0; peer 0 delivered them the other way round",
///    "consistency":"peer 2 delivered 1:0 at position 0, where peer 0 delivered 0:0: the logs are not prefixes of one sequence"},
///  "latency_us":{"count":12,"mean":360.0,"p50":320,"p90":510,"p99":520,"p999":520,"max":520},
///  "states":null}
/// ```
///
/// (the logs of the [crate example](crate#a-worked-example), with times).
/// `counterexamples` has a key only for each violated property (for
/// consistency when it fails, and `states` when the states differ);
/// `first_unordered_round` is absent when there is none; `missing_logs`,
/// `partial_logs` and `failed_logs` are absent when empty; `latency_us` is
/// `null` when no entry has both times. The workload keys are always
/// present and `null` where they do not apply: `causal` and
/// `causal_violations` when no line carries `after` (and no sender's own
/// order is broken), `answers_before_questions` outside `chat`,
/// `states_agree` and `states` outside `bank` and `kv`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Findings {
    /// The run's order: `none`, `fifo`, `causal`, `sequencer` or `total`.
    pub order: String,
    /// The run's workload, recognised from the operations in the logs:
    /// `seq` (none), `bank`, `chat` or `kv`.
    #[serde(default = "seq")]
    pub workload: String,
    /// Number of logs checked (normally one per member).
    pub peers: usize,
    /// Messages per peer: the most any member multicast.
    pub messages_per_peer: u64,
    /// Rounds in which not every peer delivered the same message.
    pub unordered_rounds: u64,
    /// Rounds in all: the length of the longest log.
    pub rounds: u64,
    /// The first unordered round (from 0); absent when there is none.
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
    /// Causal order holds; `null` when the logs cannot tell (no line says
    /// what its sender had delivered, and no sender's order is broken).
    #[serde(default)]
    pub causal: Option<bool>,
    /// Deliveries of a message before one of its predecessors; `null`
    /// when `causal` is.
    #[serde(default)]
    pub causal_violations: Option<u64>,
    /// `chat`: deliveries of an answer before its question; `null` for
    /// other workloads.
    #[serde(default)]
    pub answers_before_questions: Option<u64>,
    /// `bank`, `kv`: every peer ends in the same state; `null` for
    /// workloads without state.
    #[serde(default)]
    pub states_agree: Option<bool>,
    /// Deliveries, summed over all logs (duplicates included).
    pub delivered: u64,
    /// Deliveries there should be: members × messages multicast in all.
    pub expected: u64,
    /// The run is complete and every property its order promises holds.
    pub passed: bool,
    /// Every member has a log and none was cut short (see the [crate
    /// documentation](crate#runs-cut-short)).
    #[serde(default = "yes")]
    pub complete: bool,
    /// Members of the run with no log among those checked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_logs: Vec<MemberId>,
    /// Members whose log stops without an end line (its writer was killed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partial_logs: Vec<MemberId>,
    /// Members whose log ends saying the run failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_logs: Vec<MemberId>,
    /// What was delivered is a beginning of what a correct run delivers:
    /// nothing twice or invented, and, as far as the order promises them,
    /// every log a prefix of one sequence (total order) and each sender's
    /// messages without gaps (FIFO). Always true of a run that passed;
    /// the verdict that matters for a run cut short.
    #[serde(default = "yes")]
    pub consistent: bool,
    /// The first counter-example of each violated property.
    pub counterexamples: Counterexamples,
    /// Send-to-delivery latency over the entries that have both times;
    /// `null` when none has.
    pub latency_us: Option<Latency>,
    /// `bank`, `kv`: each peer's final state, recomputed from its log, in
    /// peer order; `null` for workloads without state.
    #[serde(default)]
    pub states: Option<Vec<PeerState>>,
}

fn seq() -> String {
    workload::Workload::Seq.to_string()
}

/// The default of the verdicts that older summaries do not have.
fn yes() -> bool {
    true
}

impl Findings {
    /// Whether `property` holds. An unknown causal verdict counts as
    /// holding: nothing in the logs contradicts it.
    pub fn holds(&self, property: Property) -> bool {
        match property {
            Property::TotalOrder => self.total_order,
            Property::Agreement => self.agreement,
            Property::Integrity => self.integrity,
            Property::Fifo => self.fifo,
            Property::Causal => self.causal != Some(false),
        }
    }
}

/// Checks a run's logs against its spec. See the [crate documentation](crate)
/// for what each finding means.
///
/// Never panics, whatever the logs hold (senders that are not members,
/// absurd sequence numbers, entries of other peers or runs…): anything
/// wrong with the logs is a finding.
pub fn check(spec: &RunSpec, logs: &[PeerLog]) -> Findings {
    check_detailed(spec, logs).0
}

/// Like [`check`], over the logs of *some* members only — those that took
/// part in a run from its first view to its end, when others crashed or
/// joined late (virtual synchrony, checked by
/// [`check_virtual_synchrony`], covers the rest): the agreement among these
/// logs, and the order, integrity and FIFO of each, with `expected` counting
/// only these logs' deliveries. `spec.sent` should then say, for a member
/// that crashed, how many of its messages the survivors delivered.
pub fn check_members(spec: &RunSpec, logs: &[PeerLog]) -> Findings {
    let (mut f, violations) = check_detailed(spec, logs);
    let sent_in_all = spec.sent.iter().fold(0u64, |a, &s| a.saturating_add(s));
    f.expected = (logs.len() as u64).saturating_mul(sent_in_all);
    // The members left out are left out on purpose: their logs are not
    // missing.
    f.missing_logs.clear();
    f.complete = f.partial_logs.is_empty() && f.failed_logs.is_empty();
    f.passed = f.complete
        && violations
            .iter()
            .all(|v| !v.property().promised_by(spec.order));
    f
}

/// Like [`check`], also returning each violated property's first
/// counter-example as a typed value, in the order total order, agreement,
/// integrity, FIFO, causal.
pub fn check_detailed(spec: &RunSpec, logs: &[PeerLog]) -> (Findings, Vec<Violation>) {
    let ix = index::Index::new(spec, logs);
    let rounds = unordered_rounds(logs);
    // Logs cut short are judged on what they delivered, not on what they
    // never got to (see "Runs cut short" above).
    let cut: Vec<bool> = logs.iter().map(|l| l.status().cut_short()).collect();
    let total = total_order::first_violation(&ix);
    let agreement = properties::first_agreement_violation(&ix, &cut);
    let integrity = properties::first_integrity_violation(spec, &ix, &cut);
    let fifo = properties::first_fifo_violation(&ix);
    let consistency = match &integrity {
        Some(v) => Some(format!("integrity: {v}")),
        None => consistency::first_inconsistency(spec, &ix).map(|v| v.to_string()),
    };
    let members_of = |status: log::LogStatus| -> Vec<MemberId> {
        let mut v: Vec<MemberId> = logs
            .iter()
            .filter(|l| l.status() == status)
            .map(|l| l.peer)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let partial_logs = members_of(log::LogStatus::Partial);
    let failed_logs = members_of(log::LogStatus::Failed);
    let missing_logs = missing_members(spec, logs);
    let complete = missing_logs.is_empty() && partial_logs.is_empty() && failed_logs.is_empty();
    let causal = causal::check(&ix);
    let states = states::check(&ix);
    let causal_known = causal.known || causal.first.is_some();
    let violations: Vec<Violation> = [
        total.map(Violation::from),
        agreement.map(Violation::from),
        integrity.map(Violation::from),
        fifo.map(Violation::from),
        causal.first.map(Violation::from),
    ]
    .into_iter()
    .flatten()
    .collect();

    let text = |p: Property| {
        violations
            .iter()
            .find(|v| v.property() == p)
            .map(ToString::to_string)
    };
    let sent_in_all = spec.sent.iter().fold(0u64, |a, &s| a.saturating_add(s));
    let findings = Findings {
        order: spec.order.to_string(),
        peers: logs.len(),
        messages_per_peer: spec.sent.iter().copied().max().unwrap_or(0),
        unordered_rounds: rounds.unordered,
        rounds: rounds.rounds,
        first_unordered_round: rounds.first_unordered,
        total_order: total.is_none(),
        agreement: agreement.is_none(),
        integrity: violations
            .iter()
            .all(|v| v.property() != Property::Integrity),
        fifo: fifo.is_none(),
        causal: causal_known.then_some(causal.first.is_none()),
        causal_violations: causal_known.then_some(causal.violations),
        answers_before_questions: causal.answers_early,
        states_agree: states.agree(),
        delivered: logs.iter().map(|l| l.entries.len() as u64).sum(),
        expected: (spec.members as u64).saturating_mul(sent_in_all),
        passed: complete
            && violations
                .iter()
                .all(|v| !v.property().promised_by(spec.order)),
        complete,
        missing_logs,
        partial_logs,
        failed_logs,
        consistent: consistency.is_none(),
        counterexamples: Counterexamples {
            total_order: text(Property::TotalOrder),
            agreement: text(Property::Agreement),
            integrity: text(Property::Integrity),
            fifo: text(Property::Fifo),
            consistency,
            causal: text(Property::Causal),
            states: states.first.as_ref().map(ToString::to_string),
        },
        latency_us: Latency::of_logs(logs),
        workload: states.workload.to_string(),
        states: states.finals,
    };
    (findings, violations)
}

/// The members of the spec with no log among `logs`. (A spec of more
/// members than ids exist lists only those ids.)
fn missing_members(spec: &RunSpec, logs: &[PeerLog]) -> Vec<MemberId> {
    let n = spec.members.min(usize::from(MemberId::MAX) + 1);
    let mut has = vec![false; n];
    for l in logs {
        if let Some(h) = has.get_mut(usize::from(l.peer)) {
            *h = true;
        }
    }
    has.iter()
        .enumerate()
        .filter(|(_, h)| !**h)
        .filter_map(|(i, _)| MemberId::try_from(i).ok())
        .collect()
}
