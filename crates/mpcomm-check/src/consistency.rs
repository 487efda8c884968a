//! Consistency: is what a run delivered a *beginning* of what a correct run
//! delivers?
//!
//! A run cut short — a member killed, the others giving up — cannot have
//! agreement: the members stopped at different points. The question that
//! still has an answer is whether each member, up to where it stopped,
//! delivered what the order allows:
//!
//! * **Total order** promises one sequence for everybody. Cut short, every
//!   member's log must be a *prefix* of that one sequence: a member may
//!   have stopped earlier than another, but never delivered something else
//!   in between. Two prefixes of one sequence are prefixes of each other,
//!   so it is enough to compare every log with the longest one.
//! * **FIFO** (and total order, built on FIFO links) delivers each sender's
//!   messages `0, 1, 2, …` and never `k + 1` before `k`: cut short, each
//!   sender's messages in a log are still `0, 1, …, j` without a gap.
//! * **None** delivers messages as they arrive: anything delivered once and
//!   really sent is consistent. (Integrity is checked before this module is
//!   asked.)
//!
//! A complete run that keeps its order's promises is consistent by these
//! rules too, so the verdict means the same for every run.

use std::fmt;

use crate::index::Index;
use crate::{Msg, Property, RunSpec};

/// Why what was delivered is not the beginning of a correct run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Inconsistency {
    /// A log is not a prefix of the longest log.
    NotAPrefix {
        /// The log's peer.
        peer: u16,
        /// The position where it differs.
        position: usize,
        /// What it delivered there.
        msg: Msg,
        /// The peer of the longest log.
        longest: u16,
        /// What the longest log has there.
        other: Msg,
    },
    /// A log skipped a message of a sender.
    Gap {
        /// The log's peer.
        peer: u16,
        /// The message delivered.
        msg: Msg,
        /// The message of the same sender it should have come after.
        missing: Msg,
    },
}

impl fmt::Display for Inconsistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Inconsistency::NotAPrefix {
                peer,
                position,
                msg,
                longest,
                other,
            } => write!(
                f,
                "peer {peer} delivered {msg} at position {position}, where peer {longest} delivered {other}: the logs are not prefixes of one sequence"
            ),
            Inconsistency::Gap { peer, msg, missing } => {
                write!(f, "peer {peer} delivered {msg} without {missing} before it")
            }
        }
    }
}

/// The first inconsistency, judged by the properties `spec.order`
/// promises: prefixes of one sequence first, then gaps.
pub(crate) fn first_inconsistency(spec: &RunSpec, ix: &Index) -> Option<Inconsistency> {
    if Property::TotalOrder.promised_by(spec.order)
        && let Some(v) = first_non_prefix(ix)
    {
        return Some(v);
    }
    if Property::Fifo.promised_by(spec.order) {
        return first_gap(ix);
    }
    None
}

/// The first log (in peer order) that is not a prefix of the longest log
/// (the first longest, in peer order), on first deliveries.
fn first_non_prefix(ix: &Index) -> Option<Inconsistency> {
    // The first longest in peer order, whatever order the logs came in.
    let (_, &longest) = ix
        .order
        .iter()
        .enumerate()
        .max_by_key(|&(k, &li)| (ix.firsts[li].len(), std::cmp::Reverse(k)))?;
    let reference = &ix.firsts[longest];
    for &li in &ix.order {
        if li == longest {
            continue;
        }
        let differs = ix.firsts[li]
            .iter()
            .zip(reference)
            .position(|(a, b)| a != b);
        if let Some(position) = differs {
            return Some(Inconsistency::NotAPrefix {
                peer: ix.peer(li),
                position,
                msg: ix.msgs[ix.firsts[li][position]],
                longest: ix.peer(longest),
                other: ix.msgs[reference[position]],
            });
        }
    }
    None
}

/// The first delivery (in peer order, then position) of a message whose
/// predecessor from the same sender the log had not delivered before it.
fn first_gap(ix: &Index) -> Option<Inconsistency> {
    // The next expected seq per sender, for the current log; reset through
    // `touched` (there can be 65 536 senders).
    let mut next: Vec<u64> = Vec::new();
    let mut touched: Vec<usize> = Vec::new();
    for &li in &ix.order {
        for &s in &touched {
            next[s] = 0;
        }
        touched.clear();
        for &id in &ix.firsts[li] {
            let m = ix.msgs[id];
            let s = usize::from(m.sender);
            if next.len() <= s {
                next.resize(s + 1, 0);
            }
            if m.seq != next[s] {
                return Some(Inconsistency::Gap {
                    peer: ix.peer(li),
                    msg: m,
                    missing: Msg {
                        sender: m.sender,
                        seq: next[s],
                    },
                });
            }
            if next[s] == 0 {
                touched.push(s);
            }
            next[s] += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::Index;
    use crate::testing::log;
    use mpcomm_core::OrderKind;

    fn first(order: OrderKind, logs: &[crate::PeerLog]) -> Option<String> {
        let spec = RunSpec::uniform(order, 2, 3);
        let ix = Index::new(&spec, logs);
        first_inconsistency(&spec, &ix).map(|v| v.to_string())
    }

    #[test]
    fn prefixes_of_one_sequence_are_consistent() {
        let full = [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2), (1, 2)];
        let logs = [log(0, &full[..2]), log(1, &full[..5])];
        assert_eq!(first(OrderKind::Total, &logs), None);
        // A shorter log that went another way is not.
        let logs = [log(0, &[(0, 0), (0, 1)]), log(1, &full[..5])];
        assert_eq!(
            first(OrderKind::Total, &logs).as_deref(),
            Some(
                "peer 0 delivered 0:1 at position 1, where peer 1 delivered 1:0: the logs are not prefixes of one sequence"
            )
        );
        // FIFO does not ask for one sequence, only for no gaps.
        assert_eq!(first(OrderKind::Fifo, &logs), None);
        assert_eq!(first(OrderKind::None, &logs), None);
    }

    #[test]
    fn a_gap_in_a_senders_messages_is_inconsistent_under_fifo() {
        let logs = [log(0, &[(0, 0), (0, 2)]), log(1, &[(0, 0)])];
        let want = Some("peer 0 delivered 0:2 without 0:1 before it".to_string());
        assert_eq!(first(OrderKind::Fifo, &logs), want);
        assert_eq!(first(OrderKind::Total, &logs), want);
        assert_eq!(first(OrderKind::None, &logs), None);
        // Each log starts afresh.
        let logs = [log(0, &[(1, 0)]), log(1, &[(1, 0), (1, 1)])];
        assert_eq!(first(OrderKind::Fifo, &logs), None);
    }
}
