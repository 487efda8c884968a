//! Ordering engines: in which order a peer hands messages to its application.
//!
//! Every peer receives the same messages, but the network delivers them in
//! different orders at different peers. An *ordering engine* sits between the
//! reliable links and the application and decides when each message may be
//! delivered. The peer state machine feeds it records and asks it for the
//! next deliverable one; the engine never touches the network itself.
//!
//! | order | guarantee | how |
//! |---|---|---|
//! | [`none`] | none: each peer delivers in its own arrival order | deliver on arrival |
//! | [`fifo`] | each sender's messages in the order it sent them | deliver when the link releases them in sequence |
//! | [`causal`] | no message before the messages that could have caused it | vector clocks + hold-back |
//! | [`sequencer`] | every peer delivers every message in the same order | one member multicasts the order |
//! | [`total`] | every peer delivers every message in the same order | Lamport stamps + hold-back queue |
//!
//! # The interface, and the orders to come
//!
//! [`Ordering`] is shaped so that further orders need no change to the link
//! layer or to the peer state machine:
//!
//! * a **causal** order (vector clocks) attaches its vector to each outgoing
//!   record through [`Ordering::outgoing_ext`] — the wire format reserves an
//!   extension field on every record for it — and holds records back in
//!   [`Ordering::on_fifo`] until their causal predecessors are delivered;
//! * a **fixed sequencer** multicasts its ordering decisions as control
//!   records, which it hands out through [`Ordering::poll_control`]; they
//!   travel in the same reliable stream as data and come back to every
//!   engine through [`Ordering::on_fifo`];
//! * engines that, like `total`, need to hear from every member after each
//!   message say so with [`Ordering::acks_to_all`].
//!
//! # Explaining a wait
//!
//! When tracing is on (see [`crate::trace`]), the peer asks its engine after
//! every input what the head of its hold-back queue waits for
//! ([`Ordering::wait_reason`]), and records each change. `total` names the
//! members whose acknowledgement or later stamp is missing, `fifo` the record
//! missing at the link, `none` never waits. A causal engine names the causal
//! predecessor not yet delivered ([`WaitCause::Predecessor`]), a sequencer
//! the decision not yet received ([`WaitCause::Decision`]).

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;

#[cfg(doc)]
use crate::trace::WaitCause;
use crate::trace::{MsgRef, WaitReason};
use crate::wire::{MemberId, Record};

pub mod causal;
pub mod fifo;
pub mod none;
pub mod sequencer;
pub mod total;
mod varint;

/// The delivery orders mpcomm implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OrderKind {
    /// Arrival order: shows the problem the other orders solve.
    None,
    /// Per-sender FIFO order.
    Fifo,
    /// Causal order with vector clocks.
    Causal,
    /// Total order decided by a fixed sequencer.
    Sequencer,
    /// Total order with Lamport clocks.
    Total,
}

impl OrderKind {
    /// Every order, in a stable order.
    pub const ALL: [OrderKind; 5] = [
        OrderKind::None,
        OrderKind::Fifo,
        OrderKind::Causal,
        OrderKind::Sequencer,
        OrderKind::Total,
    ];

    /// The name used on the command line, in JSON and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderKind::None => "none",
            OrderKind::Fifo => "fifo",
            OrderKind::Causal => "causal",
            OrderKind::Sequencer => "sequencer",
            OrderKind::Total => "total",
        }
    }

    /// A number identifying the order in the configuration digest.
    pub(crate) fn code(self) -> u8 {
        match self {
            OrderKind::None => 0,
            OrderKind::Fifo => 1,
            OrderKind::Total => 2,
            OrderKind::Causal => 3,
            OrderKind::Sequencer => 4,
        }
    }

    /// Builds the engine for member `me` of a group of `members`.
    pub fn engine(self, me: MemberId, members: usize) -> Box<dyn Ordering> {
        match self {
            OrderKind::None => Box::new(none::ArrivalOrder::new()),
            OrderKind::Fifo => Box::new(fifo::FifoOrder::new()),
            OrderKind::Causal => Box::new(causal::CausalOrder::new(me, members)),
            OrderKind::Sequencer => Box::new(sequencer::SequencerOrder::new(me, members)),
            OrderKind::Total => Box::new(total::TotalOrder::new(me, members)),
        }
    }
}

impl fmt::Display for OrderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An order name that is not one of ours.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown order {0:?} (expected one of: none, fifo, causal, sequencer, total)")]
pub struct UnknownOrder(pub String);

impl FromStr for OrderKind {
    type Err = UnknownOrder;

    fn from_str(s: &str) -> Result<OrderKind, UnknownOrder> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(OrderKind::None),
            "fifo" => Ok(OrderKind::Fifo),
            "causal" => Ok(OrderKind::Causal),
            "sequencer" => Ok(OrderKind::Sequencer),
            "total" => Ok(OrderKind::Total),
            _ => Err(UnknownOrder(s.to_string())),
        }
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for OrderKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for OrderKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<OrderKind, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An ordering engine. See the [module documentation](self).
///
/// Records reach the engine twice: once when they first arrive (possibly out
/// of their sender's order: [`Ordering::on_arrival`]) and once when the
/// reliable link releases them in their sender's order
/// ([`Ordering::on_fifo`]). Each engine listens to the one it needs. A
/// peer's own records take the same path, at the moment they are sent.
pub trait Ordering: Send {
    /// Which order this engine implements.
    fn kind(&self) -> OrderKind;

    /// A record seen for the first time, before any reordering. Duplicates
    /// never reach the engine.
    fn on_arrival(&mut self, _rec: &Record) {}

    /// A record released by the reliable link in its sender's order.
    fn on_fifo(&mut self, rec: Record);

    /// `from` promised that every record it sends from now on (that we have
    /// not yet received) is stamped above `clock`.
    fn on_bound(&mut self, _from: MemberId, _clock: u64) {}

    /// The next record (data or end-of-stream) that may be delivered now.
    fn poll_deliver(&mut self) -> Option<Record>;

    /// Records held back, waiting to be delivered.
    fn pending(&self) -> usize;

    /// Whether the next delivery is waiting for news from `member`: the peer
    /// then asks that member for its state if the wait grows long (a lost
    /// acknowledgement would otherwise stall the queue).
    fn blocked_on(&self, _member: MemberId) -> bool {
        false
    }

    /// Whether every member must hear from us after we receive a record (the
    /// `total` order's implicit acknowledgements), not just its sender.
    fn acks_to_all(&self) -> bool {
        false
    }

    /// The extension to attach to our next outgoing record (e.g. a vector
    /// clock). Empty by default.
    fn outgoing_ext(&mut self) -> Bytes {
        Bytes::new()
    }

    /// A control record the engine wants multicast (e.g. a sequencer's
    /// ordering decision, or the part of a causal vector that does not fit
    /// an extension). None by default.
    ///
    /// The peer calls it after every batch of deliveries, until it returns
    /// `None` or the send window is full, and pushes each body as a CONTROL
    /// record of its own stream (calling [`Ordering::outgoing_ext`] for it
    /// first, like for any record). It accepts no application message while
    /// a control record waits for window space: `causal` relies on that
    /// (see `tests/causal_contract.rs`).
    fn poll_control(&mut self) -> Option<Bytes> {
        None
    }

    /// `member` will send nothing more in this view (it was never in it, or
    /// it left): do not wait for it. Nothing by default.
    fn exclude(&mut self, _member: MemberId) {}

    /// The view is closing: every record that will ever be delivered in it
    /// has been handed to the engine (the flush of a view change decided
    /// the set, and the peer holds all of it). Deliver everything still
    /// held, in this order's way, without waiting for anyone — nothing more
    /// can come, so nothing can sort before what is held. Records that can
    /// never be delivered in order (an engine that needs a predecessor that
    /// is not in the set) are dropped, the same way at every member. By
    /// default the engine's normal rule already delivers everything.
    fn close_view(&mut self) {}
    /// What the head of the hold-back queue waits for, if it cannot be
    /// delivered now; `None` when nothing waits (the default: an engine that
    /// never holds anything back). Called only when tracing is on, so it may
    /// allocate. `links` shows what the reliable links hold back, for
    /// engines (like `fifo`) whose waiting happens there.
    fn wait_reason(&self, _links: &dyn LinkGaps) -> Option<WaitReason> {
        None
    }

    /// This member's vector clock, for engines that keep one (a causal
    /// order); traced beside the Lamport clock. Called only when tracing.
    fn vector_clock(&self) -> Option<Vec<u64>> {
        None
    }
}

/// What the reliable links hold back: records that arrived ahead of a gap
/// in their sender's stream. The peer hands this view to
/// [`Ordering::wait_reason`].
pub trait LinkGaps {
    /// Group size.
    fn members(&self) -> usize;

    /// If `sender`'s stream has a gap: the first record waiting behind it,
    /// and the link sequence number of the first record that is missing.
    fn gap(&self, sender: MemberId) -> Option<(MsgRef, u64)>;
}

/// Links with no gaps, for engines tested on their own.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoGaps;

impl LinkGaps for NoGaps {
    fn members(&self) -> usize {
        0
    }

    fn gap(&self, _sender: MemberId) -> Option<(MsgRef, u64)> {
        None
    }
}
