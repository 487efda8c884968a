//! `mpcomm check PATH…`: verify delivery logs offline.
//!
//! PATH is a run directory (as the server stores it: `summary.json` and
//! `member-K.jsonl` files) or one or more log files. From a run directory
//! the order and the message counts come from `summary.json`; for bare log
//! files give `--order` (default `total`), and the counts are inferred from
//! the logs (each sender's highest sequence number seen, plus one) unless
//! `--messages` says how many each member sent.
//!
//! Exit status: 0 when every property the order promises holds, 1 when one
//! fails, 2 when the input cannot be read (the message says which file, which
//! line and why).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use mpcomm_check::{Findings, PeerLog, RunSpec, check_detailed};
use mpcomm_core::OrderKind;
use serde::Deserialize;

/// Arguments of `mpcomm check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// A run directory, or delivery log files (one per peer).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// The run's order, for bare log files (a run directory knows its own).
    #[arg(long)]
    order: Option<OrderKind>,
    /// Messages each member sent, for bare log files (default: inferred).
    #[arg(long)]
    messages: Option<u64>,
    /// Group size, for bare log files (default: inferred).
    #[arg(long)]
    members: Option<usize>,
    /// Print the findings as one JSON object.
    #[arg(long)]
    json: bool,
}

/// What `check` needs from a run's summary.json.
#[derive(Deserialize)]
struct Summary {
    params: SummaryParams,
    members: Vec<SummaryMember>,
}

#[derive(Deserialize)]
struct SummaryParams {
    order: OrderKind,
    messages: u64,
}

#[derive(Deserialize)]
struct SummaryMember {
    id: u16,
    #[serde(default)]
    status: String,
}

/// Runs `mpcomm check`. Unreadable input is reported here and exits 2.
pub fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    match load(&args) {
        Ok((spec, logs, sources)) => report(&args, &spec, &logs, &sources),
        Err(e) => {
            eprintln!("mpcomm check: {e:#}");
            Ok(ExitCode::from(2))
        }
    }
}

fn load(args: &CheckArgs) -> anyhow::Result<(RunSpec, Vec<PeerLog>, Vec<String>)> {
    if let [dir] = args.paths.as_slice()
        && dir.is_dir()
    {
        return load_run_dir(dir);
    }
    let mut logs = Vec::new();
    let mut names = Vec::new();
    for path in &args.paths {
        if path.is_dir() {
            bail!(
                "{} is a directory: give one run directory, or log files",
                path.display()
            );
        }
        logs.push(read(path)?);
        names.push(path.display().to_string());
    }
    mpcomm_check::log::check_run_ids(&logs, &names).map_err(anyhow::Error::msg)?;
    let mut seen_peers = BTreeMap::new();
    for (log, name) in logs.iter().zip(&names) {
        if let Some(other) = seen_peers.insert(log.peer, name) {
            bail!("{other} and {name} are both logs of peer {}", log.peer);
        }
    }
    let highest_member = logs
        .iter()
        .flat_map(|l| l.entries.iter().map(|e| e.sender).chain([l.peer]))
        .max()
        .map_or(0, |m| usize::from(m) + 1);
    let members = args.members.unwrap_or(highest_member);
    let sent = match args.messages {
        Some(m) => vec![m; members],
        None => {
            let mut sent = vec![0u64; members];
            for e in logs.iter().flat_map(|l| &l.entries) {
                if let Some(s) = sent.get_mut(usize::from(e.sender)) {
                    *s = (*s).max(e.seq + 1);
                }
            }
            sent
        }
    };
    logs.sort_by_key(|l| l.peer);
    let order = args.order.unwrap_or(OrderKind::Total);
    Ok((
        RunSpec {
            order,
            members,
            sent,
        },
        logs,
        names,
    ))
}

fn load_run_dir(dir: &Path) -> anyhow::Result<(RunSpec, Vec<PeerLog>, Vec<String>)> {
    let summary_path = dir.join("summary.json");
    let text = std::fs::read_to_string(&summary_path).with_context(|| {
        format!(
            "{} is not a run directory: cannot read summary.json",
            dir.display()
        )
    })?;
    let summary: Summary = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid run summary", summary_path.display()))?;
    let n = summary.members.len();
    let mut logs = Vec::with_capacity(n);
    let mut names = Vec::with_capacity(n);
    for m in &summary.members {
        let completed = dir.join(format!("member-{}.jsonl", m.id));
        let failed = dir.join(format!("member-{}.failed.jsonl", m.id));
        let path = if completed.exists() || m.status == "completed" {
            completed
        } else {
            failed
        };
        if !path.exists() {
            bail!(
                "{}: no log for member {} ({})",
                dir.display(),
                m.id,
                path.display()
            );
        }
        let log = read(&path)?;
        if log.peer != m.id {
            bail!(
                "{} holds the log of peer {}, not of member {}",
                path.display(),
                log.peer,
                m.id
            );
        }
        logs.push(log);
        names.push(path.display().to_string());
    }
    mpcomm_check::log::check_run_ids(&logs, &names).map_err(anyhow::Error::msg)?;
    let spec = RunSpec {
        order: summary.params.order,
        members: n,
        sent: vec![summary.params.messages; n],
    };
    Ok((spec, logs, names))
}

fn read(path: &Path) -> anyhow::Result<PeerLog> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    Ok(mpcomm_check::log::read_log(
        std::io::BufReader::new(file),
        &path.display().to_string(),
    )?)
}

fn report(
    args: &CheckArgs,
    spec: &RunSpec,
    logs: &[PeerLog],
    sources: &[String],
) -> anyhow::Result<ExitCode> {
    let (findings, violations) = check_detailed(spec, logs);
    if args.json {
        println!("{}", serde_json::to_string(&findings)?);
    } else {
        println!(
            "Checked {} log(s) of order {} ({} messages per member):",
            sources.len(),
            spec.order,
            findings.messages_per_peer
        );
        print!("{}", mpcomm_cli::summary::findings_table(&findings));
        explain(&findings, violations.len());
    }
    Ok(if findings.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// A word for students on what failed, and whether the order promised it.
fn explain(f: &Findings, violations: usize) {
    if violations == 0 {
        return;
    }
    let order: OrderKind = f.order.parse().unwrap_or(OrderKind::Total);
    let promised = match order {
        OrderKind::None => "integrity and agreement",
        OrderKind::Fifo => "integrity, agreement and FIFO order",
        OrderKind::Causal => "integrity, agreement, FIFO order and causal order",
        OrderKind::Sequencer | OrderKind::Total => {
            "integrity, agreement, FIFO order, causal order and total order"
        }
    };
    println!(
        "\nThe {order} order promises {promised}; each violated property above shows its first counter-example."
    );
}
