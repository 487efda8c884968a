//! Do the replicas agree? Replaying each peer's log through its workload.
//!
//! In the `bank` and `kv` workloads every message carries an operation,
//! and every peer applies the operations in the order it delivers them
//! (see [`crate::workload`]). The log lines carry the operations, so the
//! checker recomputes every peer's state from its log alone, after every
//! delivery, and compares:
//!
//! * **states agree** when every peer ends in the same state;
//! * otherwise the counter-example names two peers that end differently
//!   (the first log in peer order, and the first log that ends unlike it)
//!   and the first position after which their states differ, with what
//!   each of them delivered there.
//!
//! Total order makes the states agree (the same operations in the same
//! order); causal order does not (concurrent operations may be applied in
//! different orders). For `seq` and `chat` there is no state, and the
//! verdict is `null`.
//!
//! The workload is recognised from the operations in the logs. Logs that
//! mix operations of two workloads cannot be replayed: that is reported as
//! a disagreement, naming the first odd entry. A delivery without an
//! operation changes nothing.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::PeerLog;
use crate::index::Index;
use crate::workload::{Op, State, Workload};
use crate::{LogEntry, Msg};

/// One peer's final state, as the checker recomputed it from its log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerState {
    /// The peer.
    pub peer: u16,
    /// Its state after its last delivery.
    pub state: State,
}

/// One delivery, for a counter-example: the message and its operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// The message delivered.
    pub msg: Msg,
    /// Its operation, if it had one.
    pub op: Option<Op>,
}

impl Step {
    fn of(e: &LogEntry) -> Step {
        Step {
            msg: e.msg(),
            op: e.op,
        }
    }
}

impl fmt::Display for Step {
    /// `1:2 (deposit 5.00)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.op {
            Some(op) => write!(f, "{} ({op})", self.msg),
            None => write!(f, "{} (no operation)", self.msg),
        }
    }
}

/// Why the states do not agree.
// At most one is built per check: its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatesViolation {
    /// Two peers end in different states.
    Differ {
        /// The first peer (the first log in peer order).
        peer: u16,
        /// A peer that ends differently.
        other: u16,
        /// `peer`'s final state.
        peer_state: State,
        /// `other`'s final state.
        other_state: State,
        /// The first position after which their states differ.
        position: usize,
        /// What `peer` delivered there (`None`: its log had ended).
        peer_step: Option<Step>,
        /// What `other` delivered there.
        other_step: Option<Step>,
    },
    /// An entry carries an operation of another workload than the first
    /// operation in the logs.
    Mixed {
        /// The peer whose log has it.
        peer: u16,
        /// Its position.
        position: usize,
        /// The entry.
        step: Step,
        /// The workload of the logs' first operation.
        expected: Workload,
    },
}

impl fmt::Display for StatesViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatesViolation::Differ {
                peer,
                other,
                peer_state,
                other_state,
                position,
                peer_step,
                other_step,
            } => {
                write!(
                    f,
                    "peer {peer} ends with {peer_state}, peer {other} with {other_state}; \
                     they first differ after position {position}, where "
                )?;
                match (peer_step, other_step) {
                    (Some(a), Some(b)) => write!(
                        f,
                        "peer {peer} delivered {a} and peer {other} delivered {b}"
                    ),
                    (Some(a), None) => write!(
                        f,
                        "peer {peer} delivered {a} and peer {other}'s log had ended"
                    ),
                    (None, Some(b)) => write!(
                        f,
                        "peer {other} delivered {b} and peer {peer}'s log had ended"
                    ),
                    (None, None) => write!(f, "both logs had ended"),
                }
            }
            StatesViolation::Mixed {
                peer,
                position,
                step,
                expected,
            } => write!(
                f,
                "position {position} of peer {peer}'s log is {step}, not a {expected} operation like the others: the logs mix workloads"
            ),
        }
    }
}

/// What the replay found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StatesFinding {
    /// The workload the operations belong to (`seq` when there are none).
    pub workload: Workload,
    /// Every peer's final state, in peer order; `None` without state.
    pub finals: Option<Vec<PeerState>>,
    /// The first reason the states do not agree.
    pub first: Option<StatesViolation>,
}

impl StatesFinding {
    /// `Some(true)` when the states agree, `None` without state.
    pub fn agree(&self) -> Option<bool> {
        if matches!(self.first, Some(StatesViolation::Mixed { .. })) {
            return Some(false);
        }
        self.finals.as_ref().map(|_| self.first.is_none())
    }
}

/// Replays every log. See the [module documentation](self).
pub(crate) fn check(ix: &Index) -> StatesFinding {
    let logs: Vec<&PeerLog> = ix.order.iter().map(|&li| &ix.logs[li]).collect();
    let first_op = logs
        .iter()
        .flat_map(|l| l.entries.iter())
        .find_map(|e| e.op);
    let workload = first_op.map_or(Workload::Seq, |op| op.workload());
    for l in &logs {
        for (position, e) in l.entries.iter().enumerate() {
            if let Some(op) = e.op
                && op.workload() != workload
            {
                return StatesFinding {
                    workload,
                    finals: None,
                    first: Some(StatesViolation::Mixed {
                        peer: l.peer,
                        position,
                        step: Step::of(e),
                        expected: workload,
                    }),
                };
            }
        }
    }
    let Some(initial) = State::initial(workload) else {
        return StatesFinding {
            workload,
            finals: None,
            first: None,
        };
    };
    let replay = |l: &PeerLog| {
        let mut s = initial;
        for e in &l.entries {
            if let Some(op) = &e.op {
                s.apply(op);
            }
        }
        s
    };
    let finals: Vec<PeerState> = logs
        .iter()
        .map(|l| PeerState {
            peer: l.peer,
            state: replay(l),
        })
        .collect();
    let first = finals.first().and_then(|a| {
        let (bi, b) = finals
            .iter()
            .enumerate()
            .find(|(_, b)| b.state != a.state)?;
        Some(first_difference(logs[0], logs[bi], initial, a, b))
    });
    StatesFinding {
        workload,
        finals: Some(finals),
        first,
    }
}

/// Walks two logs side by side to the first position after which their
/// states differ (they do at the end, so there is one).
fn first_difference(
    a: &PeerLog,
    b: &PeerLog,
    initial: State,
    fa: &PeerState,
    fb: &PeerState,
) -> StatesViolation {
    let (mut sa, mut sb) = (initial, initial);
    let len = a.entries.len().max(b.entries.len());
    let mut position = len.saturating_sub(1);
    for j in 0..len {
        for (s, l) in [(&mut sa, a), (&mut sb, b)] {
            if let Some(op) = l.entries.get(j).and_then(|e| e.op.as_ref()) {
                s.apply(op);
            }
        }
        if sa != sb {
            position = j;
            break;
        }
    }
    StatesViolation::Differ {
        peer: a.peer,
        other: b.peer,
        peer_state: fa.state,
        other_state: fb.state,
        position,
        peer_step: a.entries.get(position).map(Step::of),
        other_step: b.entries.get(position).map(Step::of),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RunSpec;
    use crate::testing::log;
    use mpcomm_core::OrderKind;

    fn with_ops(peer: u16, msgs: &[(u16, u64, &str)]) -> PeerLog {
        let mut l = log(
            peer,
            &msgs.iter().map(|&(s, q, _)| (s, q)).collect::<Vec<_>>(),
        );
        for (e, (_, _, op)) in l.entries.iter_mut().zip(msgs) {
            e.op = Some(op.parse().unwrap());
        }
        l
    }

    fn run(logs: &[PeerLog]) -> StatesFinding {
        check(&Index::new(
            &RunSpec::uniform(OrderKind::Causal, 3, 2),
            logs,
        ))
    }

    #[test]
    fn the_same_operations_in_another_order_diverge() {
        let logs = [
            with_ops(0, &[(0, 0, "deposit 10.00"), (1, 0, "interest 1.00%")]),
            with_ops(1, &[(0, 0, "deposit 10.00"), (1, 0, "interest 1.00%")]),
            with_ops(2, &[(1, 0, "interest 1.00%"), (0, 0, "deposit 10.00")]),
        ];
        let f = run(&logs);
        assert_eq!(f.workload, Workload::Bank);
        assert_eq!(f.agree(), Some(false));
        let finals = f.finals.as_ref().unwrap();
        assert_eq!(finals[0].state.to_string(), "balance 111.10");
        assert_eq!(finals[2].state.to_string(), "balance 111.00");
        assert_eq!(
            f.first.unwrap().to_string(),
            "peer 0 ends with balance 111.10, peer 2 with balance 111.00; they first differ \
             after position 0, where peer 0 delivered 0:0 (deposit 10.00) and peer 2 delivered 1:0 (interest 1.00%)"
        );
    }

    #[test]
    fn commuting_reorders_agree() {
        // Two deposits commute: different orders, same balance.
        let logs = [
            with_ops(0, &[(0, 0, "deposit 1.00"), (1, 0, "deposit 2.50")]),
            with_ops(1, &[(1, 0, "deposit 2.50"), (0, 0, "deposit 1.00")]),
        ];
        let f = run(&logs);
        assert_eq!(f.agree(), Some(true));
        assert!(f.first.is_none());
    }

    #[test]
    fn a_short_log_and_a_kv_store() {
        let logs = [
            with_ops(0, &[(0, 0, "put k1 0:0"), (1, 0, "del k1")]),
            with_ops(1, &[(0, 0, "put k1 0:0")]),
        ];
        let f = run(&logs);
        assert_eq!(f.workload, Workload::Kv);
        assert_eq!(
            f.first.unwrap().to_string(),
            "peer 0 ends with k0=- k1=- k2=- k3=-, peer 1 with k0=- k1=0:0 k2=- k3=-; they first differ \
             after position 1, where peer 0 delivered 1:0 (del k1) and peer 1's log had ended"
        );
    }

    #[test]
    fn no_state_for_seq_and_chat_and_mixed_logs_are_refused() {
        let f = run(&[log(0, &[(0, 0)]), log(1, &[(0, 0)])]);
        assert_eq!((f.workload, f.agree()), (Workload::Seq, None));
        let f = run(&[with_ops(0, &[(0, 0, "ask 1")])]);
        assert_eq!((f.workload, f.agree()), (Workload::Chat, None));
        let f = run(&[with_ops(0, &[(0, 0, "deposit 1.00"), (0, 1, "put k0 0:1")])]);
        assert_eq!(f.agree(), Some(false));
        assert_eq!(
            f.first.unwrap().to_string(),
            "position 1 of peer 0's log is 0:1 (put k0 0:1), not a bank operation like the others: the logs mix workloads"
        );
    }
}
