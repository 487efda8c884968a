//! `mpcomm bench`: throughput and latency of the real runtime, against a
//! raw-UDP baseline.
//!
//! The benchmark starts N peer *processes* on loopback (the same binary, the
//! hidden `bench-peer` subcommand), so every figure includes the real
//! runtime, real sockets and real scheduling between processes — nothing is
//! simulated. For each order asked for, and for the raw-UDP baseline, it:
//!
//! 1. starts N fresh processes; each binds a UDP socket and reports its
//!    address on stdout;
//! 2. sends each its plan (the members' addresses, its id, the order, how
//!    many messages, their size, the pace) as one JSON line on stdin;
//! 3. every process joins the group and multicasts its messages as fast as
//!    flow control allows (or at the given rate), while recording the latency
//!    of every delivery (send time stamped in the payload, read from the
//!    system-wide monotonic clock, so sender and receiver share one clock) and
//!    hashing the sequence of delivered messages;
//! 4. each prints its result as one JSON line and exits; the parent pools the
//!    latency histograms and compares the hashes.
//!
//! The raw-UDP baseline runs the same processes sending the same payloads as
//! plain datagrams, one per message, to every member (itself included),
//! with no protocol: no acknowledgements, no retransmission, no order — an
//! upper bound of what the loopback network and the processes can move, and
//! the price of reliability and order by comparison.
//!
//! Figures are per peer and per second, like the Corosync measurements they
//! are compared with (`docs/performance.md`): `delivered_per_s_per_peer` is
//! the messages a peer delivered divided by the time from its handshake
//! completing to its last delivery.

pub mod peer;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use mpcomm_core::OrderKind;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// What the parent asks of the benchmark.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Number of peer processes.
    pub peers: usize,
    /// Messages each peer multicasts.
    pub messages: u64,
    /// Payload bytes per message (at least 8: the send time).
    pub size: usize,
    /// Orders to measure.
    pub orders: Vec<OrderKind>,
    /// Messages per second per peer; as fast as possible if absent.
    pub rate: Option<f64>,
    /// Also measure the raw-UDP baseline.
    pub raw_udp: bool,
    /// Wide-area emulation spec for the protocol runs.
    pub wan: Option<String>,
    /// Flow-control window (records), if not the default.
    pub window: Option<usize>,
    /// Acknowledgement delay, if not the default.
    pub ack_delay: Option<Duration>,
    /// The `mpcomm` binary to start the peers from.
    pub exe: std::path::PathBuf,
    /// The group key file: measure with every datagram sealed.
    pub key_file: Option<std::path::PathBuf>,
}

/// The plan a benchmark peer receives on stdin.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Plan {
    /// Run id.
    pub run: u64,
    /// This peer's member id.
    pub me: u16,
    /// Every member's UDP address.
    pub members: Vec<SocketAddr>,
    /// The order; `None` for raw UDP.
    pub order: Option<OrderKind>,
    /// Messages to multicast.
    pub messages: u64,
    /// Payload bytes.
    pub size: usize,
    /// Messages per second, if paced.
    pub rate: Option<f64>,
    /// Wide-area emulation spec.
    pub wan: Option<String>,
    /// Window, if not the default.
    pub window: Option<usize>,
    /// Acknowledgement delay in microseconds, if not the default.
    #[serde(default)]
    pub ack_delay_us: Option<u64>,
    /// The group key file: with it, every datagram is sealed.
    #[serde(default)]
    pub key_file: Option<std::path::PathBuf>,
    /// Regions of the members (for the emulation).
    pub regions: Vec<usize>,
}

/// What a benchmark peer reports on stdout.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PeerResult {
    /// Its member id.
    pub me: u16,
    /// Messages it delivered (or, raw UDP: datagrams it received).
    pub delivered: u64,
    /// Messages it should have delivered.
    pub expected: u64,
    /// Seconds from the end of the handshake to the last delivery.
    pub duration_s: f64,
    /// Latency histogram: `(microseconds, count)` pairs.
    pub latency: Vec<(u64, u64)>,
    /// FNV-1a hash of the delivered `(sender, seq)` sequence.
    pub order_hash: u64,
    /// User + system CPU seconds of the process.
    pub cpu_s: f64,
    /// Peak resident set size of the process, KiB.
    pub peak_rss_kib: u64,
    /// Protocol counters (empty for raw UDP).
    pub stats: BTreeMap<String, u64>,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// The figures of one order (or of the baseline).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Figures {
    /// Mean over peers of messages delivered per second.
    pub delivered_per_s_per_peer: f64,
    /// Pooled send-to-delivery latency, microseconds.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest latency.
    pub max_us: f64,
    /// CPU seconds of all peers together.
    pub cpu_s: f64,
    /// Largest peak RSS of one peer, KiB.
    pub peak_rss_kib: u64,
    /// Every peer delivered every message, in the same sequence.
    pub same_order: bool,
    /// Messages delivered, summed over peers.
    pub delivered: u64,
    /// Messages that should have been delivered, summed over peers.
    pub expected: u64,
    /// Seconds, mean over peers, from handshake to last delivery.
    pub duration_s: f64,
    /// Records resent, summed over peers.
    pub retransmissions: u64,
    /// Datagrams sent, summed over peers.
    pub datagrams_sent: u64,
    /// Errors reported by peers.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub errors: Vec<String>,
}

/// Runs the benchmark: one entry per order, keyed `none`/`fifo`/`total`,
/// plus `raw_udp`.
pub async fn run(
    opts: &BenchOptions,
    mut progress: impl FnMut(&str),
) -> anyhow::Result<BTreeMap<String, Figures>> {
    if opts.peers == 0 || opts.peers > 64 {
        bail!("--peers must be between 1 and 64");
    }
    if opts.size < 8 || opts.size > mpcomm_core::wire::MAX_PAYLOAD {
        bail!(
            "--size must be between 8 and {} bytes",
            mpcomm_core::wire::MAX_PAYLOAD
        );
    }
    if let Some(r) = opts.rate
        && !(r.is_finite() && r > 0.0)
    {
        bail!("--rate must be a positive number of messages per second");
    }
    let mut out = BTreeMap::new();
    let mut modes: Vec<Option<OrderKind>> = opts.orders.iter().copied().map(Some).collect();
    if opts.raw_udp {
        modes.push(None);
    }
    for (i, mode) in modes.into_iter().enumerate() {
        let name = mode.map_or("raw_udp".to_string(), |o| o.to_string());
        progress(&name);
        let results = run_mode(opts, mode, i as u64 + 1)
            .await
            .with_context(|| format!("benchmark of {name} failed"))?;
        out.insert(name, aggregate(&results));
    }
    Ok(out)
}

async fn run_mode(
    opts: &BenchOptions,
    order: Option<OrderKind>,
    run: u64,
) -> anyhow::Result<Vec<PeerResult>> {
    let n = opts.peers;
    let mut children: Vec<(Child, BufReader<tokio::process::ChildStdout>)> = Vec::with_capacity(n);
    let mut addrs = Vec::with_capacity(n);
    for i in 0..n {
        let mut child = Command::new(&opts.exe)
            .arg("bench-peer")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", opts.exe.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout);
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(10), lines.read_line(&mut line))
            .await
            .map_err(|_| anyhow::anyhow!("bench peer {i} did not report its address"))??;
        let hello: peer::Hello = serde_json::from_str(line.trim()).with_context(|| {
            format!(
                "bench peer {i} said {:?} instead of its address",
                line.trim()
            )
        })?;
        addrs.push(hello.addr);
        children.push((child, lines));
    }
    let regions: Vec<usize> = (0..n)
        .map(|i| mpcomm_sim::net::region_of(i, n, 2))
        .collect();
    let mut stdins = Vec::with_capacity(n);
    for (i, (child, _)) in children.iter_mut().enumerate() {
        let plan = Plan {
            run: 0xbe_0000 + run,
            me: i as u16,
            members: addrs.clone(),
            order,
            messages: opts.messages,
            size: opts.size,
            rate: opts.rate,
            wan: if order.is_some() {
                opts.wan.clone()
            } else {
                None
            },
            window: opts.window,
            key_file: if order.is_some() {
                opts.key_file.clone()
            } else {
                None
            },
            ack_delay_us: opts.ack_delay.map(|d| d.as_micros() as u64),
            regions: regions.clone(),
        };
        let mut stdin = child.stdin.take().context("no stdin")?;
        let mut line = serde_json::to_vec(&plan)?;
        line.push(b'\n');
        stdin.write_all(&line).await?;
        stdin.flush().await?;
        stdins.push(stdin);
    }
    // A start barrier, so that nobody sends to a peer still setting up.
    for (i, (_, lines)) in children.iter_mut().enumerate() {
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(10), lines.read_line(&mut line))
            .await
            .map_err(|_| anyhow::anyhow!("bench peer {i} did not get ready"))??;
        if !line.contains("ready") {
            bail!("bench peer {i} said {:?} instead of ready", line.trim());
        }
    }
    for stdin in &mut stdins {
        stdin.write_all(b"go\n").await?;
        stdin.flush().await?;
    }
    // Generous: the slowest pace we allow, plus start-up and linger.
    let pace = opts.rate.map_or(Duration::ZERO, |r| {
        Duration::from_secs_f64(opts.messages as f64 / r)
    });
    let limit = Duration::from_secs(60)
        + pace
        + Duration::from_micros(opts.messages.saturating_mul(n as u64) * 20);
    let mut results = Vec::with_capacity(n);
    for (i, (mut child, mut lines)) in children.into_iter().enumerate() {
        let mut line = String::new();
        let read = tokio::time::timeout(limit, lines.read_line(&mut line)).await;
        match read {
            Ok(Ok(n)) if n > 0 => {}
            Ok(_) => bail!("bench peer {i} exited without a result"),
            Err(_) => bail!("bench peer {i} gave no result within {limit:?}"),
        }
        let result: PeerResult = serde_json::from_str(line.trim()).with_context(|| {
            format!(
                "bench peer {i} printed {:?} instead of a result",
                line.trim()
            )
        })?;
        let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
        results.push(result);
    }
    Ok(results)
}

/// Pools the peers' results.
fn aggregate(results: &[PeerResult]) -> Figures {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).ok();
    for r in results {
        for &(value, count) in &r.latency {
            if let Some(h) = hist.as_mut() {
                let _ = h.record_n(value.max(1), count);
            }
        }
    }
    let q = |p: f64| {
        hist.as_ref()
            .filter(|h| !h.is_empty())
            .map_or(0.0, |h| h.value_at_quantile(p) as f64)
    };
    let n = results.len().max(1) as f64;
    let rate = results
        .iter()
        .map(|r| {
            if r.duration_s > 0.0 {
                r.delivered as f64 / r.duration_s
            } else {
                0.0
            }
        })
        .sum::<f64>()
        / n;
    let complete = results
        .iter()
        .all(|r| r.delivered == r.expected && r.error.is_none());
    let same_hash = results
        .windows(2)
        .all(|w| w[0].order_hash == w[1].order_hash);
    Figures {
        delivered_per_s_per_peer: rate,
        p50_us: q(0.5),
        p99_us: q(0.99),
        p999_us: q(0.999),
        max_us: hist.as_ref().map_or(0.0, |h| h.max() as f64),
        cpu_s: results.iter().map(|r| r.cpu_s).sum(),
        peak_rss_kib: results.iter().map(|r| r.peak_rss_kib).max().unwrap_or(0),
        same_order: complete && same_hash,
        delivered: results.iter().map(|r| r.delivered).sum(),
        expected: results.iter().map(|r| r.expected).sum(),
        duration_s: results.iter().map(|r| r.duration_s).sum::<f64>() / n,
        retransmissions: results
            .iter()
            .map(|r| r.stats.get("retransmissions").copied().unwrap_or(0))
            .sum(),
        datagrams_sent: results
            .iter()
            .map(|r| r.stats.get("datagrams_sent").copied().unwrap_or(0))
            .sum(),
        errors: results
            .iter()
            .filter_map(|r| r.error.clone().map(|e| format!("peer {}: {e}", r.me)))
            .collect(),
    }
}
