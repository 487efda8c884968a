//! # mpcomm-core: ordered multicast as a pure state machine
//!
//! This crate is the protocol of mpcomm, and nothing else: it performs no
//! I/O, reads no clock and draws no random numbers. Its caller hands it
//! inputs (a datagram that arrived, the current time, a message to send) and
//! carries out the effects it returns (datagrams to send, messages to
//! deliver, when to call again). This style is called *sans-IO*; it is how
//! `quinn-proto` (QUIC) and `raft-rs` keep their protocol logic testable.
//! The same code runs over real UDP sockets (the `mpcomm` runtime), inside a
//! deterministic simulator (`mpcomm-sim`), and in benchmarks.
//!
//! ## The layers, bottom up
//!
//! | module | what it does |
//! |---|---|
//! | [`time`] | time as a number passed in by the caller |
//! | [`clock`] | Lamport logical clocks |
//! | [`vclock`] | vector clocks: what a member had delivered when it sent |
//! | [`wire`] | the datagram format: typed frames, total bounded decoding |
//! | [`link`] | reliable FIFO streams over lossy UDP: acks, retransmission, windows |
//! | [`order`] | ordering engines: `none`, `fifo`, `causal`, `sequencer`, `total` |
//! | [`membership`] | views, the failure detector's verdicts, the flush that changes views |
//! | [`seal`] | authenticated encryption of datagrams with the group key |
//! | [`peer`] | one member of a group: handshake, multicast, delivery, view changes, completion |
//! | [`trace`] | what a peer did and why a message waited, when tracing is on |
//!
//! ## Driving a peer
//!
//! ```
//! use bytes::Bytes;
//! use mpcomm_core::{Config, Event, OrderKind, Peer, Time};
//!
//! // A group of one, so this example needs no network.
//! let mut peer = Peer::new(Config::new(42, 0, 1, OrderKind::Total), Time::ZERO).unwrap();
//! peer.multicast(Time::ZERO, Bytes::from_static(b"hello")).unwrap();
//! peer.finish(Time::ZERO).unwrap();
//! let mut buf = [0u8; mpcomm_core::wire::MAX_DATAGRAM];
//! while let Some(t) = peer.poll_transmit(Time::ZERO, &mut buf) {
//!     // send &buf[..t.len] to member t.to
//! #   let _ = t;
//! }
//! let events: Vec<Event> = std::iter::from_fn(|| peer.poll_event()).collect();
//! assert!(matches!(events[1], Event::View { id: 1, .. })); // the first view
//! assert!(matches!(events[2], Event::Deliver(ref d) if d.payload == "hello"));
//! assert_eq!(events.last(), Some(&Event::Completed));
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod clock;
pub mod config;
pub mod link;
pub mod membership;
pub mod order;
pub mod peer;
pub mod seal;
pub mod time;
pub mod trace;
pub mod vclock;
pub mod wire;

pub use config::{Config, ConfigError};
pub use order::{OrderKind, Ordering};
pub use peer::{Delivery, Event, Peer, PeerError, SendError, Stats, Transmit};
pub use seal::{GroupKey, KeyRing};
pub use time::Time;
pub use trace::{TraceEvent, TraceKind, TraceLimits, WaitReason};
pub use wire::MemberId;
