//! The delivery log a peer writes during a run, and what "durable" means.
//!
//! The log is in the format of [`mpcomm_check::log`], version 2: a meta
//! line (run, member, order, group size, messages), one line per
//! delivered message with a view line wherever the member installed a new
//! view of the group (the first one before any delivery), and an end line (completed or failed, and why). The
//! promise, and how it is kept:
//!
//! * **Every delivery is in the file within 100 ms** ([`FLUSH_EVERY`]):
//!   deliveries are buffered (one write per delivery would cost a system
//!   call each, at a million deliveries a second), and the buffer is
//!   handed to the operating system at most 100 ms after its first
//!   unwritten line — so a peer killed with `kill -9` leaves a log that
//!   holds everything it delivered until 100 ms before it died. Each line
//!   goes to the buffer in one piece, so the file holds whole lines.
//! * **At the end of a run the log is `fsync`ed**, with its end line, and
//!   so is the directory: then it survives even a power cut. (Until then,
//!   a crash of the whole machine can lose what the operating system had
//!   not yet written to the disk; a crash of the peer alone loses nothing
//!   older than 100 ms.)
//! * **A log says whether it is complete**: only a run that ended writes
//!   the end line. A log without one is *partial* — its writer was
//!   interrupted — and every reader (`mpcomm check`, the server, the
//!   report) says so. That is why the log is written under its final name
//!   from its first line, not to a temporary file renamed at the end (as
//!   earlier versions did, which left an empty `.tmp` file behind a killed
//!   peer): a killed peer's log is where everyone looks, and it cannot be
//!   mistaken for a complete one.
//!
//! When a peer starts, it looks through its data directory for logs an
//! earlier, interrupted process left partial (and for the `.tmp` files of
//! older versions) and reports them on stderr ([`leftovers`]), so they are
//! neither lost from sight nor mistaken for complete logs. Nothing is
//! deleted: they are evidence.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use mpcomm_check::log::{LogEnd, LogMeta};
use mpcomm_check::{LogEntry, ViewMark};
use tokio::time::Instant;

/// A delivery is written to the log file at most this long after it was
/// delivered.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// The delivery log being written.
pub(super) struct LogFile {
    path: PathBuf,
    out: std::io::BufWriter<std::fs::File>,
    /// Lines written (to the buffer or the file).
    pub(super) lines: u64,
    /// Deliveries written.
    pub(super) delivered: u64,
    /// When the oldest line not yet flushed to the file was written.
    unflushed_since: Option<Instant>,
    /// One line, serialised before it goes to the buffer in one piece.
    line: Vec<u8>,
}

impl LogFile {
    /// Creates `member-K.jsonl` in `dir` and writes its meta line, flushed
    /// at once: even a peer killed before its first delivery leaves a log
    /// that says which run and member it was, and that it is partial.
    pub(super) fn create(dir: &Path, meta: &LogMeta) -> anyhow::Result<LogFile> {
        let path = dir.join(format!("member-{}.jsonl", meta.peer));
        let file = std::fs::File::create(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        let mut log = LogFile {
            path,
            out: std::io::BufWriter::with_capacity(1 << 16, file),
            lines: 0,
            delivered: 0,
            unflushed_since: None,
            line: Vec::with_capacity(256),
        };
        mpcomm_check::log::write_meta(&mut log.line, meta)?;
        log.put_line()?;
        log.flush()?;
        Ok(log)
    }

    /// Moves the serialised line into the buffer with one write, so that
    /// the file only ever receives whole lines.
    fn put_line(&mut self) -> anyhow::Result<()> {
        let result = self.out.write_all(&self.line);
        self.line.clear();
        result.with_context(|| format!("cannot write {}", self.path.display()))?;
        self.lines += 1;
        if self.unflushed_since.is_none() {
            self.unflushed_since = Some(Instant::now());
        }
        Ok(())
    }

    pub(super) fn append(&mut self, e: &LogEntry) -> anyhow::Result<()> {
        mpcomm_check::log::write_entry(&mut self.line, e)?;
        self.put_line()?;
        self.delivered += 1;
        Ok(())
    }

    /// Writes a view line: the member installed a new view of the group
    /// (the deliveries after it belong to that view). Not counted as a
    /// delivery.
    pub(super) fn view(&mut self, mark: &ViewMark) -> anyhow::Result<()> {
        mpcomm_check::log::write_view(&mut self.line, mark)?;
        self.put_line()
    }

    /// When the buffer must be flushed next, if it holds anything.
    pub(super) fn flush_due(&self) -> Option<Instant> {
        self.unflushed_since.map(|t| t + FLUSH_EVERY)
    }

    /// Hands the buffer to the operating system. (A write into the page
    /// cache, microseconds; done on the runtime's thread, like the writes.)
    pub(super) fn flush(&mut self) -> anyhow::Result<()> {
        self.unflushed_since = None;
        self.out
            .flush()
            .with_context(|| format!("cannot write {}", self.path.display()))
    }

    /// Writes the end line, flushes and `fsync`s the log and its directory;
    /// returns the path.
    pub(super) async fn finish(mut self, end: &LogEnd) -> anyhow::Result<PathBuf> {
        mpcomm_check::log::write_end(&mut self.line, end)?;
        self.put_line()?;
        let LogFile { path, out, .. } = self;
        tokio::task::spawn_blocking(move || -> anyhow::Result<PathBuf> {
            let file = out
                .into_inner()
                .map_err(|e| e.into_error())
                .with_context(|| format!("cannot write {}", path.display()))?;
            file.sync_all()
                .with_context(|| format!("cannot fsync {}", path.display()))?;
            if let Some(dir) = path.parent() {
                // Make the file's creation itself durable.
                std::fs::File::open(dir).and_then(|d| d.sync_all()).ok();
            }
            Ok(path)
        })
        .await
        .context("the log writer task failed")?
    }
}

/// Logs an earlier process left behind in `data_dir` without their end
/// line (it was killed mid-run), and `.tmp` files of older versions: they
/// are reported on stderr, once, so that nobody mistakes them for complete
/// logs or forgets them. Nothing is deleted: they are evidence.
pub(super) fn report_leftovers(data_dir: &Path) {
    let found = leftovers(data_dir);
    if found.is_empty() {
        return;
    }
    const SHOWN: usize = 5;
    let mut text = format!(
        "note: {} delivery log(s) in {} were left incomplete by an earlier process that did not finish its run \
         (no end line: `mpcomm check` reads them as partial):",
        found.len(),
        data_dir.display()
    );
    for f in found.iter().take(SHOWN) {
        text.push_str(&format!("\n  {}", f.display()));
    }
    if found.len() > SHOWN {
        text.push_str(&format!("\n  … and {} more", found.len() - SHOWN));
    }
    eprintln!("{text}");
}

/// The incomplete logs in the `run-*` directories of `data_dir`, sorted.
pub fn leftovers(data_dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(runs) = std::fs::read_dir(data_dir) else {
        return found;
    };
    for run in runs.flatten() {
        if !run.file_name().to_string_lossy().starts_with("run-") {
            continue;
        }
        let Ok(files) = std::fs::read_dir(run.path()) else {
            continue;
        };
        for f in files.flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            let path = f.path();
            if name.ends_with(".tmp")
                || (name.starts_with("member-")
                    && name.ends_with(".jsonl")
                    && !ends_with_end_line(&path))
            {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Whether the last line of the file at `path` is a log's end line. Only
/// the file's tail is read: logs can be large.
fn ends_with_end_line(path: &Path) -> bool {
    const TAIL: u64 = 64 * 1024;
    let read_tail = || -> std::io::Result<Vec<u8>> {
        let mut f = std::fs::File::open(path)?;
        let len = f.metadata()?.len();
        f.seek(std::io::SeekFrom::Start(len.saturating_sub(TAIL)))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        Ok(buf)
    };
    let Ok(tail) = read_tail() else {
        return false;
    };
    let text = String::from_utf8_lossy(&tail);
    let Some(last) = text.lines().rev().find(|l| !l.trim().is_empty()) else {
        return false;
    };
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "type")]
        kind: Option<String>,
    }
    serde_json::from_str::<Probe>(last).is_ok_and(|p| p.kind.as_deref() == Some("end"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mpcomm_check::log::{EndStatus, Messages};

    fn temp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mpcomm-peer-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn meta() -> LogMeta {
        LogMeta {
            format: mpcomm_check::log::FORMAT,
            run: 3,
            peer: 1,
            name: Some("p".into()),
            order: "total".into(),
            members: 2,
            messages: Messages::All(1),
            workload: Some("seq".into()),
            seed: Some(1),
        }
    }

    fn entry() -> LogEntry {
        LogEntry {
            run: 3,
            peer: 1,
            sender: 0,
            seq: 0,
            stamp: Some(1),
            sent_us: None,
            delivered_us: None,
            after: None,
            op: None,
        }
    }

    #[tokio::test]
    async fn the_log_is_on_disk_as_it_grows_and_says_when_it_is_whole() {
        let dir = temp("log");
        let mut log = LogFile::create(&dir, &meta()).unwrap();
        let path = dir.join("member-1.jsonl");
        // The meta line is in the file at once: a peer killed now leaves a
        // partial log that says whose it is.
        let read = || mpcomm_check::log::read_log_file(&path).unwrap();
        assert_eq!(read().status(), mpcomm_check::LogStatus::Partial);
        assert_eq!(log.flush_due(), None);
        log.append(&entry()).unwrap();
        // Buffered, with a flush due within FLUSH_EVERY.
        let due = log.flush_due().expect("a flush is due");
        assert!(due <= Instant::now() + FLUSH_EVERY);
        log.flush().unwrap();
        assert_eq!(read().entries, vec![entry()]);
        assert_eq!(
            leftovers(&dir.parent().unwrap().join("nowhere")),
            Vec::<PathBuf>::new()
        );
        let end = LogEnd {
            status: EndStatus::Completed,
            error: None,
            delivered: 1,
            t_us: Some(5),
        };
        assert_eq!(log.finish(&end).await.unwrap(), path);
        let whole = read();
        assert_eq!(whole.status(), mpcomm_check::LogStatus::Completed);
        assert_eq!(whole.end, Some(end));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn leftovers_are_the_logs_without_an_end_line_and_old_tmp_files() {
        let data = temp("leftovers");
        let run = data.join("run-7");
        std::fs::create_dir_all(&run).unwrap();
        let mut meta_line = Vec::new();
        mpcomm_check::log::write_meta(&mut meta_line, &meta()).unwrap();
        std::fs::write(run.join("member-0.jsonl"), &meta_line).unwrap();
        let mut whole = meta_line.clone();
        whole.extend_from_slice(b"{\"type\":\"end\",\"status\":\"failed\",\"delivered\":0}\n");
        std::fs::write(run.join("member-1.jsonl"), &whole).unwrap();
        std::fs::write(run.join("member-2.jsonl.tmp"), b"").unwrap();
        std::fs::write(data.join("unrelated.jsonl"), b"").unwrap();
        assert_eq!(
            leftovers(&data),
            vec![run.join("member-0.jsonl"), run.join("member-2.jsonl.tmp")]
        );
        let _ = std::fs::remove_dir_all(&data);
    }
}
