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

pub mod faults;
pub mod net;
pub mod rundir;
pub mod shiviz;
pub mod trace;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::hash::Hasher;
use std::time::Duration;

use bytes::Bytes;
use mpcomm_check::workload::{Script, Turn, Workload, payload};
use mpcomm_check::{
    Findings, LogEntry, Msg, PeerLog, RunSpec, ViewLog, ViewMark, VirtualSynchrony,
};
use mpcomm_core::{
    Config, Event, MemberId, OrderKind, Peer, Stats, Time, TraceEvent, TraceLimits,
    wire::MAX_DATAGRAM,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

pub use faults::Fault;
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
    /// The failure detector's timeout ([`mpcomm_core::Config::suspect_after`]).
    /// Generous by default, so that heavy loss alone never suspects anyone;
    /// runs with faults set something realistic.
    pub suspect_after: Duration,
    /// Faults to inject.
    pub faults: Vec<Fault>,
    /// Crash this many members (crash-stop) at random times drawn from the
    /// seed, besides `faults`.
    pub crashes: usize,
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
            suspect_after: Duration::from_secs(60),
            faults: Vec::new(),
            crashes: 0,
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
            "mpcomm sim --peers {} --messages {} --order {} --workload {} --seed {} --regions {} --loss {} \
             --duplicate {} --reorder {} --skew {} --intra {}±{} --inter {}±{}",
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
        ) + &self.non_default_flags()
    }

    /// The command-line flags for the settings that differ from their
    /// defaults and that the fixed part of the replay command omits.
    fn non_default_flags(&self) -> String {
        let ms = |d: Duration| format!("{}ms", d.as_secs_f64() * 1000.0);
        let d = SimConfig::default();
        let mut out = String::new();
        if self.min_interval != d.min_interval {
            out += &format!(" --min-interval {}", ms(self.min_interval));
        }
        if self.max_interval != d.max_interval {
            out += &format!(" --max-interval {}", ms(self.max_interval));
        }
        if self.window != d.window {
            out += &format!(" --window {}", self.window);
        }
        if self.suspect_after != d.suspect_after {
            out += &format!(" --suspect-after {}", ms(self.suspect_after));
        }
        if self.crashes != 0 {
            out += &format!(" --crashes {}", self.crashes);
        }
        for f in &self.faults {
            out += &format!(" {f}");
        }
        out
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
    /// Simulated time until the last peer left, by the same rule as the
    /// real runtime's ([`mpcomm_core::Peer::may_leave`]): every other member
    /// holds its records and has completed (or is gone), plus a close wait.
    pub end_time_ms: f64,
    /// Datagrams that reached a peer after it had left.
    pub after_leave: u64,
    /// Every view some member installed, in order.
    pub views: Vec<ViewSummary>,
    /// Virtual synchrony across those views (see
    /// [`mpcomm_check::check_virtual_synchrony`]).
    pub virtual_synchrony: bool,
    /// The virtual-synchrony verdict with its first counter-example.
    pub virtual_synchrony_detail: VirtualSynchrony,
    /// The faults injected (the given ones and the drawn crashes).
    pub faults: Vec<Fault>,
    /// Members that survived: not crashed, not excluded, and (if restarted)
    /// admitted again.
    pub survivors: Vec<MemberId>,
    /// Processes that stopped because the group went on without them
    /// (excluded, or in a minority partition), with why.
    pub excluded: Vec<(MemberId, String)>,
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
    /// Each peer's delivery log (for a member that restarted, its first
    /// process's; see [`SimOutcome::process_logs`] for all of them).
    #[serde(skip)]
    pub logs: Vec<PeerLog>,
    /// Every process's log and views, crashed and restarted ones included.
    #[serde(skip)]
    pub process_logs: Vec<(PeerLog, ViewLog)>,
    /// Each peer's trace, when [`SimConfig::trace`] asked for one.
    #[serde(skip)]
    pub traces: Vec<trace::PeerTrace>,
}

/// A view some member installed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ViewSummary {
    /// Its number.
    pub id: u32,
    /// Its members.
    pub members: Vec<MemberId>,
    /// Members new in it.
    pub joined: Vec<MemberId>,
    /// Members of the previous view not in it.
    pub left: Vec<MemberId>,
    /// When the first member installed it, in ms of simulated time.
    pub installed_ms: f64,
}

impl SimOutcome {
    /// Whether the run completed and the checker found every property the
    /// order promises, virtual synchrony included.
    pub fn ok(&self) -> bool {
        self.completed && self.findings.passed && self.virtual_synchrony && self.failures.is_empty()
    }
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum What {
    /// A member's (first) process starts.
    Start(MemberId),
    /// A datagram reaches a member's address.
    Arrive(MemberId, Bytes),
    /// A process's timer.
    Wake(usize),
    /// A process's application multicasts its next message.
    AppSend(usize),
    /// A process's application answers a question it has just delivered.
    Reply(usize),
    /// The fault with this index strikes.
    FaultStart(usize),
    /// The fault with this index ends (a restart's new process starts, a
    /// pause or a partition ends).
    FaultEnd(usize),
}

/// One simulated process: a member's life between a start and a crash. A
/// member that restarts has a second process.
struct SimProc {
    member: MemberId,
    peer: Option<Peer>,
    /// The earliest wake-up already in the queue.
    wake: Option<Time>,
    /// What the application sends.
    script: Script,
    /// A [`What::Reply`] is in the queue.
    reply_queued: bool,
    finished: bool,
    log: Vec<LogEntry>,
    views: Vec<ViewMark>,
    failure: Option<String>,
    completed_at: Option<Time>,
    /// When the process left (its run ended): from then on it neither
    /// sends nor receives.
    left_at: Option<Time>,
    crashed: bool,
    /// Paused until then: datagrams wait in `inbox`, timers wait.
    paused_until: Option<Time>,
    inbox: Vec<Bytes>,
    /// A fault struck it, so being excluded is no surprise.
    faulted: bool,
    trace: Vec<TraceEvent>,
}

impl SimProc {
    fn new(member: MemberId, script: Script) -> SimProc {
        SimProc {
            member,
            peer: None,
            wake: None,
            script,
            reply_queued: false,
            finished: false,
            log: Vec::new(),
            views: Vec::new(),
            failure: None,
            completed_at: None,
            left_at: None,
            crashed: false,
            paused_until: None,
            inbox: Vec::new(),
            faulted: false,
            trace: Vec::new(),
        }
    }

    fn gone(&self) -> bool {
        self.left_at.is_some() || self.crashed
    }
}

/// At most this many datagrams wait in a paused process's socket buffer;
/// more are dropped, as by a full kernel buffer.
const PAUSED_INBOX: usize = 4096;

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
    faults: Vec<Fault>,
    now: Time,
    queue: BinaryHeap<Reverse<(Time, u64, What)>>,
    next_id: u64,
    procs: Vec<SimProc>,
    /// The process answering at each member's address.
    current: Vec<Option<usize>>,
    regions: Vec<usize>,
    /// Partitions in force: the members of each cut-off side.
    cuts: Vec<(usize, Vec<MemberId>)>,
    net_rng: ChaCha8Rng,
    app_rng: ChaCha8Rng,
    net: NetStats,
    trace: TraceHash,
    events: u64,
    after_leave: u64,
    views: BTreeMap<u32, ViewSummary>,
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

/// SplitMix64's output function: a well-mixed 64-bit value from a seed.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl<'a> Sim<'a> {
    fn new(cfg: &'a SimConfig) -> Sim<'a> {
        // Separate streams for the network, the workload and the faults, so
        // that the same seed gives the same workload whatever the network
        // does, and the same faults whatever either does.
        let mut net_rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        net_rng.set_stream(1);
        let mut app_rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        app_rng.set_stream(2);
        let mut fault_rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        fault_rng.set_stream(3);
        let mut faults = cfg.faults.clone();
        faults.extend(random_crashes(cfg, &mut fault_rng));
        let mut sim = Sim {
            cfg,
            faults,
            now: Time::ZERO,
            queue: BinaryHeap::new(),
            next_id: 0,
            procs: Vec::new(),
            current: vec![None; cfg.peers],
            regions: (0..cfg.peers)
                .map(|i| net::region_of(i, cfg.peers, cfg.regions))
                .collect(),
            cuts: Vec::new(),
            net_rng,
            app_rng,
            net: NetStats::default(),
            trace: TraceHash(0xcbf2_9ce4_8422_2325),
            events: 0,
            after_leave: 0,
            views: BTreeMap::new(),
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
        for (i, f) in sim.faults.clone().iter().enumerate() {
            let at = match f {
                Fault::Crash { at, .. }
                | Fault::Restart { at, .. }
                | Fault::Pause { at, .. }
                | Fault::Partition { at, .. } => *at,
            };
            sim.schedule(Time::ZERO + at, What::FaultStart(i));
        }
        sim
    }

    fn schedule(&mut self, at: Time, what: What) {
        self.queue.push(Reverse((at, self.next_id, what)));
        self.next_id += 1;
    }

    /// Whether every process has left, crashed, or never started because
    /// its configuration was refused.
    fn all_left(&self) -> bool {
        self.procs.len() >= self.cfg.peers
            && self.current.iter().all(|c| c.is_some())
            && self
                .procs
                .iter()
                .all(|p| p.gone() || (p.peer.is_none() && p.failure.is_some()))
            && !self
                .queue
                .iter()
                .any(|Reverse((_, _, w))| matches!(w, What::FaultEnd(_)))
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
                    delivered: self.procs.iter().map(|p| p.log.len() as u64).sum(),
                    expected,
                    sim_time: Duration::from_nanos(at.as_nanos()),
                });
            }
            self.trace.write_u64(at.as_nanos());
            match what {
                What::Start(m) => {
                    self.trace.write_u8(0);
                    self.trace.write_u16(m);
                    self.start_process(m, true);
                }
                What::Arrive(m, bytes) => {
                    self.trace.write_u8(1);
                    self.trace.write_u16(m);
                    self.trace.write(&bytes);
                    self.arrive(m, bytes);
                }
                What::Wake(p) => {
                    self.trace.write_u8(2);
                    self.trace.write_u64(p as u64);
                    let sp = &mut self.procs[p];
                    if sp.wake == Some(at) {
                        sp.wake = None;
                    }
                    if sp.gone() || sp.paused_until.is_some() {
                        continue;
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
                    self.trace.write_u64(p as u64);
                    self.app_send(p, Turn::Scheduled);
                    self.settle(p);
                }
                What::Reply(p) => {
                    self.trace.write_u8(6);
                    self.trace.write_u64(p as u64);
                    self.procs[p].reply_queued = false;
                    self.app_send(p, Turn::Reply);
                    self.settle(p);
                }
                What::FaultStart(i) => {
                    self.trace.write_u8(4);
                    self.trace.write_u64(i as u64);
                    self.fault_start(i);
                }
                What::FaultEnd(i) => {
                    self.trace.write_u8(5);
                    self.trace.write_u64(i as u64);
                    self.fault_end(i);
                }
            }
            if self.all_left() {
                break;
            }
        }
        self.outcome()
    }

    fn start_process(&mut self, m: MemberId, sends: bool) {
        let idx = self.procs.len();
        let generation = self.procs.iter().filter(|p| p.member == m).count() as u64;
        // A restarted process joins a running group: it answers (chat) but
        // starts nothing of its own.
        let messages = if sends { self.cfg.messages } else { 0 };
        let script = Script::new(
            self.cfg.workload,
            m,
            self.cfg.peers,
            messages,
            self.cfg.seed,
        );
        let mut sp = SimProc::new(m, script);
        let mut c = Config::new(
            0x5157_0000 ^ self.cfg.seed,
            m,
            self.cfg.peers,
            self.cfg.order,
        );
        c.ack_delay = self.cfg.ack_delay;
        // Drawn from the seed without touching the workload's random
        // stream: the same seed gives the same run.
        c.incarnation = splitmix64(self.cfg.seed ^ (u64::from(m) << 48) ^ (generation << 40)) | 1;
        c.window = self.cfg.window;
        // Generous, so that the slowest simulated WAN never trips them.
        c.handshake_timeout = Duration::from_secs(60);
        c.peer_timeout = Duration::from_secs(60);
        c.keepalive = Duration::from_secs(1);
        c.suspect_after = self.cfg.suspect_after;
        c.heartbeat = (self.cfg.suspect_after / 5).max(Duration::from_millis(1));
        c.trace = self.cfg.trace;
        match Peer::new(c, self.now) {
            Ok(peer) => sp.peer = Some(peer),
            Err(e) => sp.failure = Some(e.to_string()),
        }
        sp.faulted = generation > 0;
        self.procs.push(sp);
        self.current[usize::from(m)] = Some(idx);
        self.settle(idx);
    }

    fn arrive(&mut self, m: MemberId, bytes: Bytes) {
        let Some(p) = self.current[usize::from(m)] else {
            self.net.before_start += 1;
            return;
        };
        let sp = &mut self.procs[p];
        if sp.gone() {
            self.after_leave += 1; // its process is gone
            return;
        }
        if sp.paused_until.is_some() {
            if sp.inbox.len() < PAUSED_INBOX {
                sp.inbox.push(bytes);
            }
            return;
        }
        match sp.peer.as_mut() {
            Some(peer) => peer.handle_datagram(self.now, bytes),
            None => self.net.before_start += 1,
        }
        self.settle(p);
    }

    fn fault_start(&mut self, i: usize) {
        let fault = self.faults[i].clone();
        match fault {
            Fault::Crash { member, .. } | Fault::Restart { member, .. } => {
                if let Some(p) = self.current[usize::from(member)] {
                    let sp = &mut self.procs[p];
                    if !sp.gone() {
                        sp.crashed = true;
                        sp.faulted = true;
                    }
                }
                if let Fault::Restart { down, .. } = fault {
                    self.schedule(self.now + down, What::FaultEnd(i));
                }
            }
            Fault::Pause { member, length, .. } => {
                if let Some(p) = self.current[usize::from(member)] {
                    let sp = &mut self.procs[p];
                    sp.paused_until = Some(self.now + length);
                    sp.faulted = true;
                }
                self.schedule(self.now + length, What::FaultEnd(i));
            }
            Fault::Partition { side, length, .. } => {
                for m in &side {
                    if let Some(p) = self.current[usize::from(*m)] {
                        self.procs[p].faulted = true;
                    }
                }
                self.cuts.push((i, side));
                self.schedule(self.now + length, What::FaultEnd(i));
            }
        }
    }

    fn fault_end(&mut self, i: usize) {
        match self.faults[i].clone() {
            Fault::Restart { member, .. } => self.start_process(member, false),
            Fault::Pause { member, .. } => {
                let Some(p) = self.current[usize::from(member)] else {
                    return;
                };
                let sp = &mut self.procs[p];
                sp.paused_until = None;
                if sp.gone() {
                    return;
                }
                let inbox = std::mem::take(&mut sp.inbox);
                if let Some(peer) = sp.peer.as_mut() {
                    for bytes in inbox {
                        peer.handle_datagram(self.now, bytes);
                    }
                    if peer.poll_timeout().is_some_and(|t| t <= self.now) {
                        peer.handle_timeout(self.now);
                    }
                }
                self.settle(p);
                self.schedule(self.now, What::AppSend(p));
            }
            Fault::Partition { .. } => self.cuts.retain(|(j, _)| *j != i),
            Fault::Crash { .. } => {}
        }
    }

    /// The application of process `p` sends its next message (or its
    /// end-of-stream marker after the last one).
    fn app_send(&mut self, p: usize, turn: Turn) {
        let now = self.now;
        let cfg = self.cfg;
        let sp = &mut self.procs[p];
        if sp.finished || sp.gone() || sp.paused_until.is_some() {
            return;
        }
        let Some(peer) = sp.peer.as_mut() else { return };
        if peer.is_failed() {
            return;
        }
        let retry = if turn == Turn::Scheduled {
            What::AppSend(p)
        } else {
            What::Reply(p)
        };
        if !peer.can_send() {
            // Window full or a view change under way: try again shortly.
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

    /// After any input to process `p`: send what it wants to send, record
    /// what it delivered, and make sure its next timer is in the queue.
    fn settle(&mut self, p: usize) {
        let now = self.now;
        let mut outgoing = Vec::new();
        let mut ready = false;
        let from = self.procs[p].member;
        let mut reply = false;
        {
            let sp = &mut self.procs[p];
            if sp.gone() || sp.paused_until.is_some() {
                return;
            }
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
                            peer: sp.member,
                            sender: d.sender,
                            seq: d.seq,
                            stamp: Some(d.stamp),
                            sent_us: decoded.sent_us,
                            delivered_us: Some(now.as_micros()),
                            after: decoded.after,
                            op: decoded.op,
                        });
                    }
                    Event::View {
                        id,
                        members,
                        joined,
                        left,
                    } => {
                        sp.views.push(ViewMark {
                            at: sp.log.len(),
                            id,
                            members: members.clone(),
                            joined: joined.clone(),
                            left: left.clone(),
                            t_us: Some(now.as_micros()),
                        });
                        self.views.entry(id).or_insert(ViewSummary {
                            id,
                            members,
                            joined,
                            left,
                            installed_ms: now.as_nanos() as f64 / 1e6,
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
        {
            // A question for us was delivered: answer it now, not at the
            // next scheduled send (a reply that waits tens of milliseconds
            // would rarely overtake its question anywhere).
            let sp = &mut self.procs[p];
            if sp.script.reply_due() && !sp.reply_queued && !sp.finished && !sp.gone() {
                sp.reply_queued = true;
                reply = true;
            }
        }
        for (to, bytes) in outgoing {
            self.transmit(from, to, bytes);
        }
        if ready {
            let gap = self.interval();
            self.schedule(now + gap, What::AppSend(p));
        }
        if reply {
            self.schedule(now, What::Reply(p));
        }
        let sp = &mut self.procs[p];
        if sp.peer.as_ref().is_some_and(|peer| peer.may_leave(now)) {
            // The runtime's rule: the process exits now.
            sp.left_at = Some(now);
            return;
        }
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

    fn cut_off(&self, a: MemberId, b: MemberId) -> bool {
        self.cuts
            .iter()
            .any(|(_, side)| side.contains(&a) != side.contains(&b))
    }

    fn transmit(&mut self, from: MemberId, to: MemberId, bytes: Bytes) {
        self.net.sent += 1;
        if usize::from(to) >= self.cfg.peers || self.cut_off(from, to) {
            self.net.lost += 1;
            return;
        }
        let (rf, rt) = (
            self.regions[usize::from(from)],
            self.regions[usize::from(to)],
        );
        let fate = self.cfg.net.fate(rf, rt, &mut self.net_rng);
        match fate {
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
        // Survivors: the member's latest process, not crashed and not
        // stopped by the group going on without it.
        let mut survivors = Vec::new();
        let mut excluded = Vec::new();
        let mut failures = Vec::new();
        for (m, cur) in self.current.iter().enumerate() {
            let Some(p) = cur else { continue };
            let sp = &self.procs[*p];
            if sp.crashed {
                continue;
            }
            match &sp.failure {
                None => survivors.push(m as MemberId),
                Some(f)
                    if sp.faulted && (f.contains("excluded") || f.contains("not a majority")) =>
                {
                    excluded.push((m as MemberId, f.clone()));
                }
                Some(f) => failures.push((m as MemberId, f.clone())),
            }
        }
        // Earlier processes of restarted members, and excluded processes,
        // are not survivors but their logs count for virtual synchrony.
        let process_logs: Vec<(PeerLog, ViewLog)> = self
            .procs
            .iter()
            .enumerate()
            .map(|(i, sp)| {
                let survivor = self.current[usize::from(sp.member)] == Some(i)
                    && survivors.contains(&sp.member);
                (
                    PeerLog::new(sp.member, sp.log.clone()),
                    ViewLog {
                        marks: sp.views.clone(),
                        survivor,
                        sent: sp.script.sent(),
                    },
                )
            })
            .collect();
        let (plogs, vlogs): (Vec<PeerLog>, Vec<ViewLog>) = process_logs.iter().cloned().unzip();
        let vs = mpcomm_check::check_virtual_synchrony(cfg.order, &plogs, &vlogs);
        // The classic checks, over the members that took part from the
        // first view to the end: those deliver the same messages.
        let full: Vec<usize> = self
            .procs
            .iter()
            .enumerate()
            .filter(|(i, sp)| {
                !sp.faulted
                    && sp.failure.is_none()
                    && self.current[usize::from(sp.member)] == Some(*i)
            })
            .map(|(i, _)| i)
            .collect();
        let faulty = !self.faults.is_empty();
        let mut sent: Vec<u64> = vec![0; cfg.peers];
        for sp in &self.procs {
            let s = &mut sent[usize::from(sp.member)];
            *s = (*s).max(sp.script.sent());
        }
        if faulty {
            // A crashed member's last messages may be delivered by nobody:
            // what the survivors delivered of it is what it "sent".
            for (m, s) in sent.iter_mut().enumerate() {
                let survived = full.iter().any(|&i| usize::from(self.procs[i].member) == m);
                if !survived {
                    *s = full
                        .iter()
                        .flat_map(|&i| self.procs[i].log.iter())
                        .filter(|e| usize::from(e.sender) == m)
                        .map(|e| e.seq + 1)
                        .max()
                        .unwrap_or(0);
                }
            }
        }
        let logs: Vec<PeerLog> = if faulty {
            full.iter()
                .map(|&i| PeerLog::new(self.procs[i].member, self.procs[i].log.clone()))
                .collect()
        } else {
            (0..cfg.peers)
                .map(|m| {
                    let sp = self.procs.iter().find(|p| usize::from(p.member) == m);
                    PeerLog::new(m as MemberId, sp.map(|p| p.log.clone()).unwrap_or_default())
                })
                .collect()
        };
        let spec = RunSpec {
            order: cfg.order,
            members: cfg.peers,
            sent,
        };
        let findings = if faulty {
            mpcomm_check::check_members(&spec, &logs)
        } else {
            mpcomm_check::check(&spec, &logs)
        };
        let stuck: Vec<MemberId> = survivors
            .iter()
            .copied()
            .filter(|m| {
                self.current[usize::from(*m)].is_some_and(|p| self.procs[p].completed_at.is_none())
            })
            .collect();
        let completed = !survivors.is_empty() && stuck.is_empty();
        // One trace per member: its first process (a restarted member's
        // later processes are not drawn).
        let traces = if cfg.trace.is_some() {
            (0..cfg.peers)
                .filter_map(|m| {
                    let p = self.procs.iter().find(|p| usize::from(p.member) == m)?;
                    let (cut, dropped) = p.peer.as_ref().map_or((None, 0), Peer::trace_cut);
                    Some(trace::PeerTrace {
                        peer: m as MemberId,
                        events: p.trace.clone(),
                        cut,
                        dropped,
                    })
                })
                .collect()
        } else {
            Vec::new()
        };
        let end = self
            .procs
            .iter()
            .filter_map(|p| p.completed_at)
            .max()
            .unwrap_or(self.now);
        let peer_stats: Vec<Stats> = (0..cfg.peers)
            .map(|m| {
                self.current[m]
                    .and_then(|p| self.procs[p].peer.as_ref())
                    .map(|p| p.stats().clone())
                    .unwrap_or_default()
            })
            .collect();
        let all_stats: Vec<&Stats> = self
            .procs
            .iter()
            .filter_map(|p| p.peer.as_ref().map(|p| p.stats()))
            .collect();
        let datagrams = all_stats.iter().map(|s| s.datagrams_sent).sum::<u64>();
        SimOutcome {
            findings,
            seed: cfg.seed,
            completed,
            failures,
            stuck,
            trace_hash: self.trace.finish(),
            sim_time_ms: end.as_nanos() as f64 / 1e6,
            end_time_ms: self
                .procs
                .iter()
                .filter_map(|p| p.left_at)
                .max()
                .unwrap_or(self.now)
                .as_nanos() as f64
                / 1e6,
            after_leave: self.after_leave,
            views: self.views.into_values().collect(),
            virtual_synchrony: vs.holds,
            virtual_synchrony_detail: vs,
            faults: self.faults,
            survivors,
            excluded,
            events: self.events,
            network: self.net,
            retransmissions: all_stats.iter().map(|s| s.retransmissions).sum(),
            datagrams,
            datagrams_per_message: datagrams as f64 / spec.sent.iter().sum::<u64>().max(1) as f64,
            peer_datagrams: peer_stats.iter().map(|s| s.datagrams_sent).collect(),
            dropped: all_stats.iter().map(|s| s.dropped()).sum(),
            peer_stats,
            logs,
            process_logs,
            traces,
        }
    }
}

/// `cfg.crashes` crash-stops of distinct members at random times in the
/// first part of the run, from the seed's fault stream. Never more than a
/// minority of the group at once would break the majority rule, so at most
/// `(peers - 1) / 2` members crash.
fn random_crashes(cfg: &SimConfig, rng: &mut ChaCha8Rng) -> Vec<Fault> {
    let k = cfg.crashes.min(cfg.peers.saturating_sub(1) / 2);
    let mut members: Vec<MemberId> = (0..cfg.peers as MemberId).collect();
    let mut out = Vec::new();
    // The run's sending phase lasts about messages × mean interval.
    let mean = (cfg.min_interval + cfg.max_interval) / 2;
    let span = mean
        .saturating_mul(cfg.messages.min(u64::from(u32::MAX)) as u32)
        .max(Duration::from_millis(100));
    for _ in 0..k {
        let i = rng.random_range(0..members.len());
        let member = members.swap_remove(i);
        let at = Duration::from_nanos(rng.random_range(0..=span.as_nanos() as u64));
        out.push(Fault::Crash {
            member,
            at: at + Duration::from_millis(50),
        });
    }
    out
}
