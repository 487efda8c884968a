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
//! A peer's delivery log records the views as *view lines* between its
//! deliveries (see [`crate::log`]); they are read into
//! [`PeerLog::views`]. [`check_with_views`] judges a whole run from them
//! the way the simulator judges a run with faults: virtual synchrony over
//! every log, the classic properties over the members there from the
//! first view to the last, and members that left "left in view v", not
//! missing.
//!
//! A log is a list of deliveries with view marks between them: the mark of
//! view `v` comes before the first delivery of `v`. A member that joined
//! late starts with the mark of the view that admitted it; a member that
//! crashed simply stops.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use mpcomm_core::{MemberId, OrderKind};
use serde::{Deserialize, Serialize};

use crate::{Findings, Msg, PeerLog, RunSpec};

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
    /// When the member installed it, in microseconds (the clock of the
    /// log's `delivered_us`), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t_us: Option<u64>,
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

/// A view of a run as its logs record it: what the first log to mention it
/// says (every member installs the same view), and when it was first
/// installed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunView {
    /// The view's number.
    pub id: u32,
    /// Its members.
    pub members: Vec<MemberId>,
    /// Members new in it.
    pub joined: Vec<MemberId>,
    /// Members of the previous view not in it.
    pub left: Vec<MemberId>,
    /// The earliest time a member installed it (microseconds, the writers'
    /// clocks), if the logs say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t_us: Option<u64>,
}

/// A member that left the group: it is not in the views after `view`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftMember {
    /// The member.
    pub member: MemberId,
    /// The first view without it.
    pub view: u32,
}

/// What the view lines of a run's logs say, when the group changed during
/// the run ([`check_with_views`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewFindings {
    /// Every view any log records, by id.
    pub views: Vec<RunView>,
    /// The members that left, each with the first view without it: "left
    /// in view v", not missing.
    pub left: Vec<LeftMember>,
    /// Whether virtual synchrony holds ([`VirtualSynchrony::holds`]).
    pub virtual_synchrony: bool,
    /// The verdict with its first counter-example.
    pub virtual_synchrony_detail: VirtualSynchrony,
}

/// The views recorded in `logs`, by id (see [`RunView`]).
pub fn run_views(logs: &[PeerLog]) -> Vec<RunView> {
    let mut views: BTreeMap<u32, RunView> = BTreeMap::new();
    for mark in logs.iter().flat_map(|l| &l.views) {
        let v = views.entry(mark.id).or_insert_with(|| RunView {
            id: mark.id,
            members: mark.members.clone(),
            joined: mark.joined.clone(),
            left: mark.left.clone(),
            t_us: None,
        });
        v.t_us = match (v.t_us, mark.t_us) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    views.into_values().collect()
}

/// Checks a run whose logs record a view change, the way the simulator
/// judges a run with faults; `None` when no log records one (then
/// [`crate::check_detailed`] judges the run, exactly as before views).
///
/// * **Virtual synchrony** over every log ([`check_virtual_synchrony`]):
///   a log is a survivor's when its member is in the last view and the log
///   is not cut short; each member is taken to have sent what `spec` says.
/// * **The classic properties** over the members that took part from the
///   first view to the last ([`crate::check_members`]); a member that left
///   counts as having sent what those members delivered of it (its last
///   messages may be delivered by nobody). Members that left are "left in
///   view v" ([`ViewFindings::left`]), not missing; a member of the last
///   view without a log is missing.
/// * The run passes when both hold and it is complete.
pub fn check_with_views(
    spec: &RunSpec,
    logs: &[PeerLog],
) -> Option<(Findings, Vec<crate::Violation>, ViewFindings)> {
    let views = run_views(logs);
    if views.len() < 2 {
        return None;
    }
    let (first, last) = (views.first()?, views.last()?);
    let in_last = |m: MemberId| last.members.contains(&m);
    let mut left: Vec<LeftMember> = Vec::new();
    for v in &views {
        for &member in &v.left {
            left.push(LeftMember { member, view: v.id });
        }
    }
    let sent_by = |m: MemberId| spec.sent.get(usize::from(m)).copied().unwrap_or(0);
    // Virtual synchrony, over every log. A member without a log (a crashed
    // member's stays on its host) is still a sender: an empty stand-in says
    // how many messages it sent, so that its messages are not "invented".
    let mut vs_logs: Vec<PeerLog> = logs.to_vec();
    let mut view_logs: Vec<ViewLog> = logs
        .iter()
        .map(|l| ViewLog {
            marks: l.views.clone(),
            survivor: in_last(l.peer) && !l.status().cut_short(),
            sent: sent_by(l.peer),
        })
        .collect();
    let everyone: BTreeSet<MemberId> = views
        .iter()
        .flat_map(|v| v.members.iter().copied())
        .chain((0..spec.members).filter_map(|m| MemberId::try_from(m).ok()))
        .collect();
    for m in everyone {
        if !logs.iter().any(|l| l.peer == m) {
            vs_logs.push(PeerLog::new(m, Vec::new()));
            view_logs.push(ViewLog {
                marks: Vec::new(),
                survivor: false,
                sent: sent_by(m),
            });
        }
    }
    let vs = check_virtual_synchrony(spec.order, &vs_logs, &view_logs);
    // The classic properties, over the members there from start to end.
    let full: Vec<PeerLog> = logs
        .iter()
        .filter(|l| in_last(l.peer) && l.views.first().is_none_or(|m| m.id == first.id))
        .cloned()
        .collect();
    let highest = views
        .iter()
        .flat_map(|v| &v.members)
        .map(|&m| usize::from(m) + 1)
        .max()
        .unwrap_or(0);
    let members = spec.members.max(highest);
    let sent: Vec<u64> = (0..members)
        .map(|m| {
            let has_full = full.iter().any(|l| usize::from(l.peer) == m);
            if has_full {
                spec.sent.get(m).copied().unwrap_or(0)
            } else {
                full.iter()
                    .flat_map(|l| &l.entries)
                    .filter(|e| usize::from(e.sender) == m)
                    .map(|e| e.seq.saturating_add(1))
                    .max()
                    .unwrap_or(0)
            }
        })
        .collect();
    let judged = RunSpec {
        order: spec.order,
        members,
        sent,
    };
    let (mut f, violations) = crate::check_detailed(&judged, &full);
    let sent_in_all = judged.sent.iter().fold(0u64, |a, &s| a.saturating_add(s));
    f.expected = (full.len() as u64).saturating_mul(sent_in_all);
    // Missing: a member of the last view (or of the first, that never
    // left) without any log.
    let mut missing: Vec<MemberId> = last
        .members
        .iter()
        .chain(&first.members)
        .copied()
        .filter(|&m| !left.iter().any(|l| l.member == m) || in_last(m))
        .filter(|&m| !logs.iter().any(|l| l.peer == m))
        .collect();
    missing.sort_unstable();
    missing.dedup();
    f.missing_logs = missing;
    f.complete = f.missing_logs.is_empty() && f.partial_logs.is_empty() && f.failed_logs.is_empty();
    f.passed = f.complete
        && vs.holds
        && violations
            .iter()
            .all(|v| !v.property().promised_by(spec.order));
    let out = ViewFindings {
        views,
        left,
        virtual_synchrony: vs.holds,
        virtual_synchrony_detail: vs,
    };
    Some((f, violations, out))
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
            t_us: None,
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

    /// A log of a run with views: `parts` are view marks (id, members,
    /// left) and deliveries, in the order the member saw them.
    fn viewed(peer: MemberId, parts: &[Part], status: Option<crate::EndStatus>) -> PeerLog {
        let mut l = log(peer, &[]);
        for p in parts {
            match p {
                Part::V(id, members, left) => l.views.push(ViewMark {
                    left: left.to_vec(),
                    ..mark(l.entries.len(), *id, members)
                }),
                Part::D(s, q) => l.entries.push(entry(peer, *s, *q)),
            }
        }
        l.end = status.map(|status| crate::LogEnd {
            status,
            error: None,
            delivered: l.entries.len() as u64,
            t_us: None,
        });
        l
    }

    enum Part {
        V(u32, &'static [MemberId], &'static [MemberId]),
        D(MemberId, u64),
    }
    use Part::{D, V};

    const DONE: Option<crate::EndStatus> = Some(crate::EndStatus::Completed);

    #[test]
    fn no_view_change_is_checked_as_before() {
        let logs = vec![
            viewed(0, &[V(1, &[0, 1], &[]), D(0, 0), D(1, 0)], DONE),
            viewed(1, &[V(1, &[0, 1], &[]), D(0, 0), D(1, 0)], DONE),
        ];
        let spec = RunSpec::uniform(OrderKind::Total, 2, 1);
        assert!(check_with_views(&spec, &logs).is_none());
        assert!(check_with_views(&spec, &[log(0, &[(0, 0)])]).is_none());
    }

    /// Peer 2 crashes after sending one message, which only peer 0 and 1
    /// deliver; they go on in view 2 and deliver everything else.
    fn crash_run(second: &'static [Part]) -> Vec<PeerLog> {
        let mut one: Vec<Part> = vec![V(1, &[0, 1, 2], &[]), D(0, 0), D(2, 0)];
        one.push(V(2, &[0, 1], &[2]));
        one.extend([D(1, 0), D(0, 1), D(1, 1)]);
        let mut two: Vec<Part> = vec![V(1, &[0, 1, 2], &[])];
        for p in second {
            two.push(match p {
                V(a, b, c) => V(*a, b, c),
                D(a, b) => D(*a, *b),
            });
        }
        vec![
            viewed(0, &one, DONE),
            viewed(1, &two, DONE),
            viewed(2, &[V(1, &[0, 1, 2], &[]), D(0, 0)], None),
        ]
    }

    #[test]
    fn a_crash_with_a_view_change_passes_and_says_who_left() {
        let logs = crash_run(&[
            D(0, 0),
            D(2, 0),
            V(2, &[0, 1], &[2]),
            D(1, 0),
            D(0, 1),
            D(1, 1),
        ]);
        let spec = RunSpec::uniform(OrderKind::Total, 3, 2);
        let (f, violations, vf) = check_with_views(&spec, &logs).unwrap();
        assert!(vf.virtual_synchrony, "{}", vf.virtual_synchrony_detail);
        assert!(violations.is_empty(), "{violations:?}");
        assert!(f.passed && f.complete, "{f:?}");
        assert!(f.missing_logs.is_empty() && f.partial_logs.is_empty());
        assert_eq!(
            f.expected,
            2 * (2 + 2 + 1),
            "two logs of 2 + 2 + 1 messages"
        );
        assert_eq!(vf.left, vec![LeftMember { member: 2, view: 2 }]);
        assert_eq!(vf.views.len(), 2);
        assert_eq!(vf.virtual_synchrony_detail.view_changes, 1);
        // Without the crashed member's log: still not missing.
        let (f, _, _) = check_with_views(&spec, &logs[..2]).unwrap();
        assert!(f.passed, "{f:?}");
        // Without a survivor's log: missing, and the run does not pass.
        let (f, _, _) = check_with_views(&spec, &[logs[0].clone(), logs[2].clone()]).unwrap();
        assert_eq!(f.missing_logs, vec![1]);
        assert!(!f.passed);
    }

    #[test]
    fn a_message_delivered_in_different_views_fails_the_run() {
        // Peer 1 delivers 2:0 only after the view change: not the same set
        // in view 1 as peer 0's.
        let logs = crash_run(&[
            D(0, 0),
            V(2, &[0, 1], &[2]),
            D(2, 0),
            D(1, 0),
            D(0, 1),
            D(1, 1),
        ]);
        let spec = RunSpec::uniform(OrderKind::Total, 3, 2);
        let (f, _, vf) = check_with_views(&spec, &logs).unwrap();
        assert!(!vf.virtual_synchrony);
        let why = vf
            .virtual_synchrony_detail
            .counterexample
            .unwrap_or_default();
        assert!(why.contains("different sets"), "{why}");
        assert!(!f.passed);
    }
}
