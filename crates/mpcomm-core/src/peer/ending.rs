//! The end of a run: completion, and when a peer may leave.
//!
//! A peer has **completed** when every member of its current view has ended
//! its stream and it has delivered all of it (members that left the group
//! are no longer waited for; members that joined late need only have ended
//! what they sent since). It must not vanish yet: completion does not mean
//! the others hold our records (our retransmissions to a member may all
//! have been lost), nor that they heard our clock (a member's total-order
//! deliveries may wait for it).
//!
//! So a completed peer stays until, for every other member of its view, one
//! of these holds:
//!
//! * it is **satisfied** — it acknowledged every record of ours and told us
//!   it completed (the `DONE` flag of its ACKs) — and it **confirmed** that
//!   it knows we completed (the `DONE_SEEN` flag);
//! * it is satisfied, but has been silent for a *close wait* (8 RTOs, at
//!   most `max_rto`): it left before its confirmation reached us;
//! * it is **gone**: silent for [`crate::Config::peer_timeout`].
//!
//! Before it leaves it sends everyone one last ACK, so that a member that
//! was only waiting for our confirmation need not wait for us. The last
//! message of a conversation can always be lost (the "two generals"
//! problem), so someone must wait after sending it; here the one who waits
//! is the one whose news may be missing elsewhere.

use std::time::Duration;

use super::{Event, Peer, Phase};
use crate::time::Time;
use crate::wire::MemberId;

impl Peer {
    /// Whether the peer may stop at `now`: it failed; or it completed, no
    /// view change is under way, and every other member of the view is
    /// *gone* (silent for [`crate::Config::peer_timeout`]) or satisfied —
    /// it acknowledged all our records and told us it completed — and
    /// either confirmed that it knows we completed, or has been silent for a
    /// close wait (it left; its confirmation was lost).
    ///
    /// A caller that stops earlier may leave a member without our records,
    /// without the clock it needs to deliver, or waiting for our news.
    /// [`Peer::poll_timeout`] includes the moment this becomes true, so a
    /// caller that polls it needs no timer of its own; before it returns
    /// true the peer queues a last ACK to everyone, so call
    /// [`Peer::poll_transmit`] before stopping.
    pub fn may_leave(&self, now: Time) -> bool {
        match self.phase {
            Phase::Failed => true,
            Phase::Completed => self.leave_at().is_some_and(|t| now >= t),
            _ => false,
        }
    }

    /// When we may leave if nothing more arrives: the latest of the moments
    /// at which each member stops holding us.
    pub(super) fn leave_at(&self) -> Option<Time> {
        if self.phase != Phase::Completed || self.change.is_some() {
            return None;
        }
        let close_wait = self.close_wait();
        let mut at = self.completed_at;
        for id in self.view.ids() {
            if id == self.cfg.me {
                continue;
            }
            let k = usize::from(id);
            let m = &self.members[k];
            let until = if !self.satisfied(k) {
                m.last_heard + self.cfg.peer_timeout // gone by then
            } else if m.confirmed {
                continue;
            } else {
                m.last_heard + close_wait // left without our confirmation
            };
            at = at.max(until);
        }
        Some(at)
    }

    /// How long a satisfied member that has not confirmed our completion
    /// must be silent before we take it as gone: long enough for its probes
    /// (they come every round trip or so) to reach us a few times, never
    /// beyond the repair cap.
    fn close_wait(&self) -> Duration {
        let me = self.cfg.me;
        let rto = self
            .view
            .ids()
            .into_iter()
            .filter(|k| *k != me)
            .map(|k| self.send.rto(k))
            .max()
            .unwrap_or(self.cfg.min_rto);
        rto.saturating_mul(8).min(self.cfg.max_rto)
    }

    /// Member `k` needs nothing more from us: it holds all our records and
    /// has completed.
    pub(super) fn satisfied(&self, k: usize) -> bool {
        self.members[k].done && self.send.all_acked_by(k as MemberId)
    }

    /// Completes the run if every member of the view has ended its stream
    /// and we delivered it all.
    pub(super) fn check_completed(&mut self, now: Time) {
        if self.phase != Phase::Running
            || self.change.is_some()
            || !self
                .view
                .members
                .iter()
                .all(|m| self.finished_members.contains(m))
        {
            return;
        }
        self.phase = Phase::Completed;
        self.completed_at = now;
        self.events.push_back(Event::Completed);
        let me = self.cfg.me;
        for id in self.view.ids() {
            if id != me {
                let rto = self.send.rto(id);
                let m = &mut self.members[usize::from(id)];
                m.ack_due = Some(now); // tell everyone we are done
                m.end_probe_at = Some(now + rto);
                m.end_probe_backoff = 1;
            }
        }
    }

    /// When we may leave, queue a last ACK to everyone still there: it tells
    /// each that we completed and that we know it did, so that nobody waits
    /// for us after we are gone.
    pub(super) fn prepare_to_leave(&mut self, now: Time) {
        if self.phase != Phase::Completed || self.farewell_sent || !self.may_leave(now) {
            return;
        }
        self.farewell_sent = true;
        let me = self.cfg.me;
        for id in self.view.ids() {
            let m = &mut self.members[usize::from(id)];
            if id != me && now.saturating_since(m.last_heard) < self.cfg.peer_timeout {
                m.ack_due = Some(now);
            }
        }
    }
}
