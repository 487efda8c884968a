//! Views: who is in the group, and how the group changes without losing
//! the meaning of "the same order".
//!
//! # The problem
//!
//! Every order mpcomm offers is a promise about what *every member*
//! delivers. When a member crashes, that promise needs a new subject: the
//! survivors cannot wait for the dead member's acknowledgements for ever,
//! and some of its last messages may have reached one survivor and not
//! another. Group-communication systems (Isis, Spread, Corosync, JGroups)
//! answer with **views** and **virtual synchrony**:
//!
//! * a *view* is a numbered list of members, `(id, [members])`; the first
//!   view is the run's member list;
//! * when a member is suspected (it has been silent for a while) or a new one
//!   asks to join, the members move to the next view together, through a
//!   *flush*;
//! * **virtual synchrony**: members that move from view `v` to view `v+1`
//!   delivered *the same set* of messages in `v`, each order keeps its
//!   promise within a view, and a message is delivered in the view it was
//!   sent in, or by nobody.
//!
//! # The flush, in four steps
//!
//! 1. **Propose.** The *coordinator* — the lowest id of the current view
//!    that nobody suspects — proposes the next view's members: the current
//!    ones minus the suspected, plus the joiners. A proposal carries a
//!    *ballot* `(round, coordinator)`; a member accepts a proposal only if
//!    its ballot is higher than any it accepted before, so that a
//!    coordinator that crashes mid-flush can be replaced by the next one
//!    with a higher round. A member that accepts stops sending new messages
//!    and ignores the excluded members from then on.
//! 2. **Report.** Each proposed member reports what it holds of the old
//!    view: for every member's stream, which records it holds (a prefix,
//!    and for the `none` order, which it delivers out of sequence, also the
//!    records past it), how many records its own stream has, its clock, and
//!    which members it knows have ended their streams.
//! 3. **Decide.** With every report in, the coordinator decides what every
//!    survivor will have delivered in the old view — its *cut*: all of a
//!    surviving member's own records (it still holds them and resends them
//!    as usual); of an excluded member's, what the best-informed survivor
//!    holds (anything a survivor may already have delivered). It sends the
//!    decision, with the new view and who can supply which records, to
//!    every member of the new view.
//! 4. **Install.** Each member fetches the records of the cut it lacks
//!    (relayed by a member that has them), delivers the rest of the old
//!    view — the set is now final, so nothing more can come and the order
//!    needs nobody's acknowledgement — then installs the new view:
//!    fresh streams, the clock raised to the decision's floor, and an
//!    [`crate::Event::View`] between the last delivery of the old view and
//!    the first of the new.
//!
//! **Only a primary component goes on**: a proposal must keep a strict
//! majority of the current view's members. A member that can no longer
//! reach a majority stops and says so, so that two halves of a partitioned
//! group never both go on (no split brain). Merging two partitions is not
//! supported: the minority's members stop, and may join again as new
//! incarnations.
//!
//! The proof sketch — why every member that installs `v+1` delivered the
//! same set in `v`, and why a replaced coordinator cannot make two
//! different views `v+1` — is in `docs/algorithms.md`.

use std::collections::{BTreeMap, BTreeSet};

use crate::wire::{Item, MemberId};

/// A member of a view: its id and the incarnation of its process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberRef {
    /// The member id.
    pub id: MemberId,
    /// The incarnation (random per process start).
    pub incarnation: u64,
}

/// A view: its number and its members, sorted by id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    /// The view's number; the first view is 1.
    pub id: u32,
    /// Its members, sorted by id; one incarnation per id.
    pub members: Vec<MemberRef>,
}

impl View {
    /// Whether `id` is a member (any incarnation).
    pub fn contains_id(&self, id: MemberId) -> bool {
        self.members.iter().any(|m| m.id == id)
    }

    /// The incarnation of member `id` in this view.
    pub fn incarnation_of(&self, id: MemberId) -> Option<u64> {
        self.members
            .iter()
            .find(|m| m.id == id)
            .map(|m| m.incarnation)
    }

    /// The member ids, in order.
    pub fn ids(&self) -> Vec<MemberId> {
        self.members.iter().map(|m| m.id).collect()
    }

    /// Whether `members` keeps a strict majority of this view: the
    /// *primary component* rule. Two disjoint sets cannot both hold a
    /// majority, so two halves of a partition never both go on.
    pub fn is_majority(&self, members: &[MemberRef]) -> bool {
        let kept = members.iter().filter(|m| self.members.contains(m)).count();
        2 * kept > self.members.len()
    }

    /// The coordinator as a member sees it: the lowest id it does not
    /// suspect.
    pub fn coordinator(&self, suspects: &BTreeSet<MemberId>) -> Option<MemberId> {
        self.members
            .iter()
            .map(|m| m.id)
            .find(|id| !suspects.contains(id))
    }
}

/// A view change's ballot: `(round, coordinator)`, compared in that order.
/// A member accepts a proposal only if its ballot is higher than every one
/// it accepted before for the same view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ballot {
    /// Rises each time a coordinator starts a new proposal.
    pub round: u32,
    /// The member that made the proposal.
    pub coord: MemberId,
}

/// Records `from..from + count` of one stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    /// First record.
    pub from: u64,
    /// How many.
    pub count: u64,
}

impl Span {
    /// One past the last record.
    pub fn end(&self) -> u64 {
        self.from.saturating_add(self.count)
    }
}

/// What one member reported it holds of the old view.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// For each member's stream (by id), the records held, as disjoint spans
    /// in increasing order; the reporter's own stream is one span from 0
    /// covering everything it sent.
    pub holds: BTreeMap<MemberId, Vec<Span>>,
    /// The reporter's Lamport clock.
    pub clock: u64,
    /// Members known to have ended their streams.
    pub finished: BTreeSet<MemberRef>,
}

impl Report {
    /// The report as VIEW items.
    pub fn to_items(&self) -> Vec<Item> {
        let mut items = vec![Item::Clock(self.clock)];
        for (&sender, spans) in &self.holds {
            for s in spans {
                items.push(Item::Range {
                    sender,
                    from: s.from,
                    count: s.count,
                });
            }
        }
        for f in &self.finished {
            items.push(Item::Finished {
                id: f.id,
                incarnation: f.incarnation,
            });
        }
        items
    }

    /// Adds what an item of a STATE message says.
    pub fn absorb(&mut self, item: Item) {
        match item {
            Item::Clock(c) => self.clock = self.clock.max(c),
            Item::Range {
                sender,
                from,
                count,
            } if count > 0 => self
                .holds
                .entry(sender)
                .or_default()
                .push(Span { from, count }),
            Item::Finished { id, incarnation } => {
                self.finished.insert(MemberRef { id, incarnation });
            }
            _ => {}
        }
    }
}

/// The flush's decision: the new view and the old view's cut.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// The new view's members.
    pub members: Vec<MemberRef>,
    /// For each old-view stream, the records every member of the new view
    /// delivers in the old view.
    pub cut: BTreeMap<MemberId, Vec<Span>>,
    /// For each old-view stream, members that hold (part of) its cut.
    pub donors: BTreeMap<MemberId, Vec<MemberId>>,
    /// Every member's clock is raised to at least this at installation.
    pub clock: u64,
    /// Members whose streams have ended.
    pub finished: BTreeSet<MemberRef>,
}

impl Decision {
    /// Computes the decision from every proposed member's report.
    ///
    /// * A surviving member's own stream: everything it sent (its own report
    ///   says how much; it still holds it all and resends it as usual).
    /// * An excluded member's stream: with `gaps_allowed` (the `none` order,
    ///   which delivers records out of sequence), the union of what the
    ///   survivors hold; otherwise the longest prefix any survivor holds —
    ///   no order but `none` can have delivered a record past a gap.
    pub fn decide(
        old: &View,
        members: Vec<MemberRef>,
        reports: &BTreeMap<MemberId, Report>,
        gaps_allowed: bool,
    ) -> Decision {
        let mut cut = BTreeMap::new();
        let mut donors: BTreeMap<MemberId, Vec<MemberId>> = BTreeMap::new();
        for &was in &old.members {
            let sender = was.id;
            // The same process: a restarted member (same id, new
            // incarnation) is a joiner, and its old stream is cut like a
            // crashed member's.
            let survives = members.contains(&was);
            if survives {
                let own = reports
                    .get(&sender)
                    .and_then(|r| r.holds.get(&sender))
                    .map_or(0, |spans| prefix_of(spans));
                let spans = if own > 0 {
                    vec![Span {
                        from: 0,
                        count: own,
                    }]
                } else {
                    Vec::new()
                };
                cut.insert(sender, spans);
                donors.insert(sender, vec![sender]);
                continue;
            }
            let mut spans: Vec<Span> = Vec::new();
            let mut holders = Vec::new();
            if gaps_allowed {
                for (&reporter, r) in reports {
                    if let Some(held) = r.holds.get(&sender) {
                        spans.extend(held.iter().copied());
                        holders.push(reporter);
                    }
                }
                spans = merge(spans);
            } else {
                let best = reports
                    .values()
                    .map(|r| r.holds.get(&sender).map_or(0, |s| prefix_of(s)))
                    .max()
                    .unwrap_or(0);
                for (&reporter, r) in reports {
                    if r.holds.get(&sender).map_or(0, |s| prefix_of(s)) == best && best > 0 {
                        holders.push(reporter);
                    }
                }
                spans.push(Span {
                    from: 0,
                    count: best,
                });
            }
            spans.retain(|s| s.count > 0);
            cut.insert(sender, spans);
            donors.insert(sender, holders);
        }
        let clock = reports.values().map(|r| r.clock).max().unwrap_or(0);
        let finished = reports
            .values()
            .flat_map(|r| r.finished.iter().copied())
            .collect();
        Decision {
            members,
            cut,
            donors,
            clock,
            finished,
        }
    }

    /// The decision as VIEW items (members first).
    pub fn to_items(&self) -> Vec<Item> {
        let mut items: Vec<Item> = self
            .members
            .iter()
            .map(|m| Item::Member {
                id: m.id,
                incarnation: m.incarnation,
            })
            .collect();
        items.push(Item::Clock(self.clock));
        for (&sender, spans) in &self.cut {
            if spans.is_empty() {
                // Says "nothing of this stream", so the stream is named.
                items.push(Item::Range {
                    sender,
                    from: 0,
                    count: 0,
                });
            }
            for s in spans {
                items.push(Item::Range {
                    sender,
                    from: s.from,
                    count: s.count,
                });
            }
        }
        for (&sender, ds) in &self.donors {
            for &donor in ds {
                items.push(Item::Donor { sender, donor });
            }
        }
        for f in &self.finished {
            items.push(Item::Finished {
                id: f.id,
                incarnation: f.incarnation,
            });
        }
        items
    }

    /// Adds what an item of an INSTALL message says.
    pub fn absorb(&mut self, item: Item) {
        match item {
            Item::Member { id, incarnation } => {
                let m = MemberRef { id, incarnation };
                if let Err(at) = self.members.binary_search(&m) {
                    self.members.insert(at, m);
                }
            }
            Item::Clock(c) => self.clock = self.clock.max(c),
            Item::Range {
                sender,
                from,
                count,
            } => {
                let spans = self.cut.entry(sender).or_default();
                if count > 0 {
                    spans.push(Span { from, count });
                }
            }
            Item::Donor { sender, donor } => self.donors.entry(sender).or_default().push(donor),
            Item::Finished { id, incarnation } => {
                self.finished.insert(MemberRef { id, incarnation });
            }
        }
    }
}

/// How many records from 0 the spans cover without a gap.
pub fn prefix_of(spans: &[Span]) -> u64 {
    let mut end = 0;
    for s in merge(spans.to_vec()) {
        if s.from > end {
            break;
        }
        end = end.max(s.end());
    }
    end
}

/// Sorts spans and merges those that overlap or touch.
pub fn merge(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort();
    let mut out: Vec<Span> = Vec::with_capacity(spans.len());
    for s in spans {
        match out.last_mut() {
            Some(last) if s.from <= last.end() => {
                let end = last.end().max(s.end());
                last.count = end - last.from;
            }
            _ => out.push(s),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: MemberId) -> MemberRef {
        MemberRef { id, incarnation: 1 }
    }

    fn view(ids: &[MemberId]) -> View {
        View {
            id: 1,
            members: ids.iter().map(|&i| m(i)).collect(),
        }
    }

    fn report(holds: &[(MemberId, &[(u64, u64)])]) -> Report {
        Report {
            holds: holds
                .iter()
                .map(|(s, spans)| {
                    (
                        *s,
                        spans
                            .iter()
                            .map(|&(from, count)| Span { from, count })
                            .collect(),
                    )
                })
                .collect(),
            clock: 5,
            finished: BTreeSet::new(),
        }
    }

    #[test]
    fn majority_and_coordinator() {
        let v = view(&[0, 1, 2, 3]);
        assert!(v.is_majority(&[m(0), m(1), m(2)]));
        assert!(!v.is_majority(&[m(0), m(1)]), "half is not a majority");
        assert!(
            !v.is_majority(&[
                m(0),
                m(1),
                MemberRef {
                    id: 2,
                    incarnation: 9
                }
            ]),
            "a new incarnation is not the old member"
        );
        let suspects: BTreeSet<MemberId> = [0].into();
        assert_eq!(v.coordinator(&suspects), Some(1));
    }

    /// A crashed member's stream: the longest prefix any survivor holds,
    /// except for `none`, which may have delivered past a gap and so gets
    /// the union.
    #[test]
    fn the_cut_of_an_excluded_stream() {
        let v = view(&[0, 1, 2]);
        let survivors = vec![m(0), m(1)];
        let mut reports = BTreeMap::new();
        reports.insert(0, report(&[(0, &[(0, 4)]), (2, &[(0, 3), (5, 1)])]));
        reports.insert(1, report(&[(1, &[(0, 2)]), (2, &[(0, 2), (3, 1)])]));
        let d = Decision::decide(&v, survivors.clone(), &reports, false);
        assert_eq!(d.cut[&0], vec![Span { from: 0, count: 4 }]);
        assert_eq!(d.cut[&1], vec![Span { from: 0, count: 2 }]);
        assert_eq!(d.cut[&2], vec![Span { from: 0, count: 3 }]);
        assert_eq!(d.donors[&2], vec![0]);
        let d = Decision::decide(&v, survivors, &reports, true);
        assert_eq!(
            d.cut[&2],
            vec![Span { from: 0, count: 4 }, Span { from: 5, count: 1 }]
        );
        assert_eq!(d.donors[&2], vec![0, 1]);
    }

    /// A restarted member (same id, new incarnation) is a joiner: its old
    /// process's stream is cut like a crashed member's, from what the
    /// survivors hold — not from the new process's report, which holds
    /// nothing of it (seen failing: the cut was empty although survivors
    /// had delivered part of the old stream).
    #[test]
    fn a_restarted_members_old_stream_is_cut_like_a_crashed_one() {
        let v = view(&[0, 1, 2]);
        let reborn = MemberRef {
            id: 2,
            incarnation: 7,
        };
        let mut reports = BTreeMap::new();
        reports.insert(0, report(&[(0, &[(0, 4)]), (2, &[(0, 3)])]));
        reports.insert(1, report(&[(1, &[(0, 2)]), (2, &[(0, 2)])]));
        reports.insert(2, report(&[]));
        let d = Decision::decide(&v, vec![m(0), m(1), reborn], &reports, false);
        assert_eq!(d.cut[&2], vec![Span { from: 0, count: 3 }]);
        assert_eq!(d.donors[&2], vec![0]);
    }

    #[test]
    fn decisions_survive_the_wire() {
        let v = view(&[0, 1, 2]);
        let mut reports = BTreeMap::new();
        reports.insert(0, report(&[(0, &[(0, 4)]), (2, &[(0, 3)])]));
        reports.insert(1, report(&[(1, &[(0, 2)])]));
        let d = Decision::decide(&v, vec![m(0), m(1)], &reports, false);
        let mut back = Decision::default();
        for item in d.to_items() {
            back.absorb(item);
        }
        assert_eq!(back, d);
    }

    #[test]
    fn spans_merge() {
        let s = |from, count| Span { from, count };
        assert_eq!(merge(vec![s(5, 2), s(0, 3), s(3, 2)]), vec![s(0, 7)]);
        assert_eq!(prefix_of(&[s(1, 4)]), 0);
        assert_eq!(prefix_of(&[s(0, 2), s(2, 3), s(9, 1)]), 5);
    }
}
