//! `mpcomm demo`: the whole system on one machine, in one command.
//!
//! The demo starts the same processes a real deployment runs — one group
//! manager and N peers, each a separate `mpcomm` process started from this
//! very binary — on `127.0.0.1` with ports the operating system picks. The
//! comparison server runs inside the demo's own process (it is library code,
//! [`Server`]). Then it runs the same experiment once per delivery order
//! (by default `none`, then `total`) and hands back each run's outcome, so
//! students see the ordering problem and its cure side by side.
//!
//! [`run_each`] is the same machinery with any list of runs (each with its
//! own workload and seed) instead of one per order; `mpcomm sweep
//! --processes` uses it to make many runs on one set of processes.
//!
//! # Why real processes?
//!
//! The point of the demo is that nothing is faked: the peers talk UDP to
//! each other, register over TCP with the group manager, and report their
//! delivery logs to the server exactly as they would across a continent.
//! Only the distance is emulated: each peer delays its own outgoing
//! datagrams according to the sender's and receiver's regions (see
//! [`mpcomm::runtime`]), because one machine has no continent inside it.
//!
//! # Cleaning up
//!
//! Whatever happens — the runs end, something fails, or the user presses
//! Ctrl-C — every process the demo started is stopped before [`run`]
//! returns: first politely ([`Server::stop_everything`] asks every peer and
//! then the group manager to stop, so peers unregister and close their
//! sockets), then, after a short grace period, by killing what is left and
//! reaping it. As a last safety net every child is spawned with
//! `kill_on_drop`, so even a panic in the demo does not leave processes
//! behind. Each child's stderr goes to a file under `DIR/logs/`, so nothing
//! it prints can block it, and its last lines can be shown when it fails.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use mpcomm_core::{KeyRing, OrderKind};
use mpcomm_sim::NetProfile;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::server::{RunOutcome, RunParams, Server, ServerEvent, ServerOptions};
use super::stamp::{create_unique_dir, now_stamp};

/// The network the demo emulates unless told otherwise: two regions a
/// continent apart, as measured for the original MPComm — 2 ± 1 ms within
/// a region and 40 ± 15 ms between regions. The same network is the
/// default of `mpcomm sim` and `mpcomm sweep` ([`NetProfile::default`]), so
/// that a simulated run and a demo run of the same workload compare.
pub const DEFAULT_WAN: &str = "intra=2ms±1ms, inter=40ms±15ms";

/// How long the demo waits for a process to start and announce itself.
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(15);

/// How long polite stopping may take before the demo kills what is left.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// How long a killed process may take to be reaped.
const KILL_WAIT: Duration = Duration::from_secs(2);

/// How often [`DemoEvent::Tick`] is sent during a run.
const TICK: Duration = Duration::from_millis(100);

/// What the demo does.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// The `mpcomm` binary to start the processes from (the CLI passes
    /// `std::env::current_exe()`).
    pub exe: PathBuf,
    /// Number of peer processes.
    pub peers: usize,
    /// Messages each peer multicasts per run.
    pub messages: u64,
    /// Regions the peers are spread over, in consecutive blocks.
    pub regions: usize,
    /// The emulated wide-area network, or `None` for the plain loopback.
    pub wan: Option<String>,
    /// One run per order, in this order.
    pub orders: Vec<OrderKind>,
    /// Everything goes below this directory: `runs/`, `peers/`, `logs/`.
    pub data_dir: PathBuf,
    /// How long each process may take to start.
    pub startup_timeout: Duration,
    /// The group key file every process uses; `None`: the demo makes a
    /// fresh key in `DATA_DIR/group.key` (on loopback too: the demo shows
    /// the system as it should be deployed).
    pub key_file: Option<PathBuf>,
}

impl DemoOptions {
    /// The default demo (6 peers × 100 messages over two regions, `none`
    /// then `total`) in `data_dir`.
    pub fn new(exe: PathBuf, data_dir: PathBuf) -> DemoOptions {
        DemoOptions {
            exe,
            peers: 6,
            messages: 100,
            regions: 2,
            wan: Some(DEFAULT_WAN.to_string()),
            orders: vec![OrderKind::None, OrderKind::Total],
            data_dir,
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            key_file: None,
        }
    }

    /// Checks the options before anything is started, with messages that
    /// say how to fix them.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.orders.is_empty() {
            bail!("--orders needs at least one order (e.g. none,total)");
        }
        validate_runs(self, &self.planned_runs())
    }

    /// Checks what [`run_each`] uses of the options: the processes to start
    /// (`peers`, `regions`), not the workload (`messages`, `orders`, `wan`),
    /// which [`run_each`] takes from its list of runs instead.
    pub fn validate_cluster(&self) -> anyhow::Result<()> {
        if self.peers == 0 {
            bail!("--peers must be at least 1 (try --peers 6)");
        }
        if self.regions == 0 {
            bail!("--regions must be at least 1");
        }
        if self.regions > self.peers {
            bail!(
                "--regions {} is more than --peers {}: every region needs a peer",
                self.regions,
                self.peers
            );
        }
        Ok(())
    }

    /// The runs `mpcomm demo` makes: one per order, in the order of
    /// [`DemoOptions::orders`].
    pub fn planned_runs(&self) -> Vec<RunParams> {
        self.orders.iter().map(|&o| self.params(o)).collect()
    }

    /// The parameters of the run in `order`.
    pub fn params(&self, order: OrderKind) -> RunParams {
        RunParams {
            wan: self.wan.clone(),
            ..RunParams::new(self.messages, order)
        }
    }

    /// The peer names, `peer-0` … `peer-(N-1)`.
    pub fn peer_name(i: usize) -> String {
        format!("peer-{i}")
    }

    /// The region label of peer `i`: `r0`, `r1`, … in consecutive blocks.
    pub fn peer_region(&self, i: usize) -> String {
        format!(
            "r{}",
            mpcomm_sim::net::region_of(i, self.peers, self.regions)
        )
    }
}

/// How long the sending phase of a run should take: every peer sends its
/// messages at random pauses between `min_interval` and `max_interval`, so
/// on average `messages × mean pause`, plus about a second for the
/// handshake. Only for showing progress; the run's deadline is far longer.
pub fn expected_sending_time(params: &RunParams) -> Duration {
    let mean = (params.min_interval + params.max_interval) / 2;
    mean.saturating_mul(params.messages.min(u64::from(u32::MAX)) as u32) + Duration::from_secs(1)
}

/// What the demo is doing, for whoever shows progress.
#[derive(Clone, Debug)]
pub enum DemoEvent {
    /// A process is being started.
    Spawning {
        /// `group-manager` or the peer's name.
        name: String,
        /// Processes to start (group manager + peers).
        total: usize,
    },
    /// A process has announced itself.
    Up {
        /// `group-manager` or the peer's name.
        name: String,
        /// Processes up so far.
        up: usize,
        /// Processes to start (group manager + peers).
        total: usize,
    },
    /// A run begins.
    RunStarting {
        /// Its order.
        order: OrderKind,
        /// 0-based index of the run.
        index: usize,
        /// Number of runs.
        runs: usize,
        /// How long sending should take ([`expected_sending_time`]).
        expected: Duration,
    },
    /// Time passes in the current run (sent every 100 ms).
    Tick {
        /// Since the run began.
        elapsed: Duration,
    },
    /// Progress from the comparison server (peers registered, reports in).
    Server(ServerEvent),
    /// A run is over.
    RunFinished {
        /// Its order.
        order: OrderKind,
        /// Whether it kept its order's promises.
        passed: bool,
    },
    /// Stopping every process.
    Stopping,
}

/// How the demo ended (setup errors are the `Err` of [`run`] instead).
#[derive(Debug)]
pub struct DemoOutcome {
    /// One outcome per run that finished, in the order they were planned
    /// ([`DemoOptions::orders`] for [`run`], the list given to [`run_each`]).
    pub runs: Vec<RunOutcome>,
    /// The user interrupted the demo (SIGINT/SIGTERM); `runs` may be short.
    pub interrupted: bool,
    /// Processes that did not stop when asked and were killed.
    pub killed: Vec<String>,
}

impl DemoOutcome {
    /// Every run happened and kept its order's promises.
    pub fn passed(&self) -> bool {
        !self.interrupted && !self.runs.is_empty() && self.runs.iter().all(|r| r.passed)
    }
}

/// Runs the demo: starts the processes, runs one experiment per order,
/// stops everything. Returns when all is stopped, or early (after stopping
/// everything) when `shutdown` completes.
///
/// Errors are setup errors — a process that does not start, a directory
/// that cannot be created — and name the process and its last stderr lines.
/// A run that fails its checks is not an error: it is in the outcome.
pub async fn run(
    opts: &DemoOptions,
    progress: &mut dyn FnMut(DemoEvent),
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<DemoOutcome> {
    opts.validate()?;
    match run_each(opts, &opts.planned_runs(), progress, shutdown).await {
        (_, Some(e)) => Err(e),
        (outcome, None) => Ok(outcome),
    }
}

/// Like [`run`], but with an explicit list of runs instead of one per order:
/// starts the processes of `opts` (its `peers` and `regions`) once, makes
/// every run of `runs` on them in turn, and stops everything. This is what
/// `mpcomm sweep --processes` uses: one cluster per group size, many
/// workloads (each with its own seed, message count and pauses) on it —
/// starting processes costs seconds, a run of a small workload less.
///
/// Unlike [`run`], an error does not throw away the runs that finished
/// before it: it comes back *beside* the outcome, whose `runs` holds them.
/// The error is a setup error (nothing ran), or a run that could not be
/// made at all (a peer died between runs, a directory could not be
/// created); every later run of the list was skipped. In every case all
/// processes are stopped before this returns.
pub async fn run_each(
    opts: &DemoOptions,
    runs: &[RunParams],
    progress: &mut dyn FnMut(DemoEvent),
    shutdown: impl Future<Output = ()>,
) -> (DemoOutcome, Option<anyhow::Error>) {
    let mut outcome = DemoOutcome {
        runs: Vec::new(),
        interrupted: false,
        killed: Vec::new(),
    };
    if let Err(e) = validate_runs(opts, runs) {
        return (outcome, Some(e));
    }
    let logs = opts.data_dir.join("logs");
    for dir in [&opts.data_dir, &logs] {
        if let Err(e) = std::fs::create_dir_all(dir) {
            let e = anyhow::Error::new(e).context(format!(
                "cannot create {}; choose another place with --data-dir",
                dir.display()
            ));
            return (outcome, Some(e));
        }
    }

    let (key_file, keys) = match demo_key(opts) {
        Ok(k) => k,
        Err(e) => return (outcome, Some(e)),
    };
    let mut cluster = Cluster {
        exe: opts.exe.clone(),
        logs,
        startup_timeout: opts.startup_timeout,
        children: Vec::new(),
        key_file,
        keys,
    };
    let mut server = None;
    let result = {
        let work = drive(
            opts,
            runs,
            &mut cluster,
            &mut server,
            &mut outcome.runs,
            progress,
        );
        tokio::pin!(work);
        tokio::pin!(shutdown);
        tokio::select! {
            r = &mut work => r.map(|()| false),
            () = &mut shutdown => Ok(true),
        }
    };
    progress(DemoEvent::Stopping);
    outcome.killed = cluster.stop(server.as_ref()).await;
    match result {
        Ok(interrupted) => {
            outcome.interrupted = interrupted;
            (outcome, None)
        }
        Err(e) => (outcome, Some(e)),
    }
}

/// Checks the cluster options and every run before anything is started.
fn validate_runs(opts: &DemoOptions, runs: &[RunParams]) -> anyhow::Result<()> {
    opts.validate_cluster()?;
    if runs.is_empty() {
        bail!("nothing to run: the list of runs is empty");
    }
    for p in runs {
        if p.messages == 0 {
            bail!("--messages must be at least 1 (try --messages 100)");
        }
        if p.min_interval > p.max_interval {
            bail!(
                "--min-interval {:?} is longer than --max-interval {:?}",
                p.min_interval,
                p.max_interval
            );
        }
        if let Some(w) = &p.wan {
            w.parse::<NetProfile>()
                .map_err(|e| anyhow::anyhow!("--wan {w:?}: {e} (or use --wan off)"))?;
        }
    }
    Ok(())
}

/// The key the demo's processes share: the one given, or a fresh one in
/// `DATA_DIR/group.key`.
fn demo_key(opts: &DemoOptions) -> anyhow::Result<(PathBuf, KeyRing)> {
    if let Some(path) = &opts.key_file {
        let keys = mpcomm::keyfile::load(path)
            .with_context(|| format!("cannot use the key file {}", path.display()))?;
        return Ok((std::fs::canonicalize(path)?, keys));
    }
    let path = opts.data_dir.join("group.key");
    let key = mpcomm::keyfile::generate(1).context("no random numbers from the system")?;
    let keys = KeyRing::single(key);
    mpcomm::keyfile::save(&path, &keys, true)?;
    Ok((std::fs::canonicalize(&path)?, keys))
}

/// Everything between starting the first process and the last run.
async fn drive(
    opts: &DemoOptions,
    planned: &[RunParams],
    cluster: &mut Cluster,
    server_slot: &mut Option<Server>,
    runs: &mut Vec<RunOutcome>,
    progress: &mut dyn FnMut(DemoEvent),
) -> anyhow::Result<()> {
    let total = opts.peers + 1;
    let deadline = Instant::now() + opts.startup_timeout;

    // The group manager first: the peers need its address.
    progress(DemoEvent::Spawning {
        name: "group-manager".into(),
        total,
    });
    let gm_line = cluster
        .spawn_and_read(
            "group-manager",
            &["group-manager", "--listen", "127.0.0.1:0"],
            deadline,
        )
        .await?;
    let gm_addr: SocketAddr = gm_line
        .strip_prefix("listening on ")
        .and_then(|a| a.trim().parse().ok())
        .with_context(|| {
            format!(
                "the group manager printed {gm_line:?} instead of `listening on ADDR`{}",
                cluster.stderr_tail_of("group-manager")
            )
        })?;
    progress(DemoEvent::Up {
        name: "group-manager".into(),
        up: 1,
        total,
    });

    // The comparison server, in this process. Bound before the peers start
    // so that, should a peer fail to start, `stop_everything` can still stop
    // the others and the group manager.
    let server = server_slot.insert(
        Server::bind(ServerOptions {
            // Every run has all the peers, or fails saying who is missing.
            expect: Some(opts.peers),
            expect_timeout: opts.startup_timeout,
            ..ServerOptions::new(
                gm_addr.to_string(),
                SocketAddr::from(([127, 0, 0, 1], 0)),
                opts.data_dir.join("runs"),
            )
        })
        .await
        .context("cannot start the comparison server")?
        .with_keys(Some(cluster.keys.clone())),
    );

    // Start every peer at once (they start in parallel), then read their
    // announcements one by one against the common deadline.
    let gm = gm_addr.to_string();
    let mut pending = Vec::with_capacity(opts.peers);
    for i in 0..opts.peers {
        let name = DemoOptions::peer_name(i);
        let data_dir = opts.data_dir.join("peers").join(&name);
        let data_dir = data_dir.to_string_lossy().into_owned();
        let region = opts.peer_region(i);
        progress(DemoEvent::Spawning {
            name: name.clone(),
            total,
        });
        let args = [
            "peer",
            "--group-manager",
            &gm,
            "--bind",
            "127.0.0.1:0",
            "--control",
            "127.0.0.1:0",
            "--name",
            &name,
            "--region",
            &region,
            "--data-dir",
            &data_dir,
        ];
        pending.push((name.clone(), cluster.spawn(&name, &args)?));
    }
    for (k, (name, stdout)) in pending.into_iter().enumerate() {
        let line = cluster.read_announcement(&name, stdout, deadline).await?;
        if !line.starts_with(&format!("peer {name} registered")) {
            bail!(
                "{name} printed {line:?} instead of `peer {name} registered: ...`{}",
                cluster.stderr_tail_of(&name)
            );
        }
        progress(DemoEvent::Up {
            name,
            up: k + 2,
            total,
        });
    }
    let remaining = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_secs(1));
    server
        .wait_for_peers(opts.peers, remaining, &mut |ev| {
            progress(DemoEvent::Server(ev))
        })
        .await?;

    for (index, params) in planned.iter().enumerate() {
        // A peer that died between runs would still be registered until its
        // registration expires; notice it here and say which one.
        cluster.check_alive()?;
        let order = params.order;
        progress(DemoEvent::RunStarting {
            order,
            index,
            runs: planned.len(),
            expected: expected_sending_time(params),
        });
        let outcome = run_one(server, params, progress).await?;
        progress(DemoEvent::RunFinished {
            order,
            passed: outcome.passed,
        });
        runs.push(outcome);
    }
    Ok(())
}

/// One run, with a [`DemoEvent::Tick`] every 100 ms while it lasts.
///
/// The server reports progress through a callback while its run future is
/// being polled, and the ticks come from a timer; both must reach the one
/// `progress` callback. So the server's events go through a channel and this
/// loop — the only caller of `progress` — forwards them in order.
async fn run_one(
    server: &mut Server,
    params: &RunParams,
    progress: &mut dyn FnMut(DemoEvent),
) -> anyhow::Result<RunOutcome> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut forward = move |ev: ServerEvent| {
        let _ = tx.send(ev);
    };
    let started = Instant::now();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let result = {
        let work = server.run(params, &mut forward);
        tokio::pin!(work);
        loop {
            tokio::select! {
                r = &mut work => break r,
                Some(ev) = rx.recv() => progress(DemoEvent::Server(ev)),
                _ = tick.tick() => progress(DemoEvent::Tick { elapsed: started.elapsed() }),
            }
        }
    };
    while let Ok(ev) = rx.try_recv() {
        progress(DemoEvent::Server(ev));
    }
    result
}

/// A process the demo started.
struct Proc {
    name: String,
    child: Child,
    stderr: PathBuf,
}

/// The processes the demo started.
struct Cluster {
    exe: PathBuf,
    logs: PathBuf,
    startup_timeout: Duration,
    children: Vec<Proc>,
    /// The group key file, given to every process (`MPCOMM_KEY_FILE`).
    key_file: PathBuf,
    keys: KeyRing,
}

impl Cluster {
    /// Starts `exe args…` as process `name`, its stderr going to
    /// `logs/NAME.stderr`, and returns its stdout.
    fn spawn(&mut self, name: &str, args: &[&str]) -> anyhow::Result<ChildStdout> {
        let stderr = self.logs.join(format!("{name}.stderr"));
        let file = std::fs::File::create(&stderr)
            .with_context(|| format!("cannot create {}", stderr.display()))?;
        let mut child = Command::new(&self.exe)
            .args(args)
            .env("MPCOMM_KEY_FILE", &self.key_file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(file))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| {
                format!(
                    "cannot start {name} from {}: is the mpcomm binary still there?",
                    self.exe.display()
                )
            })?;
        let stdout = child.stdout.take();
        self.children.push(Proc {
            name: name.to_string(),
            child,
            stderr,
        });
        stdout.with_context(|| format!("{name} has no stdout pipe"))
    }

    /// Starts a process and reads its first stdout line.
    async fn spawn_and_read(
        &mut self,
        name: &str,
        args: &[&str],
        deadline: Instant,
    ) -> anyhow::Result<String> {
        let stdout = self.spawn(name, args)?;
        self.read_announcement(name, stdout, deadline).await
    }

    /// Reads the first line `name` prints, by `deadline`. Afterwards its
    /// stdout is drained in the background, so whatever else it prints can
    /// never fill the pipe and block it.
    async fn read_announcement(
        &mut self,
        name: &str,
        stdout: ChildStdout,
        deadline: Instant,
    ) -> anyhow::Result<String> {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let read = tokio::time::timeout_at(deadline, reader.read_line(&mut line)).await;
        match read {
            Ok(Ok(n)) if n > 0 && line.ends_with('\n') => {
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut reader, &mut tokio::io::sink()).await;
                });
                Ok(line.trim_end().to_string())
            }
            Ok(Ok(_)) => {
                // End of output: the process is exiting, most likely with an
                // error. Give it a moment so its status and stderr are final.
                let status = self.wait_briefly(name).await;
                bail!(
                    "{name} exited before it was ready ({}){}",
                    describe_status(status),
                    self.stderr_tail_of(name)
                )
            }
            Ok(Err(e)) => bail!(
                "cannot read the output of {name}: {e}{}",
                self.stderr_tail_of(name)
            ),
            Err(_) => bail!(
                "{name} did not get ready within {:?} (is the machine very busy? \
                 RUST_LOG=debug shows more in its stderr){}",
                self.startup_timeout,
                self.stderr_tail_of(name)
            ),
        }
    }

    /// Waits up to a second for `name` to exit.
    async fn wait_briefly(&mut self, name: &str) -> Option<ExitStatus> {
        let proc = self.children.iter_mut().find(|p| p.name == name)?;
        tokio::time::timeout(Duration::from_secs(1), proc.child.wait())
            .await
            .ok()
            .and_then(Result::ok)
    }

    /// Fails, naming the process, if any child has exited.
    fn check_alive(&mut self) -> anyhow::Result<()> {
        for p in &mut self.children {
            if let Ok(Some(status)) = p.child.try_wait() {
                bail!(
                    "{} exited unexpectedly ({}){}",
                    p.name,
                    describe_status(Some(status)),
                    stderr_tail(&p.stderr)
                );
            }
        }
        Ok(())
    }

    /// The last stderr lines of `name`, formatted for an error message.
    fn stderr_tail_of(&self, name: &str) -> String {
        self.children
            .iter()
            .find(|p| p.name == name)
            .map(|p| stderr_tail(&p.stderr))
            .unwrap_or_default()
    }

    /// Stops every process: politely through the server, then by force.
    /// Returns the names of the processes that had to be killed.
    async fn stop(&mut self, server: Option<&Server>) -> Vec<String> {
        if self.children.is_empty() {
            return Vec::new();
        }
        if let Some(server) = server {
            // Peers that cannot be told are common after Ctrl-C: the
            // terminal sent SIGINT to the whole process group, so they are
            // already stopping (and reset the connection). Not worth a
            // warning; what does not stop is killed below, and said so.
            match tokio::time::timeout(STOP_GRACE, server.stop_everything()).await {
                Ok(Ok(unreachable)) => {
                    for why in unreachable {
                        tracing::debug!("could not stop peer {why}");
                    }
                }
                // Common after Ctrl-C: the terminal sent SIGINT to the whole
                // process group, so the processes are already stopping.
                Ok(Err(e)) => tracing::debug!("stopping politely: {e:#}"),
                Err(_) => tracing::debug!("stopping politely took longer than {STOP_GRACE:?}"),
            }
        }
        let grace = Instant::now() + STOP_GRACE;
        let mut killed = Vec::new();
        for p in &mut self.children {
            if tokio::time::timeout_at(grace, p.child.wait()).await.is_ok() {
                continue;
            }
            tracing::warn!("{} did not stop when asked; killing it", p.name);
            let _ = p.child.start_kill();
            if tokio::time::timeout(KILL_WAIT, p.child.wait())
                .await
                .is_err()
            {
                tracing::warn!("{} did not exit after SIGKILL", p.name);
            }
            killed.push(p.name.clone());
        }
        killed
    }
}

fn describe_status(status: Option<ExitStatus>) -> String {
    match status {
        Some(s) => s.to_string(),
        None => "still running".to_string(),
    }
}

/// The last lines of a process's stderr file, indented, or a note that it
/// is empty.
fn stderr_tail(path: &Path) -> String {
    const LINES: usize = 12;
    const MAX_LINE: usize = 300;
    let text = match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => return format!("\n  (cannot read {}: {e})", path.display()),
    };
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return format!("\n  (its stderr, {}, is empty)", path.display());
    }
    let mut s = format!("\n  last lines of its stderr ({}):", path.display());
    for l in &lines[lines.len().saturating_sub(LINES)..] {
        let l: String = l.chars().take(MAX_LINE).collect();
        s.push_str("\n    ");
        s.push_str(&l);
    }
    s
}

/// A new directory `base/YYYYMMDD-HHMMSS` (UTC; `-1`, `-2`, … appended if
/// two demos start in the same second), created.
pub fn new_demo_dir(base: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(base).with_context(|| {
        format!(
            "cannot create {}; choose another place with --data-dir",
            base.display()
        )
    })?;
    create_unique_dir(base, &now_stamp()).with_context(|| {
        format!(
            "cannot create a directory in {}; choose another place with --data-dir",
            base.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> DemoOptions {
        DemoOptions::new(PathBuf::from("mpcomm"), PathBuf::from("x"))
    }

    #[test]
    fn defaults_are_valid() {
        opts().validate().unwrap();
        assert_eq!(
            DEFAULT_WAN.parse::<NetProfile>().unwrap(),
            NetProfile::default(),
            "the demo and the simulator default to the same network"
        );
    }

    #[test]
    fn bad_options_say_what_to_do() {
        type Tweak = fn(&mut DemoOptions);
        let cases: [(Tweak, &str); 5] = [
            (|o| o.peers = 0, "--peers"),
            (|o| o.messages = 0, "--messages"),
            (|o| o.regions = 7, "--regions"),
            (|o| o.orders.clear(), "--orders"),
            (|o| o.wan = Some("inter=fast".into()), "--wan"),
        ];
        for (tweak, flag) in cases {
            let mut o = opts();
            tweak(&mut o);
            let e = o.validate().unwrap_err().to_string();
            assert!(e.contains(flag), "{e}");
        }
    }

    #[tokio::test]
    async fn run_each_refuses_bad_runs_before_starting_anything() {
        let dir = std::env::temp_dir().join(format!("mpcomm-demo-each-{}", std::process::id()));
        let mut o = opts();
        o.data_dir = dir.clone();
        let mut slow = RunParams::new(10, OrderKind::Total);
        slow.min_interval = Duration::from_secs(2);
        let cases: [(Vec<RunParams>, &str); 3] = [
            (Vec::new(), "nothing to run"),
            (vec![RunParams::new(0, OrderKind::None)], "--messages"),
            (vec![slow], "--min-interval"),
        ];
        for (runs, says) in cases {
            let (outcome, e) = run_each(&o, &runs, &mut |_| {}, std::future::pending()).await;
            let e = e.expect("an error").to_string();
            assert!(e.contains(says), "{e}");
            assert!(outcome.runs.is_empty());
        }
        assert!(
            !dir.exists(),
            "nothing is created for runs that cannot be made"
        );
    }

    #[test]
    fn regions_are_consecutive_blocks() {
        let o = opts();
        let r: Vec<String> = (0..6).map(|i| o.peer_region(i)).collect();
        assert_eq!(r, ["r0", "r0", "r0", "r1", "r1", "r1"]);
    }

    #[test]
    fn expected_time_is_messages_times_mean_pause_plus_handshake() {
        let p = RunParams::new(100, OrderKind::Total);
        assert_eq!(expected_sending_time(&p), Duration::from_millis(6500));
    }

    #[tokio::test]
    async fn a_missing_binary_is_a_clear_setup_error() {
        let dir = std::env::temp_dir().join(format!("mpcomm-demo-unit-{}", std::process::id()));
        let mut o = opts();
        o.exe = dir.join("no-such-binary");
        o.data_dir = dir.clone();
        let e = run(&o, &mut |_| {}, std::future::pending())
            .await
            .unwrap_err();
        assert!(
            format!("{e:#}").contains("cannot start group-manager"),
            "{e:#}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
