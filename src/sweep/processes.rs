//! `mpcomm sweep --processes`: the sweep's runs over real processes.
//!
//! For each group size the sweep starts what `mpcomm demo` starts — a group
//! manager and N peer processes on `127.0.0.1`, with the comparison server
//! inside this process — and makes every run of that size on them, one
//! after another, through [`demo::run_each`]. Starting and registering the
//! processes takes seconds; a small run takes less. So processes are
//! started once per group size, not once per run: a sweep of 3 sizes × 2
//! orders × 5 repeats starts 3 clusters, not 30.
//!
//! Each run gets its grid point's seed, so the *workload* of a row (which
//! peer sends when) can be made again; unlike in the simulator, the real
//! network and scheduler still make each run's timing, and so its
//! disorder, a little different every time. That is the point of this
//! backend: it checks that what the simulator predicts also happens with
//! real sockets.
//!
//! Everything a run leaves goes below the sweep's output directory:
//! `peers-N/runs/<run>/` (logs, `summary.json`, `report.html`; the row's
//! `run_dir`), `peers-N/peers/` and `peers-N/logs/` (each process's stderr).
//! Whatever happens — an error, Ctrl-C — every process is stopped before
//! [`run`] returns, and the rows of the runs that finished are kept.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;

use super::{Point, Row, SweepSpec};
use crate::roles::demo::{self, DemoEvent, DemoOptions};
use crate::roles::server::{RunOutcome, RunParams};

/// Where and how to start the processes.
#[derive(Clone, Debug)]
pub struct ProcessOptions {
    /// The `mpcomm` binary to start the processes from (the CLI passes
    /// `std::env::current_exe()`).
    pub exe: PathBuf,
    /// The sweep's output directory; each group size works in
    /// `peers-N/` below it.
    pub dir: PathBuf,
    /// How long each process may take to start.
    pub startup_timeout: Duration,
}

impl ProcessOptions {
    /// Options with the demo's startup timeout.
    pub fn new(exe: PathBuf, dir: PathBuf) -> ProcessOptions {
        ProcessOptions {
            exe,
            dir,
            startup_timeout: demo::DEFAULT_STARTUP_TIMEOUT,
        }
    }

    /// The demo options of the cluster for group size `peers`.
    fn cluster(&self, spec: &SweepSpec, peers: usize) -> DemoOptions {
        DemoOptions {
            peers,
            regions: spec.regions,
            startup_timeout: self.startup_timeout,
            ..DemoOptions::new(self.exe.clone(), self.dir.join(format!("peers-{peers}")))
        }
    }
}

/// What is happening, for whoever shows progress.
#[derive(Debug)]
pub struct Progress<'a> {
    /// The group size being worked on.
    pub peers: usize,
    /// The grid point of the current run; `None` while the processes start
    /// or stop.
    pub point: Option<&'a Point>,
    /// What the demo machinery reports.
    pub event: DemoEvent,
}

/// How a process sweep ended.
#[derive(Debug)]
pub struct ProcessSweep {
    /// One row per run made, in grid order. A run that could not be made
    /// (its processes did not start, a peer died before it) has a row too,
    /// with the reason in `error`; only an interruption leaves rows out.
    pub rows: Vec<Row>,
    /// The user interrupted the sweep (SIGINT/SIGTERM): `rows` ends early.
    pub interrupted: bool,
    /// Processes that did not stop when asked and were killed.
    pub killed: Vec<String>,
}

/// Checks the grid for real processes before anything is started or
/// created: every group size must have a peer in each region, and every
/// run at least one message.
pub fn validate(spec: &SweepSpec) -> anyhow::Result<()> {
    if spec.peers.is_empty() || spec.messages.is_empty() || spec.orders.is_empty() {
        bail!("--peers, --messages and --order each need at least one value");
    }
    if spec.messages.contains(&0) {
        bail!("--messages must be at least 1 (e.g. --messages 50)");
    }
    if spec.repeat == 0 {
        bail!("--repeat must be at least 1");
    }
    if spec.interval.0 > spec.interval.1 {
        bail!("--min-interval must not exceed --max-interval");
    }
    if spec.workload != mpcomm_check::workload::Workload::Seq {
        bail!(
            "--workload {} is not yet available with --processes (the peer processes send seq \
             messages); leave out --processes to simulate it",
            spec.workload
        );
    }
    let probe = ProcessOptions::new(PathBuf::new(), PathBuf::new());
    for &peers in &spec.peers {
        probe.cluster(spec, peers).validate_cluster()?;
    }
    Ok(())
}

/// The parameters the server gets for grid point `p`: its message count,
/// order and seed, the sweep's pauses and network.
pub fn params(spec: &SweepSpec, p: &Point) -> RunParams {
    RunParams {
        min_interval: spec.interval.0,
        max_interval: spec.interval.1,
        wan: Some(spec.wan_text.clone()),
        seed: Some(p.seed),
        ..RunParams::new(p.messages, p.order)
    }
}

/// The row of a run that was made.
pub fn row(spec: &SweepSpec, p: &Point, outcome: &RunOutcome) -> Row {
    let completed =
        !outcome.members.is_empty() && outcome.members.iter().all(|m| m.status == "completed");
    let mut row = Row::from_findings(
        "processes",
        spec,
        p,
        outcome.findings.as_ref(),
        completed,
        (outcome.duration_s * 1e6).round() / 1e3,
        outcome.error.clone(),
    );
    row.run_dir = Some(outcome.run_dir.display().to_string());
    row
}

/// Runs every point of `spec` over real processes, one cluster per group
/// size. Returns when every process is stopped: after the last run, or
/// early when `shutdown` completes (Ctrl-C), keeping the rows so far.
///
/// Call [`validate`] first for a clear message about bad flags; a grid it
/// refuses makes rows with the error here instead.
pub async fn run(
    spec: &SweepSpec,
    opts: &ProcessOptions,
    progress: &mut dyn FnMut(Progress<'_>),
    shutdown: impl Future<Output = ()>,
) -> ProcessSweep {
    let mut sweep = ProcessSweep {
        rows: Vec::new(),
        interrupted: false,
        killed: Vec::new(),
    };
    let points = spec.points();
    tokio::pin!(shutdown);
    // `points` is grouped by group size (see [`SweepSpec::points`]).
    for group in points.chunk_by(|a, b| a.peers == b.peers) {
        let peers = group[0].peers;
        let cluster = opts.cluster(spec, peers);
        let planned: Vec<RunParams> = group.iter().map(|p| params(spec, p)).collect();
        // Which point is running: the demo numbers the runs of its list.
        let mut current: Option<usize> = None;
        let mut forward = |event: DemoEvent| {
            match &event {
                DemoEvent::RunStarting { index, .. } => current = Some(*index),
                DemoEvent::Stopping => current = None,
                _ => {}
            }
            progress(Progress {
                peers,
                point: current.and_then(|i| group.get(i)),
                event,
            });
        };
        let (outcome, error) =
            demo::run_each(&cluster, &planned, &mut forward, &mut shutdown).await;
        sweep.rows.extend(
            group
                .iter()
                .zip(&outcome.runs)
                .map(|(p, o)| row(spec, p, o)),
        );
        sweep.killed.extend(
            outcome
                .killed
                .iter()
                .map(|name| format!("{name} (group of {peers})")),
        );
        if outcome.interrupted {
            sweep.interrupted = true;
            break;
        }
        if let Some(e) = error {
            // The runs of this size that were not made still get a row, so
            // the CSV shows every point and why it is missing.
            let made = outcome.runs.len();
            for (k, p) in group.iter().enumerate().skip(made) {
                let why = if k == made {
                    format!("{e:#}")
                } else {
                    format!("not run: an earlier run with {peers} peers failed: {e}")
                };
                sweep.rows.push(Row::from_findings(
                    "processes",
                    spec,
                    p,
                    None,
                    false,
                    0.0,
                    Some(why),
                ));
            }
        }
    }
    sweep
}

#[cfg(test)]
mod tests {
    use super::*;
    use mpcomm_core::OrderKind;
    use mpcomm_sim::NetProfile;

    fn spec() -> SweepSpec {
        let net: NetProfile = "intra=1ms±1ms, inter=20ms±5ms, loss=1%".parse().unwrap();
        SweepSpec {
            peers: vec![2, 3],
            messages: vec![10],
            orders: vec![OrderKind::None, OrderKind::Total],
            workload: mpcomm_check::workload::Workload::Seq,
            repeat: 2,
            regions: 2,
            wan_text: net.to_string(),
            net,
            seed: 7,
            interval: (Duration::from_millis(1), Duration::from_millis(5)),
        }
    }

    #[test]
    fn each_point_runs_its_own_seed_pauses_and_network() {
        let s = spec();
        for p in s.points() {
            let r = params(&s, &p);
            assert_eq!(r.seed, Some(p.seed));
            assert_eq!((r.messages, r.order), (p.messages, p.order));
            assert_eq!((r.min_interval, r.max_interval), s.interval);
            // The peers parse the network text again: it must round-trip.
            let wan: NetProfile = r.wan.as_deref().unwrap().parse().unwrap();
            assert_eq!(wan.to_string(), s.wan_text);
        }
    }

    #[test]
    fn bad_grids_are_refused_with_the_flag_to_fix() {
        type Tweak = fn(&mut SweepSpec);
        let cases: [(Tweak, &str); 5] = [
            (|s| s.peers = vec![1, 2], "--regions"),
            (
                |s| s.workload = mpcomm_check::workload::Workload::Bank,
                "--workload",
            ),
            (|s| s.messages = vec![10, 0], "--messages"),
            (|s| s.peers.clear(), "--peers"),
            (
                |s| s.interval = (Duration::from_secs(1), Duration::ZERO),
                "--min-interval",
            ),
        ];
        validate(&spec()).unwrap();
        for (tweak, flag) in cases {
            let mut s = spec();
            tweak(&mut s);
            let e = validate(&s).unwrap_err().to_string();
            assert!(e.contains(flag), "{e}");
        }
    }

    #[tokio::test]
    async fn processes_that_cannot_start_give_a_row_per_point_with_the_reason() {
        let dir = std::env::temp_dir().join(format!("mpcomm-sweep-unit-{}", std::process::id()));
        let s = spec();
        let opts = ProcessOptions::new(dir.join("no-such-binary"), dir.clone());
        let out = tokio::time::timeout(
            Duration::from_secs(60),
            run(&s, &opts, &mut |_| {}, std::future::pending()),
        )
        .await
        .expect("the sweep returns");
        assert!(!out.interrupted);
        assert_eq!(out.rows.len(), s.points().len());
        for r in &out.rows {
            assert!(!r.passed && !r.measured());
            let e = r.error.as_deref().unwrap_or_default();
            assert!(e.contains("cannot start group-manager"), "{e}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
