//! The sweep's chart: unordered rounds against group size, as a standalone
//! SVG (no scripts, no fonts to fetch), one panel per message count.
//!
//! Each order is one line through the mean over repeats, inside a shaded
//! band from the run with the fewest unordered rounds to the one with the
//! most — so a reader sees both the trend and how much it varies.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{Row, SweepSpec};

const PANEL_W: f64 = 420.0;
const PANEL_H: f64 = 300.0;
const MARGIN: f64 = 60.0;
/// One colour per order, distinguishable by colour-blind readers (Okabe–Ito).
const COLOURS: [&str; 6] = [
    "#D55E00", "#0072B2", "#009E73", "#CC79A7", "#E69F00", "#56B4E9",
];

/// `(mean, min, max)` of unordered rounds per (order, peers), for one
/// message count.
type Series = BTreeMap<String, BTreeMap<usize, (f64, u64, u64)>>;

fn series(rows: &[Row], messages: u64) -> Series {
    let mut acc: BTreeMap<String, BTreeMap<usize, Vec<u64>>> = BTreeMap::new();
    for r in rows
        .iter()
        .filter(|r| r.messages == messages && r.measured())
    {
        acc.entry(r.order.clone())
            .or_default()
            .entry(r.peers)
            .or_default()
            .push(r.unordered_rounds);
    }
    acc.into_iter()
        .map(|(order, by_peers)| {
            let points = by_peers
                .into_iter()
                .map(|(peers, v)| {
                    let mean = v.iter().sum::<u64>() as f64 / v.len().max(1) as f64;
                    let (lo, hi) = (
                        v.iter().copied().min().unwrap_or(0),
                        v.iter().copied().max().unwrap_or(0),
                    );
                    (peers, (mean, lo, hi))
                })
                .collect();
            (order, points)
        })
        .collect()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Renders the chart.
pub fn render(spec: &SweepSpec, rows: &[Row]) -> String {
    let mut counts: Vec<u64> = rows.iter().map(|r| r.messages).collect();
    counts.sort_unstable();
    counts.dedup();
    let panels = counts.len().max(1);
    let width = (panels as f64 * (PANEL_W + MARGIN) + MARGIN).max(560.0);
    let height = PANEL_H + 2.0 * MARGIN + 60.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = write!(
        svg,
        r##"<text x="{MARGIN}" y="22" font-size="15" font-weight="bold">Unordered rounds by group size</text><text x="{MARGIN}" y="40" fill="#555">{}: {} run(s) per point, {} region(s): {}</text>"##,
        match rows.first().map(|r| r.backend.as_str()) {
            Some("processes") => "real processes on this machine",
            _ => "simulated",
        },
        spec.repeat,
        spec.regions,
        escape(&spec.wan_text)
    );
    let all_orders: Vec<String> = {
        let mut o: Vec<String> = rows.iter().map(|r| r.order.clone()).collect();
        o.sort();
        o.dedup();
        o
    };
    for (i, &messages) in counts.iter().enumerate() {
        let x0 = MARGIN + i as f64 * (PANEL_W + MARGIN);
        let y0 = MARGIN + 25.0;
        panel(
            &mut svg,
            x0,
            y0,
            messages,
            &series(rows, messages),
            &all_orders,
        );
    }
    // Legend.
    let ly = height - 18.0;
    for (k, order) in all_orders.iter().enumerate() {
        let lx = MARGIN + k as f64 * 120.0;
        let c = COLOURS[k % COLOURS.len()];
        let _ = write!(
            svg,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{c}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
            lx + 24.0,
            lx + 30.0,
            ly + 4.0,
            escape(order)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn panel(svg: &mut String, x0: f64, y0: f64, messages: u64, data: &Series, orders: &[String]) {
    let peers: Vec<usize> = {
        let mut p: Vec<usize> = data.values().flat_map(|s| s.keys().copied()).collect();
        p.sort_unstable();
        p.dedup();
        p
    };
    let y_max = data
        .values()
        .flat_map(|s| s.values().map(|v| v.2))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let (p_min, p_max) = (
        *peers.first().unwrap_or(&0) as f64,
        *peers.last().unwrap_or(&1) as f64,
    );
    let span = (p_max - p_min).max(1.0);
    let x = |p: usize| x0 + (p as f64 - p_min) / span * PANEL_W;
    let y = |v: f64| y0 + PANEL_H - v / y_max * PANEL_H;
    let _ = write!(
        svg,
        r##"<g class="panel" data-messages="{messages}"><rect x="{x0}" y="{y0}" width="{PANEL_W}" height="{PANEL_H}" fill="#fafafa" stroke="#ccc"/>"##
    );
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">{messages} messages per peer</text>"#,
        x0 + PANEL_W / 2.0,
        y0 - 8.0
    );
    for k in 0..=4 {
        let v = y_max * k as f64 / 4.0;
        let _ = write!(
            svg,
            r##"<line x1="{x0}" y1="{yy}" x2="{}" y2="{yy}" stroke="#e5e5e5"/><text x="{}" y="{}" text-anchor="end">{:.0}</text>"##,
            x0 + PANEL_W,
            x0 - 6.0,
            y(v) + 4.0,
            v,
            yy = y(v)
        );
    }
    for &p in &peers {
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">{p}</text>"#,
            x(p),
            y0 + PANEL_H + 16.0
        );
    }
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">peers</text>"#,
        x0 + PANEL_W / 2.0,
        y0 + PANEL_H + 34.0
    );
    let (lx, ly) = (x0 - 38.0, y0 + PANEL_H / 2.0);
    let _ = write!(
        svg,
        r#"<text x="{lx}" y="{ly}" text-anchor="middle" transform="rotate(-90 {lx} {ly})">unordered rounds</text>"#
    );
    for (k, order) in orders.iter().enumerate() {
        let Some(s) = data.get(order) else { continue };
        let c = COLOURS[k % COLOURS.len()];
        // The band: up along the maxima, back along the minima.
        let mut band: Vec<String> = s
            .iter()
            .map(|(p, v)| format!("{:.1},{:.1}", x(*p), y(v.2 as f64)))
            .collect();
        band.extend(
            s.iter()
                .rev()
                .map(|(p, v)| format!("{:.1},{:.1}", x(*p), y(v.1 as f64))),
        );
        let _ = write!(
            svg,
            r#"<polygon points="{}" fill="{c}" fill-opacity="0.15" stroke="none"/>"#,
            band.join(" ")
        );
        let line: Vec<String> = s
            .iter()
            .map(|(p, v)| format!("{:.1},{:.1}", x(*p), y(v.0)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{c}" stroke-width="2.5"/>"#,
            line.join(" ")
        );
        for (p, v) in s {
            let _ = write!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{c}"><title>{} with {p} peers: mean {:.1} unordered rounds (min {}, max {})</title></circle>"#,
                x(*p),
                y(v.0),
                escape(order),
                v.0,
                v.1,
                v.2
            );
        }
    }
    svg.push_str("</g>");
}
