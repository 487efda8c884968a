//! `mpcomm server`: the comparison server.
//!
//! It does what the original `comparisonServer.py` did — start a run on
//! every registered peer, collect their delivery logs, count the rounds in
//! which peers delivered different messages — and what it did not:
//!
//! * the members are the registered peers that answer (see the
//!   `members` submodule), not a constant N; ids are assigned in
//!   natural name order (`peer-2` before `peer-10`); with `--expect N`
//!   every run waits for N of them, or fails saying who is missing;
//! * every wait has a deadline, and a run ends **as soon as its outcome is
//!   decided**, naming the cause: when every member has reported; or, the
//!   moment one member fails or its process dies (the server keeps each
//!   peer's control connection open during the run, and a process that
//!   dies closes it), by telling the others to stop (`abort`) and waiting a
//!   few seconds for their reports — not until a deadline;
//! * **a failed run keeps everything**: every reachable member's log,
//!   partial or not, `summary.json` with the checker's findings (which say
//!   how far each member got and whether what was delivered is
//!   consistent), and `report.html`;
//! * logs arrive over TCP as one JSON line per entry, of any length, written
//!   straight to disk (see the `reports` submodule);
//! * the logs are checked by the full checker (`mpcomm-check`), not just
//!   compared position by position — and the position count covers every
//!   position and every peer.

mod members;
mod reports;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use mpcomm_check::{Findings, LeftMember, RunSpec, RunView, VirtualSynchrony};
use mpcomm_core::{KeyRing, MemberId, OrderKind};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::address::advertised_addr;
use super::reach;
use super::stamp::{create_unique_dir, now_stamp};
use reports::Collected;

use mpcomm::control::{
    self, ControlError, Framed, GmRequest, MemberSpec, PeerCommand, PeerInfo, Reply, StartRun,
};
use mpcomm::secure::Channel;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Once a run's outcome is decided, how long the members that have not
/// reported yet get to report (they were told to stop at once).
const GRACE: Duration = Duration::from_secs(3);
/// How much longer than [`GRACE`] a report that is still arriving may take
/// (a long log takes a while to send).
const GRACE_FOR_TRANSFERS: Duration = Duration::from_secs(60);
/// How long telling a member to stop may take.
const ABORT_TIMEOUT: Duration = Duration::from_secs(2);

/// How the server is set up.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// The group manager, `host:port`.
    pub group_manager: String,
    /// TCP address where peers deliver their logs.
    pub listen: SocketAddr,
    /// Host (or host:port, when a NAT maps the port) peers must use to
    /// reach `listen`; see the rules in `roles/address.rs`.
    pub advertise: Option<String>,
    /// Where run directories are created.
    pub data_dir: PathBuf,
    /// Every run waits until at least this many peers answer (`--expect`).
    pub expect: Option<usize>,
    /// How long a run waits for its members, and the server for the group
    /// manager (`--expect-timeout`).
    pub expect_timeout: Duration,
}

impl ServerOptions {
    /// Options with no `--expect` and a 60 s timeout.
    pub fn new(group_manager: String, listen: SocketAddr, data_dir: PathBuf) -> ServerOptions {
        ServerOptions {
            group_manager,
            listen,
            advertise: None,
            data_dir,
            expect: None,
            expect_timeout: Duration::from_secs(60),
        }
    }
}

/// The parameters of one run.
#[derive(Clone, Debug, Serialize)]
pub struct RunParams {
    /// Messages each peer multicasts.
    pub messages: u64,
    /// Delivery order.
    pub order: OrderKind,
    /// Shortest pause between two messages of a peer.
    #[serde(serialize_with = "ser_micros")]
    pub min_interval: Duration,
    /// Longest pause between two messages of a peer.
    #[serde(serialize_with = "ser_micros")]
    pub max_interval: Duration,
    /// Bytes per message (at least 8).
    pub payload: usize,
    /// Wide-area emulation spec, or none for the real network.
    pub wan: Option<String>,
    /// Workload seed; random if absent.
    pub seed: Option<u64>,
    /// Give up on the run after this long; derived from the workload if absent.
    #[serde(skip)]
    pub deadline: Option<Duration>,
    /// A member silent this long is declared unresponsive (the protocol's
    /// default, 10 s, if absent).
    #[serde(skip)]
    pub peer_timeout: Option<Duration>,
}

fn ser_micros<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_micros() as u64)
}

impl RunParams {
    /// The original's workload: `messages` messages at 10–100 ms intervals.
    pub fn new(messages: u64, order: OrderKind) -> RunParams {
        RunParams {
            messages,
            order,
            min_interval: Duration::from_millis(10),
            max_interval: Duration::from_millis(100),
            payload: 8,
            wan: None,
            seed: None,
            deadline: None,
            peer_timeout: None,
        }
    }

    /// The run deadline: the handshake, the sending time at the slowest
    /// pace, with room to spare.
    pub fn deadline(&self) -> Duration {
        self.deadline.unwrap_or_else(|| {
            Duration::from_secs(20)
                + self
                    .max_interval
                    .saturating_mul(self.messages.min(u64::from(u32::MAX)) as u32)
                    * 2
        })
    }
}

/// What happened to one member in a run.
#[derive(Clone, Debug, Serialize)]
pub struct MemberOutcome {
    /// Member id.
    pub id: MemberId,
    /// Registered name.
    pub name: String,
    /// Region label.
    pub region: String,
    /// `completed`, `failed`, or `missing` (never reported).
    pub status: String,
    /// Why it failed, or, for a missing member, what the server saw.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Deliveries in its log.
    pub entries: u64,
    /// Seconds from the start of the run to its report, or to the moment
    /// its control connection closed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_s: Option<f64>,
    /// The peer's protocol counters.
    pub stats: std::collections::BTreeMap<String, u64>,
}

/// The result of a run, as stored in `summary.json`.
#[derive(Clone, Debug, Serialize)]
pub struct RunOutcome {
    /// The run id.
    pub run: u64,
    /// The run's directory.
    pub run_dir: PathBuf,
    /// Whether the run completed and every property the order promises holds.
    pub passed: bool,
    /// Why the run failed, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The parameters.
    pub params: RunParams,
    /// Seconds from start to the last report.
    pub duration_s: f64,
    /// Each member.
    pub members: Vec<MemberOutcome>,
    /// The run's `report.html` (see [`crate::report`]); absent when it could
    /// not be written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<PathBuf>,
    /// Why the report could not be written. The report is a view of the
    /// run, not part of it: failing to write it never fails the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report_error: Option<String>,
    /// Logs that were reported but could not be read, one sentence each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unreadable_logs: Vec<String>,
    /// The checker's findings on the logs the server holds — for a failed
    /// run too, where they say how far each member got and whether what was
    /// delivered is consistent.
    #[serde(flatten)]
    pub findings: Option<Findings>,
    /// The views the members' logs record (id, members, joined, left):
    /// the first view, and one more each time the group changed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub views: Vec<RunView>,
    /// Members that left the group, each with the first view without it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub left: Vec<LeftMember>,
    /// Whether virtual synchrony holds, when the group changed during the
    /// run (absent when it did not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub virtual_synchrony: Option<bool>,
    /// The virtual-synchrony verdict with its first counter-example.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub virtual_synchrony_detail: Option<VirtualSynchrony>,
}

/// Progress of a run, for whoever shows it.
#[derive(Clone, Debug)]
pub enum ServerEvent {
    /// Peers that answer so far, while waiting for enough of them. Sent
    /// when the count changes, and now and then while it does not.
    Waiting {
        /// Registered and answering now.
        registered: usize,
        /// Wanted.
        expected: usize,
    },
    /// The run is starting with these members.
    Starting {
        /// Run id.
        run: u64,
        /// Member names in id order.
        members: Vec<String>,
        /// The deadline.
        deadline: Duration,
    },
    /// A member's report arrived.
    Reported {
        /// Member id.
        member: MemberId,
        /// Its status.
        status: String,
        /// Reports received so far.
        received: usize,
        /// Reports expected.
        total: usize,
    },
    /// The run's outcome is decided before every member reported: the
    /// others were told to stop, and their reports are awaited briefly.
    Ending {
        /// Why.
        cause: String,
    },
    /// All reports are in; checking.
    Checking,
}

/// A bound comparison server.
pub struct Server {
    opts: ServerOptions,
    listener: TcpListener,
    report_to: SocketAddr,
    runs: u64,
    /// The group key: every control connection is authenticated with it.
    keys: Option<KeyRing>,
}

impl Server {
    /// Binds the report listener, waits for the group manager (up to
    /// `expect_timeout`) and works out the address peers must use.
    pub async fn bind(opts: ServerOptions) -> anyhow::Result<Server> {
        let listener = TcpListener::bind(opts.listen).await.map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
                ": is another server already running there? Choose another address with \
                 --listen (port 0 picks a free one)"
            } else {
                ""
            };
            anyhow::anyhow!("cannot listen on {}: {e}{hint}", opts.listen)
        })?;
        let local = listener.local_addr()?;
        std::fs::create_dir_all(&opts.data_dir)
            .with_context(|| format!("cannot create {}", opts.data_dir.display()))?;
        reports::clean_leftovers(&opts.data_dir);
        // The address peers must use is checked first when it does not
        // depend on the group manager (a bad --advertise is reported at
        // once); otherwise it is learnt from the way to the group manager.
        let report_to = if opts.advertise.is_some() || !local.ip().is_unspecified() {
            let a = advertised_addr(opts.advertise.as_deref(), local, &opts.group_manager).await?;
            reach::wait_for_group_manager(&opts.group_manager, opts.expect_timeout).await?;
            a
        } else {
            reach::wait_for_group_manager(&opts.group_manager, opts.expect_timeout).await?;
            advertised_addr(None, local, &opts.group_manager).await?
        };
        Ok(Server {
            opts,
            listener,
            report_to,
            runs: 0,
            keys: None,
        })
    }

    /// Authenticates every control connection with `keys` (the group key).
    pub fn with_keys(mut self, keys: Option<KeyRing>) -> Server {
        self.keys = keys;
        self
    }

    /// Where peers send their reports.
    pub fn report_addr(&self) -> SocketAddr {
        self.report_to
    }

    /// The registered peers, in natural name order: the order their member
    /// ids are given in.
    pub async fn peers(&self) -> anyhow::Result<Vec<PeerInfo>> {
        members::list(&self.opts.group_manager, self.keys.as_ref()).await
    }

    /// Waits until at least `n` registered peers answer, for up to
    /// `timeout`, and returns every one that answers.
    pub async fn wait_for_peers(
        &self,
        n: usize,
        timeout: Duration,
        progress: &mut dyn FnMut(ServerEvent),
    ) -> anyhow::Result<Vec<PeerInfo>> {
        members::wait_for_members(
            &self.opts.group_manager,
            self.keys.as_ref(),
            Some(n),
            timeout,
            progress,
        )
        .await
    }

    /// Runs one experiment with every registered peer that answers (at
    /// least `expect` of them, waiting for them if need be).
    ///
    /// An `Err` means no run took place (its members could not be
    /// gathered, or its directory not created); a run that took place and
    /// failed is an `Ok` outcome that says why.
    pub async fn run(
        &mut self,
        params: &RunParams,
        progress: &mut dyn FnMut(ServerEvent),
    ) -> anyhow::Result<RunOutcome> {
        let peers = members::wait_for_members(
            &self.opts.group_manager,
            self.keys.as_ref(),
            self.opts.expect,
            self.opts.expect_timeout,
            progress,
        )
        .await?;
        self.runs += 1;
        let run = new_run_id()?;
        let run_dir = create_run_dir(&self.opts.data_dir, params.order)?;
        let deadline = params.deadline();
        let started = Instant::now();
        let seed = params.seed.unwrap_or(run);
        let members: Vec<MemberSpec> = peers
            .iter()
            .map(|p| MemberSpec {
                name: p.name.clone(),
                data_addr: p.data_addr,
                region: p.region.clone(),
            })
            .collect();
        let n = members.len();
        progress(ServerEvent::Starting {
            run,
            members: members.iter().map(|m| m.name.clone()).collect(),
            deadline,
        });
        let mut outcomes: Vec<MemberOutcome> = peers
            .iter()
            .enumerate()
            .map(|(i, p)| MemberOutcome {
                id: i as MemberId,
                name: p.name.clone(),
                region: p.region.clone(),
                status: "missing".to_string(),
                error: None,
                entries: 0,
                at_s: None,
                stats: Default::default(),
            })
            .collect();
        let (tx, rx) = mpsc::channel::<Collected>(4 * n + 4);

        // Start every peer, keeping each control connection open: if the
        // peer's process dies, the connection closes and we know at once.
        let peer_deadline = deadline
            .saturating_sub(Duration::from_secs(3))
            .max(Duration::from_secs(1));
        let mut start_error = None;
        let mut watchers = Vec::new();
        for (i, p) in peers.iter().enumerate() {
            let start = StartRun {
                run,
                member: i as MemberId,
                members: members.clone(),
                order: params.order.to_string(),
                messages: params.messages,
                min_interval_us: params.min_interval.as_micros() as u64,
                max_interval_us: params.max_interval.as_micros() as u64,
                payload: params.payload,
                seed: seed.wrapping_add(i as u64),
                wan: params.wan.clone(),
                report_to: self.report_to,
                deadline_ms: peer_deadline.as_millis() as u64,
                peer_timeout_ms: params.peer_timeout.map(|d| d.as_millis() as u64),
            };
            match start_peer(p.control_addr, start, self.keys.as_ref()).await {
                Ok(framed) => {
                    watchers.push(tokio::spawn(watch_peer(i as MemberId, framed, tx.clone())))
                }
                Err(e) => {
                    start_error = Some(format!(
                        "could not start peer {} ({}) at {}: {e}",
                        i, p.name, p.control_addr
                    ));
                    outcomes[i].error = Some(format!("could not be started: {e}"));
                    // It never ran; the others, started already, are told
                    // to stop below.
                    outcomes[i].status = "missing".to_string();
                    break;
                }
            }
        }
        let started_count = watchers.len();

        let mut collect = Collection {
            run,
            keys: self.keys.clone(),
            peers: &peers,
            outcomes: &mut outcomes,
            started: started_count,
            received: 0,
            receiving: vec![false; n],
            lost: vec![false; n],
            cause: None,
            closing: None,
            patience: params.peer_timeout.unwrap_or(Duration::from_secs(10)) + GRACE,
            first_done: None,
            begun: started,
        };
        collect
            .gather(
                &self.listener,
                rx,
                tx,
                &run_dir,
                started + deadline,
                deadline,
                start_error,
                progress,
            )
            .await;
        let error = collect.verdict();
        for w in watchers {
            w.abort();
        }

        progress(ServerEvent::Checking);
        let spec = RunSpec {
            order: params.order,
            members: n,
            sent: vec![params.messages; n],
        };
        let ids: Vec<MemberId> = outcomes.iter().map(|o| o.id).collect();
        let dir = run_dir.clone();
        let checked = tokio::task::spawn_blocking(move || {
            let (logs, problems) = reports::read_logs(&dir, &ids);
            let views = mpcomm_check::views::run_views(&logs);
            // A run in which the group changed is judged with its views
            // (members that left are not missing; virtual synchrony).
            match mpcomm_check::check_with_views(&spec, &logs) {
                Some((f, _, vf)) => (f, problems, views, Some(vf)),
                None => (mpcomm_check::check(&spec, &logs), problems, views, None),
            }
        })
        .await;
        let (findings, unreadable_logs, views, view_findings) = match checked {
            Ok((f, problems, views, vf)) => (Some(f), problems, views, vf),
            Err(e) => (
                None,
                vec![format!("checking the logs crashed: {e}")],
                Vec::new(),
                None,
            ),
        };
        let passed = error.is_none()
            && unreadable_logs.is_empty()
            && findings.as_ref().is_some_and(|f| f.passed);
        let mut outcome = RunOutcome {
            run,
            run_dir: run_dir.clone(),
            passed,
            error,
            params: RunParams {
                seed: Some(seed),
                ..params.clone()
            },
            duration_s: started.elapsed().as_secs_f64(),
            members: outcomes,
            report: Some(run_dir.join(crate::report::REPORT_FILE)),
            report_error: None,
            unreadable_logs,
            findings,
            views,
            left: view_findings
                .as_ref()
                .map(|v| v.left.clone())
                .unwrap_or_default(),
            virtual_synchrony: view_findings.as_ref().map(|v| v.virtual_synchrony),
            virtual_synchrony_detail: view_findings.map(|v| v.virtual_synchrony_detail),
        };
        // The summary names the report before it exists, because the report
        // is drawn from the summary; if drawing fails, the summary is
        // rewritten to say so.
        write_summary(&outcome).await?;
        if let Err(e) = write_report(&run_dir).await {
            tracing::warn!("run {run}: {e}");
            outcome.report = None;
            outcome.report_error = Some(e);
            write_summary(&outcome).await?;
        }
        Ok(outcome)
    }

    /// Tells every registered peer, then the group manager, to stop.
    /// Returns the peers that could not be told, each with why (a peer
    /// that is already gone, say); the caller decides whether that is
    /// worth a warning.
    pub async fn stop_everything(&self) -> anyhow::Result<Vec<String>> {
        let mut unreachable = Vec::new();
        for p in self.peers().await.unwrap_or_default() {
            if let Err(e) = control::request_keyed::<_, _, Reply>(
                p.control_addr,
                &PeerCommand::Stop,
                REQUEST_TIMEOUT,
                self.keys.as_ref(),
            )
            .await
            {
                unreachable.push(format!("{}: {e}", p.name));
            }
        }
        control::request_keyed::<_, _, Reply>(
            self.opts.group_manager.as_str(),
            &GmRequest::Stop,
            REQUEST_TIMEOUT,
            self.keys.as_ref(),
        )
        .await
        .with_context(|| {
            format!(
                "could not stop the group manager at {}",
                self.opts.group_manager
            )
        })?;
        Ok(unreachable)
    }
}

/// The reports of one run as they come in, and the decision when it ends.
struct Collection<'a> {
    run: u64,
    /// The group key, for the reports' and the aborts' connections.
    keys: Option<KeyRing>,
    peers: &'a [PeerInfo],
    outcomes: &'a mut [MemberOutcome],
    /// Members that were started (the first `started` of them).
    started: usize,
    /// Reports stored.
    received: usize,
    /// Members whose report is being received.
    receiving: Vec<bool>,
    /// Members whose control connection closed before they reported.
    lost: Vec<bool>,
    /// What decided the run's failure, once something did.
    cause: Option<String>,
    /// When the grace for the last reports ends, once the outcome is
    /// decided.
    closing: Option<Instant>,
    /// How long members may take to report after the first one completed:
    /// with views, a member that stopped answering is excluded and the
    /// others complete without it, so its report may never come.
    patience: Duration,
    /// When that patience ends, once a member completed.
    first_done: Option<Instant>,
    begun: Instant,
}

impl Collection<'_> {
    fn name(&self, member: usize) -> String {
        format!("peer {member} ({})", self.peers[member].name)
    }

    /// Whether member `i` has nothing more to say: it reported, it is
    /// gone, or it was never started.
    fn settled(&self, i: usize) -> bool {
        i >= self.started || self.outcomes[i].status != "missing" || self.lost[i]
    }

    /// Decides the run's failure (the first cause wins) and tells every
    /// member still running to stop and report.
    fn decide(&mut self, cause: String, progress: &mut dyn FnMut(ServerEvent)) {
        if self.closing.is_some() {
            return;
        }
        tracing::info!("run {}: {cause}; ending it", self.run);
        progress(ServerEvent::Ending {
            cause: cause.clone(),
        });
        for i in 0..self.started {
            if self.settled(i) {
                continue;
            }
            let (addr, run, reason) = (self.peers[i].control_addr, self.run, cause.clone());
            let keys = self.keys.clone();
            tokio::spawn(async move {
                let abort = PeerCommand::Abort { run, reason };
                if let Err(e) = control::request_keyed::<_, _, Reply>(
                    addr,
                    &abort,
                    ABORT_TIMEOUT,
                    keys.as_ref(),
                )
                .await
                {
                    tracing::debug!("could not tell {addr} to abort run {run}: {e}");
                }
            });
        }
        self.cause = Some(cause);
        self.closing = Some(Instant::now() + GRACE);
    }

    /// Collects reports until every member has reported, or — once the
    /// outcome is decided — every member has settled or the grace is over.
    #[allow(clippy::too_many_arguments)]
    async fn gather(
        &mut self,
        listener: &TcpListener,
        mut rx: mpsc::Receiver<Collected>,
        tx: mpsc::Sender<Collected>,
        run_dir: &Path,
        until: Instant,
        deadline: Duration,
        start_error: Option<String>,
        progress: &mut dyn FnMut(ServerEvent),
    ) {
        let n = self.peers.len();
        if let Some(e) = start_error {
            self.decide(e, progress);
        }
        loop {
            let all_settled = (0..n).all(|i| self.settled(i));
            let busy = self.receiving.iter().any(|&r| r);
            if all_settled && !busy {
                break;
            }
            let grace = self.closing;
            tokio::select! {
                accepted = listener.accept() => {
                    if let Ok((stream, _)) = accepted {
                        tokio::spawn(reports::receive_report(
                            stream, self.keys.clone(), self.run, n, run_dir.to_path_buf(), tx.clone(),
                        ));
                    }
                }
                msg = rx.recv() => match msg {
                    Some(Collected::Receiving { member }) => {
                        self.receiving[usize::from(member)] = true;
                    }
                    Some(Collected::Broken { member }) => {
                        self.receiving[usize::from(member)] = false;
                    }
                    Some(Collected::Report { header }) => {
                        let i = usize::from(header.member);
                        self.receiving[i] = false;
                        let at = self.begun.elapsed().as_secs_f64();
                        let o = &mut self.outcomes[i];
                        if o.status != "missing" {
                            continue; // a duplicate report; the first one counts
                        }
                        o.status = header.status.clone();
                        o.error = header.error.clone();
                        o.entries = header.delivered.unwrap_or(header.entries);
                        o.stats = header.stats.clone();
                        o.at_s = Some(at);
                        self.received += 1;
                        progress(ServerEvent::Reported {
                            member: header.member,
                            status: header.status.clone(),
                            received: self.received,
                            total: n,
                        });
                        if header.status == "completed" && self.first_done.is_none() {
                            self.first_done = Some(Instant::now() + self.patience);
                        }
                        if header.status != "completed" {
                            let why = header.error.as_deref().unwrap_or("no reason given");
                            let cause = format!("{} failed: {why}", self.name(i));
                            self.decide(cause, progress);
                        }
                    }
                    Some(Collected::Disconnected { member, why }) => {
                        let i = usize::from(member);
                        if self.outcomes[i].status == "missing" && !self.lost[i] {
                            self.lost[i] = true;
                            let at = self.begun.elapsed().as_secs_f64();
                            self.outcomes[i].at_s = Some(at);
                            self.outcomes[i].error = Some(format!(
                                "its control connection closed {at:.1} s into the run ({why}) before it reported"
                            ));
                            let cause = format!(
                                "{} disconnected during the run ({why}): its process probably died",
                                self.name(i)
                            );
                            self.decide(cause, progress);
                        }
                    }
                    None => break,
                },
                () = tokio::time::sleep_until(until), if grace.is_none() => {
                    let missing: Vec<String> = (0..n)
                        .filter(|&i| !self.settled(i))
                        .map(|i| self.name(i))
                        .collect();
                    self.decide(
                        format!(
                            "run deadline of {deadline:?} passed; no report from {}",
                            missing.join(", ")
                        ),
                        progress,
                    );
                }
                () = tokio::time::sleep_until(self.first_done.unwrap_or(until)), if grace.is_none() && self.first_done.is_some() => {
                    let missing: Vec<String> = (0..n)
                        .filter(|&i| !self.settled(i))
                        .map(|i| self.name(i))
                        .collect();
                    self.decide(
                        format!(
                            "no report from {} within {:?} of the first member's completion \
                             (the others went on without it: it stopped answering)",
                            missing.join(", "),
                            self.patience
                        ),
                        progress,
                    );
                }
                () = tokio::time::sleep_until(grace.unwrap_or(until)), if grace.is_some() && !busy => {
                    break;
                }
                // A report still arriving may extend the grace, within reason.
                () = tokio::time::sleep_until(grace.unwrap_or(until) + GRACE_FOR_TRANSFERS), if grace.is_some() => {
                    break;
                }
            }
        }
    }

    /// Why the run failed, if it did: the cause that decided it, and who
    /// never reported besides.
    fn verdict(&self) -> Option<String> {
        let silent: Vec<String> = (0..self.started)
            .filter(|&i| self.outcomes[i].status == "missing" && !self.lost[i])
            .map(|i| self.name(i))
            .collect();
        let mut error = self.cause.clone()?;
        if !silent.is_empty() {
            error.push_str(&format!(
                "; no report from {} (alive but not answering?)",
                silent.join(", ")
            ));
        }
        Some(error)
    }
}

/// Writes the run's `summary.json`.
async fn write_summary(outcome: &RunOutcome) -> anyhow::Result<()> {
    let json = serde_json::to_vec_pretty(outcome)?;
    let path = outcome.run_dir.join("summary.json");
    tokio::fs::write(&path, json)
        .await
        .with_context(|| format!("cannot write {}", path.display()))
}

/// How long drawing a report may take; a run of millions of deliveries
/// takes a few seconds.
const REPORT_TIMEOUT: Duration = Duration::from_secs(120);

/// Writes the run's `report.html`. Reading the logs again and drawing them
/// happens on a blocking thread, bounded by [`REPORT_TIMEOUT`]; only a page
/// finished in time is written, so a late one can never appear beside a
/// summary that says it failed. The error, if any, is a sentence for
/// `summary.json`.
async fn write_report(run_dir: &Path) -> Result<PathBuf, String> {
    let dir = run_dir.to_path_buf();
    let task = tokio::task::spawn_blocking(move || {
        crate::report::load(&dir).map(|input| crate::report::render_report(&input))
    });
    let html = match tokio::time::timeout(REPORT_TIMEOUT, task).await {
        Ok(Ok(Ok(html))) => html,
        Ok(Ok(Err(e))) => return Err(format!("cannot write the report: {e:#}")),
        Ok(Err(e)) => return Err(format!("writing the report crashed: {e}")),
        Err(_) => {
            return Err(format!(
                "drawing the report took longer than {REPORT_TIMEOUT:?}; gave up"
            ));
        }
    };
    let dir = run_dir.to_path_buf();
    match tokio::task::spawn_blocking(move || crate::report::save_report(&dir, &html)).await {
        Ok(Ok(path)) => Ok(path),
        Ok(Err(e)) => Err(format!("cannot write the report: {e:#}")),
        Err(e) => Err(format!("writing the report crashed: {e}")),
    }
}

/// Sends the start command and returns the open connection.
async fn start_peer(
    addr: SocketAddr,
    start: StartRun,
    keys: Option<&KeyRing>,
) -> Result<Framed<Channel>, ControlError> {
    let exchange = async {
        let mut framed = control::connect(addr, keys).await?;
        framed.send(&PeerCommand::Start(start)).await?;
        framed
            .recv::<Reply>()
            .await?
            .ok_or(ControlError::Closed)?
            .into_result()?;
        Ok(framed)
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| ControlError::Timeout(REQUEST_TIMEOUT))?
}

/// Waits for the peer's control connection to close.
async fn watch_peer(member: MemberId, mut framed: Framed<Channel>, tx: mpsc::Sender<Collected>) {
    let why = match framed.recv_value().await {
        Ok(None) => "connection closed".to_string(),
        Ok(Some(v)) => format!("unexpected message {v}"),
        Err(e) => e.to_string(),
    };
    let _ = tx.send(Collected::Disconnected { member, why }).await;
}

/// A run id from the operating system's random generator: unique across
/// runs and servers in practice, and unguessable, so that nobody can prepare
/// datagrams for a run before it starts (ids made of the time and a counter
/// could be guessed).
fn new_run_id() -> anyhow::Result<u64> {
    mpcomm::runtime::random_u64().context("no random numbers from the system for the run id")
}

/// Creates `DATA_DIR/YYYYMMDD-HHMMSS-ORDER[-k]`.
fn create_run_dir(data_dir: &Path, order: OrderKind) -> anyhow::Result<PathBuf> {
    let name = format!("{}-{order}", now_stamp());
    create_unique_dir(data_dir, &name)
        .with_context(|| format!("cannot create a run directory in {}", data_dir.display()))
}

#[cfg(test)]
mod tests {

    /// Run ids were `(ms << 8) | counter`: two runs of one server differed
    /// in a few low bits, and the next id could be guessed. Now each is 64
    /// random bits.
    #[test]
    fn run_ids_are_random() {
        let a = super::new_run_id().unwrap();
        let b = super::new_run_id().unwrap();
        assert!((a ^ b).count_ones() > 8, "{a:#x} {b:#x}");
        assert!(
            (a ^ b) >> 48 != 0,
            "the high bits differ too: {a:#x} {b:#x}"
        );
    }
}
