//! The peer state machine: one member of a group, with no I/O.
//!
//! A [`Peer`] is driven entirely by its caller, which loops over:
//!
//! * **inputs** — [`Peer::handle_datagram`] when a datagram arrives,
//!   [`Peer::handle_timeout`] when the time returned by [`Peer::poll_timeout`]
//!   has come, [`Peer::multicast`] and [`Peer::finish`] when the application
//!   sends;
//! * **outputs** — [`Peer::poll_transmit`] until it returns `None` (datagrams
//!   to send), [`Peer::poll_event`] until it returns `None` (the handshake
//!   completed, a message was delivered, the view changed, the run completed
//!   or failed).
//!
//! Every input takes the current [`Time`]; the peer never reads a clock.
//!
//! # A run, from one peer's point of view
//!
//! 1. **Handshake.** The peer sends HELLO to every other member and resends
//!    it (with growing intervals) until that member answers with HELLO_ACK.
//!    When it has heard from every member it emits [`Event::Ready`] and the
//!    first view ([`Event::View`], the run's member list): from then on the
//!    application may multicast. A member that is already past its own
//!    handshake may send us data before we are ready; that data is kept,
//!    never mistaken for a handshake (frames are typed) and never dropped,
//!    and it is delivered only after [`Event::Ready`]. If the handshake
//!    deadline passes first, a majority that did hear from each other goes
//!    on without the silent members (a view change); a minority fails,
//!    naming them.
//! 2. **Multicast.** Each application message becomes a record of our
//!    reliable stream, stamped by our Lamport clock, sent to every other
//!    member of the view and — through the same ordering engine as everyone
//!    else's — to ourselves.
//! 3. **Views.** A member that falls silent is suspected, a process that
//!    asks to join is admitted, and the group moves to a new view through a
//!    flush that keeps virtual synchrony (see [`crate::membership`]; the
//!    protocol lives in this module's `change` part).
//! 4. **End of stream.** [`Peer::finish`] appends an end-of-stream record
//!    carrying how many messages we sent. It travels the same ordered
//!    channel, and every order delivers it only after everything its sender
//!    sent before it.
//! 5. **Completion.** When every member of the current view has ended its
//!    stream, and we delivered it all, the peer emits [`Event::Completed`].
//!    It then stays until nobody needs it any more ([`Peer::may_leave`]; the
//!    `ending` part explains the rule).
//!
//! # Liveness
//!
//! Every wait has a bound. A member we are waiting for is asked for its
//! state — an ACK frame with the *want reply* flag — after
//! [`Config::keepalive`] of silence, and suspected after
//! [`Config::suspect_after`]: the group then moves on without it. Every
//! repair has a bounded interval: a receiver that knows it misses records
//! of a member's stream — it holds later ones, or the member said how many
//! it sent — asks for them with a NAK after half a round trip, and again with
//! doubling intervals; the member resends at once. Stalled deliveries are
//! probed with doubling intervals too. None of these intervals, nor the
//! retransmission timer's, ever exceeds [`Config::max_rto`] (2 s by
//! default).
//!
//! # The parts of this module
//!
//! | part | what it does |
//! |---|---|
//! | `events` | what the peer tells its caller: deliveries, events, errors, counters |
//! | `member` | what we know about one other member |
//! | `stream` | the handshake, the reliable streams, delivery through the ordering engine |
//! | `change` | the failure detector and the view change (flush) |
//! | `ending` | completion, and when the peer may leave |

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use crate::clock::LamportClock;
use crate::config::{Config, ConfigError};
use crate::link::{RttEstimator, SendStream};
use crate::membership::{MemberRef, View};
use crate::order::{OrderKind, Ordering};
use crate::seal::{OpenError, Opener, Sealer};
use crate::time::Time;
use crate::trace::{TraceCut, TraceEvent, Tracer};
use crate::wire::{
    Ack, Datagram, DatagramWriter, FLAG_SEALED, Frame, HEADER_LEN, Header, Hello, MAX_DATAGRAM,
    MAX_PAYLOAD, MemberId, Record, RecordKind, SEAL_RESERVE,
};

mod change;
mod ending;
mod events;
mod member;
mod stream;

pub use events::{Delivery, Event, PeerError, SendError, Stats, Transmit};

use change::{Assembly, Change, Past};
use member::Member;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Handshake,
    Running,
    Completed,
    Failed,
}

/// One member of a group. See the [module documentation](self).
pub struct Peer {
    cfg: Config,
    digest: u64,
    phase: Phase,
    clock: LamportClock,
    /// The current view. Before the handshake is done: view 1, the run's
    /// member list, with each member's incarnation filled in as we hear
    /// from it.
    view: View,
    /// Our stream in the current view.
    send: SendStream,
    /// One slot per member id of the run.
    members: Vec<Member>,
    engine: Box<dyn Ordering>,
    events: VecDeque<Event>,
    next_app_seq: u64,
    /// We ended our stream ([`Peer::finish`]).
    finished: bool,
    /// Members (id and incarnation) whose streams have ended: we delivered
    /// their end-of-stream marker, or a view change told us.
    finished_members: BTreeSet<MemberRef>,
    started: Time,
    /// Next member to consider in `poll_transmit` (round robin, for fairness).
    rr: usize,
    /// When to ask blocking members for their state if nothing is delivered.
    stall_deadline: Option<Time>,
    stall_backoff: u32,
    /// Next periodic liveness check.
    liveness_at: Option<Time>,
    /// When we completed.
    completed_at: Time,
    /// The last ACK to everyone before we leave has been queued.
    farewell_sent: bool,
    released: Vec<Record>,
    stats: Stats,
    /// The trace recorder, when tracing is on ([`Config::trace`]).
    trace: Option<Tracer>,
    /// With a key: seals our datagrams and opens everyone else's.
    seal: Option<(Sealer, Opener)>,
    // --- membership (see `change`) ---
    /// Members of the current view we suspect (sticky until the view
    /// changes).
    suspects: BTreeSet<MemberId>,
    /// Members others told us they suspect (SUSPECT messages). Hearsay is
    /// used to leave out members that some of us cannot reach, but never
    /// to give up: across a partition, a minority's notices would otherwise
    /// talk the majority out of its own majority (seen failing: a healed
    /// partition in which every member stopped).
    hearsay: BTreeSet<MemberId>,
    /// Processes that asked to join: id → incarnation.
    joiners: BTreeMap<MemberId, u64>,
    /// The highest ballot round seen for the current view.
    max_round: u32,
    /// The view change under way, if any.
    change: Option<Change>,
    /// The last view change we installed: to help members that missed it.
    past: Option<Past>,
    /// When we next tell the coordinator whom we suspect.
    suspect_notice_at: Time,
    /// Multi-part view messages being put together, by sender.
    assemblies: BTreeMap<MemberId, Assembly>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("me", &self.cfg.me)
            .field("members", &self.cfg.members)
            .field("order", &self.cfg.order)
            .field("phase", &self.phase)
            .field("view", &self.view.id)
            .field("clock", &self.clock.value())
            .finish_non_exhaustive()
    }
}

impl Peer {
    /// A peer at the start of its handshake, at time `now`.
    pub fn new(cfg: Config, now: Time) -> Result<Peer, ConfigError> {
        cfg.validate()?;
        let members = (0..cfg.members)
            .map(|_| Member::new(now, cfg.hello_interval, cfg.window))
            .collect();
        let view = View {
            id: 1,
            members: (0..cfg.members as MemberId)
                .map(|id| MemberRef {
                    id,
                    incarnation: if id == cfg.me { cfg.incarnation } else { 0 },
                })
                .collect(),
        };
        let mut peer = Peer {
            digest: cfg.digest(),
            phase: Phase::Handshake,
            clock: LamportClock::new(),
            view,
            send: SendStream::new(cfg.me, cfg.members, cfg.window, &rtt_of(&cfg)),
            members,
            engine: cfg.order.engine(cfg.me, cfg.members),
            events: VecDeque::new(),
            next_app_seq: 0,
            finished: false,
            finished_members: BTreeSet::new(),
            started: now,
            rr: 0,
            stall_deadline: None,
            stall_backoff: 1,
            liveness_at: None,
            completed_at: now,
            farewell_sent: false,
            released: Vec::new(),
            stats: Stats::default(),
            trace: cfg.trace.map(|limits| Tracer::new(cfg.me, limits)),
            seal: cfg.keys.as_ref().map(|keys| {
                (
                    Sealer::new(keys, cfg.run_id, cfg.me, cfg.incarnation),
                    Opener::new(keys, cfg.run_id, cfg.members),
                )
            }),
            suspects: BTreeSet::new(),
            hearsay: BTreeSet::new(),
            joiners: BTreeMap::new(),
            max_round: 0,
            change: None,
            past: None,
            suspect_notice_at: now,
            assemblies: BTreeMap::new(),
            cfg,
        };
        let me = usize::from(peer.cfg.me);
        peer.members[me].alive = true;
        peer.members[me].hello_acked = true;
        peer.check_ready(now);
        Ok(peer)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The order this peer delivers in.
    pub fn order(&self) -> OrderKind {
        self.cfg.order
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The Lamport clock's current value.
    pub fn clock(&self) -> u64 {
        self.clock.value()
    }

    /// The current view's number (1 is the run's member list).
    pub fn view_id(&self) -> u32 {
        self.view.id
    }

    /// The current view's members, in id order.
    pub fn view_members(&self) -> Vec<MemberId> {
        self.view.ids()
    }

    /// Whether a view change is under way (multicasts wait for it).
    pub fn is_changing_view(&self) -> bool {
        self.change.is_some()
    }

    /// Whether the handshake is complete (and the run not failed).
    pub fn is_ready(&self) -> bool {
        matches!(self.phase, Phase::Running | Phase::Completed)
    }

    /// Whether every member's stream has been delivered.
    pub fn is_completed(&self) -> bool {
        self.phase == Phase::Completed
    }

    /// Whether the run failed.
    pub fn is_failed(&self) -> bool {
        self.phase == Phase::Failed
    }

    /// Whether [`Peer::multicast`] would accept a message now.
    pub fn can_send(&self) -> bool {
        self.check_can_send().is_ok()
    }

    /// Records held back by the ordering engine.
    pub fn held(&self) -> usize {
        self.engine.pending()
    }

    /// Records sent but not yet acknowledged by every member.
    pub fn in_flight(&self) -> usize {
        self.send.in_flight()
    }

    /// Smoothed round-trip time to `member`, once measured.
    pub fn srtt(&self, member: MemberId) -> Option<Duration> {
        if usize::from(member) < self.cfg.members {
            self.send.srtt(member)
        } else {
            None
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next trace event, if tracing is on ([`Config::trace`]) and one is
    /// waiting. Drain it beside [`Peer::poll_event`]; see [`crate::trace`].
    pub fn poll_trace(&mut self) -> Option<TraceEvent> {
        self.trace.as_mut()?.pop()
    }

    /// Where the trace stopped recording every event, if it did, and how
    /// many events its limits left out.
    pub fn trace_cut(&self) -> (Option<TraceCut>, u64) {
        self.trace
            .as_ref()
            .map_or((None, 0), |t| (t.cut(), t.dropped()))
    }

    /// Multicasts `payload` to every member (ourselves included); returns its
    /// sequence number.
    pub fn multicast(&mut self, now: Time, payload: Bytes) -> Result<u64, SendError> {
        self.check_can_send()?;
        if payload.len() > MAX_PAYLOAD {
            return Err(SendError::TooLarge { len: payload.len() });
        }
        let seq = self.next_app_seq;
        self.push_own(now, RecordKind::Data { seq }, payload);
        self.next_app_seq += 1;
        Ok(seq)
    }

    /// Ends our stream: sends the end-of-stream marker. Afterwards
    /// [`Peer::multicast`] refuses.
    pub fn finish(&mut self, now: Time) -> Result<(), SendError> {
        self.check_can_send()?;
        self.push_own(
            now,
            RecordKind::EndOfStream {
                count: self.next_app_seq,
            },
            Bytes::new(),
        );
        self.finished = true;
        Ok(())
    }

    /// Number of messages multicast so far.
    pub fn sent(&self) -> u64 {
        self.next_app_seq
    }

    fn check_can_send(&self) -> Result<(), SendError> {
        match self.phase {
            Phase::Handshake => Err(SendError::NotReady),
            Phase::Failed => Err(SendError::Failed),
            _ if self.finished => Err(SendError::Finished),
            _ if self.change.is_some() => Err(SendError::ViewChange),
            _ if !self.send.can_push() => Err(SendError::WindowFull),
            _ => Ok(()),
        }
    }

    /// Handles one received datagram. Anything invalid is dropped and counted
    /// in [`Peer::stats`]; nothing here can panic or block.
    pub fn handle_datagram(&mut self, now: Time, bytes: Bytes) {
        self.handle_datagram_from(now, bytes, true);
    }

    /// [`Peer::handle_datagram`] for a caller that sees source addresses:
    /// `from_claimed_address` says whether the datagram came from the
    /// address of the member its header names. If not, a datagram that is
    /// otherwise for us is dropped and counted as
    /// [`Stats::dropped_wrong_source`] (the core never sees addresses; the
    /// runtime does). A restarted member's new process may come from a new
    /// address: the runtime learns it from the view change (a HELLO or VIEW
    /// message is let through for that reason).
    pub fn handle_datagram_from(&mut self, now: Time, bytes: Bytes, from_claimed_address: bool) {
        self.stats.datagrams_received += 1;
        self.stats.bytes_received += bytes.len() as u64;
        if self.phase == Phase::Failed {
            return;
        }
        let Some(bytes) = self.open(bytes) else {
            return;
        };
        let dgram = match Datagram::parse(bytes) {
            Ok(d) => d,
            Err(e) => {
                self.stats.dropped_malformed += 1;
                self.stats.last_decode_error = Some(e);
                return;
            }
        };
        let header = dgram.header();
        let Header {
            run_id, from, to, ..
        } = header;
        if run_id != self.cfg.run_id {
            self.stats.dropped_wrong_run += 1;
            return;
        }
        if to != self.cfg.me {
            self.stats.dropped_misaddressed += 1;
            return;
        }
        if usize::from(from) >= self.cfg.members || from == self.cfg.me {
            self.stats.dropped_unknown_sender += 1;
            return;
        }
        if !from_claimed_address {
            self.stats.dropped_wrong_source += 1;
            return;
        }
        match self.classify(now, &header) {
            Sender::Stale => {
                // Another incarnation of a member, or one that is not in our
                // view: only a request to join (HELLO) and view-change
                // messages are listened to; anything else gets a notice.
                let mut useful = false;
                for frame in dgram.frames() {
                    match frame {
                        Frame::Hello(h) => useful |= self.on_join_request(now, &header, h),
                        Frame::View(v) => {
                            useful = true;
                            self.on_view_frame(now, &header, v);
                        }
                        _ => {}
                    }
                }
                if !useful {
                    self.stats.dropped_stale_incarnation += 1;
                    self.notify_not_member(now, from);
                }
            }
            Sender::Proposed => {
                self.members[usize::from(from)].last_heard = now;
                for frame in dgram.frames() {
                    match frame {
                        // Its request to join, repeated; answering with a
                        // HELLO_ACK would let a joiner believe it is in our
                        // view and start one of its own.
                        Frame::Hello(_) | Frame::HelloAck(_) => {}
                        Frame::Relay(r) => self.on_relay(now, &header, r),
                        Frame::View(v) => self.on_view_frame(now, &header, v),
                        Frame::Ack(_) | Frame::Record(_) => self.stats.dropped_other_view += 1,
                    }
                }
            }
            Sender::Member => {
                self.members[usize::from(from)].last_heard = now;
                if header.view != self.view.id && self.phase != Phase::Handshake {
                    self.on_other_view(now, &header);
                }
                let same_view = header.view == self.view.id;
                for frame in dgram.frames() {
                    match frame {
                        Frame::Hello(h) => self.on_hello(now, from, h, false),
                        Frame::HelloAck(h) => self.on_hello(now, from, h, true),
                        Frame::Ack(a) if same_view => self.on_ack(now, from, a),
                        Frame::Record(r) if same_view => self.on_record(now, from, r),
                        Frame::Relay(r) => self.on_relay(now, &header, r),
                        Frame::View(v) => self.on_view_frame(now, &header, v),
                        Frame::Ack(_) | Frame::Record(_) => self.stats.dropped_other_view += 1,
                    }
                }
            }
        }
        self.after_input(now);
    }

    /// Handles timers that are due at `now`.
    pub fn handle_timeout(&mut self, now: Time) {
        if self.phase == Phase::Failed {
            return;
        }
        self.stream_timeouts(now);
        if self.phase == Phase::Failed {
            return;
        }
        self.view_timeouts(now);
        self.after_input(now);
    }

    /// When [`Peer::handle_timeout`] should next be called (or `poll_transmit`,
    /// for a delayed acknowledgement), if ever.
    pub fn poll_timeout(&self) -> Option<Time> {
        let mut next: Option<Time> = None;
        let mut consider = |t: Option<Time>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        if self.phase == Phase::Failed {
            return None;
        }
        self.stream_deadlines(&mut consider);
        self.view_deadlines(&mut consider);
        consider(self.leave_at());
        next
    }

    fn wants_to_send(&self, k: usize, now: Time) -> bool {
        let m = &self.members[k];
        (self.phase == Phase::Handshake && !m.hello_acked && m.hello_next <= now)
            || m.hello_ack_due
            || m.want_reply
            || m.ack_due.is_some_and(|t| t <= now)
            || !m.view_out.is_empty()
            || !m.relay_out.is_empty()
            || self.send.has_pending(k as MemberId)
    }

    /// Writes the next datagram to send into `buf` (which should hold
    /// [`crate::wire::MAX_DATAGRAM`] bytes) and says where it goes. Call until
    /// it returns `None`.
    pub fn poll_transmit(&mut self, now: Time, buf: &mut [u8]) -> Option<Transmit> {
        if self.phase == Phase::Failed {
            return None;
        }
        let n = self.cfg.members;
        let me = usize::from(self.cfg.me);
        for i in 0..n {
            let k = (self.rr + i) % n;
            if k == me || !self.wants_to_send(k, now) {
                continue;
            }
            let Some(len) = self.build_datagram(k, now, buf) else {
                continue;
            };
            self.rr = (k + 1) % n;
            self.members[k].last_sent = now;
            self.stats.datagrams_sent += 1;
            self.stats.bytes_sent += len as u64;
            return Some(Transmit {
                to: k as MemberId,
                len,
            });
        }
        None
    }

    fn build_datagram(&mut self, k: usize, now: Time, buf: &mut [u8]) -> Option<usize> {
        let header = Header {
            run_id: self.cfg.run_id,
            from: self.cfg.me,
            to: k as MemberId,
            incarnation: self.cfg.incarnation,
            view: self.view.id,
        };
        // A datagram to be sealed leaves room for the seal's trailer.
        let limit = if self.seal.is_some() {
            MAX_DATAGRAM - SEAL_RESERVE
        } else {
            MAX_DATAGRAM
        };
        let mut w = DatagramWriter::with_limit(buf, header, limit)?;
        // View-change messages first: they are rare, and the group waits
        // for them. One part per datagram at most, so that every part fits.
        if let Some((head, items)) = self.members[k].view_out.front()
            && w.push_view(head, items)
        {
            self.members[k].view_out.pop_front();
        }
        while let Some(rec) = self.members[k].relay_out.front() {
            if !w.push_relay(rec) {
                break;
            }
            self.members[k].relay_out.pop_front();
            self.stats.relayed += 1;
        }
        let hello = Hello {
            members: self.cfg.members as u16,
            digest: self.digest,
        };
        let in_handshake = self.phase == Phase::Handshake;
        let in_view = self.view.contains_id(k as MemberId);
        let m = &mut self.members[k];
        if in_handshake && !m.hello_acked && m.hello_next <= now && w.push_hello(hello, false) {
            m.hello_next = now + m.hello_interval;
            m.hello_interval = (m.hello_interval * 2).min(Duration::from_secs(1));
        }
        if m.hello_ack_due && w.push_hello(hello, true) {
            m.hello_ack_due = false;
        }
        let has_records = self.send.has_pending(k as MemberId);
        if in_view && (m.want_reply || m.ack_due.is_some_and(|t| t <= now) || has_records) {
            let (cum, sack) = m.recv.ack();
            let ack = Ack {
                cum,
                sack,
                clock: self.clock.value(),
                sent: self.send.next_seq(),
                flow: m.consumed,
                stable: self.send.stable(),
                done: self.phase == Phase::Completed,
                done_seen: m.done,
                want_reply: m.want_reply,
                nak: m.nak_due,
            };
            if w.push_ack(&ack) {
                m.ack_due = None;
                m.want_reply = false;
                if m.nak_due {
                    m.nak_due = false;
                    self.stats.naks_sent += 1;
                }
                self.stats.acks_sent += 1;
            }
            let count = self.send.fill(k as MemberId, &mut w, now);
            self.stats.records_sent += count.new as u64;
            self.stats.retransmissions += count.retransmitted as u64;
        } else {
            m.ack_due = None;
            m.want_reply = false;
        }
        if w.is_empty() {
            // Nothing fitted (a buffer smaller than a frame), or nothing was
            // due after all.
            return None;
        }
        let len = w.finish();
        match self.seal.as_mut() {
            None => Some(len),
            Some((sealer, _)) => match sealer.seal(buf, len) {
                Ok(sealed) => Some(sealed),
                Err(crate::seal::SealError::Exhausted) => {
                    self.fail(PeerError::Exhausted);
                    None
                }
                Err(crate::seal::SealError::NoRoom) => None,
            },
        }
    }

    /// With a key, authenticates and decrypts a sealed datagram (see
    /// [`crate::seal`]); anything else is dropped and counted. Without a key,
    /// passes the datagram through.
    fn open(&mut self, bytes: Bytes) -> Option<Bytes> {
        let Some((_, opener)) = self.seal.as_mut() else {
            return Some(bytes);
        };
        if bytes.len() < HEADER_LEN || bytes[3] & FLAG_SEALED == 0 {
            self.stats.dropped_unsealed += 1;
            return None;
        }
        // The runtime hands over a buffer nobody else holds: no copy here.
        let mut buf = BytesMut::from(bytes);
        match opener.open(&mut buf) {
            Ok(len) => {
                buf.truncate(len);
                Some(buf.freeze())
            }
            Err(e) => {
                match e {
                    OpenError::NotSealed => self.stats.dropped_unsealed += 1,
                    OpenError::UnknownEpoch(_) => self.stats.dropped_unknown_key += 1,
                    OpenError::Unauthentic => self.stats.dropped_unauthenticated += 1,
                    OpenError::Replayed(_) => self.stats.dropped_replayed += 1,
                }
                None
            }
        }
    }

    /// Fails the run, once.
    fn fail(&mut self, err: PeerError) {
        if self.phase != Phase::Failed {
            self.phase = Phase::Failed;
            self.events.push_back(Event::Failed(err));
        }
    }
}

/// Who sent a datagram, as far as our view is concerned.
enum Sender {
    /// A member of our view (or of the view change under way), in the
    /// incarnation we know.
    Member,
    /// A process in the view change under way that is not a member of the
    /// view being closed (a joiner, or we are the joiner): only its
    /// view-change messages count. Its stream frames belong to another view
    /// than the one we close — taking a joiner's ACK as the old member's
    /// would give the old stream a bound it never promised (seen failing:
    /// two survivors delivered a restarted member's records in different
    /// orders).
    Proposed,
    /// Another incarnation of a member, or a member that is not in our view.
    Stale,
}

/// The round-trip estimator a configuration asks for.
fn rtt_of(cfg: &Config) -> RttEstimator {
    RttEstimator::new(cfg.initial_rto, cfg.min_rto, cfg.max_rto)
}

#[cfg(test)]
mod tests;
