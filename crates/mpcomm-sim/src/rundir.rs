//! A simulated run written to disk, like a real run of the comparison
//! server: so that a seed can be looked at, shared and replayed.
//!
//! [`write()`] fills a directory with
//!
//! | file | what |
//! |---|---|
//! | `member-K.jsonl` | peer K's delivery log (the format `mpcomm check` reads; version 1: deliveries only) |
//! | `summary.json` | parameters, members, the checker's findings, and the command that replays the run |
//! | `trace.jsonl` | every peer's trace, merged (see [`crate::trace`]) — when the run was traced |
//! | `shiviz.log` | the trace for ShiViz (see [`crate::shiviz`]) — when the run was traced |
//!
//! and the command line adds `report.html`, drawn from these files. The
//! summary has the shape of the server's, so `mpcomm check DIR` and the
//! report read both alike.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::Path;

use mpcomm_core::{MemberId, Stats};
use serde::Serialize;

use crate::shiviz;
use crate::trace::{self, Trace};
use crate::{SimConfig, SimOutcome, net};

/// The parameters block of `summary.json` (the server's field names).
#[derive(Serialize)]
struct Params {
    messages: u64,
    order: String,
    /// µs
    min_interval: u64,
    /// µs
    max_interval: u64,
    payload: u64,
    wan: String,
    seed: u64,
}

#[derive(Serialize)]
struct Member {
    id: MemberId,
    name: String,
    region: String,
    status: &'static str,
    error: Option<String>,
    entries: u64,
    stats: BTreeMap<String, u64>,
}

/// `summary.json`: the checker's findings at the top level (as the server
/// writes them), then the run's own fields, which win over the findings'
/// (`passed` is the run's verdict: completed *and* every promise kept).
#[derive(Serialize)]
struct Summary {
    run: u64,
    passed: bool,
    error: Option<String>,
    simulated: bool,
    replay: String,
    params: Params,
    /// Simulated seconds.
    duration_s: f64,
    members: Vec<Member>,
    simulation: serde_json::Value,
}

/// A peer's counters as the report's members table shows them.
fn stats_map(s: &Stats) -> BTreeMap<String, u64> {
    BTreeMap::from([
        ("datagrams_sent".to_string(), s.datagrams_sent),
        ("retransmissions".to_string(), s.retransmissions),
        ("delivered".to_string(), s.delivered),
        ("dropped".to_string(), s.dropped()),
        ("max_held".to_string(), s.max_held),
    ])
}

/// The merged trace of a traced run, `None` if it was not traced.
pub fn merged_trace(cfg: &SimConfig, out: &SimOutcome) -> Option<Trace> {
    if out.traces.is_empty() {
        return None;
    }
    let peers = out.traces.iter().map(|t| t.to_lines(0)).collect();
    Some(trace::merge(peers, Some(cfg.order)))
}

/// The member names a simulated run uses: `peer-K`.
pub fn names(cfg: &SimConfig) -> Vec<String> {
    (0..cfg.peers).map(|k| format!("peer-{k}")).collect()
}

fn create(dir: &Path, name: &str) -> io::Result<BufWriter<File>> {
    let path = dir.join(name);
    File::create(&path)
        .map(BufWriter::new)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot create {}: {e}", path.display())))
}

/// Writes the run into `dir` (created if need be; files of an earlier run
/// there are replaced).
pub fn write(dir: &Path, cfg: &SimConfig, out: &SimOutcome) -> io::Result<()> {
    fs::create_dir_all(dir)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot create {}: {e}", dir.display())))?;
    for log in &out.logs {
        let mut w = create(dir, &format!("member-{}.jsonl", log.peer))?;
        for e in &log.entries {
            mpcomm_check::log::write_entry(&mut w, e)?;
        }
        w.flush()?;
    }
    let names = names(cfg);
    let members = (0..cfg.peers)
        .map(|k| {
            let id = k as MemberId;
            let failure = out
                .failures
                .iter()
                .find(|(p, _)| *p == id)
                .map(|(_, e)| e.clone());
            let status = if failure.is_some() {
                "failed"
            } else if out.stuck.contains(&id) {
                "stuck"
            } else {
                "completed"
            };
            Member {
                id,
                name: names[k].clone(),
                region: net::region_label(net::region_of(k, cfg.peers, cfg.regions)),
                status,
                error: failure,
                entries: out.logs.get(k).map_or(0, |l| l.entries.len() as u64),
                stats: out.peer_stats.get(k).map(stats_map).unwrap_or_default(),
            }
        })
        .collect();
    let error = if !out.failures.is_empty() {
        Some(format!(
            "peer(s) failed: {}",
            out.failures
                .iter()
                .map(|(p, e)| format!("{p}: {e}"))
                .collect::<Vec<_>>()
                .join("; ")
        ))
    } else if !out.completed {
        Some(format!(
            "peer(s) {:?} did not complete within the time limit",
            out.stuck
        ))
    } else {
        None
    };
    let summary = Summary {
        run: out
            .logs
            .iter()
            .find_map(|l| l.entries.first().map(|e| e.run))
            .unwrap_or(0),
        passed: out.ok(),
        error,
        simulated: true,
        replay: format!("{} --out {}", cfg.replay_command(), dir.display()),
        params: Params {
            messages: cfg.messages,
            order: cfg.order.to_string(),
            min_interval: cfg.min_interval.as_micros() as u64,
            max_interval: cfg.max_interval.as_micros() as u64,
            payload: cfg.payload as u64,
            wan: format!("simulated: {}", cfg.net),
            seed: cfg.seed,
        },
        duration_s: out.sim_time_ms / 1e3,
        members,
        simulation: serde_json::json!({
            "completed": out.completed,
            "failures": out.failures,
            "stuck": out.stuck,
            "trace_hash": out.trace_hash,
            "sim_time_ms": out.sim_time_ms,
            "events": out.events,
            "network": out.network,
            "retransmissions": out.retransmissions,
            "datagrams": out.datagrams,
            "dropped": out.dropped,
        }),
    };
    let mut json = serde_json::to_value(&out.findings)?;
    if let (Some(map), serde_json::Value::Object(own)) =
        (json.as_object_mut(), serde_json::to_value(&summary)?)
    {
        map.extend(own);
    }
    let mut w = create(dir, "summary.json")?;
    serde_json::to_writer_pretty(&mut w, &json)?;
    w.write_all(b"\n")?;
    w.flush()?;
    if let Some(t) = merged_trace(cfg, out) {
        let mut w = create(dir, trace::TRACE_FILE)?;
        trace::write(&mut w, &t)?;
        w.flush()?;
        let mut w = create(dir, shiviz::SHIVIZ_FILE)?;
        w.write_all(shiviz::render(&t.lines, cfg.peers, &names).as_bytes())?;
        w.flush()?;
    }
    Ok(())
}
