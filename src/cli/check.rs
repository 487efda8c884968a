//! `mpcomm check PATH…`: verify delivery logs offline.
//!
//! PATH is a run directory (as the server stores it: `summary.json` and
//! `member-K.jsonl` files) or one or more log files. Logs of version 2 say
//! themselves which run, order, group size and message counts they belong
//! to (their meta line), so a run directory and its bare log files give the
//! same verdict. Logs of version 1 do not: give `--order` (required),
//! and `--members`/`--messages` unless they can be inferred from the logs
//! (each sender's highest sequence number seen, plus one).
//!
//! A run that stopped early — a member killed, the others giving up — is
//! read as what it is: the output says who has no log, whose log is
//! partial (no end line: its writer was killed) or failed, how far each
//! member got and when it stopped, and whether what was delivered is
//! consistent (for `total`: every log a prefix of one sequence). Such a
//! run never passes.
//!
//! Exit status: 0 when the run is complete and every property its order
//! promises holds, 1 otherwise (with the first counter-example), 2 when the
//! input cannot be read (the message says which file, which line and why).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use mpcomm_check::log::{LogStatus, spec_from_meta};
use mpcomm_check::{Findings, PeerLog, RunSpec, check_detailed, check_with_views};
use mpcomm_core::{MemberId, OrderKind};
use serde::Deserialize;

/// Arguments of `mpcomm check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// A run directory, or delivery log files (one per peer).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// The run's order, for version-1 log files (logs of version 2, and run
    /// directories, know their own).
    #[arg(long)]
    order: Option<OrderKind>,
    /// Messages each member sent, for version-1 log files (default:
    /// inferred).
    #[arg(long)]
    messages: Option<u64>,
    /// Group size, for version-1 log files (default: inferred).
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
    #[serde(default)]
    error: Option<String>,
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
    name: Option<String>,
    #[serde(default)]
    status: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    at_s: Option<f64>,
}

/// What was read: the spec, the logs (sorted by peer), their sources, and
/// what the server said about the run, for a run directory.
struct Loaded {
    spec: RunSpec,
    logs: Vec<PeerLog>,
    sources: Vec<String>,
    summary: Option<Summary>,
}

/// Runs `mpcomm check`. Unreadable input is reported here and exits 2.
pub fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    match load(&args) {
        Ok(loaded) => report(&args, &loaded),
        Err(e) => {
            eprintln!("mpcomm check: {e:#}");
            Ok(ExitCode::from(2))
        }
    }
}

fn load(args: &CheckArgs) -> anyhow::Result<Loaded> {
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
    let spec = match spec_from_meta(&logs, &names)? {
        Some(spec) => {
            agree_with_flags(args, &spec)?;
            spec
        }
        None => spec_from_flags(args, &logs)?,
    };
    let mut both: Vec<(PeerLog, String)> = logs.into_iter().zip(names).collect();
    both.sort_by_key(|(l, _)| l.peer);
    let (logs, sources) = both.into_iter().unzip();
    Ok(Loaded {
        spec,
        logs,
        sources,
        summary: None,
    })
}

/// Flags given for logs that say the same things themselves must agree.
fn agree_with_flags(args: &CheckArgs, spec: &RunSpec) -> anyhow::Result<()> {
    if let Some(o) = args.order
        && o != spec.order
    {
        bail!(
            "--order {o}, but the logs say their order is {}",
            spec.order
        );
    }
    if let Some(m) = args.members
        && m != spec.members
    {
        bail!(
            "--members {m}, but the logs say the group had {} members",
            spec.members
        );
    }
    if let Some(m) = args.messages
        && spec.sent.iter().any(|&s| s != m)
    {
        bail!(
            "--messages {m}, but the logs say otherwise ({:?})",
            spec.sent
        );
    }
    Ok(())
}

/// The spec of version-1 logs: from the flags, the rest inferred.
fn spec_from_flags(args: &CheckArgs, logs: &[PeerLog]) -> anyhow::Result<RunSpec> {
    let Some(order) = args.order else {
        bail!(
            "these logs do not say which order they were run with (they have no meta line: \
             written by an older mpcomm); give it with --order none|fifo|total"
        );
    };
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
    Ok(RunSpec {
        order,
        members,
        sent,
    })
}

fn load_run_dir(dir: &Path) -> anyhow::Result<Loaded> {
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
        // A member without a log (its process died) is not an error: the
        // checker reports it missing. (`.failed.jsonl`: older servers.)
        let Some(path) = [
            format!("member-{}.jsonl", m.id),
            format!("member-{}.failed.jsonl", m.id),
        ]
        .into_iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file()) else {
            continue;
        };
        let log = match mpcomm_check::log::read_log_file(&path) {
            Ok(log) => log,
            Err(e) if e.kind == mpcomm_check::log::LogErrorKind::Empty => continue,
            Err(e) => return Err(e.into()),
        };
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
    if let Some(meta_spec) = spec_from_meta(&logs, &names)?
        && meta_spec != spec
    {
        bail!(
            "{} and the logs disagree about the run (order {} with {} members sending {:?}, \
             against order {} with {} members sending {:?})",
            summary_path.display(),
            spec.order,
            spec.members,
            spec.sent,
            meta_spec.order,
            meta_spec.members,
            meta_spec.sent
        );
    }
    Ok(Loaded {
        spec,
        logs,
        sources: names,
        summary: Some(summary),
    })
}

fn read(path: &Path) -> anyhow::Result<PeerLog> {
    Ok(mpcomm_check::log::read_log_file(path)?)
}

fn report(args: &CheckArgs, loaded: &Loaded) -> anyhow::Result<ExitCode> {
    // A run whose logs record a view change is judged as the simulator
    // judges a run with faults (members that left are not missing), and
    // virtual synchrony is checked too; any other run exactly as before.
    let (findings, violations, views) = match check_with_views(&loaded.spec, &loaded.logs) {
        Some((f, v, views)) => (f, v, Some(views)),
        None => {
            let (f, v) = check_detailed(&loaded.spec, &loaded.logs);
            (f, v, None)
        }
    };
    if args.json {
        let mut json = serde_json::to_value(&findings)?;
        if let (Some(views), Some(obj)) = (&views, json.as_object_mut())
            && let serde_json::Value::Object(extra) = serde_json::to_value(views)?
        {
            obj.extend(extra);
        }
        println!("{json}");
    } else {
        println!(
            "Checked {} log(s) of order {} ({} members, {} messages per member):",
            loaded.sources.len(),
            loaded.spec.order,
            loaded.spec.members,
            findings.messages_per_peer
        );
        if let Some(e) = loaded.summary.as_ref().and_then(|s| s.error.as_ref()) {
            println!("  the run FAILED: {e}");
        }
        print!("{}", mpcomm_cli::summary::findings_table(&findings));
        if let Some(views) = &views {
            print!("{}", mpcomm_cli::summary::views_table(views));
        }
        if !findings.complete {
            print!("{}", members_table(loaded, &findings));
        }
        explain(&findings, violations.len());
    }
    Ok(if findings.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// How far each member got and how it stopped: one row per member.
fn members_table(loaded: &Loaded, f: &Findings) -> String {
    // Times are told from the run's first send (or delivery) in any log.
    let t0 = loaded
        .logs
        .iter()
        .flat_map(|l| &l.entries)
        .filter_map(|e| e.sent_us.or(e.delivered_us))
        .min();
    let rel = |us: u64| {
        t0.map(|t| format!("+{:.1} s", us.saturating_sub(t) as f64 / 1e6))
            .unwrap_or_default()
    };
    let expected_each: u64 = loaded.spec.sent.iter().sum();
    let mut s = format!(
        "\n  {:<7} {:<12} {:<9} {:<16} how it ended\n",
        "member", "name", "log", "delivered"
    );
    for id in 0..loaded.spec.members.min(usize::from(MemberId::MAX) + 1) {
        let id = id as MemberId;
        let log = loaded.logs.iter().find(|l| l.peer == id);
        let from_summary = loaded
            .summary
            .as_ref()
            .and_then(|sum| sum.members.iter().find(|m| m.id == id));
        let name = log
            .and_then(|l| l.meta.as_ref())
            .and_then(|m| m.name.clone())
            .or_else(|| from_summary.and_then(|m| m.name.clone()))
            .unwrap_or_default();
        let (state, delivered, ended) = match log {
            None => {
                let why = from_summary
                    .and_then(|m| m.error.clone())
                    .unwrap_or_else(|| "no log was given for it".to_string());
                ("no log".to_string(), "-".to_string(), why)
            }
            Some(l) => {
                let last = l.entries.last().and_then(|e| e.delivered_us);
                let ended = match l.status() {
                    LogStatus::Completed => match l.end.as_ref().and_then(|e| e.t_us) {
                        Some(t) => format!("completed at {}", rel(t)),
                        None => "completed".to_string(),
                    },
                    LogStatus::Failed => {
                        let end = l.end.as_ref();
                        let at = end.and_then(|e| e.t_us).map(rel).unwrap_or_default();
                        let why = end
                            .and_then(|e| e.error.clone())
                            .unwrap_or_else(|| "no reason given".to_string());
                        format!("failed at {at}: {why}")
                    }
                    LogStatus::Partial => format!(
                        "stopped without an end line (killed?); last delivery at {}",
                        last.map(rel).unwrap_or_else(|| "-".to_string())
                    ),
                    LogStatus::Unstated => match last {
                        Some(t) => {
                            format!("last delivery at {} (the log does not say more)", rel(t))
                        }
                        None => "the log does not say".to_string(),
                    },
                };
                let ended = match from_summary.and_then(|m| m.at_s) {
                    Some(at) if from_summary.is_some_and(|m| m.status != "completed") => {
                        format!("{ended} (reported {at:.1} s into the run)")
                    }
                    _ => ended,
                };
                (
                    l.status().to_string(),
                    format!("{} of {expected_each}", l.entries.len()),
                    ended,
                )
            }
        };
        let _ = writeln!(
            s,
            "  {:<7} {:<12} {:<9} {:<16} {ended}",
            id, name, state, delivered
        );
    }
    if f.consistent {
        s.push_str(
            "\n  The run did not complete, so it does not pass; what was delivered up to the \
             stop is consistent with the order.\n",
        );
    }
    s
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
