//! Agreement, integrity and FIFO: each finds its first counter-example in
//! time linear in the logs (plus a sort where messages are missing).
//!
//! "First" always means: the log of the lowest peer id first (two logs of
//! one peer: in the order given), and within a log, the earliest position.

use std::collections::HashMap;

use crate::index::Index;
use crate::violation::{AgreementViolation, FifoViolation, IntegrityViolation};
use crate::{Msg, RunSpec};

/// The first message, in peer order then delivery order, that some other
/// peer never delivered; the other is the lowest such peer. Logs cut short
/// (`cut[li]`) are left out: they stopped before they could agree.
pub(crate) fn first_agreement_violation(ix: &Index, cut: &[bool]) -> Option<AgreementViolation> {
    let judged: Vec<usize> = ix
        .order
        .iter()
        .copied()
        .filter(|&li| !cut.get(li).copied().unwrap_or(false))
        .collect();
    let all = judged.len();
    // How many judged logs hold each message: the index's count when every
    // log is judged, else counted again over the judged ones.
    let recounted;
    let holders: &[usize] = if all == ix.logs.len() {
        &ix.holders
    } else {
        let mut h = vec![0usize; ix.msgs.len()];
        for &li in &judged {
            for &id in &ix.firsts[li] {
                h[id] += 1;
            }
        }
        recounted = h;
        &recounted
    };
    let (li, id) = judged.iter().find_map(|&li| {
        ix.firsts[li]
            .iter()
            .find(|&&id| holders[id] < all)
            .map(|&id| (li, id))
    })?;
    let other = judged
        .iter()
        .copied()
        .find(|&lj| lj != li && !ix.firsts[lj].contains(&id))?;
    Some(AgreementViolation {
        peer: ix.peer(li),
        msg: ix.msgs[id],
        other: ix.peer(other),
    })
}

/// The run most logs belong to, judged by each log's first entry; a tie goes
/// to the run that comes first in `runs`.
pub(crate) fn common_run(runs: impl IntoIterator<Item = u64>) -> Option<u64> {
    let mut votes: HashMap<u64, (usize, usize)> = HashMap::new();
    for (rank, run) in runs.into_iter().enumerate() {
        votes.entry(run).or_insert((0, rank)).0 += 1;
    }
    votes
        .into_iter()
        .max_by_key(|&(_, (count, rank))| (count, std::cmp::Reverse(rank)))
        .map(|(run, _)| run)
}

/// Integrity, log by log in peer order. Within a log: first whether the log
/// itself belongs (its peer is a member, it is the only log of its peer);
/// then its entries in order (wrong peer, wrong run, unknown sender, never
/// sent, delivered twice — the earliest entry with any of these); then the
/// first message it never delivered (lowest sender, then lowest seq) —
/// unless the log was cut short (`cut[li]`): it stopped before it could
/// deliver everything.
pub(crate) fn first_integrity_violation(
    spec: &RunSpec,
    ix: &Index,
    cut: &[bool],
) -> Option<IntegrityViolation> {
    let run = common_run(
        ix.order
            .iter()
            .filter_map(|&li| ix.logs[li].entries.first().map(|e| e.run)),
    );
    // Senders are u16: members beyond that can neither send nor be checked.
    let senders = spec.members.min(usize::from(u16::MAX) + 1);
    let sent = |sender: u16| spec.sent.get(usize::from(sender)).copied().unwrap_or(0);
    let expected: u128 = (0..senders)
        .map(|s| u128::from(spec.sent.get(s).copied().unwrap_or(0)))
        .sum();
    let mut previous: Option<u16> = None;
    for &li in &ix.order {
        let log = &ix.logs[li];
        let peer = log.peer;
        if usize::from(peer) >= spec.members {
            return Some(IntegrityViolation::NotAMember {
                peer,
                members: spec.members,
            });
        }
        if previous == Some(peer) {
            return Some(IntegrityViolation::SecondLog { peer });
        }
        previous = Some(peer);
        let dup_at = ix.dup[li].map_or(usize::MAX, |d| d.second);
        for (position, e) in log.entries.iter().enumerate() {
            if position == dup_at {
                break;
            }
            let msg = e.msg();
            if e.peer != peer {
                return Some(IntegrityViolation::WrongPeer {
                    peer,
                    position,
                    found: e.peer,
                });
            }
            if let Some(expected) = run
                && e.run != expected
            {
                return Some(IntegrityViolation::WrongRun {
                    peer,
                    position,
                    run: e.run,
                    expected,
                });
            }
            if usize::from(msg.sender) >= spec.members {
                return Some(IntegrityViolation::UnknownSender {
                    peer,
                    msg,
                    members: spec.members,
                });
            }
            if msg.seq >= sent(msg.sender) {
                return Some(IntegrityViolation::NeverSent {
                    peer,
                    msg,
                    sent: sent(msg.sender),
                });
            }
        }
        if let Some(d) = ix.dup[li] {
            return Some(IntegrityViolation::Duplicate {
                peer,
                msg: d.msg,
                first: d.first,
                second: d.second,
            });
        }
        // Every entry is now a distinct message that was sent, so the log
        // misses nothing exactly when it has as many entries as were sent.
        if !cut.get(li).copied().unwrap_or(false) && (log.entries.len() as u128) < expected {
            let delivered = ix.firsts[li].iter().map(|&id| ix.msgs[id]);
            if let Some(msg) = first_missing(spec, senders, delivered) {
                return Some(IntegrityViolation::Missing { peer, msg });
            }
        }
    }
    None
}

/// The lowest message (by sender, then seq) that was sent but is not among
/// `delivered` (all distinct, all sent). Sorting the delivered messages
/// avoids enumerating what was sent, which could be any number.
fn first_missing(
    spec: &RunSpec,
    senders: usize,
    delivered: impl Iterator<Item = Msg>,
) -> Option<Msg> {
    let mut have: Vec<Msg> = delivered.collect();
    have.sort_unstable();
    let mut have = have.into_iter().peekable();
    for (sender, &sent) in spec.sent.iter().enumerate().take(senders) {
        let sender = u16::try_from(sender).ok()?;
        // This sender's messages are 0, 1, 2, … in `have`, up to the first gap.
        let mut next = 0u64;
        while let Some(m) = have.next_if(|m| m.sender == sender) {
            if m.seq != next {
                break;
            }
            next += 1;
        }
        while have.next_if(|m| m.sender == sender).is_some() {}
        if next < sent {
            return Some(Msg { sender, seq: next });
        }
    }
    None
}

/// FIFO, log by log in peer order, on first deliveries: the first message
/// delivered after a message of the same sender with a higher seq.
pub(crate) fn first_fifo_violation(ix: &Index) -> Option<FifoViolation> {
    // Highest seq delivered so far per sender, for the current log; reset
    // through `touched` rather than reallocated, as there can be 65 536
    // senders.
    let mut highest: Vec<Option<u64>> = Vec::new();
    let mut touched: Vec<u16> = Vec::new();
    for &li in &ix.order {
        for &s in &touched {
            highest[usize::from(s)] = None;
        }
        touched.clear();
        for &id in &ix.firsts[li] {
            let m = ix.msgs[id];
            let s = usize::from(m.sender);
            if highest.len() <= s {
                highest.resize(s + 1, None);
            }
            match highest[s] {
                Some(h) if m.seq < h => {
                    return Some(FifoViolation {
                        peer: ix.peer(li),
                        first: Msg {
                            sender: m.sender,
                            seq: h,
                        },
                        second: m,
                    });
                }
                Some(_) => {}
                None => touched.push(m.sender),
            }
            highest[s] = Some(m.seq);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_common_run_is_the_majority_then_the_first() {
        assert_eq!(common_run([9, 4, 9]), Some(9));
        assert_eq!(common_run([4, 9, 9]), Some(9));
        assert_eq!(common_run([5, 6]), Some(5));
        assert_eq!(common_run([6, 5]), Some(6));
        assert_eq!(common_run([]), None);
    }

    #[test]
    fn the_first_missing_message_is_found_by_sorting() {
        let spec = |sent: Vec<u64>| RunSpec {
            order: mpcomm_core::OrderKind::None,
            members: sent.len(),
            sent,
        };
        let m = |sender, seq| Msg { sender, seq };
        let s = spec(vec![3, 2]);
        assert_eq!(
            first_missing(&s, 2, [m(1, 0), m(0, 2), m(0, 0)].into_iter()),
            Some(m(0, 1))
        );
        assert_eq!(
            first_missing(&s, 2, [m(0, 1), m(0, 2), m(0, 0), m(1, 1)].into_iter()),
            Some(m(1, 0))
        );
        assert_eq!(
            first_missing(&s, 2, [m(0, 1), m(0, 2), m(0, 0), m(1, 0)].into_iter()),
            Some(m(1, 1))
        );
        // An absurd count is no reason to enumerate.
        let s = spec(vec![u64::MAX]);
        assert_eq!(first_missing(&s, 1, [m(0, 0)].into_iter()), Some(m(0, 1)));
    }
}
