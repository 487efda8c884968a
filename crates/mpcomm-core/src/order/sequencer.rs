//! `sequencer`: one member decides the order, everyone follows it.
//!
//! # The rule
//!
//! Members multicast their messages as always. One member, the
//! *sequencer* (member 0, the lowest id), also multicasts *decisions*:
//! "the next 3 records to deliver are member 2's next record, then member
//! 0's next two". Every member delivers exactly in decision order. This is
//! JGroups' SEQUENCER protocol and the "fixed sequencer" of the textbooks
//! (Défago, Schiper and Urbán's survey calls it *fixed sequencer,
//! broadcast–broadcast*: the message and its order travel separately).
//!
//! Decisions are ordinary records of the sequencer's reliable stream, of
//! kind CONTROL ([`Ordering::poll_control`]). So they are retransmitted
//! when lost and arrive in the order they were made, like any data: the
//! course's sequencers whose ordering datagram was lost and stalled for
//! ever cannot happen here.
//!
//! # Why it is correct
//!
//! *Total order*: every member applies the same decisions in the same
//! order (one reliable FIFO stream), and each decision names "the next
//! record of member `k`", which is the same record everywhere because the
//! links release each sender's records in order. *FIFO*: the sequencer
//! decides each sender's records in the order the link releases them.
//! *Causal order*: if member `p` delivered `a` before sending `b`, the
//! decision for `a` was made before `p` could deliver `a`, hence before `p`
//! sent `b`, hence before the sequencer received `b` and decided it; and
//! decisions are delivered in the order they are made.
//!
//! # Cost, against `total`
//!
//! `total` needs every member to hear from every other after each message:
//! at light load N−1 acknowledgements from each of N−1 receivers, about N²
//! datagrams per message. Here each message costs its N−1 data datagrams,
//! the acknowledgements to its sender, the sequencer's decision to N−1
//! members and their acknowledgements: about 4N. The price is one more
//! network hop before delivery (sender → sequencer → everyone, instead of
//! sender → everyone → everyone's acknowledgements, which for `total` is
//! also two hops, but from all members at once), and a single member that
//! handles every message twice: the sequencer's CPU and uplink are the
//! group's bottleneck. Under load, one decision record carries the order
//! of many records (runs of the same sender are merged), so decisions
//! cost little more than a few bytes per message.
//!
//! # When the sequencer crashes
//!
//! It cannot be replaced yet: mpcomm's groups are fixed for a run, and a
//! silent member fails the run ([`crate::peer::PeerError::Unresponsive`]).
//! Once groups have views (members leave and the survivors agree on what
//! the old view delivered), the lowest surviving member takes over from
//! the agreed cut: [`SequencerOrder::cut`] is what a member has delivered,
//! and [`SequencerOrder::take_over`] continues from a cut, so that no
//! message is delivered twice or skipped (the bugs JGroups had to fix when
//! its coordinator changed). `docs/algorithms.md` describes the steps.

use std::collections::VecDeque;
use std::fmt;

use bytes::Bytes;

use super::{OrderKind, Ordering, varint};
use crate::wire::{MAX_PAYLOAD, MemberId, Record, RecordKind};

/// The member that orders a group's messages: the lowest id.
pub const SEQUENCER: MemberId = 0;

/// How far a member has got: how many records of each sender it has
/// delivered, and so the number the next decision starts from. When all
/// members have delivered the same cut, a new sequencer can continue from
/// it ([`SequencerOrder::take_over`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cut {
    /// Records delivered, per sender.
    pub delivered: Vec<u64>,
    /// Records delivered in all: the number of the next delivery.
    pub next: u64,
}

/// What the next delivery waits for. See [`SequencerOrder::wait`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequencerWait {
    /// Records are held but no decision about them has arrived yet.
    Decision {
        /// The sequencer.
        sequencer: MemberId,
        /// The number of the next delivery (from 0), the first the missing
        /// decision will order.
        number: u64,
        /// Records held, waiting for it.
        held: usize,
    },
    /// A decision names a record that has not arrived yet.
    Record {
        /// The number of the delivery it orders.
        number: u64,
        /// Whose record.
        sender: MemberId,
        /// Which of the sender's records (from 0): message `sender:index`,
        /// or its end-of-stream marker after its last message.
        index: u64,
    },
}

impl fmt::Display for SequencerWait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            SequencerWait::Decision {
                sequencer,
                number,
                held,
            } => write!(
                f,
                "{held} record(s) wait for sequencer {sequencer}'s decision on delivery #{number}"
            ),
            SequencerWait::Record {
                number,
                sender,
                index,
            } => write!(
                f,
                "delivery #{number} is {sender}:{index} (or {sender}'s end of stream), which has not arrived yet"
            ),
        }
    }
}

/// Fixed-sequencer engine. See the [module documentation](self).
#[derive(Debug)]
pub struct SequencerOrder {
    me: MemberId,
    sequencer: MemberId,
    /// Per sender: records released by the link, not yet delivered.
    held: Vec<VecDeque<Record>>,
    held_count: usize,
    /// Decisions received and not yet carried out: (sender, how many of its
    /// next records), in order.
    decisions: VecDeque<(MemberId, u64)>,
    /// Per sender: records delivered here.
    delivered: Vec<u64>,
    /// Records delivered here in all.
    next: u64,
    /// Records ordered by the decisions received so far, in all: where the
    /// next decision record must start.
    decided_total: u64,
    /// At the sequencer: decisions made and not yet multicast, and the
    /// number of the first of them.
    outbox: VecDeque<(MemberId, u64)>,
    outbox_first: u64,
    malformed: u64,
}

impl SequencerOrder {
    /// The engine for member `me` of a group of `members`; the sequencer is
    /// [`SEQUENCER`].
    pub fn new(me: MemberId, members: usize) -> SequencerOrder {
        SequencerOrder {
            me,
            sequencer: SEQUENCER,
            held: (0..members).map(|_| VecDeque::new()).collect(),
            held_count: 0,
            decisions: VecDeque::new(),
            delivered: vec![0; members],
            next: 0,
            decided_total: 0,
            outbox: VecDeque::new(),
            outbox_first: 0,
            malformed: 0,
        }
    }

    /// The member whose decisions this engine follows.
    pub fn sequencer(&self) -> MemberId {
        self.sequencer
    }

    /// Control records that were not decisions of the sequencer, or did
    /// not decode, or did not continue where the previous one ended
    /// (ignored and counted: a faulty member).
    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    /// What this member has delivered.
    pub fn cut(&self) -> Cut {
        Cut {
            delivered: self.delivered.clone(),
            next: self.next,
        }
    }

    /// Continues under a new sequencer from `cut`, which every surviving
    /// member has delivered exactly (the view change's flush makes sure of
    /// it; this member's own [`SequencerOrder::cut`] must equal it).
    /// Decisions of the old sequencer that were not carried out are
    /// dropped; if this member is the new sequencer, it decides every held
    /// record, sender by sender, and goes on deciding what arrives. Returns
    /// `false`, changing nothing, if this member's cut is not `cut`.
    pub fn take_over(&mut self, sequencer: MemberId, cut: &Cut) -> bool {
        if self.cut() != *cut {
            return false;
        }
        self.sequencer = sequencer;
        self.decisions.clear();
        self.outbox.clear();
        self.decided_total = cut.next;
        self.outbox_first = cut.next;
        if self.me == sequencer {
            for (k, q) in self.held.iter().enumerate() {
                if !q.is_empty() {
                    self.outbox.push_back((k as MemberId, q.len() as u64));
                }
            }
        }
        true
    }

    /// What the next delivery waits for; `None` when nothing is held or the
    /// next record may be delivered now.
    pub fn wait(&self) -> Option<SequencerWait> {
        match self.decisions.front() {
            Some(&(sender, _)) => {
                let k = usize::from(sender);
                self.held
                    .get(k)
                    .is_some_and(VecDeque::is_empty)
                    .then(|| SequencerWait::Record {
                        number: self.next,
                        sender,
                        index: self.delivered.get(k).copied().unwrap_or(0),
                    })
            }
            None => (self.held_count > 0).then_some(SequencerWait::Decision {
                sequencer: self.sequencer,
                number: self.next,
                held: self.held_count,
            }),
        }
    }

    /// Reads a decision record: `first` (the number of the first delivery
    /// it orders), then `(sender, count)` pairs, all varints.
    fn read_decisions(&mut self, body: &[u8]) -> Option<()> {
        let mut input = body;
        let first = varint::get(&mut input)?;
        if first != self.decided_total {
            return None;
        }
        let mut runs = Vec::new();
        let mut total = 0u64;
        while !input.is_empty() {
            let sender = MemberId::try_from(varint::get(&mut input)?).ok()?;
            let count = varint::get(&mut input)?;
            if usize::from(sender) >= self.held.len() || count == 0 {
                return None;
            }
            total = total.checked_add(count)?;
            runs.push((sender, count));
        }
        self.decided_total = self.decided_total.checked_add(total)?;
        self.decisions.extend(runs);
        Some(())
    }
}

impl Ordering for SequencerOrder {
    fn kind(&self) -> OrderKind {
        OrderKind::Sequencer
    }

    fn on_fifo(&mut self, rec: Record) {
        let k = usize::from(rec.sender);
        if k >= self.held.len() {
            return;
        }
        if matches!(rec.kind, RecordKind::Control) {
            if rec.sender != self.sequencer || self.read_decisions(&rec.payload).is_none() {
                self.malformed += 1;
            }
            return;
        }
        if self.me == self.sequencer {
            // Decide: the next record of `k`. Runs of one sender merge.
            match self.outbox.back_mut() {
                Some((last, n)) if *last == rec.sender => *n += 1,
                _ => self.outbox.push_back((rec.sender, 1)),
            }
        }
        self.held[k].push_back(rec);
        self.held_count += 1;
    }

    fn poll_deliver(&mut self) -> Option<Record> {
        let (sender, left) = self.decisions.front_mut()?;
        let k = usize::from(*sender);
        let rec = self.held.get_mut(k)?.pop_front()?;
        *left -= 1;
        if *left == 0 {
            self.decisions.pop_front();
        }
        self.held_count -= 1;
        self.delivered[k] += 1;
        self.next += 1;
        Some(rec)
    }

    fn pending(&self) -> usize {
        self.held_count
    }

    fn blocked_on(&self, member: MemberId) -> bool {
        match self.wait() {
            Some(SequencerWait::Decision { sequencer, .. }) => member == sequencer,
            Some(SequencerWait::Record { sender, .. }) => member == sender,
            None => false,
        }
    }

    fn poll_control(&mut self) -> Option<Bytes> {
        if self.me != self.sequencer || self.outbox.is_empty() {
            return None;
        }
        let mut body = Vec::new();
        varint::put(&mut body, self.outbox_first);
        let mut ordered = 0u64;
        while let Some(&(sender, count)) = self.outbox.front() {
            if body.len() + 2 * varint::MAX_LEN > MAX_PAYLOAD {
                break; // the rest goes in the next record
            }
            varint::put(&mut body, u64::from(sender));
            varint::put(&mut body, count);
            ordered += count;
            self.outbox.pop_front();
        }
        self.outbox_first += ordered;
        Some(Bytes::from(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(sender: MemberId, seq: u64) -> Record {
        Record {
            sender,
            link_seq: seq,
            kind: RecordKind::Data { seq },
            stamp: 0,
            ext: Bytes::new(),
            payload: Bytes::new(),
        }
    }

    fn control(body: Bytes, link_seq: u64) -> Record {
        Record {
            sender: SEQUENCER,
            link_seq,
            kind: RecordKind::Control,
            stamp: 0,
            ext: Bytes::new(),
            payload: body,
        }
    }

    fn drain(e: &mut SequencerOrder) -> Vec<(MemberId, u64)> {
        std::iter::from_fn(|| e.poll_deliver())
            .map(|r| (r.sender, r.link_seq))
            .collect()
    }

    #[test]
    fn everyone_delivers_in_the_sequencers_order() {
        let mut s = SequencerOrder::new(0, 3);
        let mut m = SequencerOrder::new(2, 3);
        // The sequencer hears 1:0, 2:0, 2:1 in that order; member 2 hears
        // its own records first.
        for r in [data(1, 0), data(2, 0), data(2, 1)] {
            s.on_fifo(r);
        }
        assert!(drain(&mut s).is_empty(), "no decision yet, even here");
        let body = s.poll_control().expect("a decision");
        assert_eq!(&body[..], &[0, 1, 1, 2, 2], "from #0: one of 1, two of 2");
        assert_eq!(s.poll_control(), None);
        s.on_fifo(control(body.clone(), 0));
        m.on_fifo(data(2, 0));
        m.on_fifo(data(2, 1));
        assert_eq!(
            m.wait(),
            Some(SequencerWait::Decision {
                sequencer: 0,
                number: 0,
                held: 2
            })
        );
        assert!(m.blocked_on(0));
        m.on_fifo(control(body, 0));
        assert_eq!(
            m.wait().map(|w| w.to_string()).as_deref(),
            Some("delivery #0 is 1:0 (or 1's end of stream), which has not arrived yet")
        );
        assert!(m.blocked_on(1) && !m.blocked_on(0));
        m.on_fifo(data(1, 0));
        let order = [(1, 0), (2, 0), (2, 1)];
        assert_eq!(drain(&mut s), order);
        assert_eq!(drain(&mut m), order);
        assert_eq!(m.wait(), None);
        assert_eq!(m.cut(), s.cut());
    }

    #[test]
    fn bad_decisions_are_counted_and_ignored() {
        let mut m = SequencerOrder::new(1, 3);
        let bad: [&[u8]; 5] = [
            &[1, 0, 1], // starts at #1, but #0 is next
            &[0, 7, 1], // member 7 of 3
            &[0, 1, 0], // zero records
            &[0, 1],    // half a pair
            &[0x80],    // bad varint
        ];
        for b in bad {
            m.on_fifo(control(Bytes::copy_from_slice(b), 0));
        }
        // A decision from someone who is not the sequencer.
        let mut forged = control(Bytes::from_static(&[0, 1, 1]), 0);
        forged.sender = 2;
        m.on_fifo(forged);
        assert_eq!(m.malformed(), 6);
        m.on_fifo(data(1, 0));
        assert!(drain(&mut m).is_empty());
    }

    #[test]
    fn long_runs_split_over_several_records() {
        let mut s = SequencerOrder::new(0, 3);
        // Alternating senders make one pair per record: 2,000 pairs.
        for i in 0..1000 {
            s.on_fifo(data(1, i));
            s.on_fifo(data(2, i));
        }
        let mut m = SequencerOrder::new(1, 3);
        let mut seq = 0;
        while let Some(body) = s.poll_control() {
            assert!(body.len() <= MAX_PAYLOAD);
            m.on_fifo(control(body, seq));
            seq += 1;
        }
        assert!(seq >= 2);
        for i in 0..1000 {
            m.on_fifo(data(2, i));
            m.on_fifo(data(1, i));
        }
        let got = drain(&mut m);
        assert_eq!(got.len(), 2000);
        assert_eq!(&got[..3], &[(1, 0), (2, 0), (1, 1)]);
        assert_eq!(m.malformed(), 0);
    }

    /// The sequencer vanishes after deciding 1:0 only. The survivors agree
    /// on the cut (both delivered 1:0); member 1 takes over and orders the
    /// rest; both deliver the same sequence, nothing twice, nothing skipped.
    #[test]
    fn a_new_sequencer_continues_from_the_cut() {
        let mut a = SequencerOrder::new(1, 3);
        let mut b = SequencerOrder::new(2, 3);
        let first = Bytes::from_static(&[0, 1, 1]); // #0: one record of 1
        for e in [&mut a, &mut b] {
            e.on_fifo(data(1, 0));
            e.on_fifo(control(first.clone(), 0));
            assert_eq!(drain(e), [(1, 0)]);
        }
        a.on_fifo(data(2, 0));
        b.on_fifo(data(2, 0));
        b.on_fifo(data(1, 1));
        a.on_fifo(data(1, 1));
        let cut = a.cut();
        assert_eq!(
            cut,
            Cut {
                delivered: vec![0, 1, 0],
                next: 1
            }
        );
        assert!(a.take_over(1, &cut) && b.take_over(1, &cut));
        assert!(!b.take_over(
            1,
            &Cut {
                delivered: vec![0, 0, 0],
                next: 0
            }
        ));
        // Decisions now come from member 1's stream.
        let mut decisions = Vec::new();
        while let Some(body) = a.poll_control() {
            decisions.push(body);
        }
        assert_eq!(decisions.len(), 1);
        assert_eq!(
            &decisions[0][..],
            &[1, 1, 1, 2, 1],
            "from #1: 1's next, then 2's"
        );
        for e in [&mut a, &mut b] {
            for d in &decisions {
                let mut r = control(d.clone(), 5);
                r.sender = 1;
                e.on_fifo(r);
            }
        }
        assert_eq!(drain(&mut a), [(1, 1), (2, 0)]);
        assert_eq!(drain(&mut b), [(1, 1), (2, 0)]);
        assert_eq!(a.cut(), b.cut());
    }
}
