//! The handshake, the reliable streams of the current view, and delivery
//! through the ordering engine.
//!
//! Everything here concerns one view: our own stream (`Peer::send`), each
//! member's stream as we receive it (`Member::recv`), the acknowledgements
//! and NAKs that keep them reliable, and the ordering engine that turns the
//! records into deliveries. A view change (the `change` part) ends one set of
//! streams and starts another.

use std::time::Duration;

use bytes::Bytes;

use super::{Event, Peer, Phase};
use crate::clock::MAX_STAMP;
use crate::link::{AckInfo, Arrival};
use crate::membership::MemberRef;
use crate::time::Time;
use crate::trace::{MsgRef, TraceKind};
use crate::wire::{Ack, Hello, MAX_EXT, MemberId, Record, RecordKind};

/// The reliable links' gaps, as [`crate::Ordering::wait_reason`] sees them.
pub(super) struct Links<'a>(pub(super) &'a [super::member::Member]);

impl crate::order::LinkGaps for Links<'_> {
    fn members(&self) -> usize {
        self.0.len()
    }

    fn gap(&self, sender: MemberId) -> Option<(MsgRef, u64)> {
        let recv = &self.0.get(usize::from(sender))?.recv;
        recv.first_early().map(|r| (MsgRef::of(r), recv.released()))
    }
}

impl Peer {
    /// Records a trace event, when tracing is on ([`crate::Config::trace`]).
    pub(super) fn trace_event(&mut self, now: Time, kind: TraceKind) {
        if self.trace.is_some() {
            let (clock, vector) = (self.clock.value(), self.engine.vector_clock());
            if let Some(t) = self.trace.as_mut() {
                t.record(now, clock, vector, kind);
            }
        }
    }

    pub(super) fn on_hello(&mut self, now: Time, from: MemberId, hello: Hello, is_ack: bool) {
        let m = &mut self.members[usize::from(from)];
        if usize::from(hello.members) != self.cfg.members || hello.digest != self.digest {
            m.mismatched = true;
            self.stats.dropped_config_mismatch += 1;
            return;
        }
        m.alive = true;
        m.last_heard = now;
        if is_ack {
            m.hello_acked = true;
        } else {
            m.hello_ack_due = true;
        }
    }

    pub(super) fn on_ack(&mut self, now: Time, from: MemberId, ack: Ack) {
        if ack.clock > MAX_STAMP {
            self.stats.dropped_bad_stamp += 1;
            return;
        }
        let info = AckInfo {
            cum: ack.cum,
            sack: ack.sack,
            flow: ack.flow,
            nak: ack.nak,
        };
        if self.send.on_ack(from, info, now).is_err() {
            self.stats.protocol_violations += 1;
            return;
        }
        let in_handshake = self.phase == Phase::Handshake;
        let m = &mut self.members[usize::from(from)];
        // Before our first view, only a HELLO says a member heard *this*
        // process (see `on_record`).
        m.alive |= !in_handshake;
        m.last_heard = now;
        m.done |= ack.done;
        m.confirmed |= ack.done_seen;
        m.announced = m.announced.max(ack.sent);
        m.recv.trim(ack.stable);
        if ack.want_reply {
            m.ack_due = Some(now);
        }
        if let Some(clock) = m.recv.bound_from_ack(ack.sent, ack.clock) {
            m.stamp_floor = m.stamp_floor.max(clock);
            self.engine.on_bound(from, clock);
        }
        self.update_gap(usize::from(from), now);
    }

    /// Arms or disarms the NAK timer for member `k`'s stream: armed while we
    /// know we miss records of it (we hold later ones, or it announced more
    /// than we hold). The first NAK waits half a round trip, so that records
    /// merely overtaken by others are not asked for.
    pub(super) fn update_gap(&mut self, k: usize, now: Time) {
        let spacing = self.send.repair_spacing(k as MemberId);
        let m = &mut self.members[k];
        let missing = m.recv.early_len() > 0 || m.announced > m.recv.released();
        if !missing {
            m.nak_at = None;
            m.nak_backoff = 1;
            m.nak_due = false;
        } else if m.nak_at.is_none() {
            m.nak_at = Some(now + spacing);
        }
    }

    pub(super) fn on_record(&mut self, now: Time, from: MemberId, rec: Record) {
        let idx = usize::from(from);
        let in_handshake = self.phase == Phase::Handshake;
        let m = &mut self.members[idx];
        // Before our first view, a record does not tell us that its sender
        // is up for *us*: it may be meant for an earlier process under our
        // id (we restarted, and it still resends to that one), and taking it
        // as a greeting would make us start a view of our own. Only a HELLO
        // does; a restarted process then joins through a view change.
        m.alive |= !in_handshake;
        m.last_heard = now;
        if !self.accept_record(now, rec) {
            // A duplicate (our ack may have been lost: say again what we
            // have), or out of the window.
            self.members[idx].ack_due = Some(now);
            return;
        }
        // Acknowledge to the sender; with `total`, every member must also
        // learn that our clock has moved past this record.
        let due = now + self.cfg.ack_delay;
        let me = usize::from(self.cfg.me);
        let to_all = self.engine.acks_to_all();
        for (k, m) in self.members.iter_mut().enumerate() {
            if k == idx || (to_all && k != me) {
                m.ack_due = Some(m.ack_due.map_or(due, |d| d.min(due)));
            }
        }
        self.update_gap(idx, now);
    }

    /// Offers a record of `rec.sender`'s stream — received from it, or
    /// relayed by another member during a view change — to that stream and,
    /// in order, to the ordering engine. Returns whether it was new.
    pub(super) fn accept_record(&mut self, now: Time, rec: Record) -> bool {
        let idx = usize::from(rec.sender);
        let m = &mut self.members[idx];
        // Clock sanity before the record touches anything: a stamp above the
        // bound, or (when it is the next record of the stream, so its
        // predecessor is known) not above its sender's floor, is dropped
        // unstored, so a genuine record of that position can still come.
        if rec.stamp > MAX_STAMP
            || (rec.link_seq == m.recv.released() && rec.stamp <= m.stamp_floor)
        {
            self.stats.dropped_bad_stamp += 1;
            return false;
        }
        match m.recv.classify(rec.link_seq) {
            Arrival::Duplicate => {
                self.stats.duplicates += 1;
                return false;
            }
            Arrival::OutOfWindow => {
                self.stats.dropped_out_of_window += 1;
                return false;
            }
            Arrival::New => {}
        }
        if self.clock.observe(rec.stamp).is_err() {
            self.stats.dropped_bad_stamp += 1; // (checked above; kept for safety)
            return false;
        }
        self.engine.on_arrival(&rec);
        self.trace_event(now, TraceKind::Arrive(MsgRef::of(&rec)));
        let m = &mut self.members[idx];
        m.recv.insert(rec, &mut self.released);
        let mut released = std::mem::take(&mut self.released);
        for r in released.drain(..) {
            if let Some(count) = self.members[idx].eos
                && matches!(r.kind, RecordKind::Data { seq } if seq >= count)
            {
                self.stats.protocol_violations += 1; // data beyond its own end-of-stream count
            }
            if matches!(r.kind, RecordKind::Control) {
                // An engine's control record is consumed as the link releases
                // it; data and end-of-stream records count when delivered.
                self.members[idx].consumed += 1;
            }
            let m = &mut self.members[idx];
            // A record that arrived early is checked when its turn comes: its
            // stamp must exceed its predecessor's and every clock its sender
            // promised for this position. If not, the ordering engine never
            // sees it (it would be sorted before records already delivered).
            if r.stamp <= m.stamp_floor {
                self.stats.dropped_bad_stamp += 1;
            } else {
                m.stamp_floor = r.stamp;
                self.engine.on_fifo(r);
            }
        }
        self.released = released;
        // An ACK's claim waiting for these records holds once all of them
        // are through: not earlier, since the link released the whole batch
        // at once and a claim made after record k says nothing about the
        // records before k still in the batch.
        let m = &mut self.members[idx];
        if let Some(clock) = m.recv.take_ready_bound() {
            m.stamp_floor = m.stamp_floor.max(clock);
            self.engine.on_bound(idx as MemberId, clock);
        }
        true
    }

    /// Stamps a record of ours, puts it in our stream and passes it through
    /// our own ordering engine like anyone else's.
    pub(super) fn push_own(&mut self, now: Time, kind: RecordKind, payload: Bytes) {
        let mut ext = self.engine.outgoing_ext();
        if ext.len() > MAX_EXT {
            ext.truncate(MAX_EXT); // an engine bug; never let it break the wire
            self.stats.protocol_violations += 1;
        }
        let Some(stamp) = self.clock.tick() else {
            self.fail(super::PeerError::Exhausted);
            return;
        };
        let rec = Record {
            sender: self.cfg.me,
            link_seq: self.send.next_seq(),
            kind,
            stamp,
            ext,
            payload,
        };
        if matches!(kind, RecordKind::Control) {
            // Consumed as soon as our engine has it, like anyone's control
            // records at release.
            self.members[usize::from(self.cfg.me)].consumed += 1;
        }
        self.trace_event(now, TraceKind::Send(MsgRef::of(&rec)));
        self.send.push(rec.clone());
        self.engine.on_arrival(&rec);
        self.engine.on_fifo(rec);
        self.after_input(now);
    }

    /// Passes the barrier if it can; then drains deliveries, checks
    /// completion and arms the stall timer.
    ///
    /// Nothing is delivered before the barrier is passed. Records that a
    /// faster member sends us during our handshake are kept (and
    /// acknowledged), and wait in the ordering engine: an application learns
    /// of the group with [`Event::Ready`] and may not read deliveries before
    /// it, and a runtime that applies backpressure by not reading its
    /// socket while deliveries go unread would then never hear the members
    /// it still needs for the handshake.
    pub(super) fn after_input(&mut self, now: Time) {
        self.check_ready(now);
        if matches!(self.phase, Phase::Handshake | Phase::Failed) {
            return;
        }
        let delivered_any = self.deliver_ready(now);
        // Engines may emit control records (a sequencer's decisions); not
        // during a view change, when our stream's length is already reported.
        while self.phase == Phase::Running
            && self.change.is_none()
            && self.send.can_push()
            && let Some(body) = self.engine.poll_control()
        {
            self.push_own(now, RecordKind::Control, body);
        }
        if self.trace.is_some() {
            let why = self.engine.wait_reason(&Links(&self.members));
            let (clock, vector) = (self.clock.value(), self.engine.vector_clock());
            if let Some(t) = self.trace.as_mut() {
                t.waiting(now, clock, vector, why);
            }
        }
        let own = self.members[usize::from(self.cfg.me)].consumed;
        self.send.set_own_flow(own);
        let held = self.engine.pending() as u64;
        self.stats.max_held = self.stats.max_held.max(held);
        if delivered_any {
            self.stall_deadline = None;
            self.stall_backoff = 1;
        }
        self.check_completed(now);
        if held > 0 && self.stall_deadline.is_none() {
            self.stall_deadline = Some(now + self.stall_interval());
        }
        self.view_progress(now);
        self.prepare_to_leave(now);
    }

    /// Hands every record the engine will deliver now to the application.
    /// Returns whether anything was delivered.
    pub(super) fn deliver_ready(&mut self, now: Time) -> bool {
        let mut delivered_any = false;
        while let Some(rec) = self.engine.poll_deliver() {
            self.trace_event(now, TraceKind::Deliver(MsgRef::of(&rec)));
            let sender = rec.sender;
            let incarnation = self.view.incarnation_of(sender).unwrap_or(0);
            let m = &mut self.members[usize::from(sender)];
            m.consumed += 1;
            match rec.kind {
                RecordKind::Data { seq } => {
                    self.stats.delivered += 1;
                    self.events.push_back(Event::Deliver(super::Delivery {
                        sender,
                        seq,
                        stamp: rec.stamp,
                        payload: rec.payload,
                    }));
                }
                RecordKind::EndOfStream { count } => {
                    m.eos = Some(count);
                    self.finished_members.insert(MemberRef {
                        id: sender,
                        incarnation,
                    });
                }
                RecordKind::Control => {}
            }
            delivered_any = true;
        }
        delivered_any
    }

    pub(super) fn check_ready(&mut self, now: Time) {
        if self.phase == Phase::Handshake
            && self.change.is_none()
            && self.members.iter().all(|m| m.alive)
        {
            self.phase = Phase::Running;
            self.events.push_back(Event::Ready);
            self.liveness_at = Some(now + self.cfg.keepalive);
            self.view_established(now);
        }
    }

    /// How long deliveries may stall before we ask the members holding them
    /// up for their state: the largest retransmission timeout, so a normal
    /// round trip never triggers it.
    fn stall_interval(&self) -> Duration {
        let me = self.cfg.me;
        let rto = self
            .view
            .members
            .iter()
            .filter(|m| m.id != me)
            .map(|m| self.send.rto(m.id))
            .max();
        rto.unwrap_or(self.cfg.min_rto)
            .saturating_mul(self.stall_backoff)
            .min(self.cfg.max_rto)
    }

    /// Whether we are waiting on `k` for anything.
    fn needs(&self, k: usize) -> bool {
        let m = &self.members[k];
        let id = k as MemberId;
        self.send.outstanding(id) || self.engine.blocked_on(id) || m.eos.is_none()
    }

    /// The stream timers: handshake deadline, retransmissions, stall probes,
    /// NAKs, keepalive requests and the probes after completion.
    pub(super) fn stream_timeouts(&mut self, now: Time) {
        self.send.on_timeout(now);
        if let Some(deadline) = self.stall_deadline
            && now >= deadline
        {
            if self.engine.pending() > 0 {
                let me = self.cfg.me;
                for id in self.view.ids() {
                    if id != me && self.engine.blocked_on(id) {
                        self.members[usize::from(id)].want_reply = true;
                    }
                }
                self.stall_backoff = (self.stall_backoff * 2).min(64);
                self.stall_deadline = Some(now + self.stall_interval());
            } else {
                self.stall_deadline = None;
            }
        }
        let me = self.cfg.me;
        for id in self.view.ids() {
            if id == me {
                continue;
            }
            let k = usize::from(id);
            let completed = self.phase == Phase::Completed;
            let settled = self.satisfied(k) && self.members[k].confirmed;
            let rtt = self.send.rtt(id).clone();
            let m = &mut self.members[k];
            // A NAK for records we know we miss, at doubling intervals.
            if let Some(at) = m.nak_at
                && now >= at
            {
                m.nak_due = true;
                m.ack_due = Some(now);
                m.nak_at = Some(now + rtt.backed_off(m.nak_backoff));
                m.nak_backoff = (m.nak_backoff * 2).min(64);
            }
            // After we completed: ask a member that has not yet acknowledged
            // all our records, told us it completed, or confirmed that it
            // knows we did, at doubling intervals (its answer may be what
            // was lost). Our ACK carries our news.
            if completed
                && let Some(at) = m.end_probe_at
                && now >= at
            {
                if settled {
                    m.end_probe_at = None;
                } else {
                    m.want_reply = true;
                    m.end_probe_at = Some(now + rtt.backed_off(m.end_probe_backoff));
                    m.end_probe_backoff = (m.end_probe_backoff * 2).min(4);
                }
            }
            // Heartbeats: silence must mean trouble, so nobody stays silent
            // towards a member of its view for longer than `heartbeat`.
            if self.phase != Phase::Handshake
                && now.saturating_since(m.last_sent) >= self.cfg.heartbeat
            {
                m.ack_due = Some(m.ack_due.map_or(now, |t| t.min(now)));
            }
        }
        if let Some(at) = self.liveness_at
            && now >= at
        {
            self.check_liveness(now);
        }
    }

    /// Asks members we are waiting for, and have not heard from for a
    /// keepalive period, for their state.
    fn check_liveness(&mut self, now: Time) {
        let me = self.cfg.me;
        for id in self.view.ids() {
            let k = usize::from(id);
            // Once completed, members we wait for are probed by the end
            // probes, and silence is never a failure: a silent member is
            // eventually just gone.
            if id == me || self.phase != Phase::Running || !self.needs(k) {
                continue;
            }
            let m = &mut self.members[k];
            let quiet = now.saturating_since(m.last_heard);
            if quiet >= self.cfg.keepalive
                && m.last_request
                    .is_none_or(|t| now.saturating_since(t) >= self.cfg.keepalive)
            {
                m.want_reply = true;
                m.last_request = Some(now);
            }
        }
        // Check a few times per keepalive period, so a request goes out
        // within about a quarter period of becoming due.
        self.liveness_at = Some(now + self.cfg.keepalive / 4);
    }

    /// The stream timers' deadlines.
    pub(super) fn stream_deadlines(&self, consider: &mut impl FnMut(Option<Time>)) {
        if self.phase == Phase::Handshake {
            for m in &self.members {
                if !m.hello_acked {
                    consider(Some(m.hello_next));
                }
            }
        }
        consider(self.send.next_deadline());
        consider(self.stall_deadline);
        consider(self.liveness_at);
        let me = self.cfg.me;
        for (k, m) in self.members.iter().enumerate() {
            if k == usize::from(me) {
                continue;
            }
            consider(m.ack_due);
            if !self.view.contains_id(k as MemberId) {
                continue;
            }
            consider(m.nak_at);
            if self.phase == Phase::Completed {
                consider(m.end_probe_at);
            }
            if self.phase != Phase::Handshake {
                consider(Some(m.last_sent + self.cfg.heartbeat));
            }
        }
    }
}
