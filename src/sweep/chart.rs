//! The sweep's charts: a measure (unordered rounds, causal violations,
//! diverging replicas, latency, datagrams per message: [`Metric`]) against
//! group size, as a standalone SVG (no scripts, no fonts to fetch), one
//! panel per message count.
//!
//! Each order is one line through the mean over repeats, inside a shaded
//! band from the run with the lowest value to the one with the highest —
//! so a reader sees both the trend and how much it varies.

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

/// What a chart plots against group size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Rounds in which not every peer delivered the same message.
    UnorderedRounds,
    /// Deliveries of a message before one of its predecessors.
    CausalViolations,
    /// The share of runs whose replicas ended in different states, in %.
    Diverged,
    /// `chat`: answers delivered before their question.
    AnswersEarly,
    /// Median send-to-delivery latency, in ms.
    LatencyP50,
    /// 99th percentile send-to-delivery latency, in ms.
    LatencyP99,
    /// Datagrams sent per message multicast.
    DatagramsPerMessage,
}

impl Metric {
    /// Every metric, in the order their charts are written.
    pub const ALL: [Metric; 7] = [
        Metric::UnorderedRounds,
        Metric::CausalViolations,
        Metric::Diverged,
        Metric::AnswersEarly,
        Metric::LatencyP50,
        Metric::LatencyP99,
        Metric::DatagramsPerMessage,
    ];

    /// The chart's file name.
    pub fn file(self) -> &'static str {
        match self {
            Metric::UnorderedRounds => "sweep.svg",
            Metric::CausalViolations => "sweep-causal-violations.svg",
            Metric::Diverged => "sweep-diverged.svg",
            Metric::AnswersEarly => "sweep-answers-early.svg",
            Metric::LatencyP50 => "sweep-latency-p50.svg",
            Metric::LatencyP99 => "sweep-latency-p99.svg",
            Metric::DatagramsPerMessage => "sweep-datagrams.svg",
        }
    }

    /// What the y axis measures.
    pub fn axis(self) -> &'static str {
        match self {
            Metric::UnorderedRounds => "unordered rounds",
            Metric::CausalViolations => "causal violations",
            Metric::Diverged => "runs with diverging states (%)",
            Metric::AnswersEarly => "answers before questions",
            Metric::LatencyP50 => "latency p50 (ms)",
            Metric::LatencyP99 => "latency p99 (ms)",
            Metric::DatagramsPerMessage => "datagrams per message",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Metric::UnorderedRounds => "Unordered rounds by group size",
            Metric::CausalViolations => "Deliveries before a cause, by group size",
            Metric::Diverged => "Runs whose replicas diverged, by group size",
            Metric::AnswersEarly => "Answers delivered before their question, by group size",
            Metric::LatencyP50 => "Median latency by group size",
            Metric::LatencyP99 => "99th percentile latency by group size",
            Metric::DatagramsPerMessage => "Datagrams per message by group size",
        }
    }

    /// The row's value, if it has one.
    pub fn value(self, r: &Row) -> Option<f64> {
        match self {
            Metric::UnorderedRounds => Some(r.unordered_rounds as f64),
            Metric::CausalViolations => r.causal_violations.map(|v| v as f64),
            Metric::Diverged => r.states_agree.map(|a| if a { 0.0 } else { 100.0 }),
            Metric::AnswersEarly => r.answers_before_questions.map(|v| v as f64),
            Metric::LatencyP50 => r.latency_p50_us.map(|us| us as f64 / 1e3),
            Metric::LatencyP99 => r.latency_p99_us.map(|us| us as f64 / 1e3),
            Metric::DatagramsPerMessage => r.datagrams_per_message,
        }
    }

    /// Whether any measured row has a value (the unordered rounds always
    /// have a chart).
    pub fn applies(self, rows: &[Row]) -> bool {
        self == Metric::UnorderedRounds
            || rows.iter().any(|r| r.measured() && self.value(r).is_some())
    }
}

/// `(mean, min, max)` of the metric per (order, peers), for one message
/// count.
type Series = BTreeMap<String, BTreeMap<usize, (f64, f64, f64)>>;

fn series(rows: &[Row], messages: u64, metric: Metric) -> Series {
    let mut acc: BTreeMap<String, BTreeMap<usize, Vec<f64>>> = BTreeMap::new();
    for r in rows
        .iter()
        .filter(|r| r.messages == messages && r.measured())
    {
        if let Some(v) = metric.value(r) {
            acc.entry(r.order.clone())
                .or_default()
                .entry(r.peers)
                .or_default()
                .push(v);
        }
    }
    acc.into_iter()
        .map(|(order, by_peers)| {
            let points = by_peers
                .into_iter()
                .map(|(peers, v)| {
                    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
                    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
                    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    (peers, (mean, lo, hi))
                })
                .collect();
            (order, points)
        })
        .collect()
}

/// A number for an axis or a tooltip: no decimals once it is large.
fn num(v: f64) -> String {
    if v.abs() >= 10.0 || v == v.round() {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Renders the unordered-rounds chart (`sweep.svg`).
pub fn render(spec: &SweepSpec, rows: &[Row]) -> String {
    render_metric(spec, rows, Metric::UnorderedRounds)
}

/// Renders the chart of one metric.
pub fn render_metric(spec: &SweepSpec, rows: &[Row], metric: Metric) -> String {
    let mut counts: Vec<u64> = rows.iter().map(|r| r.messages).collect();
    counts.sort_unstable();
    counts.dedup();
    let panels = counts.len().max(1);
    let orders = rows
        .iter()
        .map(|r| r.order.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    // Room for every panel, and for the legend (120 px an order).
    let width = (panels as f64 * (PANEL_W + MARGIN) + MARGIN)
        .max(MARGIN + orders as f64 * 120.0)
        .max(560.0);
    let height = PANEL_H + 2.0 * MARGIN + 60.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = write!(
        svg,
        r##"<text x="{MARGIN}" y="22" font-size="15" font-weight="bold">{}</text><text x="{MARGIN}" y="40" fill="#555">{}, workload {}: {} run(s) per point, {} region(s): {}</text>"##,
        metric.title(),
        match rows.first().map(|r| r.backend.as_str()) {
            Some("processes") => "real processes on this machine",
            _ => "simulated",
        },
        spec.workload,
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
            &series(rows, messages, metric),
            &all_orders,
            metric,
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

fn panel(
    svg: &mut String,
    x0: f64,
    y0: f64,
    messages: u64,
    data: &Series,
    orders: &[String],
    metric: Metric,
) {
    let peers: Vec<usize> = {
        let mut p: Vec<usize> = data.values().flat_map(|s| s.keys().copied()).collect();
        p.sort_unstable();
        p.dedup();
        p
    };
    let y_max = data
        .values()
        .flat_map(|s| s.values().map(|v| v.2))
        .fold(0.0, f64::max);
    // A round top for the axis: 1, 2 or 5 times a power of ten.
    let y_max = {
        let v = y_max.max(1.0);
        let p = 10f64.powf(v.log10().floor());
        [1.0, 2.0, 5.0, 10.0]
            .into_iter()
            .map(|m| m * p)
            .find(|t| *t >= v)
            .unwrap_or(v)
    };
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
            r##"<line x1="{x0}" y1="{yy}" x2="{}" y2="{yy}" stroke="#e5e5e5"/><text x="{}" y="{}" text-anchor="end">{}</text>"##,
            x0 + PANEL_W,
            x0 - 6.0,
            y(v) + 4.0,
            num(v),
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
        r#"<text x="{lx}" y="{ly}" text-anchor="middle" transform="rotate(-90 {lx} {ly})">{}</text>"#,
        metric.axis()
    );
    for (k, order) in orders.iter().enumerate() {
        let Some(s) = data.get(order) else { continue };
        let c = COLOURS[k % COLOURS.len()];
        // The band: up along the maxima, back along the minima.
        let mut band: Vec<String> = s
            .iter()
            .map(|(p, v)| format!("{:.1},{:.1}", x(*p), y(v.2)))
            .collect();
        band.extend(
            s.iter()
                .rev()
                .map(|(p, v)| format!("{:.1},{:.1}", x(*p), y(v.1))),
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
                r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{c}"><title>{} with {p} peers: mean {} {} (min {}, max {})</title></circle>"#,
                x(*p),
                y(v.0),
                escape(order),
                num(v.0),
                metric.axis(),
                num(v.1),
                num(v.2)
            );
        }
    }
    svg.push_str("</g>");
}
