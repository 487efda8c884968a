//! The latency histogram: how long messages took from being sent to being
//! delivered, over every delivery of every peer.
//!
//! The `none` order delivers a message the moment it arrives, so its
//! histogram is the network's delay (two humps with two regions: near and
//! far). `total` holds messages back until it is safe to deliver them, so
//! its histogram moves to the right: the price of agreeing on one order.

use std::fmt::Write as _;

use mpcomm_check::PeerLog;

use super::svg::{self, num};

const WIDTH: f64 = 860.0;
const HEIGHT: f64 = 280.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 26.0;
const BOTTOM: f64 = 48.0;
/// At most this many bars; fewer when the latencies span few microseconds.
const MAX_BINS: usize = 48;

/// Send-to-delivery latencies in µs of every entry with both times. A
/// delivery stamped before its send (clocks of different hosts) counts as 0.
pub fn samples(logs: &[PeerLog]) -> Vec<u64> {
    logs.iter()
        .flat_map(|l| &l.entries)
        .filter_map(|e| Some(e.delivered_us?.saturating_sub(e.sent_us?)))
        .collect()
}

/// The histogram as an `<svg>` element, or a sentence saying why there is
/// none.
pub fn render(logs: &[PeerLog]) -> String {
    let mut v = samples(logs);
    if v.is_empty() {
        return "<p class=\"missing\">No latency histogram: the logs carry no send and delivery times.</p>"
            .to_string();
    }
    v.sort_unstable();
    let n = v.len();
    let at = |q: f64| v[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
    let (p50, p99, max) = (at(0.5), at(0.99), v[n - 1]);
    // A few stragglers far out would squeeze everything else into one bar:
    // beyond 1.5 × p99 they are gathered in a last "and more" bar.
    let hi = if n >= 100 && max > p99.saturating_mul(3) / 2 {
        p99.saturating_mul(3) / 2
    } else {
        max
    }
    .max(1);
    let bins = MAX_BINS.min(usize::try_from(hi).unwrap_or(MAX_BINS)).max(1);
    let bin_w = hi as f64 / bins as f64;
    let mut counts = vec![0u64; bins];
    let mut overflow = 0u64;
    for &x in &v {
        if x > hi {
            overflow += 1;
        } else {
            let b = ((x as f64 / bin_w) as usize).min(bins - 1);
            counts[b] += 1;
        }
    }
    let slots = bins + usize::from(overflow > 0);
    let top = counts
        .iter()
        .copied()
        .max()
        .unwrap_or(0)
        .max(overflow)
        .max(1);

    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let base = TOP + plot_h;
    let bar_w = plot_w / slots as f64;
    let y_of = |c: u64| base - c as f64 / top as f64 * plot_h;
    let x_of_us = |us: f64| LEFT + us / (bin_w * bins as f64) * (bins as f64 * bar_w);

    let mut s = String::with_capacity(8192);
    let _ = write!(
        s,
        "<svg id=\"latency\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"histogram of send-to-delivery latency\">",
        w = num(WIDTH),
        h = num(HEIGHT)
    );
    // y axis: deliveries.
    for c in svg::ticks(0.0, top as f64, plot_h, 40.0) {
        let y = y_of(c as u64);
        let _ = write!(
            s,
            "<line class=\"grid\" x1=\"{}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\"/><text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            num(LEFT),
            num(LEFT + plot_w),
            num(LEFT - 6.0),
            num(y + 4.0),
            svg::tick_label(c),
            y = num(y)
        );
    }
    for (b, &c) in counts.iter().enumerate() {
        if c == 0 {
            continue;
        }
        let (from, to) = (b as f64 * bin_w, (b + 1) as f64 * bin_w);
        let _ = write!(
            s,
            "<rect class=\"bar\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"><title>{} deliveries took {}–{}</title></rect>",
            num(LEFT + b as f64 * bar_w + 0.5),
            num(y_of(c)),
            num((bar_w - 1.0).max(0.5)),
            num(base - y_of(c)),
            c,
            svg::ms(from as u64),
            svg::ms(to as u64)
        );
    }
    if overflow > 0 {
        let x = LEFT + bins as f64 * bar_w;
        let _ = write!(
            s,
            "<rect class=\"bar overflow\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"><title>{overflow} deliveries took more than {} (up to {})</title></rect><text class=\"tick\" x=\"{}\" y=\"{}\">more</text>",
            num(x + 0.5),
            num(y_of(overflow)),
            num((bar_w - 1.0).max(0.5)),
            num(base - y_of(overflow)),
            svg::ms(hi),
            svg::ms(max),
            num(x + bar_w / 2.0),
            num(base + 16.0)
        );
    }
    // x axis: milliseconds.
    let _ = write!(
        s,
        "<line class=\"axis\" x1=\"{}\" y1=\"{b}\" x2=\"{}\" y2=\"{b}\"/>",
        num(LEFT),
        num(LEFT + plot_w),
        b = num(base)
    );
    let hi_ms = hi as f64 / 1e3;
    for t in svg::ticks(0.0, hi_ms, bins as f64 * bar_w, 80.0) {
        let x = x_of_us(t * 1e3);
        let _ = write!(
            s,
            "<line class=\"axis\" x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\"/><text class=\"tick\" x=\"{x}\" y=\"{}\">{}</text>",
            num(base),
            num(base + 4.0),
            num(base + 16.0),
            svg::tick_label(t),
            x = num(x)
        );
    }
    for (label, value) in [("p50", p50), ("p99", p99)] {
        if value > hi {
            continue;
        }
        let x = x_of_us(value as f64);
        // Near the right edge the label goes to the left of its line.
        let (lx, anchor) = if x > LEFT + plot_w - 90.0 {
            (x - 3.0, "end")
        } else {
            (x + 3.0, "start")
        };
        // p50 and p99 close together: p99's label one line lower.
        let ly = if label == "p99" {
            TOP + 20.0
        } else {
            TOP + 6.0
        };
        let _ = write!(
            s,
            "<line class=\"pct\" x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\"/><text class=\"pct-label\" x=\"{}\" y=\"{}\" text-anchor=\"{anchor}\">{label} {}</text>",
            num(TOP - 4.0),
            num(base),
            num(lx),
            num(ly),
            svg::ms(value),
            x = num(x)
        );
    }
    let _ = write!(
        s,
        "<text class=\"axis-title\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">send → delivery latency (ms)</text>\
         <text class=\"axis-title\" x=\"14\" y=\"{}\" transform=\"rotate(-90 14 {})\" text-anchor=\"middle\">deliveries</text></svg>",
        num(LEFT + plot_w / 2.0),
        num(HEIGHT - 8.0),
        num(TOP + plot_h / 2.0),
        num(TOP + plot_h / 2.0)
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use mpcomm_check::LogEntry;

    fn log(times: &[(Option<u64>, Option<u64>)]) -> PeerLog {
        PeerLog {
            meta: None,
            end: None,
            views: Vec::new(),
            peer: 0,
            entries: times
                .iter()
                .enumerate()
                .map(|(i, &(sent_us, delivered_us))| LogEntry {
                    run: 1,
                    peer: 0,
                    sender: 0,
                    seq: i as u64,
                    stamp: None,
                    sent_us,
                    delivered_us,
                    after: None,
                    op: None,
                })
                .collect(),
        }
    }

    #[test]
    fn no_times_no_histogram() {
        let html = render(&[log(&[(None, Some(5)), (Some(1), None)])]);
        assert!(html.contains("No latency histogram"));
        assert!(!html.contains("<svg"));
        assert!(render(&[]).contains("No latency histogram"));
    }

    #[test]
    fn bars_count_every_sample() {
        let times: Vec<_> = (0..500u64)
            .map(|i| {
                (
                    Some(1_000),
                    Some(1_000 + 1_000 * (i % 50) + if i == 0 { 10_000_000 } else { 0 }),
                )
            })
            .collect();
        let html = render(&[log(&times)]);
        let total: u64 = html
            .match_indices("<title>")
            .map(|(i, _)| {
                let rest = &html[i + 7..];
                rest.split_whitespace()
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0)
            })
            .sum();
        assert_eq!(total, 500);
        assert!(html.contains("more than"), "the straggler has its own bar");
    }

    #[test]
    fn one_sample_and_clock_skew_do_not_panic() {
        assert!(render(&[log(&[(Some(10), Some(10))])]).contains("<svg"));
        assert!(render(&[log(&[(Some(10), Some(3))])]).contains("<svg"));
    }
}
