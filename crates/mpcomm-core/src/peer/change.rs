//! The failure detector and the view change: how a peer takes part in a
//! flush (see [`crate::membership`] for the protocol and `docs/algorithms.md`
//! for why it is correct).
//!
//! The roles, seen from one peer:
//!
//! * **Failure detector.** Every member hears from every other at least
//!   every [`crate::Config::heartbeat`]; a member of the view silent for
//!   [`crate::Config::suspect_after`] is suspected (for good: a suspected
//!   member is excluded, and may come back only as a new incarnation). A
//!   process that asks to join (a HELLO from an incarnation not in the view)
//!   is a joiner; if the same id was in the view, its old incarnation is
//!   suspected at once — the process restarted.
//! * **Coordinator.** The lowest id of the view that we do not suspect. If
//!   that is us and there are suspects or joiners, we propose the next view
//!   (a higher ballot each time the proposal must change), collect every
//!   proposed member's report, decide the cut, and send the decision. A
//!   non-coordinator tells the coordinator whom it suspects.
//! * **Participant.** On a proposal with a higher ballot than any we
//!   accepted: stop sending, ignore the excluded members, report what we
//!   hold, and repeat the report until the decision comes (or a higher
//!   ballot). On the decision: fetch what we lack of the cut from donors,
//!   deliver the rest of the old view, install the new one.
//! * **Afterwards.** A member that missed the decision (its datagrams still
//!   carry the old view) is sent it again; a process whose datagrams come
//!   from an incarnation or a view we no longer have is told it is not a
//!   member, and stops.

use super::{Event, Peer, PeerError, Phase, Sender, rtt_of};
use crate::link::SendStream;
use crate::membership::{Ballot, Decision, MemberRef, Report, Span, View, merge};
use crate::order::OrderKind;
use crate::time::Time;
use crate::wire::view::split_parts;
use crate::wire::{Header, Hello, Item, MemberId, Record, ViewFrame, ViewHead, ViewMsgKind};
use std::collections::{BTreeMap, BTreeSet};

/// At most this many records answer one relay request.
const RELAY_BURST: usize = 256;

/// A view change under way, as one member sees it.
#[derive(Debug)]
pub(super) struct Change {
    /// The view being changed. A joiner knows only its number.
    old: View,
    /// The ballot we accepted.
    ballot: Ballot,
    /// Its proposed members.
    proposal: Vec<MemberRef>,
    /// We are joining: we were not in the old view, hold none of it, and
    /// deliver none of it.
    joining: bool,
    /// When we next (re)send our report, and how far that interval has
    /// doubled.
    report_at: Time,
    report_backoff: u32,
    /// The decision, once known.
    decision: Option<Decision>,
    /// When we next ask donors for records of the cut we lack.
    relay_at: Time,
    relay_backoff: u32,
    relay_rr: usize,
    /// When we are the coordinator of `ballot`.
    coord: Option<Coord>,
}

/// The coordinator's side of a ballot.
#[derive(Debug)]
struct Coord {
    /// The complete reports, by member.
    reports: BTreeMap<MemberId, Report>,
    /// Reports still arriving in parts.
    partial: BTreeMap<MemberId, Assembly>,
    /// When we proposed.
    proposed_at: Time,
    /// When we next resend the proposal to those who have not reported.
    resend_at: Time,
    resend_backoff: u32,
}

/// The last view change we installed, kept to help members that missed it.
#[derive(Debug)]
pub(super) struct Past {
    old_view: u32,
    new_view: u32,
    ballot: Ballot,
    decision: Decision,
    /// The records of the cut we hold, to relay to members still fetching.
    store: BTreeMap<(MemberId, u64), Record>,
    /// Members of the new view we have heard from in it.
    seen: BTreeSet<MemberId>,
    /// We made the decision: we resend it until everyone has installed.
    coordinated: bool,
    resend_at: Time,
    resend_backoff: u32,
}

/// The parts of one VIEW message, as they arrive.
#[derive(Debug, Default)]
pub(super) struct Assembly {
    key: Option<(ViewMsgKind, u32, Ballot)>,
    parts: Vec<Option<Vec<Item>>>,
}

impl Assembly {
    /// Adds a part; returns every item once all parts are in.
    fn add(&mut self, frame: &ViewFrame) -> Option<Vec<Item>> {
        let h = frame.head;
        let key = (
            h.msg,
            h.old_view,
            Ballot {
                round: h.round,
                coord: h.coord,
            },
        );
        if self.key != Some(key) || self.parts.len() != usize::from(h.parts) {
            self.key = Some(key);
            self.parts = vec![None; usize::from(h.parts)];
        }
        let slot = self.parts.get_mut(usize::from(h.part))?;
        if slot.is_none() {
            *slot = Some(frame.items().collect());
        }
        if self.parts.iter().all(Option::is_some) {
            Some(self.parts.iter().flatten().flatten().copied().collect())
        } else {
            None
        }
    }
}

impl Peer {
    /// Decides whether a datagram's sender is a member we listen to.
    pub(super) fn classify(&mut self, now: Time, h: &Header) -> Sender {
        let (from, inc) = (h.from, h.incarnation);
        let established = self.phase != Phase::Handshake || self.change.is_some();
        if !established {
            // Before the first view: the first incarnation we hear from a
            // member is the one in our view.
            if let Some(m) = self.view.members.iter_mut().find(|m| m.id == from) {
                if m.incarnation == 0 {
                    m.incarnation = inc;
                }
                if m.incarnation == inc {
                    return Sender::Member;
                }
            }
            return Sender::Stale;
        }
        if let Some(c) = &self.change {
            let proposed = c
                .proposal
                .iter()
                .any(|m| m.id == from && m.incarnation == inc);
            let old = c
                .old
                .members
                .iter()
                .any(|m| m.id == from && m.incarnation == inc);
            if proposed && old && !c.joining {
                self.note_seen(from, h.view);
                return Sender::Member;
            }
            if proposed {
                return Sender::Proposed;
            }
            if old {
                // Excluded by the proposal we accepted: not listened to.
                return Sender::Stale;
            }
        }
        if self.view.incarnation_of(from) == Some(inc) {
            self.note_seen(from, h.view);
            let _ = now;
            return Sender::Member;
        }
        Sender::Stale
    }

    fn note_seen(&mut self, from: MemberId, view: u32) {
        if let Some(p) = &mut self.past
            && view == p.new_view
        {
            p.seen.insert(from);
        }
    }

    /// A HELLO from an incarnation that is not in our view: a process asking
    /// to join. Returns whether the frame was of use.
    pub(super) fn on_join_request(&mut self, now: Time, h: &Header, hello: Hello) -> bool {
        if usize::from(hello.members) != self.cfg.members || hello.digest != self.digest {
            self.members[usize::from(h.from)].mismatched = true;
            self.stats.dropped_config_mismatch += 1;
            return true;
        }
        if self.phase == Phase::Handshake && self.change.is_none() {
            return false; // no view to admit it to yet
        }
        if matches!(self.phase, Phase::Failed) {
            return false;
        }
        if self.view.contains_id(h.from) {
            // The same id with another incarnation: its old process is gone.
            self.suspects.insert(h.from);
        }
        let fresh = self.joiners.insert(h.from, h.incarnation) != Some(h.incarnation);
        if fresh {
            self.stats.join_requests += 1;
        }
        self.members[usize::from(h.from)].last_heard = now;
        true
    }

    /// A member's datagram tagged with another view than ours.
    pub(super) fn on_other_view(&mut self, now: Time, h: &Header) {
        if h.view < self.view.id
            && let Some(p) = &self.past
            && p.old_view == h.view
            && p.decision.members.iter().any(|m| m.id == h.from)
        {
            // It missed the decision that moved us on: send it again.
            let k = usize::from(h.from);
            if now >= self.members[k].notice_at {
                self.members[k].notice_at = now + self.cfg.min_rto.max(self.cfg.heartbeat / 2);
                self.queue_install(h.from);
            }
        }
    }

    /// Tells a process that is not in our view so, now and then.
    pub(super) fn notify_not_member(&mut self, now: Time, to: MemberId) {
        if self.phase == Phase::Handshake && self.change.is_none() {
            return;
        }
        let k = usize::from(to);
        if now < self.members[k].notice_at {
            return;
        }
        self.members[k].notice_at = now + self.cfg.heartbeat;
        let head = ViewHead {
            msg: ViewMsgKind::NotMember,
            old_view: self.view.id,
            round: 0,
            coord: self.cfg.me,
            part: 0,
            parts: 1,
        };
        self.members[k].view_out.push_back((head, Vec::new()));
    }

    /// A record of another member's stream, relayed during a view change.
    pub(super) fn on_relay(&mut self, now: Time, h: &Header, rec: Record) {
        let Some(c) = &self.change else {
            self.stats.dropped_other_view += 1;
            return;
        };
        let Some(d) = &c.decision else {
            self.stats.dropped_other_view += 1;
            return;
        };
        let in_cut = d.cut.get(&rec.sender).is_some_and(|spans| {
            spans
                .iter()
                .any(|s| rec.link_seq >= s.from && rec.link_seq < s.end())
        });
        let relevant = (h.view == c.old.id || h.view == c.old.id + 1)
            && !c.joining
            && rec.sender != self.cfg.me
            && c.old.contains_id(rec.sender)
            && in_cut;
        if !relevant {
            self.stats.dropped_other_view += 1;
            return;
        }
        self.accept_record(now, rec);
    }

    /// A VIEW frame from a member we listen to (or from a process asking to
    /// join).
    pub(super) fn on_view_frame(&mut self, now: Time, h: &Header, frame: ViewFrame) {
        let head = frame.head;
        let ballot = Ballot {
            round: head.round,
            coord: head.coord,
        };
        match head.msg {
            ViewMsgKind::Propose => {
                let Some(items) = self.assemble(h.from, &frame) else {
                    return;
                };
                let members = members_of(&items);
                self.on_propose(now, h, head.old_view, ballot, members);
            }
            ViewMsgKind::State => {
                let Some(c) = &mut self.change else { return };
                if c.ballot != ballot || c.old.id != head.old_view {
                    return;
                }
                let Some(coord) = &mut c.coord else { return };
                if !c
                    .proposal
                    .iter()
                    .any(|m| m.id == h.from && m.incarnation == h.incarnation)
                    || coord.reports.contains_key(&h.from)
                {
                    return;
                }
                let part = coord.partial.entry(h.from).or_default();
                if let Some(items) = part.add(&frame) {
                    let mut report = Report::default();
                    for item in items {
                        report.absorb(item);
                    }
                    coord.partial.remove(&h.from);
                    coord.reports.insert(h.from, report);
                }
            }
            ViewMsgKind::Install => {
                let Some(items) = self.assemble(u16::MAX, &frame) else {
                    return;
                };
                let mut decision = Decision::default();
                for item in items {
                    decision.absorb(item);
                }
                self.on_install(now, head.old_view, ballot, decision);
            }
            ViewMsgKind::RelayRequest => self.on_relay_request(h.from, head.old_view, &frame),
            ViewMsgKind::Suspect => {
                if self.phase == Phase::Handshake && self.change.is_none() {
                    return;
                }
                for item in frame.items() {
                    if let Item::Member { id, incarnation } = item
                        && self.view.incarnation_of(id) == Some(incarnation)
                        && id != self.cfg.me
                    {
                        self.hearsay.insert(id);
                    }
                }
            }
            ViewMsgKind::NotMember => {
                let known = self.view.incarnation_of(h.from) == Some(h.incarnation);
                if self.phase != Phase::Handshake && known && head.old_view > self.view.id {
                    self.fail(PeerError::Excluded {
                        view: self.view.id,
                        detail: format!(
                            "member {} is in view {} and we are not in it",
                            h.from, head.old_view
                        ),
                    });
                }
            }
        }
    }

    /// Collects the parts of a multi-part message; `key` separates
    /// concurrent messages (by sender, or `u16::MAX` for decisions, whose
    /// parts are the same whoever resends them).
    fn assemble(&mut self, key: MemberId, frame: &ViewFrame) -> Option<Vec<Item>> {
        if frame.head.parts == 1 {
            return Some(frame.items().collect());
        }
        self.assemblies.entry(key).or_default().add(frame)
    }

    fn on_propose(
        &mut self,
        now: Time,
        h: &Header,
        old_view: u32,
        ballot: Ballot,
        members: Vec<MemberRef>,
    ) {
        let me = MemberRef {
            id: self.cfg.me,
            incarnation: self.cfg.incarnation,
        };
        if !members.contains(&me) {
            return; // not accepted; if it is installed, we will be told
        }
        // A process that never established a view (it is still in its
        // handshake) holds nothing it delivered: it joins, whatever view the
        // group is changing.
        let joining = self.phase == Phase::Handshake;
        if !joining
            && old_view != self.view.id
            && self.change.as_ref().is_none_or(|c| c.old.id != old_view)
        {
            return; // another view's affair
        }
        if old_view == self.view.id {
            self.max_round = self.max_round.max(ballot.round);
        }
        if let Some(c) = &mut self.change {
            if c.decision.is_some() {
                // Decided already: tell the proposer.
                self.queue_install_from_change(h.from);
                return;
            }
            if ballot < c.ballot {
                return;
            }
            if ballot == c.ballot {
                c.report_at = now; // a resend: report again
                return;
            }
        }
        let old = if joining {
            View {
                id: old_view,
                members: Vec::new(),
            }
        } else {
            self.view.clone()
        };
        self.start_change(now, old, ballot, members, joining);
    }

    /// Accepts a proposal: stop sending, drop the excluded, report.
    fn start_change(
        &mut self,
        now: Time,
        old: View,
        ballot: Ballot,
        proposal: Vec<MemberRef>,
        joining: bool,
    ) {
        for m in &old.members {
            if !proposal.contains(m) && m.id != self.cfg.me {
                self.send.deactivate(m.id);
            }
        }
        self.change = Some(Change {
            old,
            ballot,
            proposal,
            joining,
            report_at: now,
            report_backoff: 1,
            decision: None,
            relay_at: now,
            relay_backoff: 1,
            relay_rr: 0,
            coord: None,
        });
        self.stats.view_changes_started += 1;
    }

    /// What we hold of the view being changed.
    fn my_report(&self) -> Report {
        let mut report = Report {
            clock: self.clock.value(),
            ..Report::default()
        };
        let Some(c) = &self.change else {
            return report;
        };
        if c.joining {
            return report;
        }
        let me = self.cfg.me;
        for m in &c.old.members {
            let mut spans = Vec::new();
            if m.id == me {
                spans.push(Span {
                    from: 0,
                    count: self.send.next_seq(),
                });
            } else {
                let recv = &self.members[usize::from(m.id)].recv;
                spans.push(Span {
                    from: 0,
                    count: recv.released(),
                });
                if self.cfg.order == OrderKind::None {
                    // `none` delivers records past a gap: they count.
                    spans.extend(recv.early_seqs().map(|s| Span { from: s, count: 1 }));
                }
            }
            report.holds.insert(m.id, merge(spans));
        }
        report.finished = self.finished_members.clone();
        if self.finished {
            report.finished.insert(MemberRef {
                id: me,
                incarnation: self.cfg.incarnation,
            });
        }
        report
    }

    fn on_install(&mut self, now: Time, old_view: u32, ballot: Ballot, decision: Decision) {
        let me = MemberRef {
            id: self.cfg.me,
            incarnation: self.cfg.incarnation,
        };
        let in_handshake = self.phase == Phase::Handshake;
        let ours =
            old_view == self.view.id || self.change.as_ref().is_some_and(|c| c.old.id == old_view);
        if !ours && !in_handshake {
            return; // an old decision, already installed (or not ours)
        }
        if !decision.members.contains(&me) {
            if ours && !in_handshake {
                self.fail(PeerError::Excluded {
                    view: self.view.id,
                    detail: format!("view {} was installed without us", old_view + 1),
                });
            }
            return;
        }
        if self.change.as_ref().is_some_and(|c| c.decision.is_some()) {
            return; // we know it already
        }
        let joining = in_handshake;
        if self.change.is_none() {
            let old = if joining {
                View {
                    id: old_view,
                    members: Vec::new(),
                }
            } else {
                self.view.clone()
            };
            self.start_change(now, old, ballot, decision.members.clone(), joining);
        }
        if let Some(c) = &mut self.change {
            c.ballot = ballot;
            c.proposal = decision.members.clone();
            c.decision = Some(decision);
            c.relay_at = now;
        }
        self.finish_flush(now);
    }

    fn on_relay_request(&mut self, to: MemberId, old_view: u32, frame: &ViewFrame) {
        let mut records = Vec::new();
        for item in frame.items() {
            let Item::Range {
                sender,
                from,
                count,
            } = item
            else {
                continue;
            };
            let end = from.saturating_add(count);
            let mut seq = from;
            while seq < end && records.len() < RELAY_BURST {
                if let Some(r) = self.record_of_old_view(old_view, sender, seq) {
                    records.push(r);
                }
                seq += 1;
            }
        }
        self.members[usize::from(to)].relay_out.extend(records);
    }

    /// A record of view `old_view`'s streams, if we hold it.
    fn record_of_old_view(&self, old_view: u32, sender: MemberId, seq: u64) -> Option<Record> {
        if let Some(p) = &self.past
            && p.old_view == old_view
        {
            return p.store.get(&(sender, seq)).cloned();
        }
        if old_view != self.view.id {
            return None;
        }
        if sender == self.cfg.me {
            self.send.get(seq).cloned()
        } else {
            self.members
                .get(usize::from(sender))
                .and_then(|m| m.recv.get(seq))
                .cloned()
        }
    }

    /// The records of the decided cut we do not hold yet.
    fn missing(&self) -> Vec<(MemberId, Span)> {
        let Some(c) = &self.change else {
            return Vec::new();
        };
        let Some(d) = &c.decision else {
            return Vec::new();
        };
        if c.joining {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (&sender, spans) in &d.cut {
            if sender == self.cfg.me || !c.old.contains_id(sender) {
                continue;
            }
            let recv = &self.members[usize::from(sender)].recv;
            let early: BTreeSet<u64> = recv.early_seqs().collect();
            for s in spans {
                let mut seq = s.from.max(recv.released());
                let mut run: Option<Span> = None;
                while seq < s.end() {
                    if early.contains(&seq) {
                        if let Some(r) = run.take() {
                            out.push((sender, r));
                        }
                    } else {
                        match &mut run {
                            Some(r) => r.count += 1,
                            None => {
                                run = Some(Span {
                                    from: seq,
                                    count: 1,
                                })
                            }
                        }
                    }
                    seq += 1;
                    if out.len() > 64 {
                        break;
                    }
                }
                if let Some(r) = run {
                    out.push((sender, r));
                }
            }
        }
        out
    }

    /// With the decision known: fetch what we lack, or, holding it all,
    /// deliver the rest of the old view and install the new one.
    fn finish_flush(&mut self, now: Time) {
        if self.change.as_ref().is_none_or(|c| c.decision.is_none()) {
            return;
        }
        let missing = self.missing();
        if !missing.is_empty() {
            self.request_relays(now, &missing);
            return;
        }
        let (old, decision, joining) = match &self.change {
            Some(Change {
                old,
                decision: Some(d),
                joining,
                ..
            }) => (old.clone(), d.clone(), *joining),
            _ => return,
        };
        if !joining {
            // The set is final: drop what waits past the cut of a member
            // that left (nobody will deliver it), then deliver everything.
            for m in &old.members {
                if m.id == self.cfg.me || decision.members.contains(m) {
                    continue;
                }
                let end = decision
                    .cut
                    .get(&m.id)
                    .and_then(|spans| spans.last())
                    .map_or(0, |s| s.end());
                let recv = &mut self.members[usize::from(m.id)].recv;
                recv.drop_early_from(end.max(recv.released()));
            }
            self.engine.close_view();
            self.deliver_ready(now);
        }
        self.install(now);
    }

    fn request_relays(&mut self, now: Time, missing: &[(MemberId, Span)]) {
        let Some(c) = &mut self.change else { return };
        if now < c.relay_at {
            return;
        }
        let Some(d) = &c.decision else { return };
        let rtt = rtt_of(&self.cfg);
        c.relay_at = now + rtt.backed_off(c.relay_backoff);
        c.relay_backoff = (c.relay_backoff * 2).min(64);
        // Ask, in turn, the donors of the first stream we miss records of,
        // then anyone of the new view (who holds the whole cut once it
        // installed).
        let sender = missing[0].0;
        let mut candidates: Vec<MemberId> = d.donors.get(&sender).cloned().unwrap_or_default();
        candidates.extend(d.members.iter().map(|m| m.id));
        candidates.retain(|&k| k != self.cfg.me && !self.suspects.contains(&k));
        if candidates.is_empty() {
            return;
        }
        let donor = candidates[c.relay_rr % candidates.len()];
        c.relay_rr += 1;
        let items: Vec<Item> = missing
            .iter()
            .map(|(sender, s)| Item::Range {
                sender: *sender,
                from: s.from,
                count: s.count,
            })
            .collect();
        let head = ViewHead {
            msg: ViewMsgKind::RelayRequest,
            old_view: c.old.id,
            round: c.ballot.round,
            coord: c.ballot.coord,
            part: 0,
            parts: 1,
        };
        let parts = split_parts(&items);
        let items = parts.first().map(|p| p.to_vec()).unwrap_or_default();
        self.members[usize::from(donor)]
            .view_out
            .push_back((head, items));
        self.stats.relay_requests += 1;
    }

    /// Installs the decided view: fresh streams and engine, the clock raised
    /// to the floor, and a `View` event.
    fn install(&mut self, now: Time) {
        let Some(change) = self.change.take() else {
            return;
        };
        let Some(decision) = change.decision else {
            self.change = Some(Change {
                decision: None,
                ..change
            });
            return;
        };
        let old = change.old;
        let new = View {
            id: old.id + 1,
            members: decision.members.clone(),
        };
        let left: Vec<MemberId> = if change.joining {
            Vec::new()
        } else {
            old.members
                .iter()
                .filter(|m| !new.members.contains(m))
                .map(|m| m.id)
                .collect()
        };
        let joined: Vec<MemberId> = if change.joining {
            new.ids()
        } else {
            new.members
                .iter()
                .filter(|m| !old.members.contains(m))
                .map(|m| m.id)
                .collect()
        };
        // Keep the cut's records, to relay them to members still fetching.
        let mut store = BTreeMap::new();
        if !change.joining {
            for (&sender, spans) in &decision.cut {
                for s in spans {
                    let mut seq = s.from;
                    while seq < s.end() {
                        if let Some(r) = self.record_of_old_view(old.id, sender, seq) {
                            store.insert((sender, seq), r);
                        }
                        seq += 1;
                    }
                }
            }
        }
        if self.clock.observe(decision.clock).is_err() {
            self.stats.dropped_bad_stamp += 1; // a clock no sane member reports
        }
        self.finished_members
            .extend(decision.finished.iter().copied());
        // Fresh streams and engine for the new view.
        let window = self.cfg.window;
        for m in &mut self.members {
            m.new_view(now, window);
        }
        self.members[usize::from(self.cfg.me)].ack_due = None;
        self.send = SendStream::new(self.cfg.me, self.cfg.members, window, &rtt_of(&self.cfg));
        self.engine = self.cfg.order.engine(self.cfg.me, self.cfg.members);
        for k in 0..self.cfg.members as MemberId {
            if !new.contains_id(k) {
                self.send.deactivate(k);
                self.engine.exclude(k);
            }
        }
        self.stall_deadline = None;
        self.stall_backoff = 1;
        self.suspects.clear();
        self.hearsay.clear();
        self.joiners.retain(|&id, &mut inc| {
            !new.members.contains(&MemberRef {
                id,
                incarnation: inc,
            })
        });
        self.max_round = 0;
        self.assemblies.clear();
        let rtt = rtt_of(&self.cfg);
        self.past = Some(Past {
            old_view: old.id,
            new_view: new.id,
            ballot: change.ballot,
            decision,
            store,
            seen: [self.cfg.me].into(),
            coordinated: change.coord.is_some(),
            resend_at: now + rtt.rto(),
            resend_backoff: 1,
        });
        self.view = new;
        self.stats.views_installed += 1;
        if self.phase == Phase::Handshake {
            self.phase = Phase::Running;
            self.events.push_back(Event::Ready);
            self.liveness_at = Some(now + self.cfg.keepalive);
        }
        self.events.push_back(Event::View {
            id: self.view.id,
            members: self.view.ids(),
            joined,
            left,
        });
    }

    /// The first view is established by the handshake: every member heard
    /// from every other.
    pub(super) fn view_established(&mut self, now: Time) {
        let _ = now;
        self.events.push_back(Event::View {
            id: self.view.id,
            members: self.view.ids(),
            joined: self.view.ids(),
            left: Vec::new(),
        });
    }

    /// The members we would propose for the next view.
    fn desired_members(&self) -> Vec<MemberRef> {
        let ours = |m: &&MemberRef| !self.suspects.contains(&m.id);
        let mut out: Vec<MemberRef> = self
            .view
            .members
            .iter()
            .filter(ours)
            .filter(|m| !self.hearsay.contains(&m.id))
            .copied()
            .collect();
        if !self.view.is_majority(&out) {
            // Hearsay alone never makes us give up.
            out = self.view.members.iter().filter(ours).copied().collect();
        }
        for (&id, &incarnation) in &self.joiners {
            let m = MemberRef { id, incarnation };
            if !out.iter().any(|o| o.id == id) {
                out.push(m);
            }
        }
        out.sort();
        out
    }

    /// After every input: start or refresh a proposal if we coordinate,
    /// decide when every report is in, finish the flush when we can.
    pub(super) fn view_progress(&mut self, now: Time) {
        if self.phase == Phase::Failed {
            return;
        }
        let established = self.phase != Phase::Handshake || self.change.is_some();
        let pending_change =
            !self.suspects.is_empty() || !self.hearsay.is_empty() || !self.joiners.is_empty();
        if established && pending_change {
            let coord = self.view.coordinator(&self.suspects);
            let deciding = self.change.as_ref().is_some_and(|c| c.decision.is_some());
            if coord == Some(self.cfg.me) && !deciding {
                let desired = self.desired_members();
                let current = self
                    .change
                    .as_ref()
                    .filter(|c| c.coord.is_some() && c.old.id == self.view.id)
                    .map(|c| c.proposal.clone());
                if current.as_ref() != Some(&desired) {
                    self.propose(now, desired);
                }
            } else if coord.is_none() {
                self.fail_minority();
            }
        }
        // The coordinator: decide once every proposed member has reported.
        let ready = self.change.as_ref().is_some_and(|c| {
            c.decision.is_none()
                && c.coord
                    .as_ref()
                    .is_some_and(|co| c.proposal.iter().all(|m| co.reports.contains_key(&m.id)))
        });
        if ready {
            self.decide(now);
        }
        self.finish_flush(now);
    }

    fn fail_minority(&mut self) {
        let reachable: Vec<MemberId> = self
            .view
            .ids()
            .into_iter()
            .filter(|id| !self.suspects.contains(id))
            .collect();
        if self.phase == Phase::Handshake {
            let missing: Vec<MemberId> = self.suspects.iter().copied().collect();
            let mismatched = missing
                .iter()
                .copied()
                .filter(|k| self.members[usize::from(*k)].mismatched)
                .collect();
            self.fail(PeerError::HandshakeTimeout {
                missing,
                mismatched,
                after: self.cfg.handshake_timeout,
            });
        } else {
            self.fail(PeerError::Minority {
                view: self.view.id,
                members: self.view.ids(),
                reachable,
            });
        }
    }

    fn propose(&mut self, now: Time, members: Vec<MemberRef>) {
        if !self.view.is_majority(&members) {
            self.fail_minority();
            return;
        }
        let ballot = Ballot {
            round: self.max_round + 1,
            coord: self.cfg.me,
        };
        self.max_round = ballot.round;
        self.start_change(now, self.view.clone(), ballot, members.clone(), false);
        let report = self.my_report();
        if let Some(c) = &mut self.change {
            let mut coord = Coord {
                reports: BTreeMap::new(),
                partial: BTreeMap::new(),
                proposed_at: now,
                resend_at: now + rtt_of(&self.cfg).rto(),
                resend_backoff: 1,
            };
            coord.reports.insert(self.cfg.me, report);
            c.coord = Some(coord);
        }
        for m in &members {
            if m.id != self.cfg.me {
                self.queue_message(m.id, ViewMsgKind::Propose, &member_items(&members));
            }
        }
    }

    fn decide(&mut self, now: Time) {
        let Some(c) = &mut self.change else { return };
        let Some(coord) = &c.coord else { return };
        let decision = Decision::decide(
            &c.old,
            c.proposal.clone(),
            &coord.reports,
            self.cfg.order == OrderKind::None,
        );
        c.decision = Some(decision.clone());
        c.relay_at = now;
        let items = decision.to_items();
        for m in &decision.members {
            if m.id != self.cfg.me {
                self.queue_message(m.id, ViewMsgKind::Install, &items);
            }
        }
    }

    /// Queues every part of a message of the current change to `to`.
    fn queue_message(&mut self, to: MemberId, msg: ViewMsgKind, items: &[Item]) {
        let Some(c) = &self.change else { return };
        let parts = split_parts(items);
        let n = parts.len() as u8;
        for (i, part) in parts.into_iter().enumerate() {
            let head = ViewHead {
                msg,
                old_view: c.old.id,
                round: c.ballot.round,
                coord: c.ballot.coord,
                part: i as u8,
                parts: n,
            };
            self.members[usize::from(to)]
                .view_out
                .push_back((head, part.to_vec()));
        }
    }

    /// Sends the decision of the change under way to `to`.
    fn queue_install_from_change(&mut self, to: MemberId) {
        let Some(c) = &self.change else { return };
        let Some(d) = &c.decision else { return };
        let items = d.to_items();
        self.queue_message(to, ViewMsgKind::Install, &items);
    }

    /// Sends the last installed decision again to `to`.
    fn queue_install(&mut self, to: MemberId) {
        let Some(p) = &self.past else { return };
        let items = p.decision.to_items();
        let parts = split_parts(&items);
        let n = parts.len() as u8;
        let heads: Vec<(ViewHead, Vec<Item>)> = parts
            .into_iter()
            .enumerate()
            .map(|(i, part)| {
                (
                    ViewHead {
                        msg: ViewMsgKind::Install,
                        old_view: p.old_view,
                        round: p.ballot.round,
                        coord: p.ballot.coord,
                        part: i as u8,
                        parts: n,
                    },
                    part.to_vec(),
                )
            })
            .collect();
        self.members[usize::from(to)].view_out.extend(heads);
    }

    /// The view timers: the failure detector, resent reports, proposals,
    /// decisions and relay requests, and notices to the coordinator.
    /// Whether the failure detector watches member `k`: after completion a
    /// satisfied member may simply have left, and its silence means
    /// nothing. (The deadline and the check must agree, or a deadline that
    /// never fires would be polled for ever.) But a member another
    /// survivor suspects is watched again: that survivor may still need the
    /// silent member's records, and only a view change — which we, as the
    /// next coordinator, may have to start — can give them to it (found by
    /// the model checker: a completed coordinator-to-be ignored a crash that
    /// left the third member stuck for ever).
    fn watched(&self, k: usize) -> bool {
        !(self.phase == Phase::Completed
            && self.satisfied(k)
            && !self.hearsay.contains(&(k as MemberId)))
    }

    pub(super) fn view_timeouts(&mut self, now: Time) {
        let me = self.cfg.me;
        // The failure detector.
        if self.phase == Phase::Handshake {
            if self.change.is_none() && now >= self.started + self.cfg.handshake_timeout {
                let silent: Vec<MemberId> = (0..self.cfg.members as MemberId)
                    .filter(|&k| k != me && !self.members[usize::from(k)].alive)
                    .collect();
                if silent.is_empty() {
                    return;
                }
                // Those who did hear each other go on without the silent
                // ones, if they are a majority.
                self.suspects.extend(silent);
                let coord = self.view.coordinator(&self.suspects);
                if coord == Some(me) {
                    let desired = self.desired_members();
                    self.propose(now, desired);
                } else if coord.is_none() {
                    self.fail_minority();
                }
            }
            // A joiner has no view to watch yet: it only repeats its report.
            self.change_timeouts(now);
            return;
        }
        for m in self.view.members.clone() {
            if m.id == me || self.suspects.contains(&m.id) {
                continue;
            }
            let k = usize::from(m.id);
            let silent = now.saturating_since(self.members[k].last_heard) >= self.cfg.suspect_after;
            if silent && self.watched(k) {
                self.suspects.insert(m.id);
                self.stats.suspicions += 1;
            }
        }
        // Joiners that went quiet are forgotten.
        let quiet: Vec<MemberId> = self
            .joiners
            .keys()
            .copied()
            .filter(|&k| {
                now.saturating_since(self.members[usize::from(k)].last_heard)
                    >= self.cfg.suspect_after
            })
            .collect();
        for k in quiet {
            self.joiners.remove(&k);
        }
        // Tell the coordinator whom we suspect.
        if !self.suspects.is_empty()
            && now >= self.suspect_notice_at
            && let Some(coord) = self.view.coordinator(&self.suspects)
            && coord != me
        {
            self.suspect_notice_at = now + self.cfg.heartbeat;
            let items: Vec<Item> = self
                .view
                .members
                .iter()
                .filter(|m| self.suspects.contains(&m.id))
                .map(|m| Item::Member {
                    id: m.id,
                    incarnation: m.incarnation,
                })
                .collect();
            let head = ViewHead {
                msg: ViewMsgKind::Suspect,
                old_view: self.view.id,
                round: 0,
                coord: me,
                part: 0,
                parts: 1,
            };
            self.members[usize::from(coord)]
                .view_out
                .push_back((head, items));
        }
        self.change_timeouts(now);
        self.past_timeouts(now);
    }

    fn change_timeouts(&mut self, now: Time) {
        let rtt = rtt_of(&self.cfg);
        let me = self.cfg.me;
        let Some(c) = &mut self.change else { return };
        // A participant repeats its report until the decision comes; a
        // silent coordinator is caught by the failure detector.
        if c.decision.is_none() && c.coord.is_none() && now >= c.report_at {
            c.report_at = now + rtt.backed_off(c.report_backoff);
            c.report_backoff = (c.report_backoff * 2).min(64);
            let to = c.ballot.coord;
            let report = self.my_report();
            self.queue_message(to, ViewMsgKind::State, &report.to_items());
        }
        // The coordinator repeats its proposal to those who have not
        // reported, and suspects those silent for too long.
        let Some(c) = &mut self.change else { return };
        if let Some(coord) = &mut c.coord
            && c.decision.is_none()
            && now >= coord.resend_at
        {
            coord.resend_at = now + rtt.backed_off(coord.resend_backoff);
            coord.resend_backoff = (coord.resend_backoff * 2).min(64);
            let waiting: Vec<MemberId> = c
                .proposal
                .iter()
                .map(|m| m.id)
                .filter(|id| *id != me && !coord.reports.contains_key(id))
                .collect();
            let items = member_items(&c.proposal);
            // A member that has not reported is given up when it has
            // also gone silent, or after three detector periods in any
            // case (it may be live but unable to reach us). Giving up on
            // time alone would exclude a live member whose reports were
            // lost a few times (seen failing: three reports lost in a
            // row cost a healthy majority its majority).
            let since_proposal = now.saturating_since(coord.proposed_at);
            let long = since_proposal >= self.cfg.suspect_after * 3;
            for id in waiting {
                self.queue_message(id, ViewMsgKind::Propose, &items);
                let silent = now.saturating_since(self.members[usize::from(id)].last_heard)
                    >= self.cfg.suspect_after;
                if (long || (silent && since_proposal >= self.cfg.suspect_after))
                    && self.joiners.remove(&id).is_none()
                {
                    self.suspects.insert(id);
                }
            }
        }
        // A decided member still fetching asks donors again.
        let missing = self.missing();
        if !missing.is_empty() {
            self.request_relays(now, &missing);
        }
    }

    fn past_timeouts(&mut self, now: Time) {
        let Some(p) = &mut self.past else { return };
        let all_seen = p.decision.members.iter().all(|m| p.seen.contains(&m.id));
        if all_seen {
            self.past = None; // everyone installed: nobody needs the cut any more
            return;
        }
        if !p.coordinated || now < p.resend_at {
            return;
        }
        p.resend_at = now + rtt_of(&self.cfg).backed_off(p.resend_backoff);
        p.resend_backoff = (p.resend_backoff * 2).min(64);
        let unseen: Vec<MemberId> = p
            .decision
            .members
            .iter()
            .map(|m| m.id)
            .filter(|id| !p.seen.contains(id))
            .collect();
        for id in unseen {
            self.queue_install(id);
        }
    }

    /// The view timers' deadlines.
    pub(super) fn view_deadlines(&self, consider: &mut impl FnMut(Option<Time>)) {
        if self.phase == Phase::Handshake {
            if self.change.is_none() {
                consider(Some(self.started + self.cfg.handshake_timeout));
            }
        } else {
            for m in &self.view.members {
                if m.id != self.cfg.me
                    && !self.suspects.contains(&m.id)
                    && self.watched(usize::from(m.id))
                {
                    consider(Some(
                        self.members[usize::from(m.id)].last_heard + self.cfg.suspect_after,
                    ));
                }
            }
            for &k in self.joiners.keys() {
                consider(Some(
                    self.members[usize::from(k)].last_heard + self.cfg.suspect_after,
                ));
            }
            if self
                .view
                .coordinator(&self.suspects)
                .is_some_and(|c| c != self.cfg.me && !self.suspects.is_empty())
            {
                consider(Some(self.suspect_notice_at));
            }
        }
        if let Some(c) = &self.change {
            if c.decision.is_none() && c.coord.is_none() {
                consider(Some(c.report_at));
            }
            if let Some(coord) = &c.coord
                && c.decision.is_none()
            {
                consider(Some(coord.resend_at));
            }
            if c.decision.is_some() {
                consider(Some(c.relay_at));
            }
        }
        if let Some(p) = &self.past
            && p.coordinated
        {
            consider(Some(p.resend_at));
        }
    }
}

/// The members a PROPOSE or INSTALL lists.
fn members_of(items: &[Item]) -> Vec<MemberRef> {
    let mut out: Vec<MemberRef> = items
        .iter()
        .filter_map(|i| match *i {
            Item::Member { id, incarnation } => Some(MemberRef { id, incarnation }),
            _ => None,
        })
        .collect();
    out.sort();
    out.dedup_by_key(|m| m.id);
    out
}

fn member_items(members: &[MemberRef]) -> Vec<Item> {
    members
        .iter()
        .map(|m| Item::Member {
            id: m.id,
            incarnation: m.incarnation,
        })
        .collect()
}
