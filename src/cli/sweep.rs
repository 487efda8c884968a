//! `mpcomm sweep`: repeated experiments over a grid (see [`mpcomm_cli::sweep`]),
//! simulated by default, over real local processes with `--processes`
//! (see [`mpcomm_cli::sweep::processes`]).
//!
//! Exit status: 0 if every run kept its order's promises, 1 if one did not
//! (or could not be made), 2 on bad arguments or a setup error, 130 when
//! interrupted (Ctrl-C or SIGTERM; the rows finished so far are written).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use mpcomm_check::workload::Workload;
use mpcomm_cli::roles::demo::{DEFAULT_WAN, DemoEvent};
use mpcomm_cli::roles::server::ServerEvent;
use mpcomm_cli::sweep::processes::{self, ProcessOptions, Progress};
use mpcomm_cli::sweep::{self, Row, SweepSpec};
use mpcomm_core::OrderKind;
use mpcomm_sim::NetProfile;
use mpcomm_sim::net::parse_duration;

/// Arguments of `mpcomm sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Group sizes, comma-separated.
    #[arg(long, default_value = "2,4,6", value_delimiter = ',', value_parser = clap::value_parser!(u16).range(1..=64))]
    peers: Vec<u16>,
    /// Messages per peer, comma-separated.
    #[arg(long, default_value = "50", value_delimiter = ',')]
    messages: Vec<u64>,
    /// Orders, comma-separated (none, fifo, causal, sequencer, total).
    #[arg(
        long,
        alias = "order",
        default_value = "none,total",
        value_delimiter = ','
    )]
    orders: Vec<OrderKind>,
    /// What the messages say: seq, bank, chat or kv (simulated only, for
    /// now).
    #[arg(long, default_value = "seq")]
    workload: Workload,
    /// Runs per combination (different seeds).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    repeat: u32,
    /// Regions the peers are spread over (consecutive blocks).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
    regions: u16,
    /// The network, e.g. 'intra=2ms±1ms, inter=40ms±15ms, loss=1%'
    /// (probabilities as 1% or 0.01); the default is the demo's.
    #[arg(long, default_value = DEFAULT_WAN)]
    wan: String,
    /// Seed of the first run (run i uses seed + i).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Shortest pause between two messages of a peer.
    #[arg(long, default_value = "10ms", value_parser = parse_duration)]
    min_interval: Duration,
    /// Longest pause between two messages of a peer.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    max_interval: Duration,
    /// Where to write the results (default: a new sweep-<time> directory here).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run over real processes instead of the simulator: for each group
    /// size, a group manager and that many peer processes on 127.0.0.1 (as
    /// `mpcomm demo` starts them), with --wan emulated by the peers. Every
    /// run of that size is made on them; each run's logs and report go to
    /// OUT/peers-N/runs/ (the `run_dir` column). Slower than the simulator
    /// (each run takes its real sending time) and not exactly reproducible:
    /// the seed fixes the workload, the machine the timing. Ctrl-C stops
    /// every process and still writes the rows finished so far.
    #[arg(long)]
    processes: bool,
}

/// Runs `mpcomm sweep`.
pub fn run(args: SweepArgs) -> anyhow::Result<ExitCode> {
    let net: NetProfile = super::wan::parse(&args.wan).map_err(anyhow::Error::msg)?;
    for w in super::wan::warnings(&net) {
        eprintln!("{w}");
    }
    if args.min_interval > args.max_interval {
        anyhow::bail!("--min-interval must not exceed --max-interval");
    }
    let spec = SweepSpec {
        peers: args.peers.iter().map(|p| usize::from(*p)).collect(),
        messages: args.messages.clone(),
        orders: args.orders.clone(),
        workload: args.workload,
        repeat: args.repeat,
        regions: usize::from(args.regions),
        wan_text: net.to_string(),
        net,
        seed: args.seed,
        interval: (args.min_interval, args.max_interval),
    };
    if args.processes {
        sweep::processes::validate(&spec)?;
    } else if args.messages.contains(&0) {
        anyhow::bail!("--messages must be at least 1 (e.g. --messages 50)");
    }
    let dir = args.out.clone().unwrap_or_else(default_dir);
    let points = spec.points();
    let bar = ProgressBar::new(points.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} runs {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let (rows, interrupted) = if args.processes {
        run_processes(&spec, &dir, &bar)?
    } else {
        let mut rows: Vec<Row> = Vec::with_capacity(points.len());
        for p in &points {
            bar.set_message(format!(
                "{} peers, {} messages, {}",
                p.peers, p.messages, p.order
            ));
            rows.push(sweep::simulate(&spec, p));
            bar.inc(1);
        }
        (rows, false)
    };
    bar.finish_and_clear();
    let charts = sweep::write_results(&dir, &spec, &rows)?;
    print_summary(&rows);
    println!(
        "\nWrote {0}/results.csv, {0}/results.json and the charts {0}/{{{1}}}",
        dir.display(),
        charts.join(",")
    );
    if args.processes {
        println!(
            "Each run's logs and report.html: {}/peers-N/runs/ (the run_dir column)",
            dir.display()
        );
    }
    if interrupted {
        eprintln!(
            "mpcomm sweep: interrupted after {} of {} runs; every process it started has been stopped",
            rows.len(),
            points.len()
        );
        return Ok(ExitCode::from(130));
    }
    let failed = rows.iter().filter(|r| !r.passed).count();
    if failed > 0 {
        println!(
            "{failed} run(s) did not keep their order's promises; see the `passed` and `error` columns."
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs the sweep over real processes (see [`sweep::processes`]), showing
/// the current run and its phase on the bar. Returns the rows and whether
/// the user interrupted the sweep.
fn run_processes(
    spec: &SweepSpec,
    dir: &Path,
    bar: &ProgressBar,
) -> anyhow::Result<(Vec<Row>, bool)> {
    let exe = std::env::current_exe()
        .context("cannot find the mpcomm binary to start the processes from")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let opts = ProcessOptions::new(exe, dir.to_path_buf());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    bar.enable_steady_tick(Duration::from_millis(120));
    let outcome = runtime.block_on(async {
        let shutdown = super::shutdown_signal().context("cannot install signal handlers")?;
        let mut show = |p: Progress<'_>| show_progress(bar, &p);
        anyhow::Ok(processes::run(spec, &opts, &mut show, shutdown).await)
    })?;
    bar.set_position(outcome.rows.len() as u64);
    if !outcome.killed.is_empty() {
        bar.suspend(|| {
            eprintln!(
                "note: {} did not stop when asked and had to be killed (see {}/peers-N/logs/)",
                outcome.killed.join(", "),
                dir.display()
            );
        });
    }
    Ok((outcome.rows, outcome.interrupted))
}

/// One line of progress: the current run and what it is doing. When
/// stderr is not a terminal the bar is hidden, and a plain line is printed
/// as each run starts and ends instead (a log gets lines, not redraws).
fn show_progress(bar: &ProgressBar, p: &Progress<'_>) {
    if bar.is_hidden() {
        let run = p.point.map(|pt| {
            format!(
                "{} peers, {} messages, {} #{}",
                pt.peers,
                pt.messages,
                pt.order,
                pt.repeat + 1
            )
        });
        let run = run.as_deref().unwrap_or("");
        match &p.event {
            DemoEvent::RunStarting { .. } => eprintln!("{run}: running"),
            DemoEvent::RunFinished { passed, .. } => {
                eprintln!("{run}: {}", if *passed { "PASS" } else { "FAIL" })
            }
            _ => {}
        }
    }
    let run = p.point.map(|pt| {
        format!(
            "{} peers, {} messages, {} #{}",
            pt.peers,
            pt.messages,
            pt.order,
            pt.repeat + 1
        )
    });
    let run = run.as_deref().unwrap_or("");
    match &p.event {
        DemoEvent::Spawning { total, .. } | DemoEvent::Up { total, .. } => {
            let up = match &p.event {
                DemoEvent::Up { up, .. } => *up,
                _ => 0,
            };
            bar.set_message(format!(
                "starting group manager + {} peers ({up}/{total} up)",
                p.peers
            ));
        }
        DemoEvent::RunStarting { expected, .. } => {
            bar.set_message(format!(
                "{run}: sending (about {:.0} s)",
                expected.as_secs_f64()
            ));
        }
        DemoEvent::Server(ServerEvent::Reported {
            received, total, ..
        }) => bar.set_message(format!("{run}: collecting logs {received}/{total}")),
        DemoEvent::Server(ServerEvent::Checking) => {
            bar.set_message(format!("{run}: checking the logs"));
        }
        DemoEvent::RunFinished { passed, .. } => {
            bar.inc(1);
            bar.set_message(format!("{run}: {}", if *passed { "PASS" } else { "FAIL" }));
        }
        DemoEvent::Stopping => {
            bar.set_message(format!("stopping the {} peers' processes", p.peers));
        }
        DemoEvent::Tick { .. } | DemoEvent::Server(_) => {}
    }
}

/// Per (peers, messages, order): the means over repeats of what the
/// sweep measured; `-` where a measure does not apply.
fn print_summary(rows: &[Row]) {
    let mut groups: std::collections::BTreeMap<(usize, u64, String), Vec<&Row>> =
        Default::default();
    for r in rows.iter().filter(|r| r.measured()) {
        groups
            .entry((r.peers, r.messages, r.order.clone()))
            .or_default()
            .push(r);
    }
    println!(
        "{:>6} {:>9} {:<10} {:>10} {:>10} {:>9} {:>9} {:>9} {:>10}",
        "peers",
        "messages",
        "order",
        "unordered",
        "causal",
        "diverged",
        "p50 ms",
        "p99 ms",
        "dgram/msg"
    );
    for ((peers, messages, order), v) in groups {
        let mean = |f: &dyn Fn(&Row) -> Option<f64>, decimals: usize| {
            let xs: Vec<f64> = v.iter().filter_map(|r| f(r)).collect();
            if xs.is_empty() {
                "-".to_string()
            } else {
                format!("{:.*}", decimals, xs.iter().sum::<f64>() / xs.len() as f64)
            }
        };
        let diverged = {
            let known: Vec<bool> = v.iter().filter_map(|r| r.states_agree).collect();
            if known.is_empty() {
                "-".to_string()
            } else {
                let n = known.iter().filter(|a| !**a).count();
                format!("{n}/{}", known.len())
            }
        };
        println!(
            "{peers:>6} {messages:>9} {order:<10} {:>10} {:>10} {diverged:>9} {:>9} {:>9} {:>10}",
            mean(&|r| Some(r.unordered_rounds as f64), 1),
            mean(&|r| r.causal_violations.map(|c| c as f64), 1),
            mean(&|r| r.latency_p50_us.map(|us| us as f64 / 1e3), 1),
            mean(&|r| r.latency_p99_us.map(|us| us as f64 / 1e3), 1),
            mean(&|r| r.datagrams_per_message, 1),
        );
    }
}

fn default_dir() -> PathBuf {
    PathBuf::from(format!("sweep-{}", mpcomm_cli::roles::stamp::now_stamp()))
}
