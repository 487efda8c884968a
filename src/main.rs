//! The `mpcomm` command: every process of the system and the tools around it.
//!
//! Each subcommand lives in its own module under `cli/`; this file only
//! parses the command line and dispatches.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

/// Ordered multicast among a group of peers — see, measure and verify the
/// delivery order.
#[derive(Debug, Parser)]
#[command(name = "mpcomm", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measure throughput and latency of real peer processes on loopback.
    Bench(cli::bench::BenchArgs),
    /// Verify delivery logs offline: a run directory or log files.
    Check(cli::check::CheckArgs),
    /// Run the whole system on this machine: none, then total, side by side.
    Demo(cli::demo::DemoArgs),
    /// (internal) One peer process of `mpcomm bench`, driven over stdin/stdout.
    #[command(hide = true)]
    BenchPeer,
    /// Write a new group key file (or take one a step through a rotation).
    Keygen(cli::key::KeygenArgs),
    /// Run the registry of peers (TCP, JSON lines).
    GroupManager(cli::group_manager::GroupManagerArgs),
    /// Run a peer: one member of the group.
    Peer(cli::peer::PeerArgs),
    /// Run the comparison server: start runs, collect and check the logs.
    Server(cli::server::ServerArgs),
    /// Simulate one run deterministically (no network; same seed, same run).
    Sim(cli::sim::SimArgs),
    /// Repeat experiments over a grid of group sizes, message counts and orders.
    Sweep(cli::sweep::SweepArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        Command::Bench(args) => cli::bench::run(args),
        Command::Check(args) => cli::check::run(args),
        Command::Demo(args) => cli::demo::run(args),
        Command::BenchPeer => mpcomm_cli::bench::peer::main().map(|()| ExitCode::SUCCESS),
        Command::Keygen(args) => cli::key::keygen(args),
        Command::GroupManager(args) => cli::group_manager::run(args),
        Command::Peer(args) => cli::peer::run(args),
        Command::Server(args) => cli::server::run(args),
        Command::Sim(args) => cli::sim::run(args),
        Command::Sweep(args) => cli::sweep::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mpcomm: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Logs go to stderr, filtered by `RUST_LOG` (default: warnings and errors).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
