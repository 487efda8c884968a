//! What a peer tells its caller: deliveries and other events, errors, the
//! datagrams it wants sent, and the counters of what it did and dropped.

use std::time::Duration;

use bytes::Bytes;
use thiserror::Error;

use crate::wire::{DecodeError, MAX_PAYLOAD, MemberId};

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
    /// A new view is installed: the messages delivered before this event
    /// belong to the previous view, those after it to this one. The first
    /// view (id 1) follows [`Event::Ready`] and lists the run's members.
    /// Virtual synchrony: every member that installs this view delivered
    /// the same messages in the previous one.
    View {
        /// The view's number.
        id: u32,
        /// Its members, in id order.
        members: Vec<MemberId>,
        /// Members new in this view (all of them, for the first view or a
        /// member that has just joined).
        joined: Vec<MemberId>,
        /// Members of the previous view that are not in this one (crashed,
        /// or suspected and excluded).
        left: Vec<MemberId>,
    },
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
    /// We can no longer reach a majority of our view: we are in a minority
    /// partition, and stop rather than go on beside the majority (no split
    /// brain).
    #[error(
        "in view {view} of {members:?} only {reachable:?} can be reached, not a majority: stopping so that the group does not split"
    )]
    Minority {
        /// The view.
        view: u32,
        /// Its members.
        members: Vec<MemberId>,
        /// Those we still hear (ourselves included).
        reachable: Vec<MemberId>,
    },
    /// The group went on without us: we were suspected (silent for too
    /// long, e.g. a paused process or a cut link) and excluded. A new
    /// process (a new incarnation) may join again.
    #[error("excluded from the group after view {view}: {detail}")]
    Excluded {
        /// Our last view.
        view: u32,
        /// How we learned it.
        detail: String,
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
    /// [`Peer::finish`](crate::Peer::finish) was already called.
    #[error("the stream was already finished")]
    Finished,
    /// A view change is under way: sending resumes when the next view is
    /// installed (after the next inputs).
    #[error("a view change is under way")]
    ViewChange,
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

/// A datagram to send, written by [`Peer::poll_transmit`](crate::Peer::poll_transmit) into the caller's buffer.
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
    /// Of those, ACKs that asked for missing records (NAKs).
    pub naks_sent: u64,
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
    /// Datagrams from another incarnation of a member than the one we know,
    /// or from a member not in our view.
    pub dropped_stale_incarnation: u64,
    /// Stream frames of another view than ours (a member ahead of us or
    /// behind us in a view change).
    pub dropped_other_view: u64,
    /// Members we suspected (silent for `suspect_after`).
    pub suspicions: u64,
    /// Requests to join we received (first time per incarnation).
    pub join_requests: u64,
    /// View changes we took part in (proposals accepted).
    pub view_changes_started: u64,
    /// Views we installed after the first.
    pub views_installed: u64,
    /// Records of other members we relayed during view changes.
    pub relayed: u64,
    /// Requests for relayed records we sent.
    pub relay_requests: u64,
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
    /// runtime sees addresses; see
    /// [`Peer::handle_datagram_from`](crate::Peer::handle_datagram_from)).
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
