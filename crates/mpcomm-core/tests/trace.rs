//! The trace's `wait` events checked against the protocol itself.
//!
//! A small group of real [`Peer`]s with tracing on exchange messages over a
//! test network that delivers datagrams in an order proptest chooses (so
//! links reorder and records wait behind gaps). Beside the peers, the test
//! keeps its own account of what each peer has heard, read from the very
//! datagrams it delivers: for every sender, the records released in order,
//! those held behind a gap, and the largest clock the sender has *shown*
//! (a record's stamp once released in order, or an acknowledgement's clock
//! once every record it covers has arrived). From that account it derives
//! what the head of each hold-back queue must wait for:
//!
//! * `total`: exactly the members whose shown clock is below the head's
//!   stamp — whose missing acknowledgement or stamp blocks the head;
//! * `fifo`: the first gap at a link;
//! * `none`: nothing, ever.
//!
//! After every input the test demands one `wait` event exactly when that
//! answer changed, naming exactly those members — no more, no fewer.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use mpcomm_core::trace::{MsgKind, MsgRef, TraceKind, WaitCause, WaitReason};
use mpcomm_core::wire::{Datagram, Frame, MAX_DATAGRAM};
use mpcomm_core::{Config, MemberId, OrderKind, Peer, Time, TraceLimits};
use proptest::prelude::*;

/// What the test knows one peer has heard from one sender.
#[derive(Default, Clone)]
struct Heard {
    /// Records below this are released in order.
    next: u64,
    /// Records that arrived ahead of a gap.
    early: BTreeMap<u64, MsgRef>,
    /// Largest clock shown (in FIFO order).
    bound: u64,
    /// An acknowledgement's claim "my records from `sent` on are stamped
    /// above `clock`", valid once `next >= sent`.
    claim: Option<(u64, u64)>,
}

struct Model {
    n: usize,
    order: OrderKind,
    /// heard[p][k]
    heard: Vec<Vec<Heard>>,
    /// Records in each peer's ordering engine, not yet delivered.
    queue: Vec<BTreeSet<(u64, MemberId, u64, MsgKind)>>,
    /// What the head waited for after the last input, per peer.
    last: Vec<Option<WaitReason>>,
    /// Wait events checked.
    waits: usize,
}

impl Model {
    fn new(n: usize, order: OrderKind) -> Model {
        Model {
            n,
            order,
            heard: vec![vec![Heard::default(); n]; n],
            queue: vec![BTreeSet::new(); n],
            last: vec![None; n],
            waits: 0,
        }
    }

    fn raise(&mut self, p: usize, k: usize, clock: u64) {
        let h = &mut self.heard[p][k];
        h.bound = h.bound.max(clock);
    }

    /// A datagram from `k` reaches `p`: what `p` learns from it.
    fn datagram(&mut self, p: usize, k: usize, bytes: &Bytes) {
        let Ok(d) = Datagram::parse(bytes.clone()) else {
            panic!("the peers sent an undecodable datagram")
        };
        for frame in d.frames() {
            match frame {
                Frame::Ack(a) => {
                    let h = &mut self.heard[p][k];
                    if a.sent <= h.next {
                        self.raise(p, k, a.clock);
                    } else if h.claim.is_none_or(|(s, _)| a.sent >= s) {
                        h.claim = Some((a.sent, a.clock));
                    }
                }
                Frame::Record(r) => {
                    let h = &mut self.heard[p][k];
                    if r.link_seq < h.next || h.early.contains_key(&r.link_seq) {
                        continue; // a duplicate
                    }
                    h.early.insert(r.link_seq, MsgRef::of(&r));
                    loop {
                        let h = &mut self.heard[p][k];
                        let Some(m) = h.early.remove(&h.next) else {
                            break;
                        };
                        h.next += 1;
                        if m.kind != MsgKind::Control {
                            self.queue[p].insert((m.stamp, m.sender, m.seq, m.kind));
                        }
                        self.raise(p, k, m.stamp);
                        let h = &mut self.heard[p][k];
                        if let Some((sent, clock)) = h.claim
                            && sent <= h.next
                        {
                            h.claim = None;
                            self.raise(p, k, clock);
                        }
                    }
                }
                Frame::Hello(_) | Frame::HelloAck(_) | Frame::View(_) | Frame::Relay(_) => {}
            }
        }
    }

    /// What `p`'s head must wait for now.
    fn expected(&self, p: usize) -> Option<WaitReason> {
        match self.order {
            // (This model covers the three orders the test draws from.)
            OrderKind::None | OrderKind::Causal | OrderKind::Sequencer => None,
            OrderKind::Fifo => (0..self.n).find_map(|k| {
                let h = &self.heard[p][k];
                h.early.values().next().map(|head| WaitReason {
                    head: *head,
                    waiting_for: vec![k as MemberId],
                    cause: WaitCause::Gap {
                        sender: k as MemberId,
                        missing: h.next,
                    },
                })
            }),
            OrderKind::Total => {
                let &(stamp, sender, seq, kind) = self.queue[p].first()?;
                let waiting_for: Vec<MemberId> = (0..self.n)
                    .filter(|&k| k != p && self.heard[p][k].bound < stamp)
                    .map(|k| k as MemberId)
                    .collect();
                (!waiting_for.is_empty()).then_some(WaitReason {
                    head: MsgRef {
                        sender,
                        seq,
                        stamp,
                        kind,
                    },
                    waiting_for,
                    cause: WaitCause::Acknowledgements,
                })
            }
        }
    }

    /// Takes `p`'s trace events from one input and checks them.
    fn check(&mut self, p: usize, peer: &mut Peer) -> Result<(), TestCaseError> {
        let mut waits = Vec::new();
        while let Some(ev) = peer.poll_trace() {
            prop_assert_eq!(usize::from(ev.peer), p);
            prop_assert_eq!(ev.clock, peer.clock().min(ev.clock));
            match ev.kind {
                TraceKind::Send(m) => {
                    if m.kind != MsgKind::Control {
                        self.queue[p].insert((m.stamp, m.sender, m.seq, m.kind));
                    }
                }
                TraceKind::Deliver(m) => {
                    let removed = self.queue[p].remove(&(m.stamp, m.sender, m.seq, m.kind));
                    prop_assert!(
                        removed || self.order == OrderKind::None,
                        "peer {} delivered {:?}, which the model does not hold",
                        p,
                        m
                    );
                }
                TraceKind::Wait(w) => waits.push(w),
                TraceKind::Arrive(_) => {}
            }
        }
        if self.order == OrderKind::None {
            // `none` delivers on arrival, before the link's reordering.
            self.queue[p].clear();
        }
        self.waits += waits.len();
        let now = self.expected(p);
        if now != self.last[p] && now.is_some() {
            prop_assert_eq!(waits, vec![now.clone().unwrap_or_else(|| unreachable!())]);
        } else {
            prop_assert_eq!(waits, vec![], "no change, so no wait event (peer {})", p);
        }
        self.last[p] = now;
        Ok(())
    }
}

fn flush(peers: &mut [Peer], net: &mut Vec<(usize, usize, Bytes)>, now: Time) {
    let mut buf = [0u8; MAX_DATAGRAM];
    for (from, p) in peers.iter_mut().enumerate() {
        while let Some(t) = p.poll_transmit(now, &mut buf) {
            net.push((
                from,
                usize::from(t.to),
                Bytes::copy_from_slice(&buf[..t.len]),
            ));
        }
    }
}

/// Runs one group of `n` under `order`; `script` picks, step by step,
/// which datagram to deliver next or which peer sends.
fn run(n: usize, order: OrderKind, messages: u64, script: &[u16]) -> Result<(), TestCaseError> {
    let mut peers: Vec<Peer> = (0..n)
        .map(|i| {
            let mut c = Config::new(9, i as MemberId, n, order);
            c.trace = Some(TraceLimits::default());
            Peer::new(c, Time::ZERO).map_err(|e| TestCaseError::fail(e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    // The handshake, in order and lossless.
    let mut net = Vec::new();
    let mut now = Time::ZERO;
    loop {
        flush(&mut peers, &mut net, now);
        if net.is_empty() {
            break;
        }
        for (_, to, bytes) in net.drain(..) {
            peers[to].handle_datagram(Time::ZERO, bytes);
        }
    }
    prop_assert!(peers.iter().all(Peer::is_ready));
    let mut model = Model::new(n, order);
    for (p, peer) in peers.iter_mut().enumerate() {
        model.check(p, peer)?;
    }
    let mut sent = vec![0u64; n];
    let mut steps = script.iter().copied().chain(std::iter::repeat(0));
    for _ in 0..100_000 {
        flush(&mut peers, &mut net, now);
        let choice = usize::from(steps.next().unwrap_or(0));
        // A third of the choices send (while there is something to send).
        let sender = (choice % 3 == 0)
            .then(|| {
                (0..n)
                    .map(|i| (i + choice / 3) % n)
                    .find(|&i| sent[i] <= messages)
            })
            .flatten();
        if let Some(i) = sender {
            if sent[i] < messages {
                peers[i]
                    .multicast(now, Bytes::from(vec![i as u8]))
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
            } else {
                peers[i]
                    .finish(now)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            sent[i] += 1;
            model.check(i, &mut peers[i])?;
            continue;
        }
        if net.is_empty() {
            if sent.iter().all(|&s| s > messages) {
                if peers.iter().all(Peer::is_completed) {
                    break;
                }
                // Quiet, but not done: a record waits for news that only a
                // timer asks for (the stall timer's request for state).
                now += std::time::Duration::from_millis(250);
                for (p, peer) in peers.iter_mut().enumerate() {
                    if peer.poll_timeout().is_some_and(|t| t <= now) {
                        peer.handle_timeout(now);
                    }
                    model.check(p, peer)?;
                }
            }
            continue;
        }
        let (from, to, bytes) = net.swap_remove(choice % net.len());
        model.datagram(to, from, &bytes);
        peers[to].handle_datagram(now, bytes);
        model.check(to, &mut peers[to])?;
    }
    prop_assert!(peers.iter().all(Peer::is_completed), "the run completes");
    if order == OrderKind::Total {
        // Every message waits for the other members at first.
        prop_assert!(model.waits > 0, "no wait was checked");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn total_waits_name_exactly_the_members_that_block_the_head(
        n in 2usize..=4,
        messages in 1u64..6,
        script in proptest::collection::vec(any::<u16>(), 0..400),
    ) {
        run(n, OrderKind::Total, messages, &script)?;
    }

    #[test]
    fn fifo_waits_name_the_gap_and_none_never_waits(
        n in 2usize..=4,
        messages in 1u64..6,
        script in proptest::collection::vec(any::<u16>(), 0..400),
    ) {
        run(n, OrderKind::Fifo, messages, &script)?;
        run(n, OrderKind::None, messages, &script)?;
    }
}

/// Tracing changes nothing about the run: the same inputs give the same
/// datagrams and deliveries with and without it.
#[test]
fn tracing_does_not_change_the_run() {
    let go = |trace: bool| {
        let mut peers: Vec<Peer> = (0..3)
            .map(|i| {
                let mut c = Config::new(9, i, 3, OrderKind::Total);
                c.trace = trace.then(TraceLimits::default);
                Peer::new(c, Time::ZERO).unwrap_or_else(|e| panic!("{e}"))
            })
            .collect();
        let mut wire = Vec::new();
        let mut net = Vec::new();
        for round in 0..20u8 {
            if round > 2 {
                for (i, p) in peers.iter_mut().enumerate() {
                    if p.can_send() && round % (i as u8 + 1) == 0 {
                        let _ = p.multicast(Time::ZERO, Bytes::from(vec![round]));
                    }
                }
            }
            flush(&mut peers, &mut net, Time::ZERO);
            // Deliver newest first: plenty of reordering.
            while let Some((_, to, bytes)) = net.pop() {
                wire.push(bytes.clone());
                peers[to].handle_datagram(Time::ZERO, bytes);
            }
        }
        let events: Vec<_> = peers
            .iter_mut()
            .flat_map(|p| std::iter::from_fn(|| p.poll_event()).collect::<Vec<_>>())
            .collect();
        (wire, events)
    };
    assert_eq!(go(false), go(true));
}
