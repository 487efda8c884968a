//! Traces: what a peer did, and *why* it made a message wait.
//!
//! A delivery log says in which order a peer delivered messages. It cannot
//! say why a message was delivered *then* and not earlier. A trace can. When
//! tracing is on ([`crate::Config::trace`]), a [`crate::Peer`] records, beside
//! its deliveries, four kinds of [`TraceEvent`]:
//!
//! | event | when |
//! |---|---|
//! | [`TraceKind::Send`] | the peer multicasts a record (its own message, its end-of-stream marker, an engine's control record) |
//! | [`TraceKind::Arrive`] | a record of another member arrives for the first time (duplicates are not events) |
//! | [`TraceKind::Wait`] | what the head of the hold-back queue waits for *changes*: a new head, or other members to wait for |
//! | [`TraceKind::Deliver`] | the ordering engine releases a record to the application |
//!
//! Each event carries the peer's Lamport clock at that moment. The time
//! between a record's arrival and its delivery is the time it spent in the
//! hold-back queue, and the `wait` events in between say, in the engine's own
//! terms, what it was waiting for ([`WaitReason`]):
//!
//! * `total` waits until every other member has shown a clock at or above the
//!   head's stamp (an acknowledgement, or any later record of theirs): the
//!   wait names exactly the members whose news is still missing;
//! * `fifo` waits at the reliable link for a record that has not arrived
//!   (a gap in its sender's stream);
//! * `none` never waits;
//! * a causal order would name the causal predecessor not yet delivered
//!   ([`WaitCause::Predecessor`]), a sequencer the decision not yet received
//!   ([`WaitCause::Decision`]).
//!
//! # Costs nothing when off
//!
//! A peer without tracing keeps `None` where the trace would be: every emit
//! point is one branch on that `Option`, with no allocation and no
//! formatting. Wait reasons are only computed when tracing is on.
//!
//! # Bounded
//!
//! A long run makes millions of events. The [`Tracer`] records every event
//! until it holds [`TraceLimits::full_events`]; from then on it records only
//! events of records stamped at or below the clock it had at that moment
//! (so the records it already knows of are followed to their delivery, and
//! no new ones are taken in), up to [`TraceLimits::max_events`] in all. Every
//! member does the same, so the records stamped at or below the *smallest*
//! such clock are traced completely at every member: that is the window a
//! merged trace shows (see `docs/trace.md`).
//!
//! The JSON form of an event, one line of `trace.jsonl`, is [`TraceLine`]
//! (with the `serde` feature).

use std::collections::VecDeque;
use std::fmt::Write as _;

use crate::time::Time;
use crate::wire::{MemberId, Record, RecordKind};

/// Which kind of record an event is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MsgKind {
    /// An application message.
    Data,
    /// A member's end-of-stream marker.
    EndOfStream,
    /// An ordering engine's control record (e.g. a sequencer's decision).
    Control,
}

impl MsgKind {
    /// The name used in `trace.jsonl`.
    pub fn as_str(self) -> &'static str {
        match self {
            MsgKind::Data => "data",
            MsgKind::EndOfStream => "eos",
            MsgKind::Control => "control",
        }
    }
}

/// A record, as a trace names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MsgRef {
    /// Who multicast it.
    pub sender: MemberId,
    /// For data, the sender's message sequence number (as in delivery logs);
    /// for an end-of-stream marker or a control record, its position in the
    /// sender's stream (`link_seq`).
    pub seq: u64,
    /// The sender's Lamport stamp for it.
    pub stamp: u64,
    /// Data, end-of-stream or control.
    pub kind: MsgKind,
}

impl MsgRef {
    /// How a trace names `rec`.
    pub fn of(rec: &Record) -> MsgRef {
        let (seq, kind) = match rec.kind {
            RecordKind::Data { seq } => (seq, MsgKind::Data),
            RecordKind::EndOfStream { .. } => (rec.link_seq, MsgKind::EndOfStream),
            RecordKind::Control => (rec.link_seq, MsgKind::Control),
        };
        MsgRef {
            sender: rec.sender,
            seq,
            stamp: rec.stamp,
            kind,
        }
    }

    /// `sender:seq` for data, `the end-of-stream marker of sender` otherwise.
    pub fn name(&self) -> String {
        match self.kind {
            MsgKind::Data => format!("{}:{}", self.sender, self.seq),
            MsgKind::EndOfStream => format!("the end-of-stream marker of {}", self.sender),
            MsgKind::Control => format!("control record {}:{}", self.sender, self.seq),
        }
    }
}

/// What kind of news the head of a hold-back queue waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WaitCause {
    /// `total`: the members named have not yet shown a clock at or above the
    /// head's stamp — neither acknowledged it nor sent anything stamped
    /// later — so one of them might still send a record that sorts first.
    Acknowledgements,
    /// The reliable link holds the head back until the record `missing`
    /// (link sequence number; the message sequence number, for a stream of
    /// data only) of `sender` arrives: a gap in its stream.
    Gap {
        /// Whose stream has the gap.
        sender: MemberId,
        /// The first record that has not arrived.
        missing: u64,
    },
    /// A causal order: the head's causal predecessor `sender:seq` has not
    /// been delivered yet.
    Predecessor {
        /// The predecessor's sender.
        sender: MemberId,
        /// Its sequence number.
        seq: u64,
    },
    /// A sequencer order: the sequencer has not yet told us the head's place.
    Decision {
        /// The sequencer.
        sequencer: MemberId,
    },
}

impl WaitCause {
    /// The name used in `trace.jsonl`.
    pub fn as_str(&self) -> &'static str {
        match self {
            WaitCause::Acknowledgements => "acks",
            WaitCause::Gap { .. } => "gap",
            WaitCause::Predecessor { .. } => "predecessor",
            WaitCause::Decision { .. } => "decision",
        }
    }
}

/// Why the head of a hold-back queue cannot be delivered yet: the answer of
/// [`crate::Ordering::wait_reason`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WaitReason {
    /// The record at the head of the queue.
    pub head: MsgRef,
    /// The members whose news it waits for, in id order.
    pub waiting_for: Vec<MemberId>,
    /// What news.
    pub cause: WaitCause,
}

impl WaitReason {
    /// One sentence for people, e.g. "0:3 (stamp 7) waits for 2 and 3: they
    /// have not yet acknowledged stamp 7 or sent anything stamped later, so
    /// either could still send a message that sorts first".
    pub fn sentence(&self) -> String {
        let head = format!("{} (stamp {})", self.head.name(), self.head.stamp);
        let who = list(&self.waiting_for);
        match self.cause {
            WaitCause::Acknowledgements => {
                let (they, has, could) = if self.waiting_for.len() == 1 {
                    ("it", "has", "it")
                } else {
                    ("they", "have", "either")
                };
                let could = if self.waiting_for.len() > 2 {
                    "any of them"
                } else {
                    could
                };
                format!(
                    "{head} waits for {who}: {they} {has} not yet acknowledged stamp {s} or sent anything stamped later, \
                     so {could} could still send a message that sorts first",
                    s = self.head.stamp
                )
            }
            WaitCause::Gap { sender, missing } => format!(
                "{head} waits at the link for {sender}:{missing}, which has not arrived: \
                 {sender}'s messages are delivered in the order {sender} sent them"
            ),
            WaitCause::Predecessor { sender, seq } => {
                format!("{head} waits for {sender}:{seq} (its causal predecessor)")
            }
            WaitCause::Decision { sequencer } => {
                format!("{head} waits for the sequencer's decision (member {sequencer})")
            }
        }
    }
}

/// "2", "2 and 3", "1, 2 and 3".
fn list(ids: &[MemberId]) -> String {
    let mut s = String::new();
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            s.push_str(if i + 1 == ids.len() { " and " } else { ", " });
        }
        let _ = write!(s, "{id}");
    }
    if ids.is_empty() {
        s.push_str("nobody");
    }
    s
}

/// What an event is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceKind {
    /// The peer multicast this record.
    Send(MsgRef),
    /// This record of another member arrived for the first time.
    Arrive(MsgRef),
    /// The ordering engine released this record to the application (data)
    /// or to the peer (an end-of-stream marker).
    Deliver(MsgRef),
    /// What the head of the hold-back queue waits for changed to this.
    Wait(WaitReason),
}

impl TraceKind {
    /// The name used in `trace.jsonl`.
    pub fn as_str(&self) -> &'static str {
        match self {
            TraceKind::Send(_) => "send",
            TraceKind::Arrive(_) => "arrive",
            TraceKind::Deliver(_) => "deliver",
            TraceKind::Wait(_) => "wait",
        }
    }

    /// The record the event is about (for a wait: the head).
    pub fn msg(&self) -> &MsgRef {
        match self {
            TraceKind::Send(m) | TraceKind::Arrive(m) | TraceKind::Deliver(m) => m,
            TraceKind::Wait(w) => &w.head,
        }
    }
}

/// One traced event of one peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceEvent {
    /// The peer it happened at.
    pub peer: MemberId,
    /// When.
    pub at: Time,
    /// The peer's Lamport clock just after the event.
    pub clock: u64,
    /// The peer's vector clock, for orders that keep one
    /// ([`crate::Ordering::vector_clock`]).
    pub vector: Option<Vec<u64>>,
    /// What happened.
    pub kind: TraceKind,
}

/// How much a peer traces. See the [module documentation](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceLimits {
    /// Every event is recorded until this many are.
    pub full_events: usize,
    /// Never more events than this in all.
    pub max_events: usize,
}

impl Default for TraceLimits {
    /// 4,096 events in full (a 6 × 100 run makes about 2,000 per peer),
    /// 8,192 at most.
    fn default() -> TraceLimits {
        TraceLimits {
            full_events: 4096,
            max_events: 8192,
        }
    }
}

/// Where the tracer stopped recording everything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceCut {
    /// When the full part ended.
    pub at: Time,
    /// From then on only records stamped at or below this were traced.
    pub stamps_up_to: u64,
}

/// A peer's trace recorder: applies the [`TraceLimits`] and remembers what
/// the queue's head last waited for, so that a `wait` is recorded only when
/// it changes. Used by [`crate::Peer`]; the caller drains it with
/// [`crate::Peer::poll_trace`].
#[derive(Debug)]
pub struct Tracer {
    peer: MemberId,
    limits: TraceLimits,
    recorded: usize,
    /// The clock of the last event recorded.
    last_clock: u64,
    cut: Option<TraceCut>,
    /// Events dropped by the limits.
    dropped: u64,
    last_wait: Option<WaitReason>,
    queue: VecDeque<TraceEvent>,
}

impl Tracer {
    /// A recorder for `peer`.
    pub fn new(peer: MemberId, limits: TraceLimits) -> Tracer {
        Tracer {
            peer,
            limits,
            recorded: 0,
            last_clock: 0,
            cut: None,
            dropped: 0,
            last_wait: None,
            queue: VecDeque::new(),
        }
    }

    /// Records an event (if the limits allow it).
    pub fn record(&mut self, at: Time, clock: u64, vector: Option<Vec<u64>>, kind: TraceKind) {
        if self.recorded >= self.limits.full_events && self.cut.is_none() {
            // Every record this peer had seen so far is stamped at or below
            // the clock it had after its last recorded event.
            self.cut = Some(TraceCut {
                at,
                stamps_up_to: self.last_clock,
            });
        }
        if let Some(cut) = self.cut
            && (kind.msg().stamp > cut.stamps_up_to || self.recorded >= self.limits.max_events)
        {
            self.dropped += 1;
            return;
        }
        self.recorded += 1;
        self.last_clock = clock;
        self.queue.push_back(TraceEvent {
            peer: self.peer,
            at,
            clock,
            vector,
            kind,
        });
    }

    /// Records a `wait` if `now` differs from what the head waited for last.
    /// `None` (nothing waits, or the queue is empty) records nothing, but a
    /// later wait for the same thing is then recorded again.
    pub fn waiting(
        &mut self,
        at: Time,
        clock: u64,
        vector: Option<Vec<u64>>,
        now: Option<WaitReason>,
    ) {
        if now == self.last_wait {
            return;
        }
        self.last_wait = now.clone();
        if let Some(w) = now {
            self.record(at, clock, vector, TraceKind::Wait(w));
        }
    }

    /// The next recorded event.
    pub fn pop(&mut self) -> Option<TraceEvent> {
        self.queue.pop_front()
    }

    /// Where the full part of the trace ended, if it did.
    pub fn cut(&self) -> Option<TraceCut> {
        self.cut
    }

    /// Events not recorded because of the limits.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(feature = "serde")]
pub use line::TraceLine;

#[cfg(feature = "serde")]
mod line {
    use serde::{Deserialize, Serialize};

    use super::{MsgKind, TraceEvent, TraceKind};
    use crate::wire::MemberId;

    /// One line of `trace.jsonl`: a [`TraceEvent`] as JSON. See
    /// `docs/trace.md` for the file.
    ///
    /// ```text
    /// {"peer":1,"t_us":41230,"event":"wait","sender":0,"seq":3,"stamp":7,"clock":9,"waiting_for":[2,3],"cause":"acks","why":"0:3 (stamp 7) waits for 2 and 3: …"}
    /// ```
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct TraceLine {
        /// The member it happened at.
        pub peer: MemberId,
        /// When, in µs (since the start of the run for a simulation; on the
        /// peer's wall clock for a real run).
        pub t_us: u64,
        /// `send`, `arrive`, `wait` or `deliver` (`view` is reserved).
        pub event: String,
        /// The record's sender (for a wait: the head's).
        pub sender: MemberId,
        /// Its sequence number (see [`super::MsgRef::seq`]).
        pub seq: u64,
        /// `eos` or `control`; absent for data.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub kind: Option<String>,
        /// Its Lamport stamp.
        pub stamp: u64,
        /// The peer's Lamport clock just after the event.
        pub clock: u64,
        /// The peer's vector clock, for orders that keep one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub vc: Option<Vec<u64>>,
        /// For a wait: the members the head waits for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub waiting_for: Option<Vec<MemberId>>,
        /// For a wait: `acks`, `gap`, `predecessor` or `decision`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub cause: Option<String>,
        /// For a wait: the reason in one sentence.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub why: Option<String>,
    }

    impl TraceLine {
        /// The line of `ev`, with times counted from `origin_us` µs.
        pub fn of(ev: &TraceEvent, origin_us: u64) -> TraceLine {
            let m = ev.kind.msg();
            let wait = match &ev.kind {
                TraceKind::Wait(w) => Some(w),
                _ => None,
            };
            TraceLine {
                peer: ev.peer,
                t_us: ev.at.as_micros().saturating_add(origin_us),
                event: ev.kind.as_str().to_string(),
                sender: m.sender,
                seq: m.seq,
                kind: match m.kind {
                    MsgKind::Data => None,
                    k => Some(k.as_str().to_string()),
                },
                stamp: m.stamp,
                clock: ev.clock,
                vc: ev.vector.clone(),
                waiting_for: wait.map(|w| w.waiting_for.clone()),
                cause: wait.map(|w| w.cause.as_str().to_string()),
                why: wait.map(|w| w.sentence()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(sender: MemberId, seq: u64, stamp: u64) -> MsgRef {
        MsgRef {
            sender,
            seq,
            stamp,
            kind: MsgKind::Data,
        }
    }

    #[test]
    fn sentences_name_the_head_and_the_members() {
        let w = WaitReason {
            head: msg(0, 3, 7),
            waiting_for: vec![2, 3],
            cause: WaitCause::Acknowledgements,
        };
        let s = w.sentence();
        assert!(s.starts_with("0:3 (stamp 7) waits for 2 and 3:"), "{s}");
        let w = WaitReason {
            head: msg(1, 5, 9),
            waiting_for: vec![1],
            cause: WaitCause::Predecessor { sender: 1, seq: 4 },
        };
        assert!(
            w.sentence()
                .contains("waits for 1:4 (its causal predecessor)")
        );
        let w = WaitReason {
            head: msg(1, 5, 9),
            waiting_for: vec![0],
            cause: WaitCause::Decision { sequencer: 0 },
        };
        assert!(w.sentence().contains("the sequencer's decision"));
        assert_eq!(list(&[1, 2, 3]), "1, 2 and 3");
    }

    #[test]
    fn limits_keep_the_records_already_known_to_their_end() {
        let mut t = Tracer::new(
            0,
            TraceLimits {
                full_events: 2,
                max_events: 4,
            },
        );
        let at = Time::ZERO;
        t.record(at, 1, None, TraceKind::Send(msg(0, 0, 1)));
        t.record(at, 5, None, TraceKind::Arrive(msg(1, 0, 4)));
        // Full: the clock is 5, so only records stamped up to 5 go on.
        t.record(at, 6, None, TraceKind::Arrive(msg(2, 0, 6)));
        t.record(at, 6, None, TraceKind::Deliver(msg(0, 0, 1)));
        t.record(at, 6, None, TraceKind::Deliver(msg(1, 0, 4)));
        t.record(at, 6, None, TraceKind::Deliver(msg(1, 0, 4))); // over max
        assert_eq!(
            t.cut(),
            Some(TraceCut {
                at,
                stamps_up_to: 5
            })
        );
        let kept: Vec<_> = std::iter::from_fn(|| t.pop()).map(|e| e.kind).collect();
        assert_eq!(kept.len(), 4);
        assert_eq!(t.dropped(), 2);
        assert!(!kept.contains(&TraceKind::Arrive(msg(2, 0, 6))));
    }

    #[test]
    fn a_wait_is_recorded_when_it_changes() {
        let mut t = Tracer::new(0, TraceLimits::default());
        let w = |who: Vec<MemberId>| {
            Some(WaitReason {
                head: msg(1, 0, 3),
                waiting_for: who,
                cause: WaitCause::Acknowledgements,
            })
        };
        t.waiting(Time::ZERO, 4, None, w(vec![2, 3]));
        t.waiting(Time::ZERO, 4, None, w(vec![2, 3]));
        t.waiting(Time::ZERO, 5, None, w(vec![3]));
        t.waiting(Time::ZERO, 5, None, None);
        t.waiting(Time::ZERO, 5, None, w(vec![3]));
        assert_eq!(std::iter::from_fn(|| t.pop()).count(), 3);
    }
}
