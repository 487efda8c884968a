//! The benchmark peer: one process of `mpcomm bench`, started by it as the
//! hidden `mpcomm bench-peer` subcommand and driven over stdin/stdout.
//!
//! ```text
//! peer → parent   {"addr":"127.0.0.1:40001"}        its UDP address
//! parent → peer   {...Plan...}                      what to do
//! peer → parent   {"ready":true}                    set up
//! parent → peer   go                                start (all at once)
//! peer → parent   {...PeerResult...}                its figures, then it exits
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::UdpSocket;

use super::{PeerResult, Plan};
use mpcomm::runtime::{Group, GroupEvent, GroupOptions, WanConfig, bind_udp};

/// The first line a benchmark peer prints.
#[derive(Debug, Serialize, Deserialize)]
pub struct Hello {
    /// Its UDP address.
    pub addr: SocketAddr,
}

/// Nanoseconds of the system-wide monotonic clock: the same clock in every
/// process of the host, so a latency can be measured from a send time
/// stamped by another process.
pub fn mono_ns() -> u64 {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC) {
        Ok(ts) => (ts.tv_sec() as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(ts.tv_nsec() as u64),
        Err(_) => 0,
    }
}

/// FNV-1a, to compare delivered sequences across processes cheaply.
struct OrderHash(u64);

impl OrderHash {
    fn new() -> OrderHash {
        OrderHash(0xcbf2_9ce4_8422_2325)
    }

    fn add(&mut self, sender: u16, seq: u64) {
        for b in sender.to_be_bytes().into_iter().chain(seq.to_be_bytes()) {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// The measurements a peer accumulates.
struct Recorder {
    hist: Histogram<u64>,
    hash: OrderHash,
    delivered: u64,
    last_ns: u64,
}

impl Recorder {
    fn new() -> anyhow::Result<Recorder> {
        Ok(Recorder {
            hist: Histogram::new_with_bounds(1, 3_600_000_000_000, 3).context("histogram")?,
            hash: OrderHash::new(),
            delivered: 0,
            last_ns: 0,
        })
    }

    fn record(&mut self, sender: u16, seq: u64, sent_ns: u64) {
        let now = mono_ns();
        let _ = self.hist.record(now.saturating_sub(sent_ns).max(1));
        self.hash.add(sender, seq);
        self.delivered += 1;
        self.last_ns = now;
    }

    /// The histogram as `(microseconds, count)` pairs.
    fn latency_us(&self) -> Vec<(u64, u64)> {
        let mut out: BTreeMap<u64, u64> = BTreeMap::new();
        for v in self.hist.iter_recorded() {
            *out.entry(v.value_iterated_to() / 1000).or_default() += v.count_at_value();
        }
        out.into_iter().collect()
    }
}

fn usage() -> (f64, u64) {
    use nix::sys::resource::{UsageWho, getrusage};
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(u) => {
            let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
            (
                secs(u.user_time()) + secs(u.system_time()),
                u.max_rss() as u64,
            )
        }
        Err(_) => (0.0, 0),
    }
}

/// Runs `mpcomm bench-peer`.
pub fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let socket = Arc::new(bind_udp("127.0.0.1:0".parse()?)?);
        say(&Hello {
            addr: socket.local_addr()?,
        })?;
        let mut stdin = BufReader::new(tokio::io::stdin());
        let mut line = String::new();
        stdin.read_line(&mut line).await?;
        let plan: Plan = serde_json::from_str(line.trim()).context("bad plan")?;
        let result = match plan.order {
            Some(_) => protocol(&plan, socket, &mut stdin).await,
            None => raw(&plan, socket, &mut stdin).await,
        };
        let result = result.unwrap_or_else(|e| {
            let (cpu_s, peak_rss_kib) = usage();
            PeerResult {
                me: plan.me,
                delivered: 0,
                expected: plan.messages * plan.members.len() as u64,
                duration_s: 0.0,
                latency: vec![],
                order_hash: 0,
                cpu_s,
                peak_rss_kib,
                stats: BTreeMap::new(),
                error: Some(format!("{e:#}")),
            }
        });
        say(&result)
    })
}

fn say<T: Serialize>(msg: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, msg)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

async fn ready_then_go(stdin: &mut BufReader<tokio::io::Stdin>) -> anyhow::Result<()> {
    say(&serde_json::json!({"ready": true}))?;
    let mut line = String::new();
    stdin.read_line(&mut line).await?;
    anyhow::ensure!(line.trim() == "go", "expected go, got {:?}", line.trim());
    Ok(())
}

fn payload(size: usize, head: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; size.max(head.len())];
    p[..head.len()].copy_from_slice(head);
    p
}

/// A run of the real protocol.
async fn protocol(
    plan: &Plan,
    socket: Arc<UdpSocket>,
    stdin: &mut BufReader<tokio::io::Stdin>,
) -> anyhow::Result<PeerResult> {
    let order = plan.order.context("no order")?;
    let mut opts = GroupOptions::new(plan.run, plan.me, plan.members.clone(), order);
    if let Some(w) = plan.window {
        opts.config.window = w;
    }
    if let Some(us) = plan.ack_delay_us {
        opts.config.ack_delay = Duration::from_micros(us);
    }
    if let Some(path) = &plan.key_file {
        opts.config.keys = Some(mpcomm::keyfile::load(path)?);
    }
    if let Some(spec) = &plan.wan {
        let profile = spec.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
        opts.wan = Some(WanConfig {
            profile,
            regions: plan.regions.clone(),
            seed: plan.run,
        });
    }
    ready_then_go(stdin).await?;
    let group = Group::join(opts, socket).await?;
    let start_ns = mono_ns();
    let (mut tx, mut rx, control) = group.split();
    let (messages, size, rate) = (plan.messages, plan.size, plan.rate);
    let sender: tokio::task::JoinHandle<anyhow::Result<()>> = match rate {
        // Paced: the runtime's own timer, ticking on an absolute schedule.
        // Its resolution is a millisecond, so above 1,000 messages per
        // second several go out per tick (catching up in a burst), as from
        // any async application.
        Some(rate) => tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            for _ in 0..messages {
                ticks.tick().await;
                let p = payload(size, &mono_ns().to_be_bytes());
                tx.multicast(Bytes::from(p)).await?;
            }
            tx.finish().await?;
            Ok(())
        }),
        None => tokio::spawn(async move {
            for _ in 0..messages {
                let p = payload(size, &mono_ns().to_be_bytes());
                tx.multicast(Bytes::from(p)).await?;
            }
            tx.finish().await?;
            Ok(())
        }),
    };
    let mut rec = Recorder::new()?;
    // The stream ends with Completed or Failed; if it just ends, the
    // driver task died, and that must not pass for a short run.
    let mut error = Some("the protocol driver stopped before the run completed".to_string());
    while let Some(ev) = rx.next().await {
        match ev {
            GroupEvent::Delivery(d) => {
                let sent = d
                    .payload
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .map_or(0, u64::from_be_bytes);
                rec.record(d.sender, d.seq, sent);
            }
            // Membership does not change in a benchmark run unless a
            // member is killed; the deliveries are what is measured.
            GroupEvent::View { .. } => {}
            GroupEvent::Completed => {
                error = None;
                break;
            }
            GroupEvent::Failed(e) => {
                error = Some(e.to_string());
                break;
            }
        }
    }
    if let Ok(Err(e)) | Err(e) = sender.await.map_err(anyhow::Error::from) {
        error.get_or_insert(format!("sender: {e:#}"));
    }
    drop(rx);
    // Stay until everyone is done: the others may still need our acks.
    let stats: mpcomm_core::Stats = tokio::time::timeout(Duration::from_secs(10), control.wait())
        .await
        .unwrap_or_default();
    let (cpu_s, peak_rss_kib) = usage();
    Ok(PeerResult {
        me: plan.me,
        delivered: rec.delivered,
        expected: plan.messages * plan.members.len() as u64,
        duration_s: rec.last_ns.saturating_sub(start_ns) as f64 / 1e9,
        latency: rec.latency_us(),
        order_hash: rec.hash.0,
        cpu_s,
        peak_rss_kib,
        stats: crate::roles::peer::stats_map(&stats),
        error,
    })
}

/// The baseline: the same payloads as plain datagrams to every member
/// (itself included), one datagram per message, no protocol. Like the
/// anchor's UDP reference, a sender thread and a receiver thread with
/// blocking sockets, so the baseline is as fast as plain UDP gets. Each
/// datagram carries `sender u16 | seq u64 | sent_ns u64`.
async fn raw(
    plan: &Plan,
    socket: Arc<UdpSocket>,
    stdin: &mut BufReader<tokio::io::Stdin>,
) -> anyhow::Result<PeerResult> {
    let n = plan.members.len() as u64;
    let expected = plan.messages * n;
    let socket = Arc::try_unwrap(socket)
        .map_err(|_| anyhow::anyhow!("socket still shared"))?
        .into_std()?;
    socket.set_nonblocking(false)?;
    let send_socket = socket.try_clone()?;
    ready_then_go(stdin).await?;
    let start_ns = mono_ns();
    let (me, members, messages, size, rate) = (
        plan.me,
        plan.members.clone(),
        plan.messages,
        plan.size,
        plan.rate,
    );
    let sender = std::thread::spawn(move || {
        let period = rate.map(|r| Duration::from_secs_f64(1.0 / r));
        let t0 = std::time::Instant::now();
        let mut p = payload(size, &[0u8; 18]);
        let mut sent = 0u64;
        for seq in 0..messages {
            if let Some(period) = period {
                let due = t0 + period.mul_f64(seq as f64);
                let now = std::time::Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
            }
            p[..2].copy_from_slice(&me.to_be_bytes());
            p[2..10].copy_from_slice(&seq.to_be_bytes());
            p[10..18].copy_from_slice(&mono_ns().to_be_bytes());
            for m in &members {
                if send_socket.send_to(&p, m).is_ok() {
                    sent += 1;
                }
            }
        }
        sent
    });
    let receiver = std::thread::spawn(move || -> anyhow::Result<Recorder> {
        let mut rec = Recorder::new()?;
        let mut buf = vec![0u8; 2048];
        // Lost datagrams never come: give up after a quiet half second.
        socket.set_read_timeout(Some(Duration::from_millis(500)))?;
        while rec.delivered < expected {
            match socket.recv_from(&mut buf) {
                Ok((len, _)) if len >= 18 => {
                    let sender = u16::from_be_bytes([buf[0], buf[1]]);
                    let seq = u64::from_be_bytes(buf[2..10].try_into().unwrap_or_default());
                    let sent = u64::from_be_bytes(buf[10..18].try_into().unwrap_or_default());
                    rec.record(sender, seq, sent);
                }
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(rec)
    });
    let (rec, sent) = tokio::task::spawn_blocking(move || {
        let sent = sender.join().unwrap_or(0);
        let rec = receiver
            .join()
            .map_err(|_| anyhow::anyhow!("receiver thread panicked"))??;
        anyhow::Ok((rec, sent))
    })
    .await??;
    let (cpu_s, peak_rss_kib) = usage();
    Ok(PeerResult {
        me: plan.me,
        delivered: rec.delivered,
        expected,
        duration_s: rec.last_ns.saturating_sub(start_ns) as f64 / 1e9,
        latency: rec.latency_us(),
        order_hash: rec.hash.0,
        cpu_s,
        peak_rss_kib,
        stats: BTreeMap::from([("datagrams_sent".to_string(), sent)]),
        error: None,
    })
}
