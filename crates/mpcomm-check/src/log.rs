//! Reading and writing delivery logs (JSON Lines).
//!
//! A delivery log has one JSON object per line, one line per delivered
//! message, in delivery order, each line ending with a newline:
//!
//! ```text
//! {"run":7,"peer":0,"sender":2,"seq":0,"stamp":3,"sent_us":1764355200000000,"delivered_us":1764355200000412}
//! ```
//!
//! `run`, `peer`, `sender` and `seq` are required; `stamp`, `sent_us`,
//! `delivered_us` and the workload's `after` and `op` (see
//! [`crate::workload`]) may be absent (or `null`). Unknown keys are ignored, so
//! that a newer writer's logs still read.
//!
//! Reading is strict, because a log is evidence: a line that is not a
//! complete, well-formed entry is an error that names the file, the line
//! and the reason — never a silently shorter log. The one leniency is a
//! Windows line ending (`\r\n`), which an editor may have introduced.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;

use serde_json::error::Category;
use thiserror::Error;

use crate::properties::common_run;
use crate::{LogEntry, PeerLog};

/// The longest line a log may have, without its line ending. An entry is
/// about 120 bytes; a line this long is not a log entry, and reading stops
/// there instead of filling memory with it.
pub const MAX_LINE: usize = 64 * 1024;

/// What is wrong with a log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogErrorKind {
    /// The file has no entries. (A peer that delivered nothing has nothing
    /// to say which peer it is; the caller knows, and can build an empty
    /// [`PeerLog`] itself.)
    Empty,
    /// The file could not be opened.
    Open(String),
    /// Reading failed.
    Io(String),
    /// A line longer than [`MAX_LINE`] bytes.
    TooLong,
    /// The last line ends without a newline in the middle of its JSON (the
    /// writer was interrupted).
    Truncated,
    /// An empty (or all-blank) line.
    Blank,
    /// A required field is absent.
    MissingField(String),
    /// Not valid JSON, or a field of the wrong type or out of range.
    BadJson(String),
    /// The entry names another peer than the log's first line.
    PeerMismatch {
        /// The log's peer (from its first line).
        expected: u16,
        /// This line's.
        found: u16,
    },
    /// The entry names another run than the log's first line.
    RunMismatch {
        /// The log's run (from its first line).
        expected: u64,
        /// This line's.
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
        }
    }
}

/// Reads one peer's log. `source` names it in errors (usually the path).
///
/// The log's peer is the `peer` of its first line; every line must name the
/// same peer and run. Lines are read one at a time, at most
/// [`MAX_LINE`]` + 2` bytes each, so a huge or binary file fails fast
/// without filling memory.
pub fn read_log(mut reader: impl BufRead, source: &str) -> Result<PeerLog, LogError> {
    let err = |line: Option<usize>, kind| LogError {
        file: source.to_string(),
        line,
        kind,
    };
    let mut entries: Vec<LogEntry> = Vec::new();
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
        let entry: LogEntry = serde_json::from_slice(&buf).map_err(|e| {
            let kind = if !terminated && e.classify() == Category::Eof {
                LogErrorKind::Truncated
            } else {
                describe(&e)
            };
            err(Some(number), kind)
        })?;
        if let Some(first) = entries.first() {
            if entry.peer != first.peer {
                return Err(err(
                    Some(number),
                    LogErrorKind::PeerMismatch {
                        expected: first.peer,
                        found: entry.peer,
                    },
                ));
            }
            if entry.run != first.run {
                return Err(err(
                    Some(number),
                    LogErrorKind::RunMismatch {
                        expected: first.run,
                        found: entry.run,
                    },
                ));
            }
        }
        entries.push(entry);
    }
    match entries.first() {
        Some(first) => Ok(PeerLog {
            peer: first.peer,
            entries,
        }),
        None => Err(err(None, LogErrorKind::Empty)),
    }
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

/// The run id shared by every log (`None` when every log is empty), or the
/// first log, in the order given, that is of another run than most.
///
/// Each log counts with the run of its first entry ([`read_log`] has made
/// sure the rest agree); the run of most logs is taken as the run, a tie
/// going to the first log's. `names[i]` names `logs[i]` in the error.
pub fn check_run_ids(logs: &[PeerLog], names: &[String]) -> Result<Option<u64>, MixedRuns> {
    let run_of = |l: &PeerLog| l.entries.first().map(|e| e.run);
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

#[cfg(test)]
mod tests {
    use super::*;

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
        PeerLog {
            peer,
            entries: vec![LogEntry {
                peer,
                run,
                ..entry(0)
            }],
        }
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
}
