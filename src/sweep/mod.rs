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
//!   one panel per message count.
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
            passed: completed && f.is_some_and(|f| f.passed),
            delivered: f.map_or(0, |f| f.delivered),
            expected: f.map_or(0, |f| f.expected),
            latency_p50_us: f.and_then(|f| f.latency_us.as_ref()).map(|l| l.p50),
            latency_p99_us: f.and_then(|f| f.latency_us.as_ref()).map(|l| l.p99),
            duration_ms,
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
    Row::from_findings(
        "sim",
        spec,
        p,
        Some(&out.findings),
        out.completed,
        out.sim_time_ms,
        error,
    )
}

/// Writes `results.csv`, `results.json` and `sweep.svg` into `dir`.
pub fn write_results(dir: &Path, spec: &SweepSpec, rows: &[Row]) -> anyhow::Result<()> {
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
    let svg = chart::render(spec, rows);
    std::fs::write(dir.join("sweep.svg"), svg).context("cannot write sweep.svg")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SweepSpec {
        SweepSpec {
            peers: vec![2, 4],
            messages: vec![10, 20],
            orders: vec![OrderKind::None, OrderKind::Total],
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
}
