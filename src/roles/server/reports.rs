//! The reports: each member's delivery log, received over TCP and stored
//! in the run's directory, for failed runs as much as for passed ones.
//!
//! A report streams a log line by line into `member-K.jsonl.tmp`, which is
//! `fsync`ed and renamed to `member-K.jsonl` once the whole report has
//! arrived. Here the rename still earns its keep, although logs say
//! themselves whether they are complete (their end line): a transfer cut
//! off half-way would otherwise leave a copy that looks like the partial
//! log of a killed peer — while the peer is alive, and its whole log is
//! on its disk. A cut transfer's temporary file is removed at once; one
//! left by a server killed mid-transfer is removed when the next server
//! starts in the same data directory ([`clean_leftovers`]).
//!
//! Whatever the peer's status, its log is kept under the same name: the
//! log's end line, and `summary.json`, say whether it completed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use mpcomm::control::{self, ControlError, Reply, ReportHeader, ReportMsg};
use mpcomm_check::PeerLog;
use mpcomm_check::log::LogErrorKind;
use mpcomm_core::{KeyRing, MemberId};

/// How long receiving one report may take.
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(300);

/// What the report receivers tell the run.
pub(super) enum Collected {
    /// A report's header arrived: its body is on its way.
    Receiving { member: MemberId },
    /// A report is stored.
    Report { header: ReportHeader },
    /// A report of a member of this run could not be received.
    Broken { member: MemberId },
    /// A member's control connection closed before it reported.
    Disconnected { member: MemberId, why: String },
}

/// The name of member `id`'s log in a run directory.
pub(super) fn log_name(id: MemberId) -> String {
    format!("member-{id}.jsonl")
}

/// Receives one report and writes its log durably into the run directory.
pub(super) async fn receive_report(
    stream: TcpStream,
    keys: Option<KeyRing>,
    run: u64,
    n: usize,
    dir: PathBuf,
    tx: mpsc::Sender<Collected>,
) {
    // With a key, the sender proves it holds it before anything is read
    // (within the handshake's own timeout).
    let mut framed = match control::accept(stream, keys.as_ref()).await {
        Ok(framed) => framed,
        Err(e) => {
            tracing::warn!("refused a report connection: {e}");
            return;
        }
    };
    let mut member = None;
    let mut tmp: Option<PathBuf> = None;
    let result = tokio::time::timeout(RECEIVE_TIMEOUT, async {
        let header = match framed.recv::<ReportMsg>().await? {
            Some(ReportMsg::Report(h)) => h,
            Some(ReportMsg::End { .. }) => {
                return Err(ControlError::Protocol(
                    "a report must start with its header".into(),
                ));
            }
            None => return Err(ControlError::Closed),
        };
        if header.run != run {
            return Err(ControlError::Protocol(format!(
                "run {} is not the current run ({run})",
                header.run
            )));
        }
        if usize::from(header.member) >= n {
            return Err(ControlError::Protocol(format!(
                "member {} is not in this run of {n}",
                header.member
            )));
        }
        member = Some(header.member);
        let _ = tx
            .send(Collected::Receiving {
                member: header.member,
            })
            .await;
        let name = log_name(header.member);
        let path = dir.join(format!("{name}.tmp"));
        tmp = Some(path.clone());
        if header.entries == 0 {
            // No log (the peer could not write one): nothing to store.
            control::recv_report_body(&mut framed, &header, tokio::io::sink()).await?;
            tmp = None;
            return Ok(header);
        }
        let file = tokio::fs::File::create(&path).await?;
        let mut writer = tokio::io::BufWriter::with_capacity(1 << 16, file);
        control::recv_report_body(&mut framed, &header, &mut writer).await?;
        writer.flush().await?;
        let file = writer.into_inner();
        file.sync_all().await?;
        drop(file);
        tokio::fs::rename(&path, dir.join(&name)).await?;
        tmp = None;
        Ok(header)
    })
    .await;
    if let Some(path) = tmp {
        let _ = tokio::fs::remove_file(path).await;
    }
    match result {
        Ok(Ok(header)) => {
            let _ = framed.send(&Reply::ok()).await;
            let _ = tx.send(Collected::Report { header }).await;
        }
        Ok(Err(e)) => {
            tracing::warn!("rejected a report: {e}");
            let _ = framed.send(&Reply::err(e.to_string())).await;
            if let Some(member) = member {
                let _ = tx.send(Collected::Broken { member }).await;
            }
        }
        Err(_) => {
            tracing::warn!("a report took longer than {RECEIVE_TIMEOUT:?}");
            if let Some(member) = member {
                let _ = tx.send(Collected::Broken { member }).await;
            }
        }
    }
}

/// Reads the stored log of each member in `members`; a member without a
/// stored log is left out (the checker reports it missing), and a log that
/// cannot be read is left out with a sentence saying why.
pub(super) fn read_logs(dir: &Path, members: &[MemberId]) -> (Vec<PeerLog>, Vec<String>) {
    let mut logs = Vec::new();
    let mut problems = Vec::new();
    for &id in members {
        let path = dir.join(log_name(id));
        if !path.is_file() {
            continue;
        }
        match mpcomm_check::log::read_log_file(&path) {
            Ok(log) if log.peer == id => logs.push(log),
            Ok(log) => problems.push(format!(
                "{} holds the log of peer {}, not of member {id}",
                path.display(),
                log.peer
            )),
            Err(e) if e.kind == LogErrorKind::Empty => {}
            Err(e) => problems.push(e.to_string()),
        }
    }
    (logs, problems)
}

/// Cleans up after servers that were interrupted in this data directory:
/// removes the temporary files of cut transfers (the logs themselves are
/// still on the peers), and names the run directories that have no
/// `summary.json` (the server stopped during the run), once, on stderr.
pub(super) fn clean_leftovers(data_dir: &Path) {
    let Ok(runs) = std::fs::read_dir(data_dir) else {
        return;
    };
    let mut interrupted = Vec::new();
    let mut removed = 0usize;
    for run in runs.flatten() {
        let dir = run.path();
        if !dir.is_dir() {
            continue;
        }
        if let Ok(files) = std::fs::read_dir(&dir) {
            for f in files.flatten() {
                if f.file_name().to_string_lossy().ends_with(".jsonl.tmp")
                    && std::fs::remove_file(f.path()).is_ok()
                {
                    removed += 1;
                }
            }
        }
        if !dir.join("summary.json").exists() {
            interrupted.push(dir);
        }
    }
    if removed > 0 {
        eprintln!(
            "note: removed {removed} incomplete log transfer(s) left in {} by an interrupted server",
            data_dir.display()
        );
    }
    if !interrupted.is_empty() {
        interrupted.sort();
        let list: Vec<String> = interrupted
            .iter()
            .take(5)
            .map(|d| format!("\n  {}", d.display()))
            .collect();
        eprintln!(
            "note: {} run director{} in {} ha{} no summary.json: the server stopped during {}; \
             the peers keep their logs in their data directories{}{}",
            interrupted.len(),
            if interrupted.len() == 1 { "y" } else { "ies" },
            data_dir.display(),
            if interrupted.len() == 1 { "s" } else { "ve" },
            if interrupted.len() == 1 {
                "that run"
            } else {
                "those runs"
            },
            list.concat(),
            if interrupted.len() > 5 { "\n  …" } else { "" }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftovers_of_an_interrupted_server_are_removed_and_named() {
        let dir = tempfile_dir("leftovers");
        let run = dir.join("20250101-000000-total");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(run.join("member-0.jsonl.tmp"), b"{}\n").unwrap();
        std::fs::write(run.join("member-1.jsonl"), b"{}\n").unwrap();
        clean_leftovers(&dir);
        assert!(!run.join("member-0.jsonl.tmp").exists());
        assert!(run.join("member-1.jsonl").exists(), "logs are kept");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempfile_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mpcomm-server-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
