//! `causal`: no member delivers a message before the messages that could
//! have caused it.
//!
//! # The rule
//!
//! A message `m` *causally depends on* every message its sender had
//! delivered before sending it, and on the sender's own earlier messages. A
//! reply depends on its question; a withdrawal made after seeing a deposit
//! depends on the deposit. Causal order delivers every message after
//! everything it depends on — and nothing more: messages that are
//! *concurrent* (neither sender knew of the other's) may be delivered in
//! different orders at different members. That makes it weaker than total
//! order (a replicated bank account can still diverge), and cheaper: no
//! member waits for news from every other, only for the messages it lacks.
//!
//! # The algorithm (Birman, Schiper and Stephenson, 1991)
//!
//! Every member keeps a [vector clock](crate::vclock) `delivered`:
//! `delivered[k]` counts member `k`'s records it has delivered (data
//! messages and the end-of-stream marker). It attaches that vector to each
//! record it sends: the record's *dependencies*. A receiver holds a record
//! from `j` with dependencies `d` until
//!
//! 1. it has delivered every earlier record of `j` — the reliable link
//!    already releases `j`'s records in order, so the engine only looks at
//!    the oldest undelivered record of each sender; and
//! 2. `delivered[k] ≥ d[k]` for every other member `k`: it has delivered
//!    everything `j` had delivered.
//!
//! **Why this is correct.** If `a` happened before `b`, then either `a` and
//! `b` have the same sender and (1) orders them, or `b`'s sender had
//! delivered `a` (or something that depended on `a`) before sending `b`, so
//! `d_b` counts `a`'s sender's records up to and including `a`, and (2)
//! makes every receiver deliver `a` first. **Why it never waits for ever.**
//! Every record counted in `d` was delivered by `j`, so it was sent; the
//! reliable links bring it to every member, and by induction on the order
//! in which `j` delivered them, each becomes deliverable.
//!
//! # What goes on the wire
//!
//! A full vector is N counters. mpcomm sends, in the record's extension
//! field ([`Record::ext`], at most [`MAX_EXT`] = 255 bytes), only the
//! entries that changed since the sender's *previous* record, as pairs of
//! LEB128 varints `(member, increase)`. Receivers get each sender's records
//! in order, so adding up the deltas rebuilds every record's full vector.
//! A member that delivered a few messages from a few members since it last
//! sent pays two bytes per such member (ids and increases below 128); one
//! that sent nothing for a long time may have more to say than 255 bytes.
//! It then first multicasts the excess in CONTROL records
//! ([`Ordering::poll_control`]; up to [`MAX_PAYLOAD`] bytes each, never
//! delivered, only added up), so that the next data record's delta fits.
//! The peer drains `poll_control` after every batch of deliveries, before
//! it accepts the application's next message (or stops accepting messages
//! until it can), which is what makes "the next data record's delta fits"
//! hold. Every group size mpcomm accepts ([`crate::config::MAX_MEMBERS`])
//! therefore works; large groups whose members all talk at once pay in
//! extension bytes and, rarely, extra control records.
//!
//! # Cost
//!
//! No acknowledgements beyond the link's own (to the sender only, as in
//! `fifo`); a few bytes per record; and a delay only where a message really
//! depends on one that has not arrived yet — typically a reply that
//! overtook its question on a faster path.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;

use bytes::Bytes;

use super::{OrderKind, Ordering, varint};
use crate::vclock::VectorClock;
use crate::wire::{MAX_EXT, MAX_PAYLOAD, MemberId, Record, RecordKind};

/// A change to a vector: `(member, increase)` pairs, applied by adding.
type Delta = Vec<(MemberId, u64)>;

/// What one sender's records are waiting for.
#[derive(Debug)]
struct Stream {
    /// The dependency vector of the front of `queue` (when the queue is
    /// empty: of the sender's last record, the base the next delta adds to).
    head: VectorClock,
    /// Records not yet delivered, in the sender's order; each with its delta
    /// against the record before it (the front's is already in `head`).
    queue: VecDeque<(Record, Delta)>,
    /// Deltas of CONTROL records received after the last queued record: they
    /// belong to the sender's next record.
    pending: Delta,
    /// Where the front's dependency check stopped (every entry before it is
    /// satisfied, and stays so: delivered counts only grow).
    scan: usize,
}

/// What the oldest held record of one sender waits for: its dependencies
/// say its sender had delivered `needs` of member `on`'s records, and only
/// `delivered` of them have been delivered here. See [`CausalOrder::waits`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CausalWait {
    /// The held record's sender.
    pub sender: MemberId,
    /// The held record: `Data { seq }` or the end-of-stream marker.
    pub kind: RecordKind,
    /// The member whose message it waits for.
    pub on: MemberId,
    /// How many of `on`'s records must be delivered first.
    pub needs: u64,
    /// How many are.
    pub delivered: u64,
}

impl fmt::Display for CausalWait {
    /// `2:5 waits for 1:3 (its sender had delivered it; here only 1:0..1:1 are)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            RecordKind::Data { seq } => write!(f, "{}:{seq}", self.sender)?,
            _ => write!(f, "{}'s end of stream", self.sender)?,
        }
        // Member k's records are its messages k:0, k:1, … then its end of
        // stream, so the n-th record (from 1) is message k:(n-1).
        write!(
            f,
            " waits for {}:{} (its sender had delivered {} of member {}'s messages; {} are delivered here)",
            self.on,
            self.needs.saturating_sub(1),
            self.needs,
            self.on,
            self.delivered
        )
    }
}

/// Causal-order engine. See the [module documentation](self).
#[derive(Debug)]
pub struct CausalOrder {
    me: MemberId,
    /// Our vector clock: each member's records delivered here.
    delivered: VectorClock,
    /// The vector our previous outgoing record (or control record) brought
    /// the others to: the next delta is counted from here.
    reported: VectorClock,
    /// Our end-of-stream has gone out: nothing more to report.
    finished: bool,
    /// The record about to be sent is a control record from
    /// [`Ordering::poll_control`] (its extension may carry part of a delta).
    control_next: bool,
    streams: Vec<Stream>,
    /// Senders whose oldest held record may be delivered now.
    ready: VecDeque<MemberId>,
    /// `waiting[k]`: senders whose oldest held record waits until
    /// `delivered[k]` reaches the given count, smallest count first.
    waiting: Vec<BinaryHeap<Reverse<(u64, MemberId)>>>,
    held: usize,
    malformed: u64,
    overflows: u64,
}

impl CausalOrder {
    /// The engine for member `me` of a group of `members`.
    pub fn new(me: MemberId, members: usize) -> CausalOrder {
        CausalOrder {
            me,
            delivered: VectorClock::new(members),
            reported: VectorClock::new(members),
            finished: false,
            control_next: false,
            streams: (0..members)
                .map(|_| Stream {
                    head: VectorClock::new(members),
                    queue: VecDeque::new(),
                    pending: Vec::new(),
                    scan: 0,
                })
                .collect(),
            ready: VecDeque::new(),
            waiting: (0..members).map(|_| BinaryHeap::new()).collect(),
            held: 0,
            malformed: 0,
            overflows: 0,
        }
    }

    /// Our vector clock: how many of each member's records we delivered.
    pub fn delivered(&self) -> &VectorClock {
        &self.delivered
    }

    /// Extensions or control records that did not decode (a faulty member);
    /// their deltas were ignored.
    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    /// Times a data record's delta did not fit its extension, so that part
    /// of its dependencies went out late. Zero unless the peer broke the
    /// contract described in the [module documentation](self).
    pub fn overflows(&self) -> u64 {
        self.overflows
    }

    /// What each sender's oldest held record waits for, in sender order
    /// (records that may be delivered now, and senders with nothing held,
    /// are left out).
    pub fn waits(&self) -> Vec<CausalWait> {
        let mut out = Vec::new();
        for (j, s) in self.streams.iter().enumerate() {
            let Some((rec, _)) = s.queue.front() else {
                continue;
            };
            if let Some(k) = self.first_unmet(j, s.scan) {
                let on = k as MemberId;
                out.push(CausalWait {
                    sender: j as MemberId,
                    kind: rec.kind,
                    on,
                    needs: s.head.get(on),
                    delivered: self.delivered.get(on),
                });
            }
        }
        out
    }

    /// The first member, from `from` on, whose records the front of `j`'s
    /// queue still waits for.
    fn first_unmet(&self, j: usize, from: usize) -> Option<usize> {
        let head = &self.streams[j].head;
        (from..head.len())
            .find(|&k| k != j && self.delivered.get(k as MemberId) < head.get(k as MemberId))
    }

    /// Checks the front of `j`'s queue from where its check stopped: it is
    /// either ready, or registered as waiting for one member.
    fn evaluate(&mut self, j: usize) {
        if self.streams[j].queue.is_empty() {
            return;
        }
        let from = self.streams[j].scan;
        match self.first_unmet(j, from) {
            None => self.ready.push_back(j as MemberId),
            Some(k) => {
                let need = self.streams[j].head.get(k as MemberId);
                self.streams[j].scan = k;
                self.waiting[k].push(Reverse((need, j as MemberId)));
            }
        }
    }

    /// The delta from what we last reported to what we have delivered, as
    /// pairs, lowest member first (our own entry is never sent: the link's
    /// order already says it).
    fn unreported(&self) -> Delta {
        self.delivered
            .as_slice()
            .iter()
            .zip(self.reported.as_slice())
            .enumerate()
            .filter(|&(k, (d, r))| k != usize::from(self.me) && d > r)
            .map(|(k, (d, r))| (k as MemberId, d - r))
            .collect()
    }

    /// Encodes as many pairs of `delta` as fit in `limit` bytes, marks them
    /// reported, and returns the bytes and whether everything fitted.
    fn report(&mut self, delta: &Delta, limit: usize) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        for &(k, by) in delta {
            let need = varint::len(u64::from(k)) + varint::len(by);
            if out.len() + need > limit {
                return (out, false);
            }
            varint::put(&mut out, u64::from(k));
            varint::put(&mut out, by);
            self.reported.add(k, by);
        }
        (out, true)
    }

    /// Decodes a delta; `None` if malformed (bad varint, not a member, the
    /// sender's own entry).
    fn decode(&self, sender: MemberId, mut bytes: &[u8]) -> Option<Delta> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let k = varint::get(&mut bytes)?;
            let by = varint::get(&mut bytes)?;
            let k = MemberId::try_from(k).ok()?;
            if usize::from(k) >= self.delivered.len() || k == sender {
                return None;
            }
            out.push((k, by));
        }
        Some(out)
    }

    fn decode_or_count(&mut self, sender: MemberId, bytes: &[u8]) -> Delta {
        self.decode(sender, bytes).unwrap_or_else(|| {
            self.malformed += 1;
            Vec::new()
        })
    }
}

fn apply(v: &mut VectorClock, delta: &Delta) {
    for &(k, by) in delta {
        v.add(k, by);
    }
}

/// Encoded length of a delta.
fn encoded_len(delta: &Delta) -> usize {
    delta
        .iter()
        .map(|&(k, by)| varint::len(u64::from(k)) + varint::len(by))
        .sum()
}

impl Ordering for CausalOrder {
    fn kind(&self) -> OrderKind {
        OrderKind::Causal
    }

    fn on_fifo(&mut self, rec: Record) {
        let j = usize::from(rec.sender);
        if j >= self.streams.len() {
            return;
        }
        let mut delta = self.decode_or_count(rec.sender, &rec.ext);
        if matches!(rec.kind, RecordKind::Control) {
            let more = self.decode_or_count(rec.sender, &rec.payload);
            let s = &mut self.streams[j];
            s.pending.append(&mut delta);
            s.pending.extend(more);
            return;
        }
        if rec.sender == self.me && matches!(rec.kind, RecordKind::EndOfStream { .. }) {
            self.finished = true;
        }
        let s = &mut self.streams[j];
        let mut all = std::mem::take(&mut s.pending);
        all.append(&mut delta);
        self.held += 1;
        if s.queue.is_empty() {
            apply(&mut s.head, &all);
            s.queue.push_back((rec, Vec::new()));
            s.scan = 0;
            self.evaluate(j);
        } else {
            s.queue.push_back((rec, all));
        }
    }

    fn poll_deliver(&mut self) -> Option<Record> {
        // Each front is in `ready` at most once, so the first entry is
        // always good; skipping an empty queue just keeps this total.
        let (j, rec) = loop {
            let j = usize::from(self.ready.pop_front()?);
            if let Some((rec, _)) = self.streams[j].queue.pop_front() {
                break (j, rec);
            }
        };
        let s = &mut self.streams[j];
        self.held -= 1;
        // The next record of `j`, if any, becomes the front: its vector is
        // the delivered one's plus its delta.
        if let Some((_, delta)) = s.queue.front_mut() {
            let delta = std::mem::take(delta);
            apply(&mut s.head, &delta);
            s.scan = 0;
        }
        self.delivered.increment(j as MemberId);
        let now = self.delivered.get(j as MemberId);
        while let Some(&Reverse((need, waiter))) = self.waiting[j].peek() {
            if need > now {
                break;
            }
            self.waiting[j].pop();
            self.evaluate(usize::from(waiter));
        }
        self.evaluate(j);
        Some(rec)
    }

    fn pending(&self) -> usize {
        self.held
    }

    fn blocked_on(&self, member: MemberId) -> bool {
        self.waiting
            .get(usize::from(member))
            .is_some_and(|w| !w.is_empty())
    }

    fn outgoing_ext(&mut self) -> Bytes {
        let control = std::mem::take(&mut self.control_next);
        let delta = self.unreported();
        let (bytes, complete) = self.report(&delta, MAX_EXT);
        if !complete && !control {
            // Never expected: see the module documentation. The rest goes
            // out with the next record.
            self.overflows += 1;
            debug_assert!(false, "a causal delta did not fit a data record");
        }
        Bytes::from(bytes)
    }

    fn poll_control(&mut self) -> Option<Bytes> {
        if self.finished {
            return None;
        }
        let delta = self.unreported();
        if encoded_len(&delta) <= MAX_EXT {
            return None;
        }
        let (bytes, _) = self.report(&delta, MAX_PAYLOAD);
        self.control_next = true;
        Some(Bytes::from(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds records as a sender's engine would stamp them.
    fn rec(sender: MemberId, link_seq: u64, ext: Bytes) -> Record {
        Record {
            sender,
            link_seq,
            kind: RecordKind::Data { seq: link_seq },
            stamp: 0,
            ext,
            payload: Bytes::new(),
        }
    }

    fn drain(e: &mut CausalOrder) -> Vec<(MemberId, u64)> {
        std::iter::from_fn(|| e.poll_deliver())
            .map(|r| (r.sender, r.link_seq))
            .collect()
    }

    /// The module's story: member 1 delivers 0:0 and replies; member 2
    /// receives the reply first and must hold it until 0:0 arrives.
    #[test]
    fn a_reply_waits_for_its_question() {
        let mut m0 = CausalOrder::new(0, 3);
        let mut m1 = CausalOrder::new(1, 3);
        let mut m2 = CausalOrder::new(2, 3);
        let q = rec(0, 0, m0.outgoing_ext());
        m0.on_fifo(q.clone());
        assert_eq!(drain(&mut m0), [(0, 0)], "own records go at once");
        m1.on_fifo(q.clone());
        assert_eq!(drain(&mut m1), [(0, 0)]);
        let reply = rec(1, 0, m1.outgoing_ext());
        assert_eq!(&reply.ext[..], &[0, 1], "member 0: one more delivered");
        m2.on_fifo(reply.clone());
        assert!(drain(&mut m2).is_empty(), "the reply overtook the question");
        assert!(m2.blocked_on(0) && !m2.blocked_on(1));
        let waits = m2.waits();
        assert_eq!(waits.len(), 1);
        assert_eq!(
            waits[0].to_string(),
            "1:0 waits for 0:0 (its sender had delivered 1 of member 0's messages; 0 are delivered here)"
        );
        m2.on_fifo(q);
        assert_eq!(drain(&mut m2), [(0, 0), (1, 0)]);
        assert!(m2.waits().is_empty() && m2.pending() == 0);
    }

    #[test]
    fn concurrent_messages_are_not_held() {
        let mut m0 = CausalOrder::new(0, 3);
        let mut m1 = CausalOrder::new(1, 3);
        let a = rec(0, 0, m0.outgoing_ext());
        let b = rec(1, 0, m1.outgoing_ext());
        let mut m2 = CausalOrder::new(2, 3);
        m2.on_fifo(b);
        m2.on_fifo(a);
        assert_eq!(drain(&mut m2), [(1, 0), (0, 0)], "arrival order");
    }

    /// Deltas add up along a sender's stream: the second record only says
    /// what changed since the first.
    #[test]
    fn deltas_accumulate_along_the_stream() {
        let mut m2 = CausalOrder::new(2, 3);
        for s in 0..3 {
            m2.on_fifo(rec(0, s, Bytes::new()));
        }
        drain(&mut m2);
        let first = rec(2, 0, m2.outgoing_ext());
        assert_eq!(&first.ext[..], &[0, 3]);
        m2.on_fifo(first.clone());
        drain(&mut m2);
        let second = rec(2, 1, m2.outgoing_ext());
        assert!(second.ext.is_empty(), "nothing new delivered from others");
        // Member 1 gets 2's records before 0's: both wait for all three of 0's.
        let mut m1 = CausalOrder::new(1, 3);
        m1.on_fifo(first);
        m1.on_fifo(second);
        m1.on_fifo(rec(0, 0, Bytes::new()));
        m1.on_fifo(rec(0, 1, Bytes::new()));
        assert_eq!(drain(&mut m1), [(0, 0), (0, 1)]);
        m1.on_fifo(rec(0, 2, Bytes::new()));
        assert_eq!(drain(&mut m1), [(0, 2), (2, 0), (2, 1)]);
    }

    /// A member that delivered from many members before sending again says
    /// so in control records first, so that its next data record's delta
    /// fits; a receiver that adds everything up holds that record exactly
    /// as long as it must.
    #[test]
    fn a_large_delta_goes_out_in_control_records_first() {
        const N: usize = 600;
        const EACH: u64 = 200;
        let last = (N - 1) as MemberId;
        let mut e = CausalOrder::new(0, N);
        // Deliver 200 records from each of the others (no dependencies).
        for k in 1..N as MemberId {
            for s in 0..EACH {
                e.on_fifo(rec(k, s, Bytes::new()));
            }
        }
        assert_eq!(drain(&mut e).len(), (N - 1) * EACH as usize);
        // 599 entries × 4 bytes (2-byte ids above 127, 2-byte increases):
        // about 2.4 kB, three control records' worth.
        let mut stream = Vec::new();
        while let Some(body) = e.poll_control() {
            assert!(body.len() <= MAX_PAYLOAD);
            let ext = e.outgoing_ext();
            assert!(ext.len() <= MAX_EXT);
            stream.push(Record {
                sender: 0,
                link_seq: stream.len() as u64,
                kind: RecordKind::Control,
                stamp: 0,
                ext,
                payload: body,
            });
        }
        assert!(stream.len() >= 2, "{} control records", stream.len());
        let data_seq = stream.len() as u64;
        let data = rec(0, data_seq, e.outgoing_ext());
        assert!(data.ext.len() <= MAX_EXT);
        assert_eq!(e.overflows(), 0);
        // A receiver that has delivered everything but the last record of
        // the last member must hold 0's data record until it gets that one.
        let mut r = CausalOrder::new(1, N);
        for k in 1..N as MemberId {
            let upto = if k == last { EACH - 1 } else { EACH };
            for s in 0..upto {
                r.on_fifo(rec(k, s, Bytes::new()));
            }
        }
        drain(&mut r);
        for c in stream {
            r.on_fifo(c);
        }
        r.on_fifo(data);
        assert!(drain(&mut r).is_empty());
        assert!(r.blocked_on(last));
        r.on_fifo(rec(last, EACH - 1, Bytes::new()));
        assert_eq!(drain(&mut r), [(last, EACH - 1), (0, data_seq)]);
        assert_eq!(r.malformed(), 0);
    }

    #[test]
    fn malformed_extensions_are_counted_not_fatal() {
        let mut e = CausalOrder::new(0, 3);
        for ext in [&[0x80u8][..], &[9, 1], &[1, 1], &[2]] {
            // Bad varint; member 9 of 3; the sender's own entry; half a pair.
            e.on_fifo(rec(1, 0, Bytes::copy_from_slice(ext)));
            e.poll_deliver();
        }
        assert_eq!(e.malformed(), 4);
    }
}
