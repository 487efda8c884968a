//! Reading and writing delivery logs (JSON Lines), version 2.
//!
//! A delivery log is what one member delivered in one run, in delivery
//! order: one JSON object per line, each line ending with a newline.
//! Version 2 gives lines a *type*, in a `"type"` key:
//!
//! ```text
//! {"type":"meta","format":2,"run":7,"peer":0,"name":"alpha","order":"total","members":3,"messages":100,"workload":"seq","seed":42}
//! {"run":7,"peer":0,"sender":2,"seq":0,"stamp":3,"sent_us":1764355200000000,"delivered_us":1764355200000412}
//! …one line per delivered message…
//! {"type":"end","status":"completed","delivered":300,"t_us":1764355207000000}
//! ```
//!
//! * The **meta** line comes first ([`LogMeta`]): which run, which member,
//!   the order, the group size and how many messages each member sends.
//!   With it a log can be checked alone: `mpcomm check` on bare files gives
//!   the same verdict as on the run's directory.
//! * A **delivery** line has no `"type"` ([`LogEntry`]): `run`, `peer`,
//!   `sender` and `seq` are required; `stamp`, `sent_us`, `delivered_us`
//!   and the workload's `after` and `op` (see [`crate::workload`]) may be
//!   absent (or `null`).
//! * A **view** line comes between deliveries whenever the member installs
//!   a new view of the group (see [`crate::views`]): the first view (id 1,
//!   every member) before the first delivery, and a new one each time a
//!   member leaves (crashed, excluded) or joins:
//!   `{"type":"view","view":2,"members":[0,1,3],"joined":[],"left":[2],"t_us":…}`.
//!   `view` and `members` are required, `joined` and `left` default to
//!   empty, `t_us` (when the member installed it) may be absent. Deliveries
//!   after a view line belong to that view. They are read into
//!   [`PeerLog::views`], each with the number of deliveries before it.
//! * The **end** line comes last ([`LogEnd`]): written when the run ended,
//!   it says how (`completed` or `failed`, with the error) and how many
//!   deliveries precede it.
//!
//! # Partial logs
//!
//! A log whose last line is not an end line is **partial**: its writer was
//! interrupted — killed, crashed, or the machine lost power — and the log
//! holds what was on disk at that moment. It is still evidence (what did
//! the member deliver before it stopped?), so it reads without error, and
//! [`PeerLog::status`] says it is partial; the checker never takes it for a
//! complete log. A writer killed in the middle of a line leaves that line
//! cut off; in a partial log, a cut-off last line is dropped (it is the
//! one delivery that was not written whole).
//!
//! Because a log says itself whether it is complete, the writer does not
//! need the "write to a temporary name, then rename" dance: a log is
//! written under its final name from its first line, so a crash leaves it
//! where everyone looks, and marked partial by its missing end line.
//!
//! # Version 1
//!
//! Logs of earlier mpcomm versions have delivery lines only: they read, as
//! logs that say nothing about themselves ([`LogStatus::Unstated`]), and
//! need the order and counts from elsewhere (a run directory's
//! `summary.json`, or `mpcomm check --order`).
//!
//! # Reading is strict
//!
//! A log is evidence: a line that is not a complete, well-formed line of a
//! known type is an error that names the file, the line and the reason —
//! never a silently shorter log. Unknown keys are ignored (so a newer
//! writer's additions still read); unknown types are an error (so they are
//! never silently misread). The one leniency is a Windows line ending
//! (`\r\n`), which an editor may have introduced.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;

use mpcomm_core::{MemberId, OrderKind};
use serde::{Deserialize, Serialize};
use serde_json::error::Category;
use thiserror::Error;

use crate::properties::common_run;
use crate::views::ViewMark;
use crate::{LogEntry, PeerLog, RunSpec};

/// The log format this crate writes (and the newest it reads).
pub const FORMAT: u32 = 2;

/// The longest line a log may have, without its line ending. An entry is
/// about 120 bytes; a line this long is not a log entry, and reading stops
/// there instead of filling memory with it.
pub const MAX_LINE: usize = 64 * 1024;

/// The first line of a version-2 log: what a checker must know to judge
/// the log alone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogMeta {
    /// The log format, [`FORMAT`].
    pub format: u32,
    /// The run id; every delivery line carries it too.
    pub run: u64,
    /// The member that wrote the log (its member id).
    pub peer: MemberId,
    /// The member's name, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The run's delivery order (`none`, `fifo`, `total`, …), as a word, so
    /// that a log of an order this build does not know still reads.
    pub order: String,
    /// Group size at the start of the run: the members are `0..members`.
    pub members: usize,
    /// How many messages each member multicasts.
    pub messages: Messages,
    /// The workload (`"seq"`: numbered messages at random pauses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    /// The seed of the member's random choices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

impl LogMeta {
    /// The order, if this build knows it.
    pub fn order_kind(&self) -> Result<OrderKind, String> {
        self.order.parse().map_err(|e| format!("{e}"))
    }

    /// The checker's view of the run: order, group size, messages sent.
    pub fn spec(&self) -> Result<RunSpec, String> {
        Ok(RunSpec {
            order: self.order_kind()?,
            members: self.members,
            sent: self.messages.per_member(self.members),
        })
    }
}

/// How many messages each member multicasts: one number for all
/// (`"messages":100`), or a list indexed by member id
/// (`"messages":[100,0,50]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Messages {
    /// Every member sends this many.
    All(u64),
    /// Member `i` sends `list[i]` (none beyond the end of the list).
    PerMember(Vec<u64>),
}

impl Messages {
    /// The count of each of `members` members.
    pub fn per_member(&self, members: usize) -> Vec<u64> {
        match self {
            Messages::All(n) => vec![*n; members],
            Messages::PerMember(list) => (0..members)
                .map(|i| list.get(i).copied().unwrap_or(0))
                .collect(),
        }
    }
}

/// How a run ended for the member, as its end line says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndStatus {
    /// The member delivered every member's whole stream.
    Completed,
    /// The run failed for the member (see [`LogEnd::error`]); the log holds
    /// what it delivered until then.
    Failed,
}

impl fmt::Display for EndStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EndStatus::Completed => "completed",
            EndStatus::Failed => "failed",
        })
    }
}

/// The last line of a version-2 log, written when the run ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEnd {
    /// How the run ended.
    pub status: EndStatus,
    /// Why it failed (with [`EndStatus::Failed`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The number of delivery lines before this one.
    pub delivered: u64,
    /// When the run ended, in microseconds (the clock of `delivered_us`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t_us: Option<u64>,
}

/// What a log says about itself ([`PeerLog::status`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStatus {
    /// Its end line says the run completed.
    Completed,
    /// Its end line says the run failed.
    Failed,
    /// It has a meta line but no end line: its writer was interrupted.
    Partial,
    /// A version-1 log: no meta and no end line, so it says nothing.
    Unstated,
}

impl LogStatus {
    /// Whether the log stops before the run's end: failed or partial.
    pub fn cut_short(self) -> bool {
        matches!(self, LogStatus::Failed | LogStatus::Partial)
    }
}

impl fmt::Display for LogStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogStatus::Completed => "completed",
            LogStatus::Failed => "failed",
            LogStatus::Partial => "partial",
            LogStatus::Unstated => "unstated",
        })
    }
}

/// What is wrong with a log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogErrorKind {
    /// The file has no lines at all. (A version-1 log of a peer that
    /// delivered nothing has nothing to say which peer it is; the caller
    /// knows, and can build an empty [`PeerLog`] itself.)
    Empty,
    /// The file could not be opened.
    Open(String),
    /// Reading failed.
    Io(String),
    /// A line longer than [`MAX_LINE`] bytes.
    TooLong,
    /// The last line ends without a newline in the middle of its JSON (the
    /// writer was interrupted) in a log that has no meta line (version 1);
    /// in a version-2 log this makes the log partial instead.
    Truncated,
    /// An empty (or all-blank) line.
    Blank,
    /// A required field is absent.
    MissingField(String),
    /// Not valid JSON, or a field of the wrong type or out of range.
    BadJson(String),
    /// The entry names another peer than the log's meta or first line.
    PeerMismatch {
        /// The log's peer.
        expected: u16,
        /// This line's.
        found: u16,
    },
    /// The entry names another run than the log's meta or first line.
    RunMismatch {
        /// The log's run.
        expected: u64,
        /// This line's.
        found: u64,
    },
    /// A line of a type this reader does not know.
    UnknownType(String),
    /// A meta line that is not the first line.
    MetaNotFirst,
    /// A line after the end line.
    AfterEnd,
    /// A view line whose id is not above the previous view line's: views
    /// are installed in increasing order.
    ViewOrder {
        /// The previous view line's id.
        previous: u32,
        /// This line's.
        found: u32,
    },
    /// A meta line of a format this reader does not know.
    Format(u32),
    /// The end line's count of deliveries differs from the log's.
    EndCount {
        /// What the end line says.
        said: u64,
        /// Delivery lines in the log.
        found: u64,
    },
}

/// A log that cannot be read, with where and why. Displays as
/// `member-1.jsonl, line 2: missing field "seq"`.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub struct LogError {
    /// The file (or other source) name.
    pub file: String,
    /// The 1-based line number, when the problem is on a line.
    pub line: Option<usize>,
    /// What is wrong.
    pub kind: LogErrorKind,
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}, line {line}: ", self.file)?,
            None => write!(f, "{}: ", self.file)?,
        }
        match &self.kind {
            LogErrorKind::Empty => write!(f, "the log is empty (no delivered messages)"),
            LogErrorKind::Open(e) => write!(f, "cannot open: {e}"),
            LogErrorKind::Io(e) => write!(f, "cannot read: {e}"),
            LogErrorKind::TooLong => write!(
                f,
                "line is longer than {MAX_LINE} bytes: not a delivery log"
            ),
            LogErrorKind::Truncated => write!(
                f,
                "the last line is truncated (no newline, incomplete JSON): was the writer interrupted?"
            ),
            LogErrorKind::Blank => write!(f, "empty line"),
            LogErrorKind::MissingField(field) => write!(f, "missing field \"{field}\""),
            LogErrorKind::BadJson(e) => write!(f, "not a log entry: {e}"),
            LogErrorKind::PeerMismatch { expected, found } => write!(
                f,
                "entry of peer {found} in the log of peer {expected} (logs of different peers mixed in one file?)"
            ),
            LogErrorKind::RunMismatch { expected, found } => write!(
                f,
                "entry of run {found} in a log of run {expected} (logs of different runs mixed in one file?)"
            ),
            LogErrorKind::UnknownType(t) => write!(
                f,
                "unknown line type {t:?} (this mpcomm reads \"meta\", \"view\", \"end\" and deliveries): written by a newer mpcomm?"
            ),
            LogErrorKind::MetaNotFirst => {
                write!(f, "a meta line must be the first line of a log")
            }
            LogErrorKind::AfterEnd => write!(
                f,
                "a line after the end line (logs of two runs in one file?)"
            ),
            LogErrorKind::ViewOrder { previous, found } => write!(
                f,
                "view {found} after view {previous}: a log's views must have increasing ids"
            ),
            LogErrorKind::Format(n) => write!(
                f,
                "log format {n} is not one this mpcomm reads (1 and {FORMAT}): written by a newer mpcomm?"
            ),
            LogErrorKind::EndCount { said, found } => write!(
                f,
                "the end line says {said} deliveries, but the log has {found}"
            ),
        }
    }
}

/// A view line as written and read: [`ViewMark`] without `at` (the line's
/// place among the deliveries says that).
#[derive(Serialize, Deserialize)]
struct ViewLine {
    /// The view's id. (`id` is accepted too: the first plan named it so.)
    #[serde(alias = "id")]
    view: u32,
    members: Vec<MemberId>,
    #[serde(default)]
    joined: Vec<MemberId>,
    #[serde(default)]
    left: Vec<MemberId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    t_us: Option<u64>,
}

/// A line with a `"type"` key, for dispatching; every other key is read
/// again by the line's own type.
#[derive(Deserialize)]
struct TypeProbe {
    #[serde(rename = "type", default)]
    kind: Option<String>,
}

/// Reads one peer's log. `source` names it in errors (usually the path).
///
/// The log's peer and run are those of its meta line or, in a version-1
/// log, of its first delivery; every delivery must name the same. Lines
/// are read one at a time, at most [`MAX_LINE`]` + 2` bytes each, so a
/// huge or binary file fails fast without filling memory.
pub fn read_log(mut reader: impl BufRead, source: &str) -> Result<PeerLog, LogError> {
    let err = |line: Option<usize>, kind| LogError {
        file: source.to_string(),
        line,
        kind,
    };
    let mut log = PeerLog::default();
    // The peer and run every delivery must name, once known.
    let mut owner: Option<(MemberId, u64)> = None;
    let mut buf = Vec::with_capacity(256);
    let mut number = 0;
    loop {
        buf.clear();
        number += 1;
        // Room for the longest allowed line and its "\r\n".
        let n = (&mut reader)
            .take(MAX_LINE as u64 + 2)
            .read_until(b'\n', &mut buf)
            .map_err(|e| err(Some(number), LogErrorKind::Io(e.to_string())))?;
        if n == 0 {
            break;
        }
        let terminated = buf.last() == Some(&b'\n');
        if terminated {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        if buf.len() > MAX_LINE {
            return Err(err(Some(number), LogErrorKind::TooLong));
        }
        if buf.iter().all(u8::is_ascii_whitespace) {
            return Err(err(Some(number), LogErrorKind::Blank));
        }
        // A cut-off last line: the writer was interrupted in the middle of
        // it. A version-2 log without its end line is partial anyway, and
        // this line is the one delivery not written whole; a version-1 log
        // cannot say it is partial, so the cut is an error there.
        let cut = |e: &serde_json::Error| !terminated && e.classify() == Category::Eof;
        let partial_v2 = log.meta.is_some() && log.end.is_none();
        let parse_error = |e: serde_json::Error| {
            let kind = if cut(&e) {
                LogErrorKind::Truncated
            } else {
                describe(&e)
            };
            err(Some(number), kind)
        };
        if log.end.is_some() {
            return Err(err(Some(number), LogErrorKind::AfterEnd));
        }
        let kind = if contains_type_key(&buf) {
            match serde_json::from_slice::<TypeProbe>(&buf) {
                Ok(p) => p.kind,
                Err(e) if partial_v2 && cut(&e) => break,
                Err(e) => return Err(parse_error(e)),
            }
        } else {
            None
        };
        match kind.as_deref() {
            None => {
                let entry: LogEntry = match serde_json::from_slice(&buf) {
                    Ok(entry) => entry,
                    Err(e) if partial_v2 && cut(&e) => break,
                    Err(e) => return Err(parse_error(e)),
                };
                match owner {
                    None => owner = Some((entry.peer, entry.run)),
                    Some((peer, run)) => {
                        if entry.peer != peer {
                            return Err(err(
                                Some(number),
                                LogErrorKind::PeerMismatch {
                                    expected: peer,
                                    found: entry.peer,
                                },
                            ));
                        }
                        if entry.run != run {
                            return Err(err(
                                Some(number),
                                LogErrorKind::RunMismatch {
                                    expected: run,
                                    found: entry.run,
                                },
                            ));
                        }
                    }
                }
                log.entries.push(entry);
            }
            Some("meta") => {
                if number != 1 {
                    return Err(err(Some(number), LogErrorKind::MetaNotFirst));
                }
                let meta: LogMeta = serde_json::from_slice(&buf).map_err(parse_error)?;
                if meta.format != FORMAT {
                    return Err(err(Some(number), LogErrorKind::Format(meta.format)));
                }
                owner = Some((meta.peer, meta.run));
                log.meta = Some(meta);
            }
            Some("view") => {
                let line: ViewLine = match serde_json::from_slice(&buf) {
                    Ok(line) => line,
                    Err(e) if partial_v2 && cut(&e) => break,
                    Err(e) => return Err(parse_error(e)),
                };
                if let Some(previous) = log.views.last().map(|v| v.id)
                    && line.view <= previous
                {
                    return Err(err(
                        Some(number),
                        LogErrorKind::ViewOrder {
                            previous,
                            found: line.view,
                        },
                    ));
                }
                log.views.push(ViewMark {
                    at: log.entries.len(),
                    id: line.view,
                    members: line.members,
                    joined: line.joined,
                    left: line.left,
                    t_us: line.t_us,
                });
            }
            Some("end") => {
                let end: LogEnd = match serde_json::from_slice(&buf) {
                    Ok(end) => end,
                    Err(e) if partial_v2 && cut(&e) => break,
                    Err(e) => return Err(parse_error(e)),
                };
                let found = log.entries.len() as u64;
                if end.delivered != found {
                    return Err(err(
                        Some(number),
                        LogErrorKind::EndCount {
                            said: end.delivered,
                            found,
                        },
                    ));
                }
                log.end = Some(end);
            }
            Some(other) => {
                return Err(err(
                    Some(number),
                    LogErrorKind::UnknownType(other.chars().take(40).collect()),
                ));
            }
        }
    }
    match owner {
        Some((peer, _)) => {
            log.peer = peer;
            Ok(log)
        }
        None if log.end.is_some() => Ok(log),
        None => Err(err(None, LogErrorKind::Empty)),
    }
}

/// Whether a line has a `"type"` key (or at least the bytes of one): only
/// those are parsed twice, so delivery lines, millions of them, are not.
fn contains_type_key(line: &[u8]) -> bool {
    line.windows(6).any(|w| w == b"\"type\"")
}

/// Sorts a JSON error into a missing field (named) or anything else.
fn describe(e: &serde_json::Error) -> LogErrorKind {
    // serde reports a missing field as "missing field `seq`" (plus the
    // position, which the line number makes redundant).
    let msg = e.to_string();
    match msg
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
    {
        Some(field) => LogErrorKind::MissingField(field.to_string()),
        None => LogErrorKind::BadJson(msg),
    }
}

/// Opens and reads the log at `path`, named by its path in errors.
pub fn read_log_file(path: impl AsRef<Path>) -> Result<PeerLog, LogError> {
    let path = path.as_ref();
    let source = path.display().to_string();
    let file = File::open(path).map_err(|e| LogError {
        file: source.clone(),
        line: None,
        kind: LogErrorKind::Open(e.to_string()),
    })?;
    read_log(BufReader::with_capacity(1 << 16, file), &source)
}

/// Writes one entry as a compact JSON line, ending with a newline, keys in
/// the documented order (`run`, `peer`, `sender`, `seq`, `stamp`, `sent_us`,
/// `delivered_us`; absent optional ones left out).
pub fn write_entry(w: &mut impl Write, e: &LogEntry) -> io::Result<()> {
    serde_json::to_writer(&mut *w, e)?;
    w.write_all(b"\n")
}

/// A typed line as written: the `"type"` key first, then the fields.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum TypedLine<'a> {
    Meta(&'a LogMeta),
    View(ViewLine),
    End(&'a LogEnd),
}

/// Writes the meta line (`{"type":"meta",…}` and a newline).
pub fn write_meta(w: &mut impl Write, meta: &LogMeta) -> io::Result<()> {
    serde_json::to_writer(&mut *w, &TypedLine::Meta(meta))?;
    w.write_all(b"\n")
}

/// Writes a view line (`{"type":"view","view":…,"members":[…],"joined":[…],"left":[…],"t_us":…}`
/// and a newline); the mark's `at` is not written, the line's place says it.
pub fn write_view(w: &mut impl Write, view: &ViewMark) -> io::Result<()> {
    let line = ViewLine {
        view: view.id,
        members: view.members.clone(),
        joined: view.joined.clone(),
        left: view.left.clone(),
        t_us: view.t_us,
    };
    serde_json::to_writer(&mut *w, &TypedLine::View(line))?;
    w.write_all(b"\n")
}

/// Writes the end line (`{"type":"end",…}` and a newline).
pub fn write_end(w: &mut impl Write, end: &LogEnd) -> io::Result<()> {
    serde_json::to_writer(&mut *w, &TypedLine::End(end))?;
    w.write_all(b"\n")
}

/// Logs of different runs given together.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("{log} is of run {run}, the others of run {others}: logs of different runs mixed")]
pub struct MixedRuns {
    /// The name of the odd log out.
    pub log: String,
    /// Its run.
    pub run: u64,
    /// The run of (most of) the others.
    pub others: u64,
}

/// The run of a log: its meta line's, or its first delivery's.
pub fn run_of(log: &PeerLog) -> Option<u64> {
    log.meta
        .as_ref()
        .map(|m| m.run)
        .or_else(|| log.entries.first().map(|e| e.run))
}

/// The run id shared by every log (`None` when no log names one), or the
/// first log, in the order given, that is of another run than most.
///
/// Each log counts with its run ([`run_of`]; [`read_log`] has made sure
/// its lines agree); the run of most logs is taken as the run, a tie going
/// to the first log's. `names[i]` names `logs[i]` in the error.
pub fn check_run_ids(logs: &[PeerLog], names: &[String]) -> Result<Option<u64>, MixedRuns> {
    let Some(common) = common_run(logs.iter().filter_map(run_of)) else {
        return Ok(None);
    };
    for (i, log) in logs.iter().enumerate() {
        if let Some(run) = run_of(log)
            && run != common
        {
            return Err(MixedRuns {
                log: names.get(i).cloned().unwrap_or_else(|| format!("log {i}")),
                run,
                others: common,
            });
        }
    }
    Ok(Some(common))
}

/// What the meta lines of a run's logs say about the run, or why they
/// cannot be believed.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum MetaError {
    /// Two logs' meta lines disagree on what every member shares.
    #[error("{a} and {b} disagree on the run's {what} ({va} and {vb}): logs of different runs?")]
    Disagree {
        /// One log.
        a: String,
        /// The other.
        b: String,
        /// `order`, `members` or `messages`.
        what: &'static str,
        /// `a`'s value.
        va: String,
        /// `b`'s value.
        vb: String,
    },
    /// A meta line names an order this build does not know.
    #[error("{log}: {why}")]
    Order {
        /// The log.
        log: String,
        /// The parser's message.
        why: String,
    },
}

/// The run's spec from the logs' meta lines (`Ok(None)` when no log has
/// one): every meta line must agree on the order, the group size and the
/// messages per member. `names[i]` names `logs[i]` in the error.
pub fn spec_from_meta(logs: &[PeerLog], names: &[String]) -> Result<Option<RunSpec>, MetaError> {
    let name = |i: usize| names.get(i).cloned().unwrap_or_else(|| format!("log {i}"));
    let mut first: Option<(usize, &LogMeta)> = None;
    for (i, log) in logs.iter().enumerate() {
        let Some(meta) = &log.meta else { continue };
        let Some((j, m)) = first else {
            first = Some((i, meta));
            continue;
        };
        let differ = |what: &'static str, va: String, vb: String| MetaError::Disagree {
            a: name(j),
            b: name(i),
            what,
            va,
            vb,
        };
        if m.order != meta.order {
            return Err(differ("order", m.order.clone(), meta.order.clone()));
        }
        if m.members != meta.members {
            return Err(differ(
                "group size",
                m.members.to_string(),
                meta.members.to_string(),
            ));
        }
        if m.messages.per_member(m.members) != meta.messages.per_member(meta.members) {
            return Err(differ(
                "messages per member",
                format!("{:?}", m.messages),
                format!("{:?}", meta.messages),
            ));
        }
    }
    match first {
        None => Ok(None),
        Some((i, meta)) => meta
            .spec()
            .map(Some)
            .map_err(|why| MetaError::Order { log: name(i), why }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mpcomm_core::OrderKind;

    fn entry(seq: u64) -> LogEntry {
        LogEntry {
            run: 7,
            peer: 1,
            sender: 2,
            seq,
            stamp: Some(3),
            sent_us: Some(10),
            delivered_us: Some(20),
            after: None,
            op: None,
        }
    }

    fn read(text: &str) -> Result<PeerLog, LogError> {
        read_log(text.as_bytes(), "member-1.jsonl")
    }

    const OK: &str = "{\"run\":7,\"peer\":1,\"sender\":2,\"seq\":0}\n";

    #[test]
    fn round_trip_with_documented_key_order() {
        let mut out = Vec::new();
        write_entry(&mut out, &entry(0)).unwrap();
        let bare = LogEntry {
            stamp: None,
            sent_us: None,
            delivered_us: None,
            after: None,
            op: None,
            ..entry(1)
        };
        write_entry(&mut out, &bare).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "{\"run\":7,\"peer\":1,\"sender\":2,\"seq\":0,\"stamp\":3,\"sent_us\":10,\"delivered_us\":20}\n\
             {\"run\":7,\"peer\":1,\"sender\":2,\"seq\":1}\n"
        );
        let log = read(&text).unwrap();
        assert_eq!(log.peer, 1);
        assert_eq!(log.entries, vec![entry(0), bare]);
    }

    #[test]
    fn tolerated_variations() {
        // A complete last line without its newline.
        assert_eq!(read(OK.trim_end()).unwrap().entries.len(), 1);
        // Windows line endings, spaces, other key orders, nulls, unknown keys.
        let text = "{\"run\":7,\"peer\":1,\"sender\":2,\"seq\":0}\r\n \
                    {\"seq\":1, \"sender\":2, \"peer\":1, \"run\":7, \"stamp\":null, \"note\":\"x\"} \n";
        let log = read(text).unwrap();
        assert_eq!(log.entries.len(), 2);
        assert_eq!(log.entries[1].stamp, None);
    }

    fn error(text: &str) -> String {
        read(text).unwrap_err().to_string()
    }

    #[test]
    fn each_error_names_file_line_and_reason() {
        let cases: [(String, &str); 12] = [
            (
                String::new(),
                "member-1.jsonl: the log is empty (no delivered messages)",
            ),
            (
                format!("{OK}{{\"run\":7,\"peer\":1,\"sen"),
                "member-1.jsonl, line 2: the last line is truncated (no newline, incomplete JSON): was the writer interrupted?",
            ),
            (
                format!("{OK}{{\"run\":7,\"peer\":1,\"sender\":2,\"seq\":1"),
                "member-1.jsonl, line 2: the last line is truncated",
            ),
            (
                format!("{OK}{{\"run\":7,\"peer\":1,\"sender\":2}}\n"),
                "member-1.jsonl, line 2: missing field \"seq\"",
            ),
            (
                format!("{OK}{{\"peer\":1,\"sender\":2,\"seq\":1}}"),
                "member-1.jsonl, line 2: missing field \"run\"",
            ),
            (format!("{OK}\n{OK}"), "member-1.jsonl, line 2: empty line"),
            (format!("{OK}  \t"), "member-1.jsonl, line 2: empty line"),
            (
                format!("{OK}not json\n"),
                "member-1.jsonl, line 2: not a log entry: expected ident",
            ),
            (
                format!("{OK}{{\"run\":7,\"peer\":4,\"sender\":2,\"seq\":1}}\n"),
                "member-1.jsonl, line 2: entry of peer 4 in the log of peer 1 (logs of different peers mixed in one file?)",
            ),
            (
                format!("{OK}{{\"run\":8,\"peer\":1,\"sender\":2,\"seq\":1}}\n"),
                "member-1.jsonl, line 2: entry of run 8 in a log of run 7 (logs of different runs mixed in one file?)",
            ),
            (
                format!("{OK}{{\"run\":7,\"peer\":1,\"sender\":-2,\"seq\":1}}\n"),
                "member-1.jsonl, line 2: not a log entry: invalid value: integer `-2`, expected u16",
            ),
            (
                format!("{OK}{OK}{{\"run\":7,\"peer\":1,\"sender\":70000,\"seq\":1}}\n"),
                "member-1.jsonl, line 3: not a log entry: invalid value: integer `70000`, expected u16",
            ),
        ];
        for (text, want) in cases {
            let e = error(&text);
            assert!(e.starts_with(want), "{e:?} does not start with {want:?}");
        }
    }

    #[test]
    fn an_unterminated_last_line_is_truncated_only_if_its_json_is_cut() {
        // Complete JSON lacking a field, or garbage: said as such.
        let e = read(&format!("{OK}{{\"run\":7,\"peer\":1,\"sender\":2}}")).unwrap_err();
        assert_eq!(e.kind, LogErrorKind::MissingField("seq".into()));
        let e = read(&format!("{OK}}}")).unwrap_err();
        assert!(matches!(e.kind, LogErrorKind::BadJson(_)), "{e}");
        // A cut line that still ends with a newline is not "truncated": the
        // writer finished it (wrongly).
        let e = read(&format!("{OK}{{\"run\":7,\"pe\n")).unwrap_err();
        assert!(matches!(e.kind, LogErrorKind::BadJson(_)), "{e}");
        // Every prefix of a line is truncated (or, at its full length, fine).
        let line = "{\"run\":7,\"peer\":1,\"sender\":2,\"seq\":10,\"stamp\":null,\"sent_us\":5}";
        for cut in 1..line.len() {
            let e = read(&format!("{OK}{}", &line[..cut])).unwrap_err();
            assert_eq!(e.kind, LogErrorKind::Truncated, "cut at {cut}: {e}");
            assert_eq!(e.line, Some(2));
        }
    }

    #[test]
    fn line_length_limit() {
        // Padding with spaces keeps the JSON valid: exactly MAX_LINE is fine,
        // with either line ending.
        let entry = OK.trim_end();
        let pad = " ".repeat(MAX_LINE - entry.len());
        for end in ["\n", "\r\n", ""] {
            let text = format!("{OK}{entry}{pad}{end}");
            assert_eq!(read(&text).unwrap().entries.len(), 2, "end {end:?}");
        }
        for end in ["\n", "\r\n", ""] {
            let text = format!("{OK}{entry}{pad} {end}{OK}");
            let e = read(&text).unwrap_err();
            assert_eq!((e.kind, e.line), (LogErrorKind::TooLong, Some(2)));
        }
        // A huge line without newlines is rejected after MAX_LINE + 2 bytes.
        let e = read(&"x".repeat(10 * MAX_LINE)).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "member-1.jsonl, line 1: line is longer than {MAX_LINE} bytes: not a delivery log"
            )
        );
    }

    #[test]
    fn binary_garbage_is_an_error_not_a_panic() {
        let bytes: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        assert!(read_log(&bytes[..], "x").is_err());
        assert!(read_log(&b"\xff\xfe{\"run\":1}\n"[..], "x").is_err());
    }

    #[test]
    fn io_errors_are_reported() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        let e = read_log(BufReader::new(Broken), "a.jsonl").unwrap_err();
        assert_eq!(e.to_string(), "a.jsonl, line 1: cannot read: disk on fire");
        let e = read_log_file("/nonexistent/dir/member-0.jsonl").unwrap_err();
        assert_eq!(e.line, None);
        assert!(
            e.to_string()
                .starts_with("/nonexistent/dir/member-0.jsonl: cannot open: "),
            "{e}"
        );
    }

    #[test]
    fn reads_a_file() {
        let path =
            std::env::temp_dir().join(format!("mpcomm-check-log-{}.jsonl", std::process::id()));
        let mut out = Vec::new();
        for seq in 0..3 {
            write_entry(&mut out, &entry(seq)).unwrap();
        }
        std::fs::write(&path, &out).unwrap();
        let log = read_log_file(&path);
        let _ = std::fs::remove_file(&path);
        assert_eq!(log.unwrap().entries, (0..3).map(entry).collect::<Vec<_>>());
    }

    fn of_run(peer: u16, run: u64) -> PeerLog {
        PeerLog::new(
            peer,
            vec![LogEntry {
                peer,
                run,
                ..entry(0)
            }],
        )
    }

    #[test]
    fn mixed_runs_name_the_odd_log_out() {
        let names: Vec<String> = ["a.jsonl", "b.jsonl", "c.jsonl"].map(String::from).to_vec();
        assert_eq!(check_run_ids(&[of_run(0, 7)], &names), Ok(Some(7)));
        assert_eq!(check_run_ids(&[], &names), Ok(None));
        let empty = PeerLog::default();
        assert_eq!(
            check_run_ids(&[empty.clone(), of_run(1, 7)], &names),
            Ok(Some(7))
        );
        assert_eq!(check_run_ids(&[empty], &names), Ok(None));
        let e = check_run_ids(&[of_run(0, 7), of_run(1, 9)], &names).unwrap_err();
        assert_eq!(
            e.to_string(),
            "b.jsonl is of run 9, the others of run 7: logs of different runs mixed"
        );
        // The majority decides which log is the odd one out, even the first.
        let e = check_run_ids(&[of_run(0, 9), of_run(1, 7), of_run(2, 7)], &names).unwrap_err();
        assert_eq!(
            e,
            MixedRuns {
                log: "a.jsonl".into(),
                run: 9,
                others: 7
            }
        );
        // Without a name, the log's index.
        let e = check_run_ids(&[of_run(0, 7), of_run(1, 9)], &[]).unwrap_err();
        assert_eq!(e.log, "log 1");
    }

    // ------------------------------------------------------------ version 2

    const META: &str = "{\"type\":\"meta\",\"format\":2,\"run\":7,\"peer\":1,\"name\":\"bravo\",\"order\":\"fifo\",\"members\":3,\"messages\":2,\"workload\":\"seq\",\"seed\":5}\n";
    const E0: &str = "{\"run\":7,\"peer\":1,\"sender\":2,\"seq\":0}\n";
    const E1: &str = "{\"run\":7,\"peer\":1,\"sender\":2,\"seq\":1}\n";

    fn meta() -> LogMeta {
        LogMeta {
            format: FORMAT,
            run: 7,
            peer: 1,
            name: Some("bravo".into()),
            order: "fifo".into(),
            members: 3,
            messages: Messages::All(2),
            workload: Some("seq".into()),
            seed: Some(5),
        }
    }

    #[test]
    fn a_whole_log_round_trips_with_meta_and_end() {
        let mut out = Vec::new();
        write_meta(&mut out, &meta()).unwrap();
        write_entry(&mut out, &entry(0)).unwrap();
        let end = LogEnd {
            status: EndStatus::Failed,
            error: Some("member 2 stopped answering".into()),
            delivered: 1,
            t_us: Some(99),
        };
        write_end(&mut out, &end).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("{\"type\":\"meta\",\"format\":2,"),
            "{text}"
        );
        assert!(
            text.ends_with("{\"type\":\"end\",\"status\":\"failed\",\"error\":\"member 2 stopped answering\",\"delivered\":1,\"t_us\":99}\n"),
            "{text}"
        );
        let log = read(&text).unwrap();
        assert_eq!(log.meta, Some(meta()));
        assert_eq!(log.end, Some(end));
        assert_eq!(log.entries, vec![entry(0)]);
        assert_eq!(log.status(), LogStatus::Failed);
        assert_eq!(
            log.meta.unwrap().spec().unwrap(),
            RunSpec::uniform(OrderKind::Fifo, 3, 2)
        );
    }

    #[test]
    fn a_log_without_its_end_line_is_partial() {
        let log = read(&format!("{META}{E0}{E1}")).unwrap();
        assert_eq!(log.status(), LogStatus::Partial);
        assert!(log.status().cut_short());
        assert_eq!(log.entries.len(), 2);
        // Killed before its first delivery: still a log, of its member.
        let log = read(META).unwrap();
        assert_eq!((log.peer, log.entries.len()), (1, 0));
        assert_eq!(log.status(), LogStatus::Partial);
        // Killed in the middle of a line: that line is dropped.
        for cut in 1..E1.len() - 1 {
            let log = read(&format!("{META}{E0}{}", &E1[..cut])).unwrap();
            assert_eq!(log.entries.len(), 1, "cut at {cut}");
            assert_eq!(log.status(), LogStatus::Partial);
        }
        // A version-1 log says nothing.
        assert_eq!(read(OK).unwrap().status(), LogStatus::Unstated);
        let done =
            format!("{META}{E0}{{\"type\":\"end\",\"status\":\"completed\",\"delivered\":1}}\n");
        assert_eq!(read(&done).unwrap().status(), LogStatus::Completed);
    }

    #[test]
    fn misplaced_or_unknown_lines_are_errors_naming_the_line() {
        let end1 = "{\"type\":\"end\",\"status\":\"completed\",\"delivered\":1}\n";
        let cases: Vec<(String, usize, LogErrorKind)> = vec![
            (format!("{E0}{META}"), 2, LogErrorKind::MetaNotFirst),
            (format!("{META}{E0}{end1}{E1}"), 4, LogErrorKind::AfterEnd),
            (
                format!("{META}{E0}{{\"type\":\"snapshot\",\"id\":1}}\n"),
                3,
                LogErrorKind::UnknownType("snapshot".into()),
            ),
            (
                format!("{META}{E0}{E1}{end1}"),
                4,
                LogErrorKind::EndCount { said: 1, found: 2 },
            ),
            (
                META.replace("\"format\":2", "\"format\":3"),
                1,
                LogErrorKind::Format(3),
            ),
            (
                format!("{META}{}", E0.replace("\"peer\":1", "\"peer\":2")),
                2,
                LogErrorKind::PeerMismatch {
                    expected: 1,
                    found: 2,
                },
            ),
            (
                format!("{META}{}", E0.replace("\"run\":7", "\"run\":8")),
                2,
                LogErrorKind::RunMismatch {
                    expected: 7,
                    found: 8,
                },
            ),
            (
                format!("{META}{{\"type\":\"end\",\"status\":\"exploded\",\"delivered\":0}}\n"),
                2,
                LogErrorKind::BadJson(String::new()),
            ),
        ];
        for (text, line, kind) in cases {
            let e = read(&text).unwrap_err();
            assert_eq!(e.line, Some(line), "{text:?}: {e}");
            match (&e.kind, &kind) {
                (LogErrorKind::BadJson(_), LogErrorKind::BadJson(_)) => {}
                _ => assert_eq!(e.kind, kind, "{text:?}: {e}"),
            }
        }
        // An unterminated, cut end line of a partial log is dropped too.
        let log = read(&format!("{META}{E0}{{\"type\":\"end\",\"sta")).unwrap();
        assert_eq!(log.status(), LogStatus::Partial);
        // A string value that contains "type" is still a delivery.
        let odd = "{\"run\":7,\"peer\":1,\"sender\":2,\"seq\":0,\"note\":\"\\\"type\\\"\"}\n";
        assert_eq!(read(&format!("{META}{odd}")).unwrap().entries.len(), 1);
    }

    #[test]
    fn the_spec_comes_from_the_meta_lines_which_must_agree() {
        let a = read(&format!("{META}{E0}")).unwrap();
        let mut b = a.clone();
        b.peer = 2;
        let names = ["a".to_string(), "b".to_string()];
        assert_eq!(
            spec_from_meta(&[a.clone(), b.clone()], &names).unwrap(),
            Some(RunSpec::uniform(OrderKind::Fifo, 3, 2))
        );
        assert_eq!(spec_from_meta(&[read(OK).unwrap()], &names).unwrap(), None);
        if let Some(m) = b.meta.as_mut() {
            m.order = "total".into();
        }
        let e = spec_from_meta(&[a, b], &names).unwrap_err().to_string();
        assert_eq!(
            e,
            "a and b disagree on the run's order (fifo and total): logs of different runs?"
        );
    }

    // ---------------------------------------------------------- view lines

    const V1: &str =
        "{\"type\":\"view\",\"view\":1,\"members\":[0,1,2],\"joined\":[],\"left\":[],\"t_us\":5}\n";
    const V2: &str =
        "{\"type\":\"view\",\"view\":2,\"members\":[0,1],\"joined\":[],\"left\":[2],\"t_us\":15}\n";

    fn view(at: usize, id: u32, members: &[MemberId], left: &[MemberId], t: u64) -> ViewMark {
        ViewMark {
            at,
            id,
            members: members.to_vec(),
            joined: vec![],
            left: left.to_vec(),
            t_us: Some(t),
        }
    }

    #[test]
    fn view_lines_round_trip_between_deliveries() {
        let end1 = "{\"type\":\"end\",\"status\":\"completed\",\"delivered\":2}\n";
        let text = format!("{META}{V1}{E0}{V2}{E1}{end1}");
        let log = read(&text).unwrap();
        assert_eq!(
            log.views,
            vec![
                view(0, 1, &[0, 1, 2], &[], 5),
                view(1, 2, &[0, 1], &[2], 15)
            ]
        );
        assert_eq!(log.entries.len(), 2);
        assert_eq!(log.status(), LogStatus::Completed);
        // Writing the same log gives the same text, byte for byte.
        let mut out = Vec::new();
        write_meta(&mut out, log.meta.as_ref().unwrap()).unwrap();
        let mut marks = log.views.iter().peekable();
        for (i, e) in log.entries.iter().enumerate() {
            while let Some(v) = marks.next_if(|v| v.at == i) {
                write_view(&mut out, v).unwrap();
            }
            write_entry(&mut out, e).unwrap();
        }
        write_end(&mut out, log.end.as_ref().unwrap()).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), text);
        // Optional fields may be absent; `id` is read as `view`.
        let bare = "{\"type\":\"view\",\"id\":3,\"members\":[0]}\n";
        let log = read(&format!("{META}{V1}{V2}{bare}")).unwrap();
        assert_eq!(
            log.views[2],
            ViewMark {
                at: 0,
                id: 3,
                members: vec![0],
                joined: vec![],
                left: vec![],
                t_us: None
            }
        );
        // A view as the last thing a killed member wrote.
        let log = read(&format!("{META}{V1}{E0}{V2}")).unwrap();
        assert_eq!(log.views.len(), 2);
        assert_eq!(log.status(), LogStatus::Partial);
    }

    #[test]
    fn logs_without_view_lines_read_as_before() {
        for text in [OK.to_string(), format!("{META}{E0}{E1}")] {
            let log = read(&text).unwrap();
            assert!(log.views.is_empty());
            assert_eq!(log.entries.len(), 2.min(text.lines().count()));
        }
    }

    #[test]
    fn bad_view_lines_are_errors_naming_the_line() {
        let cases: Vec<(String, usize, LogErrorKind)> = vec![
            (
                format!("{META}{V1}{E0}{{\"type\":\"view\",\"view\":2}}\n"),
                4,
                LogErrorKind::MissingField("members".into()),
            ),
            (
                format!("{META}{V1}{{\"type\":\"view\",\"members\":[0]}}\n"),
                3,
                LogErrorKind::MissingField("view".into()),
            ),
            (
                format!("{META}{V1}{}", V2.replace("[0,1]", "\"0,1\"")),
                3,
                LogErrorKind::BadJson(String::new()),
            ),
            (
                format!("{META}{V1}{}", V2.replace("\"view\":2", "\"view\":-2")),
                3,
                LogErrorKind::BadJson(String::new()),
            ),
            (
                format!("{META}{V2}{E0}{V1}"),
                4,
                LogErrorKind::ViewOrder {
                    previous: 2,
                    found: 1,
                },
            ),
            (
                format!("{META}{V1}{V1}"),
                3,
                LogErrorKind::ViewOrder {
                    previous: 1,
                    found: 1,
                },
            ),
            (
                format!(
                    "{META}{V1}{{\"type\":\"end\",\"status\":\"completed\",\"delivered\":0}}\n{V2}"
                ),
                4,
                LogErrorKind::AfterEnd,
            ),
        ];
        for (text, line, kind) in cases {
            let e = read(&text).unwrap_err();
            assert_eq!(e.line, Some(line), "{text:?}: {e}");
            match (&e.kind, &kind) {
                (LogErrorKind::BadJson(_), LogErrorKind::BadJson(_)) => {}
                _ => assert_eq!(e.kind, kind, "{text:?}: {e}"),
            }
        }
        let e = read(&format!("{META}{V2}{V1}")).unwrap_err().to_string();
        assert_eq!(
            e,
            "member-1.jsonl, line 3: view 1 after view 2: a log's views must have increasing ids"
        );
        // A view line cut by a kill ends a partial log; in a version-1 log
        // it is an error.
        let log = read(&format!("{META}{E0}{}", &V2[..20])).unwrap();
        assert!(log.views.is_empty());
        let e = read(&format!("{OK}{}", &V2[..20])).unwrap_err();
        assert_eq!((e.kind, e.line), (LogErrorKind::Truncated, Some(2)));
    }
}
