//! The explorer: the run's trace, drawn and stepped through in the page.
//!
//! The Rust side only packs the trace (`trace.jsonl`) into a compact JSON
//! block inside the page and writes the explorer's frame (toolbar, the place
//! for the diagram, the peer panels); the drawing and the time cursor are
//! the script `explorer.js`, inlined. Everything is in the one file, so the
//! report still opens offline, from a mail or a USB stick.
//!
//! # What the script shows
//!
//! * **The space-time diagram.** One lane per peer, time to the right. A
//!   send is a small triangle on its sender's lane; an arrow runs from it to
//!   the record's first arrival on every other lane; from the arrival a bar
//!   runs to the delivery (a filled mark): the time the record spent in the
//!   hold-back queue. Bars stack, so a tall stack is a long queue. Wheel or
//!   the buttons zoom, dragging the lanes pans; a long run starts zoomed in.
//! * **The time cursor.** Drag the slider, step event by event (buttons or
//!   the arrow keys), or play. At the cursor every peer's panel shows its
//!   Lamport clock (and vector clock, when the trace has one), its hold-back
//!   queue in order, and for the head, in words, what it waits for — the
//!   `wait` events of the trace.
//! * **Follow a message.** Clicking a message highlights it on every lane
//!   and lists its send, arrivals and deliveries.
//! * **The first unordered round**, named message by message (rounds and
//!   positions counted from 1 here, as a reader counts).
//!
//! # The data block
//!
//! `{"peers":[…],"msgs":[[sender,seq,stamp,kind]…],"ev":[[t_us,peer,type,msg,clock,wait]…],"waits":[[[ids],cause,why]…],…}`
//! with `type` 0 send, 1 arrive, 2 wait, 3 deliver, `kind` 0 data, 1 end of
//! stream, 2 control, times in µs from the first event, and `wait` an index
//! into `waits` (or -1); `why` is `null` for `total`'s waits, whose
//! sentence the script rebuilds in the words of
//! [`mpcomm_core::WaitReason::sentence`]. Arrays instead of objects keep a
//! 6 × 100 trace near 350 kB.

use std::collections::HashMap;
use std::fmt::Write as _;

use mpcomm_core::MemberId;
use serde_json::{Value, json};

use super::ReportInput;
use super::svg::{self, esc};

/// The explorer's script.
const SCRIPT: &str = include_str!("explorer.js");

/// A record's identity in the trace.
type MsgKey = (MemberId, u8, u64);

fn kind_code(kind: Option<&str>) -> u8 {
    match kind {
        Some("eos") => 1,
        Some("control") => 2,
        _ => 0,
    }
}

/// A lane of the explorer: member id, name, region.
pub struct ExplorerLane {
    /// Member id.
    pub id: MemberId,
    /// Name.
    pub name: String,
    /// Region.
    pub region: String,
}

/// The JSON data block for `input`'s trace; `None` without a trace.
fn data(input: &ReportInput, lanes: &[ExplorerLane], order: &str) -> Option<Value> {
    let trace = input.trace.as_ref()?;
    let t0 = trace.lines.iter().map(|l| l.t_us).min().unwrap_or(0);
    let mut index: HashMap<MsgKey, usize> = HashMap::new();
    let mut msgs: Vec<Value> = Vec::new();
    let mut waits: Vec<Value> = Vec::new();
    let mut ev: Vec<Value> = Vec::with_capacity(trace.lines.len());
    let mut vcs = serde_json::Map::new();
    for (i, l) in trace.lines.iter().enumerate() {
        let kind = kind_code(l.kind.as_deref());
        let m = *index.entry((l.sender, kind, l.seq)).or_insert_with(|| {
            msgs.push(json!([l.sender, l.seq, l.stamp, kind]));
            msgs.len() - 1
        });
        let ty = match l.event.as_str() {
            "send" => 0,
            "arrive" => 1,
            "wait" => 2,
            _ => 3,
        };
        let wait = if ty == 2 {
            // The sentence of the common `total` wait is rebuilt by the
            // script (the same words): thousands of them would double the
            // page.
            let cause = l.cause.clone().unwrap_or_default();
            let why = if cause == "acks" {
                Value::Null
            } else {
                json!(l.why.clone().unwrap_or_default())
            };
            waits.push(json!([
                l.waiting_for.clone().unwrap_or_default(),
                cause,
                why
            ]));
            waits.len() as i64 - 1
        } else {
            -1
        };
        ev.push(json!([l.t_us - t0, l.peer, ty, m, l.clock, wait]));
        if let Some(vc) = &l.vc {
            vcs.insert(i.to_string(), json!(vc));
        }
    }
    // The first unordered round, message by message, from the logs.
    let first = input
        .findings
        .as_ref()
        .and_then(|f| f.first_unordered_round)
        .or_else(|| mpcomm_check::unordered_rounds(&input.logs).first_unordered)
        .and_then(|r| usize::try_from(r).ok())
        .map(|r| {
            let at: Vec<Value> = input
                .logs
                .iter()
                .filter_map(|log| {
                    let e = log.entries.get(r)?;
                    let m = index.get(&(e.sender, 0, e.seq))?;
                    Some(json!([log.peer, m, e.sender, e.seq]))
                })
                .collect();
            json!({"round": r, "at": at})
        });
    let (unordered, rounds) = input
        .findings
        .as_ref()
        .map_or((None, None), |f| (Some(f.unordered_rounds), Some(f.rounds)));
    let peers: Vec<Value> = lanes
        .iter()
        .map(|l| json!({"id": l.id, "name": l.name, "region": l.region, "colour": svg::colour(l.id)}))
        .collect();
    Some(json!({
        "order": order,
        "peers": peers,
        "msgs": msgs,
        "ev": ev,
        "waits": waits,
        "vcs": vcs,
        "first": first,
        "unordered": unordered,
        "rounds": rounds,
        "windowed": trace.meta.windowed(),
        "complete_until": trace.meta.complete_until_us.map(|t| t.saturating_sub(t0)),
        "window_note": trace.meta.describe(),
        "palette": svg::PALETTE,
    }))
}

/// JSON made safe inside a `<script>` element: `<` only occurs inside JSON
/// strings, where `\u003c` means the same.
fn script_safe(json: &str) -> String {
    json.replace('<', "\\u003c")
}

/// Writes the explorer section (nothing without a trace).
pub fn render(s: &mut String, input: &ReportInput, lanes: &[ExplorerLane], order: &str) {
    let Some(data) = data(input, lanes, order) else {
        return;
    };
    let Some(trace) = input.trace.as_ref() else {
        return;
    };
    s.push_str("<section id=\"explorer\"><h2>Explorer: watch the algorithm think</h2>");
    s.push_str(
        "<p class=\"how\">One lane per peer, time to the right. A <strong>triangle</strong> is a send; \
         an <strong>arrow</strong> runs from it to the message's arrival at every other peer; the \
         <strong>bar</strong> from the arrival to the filled <strong>mark</strong> is the time the message \
         waited in that peer's hold-back queue before it was delivered. Move the <strong>cursor</strong> \
         (drag the slider, step with ◀ ▶ or the arrow keys, or play): under the diagram each peer shows \
         its Lamport clock, its hold-back queue and what the head of the queue waits for. Click a message \
         to follow it on every lane; scroll to zoom, drag the lanes to pan.</p>",
    );
    let _ = write!(
        s,
        "<p class=\"window-note{}\">{}</p>",
        if trace.meta.windowed() {
            " windowed"
        } else {
            ""
        },
        esc(&trace.meta.describe())
    );
    s.push_str(
        "<noscript><p class=\"missing\">The explorer needs JavaScript. Without it, the static diagram of the \
         deliveries below shows the same run.</p></noscript>\
         <div class=\"ex-live\">\
         <div class=\"ex-bar\" role=\"toolbar\" aria-label=\"time cursor\">\
         <button type=\"button\" id=\"ex-start\" title=\"first event\">|◀</button>\
         <button type=\"button\" id=\"ex-prev\" title=\"previous event (←)\">◀</button>\
         <button type=\"button\" id=\"ex-play\" title=\"play / pause (space)\">▶ play</button>\
         <button type=\"button\" id=\"ex-next\" title=\"next event (→)\">▶</button>\
         <button type=\"button\" id=\"ex-end\" title=\"last event\">▶|</button>\
         <input type=\"range\" id=\"ex-slider\" min=\"0\" max=\"0\" value=\"0\" aria-label=\"event at the cursor\">\
         <span class=\"ex-zoom\"><button type=\"button\" id=\"ex-zoom-in\" title=\"zoom in\">+</button>\
         <button type=\"button\" id=\"ex-zoom-out\" title=\"zoom out\">−</button>\
         <button type=\"button\" id=\"ex-fit\" title=\"show the whole run\">fit</button></span>\
         <button type=\"button\" id=\"ex-first\" hidden>first unordered round</button>\
         </div>\
         <div id=\"ex-status\" aria-live=\"polite\"></div>\
         <div id=\"ex-diagram\" tabindex=\"0\" aria-label=\"space-time diagram; arrow keys step the cursor\"></div>\
         <div id=\"ex-round\" hidden></div>\
         <div id=\"ex-follow\" hidden></div>\
         <div id=\"ex-panels\"></div>\
         </div>",
    );
    let json = serde_json::to_string(&data).unwrap_or_else(|_| "null".into());
    let _ = writeln!(
        s,
        "<script type=\"application/json\" id=\"explorer-data\">{}</script><script>{SCRIPT}</script></section>",
        script_safe(&json)
    );
}

/// The explorer's style sheet (added to the page's).
pub const CSS: &str = r#"
#explorer .ex-live{display:none}
#explorer.live .ex-live{display:block}
.window-note{font-size:12.5px;color:var(--muted);margin:2px 0 6px}
.window-note.windowed{color:var(--warn);font-weight:600}
.ex-bar{display:flex;flex-wrap:wrap;gap:6px;align-items:center;margin:6px 0}
.ex-bar button{font:inherit;padding:3px 9px;border:1px solid #b9c0cc;border-radius:5px;background:#f7f8fa;cursor:pointer}
.ex-bar button:hover{background:#eceff3}
#ex-slider{flex:1 1 260px;min-width:160px}
.ex-zoom{display:inline-flex;gap:3px}
#ex-status{font-variant-numeric:tabular-nums;min-height:1.4em;margin:2px 0 4px}
#ex-diagram{border:1px solid var(--line);border-radius:6px;overflow:hidden;user-select:none;touch-action:none;cursor:grab}
#ex-diagram svg{display:block}
#ex-diagram .lane-bg{fill:#f4f6f9}
#ex-diagram .lane-line{stroke:#b9c0cc;stroke-width:1}
#ex-diagram .lane-name{font-size:12.5px;font-weight:600;fill:var(--ink)}
#ex-diagram .lane-sub{font-size:10.5px;fill:var(--muted)}
#ex-diagram .arrow{stroke-width:1;stroke-opacity:.55;fill:none}
#ex-diagram .bar{fill-opacity:.38}
#ex-diagram .send{stroke:#1d2433;stroke-width:.6}
#ex-diagram .dlv{stroke:#fff;stroke-width:.7}
#ex-diagram .hit{cursor:pointer}
#ex-diagram .faded{opacity:.12}
#ex-diagram .followed.arrow{stroke-width:2.2;stroke-opacity:1}
#ex-diagram .followed.bar{fill-opacity:.8}
#ex-diagram .followed.dlv,#ex-diagram .followed.send{stroke:#000;stroke-width:1.6}
#ex-diagram .cursor{stroke:#d00000;stroke-width:1.5}
#ex-diagram .cursor-ev{fill:none;stroke:#d00000;stroke-width:2}
#ex-diagram .ring{fill:none;stroke:#d00000;stroke-width:2.2}
#ex-diagram .partial{fill:#eceff3;fill-opacity:.7}
#ex-diagram .partial-label{font-size:11px;fill:var(--warn)}
#ex-diagram .lod{font-size:11px;fill:var(--muted)}
#ex-round,#ex-follow{margin:6px 0;padding:6px 10px;border-left:4px solid #d00000;background:#fdf2f2}
#ex-follow{border-left-color:#0072B2;background:#eef5fb}
#ex-follow button,#ex-round button{font:inherit;margin-left:8px}
#ex-panels{display:grid;grid-template-columns:repeat(auto-fill,minmax(250px,1fr));gap:8px;margin-top:8px}
#ex-panels .peer{border:1px solid var(--line);border-radius:6px;padding:6px 9px;border-top:4px solid var(--pc,#8a94a6)}
#ex-panels .peer h3{font-size:13.5px;margin:0}
#ex-panels .peer .clock{font-variant-numeric:tabular-nums;font-weight:700}
#ex-panels .peer .vc{font:11.5px ui-monospace,Menlo,Consolas,monospace;color:var(--muted)}
#ex-panels .peer ol{margin:3px 0 0;padding-left:22px;font-size:12.5px}
#ex-panels .peer li.head{font-weight:600}
#ex-panels .peer .why{font-size:12.5px;margin-top:4px;color:#7a1d1d}
#ex-panels .peer .note{font-size:12px;color:var(--muted)}
#ex-panels .peer .more{color:var(--muted)}
body.compact #latency-section,body.compact #members,body.compact footer{display:none}
"#;
