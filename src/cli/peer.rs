//! `mpcomm peer`: one member of the group (see [`mpcomm_cli::roles::peer`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use mpcomm_cli::roles::peer::{self, PeerOptions};
use mpcomm_sim::net::parse_duration;

/// Arguments of `mpcomm peer`.
#[derive(Debug, Args)]
pub struct PeerArgs {
    /// The group manager's address, host:port.
    #[arg(long, default_value = "127.0.0.1:5680")]
    group_manager: String,
    /// UDP address to bind for the multicast (port 0 picks a free port).
    /// Any address but loopback needs a key (`--key`) or `--insecure`.
    #[arg(long, default_value = "127.0.0.1:0")]
    bind: SocketAddr,
    /// The address other peers must use to reach this one, if not the bound
    /// one: a host or IP (behind NAT or in a cloud, the public address), or
    /// host:port when the data port is mapped to another port.
    #[arg(long)]
    advertise: Option<String>,
    /// TCP address to bind for commands from the comparison server.
    #[arg(long, default_value = "127.0.0.1:0")]
    control: SocketAddr,
    /// Unique name (default: derived from the advertised address).
    #[arg(long)]
    name: Option<String>,
    /// Region label, e.g. eu or us-east (used by the emulated WAN and in reports).
    #[arg(long, default_value = "default")]
    region: String,
    /// Directory for delivery logs.
    #[arg(long, default_value = "mpcomm-data")]
    data_dir: PathBuf,
    /// How long to keep trying to reach the group manager at start (it may
    /// be starting too).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    connect_timeout: Duration,
    #[command(flatten)]
    key: super::key::KeyArgs,
}

/// Runs `mpcomm peer` until told to stop, or SIGINT/SIGTERM.
pub fn run(args: PeerArgs) -> anyhow::Result<ExitCode> {
    let keys = args.key.source("the peer", &[args.bind, args.control])?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let shutdown = super::shutdown_signal().context("cannot install signal handlers")?;
        let opts = PeerOptions {
            group_manager: args.group_manager,
            bind: args.bind,
            advertise: args.advertise,
            control: args.control,
            name: args.name,
            region: args.region,
            data_dir: args.data_dir,
            connect_timeout: args.connect_timeout,
            keys: std::sync::Arc::new(keys),
        };
        peer::run(opts, shutdown).await?;
        Ok(ExitCode::SUCCESS)
    })
}
