//! Reliable FIFO links over a network that loses, duplicates and reorders.
//!
//! Lamport's total-order algorithm (and FIFO order, trivially) assumes that
//! between any two processes messages arrive *exactly once and in the order
//! they were sent*. UDP promises none of that. This module builds such links,
//! the way TCP does, but for one-to-many streams and without connections:
//!
//! * **Sequence numbers.** Each member has one outgoing *stream* of records,
//!   numbered from 0 (`link_seq`). Every record goes to every other member,
//!   so the stream's numbering is also the numbering on each
//!   sender→receiver link.
//! * **Acknowledgements.** A receiver tells the sender the length of the
//!   prefix it holds without gaps (the *cumulative* ack, `cum`) and which
//!   records past that prefix it also holds (the *selective* ack, a bitmap).
//! * **Retransmission.** The sender keeps each record until every member has
//!   acknowledged it. A record that stays unacknowledged for a *retransmission
//!   timeout* (RTO) is sent again; the RTO adapts to the measured round-trip
//!   time (RFC 6298: smoothed RTT plus four deviations) and doubles after each
//!   timeout that passes without progress — but never beyond a cap
//!   (`max_rto`, 2 s by default): the doubling protects a congested network,
//!   the cap keeps a lossy one from waiting minutes between two attempts.
//!   When a selective ack shows later records arriving while an earlier one
//!   is missing, the gap is resent at once ("fast retransmit") instead of
//!   waiting for the timer.
//! * **Negative acknowledgements.** A receiver that knows it misses records
//!   (it holds later ones, or the sender told it how many it sent) says so: an
//!   ACK with the NAK flag. The sender resends what that ACK does not cover
//!   at once — at most once per half round trip per receiver, so that a
//!   burst of reports does not become a burst of resends.
//! * **Duplicates and reordering.** The receiver releases records strictly in
//!   sequence order; a record it already holds is dropped (and re-acked, in
//!   case our earlier ack was the thing that got lost); a record that arrives
//!   early waits in a small reorder buffer until the gap before it is filled.
//! * **Flow control.** The sender may have at most `window` records that some
//!   member has not acknowledged yet, and at most `window` records that some
//!   member has not yet *delivered* (each ACK also says how many of our
//!   records its sender has delivered to its application). When either is
//!   full, new messages are refused ([`SendStream::can_push`] is false) and
//!   the application must wait — *backpressure* — instead of memory growing
//!   without bound: at the sender (its retransmission buffer) and at every
//!   receiver (what it holds back, undelivered, from this sender). The
//!   receiver, in turn, only buffers records within one window of what it has
//!   released, so a bogus sequence number cannot make it buffer without bound.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use crate::time::Time;
use crate::wire::{DatagramWriter, MemberId, Record, Sack};

/// After a timeout, at most this many records are resent to one member at
/// once: enough to repair a burst of losses, few enough not to flood a link
/// that is down.
const RTX_BURST: usize = 32;
/// A hole is fast-retransmitted once this many later records are known to
/// have arrived (cf. TCP's three duplicate acks): a little reordering is
/// normal and should not cause needless resends.
const FAST_RTX_THRESHOLD: u64 = 3;
/// Largest factor by which repeated timeouts stretch the RTO (the stretched
/// RTO is also capped at the estimator's maximum).
const MAX_BACKOFF: u32 = 64;

/// Round-trip time estimator and retransmission timeout (RFC 6298).
#[derive(Clone, Debug)]
pub struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    initial: Duration,
    min: Duration,
    max: Duration,
}

impl RttEstimator {
    /// An estimator that answers `initial` until it has a first sample, and
    /// keeps its RTO within `min..=max`.
    pub fn new(initial: Duration, min: Duration, max: Duration) -> RttEstimator {
        RttEstimator {
            srtt: None,
            rttvar: Duration::ZERO,
            initial,
            min,
            max,
        }
    }

    /// Feeds one round-trip measurement.
    pub fn sample(&mut self, rtt: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                // rttvar = 3/4 rttvar + 1/4 |srtt - rtt|; srtt = 7/8 srtt + 1/8 rtt
                let diff = srtt.abs_diff(rtt);
                self.rttvar = (self.rttvar * 3 + diff) / 4;
                self.srtt = Some((srtt * 7 + rtt) / 8);
            }
        }
    }

    /// The smoothed round-trip time, once measured.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// The current retransmission timeout.
    pub fn rto(&self) -> Duration {
        match self.srtt {
            None => self.initial.min(self.max),
            Some(srtt) => (srtt + 4 * self.rttvar).clamp(self.min, self.max),
        }
    }

    /// The RTO stretched by `backoff` after timeouts without progress, but
    /// never beyond the maximum: the longest any repair waits.
    pub fn backed_off(&self, backoff: u32) -> Duration {
        self.rto().saturating_mul(backoff).min(self.max)
    }

    /// The largest RTO: the cap on every backed-off wait.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// How often a report of the same loss may trigger a resend: half a
    /// round trip (the RTO before any measurement), at least the minimum
    /// RTO. A receiver reports again no sooner than a round trip later, so
    /// this lets every genuine report through and folds duplicates.
    pub fn repair_spacing(&self) -> Duration {
        match self.srtt {
            None => self.rto(),
            Some(srtt) => (srtt / 2).max(self.min),
        }
    }
}

/// A record kept for retransmission.
#[derive(Debug)]
struct Outgoing {
    rec: Record,
    /// When it was first transmitted (to anyone); for RTT samples.
    first_sent: Option<Time>,
    /// Whether it was ever resent: such records give no RTT sample, since we
    /// could not tell which transmission an ack answers (Karn's rule).
    retransmitted: bool,
}

/// What the sender knows about one receiver.
#[derive(Debug)]
struct SendLink {
    /// The receiver holds every record below this (cumulative ack).
    acked: u64,
    /// Its latest selective ack, relative to `acked`.
    sack: Sack,
    /// The next record never yet sent to this receiver.
    next_new: u64,
    /// Records to resend, oldest first (may hold stale entries; skipped).
    rtx: VecDeque<u64>,
    /// Holes below this were already fast-retransmitted.
    fast_mark: u64,
    rtt: RttEstimator,
    /// When to resend if no ack progress happens first.
    rtx_deadline: Option<Time>,
    backoff: u32,
    /// How many of our records the receiver has delivered (or consumed);
    /// flow control keeps us within one window of it.
    flow: u64,
    /// When a NAK last made us resend to this receiver.
    last_nak_repair: Option<Time>,
    /// Whether this member is one we send to and wait for: a member of the
    /// current view. An excluded member's acknowledgements are no longer
    /// waited for, and nothing more is sent to it.
    active: bool,
}

impl SendLink {
    fn is_sacked(&self, seq: u64) -> bool {
        seq > self.acked && self.sack.get(seq - self.acked - 1)
    }

    fn outstanding(&self) -> bool {
        self.acked < self.next_new
    }

    fn current_rto(&self) -> Duration {
        self.rtt.backed_off(self.backoff)
    }

    /// Queues for resending the records from `acked` on that the receiver's
    /// latest selective ack does not cover (at most `limit` of them).
    fn queue_unsacked(&mut self, next_seq: u64, limit: usize) {
        self.rtx.clear();
        let mut seq = self.acked;
        while seq < self.next_new.min(next_seq) && self.rtx.len() < limit {
            if !self.is_sacked(seq) {
                self.rtx.push_back(seq);
            }
            seq += 1;
        }
        self.fast_mark = self.fast_mark.max(seq);
    }
}

/// What an ACK frame tells the sender of a stream about one receiver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AckInfo {
    /// The receiver holds every record below this.
    pub cum: u64,
    /// Which records past `cum` it also holds.
    pub sack: Sack,
    /// How many records of the stream it has delivered or consumed.
    pub flow: u64,
    /// It reports missing records and asks for them now (NAK).
    pub nak: bool,
}

/// Why an acknowledgement was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckError {
    /// It acknowledges records we never sent to that member.
    AcksUnsent {
        /// The claimed cumulative ack.
        cum: u64,
        /// What we had actually sent.
        sent: u64,
    },
    /// It claims to have delivered records we never put in the stream.
    DeliveredUnsent {
        /// The claimed delivered count.
        flow: u64,
        /// Records in the stream.
        next_seq: u64,
    },
}

/// What [`SendStream::fill`] wrote into a datagram.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FillCount {
    /// Records sent for the first time to that member.
    pub new: usize,
    /// Records resent.
    pub retransmitted: usize,
}

/// One member's outgoing stream: the records it multicast, kept until every
/// other member acknowledged them, and per-receiver link state.
#[derive(Debug)]
pub struct SendStream {
    me: MemberId,
    /// `link_seq` of `buf[0]`.
    base: u64,
    buf: VecDeque<Outgoing>,
    window: usize,
    links: Vec<SendLink>,
}

impl SendStream {
    /// A stream for member `me` of a group of `members`, with at most `window`
    /// unacknowledged records and the given RTO bounds.
    pub fn new(me: MemberId, members: usize, window: usize, rtt: &RttEstimator) -> SendStream {
        let links = (0..members)
            .map(|_| SendLink {
                acked: 0,
                sack: Sack::empty(),
                next_new: 0,
                rtx: VecDeque::new(),
                fast_mark: 0,
                rtt: rtt.clone(),
                rtx_deadline: None,
                backoff: 1,
                flow: 0,
                last_nak_repair: None,
                active: true,
            })
            .collect();
        SendStream {
            me,
            base: 0,
            buf: VecDeque::with_capacity(window.min(4096)),
            window,
            links,
        }
    }

    /// The `link_seq` the next record will get (= records put in so far).
    pub fn next_seq(&self) -> u64 {
        self.base + self.buf.len() as u64
    }

    /// Whether the window has room for another record: fewer than `window`
    /// records await an acknowledgement, and fewer than `window` records
    /// are undelivered at the slowest receiver.
    pub fn can_push(&self) -> bool {
        self.buf.len() < self.window && self.next_seq() - self.min_flow() < self.window as u64
    }

    /// The fewest records any member — ourselves included, since our own
    /// records wait in our own hold-back queue too — has delivered.
    fn min_flow(&self) -> u64 {
        self.links
            .iter()
            .filter(|l| l.active)
            .map(|l| l.flow)
            .min()
            .unwrap_or_else(|| self.next_seq())
    }

    /// Stops sending to member `k` and waiting for it (it left the view, or
    /// was never in it): its acknowledgements no longer hold records back.
    pub fn deactivate(&mut self, k: MemberId) {
        if let Some(l) = self.links.get_mut(usize::from(k)) {
            l.active = false;
            l.rtx.clear();
            l.rtx_deadline = None;
        }
        self.release_acked();
    }

    /// A record of our stream, if we still hold it (for relaying).
    pub fn get(&self, link_seq: u64) -> Option<&Record> {
        let i = link_seq.checked_sub(self.base)?;
        self.buf.get(usize::try_from(i).ok()?).map(|o| &o.rec)
    }

    /// Records how many of our own records we have delivered ourselves (or
    /// consumed): our own deliveries count for flow control like anyone's.
    pub fn set_own_flow(&mut self, delivered: u64) {
        let me = usize::from(self.me);
        if let Some(l) = self.links.get_mut(me) {
            l.flow = l.flow.max(delivered.min(self.base + self.buf.len() as u64));
        }
    }

    /// Every member holds every record below this (they have all
    /// acknowledged it): the stream's *stable* prefix.
    pub fn stable(&self) -> u64 {
        self.base
    }

    /// Whether `to` has acknowledged every record of the stream.
    pub fn all_acked_by(&self, to: MemberId) -> bool {
        self.links
            .get(usize::from(to))
            .is_none_or(|l| !l.active || l.acked >= self.next_seq())
    }

    /// Records held because some member has not acknowledged them.
    pub fn in_flight(&self) -> usize {
        self.buf.len()
    }

    /// Appends a record; its `link_seq` must be [`SendStream::next_seq`].
    /// The caller checks [`SendStream::can_push`] first.
    pub fn push(&mut self, rec: Record) {
        debug_assert_eq!(rec.link_seq, self.next_seq());
        self.buf.push_back(Outgoing {
            rec,
            first_sent: None,
            retransmitted: false,
        });
        self.release_acked(); // alone in the group: nobody to wait for
    }

    /// Whether anything (new or resent) is waiting to go to `to`.
    pub fn has_pending(&self, to: MemberId) -> bool {
        let l = &self.links[usize::from(to)];
        l.active && (l.next_new < self.next_seq() || !l.rtx.is_empty())
    }

    /// Whether `to` has yet to acknowledge something we sent it.
    pub fn outstanding(&self, to: MemberId) -> bool {
        let l = &self.links[usize::from(to)];
        l.active && l.outstanding()
    }

    /// Whether every record has been acknowledged by every member.
    pub fn all_acked(&self) -> bool {
        self.buf.is_empty()
    }

    /// The current retransmission timeout towards `to`.
    pub fn rto(&self, to: MemberId) -> Duration {
        self.links[usize::from(to)].rtt.rto()
    }

    /// The round-trip estimator towards `to`.
    pub fn rtt(&self, to: MemberId) -> &RttEstimator {
        &self.links[usize::from(to)].rtt
    }

    /// How soon after one report of a loss by `to` another may trigger a
    /// resend (see [`RttEstimator::repair_spacing`]). A receiver uses the
    /// same spacing before it reports a loss in `to`'s stream: its round
    /// trip to `to` is measured with its own records; until then, the
    /// quickest round trip it has measured to anyone stands in.
    pub fn repair_spacing(&self, to: MemberId) -> Duration {
        let own = &self.links[usize::from(to)].rtt;
        if own.srtt().is_some() {
            return own.repair_spacing();
        }
        self.links
            .iter()
            .filter(|l| l.rtt.srtt().is_some())
            .map(|l| l.rtt.repair_spacing())
            .min()
            .unwrap_or_else(|| own.repair_spacing())
    }

    /// The smoothed round-trip time towards `to`, once measured.
    pub fn srtt(&self, to: MemberId) -> Option<Duration> {
        self.links[usize::from(to)].rtt.srtt()
    }

    /// Writes records for `to` into `w`: resends first, then new records,
    /// as many as fit.
    pub fn fill(&mut self, to: MemberId, w: &mut DatagramWriter<'_>, now: Time) -> FillCount {
        let next_seq = self.next_seq();
        let base = self.base;
        let link = &mut self.links[usize::from(to)];
        let mut count = FillCount::default();
        while let Some(&seq) = link.rtx.front() {
            if seq < link.acked || seq >= link.next_new || link.is_sacked(seq) {
                link.rtx.pop_front(); // stale: acked since it was queued
                continue;
            }
            let Some(out) = self.buf.get_mut((seq - base) as usize) else {
                link.rtx.pop_front();
                continue;
            };
            if !w.push_record(&out.rec) {
                return count;
            }
            out.retransmitted = true;
            link.rtx.pop_front();
            count.retransmitted += 1;
        }
        while link.next_new < next_seq {
            let Some(out) = self.buf.get_mut((link.next_new - base) as usize) else {
                break;
            };
            if !w.push_record(&out.rec) {
                break;
            }
            out.first_sent.get_or_insert(now);
            if link.rtx_deadline.is_none() {
                link.rtx_deadline = Some(now + link.current_rto());
            }
            link.next_new += 1;
            count.new += 1;
        }
        count
    }

    /// Applies an acknowledgement from `from`.
    pub fn on_ack(&mut self, from: MemberId, ack: AckInfo, now: Time) -> Result<(), AckError> {
        let next_seq = self.next_seq();
        let Some(link) = self.links.get_mut(usize::from(from)) else {
            return Ok(());
        };
        let AckInfo {
            cum,
            sack,
            flow,
            nak,
        } = ack;
        if cum > link.next_new {
            return Err(AckError::AcksUnsent {
                cum,
                sent: link.next_new,
            });
        }
        if flow > next_seq {
            return Err(AckError::DeliveredUnsent { flow, next_seq });
        }
        link.flow = link.flow.max(flow);
        if cum < link.acked {
            return Ok(()); // an old ack, overtaken by a newer one
        }
        if cum > link.acked {
            // Progress. The newest record it covers gives an RTT sample,
            // unless that record was ever resent (Karn's rule).
            if let Some(out) = self.buf.get((cum - 1 - self.base) as usize)
                && !out.retransmitted
                && let Some(sent) = out.first_sent
            {
                link.rtt.sample(now.saturating_since(sent));
            }
            link.acked = cum;
            link.backoff = 1;
            link.fast_mark = link.fast_mark.max(cum);
            link.rtx_deadline = link.outstanding().then(|| now + link.current_rto());
        }
        link.sack = sack;
        if nak
            && link.outstanding()
            && link
                .last_nak_repair
                .is_none_or(|t| now.saturating_since(t) >= link.rtt.repair_spacing())
        {
            // The receiver says what it misses: resend it now rather than
            // when our timer fires, which after a few losses may be far off.
            link.queue_unsacked(next_seq, RTX_BURST);
            link.last_nak_repair = Some(now);
        } else if let Some(high) = sack.highest() {
            // Fast retransmit: holes with enough later records acknowledged.
            let highest_seq = cum + 1 + high;
            let limit = highest_seq
                .saturating_sub(FAST_RTX_THRESHOLD - 1)
                .min(link.next_new);
            let mut seq = link.fast_mark.max(cum);
            while seq < limit && link.rtx.len() < 4 * RTX_BURST {
                if !link.is_sacked(seq) {
                    link.rtx.push_back(seq);
                }
                seq += 1;
            }
            link.fast_mark = link.fast_mark.max(seq);
        }
        self.release_acked();
        Ok(())
    }

    /// Frees records that every other member has acknowledged.
    fn release_acked(&mut self) {
        let me = usize::from(self.me);
        let min_acked = self
            .links
            .iter()
            .enumerate()
            .filter(|(i, l)| *i != me && l.active)
            .map(|(_, l)| l.acked)
            .min()
            .unwrap_or(u64::MAX)
            .min(self.next_seq());
        while self.base < min_acked {
            self.buf.pop_front();
            self.base += 1;
        }
    }

    /// Fires retransmission timers that are due.
    pub fn on_timeout(&mut self, now: Time) {
        let next_seq = self.next_seq();
        for link in self.links.iter_mut().filter(|l| l.active) {
            let Some(deadline) = link.rtx_deadline else {
                continue;
            };
            if deadline > now {
                continue;
            }
            if !link.outstanding() {
                link.rtx_deadline = None;
                continue;
            }
            link.queue_unsacked(next_seq, RTX_BURST);
            link.fast_mark = link.acked;
            link.backoff = (link.backoff * 2).min(MAX_BACKOFF);
            link.rtx_deadline = Some(now + link.current_rto());
        }
    }

    /// The earliest pending retransmission timer.
    pub fn next_deadline(&self) -> Option<Time> {
        self.links
            .iter()
            .filter(|l| l.active)
            .filter_map(|l| l.rtx_deadline)
            .min()
    }
}

/// What became of a record offered to a [`RecvStream`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// Not seen before and within the window.
    New,
    /// Already held or released.
    Duplicate,
    /// Too far ahead of what has been released to be genuine.
    OutOfWindow,
}

/// What a receiver knows about one sender's stream.
///
/// Besides reordering, a receiver *retains* the records it released until
/// the sender says every member holds them (the ACK's `stable` field): if
/// the sender crashes, the survivors relay to each other what some of them
/// lack (see `crate::membership`), so a record must outlive its delivery
/// until it is known to be everywhere.
#[derive(Debug)]
pub struct RecvStream {
    /// Every record below this has been released in order.
    next: u64,
    /// Records that arrived ahead of a gap.
    early: BTreeMap<u64, Record>,
    window: u64,
    /// A clock bound from an ACK that is valid once `next >= sent`:
    /// `(sent, clock)`.
    pending_bound: Option<(u64, u64)>,
    /// Released records not yet known to be held by everyone, from
    /// `retained_base` on.
    retained: VecDeque<Record>,
    retained_base: u64,
}

impl RecvStream {
    /// A receiver that buffers at most `window` records past its in-order
    /// prefix.
    pub fn new(window: usize) -> RecvStream {
        RecvStream {
            next: 0,
            early: BTreeMap::new(),
            window: window as u64,
            pending_bound: None,
            retained: VecDeque::new(),
            retained_base: 0,
        }
    }

    /// Frees retained records below `stable`: every member holds them.
    pub fn trim(&mut self, stable: u64) {
        let stable = stable.min(self.next);
        while self.retained_base < stable && self.retained.pop_front().is_some() {
            self.retained_base += 1;
        }
        self.retained_base = self.retained_base.max(stable);
    }

    /// A record we hold (released and retained, or early), for relaying.
    pub fn get(&self, link_seq: u64) -> Option<&Record> {
        if link_seq >= self.next {
            return self.early.get(&link_seq);
        }
        let i = link_seq.checked_sub(self.retained_base)?;
        self.retained.get(usize::try_from(i).ok()?)
    }

    /// Records retained for relaying (released, not yet stable).
    pub fn retained_len(&self) -> usize {
        self.retained.len()
    }

    /// Record numbers held past the in-order prefix (`released()`), in
    /// increasing order.
    pub fn early_seqs(&self) -> impl Iterator<Item = u64> + '_ {
        self.early.keys().copied()
    }

    /// Drops the records held past `end` that wait behind a gap: they will
    /// never be released (their sender left, and the view change decided
    /// that nobody delivers them).
    pub fn drop_early_from(&mut self, end: u64) {
        let _ = self.early.split_off(&end);
    }

    /// Records released in order so far.
    pub fn released(&self) -> u64 {
        self.next
    }

    /// Records waiting behind a gap.
    pub fn early_len(&self) -> usize {
        self.early.len()
    }

    /// The first record waiting behind a gap (the gap is at
    /// [`RecvStream::released`]).
    pub fn first_early(&self) -> Option<&Record> {
        self.early.first_key_value().map(|(_, r)| r)
    }

    /// Classifies a record by its sequence number, without storing it.
    pub fn classify(&self, link_seq: u64) -> Arrival {
        if link_seq < self.next || self.early.contains_key(&link_seq) {
            Arrival::Duplicate
        } else if link_seq - self.next >= self.window {
            Arrival::OutOfWindow
        } else {
            Arrival::New
        }
    }

    /// The position of the next record to release in order.
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// Stores a record that [`RecvStream::classify`] called new and pushes
    /// every record that is now in order onto `released`.
    pub fn insert(&mut self, rec: Record, released: &mut Vec<Record>) {
        if rec.link_seq != self.next {
            self.early.insert(rec.link_seq, rec);
            return;
        }
        self.retain(&rec);
        released.push(rec);
        self.next += 1;
        while let Some(entry) = self.early.first_entry() {
            if *entry.key() != self.next {
                break;
            }
            let rec = entry.remove();
            self.retain(&rec);
            released.push(rec);
            self.next += 1;
        }
    }

    fn retain(&mut self, rec: &Record) {
        if self.retained.is_empty() {
            self.retained_base = rec.link_seq;
        }
        // Cloning a record only bumps the reference counts of its buffers.
        self.retained.push_back(rec.clone());
    }

    /// The cumulative and selective acknowledgement of this stream.
    pub fn ack(&self) -> (u64, Sack) {
        let mut sack = Sack::empty();
        for &seq in self
            .early
            .range(self.next + 1..self.next + 1 + Sack::SPAN)
            .map(|(k, _)| k)
        {
            sack.set(seq - self.next - 1);
        }
        (self.next, sack)
    }

    /// Records an ACK's `(sent, clock)` claim: "every record I put in my
    /// stream from position `sent` on is stamped above `clock`". It tells us
    /// something only once we hold the first `sent` records; returns the
    /// clock if that is already so, and otherwise keeps it for
    /// [`RecvStream::take_ready_bound`].
    pub fn bound_from_ack(&mut self, sent: u64, clock: u64) -> Option<u64> {
        if sent <= self.next {
            return Some(clock);
        }
        // Keep only the newest pending claim: it implies the older ones.
        if self.pending_bound.is_none_or(|(s, _)| sent >= s) {
            self.pending_bound = Some((sent, clock));
        }
        None
    }

    /// A pending ACK claim that has become valid after records were released.
    pub fn take_ready_bound(&mut self) -> Option<u64> {
        match self.pending_bound {
            Some((sent, clock)) if sent <= self.next => {
                self.pending_bound = None;
                Some(clock)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Datagram, Frame, Header, MAX_DATAGRAM, RecordKind};
    use bytes::Bytes;

    fn rec(seq: u64) -> Record {
        Record {
            sender: 0,
            link_seq: seq,
            kind: RecordKind::Data { seq },
            stamp: seq + 1,
            ext: Bytes::new(),
            payload: Bytes::from_static(b"hello"),
        }
    }

    /// An ACK that also reports every acknowledged record delivered.
    fn ack(cum: u64, sack: Sack) -> AckInfo {
        AckInfo {
            cum,
            sack,
            flow: cum,
            nak: false,
        }
    }

    fn rtt() -> RttEstimator {
        RttEstimator::new(
            Duration::from_millis(100),
            Duration::from_millis(1),
            Duration::from_secs(1),
        )
    }

    /// Sends whatever `s` has for `to` and returns the record numbers written.
    fn drain(s: &mut SendStream, to: MemberId, now: Time) -> Vec<u64> {
        let mut buf = [0u8; MAX_DATAGRAM];
        let mut w = DatagramWriter::new(
            &mut buf,
            Header {
                run_id: 1,
                from: 0,
                to,
                incarnation: 1,
                view: 1,
            },
        )
        .unwrap();
        s.fill(to, &mut w, now);
        let len = w.finish();
        if len == crate::wire::HEADER_LEN {
            return vec![];
        }
        let d = Datagram::parse(Bytes::copy_from_slice(&buf[..len])).unwrap();
        d.frames()
            .filter_map(|f| match f {
                Frame::Record(r) => Some(r.link_seq),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn rto_follows_rfc6298() {
        let mut r = rtt();
        assert_eq!(r.rto(), Duration::from_millis(100));
        r.sample(Duration::from_millis(10));
        // srtt 10, rttvar 5 -> 10 + 20
        assert_eq!(r.rto(), Duration::from_millis(30));
        r.sample(Duration::from_millis(10));
        // rttvar = (15 + 0) / 4 = 3.75 -> 10 + 15
        assert_eq!(r.rto(), Duration::from_micros(25_000));
    }

    #[test]
    fn window_backpressure_and_release() {
        let mut s = SendStream::new(0, 3, 2, &rtt());
        s.push(rec(0));
        s.push(rec(1));
        s.set_own_flow(2); // we delivered our own two records at once
        assert!(!s.can_push(), "window of two is full");
        let t = Time::from_millis(1);
        assert_eq!(drain(&mut s, 1, t), vec![0, 1]);
        assert_eq!(drain(&mut s, 2, t), vec![0, 1]);
        s.on_ack(1, ack(2, Sack::empty()), t).unwrap();
        assert!(!s.can_push(), "member 2 has not acked: records are kept");
        s.on_ack(2, ack(1, Sack::empty()), t).unwrap();
        assert!(s.can_push(), "record 0 is freed once everyone has it");
        assert_eq!(s.in_flight(), 1);
        assert_eq!(
            s.on_ack(2, ack(5, Sack::empty()), t),
            Err(AckError::AcksUnsent { cum: 5, sent: 2 }),
            "acking what was never sent is refused"
        );
    }

    /// Acknowledged is not delivered: a receiver that holds our records but
    /// cannot deliver them yet (its hold-back queue waits) keeps our window
    /// closed, so what it holds undelivered stays within one window.
    #[test]
    fn the_window_counts_deliveries_too() {
        let mut s = SendStream::new(0, 2, 2, &rtt());
        s.push(rec(0));
        s.push(rec(1));
        s.set_own_flow(2);
        let t = Time::from_millis(1);
        drain(&mut s, 1, t);
        let held_not_delivered = AckInfo {
            cum: 2,
            sack: Sack::empty(),
            flow: 0,
            nak: false,
        };
        s.on_ack(1, held_not_delivered, t).unwrap();
        assert!(s.all_acked(), "member 1 holds both records");
        assert!(!s.can_push(), "but has delivered neither");
        s.on_ack(
            1,
            AckInfo {
                flow: 1,
                ..held_not_delivered
            },
            t,
        )
        .unwrap();
        assert!(s.can_push(), "one delivered: room for one more");
        assert_eq!(
            s.on_ack(
                1,
                AckInfo {
                    flow: 3,
                    ..held_not_delivered
                },
                t
            ),
            Err(AckError::DeliveredUnsent {
                flow: 3,
                next_seq: 2
            }),
            "delivering what was never sent is refused"
        );
    }

    /// Repeated timeouts double the wait, but never beyond the cap: before,
    /// the cap applied to the RTO *before* the doubling, and resends ended
    /// up 128 s apart.
    #[test]
    fn backed_off_waits_never_exceed_the_cap() {
        let max = Duration::from_secs(2);
        let mut s = SendStream::new(
            0,
            2,
            64,
            &RttEstimator::new(Duration::from_millis(500), Duration::from_millis(5), max),
        );
        s.push(rec(0));
        s.set_own_flow(1);
        let mut now = Time::ZERO;
        drain(&mut s, 1, now);
        for attempt in 0..20 {
            let due = s.next_deadline().expect("record 0 is unacknowledged");
            let wait = due.saturating_since(now);
            assert!(wait <= max, "attempt {attempt} waited {wait:?}");
            now = due;
            s.on_timeout(now);
            assert_eq!(drain(&mut s, 1, now), vec![0], "attempt {attempt} resends");
        }
    }

    /// A receiver's NAK makes the sender resend what the receiver misses at
    /// once, not when its (possibly far-off) timer fires; reports that come
    /// in a burst cause one resend, not one each.
    #[test]
    fn a_nak_is_answered_with_the_missing_records_at_once() {
        let mut s = SendStream::new(0, 2, 64, &rtt());
        for i in 0..4 {
            s.push(rec(i));
        }
        s.set_own_flow(4);
        let t0 = Time::ZERO;
        assert_eq!(drain(&mut s, 1, t0), vec![0, 1, 2, 3]);
        // Member 1 holds 0 and 3: 1 and 2 were lost. Its plain ACK shows the
        // gap but is not enough for fast retransmit.
        let mut sack = Sack::empty();
        sack.set(1); // record 3 = cum(1) + 1 + 1
        let t1 = Time::from_millis(10);
        let plain = AckInfo {
            cum: 1,
            sack,
            flow: 1,
            nak: false,
        };
        s.on_ack(1, plain, t1).unwrap();
        assert_eq!(drain(&mut s, 1, t1), Vec::<u64>::new(), "no resend yet");
        let nak = AckInfo { nak: true, ..plain };
        s.on_ack(1, nak, t1).unwrap();
        assert_eq!(
            drain(&mut s, 1, t1),
            vec![1, 2],
            "the NAK brings 1 and 2 back"
        );
        s.on_ack(1, nak, t1).unwrap();
        assert_eq!(
            drain(&mut s, 1, t1),
            Vec::<u64>::new(),
            "a second report at once is folded into the first"
        );
        let later = t1 + s.repair_spacing(1);
        s.on_ack(1, nak, later).unwrap();
        assert_eq!(
            drain(&mut s, 1, later),
            vec![1, 2],
            "a later report is answered"
        );
    }

    #[test]
    fn timeout_resends_only_what_is_missing_and_backs_off() {
        let mut s = SendStream::new(0, 2, 64, &rtt());
        for i in 0..5 {
            s.push(rec(i));
        }
        s.set_own_flow(5);
        let t0 = Time::ZERO;
        assert_eq!(drain(&mut s, 1, t0), vec![0, 1, 2, 3, 4]);
        // Member 1 got 0, 3 and 4.
        let mut sack = Sack::empty();
        sack.set(1); // record 3 = cum(1) + 1 + 1
        sack.set(2);
        s.on_ack(1, ack(1, sack), Time::from_millis(5)).unwrap();
        assert!(
            s.has_pending(1),
            "hole 1 is fast-retransmitted (3 later records known)"
        );
        assert_eq!(drain(&mut s, 1, Time::from_millis(5)), vec![1]);
        let d1 = s.next_deadline().unwrap();
        s.on_timeout(d1);
        assert_eq!(
            drain(&mut s, 1, d1),
            vec![1, 2],
            "the timeout resends the unsacked ones"
        );
        let d2 = s.next_deadline().unwrap();
        assert!(
            d2.saturating_since(d1)
                >= 2 * d1.saturating_since(Time::from_millis(5)) - Duration::from_millis(1)
        );
        s.on_ack(1, ack(5, Sack::empty()), d2).unwrap();
        assert!(s.all_acked());
        assert_eq!(s.next_deadline(), None);
    }

    #[test]
    fn receiver_reorders_dedupes_and_bounds() {
        let mut r = RecvStream::new(4);
        let mut out = vec![];
        assert_eq!(r.classify(1), Arrival::New);
        r.insert(rec(1), &mut out);
        assert!(out.is_empty());
        assert_eq!(r.ack().0, 0);
        assert!(r.ack().1.get(0));
        assert_eq!(r.classify(1), Arrival::Duplicate);
        assert_eq!(r.classify(4), Arrival::OutOfWindow);
        assert_eq!(
            r.bound_from_ack(2, 10),
            None,
            "bound waits for records 0 and 1"
        );
        r.insert(rec(0), &mut out);
        assert_eq!(
            out.iter().map(|r| r.link_seq).collect::<Vec<_>>(),
            vec![0, 1]
        );
        assert_eq!(r.take_ready_bound(), Some(10));
        assert_eq!(r.classify(0), Arrival::Duplicate);
        assert_eq!(r.bound_from_ack(1, 7), Some(7));
    }
}
