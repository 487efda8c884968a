//! Deciding total order without comparing every pair of peers on every
//! message.
//!
//! The property: whenever two peers both delivered messages `x` and `y`,
//! they delivered them in the same relative order. Comparing each pair of
//! peers directly costs peers² × log length, far too much for a large group.
//!
//! The trick is a graph. Its nodes are the messages; every log adds an
//! arrow from each message it delivered to the next one it delivered. If
//! peer `p` delivered `x` before `y`, following `p`'s arrows leads from `x`
//! to `y`. If peer `q` delivered `y` before `x`, `q`'s arrows lead back. So
//! two messages delivered in opposite orders always lie on a common cycle:
//! they are in the same *strongly connected component* (a set of nodes each
//! reachable from every other). When every component is a single message —
//! the graph is acyclic, the usual case of a correct run — no two peers
//! disagree, and we are done in time linear in the logs (Tarjan's
//! algorithm).
//!
//! Otherwise only messages in a component of two or more ("tangled"
//! messages) can be part of a disagreement, so each pair of peers is
//! compared on those alone. That costs peers × tangled deliveries: small
//! when a few messages were swapped, and never worse than the direct
//! comparison. A cycle does not prove a disagreement: three peers that
//! delivered `a b`, `b c` and `c a` form one, but no two of them share two
//! messages, and the pairwise comparison correctly finds nothing.
//!
//! Restricting both logs of a pair to the tangled messages keeps their
//! relative order, and every disagreement is between two tangled messages,
//! so the comparison finds exactly what it would find on whole logs,
//! including the same first counter-example.

use crate::index::Index;
use crate::violation::TotalOrderViolation;

/// The first pair of peers, in peer order, that disagree; see
/// [`first_inversion`] for which pair of messages is reported.
pub(crate) fn first_violation(ix: &Index) -> Option<TotalOrderViolation> {
    // Identical logs (the normal case) add the same arrows: one is enough.
    let mut distinct: Vec<&[usize]> = Vec::new();
    for &li in &ix.order {
        let s = ix.firsts[li].as_slice();
        if distinct.last() != Some(&s) {
            distinct.push(s);
        }
    }
    let tangled = tangled(&distinct, ix.msgs.len());
    if !tangled.iter().any(|&t| t) {
        return None;
    }
    let restricted: Vec<Vec<usize>> = ix
        .firsts
        .iter()
        .map(|f| f.iter().copied().filter(|&id| tangled[id]).collect())
        .collect();
    // Position of each message in log `b`'s restricted sequence.
    let mut pos_in_b = vec![ABSENT; ix.msgs.len()];
    for (i, &a) in ix.order.iter().enumerate() {
        if restricted[a].len() < 2 {
            continue;
        }
        for &b in &ix.order[i + 1..] {
            if restricted[b].len() < 2 {
                continue;
            }
            for (p, &id) in restricted[b].iter().enumerate() {
                pos_in_b[id] = p;
            }
            let found = first_inversion(&restricted[a], &pos_in_b);
            for &id in &restricted[b] {
                pos_in_b[id] = ABSENT;
            }
            if let Some((first, second)) = found {
                return Some(TotalOrderViolation {
                    peer: ix.peer(b),
                    first: ix.msgs[first],
                    second: ix.msgs[second],
                    other: ix.peer(a),
                });
            }
        }
    }
    None
}

const ABSENT: usize = usize::MAX;

/// Walks `a` and returns the first message `m` that `b` delivered before
/// some message `a` had delivered earlier, together with that earlier
/// message (of several, the one `b` delivered last): `b` delivered `m`
/// before it, `a` the other way round.
///
/// The positions in `b` of the messages both delivered must only grow
/// along `a`; the first one that drops gives the counter-example.
fn first_inversion(a: &[usize], pos_in_b: &[usize]) -> Option<(usize, usize)> {
    // (position in b, message) of the message of `a` so far that `b`
    // delivered last.
    let mut furthest: Option<(usize, usize)> = None;
    for &id in a {
        let pb = pos_in_b[id];
        if pb == ABSENT {
            continue;
        }
        match furthest {
            Some((fb, fid)) if pb < fb => return Some((id, fid)),
            _ => furthest = Some((pb, id)),
        }
    }
    None
}

/// Marks the messages that lie in a strongly connected component of two or
/// more messages of the graph whose arrows join consecutive entries of each
/// sequence (ids `0..nodes`, no repeats within a sequence).
fn tangled(sequences: &[&[usize]], nodes: usize) -> Vec<bool> {
    // The graph in compressed form: the arrows out of node v are
    // adj[start[v]..start[v + 1]].
    let mut start = vec![0usize; nodes + 1];
    for s in sequences {
        for w in s.windows(2) {
            start[w[0] + 1] += 1;
        }
    }
    for v in 0..nodes {
        start[v + 1] += start[v];
    }
    let mut next = start.clone();
    let mut adj = vec![0usize; start[nodes]];
    for s in sequences {
        for w in s.windows(2) {
            adj[next[w[0]]] = w[1];
            next[w[0]] += 1;
        }
    }
    drop(next);

    // Tarjan's algorithm, with an explicit call stack: a recursive one
    // would overflow on a log of a million messages.
    const UNSEEN: usize = usize::MAX;
    let mut index = vec![UNSEEN; nodes];
    let mut low = vec![0usize; nodes];
    let mut on_stack = vec![false; nodes];
    let mut stack: Vec<usize> = Vec::new();
    let mut calls: Vec<(usize, usize)> = Vec::new(); // (node, next arrow)
    let mut component: Vec<usize> = Vec::new();
    let mut tangled = vec![false; nodes];
    let mut counter = 0;
    for root in 0..nodes {
        if index[root] != UNSEEN {
            continue;
        }
        index[root] = counter;
        low[root] = counter;
        counter += 1;
        stack.push(root);
        on_stack[root] = true;
        calls.push((root, start[root]));
        while let Some(&mut (v, ref mut arrow)) = calls.last_mut() {
            if *arrow < start[v + 1] {
                let w = adj[*arrow];
                *arrow += 1;
                if index[w] == UNSEEN {
                    index[w] = counter;
                    low[w] = counter;
                    counter += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    calls.push((w, start[w]));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            calls.pop();
            if let Some(&(parent, _)) = calls.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                // v is the root of a component: everything above it on the
                // stack.
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    for &w in &component {
                        tangled[w] = true;
                    }
                }
                component.clear();
            }
        }
    }
    tangled
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marked(sequences: &[&[usize]], nodes: usize) -> Vec<usize> {
        tangled(sequences, nodes)
            .iter()
            .enumerate()
            .filter(|(_, t)| **t)
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn agreeing_sequences_tangle_nothing() {
        assert!(marked(&[&[0, 1, 2, 3], &[0, 1, 2, 3], &[0, 2, 3]], 4).is_empty());
        assert!(marked(&[], 0).is_empty());
        // Different subsets of one order: still acyclic.
        assert!(marked(&[&[0, 2], &[1, 3], &[0, 1, 2, 3]], 4).is_empty());
    }

    #[test]
    fn a_swap_tangles_the_messages_between() {
        // 1 and 3 swapped: 1, 2 and 3 are on a cycle; 0 and 4 are not.
        assert_eq!(marked(&[&[0, 1, 2, 3, 4], &[0, 3, 2, 1, 4]], 5), [1, 2, 3]);
        // Two separate swaps: two components.
        assert_eq!(marked(&[&[0, 1, 2, 3], &[1, 0, 3, 2]], 4), [0, 1, 2, 3]);
    }

    #[test]
    fn a_cycle_through_three_peers_without_a_pairwise_disagreement() {
        assert_eq!(marked(&[&[0, 1], &[1, 2], &[2, 0]], 3), [0, 1, 2]);
    }

    #[test]
    fn a_long_chain_does_not_overflow_the_stack() {
        let n = 200_000;
        let forward: Vec<usize> = (0..n).collect();
        let mut back = forward.clone();
        back.swap(0, n - 1);
        assert_eq!(marked(&[&forward], n).len(), 0);
        assert_eq!(marked(&[&forward, &back], n).len(), n);
    }

    #[test]
    fn the_first_inversion_names_the_latest_earlier_message() {
        let mut pos = vec![ABSENT; 5];
        // b delivered 3, 4, 0, 1, 2 (2 is absent from a).
        for (p, id) in [3usize, 4, 0, 1, 2].into_iter().enumerate() {
            pos[id] = p;
        }
        // a delivered 0, 1, 3: 3 drops below 1 (b: pos 3) and 0 (b: pos 2);
        // the message b delivered last among those is 1.
        assert_eq!(first_inversion(&[0, 1, 3], &pos), Some((3, 1)));
        assert_eq!(first_inversion(&[3, 4, 0], &pos), None);
        assert_eq!(first_inversion(&[], &pos), None);
    }
}
