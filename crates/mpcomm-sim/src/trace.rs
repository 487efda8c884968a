//! `trace.jsonl`: every peer's trace of a run, merged into one file.
//!
//! Each peer records its own events (see [`mpcomm_core::trace`]): its
//! sends, the first arrival of every record, each change of what the head of
//! its hold-back queue waits for, and its deliveries. A run's directory holds
//! them merged into one file, in time order, after a first line that says
//! what part of the run the file covers:
//!
//! ```text
//! {"event":"meta","format":1,"peers":3,"order":"total","events":1234,"complete_until_us":null,"stamps_up_to":null,"left_out":0}
//! {"peer":0,"t_us":1200,"event":"send","sender":0,"seq":0,"stamp":1,"clock":1}
//! {"peer":2,"t_us":3400,"event":"arrive","sender":0,"seq":0,"stamp":1,"clock":4}
//! {"peer":2,"t_us":3400,"event":"wait","sender":0,"seq":0,"stamp":1,"clock":4,"waiting_for":[1],"cause":"acks","why":"0:0 (stamp 1) waits for 1: …"}
//! ```
//!
//! # The window of a long run
//!
//! Each peer records every event until its limit
//! ([`mpcomm_core::TraceLimits::full_events`]); from then on only events of
//! records stamped at or below the clock it had then. So every record
//! stamped at or below the *smallest* of those clocks (`stamps_up_to`) was
//! followed at every peer from its send to its last delivery. [`merge`]
//! keeps exactly those records' events (a record half-traced would show a
//! message that arrives at some peers and not at others), and says until
//! when the file holds *every* event of the run (`complete_until_us`): after
//! that moment, newer records are missing from the picture. A short run
//! (the demo's 6 × 100 makes about 2,000 events per peer) is traced whole,
//! and both fields are `null`.
//!
//! Reading is strict, like reading a delivery log: a line that is not an
//! event is an error naming the line.

use std::io::{self, BufRead, Read, Write};

use mpcomm_core::trace::{TraceCut, TraceLine};
use mpcomm_core::{MemberId, OrderKind, TraceEvent};
use serde::{Deserialize, Serialize};

/// The longest line a trace may have (a wait's sentence included).
pub const MAX_LINE: usize = 16 * 1024;

/// The file name of the merged trace in a run directory.
pub const TRACE_FILE: &str = "trace.jsonl";

/// One peer's recorded trace.
#[derive(Clone, Debug, Default)]
pub struct PeerTrace {
    /// The peer.
    pub peer: MemberId,
    /// Its events, in the order it recorded them.
    pub events: Vec<TraceEvent>,
    /// Where it stopped recording every event, if it did.
    pub cut: Option<TraceCut>,
    /// Events its limits left out.
    pub dropped: u64,
}

impl PeerTrace {
    /// The trace as lines, with times counted from `origin_us`.
    pub fn to_lines(&self, origin_us: u64) -> PeerLines {
        PeerLines {
            peer: self.peer,
            lines: self
                .events
                .iter()
                .map(|e| TraceLine::of(e, origin_us))
                .collect(),
            cut: self.cut.map(|c| Cut {
                t_us: c.at.as_micros().saturating_add(origin_us),
                stamps_up_to: c.stamps_up_to,
            }),
            dropped: self.dropped,
        }
    }
}

/// Where a peer's trace stopped recording every event (in `trace.jsonl`
/// terms).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cut {
    /// When, in µs.
    pub t_us: u64,
    /// From then on only records stamped at or below this were traced.
    pub stamps_up_to: u64,
}

/// One peer's trace as lines: what a peer process writes beside its log
/// (`member-K.trace.jsonl`, see [`write_peer`]) and [`merge`] takes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PeerLines {
    /// The peer.
    pub peer: MemberId,
    /// Its events.
    pub lines: Vec<TraceLine>,
    /// Where it stopped recording every event.
    pub cut: Option<Cut>,
    /// Events its limits left out.
    pub dropped: u64,
}

/// The first line of `trace.jsonl`: what the file covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceMeta {
    /// Always `"meta"`.
    pub event: String,
    /// The file format, 1.
    pub format: u32,
    /// Group size.
    pub peers: usize,
    /// The run's order, if known.
    #[serde(default)]
    pub order: Option<String>,
    /// Events in the file.
    pub events: usize,
    /// Every event of the run up to this time (µs) is in the file; `null`
    /// when the file holds the whole run.
    #[serde(default)]
    pub complete_until_us: Option<u64>,
    /// The file holds the whole story of every record stamped at or below
    /// this, and nothing of the others; `null` when it holds every record.
    #[serde(default)]
    pub stamps_up_to: Option<u64>,
    /// Events recorded by peers but left out of the file (or never
    /// recorded) because of the window.
    #[serde(default)]
    pub left_out: u64,
}

impl TraceMeta {
    /// Whether the trace covers only part of the run.
    pub fn windowed(&self) -> bool {
        self.complete_until_us.is_some()
    }

    /// One sentence on what the trace covers.
    pub fn describe(&self) -> String {
        match (self.complete_until_us, self.stamps_up_to) {
            (Some(t), Some(c)) => format!(
                "The trace is windowed: it holds every event up to {:.1} ms, and after that only the records stamped at or below {c} ({} events; {} left out).",
                t as f64 / 1e3,
                self.events,
                self.left_out
            ),
            _ => format!("The trace holds every event of the run ({}).", self.events),
        }
    }
}

/// A merged trace: what `trace.jsonl` holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    /// What it covers.
    pub meta: TraceMeta,
    /// The events, in time order (ties by peer, then in each peer's order).
    pub lines: Vec<TraceLine>,
}

/// Merges peers' traces into one, keeping only the records every peer
/// traced to the end (see the [module documentation](self)).
pub fn merge(peers: Vec<PeerLines>, order: Option<OrderKind>) -> Trace {
    let n = peers.len();
    let limit = peers
        .iter()
        .filter_map(|p| p.cut.map(|c| c.stamps_up_to))
        .min();
    let mut complete_until = peers.iter().filter_map(|p| p.cut.map(|c| c.t_us)).min();
    let mut left_out: u64 = peers.iter().map(|p| p.dropped).sum();
    let mut tagged: Vec<(u64, MemberId, usize, TraceLine)> = Vec::new();
    for p in peers {
        for (i, line) in p.lines.into_iter().enumerate() {
            if limit.is_some_and(|c| line.stamp > c) {
                left_out += 1;
                complete_until = complete_until.map(|t| t.min(line.t_us));
                continue;
            }
            tagged.push((line.t_us, p.peer, i, line));
        }
    }
    tagged.sort_by_key(|(t, peer, i, _)| (*t, *peer, *i));
    let lines: Vec<TraceLine> = tagged.into_iter().map(|(.., l)| l).collect();
    Trace {
        meta: TraceMeta {
            event: "meta".into(),
            format: 1,
            peers: n,
            order: order.map(|o| o.to_string()),
            events: lines.len(),
            complete_until_us: complete_until.filter(|_| limit.is_some()),
            stamps_up_to: limit,
            left_out,
        },
        lines,
    }
}

/// Writes a merged trace as `trace.jsonl`.
pub fn write(w: &mut impl Write, trace: &Trace) -> io::Result<()> {
    serde_json::to_writer(&mut *w, &trace.meta)?;
    w.write_all(b"\n")?;
    for line in &trace.lines {
        serde_json::to_writer(&mut *w, line)?;
        w.write_all(b"\n")?;
    }
    Ok(())
}

/// The last line of a peer's own trace file: where it stopped recording
/// everything.
#[derive(Serialize, Deserialize)]
struct PeerEnd {
    event: String,
    peer: MemberId,
    #[serde(default)]
    cut: Option<Cut>,
    #[serde(default)]
    dropped: u64,
}

/// Writes one peer's trace (`member-K.trace.jsonl`): its events, then an
/// `end` line with where it stopped recording everything.
pub fn write_peer(w: &mut impl Write, p: &PeerLines) -> io::Result<()> {
    for line in &p.lines {
        serde_json::to_writer(&mut *w, line)?;
        w.write_all(b"\n")?;
    }
    let end = PeerEnd {
        event: "end".into(),
        peer: p.peer,
        cut: p.cut,
        dropped: p.dropped,
    };
    serde_json::to_writer(&mut *w, &end)?;
    w.write_all(b"\n")
}

/// A trace file that cannot be read: which line, and why.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[error("{source_name}, line {line}: {reason}")]
pub struct TraceError {
    /// The file.
    pub source_name: String,
    /// The 1-based line.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// Reads lines of at most [`MAX_LINE`] bytes, calling `each` with the line
/// number and the line.
fn read_lines(
    mut r: impl BufRead,
    source: &str,
    mut each: impl FnMut(usize, &[u8]) -> Result<(), String>,
) -> Result<(), TraceError> {
    let mut buf = Vec::with_capacity(256);
    let mut number = 0;
    loop {
        buf.clear();
        number += 1;
        let err = |reason: String| TraceError {
            source_name: source.to_string(),
            line: number,
            reason,
        };
        let n = (&mut r)
            .take(MAX_LINE as u64 + 2)
            .read_until(b'\n', &mut buf)
            .map_err(|e| err(format!("cannot read: {e}")))?;
        if n == 0 {
            return Ok(());
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
        } else if n > MAX_LINE {
            return Err(err(format!("line longer than {MAX_LINE} bytes")));
        }
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        each(number, &buf).map_err(err)?;
    }
}

fn event_of(line: &[u8]) -> Result<String, String> {
    #[derive(Deserialize)]
    struct Tag {
        event: String,
    }
    serde_json::from_slice::<Tag>(line)
        .map(|t| t.event)
        .map_err(|e| format!("not a trace event: {e}"))
}

/// Reads a merged `trace.jsonl`. A file without its `meta` line reads as a
/// whole trace of as many peers as it names.
pub fn read(r: impl BufRead, source: &str) -> Result<Trace, TraceError> {
    let mut meta: Option<TraceMeta> = None;
    let mut lines = Vec::new();
    read_lines(r, source, |number, line| {
        match event_of(line)?.as_str() {
            "meta" if number == 1 => {
                meta = Some(serde_json::from_slice(line).map_err(|e| e.to_string())?)
            }
            "send" | "arrive" | "wait" | "deliver" => lines.push(
                serde_json::from_slice::<TraceLine>(line)
                    .map_err(|e| format!("not a trace event: {e}"))?,
            ),
            "view" => {} // reserved for views; not drawn yet
            other => return Err(format!("unknown event {other:?}")),
        }
        Ok(())
    })?;
    let meta = meta.unwrap_or_else(|| TraceMeta {
        event: "meta".into(),
        format: 1,
        peers: lines
            .iter()
            .map(|l: &TraceLine| usize::from(l.peer) + 1)
            .max()
            .unwrap_or(0),
        order: None,
        events: lines.len(),
        complete_until_us: None,
        stamps_up_to: None,
        left_out: 0,
    });
    Ok(Trace { meta, lines })
}

/// Reads one peer's trace file (see [`write_peer`]). A file cut short (no
/// `end` line: the peer was interrupted) reads as far as it goes, as if the
/// peer had stopped recording everything at its last event.
pub fn read_peer(r: impl BufRead, source: &str, peer: MemberId) -> Result<PeerLines, TraceError> {
    let mut out = PeerLines {
        peer,
        ..PeerLines::default()
    };
    let mut ended = false;
    read_lines(r, source, |_, line| {
        match event_of(line)?.as_str() {
            "end" => {
                let end: PeerEnd = serde_json::from_slice(line).map_err(|e| e.to_string())?;
                out.cut = end.cut;
                out.dropped = end.dropped;
                ended = true;
            }
            "send" | "arrive" | "wait" | "deliver" => {
                let l: TraceLine =
                    serde_json::from_slice(line).map_err(|e| format!("not a trace event: {e}"))?;
                if l.peer != peer {
                    return Err(format!(
                        "an event of peer {} in the trace of {peer}",
                        l.peer
                    ));
                }
                out.lines.push(l);
            }
            other => return Err(format!("unknown event {other:?}")),
        }
        Ok(())
    })?;
    if !ended && let Some(last) = out.lines.last() {
        out.cut = Some(Cut {
            t_us: last.t_us,
            stamps_up_to: 0,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(peer: MemberId, t_us: u64, event: &str, sender: MemberId, stamp: u64) -> TraceLine {
        TraceLine {
            peer,
            t_us,
            event: event.into(),
            sender,
            seq: stamp,
            kind: None,
            stamp,
            clock: stamp,
            vc: None,
            waiting_for: None,
            cause: None,
            why: None,
        }
    }

    #[test]
    fn a_whole_trace_is_merged_in_time_order() {
        let a = PeerLines {
            peer: 0,
            lines: vec![line(0, 10, "send", 0, 1), line(0, 30, "deliver", 0, 1)],
            ..PeerLines::default()
        };
        let b = PeerLines {
            peer: 1,
            lines: vec![line(1, 20, "arrive", 0, 1), line(1, 30, "deliver", 0, 1)],
            ..PeerLines::default()
        };
        let t = merge(vec![b, a], Some(OrderKind::Total));
        let order: Vec<_> = t.lines.iter().map(|l| (l.t_us, l.peer)).collect();
        assert_eq!(order, vec![(10, 0), (20, 1), (30, 0), (30, 1)]);
        assert!(!t.meta.windowed());
        let mut out = Vec::new();
        write(&mut out, &t).unwrap();
        assert_eq!(read(&out[..], "t").unwrap(), t);
    }

    #[test]
    fn a_windowed_trace_keeps_the_records_every_peer_followed() {
        let a = PeerLines {
            peer: 0,
            lines: vec![
                line(0, 10, "send", 0, 1),
                line(0, 50, "send", 0, 9),
                line(0, 60, "deliver", 0, 1),
            ],
            cut: Some(Cut {
                t_us: 40,
                stamps_up_to: 5,
            }),
            dropped: 3,
        };
        let b = PeerLines {
            peer: 1,
            lines: vec![line(1, 20, "arrive", 0, 1), line(1, 70, "deliver", 0, 1)],
            cut: Some(Cut {
                t_us: 45,
                stamps_up_to: 7,
            }),
            dropped: 1,
        };
        let t = merge(vec![a, b], None);
        assert_eq!(t.lines.len(), 4, "the record stamped 9 is left out");
        assert_eq!(t.meta.stamps_up_to, Some(5));
        assert_eq!(t.meta.complete_until_us, Some(40));
        assert_eq!(t.meta.left_out, 5);
        assert!(t.meta.describe().contains("windowed"));
    }

    #[test]
    fn peer_files_round_trip_and_bad_lines_are_named() {
        let p = PeerLines {
            peer: 2,
            lines: vec![line(2, 10, "send", 2, 1)],
            cut: None,
            dropped: 0,
        };
        let mut out = Vec::new();
        write_peer(&mut out, &p).unwrap();
        assert_eq!(read_peer(&out[..], "p", 2).unwrap(), p);
        let e = read_peer(&out[..], "p", 3).unwrap_err();
        assert_eq!(e.line, 1);
        let e = read(&b"{\"event\":\"send\"}\n"[..], "t").unwrap_err();
        assert!(e.reason.contains("not a trace event"), "{e}");
        let e = read(&b"{\"event\":\"teleport\"}\n"[..], "t").unwrap_err();
        assert!(e.to_string().contains("t, line 1: unknown event"), "{e}");
    }
}
