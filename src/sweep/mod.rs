//! `mpcomm sweep`: the same experiment over a grid of settings, repeated.
//!
//! One run says little: disorder is random. A sweep repeats the experiment
//! for every combination of group size, message count and order, several
//! times each with different seeds, and writes
//!
//! * `results.csv` and `results.json` — one row per run: its parameters, its
//!   seed, the checker's findings and the latency;
//! * `sweep.svg` — unordered rounds against group size, one line per order
//!   (the mean over repeats, with a band from the lowest to the highest),
//!   one panel per message count; and beside it one chart per other
//!   measure ([`chart::Metric`]): causal violations, the share of runs
//!   whose replicas diverged (`bank`, `kv`), answers before questions
//!   (`chat`), latency p50 and p99, datagrams per message (simulated).
//!
//! By default each run is simulated ([`mpcomm_sim`]): fast, and exactly
//! reproducible from its seed. With `--processes` each run uses real peer
//! processes on this machine, under the emulated network ([`processes`]):
//! slower, and subject to the machine's real timing, but nothing is
//! modelled except the distance. Its rows also name each run's directory.

pub mod chart;
pub mod processes;

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use mpcomm_check::workload::Workload;
use mpcomm_core::OrderKind;
use mpcomm_sim::{NetProfile, SimConfig};
use serde::{Deserialize, Serialize};

/// The grid and how to run it.
#[derive(Clone, Debug)]
pub struct SweepSpec {
    /// Group sizes.
    pub peers: Vec<usize>,
    /// Messages per peer.
    pub messages: Vec<u64>,
    /// Orders.
    pub orders: Vec<OrderKind>,
    /// What the messages say.
    pub workload: Workload,
    /// Runs per combination.
    pub repeat: u32,
    /// Regions the peers are spread over.
    pub regions: usize,
    /// The network (simulated, or emulated for processes).
    pub net: NetProfile,
    /// The network as the user wrote it, for the record.
    pub wan_text: String,
    /// Seed of the first run; run `i` uses `seed + i`.
    pub seed: u64,
    /// Shortest and longest pause between two messages of a peer.
    pub interval: (Duration, Duration),
}

/// One point of the grid, with its seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Point {
    /// Group size.
    pub peers: usize,
    /// Messages per peer.
    pub messages: u64,
    /// Order.
    pub order: OrderKind,
    /// Which repetition (from 0).
    pub repeat: u32,
    /// Seed of this run.
    pub seed: u64,
}

impl SweepSpec {
    /// Every run of the sweep, grouped by group size (so a process backend
    /// can keep one cluster per size).
    pub fn points(&self) -> Vec<Point> {
        let mut out = Vec::new();
        for &peers in &self.peers {
            for &messages in &self.messages {
                for &order in &self.orders {
                    for repeat in 0..self.repeat {
                        let seed = self.seed + out.len() as u64;
                        out.push(Point {
                            peers,
                            messages,
                            order,
                            repeat,
                            seed,
                        });
                    }
                }
            }
        }
        out
    }
}

/// One run's results: a row of `results.csv`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// `sim` or `processes`.
    pub backend: String,
    /// Group size.
    pub peers: usize,
    /// Messages per peer.
    pub messages: u64,
    /// Order.
    pub order: String,
    /// Workload.
    #[serde(default)]
    pub workload: String,
    /// Repetition.
    pub repeat: u32,
    /// Seed.
    pub seed: u64,
    /// Regions.
    pub regions: usize,
    /// Network description.
    pub wan: String,
    /// Whether every peer completed.
    pub completed: bool,
    /// Rounds in which not every peer delivered the same message.
    pub unordered_rounds: u64,
    /// Rounds in all.
    pub rounds: u64,
    /// Total order held.
    pub total_order: bool,
    /// Agreement held.
    pub agreement: bool,
    /// Integrity held.
    pub integrity: bool,
    /// FIFO held.
    pub fifo: bool,
    /// Causal order held (empty: the logs could not tell).
    #[serde(default)]
    pub causal: Option<bool>,
    /// Deliveries that came before one of their predecessors.
    #[serde(default)]
    pub causal_violations: Option<u64>,
    /// `chat`: answers delivered before their question.
    #[serde(default)]
    pub answers_before_questions: Option<u64>,
    /// `bank`, `kv`: every peer ended in the same state.
    #[serde(default)]
    pub states_agree: Option<bool>,
    /// Every property the order promises held.
    pub passed: bool,
    /// Deliveries.
    pub delivered: u64,
    /// Deliveries expected.
    pub expected: u64,
    /// Median send-to-delivery latency, microseconds.
    pub latency_p50_us: Option<u64>,
    /// 99th percentile latency, microseconds.
    pub latency_p99_us: Option<u64>,
    /// How long the run took: simulated time for `sim`, wall time for
    /// `processes`, in milliseconds.
    pub duration_ms: f64,
    /// Datagrams sent per message multicast (`sim` only).
    #[serde(default)]
    pub datagrams_per_message: Option<f64>,
    /// Why the run failed, if it did.
    pub error: Option<String>,
    /// Where the run's logs, `summary.json` and `report.html` are (only for
    /// `processes`: a simulated run leaves no directory behind; replay it
    /// with `mpcomm sim` and its seed instead).
    pub run_dir: Option<String>,
}

impl Row {
    /// A row from the checker's findings.
    pub fn from_findings(
        backend: &str,
        spec: &SweepSpec,
        p: &Point,
        f: Option<&mpcomm_check::Findings>,
        completed: bool,
        duration_ms: f64,
        error: Option<String>,
    ) -> Row {
        Row {
            backend: backend.to_string(),
            peers: p.peers,
            messages: p.messages,
            order: p.order.to_string(),
            workload: f.map_or_else(|| spec.workload.to_string(), |f| f.workload.clone()),
            repeat: p.repeat,
            seed: p.seed,
            regions: spec.regions,
            wan: spec.wan_text.clone(),
            completed,
            unordered_rounds: f.map_or(0, |f| f.unordered_rounds),
            rounds: f.map_or(0, |f| f.rounds),
            total_order: f.is_some_and(|f| f.total_order),
            agreement: f.is_some_and(|f| f.agreement),
            integrity: f.is_some_and(|f| f.integrity),
            fifo: f.is_some_and(|f| f.fifo),
            causal: f.and_then(|f| f.causal),
            causal_violations: f.and_then(|f| f.causal_violations),
            answers_before_questions: f.and_then(|f| f.answers_before_questions),
            states_agree: f.and_then(|f| f.states_agree),
            passed: completed && f.is_some_and(|f| f.passed),
            delivered: f.map_or(0, |f| f.delivered),
            expected: f.map_or(0, |f| f.expected),
            latency_p50_us: f.and_then(|f| f.latency_us.as_ref()).map(|l| l.p50),
            latency_p99_us: f.and_then(|f| f.latency_us.as_ref()).map(|l| l.p99),
            duration_ms,
            datagrams_per_message: None,
            error,
            run_dir: None,
        }
    }

    /// Whether the run produced findings. A run that failed before every
    /// log was in has none; its zeros are no measurement, so the chart
    /// leaves it out.
    pub fn measured(&self) -> bool {
        self.rounds > 0 || self.error.is_none()
    }
}

/// Runs one point in the simulator.
pub fn simulate(spec: &SweepSpec, p: &Point) -> Row {
    let cfg = SimConfig {
        peers: p.peers,
        messages: p.messages,
        order: p.order,
        workload: spec.workload,
        seed: p.seed,
        regions: spec.regions,
        net: spec.net.clone(),
        min_interval: spec.interval.0,
        max_interval: spec.interval.1,
        ..SimConfig::default()
    };
    let out = mpcomm_sim::run(&cfg);
    let error = (!out.completed).then(|| {
        format!(
            "stuck peers {:?}; replay: {}",
            out.stuck,
            cfg.replay_command()
        )
    });
    let mut row = Row::from_findings(
        "sim",
        spec,
        p,
        Some(&out.findings),
        out.completed,
        out.sim_time_ms,
        error,
    );
    row.datagrams_per_message = Some(out.datagrams_per_message);
    row
}

/// Writes `results.csv`, `results.json`, `sweep.svg` and a chart per
/// other measure the rows have ([`chart::Metric::file`]) into `dir`;
/// returns the charts' file names.
pub fn write_results(dir: &Path, spec: &SweepSpec, rows: &[Row]) -> anyhow::Result<Vec<String>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let csv_path = dir.join("results.csv");
    let mut w = csv::Writer::from_path(&csv_path)
        .with_context(|| format!("cannot write {}", csv_path.display()))?;
    for r in rows {
        w.serialize(r)?;
    }
    w.flush()?;
    let json = serde_json::to_vec_pretty(rows)?;
    std::fs::write(dir.join("results.json"), json).context("cannot write results.json")?;
    let mut charts = Vec::new();
    for metric in chart::Metric::ALL {
        if !metric.applies(rows) {
            continue;
        }
        let file = metric.file();
        let svg = chart::render_metric(spec, rows, metric);
        std::fs::write(dir.join(file), svg).with_context(|| format!("cannot write {file}"))?;
        charts.push(file.to_string());
    }
    Ok(charts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SweepSpec {
        SweepSpec {
            peers: vec![2, 4],
            messages: vec![10, 20],
            orders: vec![OrderKind::None, OrderKind::Total],
            workload: Workload::Seq,
            repeat: 3,
            regions: 2,
            net: NetProfile::default(),
            wan_text: NetProfile::default().to_string(),
            seed: 100,
            interval: (Duration::from_millis(10), Duration::from_millis(100)),
        }
    }

    #[test]
    fn the_grid_is_complete_with_distinct_seeds() {
        let points = spec().points();
        assert_eq!(points.len(), 2 * 2 * 2 * 3);
        let mut seeds: Vec<u64> = points.iter().map(|p| p.seed).collect();
        seeds.dedup();
        assert_eq!(seeds.len(), points.len());
        assert!(
            points.windows(2).all(|w| w[0].peers <= w[1].peers),
            "grouped by group size"
        );
    }

    #[test]
    fn a_simulated_point_is_reproducible() {
        let s = spec();
        let p = &s.points()[5];
        assert_eq!(simulate(&s, p), simulate(&s, p));
    }

    /// A bank sweep measures everything a chart can show, and writes a
    /// chart for each measure that applies (chat's only for chat).
    #[test]
    fn a_bank_sweep_measures_and_charts_the_workload() {
        let s = SweepSpec {
            peers: vec![3],
            messages: vec![10],
            orders: vec![OrderKind::Causal, OrderKind::Sequencer],
            workload: Workload::Bank,
            repeat: 1,
            ..spec()
        };
        let rows: Vec<Row> = s.points().iter().map(|p| simulate(&s, p)).collect();
        for r in &rows {
            assert_eq!(r.workload, "bank");
            assert!(r.passed, "{r:?}");
            assert_eq!(r.causal, Some(true));
            assert_eq!(r.causal_violations, Some(0));
            assert!(r.states_agree.is_some() && r.answers_before_questions.is_none());
            assert!(r.datagrams_per_message.is_some_and(|d| d > 0.0));
        }
        assert_eq!(
            rows[1].states_agree,
            Some(true),
            "sequencer keeps replicas alike"
        );
        let dir = tempfile::tempdir().unwrap();
        let charts = write_results(dir.path(), &s, &rows).unwrap();
        assert_eq!(
            charts,
            [
                "sweep.svg",
                "sweep-causal-violations.svg",
                "sweep-diverged.svg",
                "sweep-latency-p50.svg",
                "sweep-latency-p99.svg",
                "sweep-datagrams.svg"
            ]
        );
        let svg = std::fs::read_to_string(dir.path().join("sweep-diverged.svg")).unwrap();
        assert!(svg.contains("runs with diverging states (%)") && svg.contains("sequencer"));
        let csv = std::fs::read_to_string(dir.path().join("results.csv")).unwrap();
        let header = csv.lines().next().unwrap();
        for col in [
            "workload",
            "causal",
            "causal_violations",
            "states_agree",
            "datagrams_per_message",
        ] {
            assert!(header.split(',').any(|c| c == col), "{col} in {header}");
        }
    }
}
