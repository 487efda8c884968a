//! Virtual synchrony, checked from the logs.
//!
//! When a member crashes, the group moves to a new *view* without it (see
//! `mpcomm_core::membership`), and each delivery log records the views
//! between its deliveries. Virtual synchrony is what makes "the same order"
//! meaningful across such changes. This module checks its four promises from
//! the logs alone:
//!
//! 1. **Same set per view.** Members that install view `v+1` from view `v`
//!    delivered the same set of messages in `v`.
//! 2. **The order's promise within each view.** `total`: any two messages
//!    delivered in a view by two members are delivered in the same relative
//!    order by both; `fifo` (and every order but `none`): each sender's
//!    messages in sequence order.
//! 3. **Sending view.** A message is delivered in one view by everyone who
//!    delivers it (the view it was sent in), or by nobody.
//! 4. **Integrity across views.** A surviving sender delivers its own
//!    messages; nobody delivers a message twice or one that was never sent.
//!
//! A log is a list of deliveries with view marks between them: the mark of
//! view `v` comes before the first delivery of `v`. A member that joined
//! late starts with the mark of the view that admitted it; a member that
//! crashed simply stops.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use mpcomm_core::{MemberId, OrderKind};
use serde::{Deserialize, Serialize};

use crate::{Msg, PeerLog};

/// A view installed by a member, and where in its log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewMark {
    /// How many deliveries the log holds before this view began.
    pub at: usize,
    /// The view's number.
    pub id: u32,
    /// Its members.
    pub members: Vec<MemberId>,
    /// Members new in it.
    pub joined: Vec<MemberId>,
    /// Members of the previous view not in it.
    pub left: Vec<MemberId>,
}

/// One member process's view marks, beside its [`PeerLog`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ViewLog {
    /// The views it installed, in order.
    pub marks: Vec<ViewMark>,
    /// It survived: it did not crash and was not excluded, so it must have
    /// delivered its own messages.
    pub survivor: bool,
    /// How many messages it multicast.
    pub sent: u64,
}

/// The verdict on virtual synchrony, with the first counter-example.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtualSynchrony {
    /// Every promise holds.
    pub holds: bool,
    /// Views (after the first) that some member installed.
    pub view_changes: usize,
    /// The first counter-example, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counterexample: Option<String>,
}

impl fmt::Display for VirtualSynchrony {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.counterexample {
            None => write!(f, "ok ({} view changes)", self.view_changes),
            Some(c) => write!(f, "VIOLATED: {c}"),
        }
    }
}

/// The deliveries of one member in one view.
struct Segment<'a> {
    proc: usize,
    peer: MemberId,
    view: u32,
    /// The member installed the next view right after this one.
    next: Option<u32>,
    msgs: &'a [crate::LogEntry],
}

/// Checks virtual synchrony over the logs of member processes: `logs[i]`
/// and `views[i]` belong to the same process (a member that restarted is a
/// second process with the same member id). `senders` says how many
/// messages each member id multicast (summed over its processes is not
/// meaningful: each process counts its own in `ViewLog::sent`).
pub fn check_virtual_synchrony(
    order: OrderKind,
    logs: &[PeerLog],
    views: &[ViewLog],
) -> VirtualSynchrony {
    let mut out = VirtualSynchrony {
        holds: true,
        ..VirtualSynchrony::default()
    };
    let mut fail = |why: String| {
        if out.counterexample.is_none() {
            out.counterexample = Some(why);
        }
    };
    // Cut every log into per-view segments.
    let mut segments: Vec<Segment<'_>> = Vec::new();
    let mut view_ids = BTreeSet::new();
    for (i, (log, vl)) in logs.iter().zip(views).enumerate() {
        if vl.marks.is_empty() {
            if !log.entries.is_empty() {
                fail(format!(
                    "peer {} delivered {} messages outside any view",
                    log.peer,
                    log.entries.len()
                ));
            }
            continue;
        }
        if vl.marks[0].at != 0 {
            fail(format!(
                "peer {} delivered {} messages before its first view",
                log.peer, vl.marks[0].at
            ));
        }
        for (j, mark) in vl.marks.iter().enumerate() {
            view_ids.insert(mark.id);
            let end = vl.marks.get(j + 1).map_or(log.entries.len(), |m| m.at);
            let start = mark.at.min(end);
            let next = vl.marks.get(j + 1).map(|m| m.id);
            if let Some(n) = next
                && n != mark.id + 1
            {
                fail(format!(
                    "peer {} went from view {} to view {n}, skipping a view",
                    log.peer, mark.id
                ));
            }
            segments.push(Segment {
                proc: i,
                peer: log.peer,
                view: mark.id,
                next,
                msgs: &log.entries[start..end.min(log.entries.len())],
            });
        }
    }
    out.view_changes = view_ids.len().saturating_sub(1);

    // 1. Members moving from v to v+1 delivered the same set in v.
    let mut by_view: BTreeMap<u32, Vec<&Segment<'_>>> = BTreeMap::new();
    for s in &segments {
        by_view.entry(s.view).or_default().push(s);
    }
    for (view, segs) in &by_view {
        let movers: Vec<&&Segment<'_>> = segs.iter().filter(|s| s.next.is_some()).collect();
        if let Some(first) = movers.first() {
            let want: BTreeSet<Msg> = first.msgs.iter().map(|e| e.msg()).collect();
            for s in &movers[1..] {
                let got: BTreeSet<Msg> = s.msgs.iter().map(|e| e.msg()).collect();
                if got != want {
                    let diff = want
                        .symmetric_difference(&got)
                        .next()
                        .map(|m| m.to_string())
                        .unwrap_or_default();
                    fail(format!(
                        "peers {} and {} both moved from view {view} to {} but delivered different sets in it (e.g. {diff})",
                        first.peer,
                        s.peer,
                        view + 1
                    ));
                }
            }
        }
        // 2. The order's promise within the view.
        if order == OrderKind::Total {
            check_same_relative_order(*view, segs, &mut fail);
        }
    }

    // 3. Every message is delivered in one view; 4. no duplicates, nothing
    // invented, and survivors deliver their own.
    let mut view_of: HashMap<Msg, (u32, MemberId)> = HashMap::new();
    for (i, (log, vl)) in logs.iter().zip(views).enumerate() {
        let mut seen = BTreeSet::new();
        let mut last_seq: HashMap<MemberId, u64> = HashMap::new();
        for s in segments.iter().filter(|s| s.proc == i) {
            for e in s.msgs {
                let m = e.msg();
                if !seen.insert(m) {
                    fail(format!("peer {} delivered {m} twice", log.peer));
                }
                match view_of.get(&m) {
                    Some(&(v, p)) if v != s.view => fail(format!(
                        "{m} was delivered in view {v} by peer {p} but in view {} by peer {}",
                        s.view, log.peer
                    )),
                    Some(_) => {}
                    None => {
                        view_of.insert(m, (s.view, log.peer));
                    }
                }
                if order != OrderKind::None {
                    if let Some(&prev) = last_seq.get(&m.sender)
                        && m.seq <= prev
                    {
                        fail(format!(
                            "peer {} delivered {}:{} after {}:{prev} (sender order broken)",
                            log.peer, m.sender, m.seq, m.sender
                        ));
                    }
                    last_seq.insert(m.sender, m.seq);
                }
            }
        }
        if vl.survivor {
            for seq in 0..vl.sent {
                let m = Msg {
                    sender: log.peer,
                    seq,
                };
                if !seen.contains(&m) {
                    fail(format!(
                        "peer {} survived but never delivered its own message {m}",
                        log.peer
                    ));
                    break;
                }
            }
        }
    }
    // Nothing invented: a message's seq is below what its sender sent (the
    // largest count among that member's processes bounds it).
    let mut sent_by: HashMap<MemberId, u64> = HashMap::new();
    for (log, vl) in logs.iter().zip(views) {
        let e = sent_by.entry(log.peer).or_default();
        *e = (*e).max(vl.sent);
    }
    for m in view_of.keys() {
        if m.seq >= sent_by.get(&m.sender).copied().unwrap_or(0) {
            fail(format!("{m} was delivered but never sent"));
            break;
        }
    }
    out.holds = out.counterexample.is_none();
    out
}

/// `total` within one view: every two members deliver their common messages
/// in the same relative order. Comparing each member with a reference order
/// (the longest member's) suffices: positions in the reference must increase
/// along every other member's delivery sequence.
fn check_same_relative_order(view: u32, segs: &[&Segment<'_>], fail: &mut impl FnMut(String)) {
    let Some(reference) = segs.iter().max_by_key(|s| s.msgs.len()) else {
        return;
    };
    let pos: HashMap<Msg, usize> = reference
        .msgs
        .iter()
        .enumerate()
        .map(|(i, e)| (e.msg(), i))
        .collect();
    for s in segs {
        let mut last: Option<(usize, Msg)> = None;
        for e in s.msgs {
            let Some(&p) = pos.get(&e.msg()) else {
                continue;
            };
            if let Some((lp, lm)) = last
                && p < lp
            {
                fail(format!(
                    "in view {view} peer {} delivered {} before {}, peer {} the other way round",
                    s.peer,
                    lm,
                    e.msg(),
                    reference.peer
                ));
                return;
            }
            last = Some((p, e.msg()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LogEntry;

    fn entry(peer: MemberId, sender: MemberId, seq: u64) -> LogEntry {
        LogEntry {
            run: 1,
            peer,
            sender,
            seq,
            stamp: None,
            sent_us: None,
            delivered_us: None,
            after: None,
            op: None,
        }
    }

    fn mark(at: usize, id: u32, members: &[MemberId]) -> ViewMark {
        ViewMark {
            at,
            id,
            members: members.to_vec(),
            joined: vec![],
            left: vec![],
        }
    }

    fn log(peer: MemberId, msgs: &[(MemberId, u64)]) -> PeerLog {
        PeerLog::new(peer, msgs.iter().map(|&(s, q)| entry(peer, s, q)).collect())
    }

    /// Peer 2 crashes in view 1; peers 0 and 1 install view 2 having
    /// delivered the same set in view 1.
    #[test]
    fn a_clean_crash_holds() {
        let logs = vec![
            log(0, &[(0, 0), (2, 0), (1, 0), (0, 1)]),
            log(1, &[(0, 0), (2, 0), (1, 0), (0, 1)]),
            log(2, &[(0, 0)]),
        ];
        let views = vec![
            ViewLog {
                marks: vec![mark(0, 1, &[0, 1, 2]), mark(3, 2, &[0, 1])],
                survivor: true,
                sent: 2,
            },
            ViewLog {
                marks: vec![mark(0, 1, &[0, 1, 2]), mark(3, 2, &[0, 1])],
                survivor: true,
                sent: 1,
            },
            ViewLog {
                marks: vec![mark(0, 1, &[0, 1, 2])],
                survivor: false,
                sent: 1,
            },
        ];
        let vs = check_virtual_synchrony(OrderKind::Total, &logs, &views);
        assert!(vs.holds, "{vs}");
        assert_eq!(vs.view_changes, 1);
    }

    #[test]
    fn different_sets_before_a_view_change_are_caught() {
        let logs = vec![log(0, &[(2, 0), (0, 0)]), log(1, &[(0, 0)])];
        let both = ViewLog {
            marks: vec![mark(0, 1, &[0, 1, 2]), mark(1, 2, &[0, 1])],
            survivor: true,
            sent: 1,
        };
        let views = vec![
            both.clone(),
            ViewLog {
                marks: vec![mark(0, 1, &[0, 1, 2]), mark(0, 2, &[0, 1])],
                sent: 0,
                ..both
            },
        ];
        let vs = check_virtual_synchrony(OrderKind::Total, &logs, &views);
        assert!(!vs.holds);
        assert!(
            vs.counterexample
                .as_deref()
                .unwrap()
                .contains("different sets"),
            "{vs}"
        );
    }

    #[test]
    fn a_message_in_two_views_is_caught() {
        let logs = vec![log(0, &[(0, 0)]), log(1, &[(0, 0)])];
        let views = vec![
            ViewLog {
                marks: vec![mark(0, 1, &[0, 1]), mark(1, 2, &[0, 1])],
                survivor: true,
                sent: 1,
            },
            ViewLog {
                marks: vec![mark(0, 1, &[0, 1]), mark(0, 2, &[0, 1])],
                survivor: true,
                sent: 0,
            },
        ];
        let vs = check_virtual_synchrony(OrderKind::Fifo, &logs, &views);
        assert!(!vs.holds, "{vs}");
    }

    #[test]
    fn order_within_a_view_and_own_messages() {
        let logs = vec![log(0, &[(0, 0), (1, 0)]), log(1, &[(1, 0), (0, 0)])];
        let v = ViewLog {
            marks: vec![mark(0, 1, &[0, 1])],
            survivor: true,
            sent: 1,
        };
        let views = vec![v.clone(), v.clone()];
        assert!(!check_virtual_synchrony(OrderKind::Total, &logs, &views).holds);
        assert!(check_virtual_synchrony(OrderKind::Fifo, &logs, &views).holds);
        let lazy = vec![log(0, &[]), log(1, &[])];
        assert!(!check_virtual_synchrony(OrderKind::Fifo, &lazy, &views).holds);
    }
}
