//! Reading and writing delivery logs (JSON Lines).
//!
//! A delivery log has one JSON object per line, one line per delivered
//! message, in delivery order:
//!
//! ```text
//! {"run":7,"peer":0,"sender":2,"seq":0,"stamp":3,"sent_us":1764355200000000,"delivered_us":1764355200000412}
//! ```
//!
//! Reading is strict, because a log is evidence: a line that is not a
//! complete, well-formed entry is an error that names the file, the line
//! and the reason — never a silently shorter log.

use std::fmt;
use std::io::{self, BufRead, Read, Write};

use thiserror::Error;

use crate::{LogEntry, PeerLog};

/// The longest line a log may have. An entry is about 120 bytes; anything
/// this long is not a log.
pub const MAX_LINE: usize = 64 * 1024;

/// What is wrong with a log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogErrorKind {
    /// The file has no entries.
    Empty,
    /// Reading failed.
    Io(String),
    /// A line longer than [`MAX_LINE`].
    TooLong,
    /// The last line ends without a newline and is not a complete entry (the
    /// writer was interrupted).
    Truncated,
    /// An empty line.
    Blank,
    /// A required field is absent.
    MissingField(String),
    /// Not valid JSON, or a field of the wrong type.
    BadJson(String),
    /// The entry names another peer than the rest of the log.
    PeerMismatch {
        /// The log's peer (from its first line).
        expected: u16,
        /// This line's.
        found: u16,
    },
    /// The entry names another run than the rest of the log.
    RunMismatch {
        /// The log's run (from its first line).
        expected: u64,
        /// This line's.
        found: u64,
    },
}

/// A log that cannot be read, with where and why.
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
            LogErrorKind::Io(e) => write!(f, "cannot read: {e}"),
            LogErrorKind::TooLong => write!(
                f,
                "line is longer than {MAX_LINE} bytes: not a delivery log"
            ),
            LogErrorKind::Truncated => {
                write!(
                    f,
                    "the last line is truncated (no newline, incomplete JSON): was the writer interrupted?"
                )
            }
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
        let n = (&mut reader)
            .take(MAX_LINE as u64 + 1)
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
            if !terminated {
                break; // trailing whitespace at the very end
            }
            return Err(err(Some(number), LogErrorKind::Blank));
        }
        let entry: LogEntry = match serde_json::from_slice(&buf) {
            Ok(e) => e,
            Err(_) if !terminated => return Err(err(Some(number), LogErrorKind::Truncated)),
            Err(e) => {
                let msg = e.to_string();
                let kind = match msg
                    .strip_prefix("missing field `")
                    .and_then(|r| r.split('`').next())
                {
                    Some(field) => LogErrorKind::MissingField(field.to_string()),
                    None => LogErrorKind::BadJson(msg),
                };
                return Err(err(Some(number), kind));
            }
        };
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

/// Writes one entry as a compact JSON line, keys in the documented order.
pub fn write_entry(w: &mut impl Write, e: &LogEntry) -> io::Result<()> {
    serde_json::to_writer(&mut *w, e)?;
    w.write_all(b"\n")
}

/// The run id shared by every log, or a message naming the odd one out.
/// `names[i]` names `logs[i]`.
pub fn check_run_ids(logs: &[PeerLog], names: &[String]) -> Result<Option<u64>, String> {
    let runs: Vec<Option<u64>> = logs
        .iter()
        .map(|l| l.entries.first().map(|e| e.run))
        .collect();
    let Some(first) = runs.iter().flatten().next().copied() else {
        return Ok(None);
    };
    for (i, run) in runs.iter().enumerate() {
        if let Some(run) = run
            && *run != first
        {
            let name = names.get(i).map(String::as_str).unwrap_or("a log");
            return Err(format!(
                "{name} is of run {run}, the others of run {first}: logs of different runs mixed"
            ));
        }
    }
    Ok(Some(first))
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
        }
    }

    fn read(text: &str) -> Result<PeerLog, LogError> {
        read_log(text.as_bytes(), "member-1.jsonl")
    }

    #[test]
    fn round_trip_with_documented_key_order() {
        let mut out = Vec::new();
        write_entry(&mut out, &entry(0)).unwrap();
        write_entry(
            &mut out,
            &LogEntry {
                stamp: None,
                ..entry(1)
            },
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with(
            "{\"run\":7,\"peer\":1,\"sender\":2,\"seq\":0,\"stamp\":3,\"sent_us\":10,\"delivered_us\":20}\n"
        ));
        let log = read(&text).unwrap();
        assert_eq!(log.peer, 1);
        assert_eq!(
            log.entries,
            vec![
                entry(0),
                LogEntry {
                    stamp: None,
                    ..entry(1)
                }
            ]
        );
        // A complete last line without its newline is accepted.
        assert_eq!(read(text.trim_end()).unwrap().entries.len(), 2);
    }

    #[test]
    fn errors_name_file_line_and_reason() {
        let ok = "{\"run\":7,\"peer\":1,\"sender\":2,\"seq\":0}\n";
        let cases = [
            (
                "",
                "member-1.jsonl: the log is empty (no delivered messages)",
            ),
            (
                &format!("{ok}{{\"run\":7,\"peer\":1,\"sen"),
                "member-1.jsonl, line 2: the last line is truncated",
            ),
            (
                &format!("{ok}{{\"run\":7,\"peer\":1,\"sender\":2}}\n"),
                "member-1.jsonl, line 2: missing field \"seq\"",
            ),
            (&format!("{ok}\n{ok}"), "member-1.jsonl, line 2: empty line"),
            (
                &format!("{ok}not json\n"),
                "member-1.jsonl, line 2: not a log entry",
            ),
            (
                &format!("{ok}{{\"run\":7,\"peer\":4,\"sender\":2,\"seq\":1}}\n"),
                "line 2: entry of peer 4 in the log of peer 1",
            ),
            (
                &format!("{ok}{{\"run\":8,\"peer\":1,\"sender\":2,\"seq\":1}}\n"),
                "line 2: entry of run 8 in a log of run 7",
            ),
            (
                &format!("{ok}{{\"run\":7,\"peer\":1,\"sender\":-2,\"seq\":1}}\n"),
                "line 2: not a log entry",
            ),
        ];
        for (text, want) in cases {
            let e = read(text).unwrap_err().to_string();
            assert!(
                e.starts_with(want) || e.contains(want),
                "{e:?} does not contain {want:?}"
            );
        }
        let long = format!("{ok}{}\n", "x".repeat(MAX_LINE + 5));
        assert_eq!(read(&long).unwrap_err().kind, LogErrorKind::TooLong);
    }

    #[test]
    fn mixed_runs_are_named() {
        let a = PeerLog {
            peer: 0,
            entries: vec![LogEntry {
                peer: 0,
                ..entry(0)
            }],
        };
        let b = PeerLog {
            peer: 1,
            entries: vec![LogEntry { run: 9, ..entry(0) }],
        };
        assert_eq!(
            check_run_ids(std::slice::from_ref(&a), &["a".into()]),
            Ok(Some(7))
        );
        let e = check_run_ids(&[a, b], &["a.jsonl".into(), "b.jsonl".into()]).unwrap_err();
        assert_eq!(
            e,
            "b.jsonl is of run 9, the others of run 7: logs of different runs mixed"
        );
    }
}
