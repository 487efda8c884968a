//! The page around the pictures: header, key figures, the verdict with its
//! counter-examples, the members table, and the style sheet.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use mpcomm_check::{Findings, Property};
use mpcomm_core::{MemberId, OrderKind};

use super::diagram::{self, Lane};
use super::explorer::{self, ExplorerLane};
use super::histogram;
use super::svg::{self, esc, thousands};
use super::{ReportInput, ReportMember};

/// The whole page.
pub fn render(input: &ReportInput) -> String {
    let f = input.findings.as_ref();
    let order = f
        .map(|f| f.order.clone())
        .or_else(|| input.params.order.clone())
        .unwrap_or_else(|| "unknown".into());

    // Lanes: every member the summary lists and every peer with a log.
    let ids: BTreeSet<MemberId> = input
        .members
        .iter()
        .map(|m| m.id)
        .chain(input.logs.iter().map(|l| l.peer))
        .collect();
    let lanes: Vec<Lane> = ids
        .iter()
        .map(|&id| {
            let member = input.members.iter().find(|m| m.id == id);
            let log = input.logs.iter().find(|l| l.peer == id);
            Lane {
                peer: id,
                name: member
                    .map(|m| m.name.clone())
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| format!("peer {id}")),
                region: member
                    .map(|m| m.region.clone())
                    .filter(|r| !r.is_empty())
                    .unwrap_or_else(|| "region unknown".into()),
                log,
                note: match (log, member) {
                    (Some(_), _) => None,
                    (None, Some(m)) => Some(format!("no log; status {}", m.status)),
                    (None, None) => Some("no log".into()),
                },
            }
        })
        .collect();
    // Without findings (a failed run) the disorder is still worth showing:
    // find it in the logs there are.
    let first_unordered = match f {
        Some(f) => f.first_unordered_round,
        None => mpcomm_check::unordered_rounds(&input.logs).first_unordered,
    };
    let origin = input
        .logs
        .iter()
        .flat_map(|l| &l.entries)
        .flat_map(|e| e.sent_us.into_iter().chain(e.delivered_us))
        .min();
    let dia = diagram::render(&lanes, first_unordered, origin);

    let mut s = String::with_capacity(dia.svg.len() + 32 * 1024);
    let title = format!("mpcomm report — {}", input.title);
    let _ = writeln!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{CSS}{}</style></head><body>",
        esc(&title),
        explorer::CSS
    );
    header(&mut s, input, &order, lanes.len());
    if let Some(e) = &input.error {
        let _ = writeln!(
            s,
            "<div class=\"error\"><strong>The run failed:</strong> {}</div>",
            esc(e)
        );
    }
    if !input.missing.is_empty() {
        s.push_str("<div class=\"missing-list\"><strong>Not in this report:</strong><ul>");
        for m in &input.missing {
            let _ = write!(s, "<li>{}</li>", esc(m));
        }
        s.push_str("</ul></div>\n");
    }
    key_figures(&mut s, f, &order);
    related(&mut s, input, &order);

    let explorer_lanes: Vec<ExplorerLane> = lanes
        .iter()
        .map(|l| ExplorerLane {
            id: l.peer,
            name: l.name.clone(),
            region: l.region.clone(),
        })
        .collect();
    explorer::render(&mut s, input, &explorer_lanes, &order);

    // The static diagram of the deliveries: the whole picture without
    // script; folded away by the explorer's script when it runs.
    s.push_str(
        "<section id=\"diagram\"><details id=\"static-diagram\" open><summary><h2>Space-time diagram of the deliveries</h2></summary>",
    );
    s.push_str(
        "<p class=\"how\">One lane per peer; time runs to the right. Each mark is one delivery, \
         coloured by the member that sent the message. A thin line joins the deliveries of the same \
         message from lane to lane: when all peers deliver in the same order the lines run side by \
         side, and <strong>where two lines cross, two peers delivered two messages in opposite \
         orders</strong>. Hover a mark to see the message (sender:sequence), its Lamport stamp, \
         when and at which position it was delivered.</p>",
    );
    legend(&mut s, &lanes, input);
    let _ = writeln!(
        s,
        "<p class=\"caption\">{}</p><div class=\"scroll\">{}</div></details></section>",
        esc(&dia.caption),
        dia.svg
    );

    verdict(&mut s, f, &order);

    s.push_str("<section id=\"latency-section\"><h2>Latency</h2><p class=\"how\">How long each message took from being sent to being delivered, over every delivery of every peer. \
         <code>none</code> delivers on arrival, so this is the network's delay; <code>total</code> holds messages back until every peer can deliver them in the same order, and pays for it here.</p>");
    s.push_str(&histogram::render(&input.logs));
    s.push_str("</section>\n");

    members(&mut s, &input.members);
    let _ = writeln!(
        s,
        "<footer>Written by mpcomm {}. Rounds and positions count from 1 in this page: round <em>k</em> is the <em>k</em>-th delivery of every peer, line <em>k</em> of its log (the checker's counter-examples count from 0). \
         Check the logs yourself: <code>mpcomm check</code> on this run directory (<code>{}</code>) gives the same verdict.</footer>\n</body></html>",
        env!("CARGO_PKG_VERSION"),
        esc(&input.title)
    );
    s
}

/// The headline: what the run shows, in words. A `none` run that keeps its
/// (empty) promise is not a green success: its headline says how many rounds
/// differ and that `none` promises no order.
fn headline(input: &ReportInput, order: &str) -> (String, &'static str) {
    let Some(f) = input.findings.as_ref() else {
        return match input.passed {
            Some(false) => ("FAIL — the run failed".into(), "fail"),
            _ => ("No verdict".into(), "unknown"),
        };
    };
    let rounds = thousands(f.rounds);
    let differ = thousands(f.unordered_rounds);
    if input.passed == Some(false) || !f.passed {
        let violated: Vec<String> = Property::ALL
            .iter()
            .filter(|p| !f.holds(**p) && order.parse().is_ok_and(|k| p.promised_by(k)))
            .map(|p| p.to_string())
            .collect();
        let what = if violated.is_empty() {
            "the run did not complete".to_string()
        } else {
            format!("{} violated", violated.join(", "))
        };
        return (
            format!("FAIL — {what} ({differ} of {rounds} rounds differ)"),
            "fail",
        );
    }
    match (order, f.unordered_rounds) {
        ("none", n) if n > 0 => (
            format!("{differ} of {rounds} rounds differ — <code>none</code> promises no order"),
            "info",
        ),
        ("fifo", n) if n > 0 => (
            format!(
                "{differ} of {rounds} rounds differ — <code>fifo</code> promises only each sender's order, and kept it"
            ),
            "info",
        ),
        (_, 0) => (
            format!("All {rounds} rounds agree — every peer delivered the same sequence"),
            "pass",
        ),
        (o, _) => (
            format!(
                "{differ} of {rounds} rounds differ — <code>{}</code> kept its promises",
                esc(o)
            ),
            "info",
        ),
    }
}

fn header(s: &mut String, input: &ReportInput, order: &str, peers: usize) {
    let (line, class) = headline(input, order);
    let p = &input.params;
    let mut facts = vec![format!("order <strong>{}</strong>", esc(order))];
    facts.push(format!("{peers} peer(s)"));
    if let Some(m) = p.messages {
        facts.push(format!("{} messages each", thousands(m)));
    }
    facts.push(match &p.wan {
        Some(w) => format!("emulated WAN {}", esc(w)),
        None => "no WAN emulation".into(),
    });
    if let (Some(a), Some(b)) = (p.min_interval, p.max_interval) {
        facts.push(format!("sent every {}–{}", svg::ms(a), svg::ms(b)));
    }
    if let Some(seed) = p.seed {
        facts.push(format!("seed {seed}"));
    }
    if let Some(d) = input.duration_s.filter(|d| d.is_finite()) {
        facts.push(format!("took {d:.1} s"));
    }
    let run = input.run.map(|r| format!(" · run {r}")).unwrap_or_default();
    let _ = writeln!(
        s,
        "<header><div><p class=\"headline {class}\">{line}</p><h1>mpcomm run report</h1>\
         <p class=\"sub\">{}{run}</p><p class=\"facts\">{}</p></div></header>",
        esc(&input.title),
        facts.join(" · ")
    );
}

/// Links to the same run under other orders, and to the side-by-side page.
fn related(s: &mut String, input: &ReportInput, order: &str) {
    if input.related.is_empty() && input.compare.is_none() {
        return;
    }
    let _ = write!(
        s,
        "<nav class=\"related\">This run: <code>{}</code>.",
        esc(order)
    );
    for r in &input.related {
        let _ = write!(
            s,
            " <a class=\"related-run\" href=\"{}\">{}</a>.",
            esc(&r.href),
            esc(&r.label)
        );
    }
    if let Some(c) = &input.compare {
        let _ = write!(
            s,
            " <a class=\"compare\" href=\"{}\">Side by side</a>.",
            esc(c)
        );
    }
    s.push_str("</nav>\n");
}

/// The row of big numbers under the header.
fn key_figures(s: &mut String, f: Option<&Findings>, order: &str) {
    let Some(f) = f else { return };
    s.push_str("<div class=\"cards\">");
    let _ = write!(
        s,
        "<div class=\"card{}\"><div class=\"big\">{}</div><div>unordered rounds of {}</div><div class=\"small\">{}</div></div>",
        if f.unordered_rounds > 0 { " warn" } else { "" },
        thousands(f.unordered_rounds),
        thousands(f.rounds),
        match f.first_unordered_round {
            Some(r) => format!("the first is round {} (counted from 1)", thousands(r + 1)),
            None => "every peer delivered the same sequence".into(),
        }
    );
    let violated: Vec<String> = Property::ALL
        .iter()
        .filter(|p| !f.holds(**p))
        .map(|p| p.to_string())
        .collect();
    let _ = write!(
        s,
        "<div class=\"card{}\"><div class=\"big\">{}</div><div>{}</div><div class=\"small\">{}</div></div>",
        if f.passed { " ok" } else { " bad" },
        if f.passed { "kept" } else { "broken" },
        esc(&format!("the promises of order {order}")),
        if violated.is_empty() {
            "every property holds".to_string()
        } else {
            format!("violated: {}", violated.join(", "))
        }
    );
    if let Some(l) = &f.latency_us {
        let _ = write!(
            s,
            "<div class=\"card\"><div class=\"big\">{}</div><div>median latency</div><div class=\"small\">p99 {}, max {}</div></div>",
            svg::ms(l.p50),
            svg::ms(l.p99),
            svg::ms(l.max)
        );
    }
    let _ = write!(
        s,
        "<div class=\"card{}\"><div class=\"big\">{}</div><div>of {} deliveries</div><div class=\"small\">every peer × every message</div></div>",
        if f.delivered == f.expected {
            ""
        } else {
            " bad"
        },
        thousands(f.delivered),
        thousands(f.expected)
    );
    s.push_str("</div>\n");
}

/// The legend: one entry per sender, with its colour and shape.
fn legend(s: &mut String, lanes: &[Lane], input: &ReportInput) {
    let senders: BTreeSet<MemberId> = lanes
        .iter()
        .map(|l| l.peer)
        .chain(
            input
                .logs
                .iter()
                .flat_map(|l| l.entries.iter().map(|e| e.sender)),
        )
        .collect();
    if senders.is_empty() {
        return;
    }
    s.push_str("<div class=\"legend\"><span class=\"legend-title\">sender:</span>");
    for (i, &id) in senders.iter().enumerate() {
        if i == 64 {
            let _ = write!(s, "<span>… and {} more</span>", senders.len() - 64);
            break;
        }
        let name = lanes
            .iter()
            .find(|l| l.peer == id)
            .map(|l| l.name.clone())
            .unwrap_or_else(|| format!("member {id}"));
        let shape = svg::shape(id);
        let _ = write!(
            s,
            "<span class=\"key\"><svg width=\"14\" height=\"14\" viewBox=\"0 0 14 14\" aria-hidden=\"true\">"
        );
        svg::open_shape(s, shape, 7.0, 7.5, 5.0);
        let _ = write!(
            s,
            " fill=\"{}\"></{}></svg>{id}: {}</span>",
            svg::colour(id),
            svg::shape_tag(shape),
            esc(&name)
        );
    }
    s.push_str("</div>");
}

/// The verdict: each property, with its first counter-example.
fn verdict(s: &mut String, f: Option<&Findings>, order: &str) {
    s.push_str("<section id=\"verdict\"><h2>Verdict</h2>");
    let Some(f) = f else {
        s.push_str("<p class=\"missing\">No verdict: the checker's findings are not available for this run.</p></section>\n");
        return;
    };
    let kind: Option<OrderKind> = order.parse().ok();
    let _ = write!(
        s,
        "<p class=\"metric\">Found <strong>{}</strong> unordered message rounds (of {} rounds).</p>\
         <p class=\"how\">This is the number the original MPComm printed. Round <em>k</em> compares the <em>k</em>-th delivery of every peer; \
         it is unordered when they did not all deliver the same message there.{} The properties below say precisely what went wrong, if anything.</p>",
        thousands(f.unordered_rounds),
        thousands(f.rounds),
        match f.first_unordered_round {
            Some(r) => format!(
                " The first unordered round is round {} (the {}-th delivery of every peer, counted from 1), ringed in red in the diagram.",
                thousands(r + 1),
                thousands(r + 1)
            ),
            None => String::new(),
        }
    );
    s.push_str(
        "<table class=\"props\"><thead><tr><th>property</th><th>result</th><th>promised by <code>",
    );
    s.push_str(&esc(order));
    s.push_str("</code>?</th><th>first counter-example</th></tr></thead><tbody>");
    for p in Property::ALL {
        let holds = f.holds(p);
        let promised = kind.map(|k| p.promised_by(k));
        let example = match p {
            Property::TotalOrder => f.counterexamples.total_order.as_deref(),
            Property::Agreement => f.counterexamples.agreement.as_deref(),
            Property::Integrity => f.counterexamples.integrity.as_deref(),
            Property::Fifo => f.counterexamples.fifo.as_deref(),
            Property::Causal => f.counterexamples.causal.as_deref(),
        };
        let unknown = p == Property::Causal && f.causal.is_none();
        let (class, result) = match (holds, promised) {
            (true, _) if unknown => ("allowed", "? unknown"),
            (true, _) => ("ok", "✓ holds"),
            (false, Some(false)) => ("allowed", "✗ violated"),
            (false, _) => ("bad", "✗ violated"),
        };
        let _ = write!(
            s,
            "<tr class=\"{class}\"><td>{}</td><td class=\"result\">{result}</td><td>{}</td><td>{}</td></tr>",
            esc(&p.to_string()),
            match promised {
                Some(true) => "yes",
                Some(false) => "no: allowed to fail",
                None => "?",
            },
            match example {
                Some(e) => esc(e),
                None if holds => "—".to_string(),
                None => "(not recorded)".to_string(),
            }
        );
    }
    s.push_str("</tbody></table>");
    let because = if f.passed {
        format!("every property the {} order promises holds", esc(order))
    } else if !f.complete {
        // A run cut short: say so, and whether what was delivered up to
        // the stop is consistent (see `mpcomm_check`, "Runs cut short").
        format!(
            "it did not complete ({}); what was delivered up to the stop {}",
            esc(&cut_short(f)),
            match (&f.counterexamples.consistency, f.consistent) {
                (_, true) => "is consistent with the order".to_string(),
                (Some(e), false) => format!("is not consistent: {}", esc(e)),
                (None, false) => "is not consistent".to_string(),
            }
        )
    } else {
        format!("a property the {} order promises is violated", esc(order))
    };
    let _ = writeln!(
        s,
        "<p class=\"how\">Delivered {} of {} expected deliveries. The run {} because {because}.</p></section>",
        thousands(f.delivered),
        thousands(f.expected),
        if f.passed { "passes" } else { "fails" },
    );
}

/// Whose logs are missing or cut short, in words.
fn cut_short(f: &Findings) -> String {
    let list = |v: &[u16]| {
        v.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut parts = Vec::new();
    if !f.missing_logs.is_empty() {
        parts.push(format!("no log of member {}", list(&f.missing_logs)));
    }
    if !f.partial_logs.is_empty() {
        parts.push(format!("partial log of member {}", list(&f.partial_logs)));
    }
    if !f.failed_logs.is_empty() {
        parts.push(format!("member {} failed", list(&f.failed_logs)));
    }
    parts.join("; ")
}

/// The members table.
fn members(s: &mut String, members: &[ReportMember]) {
    s.push_str("<section id=\"members\"><h2>Members</h2>");
    if members.is_empty() {
        s.push_str("<p class=\"missing\">The summary lists no members.</p></section>\n");
        return;
    }
    s.push_str(
        "<table class=\"members\"><thead><tr><th>id</th><th>name</th><th>region</th><th>status</th>\
         <th>log entries</th><th>datagrams sent</th><th>retransmissions</th><th>dropped</th>\
         <th>most held back</th><th>error</th></tr></thead><tbody>",
    );
    for m in members {
        let stat = |k: &str| {
            m.stats
                .get(k)
                .map(|v| thousands(*v))
                .unwrap_or_else(|| "—".into())
        };
        let _ = write!(
            s,
            "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            if m.status == "completed" { "" } else { "bad" },
            m.id,
            esc(&m.name),
            esc(&m.region),
            esc(&m.status),
            thousands(m.entries),
            stat("datagrams_sent"),
            stat("retransmissions"),
            stat("dropped"),
            stat("max_held"),
            esc(m.error.as_deref().unwrap_or(""))
        );
    }
    s.push_str("</tbody></table></section>\n");
}

/// The style sheet: system fonts only (nothing is fetched).
const CSS: &str = r#"
:root{--ink:#1d2433;--muted:#5b6475;--line:#d9dde5;--ok:#1a7f37;--bad:#c62828;--warn:#b26a00}
*{box-sizing:border-box}
body{margin:0;padding:18px 26px 40px;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--ink);background:#fff}
h1{font-size:21px;margin:0}
h2{font-size:17px;margin:26px 0 6px;border-bottom:1px solid var(--line);padding-bottom:3px}
code{font:12.5px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#f2f4f7;padding:0 3px;border-radius:3px}
header{display:flex;gap:16px;align-items:center}
.sub{margin:2px 0 0;color:var(--muted);font-size:13px}
.facts{margin:2px 0 0}
.headline{font-size:19px;font-weight:700;margin:0 0 4px;padding:6px 12px;border-radius:6px;border-left:6px solid #777;background:#f2f4f7}
.headline.pass{border-left-color:var(--ok);background:#eaf6ee}.headline.fail{border-left-color:var(--bad);background:#fdecea;color:var(--bad)}
.headline.info{border-left-color:#0072B2;background:#eef5fb}
.related{margin:10px 0;padding:6px 10px;background:#f7f8fa;border-radius:6px}
#static-diagram summary{cursor:pointer}#static-diagram summary h2{display:inline-block;border:0}
.error{margin:12px 0;padding:10px 14px;border-left:4px solid var(--bad);background:#fdecea}
.missing-list{margin:12px 0;padding:8px 14px;border-left:4px solid var(--warn);background:#fff6e5}
.missing-list ul{margin:4px 0 0;padding-left:20px}
.missing{color:var(--muted);font-style:italic}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:14px 0 4px}
.card{flex:0 1 230px;border:1px solid var(--line);border-radius:8px;padding:8px 12px;border-top:4px solid #8a94a6}
.card.ok{border-top-color:var(--ok)}.card.bad{border-top-color:var(--bad)}.card.warn{border-top-color:var(--warn)}
.card .big{font-size:24px;font-weight:700}
.card .small{color:var(--muted);font-size:12.5px}
.how{color:var(--muted);max-width:980px;margin:4px 0 8px}
.caption{margin:4px 0;font-weight:600}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;align-items:center;margin:6px 0}
.legend-title{color:var(--muted)}
.key{display:inline-flex;align-items:center;gap:4px;white-space:nowrap}
.scroll{overflow-x:auto;border:1px solid var(--line);border-radius:6px;background:#fff}
#spacetime .band{fill:#f4f6f9}
#spacetime .track{stroke:#b9c0cc;stroke-width:1}
#spacetime .links polyline{fill:none;stroke-width:1.1;stroke-opacity:.5}
#spacetime .mark{stroke:#fff;stroke-width:.7}
#spacetime .mark:hover{stroke:#000;stroke-width:1.5}
#spacetime .ring{fill:none;stroke:#d00000;stroke-width:2.2}
#spacetime .ring-link{fill:none;stroke:#d00000;stroke-width:1.4;stroke-dasharray:4 3}
#spacetime .ring-label{fill:#d00000;font-size:12.5px;font-weight:600}
#spacetime .lane-name{font-size:13.5px;font-weight:600;fill:var(--ink)}
#spacetime .lane-sub{font-size:11.5px;fill:var(--muted)}
#spacetime .lane-repeat{font-size:10.5px;fill:#9aa3b2}
#spacetime .empty{font-size:12px;fill:var(--muted);font-style:italic}
#spacetime .cut rect{fill:#eceff3}
#spacetime .cut text{font-size:20px;fill:#8a94a6;text-anchor:middle}
svg .axis{stroke:#8a94a6;stroke-width:1}
svg .grid{stroke:#e6e9ef;stroke-width:1}
svg .tick{font-size:11px;fill:var(--muted);text-anchor:middle}
svg .axis-title{font-size:11.5px;fill:var(--muted);font-weight:600}
#latency .bar{fill:#0072B2}
#latency .bar.overflow{fill:#8a94a6}
#latency .pct{stroke:#D55E00;stroke-width:1.3;stroke-dasharray:4 3}
#latency .pct-label{font-size:11.5px;fill:#D55E00;font-weight:600;paint-order:stroke;stroke:#fff;stroke-width:3px}
#spacetime .ring-label{paint-order:stroke;stroke:#fff;stroke-width:3px}
table{border-collapse:collapse;margin:8px 0}
th,td{border-bottom:1px solid var(--line);padding:5px 10px;text-align:left;vertical-align:top}
th{font-size:12.5px;color:var(--muted);font-weight:600}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.props tr.ok .result{color:var(--ok);font-weight:600}
.props tr.bad .result{color:var(--bad);font-weight:700}
.props tr.allowed .result{color:var(--warn);font-weight:600}
.props td:last-child{max-width:620px}
.members tr.bad td{color:var(--bad)}
.metric{font-size:16px;margin:6px 0 2px}
footer{margin-top:30px;color:var(--muted);font-size:12.5px}
"#;
