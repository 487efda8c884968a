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
//! The application is the original MPComm's: once its handshake is done,
//! every peer multicasts M messages at random intervals (10–100 ms by
//! default), then its end-of-stream marker. What the messages say is the
//! run's *workload* ([`mpcomm_check::workload`]): nothing (`seq`, the
//! original's), bank operations, a conversation (`chat`: a peer answers a
//! question addressed to it as soon as it has delivered it, besides its
//! scheduled messages), or key-value writes. Each payload carries its send
//! time, so every delivery's latency is known, and how many messages its
//! sender had delivered, so the checker can judge causal order. At the end
//! the delivery logs go through the checker ([`mpcomm_check::check`]).
//!
//! ```
//! use mpcomm_core::OrderKind;
//! use mpcomm_sim::SimConfig;
//!
//! let out = mpcomm_sim::run(&SimConfig { peers: 3, messages: 5, order: OrderKind::Total, ..SimConfig::default() });
//! assert!(out.completed && out.findings.passed);
//! ```

pub mod net;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::Hasher;
use std::time::Duration;

use bytes::Bytes;
use mpcomm_check::workload::{Script, Turn, Workload, payload};
use mpcomm_check::{Findings, LogEntry, Msg, PeerLog, RunSpec};
use mpcomm_core::{Config, Event, MemberId, OrderKind, Peer, Stats, Time, wire::MAX_DATAGRAM};
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
    /// What the messages say and what peers do with them.
    pub workload: Workload,
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
    /// Payload bytes per message, at least what the workload needs (the
    /// send time, `after`, the operation: 18 bytes and the operation's
    /// text); padded with zeros to this size.
    pub payload: usize,
    /// The core's acknowledgement delay.
    pub ack_delay: Duration,
    /// Flow-control window (records).
    pub window: usize,
    /// Give up (and report the run incomplete) after this much simulated time.
    pub time_limit: Duration,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            peers: 4,
            messages: 20,
            order: OrderKind::Total,
            workload: Workload::Seq,
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
        }
    }
}

impl SimConfig {
    /// The `mpcomm sim` command line that replays this run. Fields the command
    /// line cannot set are assumed to have their defaults.
    pub fn replay_command(&self) -> String {
        let ms = |d: Duration| format!("{}ms", d.as_secs_f64() * 1000.0);
        format!(
            "mpcomm sim --peers {} --messages {} --order {} --workload {} --seed {} --regions {} --loss {} \
             --duplicate {} --reorder {} --skew {} --intra {}±{} --inter {}±{} --min-interval {} --max-interval {}",
            self.peers,
            self.messages,
            self.order,
            self.workload,
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
            ms(self.min_interval),
            ms(self.max_interval),
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
    /// Datagrams sent per message multicast (each message is delivered by
    /// every peer): what one message costs the network.
    pub datagrams_per_message: f64,
    /// Datagrams sent by each peer: a sequencer's load shows here.
    pub peer_datagrams: Vec<u64>,
    /// Anything peers dropped as invalid, summed.
    pub dropped: u64,
    /// Each peer's counters.
    #[serde(skip)]
    pub peer_stats: Vec<Stats>,
    /// Each peer's delivery log.
    #[serde(skip)]
    pub logs: Vec<PeerLog>,
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
    /// A peer's application answers a question it has just delivered.
    Reply(MemberId),
}

/// A simulated peer.
struct SimPeer {
    peer: Option<Peer>,
    region: usize,
    /// The earliest wake-up already in the queue.
    wake: Option<Time>,
    /// What the application sends.
    script: Script,
    /// A [`What::Reply`] is in the queue.
    reply_queued: bool,
    finished: bool,
    log: Vec<LogEntry>,
    failure: Option<String>,
    completed_at: Option<Time>,
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
                script: Script::new(
                    cfg.workload,
                    i as MemberId,
                    cfg.peers,
                    cfg.messages,
                    cfg.seed,
                ),
                reply_queued: false,
                finished: false,
                log: Vec::new(),
                failure: None,
                completed_at: None,
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
                    self.app_send(p, Turn::Scheduled);
                    self.settle(p);
                }
                What::Reply(p) => {
                    self.trace.write_u8(4);
                    self.trace.write_u16(p);
                    self.peers[usize::from(p)].reply_queued = false;
                    self.app_send(p, Turn::Reply);
                    self.settle(p);
                }
            }
            if self.all_settled() {
                break;
            }
        }
        self.outcome()
    }

    /// The application of peer `p` sends its next message on this turn
    /// (or its end-of-stream marker after the last one). A scheduled turn
    /// schedules the next one.
    fn app_send(&mut self, p: MemberId, turn: Turn) {
        let now = self.now;
        let cfg = self.cfg;
        let sp = &mut self.peers[usize::from(p)];
        let Some(peer) = sp.peer.as_mut() else { return };
        if sp.finished || peer.is_failed() {
            return;
        }
        let retry = if turn == Turn::Scheduled {
            What::AppSend(p)
        } else {
            What::Reply(p)
        };
        if !peer.can_send() {
            // Window full: try again shortly.
            if turn == Turn::Reply {
                sp.reply_queued = true;
            }
            self.schedule(now + Duration::from_millis(1), retry);
            return;
        }
        let after = sp.script.delivered();
        if let Some(op) = sp.script.next(turn) {
            let bytes = payload::encode(now.as_micros(), after, op.as_ref(), cfg.payload);
            if peer.multicast(now, Bytes::from(bytes)).is_err() {
                return; // the run failed; its failure is recorded as an event
            }
        }
        if sp.script.is_done() {
            // The end-of-stream marker follows the last message at once, as
            // in the original.
            if peer.finish(now).is_ok() {
                sp.finished = true;
            } else {
                self.schedule(now + Duration::from_millis(1), What::AppSend(p));
            }
            return;
        }
        if turn == Turn::Scheduled {
            let gap = self.interval();
            self.schedule(now + gap, What::AppSend(p));
        }
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
        let mut reply = false;
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
                        // Every payload here was made by `app_send`; one
                        // that did not decode would show as a delivery
                        // without workload fields.
                        let decoded = payload::decode(&d.payload).unwrap_or(payload::Decoded {
                            sent_us: None,
                            after: None,
                            op: None,
                        });
                        let msg = Msg {
                            sender: d.sender,
                            seq: d.seq,
                        };
                        sp.script.on_deliver(msg, decoded.op.as_ref());
                        sp.log.push(LogEntry {
                            run: peer.config().run_id,
                            peer: p,
                            sender: d.sender,
                            seq: d.seq,
                            stamp: Some(d.stamp),
                            sent_us: decoded.sent_us,
                            delivered_us: Some(now.as_micros()),
                            after: decoded.after,
                            op: decoded.op,
                        });
                    }
                    Event::Completed => sp.completed_at = Some(now),
                    Event::Failed(e) => sp.failure = Some(e.to_string()),
                }
            }
        }
        {
            // A question for us was delivered: answer it now, not at the
            // next scheduled send (a reply that waits tens of milliseconds
            // would rarely overtake its question anywhere).
            let sp = &mut self.peers[idx];
            if sp.script.reply_due() && !sp.reply_queued && !sp.finished {
                sp.reply_queued = true;
                reply = true;
            }
        }
        for (to, bytes) in outgoing {
            self.transmit(p, to, bytes);
        }
        if ready {
            let gap = self.interval();
            self.schedule(now + gap, What::AppSend(p));
        }
        if reply {
            self.schedule(now, What::Reply(p));
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
            sent: self.peers.iter().map(|p| p.script.sent()).collect(),
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
        let datagrams = peer_stats.iter().map(|s| s.datagrams_sent).sum();
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
            datagrams,
            datagrams_per_message: datagrams as f64 / spec.sent.iter().sum::<u64>().max(1) as f64,
            peer_datagrams: peer_stats.iter().map(|s| s.datagrams_sent).collect(),
            dropped: peer_stats.iter().map(|s| s.dropped()).sum(),
            peer_stats,
            logs,
        }
    }
}
