//! # mpcomm-sim: a whole run in one process, on a simulated network
//!
//! The simulator runs N real [`mpcomm_core::Peer`] state machines — the very
//! code the `mpcomm peer` process runs — but replaces the network and the
//! clock with simulated ones (the idea of FoundationDB's and TigerBeetle's
//! simulation testing). Time jumps from one event to the next, so a run that
//! would take a minute of real time takes milliseconds, and every choice (a
//! delay, a loss, the interval between two messages) is drawn from one
//! seeded random number generator: **the same seed gives the identical run**,
//! down to the last datagram. A run that fails can be replayed exactly with
//! the command [`SimConfig::replay_command`] prints.
//!
//! The workload is the original MPComm's: once its handshake is done, every
//! peer multicasts M messages at random intervals (10–100 ms by default),
//! then its end-of-stream marker. Each message's payload starts with its send
//! time, so every delivery's latency is known. At the end the delivery logs
//! go through the checker ([`mpcomm_check::check`]).
//!
//! ```
//! use mpcomm_core::OrderKind;
//! use mpcomm_sim::SimConfig;
//!
//! let out = mpcomm_sim::run(&SimConfig { peers: 3, messages: 5, order: OrderKind::Total, ..SimConfig::default() });
//! assert!(out.completed && out.findings.passed);
//! ```

pub mod net;
pub mod rundir;
pub mod shiviz;
pub mod trace;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::Hasher;
use std::time::Duration;

use bytes::Bytes;
use mpcomm_check::{Findings, LogEntry, PeerLog, RunSpec};
use mpcomm_core::{
    Config, Event, MemberId, OrderKind, Peer, Stats, Time, TraceEvent, TraceLimits,
    wire::MAX_DATAGRAM,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

pub use net::{Delay, NetProfile, NetStats};

/// Everything that defines a simulated run. Two runs with equal configs are
/// identical.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SimConfig {
    /// Group size N.
    pub peers: usize,
    /// Messages each peer multicasts.
    pub messages: u64,
    /// Delivery order.
    pub order: OrderKind,
    /// Seed of every random choice.
    pub seed: u64,
    /// Number of regions the peers are spread over.
    pub regions: usize,
    /// The network.
    pub net: NetProfile,
    /// Shortest interval between two messages of a peer.
    pub min_interval: Duration,
    /// Longest interval between two messages of a peer.
    pub max_interval: Duration,
    /// Peers start at random times within this span (a late peer's first
    /// datagrams find nobody listening, as in real life).
    pub start_spread: Duration,
    /// Payload bytes per message (at least 8: the send time).
    pub payload: usize,
    /// The core's acknowledgement delay.
    pub ack_delay: Duration,
    /// Flow-control window (records).
    pub window: usize,
    /// Give up (and report the run incomplete) after this much simulated time.
    pub time_limit: Duration,
    /// Record every peer's trace within these limits (see
    /// [`mpcomm_core::trace`]); `None`, the default, records nothing.
    /// Tracing does not change the run.
    #[serde(skip)]
    pub trace: Option<TraceLimits>,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            peers: 4,
            messages: 20,
            order: OrderKind::Total,
            seed: 1,
            regions: 2,
            net: NetProfile::default(),
            min_interval: Duration::from_millis(10),
            max_interval: Duration::from_millis(100),
            start_spread: Duration::from_millis(20),
            payload: 8,
            ack_delay: Duration::ZERO,
            window: 4096,
            time_limit: Duration::from_secs(3600),
            trace: None,
        }
    }
}

impl SimConfig {
    /// The `mpcomm sim` command line that replays this run. Fields the command
    /// line cannot set are assumed to have their defaults.
    pub fn replay_command(&self) -> String {
        let ms = |d: Duration| format!("{}ms", d.as_secs_f64() * 1000.0);
        format!(
            "mpcomm sim --peers {} --messages {} --order {} --seed {} --regions {} --loss {} --duplicate {} \
             --reorder {} --skew {} --intra {}±{} --inter {}±{}",
            self.peers,
            self.messages,
            self.order,
            self.seed,
            self.regions,
            self.net.loss,
            self.net.duplicate,
            self.net.reorder,
            self.net.skew,
            ms(self.net.intra.base),
            ms(self.net.intra.jitter),
            ms(self.net.inter.base),
            ms(self.net.inter.jitter),
        )
    }
}

/// What happened in a simulated run.
#[derive(Clone, Debug, Serialize)]
pub struct SimOutcome {
    /// The checker's findings on the delivery logs.
    #[serde(flatten)]
    pub findings: Findings,
    /// The seed.
    pub seed: u64,
    /// Whether every peer completed (delivered every end-of-stream marker).
    pub completed: bool,
    /// Peers whose run failed, with the reason.
    pub failures: Vec<(MemberId, String)>,
    /// Peers that neither completed nor failed within the time limit.
    pub stuck: Vec<MemberId>,
    /// A hash of every event of the run, in order: equal hashes mean
    /// identical runs.
    pub trace_hash: u64,
    /// Simulated time until the last peer completed (or the run stopped).
    pub sim_time_ms: f64,
    /// Events processed.
    pub events: u64,
    /// What the network did.
    pub network: NetStats,
    /// Records resent, summed over peers.
    pub retransmissions: u64,
    /// Datagrams sent, summed over peers.
    pub datagrams: u64,
    /// Anything peers dropped as invalid, summed.
    pub dropped: u64,
    /// Each peer's counters.
    #[serde(skip)]
    pub peer_stats: Vec<Stats>,
    /// Each peer's delivery log.
    #[serde(skip)]
    pub logs: Vec<PeerLog>,
    /// Each peer's trace, when [`SimConfig::trace`] asked for one.
    #[serde(skip)]
    pub traces: Vec<trace::PeerTrace>,
}

impl SimOutcome {
    /// Whether the run completed and the checker found every property the
    /// order promises.
    pub fn ok(&self) -> bool {
        self.completed && self.findings.passed
    }
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum What {
    /// A peer's process starts.
    Start(MemberId),
    /// A datagram reaches a peer.
    Arrive(MemberId, Bytes),
    /// A peer's timer.
    Wake(MemberId),
    /// A peer's application multicasts its next message.
    AppSend(MemberId),
}

/// A simulated peer.
struct SimPeer {
    peer: Option<Peer>,
    region: usize,
    /// The earliest wake-up already in the queue.
    wake: Option<Time>,
    sent: u64,
    finished: bool,
    log: Vec<LogEntry>,
    failure: Option<String>,
    completed_at: Option<Time>,
    trace: Vec<TraceEvent>,
}

/// FNV-1a: a tiny, stable hash for the event trace (stable across builds and
/// platforms, unlike the standard library's default hasher).
struct TraceHash(u64);

impl Hasher for TraceHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

struct Sim<'a> {
    cfg: &'a SimConfig,
    now: Time,
    queue: BinaryHeap<Reverse<(Time, u64, What)>>,
    next_id: u64,
    peers: Vec<SimPeer>,
    net_rng: ChaCha8Rng,
    app_rng: ChaCha8Rng,
    net: NetStats,
    trace: TraceHash,
    events: u64,
    buf: Vec<u8>,
}

/// Runs one simulated run.
pub fn run(cfg: &SimConfig) -> SimOutcome {
    Sim::new(cfg).run(&mut |_| {})
}

/// How far a simulation has got, for a progress display.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Messages delivered so far, summed over peers.
    pub delivered: u64,
    /// Messages to deliver in all: peers × peers × messages.
    pub expected: u64,
    /// Simulated time reached.
    pub sim_time: Duration,
}

/// Events between two calls of the progress callback of [`run_with_progress`].
const PROGRESS_EVERY: u64 = 1 << 16;

/// Runs one simulated run like [`run`], calling `progress` every few
/// tens of thousands of events: a large simulation (the cost of `total`
/// grows with N³·M) may take minutes, and its user should see it move.
/// The callback sees the run but cannot change it: the outcome is the same
/// as [`run`]'s.
pub fn run_with_progress(cfg: &SimConfig, progress: &mut dyn FnMut(Progress)) -> SimOutcome {
    Sim::new(cfg).run(progress)
}

impl<'a> Sim<'a> {
    fn new(cfg: &'a SimConfig) -> Sim<'a> {
        // Separate streams for the network and the workload, so that the
        // same seed gives the same workload whatever the network does.
        let mut net_rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        net_rng.set_stream(1);
        let mut app_rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        app_rng.set_stream(2);
        let peers = (0..cfg.peers)
            .map(|i| SimPeer {
                peer: None,
                region: net::region_of(i, cfg.peers, cfg.regions),
                wake: None,
                sent: 0,
                finished: false,
                log: Vec::new(),
                failure: None,
                completed_at: None,
                trace: Vec::new(),
            })
            .collect();
        let mut sim = Sim {
            cfg,
            now: Time::ZERO,
            queue: BinaryHeap::new(),
            next_id: 0,
            peers,
            net_rng,
            app_rng,
            net: NetStats::default(),
            trace: TraceHash(0xcbf2_9ce4_8422_2325),
            events: 0,
            buf: vec![0; MAX_DATAGRAM],
        };
        for i in 0..cfg.peers {
            let spread = cfg.start_spread.as_nanos() as u64;
            let at = Time::from_nanos(if spread == 0 {
                0
            } else {
                sim.app_rng.random_range(0..=spread)
            });
            sim.schedule(at, What::Start(i as MemberId));
        }
        sim
    }

    fn schedule(&mut self, at: Time, what: What) {
        self.queue.push(Reverse((at, self.next_id, what)));
        self.next_id += 1;
    }

    fn all_settled(&self) -> bool {
        self.peers
            .iter()
            .all(|p| p.peer.as_ref().is_some_and(|p| p.is_quiescent()))
    }

    fn run(mut self, progress: &mut dyn FnMut(Progress)) -> SimOutcome {
        let limit = Time::ZERO + self.cfg.time_limit;
        let n = self.cfg.peers as u64;
        let expected = n.saturating_mul(n).saturating_mul(self.cfg.messages);
        while let Some(Reverse((at, _, what))) = self.queue.pop() {
            if at > limit {
                break;
            }
            self.now = at;
            self.events += 1;
            if self.events % PROGRESS_EVERY == 0 {
                progress(Progress {
                    delivered: self.peers.iter().map(|p| p.log.len() as u64).sum(),
                    expected,
                    sim_time: Duration::from_nanos(at.as_nanos()),
                });
            }
            self.trace.write_u64(at.as_nanos());
            match what {
                What::Start(p) => {
                    self.trace.write_u8(0);
                    self.trace.write_u16(p);
                    let mut c = Config::new(
                        0x5157_0000 ^ self.cfg.seed,
                        p,
                        self.cfg.peers,
                        self.cfg.order,
                    );
                    c.ack_delay = self.cfg.ack_delay;
                    c.window = self.cfg.window;
                    // Generous, so that the slowest simulated WAN never trips them.
                    c.handshake_timeout = Duration::from_secs(60);
                    c.peer_timeout = Duration::from_secs(60);
                    c.keepalive = Duration::from_secs(1);
                    c.trace = self.cfg.trace;
                    match Peer::new(c, self.now) {
                        Ok(peer) => self.peers[usize::from(p)].peer = Some(peer),
                        Err(e) => self.peers[usize::from(p)].failure = Some(e.to_string()),
                    }
                    self.settle(p);
                }
                What::Arrive(p, bytes) => {
                    self.trace.write_u8(1);
                    self.trace.write_u16(p);
                    self.trace.write(&bytes);
                    match self.peers[usize::from(p)].peer.as_mut() {
                        Some(peer) => peer.handle_datagram(self.now, bytes),
                        None => self.net.before_start += 1,
                    }
                    self.settle(p);
                }
                What::Wake(p) => {
                    self.trace.write_u8(2);
                    self.trace.write_u16(p);
                    let sp = &mut self.peers[usize::from(p)];
                    if sp.wake == Some(at) {
                        sp.wake = None;
                    }
                    if let Some(peer) = sp.peer.as_mut()
                        && peer.poll_timeout().is_some_and(|t| t <= at)
                    {
                        peer.handle_timeout(at);
                    }
                    self.settle(p);
                }
                What::AppSend(p) => {
                    self.trace.write_u8(3);
                    self.trace.write_u16(p);
                    self.app_send(p);
                    self.settle(p);
                }
            }
            if self.all_settled() {
                break;
            }
        }
        self.outcome()
    }

    /// The application of peer `p` sends its next message (or its
    /// end-of-stream marker after the last one).
    fn app_send(&mut self, p: MemberId) {
        let now = self.now;
        let cfg = self.cfg;
        let sp = &mut self.peers[usize::from(p)];
        let Some(peer) = sp.peer.as_mut() else { return };
        if sp.finished || peer.is_failed() {
            return;
        }
        if !peer.can_send() {
            // Window full: try again shortly.
            self.schedule(now + Duration::from_millis(1), What::AppSend(p));
            return;
        }
        if sp.sent < cfg.messages {
            let mut payload = vec![0u8; cfg.payload.max(8)];
            payload[..8].copy_from_slice(&now.as_micros().to_be_bytes());
            if peer.multicast(now, Bytes::from(payload)).is_ok() {
                sp.sent += 1;
            }
        }
        if sp.sent >= cfg.messages {
            // The end-of-stream marker follows the last message at once, as
            // in the original.
            if peer.finish(now).is_ok() {
                sp.finished = true;
            } else {
                self.schedule(now + Duration::from_millis(1), What::AppSend(p));
            }
            return;
        }
        let gap = self.interval();
        self.schedule(now + gap, What::AppSend(p));
    }

    fn interval(&mut self) -> Duration {
        let lo = self.cfg.min_interval.as_nanos() as u64;
        let hi = (self.cfg.max_interval.as_nanos() as u64).max(lo);
        Duration::from_nanos(self.app_rng.random_range(lo..=hi))
    }

    /// After any input to peer `p`: send what it wants to send, record what it
    /// delivered, and make sure its next timer is in the queue.
    fn settle(&mut self, p: MemberId) {
        let now = self.now;
        let idx = usize::from(p);
        let mut outgoing = Vec::new();
        let mut ready = false;
        {
            let sp = &mut self.peers[idx];
            let Some(peer) = sp.peer.as_mut() else { return };
            while let Some(t) = peer.poll_transmit(now, &mut self.buf) {
                outgoing.push((t.to, Bytes::copy_from_slice(&self.buf[..t.len])));
            }
            while let Some(ev) = peer.poll_event() {
                match ev {
                    Event::Ready => ready = true,
                    Event::Deliver(d) => {
                        let sent_us = d
                            .payload
                            .get(..8)
                            .and_then(|b| b.try_into().ok())
                            .map(u64::from_be_bytes);
                        sp.log.push(LogEntry {
                            run: peer.config().run_id,
                            peer: p,
                            sender: d.sender,
                            seq: d.seq,
                            stamp: Some(d.stamp),
                            sent_us,
                            delivered_us: Some(now.as_micros()),
                        });
                    }
                    Event::Completed => sp.completed_at = Some(now),
                    Event::Failed(e) => sp.failure = Some(e.to_string()),
                }
            }
            while let Some(ev) = peer.poll_trace() {
                sp.trace.push(ev);
            }
        }
        for (to, bytes) in outgoing {
            self.transmit(p, to, bytes);
        }
        if ready {
            let gap = self.interval();
            self.schedule(now + gap, What::AppSend(p));
        }
        let sp = &mut self.peers[idx];
        if let Some(next) = sp.peer.as_ref().and_then(|peer| peer.poll_timeout()) {
            // Never schedule in the past; a deadline of "now" that survives
            // poll_transmit would otherwise spin.
            let next = next.max(now + Duration::from_micros(1));
            if sp.wake.is_none_or(|w| next < w) {
                sp.wake = Some(next);
                self.schedule(next, What::Wake(p));
            }
        }
    }

    fn transmit(&mut self, from: MemberId, to: MemberId, bytes: Bytes) {
        self.net.sent += 1;
        let (rf, rt) = (
            self.peers[usize::from(from)].region,
            self.peers[usize::from(to)].region,
        );
        match self.cfg.net.fate(rf, rt, &mut self.net_rng) {
            net::Fate::Lost => self.net.lost += 1,
            net::Fate::Arrives(delays) => {
                self.net.duplicated += delays.len() as u64 - 1;
                for d in delays {
                    self.schedule(self.now + d, What::Arrive(to, bytes.clone()));
                }
            }
        }
    }

    fn outcome(self) -> SimOutcome {
        let cfg = self.cfg;
        let spec = RunSpec {
            order: cfg.order,
            members: cfg.peers,
            sent: self.peers.iter().map(|p| p.sent).collect(),
        };
        let logs: Vec<PeerLog> = self
            .peers
            .iter()
            .enumerate()
            .map(|(i, p)| PeerLog {
                peer: i as MemberId,
                entries: p.log.clone(),
            })
            .collect();
        let findings = mpcomm_check::check(&spec, &logs);
        let traces = if cfg.trace.is_some() {
            self.peers
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let (cut, dropped) = p.peer.as_ref().map_or((None, 0), Peer::trace_cut);
                    trace::PeerTrace {
                        peer: i as MemberId,
                        events: p.trace.clone(),
                        cut,
                        dropped,
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        let failures: Vec<(MemberId, String)> = self
            .peers
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.failure.clone().map(|f| (i as MemberId, f)))
            .collect();
        let stuck: Vec<MemberId> = self
            .peers
            .iter()
            .enumerate()
            .filter(|(_, p)| p.completed_at.is_none() && p.failure.is_none())
            .map(|(i, _)| i as MemberId)
            .collect();
        let completed = self.peers.iter().all(|p| p.completed_at.is_some());
        let end = self
            .peers
            .iter()
            .filter_map(|p| p.completed_at)
            .max()
            .unwrap_or(self.now);
        let peer_stats: Vec<Stats> = self
            .peers
            .iter()
            .map(|p| {
                p.peer
                    .as_ref()
                    .map(|p| p.stats().clone())
                    .unwrap_or_default()
            })
            .collect();
        SimOutcome {
            findings,
            seed: cfg.seed,
            completed,
            failures,
            stuck,
            trace_hash: self.trace.finish(),
            sim_time_ms: end.as_nanos() as f64 / 1e6,
            events: self.events,
            network: self.net,
            retransmissions: peer_stats.iter().map(|s| s.retransmissions).sum(),
            datagrams: peer_stats.iter().map(|s| s.datagrams_sent).sum(),
            dropped: peer_stats.iter().map(|s| s.dropped()).sum(),
            peer_stats,
            logs,
            traces,
        }
    }
}
