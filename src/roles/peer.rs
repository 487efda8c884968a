//! `mpcomm peer`: one member of the group, a long-lived process.
//!
//! A peer process does what the original `peerCommunicatorUDP.py` did, minus
//! its defects:
//!
//! 1. It binds a UDP socket for the multicast (the *data* address) and a TCP
//!    listener for commands from the comparison server (the *control*
//!    address), then registers both with the group manager under its name
//!    and region, and keeps the registration alive with heartbeats.
//! 2. It waits for a `start` command. A run then goes: join the group (the
//!    handshake), multicast the requested number of messages at random
//!    intervals while — on a separate path — logging every delivery, send
//!    the end-of-stream marker, and once every member's stream is delivered,
//!    make the log durable and report it to the server.
//! 3. It waits for the next run, until it is told to stop (or gets SIGINT /
//!    SIGTERM); then it unregisters and exits.
//!
//! # The delivery log
//!
//! A run's log is `member-K.jsonl` in the run's directory
//! (`DATA_DIR/run-RUN/`), in the format of [`mpcomm_check::log`] (version
//! 2: a meta line, the deliveries, an end line), written under its final
//! name from its first line, each delivery in the file within 100 ms, and
//! `fsync`ed at the end: see [`log_file`] for what "durable" means and why.
//! When a peer starts, it reports the logs an interrupted process left
//! partial in its data directory.
//!
//! # Which address to advertise
//!
//! The address a peer binds is not always the address others must use:
//! behind NAT or in a cloud, the public address differs (`--advertise`).
//! Without `--advertise`, a peer bound to a specific IP advertises it; a peer
//! bound to `0.0.0.0` advertises the local address of its connection to the
//! group manager — the interface through which this host reaches the
//! group, which is usually the one the other peers can reach too. No
//! internet service is asked (the original looked its address up on one).

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use bytes::Bytes;
use mpcomm::keyfile::KeySource;
use mpcomm_check::log::{EndStatus, LogEnd, LogMeta, Messages};
use mpcomm_check::{LogEntry, ViewMark};
use mpcomm_core::{KeyRing, OrderKind, Stats};
use mpcomm_sim::NetProfile;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::address::advertised_addr;
use super::reach;
use log_file::{LogFile, report_leftovers};
use mpcomm::control::{
    self, ControlError, GmRequest, PeerCommand, Register, Reply, ReportHeader, StartRun,
};
use mpcomm::runtime::{Group, GroupEvent, GroupOptions, WanConfig, bind_udp};

pub mod log_file;

/// How long a control-plane request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long sending a report may take (a long log takes a while).
const REPORT_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a peer keeps trying to reach the group manager when it starts,
/// by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// After a failed heartbeat, the next one comes this soon (or at the usual
/// period, if that is sooner).
const HEARTBEAT_RETRY: Duration = Duration::from_secs(1);

/// Everything `mpcomm peer` is configured with.
#[derive(Clone, Debug)]
pub struct PeerOptions {
    /// The group manager, `host:port`.
    pub group_manager: String,
    /// UDP address to bind for the multicast.
    pub bind: SocketAddr,
    /// Address (host, or host:port for the data socket) others must use.
    pub advertise: Option<String>,
    /// TCP address to bind for control commands.
    pub control: SocketAddr,
    /// Unique name; derived from the advertised address if absent.
    pub name: Option<String>,
    /// Region label (reports, WAN emulation).
    pub region: String,
    /// Where run logs go.
    pub data_dir: PathBuf,
    /// How long to keep trying to reach the group manager at start.
    pub connect_timeout: Duration,
    /// The group key (re-read at every connection and run when it comes
    /// from a file, so that it can be rotated without a restart).
    pub keys: Arc<KeySource>,
}

/// What a peer is doing, for `ping`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Idle,
    Running(u64),
}

/// The run in progress, as far as the control connection needs it: its id
/// and how to abort it.
struct CurrentRun {
    run: u64,
    abort: watch::Sender<Option<String>>,
}

/// The shared state of a peer process.
struct PeerProcess {
    name: String,
    region: String,
    data_addr: SocketAddr,
    control_addr: SocketAddr,
    group_manager: String,
    data_dir: PathBuf,
    keys: Arc<KeySource>,
    socket: Arc<UdpSocket>,
    state: Mutex<State>,
    /// The current run's task, aborted when a new run starts.
    current: Mutex<Option<JoinHandle<()>>>,
    /// The current run's abort switch (the server's `abort` command).
    abort: std::sync::Mutex<Option<CurrentRun>>,
    /// The previous run's protocol driver, which may still be lingering
    /// (answering the others); stopped when a new run starts, since two
    /// drivers on one socket would steal each other's datagrams.
    lingering: std::sync::Mutex<Option<tokio::task::AbortHandle>>,
    stop: watch::Sender<bool>,
}

/// A bound, registered peer, ready to [`RunningPeer::serve`].
pub struct RunningPeer {
    inner: Arc<PeerProcess>,
    listener: TcpListener,
    ttl: Duration,
}

impl RunningPeer {
    /// Binds the sockets and registers with the group manager, waiting up
    /// to `connect_timeout` for the group manager to answer.
    pub async fn start(opts: PeerOptions) -> anyhow::Result<RunningPeer> {
        // What can be checked without the network is checked first.
        control::validate_region(&opts.region).map_err(anyhow::Error::msg)?;
        if let Some(name) = &opts.name {
            control::validate_name(name).map_err(anyhow::Error::msg)?;
        }
        let socket =
            bind_udp(opts.bind).with_context(|| format!("cannot bind UDP {}", opts.bind))?;
        let listener = TcpListener::bind(opts.control)
            .await
            .with_context(|| format!("cannot bind TCP {}", opts.control))?;
        let udp_local = socket.local_addr()?;
        let tcp_local = listener.local_addr()?;
        std::fs::create_dir_all(&opts.data_dir)
            .with_context(|| format!("cannot create data directory {}", opts.data_dir.display()))?;
        report_leftovers(&opts.data_dir);
        reach::wait_for_group_manager(&opts.group_manager, opts.connect_timeout).await?;
        let data_addr =
            advertised_addr(opts.advertise.as_deref(), udp_local, &opts.group_manager).await?;
        // Only the data port can be mapped (`--advertise HOST:PORT`): a NAT
        // in front of a peer must forward the control port unchanged.
        let control_addr = SocketAddr::new(data_addr.ip(), tcp_local.port());
        // A given name was checked above; a derived one is valid by
        // construction (`default_names_are_valid`).
        let name = opts.name.clone().unwrap_or_else(|| default_name(data_addr));
        let (stop, _) = watch::channel(false);
        let inner = Arc::new(PeerProcess {
            name,
            region: if opts.region.is_empty() {
                "default".to_string()
            } else {
                opts.region.clone()
            },
            data_addr,
            control_addr,
            group_manager: opts.group_manager.clone(),
            data_dir: opts.data_dir.clone(),
            keys: opts.keys.clone(),
            socket: Arc::new(socket),
            state: Mutex::new(State::Idle),
            current: Mutex::new(None),
            abort: std::sync::Mutex::new(None),
            lingering: std::sync::Mutex::new(None),
            stop,
        });
        let ttl = inner.register().await?;
        Ok(RunningPeer {
            inner,
            listener,
            ttl,
        })
    }

    /// The registered name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The advertised UDP address.
    pub fn data_addr(&self) -> SocketAddr {
        self.inner.data_addr
    }

    /// The advertised TCP control address.
    pub fn control_addr(&self) -> SocketAddr {
        self.inner.control_addr
    }

    /// Serves control commands until a `stop` command or `shutdown`
    /// resolves; then unregisters.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let inner = self.inner;
        let heartbeat = tokio::spawn(heartbeats(inner.clone(), self.ttl));
        let mut stop = inner.stop.subscribe();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = stop.wait_for(|s| *s) => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, from)) => {
                        tracing::debug!("control connection from {from}");
                        let keys = inner.keys.current();
                        tokio::spawn(serve_control(inner.clone(), stream, keys));
                    }
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
        heartbeat.abort();
        // A run in progress ends with its end line (failed) before the
        // process goes: its log is then complete, not partial.
        inner.abort_run(None, "the peer process was told to stop");
        if let Some(run) = inner.current.lock().await.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), run).await;
        }
        inner.stop_lingering();
        let unregister = GmRequest::Unregister {
            name: inner.name.clone(),
        };
        if let Err(e) = control::request_keyed::<_, _, Reply>(
            inner.group_manager.as_str(),
            &unregister,
            REQUEST_TIMEOUT,
            inner.keys.current().as_ref(),
        )
        .await
        {
            tracing::warn!("could not unregister from the group manager: {e}");
        }
        Ok(())
    }
}

/// Runs `mpcomm peer` until stopped.
pub async fn run(opts: PeerOptions, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let peer = RunningPeer::start(opts).await?;
    println!(
        "peer {} registered: data udp {}, control tcp {}",
        peer.name(),
        peer.data_addr(),
        peer.control_addr()
    );
    let _ = std::io::stdout().flush();
    peer.serve(shutdown).await
}

impl PeerProcess {
    fn stop_lingering(&self) {
        if let Ok(mut l) = self.lingering.lock()
            && let Some(driver) = l.take()
        {
            driver.abort();
        }
    }

    /// Aborts the run in progress (only run `run`, if given); returns
    /// whether there was one.
    fn abort_run(&self, run: Option<u64>, why: &str) -> bool {
        let Ok(current) = self.abort.lock() else {
            return false;
        };
        match current.as_ref() {
            Some(c) if run.is_none_or(|r| r == c.run) => {
                c.abort.send_replace(Some(why.to_string()));
                true
            }
            _ => false,
        }
    }

    /// Registers; returns the registration's time to live.
    async fn register(&self) -> anyhow::Result<Duration> {
        let req = GmRequest::Register(Register {
            name: self.name.clone(),
            data_addr: self.data_addr,
            control_addr: self.control_addr,
            region: self.region.clone(),
        });
        let keys = self.keys.current();
        let reply: Reply = control::request_keyed(
            self.group_manager.as_str(),
            &req,
            REQUEST_TIMEOUT,
            keys.as_ref(),
        )
        .await
        .map_err(|e| match e {
            ControlError::Remote(why) => anyhow::anyhow!(
                "the group manager at {} refused the registration: {why}",
                self.group_manager
            ),
            e => anyhow::anyhow!(
                "cannot register with the group manager at {}: {e}; {}",
                self.group_manager,
                reach::hint(&self.group_manager)
            ),
        })?;
        Ok(Duration::from_millis(
            reply.ttl_ms.unwrap_or(10_000).max(300),
        ))
    }
}

/// Keeps the registration alive, a heartbeat every third of its time to
/// live; registers again if the group manager forgot us (it restarted, or
/// we were unreachable for longer than its TTL). A failed heartbeat is
/// retried soon, so that one lost connection does not cost a third of
/// the registration's life.
async fn heartbeats(p: Arc<PeerProcess>, ttl: Duration) {
    let mut period = ttl / 3;
    let mut pause = period;
    loop {
        tokio::time::sleep(pause).await;
        let beat = GmRequest::Heartbeat {
            name: p.name.clone(),
        };
        pause = period;
        let keys = p.keys.current();
        match control::request_keyed::<_, _, Reply>(
            p.group_manager.as_str(),
            &beat,
            REQUEST_TIMEOUT,
            keys.as_ref(),
        )
        .await
        {
            Ok(_) => {}
            Err(e) if e.is_key_mismatch() => {
                tracing::error!("heartbeat refused by the group manager: {e}");
            }
            Err(ControlError::Remote(why)) => {
                tracing::info!("group manager: {why}; registering again");
                match p.register().await {
                    Ok(ttl) => {
                        period = ttl / 3;
                        pause = period;
                    }
                    Err(e) => {
                        tracing::warn!("{e:#}");
                        pause = period.min(HEARTBEAT_RETRY);
                    }
                }
            }
            Err(e) => {
                tracing::warn!("heartbeat to the group manager failed: {e}");
                pause = period.min(HEARTBEAT_RETRY);
            }
        }
    }
}

/// Answers the commands of one control connection.
async fn serve_control(p: Arc<PeerProcess>, stream: TcpStream, keys: Option<KeyRing>) {
    // With a key, the client proves it holds it before any command is read.
    let mut framed = match control::accept(stream, keys.as_ref()).await {
        Ok(framed) => framed,
        Err(e) => {
            tracing::warn!("refused a control connection: {e}");
            return;
        }
    };
    loop {
        // An idle control connection is closed after a while; the server
        // keeps its connection busy with nothing, but a stray client should
        // not hold a file descriptor forever.
        let value = match tokio::time::timeout(Duration::from_secs(3600), framed.recv_value()).await
        {
            Ok(Ok(Some(v))) => v,
            Ok(Ok(None)) | Err(_) => return,
            Ok(Err(e)) => {
                let _ = framed.send(&Reply::err(e.to_string())).await;
                if matches!(e, ControlError::BadJson { .. }) {
                    continue;
                }
                return;
            }
        };
        let cmd = match control::decode_op::<PeerCommand>(value) {
            Ok(c) => c,
            Err(why) => {
                if framed.send(&Reply::err(why)).await.is_err() {
                    return;
                }
                continue;
            }
        };
        let reply = match cmd {
            PeerCommand::Ping => {
                let state = *p.state.lock().await;
                let mut r = Reply::ok();
                r.name = Some(p.name.clone());
                match state {
                    State::Idle => r.state = Some("idle".into()),
                    State::Running(run) => {
                        r.state = Some("running".into());
                        r.run = Some(run);
                    }
                }
                r
            }
            PeerCommand::Stop => {
                let _ = framed.send(&Reply::ok()).await;
                p.stop.send_replace(true);
                return;
            }
            PeerCommand::Start(start) => match start_run(&p, start).await {
                Ok(()) => Reply::ok(),
                Err(e) => Reply::err(format!("{e:#}")),
            },
            PeerCommand::Abort { run, reason } => {
                let reason = control::truncate_for_display(&reason, 300);
                if p.abort_run(
                    Some(run),
                    &format!("aborted by the comparison server: {reason}"),
                ) {
                    Reply::ok()
                } else {
                    Reply::err(format!("run {run} is not in progress here"))
                }
            }
        };
        if framed.send(&reply).await.is_err() {
            return;
        }
    }
}

/// Validates a start command and launches the run in the background.
async fn start_run(p: &Arc<PeerProcess>, start: StartRun) -> anyhow::Result<()> {
    let order: OrderKind = start.order.parse()?;
    let n = start.members.len();
    if n == 0 || usize::from(start.member) >= n {
        bail!("member id {} is not in a group of {n}", start.member);
    }
    if start.members[usize::from(start.member)].name != p.name {
        bail!(
            "member {} of run {} is {:?}, but this peer is {:?}",
            start.member,
            start.run,
            start.members[usize::from(start.member)].name,
            p.name
        );
    }
    if start.min_interval_us > start.max_interval_us {
        bail!("min_interval_us exceeds max_interval_us");
    }
    if start.payload < 8 || start.payload > mpcomm_core::wire::MAX_PAYLOAD {
        bail!(
            "payload must be 8 to {} bytes",
            mpcomm_core::wire::MAX_PAYLOAD
        );
    }
    if let Some(ms) = start.peer_timeout_ms
        && !(1000..=3_600_000).contains(&ms)
    {
        bail!("peer_timeout_ms must be 1000 to 3600000 (1 s to 1 h), not {ms}");
    }
    let wan = match &start.wan {
        Some(spec) => {
            let profile: NetProfile = spec
                .parse()
                .map_err(|e| anyhow::anyhow!("bad wan spec: {e}"))?;
            Some(WanConfig {
                profile,
                regions: region_indices(&start),
                seed: start.seed,
            })
        }
        None => None,
    };
    let run_dir = p.data_dir.join(format!("run-{}", start.run));
    std::fs::create_dir_all(&run_dir)
        .with_context(|| format!("cannot create {}", run_dir.display()))?;
    // A new run supersedes an old one still lingering: the server only
    // starts a run when the previous one is over, and two groups must not
    // share the socket.
    let mut current = p.current.lock().await;
    if let Some(old) = current.take() {
        old.abort();
    }
    p.stop_lingering();
    *p.state.lock().await = State::Running(start.run);
    let (abort_tx, abort_rx) = watch::channel(None);
    if let Ok(mut a) = p.abort.lock() {
        *a = Some(CurrentRun {
            run: start.run,
            abort: abort_tx,
        });
    }
    let proc_ = p.clone();
    *current = Some(tokio::spawn(async move {
        let run = start.run;
        let outcome = take_part(&proc_, &start, order, wan, &run_dir, abort_rx).await;
        if let Ok(mut a) = proc_.abort.lock()
            && a.as_ref().is_some_and(|c| c.run == run)
        {
            *a = None;
        }
        if let Some(e) = &outcome.error {
            tracing::warn!("run {run} failed: {e}");
        }
        let header = ReportHeader {
            run,
            member: start.member,
            name: proc_.name.clone(),
            status: if outcome.error.is_none() {
                "completed"
            } else {
                "failed"
            }
            .to_string(),
            error: outcome.error,
            entries: outcome.lines,
            delivered: Some(outcome.delivered),
            stats: stats_map(&outcome.stats),
        };
        let dropped: Vec<String> = header
            .stats
            .iter()
            .filter(|(k, v)| k.starts_with("dropped_") && **v > 0)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if !dropped.is_empty() {
            tracing::warn!("run {run}: dropped and counted: {}", dropped.join(" "));
        }
        let keys = proc_.keys.current();
        if let Err(e) = report(
            start.report_to,
            &header,
            outcome.log.as_deref(),
            keys.as_ref(),
        )
        .await
        {
            tracing::warn!("could not report run {run} to {}: {e:#}", start.report_to);
        }
        *proc_.state.lock().await = State::Idle;
    }));
    Ok(())
}

/// Maps region labels to indices, in order of first appearance in the
/// member list (the same at every peer).
fn region_indices(start: &StartRun) -> Vec<usize> {
    let mut labels: Vec<&str> = Vec::new();
    start
        .members
        .iter()
        .map(|m| match labels.iter().position(|l| *l == m.region) {
            Some(i) => i,
            None => {
                labels.push(&m.region);
                labels.len() - 1
            }
        })
        .collect()
}

/// How one run went for this peer.
struct RunOutcome {
    /// Why it failed; `None` when it completed.
    error: Option<String>,
    /// The log file, if one could be written.
    log: Option<PathBuf>,
    /// Lines in the log file (meta, deliveries, end).
    lines: u64,
    /// Deliveries.
    delivered: u64,
    stats: Stats,
}

/// Microseconds since the Unix epoch: the clock of `sent_us` and
/// `delivered_us`. The same clock on every process of one host; across hosts
/// it is only as good as their clock synchronisation.
pub fn wall_clock_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// One run, from handshake to durable log.
async fn take_part(
    p: &Arc<PeerProcess>,
    start: &StartRun,
    order: OrderKind,
    wan: Option<WanConfig>,
    dir: &Path,
    abort: watch::Receiver<Option<String>>,
) -> RunOutcome {
    let me = start.member;
    let meta = LogMeta {
        format: mpcomm_check::log::FORMAT,
        run: start.run,
        peer: me,
        name: Some(p.name.clone()),
        order: order.to_string(),
        members: start.members.len(),
        messages: Messages::All(start.messages),
        workload: Some("seq".to_string()),
        seed: Some(start.seed),
    };
    let mut log = match LogFile::create(dir, &meta) {
        Ok(l) => l,
        Err(e) => {
            return RunOutcome {
                error: Some(format!("{e:#}")),
                log: None,
                lines: 0,
                delivered: 0,
                stats: Stats::default(),
            };
        }
    };
    let addrs: Vec<SocketAddr> = start.members.iter().map(|m| m.data_addr).collect();
    let mut opts = GroupOptions::new(start.run, me, addrs, order);
    opts.wan = wan;
    if let Some(ms) = start.peer_timeout_ms {
        opts.config.peer_timeout = Duration::from_millis(ms);
    }
    opts.config.keys = p.keys.current();
    let deadline = Instant::now() + Duration::from_millis(start.deadline_ms.max(1000));
    let (error, stats) = match run_group(p, start, opts, &mut log, abort, deadline).await {
        Ok(stats) => (None, stats),
        Err((e, stats)) => (Some(e), stats),
    };
    let end = LogEnd {
        status: if error.is_none() {
            EndStatus::Completed
        } else {
            EndStatus::Failed
        },
        error: error.clone(),
        delivered: log.delivered,
        t_us: Some(wall_clock_us()),
    };
    let (lines, delivered) = (log.lines + 1, log.delivered);
    match log.finish(&end).await {
        Ok(path) => RunOutcome {
            error,
            log: Some(path),
            lines,
            delivered,
            stats,
        },
        Err(e) => RunOutcome {
            error: Some(format!(
                "{}{e:#}",
                error.map(|e| format!("{e}; ")).unwrap_or_default()
            )),
            log: None,
            lines: 0,
            delivered,
            stats,
        },
    }
}

/// Joins the group, multicasts the workload and logs every delivery until
/// the run completes, fails, is aborted, or reaches its deadline.
async fn run_group(
    p: &Arc<PeerProcess>,
    start: &StartRun,
    opts: GroupOptions,
    log: &mut LogFile,
    mut abort: watch::Receiver<Option<String>>,
    deadline: Instant,
) -> Result<Stats, (String, Stats)> {
    let past_deadline = || {
        format!(
            "run deadline of {} ms passed before completion",
            start.deadline_ms
        )
    };
    let group = tokio::select! {
        joined = Group::join(opts, p.socket.clone()) => {
            joined.map_err(|e| (e.to_string(), Stats::default()))?
        }
        why = abort.wait_for(Option::is_some) => {
            let why = why.ok().and_then(|w| w.clone()).unwrap_or_default();
            return Err((why, Stats::default()));
        }
        () = tokio::time::sleep_until(deadline) => return Err((past_deadline(), Stats::default())),
    };
    let (mut tx, mut rx, control) = group.split();
    if let Ok(mut l) = p.lingering.lock() {
        *l = Some(control.abort_handle());
    }
    // The sending path: the original's workload, messages at random
    // intervals. Each payload starts with its send time.
    let (messages, lo, hi, size) = (
        start.messages,
        start.min_interval_us,
        start.max_interval_us,
        start.payload,
    );
    let mut rng = ChaCha8Rng::seed_from_u64(start.seed ^ (u64::from(start.member) << 32));
    let sender = tokio::spawn(async move {
        for _ in 0..messages {
            let pause = rng.random_range(lo..=hi);
            tokio::time::sleep(Duration::from_micros(pause)).await;
            let mut payload = vec![0u8; size];
            payload[..8].copy_from_slice(&wall_clock_us().to_be_bytes());
            tx.multicast(Bytes::from(payload)).await?;
        }
        tx.finish().await
    });
    // The receiving path: log every delivery, and flush the log in time.
    let run = start.run;
    let me = start.member;
    let mut failure = None;
    // Whether the protocol is over for us (completed or failed): if not,
    // we stop at once instead of lingering for the others.
    let mut over = false;
    loop {
        let flush_due = log.flush_due();
        tokio::select! {
            ev = rx.next() => match ev {
                // A new view: recorded between the deliveries, where it
                // happened (the deliveries after it belong to it).
                Some(GroupEvent::View { id, members, joined, left }) => {
                    let mark = ViewMark {
                        at: usize::try_from(log.delivered).unwrap_or(usize::MAX),
                        id,
                        members,
                        joined,
                        left,
                        t_us: Some(wall_clock_us()),
                    };
                    if let Err(e) = log.view(&mark) {
                        failure = Some(format!("{e:#}"));
                        break;
                    }
                }
                Some(GroupEvent::Delivery(d)) => {
                    let sent_us = d
                        .payload
                        .get(..8)
                        .and_then(|b| b.try_into().ok())
                        .map(u64::from_be_bytes);
                    let entry = LogEntry {
                        run,
                        peer: me,
                        sender: d.sender,
                        seq: d.seq,
                        stamp: Some(d.stamp),
                        sent_us,
                        delivered_us: Some(wall_clock_us()),
                        after: None,
                        op: None,
                    };
                    if let Err(e) = log.append(&entry) {
                        failure = Some(format!("{e:#}"));
                        break;
                    }
                }
                Some(GroupEvent::Completed) => {
                    over = true;
                    break;
                }
                Some(GroupEvent::Failed(e)) => {
                    failure = Some(e.to_string());
                    over = true;
                    break;
                }
                None => {
                    // The stream ends with Completed or Failed; if it just
                    // ends, the driver task died, and a short log must not
                    // pass for a complete one.
                    failure = Some("the protocol driver stopped before the run completed".to_string());
                    break;
                }
            },
            () = sleep_until_some(flush_due) => {
                if let Err(e) = log.flush() {
                    failure = Some(format!("{e:#}"));
                    break;
                }
            }
            why = abort.wait_for(Option::is_some) => {
                failure = Some(why.ok().and_then(|w| w.clone()).unwrap_or_default());
                break;
            }
            () = tokio::time::sleep_until(deadline) => {
                failure = Some(past_deadline());
                break;
            }
        }
    }
    let mut sender = sender;
    if failure.is_none() && !matches!((&mut sender).await, Ok(Ok(()))) {
        failure = Some("the sending task stopped early".to_string());
    }
    let stats = control.stats();
    if over {
        // Linger in the background: others may still need our
        // acknowledgements.
        tokio::spawn(async move {
            drop(rx);
            control.wait().await
        });
    } else {
        // Aborted, past the deadline, or the log failed: the run is over
        // for everybody (or nobody may rely on us); stop now.
        sender.abort();
        control.abort();
    }
    match failure {
        None => Ok(stats),
        Some(e) => Err((e, stats)),
    }
}

/// Sleeps until `at`, or for ever if there is nothing to wait for.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Sends the log to the comparison server (an empty body when there is no
/// log file).
async fn report(
    to: SocketAddr,
    header: &ReportHeader,
    log: Option<&Path>,
    keys: Option<&KeyRing>,
) -> anyhow::Result<()> {
    let send = async {
        let mut framed = control::connect(to, keys)
            .await
            .with_context(|| format!("cannot connect to the server at {to}"))?;
        let body: Box<dyn tokio::io::AsyncBufRead + Unpin + Send> = match log {
            Some(path) => match tokio::fs::File::open(path).await {
                Ok(f) => Box::new(tokio::io::BufReader::new(f)),
                Err(e) => {
                    return Err(
                        anyhow::Error::new(e).context(format!("cannot open {}", path.display()))
                    );
                }
            },
            None => Box::new(tokio::io::BufReader::new(tokio::io::empty())),
        };
        control::send_report(&mut framed, header, body).await?;
        anyhow::Ok(())
    };
    tokio::time::timeout(REPORT_TIMEOUT, send)
        .await
        .map_err(|_| anyhow::anyhow!("report timed out"))?
}

/// The protocol counters as the named numbers reports carry.
pub fn stats_map(s: &Stats) -> std::collections::BTreeMap<String, u64> {
    [
        ("datagrams_sent", s.datagrams_sent),
        ("datagrams_received", s.datagrams_received),
        ("bytes_sent", s.bytes_sent),
        ("bytes_received", s.bytes_received),
        ("records_sent", s.records_sent),
        ("retransmissions", s.retransmissions),
        ("acks_sent", s.acks_sent),
        ("duplicates", s.duplicates),
        ("delivered", s.delivered),
        ("max_held", s.max_held),
        ("dropped", s.dropped()),
        ("dropped_malformed", s.dropped_malformed),
        ("dropped_wrong_run", s.dropped_wrong_run),
        ("dropped_misaddressed", s.dropped_misaddressed),
        ("dropped_unknown_sender", s.dropped_unknown_sender),
        ("dropped_out_of_window", s.dropped_out_of_window),
        ("dropped_config_mismatch", s.dropped_config_mismatch),
        ("protocol_violations", s.protocol_violations),
        ("dropped_stale_incarnation", s.dropped_stale_incarnation),
        ("dropped_bad_stamp", s.dropped_bad_stamp),
        ("dropped_unsealed", s.dropped_unsealed),
        ("dropped_unauthenticated", s.dropped_unauthenticated),
        ("dropped_unknown_key", s.dropped_unknown_key),
        ("dropped_replayed", s.dropped_replayed),
        ("dropped_wrong_source", s.dropped_wrong_source),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn default_name(addr: SocketAddr) -> String {
    let ip: String = addr
        .ip()
        .to_string()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("peer-{ip}-{}", addr.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_are_valid() {
        for a in [
            "127.0.0.1:7000",
            "[fe80::1]:9",
            "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
        ] {
            let name = default_name(a.parse().unwrap());
            assert!(control::validate_name(&name).is_ok(), "{name}");
        }
    }
}
