//! `mpcomm server`: the comparison server (see [`mpcomm_cli::roles::server`]).
//!
//! Interactive like the original when `--messages` is absent: it asks for
//! the number of messages per peer, runs, prints the result, and asks again;
//! `0` stops the peers and the group manager. With `--messages` it runs
//! `--runs` experiments and exits 0 only if every run passed its checks.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use mpcomm_cli::roles::server::{RunOutcome, RunParams, Server, ServerEvent, ServerOptions};
use mpcomm_core::OrderKind;
use mpcomm_sim::net::parse_duration;
use tokio::io::AsyncBufReadExt;

/// Arguments of `mpcomm server`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The group manager's address, host:port.
    #[arg(long, default_value = "127.0.0.1:5680")]
    group_manager: String,
    /// TCP address where peers deliver their logs.
    /// Any address but loopback needs a key (`--key`) or `--insecure`.
    #[arg(long, default_value = "127.0.0.1:5678")]
    listen: SocketAddr,
    /// The address peers must use to reach this server, `HOST` or
    /// `HOST:PORT` (when a NAT maps the port), if not the bound one.
    #[arg(long)]
    advertise: Option<String>,
    /// Messages per peer; without it, the server asks interactively.
    #[arg(long)]
    messages: Option<u64>,
    /// Delivery order: none, fifo or total.
    #[arg(long, default_value = "total")]
    order: OrderKind,
    /// Number of runs (non-interactive mode).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Wait until this many peers are registered before the first run.
    #[arg(long)]
    expect: Option<usize>,
    /// How long to wait for --expect peers.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    expect_timeout: Duration,
    /// Emulate a wide-area network, e.g. 'intra=2ms±1ms, inter=80ms±30ms, loss=1%'.
    #[arg(long, value_parser = parse_wan)]
    wan: Option<String>,
    /// Shortest pause between two messages of a peer.
    #[arg(long, default_value = "10ms", value_parser = parse_duration)]
    min_interval: Duration,
    /// Longest pause between two messages of a peer.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    max_interval: Duration,
    /// Bytes per message (8 to 1024).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(8..=1024))]
    payload: u16,
    /// Workload seed (default: derived from the run id).
    #[arg(long)]
    seed: Option<u64>,
    /// Give up on a run after this long (default: from the workload).
    #[arg(long, value_parser = parse_duration)]
    deadline: Option<Duration>,
    /// Directory for run directories.
    #[arg(long, default_value = "runs")]
    data_dir: PathBuf,
    /// After the runs, stop the peers and the group manager.
    #[arg(long)]
    stop_when_done: bool,
    /// Print one JSON object per run (the run's summary.json) instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    key: super::key::KeyArgs,
}

/// Checks a `--wan` spec while the arguments are parsed, so that a typo is
/// reported at once, not after waiting for peers (or, interactively, for
/// the first number typed).
fn parse_wan(s: &str) -> Result<String, String> {
    s.parse::<mpcomm_sim::NetProfile>()
        .map_err(|e| e.to_string())?;
    Ok(s.to_string())
}

impl ServerArgs {
    /// The checks that span several flags (each flag's own value was
    /// checked while parsing, `--wan` included).
    fn check(&self) -> anyhow::Result<()> {
        if self.min_interval > self.max_interval {
            anyhow::bail!("--min-interval must not exceed --max-interval");
        }
        Ok(())
    }

    fn params(&self, messages: u64) -> RunParams {
        RunParams {
            messages,
            order: self.order,
            min_interval: self.min_interval,
            max_interval: self.max_interval,
            payload: usize::from(self.payload),
            wan: self.wan.clone(),
            seed: self.seed,
            deadline: self.deadline,
        }
    }
}

/// Runs `mpcomm server`.
pub fn run(args: ServerArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: ServerArgs) -> anyhow::Result<ExitCode> {
    // Settings that cannot work are refused now, not after the wait for
    // peers (or, interactively, for the first number typed).
    args.check()?;
    let keys = args.key.load("the server", &[args.listen])?;
    let mut server = Server::bind(ServerOptions {
        group_manager: args.group_manager.clone(),
        listen: args.listen,
        advertise: args.advertise.clone(),
        data_dir: args.data_dir.clone(),
    })
    .await?
    .with_keys(keys);
    // Tells scripts and tests the report port when --listen asks for port 0.
    eprintln!("listening for reports on {}", server.report_addr());
    let quiet = args.json;
    let mut progress = |ev: ServerEvent| {
        if !quiet {
            print_progress(&ev);
        }
    };
    if let Some(n) = args.expect {
        server
            .wait_for_peers(n, args.expect_timeout, &mut progress)
            .await?;
    }
    let mut all_passed = true;
    match args.messages {
        Some(m) => {
            let params = args.params(m);
            for _ in 0..args.runs {
                let outcome = server.run(&params, &mut progress).await?;
                all_passed &= outcome.passed;
                show(&outcome, args.json)?;
            }
            if args.stop_when_done {
                server.stop_everything().await?;
            }
        }
        None => {
            let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
            loop {
                eprint!("Number of messages per peer (0 stops the peers and the group manager): ");
                let Some(line) = lines.next_line().await? else {
                    break;
                };
                let m: u64 = match line.trim().parse() {
                    Ok(m) => m,
                    Err(_) => {
                        eprintln!("{:?} is not a number", line.trim());
                        continue;
                    }
                };
                if m == 0 {
                    server.stop_everything().await?;
                    break;
                }
                let outcome = server.run(&args.params(m), &mut progress).await?;
                all_passed &= outcome.passed;
                show(&outcome, args.json)?;
            }
        }
    }
    Ok(if all_passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_progress(ev: &ServerEvent) {
    match ev {
        ServerEvent::Waiting {
            registered,
            expected,
        } => {
            eprintln!("waiting for peers: {registered} of {expected} registered")
        }
        ServerEvent::Starting {
            run,
            members,
            deadline,
        } => {
            eprintln!(
                "run {run}: starting {} peers ({}), deadline {deadline:?}",
                members.len(),
                members.join(", ")
            )
        }
        ServerEvent::Reported {
            member,
            status,
            received,
            total,
        } => {
            eprintln!("  report {received}/{total}: member {member} {status}")
        }
        ServerEvent::Checking => eprintln!("  checking the logs"),
    }
}

fn show(outcome: &RunOutcome, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(outcome)?);
        return Ok(());
    }
    let p = &outcome.params;
    println!(
        "Run {}: {} peers × {} messages, order {}{}",
        outcome.run,
        outcome.members.len(),
        p.messages,
        p.order,
        p.wan
            .as_deref()
            .map(|w| format!(", emulated WAN {w}"))
            .unwrap_or_default()
    );
    if let Some(e) = &outcome.error {
        println!("  FAILED: {e}");
    }
    if let Some(f) = &outcome.findings {
        print!("{}", mpcomm_cli::summary::findings_table(f));
    }
    println!("  stored in {}", outcome.run_dir.display());
    if let Some(report) = &outcome.report {
        println!("  report: {}", report.display());
    }
    if let Some(e) = &outcome.report_error {
        println!("  no report: {e}");
    }
    Ok(())
}
