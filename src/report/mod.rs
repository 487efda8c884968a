//! `report.html`: one self-contained page per run, to *see* the order.
//!
//! The server writes it into every run directory next to `summary.json` and
//! the delivery logs (so the demo has one per run too); [`write_report`]
//! rebuilds it from those files at any time. The page holds:
//!
//! * the **explorer** (`explorer.rs`, when the run directory holds a
//!   `trace.jsonl`): the classic space-time diagram — each send on its
//!   sender's lane, an arrow to its arrival on every other lane, the time a
//!   message waits in the hold-back queue drawn as a bar up to its delivery —
//!   with zoom and pan, and a time cursor to drag, step or play: at the
//!   cursor, a panel per peer shows its Lamport clock, its hold-back queue
//!   and, in words, what the head of the queue waits for. Click a message to
//!   follow it on every lane.
//! * a **static diagram of the deliveries** (`diagram.rs`): one lane per peer, each
//!   delivery a mark at its delivery time, coloured by sender, and the
//!   marks of one message joined across the lanes. Crossing lines are
//!   disorder; the first unordered round is ringed. Hovering a mark shows
//!   who delivered what, with its Lamport stamp, when and at which position.
//! * a **latency histogram** (`histogram.rs`): send to delivery.
//! * the **verdict**: each ordering property with its first counter-example
//!   in words, the original MPComm metric ("Found X unordered message
//!   rounds"), latency, and a table of the members and their counters.
//!
//! # Why self-contained, and why it works without JavaScript
//!
//! A report is something students open from a file, mail to each other and
//! keep for years. So it needs nothing but itself: the SVG is written
//! inline, the style sheet and the explorer's script are inline, the trace
//! is embedded as JSON, and no fonts, images or scripts are fetched. The
//! static parts need no script at all — the tooltips are SVG `<title>`
//! elements, which every browser shows on hover by itself — so a browser
//! with scripts off still shows the diagram of the deliveries and the
//! verdict; only the explorer needs the script.
//!
//! # Untrusted text
//!
//! Peer names, regions and error messages come from other processes. All of
//! it is escaped ([`svg::esc`]) before it enters the page, so a peer called
//! `<script>…` is shown, not run.
//!
//! # Incomplete runs
//!
//! A run can fail half-way: a peer dies, a log is missing or cut short,
//! the checker never ran. The report then draws what exists and says, in a
//! list at the top, what is missing; rendering never panics.

mod compare;
mod diagram;
mod explorer;
mod histogram;
mod page;
pub mod svg;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Context;
use mpcomm_check::log::LogErrorKind;
use mpcomm_check::{Findings, PeerLog};
use mpcomm_core::MemberId;
use serde::Deserialize;

pub use compare::{COMPARE_FILE, render_compare};
pub use diagram::{AROUND, FULL_LIMIT, HEAD, windows};
pub use mpcomm_sim::trace::Trace;

/// The file name of the report in a run directory.
pub const REPORT_FILE: &str = "report.html";

/// Another run to link to from a report (e.g. the same seed under another
/// order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Related {
    /// What it is, e.g. "the same seed and workload under total".
    pub label: String,
    /// A relative link to its report.
    pub href: String,
}

/// Everything the report shows. [`write_report`] fills it from a run
/// directory; tests and other tools can build one by hand.
#[derive(Clone, Debug, Default)]
pub struct ReportInput {
    /// A name for the run, shown as the page title (the run directory's
    /// name, normally).
    pub title: String,
    /// The run id.
    pub run: Option<u64>,
    /// Whether the run passed; `None` when unknown.
    pub passed: Option<bool>,
    /// Why the run failed, if it did.
    pub error: Option<String>,
    /// The run's parameters.
    pub params: ReportParams,
    /// How long the run took, in seconds.
    pub duration_s: Option<f64>,
    /// The members, in id order.
    pub members: Vec<ReportMember>,
    /// The checker's findings, when the checker ran.
    pub findings: Option<Findings>,
    /// The delivery logs that could be read, one per peer.
    pub logs: Vec<PeerLog>,
    /// What is missing or could not be read, one sentence each.
    pub missing: Vec<String>,
    /// The merged trace (`trace.jsonl`), when the run was traced: the
    /// explorer draws it.
    pub trace: Option<Trace>,
    /// Other runs to link to.
    pub related: Vec<Related>,
    /// A relative link to a page showing this run beside the related ones.
    pub compare: Option<String>,
}

/// The parameters of a run, as `summary.json` stores them (every field
/// optional, so that an older or partial summary still reads).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ReportParams {
    /// Messages each peer multicast.
    pub messages: Option<u64>,
    /// `none`, `fifo`, `causal`, `sequencer` or `total`.
    pub order: Option<String>,
    /// Shortest pause between two messages of a peer, µs.
    pub min_interval: Option<u64>,
    /// Longest pause between two messages of a peer, µs.
    pub max_interval: Option<u64>,
    /// Bytes per message.
    pub payload: Option<u64>,
    /// The emulated wide-area network, if any.
    pub wan: Option<String>,
    /// The workload seed.
    pub seed: Option<u64>,
}

/// One member of a run, as `summary.json` stores it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ReportMember {
    /// Member id.
    pub id: MemberId,
    /// Registered name.
    pub name: String,
    /// Region label.
    pub region: String,
    /// `completed`, `failed` or `missing`.
    pub status: String,
    /// Why it failed.
    pub error: Option<String>,
    /// Log entries the server received.
    pub entries: u64,
    /// The peer's protocol counters.
    pub stats: BTreeMap<String, u64>,
}

/// What the report reads from `summary.json`; the findings are read
/// separately, because the server flattens them into the top level.
#[derive(Deserialize)]
struct Summary {
    #[serde(default)]
    run: Option<u64>,
    #[serde(default)]
    passed: Option<bool>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    params: ReportParams,
    #[serde(default)]
    duration_s: Option<f64>,
    #[serde(default)]
    members: Vec<ReportMember>,
}

/// The whole page, as one string of HTML.
pub fn render_report(input: &ReportInput) -> String {
    page::render(input)
}

/// Reads a run directory (`summary.json` and the `member-K.jsonl` logs),
/// renders its report and writes it to `run_dir/report.html`, returning
/// that path.
///
/// The file is written to a temporary name and renamed, so a reader never
/// sees half a report. Logs that are missing or unreadable do not stop the
/// report: it is drawn without them and says so. Only an unreadable
/// `summary.json` or a failure to write is an error.
pub fn write_report(run_dir: &Path) -> anyhow::Result<PathBuf> {
    let input = load(run_dir)?;
    save_report(run_dir, &render_report(&input))
}

/// Writes rendered `html` to `run_dir/report.html` through a temporary
/// file and a rename, and returns the path.
pub fn save_report(run_dir: &Path, html: &str) -> anyhow::Result<PathBuf> {
    let path = run_dir.join(REPORT_FILE);
    let tmp = run_dir.join(format!(".{REPORT_FILE}.tmp"));
    std::fs::write(&tmp, html).with_context(|| format!("cannot write {}", tmp.display()))?;
    if let Err(e) = std::fs::rename(&tmp, &path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(anyhow::Error::new(e).context(format!(
            "cannot rename {} to {}",
            tmp.display(),
            path.display()
        )));
    }
    Ok(path)
}

/// Reads what the report needs from a run directory.
pub fn load(run_dir: &Path) -> anyhow::Result<ReportInput> {
    let summary_path = run_dir.join("summary.json");
    let text = std::fs::read_to_string(&summary_path)
        .with_context(|| format!("cannot read {}", summary_path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", summary_path.display()))?;
    let summary: Summary = serde_json::from_value(value.clone())
        .with_context(|| format!("{} is not a run summary", summary_path.display()))?;
    // The server flattens the findings into the summary's top level; they
    // are absent when the checker did not run.
    let findings = serde_json::from_value::<Findings>(value).ok();

    let mut missing = Vec::new();
    let mut logs = Vec::new();
    let mut ids: BTreeSet<MemberId> = summary.members.iter().map(|m| m.id).collect();
    // A log on disk for a member the summary does not list still shows.
    for k in 0..=u16::MAX {
        if ids.contains(&k) {
            continue;
        }
        if log_path(run_dir, k).is_none() {
            break;
        }
        ids.insert(k);
    }
    for id in ids {
        match log_path(run_dir, id) {
            None => missing.push(format!("no delivery log for member {id}")),
            Some(path) => match mpcomm_check::log::read_log_file(&path) {
                Ok(log) if log.peer == id => logs.push(log),
                Ok(log) => missing.push(format!(
                    "{} holds the log of peer {}, not of member {id}: left out",
                    file_name(&path),
                    log.peer
                )),
                Err(e) if e.kind == LogErrorKind::Empty => logs.push(PeerLog::new(id, Vec::new())),
                Err(e) => missing.push(format!("{e}: left out")),
            },
        }
    }
    if findings.is_none() {
        missing.push(match &summary.error {
            Some(_) => "no verdict: the checker did not run, because the run failed (see above)"
                .to_string(),
            None => "no verdict: summary.json holds no findings".to_string(),
        });
    }
    let trace_path = run_dir.join(mpcomm_sim::trace::TRACE_FILE);
    let trace = if trace_path.is_file() {
        match std::fs::File::open(&trace_path)
            .map_err(|e| format!("cannot open {}: {e}", trace_path.display()))
            .and_then(|f| {
                mpcomm_sim::trace::read(
                    std::io::BufReader::new(f),
                    &trace_path.display().to_string(),
                )
                .map_err(|e| e.to_string())
            }) {
            Ok(t) => Some(t),
            Err(e) => {
                missing.push(format!("{e}: the explorer is left out"));
                None
            }
        }
    } else {
        None
    };
    let title = run_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| run_dir.display().to_string());
    Ok(ReportInput {
        title,
        run: summary.run,
        passed: summary.passed,
        error: summary.error,
        params: summary.params,
        duration_s: summary.duration_s,
        members: summary.members,
        findings,
        logs,
        missing,
        trace,
        related: Vec::new(),
        compare: None,
    })
}

/// The member's log: `member-K.jsonl`, or `member-K.failed.jsonl` when the
/// peer reported a failure.
fn log_path(dir: &Path, id: MemberId) -> Option<PathBuf> {
    [
        format!("member-{id}.jsonl"),
        format!("member-{id}.failed.jsonl"),
    ]
    .into_iter()
    .map(|n| dir.join(n))
    .find(|p| p.is_file())
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

#[cfg(test)]
mod tests;
