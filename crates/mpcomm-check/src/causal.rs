//! Causal order: no peer delivers a message before one that could have
//! caused it.
//!
//! Message `m` of member `s` has these *predecessors*:
//!
//! 1. `s`'s earlier messages (`s:4` before `s:5`);
//! 2. every message `s` had delivered when it sent `m`. The log line of
//!    every delivery of `m` carries `after`: the number of messages `s` had
//!    delivered then, so they are the first `after` entries of `s`'s own
//!    log;
//! 3. for a `chat` answer, the question it names (normally also in 2; named
//!    outright so the counter-example can say so).
//!
//! A peer *violates* causal order when it delivers `m` and, later, one of
//! `m`'s predecessors. Checking these direct predecessors is enough: if `a`
//! happened before `m` through a chain `a → b → … → m` and a peer delivered
//! `m` before `a`, some link of the chain is delivered out of order too,
//! and that link is a direct predecessor — provided the peer delivered
//! every message of the chain. A predecessor a peer never delivered is not
//! reported here (integrity and agreement report it), and neither is a
//! violation that only a chain through such a message would show.
//!
//! Rule 1 alone is FIFO order, so a FIFO violation is always a causal one.
//! When no log line carries `after`, the logs do not say what senders had
//! delivered: without a violation of rules 1 or 3 the verdict is unknown
//! (`null` in the findings), not a guess.
//!
//! # Cost
//!
//! For each peer, one pass over every sender's log computes the latest
//! position (in that peer's log) among each prefix of the sender's log;
//! a message violates rule 2 exactly when that maximum, over its `after`
//! prefix, lies after the message. That is peers × total log length: for
//! 8 peers of 1,000 messages each, half a million steps.

use std::collections::BTreeMap;

use crate::index::Index;
use crate::violation::{CausalReason, CausalViolation};

/// What the causal check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CausalFinding {
    /// Whether the logs say what senders had delivered (some entry has
    /// `after`); without that the verdict is unknown.
    pub known: bool,
    /// The first counter-example (peer order, then position).
    pub first: Option<CausalViolation>,
    /// Deliveries of a message before one of its predecessors (a delivery
    /// counts once, however many predecessors it overtook).
    pub violations: u64,
    /// Deliveries of an answer before its question; `None` when no
    /// message is an answer.
    pub answers_early: Option<u64>,
}

const ABSENT: usize = usize::MAX;

/// Checks every log. See the [module documentation](self).
pub(crate) fn check(ix: &Index) -> CausalFinding {
    let n = ix.msgs.len();
    // What the logs say about each message, from the first log (in peer
    // order) that says it.
    let mut after: Vec<Option<u64>> = vec![None; n];
    let mut question: Vec<Option<usize>> = vec![None; n];
    let mut any_answer = false;
    for &li in &ix.order {
        for (pos, e) in ix.logs[li].entries.iter().enumerate() {
            let id = ix.raw[li][pos];
            if after[id].is_none() {
                after[id] = e.after;
            }
            if let Some(q) = e.op.as_ref().and_then(|op| op.answers()) {
                any_answer = true;
                if question[id].is_none() {
                    question[id] = ix.id(q);
                }
            }
        }
    }
    let known = after.iter().any(Option::is_some);
    // Each sender's messages and log.
    let mut by_sender: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
    for (id, m) in ix.msgs.iter().enumerate() {
        by_sender.entry(m.sender).or_default().push(id);
    }
    let log_of = |s: u16| ix.order.iter().copied().find(|&li| ix.peer(li) == s);

    let mut finding = CausalFinding {
        known,
        first: None,
        violations: 0,
        answers_early: any_answer.then_some(0),
    };
    let mut pos = vec![ABSENT; n];
    let mut bad = vec![false; n];
    let mut latest: Vec<usize> = Vec::new();
    // Per sender: the lowest sequence number delivered later in the log.
    let senders = ix.msgs.iter().map(|m| usize::from(m.sender) + 1).max();
    let mut lowest_later = vec![u64::MAX; senders.unwrap_or(0)];
    let mut touched: Vec<usize> = Vec::new();
    for &li in &ix.order {
        pos.fill(ABSENT);
        for (p, &id) in ix.raw[li].iter().enumerate() {
            if pos[id] == ABSENT {
                pos[id] = p;
            }
        }
        let later = |dep: usize, m: usize| pos[dep] != ABSENT && pos[dep] > pos[m];
        // Rule 1, walking the log backwards.
        for &id in ix.firsts[li].iter().rev() {
            let m = ix.msgs[id];
            let low = &mut lowest_later[usize::from(m.sender)];
            bad[id] = *low < m.seq;
            if *low == u64::MAX {
                touched.push(usize::from(m.sender));
            }
            *low = (*low).min(m.seq);
        }
        for s in touched.drain(..) {
            lowest_later[s] = u64::MAX;
        }
        for &id in &ix.firsts[li] {
            if question[id].is_some_and(|q| later(q, id)) {
                bad[id] = true;
                if let Some(a) = finding.answers_early.as_mut() {
                    *a += 1;
                }
            }
        }
        if known {
            for (&s, ids) in &by_sender {
                let Some(ls) = log_of(s) else { continue };
                // latest[k]: 1 + the latest position here among the first k
                // entries of the sender's log (0: none delivered here).
                let raw = &ix.raw[ls];
                latest.clear();
                latest.push(0);
                let mut max = 0;
                for &d in raw {
                    if pos[d] != ABSENT {
                        max = max.max(pos[d] + 1);
                    }
                    latest.push(max);
                }
                for &id in ids {
                    if pos[id] == ABSENT {
                        continue;
                    }
                    if let Some(k) = after[id] {
                        let k = usize::try_from(k).unwrap_or(usize::MAX).min(raw.len());
                        if latest[k] > pos[id] + 1 {
                            bad[id] = true;
                        }
                    }
                }
            }
        }
        let mut count = 0;
        let mut earliest = None;
        for &id in &ix.firsts[li] {
            if bad[id] {
                count += 1;
                earliest = earliest.or(Some(id));
            }
        }
        finding.violations += count;
        if finding.first.is_none()
            && let Some(m) = earliest
        {
            finding.first = Some(explain(ix, li, m, &pos, &question, &after, log_of));
        }
    }
    finding
}

/// Why message `m` of log `li` is a violation, naming the predecessor.
#[allow(clippy::too_many_arguments)]
fn explain(
    ix: &Index,
    li: usize,
    m: usize,
    pos: &[usize],
    question: &[Option<usize>],
    after: &[Option<u64>],
    log_of: impl Fn(u16) -> Option<usize>,
) -> CausalViolation {
    let later = |dep: usize| pos[dep] != ABSENT && pos[dep] > pos[m];
    let msg = ix.msgs[m];
    // The sender's latest earlier message that this peer delivered later.
    let earlier = ix.firsts[li]
        .iter()
        .copied()
        .filter(|&d| later(d) && ix.msgs[d].sender == msg.sender && ix.msgs[d].seq < msg.seq)
        .max_by_key(|&d| ix.msgs[d].seq);
    let (before, reason) = if let Some(q) = question[m].filter(|&q| later(q)) {
        (q, CausalReason::Answers)
    } else if let Some(d) = earlier {
        (d, CausalReason::SentEarlier)
    } else {
        let sender = ix.msgs[m].sender;
        let prefix = log_of(sender)
            .map(|ls| {
                let raw = &ix.raw[ls];
                let k = after[m].map_or(0, |k| usize::try_from(k).unwrap_or(usize::MAX));
                &raw[..k.min(raw.len())]
            })
            .unwrap_or(&[]);
        // `m` was found bad, so one of the three applies; the fallback
        // keeps this total.
        let d = prefix.iter().copied().find(|&d| later(d)).unwrap_or(m);
        (d, CausalReason::SenderHadDelivered)
    };
    CausalViolation {
        peer: ix.peer(li),
        msg,
        before: ix.msgs[before],
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::log;
    use crate::{PeerLog, RunSpec};
    use mpcomm_core::OrderKind;

    /// Sets `after` (and an op) on every entry of message `m` in `logs`.
    fn annotate(logs: &mut [PeerLog], sender: u16, seq: u64, after: u64, op: Option<&str>) {
        for l in logs {
            for e in &mut l.entries {
                if (e.sender, e.seq) == (sender, seq) {
                    e.after = Some(after);
                    e.op = op.map(|o| o.parse().unwrap());
                }
            }
        }
    }

    fn run(logs: &[PeerLog], senders: usize) -> CausalFinding {
        let spec = RunSpec::uniform(OrderKind::Causal, senders, 2);
        check(&Index::new(&spec, logs))
    }

    /// Member 1 answers 0:0 after delivering it; peer 2 shows the answer
    /// first.
    #[test]
    fn an_answer_before_its_question() {
        let mut logs = vec![
            log(0, &[(0, 0), (1, 0)]),
            log(1, &[(0, 0), (1, 0)]),
            log(2, &[(1, 0), (0, 0)]),
        ];
        annotate(&mut logs, 0, 0, 0, Some("ask 1"));
        annotate(&mut logs, 1, 0, 1, Some("answer 0:0"));
        let f = run(&logs, 3);
        assert!(f.known);
        assert_eq!(f.violations, 1);
        assert_eq!(f.answers_early, Some(1));
        assert_eq!(
            f.first.unwrap().to_string(),
            "peer 2 delivered 1:0, which answers 0:0, before 0:0"
        );
    }

    /// Without answers, `after` alone gives the dependency.
    #[test]
    fn what_the_sender_had_delivered() {
        let mut logs = vec![
            log(0, &[(0, 0), (1, 0), (2, 0)]),
            log(1, &[(1, 0), (0, 0), (2, 0)]),
            log(2, &[(2, 0), (1, 0), (0, 0)]),
        ];
        // Every message was sent before its sender delivered anything.
        annotate(&mut logs, 0, 0, 0, None);
        annotate(&mut logs, 1, 0, 0, None);
        annotate(&mut logs, 2, 0, 0, None);
        assert_eq!(run(&logs, 3).violations, 0, "all concurrent: any order");
        // Member 0 sent 0:0 after delivering 1:0 (its log's first entry).
        let mut logs = vec![
            log(0, &[(1, 0), (0, 0)]),
            log(1, &[(1, 0), (0, 0)]),
            log(2, &[(0, 0), (1, 0)]),
        ];
        annotate(&mut logs, 1, 0, 0, None);
        annotate(&mut logs, 0, 0, 1, None); // member 0 had delivered 1:0
        let f = run(&logs, 3);
        assert_eq!(f.violations, 1);
        assert_eq!(f.answers_early, None);
        assert_eq!(
            f.first.unwrap().to_string(),
            "peer 2 delivered 0:0 before 1:0, which member 0 had delivered before sending 0:0"
        );
    }

    #[test]
    fn a_sender_s_own_order_is_causal_too() {
        let mut logs = vec![log(0, &[(0, 0), (0, 1)]), log(1, &[(0, 1), (0, 0)])];
        annotate(&mut logs, 0, 0, 0, None);
        annotate(&mut logs, 0, 1, 1, None);
        let f = run(&logs, 2);
        assert_eq!(f.violations, 1);
        assert_eq!(
            f.first.unwrap().to_string(),
            "peer 1 delivered 0:1 before 0:0, which member 0 sent earlier"
        );
        // Also across a gap: 0:1 was never delivered, 0:2 came before 0:0.
        let f = run(&[log(1, &[(0, 2), (0, 0)])], 2);
        assert_eq!(
            f.first.unwrap().to_string(),
            "peer 1 delivered 0:2 before 0:0, which member 0 sent earlier"
        );
    }

    #[test]
    fn without_after_the_verdict_is_unknown() {
        let logs = vec![log(0, &[(0, 1), (0, 0)])];
        let f = run(&logs, 1);
        assert!(!f.known);
        // The sender's own order is still visible.
        assert_eq!(f.violations, 1);
    }

    /// A message the peer never delivered is integrity's business; a
    /// sender whose log is missing gives no prefix to check.
    #[test]
    fn missing_deliveries_and_logs_are_not_causal_violations() {
        let mut logs = vec![log(1, &[(0, 1)]), log(2, &[(0, 1), (0, 0)])];
        annotate(&mut logs, 0, 1, 5, None);
        annotate(&mut logs, 0, 0, 0, None);
        let f = run(&logs, 3);
        // Peer 2 delivered 0:1 before 0:0 (sender order); peer 1 never
        // delivered 0:0, which is no causal violation.
        assert_eq!(f.violations, 1);
        assert_eq!(f.first.unwrap().peer, 2);
    }
}
