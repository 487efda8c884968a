//! `mpcomm sweep`: repeated experiments over a grid (see [`mpcomm::sweep`]).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use mpcomm::sweep::{self, Row, SweepSpec};
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
    /// Orders, comma-separated.
    #[arg(long, default_value = "none,total", value_delimiter = ',')]
    order: Vec<OrderKind>,
    /// Runs per combination (different seeds).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    repeat: u32,
    /// Regions the peers are spread over (consecutive blocks).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
    regions: u16,
    /// The network, e.g. 'intra=2ms±1ms, inter=40ms±15ms, loss=1%'.
    #[arg(long, default_value = "intra=2ms±1ms, inter=40ms±15ms")]
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
}

/// Runs `mpcomm sweep`.
pub fn run(args: SweepArgs) -> anyhow::Result<ExitCode> {
    let net: NetProfile = args
        .wan
        .parse()
        .map_err(|e| anyhow::anyhow!("--wan: {e}"))?;
    if args.min_interval > args.max_interval {
        anyhow::bail!("--min-interval must not exceed --max-interval");
    }
    let spec = SweepSpec {
        peers: args.peers.iter().map(|p| usize::from(*p)).collect(),
        messages: args.messages.clone(),
        orders: args.order.clone(),
        repeat: args.repeat,
        regions: usize::from(args.regions),
        wan_text: net.to_string(),
        net,
        seed: args.seed,
        interval: (args.min_interval, args.max_interval),
    };
    let dir = args.out.clone().unwrap_or_else(default_dir);
    let points = spec.points();
    let bar = ProgressBar::new(points.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} runs {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut rows: Vec<Row> = Vec::with_capacity(points.len());
    for p in &points {
        bar.set_message(format!(
            "{} peers, {} messages, {}",
            p.peers, p.messages, p.order
        ));
        rows.push(sweep::simulate(&spec, p));
        bar.inc(1);
    }
    bar.finish_and_clear();
    sweep::write_results(&dir, &spec, &rows)?;
    print_summary(&rows);
    println!(
        "\nWrote {0}/results.csv, {0}/results.json and {0}/sweep.svg",
        dir.display()
    );
    let failed = rows.iter().filter(|r| !r.passed).count();
    if failed > 0 {
        println!(
            "{failed} run(s) did not keep their order's promises; see the `passed` and `error` columns."
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// The mean unordered rounds per (peers, messages, order).
fn print_summary(rows: &[Row]) {
    let mut groups: std::collections::BTreeMap<(usize, u64, String), Vec<u64>> = Default::default();
    for r in rows {
        groups
            .entry((r.peers, r.messages, r.order.clone()))
            .or_default()
            .push(r.unordered_rounds);
    }
    println!(
        "{:>6} {:>9} {:<6} {:>24}",
        "peers", "messages", "order", "unordered rounds (mean)"
    );
    for ((peers, messages, order), v) in groups {
        let mean = v.iter().sum::<u64>() as f64 / v.len() as f64;
        println!("{peers:>6} {messages:>9} {order:<6} {mean:>24.1}");
    }
}

fn default_dir() -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    PathBuf::from(format!("sweep-{secs}"))
}
