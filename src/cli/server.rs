//! `mpcomm server`: the comparison server (see [`mpcomm_cli::roles::server`]).
//!
//! Interactive like the original when `--messages` is absent: it asks for
//! the number of messages per peer, runs (one run per order of
//! `--orders`), prints the result, and asks again; `0` stops the peers and
//! the group manager. With `--messages` it runs `--runs` rounds of one run
//! per order and exits 0 only if every run passed its checks.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
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
    /// Delivery orders, comma-separated: one run per order (none, fifo,
    /// causal, sequencer, total).
    #[arg(long, alias = "order", default_value = "total", value_delimiter = ',')]
    orders: Vec<OrderKind>,
    /// Rounds of runs (one run per order each); needs --messages.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    runs: Option<u32>,
    /// Before every run, wait until at least this many registered peers
    /// answer (and fail the run, naming who is missing, if they do not).
    #[arg(long)]
    expect: Option<usize>,
    /// How long to wait for --expect peers before each run, and for the
    /// group manager at start.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    expect_timeout: Duration,
    /// Emulate a wide-area network, e.g. 'intra=2ms±1ms, inter=80ms±30ms,
    /// loss=1%' (probabilities as 1% or 0.01).
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
    /// A member silent this long is declared unresponsive and the run fails
    /// (at least 1s; default 10s).
    #[arg(long, value_parser = parse_peer_timeout)]
    peer_timeout: Option<Duration>,
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
/// the first number typed). The peers get the settings as understood here
/// (`loss=1%`, not whatever spelling was typed).
fn parse_wan(s: &str) -> Result<String, String> {
    Ok(super::wan::parse(s)?.to_string())
}

fn parse_peer_timeout(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s).map_err(|e| e.to_string())?;
    if d < Duration::from_secs(1) {
        return Err(format!(
            "{s:?} is too short: a member is declared unresponsive after at least 1s"
        ));
    }
    Ok(d)
}

impl ServerArgs {
    /// The checks that span several flags (each flag's own value was
    /// checked while parsing, `--wan` included).
    fn check(&self) -> anyhow::Result<()> {
        if self.min_interval > self.max_interval {
            bail!("--min-interval must not exceed --max-interval");
        }
        if self.messages.is_none() && self.runs.is_some() {
            bail!(
                "--runs needs --messages: without --messages the server asks for the number of \
                 messages interactively, one answer per run (e.g. --messages 100 --runs 3)"
            );
        }
        if self.orders.is_empty() {
            bail!("--orders needs at least one order (e.g. --orders none,total)");
        }
        Ok(())
    }

    fn params(&self, messages: u64, order: OrderKind) -> RunParams {
        RunParams {
            messages,
            order,
            min_interval: self.min_interval,
            max_interval: self.max_interval,
            payload: usize::from(self.payload),
            wan: self.wan.clone(),
            seed: self.seed,
            deadline: self.deadline,
            peer_timeout: self.peer_timeout,
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
    if let Some(w) = &args.wan
        && let Ok(net) = super::wan::parse(w)
    {
        for line in super::wan::describe(&net) {
            eprintln!("{line}");
        }
    }
    let mut server = Server::bind(ServerOptions {
        advertise: args.advertise.clone(),
        expect: args.expect,
        expect_timeout: args.expect_timeout,
        ..ServerOptions::new(
            args.group_manager.clone(),
            args.listen,
            args.data_dir.clone(),
        )
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
    let mut all_passed = true;
    let mut ran = 0usize;
    match args.messages {
        Some(m) => {
            for round in 0..args.runs.unwrap_or(1) {
                for &order in &args.orders {
                    let outcome = server
                        .run(&args.params(m, order), &mut progress)
                        .await
                        .with_context(|| run_label(round, &args, order))?;
                    all_passed &= outcome.passed;
                    show(&outcome, args.json)?;
                }
            }
            if args.stop_when_done {
                stop_everything(&server).await?;
            }
        }
        None => {
            let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
            let interactive = std::io::stdin().is_terminal();
            loop {
                eprint!("Number of messages per peer (0 stops the peers and the group manager): ");
                let Some(line) = lines.next_line().await? else {
                    if ran == 0 {
                        bail!(
                            "standard input ended before a number of messages was given: nothing \
                             was run{} (give --messages N to run without the prompt)",
                            if interactive {
                                ""
                            } else {
                                " (it is not a terminal)"
                            }
                        );
                    }
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
                    stop_everything(&server).await?;
                    break;
                }
                for &order in &args.orders {
                    let outcome = server.run(&args.params(m, order), &mut progress).await?;
                    all_passed &= outcome.passed;
                    ran += 1;
                    show(&outcome, args.json)?;
                }
            }
        }
    }
    Ok(if all_passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// "run 2 of 3 (total)", for errors that stop the runs.
fn run_label(round: u32, args: &ServerArgs, order: OrderKind) -> String {
    let runs = args.runs.unwrap_or(1) as usize * args.orders.len();
    let index = round as usize * args.orders.len()
        + args.orders.iter().position(|&o| o == order).unwrap_or(0)
        + 1;
    format!("run {index} of {runs} ({order}) could not start")
}

/// Stops the peers and the group manager, warning about peers that could
/// not be told.
async fn stop_everything(server: &Server) -> anyhow::Result<()> {
    for why in server.stop_everything().await? {
        tracing::warn!("could not stop peer {why}");
    }
    Ok(())
}

fn print_progress(ev: &ServerEvent) {
    match ev {
        ServerEvent::Waiting {
            registered,
            expected,
        } => {
            eprintln!("waiting for peers: {registered} of {expected} answer")
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
        ServerEvent::Ending { cause } => eprintln!("  ending the run: {cause}"),
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
    if let (Some(vs), Some(detail)) = (outcome.virtual_synchrony, &outcome.virtual_synchrony_detail)
    {
        let views = mpcomm_check::ViewFindings {
            views: outcome.views.clone(),
            left: outcome.left.clone(),
            virtual_synchrony: vs,
            virtual_synchrony_detail: detail.clone(),
        };
        print!("{}", mpcomm_cli::summary::views_table(&views));
    }
    for e in &outcome.unreadable_logs {
        println!("  unreadable log: {e}");
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: ServerArgs,
    }

    fn parse(args: &[&str]) -> Result<ServerArgs, String> {
        Cli::try_parse_from(std::iter::once("server").chain(args.iter().copied()))
            .map(|c| c.args)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_list_of_orders_under_either_name() {
        for flag in ["--orders", "--order"] {
            let a = parse(&[flag, "none,total"]).unwrap();
            assert_eq!(a.orders, [OrderKind::None, OrderKind::Total]);
        }
        assert_eq!(parse(&[]).unwrap().orders, [OrderKind::Total]);
    }

    #[test]
    fn runs_without_messages_is_refused_with_a_reason() {
        let e = parse(&["--runs", "3"]).unwrap().check().unwrap_err();
        assert!(e.to_string().contains("--runs needs --messages"), "{e}");
        assert!(
            parse(&["--runs", "3", "--messages", "5"])
                .unwrap()
                .check()
                .is_ok()
        );
    }

    #[test]
    fn the_wan_goes_to_the_peers_as_understood() {
        let a = parse(&["--wan", "inter=40ms, loss=0.01"]).unwrap();
        assert_eq!(a.wan.as_deref(), Some("intra=2ms±1ms, inter=40ms, loss=1%"));
        assert!(parse(&["--wan", "loss=1"]).unwrap_err().contains("1%"));
        assert!(parse(&["--peer-timeout", "500ms"]).is_err());
    }
}
