//! Model checking the peer state machine: total order and the view change,
//! explored exhaustively for a group of three.
//!
//! The simulator's suites draw schedules at random; this test enumerates
//! them. It drives three real [`Peer`]s (the sans-IO core, unchanged)
//! through *every* schedule an adversarial network and one crash can
//! produce, up to a bounded number of steps, and checks the promises of
//! virtual synchrony in every state it reaches.
//!
//! # The model
//!
//! A *world* is three peers, a global clock, and the datagrams in flight (a
//! multiset: the network may reorder them freely). From a world the
//! adversary chooses one step:
//!
//! * **deliver** any datagram in flight (in any order: reordering);
//! * **drop** one (loss; a bounded number of times);
//! * **duplicate** one: deliver it and leave a copy in flight (bounded);
//! * **fire the timers**: advance the clock to the earliest deadline any
//!   live peer asked for and call `handle_timeout` on every peer due (this
//!   is how time passes, so holding datagrams while firing timers is how
//!   the network *delays* them — long enough, and a live member is
//!   suspected);
//! * **crash** a peer (once): it stops, and nothing more reaches it.
//!
//! After each input the peer's `poll_transmit` and `poll_event` are
//! drained, as every runtime does.
//!
//! # The explorer
//!
//! [`Peer`] is neither `Clone` nor `Hash`, so the explorer is *stateless*:
//! a state is named by the sequence of choices that leads to it from the
//! initial world, and is rebuilt by replaying them (the core is
//! deterministic: same inputs, same outputs). A depth-first search walks
//! every choice sequence up to [`Bounds::depth`] adversarial steps. Two
//! sequences that lead to the same state — e.g. two deliveries to different
//! peers in either order — are recognised by a fingerprint of what the
//! state shows (each peer's events, counters, clock, view, timers; the
//! multiset in flight; the fault budget left), and the second is not
//! explored again unless it reaches the state with more steps to spare.
//! The fingerprint does not see every byte of a peer's memory, so this
//! pruning is a (strong) heuristic, not a proof; the counters make two
//! states that differ in how they got there differ in their fingerprint.
//!
//! At every leaf (the depth bound, or nothing left to do) the network turns
//! *fair*: every datagram is delivered, oldest first, and timers fire only
//! when nothing is in flight, until every live peer has completed or
//! stopped. There, liveness is checked: the survivors complete.
//!
//! # The properties
//!
//! In every state, over each peer's event stream (deliveries and view
//! marks):
//!
//! * **integrity** — nothing delivered twice, nothing delivered that was
//!   not multicast (sender, sequence number and payload all match);
//! * **total order within a view** — any two peers deliver the messages they
//!   both delivered in a view in the same relative order;
//! * **same set** (virtual synchrony) — peers that installed view `v+1`
//!   straight from view `v` delivered the same set in `v`;
//! * **sending view** — a message is delivered in the same view by everyone
//!   who delivers it.
//!
//! At every leaf, after fair delivery: every peer that did not crash
//! completed (or, if the adversary delayed it past the failure detector,
//! was excluded — and then the others completed without it), delivered its
//! own messages, and every peer that completed in the same view delivered
//! the same messages; and the project's own checker
//! (`mpcomm_check::check_virtual_synchrony`) agrees.
//!
//! A violation panics with the schedule that reproduces it: the choices
//! (as a Rust literal, to paste into [`replay_schedule`]) and what each step
//! did.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mpcomm_check::{LogEntry, PeerLog, ViewLog, ViewMark, check_virtual_synchrony};
use mpcomm_core::wire::MAX_DATAGRAM;
use mpcomm_core::{Config, Event, MemberId, OrderKind, Peer, PeerError, Time};

/// One adversarial step. Datagram indices are positions in the world's
/// in-flight list (kept in the order the datagrams were sent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Choice {
    Deliver(usize),
    Drop(usize),
    Dup(usize),
    Timer,
    Crash(MemberId),
}

/// What the adversary may do, and for how long.
#[derive(Clone, Copy, Debug)]
struct Bounds {
    /// Adversarial steps before the network turns fair.
    depth: usize,
    /// Datagrams it may drop.
    losses: u32,
    /// Datagrams it may duplicate.
    dups: u32,
    /// Peers it may crash.
    crashes: u32,
}

/// What each member multicasts (then it ends its stream).
#[derive(Clone, Debug)]
struct Scenario {
    name: &'static str,
    /// Messages per member.
    sends: [u64; N],
    bounds: Bounds,
    /// Crash this member as soon as everyone has multicast (its datagram
    /// to the second member, if one is named, lost), let the network run
    /// fairly until a flush begins, and spend the adversary's steps on the
    /// flush.
    crash_first: Option<(MemberId, Option<MemberId>)>,
}

const N: usize = 3;

/// The longest the adversary may hold a datagram while time passes: well
/// under the failure detector's 300 ms, less two heartbeats (one may be
/// lost).
const MAX_DELAY: Duration = Duration::from_millis(50);

/// What a peer's event stream recorded.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Mark {
    View(u32, Vec<MemberId>),
    Deliver(MemberId, u64, bool),
    Completed,
    Failed(String),
}

struct Datagram {
    sent: Time,
    from: MemberId,
    to: MemberId,
    bytes: Bytes,
}

struct World {
    peers: Vec<Peer>,
    alive: [bool; N],
    marks: Vec<Vec<Mark>>,
    net: Vec<Datagram>,
    now: Time,
    losses: u32,
    dups: u32,
    crashes: u32,
    buf: Vec<u8>,
    /// What each step did, for the counter-example.
    log: Vec<String>,
}

fn config(me: MemberId) -> Config {
    let mut c = Config::new(7, me, N, OrderKind::Total);
    // Few, coarse timers: every timer firing is a step of the search, so
    // the failure detector must trip within a handful of them.
    c.initial_rto = Duration::from_millis(100);
    c.min_rto = Duration::from_millis(100);
    c.max_rto = Duration::from_millis(200);
    c.hello_interval = Duration::from_millis(100);
    c.handshake_timeout = Duration::from_secs(5);
    c.heartbeat = Duration::from_millis(100);
    c.keepalive = Duration::from_millis(150);
    c.suspect_after = Duration::from_millis(300);
    c.peer_timeout = Duration::from_secs(2);
    c
}

fn payload(sender: MemberId, seq: u64) -> Bytes {
    Bytes::from(format!("m{sender}.{seq}"))
}

impl World {
    /// The initial world: the handshake done (fair, in order, no timers),
    /// then every member multicasts its messages and ends its stream. The
    /// datagrams carrying them are in flight.
    fn initial(sc: &Scenario) -> World {
        let mut w = World {
            peers: (0..N)
                .map(|m| {
                    Peer::new(config(m as MemberId), Time::ZERO)
                        .expect("the model's configuration is valid")
                })
                .collect(),
            alive: [true; N],
            marks: vec![Vec::new(); N],
            net: Vec::new(),
            now: Time::ZERO,
            losses: sc.bounds.losses,
            dups: sc.bounds.dups,
            crashes: sc.bounds.crashes,
            buf: vec![0; MAX_DATAGRAM],
            log: Vec::new(),
        };
        for p in 0..N {
            w.settle(p);
        }
        let mut steps = 0;
        while !w.peers.iter().all(Peer::is_ready) || !w.net.is_empty() {
            assert!(steps < 1_000, "the handshake did not settle");
            if w.net.is_empty() {
                w.fire_timers();
            } else {
                let d = w.net.remove(0);
                w.arrive(d);
            }
            steps += 1;
        }
        for p in 0..N {
            for seq in 0..sc.sends[p] {
                w.peers[p]
                    .multicast(w.now, payload(p as MemberId, seq))
                    .expect("a ready peer multicasts");
            }
            w.peers[p].finish(w.now).expect("a ready peer finishes");
            w.settle(p);
        }
        if let Some((victim, lost_to)) = sc.crash_first {
            w.net
                .retain(|d| !(d.from == victim && Some(d.to) == lost_to));
            w.apply(Choice::Crash(victim));
            w.log.clear();
            let mut steps = 0;
            while !(0..N).any(|p| w.alive[p] && w.peers[p].is_changing_view()) {
                assert!(steps < 1_000, "the crash did not start a flush");
                if w.net.is_empty() {
                    w.fire_timers();
                } else {
                    let d = w.net.remove(0);
                    w.arrive(d);
                }
                steps += 1;
            }
        }
        w
    }

    fn settle(&mut self, p: usize) {
        if !self.alive[p] {
            return;
        }
        let now = self.now;
        let peer = &mut self.peers[p];
        while let Some(t) = peer.poll_transmit(now, &mut self.buf) {
            if self.alive[usize::from(t.to)] {
                self.net.push(Datagram {
                    sent: now,
                    from: p as MemberId,
                    to: t.to,
                    bytes: Bytes::copy_from_slice(&self.buf[..t.len]),
                });
            }
        }
        while let Some(ev) = peer.poll_event() {
            let mark = match ev {
                Event::Ready => continue,
                Event::View { id, members, .. } => Mark::View(id, members),
                Event::Deliver(d) => {
                    Mark::Deliver(d.sender, d.seq, d.payload == payload(d.sender, d.seq))
                }
                Event::Completed => Mark::Completed,
                Event::Failed(e) => Mark::Failed(match e {
                    PeerError::Excluded { .. } => "excluded".into(),
                    e => e.to_string(),
                }),
            };
            self.marks[p].push(mark);
        }
    }

    fn arrive(&mut self, d: Datagram) {
        let to = usize::from(d.to);
        if self.alive[to] {
            self.peers[to].handle_datagram(self.now, d.bytes);
            self.settle(to);
        }
    }

    fn next_timer(&self) -> Option<Time> {
        (0..N)
            .filter(|&p| self.alive[p])
            .filter_map(|p| self.peers[p].poll_timeout())
            .min()
    }

    /// Advances the clock to the earliest deadline and fires every peer due.
    fn fire_timers(&mut self) -> bool {
        let Some(t) = self.next_timer() else {
            return false;
        };
        self.now = self.now.max(t);
        for p in 0..N {
            if self.alive[p] && self.peers[p].poll_timeout().is_some_and(|t| t <= self.now) {
                self.peers[p].handle_timeout(self.now);
                self.settle(p);
            }
        }
        true
    }

    /// The choices open here: one per distinct datagram in flight (a copy
    /// of one already offered is the same choice), then the faults.
    fn choices(&self) -> Vec<Choice> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        for (i, d) in self.net.iter().enumerate() {
            if !seen.insert((d.to, &d.bytes[..])) {
                continue;
            }
            out.push(Choice::Deliver(i));
            if self.losses > 0 {
                out.push(Choice::Drop(i));
            }
            if self.dups > 0 {
                out.push(Choice::Dup(i));
            }
        }
        // Time may pass only while every datagram in flight is younger than
        // the network's delay bound: a network that holds datagrams longer
        // than the failure detector waits is a partition, not this model.
        let oldest = self.net.iter().map(|d| d.sent).min();
        if let Some(t) = self.next_timer()
            && oldest.is_none_or(|o| t <= o + MAX_DELAY)
        {
            out.push(Choice::Timer);
        }
        if self.crashes > 0 {
            for p in 0..N {
                if self.alive[p] {
                    out.push(Choice::Crash(p as MemberId));
                }
            }
        }
        out
    }

    fn describe(&self, c: Choice) -> String {
        let dg = |i: usize| {
            let d = &self.net[i];
            format!("{}→{} ({} bytes)", d.from, d.to, d.bytes.len())
        };
        match c {
            Choice::Deliver(i) => format!("deliver {}", dg(i)),
            Choice::Drop(i) => format!("drop {}", dg(i)),
            Choice::Dup(i) => format!("duplicate {}", dg(i)),
            Choice::Timer => format!(
                "timers at {}",
                self.next_timer().map_or("never".into(), |t| t.to_string())
            ),
            Choice::Crash(p) => format!("crash {p}"),
        }
    }

    fn apply(&mut self, c: Choice) {
        let what = self.describe(c);
        self.log.push(format!("[{}] {what}", self.now));
        match c {
            Choice::Deliver(i) => {
                let d = self.net.remove(i);
                self.arrive(d);
            }
            Choice::Drop(i) => {
                self.net.remove(i);
                self.losses -= 1;
            }
            Choice::Dup(i) => {
                self.dups -= 1;
                let d = &self.net[i];
                let copy = Datagram {
                    sent: d.sent,
                    from: d.from,
                    to: d.to,
                    bytes: d.bytes.clone(),
                };
                self.arrive(copy);
            }
            Choice::Timer => {
                self.fire_timers();
            }
            Choice::Crash(p) => {
                self.crashes -= 1;
                self.alive[usize::from(p)] = false;
                self.net.retain(|d| d.to != p);
            }
        }
    }

    /// A fingerprint of everything the state shows.
    fn fingerprint(&self) -> u64 {
        let mut h = DefaultHasher::new();
        self.now.hash(&mut h);
        (self.losses, self.dups, self.crashes, self.alive).hash(&mut h);
        for (p, peer) in self.peers.iter().enumerate() {
            if !self.alive[p] {
                continue;
            }
            self.marks[p].hash(&mut h);
            format!("{:?}", peer.stats()).hash(&mut h);
            (
                peer.poll_timeout(),
                peer.view_id(),
                peer.view_members(),
                peer.clock(),
                peer.held(),
                peer.in_flight(),
                peer.is_changing_view(),
            )
                .hash(&mut h);
        }
        let mut net: Vec<(MemberId, MemberId, &[u8])> = self
            .net
            .iter()
            .map(|d| (d.from, d.to, &d.bytes[..]))
            .collect();
        net.sort_unstable();
        net.hash(&mut h);
        h.finish()
    }

    /// The network turns fair: everything in flight is delivered, oldest
    /// first; time passes only when nothing is. Stops when every live peer
    /// completed or failed. Returns `false` if that never happens.
    fn run_fair(&mut self) -> bool {
        for _ in 0..20_000 {
            let done = (0..N).all(|p| {
                !self.alive[p] || self.peers[p].is_completed() || self.peers[p].is_failed()
            });
            if done {
                return true;
            }
            if self.net.is_empty() {
                if !self.fire_timers() || self.now > Time::from_millis(120_000) {
                    return false;
                }
            } else {
                let d = self.net.remove(0);
                self.arrive(d);
            }
        }
        false
    }
}

/// The safety properties, over the event streams so far.
fn check_safety(sc: &Scenario, marks: &[Vec<Mark>]) -> Result<(), String> {
    // Per peer: the deliveries of each view, in order.
    let mut per_view: Vec<BTreeMap<u32, Vec<(MemberId, u64)>>> = vec![BTreeMap::new(); N];
    // Per peer: the view installed right after each view.
    let mut next_view: Vec<BTreeMap<u32, u32>> = vec![BTreeMap::new(); N];
    // Per message: the view each peer delivered it in.
    let mut delivered_in: BTreeMap<(MemberId, u64), BTreeMap<usize, u32>> = BTreeMap::new();
    for (p, ms) in marks.iter().enumerate() {
        let mut view: Option<u32> = None;
        let mut seen = BTreeSet::new();
        for m in ms {
            match m {
                Mark::View(id, _) => {
                    if let Some(v) = view {
                        if *id <= v {
                            return Err(format!("peer {p} installed view {id} after view {v}"));
                        }
                        next_view[p].insert(v, *id);
                    }
                    per_view[p].entry(*id).or_default();
                    view = Some(*id);
                }
                Mark::Deliver(s, q, ok) => {
                    let Some(v) = view else {
                        return Err(format!("peer {p} delivered {s}.{q} outside any view"));
                    };
                    if !ok || usize::from(*s) >= N || *q >= sc.sends[usize::from(*s)] {
                        return Err(format!("peer {p} delivered {s}.{q}, never multicast"));
                    }
                    if !seen.insert((*s, *q)) {
                        return Err(format!("peer {p} delivered {s}.{q} twice"));
                    }
                    per_view[p].entry(v).or_default().push((*s, *q));
                    delivered_in.entry((*s, *q)).or_default().insert(p, v);
                }
                Mark::Completed | Mark::Failed(_) => {}
            }
        }
    }
    for ((s, q), by) in &delivered_in {
        let views: BTreeSet<u32> = by.values().copied().collect();
        if views.len() > 1 {
            return Err(format!(
                "message {s}.{q} delivered in different views: {by:?} (peer → view)"
            ));
        }
    }
    for a in 0..N {
        for b in a + 1..N {
            for (v, da) in &per_view[a] {
                let Some(db) = per_view[b].get(v) else {
                    continue;
                };
                let sa: BTreeSet<_> = da.iter().collect();
                let sb: BTreeSet<_> = db.iter().collect();
                let common_a: Vec<_> = da.iter().filter(|m| sb.contains(m)).collect();
                let common_b: Vec<_> = db.iter().filter(|m| sa.contains(m)).collect();
                if common_a != common_b {
                    return Err(format!(
                        "total order broken in view {v}: peer {a} delivered {da:?}, peer {b} {db:?}"
                    ));
                }
                if let (Some(na), Some(nb)) = (next_view[a].get(v), next_view[b].get(v))
                    && na == nb
                    && sa != sb
                {
                    return Err(format!(
                        "virtual synchrony broken: peers {a} and {b} went from view {v} to {na} \
                         having delivered {da:?} and {db:?} in view {v}"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The project's own checker of virtual synchrony
/// ([`mpcomm_check::check_virtual_synchrony`]) over the same streams: a
/// second opinion, at the leaves.
fn project_checker(sc: &Scenario, w: &World) -> Result<(), String> {
    let mut logs = Vec::new();
    let mut views = Vec::new();
    for p in 0..N {
        let mut entries = Vec::new();
        let mut vl = ViewLog {
            survivor: w.alive[p] && w.marks[p].contains(&Mark::Completed),
            sent: sc.sends[p],
            ..ViewLog::default()
        };
        let mut before: Vec<MemberId> = Vec::new();
        for m in &w.marks[p] {
            match m {
                Mark::View(id, members) => {
                    vl.marks.push(ViewMark {
                        at: entries.len(),
                        t_us: None,
                        id: *id,
                        members: members.clone(),
                        joined: members
                            .iter()
                            .filter(|x| !before.contains(x))
                            .copied()
                            .collect(),
                        left: before
                            .iter()
                            .filter(|x| !members.contains(x))
                            .copied()
                            .collect(),
                    });
                    before = members.clone();
                }
                Mark::Deliver(sender, seq, _) => entries.push(LogEntry {
                    run: 7,
                    peer: p as MemberId,
                    sender: *sender,
                    seq: *seq,
                    stamp: None,
                    sent_us: None,
                    delivered_us: None,
                    after: None,
                    op: None,
                }),
                Mark::Completed | Mark::Failed(_) => {}
            }
        }
        logs.push(PeerLog::new(p as MemberId, entries));
        views.push(vl);
    }
    let verdict = check_virtual_synchrony(OrderKind::Total, &logs, &views);
    match verdict.counterexample {
        None if verdict.holds => Ok(()),
        c => Err(format!("mpcomm-check: virtual synchrony violated: {c:?}")),
    }
}

/// The liveness properties, after fair delivery.
fn check_leaf(sc: &Scenario, w: &World, quiet: bool) -> Result<(), String> {
    if !quiet {
        return Err("under fair delivery, the live peers never all completed".into());
    }
    project_checker(sc, w)?;
    let mut completed = Vec::new();
    for p in 0..N {
        if !w.alive[p] {
            continue;
        }
        // A peer may complete and then install a view (the group completes
        // before it notices a crash): completing is what counts.
        let failed = w.marks[p].iter().find_map(|m| match m {
            Mark::Failed(why) => Some(why),
            _ => None,
        });
        match failed {
            None if w.marks[p].contains(&Mark::Completed) => completed.push(p),
            // The adversary may delay a live peer past the failure detector:
            // it is excluded, and says so.
            Some(why) if why == "excluded" => {}
            _ => {
                let other = w.marks[p].last();
                return Err(format!(
                    "live peer {p} did not complete under fair delivery (last event {other:?})"
                ));
            }
        }
    }
    if completed.is_empty() {
        return Err("no peer completed".into());
    }
    for &p in &completed {
        let mine: BTreeSet<u64> = w.marks[p]
            .iter()
            .filter_map(|m| match m {
                Mark::Deliver(s, q, _) if usize::from(*s) == p => Some(*q),
                _ => None,
            })
            .collect();
        if mine.len() as u64 != sc.sends[p] {
            return Err(format!(
                "peer {p} completed having delivered {} of its own {} messages",
                mine.len(),
                sc.sends[p]
            ));
        }
    }
    // Peers that completed in the same view delivered the same messages.
    let last_view = |p: usize| {
        w.marks[p].iter().rev().find_map(|m| match m {
            Mark::View(id, _) => Some(*id),
            _ => None,
        })
    };
    let all = |p: usize| -> BTreeSet<(MemberId, u64)> {
        w.marks[p]
            .iter()
            .filter_map(|m| match m {
                Mark::Deliver(s, q, _) => Some((*s, *q)),
                _ => None,
            })
            .collect()
    };
    for &a in &completed {
        for &b in &completed {
            if a < b && last_view(a) == last_view(b) && all(a) != all(b) {
                return Err(format!(
                    "peers {a} and {b} completed in view {:?} with different deliveries",
                    last_view(a)
                ));
            }
        }
    }
    Ok(())
}

#[derive(Default, Debug)]
struct Counts {
    /// States visited (each rebuilt by replay).
    nodes: u64,
    /// Distinct states (fingerprints).
    states: u64,
    /// Visits cut short because the state was already explored.
    pruned: u64,
    /// Leaves run to quiescence under fair delivery.
    leaves: u64,
    /// Leaves at which some peer installed a second view.
    leaves_with_view_change: u64,
    /// Adversarial steps taken in total (replays included).
    steps: u64,
}

struct Explorer<'a> {
    sc: &'a Scenario,
    /// Fingerprint → the most steps to spare it was explored with.
    seen: HashMap<u64, usize>,
    counts: Counts,
}

fn replay(sc: &Scenario, prefix: &[Choice]) -> World {
    let mut w = World::initial(sc);
    for &c in prefix {
        w.apply(c);
    }
    w
}

fn counterexample(sc: &Scenario, prefix: &[Choice], w: &World, why: &str) -> String {
    format!(
        "model checking `{}` found a violation: {why}\n\
         scenario: sends {:?}, crash first {:?}\n\
         schedule (paste into replay_schedule): &{prefix:?}\n\
         steps:\n  {}\n\
         events per peer:\n{}",
        sc.name,
        sc.sends,
        sc.crash_first,
        w.log.join("\n  "),
        w.marks
            .iter()
            .enumerate()
            .map(|(p, m)| format!("  {p}: {m:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    )
}

impl Explorer<'_> {
    fn explore(&mut self, prefix: &mut Vec<Choice>) {
        let sc = self.sc;
        let mut w = replay(sc, prefix);
        self.counts.nodes += 1;
        self.counts.steps += prefix.len() as u64;
        if let Err(why) = check_safety(sc, &w.marks) {
            panic!("{}", counterexample(sc, prefix, &w, &why));
        }
        let spare = sc.bounds.depth - prefix.len();
        let fp = w.fingerprint();
        match self.seen.get(&fp) {
            Some(&s) if s >= spare => {
                self.counts.pruned += 1;
                return;
            }
            Some(_) => {}
            None => self.counts.states += 1,
        }
        self.seen.insert(fp, spare);
        let choices = if spare == 0 { Vec::new() } else { w.choices() };
        if choices.is_empty() {
            self.counts.leaves += 1;
            let quiet = w.run_fair();
            let why = check_safety(sc, &w.marks).and_then(|()| check_leaf(sc, &w, quiet));
            if let Err(why) = why {
                panic!("{}", counterexample(sc, prefix, &w, &why));
            }
            if w.marks.iter().any(|m| {
                m.iter()
                    .filter(|x| matches!(x, Mark::View(..)))
                    .nth(1)
                    .is_some()
            }) {
                self.counts.leaves_with_view_change += 1;
            }
            return;
        }
        for c in choices {
            prefix.push(c);
            self.explore(prefix);
            prefix.pop();
        }
    }
}

fn check(sc: &Scenario) -> Counts {
    // Deeper searches, by hand: MPCOMM_MODEL_DEPTH=10 cargo test ...
    let mut sc = sc.clone();
    if let Some(d) = std::env::var("MPCOMM_MODEL_DEPTH")
        .ok()
        .and_then(|d| d.parse().ok())
    {
        sc.bounds.depth = d;
    }
    let sc = &sc;
    let started = Instant::now();
    let mut ex = Explorer {
        sc,
        seen: HashMap::new(),
        counts: Counts::default(),
    };
    ex.explore(&mut Vec::new());
    println!(
        "model `{}` ({:?}, sends {:?}, crash first {:?}): {} distinct states, {} visits, {} pruned as seen, \
         {} leaves run to completion ({} with a view change), {} replayed steps, in {:.1?}",
        sc.name,
        sc.bounds,
        sc.sends,
        sc.crash_first,
        ex.counts.states,
        ex.counts.nodes,
        ex.counts.pruned,
        ex.counts.leaves,
        ex.counts.leaves_with_view_change,
        ex.counts.steps,
        started.elapsed()
    );
    ex.counts
}

/// Replays one schedule (as printed by a violation) and checks it: paste a
/// counter-example here to debug it.
fn replay_schedule(sc: &Scenario, schedule: &[Choice]) -> Result<(), String> {
    let mut w = World::initial(sc);
    for &c in schedule {
        w.apply(c);
        check_safety(sc, &w.marks)?;
    }
    let quiet = w.run_fair();
    check_safety(sc, &w.marks)?;
    check_leaf(sc, &w, quiet)
}

/// Adversarial steps when the crash comes first and the flush is under way.
const FLUSH_DEPTH: usize = 14;

const BOUNDS: Bounds = Bounds {
    depth: 5,
    losses: 1,
    dups: 1,
    crashes: 1,
};

#[test]
fn one_message_each_with_a_crash() {
    let sc = Scenario {
        name: "one message each",
        sends: [1, 1, 1],
        bounds: BOUNDS,
        crash_first: None,
    };
    let counts = check(&sc);
    assert!(counts.leaves_with_view_change > 0);
}

#[test]
fn two_senders_with_a_crash() {
    let sc = Scenario {
        name: "one message from two members",
        sends: [1, 1, 0],
        bounds: BOUNDS,
        crash_first: None,
    };
    let counts = check(&sc);
    assert!(counts.leaves_with_view_change > 0);
}

/// The crash comes first, and the adversary spends every step on the view
/// change it causes: every order of the flush's messages and of the data
/// still in flight, with a loss and a duplicate. The coordinator crashes
/// (so the next one takes over) with its message lost on the way to member
/// 2 (so the cut must be relayed), or another member crashes.
#[test]
fn every_schedule_of_the_flush() {
    for (victim, lost_to) in [(0, Some(2)), (2, None)] {
        let sc = Scenario {
            name: "crash first, then the flush",
            sends: [1, 1, 1],
            bounds: Bounds {
                depth: FLUSH_DEPTH,
                ..BOUNDS
            },
            crash_first: Some((victim, lost_to)),
        };
        let counts = check(&sc);
        assert!(counts.leaves_with_view_change > 0);
    }
}

/// Found by this checker: peer 2 loses peer 0's message, peer 1 delivers
/// everything and completes, then peer 0 crashes. Peer 2 suspects 0 and
/// tells 1 (the next coordinator), but 1, completed and needing nothing
/// more from 0, did not watch 0 and so never proposed a view: peer 2 waited
/// for ever for a record only a view change could relay to it.
#[test]
fn a_completed_coordinator_heeds_a_suspicion() {
    let sc = Scenario {
        name: "regression: completed coordinator",
        sends: [1, 1, 1],
        bounds: BOUNDS,
        crash_first: None,
    };
    let schedule = [
        Choice::Drop(1),
        Choice::Deliver(1),
        Choice::Deliver(2),
        Choice::Crash(0),
    ];
    replay_schedule(&sc, &schedule).unwrap_or_else(|e| panic!("{e}"));
}
