//! A peer's run configuration.

use std::time::Duration;

use thiserror::Error;

use crate::order::OrderKind;
use crate::seal::KeyRing;
use crate::trace::TraceLimits;
use crate::wire::{self, MemberId};

/// Largest group mpcomm accepts. Per-member state is small, but the
/// `total` order sends O(N²) acknowledgements per message at light load; far
/// larger groups want a different protocol.
pub const MAX_MEMBERS: usize = 1024;

/// Everything a peer needs to know to take part in a run.
///
/// All members of a run must agree on `run_id`, `members`, `order` and
/// `window`; a digest of these travels in the handshake, and a peer with a
/// different configuration is not admitted. The timing fields are local
/// choices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Identifies the run; datagrams of other runs are dropped.
    pub run_id: u64,
    /// This peer's id, `0..members`.
    pub me: MemberId,
    /// This process's incarnation: a random number drawn when the process
    /// (or the member) starts, carried in every datagram's header. A member
    /// that crashes and comes back under the same id draws a new one, so
    /// that the datagrams of its old life, still in the network, are told
    /// apart from its new ones. The core draws no randomness: the caller
    /// supplies it (the runtime from the operating system, the simulator
    /// from its seed). It is a local choice, not part of the digest.
    pub incarnation: u64,
    /// The group key(s). With keys, every datagram is sealed (authenticated
    /// and encrypted, see [`crate::seal`]) and datagrams in the clear are
    /// dropped; without, datagrams travel in the clear and anyone who can
    /// reach the socket can speak for any member. A local choice, not part
    /// of the digest: members with different keys simply never hear each
    /// other.
    pub keys: Option<KeyRing>,
    /// Group size N; members are `0..N`.
    pub members: usize,
    /// Delivery order.
    pub order: OrderKind,
    /// Flow-control window: most records in flight (unacknowledged by some
    /// member) per sender. Also the receive reorder bound.
    pub window: usize,
    /// How long an acknowledgement may wait for data to ride on. Zero sends
    /// it at the caller's next [`crate::Peer::poll_transmit`], which already
    /// batches everything that arrived in one burst.
    pub ack_delay: Duration,
    /// Retransmission timeout before any round trip has been measured.
    pub initial_rto: Duration,
    /// Lower bound of the adaptive retransmission timeout.
    pub min_rto: Duration,
    /// Upper bound of the adaptive retransmission timeout.
    pub max_rto: Duration,
    /// First interval between handshake retransmissions (it doubles).
    pub hello_interval: Duration,
    /// How long the handshake may take before the run fails, naming the
    /// members that never answered.
    pub handshake_timeout: Duration,
    /// A member we need and have not heard from for this long is asked for
    /// its state.
    pub keepalive: Duration,
    /// After we completed, a member that still needs something from us but
    /// has been silent this long is taken as gone, and we may leave without
    /// it.
    pub peer_timeout: Duration,
    /// The failure detector: a member of our view we have not heard from for
    /// this long is *suspected*, and the group moves to a view without it.
    /// The trade-off: shorter detects a crash sooner (the survivors stall
    /// for about this long after one), longer suspects a live member less
    /// often when the network drops a run of datagrams or a process pauses
    /// (a member suspected wrongly is excluded, and must join again). The
    /// LAN default is 1 s; over lossy or far links choose several round
    /// trips and several heartbeats.
    pub suspect_after: Duration,
    /// Every member sends something (an ACK, if nothing else) to every other
    /// member of its view at least this often, so that silence means
    /// trouble. At most a quarter of `suspect_after` is sensible.
    pub heartbeat: Duration,
    /// Record a trace (sends, arrivals, waits, deliveries) within these
    /// limits; `None`, the default, records nothing and costs nothing. See
    /// [`crate::trace`]. A local choice: members need not agree on it.
    pub trace: Option<TraceLimits>,
}

impl Config {
    /// A configuration with default timings, suitable for a LAN or an
    /// emulated WAN.
    pub fn new(run_id: u64, me: MemberId, members: usize, order: OrderKind) -> Config {
        Config {
            run_id,
            me,
            incarnation: 0,
            keys: None,
            members,
            order,
            window: 4096,
            ack_delay: Duration::ZERO,
            initial_rto: Duration::from_millis(200),
            min_rto: Duration::from_millis(5),
            max_rto: Duration::from_secs(2),
            hello_interval: Duration::from_millis(50),
            handshake_timeout: Duration::from_secs(10),
            keepalive: Duration::from_millis(500),
            peer_timeout: Duration::from_secs(10),
            suspect_after: Duration::from_secs(1),
            heartbeat: Duration::from_millis(250),
            trace: None,
        }
    }

    /// Checks that the configuration makes sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.members == 0 || self.members > MAX_MEMBERS {
            return Err(ConfigError::GroupSize(self.members));
        }
        if usize::from(self.me) >= self.members {
            return Err(ConfigError::NotAMember {
                me: self.me,
                members: self.members,
            });
        }
        if self.window == 0 || self.window > 1 << 20 {
            return Err(ConfigError::Window(self.window));
        }
        if self.min_rto.is_zero() || self.min_rto > self.max_rto {
            return Err(ConfigError::Rto);
        }
        if self.keepalive.is_zero()
            || self.keepalive >= self.peer_timeout
            || self.hello_interval.is_zero()
            || self.heartbeat.is_zero()
            || self.heartbeat >= self.suspect_after
        {
            return Err(ConfigError::Timeouts);
        }
        Ok(())
    }

    /// A digest of the fields every member must agree on, sent in the
    /// handshake. FNV-1a over a fixed byte layout, so that every build on
    /// every platform computes the same value.
    pub fn digest(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for b in bytes {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        };
        eat(&[wire::VERSION, self.order.code()]);
        eat(&self.run_id.to_be_bytes());
        eat(&(self.members as u64).to_be_bytes());
        eat(&(self.window as u64).to_be_bytes());
        h
    }
}

/// A configuration that cannot work.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    /// Too few or too many members.
    #[error("group size {0} is outside 1..={MAX_MEMBERS}")]
    GroupSize(usize),
    /// `me` is not one of the members.
    #[error("member id {me} is not in a group of {members} (ids 0..{members})")]
    NotAMember {
        /// The given id.
        me: MemberId,
        /// The group size.
        members: usize,
    },
    /// Window out of range.
    #[error("window {0} is outside 1..=1048576 records")]
    Window(usize),
    /// RTO bounds make no sense.
    #[error("retransmission timeouts need 0 < min_rto <= max_rto")]
    Rto,
    /// Keepalive and peer timeouts make no sense.
    #[error(
        "timeouts need 0 < keepalive < peer_timeout, 0 < heartbeat < suspect_after and a non-zero hello interval"
    )]
    Timeouts,
}
