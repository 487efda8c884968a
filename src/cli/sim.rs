//! `mpcomm sim`: one deterministic simulated run, checked — and, with
//! `--out DIR`, written to a run directory with its report (the explorer),
//! trace and ShiViz log, so that a seed can be looked at and shared.
//!
//! With several orders (`--order none,total`) the same seed and workload
//! run once per order; with `--out DIR` each run goes to `DIR/<order>/` and
//! the reports link to each other, with `DIR/compare.html` showing them side
//! by side.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mpcomm_check::workload::Workload;
use mpcomm_cli::report::{self, Related};
use mpcomm_core::{OrderKind, TraceLimits};
use mpcomm_sim::net::{Delay, parse_duration, parse_probability};
use mpcomm_sim::{Fault, SimConfig, SimOutcome};

/// Arguments of `mpcomm sim`.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// Group size.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1024))]
    peers: u16,
    /// Messages each peer multicasts.
    #[arg(long, default_value_t = 20)]
    messages: u64,
    /// Delivery order: none, fifo, causal, sequencer or total; several,
    /// comma-separated, run the same seed and workload once per order.
    #[arg(long, alias = "orders", default_value = "total", value_delimiter = ',')]
    order: Vec<OrderKind>,
    /// What the messages say: seq (nothing), bank (a replicated account),
    /// chat (questions answered on delivery) or kv (a replicated store).
    #[arg(long, default_value = "seq")]
    workload: Workload,
    /// Seed of every random choice; the same seed replays the same run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Regions the peers are spread over (consecutive blocks).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
    regions: u16,
    /// Probability that a datagram is lost, as 5% or 0.05 (a bare 1 is
    /// ambiguous and refused: write 1% or 100%).
    #[arg(long, default_value = "0", value_parser = parse_probability)]
    loss: f64,
    /// Probability that a datagram is duplicated (5% or 0.05).
    #[arg(long, default_value = "0", value_parser = parse_probability)]
    duplicate: f64,
    /// Probability that a datagram is held back so later ones overtake it
    /// (5% or 0.05).
    #[arg(long, default_value = "0", value_parser = parse_probability)]
    reorder: f64,
    /// Datagrams from a higher to a lower region take (1 + skew) times longer.
    #[arg(long, default_value_t = 0.0)]
    skew: f64,
    /// Delay within a region, e.g. 2ms±1ms.
    #[arg(long, default_value = "2ms±1ms")]
    intra: Delay,
    /// Delay between regions, e.g. 40ms±15ms.
    #[arg(long, default_value = "40ms±15ms")]
    inter: Delay,
    /// Shortest interval between two messages of a peer.
    #[arg(long, default_value = "10ms", value_parser = parse_duration)]
    min_interval: Duration,
    /// Longest interval between two messages of a peer.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    max_interval: Duration,
    /// Flow-control window: records a sender may have unacknowledged, or
    /// undelivered at its slowest receiver.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1048576))]
    window: u32,
    /// The failure detector: suspect a member silent for this long (a
    /// realistic value such as 1s once faults are injected; by default
    /// generous, so that loss alone suspects nobody).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    suspect_after: Duration,
    /// Crash a member for good: MEMBER@TIME, e.g. 2@1.5s (repeatable).
    #[arg(long = "crash", value_name = "MEMBER@TIME", value_parser = Fault::parse_crash)]
    crash: Vec<Fault>,
    /// Crash a member and start a new process in its place:
    /// MEMBER@TIME+DOWNTIME, e.g. 2@1s+500ms (repeatable).
    #[arg(long = "restart", value_name = "MEMBER@TIME+DOWN", value_parser = Fault::parse_restart)]
    restart: Vec<Fault>,
    /// Pause a member (like SIGSTOP) and resume it: MEMBER@TIME+LENGTH
    /// (repeatable).
    #[arg(long = "pause", value_name = "MEMBER@TIME+LENGTH", value_parser = Fault::parse_pause)]
    pause: Vec<Fault>,
    /// Cut members off from the rest for a while: M1,M2@TIME+LENGTH
    /// (repeatable).
    #[arg(long = "partition", value_name = "MEMBERS@TIME+LENGTH", value_parser = Fault::parse_partition)]
    partition: Vec<Fault>,
    /// Crash this many members at random times drawn from the seed.
    #[arg(long, default_value_t = 0)]
    crashes: usize,
    /// Print one JSON object instead of a table (one per order).
    #[arg(long)]
    json: bool,
    /// Write the run to this directory: the peers' delivery logs,
    /// summary.json, trace.jsonl, shiviz.log and report.html (with several
    /// orders, one subdirectory per order and compare.html).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// With --out: how many trace events each peer records in full before
    /// the trace is windowed (see docs/trace.md).
    #[arg(long, default_value_t = TraceLimits::default().full_events, value_name = "N")]
    trace_events: usize,
}

impl SimArgs {
    fn config(&self, order: OrderKind) -> anyhow::Result<SimConfig> {
        if !(0.0..=100.0).contains(&self.skew) {
            anyhow::bail!("--skew {} must be between 0 and 100", self.skew);
        }
        if self.min_interval > self.max_interval {
            anyhow::bail!("--min-interval must not exceed --max-interval");
        }
        let mut cfg = SimConfig {
            peers: usize::from(self.peers),
            messages: self.messages,
            order,
            workload: self.workload,
            seed: self.seed,
            regions: usize::from(self.regions),
            min_interval: self.min_interval,
            max_interval: self.max_interval,
            window: self.window as usize,
            suspect_after: self.suspect_after,
            crashes: self.crashes,
            ..SimConfig::default()
        };
        cfg.faults = [&self.crash, &self.restart, &self.pause, &self.partition]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        for f in &cfg.faults {
            f.validate(cfg.peers).map_err(anyhow::Error::msg)?;
        }
        if (!cfg.faults.is_empty() || cfg.crashes > 0)
            && self.suspect_after > Duration::from_secs(10)
        {
            eprintln!(
                "mpcomm: note: with faults, a failure detector of {:?} keeps the survivors waiting that long; try --suspect-after 1s",
                self.suspect_after
            );
        }
        cfg.net.loss = self.loss;
        cfg.net.duplicate = self.duplicate;
        cfg.net.reorder = self.reorder;
        cfg.net.skew = self.skew;
        cfg.net.intra = self.intra;
        cfg.net.inter = self.inter;
        if self.out.is_some() {
            cfg.trace = Some(TraceLimits {
                full_events: self.trace_events,
                max_events: self.trace_events.saturating_mul(2),
            });
        }
        Ok(cfg)
    }
}

/// Runs `mpcomm sim`.
pub fn run(args: SimArgs) -> anyhow::Result<ExitCode> {
    if args.order.is_empty() {
        anyhow::bail!("--order needs at least one order (none, fifo, causal, sequencer or total)");
    }
    let mut orders = args.order.clone();
    orders.dedup();
    let configs = orders
        .iter()
        .map(|&o| args.config(o))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let Some(cfg) = configs.first() {
        for w in super::wan::warnings(&cfg.net) {
            eprintln!("{w}");
        }
    }
    let mut all_ok = true;
    let mut dirs = Vec::new();
    for cfg in &configs {
        let out = simulate(cfg);
        if args.json {
            let json = serde_json::to_string(&out)?;
            println!("{json}");
        } else {
            print_human(cfg, &out);
        }
        all_ok &= out.ok();
        if let Some(base) = &args.out {
            let dir = if configs.len() == 1 {
                base.clone()
            } else {
                base.join(cfg.order.as_str())
            };
            mpcomm_sim::rundir::write(&dir, cfg, &out)?;
            dirs.push((cfg.order, dir));
        }
    }
    if !dirs.is_empty() {
        write_reports(&dirs, args.out.as_deref(), args.json)?;
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Draws each run's report, linked to the runs of the other orders, and
/// with several orders `compare.html` beside them.
fn write_reports(
    dirs: &[(OrderKind, PathBuf)],
    base: Option<&Path>,
    quiet: bool,
) -> anyhow::Result<()> {
    for (order, dir) in dirs {
        let mut input = report::load(dir)?;
        input.related = dirs
            .iter()
            .filter(|(o, _)| o != order)
            .map(|(o, _)| Related {
                label: format!("the same seed and workload under {o}"),
                href: format!("../{}/{}", o.as_str(), report::REPORT_FILE),
            })
            .collect();
        if dirs.len() > 1 {
            input.compare = Some(format!("../{}", report::COMPARE_FILE));
        }
        let path = report::save_report(dir, &report::render_report(&input))?;
        if !quiet {
            println!("  report            {}", path.display());
        }
    }
    if let (Some(base), true) = (base, dirs.len() > 1) {
        let runs: Vec<(String, String)> = dirs
            .iter()
            .map(|(o, _)| {
                (
                    o.to_string(),
                    format!("{}/{}", o.as_str(), report::REPORT_FILE),
                )
            })
            .collect();
        let path = base.join(report::COMPARE_FILE);
        std::fs::write(&path, report::render_compare(&runs))
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        if !quiet {
            println!("side by side: {}", path.display());
        }
    }
    Ok(())
}

/// One simulated run, with a progress bar for long ones.
fn simulate(cfg: &SimConfig) -> SimOutcome {
    // Drawn on stderr only when it is a terminal, and only once a run has
    // lasted long enough to call back (most runs end before that).
    let bar = ProgressBar::hidden();
    let mut shown = false;
    let out = mpcomm_sim::run_with_progress(cfg, &mut |p| {
        if !shown {
            shown = true;
            bar.set_draw_target(ProgressDrawTarget::stderr());
            bar.set_length(p.expected);
            bar.set_style(
                ProgressStyle::with_template(
                    "simulating {bar:30} {pos}/{len} deliveries, {msg} simulated ({eta} left)",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
        }
        bar.set_position(p.delivered);
        bar.set_message(format!("{:.1} s", p.sim_time.as_secs_f64()));
    });
    bar.finish_and_clear();
    out
}

fn print_human(cfg: &SimConfig, out: &SimOutcome) {
    println!(
        "Simulated {} peers × {} messages, order {}, workload {}, seed {}, {} region(s): {}",
        cfg.peers, cfg.messages, cfg.order, cfg.workload, cfg.seed, cfg.regions, cfg.net
    );
    let completed = if out.completed {
        "yes".to_string()
    } else {
        format!("NO (stuck: {:?})", out.stuck)
    };
    println!(
        "  completed         {completed} after {:.3} s simulated; {} datagrams ({:.1} per message, busiest peer {}), {} lost, {} duplicated, {} resent",
        out.sim_time_ms / 1e3,
        out.datagrams,
        out.datagrams_per_message,
        out.peer_datagrams.iter().max().copied().unwrap_or(0),
        out.network.lost,
        out.network.duplicated,
        out.retransmissions
    );
    for (peer, why) in &out.failures {
        println!("  peer {peer} failed:  {why}");
    }
    for f in &out.faults {
        println!("  fault             {}", &f.to_string()[2..]);
    }
    for v in out.views.iter().skip(1) {
        println!(
            "  view {:<3}          {:?} at {:.3} s (left {:?}, joined {:?})",
            v.id,
            v.members,
            v.installed_ms / 1e3,
            v.left,
            v.joined
        );
    }
    for (peer, why) in &out.excluded {
        println!("  peer {peer} stopped: {why}");
    }
    if out.views.len() > 1 || !out.faults.is_empty() {
        println!("  virtual synchrony {}", out.virtual_synchrony_detail);
    }
    print!("{}", mpcomm_cli::summary::findings_table(&out.findings));
    if !out.ok() {
        println!("\nReplay this run with:\n  {}", cfg.replay_command());
    }
}
