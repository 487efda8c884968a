//! The space-time diagram: one lane per peer, time running left to right.
//!
//! Every delivery is a mark on its peer's lane, at the moment the peer
//! delivered the message, coloured by the message's sender. The marks of
//! one message are joined from lane to lane by a thin line of the sender's
//! colour. If every peer delivers the messages in the same order, those
//! lines never cross (they may lean, because peers deliver at different
//! times, but they stay side by side). Where two lines cross, two peers
//! delivered two messages in opposite orders: that is the disorder the
//! `none` order shows and the `total` order removes, visible at a glance.
//!
//! # Why a window for long runs
//!
//! A mark needs a few pixels to be seen, so a diagram of 8 peers × 10,000
//! messages (80,000 deliveries per lane) would be hundreds of thousands of
//! pixels wide and tens of megabytes of SVG. Long runs are therefore drawn
//! in a *window*: the first [`HEAD`] delivery positions, and, if the
//! disorder starts later, [`AROUND`] positions around the first unordered
//! round. The page says which positions it shows. Each window has its own
//! time axis; a grey band between them marks the cut.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::Range;

use mpcomm_check::{LogEntry, Msg, PeerLog};
use mpcomm_core::MemberId;

use super::svg::{self, esc, num, thousands};

/// Runs with at most this many delivery positions per peer are drawn
/// whole (the demo's default, 6 peers × 100 messages, has 600).
pub const FULL_LIMIT: usize = 1000;
/// Longer runs show their first `HEAD` positions …
pub const HEAD: usize = 150;
/// … and `AROUND` positions around the first unordered round.
pub const AROUND: usize = 150;

/// Horizontal room per delivery position: enough that neighbouring marks
/// and the lines between them stay apart.
const PX_PER_POS: f64 = 8.0;
/// Narrowest window, so that a short run still has a readable axis.
const MIN_SEGMENT: f64 = 900.0;
/// Room for the lane labels.
const LEFT: f64 = 190.0;
const RIGHT: f64 = 30.0;
/// Blank space inside a window's ends, so edge marks are not cut.
const PAD: f64 = 10.0;
/// The grey band between two windows.
const GAP: f64 = 56.0;
/// Vertical distance between lanes: room for the lines between them to
/// show their slant.
const LANE_H: f64 = 62.0;
const AXIS_Y: f64 = 30.0;
const FIRST_LANE_Y: f64 = 78.0;
const MARK_R: f64 = 3.8;
/// Least distance between two marks of a lane. Peers often deliver several
/// messages in the same millisecond (a message that was held back releases
/// the ones behind it); drawn at the same spot, their lines would meet in a
/// point and look like a crossing. So such marks are drawn side by side, in
/// delivery order: lines then cross only where two peers really delivered
/// two messages in opposite orders.
const MIN_GAP: f64 = 4.0;
/// A lane label is cut after this many characters (the full name is in
/// its tooltip).
const LABEL_CHARS: usize = 22;

/// One peer's lane.
#[derive(Clone, Debug)]
pub struct Lane<'a> {
    /// The peer's member id.
    pub peer: MemberId,
    /// Its name.
    pub name: String,
    /// Its region.
    pub region: String,
    /// Its log, if there is one.
    pub log: Option<&'a PeerLog>,
    /// Why there is no log, or what is wrong with it.
    pub note: Option<String>,
}

/// A rendered diagram.
#[derive(Clone, Debug)]
pub struct Diagram {
    /// The `<svg>` element.
    pub svg: String,
    /// One sentence on what is shown (all of it, or which window).
    pub caption: String,
}

/// The delivery positions to draw for logs of up to `rounds` positions,
/// with the first unordered round at `first` (if any). Sorted, disjoint.
// One window is the common case: a vector of one range is what is meant.
#[allow(clippy::single_range_in_vec_init)]
pub fn windows(rounds: usize, first: Option<usize>) -> Vec<Range<usize>> {
    if rounds <= FULL_LIMIT {
        return vec![0..rounds];
    }
    let head = 0..HEAD;
    let Some(first) = first.filter(|&f| f < rounds) else {
        return vec![head];
    };
    // A third of the window before the disorder, to show how it starts.
    let start = first.saturating_sub(AROUND / 3);
    let end = (start + AROUND).min(rounds);
    if start <= HEAD {
        vec![0..end.max(HEAD)]
    } else {
        vec![head, start..end]
    }
}

/// How the x axis is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Axis {
    /// Delivery time, in ms since `origin_us`.
    Time,
    /// Delivery position (when the logs carry no times).
    Position,
}

/// One window of positions, laid out on the x axis.
struct Segment {
    positions: Range<usize>,
    x0: f64,
    /// Drawn width.
    width: f64,
    /// Width of the axis from `t0` to `t1` (the drawn width may be a little
    /// more, see [`MIN_GAP`]).
    inner: f64,
    /// Delivery times of the first and last marks in it.
    t0: u64,
    t1: u64,
    /// Each lane's mark positions, from `positions.start` on.
    xs: Vec<Vec<f64>>,
}

impl Segment {
    /// Where the axis puts a delivery.
    fn axis_x(&self, axis: Axis, pos: usize, e: &LogEntry) -> f64 {
        let frac = match (axis, e.delivered_us) {
            (Axis::Time, Some(t)) if self.t1 > self.t0 => {
                (t.saturating_sub(self.t0)) as f64 / (self.t1 - self.t0) as f64
            }
            (Axis::Time, _) => 0.5,
            (Axis::Position, _) => {
                let n = self.positions.len().max(1) as f64;
                (pos.saturating_sub(self.positions.start) as f64 + 0.5) / n
            }
        };
        self.x0 + PAD + frac * self.inner
    }
}

/// Where a lane sits.
fn lane_y(i: usize) -> f64 {
    FIRST_LANE_Y + i as f64 * LANE_H
}

/// Renders the diagram of `lanes` (in the order given, normally by peer
/// id). `first_unordered` is ringed; times are shown in ms since
/// `origin_us`.
pub fn render(lanes: &[Lane], first_unordered: Option<u64>, origin_us: Option<u64>) -> Diagram {
    let rounds = lanes
        .iter()
        .filter_map(|l| l.log.map(|g| g.entries.len()))
        .max()
        .unwrap_or(0);
    let first = first_unordered.and_then(|f| usize::try_from(f).ok());
    let wins = windows(rounds, first);
    let windowed = wins.iter().map(|w| w.len()).sum::<usize>() < rounds;

    let entries_in = |w: &Range<usize>| {
        let w = w.clone();
        lanes.iter().filter_map(|l| l.log).flat_map(move |g| {
            let n = g.entries.len();
            g.entries[w.start.min(n)..w.end.min(n)].iter()
        })
    };
    let shown = wins.iter().map(|w| entries_in(w).count()).sum::<usize>();
    let axis = if shown > 0
        && wins
            .iter()
            .all(|w| entries_in(w).all(|e| e.delivered_us.is_some()))
    {
        Axis::Time
    } else {
        Axis::Position
    };
    let origin = origin_us.unwrap_or_else(|| {
        wins.iter()
            .flat_map(|w| entries_in(w).filter_map(|e| e.delivered_us))
            .min()
            .unwrap_or(0)
    });

    // Lay out the windows side by side.
    let mut segments = Vec::with_capacity(wins.len());
    let mut x = LEFT;
    for (k, w) in wins.iter().enumerate() {
        if k > 0 {
            x += GAP;
        }
        let times = || entries_in(w).filter_map(|e| e.delivered_us);
        let width = (w.len() as f64 * PX_PER_POS).max(MIN_SEGMENT);
        let mut seg = Segment {
            positions: w.clone(),
            x0: x,
            width,
            inner: width - 2.0 * PAD,
            t0: times().min().unwrap_or(origin),
            t1: times().max().unwrap_or(origin),
            xs: Vec::with_capacity(lanes.len()),
        };
        let mut right = 0f64;
        for lane in lanes {
            let entries = lane.log.map(|g| g.entries.as_slice()).unwrap_or(&[]);
            let mut xs = Vec::with_capacity(w.len());
            let mut prev = f64::NEG_INFINITY;
            for pos in w.clone() {
                let Some(e) = entries.get(pos) else { break };
                let at = seg.axis_x(axis, pos, e).max(prev + MIN_GAP);
                xs.push(at);
                prev = at;
            }
            right = right.max(prev);
            seg.xs.push(xs);
        }
        // Marks pushed right by their neighbours may need a little more room.
        seg.width = seg.width.max(right + PAD - seg.x0);
        x += seg.width;
        segments.push(seg);
    }
    let width = x + RIGHT;
    let last_lane_y = lane_y(lanes.len().saturating_sub(1));
    let bottom_axis_y = last_lane_y + LANE_H * 0.6;
    let height = bottom_axis_y + 26.0;

    let mut s = String::with_capacity(256 * shown + 4096);
    let _ = write!(
        s,
        "<svg id=\"spacetime\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"space-time diagram: one lane per peer, \
         deliveries over time\">",
        w = num(width),
        h = num(height)
    );

    // Lane backgrounds, every other one shaded so the eye can follow them.
    for i in (1..lanes.len()).step_by(2) {
        let _ = write!(
            s,
            "<rect class=\"band\" x=\"0\" y=\"{}\" width=\"{}\" height=\"{}\"/>",
            num(lane_y(i) - LANE_H / 2.0),
            num(width),
            num(LANE_H)
        );
    }
    axes(&mut s, &segments, axis, origin, bottom_axis_y);

    // Where each message's marks are, lane by lane: the lines.
    let mut places: BTreeMap<Msg, Vec<(usize, usize, f64, f64)>> = BTreeMap::new();
    // The marks, drawn per lane after the lines so they sit on top.
    let mut lanes_svg = String::with_capacity(256 * shown);
    let mut rings: Vec<(f64, f64, String)> = Vec::new();
    for (i, lane) in lanes.iter().enumerate() {
        let y = lane_y(i);
        let _ = write!(lanes_svg, "<g class=\"lane\" data-peer=\"{}\">", lane.peer);
        lane_label(&mut lanes_svg, lane, y, &segments);
        let _ = write!(
            lanes_svg,
            "<line class=\"track\" x1=\"{}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\"/>",
            num(LEFT),
            num(width - RIGHT),
            y = num(y)
        );
        let entries = lane.log.map(|g| g.entries.as_slice()).unwrap_or(&[]);
        if entries.is_empty() {
            let why = lane.note.as_deref().unwrap_or("no deliveries");
            let _ = write!(
                lanes_svg,
                "<text class=\"empty\" x=\"{}\" y=\"{}\">({})</text>",
                num(LEFT + PAD),
                num(y - 6.0),
                esc(why)
            );
        }
        for (k, seg) in segments.iter().enumerate() {
            for (pos, &x) in seg.positions.clone().zip(&seg.xs[i]) {
                let Some(e) = entries.get(pos) else { break };
                mark(&mut lanes_svg, e, pos, x, y, origin);
                let at = places.entry(e.msg()).or_default();
                // A message delivered twice is joined at its first delivery.
                if at.last().is_none_or(|&(lane, ..)| lane != i) {
                    at.push((i, k, x, y));
                }
                if first == Some(pos) {
                    rings.push((
                        x,
                        y,
                        format!(
                            "first unordered round: as its delivery #{} peer {} delivered {}",
                            pos + 1,
                            lane.peer,
                            e.msg()
                        ),
                    ));
                }
            }
        }
        lanes_svg.push_str("</g>");
    }

    // Lines, grouped by sender so each group carries its colour once.
    let mut by_sender: BTreeMap<MemberId, String> = BTreeMap::new();
    for (msg, at) in &places {
        let group = by_sender.entry(msg.sender).or_default();
        for run in at.chunk_by(|a, b| a.1 == b.1) {
            if run.len() < 2 {
                continue;
            }
            group.push_str("<polyline points=\"");
            for (j, &(_, _, x, y)) in run.iter().enumerate() {
                if j > 0 {
                    group.push(' ');
                }
                let _ = write!(group, "{},{}", num(x), num(y));
            }
            group.push_str("\"/>");
        }
    }
    for (sender, lines) in &by_sender {
        if !lines.is_empty() {
            let _ = write!(
                s,
                "<g class=\"links\" data-sender=\"{sender}\" stroke=\"{}\">{lines}</g>",
                svg::colour(*sender)
            );
        }
    }
    s.push_str(&lanes_svg);

    // The first unordered round, ringed in every lane and joined.
    if let (Some(f), Some(&(x_first, _, _))) = (first, rings.first()) {
        s.push_str("<g class=\"first-unordered\">");
        if rings.len() > 1 {
            s.push_str("<polyline class=\"ring-link\" points=\"");
            for (j, (x, y, _)) in rings.iter().enumerate() {
                if j > 0 {
                    s.push(' ');
                }
                let _ = write!(s, "{},{}", num(*x), num(*y));
            }
            s.push_str("\"/>");
        }
        for (x, y, title) in &rings {
            let _ = write!(
                s,
                "<circle class=\"ring\" cx=\"{}\" cy=\"{}\" r=\"8\"><title>{}</title></circle>",
                num(*x),
                num(*y),
                esc(title)
            );
        }
        // About 7 px per character of the bold label; it goes to the left
        // of the ring when there is no room on the right.
        let label = format!("first unordered round (round {})", thousands(f as u64 + 1));
        let room = label.chars().count() as f64 * 7.0;
        let (lx, anchor) = if x_first + room > width - RIGHT / 2.0 {
            (x_first + 6.0, "end")
        } else {
            (x_first - 6.0, "start")
        };
        let _ = write!(
            s,
            "<text class=\"ring-label\" x=\"{}\" y=\"{}\" text-anchor=\"{anchor}\">{label}<title>the peers delivered different messages at this position: the first unordered round</title></text>",
            num(lx),
            num(FIRST_LANE_Y - 17.0)
        );
        s.push_str("</g>");
    }
    s.push_str("</svg>");

    let caption = caption(&wins, rounds, windowed, axis, first);
    Diagram { svg: s, caption }
}

/// A delivery mark with its tooltip.
fn mark(s: &mut String, e: &LogEntry, pos: usize, x: f64, y: f64, origin: u64) {
    let shape = svg::shape(e.sender);
    svg::open_shape(s, shape, x, y, MARK_R);
    let stamp = match e.stamp {
        Some(t) => format!("stamp {t}"),
        None => "no stamp".to_string(),
    };
    let when = match e.delivered_us {
        Some(t) => format!("at {} ms", ms_since(t, origin)),
        None => "at an unknown time".to_string(),
    };
    let _ = write!(
        s,
        " class=\"mark\" data-peer=\"{}\" data-sender=\"{}\" data-seq=\"{}\" fill=\"{}\"><title>peer {} delivered {}:{} ({stamp}) {when}, delivery #{}</title></{}>",
        e.peer,
        e.sender,
        e.seq,
        svg::colour(e.sender),
        e.peer,
        e.sender,
        e.seq,
        pos + 1,
        svg::shape_tag(shape)
    );
}

/// `t` in ms since `origin`, one decimal.
fn ms_since(t: u64, origin: u64) -> String {
    let d = t as f64 - origin as f64;
    format!("{:.1}", d / 1e3)
}

/// The lane's label at the left, and a faint repeat at each window and
/// every 1,500 px, so a reader scrolled far to the right still knows which
/// lane is which.
fn lane_label(s: &mut String, lane: &Lane, y: f64, segments: &[Segment]) {
    let short = |t: &str| {
        if t.chars().count() > LABEL_CHARS {
            let cut: String = t.chars().take(LABEL_CHARS - 1).collect();
            format!("{cut}…")
        } else {
            t.to_string()
        }
    };
    let name = short(&lane.name);
    let _ = write!(
        s,
        "<text class=\"lane-name\" x=\"10\" y=\"{}\"><title>{} (member {}, region {})</title>{}</text>\
         <text class=\"lane-sub\" x=\"10\" y=\"{}\">member {} · {}</text>",
        num(y - 2.0),
        esc(&lane.name),
        lane.peer,
        esc(&lane.region),
        esc(&name),
        num(y + 13.0),
        lane.peer,
        esc(&short(&lane.region))
    );
    for (k, seg) in segments.iter().enumerate() {
        let mut x = if k == 0 { seg.x0 + 1500.0 } else { seg.x0 };
        while x < seg.x0 + seg.width - 100.0 {
            let _ = write!(
                s,
                "<text class=\"lane-repeat\" x=\"{}\" y=\"{}\">{}</text>",
                num(x + 4.0),
                num(y - 8.0),
                esc(&name)
            );
            x += 1500.0;
        }
    }
}

/// Time (or position) axes above and below the lanes, with grid lines, and
/// the bands between windows.
fn axes(s: &mut String, segments: &[Segment], axis: Axis, origin: u64, bottom: f64) {
    let label = match axis {
        Axis::Time => "time (ms)",
        Axis::Position => "delivery position",
    };
    let _ = write!(
        s,
        "<text class=\"axis-title\" x=\"10\" y=\"{}\">{label}</text>\
         <text class=\"axis-title\" x=\"10\" y=\"{}\">{label}</text>",
        num(AXIS_Y - 8.0),
        num(bottom + 18.0)
    );
    for (k, seg) in segments.iter().enumerate() {
        let inner = seg.inner;
        let (lo, hi) = match axis {
            Axis::Time => (
                (seg.t0 as f64 - origin as f64) / 1e3,
                (seg.t1 as f64 - origin as f64) / 1e3,
            ),
            Axis::Position => (
                seg.positions.start as f64,
                seg.positions.end.saturating_sub(1) as f64,
            ),
        };
        let to_x = |v: f64| match axis {
            Axis::Time if hi > lo => seg.x0 + PAD + (v - lo) / (hi - lo) * inner,
            Axis::Time => seg.x0 + PAD + inner / 2.0,
            Axis::Position => {
                let n = seg.positions.len().max(1) as f64;
                seg.x0 + PAD + (v - seg.positions.start as f64 + 0.5) / n * inner
            }
        };
        let _ = write!(
            s,
            "<line class=\"axis\" x1=\"{a}\" y1=\"{y}\" x2=\"{b}\" y2=\"{y}\"/>\
             <line class=\"axis\" x1=\"{a}\" y1=\"{yb}\" x2=\"{b}\" y2=\"{yb}\"/>",
            a = num(seg.x0),
            b = num(seg.x0 + seg.width),
            y = num(AXIS_Y),
            yb = num(bottom)
        );
        let values = if hi > lo {
            svg::ticks(lo, hi, inner, 90.0)
        } else {
            vec![lo]
        };
        for v in values {
            let x = to_x(v);
            let _ = write!(
                s,
                "<line class=\"grid\" x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\"/>\
                 <text class=\"tick\" x=\"{x}\" y=\"{}\">{t}</text>\
                 <text class=\"tick\" x=\"{x}\" y=\"{}\">{t}</text>",
                num(AXIS_Y - 4.0),
                num(bottom + 4.0),
                num(AXIS_Y - 8.0),
                num(bottom + 18.0),
                x = num(x),
                t = svg::tick_label(v)
            );
        }
        if k > 0 {
            let prev = &segments[k - 1];
            let gx = prev.x0 + prev.width;
            let hidden = prev.positions.end..seg.positions.start;
            let _ = write!(
                s,
                "<g class=\"cut\"><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/>\
                 <text x=\"{}\" y=\"{}\">⋯</text><title>delivery positions {}–{} are not drawn</title></g>",
                num(gx + 6.0),
                num(AXIS_Y),
                num(GAP - 12.0),
                num(bottom - AXIS_Y),
                num(gx + GAP / 2.0),
                num((AXIS_Y + bottom) / 2.0),
                thousands(hidden.start as u64),
                thousands(hidden.end.saturating_sub(1) as u64)
            );
        }
    }
}

/// What the diagram shows, in one or two sentences.
fn caption(
    wins: &[Range<usize>],
    rounds: usize,
    windowed: bool,
    axis: Axis,
    first: Option<usize>,
) -> String {
    let range = |w: &Range<usize>| {
        format!(
            "{}–{}",
            thousands(w.start as u64 + 1),
            thousands(w.end as u64)
        )
    };
    let mut c = if rounds == 0 {
        "No peer delivered anything: there is nothing to draw.".to_string()
    } else if windowed {
        let parts: Vec<String> = wins.iter().map(range).collect();
        let why = if wins.len() > 1 {
            "the first positions, and the region around the first unordered round"
        } else if first.is_some() {
            "the first positions, which include the first unordered round"
        } else {
            "the first positions"
        };
        format!(
            "This run is too long to draw whole: showing deliveries {} of {} per peer ({why}; counted from 1).",
            parts.join(" and "),
            thousands(rounds as u64)
        )
    } else {
        format!(
            "All {} deliveries of every peer are drawn.",
            thousands(rounds as u64)
        )
    };
    if rounds > 0 && axis == Axis::Time {
        c.push_str(" Deliveries in the same millisecond are drawn side by side, in the order the peer delivered them.");
    }
    if rounds > 0 && axis == Axis::Position {
        c.push_str(" The logs do not carry delivery times for every message, so the marks are placed by delivery position instead of time.");
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_runs_are_drawn_whole() {
        assert_eq!(windows(0, None), vec![0..0]);
        assert_eq!(windows(600, Some(3)), vec![0..600]);
        assert_eq!(windows(FULL_LIMIT, None), vec![0..FULL_LIMIT]);
    }

    #[test]
    fn long_runs_show_the_head_and_the_first_disorder() {
        assert_eq!(windows(80_000, None), vec![0..HEAD]);
        assert_eq!(windows(80_000, Some(10)), vec![0..HEAD]);
        // Disorder just after the head: one window reaching past it.
        assert_eq!(windows(80_000, Some(160)), vec![0..260]);
        assert_eq!(windows(80_000, Some(5000)), vec![0..HEAD, 4950..5100]);
        // At the very end: the window is cut at the last position.
        assert_eq!(windows(80_000, Some(79_999)), vec![0..HEAD, 79_949..80_000]);
        // A nonsense round is ignored.
        assert_eq!(windows(80_000, Some(1_000_000)), vec![0..HEAD]);
    }
}
