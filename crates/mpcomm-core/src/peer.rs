//! The peer state machine: one member of a run, with no I/O.
//!
//! A [`Peer`] is driven entirely by its caller, which loops over:
//!
//! * **inputs** — [`Peer::handle_datagram`] when a datagram arrives,
//!   [`Peer::handle_timeout`] when the time returned by [`Peer::poll_timeout`]
//!   has come, [`Peer::multicast`] and [`Peer::finish`] when the application
//!   sends;
//! * **outputs** — [`Peer::poll_transmit`] until it returns `None` (datagrams
//!   to send), [`Peer::poll_event`] until it returns `None` (the handshake
//!   completed, a message was delivered, the run completed or failed).
//!
//! Every input takes the current [`Time`]; the peer never reads a clock.
//!
//! # A run, from one peer's point of view
//!
//! 1. **Handshake.** The peer sends HELLO to every other member and resends
//!    it (with growing intervals) until that member answers with HELLO_ACK.
//!    When it has heard from every member it emits [`Event::Ready`]: from then
//!    on the application may multicast. A member that is already past its own
//!    handshake may send us data before we are ready; that data is kept, never
//!    mistaken for a handshake (frames are typed) and never dropped, and it
//!    is delivered only after [`Event::Ready`]. If the
//!    handshake deadline passes first, the run fails naming the silent
//!    members.
//! 2. **Multicast.** Each application message becomes a record of our
//!    reliable stream, stamped by our Lamport clock, sent to every other
//!    member and — through the same ordering engine as everyone else's — to
//!    ourselves.
//! 3. **End of stream.** [`Peer::finish`] appends an end-of-stream record
//!    carrying how many messages we sent. It travels the same ordered
//!    channel, so it cannot overtake our data in any order but `none`
//!    (and there the count tells the receiver what is still missing).
//! 4. **Completion.** When the peer has delivered every member's
//!    end-of-stream marker and all the data it announced, it emits
//!    [`Event::Completed`]. It should keep running for a while
//!    ([`Peer::is_quiescent`] says when it may stop): other members may still
//!    need its acknowledgements or a retransmission.
//!
//! # Liveness
//!
//! Every wait has a bound. A member we are waiting for (it has not
//! acknowledged our records, the ordering engine is waiting for its clock, or
//! it has not finished its stream) is asked for its state — an ACK frame with
//! the *want reply* flag — after [`Config::keepalive`] of silence, and
//! declared unresponsive after [`Config::peer_timeout`]: the run then fails
//! with [`PeerError::Unresponsive`] naming it.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use thiserror::Error;

use crate::clock::{LamportClock, MAX_STAMP};
use crate::config::{Config, ConfigError};
use crate::link::{Arrival, RecvStream, RttEstimator, SendStream};
use crate::order::{OrderKind, Ordering};
use crate::seal::{OpenError, Opener, Sealer};
use crate::time::Time;
use crate::wire::{
    Ack, Datagram, DatagramWriter, DecodeError, FLAG_SEALED, Frame, HEADER_LEN, Header, Hello,
    MAX_DATAGRAM, MAX_EXT, MAX_PAYLOAD, MemberId, Record, RecordKind, SEAL_RESERVE,
};

/// A message delivered to the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Who multicast it.
    pub sender: MemberId,
    /// The sender's sequence number for it, from 0.
    pub seq: u64,
    /// The sender's Lamport stamp for it.
    pub stamp: u64,
    /// The application's bytes.
    pub payload: Bytes,
}

/// Something the application should know about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The handshake barrier is passed: every member is up. Multicast may begin.
    Ready,
    /// A message is delivered, in the run's order.
    Deliver(Delivery),
    /// Every member's end-of-stream marker and data have been delivered.
    Completed,
    /// The run cannot go on.
    Failed(PeerError),
}

/// Why a run failed.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum PeerError {
    /// Some members never answered the handshake.
    #[error("handshake timed out after {after:?}: no answer from member(s) {missing:?}{}", mismatch_note(.mismatched))]
    HandshakeTimeout {
        /// Members we never heard from.
        missing: Vec<MemberId>,
        /// Of those, the ones that answered with a different configuration.
        mismatched: Vec<MemberId>,
        /// The handshake deadline.
        after: Duration,
    },
    /// Members we needed went silent mid-run.
    #[error("member(s) {peers:?} stopped answering (silent for {silent_for:?})")]
    Unresponsive {
        /// The silent members.
        peers: Vec<MemberId>,
        /// How long the longest-silent one has been silent.
        silent_for: Duration,
    },
    /// Our Lamport clock or our nonce counter cannot advance any more (after
    /// 2⁶³ events: never in practice). Stopping is the only safe answer: a
    /// repeated stamp would break the order, a repeated nonce the seal.
    #[error("this member's clock or nonce counter is exhausted")]
    Exhausted,
}

fn mismatch_note(mismatched: &[MemberId]) -> String {
    if mismatched.is_empty() {
        String::new()
    } else {
        format!(" ({mismatched:?} answered with a different run configuration)")
    }
}

/// Why a message could not be multicast.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum SendError {
    /// The handshake is not complete yet; wait for [`Event::Ready`].
    #[error("the group handshake is not complete yet")]
    NotReady,
    /// The flow-control window is full; retry after acknowledgements arrive
    /// (after the next input).
    #[error("the send window is full")]
    WindowFull,
    /// [`Peer::finish`] was already called.
    #[error("the stream was already finished")]
    Finished,
    /// The message does not fit in a datagram.
    #[error("message of {len} bytes exceeds the {MAX_PAYLOAD}-byte limit")]
    TooLarge {
        /// Its length.
        len: usize,
    },
    /// The run has failed.
    #[error("the run has failed")]
    Failed,
}

/// A datagram to send, written by [`Peer::poll_transmit`] into the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// The member to send it to.
    pub to: MemberId,
    /// Its length in the buffer.
    pub len: usize,
}

/// Counters of what the peer did and, above all, of what it dropped and why.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams written by `poll_transmit`.
    pub datagrams_sent: u64,
    /// Bytes in those datagrams.
    pub bytes_sent: u64,
    /// Datagrams passed to `handle_datagram`.
    pub datagrams_received: u64,
    /// Bytes in those datagrams.
    pub bytes_received: u64,
    /// Records sent for the first time (counted once per receiver).
    pub records_sent: u64,
    /// Records resent.
    pub retransmissions: u64,
    /// ACK frames sent.
    pub acks_sent: u64,
    /// Records received that we already had.
    pub duplicates: u64,
    /// Messages delivered to the application.
    pub delivered: u64,
    /// Largest number of records held by the ordering engine at once.
    pub max_held: u64,
    /// Datagrams that failed to decode.
    pub dropped_malformed: u64,
    /// Datagrams of another run.
    pub dropped_wrong_run: u64,
    /// Datagrams addressed to another member.
    pub dropped_misaddressed: u64,
    /// Datagrams claiming a sender that is not a member (or is us).
    pub dropped_unknown_sender: u64,
    /// Records too far ahead of the receive window.
    pub dropped_out_of_window: u64,
    /// Handshakes with a different run configuration.
    pub dropped_config_mismatch: u64,
    /// Datagrams from another incarnation of a member than the one we know.
    pub dropped_stale_incarnation: u64,
    /// Frames that broke the protocol (acking unsent records, data after
    /// end-of-stream, …).
    pub protocol_violations: u64,
    /// Records and ACKs whose stamp broke clock sanity: above
    /// [`crate::clock::MAX_STAMP`], or not above the sender's previous
    /// record or the clock it promised in an ACK. Dropped so that no member
    /// can poison the order.
    pub dropped_bad_stamp: u64,
    /// With a key: datagrams that arrived in the clear.
    pub dropped_unsealed: u64,
    /// With a key: sealed datagrams whose tag did not verify (forged,
    /// corrupted, truncated, another key, another run).
    pub dropped_unauthenticated: u64,
    /// With a key: sealed datagrams naming a key epoch we do not hold.
    pub dropped_unknown_key: u64,
    /// With a key: authentic datagrams we had already accepted (replays).
    pub dropped_replayed: u64,
    /// Datagrams whose source address is not the claimed member's (the
    /// runtime sees addresses; see [`Peer::handle_datagram_from`]).
    pub dropped_wrong_source: u64,
    /// The most recent decode error, for logs.
    pub last_decode_error: Option<DecodeError>,
}

impl Stats {
    /// Everything that was dropped, for one number in a summary.
    pub fn dropped(&self) -> u64 {
        self.dropped_malformed
            + self.dropped_wrong_run
            + self.dropped_misaddressed
            + self.dropped_unknown_sender
            + self.dropped_out_of_window
            + self.dropped_config_mismatch
            + self.dropped_stale_incarnation
            + self.protocol_violations
            + self.dropped_bad_stamp
            + self.dropped_unsealed
            + self.dropped_unauthenticated
            + self.dropped_unknown_key
            + self.dropped_replayed
            + self.dropped_wrong_source
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Handshake,
    Running,
    Completed,
    Failed,
}

/// What we know about, and owe to, one other member.
#[derive(Debug)]
struct Member {
    /// Its incarnation, from the first datagram we accepted from it.
    incarnation: Option<u64>,
    /// We have heard from it (any valid frame).
    alive: bool,
    /// It has heard from us (it acked our HELLO or sent us stream frames).
    hello_acked: bool,
    hello_next: Time,
    hello_interval: Duration,
    hello_ack_due: bool,
    /// It answered the handshake with another configuration.
    mismatched: bool,
    last_heard: Time,
    /// When an ACK frame is due to it.
    ack_due: Option<Time>,
    /// Ask it to answer with its state.
    want_reply: bool,
    last_request: Option<Time>,
    /// It told us it completed.
    done: bool,
    /// Its end-of-stream count, once delivered.
    eos: Option<u64>,
    /// Its data messages delivered so far.
    data_delivered: u64,
    /// Every record of its stream released from now on must be stamped
    /// above this: the stamp of its previous record, or a clock it promised
    /// in an ACK, whichever is higher (clock sanity).
    stamp_floor: u64,
    recv: RecvStream,
}

/// One member of a run. See the [module documentation](self).
pub struct Peer {
    cfg: Config,
    digest: u64,
    phase: Phase,
    clock: LamportClock,
    send: SendStream,
    members: Vec<Member>,
    engine: Box<dyn Ordering>,
    events: VecDeque<Event>,
    next_app_seq: u64,
    finished: bool,
    started: Time,
    /// Next member to consider in `poll_transmit` (round robin, for fairness).
    rr: usize,
    /// When to ask blocking members for their state if nothing is delivered.
    stall_deadline: Option<Time>,
    stall_backoff: u32,
    /// Next periodic liveness check.
    liveness_at: Option<Time>,
    released: Vec<Record>,
    stats: Stats,
    /// With a key: seals our datagrams and opens everyone else's.
    seal: Option<(Sealer, Opener)>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("me", &self.cfg.me)
            .field("members", &self.cfg.members)
            .field("order", &self.cfg.order)
            .field("phase", &self.phase)
            .field("clock", &self.clock.value())
            .finish_non_exhaustive()
    }
}

impl Peer {
    /// A peer at the start of its handshake, at time `now`.
    pub fn new(cfg: Config, now: Time) -> Result<Peer, ConfigError> {
        cfg.validate()?;
        let rtt = RttEstimator::new(cfg.initial_rto, cfg.min_rto, cfg.max_rto);
        let members = (0..cfg.members)
            .map(|_| Member {
                incarnation: None,
                alive: false,
                hello_acked: false,
                hello_next: now,
                hello_interval: cfg.hello_interval,
                hello_ack_due: false,
                mismatched: false,
                last_heard: now,
                ack_due: None,
                want_reply: false,
                last_request: None,
                done: false,
                eos: None,
                data_delivered: 0,
                stamp_floor: 0,
                recv: RecvStream::new(cfg.window),
            })
            .collect();
        let mut peer = Peer {
            digest: cfg.digest(),
            phase: Phase::Handshake,
            clock: LamportClock::new(),
            send: SendStream::new(cfg.me, cfg.members, cfg.window, &rtt),
            members,
            engine: cfg.order.engine(cfg.me, cfg.members),
            events: VecDeque::new(),
            next_app_seq: 0,
            finished: false,
            started: now,
            rr: 0,
            stall_deadline: None,
            stall_backoff: 1,
            liveness_at: None,
            released: Vec::new(),
            stats: Stats::default(),
            seal: cfg.keys.as_ref().map(|keys| {
                (
                    Sealer::new(keys, cfg.run_id, cfg.me, cfg.incarnation),
                    Opener::new(keys, cfg.run_id, cfg.members),
                )
            }),
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

    /// Whether the peer may stop: it failed, or it completed and knows that
    /// every member has completed too and holds all our records.
    pub fn is_quiescent(&self) -> bool {
        match self.phase {
            Phase::Failed => true,
            Phase::Completed => {
                let me = usize::from(self.cfg.me);
                self.send.all_acked()
                    && self
                        .members
                        .iter()
                        .enumerate()
                        .all(|(k, m)| k == me || m.done)
            }
            _ => false,
        }
    }

    /// Whether [`Peer::multicast`] would accept a message now.
    pub fn can_send(&self) -> bool {
        self.phase == Phase::Running && !self.finished && self.send.can_push()
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
            _ if !self.send.can_push() => Err(SendError::WindowFull),
            _ => Ok(()),
        }
    }

    /// Stamps a record of ours, puts it in our stream and passes it through
    /// our own ordering engine like anyone else's.
    fn push_own(&mut self, now: Time, kind: RecordKind, payload: Bytes) {
        let mut ext = self.engine.outgoing_ext();
        if ext.len() > MAX_EXT {
            ext.truncate(MAX_EXT); // an engine bug; never let it break the wire
            self.stats.protocol_violations += 1;
        }
        let Some(stamp) = self.clock.tick() else {
            self.fail(PeerError::Exhausted);
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
        self.send.push(rec.clone());
        self.engine.on_arrival(&rec);
        self.engine.on_fifo(rec);
        self.after_input(now);
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
    /// runtime does).
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
        let Header {
            run_id,
            from,
            to,
            incarnation,
            ..
        } = dgram.header();
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
        // The first datagram we accept from a member fixes its incarnation;
        // datagrams of another incarnation are from an earlier (or a
        // confused) process under the same id.
        match self.members[usize::from(from)].incarnation {
            Some(known) if known != incarnation => {
                self.stats.dropped_stale_incarnation += 1;
                return;
            }
            Some(_) => {}
            None => self.members[usize::from(from)].incarnation = Some(incarnation),
        }
        for frame in dgram.frames() {
            match frame {
                Frame::Hello(h) => self.on_hello(now, from, h, false),
                Frame::HelloAck(h) => self.on_hello(now, from, h, true),
                Frame::Ack(a) => self.on_ack(now, from, a),
                Frame::Record(r) => self.on_record(now, from, r),
            }
        }
        self.after_input(now);
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

    fn on_hello(&mut self, now: Time, from: MemberId, hello: Hello, is_ack: bool) {
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

    fn on_ack(&mut self, now: Time, from: MemberId, ack: Ack) {
        if ack.clock > MAX_STAMP {
            self.stats.dropped_bad_stamp += 1;
            return;
        }
        if self.send.on_ack(from, ack.cum, ack.sack, now).is_err() {
            self.stats.protocol_violations += 1;
            return;
        }
        let m = &mut self.members[usize::from(from)];
        m.alive = true;
        m.last_heard = now;
        m.done |= ack.done;
        if ack.want_reply {
            m.ack_due = Some(now);
        }
        if let Some(clock) = m.recv.bound_from_ack(ack.sent, ack.clock) {
            m.stamp_floor = m.stamp_floor.max(clock);
            self.engine.on_bound(from, clock);
        }
    }

    fn on_record(&mut self, now: Time, from: MemberId, rec: Record) {
        let idx = usize::from(from);
        let m = &mut self.members[idx];
        // Clock sanity before the record touches anything: a stamp above the
        // bound, or (when it is the next record of the stream, so its
        // predecessor is known) not above its sender's floor, is dropped
        // unstored, so a genuine record of that position can still come.
        if rec.stamp > MAX_STAMP
            || (rec.link_seq == m.recv.next_seq() && rec.stamp <= m.stamp_floor)
        {
            self.stats.dropped_bad_stamp += 1;
            return;
        }
        m.alive = true;
        m.hello_acked = true; // it only sends records once past its handshake, which needs us
        m.last_heard = now;
        match m.recv.classify(rec.link_seq) {
            Arrival::Duplicate => {
                // Our ack may have been lost: say again what we have.
                self.stats.duplicates += 1;
                m.ack_due = Some(now);
                return;
            }
            Arrival::OutOfWindow => {
                self.stats.dropped_out_of_window += 1;
                return;
            }
            Arrival::New => {}
        }
        if self.clock.observe(rec.stamp).is_err() {
            self.stats.dropped_bad_stamp += 1; // (checked above; kept for safety)
            return;
        }
        self.engine.on_arrival(&rec);
        m.recv.insert(rec, &mut self.released);
        let mut released = std::mem::take(&mut self.released);
        for r in released.drain(..) {
            if let Some(count) = self.members[idx].eos
                && matches!(r.kind, RecordKind::Data { seq } if seq >= count)
            {
                self.stats.protocol_violations += 1; // data beyond its own end-of-stream count
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
            self.engine.on_bound(from, clock);
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
    fn after_input(&mut self, now: Time) {
        self.check_ready(now);
        if self.phase == Phase::Handshake {
            return;
        }
        let mut delivered_any = false;
        while let Some(rec) = self.engine.poll_deliver() {
            let m = &mut self.members[usize::from(rec.sender)];
            match rec.kind {
                RecordKind::Data { seq } => {
                    m.data_delivered += 1;
                    self.stats.delivered += 1;
                    self.events.push_back(Event::Deliver(Delivery {
                        sender: rec.sender,
                        seq,
                        stamp: rec.stamp,
                        payload: rec.payload,
                    }));
                }
                RecordKind::EndOfStream { count } => m.eos = Some(count),
                RecordKind::Control => {}
            }
            delivered_any = true;
        }
        // Engines may emit control records (a sequencer's decisions).
        while self.phase == Phase::Running
            && self.send.can_push()
            && let Some(body) = self.engine.poll_control()
        {
            self.push_own(now, RecordKind::Control, body);
        }
        let held = self.engine.pending() as u64;
        self.stats.max_held = self.stats.max_held.max(held);
        if delivered_any {
            self.stall_deadline = None;
            self.stall_backoff = 1;
            if self.phase == Phase::Running
                && self
                    .members
                    .iter()
                    .all(|m| m.eos.is_some_and(|c| m.data_delivered >= c))
            {
                self.phase = Phase::Completed;
                self.events.push_back(Event::Completed);
                let me = usize::from(self.cfg.me);
                for (k, m) in self.members.iter_mut().enumerate() {
                    if k != me {
                        m.ack_due = Some(now); // tell everyone we are done
                    }
                }
            }
        }
        if held > 0 && self.stall_deadline.is_none() {
            self.stall_deadline = Some(now + self.stall_interval());
        }
    }

    fn check_ready(&mut self, now: Time) {
        if self.phase == Phase::Handshake && self.members.iter().all(|m| m.alive) {
            self.phase = Phase::Running;
            self.events.push_back(Event::Ready);
            self.liveness_at = Some(now + self.cfg.keepalive);
        }
    }

    /// How long deliveries may stall before we ask the members holding them
    /// up for their state: the largest retransmission timeout, so a normal
    /// round trip never triggers it.
    fn stall_interval(&self) -> Duration {
        let me = self.cfg.me;
        let rto = (0..self.cfg.members as MemberId)
            .filter(|k| *k != me)
            .map(|k| self.send.rto(k))
            .max();
        rto.unwrap_or(self.cfg.min_rto)
            .saturating_mul(self.stall_backoff)
    }

    fn fail(&mut self, err: PeerError) {
        self.phase = Phase::Failed;
        self.events.push_back(Event::Failed(err));
    }

    /// Whether we are waiting on `k` for anything.
    fn needs(&self, k: usize) -> bool {
        let m = &self.members[k];
        let id = k as MemberId;
        self.send.outstanding(id)
            || self.engine.blocked_on(id)
            || m.eos.is_none_or(|c| m.data_delivered < c)
    }

    /// Handles timers that are due at `now`.
    pub fn handle_timeout(&mut self, now: Time) {
        match self.phase {
            Phase::Failed => return,
            Phase::Handshake => {
                let deadline = self.started + self.cfg.handshake_timeout;
                if now >= deadline {
                    let missing: Vec<MemberId> = (0..self.cfg.members)
                        .filter(|k| !self.members[*k].alive)
                        .map(|k| k as MemberId)
                        .collect();
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
                    return;
                }
            }
            Phase::Running | Phase::Completed => {}
        }
        self.send.on_timeout(now);
        if let Some(deadline) = self.stall_deadline
            && now >= deadline
        {
            if self.engine.pending() > 0 {
                let me = usize::from(self.cfg.me);
                for k in 0..self.cfg.members {
                    if k != me && self.engine.blocked_on(k as MemberId) {
                        self.members[k].want_reply = true;
                    }
                }
                self.stall_backoff = (self.stall_backoff * 2).min(64);
                self.stall_deadline = Some(now + self.stall_interval());
            } else {
                self.stall_deadline = None;
            }
        }
        if let Some(at) = self.liveness_at
            && now >= at
        {
            self.check_liveness(now);
        }
    }

    fn check_liveness(&mut self, now: Time) {
        let me = usize::from(self.cfg.me);
        let mut silent = Vec::new();
        let mut longest = Duration::ZERO;
        for k in 0..self.cfg.members {
            let wanted = match self.phase {
                Phase::Running => self.needs(k),
                // Completed: we linger for members that may still need us,
                // and ask those not known to be done; never a failure.
                Phase::Completed => !self.members[k].done,
                _ => false,
            };
            if k == me || !wanted {
                continue;
            }
            let m = &mut self.members[k];
            let quiet = now.saturating_since(m.last_heard);
            if self.phase == Phase::Running && quiet >= self.cfg.peer_timeout {
                silent.push(k as MemberId);
                longest = longest.max(quiet);
            } else if quiet >= self.cfg.keepalive
                && m.last_request
                    .is_none_or(|t| now.saturating_since(t) >= self.cfg.keepalive)
            {
                m.want_reply = true;
                m.last_request = Some(now);
            }
        }
        if !silent.is_empty() {
            self.fail(PeerError::Unresponsive {
                peers: silent,
                silent_for: longest,
            });
            return;
        }
        // Check a few times per keepalive period, so a request goes out
        // within about a quarter period of becoming due.
        self.liveness_at = Some(now + self.cfg.keepalive / 4);
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
        match self.phase {
            Phase::Failed => return None,
            Phase::Handshake => {
                consider(Some(self.started + self.cfg.handshake_timeout));
                for m in &self.members {
                    if !m.hello_acked {
                        consider(Some(m.hello_next));
                    }
                }
            }
            Phase::Running | Phase::Completed => {}
        }
        consider(self.send.next_deadline());
        consider(self.stall_deadline);
        consider(self.liveness_at);
        for m in &self.members {
            consider(m.ack_due);
        }
        next
    }

    fn wants_to_send(&self, k: usize, now: Time) -> bool {
        let m = &self.members[k];
        (self.phase == Phase::Handshake && !m.hello_acked && m.hello_next <= now)
            || m.hello_ack_due
            || m.want_reply
            || m.ack_due.is_some_and(|t| t <= now)
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
            let len = self.build_datagram(k, now, buf)?;
            self.rr = (k + 1) % n;
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
            view: 1,
        };
        // A datagram to be sealed leaves room for the seal's trailer.
        let limit = if self.seal.is_some() {
            MAX_DATAGRAM - SEAL_RESERVE
        } else {
            MAX_DATAGRAM
        };
        let mut w = DatagramWriter::with_limit(buf, header, limit)?;
        let hello = Hello {
            members: self.cfg.members as u16,
            digest: self.digest,
        };
        let in_handshake = self.phase == Phase::Handshake;
        let m = &mut self.members[k];
        if in_handshake && !m.hello_acked && m.hello_next <= now && w.push_hello(hello, false) {
            m.hello_next = now + m.hello_interval;
            m.hello_interval = (m.hello_interval * 2).min(Duration::from_secs(1));
        }
        if m.hello_ack_due && w.push_hello(hello, true) {
            m.hello_ack_due = false;
        }
        let has_records = self.send.has_pending(k as MemberId);
        if m.want_reply || m.ack_due.is_some_and(|t| t <= now) || has_records {
            let (cum, sack) = m.recv.ack();
            let ack = Ack {
                cum,
                sack,
                clock: self.clock.value(),
                sent: self.send.next_seq(),
                done: self.phase == Phase::Completed,
                want_reply: m.want_reply,
            };
            if w.push_ack(&ack) {
                m.ack_due = None;
                m.want_reply = false;
                self.stats.acks_sent += 1;
            }
            let count = self.send.fill(k as MemberId, &mut w, now);
            self.stats.records_sent += count.new as u64;
            self.stats.retransmissions += count.retransmitted as u64;
        }
        if w.is_empty() {
            // Nothing fitted: only possible with a buffer smaller than a frame.
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::MAX_DATAGRAM;

    /// A tiny lossless, zero-delay network for unit tests; the real testing
    /// happens in the simulator crate.
    fn exchange(peers: &mut [Peer], now: Time) -> usize {
        let mut moved = 0;
        loop {
            let mut batch = vec![];
            for p in peers.iter_mut() {
                let mut buf = [0u8; MAX_DATAGRAM];
                while let Some(t) = p.poll_transmit(now, &mut buf) {
                    batch.push((t.to, Bytes::copy_from_slice(&buf[..t.len])));
                }
            }
            if batch.is_empty() {
                return moved;
            }
            moved += batch.len();
            for (to, bytes) in batch {
                peers[usize::from(to)].handle_datagram(now, bytes);
            }
        }
    }

    fn group(n: usize, order: OrderKind) -> Vec<Peer> {
        (0..n)
            .map(|i| Peer::new(Config::new(7, i as MemberId, n, order), Time::ZERO).unwrap())
            .collect()
    }

    fn events(p: &mut Peer) -> Vec<Event> {
        std::iter::from_fn(|| p.poll_event()).collect()
    }

    #[test]
    fn handshake_then_total_order_run() {
        let mut peers = group(3, OrderKind::Total);
        assert_eq!(
            peers[0].multicast(Time::ZERO, Bytes::from_static(b"x")),
            Err(SendError::NotReady)
        );
        exchange(&mut peers, Time::ZERO);
        for p in peers.iter_mut() {
            assert_eq!(events(p), vec![Event::Ready]);
        }
        let t = Time::from_millis(1);
        peers[2].multicast(t, Bytes::from_static(b"c")).unwrap();
        peers[0].multicast(t, Bytes::from_static(b"a")).unwrap();
        for p in peers.iter_mut() {
            p.finish(t).unwrap();
        }
        exchange(&mut peers, t);
        let mut sequences = vec![];
        for p in peers.iter_mut() {
            let ev = events(p);
            assert_eq!(ev.last(), Some(&Event::Completed));
            let seq: Vec<_> = ev
                .iter()
                .filter_map(|e| match e {
                    Event::Deliver(d) => Some((d.sender, d.seq)),
                    _ => None,
                })
                .collect();
            sequences.push(seq);
        }
        assert_eq!(sequences[0].len(), 2);
        assert!(
            sequences.iter().all(|s| *s == sequences[0]),
            "{sequences:?}"
        );
        assert!(peers.iter().all(|p| p.is_quiescent()));
        assert_eq!(peers[0].stats().dropped(), 0);
    }

    /// Moves datagrams like [`exchange`], except between members `a` and
    /// `b`, whose datagrams to each other are lost.
    fn exchange_cut(peers: &mut [Peer], now: Time, a: MemberId, b: MemberId) {
        loop {
            let mut batch = vec![];
            for (from, p) in peers.iter_mut().enumerate() {
                let mut buf = [0u8; MAX_DATAGRAM];
                while let Some(t) = p.poll_transmit(now, &mut buf) {
                    let from = from as MemberId;
                    if (from, t.to) != (a, b) && (from, t.to) != (b, a) {
                        batch.push((t.to, Bytes::copy_from_slice(&buf[..t.len])));
                    }
                }
            }
            if batch.is_empty() {
                return;
            }
            for (to, bytes) in batch {
                peers[usize::from(to)].handle_datagram(now, bytes);
            }
        }
    }

    /// A member past its barrier may send data to one still in its
    /// handshake. That data is kept, but delivered only after `Ready`: an
    /// application that waits for `Ready` before it reads deliveries (as
    /// `Group::join` does) would otherwise never read them, and a runtime
    /// that stops reading its socket while deliveries go unread would never
    /// finish the handshake. Seen as a rare `none` bench run that timed out.
    #[test]
    fn nothing_is_delivered_before_ready() {
        for order in [OrderKind::None, OrderKind::Fifo, OrderKind::Total] {
            let mut peers = group(3, order);
            let t = Time::ZERO;
            // 1 and 2 cannot hear each other; 0 hears both and gets going.
            exchange_cut(&mut peers, t, 1, 2);
            assert!(peers[0].is_ready() && !peers[1].is_ready(), "{order:?}");
            assert_eq!(events(&mut peers[0]), vec![Event::Ready]);
            for k in 0..3 {
                peers[0].multicast(t, Bytes::from(vec![k as u8])).unwrap();
            }
            exchange_cut(&mut peers, t, 1, 2);
            for k in [1, 2] {
                assert_eq!(events(&mut peers[k]), vec![], "{order:?}: member {k}");
            }
            // The link heals: Ready first, then the kept messages.
            let t = Time::from_millis(60);
            exchange(&mut peers, t);
            for k in [1, 2] {
                let ev = events(&mut peers[k]);
                assert_eq!(ev.first(), Some(&Event::Ready), "{order:?}: {ev:?}");
                let delivered = ev
                    .iter()
                    .filter(|e| matches!(e, Event::Deliver(d) if d.sender == 0))
                    .count();
                let expected = if order == OrderKind::Total {
                    0..=3
                } else {
                    3..=3
                };
                assert!(expected.contains(&delivered), "{order:?}: {ev:?}");
            }
        }
    }

    #[test]
    fn garbage_and_strangers_are_dropped_and_counted() {
        let mut p = Peer::new(Config::new(7, 0, 2, OrderKind::Total), Time::ZERO).unwrap();
        p.handle_datagram(Time::ZERO, Bytes::from_static(b"definitely not a datagram"));
        let mut buf = [0u8; MAX_DATAGRAM];
        let mut other = Peer::new(Config::new(8, 1, 2, OrderKind::Total), Time::ZERO).unwrap();
        let t = other.poll_transmit(Time::ZERO, &mut buf).unwrap();
        p.handle_datagram(Time::ZERO, Bytes::copy_from_slice(&buf[..t.len])); // run 8, not 7
        assert_eq!(p.stats().dropped_malformed, 1);
        assert_eq!(p.stats().dropped_wrong_run, 1);
        assert!(!p.is_ready());
    }

    #[test]
    fn handshake_timeout_names_the_silent_members() {
        let mut p = Peer::new(Config::new(7, 1, 4, OrderKind::Total), Time::ZERO).unwrap();
        let deadline = Time::ZERO + p.config().handshake_timeout;
        p.handle_timeout(deadline);
        match events(&mut p).as_slice() {
            [Event::Failed(PeerError::HandshakeTimeout { missing, .. })] => {
                assert_eq!(missing, &vec![0, 2, 3])
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(p.poll_timeout().is_none());
    }

    #[test]
    fn a_group_of_one_completes_alone() {
        let mut p = Peer::new(Config::new(1, 0, 1, OrderKind::Total), Time::ZERO).unwrap();
        p.multicast(Time::ZERO, Bytes::from_static(b"solo"))
            .unwrap();
        p.finish(Time::ZERO).unwrap();
        let ev = events(&mut p);
        assert_eq!(ev.first(), Some(&Event::Ready));
        assert_eq!(ev.last(), Some(&Event::Completed));
        assert!(p.is_quiescent());
    }

    #[test]
    fn window_full_is_backpressure() {
        let mut cfg = Config::new(7, 0, 2, OrderKind::Fifo);
        cfg.window = 2;
        let mut peers = vec![Peer::new(cfg.clone(), Time::ZERO).unwrap(), {
            let mut c = cfg;
            c.me = 1;
            Peer::new(c, Time::ZERO).unwrap()
        }];
        exchange(&mut peers, Time::ZERO);
        peers[0].multicast(Time::ZERO, Bytes::new()).unwrap();
        peers[0].multicast(Time::ZERO, Bytes::new()).unwrap();
        assert_eq!(
            peers[0].multicast(Time::ZERO, Bytes::new()),
            Err(SendError::WindowFull)
        );
        exchange(&mut peers, Time::ZERO);
        assert!(peers[0].can_send(), "acks freed the window");
    }
}
