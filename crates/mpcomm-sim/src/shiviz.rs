//! `shiviz.log`: a run's trace in the input format of ShiViz, the
//! space-time diagram viewer many distributed-systems courses use.
//!
//! ShiViz reads a text log in which every event names its *host* and carries
//! a *vector clock* — a JSON object `{"host": count, …}` — and is parsed by a
//! regular expression with the named groups `host`, `clock` and `event`. A
//! file for its upload box starts with that expression on the first line
//! and the delimiter between executions on the second (empty: one
//! execution). Then the events, one a line here:
//!
//! ```text
//! (?<host>\S+) (?<clock>\{[^}]*\}) (?<event>.*)
//!
//! peer-0 {"peer-0":1} send 0:0 stamp 1
//! peer-1 {"peer-0":1,"peer-1":1} arrive 0:0 stamp 1
//! peer-1 {"peer-0":1,"peer-1":2} deliver 0:0
//! ```
//!
//! # The vector clocks
//!
//! mpcomm's peers keep Lamport clocks, not vector clocks, so the clocks are
//! computed here from the trace, by the textbook rules: every event of a
//! host adds one to its own entry (ShiViz insists that a host's own entry
//! counts its events 1, 2, 3, …), and the arrival of a record takes, entry
//! by entry, the maximum of the arriving host's clock and the clock of the
//! record's send. Happens-before between the events is then exactly what
//! ShiViz draws: an edge from each send to each of its arrivals. An
//! arrival whose send is not in the (windowed) trace is an event of its
//! host alone.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;

use mpcomm_core::trace::TraceLine;

/// The parsing expression, the first line of `shiviz.log`.
pub const REGEX: &str = r"(?<host>\S+) (?<clock>\{[^}]*\}) (?<event>.*)";

/// The file name in a run directory.
pub const SHIVIZ_FILE: &str = "shiviz.log";

/// A record's identity in a trace: sender, kind, sequence number.
type MsgKey = (u16, Option<String>, u64);

fn key(l: &TraceLine) -> MsgKey {
    (l.sender, l.kind.clone(), l.seq)
}

/// Host names for ShiViz: `names[k]` if given (blanks become `_`), else
/// `peer-K`; made unique.
fn hosts(n: usize, names: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(n);
    for k in 0..n {
        let mut h: String = names
            .get(k)
            .map(|s| {
                s.chars()
                    .map(|c| {
                        if c.is_whitespace() || c.is_control() || c == '"' || c == '{' || c == '}' {
                            '_'
                        } else {
                            c
                        }
                    })
                    .collect()
            })
            .filter(|s: &String| !s.is_empty())
            .unwrap_or_else(|| format!("peer-{k}"));
        if out.contains(&h) {
            h = format!("{h}-{k}");
        }
        out.push(h);
    }
    out
}

/// The vector clock of every line of `lines` (indexed like `lines`, each
/// clock indexed by member id), for `n` members. Lines are taken in a
/// causal order: an arrival waits for its send even if a peer's clock put
/// it earlier.
pub fn vector_clocks(lines: &[TraceLine], n: usize) -> Vec<Vec<u64>> {
    let n = n.max(
        lines
            .iter()
            .map(|l| usize::from(l.peer) + 1)
            .max()
            .unwrap_or(0),
    );
    let mut per_peer: Vec<VecDeque<usize>> = vec![VecDeque::new(); n];
    for (i, l) in lines.iter().enumerate() {
        per_peer[usize::from(l.peer)].push_back(i);
    }
    let sends: HashMap<MsgKey, usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.event == "send")
        .map(|(i, l)| (key(l), i))
        .collect();
    let mut clock = vec![vec![0u64; n]; n];
    let mut out: Vec<Option<Vec<u64>>> = vec![None; lines.len()];
    let mut left = lines.len();
    while left > 0 {
        // The earliest line at the head of a peer's queue that can go.
        let next = per_peer
            .iter()
            .filter_map(|q| q.front().copied())
            .filter(|&i| {
                let l = &lines[i];
                l.event != "arrive" || sends.get(&key(l)).is_none_or(|&s| out[s].is_some())
            })
            .min_by_key(|&i| (lines[i].t_us, i));
        // A send that can never come first (a malformed trace): take the
        // earliest head as it is.
        let i = match next {
            Some(i) => i,
            None => match per_peer
                .iter()
                .filter_map(|q| q.front().copied())
                .min_by_key(|&i| (lines[i].t_us, i))
            {
                Some(i) => i,
                None => break,
            },
        };
        let l = &lines[i];
        let p = usize::from(l.peer);
        per_peer[p].pop_front();
        let c = &mut clock[p];
        c[p] += 1;
        if l.event == "arrive"
            && let Some(from) = sends.get(&key(l)).and_then(|&s| out[s].as_ref())
        {
            for (mine, theirs) in c.iter_mut().zip(from) {
                *mine = (*mine).max(*theirs);
            }
        }
        out[i] = Some(c.clone());
        left -= 1;
    }
    out.into_iter().map(Option::unwrap_or_default).collect()
}

/// `shiviz.log` for a merged trace of `n` members named `names`.
pub fn render(lines: &[TraceLine], n: usize, names: &[String]) -> String {
    let clocks = vector_clocks(lines, n);
    let n = clocks.first().map_or(n, Vec::len);
    let hosts = hosts(n, names);
    let mut s = String::with_capacity(lines.len() * 80 + 128);
    s.push_str(REGEX);
    s.push_str("\n\n");
    for (l, vc) in lines.iter().zip(&clocks) {
        let host = &hosts[usize::from(l.peer)];
        let _ = write!(s, "{host} {{");
        let mut first = true;
        for (k, v) in vc.iter().enumerate() {
            if *v == 0 {
                continue;
            }
            if !first {
                s.push(',');
            }
            first = false;
            let _ = write!(s, "\"{}\":{v}", hosts[k]);
        }
        let what = match l.kind.as_deref() {
            Some("eos") => format!("end-of-stream of {}", l.sender),
            Some(k) => format!("{k} {}:{}", l.sender, l.seq),
            None => format!("{}:{}", l.sender, l.seq),
        };
        let _ = write!(
            s,
            "}} {} {what} stamp {} clock {}",
            l.event, l.stamp, l.clock
        );
        if let Some(w) = &l.waiting_for {
            let who: Vec<String> = w.iter().map(u16::to_string).collect();
            let _ = write!(s, " for {}", who.join(","));
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(peer: u16, t_us: u64, event: &str, sender: u16, seq: u64) -> TraceLine {
        TraceLine {
            peer,
            t_us,
            event: event.into(),
            sender,
            seq,
            kind: None,
            stamp: 1,
            clock: 1,
            vc: None,
            waiting_for: None,
            cause: None,
            why: None,
        }
    }

    #[test]
    fn clocks_follow_sends_to_arrivals() {
        let lines = vec![
            line(0, 10, "send", 0, 0),
            line(1, 12, "send", 1, 0),
            // Peer 2's clock runs early: the arrival is stamped before the send.
            line(2, 5, "arrive", 0, 0),
            line(2, 20, "arrive", 1, 0),
            line(2, 21, "deliver", 0, 0),
        ];
        let vc = vector_clocks(&lines, 3);
        assert_eq!(vc[0], vec![1, 0, 0]);
        assert_eq!(vc[2], vec![1, 0, 1]);
        assert_eq!(vc[3], vec![1, 1, 2]);
        assert_eq!(vc[4], vec![1, 1, 3]);
        let log = render(&lines, 3, &["a b".into()]);
        let mut l = log.lines();
        assert_eq!(l.next(), Some(REGEX));
        assert_eq!(l.next(), Some(""));
        assert_eq!(l.next(), Some("a_b {\"a_b\":1} send 0:0 stamp 1 clock 1"));
        assert!(log.contains("peer-2 {\"a_b\":1,\"peer-1\":1,\"peer-2\":2} arrive 1:0"));
    }
}
