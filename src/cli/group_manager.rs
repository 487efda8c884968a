//! `mpcomm group-manager`: the registry of peers (see
//! [`mpcomm_cli::roles::group_manager`]).
//!
//! Prints exactly one line to stdout, `listening on <address>`, once the
//! socket is bound — scripts (and `mpcomm demo`) read it to learn the port
//! when `--listen` asks for port 0. Everything else goes to stderr through
//! `tracing` (`RUST_LOG=debug` shows every request).

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use mpcomm_cli::roles::group_manager::{self, GroupManager, GroupManagerOptions};
use mpcomm_sim::net::parse_duration;
use tracing::{info, warn};

/// Arguments of `mpcomm group-manager`.
#[derive(Debug, Args)]
pub struct GroupManagerArgs {
    /// Address to listen on (TCP). Port 0 picks a free port; the address
    /// actually bound is printed as `listening on ADDR`.
    /// Any address but loopback needs a key (`--key`) or `--insecure`.
    #[arg(long, default_value = "127.0.0.1:5680")]
    pub listen: SocketAddr,
    /// How long a registration lives without a heartbeat, e.g. 10s or
    /// 500ms (peers send one every ttl/3).
    #[arg(long, default_value = "10s", value_parser = parse_ttl)]
    pub ttl: Duration,
    #[command(flatten)]
    pub key: super::key::KeyArgs,
}

fn parse_ttl(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s).map_err(|e| e.to_string())?;
    if d < Duration::from_millis(1) {
        return Err(format!(
            "{s:?} is too short: the ttl must be at least 1ms (e.g. 10s)"
        ));
    }
    Ok(d)
}

/// Runs `mpcomm group-manager` until a stop request, SIGINT or SIGTERM.
pub fn run(args: GroupManagerArgs) -> anyhow::Result<ExitCode> {
    let keys = std::sync::Arc::new(args.key.source("the group manager", &[args.listen])?);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let opts = GroupManagerOptions {
            listen: args.listen,
            ttl: args.ttl,
        };
        // Room for every connection it serves: a group manager that runs
        // out of file descriptors cannot even accept a heartbeat.
        let open_files = group_manager::raise_open_files_limit();
        let manager = GroupManager::bind(opts).await.with_context(|| {
            format!(
                "cannot listen on {}: is another group manager already running there? \
                 Choose another address with --listen (port 0 picks a free one)",
                args.listen
            )
        })?;
        let manager = match open_files {
            Some(n) => manager.with_max_connections(group_manager::connections_for(n)),
            None => manager,
        };
        let manager = manager.with_keys(keys);
        // Install the signal handlers before announcing the address, so a
        // signal sent as soon as the line is read ends the process cleanly.
        let shutdown = shutdown_signal().context("cannot install signal handlers")?;
        announce(manager.local_addr());
        manager
            .run_until(shutdown)
            .await
            .context("the group manager failed")?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Prints `listening on ADDR` and flushes it. A closed stdout is not fatal:
/// the group manager is still useful to whoever knows its address.
fn announce(addr: SocketAddr) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "listening on {addr}").and_then(|()| out.flush()) {
        warn!("cannot print the listening address to stdout: {e}");
    }
}

/// A future that completes on SIGINT (Ctrl-C) or SIGTERM. The handlers are
/// installed when this function returns, not when the future is first
/// polled.
pub(crate) fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => info!("SIGINT received; stopping"),
                _ = terminate.recv() => info!("SIGTERM received; stopping"),
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            if tokio::signal::ctrl_c().await.is_ok() {
                info!("Ctrl-C received; stopping");
            } else {
                std::future::pending::<()>().await;
            }
        })
    }
}
