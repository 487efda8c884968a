//! What a peer knows about, and owes to, one other member.
//!
//! A peer keeps one [`Member`] per member id of the run (ids `0..N`), whether
//! or not that member is in the current view: a slot outlives the views, so
//! that a member that leaves and comes back (a new incarnation) finds its
//! slot again. Its *link* state — the reliable stream we receive from it,
//! what we owe it in acknowledgements, the NAK timer — belongs to one view
//! and is reset at every view change ([`Member::new_view`]); its liveness
//! (when we last heard from it) and its handshake state do not.

use std::collections::VecDeque;
use std::time::Duration;

use crate::link::RecvStream;
use crate::time::Time;
use crate::wire::{Item, Record, ViewHead};

/// One member slot. See the [module documentation](self).
#[derive(Debug)]
pub(super) struct Member {
    // --- handshake and liveness (outlive views) ---
    /// We have heard from it (any valid frame).
    pub alive: bool,
    /// It has heard from us (it acked our HELLO or sent us stream frames).
    pub hello_acked: bool,
    pub hello_next: Time,
    pub hello_interval: Duration,
    pub hello_ack_due: bool,
    /// It answered the handshake with another configuration.
    pub mismatched: bool,
    /// When we last accepted a datagram from it.
    pub last_heard: Time,
    /// When we last sent it a datagram (heartbeats keep this recent).
    pub last_sent: Time,
    /// When we may next send it an unsolicited notice (a NOT_MEMBER, or the
    /// INSTALL it missed): such notices answer datagrams, and must not
    /// answer every one.
    pub notice_at: Time,

    // --- the link of the current view ---
    /// When an ACK frame is due to it.
    pub ack_due: Option<Time>,
    /// Ask it to answer with its state.
    pub want_reply: bool,
    pub last_request: Option<Time>,
    /// When we next ask it for its state after we completed (it has not yet
    /// acknowledged all our records or told us it completed), and how far
    /// that interval has doubled.
    pub end_probe_at: Option<Time>,
    pub end_probe_backoff: u32,
    /// It told us it completed.
    pub done: bool,
    /// It told us it knows we completed.
    pub confirmed: bool,
    /// Its end-of-stream count, once delivered (in this view).
    pub eos: Option<u64>,
    /// Records of its stream we have delivered or consumed: the `flow` we
    /// report, which keeps it within one window of our deliveries.
    pub consumed: u64,
    /// How many records it says it has put in its stream (its ACKs' `sent`).
    pub announced: u64,
    /// When we next ask it, with a NAK, for records we know we miss; and how
    /// far that interval has doubled.
    pub nak_at: Option<Time>,
    pub nak_backoff: u32,
    /// Our next ACK to it carries the NAK flag.
    pub nak_due: bool,
    /// Its stream in the current view.
    pub recv: RecvStream,

    // --- view-change messages waiting to go to it ---
    /// Parts of VIEW messages.
    pub view_out: VecDeque<(ViewHead, Vec<Item>)>,
    /// Records of other members' streams to relay to it.
    pub relay_out: VecDeque<Record>,
    /// Every record of its stream released from now on must be stamped
    /// above this: the stamp of its previous record, or a clock it promised
    /// in an ACK, whichever is higher (clock sanity).
    pub stamp_floor: u64,
}

impl Member {
    pub fn new(now: Time, hello_interval: Duration, window: usize) -> Member {
        Member {
            alive: false,
            hello_acked: false,
            stamp_floor: 0,
            hello_next: now,
            hello_interval,
            hello_ack_due: false,
            mismatched: false,
            last_heard: now,
            last_sent: now,
            notice_at: now,
            ack_due: None,
            want_reply: false,
            last_request: None,
            end_probe_at: None,
            end_probe_backoff: 1,
            done: false,
            confirmed: false,
            eos: None,
            consumed: 0,
            announced: 0,
            nak_at: None,
            nak_backoff: 1,
            nak_due: false,
            recv: RecvStream::new(window),
            view_out: VecDeque::new(),
            relay_out: VecDeque::new(),
        }
    }

    /// Starts the link afresh for a new view: streams start again from
    /// record 0, and what we knew of the old view's stream is gone (the
    /// flush delivered all of it). We count it as just heard from, so that
    /// the failure detector gives it a full period in the new view.
    pub fn new_view(&mut self, now: Time, window: usize) {
        self.ack_due = Some(now);
        self.want_reply = false;
        self.last_request = None;
        self.end_probe_at = None;
        self.end_probe_backoff = 1;
        self.done = false;
        self.confirmed = false;
        self.eos = None;
        self.consumed = 0;
        self.announced = 0;
        self.nak_at = None;
        self.nak_backoff = 1;
        self.nak_due = false;
        self.recv = RecvStream::new(window);
        self.stamp_floor = 0;
        self.last_heard = self.last_heard.max(now);
        self.relay_out.clear();
    }
}
