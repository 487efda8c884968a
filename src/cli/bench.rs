//! `mpcomm bench`: throughput and latency of the real runtime on loopback,
//! against a raw-UDP baseline (see [`mpcomm_cli::bench`]).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use mpcomm_cli::bench::{self, BenchOptions, Figures};
use mpcomm_core::OrderKind;

/// Arguments of `mpcomm bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Number of peer processes (at least 2).
    #[arg(long, default_value_t = 3, value_parser = parse_peers)]
    peers: usize,
    /// Messages each peer multicasts.
    #[arg(long, default_value_t = 20_000)]
    messages: u64,
    /// Payload bytes per message (8 to 1024).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Orders to measure, comma-separated.
    #[arg(
        long,
        alias = "order",
        default_value = "none,total",
        value_delimiter = ','
    )]
    orders: Vec<OrderKind>,
    /// Messages per second per peer (default: as fast as flow control allows).
    #[arg(long)]
    rate: Option<f64>,
    /// Skip the raw-UDP baseline.
    #[arg(long)]
    no_baseline: bool,
    /// Emulate a wide-area network for the protocol runs (peers split into two regions).
    #[arg(long)]
    wan: Option<String>,
    /// Flow-control window in records (default: the protocol's).
    #[arg(long)]
    window: Option<usize>,
    /// How long an acknowledgement may wait for data to ride on, e.g. 1ms
    /// (default: 0, sent with the next batch). Longer waits save datagrams
    /// and CPU at light load and cost latency.
    #[arg(long, value_parser = parse_ack_delay)]
    ack_delay: Option<Duration>,
    /// Print one JSON object keyed by order ("none", "total", "raw_udp").
    #[arg(long)]
    json: bool,
    /// The group key file: measure the protocol with every datagram sealed
    /// (authenticated and encrypted). The raw-UDP baseline stays in the clear.
    #[arg(long = "key", value_name = "FILE", env = super::key::KEY_ENV)]
    key: Option<std::path::PathBuf>,
}

/// A benchmark of one peer measures nothing: it multicasts to itself, over
/// no network. Refused with that reason rather than run.
fn parse_peers(s: &str) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of peers"))?;
    match n {
        0 | 1 => Err(format!(
            "--peers must be at least 2: with {n} peer{} nothing crosses the network, so there is nothing to measure",
            if n == 1 { "" } else { "s" }
        )),
        _ => Ok(n),
    }
}

fn parse_ack_delay(s: &str) -> Result<Duration, String> {
    let d = mpcomm_sim::net::parse_duration(s).map_err(|e| e.to_string())?;
    if d > Duration::from_secs(1) {
        return Err(format!(
            "{s:?} is too long: an acknowledgement may wait at most 1s (e.g. 1ms)"
        ));
    }
    Ok(d)
}

/// Runs `mpcomm bench`.
pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    if let Some(w) = &args.wan {
        let net = super::wan::parse(w).map_err(anyhow::Error::msg)?;
        for line in super::wan::describe(&net) {
            eprintln!("{line}");
        }
    }
    let opts = BenchOptions {
        peers: args.peers,
        messages: args.messages,
        size: args.size,
        orders: args.orders.clone(),
        rate: args.rate,
        raw_udp: !args.no_baseline,
        wan: args.wan.clone(),
        window: args.window,
        ack_delay: args.ack_delay,
        exe: std::env::current_exe()
            .context("cannot find the mpcomm binary to start peers from")?,
        key_file: match &args.key {
            Some(path) => {
                // Checked here, so that a bad file is one clear error, not
                // one per peer process.
                mpcomm::keyfile::load(path)
                    .with_context(|| format!("cannot use the key file {}", path.display()))?;
                Some(std::fs::canonicalize(path)?)
            }
            None => None,
        },
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let json = args.json;
    let figures = rt.block_on(bench::run(&opts, |mode| {
        if !json {
            eprintln!(
                "measuring {mode}: {} peers × {} messages of {} bytes",
                opts.peers, opts.messages, opts.size
            );
        }
    }))?;
    if json {
        println!("{}", serde_json::to_string(&figures)?);
    } else {
        print_table(&figures);
    }
    // Every protocol run must deliver everything, and `total` the same
    // sequence everywhere (`none` differs by design; raw UDP may lose).
    let ok = figures
        .iter()
        .filter(|(k, _)| *k != "raw_udp")
        .all(|(k, f)| {
            f.errors.is_empty()
                && f.delivered == f.expected
                && (k.as_str() != "total" || f.same_order)
        });
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_table(figures: &std::collections::BTreeMap<String, Figures>) {
    println!(
        "{:<8} {:>14} {:>9} {:>9} {:>9} {:>8} {:>10} {:>10}",
        "order", "msgs/s/peer", "p50 µs", "p99 µs", "p999 µs", "cpu s", "rss KiB", "same order"
    );
    for (name, f) in figures {
        println!(
            "{:<8} {:>14.0} {:>9.0} {:>9.0} {:>9.0} {:>8.2} {:>10} {:>10}",
            name,
            f.delivered_per_s_per_peer,
            f.p50_us,
            f.p99_us,
            f.p999_us,
            f.cpu_s,
            f.peak_rss_kib,
            if f.same_order { "yes" } else { "no" }
        );
        for e in &f.errors {
            println!("         error: {e}");
        }
    }
}
